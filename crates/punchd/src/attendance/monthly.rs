//! The month of a site: load everything from the store, plan each employee-day from the roster, run the rules
//! ([`super::rules::compute_days`]), then apply what only the plumbing knows: corrections, completeness
//! (watermarks), exception reviews, the unmapped queue and sign-off.
//!
//! How a day is planned (in this order): a roster line for the employee and date (a shift, or off = weekly off);
//! a site holiday; a site weekly off; a `set-status leave` correction (leave); the employee's default shift; else a
//! working day without a shift (the site's day-change time decides the day). The employee is active on a date
//! when their status is not `inactive`, the date is not before `joined_on` and not after `left_on`.
//!
//! Punches are resolved to employees at read time ([`super::mapping`]), so a new mapping counts at once. A signed-off
//! month is served from its frozen snapshot, with the punches stored after the sign-off listed as "arrived after
//! sign-off".

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::mapping::{self, Resolver, Unmapped};
use super::rules::{
    self, DayKind, DayPlan, DayResult, DayStatus, MonthTotals, PolicyChoice, PunchStatePolicy,
    RulePunch, Shift, SiteRules,
};
use super::setup::{load_shifts, parse_clock, AttError, AttResult};
use super::watermark::{self, Watermark};
use crate::domain::DeviceSn;
use crate::store::attendance::{
    AttendancePunch, Correction, CorrectionKind, Employee, EmployeeStatus, ReviewState, Scope, Site,
};
use crate::store::Store;

/// The SN shown for punches an HR correction added (they come from no terminal).
pub use crate::domain::CORRECTION_DEVICE;

/// One exception of the month, with its review state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExceptionRow {
    /// The employee.
    pub employee_code: String,
    /// The working day.
    #[schema(value_type = String)]
    pub date: NaiveDate,
    /// `missing-in`, `missing-out`, `single-punch`, `odd-punch-count`, `late`, `early-exit`, `outside-shift`,
    /// `double-tap`, `inactive-employee`, `overtime-over-cap`, `incomplete`.
    pub kind: String,
    /// The punches concerned (ids; negative = added by correction `-id`).
    pub punch_ids: Vec<i64>,
    /// Seconds involved (late, early exit, overtime), else 0.
    pub secs: i64,
    /// open, explained, approved or rejected.
    pub state: ReviewState,
    /// The review note, or for `incomplete` the devices holding the day back.
    pub note: String,
}

/// One cell of the grid: an employee-day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DayCell {
    /// The rules' result (punches with their roles, times, exceptions), after corrections.
    pub result: DayResult,
    /// The status shown: the rules' status, a `set-status` correction's, or `incomplete` while a device holds the
    /// day back.
    pub status: DayStatus,
    /// Devices whose watermark is before the day's close (empty = complete).
    pub held_by: Vec<String>,
    /// Corrections applied to this day (ids).
    pub corrections: Vec<i64>,
    /// Exceptions not yet approved or rejected.
    pub open_exceptions: u32,
}

/// One employee's month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EmployeeMonth {
    /// Employee code.
    pub code: String,
    /// Name.
    pub name: String,
    /// Department.
    pub department: Option<String>,
    /// One cell per date of the month.
    pub days: Vec<DayCell>,
    /// Totals (after corrections).
    pub totals: MonthTotals,
}

/// A punch stored after the month was signed off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LatePunch {
    /// Punch id.
    pub id: i64,
    /// Device.
    pub device_sn: String,
    /// PIN.
    pub pin: String,
    /// The employee it maps to now, if any.
    pub employee_code: Option<String>,
    /// When it happened (UTC).
    pub punched_at_utc: DateTime<Utc>,
    /// When it arrived (UTC).
    pub received_at: DateTime<Utc>,
}

/// The sign-off facts shown with a month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SignOffInfo {
    /// When (UTC).
    pub signed_at: DateTime<Utc>,
    /// Who.
    pub author: String,
    /// Signed off with incomplete days.
    pub forced: bool,
}

