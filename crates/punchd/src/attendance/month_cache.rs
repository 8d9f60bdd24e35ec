//! Computed months kept between requests and brought up to date by recomputing only what a change touches
//! (issue 7, "Speed"; issue 11, review pages).
//!
//! A site's month from scratch ([`monthly::month`]) reads every punch of its devices: for 10,000 employees close
//! to a million punches and most of a second. Terminals punch all day, so a cache thrown away on every punch is
//! nearly always cold. This one keeps, per (site, month), the computed [`Month`] together with what it was
//! computed from (`monthly::Basis`: employees, resolver, shifts, roster, corrections, reviews, each employee's
//! punches) and two markers: the highest punch id and the newest audit log id it has seen. On every request it
//! compares the markers with the store and catches up:
//!
//! | What changed | What is recomputed |
//! |---|---|
//! | new punches (id above the marker) | only they are read (`punches_after_id`); each is resolved to its employee and only the employee-days it can belong to (its local date and the days either side: overnight shifts, check-in windows) are recomputed, plus days whose double taps it changes, then that employee's totals. Punches of other sites or outside the month's window only move the marker; unmapped ones update the unmapped queue |
//! | `correction.add` (add or void a punch, set a status, approve or cut overtime), `correction.revoke` (one taken back) | that employee's days (and those of the owner of a voided punch) |
//! | `exception.review` (explain, approve, reject) | only the reviewed exception's day cell |
//! | anything else in the audit log: employees, mappings, shifts, roster, policies, sites, sign-off, reopen | the whole month |
//! | time alone (every [`CHECK_EVERY`]) | the device watermarks are read again and only cells whose holding devices changed are redone (incomplete flags); sites, devices, policies, employees, mappings and shifts are read too and compared, so a change that writes no audit record (a terminal moved to another site) also leads to a whole recompute |
//! | nothing for [`REBUILD_EVERY`] | the whole month (a safety net) |
//!
//! For a signed-off month the frozen grid never changes; new punches of the month are appended to its
//! "arrived after sign-off" list.
//!
//! The cached month equals [`monthly::month`] computed at the same moment (the test `cache_equals_fresh_month`
//! applies random changes and compares after each step), except `computed_at`, which is when the cache last
//! changed it.
//!
//! A page that must answer in bounded time asks with [`MonthCache::month_within`]: the month is computed in a task
//! of its own and the page waits for it at most a given time, then says it is being computed; a later ask waits
//! for the same computation (one per month: the slot's lock serialises them anyway) and gets its month, or its
//! error.
//!
//! Depends on `attendance` and `store` only; no HTTP. Used by `GET /api/v1/attendance/month` (JSON, CSV, XLSX)
//! and the review pages of the web UI.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDate, Utc};

use super::monthly::{self, Basis, ExceptionRow, Inputs, LatePunch, Month};
use super::rules::{self, RulePunch};
use super::setup::{AttError, AttResult};
use super::watermark;
use crate::domain::Device;
use crate::store::attendance::{
    AttendancePunch, Employee, PinMapping, PolicySetting, ShiftDef, Site,
};
use crate::store::Store;

/// How often the watermarks (incomplete days) and the facts that write no audit record are read again.
pub const CHECK_EVERY: chrono::TimeDelta = chrono::TimeDelta::seconds(30);

/// How long a month is kept up to date piece by piece before it is computed whole again (a safety net for
/// changes no marker shows, e.g. a PostgreSQL punch id committed after a higher one).
pub const REBUILD_EVERY: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// How many months are kept (a site-month of 10,000 employees is tens of megabytes).
pub const MAX_ENTRIES: usize = 4;

/// More new punches than this since the last look: the month is computed whole instead.
const PUNCH_PAGE: usize = 20_000;

/// More new audit entries than this since the last look: the month is computed whole instead.
const AUDIT_PAGE: usize = 64;

/// What the cache did, for tests and benchmarks (counts since it was made).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Months computed whole.
    pub full: u64,
    /// Employee-days recomputed piece by piece (rules run on them).
    pub days: u64,
    /// Day cells redone for a review or a watermark change (no rules run).
    pub cells: u64,
    /// New punches taken in.
    pub punches: u64,
    /// Requests answered without any store read beyond the markers.
    pub hits: u64,
}

