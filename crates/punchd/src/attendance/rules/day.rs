//! One employee's punches become working days: assignment, double taps, classification, pairing, status,
//! late/early/overtime and exceptions.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use super::policy::{PolicyChoice, PunchStatePolicy};
use super::shift::{DayKind, DayPlan};
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
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
        self.exceptions.iter().any(|exception| exception.kind == kind)
    }
}

/// The UTC range of punches [`compute_days`] needs for these plans: from the first day's opening to the last
/// day's close (with a day of margin each side, for double taps and neighbouring shifts). Load the employee's
/// punches in `[from, to)` and pass them all.
pub fn fetch_window(site: &SiteRules, plans: &[DayPlan]) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let _ = (site, plans);
    None
}

/// Compute one employee's working days.
///
/// `punches` are all the employee's punches around the planned days (any order; see [`fetch_window`]);
/// `plans` are the days wanted (any order, one per date). Returns one [`DayResult`] per plan, in date order.
/// Punches that belong to a day not in `plans` are left out.
pub fn compute_days(
    site: &SiteRules,
    policy: &PolicyChoice,
    punches: &[RulePunch],
    plans: &[DayPlan],
) -> Vec<DayResult> {
    let _ = (site, policy, punches, plans, DayKind::WeeklyOff);
    Vec::new()
}
