//! One employee's punches become working days: assignment, double taps, classification, pairing, status,
//! late/early/overtime and exceptions.

use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::policy::{PolicyChoice, PunchStatePolicy};
use super::shift::{
    BreakRule, DayKind, DayPlan, LateFrom, OvertimeRounding, OvertimeRule, Shift, WorkedTime,
};
use super::{RulePunch, SiteRules};
use crate::domain::DeviceSn;

/// What a working day was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DayKindName {
    /// A working day (with or without a shift).
    Working,
    /// Weekly off.
    WeeklyOff,
    /// Holiday.
    Holiday,
    /// Leave.
    Leave,
}

/// A day's status in the month grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DayStatus {
    /// Worked (or seen, with an open missing-IN/OUT exception), at or above the half-day threshold.
    Present,
    /// No counted punch on a working day, or worked time below `absent_below`.
    Absent,
    /// Worked time below `half_day_below`.
    HalfDay,
    /// Weekly off (worked time, if any, is off-day overtime).
    WeeklyOff,
    /// Holiday (worked time, if any, is off-day overtime).
    Holiday,
    /// Leave.
    Leave,
    /// The employee was not active on the date (inactive, not yet joined, or left).
    Inactive,
    /// Not every device of the site has delivered past the day's end yet. Never set by the rules: the caller
    /// sets it from device watermarks and [`DayResult::closes_at`].
    Incomplete,
}

/// What a punch counted as on its working day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PunchRole {
    /// Check-in.
    In,
    /// Check-out.
    Out,
    /// Leaves for a break (punch state 2, with breaks taken from punches).
    BreakOut,
    /// Back from a break (punch state 3).
    BreakIn,
    /// Kept and shown, not counted: a double tap, a voided punch, a punch outside the shift, a punch between
    /// the first and the last under `first-last`, or a break punch when breaks are deducted automatically.
    NotCounted,
}

/// A punch of a working day, with what it counted as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClassifiedPunch {
    /// The punch's id ([`RulePunch::id`]).
    pub id: i64,
    /// The terminal.
    #[schema(value_type = String)]
    pub device_sn: DeviceSn,
    /// The instant, UTC.
    pub at: DateTime<Utc>,
    /// The instant as a wall time in the site's zone.
    #[schema(value_type = String, example = "2026-11-02T08:58:12")]
    pub at_local: NaiveDateTime,
    /// The punch state code as sent.
    pub punch_state: Option<u16>,
    /// What it counted as.
    pub role: PunchRole,
    /// Within the double-tap interval of the person's previous counted punch (on any device).
    pub double_tap: bool,
    /// Outside every shift's windows (assigned to the day by the day-change time).
    pub outside_shift: bool,
    /// Added by an HR correction.
    pub added_by_correction: bool,
    /// Voided by an HR correction.
    pub voided: bool,
}

/// The kinds of exception the rules raise (the caller adds `unmapped PIN` and `incomplete`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum ExceptionKind {
    /// An OUT without an IN before it (or only OUTs).
    MissingIn,
    /// An IN without an OUT after it (forgot to punch out).
    MissingOut,
    /// Exactly one counted punch on the day.
    SinglePunch,
    /// An odd number (3 or more) of counted punches.
    OddPunchCount,
    /// First IN after start + grace-in.
    Late,
    /// Last OUT before end − grace-out.
    EarlyExit,
    /// A punch outside every shift window.
    OutsideShift,
    /// A double tap (kept, not counted).
    DoubleTap,
    /// A punch by an employee who is not active on the date (inactive, not joined yet, or left).
    InactiveEmployee,
    /// Overtime beyond the daily cap (cut to the cap).
    OvertimeOverCap,
}

impl ExceptionKind {
    /// Every kind, in order.
    pub const ALL: [ExceptionKind; 10] = [
        ExceptionKind::MissingIn,
        ExceptionKind::MissingOut,
        ExceptionKind::SinglePunch,
        ExceptionKind::OddPunchCount,
        ExceptionKind::Late,
        ExceptionKind::EarlyExit,
        ExceptionKind::OutsideShift,
        ExceptionKind::DoubleTap,
        ExceptionKind::InactiveEmployee,
        ExceptionKind::OvertimeOverCap,
    ];

    /// The kebab-case name, as in JSON (`missing-in`, `late`, …).
    pub fn name(self) -> &'static str {
        match self {
            ExceptionKind::MissingIn => "missing-in",
            ExceptionKind::MissingOut => "missing-out",
            ExceptionKind::SinglePunch => "single-punch",
            ExceptionKind::OddPunchCount => "odd-punch-count",
            ExceptionKind::Late => "late",
            ExceptionKind::EarlyExit => "early-exit",
            ExceptionKind::OutsideShift => "outside-shift",
            ExceptionKind::DoubleTap => "double-tap",
            ExceptionKind::InactiveEmployee => "inactive-employee",
            ExceptionKind::OvertimeOverCap => "overtime-over-cap",
        }
    }
}