/// The facts a month depends on that are compared, not tracked through the audit log.
#[derive(PartialEq)]
struct Facts {
    sites: Vec<Site>,
    devices: Vec<(String, Option<String>)>,
    policies: Vec<PolicySetting>,
    employees: Vec<Employee>,
    mappings: Vec<PinMapping>,
    shifts: Vec<ShiftDef>,
}

impl Facts {
    async fn load(store: &dyn Store) -> AttResult<(Facts, Vec<Device>)> {
        let devices = store.list_devices().await?;
        let facts = Facts {
            sites: store.list_sites().await?,
            devices: devices
                .iter()
                .map(|d| (d.sn.as_str().to_owned(), d.site.clone()))
                .collect(),
            policies: store.list_policies().await?,
            employees: store.list_employees().await?,
            mappings: store.list_mappings().await?,
            shifts: store.list_shifts().await?,
        };
        Ok((facts, devices))
    }
}

/// A signed-off month: what new punches are checked against.
struct Signed {
    inputs: Inputs,
    window: (DateTime<Utc>, DateTime<Utc>),
    dates: Vec<NaiveDate>,
    max_punch_id: i64,
}

enum Basis2 {
    Open(Box<Basis>),
    Signed(Box<Signed>),
}

struct Entry {
    month: Arc<Month>,
    basis: Basis2,
    facts: Facts,
    seen_punch: i64,
    seen_audit: i64,
    checked_at: DateTime<Utc>,
    built_at: DateTime<Utc>,
}

type Slot = Arc<tokio::sync::Mutex<Option<Entry>>>;

/// The kept months: (site, month), the slot, when it was last used (a tick).
type Slots = Vec<((String, String), Slot, u64)>;

/// A month asked for by [`MonthCache::month_within`], computed in a task of its own: its result once there.
type Background = tokio::sync::watch::Receiver<Option<AttResult<Arc<Month>>>>;

/// Computed months by (site, `YYYY-MM`), kept up to date. One per instance (`App::month_cache`), shared by the
/// JSON API and the web UI.
#[derive(Default)]
pub struct MonthCache {
    slots: Mutex<Slots>,
    uses: std::sync::atomic::AtomicU64,
    stats: Mutex<CacheStats>,
    /// Months being computed (or computed and not yet asked for again) for [`MonthCache::month_within`], by
    /// (site, month): so a page that did not wait finds the same computation, and its error, on the next ask.
    background: Mutex<HashMap<(String, String), Background>>,
}

