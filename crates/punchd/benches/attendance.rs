//! The attendance rules engine (issue 7, "Speed"): a month for 10,000 employees from in-memory punches, and one
//! employee-day recomputed after a late punch. No store: this measures the rules alone.
//!
//! Run: `cargo bench -p punchd --bench attendance -- --quick` (see BENCHMARKS.md). Targets: the month under 2 s on
//! one core, an employee-day under 5 ms.

#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeDelta, TimeZone, Utc, Weekday};
use criterion::{criterion_group, criterion_main, Criterion};
use punchd::attendance::rules::{
    compute_days, month_dates, month_totals, DayKind, DayPlan, PolicyChoice, PunchStatePolicy,
    RulePunch, Shift, SiteRules,
};
use punchd::domain::DeviceSn;

const EMPLOYEES: usize = 10_000;

/// A deterministic generator (xorshift64*), so every run computes the same month.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `-spread..=spread` seconds.
    fn jitter(&mut self, spread: i64) -> TimeDelta {
        TimeDelta::seconds((self.next() % (2 * spread as u64 + 1)) as i64 - spread)
    }
}

struct Employee {
    punches: Vec<RulePunch>,
    plans: Vec<DayPlan>,
}

/// November 2026, Europe/Berlin, shift 09:00–18:00: Monday to Friday for everyone, Saturdays for every other
/// employee; IN around 09:00 (±20 min), break-out ~12:30, break-in ~13:15, OUT ~18:05: 4 punches a working day,
/// 920,000 punches in all.
fn month() -> (SiteRules, Vec<Employee>) {
    let site = SiteRules::new(chrono_tz::Europe::Berlin);
    let mut shift = Shift::new(
        "Day",
        NaiveTime::from_hms_opt(9, 0, 0).unwrap_or_default(),
        NaiveTime::MIN,
    );
    shift.end = NaiveTime::from_hms_opt(18, 0, 0).unwrap_or_default();
    shift.grace_in_secs = 600;
    shift.break_rule = punchd::attendance::rules::BreakRule::Punches;
    let shift = Arc::new(shift);
    let dates = month_dates(2026, 11).unwrap_or_default();
    let devices = [
        DeviceSn::parse("BENCH0001").ok(),
        DeviceSn::parse("BENCH0002").ok(),
    ];
    let devices: Vec<DeviceSn> = devices.into_iter().flatten().collect();
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut next_id = 0i64;
    let at = |date: NaiveDate, h: u32, m: u32| -> DateTime<Utc> {
        let local = date.and_hms_opt(h, m, 0).unwrap_or_default();
        site.zone
            .from_local_datetime(&local)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    };
    let employees = (0..EMPLOYEES)
        .map(|employee_idx| {
            let mut punches = Vec::with_capacity(100);
            let plans = dates
                .iter()
                .map(|&date| {
                    let working = match date.weekday() {
                        Weekday::Sun => false,
                        Weekday::Sat => employee_idx % 2 == 0,
                        _ => true,
                    };
                    if !working {
                        return DayPlan {
                            date,
                            kind: DayKind::WeeklyOff,
                            employee_active: true,
                        };
                    }
                    for (state, h, m, spread) in [
                        (0, 9, 0, 1200),
                        (2, 12, 30, 600),
                        (3, 13, 15, 600),
                        (1, 18, 5, 900),
                    ] {
                        next_id += 1;
                        punches.push(RulePunch {
                            id: next_id,
                            device_sn: devices[(rng.next() % 2) as usize].clone(),
                            at: at(date, h, m) + rng.jitter(spread),
                            punch_state: Some(state),
                            added_by_correction: false,
                            voided: false,
                        });
                    }
                    DayPlan::working(date, shift.clone())
                })
                .collect();
            Employee { punches, plans }
        })
        .collect();
    (site, employees)
}

fn bench(c: &mut Criterion) {
    let (site, employees) = month();
    let n_punches: usize = employees
        .iter()
        .map(|employee| employee.punches.len())
        .sum();
    assert_eq!(n_punches, 920_000);
    let policy = PolicyChoice::site(PunchStatePolicy::Device);

    let mut group = c.benchmark_group("attendance");
    group.sample_size(10);
    group.bench_function("month_10k_employees_920k_punches", |b| {
        b.iter(|| {
            let mut worked_secs = 0i64;
            for employee in &employees {
                let days = compute_days(&site, &policy, &employee.punches, &employee.plans);
                worked_secs += month_totals(&days).worked_secs;
            }
            black_box(worked_secs)
        })
    });

    // One employee-day after a late punch: the day's plan and the punches of its fetch window (3 days).
    let employee = &employees[1];
    let plan = [employee.plans[1].clone()];
    let mut punches: Vec<RulePunch> = employee
        .punches
        .iter()
        .filter(|p| p.at.day() <= 4)
        .cloned()
        .collect();
    let mut late = punches[punches.len() - 1].clone();
    late.id = i64::MAX;
    late.at += TimeDelta::seconds(30);
    punches.push(late);
    group.bench_function("employee_day_after_a_late_punch", |b| {
        b.iter(|| black_box(compute_days(&site, &policy, black_box(&punches), &plan)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