/// Something on a working day HR must look at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DayException {
    /// What.
    pub kind: ExceptionKind,
    /// The punches concerned (may be empty, e.g. for a missing IN without any punch to point at).
    pub punch_ids: Vec<i64>,
    /// Seconds involved where the kind has a measure (late and early-exit seconds, uncapped overtime), else 0.
    pub secs: i64,
}

/// The result of one employee-day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DayResult {
    /// The working day (site-local date; an overnight shift's start date).
    #[schema(value_type = String, example = "2026-11-02")]
    pub date: NaiveDate,
    /// What kind of day the roster said.
    pub kind: DayKindName,
    /// The shift's name, on a working day with a shift.
    pub shift: Option<String>,
    /// Holiday name or leave type.
    pub note: Option<String>,
    /// The policy the day was classified with.
    pub policy: PunchStatePolicy,
    /// Status.
    pub status: DayStatus,
    /// The first IN, UTC.
    pub first_in: Option<DateTime<Utc>>,
    /// The last OUT, UTC.
    pub last_out: Option<DateTime<Utc>>,
    /// Worked seconds (pairs or first-IN-to-last-OUT, breaks taken out), real elapsed time: a DST night
    /// counts the hour it really had.
    pub worked_secs: i64,
    /// Break seconds taken out of worked time (punched or deducted).
    pub break_secs: i64,
    /// Late seconds (0 when not late).
    pub late_secs: i64,
    /// Early-exit seconds (0 when not early).
    pub early_exit_secs: i64,
    /// Overtime seconds on a working day (after block, rounding and cap).
    pub overtime_secs: i64,
    /// Overtime seconds on a weekly off or holiday: the whole worked time (after block, rounding and cap).
    pub overtime_off_day_secs: i64,
    /// Every punch assigned to the day, counted or not, in time order.
    pub punches: Vec<ClassifiedPunch>,
    /// Exceptions, in [`ExceptionKind`] order.
    pub exceptions: Vec<DayException>,
    /// The working day's first instant: punches from here on can belong to it (shift start − check-in window,
    /// or the day-change time).
    pub opens_at: DateTime<Utc>,
    /// The working day's end: no punch after this instant can belong to it (shift end + check-out window, or the
    /// next day-change time). The day is final once every device of the site has delivered past it.
    pub closes_at: DateTime<Utc>,
}

impl DayResult {
    /// Has an exception of this kind.
    pub fn has(&self, kind: ExceptionKind) -> bool {
        self.exceptions
            .iter()
            .any(|exception| exception.kind == kind)
    }
}

/// The UTC range of punches [`compute_days`] needs for these plans: from the first day's opening to the last
/// day's close, with a day of margin each side (for double taps across the edge). Load the employee's punches in
/// `[from, to)` and pass them all. `None` for no plans.
pub fn fetch_window(site: &SiteRules, plans: &[DayPlan]) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let spans: Vec<Span> = plans.iter().map(|plan| Span::of(site, plan)).collect();
    let from = spans.iter().map(|span| span.opens_at).min()?;
    let to = spans.iter().map(|span| span.closes_at).max()?;
    Some((from - TimeDelta::days(1), to + TimeDelta::days(1)))
}