/// A month's slot held as if it were being computed ([`MonthCache::hold`], tests only): a computation of that
/// month waits until this is dropped.
#[cfg(test)]
pub(crate) struct Held(#[allow(dead_code)] tokio::sync::OwnedMutexGuard<Option<Entry>>);

enum Step {
    Done,
    Rebuild,
}

impl MonthCache {
    /// The month of `site` (`YYYY-MM`) as of `now`, from the cache brought up to date (see the module doc).
    ///
    /// Errors: those of [`monthly::month`] (unknown site, bad month, store failure). A failure leaves no entry
    /// behind: the next request computes the month whole.
    pub async fn month(
        &self,
        store: &dyn Store,
        site: &str,
        month: &str,
        now: DateTime<Utc>,
    ) -> AttResult<Arc<Month>> {
        monthly::parse_month(month)?;
        let slot = self.slot(site, month);
        let mut guard = slot.lock().await;
        let result = match guard.as_mut() {
            Some(entry) if now - entry.built_at < REBUILD_EVERY => {
                match self.refresh(store, entry, now).await {
                    Ok(Step::Done) => Ok(entry.month.clone()),
                    Ok(Step::Rebuild) => Err(None),
                    Err(e) => Err(Some(e)),
                }
            }
            _ => Err(None),
        };
        match result {
            Ok(m) => Ok(m),
            Err(e) => {
                *guard = None;
                if let Some(e) = e {
                    return Err(e);
                }
                let entry = self.build(store, site, month, now).await?;
                let m = entry.month.clone();
                *guard = Some(entry);
                Ok(m)
            }
        }
    }

    /// [`MonthCache::month`], waiting for it at most `wait`: `Ok(None)` when it is still being computed then.
    ///
    /// The month is computed (or brought up to date) in a task of its own, which goes on after `wait`. A call for
    /// the same month while it runs waits for that computation (again at most `wait`) instead of starting another,
    /// and once it is done the next call gets its result: the month, or its error (handed out once; the call after
    /// an error computes again). A month computed earlier that nobody asked for since is not handed out as it was:
    /// it is asked of the cache again, which brings it up to date as [`MonthCache::month`] does.
    ///
    /// Errors: those of [`MonthCache::month`], also when the computation ran in the background for an earlier call.
    pub async fn month_within(
        self: &Arc<Self>,
        store: &Arc<dyn Store>,
        site: &str,
        month: &str,
        now: DateTime<Utc>,
        wait: std::time::Duration,
    ) -> AttResult<Option<Arc<Month>>> {
        monthly::parse_month(month)?;
        let key = (site.to_owned(), month.to_owned());
        let mut rx = {
            let mut background = self.lock_background();
            // Months computed and not asked for again go (the cache holds them); errors stay until asked for.
            background.retain(|k, rx| *k == key || !matches!(*rx.borrow(), Some(Ok(_))));
            let earlier = background.get(&key).and_then(|rx| {
                rx.borrow()
                    .as_ref()
                    .map(|done| done.as_ref().err().cloned())
            });
            match earlier {
                Some(Some(error)) => {
                    background.remove(&key);
                    return Err(error);
                }
                Some(None) => {
                    background.remove(&key);
                }
                None => {}
            }
            match background.get(&key) {
                Some(running) => running.clone(),
                None => {
                    let (tx, rx) = tokio::sync::watch::channel(None);
                    let (cache, store) = (self.clone(), store.clone());
                    let (site, month) = key.clone();
                    tokio::spawn(async move {
                        let result = cache.month(store.as_ref(), &site, &month, now).await;
                        tx.send_replace(Some(result));
                    });
                    background.insert(key.clone(), rx.clone());
                    rx
                }
            }
        };
        let done = match tokio::time::timeout(wait, rx.wait_for(Option::is_some)).await {
            Err(_still_computing) => return Ok(None),
            Ok(Ok(done)) => done.clone(),
            // The task ended without a result (it panicked).
            Ok(Err(_)) => None,
        };
        {
            let mut background = self.lock_background();
            if background.get(&key).is_some_and(|b| b.same_channel(&rx)) {
                background.remove(&key);
            }
        }
        match done {
            Some(result) => result.map(Some),
            None => Err(AttError::Store(crate::store::StoreError::Backend(format!(
                "computing the month {month} of {site} ended without a result"
            )))),
        }
    }

    /// Hold a month's slot as a computation does (tests only): [`MonthCache::month`] of that month waits until
    /// the returned guard is dropped.
    #[cfg(test)]
    pub(crate) async fn hold(&self, site: &str, month: &str) -> Held {
        Held(self.slot(site, month).lock_owned().await)
    }

    /// Forget every month of a site (the next request computes it whole).
    pub fn forget_site(&self, site: &str) {
        self.lock_slots().retain(|((s, _), _, _)| s != site);
    }

    /// What the cache did so far.
    pub fn stats(&self) -> CacheStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count(&self, f: impl FnOnce(&mut CacheStats)) {
        f(&mut self.stats.lock().unwrap_or_else(|e| e.into_inner()));
    }

    fn lock_slots(&self) -> std::sync::MutexGuard<'_, Slots> {
        // A panic while holding the lock leaves a list that is still consistent (single pushes and removes).
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_background(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Background>> {
        // Single inserts and removes: consistent even after a panic elsewhere.
        self.background.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn slot(&self, site: &str, month: &str) -> Slot {
        let tick = self.uses.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut slots = self.lock_slots();
        if let Some(s) = slots
            .iter_mut()
            .find(|((s, m), _, _)| s == site && m == month)
        {
            s.2 = tick;
            return s.1.clone();
        }
        while slots.len() >= MAX_ENTRIES {
            let Some(oldest) = slots
                .iter()
                .enumerate()
                .min_by_key(|(_, s)| s.2)
                .map(|(i, _)| i)
            else {
                break;
            };
            slots.remove(oldest);
        }
        let slot = Slot::default();
        slots.push(((site.to_owned(), month.to_owned()), slot.clone(), tick));
        slot
    }

    /// Compute a month whole. The markers are read first, so whatever arrives while it loads is taken in by
    /// the next refresh (punches above the marker are left out of the load).
    async fn build(
        &self,
        store: &dyn Store,
        site: &str,
        month: &str,
        now: DateTime<Utc>,
    ) -> AttResult<Entry> {
        let (_, _, dates) = monthly::parse_month(month)?;
        let seen_punch = store.max_punch_id().await?;
        let seen_audit = newest_audit(store).await?;
        let (facts, _) = Facts::load(store).await?;
        let (basis, m) = match store.get_signoff(site, month).await? {
            Some(signoff) => {
                let mut m = monthly::month(store, site, month, now).await?;
                m.arrived_after_signoff.retain(|p| p.id <= seen_punch);
                let inputs = monthly::load_inputs(store, site, now).await?;
                let window = monthly::window(&inputs, &dates);
                let signed = Signed {
                    inputs,
                    window,
                    dates,
                    max_punch_id: signoff.max_punch_id,
                };
                (Basis2::Signed(Box::new(signed)), m)
            }
            None => {
                let basis = Basis::load(store, site, &dates, now, seen_punch).await?;
                let m = basis.assemble(month, now)?;
                (Basis2::Open(Box::new(basis)), m)
            }
        };
        self.count(|s| s.full += 1);
        Ok(Entry {
            month: Arc::new(m),
            basis,
            facts,
            seen_punch,
            seen_audit,
            checked_at: now,
            built_at: now,
        })
    }

    /// Catch an entry up with the store.
    async fn refresh(
        &self,
        store: &dyn Store,
        entry: &mut Entry,
        now: DateTime<Utc>,
    ) -> AttResult<Step> {
        let max_punch = store.max_punch_id().await?;
        let audit = newest_audit(store).await?;
        let check = now - entry.checked_at >= CHECK_EVERY;
        if max_punch == entry.seen_punch && audit == entry.seen_audit && !check {
            self.count(|s| s.hits += 1);
            return Ok(Step::Done);
        }
        if audit != entry.seen_audit {
            if let Step::Rebuild = self.audit_changes(store, entry, audit).await? {
                return Ok(Step::Rebuild);
            }
        }
        if max_punch != entry.seen_punch {
            if let Step::Rebuild = self.new_punches(store, entry, max_punch).await? {
                return Ok(Step::Rebuild);
            }
        }
        if check {
            if let Step::Rebuild = self.check(store, entry, now).await? {
                return Ok(Step::Rebuild);
            }
        }
        Arc::make_mut(&mut entry.month).computed_at = now;
        Ok(Step::Done)
    }

    /// Audit entries since the marker: corrections and reviews are followed, the rest rebuilds.
    async fn audit_changes(
        &self,
        store: &dyn Store,
        entry: &mut Entry,
        newest: i64,
    ) -> AttResult<Step> {
        let list = store.list_audit(AUDIT_PAGE).await?;
        let new: Vec<_> = list.iter().filter(|a| a.id > entry.seen_audit).collect();
        if new.len() == list.len() && list.len() == AUDIT_PAGE {
            return Ok(Step::Rebuild);
        }
        let (mut corrections, mut reviews) = (false, false);
        for a in &new {
            match a.record.action.as_str() {
                "correction.add" | "correction.revoke" => corrections = true,
                "exception.review" => reviews = true,
                _ => return Ok(Step::Rebuild),
            }
        }
        entry.seen_audit = newest.max(new.iter().map(|a| a.id).max().unwrap_or(0));
        let Basis2::Open(basis) = &mut entry.basis else {
            // A signed-off month's grid is frozen: corrections and reviews need a reopen first.
            return Ok(Step::Done);
        };
        let month = Arc::make_mut(&mut entry.month);
        let (first, next) = month_range(&basis.dates)?;
        if corrections {
            let list = store.list_corrections(first, next).await?;
            let old: HashMap<i64, &crate::store::attendance::Correction> =
                basis.corrections.iter().map(|c| (c.id, c)).collect();
            let listed: HashSet<i64> = list.iter().map(|c| c.id).collect();
            if list.iter().any(|c| old.get(&c.id).is_some_and(|o| *o != c)) {
                return Ok(Step::Rebuild);
            }
            // New corrections and revoked ones (gone from the list) touch their employee's days.
            let revoked = old.values().copied().filter(|c| !listed.contains(&c.id));
            let mut touched: BTreeSet<String> = BTreeSet::new();
            for c in list
                .iter()
                .filter(|c| !old.contains_key(&c.id))
                .chain(revoked)
            {
                touched.insert(c.employee_code.clone());
                if let Some(id) = c.punch_id {
                    if let Some(owner) = basis
                        .punches
                        .iter()
                        .find(|(_, ps)| ps.iter().any(|p| p.id == id))
                        .map(|(code, _)| code.clone())
                    {
                        touched.insert(owner);
                    }
                }
            }
            basis.set_corrections(list);
            let (Some(&a), Some(&b)) = (basis.dates.first(), basis.dates.last()) else {
                return Ok(Step::Rebuild);
            };
            for code in touched {
                self.update_days(basis, month, &code, &[(a, b)])?;
            }
        }
        if reviews {
            let old = std::mem::take(&mut basis.reviews);
            basis.set_reviews(store.list_reviews(first, next).await?);
            let mut changed: BTreeSet<(String, NaiveDate)> = BTreeSet::new();
            for (k, v) in &basis.reviews {
                if old.get(k) != Some(v) {
                    changed.insert((k.0.clone(), k.1));
                }
            }
            for k in old.keys() {
                if !basis.reviews.contains_key(k) {
                    changed.insert((k.0.clone(), k.1));
                }
            }
            for (code, date) in changed {
                self.redo_cell(basis, month, &code, date, None);
            }
        }
        Ok(Step::Done)
    }

    /// Punches stored since the marker, up to `max_punch`.
    async fn new_punches(
        &self,
        store: &dyn Store,
        entry: &mut Entry,
        max_punch: i64,
    ) -> AttResult<Step> {
        let devices = match &entry.basis {
            Basis2::Open(b) => b.inputs.devices.clone(),
            Basis2::Signed(s) => s.inputs.devices.clone(),
        };
        let punches = store
            .punches_after_id(devices, entry.seen_punch, max_punch, PUNCH_PAGE)
            .await?;
        if punches.len() >= PUNCH_PAGE {
            return Ok(Step::Rebuild);
        }
        entry.seen_punch = max_punch;
        self.count(|s| s.punches += punches.len() as u64);
        let month = Arc::make_mut(&mut entry.month);
        match &mut entry.basis {
            Basis2::Signed(signed) => {
                let zone = signed.inputs.rules.zone;
                for p in &punches {
                    let d = p.punched_at_utc.with_timezone(&zone).date_naive();
                    if p.id > signed.max_punch_id
                        && p.punched_at_utc >= signed.window.0
                        && p.punched_at_utc < signed.window.1
                        && signed.dates.first().is_some_and(|f| d >= *f)
                        && signed.dates.last().is_some_and(|l| d <= *l)
                    {
                        month.arrived_after_signoff.push(LatePunch {
                            id: p.id,
                            device_sn: p.device_sn.as_str().to_owned(),
                            pin: p.pin.0.clone(),
                            employee_code: signed
                                .inputs
                                .resolver
                                .resolve(p.device_sn.as_str(), p.pin.as_str())
                                .map(str::to_owned),
                            punched_at_utc: p.punched_at_utc,
                            received_at: p.received_at,
                        });
                    }
                }
            }
            Basis2::Open(basis) => {
                // Per employee: the punches before, to see which double taps the new ones change.
                let mut before: HashMap<String, HashMap<i64, bool>> = HashMap::new();
                let mut new_ids: HashMap<String, Vec<i64>> = HashMap::new();
                let mut unmapped = false;
                let readable: Vec<AttendancePunch> = punches
                    .iter()
                    .map(AttendancePunch::from)
                    .filter(|p| basis.reads(p))
                    .collect();
                for p in &readable {
                    let code = basis
                        .inputs
                        .resolver
                        .resolve(p.device_sn.as_str(), &p.pin)
                        .map(str::to_owned);
                    if let Some(code) = &code {
                        if !before.contains_key(code) {
                            let taps = taps(basis, &basis.employee_punches(code));
                            before.insert(code.clone(), taps);
                        }
                    }
                    match basis.add_punch(p) {
                        Some(code) => new_ids.entry(code).or_default().push(p.id),
                        None => unmapped = true,
                    }
                }
                for (code, ids) in new_ids {
                    let punches = basis.employee_punches(&code);
                    let after = taps(basis, &punches);
                    let old = before.remove(&code).unwrap_or_default();
                    let mut dates: BTreeSet<NaiveDate> = BTreeSet::new();
                    for p in &punches {
                        let changed = ids.contains(&p.id) || old.get(&p.id) != after.get(&p.id);
                        if changed {
                            let local = p.at.with_timezone(&basis.inputs.rules.zone).date_naive();
                            for d in [local.pred_opt(), Some(local), local.succ_opt()]
                                .into_iter()
                                .flatten()
                            {
                                dates.insert(d);
                            }
                        }
                    }
                    let ranges = ranges(&basis.dates, &dates);
                    self.update_days(basis, month, &code, &ranges)?;
                }
                if unmapped {
                    month.unmapped = basis.unmapped();
                }
            }
        }
        Ok(Step::Done)
    }

    /// Every [`CHECK_EVERY`]: compare the facts, then redo the cells whose holding devices changed.
    async fn check(
        &self,
        store: &dyn Store,
        entry: &mut Entry,
        now: DateTime<Utc>,
    ) -> AttResult<Step> {
        let (facts, devices) = Facts::load(store).await?;
        if facts != entry.facts {
            return Ok(Step::Rebuild);
        }
        entry.checked_at = now;
        let Basis2::Open(basis) = &mut entry.basis else {
            return Ok(Step::Done);
        };
        let site_devices: Vec<Device> = devices
            .into_iter()
            .filter(|d| d.site.as_deref() == Some(basis.site.as_str()))
            .collect();
        let marks = watermark::watermarks(store, &site_devices, now).await?;
        if marks == basis.inputs.watermarks {
            return Ok(Step::Done);
        }
        basis.inputs.watermarks = marks;
        let month = Arc::make_mut(&mut entry.month);
        month.watermarks = basis.inputs.watermarks.clone();
        let mut redo: Vec<(String, NaiveDate, Vec<String>)> = Vec::new();
        for row in &month.employees {
            for cell in &row.days {
                let held = basis.held_by(cell.result.closes_at);
                if held != cell.held_by {
                    redo.push((row.code.clone(), cell.result.date, held));
                }
            }
        }
        for (code, date, held) in redo {
            self.redo_cell(basis, month, &code, date, Some(held));
        }
        Ok(Step::Done)
    }

    /// Recompute an employee's days in `ranges` (dates of the month) through the rules; a new row when the
    /// employee has none yet.
    fn update_days(
        &self,
        basis: &Basis,
        month: &mut Month,
        code: &str,
        ranges: &[(NaiveDate, NaiveDate)],
    ) -> AttResult<()> {
        let Ok(ei) = basis
            .inputs
            .employees
            .binary_search_by(|e| e.code.as_str().cmp(code))
        else {
            // Not an employee (any more): the month shows no row for it.
            return Ok(());
        };
        let e = &basis.inputs.employees[ei];
        let ri = match month
            .employees
            .binary_search_by(|r| r.code.as_str().cmp(code))
        {
            Ok(ri) if !basis.has_row(e) => {
                // Its row came only from a punch HR added, now revoked: the month shows no row for it.
                let row = month.employees.remove(ri);
                month.incomplete_days -= row.totals.incomplete_days;
                splice(month, code, None, Vec::new());
                return Ok(());
            }
            Ok(ri) => ri,
            Err(at) => {
                if !basis.has_row(e) {
                    return Ok(());
                }
                let (row, exceptions) = basis.row(e)?;
                self.count(|s| s.days += row.days.len() as u64);
                month.incomplete_days += row.totals.incomplete_days;
                month.employees.insert(at, row);
                splice(month, code, None, exceptions);
                return Ok(());
            }
        };
        let punches = basis.employee_punches(code);
        let Some(&first) = basis.dates.first() else {
            return Ok(());
        };
        for &(a, b) in ranges {
            let results = basis.day_results(e, &punches, a, b)?;
            self.count(|s| s.days += results.len() as u64);
            let mut exceptions = Vec::new();
            let row = &mut month.employees[ri];
            for r in results {
                let di = (r.date - first).num_days() as usize;
                row.days[di] = basis.cell(code, r, &mut exceptions);
            }
            splice(month, code, Some((a, b)), exceptions);
        }
        let row = &mut month.employees[ri];
        let old = row.totals.incomplete_days;
        row.totals = monthly::totals(&row.days);
        month.incomplete_days = month.incomplete_days - old + row.totals.incomplete_days;
        Ok(())
    }

    /// Redo one day cell from its kept result (a review or the holding devices changed; no rules run).
    fn redo_cell(
        &self,
        basis: &Basis,
        month: &mut Month,
        code: &str,
        date: NaiveDate,
        held: Option<Vec<String>>,
    ) {
        let Ok(ri) = month
            .employees
            .binary_search_by(|r| r.code.as_str().cmp(code))
        else {
            return;
        };
        let Some(di) = basis
            .dates
            .first()
            .map(|f| (date - *f).num_days())
            .and_then(|d| usize::try_from(d).ok())
            .filter(|d| *d < basis.dates.len())
        else {
            return;
        };
        self.count(|s| s.cells += 1);
        let row = &mut month.employees[ri];
        let old = &row.days[di];
        let held = held.unwrap_or_else(|| old.held_by.clone());
        let mut exceptions = Vec::new();
        row.days[di] = basis.cell_held(code, old.result.clone(), held, &mut exceptions);
        let before = row.totals.incomplete_days;
        row.totals = monthly::totals(&row.days);
        month.incomplete_days = month.incomplete_days - before + row.totals.incomplete_days;
        splice(month, code, Some((date, date)), exceptions);
    }
}

/// Replace the exceptions of an employee's dates `a ..= b` (all dates with `None`); the list is by employee
/// code, then date.
fn splice(
    month: &mut Month,
    code: &str,
    dates: Option<(NaiveDate, NaiveDate)>,
    exceptions: Vec<ExceptionRow>,
) {
    let (a, b) = dates.unwrap_or((NaiveDate::MIN, NaiveDate::MAX));
    fn key(x: &ExceptionRow) -> (&str, NaiveDate) {
        (x.employee_code.as_str(), x.date)
    }
    let lo = month.exceptions.partition_point(|x| key(x) < (code, a));
    let hi = month.exceptions.partition_point(|x| key(x) <= (code, b));
    month.exceptions.splice(lo..hi, exceptions);
}

/// Double-tap flags of an employee's punches, by punch id.
fn taps(basis: &Basis, punches: &[RulePunch]) -> HashMap<i64, bool> {
    let mut sorted: Vec<&RulePunch> = punches.iter().collect();
    sorted.sort_by_key(|p| (p.at, p.id));
    let flags = rules::double_taps(&basis.inputs.rules, &sorted);
    sorted.iter().map(|p| p.id).zip(flags).collect()
}

/// The dates of the month among `wanted`, as runs of consecutive dates.
fn ranges(month: &[NaiveDate], wanted: &BTreeSet<NaiveDate>) -> Vec<(NaiveDate, NaiveDate)> {
    let mut out: Vec<(NaiveDate, NaiveDate)> = Vec::new();
    for d in month.iter().filter(|d| wanted.contains(d)) {
        match out.last_mut() {
            Some((_, b)) if b.succ_opt() == Some(*d) => *b = *d,
            _ => out.push((*d, *d)),
        }
    }
    out
}

fn month_range(dates: &[NaiveDate]) -> AttResult<(NaiveDate, NaiveDate)> {
    match (dates.first(), dates.last()) {
        (Some(f), Some(l)) => Ok((*f, *l + chrono::Duration::days(1))),
        _ => Err(AttError::Invalid("a month without dates".into())),
    }
}

async fn newest_audit(store: &dyn Store) -> AttResult<i64> {
    Ok(store.list_audit(1).await?.first().map_or(0, |a| a.id))
}

#[cfg(test)]
#[path = "month_cache_tests.rs"]
mod tests;