/// A site's month: the grid, exceptions, unmapped PINs, watermarks, sign-off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Month {
    /// The site.
    pub site: String,
    /// `YYYY-MM`.
    pub month: String,
    /// The site's IANA zone (days are local days there).
    pub time_zone: String,
    /// The dates (columns).
    #[schema(value_type = Vec<String>)]
    pub dates: Vec<NaiveDate>,
    /// Rows, by employee code.
    pub employees: Vec<EmployeeMonth>,
    /// Every exception, by employee and date.
    pub exceptions: Vec<ExceptionRow>,
    /// PINs on the site's devices that map to nobody (their punches wait; `unmapped-pin` exceptions).
    pub unmapped: Vec<Unmapped>,
    /// The site's devices' watermarks when the month was computed.
    pub watermarks: Vec<Watermark>,
    /// Days (employee-days) still incomplete.
    pub incomplete_days: u32,
    /// Set when the month is signed off: the grid is the frozen one.
    pub signed_off: Option<SignOffInfo>,
    /// Punches stored after the sign-off that fall in this month (not in the frozen grid).
    pub arrived_after_signoff: Vec<LatePunch>,
    /// When it was computed (UTC).
    pub computed_at: DateTime<Utc>,
}

/// `YYYY-MM` → (year, month, dates).
pub fn parse_month(month: &str) -> AttResult<(i32, u32, Vec<NaiveDate>)> {
    let bad = || AttError::Invalid(format!("month {month:?} is not YYYY-MM"));
    let (y, m) = month.split_once('-').ok_or_else(bad)?;
    let (y, m): (i32, u32) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    let dates = rules::month_dates(y, m).ok_or_else(bad)?;
    Ok((y, m, dates))
}

/// The site local wall time as an instant (the earlier one in a DST fold; after a gap for times in it).
pub fn local_to_utc(zone: Tz, t: NaiveDateTime) -> DateTime<Utc> {
    match zone.from_local_datetime(&t) {
        chrono::LocalResult::Single(x) => x.with_timezone(&Utc),
        chrono::LocalResult::Ambiguous(a, _) => a.with_timezone(&Utc),
        chrono::LocalResult::None => zone
            .from_local_datetime(&(t + chrono::Duration::hours(1)))
            .earliest()
            .map(|x| x.with_timezone(&Utc))
            .unwrap_or_else(|| Utc.from_utc_datetime(&t)),
    }
}

/// Everything the month of a site is computed from (loaded once).
pub struct Inputs {
    /// The site.
    pub site: Site,
    /// Its rules settings.
    pub rules: SiteRules,
    /// Its devices.
    pub devices: Vec<DeviceSn>,
    /// Watermarks of its devices.
    pub watermarks: Vec<Watermark>,
    /// Every employee.
    pub employees: Vec<Employee>,
    /// PIN → employee.
    pub resolver: Resolver,
    /// Shifts by name.
    pub shifts: HashMap<String, Arc<Shift>>,
    /// The policy in force.
    pub policy: PolicyChoice,
}

/// Load the inputs of a site.
pub async fn load_inputs(
    store: &dyn Store,
    site_name: &str,
    now: DateTime<Utc>,
) -> AttResult<Inputs> {
    let site = store
        .list_sites()
        .await?
        .into_iter()
        .find(|s| s.name == site_name)
        .ok_or_else(|| AttError::Invalid(format!("site {site_name:?} is unknown")))?;
    let zone: Tz = site.time_zone.parse().map_err(|_| {
        AttError::Invalid(format!(
            "site zone {:?} is not an IANA zone",
            site.time_zone
        ))
    })?;
    let all_devices = store.list_devices().await?;
    let site_devices: Vec<_> = all_devices
        .iter()
        .filter(|d| d.site.as_deref() == Some(site_name))
        .collect();
    let policies = store.list_policies().await?;
    let site_policy = policies
        .iter()
        .find(|p| p.scope == Scope::Site && p.scope_key == site_name);
    let mut rules_settings = SiteRules::new(zone);
    rules_settings.day_change = parse_clock(&site.day_change)?;
    if let Some(p) = site_policy {
        rules_settings.double_tap_secs = p.double_tap_secs;
    }
    let policy = PolicyChoice {
        site: site_policy
            .and_then(|p| PunchStatePolicy::parse(&p.policy))
            .unwrap_or(PunchStatePolicy::Device),
        devices: policies
            .iter()
            .filter(|p| p.scope == Scope::Device)
            .filter_map(|p| {
                let sn = DeviceSn::parse(&p.scope_key).ok()?;
                site_devices
                    .iter()
                    .any(|d| d.sn == sn)
                    .then_some((sn, PunchStatePolicy::parse(&p.policy)?))
            })
            .collect(),
    };
    let employees = store.list_employees().await?;
    let resolver = Resolver::new(&store.list_mappings().await?, &employees, &all_devices);
    let shifts = load_shifts(store)
        .await?
        .into_iter()
        .map(|s| (s.name.clone(), Arc::new(s)))
        .collect();
    let owned: Vec<crate::domain::Device> = site_devices.iter().map(|d| (*d).clone()).collect();
    let watermarks = watermark::watermarks(store, &owned, now).await?;
    Ok(Inputs {
        watermarks,
        devices: site_devices.iter().map(|d| d.sn.clone()).collect(),
        site,
        rules: rules_settings,
        employees,
        resolver,
        shifts,
        policy,
    })
}

