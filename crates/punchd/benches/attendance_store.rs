//! The month from the store (issue 7, "Speed"): 10,000 employees with 4 punches a working day (920,000 punches) in a
//! SQLite store, then `attendance::monthly::month` (load sites, employees, mappings, shifts, roster, corrections,
//! reviews and the punches; resolve PINs; run the rules; apply corrections and watermarks) and the XLSX export of
//! that month (`attendance::export::xlsx`). Unlike `benches/attendance.rs` this includes the store.
//!
//! Then the month cache (`attendance::month_cache`): one late punch stored into a month the cache holds, and the
//! cache brought up to date (it reads the new punch and recomputes the three employee-days it can touch); and one
//! correction (that employee's month).
//!
//! Run: `cargo bench -p punchd --bench attendance_store` (see BENCHMARKS.md; building the store takes a while).
//! Targets: the month under 2 s on one core, its XLSX under 10 s.

#![allow(missing_docs)]

use std::hint::black_box;

use chrono::{Datelike, NaiveTime, TimeDelta, TimeZone, Utc, Weekday};
use criterion::{criterion_group, criterion_main, Criterion};
use punchd::attendance::month_cache::MonthCache;
use punchd::attendance::rules::{month_dates, BreakRule, Shift};
use punchd::attendance::{export, monthly, review};
use punchd::domain::{Approval, Device, DeviceSn, NewPunch, Pin, PunchState, Source, Transport};
use punchd::store::attendance::{
    AuditRecord, Correction, CorrectionKind, Employee, EmployeeStatus, ShiftDef, Site,
};
use punchd::store::sqlite::{Durability, SqliteStore};
use punchd::store::{Batch, RawEntry, Store};

const EMPLOYEES: usize = 10_000;
const SITE: &str = "HQ";

/// A deterministic generator (xorshift64*), so every run stores the same month.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn jitter(&mut self, spread: i64) -> TimeDelta {
        TimeDelta::seconds((self.next() % (2 * spread as u64 + 1)) as i64 - spread)
    }
}

fn audit() -> AuditRecord {
    AuditRecord {
        author: "bench".into(),
        action: "bench".into(),
        subject: SITE.into(),
        detail: serde_json::Value::Null,
    }
}

fn device(sn: &DeviceSn) -> Device {
    Device {
        sn: sn.clone(),
        approval: Approval::Approved,
        transport: Transport::Push,
        alias: None,
        site: Some(SITE.into()),
        time_zone: Some("Europe/Berlin".into()),
        address: None,
        comm_key: None,
        pull_interval_secs: None,
        clear_after_pull: false,
        first_seen: Utc::now(),
        last_seen: Some(Utc::now()),
        last_ip: None,
        firmware: None,
        push_version: None,
        language: None,
        device_type: None,
        poll_delay_secs: 30,
        info: Default::default(),
        last_error: None,
        clock_drift_secs: None,
        safe_clear: true,
    }
}