/// Compute one employee's working days.
///
/// `punches` are all the employee's punches around the planned days (any order; see [`fetch_window`]);
/// `plans` are the days wanted (any order, one per date). Returns one [`DayResult`] per plan, in date order.
/// Punches that belong to a day not in `plans` are left out, and so is a punch outside the first (last) planned
/// day's shift before (after) it, since it may belong to the unplanned neighbour's shift. For exact edges (a
/// weekly off right after an unplanned overnight shift), plan the day before the first wanted day too and drop
/// its result.
///
/// Steps, in order:
/// 1. **Double taps**: in time order, a punch within `double_tap_secs` (inclusive) of the person's previous
///    counted punch, on any device, is marked and not counted. Voided punches and punches added by a correction
///    are never double taps, and never the "previous" one for a double tap.
/// 2. **Working day**: a punch belongs to the shift whose span (start − check-in window … end + check-out window,
///    in real instants in the site's zone) contains it; an overnight shift's punches belong to the day it
///    started. Where two spans hold it, the shift with the nearer start or end wins. Otherwise it belongs to the
///    site-local date of (its local time − the day-change time); on a working day with a shift it is then
///    "outside shift" (kept, not counted). Local times come from the UTC instant, so a terminal whose clock is set
///    to another zone, and DST change days, land right.
/// 3. **Classification** with the [`PunchStatePolicy`] of the device of the day's first counted punch.
/// 4. **Pairing**: IN opens work, OUT closes it, break-out closes it and break-in reopens it. An OUT without an open
///    IN is "missing IN"; an IN while one is open, or an open IN at the end, is "missing OUT". Worked time is the
///    sum of pairs or first IN to last OUT (minus punched breaks), minus an automatic break deduction.
/// 5. **Status, late, early exit, overtime** from the shift (see [`Shift`]): overtime is regular work after the
///    shift's end (and before its start when configured) plus, under the `device` policy, every overtime pair
///    (an overtime-in, state 4, to the next OUT) whole; late and early exit look at the regular IN and OUT (overtime
///    punches only when there are no others). Thresholds apply only when the
///    punches pair up: a day with a missing IN/OUT is `present` with the exception open, never a silent zero or
///    full day.
pub fn compute_days(
    site: &SiteRules,
    policy: &PolicyChoice,
    punches: &[RulePunch],
    plans: &[DayPlan],
) -> Vec<DayResult> {
    compute_days_in(site, policy, punches, plans, NaiveDate::MIN, NaiveDate::MAX)
}

/// [`compute_days`], computing only the planned days with `first <= date <= last`; the other plans are context
/// (the working day a punch belongs to is decided among every planned day, as in [`compute_days`]).
///
/// A day's result depends only on the plans of the dates up to three days either side of it and on the whole
/// punch sequence (double taps), so with plans for `first − 3 … last + 3` and every punch of the employee, the
/// results for `first … last` equal those of [`compute_days`] over a longer plan (the month cache,
/// `attendance::month_cache`, recomputes single days that way).
pub fn compute_days_in(
    site: &SiteRules,
    policy: &PolicyChoice,
    punches: &[RulePunch],
    plans: &[DayPlan],
    first: NaiveDate,
    last: NaiveDate,
) -> Vec<DayResult> {
    let mut order: Vec<usize> = (0..plans.len()).collect();
    order.sort_by_key(|&plan_idx| plans[plan_idx].date);
    let spans: Vec<Span> = order
        .iter()
        .map(|&plan_idx| Span::at(site, &plans[plan_idx], plan_idx))
        .collect();

    let mut sorted: Vec<&RulePunch> = punches.iter().collect();
    sorted.sort_by_key(|punch| (punch.at, punch.id));

    // Step 1 and 2: double taps over the whole sequence, then one working day per punch.
    let taps = double_taps(site, &sorted);
    // One list for all days, grouped by day (a stable sort keeps time order within a day): one allocation per
    // employee rather than one per day (a month of 10,000 employees computes 300,000 days).
    let mut assigned: Vec<(usize, Assigned)> = Vec::with_capacity(sorted.len());
    for (punch, double_tap) in sorted.into_iter().zip(taps) {
        if let Some((span_idx, outside_shift)) = assign(site, &spans, punch.at) {
            if (first..=last).contains(&spans[span_idx].date) {
                assigned.push((
                    span_idx,
                    Assigned {
                        punch,
                        double_tap,
                        outside_shift,
                    },
                ));
            }
        }
    }
    assigned.sort_by_key(|(span_idx, _)| *span_idx);
    // Where each day's punches start in the list.
    let mut starts = vec![0usize; spans.len() + 1];
    for (span_idx, _) in &assigned {
        starts[span_idx + 1] += 1;
    }
    for i in 0..spans.len() {
        starts[i + 1] += starts[i];
    }
    let assigned: Vec<Assigned> = assigned.into_iter().map(|(_, a)| a).collect();

    spans
        .iter()
        .enumerate()
        .filter(|(_, span)| (first..=last).contains(&span.date))
        .map(|(span_idx, span)| {
            compute_day(
                site,
                policy,
                &plans[span.plan_idx],
                span,
                &assigned[starts[span_idx]..starts[span_idx + 1]],
            )
        })
        .collect()
}

/// Step 1 of [`compute_days`]: for punches sorted by `(at, id)`, whether each is a double tap (within
/// `double_tap_secs`, inclusive, of the person's previous counted punch, on any device). Voided punches and
/// punches added by a correction are never double taps, and never the previous punch of one.
pub fn double_taps(site: &SiteRules, sorted: &[&RulePunch]) -> Vec<bool> {
    let double_tap_secs = i64::from(site.double_tap_secs);
    let mut last_counted: Option<DateTime<Utc>> = None;
    sorted
        .iter()
        .map(|punch| {
            if punch.voided || punch.added_by_correction {
                return false;
            }
            match last_counted {
                Some(previous) if (punch.at - previous).num_seconds() <= double_tap_secs => true,
                _ => {
                    last_counted = Some(punch.at);
                    false
                }
            }
        })
        .collect()
}