fn active_on(e: &Employee, date: NaiveDate) -> bool {
    e.status != EmployeeStatus::Inactive
        && e.joined_on.is_none_or(|j| date >= j)
        && e.left_on.is_none_or(|l| date <= l)
}

/// Plan one employee's days.
pub fn plan_days(
    inputs: &Inputs,
    e: &Employee,
    dates: &[NaiveDate],
    roster: &HashMap<(String, NaiveDate), Option<String>>,
    leave: &HashMap<(String, NaiveDate), String>,
) -> AttResult<Vec<DayPlan>> {
    let shift = |name: &str| {
        inputs.shifts.get(name).cloned().ok_or_else(|| {
            AttError::Invalid(format!(
                "shift {name:?} (of employee {}) is unknown",
                e.code
            ))
        })
    };
    // One key per employee, its date moved along (a month of 10,000 employees plans 300,000 days).
    let mut key = (e.code.clone(), NaiveDate::MIN);
    dates
        .iter()
        .map(|&date| {
            key.1 = date;
            let kind = if let Some(r) = roster.get(&key) {
                match r {
                    Some(name) => DayKind::Working(shift(name)?),
                    None => DayKind::WeeklyOff,
                }
            } else if let Some(h) = inputs.site.holidays.iter().find(|h| h.day == date) {
                DayKind::Holiday(h.name.clone())
            } else if inputs
                .site
                .weekly_offs
                .contains(&(date.weekday().number_from_monday() as u8))
            {
                DayKind::WeeklyOff
            } else if let Some(l) = leave.get(&key) {
                DayKind::Leave(l.clone())
            } else if let Some(name) = &e.default_shift {
                DayKind::Working(shift(name)?)
            } else {
                DayKind::WorkingNoShift
            };
            Ok(DayPlan {
                date,
                kind,
                employee_active: active_on(e, date),
            })
        })
        .collect()
}

fn rule_punch(p: &AttendancePunch) -> RulePunch {
    RulePunch {
        id: p.id,
        device_sn: p.device_sn.clone(),
        at: p.punched_at_utc,
        punch_state: p.punch_state,
        added_by_correction: false,
        voided: false,
    }
}

/// Compute (or, when signed off, read back) a site's month.
pub async fn month(
    store: &dyn Store,
    site: &str,
    month: &str,
    now: DateTime<Utc>,
) -> AttResult<Month> {
    let (_, _, dates) = parse_month(month)?;
    if let Some(signoff) = store.get_signoff(site, month).await? {
        let mut frozen: Month = serde_json::from_value(signoff.snapshot.clone())
            .map_err(|e| AttError::Invalid(format!("the frozen month is unreadable: {e}")))?;
        frozen.signed_off = Some(SignOffInfo {
            signed_at: signoff.signed_at,
            author: signoff.author.clone(),
            forced: signoff.forced,
        });
        let inputs = load_inputs(store, site, now).await?;
        let (from, to) = window(&inputs, &dates);
        let punches = store
            .punches_between(inputs.devices.clone(), from, to)
            .await?;
        // Only punches of the month itself: by their local date in the site's zone.
        frozen.arrived_after_signoff = punches
            .iter()
            .filter(|p| p.id > signoff.max_punch_id)
            .filter(|p| {
                let d = p
                    .punched_at_utc
                    .with_timezone(&inputs.rules.zone)
                    .date_naive();
                dates.first().is_some_and(|f| d >= *f) && dates.last().is_some_and(|l| d <= *l)
            })
            .map(|p| LatePunch {
                id: p.id,
                device_sn: p.device_sn.as_str().to_owned(),
                pin: p.pin.0.clone(),
                employee_code: inputs
                    .resolver
                    .resolve(p.device_sn.as_str(), p.pin.as_str())
                    .map(str::to_owned),
                punched_at_utc: p.punched_at_utc,
                received_at: p.received_at,
            })
            .collect();
        return Ok(frozen);
    }
    compute(store, site, month, &dates, now).await
}

