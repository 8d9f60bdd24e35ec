//! The attendance rules engine: pure functions from punches to working days and months.
//!
//! Nothing in here does IO, reads the clock, touches the store or awaits: the caller (the attendance plumbing)
//! loads punches, employees, shifts and roster, calls these functions, and stores or serves the results. That keeps
//! every rule testable with hand-computed punches (DESIGN.md, "pure functions over punches where it can be").
//!
//! Reading order:
//! - [`shift`]: a [`Shift`] (start, end, grace, break, windows, thresholds, overtime) and the [`DayPlan`] of one
//!   employee-day (working with a shift, weekly off, holiday, leave).
//! - [`policy`]: how a punch becomes IN or OUT ([`PunchStatePolicy`]: `device`, `first-last`, `alternating`,
//!   `schedule`).
//! - [`day`]: [`compute_days`] assigns an employee's punches to working days, marks double taps and punches
//!   outside every shift, classifies, pairs, and yields one [`DayResult`] per planned day.
//! - [`month`]: [`MonthTotals`] per employee from day results, and [`preview`] of a policy change.
//!
//! Units: durations are whole seconds (`*_secs`); instants are UTC (`DateTime<Utc>`); `*_local` values are wall
//! times in the site's IANA zone, never the terminal's own clock.

pub mod day;
pub mod month;
pub mod policy;
pub mod shift;

use chrono::{DateTime, NaiveTime, Utc};
use chrono_tz::Tz;

use crate::domain::DeviceSn;

pub use day::{
    compute_days, compute_days_in, double_taps, fetch_window, ClassifiedPunch, DayException,
    DayKindName, DayResult, DayStatus, ExceptionKind, PunchRole,
};
pub use month::{
    month_dates, month_totals, month_totals_shown, preview, DayChange, MonthTotals, PolicyPreview,
};
pub use policy::{PolicyChoice, PunchStatePolicy};
pub use shift::{
    BreakRule, DayKind, DayPlan, LateFrom, OvertimeRounding, OvertimeRule, Shift, ShiftError,
    WorkedTime,
};

/// One punch as the rules see it: the caller converts stored punches (and punches added by a correction) into these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulePunch {
    /// The store id of the punch (or of the correction that added it); carried into results and exceptions so
    /// HR can find the raw record.
    pub id: i64,
    /// The terminal that recorded it.
    pub device_sn: DeviceSn,
    /// The instant, UTC (the stored `punched_at_utc`): working days are derived from it in the site's zone, so a
    /// terminal whose clock is set to another zone still lands on the right day.
    pub at: DateTime<Utc>,
    /// The punch state code as sent (0 check-in, 1 check-out, 2 break-out, 3 break-in, 4 overtime-in,
    /// 5 overtime-out, others kept); `None` when the terminal sent none.
    pub punch_state: Option<u16>,
    /// Added by an HR correction, not recorded by a terminal. Never taken as a double tap.
    pub added_by_correction: bool,
    /// Voided by an HR correction: kept in the day's punch list, never counted.
    pub voided: bool,
}

/// Per-site settings the rules need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteRules {
    /// The site's IANA zone: local days, shift times and day-change time are wall times in this zone.
    pub zone: Tz,
    /// Without a shift, a working day runs from this local time to the same time the next day (default 00:00;
    /// e.g. 04:00 so that a late night still counts for the evening it started).
    pub day_change: NaiveTime,
    /// The same person punching again within this many seconds (inclusive), on any device, is a double tap: the
    /// later punch is kept, marked, and not counted (default 60).
    pub double_tap_secs: u32,
    /// Overtime rule for weekly offs and holidays (no shift to take it from): the whole worked time of such a
    /// day is overtime in the off-day bucket, with this rule's block, rounding and cap.
    pub off_day_overtime: OvertimeRule,
}

impl SiteRules {
    /// Defaults for a zone: day change at 00:00, double taps within 60 s, off-day overtime without block, rounding
    /// or cap.
    pub fn new(zone: Tz) -> SiteRules {
        SiteRules {
            zone,
            day_change: NaiveTime::MIN,
            double_tap_secs: 60,
            off_day_overtime: OvertimeRule::default(),
        }
    }
}

#[cfg(test)]
mod tests;
