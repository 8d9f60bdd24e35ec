//! Server time of the monthly review page (issue 11, "Speed"): a site of 10,000 employees with a month of
//! punches in a SQLite store, then
//!
//! - **cold**: the month computed from the store (`MonthCache::month` on an empty cache: every punch of the site
//!   loaded, resolved and run through the rules) — what the first visit after a change costs;
//! - **page**: one page of the grid (50 employees) rendered from the computed month, with the cache's catch-up
//!   check (two store reads when nothing changed) — what every further page, filter or reload costs;
//! - **xlsx**: the month's XLSX built from the computed month.
//!
//! Run: `cargo bench -p punchd --bench review_page` (see BENCHMARKS.md). `PUNCHD_BENCH_EMPLOYEES` changes the
//! size (default 10,000). Filling the store takes a while; the times printed are medians.

#![allow(missing_docs)]

use std::time::{Duration, Instant};

use chrono::{Datelike, NaiveDate, TimeZone, Utc, Weekday};
use punchd::attendance::month_cache::MonthCache;
use punchd::domain::{Approval, DeviceSn, NewPunch, Pin, PunchState, Role, Source, Transport};
use punchd::store::attendance::{AttendanceStore, AuditRecord, Employee, EmployeeStatus, Site};
use punchd::store::sqlite::{Durability, SqliteStore};
use punchd::store::{Batch, DeviceContact, DevicePatch, RawEntry, SeenUpdate, Store};
use punchd::web::ui::layout::{self, FormErrors, Nav};
use punchd::web::ui::review::{grid_body, GridQuery};
use punchd::web::ui::{UiCtx, UiUser};

const MONTH: &str = "2026-10";

fn audit() -> AuditRecord {
    AuditRecord {
        author: "bench".into(),
        action: "setup".into(),
        subject: "bench".into(),
        detail: serde_json::json!({}),
    }
}

