//! The month cache against a fresh computation: random sequences of changes (punches in any order, late uploads,
//! overnight shifts, double taps, unmapped PINs, corrections, reviews, mappings, roster, watermarks), and after
//! each one the cached month must equal `monthly::month` exactly (serialised, `computed_at` aside). Plus how
//! much one late punch, one correction and one review recompute.

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{MonthCache, CHECK_EVERY};
use crate::attendance::monthly::{self, Month};
use crate::attendance::rules::Shift;
use crate::attendance::{review, setup};
use crate::domain::{Approval, Device, DeviceSn, NewPunch, Pin, PunchState, Source, Transport};
use crate::store::attendance::{
    Correction, CorrectionKind, Employee, EmployeeStatus, Holiday, PinMapping, ReviewState,
    RosterEntry, Scope, Site,
};
use crate::store::sqlite::{Durability, SqliteStore};
use crate::store::{Batch, RawEntry, Store};

const SITE: &str = "HQ";
const MONTH: &str = "2026-10";
const ZONE: chrono_tz::Tz = chrono_tz::Europe::Berlin;
const CODES: &[&str] = &["E01", "E02", "E03", "E04", "E05", "E06", "E07"];

fn date(m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, m, d).expect("date")
}

fn local(d: NaiveDate, secs: i64) -> DateTime<Utc> {
    monthly::local_to_utc(ZONE, d.and_time(NaiveTime::MIN)) + Duration::seconds(secs)
}

fn device(sn: &str, site: &str, last_seen: DateTime<Utc>) -> Device {
    Device {
        sn: DeviceSn::parse(sn).expect("sn"),
        approval: Approval::Approved,
        transport: Transport::Push,
        alias: None,
        site: Some(site.into()),
        time_zone: Some("Europe/Berlin".into()),
        address: None,
        comm_key: None,
        pull_interval_secs: None,
        clear_after_pull: false,
        safe_clear: true,
        first_seen: last_seen,
        last_seen: Some(last_seen),
        last_ip: None,
        firmware: None,
        push_version: None,
        language: None,
        device_type: None,
        poll_delay_secs: 30,
        info: Default::default(),
        last_error: None,
        clock_drift_secs: None,
    }
}

fn employee(code: &str) -> Employee {
    let (site, shift) = match code {
        "E03" | "E04" => (SITE, Some("Night")),
        "E06" => (SITE, None),
        "E07" => ("Other", Some("Day")),
        _ => (SITE, Some("Day")),
    };
    Employee {
        code: code.into(),
        name: format!("Name {code}"),
        status: if code == "E05" {
            EmployeeStatus::Left
        } else {
            EmployeeStatus::Active
        },
        joined_on: Some(date(9, 1)),
        left_on: (code == "E05").then(|| date(10, 20)),
        site: Some(site.into()),
        department: Some("Ops".into()),
        default_shift: shift.map(str::to_owned),
    }
}

async fn setup_store(dir: &std::path::Path) -> Arc<dyn Store> {
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.join("cache.db"), Durability::CrashSafe).expect("open"));
    let s = store.as_ref();
    for (name, zone) in [(SITE, "Europe/Berlin"), ("Other", "Europe/Berlin")] {
        setup::put_site(
            s,
            Site {
                name: name.into(),
                time_zone: zone.into(),
                day_change: "00:00".into(),
                weekly_offs: vec![7],
                holidays: vec![Holiday {
                    day: date(10, 3),
                    name: "Unity".into(),
                }],
            },
            "test",
        )
        .await
        .expect("site");
    }
    let hm = |h: u32| NaiveTime::from_hms_opt(h, 0, 0).expect("time");
    let mut day = Shift::new("Day", hm(9), hm(17));
    day.grace_in_secs = 600;
    setup::put_shift(s, day, false, "test").await.expect("day");
    setup::put_shift(s, Shift::new("Night", hm(22), hm(6)), false, "test")
        .await
        .expect("night");
    for code in CODES {
        setup::put_employee(s, employee(code), "test")
            .await
            .expect("employee");
    }
    // Devices: two on the site (delivered up to mid-month), one elsewhere.
    for (sn, site) in [("CD1", SITE), ("CD2", SITE), ("CD3", "Other")] {
        s.create_device(device(sn, site, local(date(10, 15), 12 * 3600)))
            .await
            .expect("device");
    }
    store
}