/// The UTC range of punches a month needs: from two days before its first local midnight to two days after its
/// last (overnight shifts, check-in windows, double taps across the edge).
pub(crate) fn window(inputs: &Inputs, dates: &[NaiveDate]) -> (DateTime<Utc>, DateTime<Utc>) {
    let first = dates.first().copied().unwrap_or_default();
    let last = dates.last().copied().unwrap_or_default();
    let at = |d: NaiveDate| local_to_utc(inputs.rules.zone, d.and_time(inputs.rules.day_change));
    (
        at(first) - chrono::Duration::days(2),
        at(last) + chrono::Duration::days(3),
    )
}

async fn compute(
    store: &dyn Store,
    site: &str,
    month: &str,
    dates: &[NaiveDate],
    now: DateTime<Utc>,
) -> AttResult<Month> {
    let basis = Basis::load(store, site, dates, now, i64::MAX).await?;
    basis.assemble(month, now)
}

/// Everything a site's month is computed from, loaded once and kept by the month cache
/// ([`super::month_cache`]), which updates it piece by piece and recomputes only the employee-days a change
/// touches. [`month`] builds one, assembles the month and drops it.
pub(crate) struct Basis {
    /// The site's name.
    pub site: String,
    /// Site, devices, employees, resolver, shifts, policy, watermarks.
    pub inputs: Inputs,
    /// The dates of the month.
    pub dates: Vec<NaiveDate>,
    /// The UTC range of punches the month reads ([`window`]).
    pub window: (DateTime<Utc>, DateTime<Utc>),
    /// Roster lines of the month: (employee, date) → shift (`None` = day off).
    pub roster: HashMap<(String, NaiveDate), Option<String>>,
    /// Corrections of the month, by id.
    pub corrections: Vec<Correction>,
    /// (employee, date) → indexes into `corrections`, in id order.
    pub by_day: HashMap<(String, NaiveDate), Vec<usize>>,
    /// `set-status leave` corrections: (employee, date) → leave.
    pub leave: HashMap<(String, NaiveDate), String>,
    /// Punch ids voided by a correction.
    pub voided: std::collections::HashSet<i64>,
    /// Exception reviews of the month: (employee, date, kind) → (state, note).
    pub reviews: HashMap<(String, NaiveDate, String), (ReviewState, String)>,
    /// Stored punches of the window by employee (as stored: corrections not applied), in id order.
    pub punches: rustc_hash::FxHashMap<String, Vec<RulePunch>>,
    /// Punches of the window that map to nobody, per (device, PIN).
    pub unmapped_seen: BTreeMap<(String, String), crate::store::attendance::PinSeen>,
    correction_sn: DeviceSn,
}

impl Basis {
    /// Load the basis of a site's month from the store, with the stored punches whose id is at most
    /// `max_punch_id` (the month cache reads the highest id first and adds later punches itself).
    pub async fn load(
        store: &dyn Store,
        site: &str,
        dates: &[NaiveDate],
        now: DateTime<Utc>,
        max_punch_id: i64,
    ) -> AttResult<Basis> {
        let inputs = load_inputs(store, site, now).await?;
        let first = dates[0];
        let next = dates[dates.len() - 1] + chrono::Duration::days(1);
        let roster = store
            .list_roster(first, next)
            .await?
            .into_iter()
            .map(|r| ((r.employee_code, r.day), r.shift))
            .collect();
        let corrections = store.list_corrections(first, next).await?;
        let reviews = store.list_reviews(first, next).await?;
        let window = window(&inputs, dates);
        let punches = store
            .attendance_punches_between(inputs.devices.clone(), window.0, window.1)
            .await?;
        let mut basis = Basis {
            site: site.to_owned(),
            inputs,
            dates: dates.to_vec(),
            window,
            roster,
            corrections: Vec::new(),
            by_day: HashMap::new(),
            leave: HashMap::new(),
            voided: Default::default(),
            reviews: HashMap::new(),
            punches: Default::default(),
            unmapped_seen: BTreeMap::new(),
            correction_sn: DeviceSn::parse(CORRECTION_DEVICE)
                .map_err(|e| AttError::Invalid(format!("correction SN: {e}")))?,
        };
        basis.set_corrections(corrections);
        basis.set_reviews(reviews);
        for p in punches.iter().filter(|p| p.id <= max_punch_id) {
            basis.take_punch(p);
        }
        Ok(basis)
    }