/// A planned day's real extent.
#[derive(Debug, Clone)]
struct Span {
    plan_idx: usize,
    date: NaiveDate,
    /// Shift start and end as instants, on a working day with a shift.
    shift_at: Option<(DateTime<Utc>, DateTime<Utc>)>,
    opens_at: DateTime<Utc>,
    closes_at: DateTime<Utc>,
}

impl Span {
    fn of(site: &SiteRules, plan: &DayPlan) -> Span {
        Span::at(site, plan, 0)
    }

    fn at(site: &SiteRules, plan: &DayPlan, plan_idx: usize) -> Span {
        match plan.shift() {
            Some(shift) => {
                let start_at = local_to_utc(&site.zone, plan.date.and_time(shift.start));
                let end_date = if shift.is_overnight() {
                    next_day(plan.date)
                } else {
                    plan.date
                };
                let end_at = local_to_utc(&site.zone, end_date.and_time(shift.end));
                Span {
                    plan_idx,
                    date: plan.date,
                    shift_at: Some((start_at, end_at)),
                    opens_at: start_at - TimeDelta::seconds(i64::from(shift.checkin_window_secs)),
                    closes_at: end_at + TimeDelta::seconds(i64::from(shift.checkout_window_secs)),
                }
            }
            None => Span {
                plan_idx,
                date: plan.date,
                shift_at: None,
                opens_at: local_to_utc(&site.zone, plan.date.and_time(site.day_change)),
                closes_at: local_to_utc(&site.zone, next_day(plan.date).and_time(site.day_change)),
            },
        }
    }
}

fn next_day(date: NaiveDate) -> NaiveDate {
    date.succ_opt().unwrap_or(date)
}

/// A site wall time as an instant. In a DST overlap (the hour that happens twice) the earlier instant; in a DST
/// gap (the hour that does not exist) the wall time read with the offset before the gap (02:30 on a spring-forward
/// night at 02:00 is 03:30 new time).
fn local_to_utc(zone: &Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match zone.from_local_datetime(&local) {
        LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => at.with_timezone(&Utc),
        LocalResult::None => {
            let hour = TimeDelta::hours(1);
            match zone.from_local_datetime(&(local - hour)) {
                LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => {
                    at.with_timezone(&Utc) + hour
                }
                // Gaps longer than an hour do not occur in the zone database today; read as UTC rather than fail.
                LocalResult::None => Utc.from_utc_datetime(&local),
            }
        }
    }
}

/// The day a punch belongs to: `(index in spans, outside_shift)`.
fn assign(site: &SiteRules, spans: &[Span], at: DateTime<Utc>) -> Option<(usize, bool)> {
    let local = at.with_timezone(&site.zone).naive_local();
    let local_date = local.date();
    // Shift spans are shorter than a day (Shift::validate), so only the neighbouring dates can hold the punch.
    let first = local_date.pred_opt().unwrap_or(local_date);
    let last = next_day(local_date);
    let from = spans.partition_point(|span| span.date < first);
    let mut best: Option<(usize, i64)> = None;
    for (span_idx, span) in spans.iter().enumerate().skip(from) {
        if span.date > last {
            break;
        }
        let Some((start_at, end_at)) = span.shift_at else {
            continue;
        };
        if at < span.opens_at || at >= span.closes_at {
            continue;
        }
        let distance = (at - start_at)
            .num_seconds()
            .abs()
            .min((at - end_at).num_seconds().abs());
        if best.is_none_or(|(_, best_distance)| distance < best_distance) {
            best = Some((span_idx, distance));
        }
    }
    if let Some((span_idx, _)) = best {
        return Some((span_idx, false));
    }
    let day = (local - (site.day_change - chrono::NaiveTime::MIN)).date();
    let span_idx = spans.binary_search_by_key(&day, |span| span.date).ok()?;
    let span = &spans[span_idx];
    if span.shift_at.is_some() {
        // Before this shift opens, the punch may be the unplanned previous day's (its overnight shift); after it
        // closes, the unplanned next day's. Only between two planned days is it surely outside every shift.
        let planned = |date: Option<NaiveDate>| {
            date.is_some_and(|date| spans.binary_search_by_key(&date, |s| s.date).is_ok())
        };
        if at < span.opens_at && !planned(span.date.pred_opt())
            || at >= span.closes_at && !planned(span.date.succ_opt())
        {
            return None;
        }
    }
    Some((span_idx, span.shift_at.is_some()))
}