async fn punch(store: &dyn Store, sn: &str, pin: &str, at: DateTime<Utc>, state: u16) {
    let sn = DeviceSn::parse(sn).expect("sn");
    let mut batch = Batch::new(RawEntry {
        received_at: at,
        device_sn: Some(sn.clone()),
        source: Source::Push,
        kind: "ATTLOG".into(),
        request: "POST /iclock/cdata".into(),
        remote_addr: None,
        body: Vec::new(),
        errors: Vec::new(),
    });
    batch.punches.push(NewPunch {
        device_sn: sn,
        pin: Pin(pin.into()),
        punched_at: at.with_timezone(&ZONE).naive_local(),
        time_zone: "Europe/Berlin".into(),
        punched_at_utc: at,
        punch_state: Some(PunchState::from_code(state)),
        verify_mode: None,
        work_code: None,
        extra: Vec::new(),
        source: Source::Push,
    });
    store.write_batch(batch).await.expect("punch");
}

fn normalised(m: &Month, at: DateTime<Utc>) -> serde_json::Value {
    let mut m = m.clone();
    m.computed_at = at;
    serde_json::to_value(&m).expect("json")
}

/// The first difference, to read a failure.
fn first_difference(cached: &Month, fresh: &Month) -> String {
    if cached.employees.len() != fresh.employees.len() {
        return format!(
            "rows {:?} vs {:?}",
            cached.employees.iter().map(|r| &r.code).collect::<Vec<_>>(),
            fresh.employees.iter().map(|r| &r.code).collect::<Vec<_>>()
        );
    }
    for (a, b) in cached.employees.iter().zip(&fresh.employees) {
        for (x, y) in a.days.iter().zip(&b.days) {
            if x != y {
                return format!("{} {}: cached {x:#?}\nfresh {y:#?}", a.code, x.result.date);
            }
        }
        if a.totals != b.totals {
            return format!("{} totals {:?} vs {:?}", a.code, a.totals, b.totals);
        }
    }
    if cached.exceptions != fresh.exceptions {
        return format!(
            "exceptions ({} vs {})",
            cached.exceptions.len(),
            fresh.exceptions.len()
        );
    }
    format!(
        "unmapped {:?} vs {:?}; watermarks equal {}; incomplete {} vs {}",
        cached.unmapped,
        fresh.unmapped,
        cached.watermarks == fresh.watermarks,
        cached.incomplete_days,
        fresh.incomplete_days
    )
}