    /// Replace the corrections (and what is derived from them: per day, leave, voided punches).
    pub fn set_corrections(&mut self, corrections: Vec<Correction>) {
        self.by_day.clear();
        self.leave.clear();
        self.voided.clear();
        for (i, c) in corrections.iter().enumerate() {
            self.by_day
                .entry((c.employee_code.clone(), c.day))
                .or_default()
                .push(i);
            match c.kind {
                CorrectionKind::SetStatus if c.status.as_deref() == Some("leave") => {
                    self.leave
                        .insert((c.employee_code.clone(), c.day), "leave".to_owned());
                }
                CorrectionKind::VoidPunch => {
                    if let Some(id) = c.punch_id {
                        self.voided.insert(id);
                    }
                }
                _ => {}
            }
        }
        self.corrections = corrections;
    }

    /// Replace the exception reviews.
    pub fn set_reviews(&mut self, reviews: Vec<crate::store::attendance::ExceptionReview>) {
        self.reviews = reviews
            .into_iter()
            .map(|r| ((r.employee_code, r.day, r.kind), (r.state, r.note)))
            .collect();
    }

    /// Whether a stored punch is one the month reads (a device of the site, inside the window).
    pub fn reads(&self, p: &AttendancePunch) -> bool {
        p.punched_at_utc >= self.window.0
            && p.punched_at_utc < self.window.1
            && self.inputs.devices.contains(&p.device_sn)
    }

    /// Take a stored punch of the window in: to its employee's punches, or to the unmapped queue. Returns the
    /// employee it maps to.
    pub fn add_punch(&mut self, p: &AttendancePunch) -> Option<String> {
        self.take_punch(p).map(str::to_owned)
    }

    /// [`Basis::add_punch`] without an owned copy of the employee code (a cold month takes about a million).
    fn take_punch(&mut self, p: &AttendancePunch) -> Option<&str> {
        match self.inputs.resolver.resolve(p.device_sn.as_str(), &p.pin) {
            Some(code) => {
                // Look up before inserting: the employee's list exists for all but the first punch.
                if let Some(list) = self.punches.get_mut(code) {
                    list.push(rule_punch(p));
                } else {
                    self.punches.insert(code.to_owned(), vec![rule_punch(p)]);
                }
                Some(code)
            }
            None => {
                let e = self
                    .unmapped_seen
                    .entry((p.device_sn.as_str().to_owned(), p.pin.to_string()))
                    .or_insert_with(|| crate::store::attendance::PinSeen {
                        device_sn: p.device_sn.clone(),
                        pin: p.pin.to_string(),
                        count: 0,
                        first_seen: p.punched_at_utc,
                        last_seen: p.punched_at_utc,
                    });
                e.count += 1;
                e.first_seen = e.first_seen.min(p.punched_at_utc);
                e.last_seen = e.last_seen.max(p.punched_at_utc);
                None
            }
        }
    }

    /// The unmapped queue of the month.
    pub fn unmapped(&self) -> Vec<Unmapped> {
        let seen: Vec<_> = self.unmapped_seen.values().cloned().collect();
        mapping::unmapped(&self.inputs.resolver, &seen)
    }

    /// An employee's punches as the rules see them: stored ones (voided ones marked) and those corrections
    /// added.
    pub fn employee_punches(&self, code: &str) -> Vec<RulePunch> {
        let mut out: Vec<RulePunch> = self.punches.get(code).cloned().unwrap_or_default();
        if !self.voided.is_empty() {
            for p in &mut out {
                p.voided = self.voided.contains(&p.id);
            }
        }
        for c in &self.corrections {
            if c.kind == CorrectionKind::AddPunch && c.employee_code == code {
                if let Some(at) = c.punched_at {
                    out.push(RulePunch {
                        id: -c.id,
                        device_sn: self.correction_sn.clone(),
                        at: local_to_utc(self.inputs.rules.zone, at),
                        punch_state: c.punch_state,
                        added_by_correction: true,
                        voided: false,
                    });
                }
            }
        }
        out
    }

