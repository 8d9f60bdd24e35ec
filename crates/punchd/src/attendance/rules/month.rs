//! A month per employee: totals from day results, and the preview of a policy change.

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use super::day::{compute_days, DayResult, DayStatus};
use super::policy::PolicyChoice;
use super::shift::DayPlan;
use super::{RulePunch, SiteRules};

/// One employee's month in numbers (issue 7, step 5). Durations in seconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MonthTotals {
    /// Days present (half days not included).
    pub days_present: u32,
    /// Days absent.
    pub days_absent: u32,
    /// Half days.
    pub half_days: u32,
    /// Weekly offs.
    pub weekly_offs: u32,
    /// Holidays.
    pub holidays: u32,
    /// Leave days.
    pub leave_days: u32,
    /// Days the employee was not active.
    pub inactive_days: u32,
    /// Days still incomplete (set by the caller).
    pub incomplete_days: u32,
    /// Days late.
    pub late_count: u32,
    /// Late seconds in total.
    pub late_secs: i64,
    /// Days with an early exit.
    pub early_exit_count: u32,
    /// Early-exit seconds in total.
    pub early_exit_secs: i64,
    /// Worked seconds in total.
    pub worked_secs: i64,
    /// Overtime seconds on working days.
    pub overtime_secs: i64,
    /// Overtime seconds on weekly offs and holidays.
    pub overtime_off_day_secs: i64,
    /// Exceptions in total.
    pub exceptions: u32,
}

/// Sum day results into month totals. A day counts under its status; late and early-exit counts are days with
/// such an exception, whatever their status.
pub fn month_totals(days: &[DayResult]) -> MonthTotals {
    month_totals_shown(days.iter().map(|day| (day, day.status)))
}

/// [`month_totals`] counting each day under the status shown for it (the grid's: a correction's status, or
/// incomplete while a device has not delivered past the day), without copying the days.
pub fn month_totals_shown<'a>(
    days: impl IntoIterator<Item = (&'a DayResult, DayStatus)>,
) -> MonthTotals {
    let mut totals = MonthTotals::default();
    for (day, status) in days {
        match status {
            DayStatus::Present => totals.days_present += 1,
            DayStatus::Absent => totals.days_absent += 1,
            DayStatus::HalfDay => totals.half_days += 1,
            DayStatus::WeeklyOff => totals.weekly_offs += 1,
            DayStatus::Holiday => totals.holidays += 1,
            DayStatus::Leave => totals.leave_days += 1,
            DayStatus::Inactive => totals.inactive_days += 1,
            DayStatus::Incomplete => totals.incomplete_days += 1,
        }
        if day.late_secs > 0 {
            totals.late_count += 1;
            totals.late_secs += day.late_secs;
        }
        if day.early_exit_secs > 0 {
            totals.early_exit_count += 1;
            totals.early_exit_secs += day.early_exit_secs;
        }
        totals.worked_secs += day.worked_secs;
        totals.overtime_secs += day.overtime_secs;
        totals.overtime_off_day_secs += day.overtime_off_day_secs;
        totals.exceptions += day.exceptions.len() as u32;
    }
    totals
}

/// Every date of a month, or `None` for a month that does not exist.
pub fn month_dates(year: i32, month: u32) -> Option<Vec<NaiveDate>> {
    let first = NaiveDate::from_ymd_opt(year, month, 1)?;
    Some(
        first
            .iter_days()
            .take_while(|date| date.month() == month)
            .collect(),
    )
}

/// A day whose result differs between two policies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DayChange {
    /// The day under the current policy.
    pub before: DayResult,
    /// The day under the proposed policy.
    pub after: DayResult,
}

/// What changing the policy would change for one employee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PolicyPreview {
    /// Totals under the current policy.
    pub before: MonthTotals,
    /// Totals under the proposed policy.
    pub after: MonthTotals,
    /// The days that differ (status, times, exceptions or punch roles), in date order.
    pub changes: Vec<DayChange>,
}

/// Compute the same punches and days under the current and a proposed policy and report what changes.
pub fn preview(
    site: &SiteRules,
    current: &PolicyChoice,
    proposed: &PolicyChoice,
    punches: &[RulePunch],
    plans: &[DayPlan],
) -> PolicyPreview {
    let before = compute_days(site, current, punches, plans);
    let after = compute_days(site, proposed, punches, plans);
    let totals_before = month_totals(&before);
    let totals_after = month_totals(&after);
    let changes = before
        .into_iter()
        .zip(after)
        .filter(|(before, after)| differs(before, after))
        .map(|(before, after)| DayChange { before, after })
        .collect();
    PolicyPreview {
        before: totals_before,
        after: totals_after,
        changes,
    }
}

/// Everything but the policy's name.
fn differs(before: &DayResult, after: &DayResult) -> bool {
    before.status != after.status
        || before.first_in != after.first_in
        || before.last_out != after.last_out
        || before.worked_secs != after.worked_secs
        || before.break_secs != after.break_secs
        || before.late_secs != after.late_secs
        || before.early_exit_secs != after.early_exit_secs
        || before.overtime_secs != after.overtime_secs
        || before.overtime_off_day_secs != after.overtime_off_day_secs
        || before.exceptions != after.exceptions
        || before
            .punches
            .iter()
            .map(|punch| punch.role)
            .ne(after.punches.iter().map(|punch| punch.role))
}