/// A random time around a shift's edges (or anywhere in the day) on `d`.
fn some_time(rng: &mut StdRng, d: NaiveDate) -> DateTime<Utc> {
    let base = match rng.random_range(0..6) {
        0 => 9 * 3600 - 1800,
        1 => 17 * 3600,
        2 => 22 * 3600 - 900,
        3 => 30 * 3600,
        4 => 13 * 3600,
        _ => rng.random_range(0..86_400),
    };
    local(d, base + rng.random_range(0..3600))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_equals_fresh_month_after_every_random_change() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = setup_store(dir.path()).await;
    let s = store.as_ref();
    let cache = MonthCache::default();
    let mut rng = StdRng::seed_from_u64(7);
    let mut now = Utc
        .with_ymd_and_hms(2026, 11, 5, 12, 0, 0)
        .single()
        .expect("now");
    // A first month of punches, so the first look is a whole computation over real data.
    for code in ["E01", "E02", "E03"] {
        for d in 1..=10 {
            let t = some_time(&mut rng, date(10, d));
            punch(s, "CD1", code, t, 0).await;
        }
    }
    let mut applied = Vec::new();
    for step in 0..160 {
        now += Duration::seconds(1);
        let what = rng.random_range(0..100);
        let d = date(10, 1) + Duration::days(rng.random_range(-2..33));
        let code = CODES[rng.random_range(0..CODES.len())];
        let kind = match what {
            0..=44 => {
                // A punch (any day, so late uploads into the past too), sometimes a double tap right after.
                let pin = if rng.random_range(0..10) == 0 {
                    "999"
                } else {
                    code
                };
                let sn = ["CD1", "CD2", "CD2", "CD3"][rng.random_range(0..4)];
                let t = some_time(&mut rng, d);
                punch(s, sn, pin, t, rng.random_range(0..2)).await;
                if rng.random_range(0..4) == 0 {
                    let sn = ["CD1", "CD2"][rng.random_range(0..2)];
                    let again = t + Duration::seconds(rng.random_range(1..90));
                    punch(s, sn, pin, again, 0).await;
                }
                "punch"
            }
            45..=49 => {
                // HR takes a correction back (its employee's days are redone).
                let live = s
                    .list_corrections(date(10, 1) - Duration::days(2), date(11, 3))
                    .await
                    .expect("corrections");
                if live.is_empty() {
                    continue;
                }
                let id = live[rng.random_range(0..live.len())].id;
                if review::revoke(s, id, "taken back", "hr").await.is_err() {
                    continue;
                }
                "revoke"
            }
            50..=59 => {
                let mut c = Correction {
                    id: 0,
                    employee_code: code.into(),
                    day: d,
                    kind: CorrectionKind::AddPunch,
                    punched_at: None,
                    punch_state: None,
                    punch_id: None,
                    status: None,
                    minutes: None,
                    author: String::new(),
                    reason: "test".into(),
                    created_at: now,
                };
                match rng.random_range(0..4) {
                    0 => {
                        c.punched_at = Some(d.and_hms_opt(17, 30, 0).expect("time"));
                        c.punch_state = Some(1);
                    }
                    1 => {
                        let max = s.max_punch_id().await.expect("max");
                        c.kind = CorrectionKind::VoidPunch;
                        c.punch_id = Some(rng.random_range(1..=max.max(1)));
                    }
                    2 => {
                        c.kind = CorrectionKind::SetStatus;
                        c.status =
                            Some(["leave", "present", "absent"][rng.random_range(0..3)].into());
                    }
                    _ => {
                        c.kind = CorrectionKind::CutOvertime;
                        c.minutes = Some(rng.random_range(0..60));
                    }
                }
                if review::correct(s, c, "hr").await.is_err() {
                    continue;
                }
                "correction"
            }
            60..=74 => {
                let fresh = monthly::month(s, SITE, MONTH, now).await.expect("month");
                if fresh.exceptions.is_empty() {
                    continue;
                }
                let x = &fresh.exceptions[rng.random_range(0..fresh.exceptions.len())];
                let state = [ReviewState::Explained, ReviewState::Approved][rng.random_range(0..2)];
                review::review(s, &x.employee_code, x.date, &x.kind, state, "ok", "hr")
                    .await
                    .expect("review");
                "review"
            }
            75..=82 => {
                // Watermarks move with time: the cache reads them again after CHECK_EVERY.
                let sn = DeviceSn::parse(["CD1", "CD2"][rng.random_range(0..2)]).expect("sn");
                let at = local(
                    date(10, rng.random_range(10..32)),
                    rng.random_range(0..86_400),
                );
                s.record_device_health(&sn, at, None, None)
                    .await
                    .expect("health");
                now += CHECK_EVERY;
                "watermark"
            }
            83..=88 => {
                let m = match rng.random_range(0..2) {
                    0 => PinMapping {
                        scope: Scope::Site,
                        scope_key: SITE.into(),
                        pin: "999".into(),
                        employee_code: "E06".into(),
                    },
                    _ => PinMapping {
                        scope: Scope::Device,
                        scope_key: "CD2".into(),
                        pin: "E07".into(),
                        employee_code: "E07".into(),
                    },
                };
                if setup::add_mapping(s, m, "hr").await.is_err() {
                    continue;
                }
                "mapping"
            }
            89..=92 => {
                let shift = [Some("Night".to_owned()), Some("Day".to_owned()), None]
                    [rng.random_range(0..3)]
                .clone();
                setup::put_roster(
                    s,
                    vec![RosterEntry {
                        employee_code: code.into(),
                        day: d,
                        shift,
                    }],
                    "hr",
                )
                .await
                .expect("roster");
                "roster"
            }
            _ => {
                // Only time passes (the check path with nothing new).
                now += CHECK_EVERY;
                "time"
            }
        };
        applied.push(kind);
        let cached = cache.month(s, SITE, MONTH, now).await.expect("cached");
        let fresh = monthly::month(s, SITE, MONTH, now).await.expect("fresh");
        assert!(
            normalised(&cached, now) == normalised(&fresh, now),
            "step {step} ({kind}; before: {:?}): {}",
            &applied[applied.len().saturating_sub(6)..],
            first_difference(&cached, &fresh)
        );
    }
    assert!(
        applied.iter().filter(|k| **k == "revoke").count() >= 3,
        "{applied:?}"
    );
    let stats = cache.stats();
    // Most steps were followed piece by piece, not by computing the month whole.
    assert!(
        stats.days > 0 && stats.cells > 0 && stats.punches > 0,
        "{stats:?}"
    );
    assert!(stats.full < 40, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_late_punch_recomputes_the_days_it_touches_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = setup_store(dir.path()).await;
    let s = store.as_ref();
    let now = Utc
        .with_ymd_and_hms(2026, 11, 5, 12, 0, 0)
        .single()
        .expect("now");
    for code in ["E01", "E02", "E03"] {
        for d in 1..=31 {
            punch(s, "CD1", code, local(date(10, d), 9 * 3600), 0).await;
            punch(s, "CD1", code, local(date(10, d), 17 * 3600), 1).await;
        }
    }
    let cache = MonthCache::default();
    cache.month(s, SITE, MONTH, now).await.expect("first");
    let before = cache.stats();
    assert_eq!((before.full, before.days), (1, 0));

    // A late upload: a punch of October 7 arrives now. Its day and the days either side, nothing else.
    punch(s, "CD2", "E02", local(date(10, 7), 12 * 3600), 2).await;
    let m = cache.month(s, SITE, MONTH, now).await.expect("after punch");
    let after = cache.stats();
    assert_eq!(
        (after.full, after.days, after.punches),
        (1, 3, 1),
        "one punch: three employee-days (6, 7 and 8 October)"
    );
    let e02 = m.employees.iter().find(|r| r.code == "E02").expect("E02");
    assert_eq!(
        e02.days[6].result.punches.len(),
        3,
        "the punch is on the 7th"
    );
    assert_eq!(
        normalised(&m, now),
        normalised(
            &monthly::month(s, SITE, MONTH, now).await.expect("fresh"),
            now
        )
    );

    // A punch of another site only moves the marker.
    punch(s, "CD3", "E07", local(date(10, 7), 12 * 3600), 0).await;
    cache.month(s, SITE, MONTH, now).await.expect("other site");
    assert_eq!(cache.stats().days, 3);

    // A review: one cell, no rules run.
    let x = m
        .exceptions
        .iter()
        .find(|x| x.employee_code == "E02")
        .expect("an exception of E02")
        .clone();
    review::review(s, "E02", x.date, &x.kind, ReviewState::Approved, "ok", "hr")
        .await
        .expect("review");
    let m = cache
        .month(s, SITE, MONTH, now)
        .await
        .expect("after review");
    let stats = cache.stats();
    assert_eq!((stats.full, stats.days, stats.cells), (1, 3, 1));
    let reviewed = m
        .exceptions
        .iter()
        .find(|y| y.employee_code == "E02" && y.date == x.date && y.kind == x.kind)
        .expect("reviewed");
    assert_eq!(reviewed.state, ReviewState::Approved);

    // A correction: that employee's month (31 days), nobody else's.
    let c = Correction {
        id: 0,
        employee_code: "E01".into(),
        day: date(10, 9),
        kind: CorrectionKind::SetStatus,
        punched_at: None,
        punch_state: None,
        punch_id: None,
        status: Some("leave".into()),
        minutes: None,
        author: String::new(),
        reason: "sick".into(),
        created_at: now,
    };
    let before = cache.month(s, SITE, MONTH, now).await.expect("before");
    let status_before = before.employees[0].days[8].status;
    let stored = review::correct(s, c, "hr").await.expect("correct");
    let m = cache
        .month(s, SITE, MONTH, now)
        .await
        .expect("after correction");
    let stats = cache.stats();
    assert_eq!((stats.full, stats.days), (1, 3 + 31));
    assert_eq!(
        normalised(&m, now),
        normalised(
            &monthly::month(s, SITE, MONTH, now).await.expect("fresh"),
            now
        )
    );
    assert_eq!(m.employees[0].days[8].corrections.len(), 1);

    // Revoking it: that employee's month again, nobody else's, and the day is as before.
    review::revoke(s, stored.id, "wrong day", "hr")
        .await
        .expect("revoke");
    let m = cache
        .month(s, SITE, MONTH, now)
        .await
        .expect("after revocation");
    let stats = cache.stats();
    assert_eq!((stats.full, stats.days), (1, 3 + 31 + 31));
    assert_eq!(m.employees[0].code, "E01");
    assert_eq!(
        (
            m.employees[0].days[8].status,
            m.employees[0].days[8].corrections.len()
        ),
        (status_before, 0)
    );
    assert_eq!(
        normalised(&m, now),
        normalised(
            &monthly::month(s, SITE, MONTH, now).await.expect("fresh"),
            now
        )
    );

    // A mapping: the whole month again.
    setup::add_mapping(
        s,
        PinMapping {
            scope: Scope::Site,
            scope_key: SITE.into(),
            pin: "999".into(),
            employee_code: "E06".into(),
        },
        "hr",
    )
    .await
    .expect("map");
    cache
        .month(s, SITE, MONTH, now)
        .await
        .expect("after mapping");
    assert_eq!(cache.stats().full, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_off_month_lists_punches_that_arrive_later() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = setup_store(dir.path()).await;
    let s = store.as_ref();
    let now = Utc
        .with_ymd_and_hms(2026, 11, 5, 12, 0, 0)
        .single()
        .expect("now");
    punch(s, "CD1", "E01", local(date(10, 5), 9 * 3600), 0).await;
    review::sign_off(s, SITE, MONTH, true, "hr", now)
        .await
        .expect("sign off");
    let cache = MonthCache::default();
    let m = cache.month(s, SITE, MONTH, now).await.expect("frozen");
    assert!(m.signed_off.is_some() && m.arrived_after_signoff.is_empty());
    punch(s, "CD2", "E02", local(date(10, 6), 9 * 3600), 0).await;
    punch(s, "CD2", "E02", local(date(11, 6), 9 * 3600), 0).await;
    let m = cache.month(s, SITE, MONTH, now).await.expect("late");
    assert_eq!(
        m.arrived_after_signoff
            .iter()
            .map(|p| (p.pin.as_str(), p.employee_code.as_deref()))
            .collect::<Vec<_>>(),
        [("E02", Some("E02"))]
    );
    assert_eq!(cache.stats().full, 1);
    assert_eq!(
        normalised(&m, now),
        normalised(
            &monthly::month(s, SITE, MONTH, now).await.expect("fresh"),
            now
        )
    );
}

/// `month_within`: a month that is not ready within the wait is `None`, and asking again while it is computed
/// waits for the same computation (the month is computed whole once); once done, the next ask gets it. An error
/// of a computation nobody waited for is handed to the next ask, once. The slot is held (as a long computation
/// holds it) to make "not ready within the wait" certain, whatever the machine's speed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_not_ready_within_the_wait_is_computed_once_in_the_background() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = setup_store(dir.path()).await;
    let now = Utc
        .with_ymd_and_hms(2026, 11, 5, 12, 0, 0)
        .single()
        .expect("now");
    punch(
        store.as_ref(),
        "CD1",
        "E01",
        local(date(10, 5), 9 * 3600),
        0,
    )
    .await;
    let cache = Arc::new(MonthCache::default());
    let short = std::time::Duration::from_millis(20);
    // Long enough for any computation here: the ask returns as soon as it is done.
    let long = std::time::Duration::from_secs(60);

    let held = cache.hold(SITE, MONTH).await;
    for _ in 0..2 {
        let m = cache
            .month_within(&store, SITE, MONTH, now, short)
            .await
            .expect("no error");
        assert!(m.is_none(), "still being computed");
    }
    drop(held);
    let m = cache
        .month_within(&store, SITE, MONTH, now, long)
        .await
        .expect("month")
        .expect("computed");
    assert_eq!(
        normalised(&m, now),
        normalised(
            &monthly::month(store.as_ref(), SITE, MONTH, now)
                .await
                .expect("fresh"),
            now
        )
    );
    assert_eq!(cache.stats().full, 1, "one computation for three asks");
    // Further asks: brought up to date by the cache, not computed again.
    let again = cache
        .month_within(&store, SITE, MONTH, now, long)
        .await
        .expect("month");
    assert!(again.is_some());
    assert_eq!(cache.stats().full, 1);

    // A month that fails (no such site) while nobody waits: the next ask gets the error, the one after asks anew.
    let held = cache.hold("Nowhere", MONTH).await;
    let m = cache
        .month_within(&store, "Nowhere", MONTH, now, short)
        .await
        .expect("no error yet");
    assert!(m.is_none());
    drop(held);
    let error = cache
        .month_within(&store, "Nowhere", MONTH, now, long)
        .await
        .expect_err("the background error");
    assert!(error.to_string().contains("Nowhere"), "{error}");
    let held = cache.hold("Nowhere", MONTH).await;
    assert!(cache
        .month_within(&store, "Nowhere", MONTH, now, short)
        .await
        .expect("asked anew")
        .is_none());
    drop(held);
}