#[derive(Debug, Clone, Copy)]
struct Assigned<'a> {
    punch: &'a RulePunch,
    double_tap: bool,
    outside_shift: bool,
}

fn compute_day(
    site: &SiteRules,
    policy_choice: &PolicyChoice,
    plan: &DayPlan,
    span: &Span,
    assigned: &[Assigned<'_>],
) -> DayResult {
    let shift = plan.shift();
    let mut punches: Vec<ClassifiedPunch> = assigned
        .iter()
        .map(|assigned| ClassifiedPunch {
            id: assigned.punch.id,
            device_sn: assigned.punch.device_sn.clone(),
            at: assigned.punch.at,
            at_local: assigned.punch.at.with_timezone(&site.zone).naive_local(),
            punch_state: assigned.punch.punch_state,
            role: PunchRole::NotCounted,
            double_tap: assigned.double_tap,
            outside_shift: assigned.outside_shift,
            added_by_correction: assigned.punch.added_by_correction,
            voided: assigned.punch.voided,
        })
        .collect();
    // The punches that count, as indices into `punches`.
    let candidates: Vec<usize> = (0..punches.len())
        .filter(|&idx| {
            !punches[idx].voided && !punches[idx].double_tap && !punches[idx].outside_shift
        })
        .collect();
    let policy = candidates.first().map_or(policy_choice.site, |&idx| {
        policy_choice.for_device(&punches[idx].device_sn)
    });

    // Break punches: delimit breaks, or kept and not counted when breaks are paid or deducted.
    let break_rule = shift.map_or(BreakRule::Punches, |shift| shift.break_rule);
    let breaks_from_punches = break_rule == BreakRule::Punches;
    classify(
        policy,
        breaks_from_punches,
        span.shift_at,
        &candidates,
        &mut punches,
    );

    let mut exceptions: Vec<DayException> = Vec::new();
    let mut raise = |kind: ExceptionKind, punch_ids: Vec<i64>, secs: i64| {
        exceptions.push(DayException {
            kind,
            punch_ids,
            secs,
        });
    };

    // Pairing.
    let mut work: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    let mut breaks: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    let mut open: Option<(i64, DateTime<Utc>)> = None;
    let mut on_break: Option<(i64, DateTime<Utc>)> = None;
    let mut missing_in: Vec<i64> = Vec::new();
    let mut missing_out: Vec<i64> = Vec::new();
    // Overtime punches (states 4 overtime-in / 5 overtime-out) under the `device` policy: a pair opened by an
    // overtime-in is overtime as a whole, wherever it lies (see "Overtime" below). Other policies distrust the
    // state key, so they have no overtime pairs.
    let trusts_states = policy == PunchStatePolicy::Device;
    let mut open_overtime = false;
    let mut overtime_pairs: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    for punch in punches
        .iter()
        .filter(|punch| punch.role != PunchRole::NotCounted)
    {
        match punch.role {
            PunchRole::In => {
                if let Some((open_id, _)) = open {
                    missing_out.push(open_id);
                }
                on_break = None;
                open = Some((punch.id, punch.at));
                open_overtime = trusts_states && punch.punch_state == Some(4);
            }
            PunchRole::BreakIn => match (open, on_break) {
                (_, Some((_, break_at))) => {
                    breaks.push((break_at, punch.at));
                    on_break = None;
                    open = Some((punch.id, punch.at));
                    open_overtime = false;
                }
                (None, None) => {
                    open = Some((punch.id, punch.at));
                    open_overtime = false;
                }
                (Some(_), None) => {} // back from a break that was not punched: still at work
            },
            PunchRole::BreakOut => {
                match open.take() {
                    Some((_, open_at)) => {
                        work.push((open_at, punch.at));
                        if open_overtime {
                            overtime_pairs.push((open_at, punch.at));
                        }
                    }
                    None => missing_in.push(punch.id),
                }
                on_break = Some((punch.id, punch.at));
                open_overtime = false;
            }
            PunchRole::Out => {
                match open.take() {
                    Some((_, open_at)) => {
                        work.push((open_at, punch.at));
                        if open_overtime {
                            overtime_pairs.push((open_at, punch.at));
                        }
                    }
                    None if on_break.is_some() => {} // left from the break: the break-out closed the work
                    None => missing_in.push(punch.id),
                }
                on_break = None;
                open_overtime = false;
            }
            PunchRole::NotCounted => {}
        }
    }
    if let Some((open_id, _)) = open {
        missing_out.push(open_id);
    }
    if let Some((break_id, _)) = on_break {
        // The day ends on a break-out: the person never checked out.
        missing_out.push(break_id);
    }

    // Late and early exit look at the regular IN and OUT: overtime punches only when there are no others.
    let is_overtime =
        |punch: &&ClassifiedPunch| trusts_states && matches!(punch.punch_state, Some(4 | 5));
    let first_in = punches
        .iter()
        .find(|punch| punch.role == PunchRole::In && !is_overtime(punch))
        .or_else(|| punches.iter().find(|punch| punch.role == PunchRole::In))
        .map(|punch| (punch.id, punch.at));
    let last_out = punches
        .iter()
        .rev()
        .find(|punch| punch.role == PunchRole::Out && !is_overtime(punch))
        .or_else(|| {
            punches
                .iter()
                .rev()
                .find(|punch| punch.role == PunchRole::Out)
        })
        .map(|punch| (punch.id, punch.at));
    let worked_time = shift.map_or(WorkedTime::EveryPair, |shift| shift.worked_time);
    if worked_time == WorkedTime::FirstInLastOut && policy != PunchStatePolicy::FirstLast {
        // The span from the first IN to the last OUT of any kind (overtime punches included).
        let any_in = punches
            .iter()
            .find(|punch| punch.role == PunchRole::In)
            .map(|punch| (punch.id, punch.at));
        let any_out = punches
            .iter()
            .rev()
            .find(|punch| punch.role == PunchRole::Out)
            .map(|punch| (punch.id, punch.at));
        work = match (any_in, any_out) {
            (Some((_, in_at)), Some((_, out_at))) if out_at > in_at => {
                subtract(in_at, out_at, &breaks)
            }
            _ => Vec::new(),
        };
    }
    let mut worked_secs: i64 = work
        .iter()
        .map(|(from, to)| (*to - *from).num_seconds())
        .sum();
    let mut break_secs: i64 = breaks
        .iter()
        .map(|(from, to)| (*to - *from).num_seconds())
        .sum();
    if let BreakRule::Deduct {
        secs,
        min_worked_secs,
    } = break_rule
    {
        if worked_secs > 0 && worked_secs >= i64::from(min_worked_secs) {
            let deducted = i64::from(secs).min(worked_secs);
            worked_secs -= deducted;
            break_secs += deducted;
        }
    }

    // Exceptions about the punches themselves.
    if !missing_in.is_empty() {
        raise(ExceptionKind::MissingIn, missing_in.clone(), 0);
    }
    if !missing_out.is_empty() {
        raise(ExceptionKind::MissingOut, missing_out.clone(), 0);
    }
    if candidates.len() == 1 {
        raise(
            ExceptionKind::SinglePunch,
            vec![punches[candidates[0]].id],
            0,
        );
    }
    if candidates.len() >= 3 && candidates.len() % 2 == 1 {
        raise(
            ExceptionKind::OddPunchCount,
            candidates.iter().map(|&idx| punches[idx].id).collect(),
            0,
        );
    }
    let outside: Vec<i64> = punches
        .iter()
        .filter(|p| p.outside_shift && !p.voided)
        .map(|p| p.id)
        .collect();
    if !outside.is_empty() {
        raise(ExceptionKind::OutsideShift, outside, 0);
    }
    let double_taps: Vec<i64> = punches
        .iter()
        .filter(|p| p.double_tap)
        .map(|p| p.id)
        .collect();
    if !double_taps.is_empty() {
        raise(ExceptionKind::DoubleTap, double_taps, 0);
    }
    if !plan.employee_active {
        let seen: Vec<i64> = punches.iter().filter(|p| !p.voided).map(|p| p.id).collect();
        if !seen.is_empty() {
            raise(ExceptionKind::InactiveEmployee, seen, 0);
        }
    }

    // Late and early exit.
    let mut late_secs = 0;
    let mut early_exit_secs = 0;
    if let (Some(shift), Some((start_at, end_at))) = (shift, span.shift_at) {
        if let Some((in_id, in_at)) = first_in {
            let grace_end = start_at + TimeDelta::seconds(i64::from(shift.grace_in_secs));
            if in_at > grace_end {
                let from = if shift.late_from == LateFrom::ShiftStart {
                    start_at
                } else {
                    grace_end
                };
                late_secs = (in_at - from).num_seconds();
                raise(ExceptionKind::Late, vec![in_id], late_secs);
            }
        }
        if let Some((out_id, out_at)) = last_out {
            let grace_start = end_at - TimeDelta::seconds(i64::from(shift.grace_out_secs));
            if out_at < grace_start {
                let to = if shift.late_from == LateFrom::ShiftStart {
                    end_at
                } else {
                    grace_start
                };
                early_exit_secs = (to - out_at).num_seconds();
                raise(ExceptionKind::EarlyExit, vec![out_id], early_exit_secs);
            }
        }
    }

    // Overtime.
    let mut overtime_secs = 0;
    let mut overtime_off_day_secs = 0;
    match (&plan.kind, shift, span.shift_at) {
        (DayKind::Working(_), Some(shift), Some((start_at, end_at))) => {
            // Regular work counts after the shift's end (and before its start when configured); an overtime pair
            // (overtime-in … out, `device` policy) counts whole, and is not counted twice.
            let regular: Vec<(DateTime<Utc>, DateTime<Utc>)> = work
                .iter()
                .flat_map(|&(from, to)| subtract(from, to, &overtime_pairs))
                .collect();
            let mut raw = overlap(&regular, end_at, None)
                + overtime_pairs
                    .iter()
                    .map(|(from, to)| (*to - *from).num_seconds())
                    .sum::<i64>();
            if shift.overtime.before_start {
                raw += overlap(&regular, start_at - TimeDelta::days(2), Some(start_at));
            }
            let (secs, uncapped) = apply_overtime(raw, &shift.overtime);
            overtime_secs = secs;
            if let Some(uncapped) = uncapped {
                raise(ExceptionKind::OvertimeOverCap, Vec::new(), uncapped);
            }
        }
        (DayKind::WeeklyOff | DayKind::Holiday(_), _, _) => {
            let (secs, uncapped) = apply_overtime(worked_secs, &site.off_day_overtime);
            overtime_off_day_secs = secs;
            if let Some(uncapped) = uncapped {
                raise(ExceptionKind::OvertimeOverCap, Vec::new(), uncapped);
            }
        }
        _ => {}
    }

    let unpaired = !missing_in.is_empty() || !missing_out.is_empty();
    let (kind, note) = match &plan.kind {
        DayKind::Working(_) | DayKind::WorkingNoShift => (DayKindName::Working, None),
        DayKind::WeeklyOff => (DayKindName::WeeklyOff, None),
        DayKind::Holiday(name) => (DayKindName::Holiday, Some(name.clone())),
        DayKind::Leave(leave) => (DayKindName::Leave, Some(leave.clone())),
    };
    let status = if !plan.employee_active {
        DayStatus::Inactive
    } else {
        match &plan.kind {
            DayKind::WeeklyOff => DayStatus::WeeklyOff,
            DayKind::Holiday(_) => DayStatus::Holiday,
            DayKind::Leave(_) => DayStatus::Leave,
            DayKind::Working(_) | DayKind::WorkingNoShift if candidates.is_empty() => {
                DayStatus::Absent
            }
            DayKind::Working(_) | DayKind::WorkingNoShift if unpaired => DayStatus::Present,
            DayKind::Working(shift) => working_status(shift, worked_secs),
            DayKind::WorkingNoShift => DayStatus::Present,
        }
    };
    exceptions.sort_by_key(|exception| exception.kind);

    DayResult {
        date: plan.date,
        kind,
        shift: shift.map(|shift| shift.name.clone()),
        note,
        policy,
        status,
        first_in: first_in.map(|(_, at)| at),
        last_out: last_out.map(|(_, at)| at),
        worked_secs,
        break_secs,
        late_secs,
        early_exit_secs,
        overtime_secs,
        overtime_off_day_secs,
        punches,
        exceptions,
        opens_at: span.opens_at,
        closes_at: span.closes_at,
    }
}

/// Frappe HR's thresholds: below `absent_below` absent, below `half_day_below` half day; 0 disables either.
fn working_status(shift: &Shift, worked_secs: i64) -> DayStatus {
    if shift.absent_below_secs > 0 && worked_secs < i64::from(shift.absent_below_secs) {
        DayStatus::Absent
    } else if shift.half_day_below_secs > 0 && worked_secs < i64::from(shift.half_day_below_secs) {
        DayStatus::HalfDay
    } else {
        DayStatus::Present
    }
}

/// Give each candidate punch its role under `policy`.
fn classify(
    policy: PunchStatePolicy,
    breaks_from_punches: bool,
    shift_at: Option<(DateTime<Utc>, DateTime<Utc>)>,
    candidates: &[usize],
    punches: &mut [ClassifiedPunch],
) {
    let is_break_state = |punch: &ClassifiedPunch| matches!(punch.punch_state, Some(2) | Some(3));
    let break_role = |punch: &ClassifiedPunch| {
        if punch.punch_state == Some(2) {
            PunchRole::BreakOut
        } else {
            PunchRole::BreakIn
        }
    };
    if policy == PunchStatePolicy::Device {
        let mut at_work = false;
        for &idx in candidates {
            let punch = &mut punches[idx];
            punch.role = match punch.punch_state {
                Some(2) | Some(3) if !breaks_from_punches => PunchRole::NotCounted,
                Some(2) | Some(3) => break_role(punch),
                Some(0) | Some(4) => PunchRole::In,
                Some(1) | Some(5) => PunchRole::Out,
                _ if at_work => PunchRole::Out,
                _ => PunchRole::In,
            };
            match punch.role {
                PunchRole::In | PunchRole::BreakIn => at_work = true,
                PunchRole::Out | PunchRole::BreakOut => at_work = false,
                PunchRole::NotCounted => {}
            }
        }
        return;
    }
    // The other policies distrust the state key, except for break punches when breaks come from punches.
    let mut ordinary: Vec<usize> = Vec::with_capacity(candidates.len());
    for &idx in candidates {
        if breaks_from_punches && is_break_state(&punches[idx]) {
            punches[idx].role = break_role(&punches[idx]);
        } else {
            ordinary.push(idx);
        }
    }
    let nearer_end = |at: DateTime<Utc>| match shift_at {
        Some((start_at, end_at)) => {
            (at - end_at).num_seconds().abs() < (at - start_at).num_seconds().abs()
        }
        None => false,
    };
    match policy {
        PunchStatePolicy::Device => {}
        PunchStatePolicy::Alternating => {
            for (position, &idx) in ordinary.iter().enumerate() {
                punches[idx].role = if position % 2 == 0 {
                    PunchRole::In
                } else {
                    PunchRole::Out
                };
            }
        }
        PunchStatePolicy::Schedule if shift_at.is_some() => {
            let ins: Vec<usize> = ordinary
                .iter()
                .copied()
                .filter(|&idx| !nearer_end(punches[idx].at))
                .collect();
            let outs: Vec<usize> = ordinary
                .iter()
                .copied()
                .filter(|&idx| nearer_end(punches[idx].at))
                .collect();
            if let Some(&idx) = ins.first() {
                punches[idx].role = PunchRole::In;
            }
            if let Some(&idx) = outs.last() {
                punches[idx].role = PunchRole::Out;
            }
        }
        PunchStatePolicy::FirstLast | PunchStatePolicy::Schedule => match ordinary.as_slice() {
            [] => {}
            [only] => {
                punches[*only].role = if nearer_end(punches[*only].at) {
                    PunchRole::Out
                } else {
                    PunchRole::In
                };
            }
            [first, .., last] => {
                punches[*first].role = PunchRole::In;
                punches[*last].role = PunchRole::Out;
            }
        },
    }
}

/// `[from, to)` minus the break intervals inside it.
fn subtract(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    breaks: &[(DateTime<Utc>, DateTime<Utc>)],
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut pieces = Vec::new();
    let mut cursor = from;
    for &(break_from, break_to) in breaks {
        let break_from = break_from.max(cursor);
        let break_to = break_to.min(to);
        if break_to <= break_from {
            continue;
        }
        pieces.push((cursor, break_from));
        cursor = break_to;
    }
    if cursor < to {
        pieces.push((cursor, to));
    }
    pieces.retain(|(a, b)| b > a);
    pieces
}

/// Seconds of the intervals inside `[from, to)` (`to = None`: unbounded).
fn overlap(
    intervals: &[(DateTime<Utc>, DateTime<Utc>)],
    from: DateTime<Utc>,
    to: Option<DateTime<Utc>>,
) -> i64 {
    intervals
        .iter()
        .map(|&(a, b)| {
            let a = a.max(from);
            let b = match to {
                Some(to) => b.min(to),
                None => b,
            };
            (b - a).num_seconds().max(0)
        })
        .sum()
}

/// Minimum block, rounding, cap. Returns the overtime and, when the cap cut it, the amount before the cut.
fn apply_overtime(raw_secs: i64, rule: &OvertimeRule) -> (i64, Option<i64>) {
    if raw_secs <= 0 || raw_secs < i64::from(rule.min_block_secs) {
        return (0, None);
    }
    let unit = i64::from(rule.rounding_secs);
    let rounded = if unit > 1 {
        match rule.rounding {
            OvertimeRounding::Down => raw_secs - raw_secs % unit,
            OvertimeRounding::Nearest => (raw_secs + unit / 2) / unit * unit,
            OvertimeRounding::Up => (raw_secs + unit - 1) / unit * unit,
        }
    } else {
        raw_secs
    };
    let cap = i64::from(rule.daily_cap_secs);
    if cap > 0 && rounded > cap {
        (cap, Some(rounded))
    } else {
        (rounded, None)
    }
}
