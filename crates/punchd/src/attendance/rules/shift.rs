//! Shifts and the plan of one employee-day.
//!
//! Defaults follow the field: check-in and check-out windows of ±2 h around the shift's start and end are the
//! convention of the vendor's own software (ZKTeco ZKTime/BioTime "check-in/check-out window"); the `absent_below`
//! and `half_day_below` thresholds have Frappe HR's semantics (Shift Type "Working Hours Threshold for Absent /
//! Half Day": worked hours below the threshold mark the day absent / half day, 0 disables).

use std::sync::Arc;

use chrono::{NaiveDate, NaiveTime};
use serde::{Deserialize, Serialize};

/// How a break is taken out of worked time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum BreakRule {
    /// Paid breaks: nothing is deducted, and break punches (states 2/3) are kept but not counted.
    None,
    /// Deduct `secs` automatically from a day's worked time when that worked time (before the deduction) is at
    /// least `min_worked_secs` (0 = always). Never below zero. Break punches (states 2/3) are then kept but not
    /// counted, so a break is never taken out twice.
    Deduct {
        /// Break length to deduct, seconds.
        secs: u32,
        /// Deduct only when worked time reaches this many seconds (e.g. 6 h = 21600); 0 = always.
        min_worked_secs: u32,
    },
    /// Breaks come from break punches: break-out (state 2) to break-in (state 3) is not worked time.
    Punches,
}

/// Where late (and early-exit) time is counted from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LateFrom {
    /// From the shift start (end, for early exit): 09:12 with 10 min grace on a 09:00 shift is 12 min late. The
    /// vendor software's convention.
    ShiftStart,
    /// From the end of the grace: 09:12 with 10 min grace on a 09:00 shift is 2 min late.
    GraceEnd,
}

/// How worked time is computed from a day's punches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum WorkedTime {
    /// Sum of every IN→OUT pair (Frappe HR "Every Valid Check-in and Check-out").
    EveryPair,
    /// From the first IN to the last OUT, minus break-punch intervals when breaks come from punches (Frappe HR
    /// "Alternating entries as IN and OUT during the same shift" is the other choice; this is its "first check-in
    /// and last check-out").
    FirstInLastOut,
}

/// How overtime is rounded to its block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OvertimeRounding {
    /// Down to a multiple of `rounding_secs` (the common payroll rule: started blocks are not paid).
    Down,
    /// To the nearest multiple (half up).
    Nearest,
    /// Up to a multiple.
    Up,
}

/// Overtime on a working day: worked time after the shift end (and optionally before its start). On weekly offs
/// and holidays the whole worked time is overtime, in its own bucket, with the same block, rounding and cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OvertimeRule {
    /// Also count worked time before the shift start.
    pub before_start: bool,
    /// Overtime below this many seconds is dropped (0 = any).
    pub min_block_secs: u32,
    /// Round to a multiple of this many seconds (0 or 1 = no rounding).
    pub rounding_secs: u32,
    /// Which way to round.
    pub rounding: OvertimeRounding,
    /// At most this many seconds a day (0 = no cap); more is cut to the cap and raises "overtime over cap".
    pub daily_cap_secs: u32,
}

impl Default for OvertimeRule {
    fn default() -> OvertimeRule {
        OvertimeRule {
            before_start: false,
            min_block_secs: 0,
            rounding_secs: 0,
            rounding: OvertimeRounding::Down,
            daily_cap_secs: 0,
        }
    }
}

/// A shift: when a working day starts and ends, and the rules for that day. Times are wall times in the site's
/// zone. An `end` before `start` means the shift ends the next day (overnight, e.g. 22:00–06:00), and its punches
/// belong to the day it started; `end == start` is refused by [`Shift::validate`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Shift {
    /// Name, unique per installation (`Day`, `Night`).
    pub name: String,
    /// Start, site wall time.
    #[schema(value_type = String, example = "09:00:00")]
    pub start: NaiveTime,
    /// End, site wall time; before `start` = overnight.
    #[schema(value_type = String, example = "18:00:00")]
    pub end: NaiveTime,
    /// An IN up to this many seconds after `start` is not late (inclusive: exactly at the grace is on time).
    pub grace_in_secs: u32,
    /// An OUT up to this many seconds before `end` is not an early exit (inclusive).
    pub grace_out_secs: u32,
    /// How breaks are taken out of worked time.
    pub break_rule: BreakRule,
    /// Punches from this many seconds before `start` belong to this shift (default 7200, ±2 h vendor convention);
    /// with the `schedule` policy, a punch within this many seconds of `start` is an IN.
    pub checkin_window_secs: u32,
    /// Punches up to this many seconds after `end` belong to this shift (default 7200); with the `schedule`
    /// policy, a punch within this many seconds of `end` is an OUT.
    pub checkout_window_secs: u32,
    /// Where late and early-exit time is counted from.
    pub late_from: LateFrom,
    /// Every pair or first IN to last OUT.
    pub worked_time: WorkedTime,
    /// Worked time below this many seconds marks the day absent (0 disables; Frappe HR semantics).
    pub absent_below_secs: u32,
    /// Worked time below this many seconds marks the day a half day (0 disables; Frappe HR semantics).
    pub half_day_below_secs: u32,
    /// Overtime rule.
    pub overtime: OvertimeRule,
}

