//! Hand-computed cases for the rules engine. Site: Europe/Berlin (CET +01:00 in winter, CEST +02:00 in summer);
//! times written as site wall times and converted by `at`.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};

use super::*;

fn site() -> SiteRules {
    SiteRules::new(chrono_tz::Europe::Berlin)
}

/// A Berlin wall time (earlier instant when ambiguous).
fn at(local: &str) -> DateTime<Utc> {
    let local = NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M:%S").unwrap();
    chrono_tz::Europe::Berlin
        .from_local_datetime(&local)
        .earliest()
        .unwrap()
        .with_timezone(&Utc)
}

fn utc(instant: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(instant)
        .unwrap()
        .with_timezone(&Utc)
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn time(s: &str) -> NaiveTime {
    NaiveTime::parse_from_str(s, "%H:%M").unwrap()
}

fn sn(s: &str) -> DeviceSn {
    DeviceSn::parse(s).unwrap()
}

fn punch(id: i64, local: &str, state: u16) -> RulePunch {
    RulePunch {
        id,
        device_sn: sn("A"),
        at: at(local),
        punch_state: Some(state),
        added_by_correction: false,
        voided: false,
    }
}

fn day_shift() -> Shift {
    let mut shift = Shift::new("Day", time("09:00"), time("18:00"));
    shift.grace_in_secs = 600;
    shift.grace_out_secs = 300;
    shift
}

fn one_day(shift: Shift, day: &str, policy: PunchStatePolicy, punches: &[RulePunch]) -> DayResult {
    let plans = [DayPlan::working(date(day), Arc::new(shift))];
    let mut days = compute_days(&site(), &PolicyChoice::site(policy), punches, &plans);
    assert_eq!(days.len(), 1);
    days.remove(0)
}

fn kinds(day: &DayResult) -> Vec<ExceptionKind> {
    day.exceptions
        .iter()
        .map(|exception| exception.kind)
        .collect()
}

fn roles(day: &DayResult) -> Vec<PunchRole> {
    day.punches.iter().map(|punch| punch.role).collect()
}

#[test]
fn an_ordinary_day_is_present_with_the_minutes_after_the_end_as_overtime() {
    let punches = [
        punch(1, "2026-11-02 08:55:00", 0),
        punch(2, "2026-11-02 18:02:00", 1),
    ];
    let day = one_day(
        day_shift(),
        "2026-11-02",
        PunchStatePolicy::Device,
        &punches,
    );
    assert_eq!(day.status, DayStatus::Present);
    assert_eq!(day.first_in, Some(utc("2026-11-02T07:55:00Z")));
    assert_eq!(day.last_out, Some(utc("2026-11-02T17:02:00Z")));
    assert_eq!(day.worked_secs, 9 * 3600 + 7 * 60);
    assert_eq!(
        (day.late_secs, day.early_exit_secs, day.overtime_secs),
        (0, 0, 120)
    );
    assert!(day.exceptions.is_empty(), "{:?}", day.exceptions);
    assert_eq!(roles(&day), [PunchRole::In, PunchRole::Out]);
    assert_eq!(day.punches[0].at_local.to_string(), "2026-11-02 08:55:00");
    assert_eq!(day.opens_at, utc("2026-11-02T06:00:00Z"));
    assert_eq!(day.closes_at, utc("2026-11-02T19:00:00Z"));
}

#[test]
fn late_by_exactly_the_grace_is_on_time_and_one_second_more_is_late() {
    let on_time = one_day(
        day_shift(),
        "2026-11-02",
        PunchStatePolicy::Device,
        &[
            punch(1, "2026-11-02 09:10:00", 0),
            punch(2, "2026-11-02 17:55:00", 1),
        ],
    );
    assert_eq!((on_time.late_secs, on_time.early_exit_secs), (0, 0));
    assert!(on_time.exceptions.is_empty(), "{:?}", on_time.exceptions);

    let late_and_early = [
        punch(1, "2026-11-02 09:10:01", 0),
        punch(2, "2026-11-02 17:54:59", 1),
    ];
    let day = one_day(
        day_shift(),
        "2026-11-02",
        PunchStatePolicy::Device,
        &late_and_early,
    );
    // Counted from the shift start and end (the default).
    assert_eq!((day.late_secs, day.early_exit_secs), (601, 301));
    assert_eq!(kinds(&day), [ExceptionKind::Late, ExceptionKind::EarlyExit]);
    assert_eq!(day.exceptions[0].punch_ids, [1]);
    assert_eq!(day.exceptions[0].secs, 601);
    assert_eq!(day.exceptions[1].punch_ids, [2]);

    let mut from_grace = day_shift();
    from_grace.late_from = LateFrom::GraceEnd;
    let day = one_day(
        from_grace,
        "2026-11-02",
        PunchStatePolicy::Device,
        &late_and_early,
    );
    assert_eq!((day.late_secs, day.early_exit_secs), (1, 1));

    let totals = month_totals(&[day]);
    assert_eq!(
        (
            totals.late_count,
            totals.late_secs,
            totals.early_exit_count,
            totals.early_exit_secs
        ),
        (1, 1, 1, 1)
    );
}

#[test]
fn an_overnight_shift_crossing_the_month_end_belongs_to_the_day_it_started() {
    let night = Arc::new(Shift::new("Night", time("22:00"), time("06:00")));
    let punches = [
        punch(1, "2026-11-30 21:50:00", 0),
        punch(2, "2026-12-01 06:05:00", 1),
        punch(3, "2026-12-01 21:58:00", 0),
        punch(4, "2026-12-02 06:00:00", 1),
    ];
    let policy = PolicyChoice::site(PunchStatePolicy::FirstLast);
    let november = [DayPlan::working(date("2026-11-30"), night.clone())];
    let days = compute_days(&site(), &policy, &punches, &november);
    assert_eq!(days.len(), 1);
    assert_eq!(days[0].date, date("2026-11-30"));
    assert_eq!(
        days[0].punches.iter().map(|p| p.id).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(days[0].first_in, Some(at("2026-11-30 21:50:00")));
    assert_eq!(days[0].last_out, Some(at("2026-12-01 06:05:00")));
    assert_eq!(days[0].worked_secs, 8 * 3600 + 15 * 60);
    assert_eq!(days[0].overtime_secs, 300);
    assert_eq!(days[0].status, DayStatus::Present);

    // December alone: the 06:05 punch is not December's (it may be the unplanned 30 November's), so it is left out
    // rather than called "outside shift" on 1 December.
    let december = [DayPlan::working(date("2026-12-01"), night.clone())];
    let days = compute_days(&site(), &policy, &punches, &december);
    assert_eq!(
        days[0].punches.iter().map(|p| p.id).collect::<Vec<_>>(),
        [3, 4]
    );
    assert_eq!(days[0].worked_secs, 8 * 3600 + 2 * 60);
    assert!(days[0].exceptions.is_empty());
}

#[test]
fn dst_nights_count_their_real_hours() {
    let night = Shift::new("Night", time("22:00"), time("06:00"));
    // Spring forward, 2026-03-29 02:00 CET → 03:00 CEST: the night has 7 real hours.
    let spring = [
        punch(1, "2026-03-28 22:00:00", 0),
        punch(2, "2026-03-29 06:00:00", 1),
    ];
    let day = one_day(
        night.clone(),
        "2026-03-28",
        PunchStatePolicy::Device,
        &spring,
    );
    assert_eq!(day.punches[0].at, utc("2026-03-28T21:00:00Z"));
    assert_eq!(day.punches[1].at, utc("2026-03-29T04:00:00Z"));
    assert_eq!(day.worked_secs, 7 * 3600);
    assert_eq!(
        (day.late_secs, day.early_exit_secs, day.overtime_secs),
        (0, 0, 0)
    );
    // Fall back, 2026-10-25 03:00 CEST → 02:00 CET: 9 real hours.
    let fall = [
        punch(1, "2026-10-24 22:00:00", 0),
        punch(2, "2026-10-25 06:00:00", 1),
    ];
    let day = one_day(night, "2026-10-24", PunchStatePolicy::Device, &fall);
    assert_eq!(day.worked_secs, 9 * 3600);
    assert_eq!(
        (day.late_secs, day.early_exit_secs, day.overtime_secs),
        (0, 0, 0)
    );
    assert!(day.exceptions.is_empty());
    // A day shift on the spring-forward day: local 09:00 is 07:00 UTC (CEST).
    let day = one_day(
        day_shift(),
        "2026-03-29",
        PunchStatePolicy::Device,
        &[
            punch(1, "2026-03-29 09:00:00", 0),
            punch(2, "2026-03-29 18:00:00", 1),
        ],
    );
    assert_eq!(day.first_in, Some(utc("2026-03-29T07:00:00Z")));
    assert_eq!((day.worked_secs, day.late_secs), (9 * 3600, 0));
}

#[test]
fn a_terminal_clock_in_another_zone_lands_on_the_site_day() {
    // A terminal set to Europe/London punched 23:30 London on 2 Nov = 00:30 Berlin on 3 Nov. The caller stored the
    // instant (23:30Z); the site day is the 3rd.
    let mut site = site();
    site.day_change = NaiveTime::MIN;
    let plans = [
        DayPlan {
            date: date("2026-11-02"),
            kind: DayKind::WorkingNoShift,
            employee_active: true,
        },
        DayPlan {
            date: date("2026-11-03"),
            kind: DayKind::WorkingNoShift,
            employee_active: true,
        },
    ];
    let london = RulePunch {
        at: utc("2026-11-02T23:30:00Z"),
        ..punch(1, "2026-11-02 00:00:00", 0)
    };
    let days = compute_days(
        &site,
        &PolicyChoice::site(PunchStatePolicy::Device),
        &[london],
        &plans,
    );
    assert!(days[0].punches.is_empty());
    assert_eq!(
        days[1].punches[0].at_local.to_string(),
        "2026-11-03 00:30:00"
    );
}

#[test]
fn the_day_change_time_keeps_a_late_night_on_the_evening_it_started() {
    let mut site = site();
    site.day_change = time("04:00");
    let plans = [
        DayPlan {
            date: date("2026-11-02"),
            kind: DayKind::WorkingNoShift,
            employee_active: true,
        },
        DayPlan {
            date: date("2026-11-03"),
            kind: DayKind::WorkingNoShift,
            employee_active: true,
        },
    ];
    let punches = [
        punch(1, "2026-11-02 20:00:00", 0),
        punch(2, "2026-11-03 03:30:00", 1),
    ];
    let days = compute_days(
        &site,
        &PolicyChoice::site(PunchStatePolicy::Device),
        &punches,
        &plans,
    );
    assert_eq!(days[0].worked_secs, 7 * 3600 + 1800);
    assert_eq!(days[0].status, DayStatus::Present);
    assert_eq!(days[1].status, DayStatus::Absent);
    assert_eq!(days[0].closes_at, at("2026-11-03 04:00:00"));
}

#[test]
fn a_double_tap_on_two_devices_counts_once_and_is_marked() {
    let on_b = |id, local: &str, state| RulePunch {
        device_sn: sn("B"),
        ..punch(id, local, state)
    };
    let punches = [
        punch(1, "2026-11-02 08:58:00", 0),
        on_b(2, "2026-11-02 08:59:00", 0), // 60 s later: within the interval (inclusive)
        punch(3, "2026-11-02 18:00:00", 1),
        on_b(4, "2026-11-02 18:01:01", 1), // 61 s later: counted (an OUT after an OUT: missing IN)
    ];
    let day = one_day(
        day_shift(),
        "2026-11-02",
        PunchStatePolicy::Device,
        &punches,
    );
    assert!(day.punches[1].double_tap);
    assert!(!day.punches[3].double_tap);
    assert_eq!(
        roles(&day),
        [
            PunchRole::In,
            PunchRole::NotCounted,
            PunchRole::Out,
            PunchRole::Out
        ]
    );
    assert_eq!(day.worked_secs, 9 * 3600 + 2 * 60);
    assert_eq!(
        kinds(&day),
        [
            ExceptionKind::MissingIn,
            ExceptionKind::OddPunchCount,
            ExceptionKind::DoubleTap
        ]
    );
    assert_eq!(day.exceptions[2].punch_ids, [2]);
    assert_eq!(day.last_out, Some(at("2026-11-02 18:01:01")));
    // With first-last the fourth punch is simply the last OUT.
    let day = one_day(
        day_shift(),
        "2026-11-02",
        PunchStatePolicy::FirstLast,
        &punches,
    );
    assert_eq!(
        roles(&day),
        [
            PunchRole::In,
            PunchRole::NotCounted,
            PunchRole::NotCounted,
            PunchRole::Out
        ]
    );
    assert_eq!(day.overtime_secs, 61);
}

#[test]
fn a_left_employee_is_inactive_never_absent_and_their_punches_are_exceptions() {
    let day_shift = Arc::new(day_shift());
    let mut worked = DayPlan::working(date("2026-11-02"), day_shift.clone());
    let mut left = DayPlan::working(date("2026-11-03"), day_shift.clone());
    let mut after = DayPlan::working(date("2026-11-04"), day_shift);
    left.employee_active = false;
    after.employee_active = false;
    worked.employee_active = true;
    let punches = [
        punch(1, "2026-11-02 09:00:00", 0),
        punch(2, "2026-11-02 18:00:00", 1),
        punch(3, "2026-11-03 09:00:00", 0),
    ];
    let days = compute_days(
        &site(),
        &PolicyChoice::site(PunchStatePolicy::Device),
        &punches,
        &[worked, left, after],
    );
    assert_eq!(
        days.iter().map(|d| d.status).collect::<Vec<_>>(),
        [DayStatus::Present, DayStatus::Inactive, DayStatus::Inactive]
    );
    assert!(days[1].has(ExceptionKind::InactiveEmployee));
    assert_eq!(
        days[1]
            .exceptions
            .iter()
            .find(|e| e.kind == ExceptionKind::InactiveEmployee)
            .unwrap()
            .punch_ids,
        [3]
    );
    assert!(days[2].exceptions.is_empty());
    let totals = month_totals(&days);
    assert_eq!(
        (
            totals.days_present,
            totals.days_absent,
            totals.inactive_days
        ),
        (1, 0, 2)
    );
}

/// Four punches, all on the check-in key (a common mistake): the policies tell four different stories.
fn wrong_key_day() -> [RulePunch; 4] {
    [
        punch(1, "2026-11-02 08:55:00", 0),
        punch(2, "2026-11-02 12:30:00", 0),
        punch(3, "2026-11-02 13:15:00", 0),
        punch(4, "2026-11-02 18:05:00", 0),
    ]
}

#[test]
fn each_policy_on_the_same_punches() {
    use PunchRole::{In, NotCounted, Out};
    let device = one_day(
        day_shift(),
        "2026-11-02",
        PunchStatePolicy::Device,
        &wrong_key_day(),
    );
    assert_eq!(roles(&device), [In, In, In, In]);
    assert_eq!(device.worked_secs, 0);
    assert_eq!(
        device.status,
        DayStatus::Present,
        "seen, with open missing OUTs: never a silent absence"
    );
    assert_eq!(kinds(&device), [ExceptionKind::MissingOut]);
    assert_eq!(device.exceptions[0].punch_ids, [1, 2, 3, 4]);

    let first_last = one_day(
        day_shift(),
        "2026-11-02",
        PunchStatePolicy::FirstLast,
        &wrong_key_day(),
    );
    assert_eq!(roles(&first_last), [In, NotCounted, NotCounted, Out]);
    assert_eq!(
        (first_last.worked_secs, first_last.overtime_secs),
        (9 * 3600 + 600, 300)
    );
    assert!(first_last.exceptions.is_empty());

    let alternating = one_day(
        day_shift(),
        "2026-11-02",
        PunchStatePolicy::Alternating,
        &wrong_key_day(),
    );
    assert_eq!(roles(&alternating), [In, Out, In, Out]);
    assert_eq!(
        alternating.worked_secs,
        (3 * 3600 + 35 * 60) + (4 * 3600 + 50 * 60)
    );
    assert_eq!(alternating.overtime_secs, 300);

    let schedule = one_day(
        day_shift(),
        "2026-11-02",
        PunchStatePolicy::Schedule,
        &wrong_key_day(),
    );
    assert_eq!(roles(&schedule), [In, NotCounted, NotCounted, Out]);
    assert_eq!(schedule.worked_secs, 9 * 3600 + 600);

    // Where first-last and schedule part: two punches near the start.
    let near_start = [
        punch(1, "2026-11-02 08:55:00", 0),
        punch(2, "2026-11-02 09:20:00", 0),
    ];
    let first_last = one_day(
        day_shift(),
        "2026-11-02",
        PunchStatePolicy::FirstLast,
        &near_start,
    );
    assert_eq!(roles(&first_last), [In, Out]);
    assert_eq!(first_last.early_exit_secs, 8 * 3600 + 40 * 60);
    let schedule = one_day(
        day_shift(),
        "2026-11-02",
        PunchStatePolicy::Schedule,
        &near_start,
    );
    assert_eq!(roles(&schedule), [In, NotCounted]);
    assert_eq!(kinds(&schedule), [ExceptionKind::MissingOut]);
    assert_eq!(schedule.early_exit_secs, 0);

    // The preview of device → alternating shows that one day changing.
    let plans = [DayPlan::working(date("2026-11-02"), Arc::new(day_shift()))];
    let preview = preview(
        &site(),
        &PolicyChoice::site(PunchStatePolicy::Device),
        &PolicyChoice::site(PunchStatePolicy::Alternating),
        &wrong_key_day(),
        &plans,
    );
    assert_eq!(preview.changes.len(), 1);
    assert_eq!(preview.before.worked_secs, 0);
    assert_eq!(preview.after.worked_secs, 30300);
    assert_eq!(preview.before.exceptions, 1);
    assert_eq!(preview.after.exceptions, 0);
    let same = super::preview(
        &site(),
        &PolicyChoice::site(PunchStatePolicy::FirstLast),
        &PolicyChoice::site(PunchStatePolicy::Schedule),
        &wrong_key_day(),
        &plans,
    );
    assert!(same.changes.is_empty());
}

#[test]
fn a_device_override_decides_the_days_policy_by_its_first_punch() {
    let choice = PolicyChoice {
        site: PunchStatePolicy::Device,
        devices: vec![(sn("A"), PunchStatePolicy::Alternating)],
    };
    let plans = [DayPlan::working(date("2026-11-02"), Arc::new(day_shift()))];
    let days = compute_days(&site(), &choice, &wrong_key_day(), &plans);
    assert_eq!(days[0].policy, PunchStatePolicy::Alternating);
    assert_eq!(days[0].worked_secs, 30300);
}

#[test]
fn break_punches_deducted_or_punched() {
    let punches = [
        punch(1, "2026-11-02 08:58:00", 0),
        punch(2, "2026-11-02 12:00:00", 2),
        punch(3, "2026-11-02 12:45:00", 3),
        punch(4, "2026-11-02 18:00:00", 1),
    ];
    let mut punched = day_shift();
    punched.break_rule = BreakRule::Punches;
    let day = one_day(
        punched.clone(),
        "2026-11-02",
        PunchStatePolicy::Device,
        &punches,
    );
    assert_eq!(
        roles(&day),
        [
            PunchRole::In,
            PunchRole::BreakOut,
            PunchRole::BreakIn,
            PunchRole::Out
        ]
    );
    assert_eq!(
        (day.worked_secs, day.break_secs),
        (3 * 3600 + 2 * 60 + 5 * 3600 + 15 * 60, 45 * 60)
    );
    assert!(day.exceptions.is_empty());
    punched.worked_time = WorkedTime::FirstInLastOut;
    let day = one_day(
        punched.clone(),
        "2026-11-02",
        PunchStatePolicy::Alternating,
        &punches,
    );
    assert_eq!(day.worked_secs, 9 * 3600 + 2 * 60 - 45 * 60);

    let mut deducted = day_shift();
    deducted.break_rule = BreakRule::Deduct {
        secs: 3600,
        min_worked_secs: 6 * 3600,
    };
    let day = one_day(
        deducted.clone(),
        "2026-11-02",
        PunchStatePolicy::Device,
        &punches,
    );
    assert_eq!(
        roles(&day),
        [
            PunchRole::In,
            PunchRole::NotCounted,
            PunchRole::NotCounted,
            PunchRole::Out
        ]
    );
    assert_eq!(
        (day.worked_secs, day.break_secs),
        (9 * 3600 + 2 * 60 - 3600, 3600)
    );
    // Under the threshold, nothing is deducted.
    let short = [
        punch(1, "2026-11-02 09:00:00", 0),
        punch(2, "2026-11-02 13:00:00", 1),
    ];
    let day = one_day(deducted, "2026-11-02", PunchStatePolicy::Device, &short);
    assert_eq!((day.worked_secs, day.break_secs), (4 * 3600, 0));
}

#[test]
fn overtime_block_rounding_and_cap() {
    let mut shift = day_shift();
    shift.overtime = OvertimeRule {
        before_start: false,
        min_block_secs: 1800,
        rounding_secs: 900,
        rounding: OvertimeRounding::Down,
        daily_cap_secs: 7200,
    };
    shift.checkout_window_secs = 4 * 3600; // 21:00 stays inside the shift
    let day_until = |shift: &Shift, out: &str| {
        let punches = [punch(1, "2026-11-02 08:00:00", 0), punch(2, out, 1)];
        one_day(
            shift.clone(),
            "2026-11-02",
            PunchStatePolicy::Device,
            &punches,
        )
    };
    assert_eq!(
        day_until(&shift, "2026-11-02 18:29:00").overtime_secs,
        0,
        "29 min: below the 30 min block"
    );
    assert_eq!(
        day_until(&shift, "2026-11-02 19:05:00").overtime_secs,
        3600,
        "65 min down to 60"
    );
    let capped = day_until(&shift, "2026-11-02 21:00:00");
    assert_eq!(capped.overtime_secs, 7200);
    assert_eq!(kinds(&capped), [ExceptionKind::OvertimeOverCap]);
    assert_eq!(capped.exceptions[0].secs, 3 * 3600);
    shift.overtime.rounding = OvertimeRounding::Nearest;
    assert_eq!(day_until(&shift, "2026-11-02 19:05:00").overtime_secs, 3600);
    assert_eq!(
        day_until(&shift, "2026-11-02 19:08:00").overtime_secs,
        4500,
        "68 min nearest 75"
    );
    shift.overtime.rounding = OvertimeRounding::Up;
    assert_eq!(day_until(&shift, "2026-11-02 19:05:00").overtime_secs, 4500);
    // Before the start counts only when asked: 08:00–09:00 + 18:00–19:05.
    shift.overtime.rounding = OvertimeRounding::Down;
    shift.overtime.before_start = true;
    assert_eq!(day_until(&shift, "2026-11-02 19:05:00").overtime_secs, 7200);

    // A weekly off: the whole worked time in the off-day bucket, with the site's off-day rule.
    let mut site = site();
    site.off_day_overtime.rounding_secs = 3600;
    let plans = [DayPlan {
        date: date("2026-11-08"),
        kind: DayKind::WeeklyOff,
        employee_active: true,
    }];
    let punches = [
        punch(1, "2026-11-08 10:00:00", 0),
        punch(2, "2026-11-08 14:40:00", 1),
    ];
    let days = compute_days(
        &site,
        &PolicyChoice::site(PunchStatePolicy::Device),
        &punches,
        &plans,
    );
    assert_eq!(days[0].status, DayStatus::WeeklyOff);
    assert_eq!(
        (
            days[0].worked_secs,
            days[0].overtime_secs,
            days[0].overtime_off_day_secs
        ),
        (16800, 0, 4 * 3600)
    );
}

#[test]
fn absent_and_half_day_thresholds() {
    let mut shift = day_shift();
    shift.absent_below_secs = 4 * 3600;
    shift.half_day_below_secs = 6 * 3600;
    let status_until = |out: &str| {
        let punches = [punch(1, "2026-11-02 09:00:00", 0), punch(2, out, 1)];
        one_day(
            shift.clone(),
            "2026-11-02",
            PunchStatePolicy::Device,
            &punches,
        )
        .status
    };
    assert_eq!(status_until("2026-11-02 12:59:59"), DayStatus::Absent);
    assert_eq!(status_until("2026-11-02 13:00:00"), DayStatus::HalfDay);
    assert_eq!(status_until("2026-11-02 14:59:59"), DayStatus::HalfDay);
    assert_eq!(status_until("2026-11-02 15:00:00"), DayStatus::Present);
    // 0 disables: the same short day is present.
    let short = [
        punch(1, "2026-11-02 09:00:00", 0),
        punch(2, "2026-11-02 10:00:00", 1),
    ];
    assert_eq!(
        one_day(day_shift(), "2026-11-02", PunchStatePolicy::Device, &short).status,
        DayStatus::Present
    );
}

#[test]
fn single_and_missing_punches_are_exceptions_never_zero_or_full_days() {
    let only_in = one_day(
        day_shift(),
        "2026-11-02",
        PunchStatePolicy::Device,
        &[punch(1, "2026-11-02 08:55:00", 0)],
    );
    assert_eq!(
        kinds(&only_in),
        [ExceptionKind::MissingOut, ExceptionKind::SinglePunch]
    );
    assert_eq!(
        (
            only_in.status,
            only_in.worked_secs,
            only_in.first_in.is_some()
        ),
        (DayStatus::Present, 0, true)
    );
    let only_out = one_day(
        day_shift(),
        "2026-11-02",
        PunchStatePolicy::Device,
        &[punch(1, "2026-11-02 18:00:00", 1)],
    );
    assert_eq!(
        kinds(&only_out),
        [ExceptionKind::MissingIn, ExceptionKind::SinglePunch]
    );
    // A single punch under first-last: near the end it is the OUT.
    let late_single = one_day(
        day_shift(),
        "2026-11-02",
        PunchStatePolicy::FirstLast,
        &[punch(1, "2026-11-02 17:50:00", 0)],
    );
    assert_eq!(roles(&late_single), [PunchRole::Out]);
    assert_eq!(
        kinds(&late_single),
        [
            ExceptionKind::MissingIn,
            ExceptionKind::SinglePunch,
            ExceptionKind::EarlyExit
        ]
    );
    assert_eq!(late_single.early_exit_secs, 600);
    let none = one_day(day_shift(), "2026-11-02", PunchStatePolicy::Device, &[]);
    assert_eq!((none.status, none.exceptions.len()), (DayStatus::Absent, 0));
}

#[test]
fn outside_shift_voided_and_added_punches() {
    let punches = [
        RulePunch {
            added_by_correction: true,
            ..punch(1, "2026-11-02 09:00:00", 0)
        },
        RulePunch {
            voided: true,
            ..punch(2, "2026-11-02 09:00:30", 1)
        },
        punch(3, "2026-11-02 18:00:30", 1), // 30 s after a voided punch: not a double tap of it
        punch(4, "2026-11-02 22:30:00", 0), // after 18:00 + 2 h
    ];
    // Planned with the next day: a punch after 20:00 and before the next shift opens is surely outside.
    let shift = Arc::new(day_shift());
    let plans = [
        DayPlan::working(date("2026-11-02"), shift.clone()),
        DayPlan::working(date("2026-11-03"), shift),
    ];
    let days = compute_days(
        &site(),
        &PolicyChoice::site(PunchStatePolicy::Device),
        &punches,
        &plans,
    );
    let day = &days[0];
    assert_eq!(
        roles(day),
        [
            PunchRole::In,
            PunchRole::NotCounted,
            PunchRole::Out,
            PunchRole::NotCounted
        ]
    );
    assert!(
        day.punches[3].outside_shift && day.punches[1].voided && day.punches[0].added_by_correction
    );
    assert_eq!(kinds(day), [ExceptionKind::OutsideShift]);
    assert_eq!(day.exceptions[0].punch_ids, [4]);
    assert_eq!(day.worked_secs, 9 * 3600 + 30);
    assert!(days[1].punches.is_empty());
    // Planned alone, the 22:30 punch might be an unplanned next day's: left out.
    assert_eq!(
        one_day(
            day_shift(),
            "2026-11-02",
            PunchStatePolicy::Device,
            &punches
        )
        .punches
        .len(),
        3
    );
}

#[test]
fn month_dates_and_totals() {
    assert_eq!(month_dates(2026, 2).unwrap().len(), 28);
    assert_eq!(
        month_dates(2026, 11).unwrap().last(),
        Some(&date("2026-11-30"))
    );
    assert!(month_dates(2026, 13).is_none());
    let shift = Arc::new(day_shift());
    let plans: Vec<DayPlan> = month_dates(2026, 11)
        .unwrap()
        .into_iter()
        .map(|date| DayPlan::working(date, shift.clone()))
        .collect();
    let punches = [
        punch(1, "2026-11-02 09:00:00", 0),
        punch(2, "2026-11-02 18:00:00", 1),
        punch(3, "2026-11-03 09:20:00", 0),
        punch(4, "2026-11-03 18:30:00", 1),
    ];
    let days = compute_days(
        &site(),
        &PolicyChoice::site(PunchStatePolicy::Device),
        &punches,
        &plans,
    );
    let totals = month_totals(&days);
    assert_eq!((totals.days_present, totals.days_absent), (2, 28));
    assert_eq!((totals.late_count, totals.late_secs), (1, 1200));
    assert_eq!(totals.worked_secs, 9 * 3600 + 9 * 3600 + 10 * 60);
    assert_eq!(totals.overtime_secs, 1800);
    let window = fetch_window(&site(), &plans).unwrap();
    assert_eq!(
        window,
        (at("2026-10-31 07:00:00"), at("2026-12-01 20:00:00"))
    );
}

#[test]
fn shift_validation() {
    assert!(day_shift().validate().is_ok());
    assert_eq!(
        Shift::new("X", time("09:00"), time("09:00")).validate(),
        Err(ShiftError::ZeroLength("X".into()))
    );
    let mut long = Shift::new("Long", time("06:00"), time("02:00"));
    assert!(matches!(
        long.validate(),
        Err(ShiftError::WindowsTooWide { .. })
    ));
    long.checkin_window_secs = 3600;
    long.checkout_window_secs = 3600;
    assert!(long.validate().is_ok());
    assert_eq!(
        Shift::new("Night", time("22:00"), time("06:00")).length_secs(),
        8 * 3600
    );
}

/// Overtime punches (issue 7): under the `device` policy an overtime-in (4) … overtime-out (5) pair is overtime as
/// a whole, even before the shift's start (which plain work only counts with `before_start`); late and early exit
/// look at the regular IN and OUT. Other policies distrust the state key: the same punches are plain IN/OUT.
#[test]
fn overtime_in_and_out_pairs_are_overtime_wherever_they_lie() {
    let punches = [
        punch(1, "2026-11-02 07:10:00", 4),
        punch(2, "2026-11-02 08:40:00", 5),
        punch(3, "2026-11-02 09:20:00", 0),
        punch(4, "2026-11-02 18:10:00", 1),
        punch(5, "2026-11-02 18:30:00", 4),
        punch(6, "2026-11-02 19:45:00", 5),
    ];
    let day = one_day(
        day_shift(),
        "2026-11-02",
        PunchStatePolicy::Device,
        &punches,
    );
    assert_eq!(
        roles(&day),
        [
            PunchRole::In,
            PunchRole::Out,
            PunchRole::In,
            PunchRole::Out,
            PunchRole::In,
            PunchRole::Out
        ]
    );
    // 1 h 30 min + 8 h 50 min + 1 h 15 min worked; overtime: the two pairs (1 h 30 min + 1 h 15 min) and the
    // 10 min of regular work after 18:00.
    assert_eq!(day.worked_secs, 5400 + 8 * 3600 + 50 * 60 + 4500);
    assert_eq!(day.overtime_secs, 5400 + 4500 + 600);
    // Late from the regular IN (09:20 > 09:10), not hidden by the 06:30 overtime-in.
    assert_eq!(day.first_in, Some(at("2026-11-02 09:20:00")));
    assert_eq!(day.last_out, Some(at("2026-11-02 18:10:00")));
    assert_eq!((day.late_secs, day.early_exit_secs), (20 * 60, 0));
    assert!(kinds(&day).contains(&ExceptionKind::Late));

    // Alternating: states ignored, the morning pair is plain work before the start (not overtime).
    let alternating = one_day(
        day_shift(),
        "2026-11-02",
        PunchStatePolicy::Alternating,
        &punches,
    );
    assert_eq!(alternating.worked_secs, day.worked_secs);
    assert_eq!(alternating.overtime_secs, 600 + 4500);
    assert_eq!(alternating.first_in, Some(at("2026-11-02 07:10:00")));
    assert_eq!(alternating.late_secs, 0);
}

#[test]
fn exception_kind_names_are_their_json_names() {
    for kind in ExceptionKind::ALL {
        assert_eq!(
            serde_json::to_value(kind).expect("json"),
            serde_json::Value::String(kind.name().to_owned())
        );
    }
}