/// November 2026 at HQ (Europe/Berlin), shift Day 09:00–18:00 with punched breaks for everyone; Monday to Friday,
/// Saturdays for every other employee; IN ~09:00, break-out ~12:30, break-in ~13:15, OUT ~18:05 (PIN = employee
/// code, so every PIN maps itself), on two terminals.
async fn fill(store: &dyn Store) -> usize {
    let zone = chrono_tz::Europe::Berlin;
    store
        .put_site(
            Site {
                name: SITE.into(),
                time_zone: "Europe/Berlin".into(),
                day_change: "00:00".into(),
                weekly_offs: vec![7],
                holidays: Vec::new(),
            },
            audit(),
        )
        .await
        .expect("site");
    let mut shift = Shift::new(
        "Day",
        NaiveTime::from_hms_opt(9, 0, 0).expect("time"),
        NaiveTime::from_hms_opt(18, 0, 0).expect("time"),
    );
    shift.grace_in_secs = 600;
    shift.break_rule = BreakRule::Punches;
    store
        .put_shift(
            ShiftDef {
                name: "Day".into(),
                definition: serde_json::to_value(&shift).expect("shift"),
            },
            false,
            audit(),
        )
        .await
        .expect("shift");
    let code = |idx: usize| format!("E{idx:05}");
    store
        .put_employees(
            (0..EMPLOYEES)
                .map(|idx| Employee {
                    code: code(idx),
                    name: format!("Employee {idx}"),
                    status: EmployeeStatus::Active,
                    joined_on: None,
                    left_on: None,
                    site: Some(SITE.into()),
                    department: Some(format!("D{}", idx % 20)),
                    default_shift: Some("Day".into()),
                })
                .collect(),
            audit(),
        )
        .await
        .expect("employees");
    let devices: Vec<DeviceSn> = ["BENCH0001", "BENCH0002"]
        .iter()
        .map(|s| DeviceSn::parse(s).expect("sn"))
        .collect();
    for d in &devices {
        store.create_device(device(d)).await.expect("device");
    }
    let dates = month_dates(2026, 11).expect("month");
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut stored = 0;
    for chunk_start in (0..EMPLOYEES).step_by(250) {
        let mut batch = Batch::new(RawEntry {
            received_at: Utc::now(),
            device_sn: Some(devices[0].clone()),
            source: Source::Import,
            kind: "bench".into(),
            request: "bench month".into(),
            remote_addr: None,
            body: Vec::new(),
            errors: Vec::new(),
        });
        for idx in chunk_start..(chunk_start + 250).min(EMPLOYEES) {
            for &date in &dates {
                let working = match date.weekday() {
                    Weekday::Sun => false,
                    Weekday::Sat => idx % 2 == 0,
                    _ => true,
                };
                if !working {
                    continue;
                }
                for (state, h, m, spread) in [
                    (0u16, 9, 0, 1200),
                    (2, 12, 30, 600),
                    (3, 13, 15, 600),
                    (1, 18, 5, 900),
                ] {
                    let local = date.and_hms_opt(h, m, 0).expect("time");
                    let utc = zone
                        .from_local_datetime(&local)
                        .earliest()
                        .expect("local")
                        .with_timezone(&Utc)
                        + rng.jitter(spread);
                    batch.punches.push(NewPunch {
                        device_sn: devices[(rng.next() % 2) as usize].clone(),
                        pin: Pin(code(idx)),
                        punched_at: utc.with_timezone(&zone).naive_local(),
                        time_zone: "Europe/Berlin".into(),
                        punched_at_utc: utc,
                        punch_state: Some(PunchState::from_code(state)),
                        verify_mode: None,
                        work_code: None,
                        extra: Vec::new(),
                        source: Source::Import,
                    });
                }
            }
        }
        stored += store.write_batch(batch).await.expect("batch").n_stored;
    }
    stored
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let store =
        SqliteStore::open(&dir.path().join("month.db"), Durability::CrashSafe).expect("store");
    let started = std::time::Instant::now();
    let stored = runtime.block_on(fill(&store));
    assert_eq!(stored, 920_000);
    eprintln!(
        "stored {stored} punches of {EMPLOYEES} employees in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let now = Utc::now();
    let month = runtime
        .block_on(monthly::month(&store, SITE, "2026-11", now))
        .expect("month");
    assert_eq!(month.employees.len(), EMPLOYEES);

    let mut group = c.benchmark_group("attendance_store");
    group.sample_size(10);
    group.bench_function("month_from_store_10k_employees_920k_punches", |b| {
        b.iter(|| {
            let month = runtime
                .block_on(monthly::month(&store, SITE, "2026-11", now))
                .expect("month");
            black_box(month.employees.len())
        })
    });
    group.bench_function("month_xlsx_10k_employees", |b| {
        b.iter(|| black_box(export::xlsx(&month).expect("xlsx").len()))
    });

    // The month cache: a month of 10,000 employees held, then one late punch (or one correction) at a time.
    let cache = MonthCache::default();
    runtime
        .block_on(cache.month(&store, SITE, "2026-11", now))
        .expect("cached month");
    let sn = DeviceSn::parse("BENCH0002").expect("sn");
    let zone = chrono_tz::Europe::Berlin;
    let mut rng = Rng(0x1a7e_0000_0000_0001);
    let mut n = 0u32;
    group.bench_function("late_punch_into_cached_month_10k_employees", |b| {
        b.iter(|| {
            n += 1;
            let idx = (rng.next() % EMPLOYEES as u64) as usize;
            let day = 1 + (rng.next() % 30) as u32;
            // A punch in the afternoon of a past day, a unique second each time (never a duplicate).
            let local = chrono::NaiveDate::from_ymd_opt(2026, 11, day)
                .expect("date")
                .and_hms_opt(14, 0, 0)
                .expect("time")
                + TimeDelta::seconds(i64::from(n % 3600));
            let utc = zone
                .from_local_datetime(&local)
                .earliest()
                .expect("local")
                .with_timezone(&Utc);
            let mut batch = Batch::new(RawEntry {
                received_at: Utc::now(),
                device_sn: Some(sn.clone()),
                source: Source::Push,
                kind: "ATTLOG".into(),
                request: "bench late punch".into(),
                remote_addr: None,
                body: Vec::new(),
                errors: Vec::new(),
            });
            batch.punches.push(NewPunch {
                device_sn: sn.clone(),
                pin: Pin(format!("E{idx:05}")),
                punched_at: local,
                time_zone: "Europe/Berlin".into(),
                punched_at_utc: utc,
                punch_state: Some(PunchState::from_code(255)),
                verify_mode: None,
                work_code: None,
                extra: Vec::new(),
                source: Source::Push,
            });
            runtime.block_on(async {
                store.write_batch(batch).await.expect("late punch");
                let m = cache
                    .month(&store, SITE, "2026-11", now)
                    .await
                    .expect("cached");
                black_box(m.incomplete_days)
            })
        })
    });
    group.bench_function("correction_into_cached_month_10k_employees", |b| {
        b.iter(|| {
            let idx = (rng.next() % EMPLOYEES as u64) as usize;
            let day = 1 + (rng.next() % 30) as u32;
            let c = Correction {
                id: 0,
                employee_code: format!("E{idx:05}"),
                day: chrono::NaiveDate::from_ymd_opt(2026, 11, day).expect("date"),
                kind: CorrectionKind::CutOvertime,
                punched_at: None,
                punch_state: None,
                punch_id: None,
                status: None,
                minutes: Some(30),
                author: String::new(),
                reason: "bench".into(),
                created_at: now,
            };
            runtime.block_on(async {
                review::correct(&store, c, "bench")
                    .await
                    .expect("correction");
                let m = cache
                    .month(&store, SITE, "2026-11", now)
                    .await
                    .expect("cached");
                black_box(m.incomplete_days)
            })
        })
    });
    let stats = cache.stats();
    eprintln!("month cache: {stats:?}");
    assert_eq!(stats.full, 1, "every change was followed piece by piece");
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