/// A deterministic jitter (xorshift64*) so every run stores the same punches.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Site BENCH (UTC, Saturday and Sunday off), two terminals seen now, `n` employees E00000… whose PIN is their
/// code; on each working day of October 2026 an IN around 09:00 and an OUT around 17:30 (one employee in 50
/// forgets the OUT on Mondays, so the grid has exceptions).
async fn fill(store: &SqliteStore, n: usize) -> usize {
    store
        .put_site(
            Site {
                name: "BENCH".into(),
                time_zone: "UTC".into(),
                day_change: "00:00".into(),
                weekly_offs: vec![6, 7],
                holidays: Vec::new(),
            },
            audit(),
        )
        .await
        .expect("site");
    let devices: Vec<DeviceSn> = ["BENCHDEV1", "BENCHDEV2"]
        .iter()
        .map(|s| DeviceSn::parse(s).expect("sn"))
        .collect();
    for sn in &devices {
        store
            .upsert_device(DeviceContact {
                sn: sn.clone(),
                poll_delay_secs: 10,
                approval_if_new: Approval::Approved,
                transport: Transport::Push,
                seen_at: Utc::now(),
                ip: None,
                firmware: None,
                push_version: None,
                language: None,
                device_type: None,
            })
            .await
            .expect("device");
        store
            .update_device(
                sn,
                DevicePatch {
                    site: Some(Some("BENCH".into())),
                    ..DevicePatch::default()
                },
            )
            .await
            .expect("site");
        store
            .record_seen(vec![SeenUpdate {
                sn: sn.clone(),
                at: Utc::now(),
                ip: None,
            }])
            .await
            .expect("seen");
    }
    let employees: Vec<Employee> = (0..n)
        .map(|i| Employee {
            code: format!("E{i:05}"),
            name: format!("Employee {i}"),
            status: EmployeeStatus::Active,
            joined_on: None,
            left_on: None,
            site: Some("BENCH".into()),
            department: None,
            default_shift: None,
        })
        .collect();
    store
        .put_employees(employees, audit())
        .await
        .expect("employees");
    let dates: Vec<NaiveDate> = (1..=31)
        .filter_map(|d| NaiveDate::from_ymd_opt(2026, 10, d))
        .filter(|d| !matches!(d.weekday(), Weekday::Sat | Weekday::Sun))
        .collect();
    let mut rng = Rng(0x5eed_0011_2233_4455);
    let mut stored = 0;
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let mut batch = Batch::new(RawEntry {
            received_at: Utc::now(),
            device_sn: Some(devices[0].clone()),
            source: Source::Import,
            kind: "bench".into(),
            request: "bench".into(),
            remote_addr: None,
            body: Vec::new(),
            errors: Vec::new(),
        });
        for &i in chunk {
            let sn = &devices[i % 2];
            for date in &dates {
                let mut times = vec![(9 * 3600, PunchState::CheckIn)];
                if !(i % 50 == 0 && date.weekday() == Weekday::Mon) {
                    times.push((17 * 3600 + 1800, PunchState::CheckOut));
                }
                for (secs, state) in times {
                    let jitter = (rng.next() % 1200) as i64 - 600;
                    let local = date.and_hms_opt(0, 0, 0).expect("midnight")
                        + chrono::Duration::seconds(secs + jitter);
                    batch.punches.push(NewPunch {
                        device_sn: sn.clone(),
                        pin: Pin(format!("E{i:05}")),
                        punched_at: local,
                        time_zone: "UTC".into(),
                        punched_at_utc: Utc.from_utc_datetime(&local),
                        punch_state: Some(state),
                        verify_mode: None,
                        work_code: None,
                        extra: Vec::new(),
                        source: Source::Import,
                    });
                }
            }
        }
        stored += batch.punches.len();
        store.write_batch(batch).await.expect("punches");
    }
    stored
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let n: usize = std::env::var("PUNCHD_BENCH_EMPLOYEES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            SqliteStore::open(&dir.path().join("bench.db"), Durability::CrashSafe).expect("open");
        let started = Instant::now();
        let punches = fill(&store, n).await;
        println!(
            "filled: {n} employees, {punches} punches in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let store: &dyn Store = &store;

        let mut cold = Vec::new();
        let mut month = None;
        for _ in 0..3 {
            let cache = MonthCache::default();
            let t = Instant::now();
            month = Some(cache.month(store, "BENCH", MONTH, Utc::now()).await.expect("month"));
            cold.push(t.elapsed());
        }
        let month = month.expect("computed");
        println!(
            "cold (compute the month from the store): median {:.0} ms of 3",
            median(cold).as_secs_f64() * 1000.0
        );

        let cache = MonthCache::default();
        cache.month(store, "BENCH", MONTH, Utc::now()).await.expect("warm up");
        let sites = store.list_sites().await.expect("sites");
        let ctx = UiCtx {
            user: Some(UiUser {
                name: "hilde".into(),
                role: Role::Hr,
                csrf: "x".repeat(43),
            }),
            flash: None,
            path: "/ui/review".into(),
        };
        let pages = n.div_ceil(punchd::web::ui::review::PER_PAGE).max(1);
        let mut page_times = Vec::new();
        let mut bytes = 0;
        for run in 0..30 {
            let q = GridQuery {
                site: "BENCH".into(),
                month: MONTH.into(),
                page: 1 + (run * 37) % pages,
                ..GridQuery::default()
            };
            let t = Instant::now();
            let m = cache.month(store, "BENCH", MONTH, Utc::now()).await.expect("cached");
            let html = layout::page(
                &ctx,
                "Review",
                Nav::Review,
                grid_body(&ctx, &m, &sites, &q, &FormErrors::new()),
            )
            .into_string();
            page_times.push(t.elapsed());
            bytes = html.len();
        }
        println!(
            "page (50 employees from the cached month, validity check included): median {:.1} ms of 30, {} KiB of HTML",
            median(page_times).as_secs_f64() * 1000.0,
            bytes / 1024
        );
        let mut filtered = Vec::new();
        for _ in 0..10 {
            let q = GridQuery {
                site: "BENCH".into(),
                month: MONTH.into(),
                only: "exceptions".into(),
                ..GridQuery::default()
            };
            let t = Instant::now();
            let m = cache.month(store, "BENCH", MONTH, Utc::now()).await.expect("cached");
            let _ = grid_body(&ctx, &m, &sites, &q, &FormErrors::new()).into_string();
            filtered.push(t.elapsed());
        }
        println!(
            "page filtered to open exceptions: median {:.1} ms of 10",
            median(filtered).as_secs_f64() * 1000.0
        );
        let t = Instant::now();
        let xlsx = punchd::attendance::export::xlsx(&month).expect("xlsx");
        println!(
            "xlsx of the month: {:.0} ms, {} KiB",
            t.elapsed().as_secs_f64() * 1000.0,
            xlsx.len() / 1024
        );
    });
}