/// Why a shift definition is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShiftError {
    /// Empty name.
    #[error("shift name is empty")]
    EmptyName,
    /// `start == end`: neither a day nor an overnight shift.
    #[error("shift {0:?} starts and ends at the same time")]
    ZeroLength(String),
    /// The windows around start and end overlap each other or reach the same shift a day later.
    #[error("shift {name:?}: check-in and check-out windows ({checkin_secs} s + {checkout_secs} s) leave no gap in 24 h around a {length_secs} s shift")]
    WindowsTooWide {
        /// Shift name.
        name: String,
        /// Check-in window, seconds.
        checkin_secs: u32,
        /// Check-out window, seconds.
        checkout_secs: u32,
        /// Shift length, seconds.
        length_secs: u32,
    },
    /// `half_day_below` set below `absent_below`.
    #[error("shift {0:?}: half_day_below is below absent_below")]
    Thresholds(String),
}

impl Shift {
    /// A shift with the defaults: no grace, no break, ±2 h windows, late from the shift start, every pair,
    /// thresholds disabled, overtime only after the end without block, rounding or cap.
    pub fn new(name: &str, start: NaiveTime, end: NaiveTime) -> Shift {
        Shift {
            name: name.to_string(),
            start,
            end,
            grace_in_secs: 0,
            grace_out_secs: 0,
            break_rule: BreakRule::None,
            checkin_window_secs: 7200,
            checkout_window_secs: 7200,
            late_from: LateFrom::ShiftStart,
            worked_time: WorkedTime::EveryPair,
            absent_below_secs: 0,
            half_day_below_secs: 0,
            overtime: OvertimeRule::default(),
        }
    }

    /// The shift ends the next day.
    pub fn is_overnight(&self) -> bool {
        self.end <= self.start
    }

    /// Nominal length in seconds by the wall clock (a DST change on the day makes the real length an hour
    /// more or less; day results use real instants).
    pub fn length_secs(&self) -> u32 {
        let secs = (self.end - self.start).num_seconds();
        (if secs <= 0 { secs + 86_400 } else { secs }) as u32
    }

    /// Check the definition: a name, a non-zero length, windows that leave a gap before the same shift the next
    /// day, and half-day threshold not below the absent one (when both are set).
    pub fn validate(&self) -> Result<(), ShiftError> {
        if self.name.trim().is_empty() {
            return Err(ShiftError::EmptyName);
        }
        if self.start == self.end {
            return Err(ShiftError::ZeroLength(self.name.clone()));
        }
        let length_secs = self.length_secs();
        if u64::from(length_secs)
            + u64::from(self.checkin_window_secs)
            + u64::from(self.checkout_window_secs)
            >= 86_400
        {
            return Err(ShiftError::WindowsTooWide {
                name: self.name.clone(),
                checkin_secs: self.checkin_window_secs,
                checkout_secs: self.checkout_window_secs,
                length_secs,
            });
        }
        if self.absent_below_secs > 0
            && self.half_day_below_secs > 0
            && self.half_day_below_secs < self.absent_below_secs
        {
            return Err(ShiftError::Thresholds(self.name.clone()));
        }
        Ok(())
    }
}

/// What kind of day an employee-day is, from the roster (the caller resolves shifts, weekly offs, holidays,
/// leave and per-date overrides into this).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DayKind {
    /// A working day with its shift (shared: a month of days points at a few shifts).
    Working(Arc<Shift>),
    /// A working day without a shift: the day runs from the site's day-change time; no late, early exit,
    /// thresholds or overtime.
    WorkingNoShift,
    /// The employee's weekly off: worked time is overtime in the off-day bucket.
    WeeklyOff,
    /// A holiday (the name is shown): worked time is overtime in the off-day bucket.
    Holiday(String),
    /// Approved leave (the leave type is shown): never absent.
    Leave(String),
}

/// One employee-day to compute: the date and what the roster says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayPlan {
    /// The working day (a site-local date; an overnight shift's start date).
    pub date: NaiveDate,
    /// Working, weekly off, holiday or leave.
    pub kind: DayKind,
    /// The employee is active on this date (not inactive, not before joining, not after leaving). When false the
    /// day's status is `inactive`, never absent, and any punch raises "inactive employee punch".
    pub employee_active: bool,
}

impl DayPlan {
    /// An active working day with a shift.
    pub fn working(date: NaiveDate, shift: Arc<Shift>) -> DayPlan {
        DayPlan {
            date,
            kind: DayKind::Working(shift),
            employee_active: true,
        }
    }

    /// The shift, on a working day that has one.
    pub fn shift(&self) -> Option<&Shift> {
        match &self.kind {
            DayKind::Working(shift) => Some(shift),
            _ => None,
        }
    }
}