    /// Whether an employee has a row in the month: of the site, or with punches (stored or added) in it.
    pub fn has_row(&self, e: &Employee) -> bool {
        e.site.as_deref() == Some(self.site.as_str())
            || self.punches.contains_key(&e.code)
            || self.corrections.iter().any(|c| {
                c.kind == CorrectionKind::AddPunch
                    && c.punched_at.is_some()
                    && c.employee_code == e.code
            })
    }

    /// The employees with a row, by code.
    pub fn row_employees(&self) -> Vec<&Employee> {
        let added: std::collections::HashSet<&str> = self
            .corrections
            .iter()
            .filter(|c| c.kind == CorrectionKind::AddPunch && c.punched_at.is_some())
            .map(|c| c.employee_code.as_str())
            .collect();
        let mut employees: Vec<&Employee> = self
            .inputs
            .employees
            .iter()
            .filter(|e| {
                e.site.as_deref() == Some(self.site.as_str())
                    || self.punches.contains_key(&e.code)
                    || added.contains(e.code.as_str())
            })
            .collect();
        employees.sort_by(|a, b| a.code.cmp(&b.code));
        employees
    }

    /// The results of an employee's days `first ..= last` (dates of the month), corrections applied
    /// (`result.status` is the corrected status; incompleteness is added by [`Basis::cell`]). The rules see
    /// the plans of three days more either side (see [`rules::compute_days_in`]) and every punch of the
    /// employee.
    pub fn day_results(
        &self,
        e: &Employee,
        punches: &[RulePunch],
        first: NaiveDate,
        last: NaiveDate,
    ) -> AttResult<Vec<DayResult>> {
        let lo = first - chrono::Duration::days(3);
        let hi = last + chrono::Duration::days(3);
        let dates: Vec<NaiveDate> = self
            .dates
            .iter()
            .copied()
            .filter(|d| (lo..=hi).contains(d))
            .collect();
        let plans = plan_days(&self.inputs, e, &dates, &self.roster, &self.leave)?;
        let mut results = rules::compute_days_in(
            &self.inputs.rules,
            &self.inputs.policy,
            punches,
            &plans,
            first,
            last,
        );
        let mut key = (e.code.clone(), NaiveDate::MIN);
        for result in &mut results {
            let mut status = result.status;
            key.1 = result.date;
            for &i in self.by_day.get(&key).map(Vec::as_slice).unwrap_or_default() {
                let c = &self.corrections[i];
                match c.kind {
                    CorrectionKind::SetStatus => {
                        if let Some(s) = c.status.as_deref().and_then(parse_status) {
                            status = s;
                        }
                    }
                    CorrectionKind::ApproveOvertime | CorrectionKind::CutOvertime => {
                        if let Some(m) = c.minutes {
                            let cap = i64::from(m) * 60;
                            result.overtime_secs = result.overtime_secs.min(cap);
                            result.overtime_off_day_secs = result.overtime_off_day_secs.min(cap);
                        }
                    }
                    _ => {}
                }
            }
            result.status = status;
        }
        Ok(results)
    }

    /// The grid cell of a day result (corrections applied): completeness from the watermarks, exceptions with
    /// their review state (appended to `exceptions`).
    pub fn cell(
        &self,
        code: &str,
        result: DayResult,
        exceptions: &mut Vec<ExceptionRow>,
    ) -> DayCell {
        let held_by = self.held_by(result.closes_at);
        self.cell_held(code, result, held_by, exceptions)
    }

    /// The devices holding back a day that closes at `closes_at`.
    pub fn held_by(&self, closes_at: DateTime<Utc>) -> Vec<String> {
        if self.inputs.devices.is_empty() {
            vec!["(no device on this site)".to_owned()]
        } else {
            watermark::held_by(&self.inputs.watermarks, closes_at)
        }
    }

    /// [`Basis::cell`] with the holding devices known.
    pub fn cell_held(
        &self,
        code: &str,
        result: DayResult,
        held_by: Vec<String>,
        exceptions: &mut Vec<ExceptionRow>,
    ) -> DayCell {
        let mut open = 0;
        let mut push = |kind: String, punch_ids: Vec<i64>, secs: i64, default_note: String| {
            let review = if self.reviews.is_empty() {
                None
            } else {
                self.reviews
                    .get(&(code.to_owned(), result.date, kind.clone()))
                    .cloned()
            };
            let (state, note) = review.unwrap_or((ReviewState::Open, default_note));
            if matches!(state, ReviewState::Open | ReviewState::Explained) {
                open += 1;
            }
            exceptions.push(ExceptionRow {
                employee_code: code.to_owned(),
                date: result.date,
                kind,
                punch_ids,
                secs,
                state,
                note,
            });
        };
        for x in &result.exceptions {
            push(
                x.kind.name().to_owned(),
                x.punch_ids.clone(),
                x.secs,
                String::new(),
            );
        }
        let shown = if held_by.is_empty() {
            result.status
        } else {
            push(
                "incomplete".to_owned(),
                Vec::new(),
                0,
                format!("waiting for {}", held_by.join(", ")),
            );
            DayStatus::Incomplete
        };
        DayCell {
            status: shown,
            held_by,
            corrections: if self.by_day.is_empty() {
                Vec::new()
            } else {
                self.by_day
                    .get(&(code.to_owned(), result.date))
                    .map(|ids| ids.iter().map(|&i| self.corrections[i].id).collect())
                    .unwrap_or_default()
            },
            open_exceptions: open,
            result,
        }
    }

    /// One employee's row (every date of the month) and its exceptions.
    pub fn row(&self, e: &Employee) -> AttResult<(EmployeeMonth, Vec<ExceptionRow>)> {
        let punches = self.employee_punches(&e.code);
        let (Some(&first), Some(&last)) = (self.dates.first(), self.dates.last()) else {
            return Err(AttError::Invalid("a month without dates".into()));
        };
        let results = self.day_results(e, &punches, first, last)?;
        let mut exceptions = Vec::new();
        let days: Vec<DayCell> = results
            .into_iter()
            .map(|r| self.cell(&e.code, r, &mut exceptions))
            .collect();
        Ok((
            EmployeeMonth {
                code: e.code.clone(),
                name: e.name.clone(),
                department: e.department.clone(),
                totals: totals(&days),
                days,
            },
            exceptions,
        ))
    }

    /// The whole month.
    pub fn assemble(&self, month: &str, now: DateTime<Utc>) -> AttResult<Month> {
        let mut rows = Vec::new();
        let mut exceptions = Vec::new();
        for e in self.row_employees() {
            let (row, mut x) = self.row(e)?;
            rows.push(row);
            exceptions.append(&mut x);
        }
        let incomplete_days = rows.iter().map(|r| r.totals.incomplete_days).sum();
        Ok(Month {
            site: self.site.clone(),
            month: month.to_owned(),
            time_zone: self.inputs.site.time_zone.clone(),
            dates: self.dates.clone(),
            employees: rows,
            exceptions,
            unmapped: self.unmapped(),
            watermarks: self.inputs.watermarks.clone(),
            incomplete_days,
            signed_off: None,
            arrived_after_signoff: Vec::new(),
            computed_at: now,
        })
    }
}

/// An employee's month totals from the cells shown (incomplete days count as such).
pub fn totals(cells: &[DayCell]) -> MonthTotals {
    let mut totals = rules::month_totals_shown(cells.iter().map(|c| (&c.result, c.status)));
    totals.incomplete_days = cells
        .iter()
        .filter(|c| c.status == DayStatus::Incomplete)
        .count() as u32;
    totals
}

/// A status name (`present`, `absent`, `half-day`, `weekly-off`, `holiday`, `leave`, `inactive`).
pub fn parse_status(s: &str) -> Option<DayStatus> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
}

/// The one- or two-letter mark of a status in the grid: P present, A absent, H half day, WO weekly off, HO
/// holiday, L leave, - inactive, ? incomplete.
pub fn status_mark(s: DayStatus) -> &'static str {
    match s {
        DayStatus::Present => "P",
        DayStatus::Absent => "A",
        DayStatus::HalfDay => "H",
        DayStatus::WeeklyOff => "WO",
        DayStatus::Holiday => "HO",
        DayStatus::Leave => "L",
        DayStatus::Inactive => "-",
        DayStatus::Incomplete => "?",
    }
}
