//! Server time of every page of the web UI (issue 11, "Speed": every page under 100 ms with 1,000 terminals,
//! 10,000 employees and 10 million punches).
//!
//! The store (SQLite, crash-safe): 10 sites (UTC) of 100 approved push terminals and 1,000 employees each (PIN =
//! employee code); every employee punches IN about 09:00 on one terminal of the site and OUT about 17:30 on
//! another, every day for the 500 days up to today (10,000,000 punches, none in the future); 300 PINs nobody is
//! mapped to punch once a day for the last 30 days (the unmapped queue); a shift, a roster of one site for this
//! month, 20 UI accounts, a webhook sink with everything of the last two days still to deliver, a BioTime and a
//! webhook source. It is built once (a few minutes) and kept in `target/bench-data/ui_pages-<date>.db` (one per
//! day, since the pages look at "now"; `PUNCHD_BENCH_DB` names another file).
//!
//! Each page is asked through the real router (`punchd::web::router`, session cookie and all, no socket) as an
//! admin: the **first** request after the app is made (what the first visitor after a start pays: caches cold),
//! then the **median** and **max** of 20 more. The HTML is read to the end. Pages answering anything but 200 fail
//! the bench.
//!
//! "After a start" is a restart, as in production: an app is made on the file, its per-PIN summary
//! (`attendance::seen_cache`) is read and saved to the store as the web UI's background work does at start
//! (`SeenCache::save`), the app is dropped, and a new app is made and measured, so its first dashboard view loads
//! the saved summary and reads only the punches above it (none here). The first-ever start, with no saved summary
//! (every punch read, what each start paid before the summary was saved), is printed on its own line before the
//! table, with the time of that first whole save. The review grid's first view waits at most
//! `review::GRID_WAIT` and then answers "being computed" (the month goes on in the background); the bench waits
//! for the grid before the 20 more, and prints how long the month took.
//!
//! Run: `cargo bench -p punchd --bench ui_pages` (see BENCHMARKS.md "Web UI: every page at scale").

#![allow(missing_docs)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use chrono::{Datelike, NaiveDate, TimeZone, Utc};
use punchd::app::App;
use punchd::config::{Config, Overrides};
use punchd::domain::{
    Approval, DeviceSn, NewPunch, Pin, PunchState, Role, Source, Transport, VerifyMode,
};
use punchd::store::attendance::{
    AttendanceStore, AuditRecord, Employee, EmployeeStatus, RosterEntry, ShiftDef, Site,
};
use punchd::store::outbox::{NewSink, SinkKind};
use punchd::store::sources::{NewSource, SourceKind};
use punchd::store::sqlite::{Durability, SqliteStore};
use punchd::store::{Batch, DeviceContact, DevicePatch, RawEntry, SeenUpdate, Store};
use tower::ServiceExt;

const SITES: usize = 10;
const TERMINALS_PER_SITE: usize = 100;
const EMPLOYEES_PER_SITE: usize = 1_000;
/// Days of punches (`PUNCHD_BENCH_DAYS` for a quick check on fewer).
const DAYS: i64 = 500;
const UNMAPPED_PINS: usize = 300;
const UNMAPPED_DAYS: i64 = 30;
/// Punches per stored batch while filling.
const BATCH: usize = 50_000;
/// Bump when the fill changes, so an old cached file is not reused.
const FILL_VERSION: u32 = 1;

fn audit() -> AuditRecord {
    AuditRecord {
        author: "bench".into(),
        action: "setup".into(),
        subject: "bench".into(),
        detail: serde_json::json!({}),
    }
}

/// A deterministic jitter (xorshift64*) so every fill stores the same punches.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn site_name(s: usize) -> String {
    format!("SITE{s:02}")
}

fn terminal(s: usize, t: usize) -> DeviceSn {
    DeviceSn::parse(&format!("UIB{s:02}{t:04}")).expect("sn")
}

fn code(i: usize) -> String {
    format!("E{i:05}")
}

fn new_batch() -> Batch {
    Batch::new(RawEntry {
        received_at: Utc::now(),
        device_sn: None,
        source: Source::Import,
        kind: "bench".into(),
        request: "bench fill".into(),
        remote_addr: None,
        body: Vec::new(),
        errors: Vec::new(),
    })
}

fn days() -> i64 {
    std::env::var("PUNCHD_BENCH_DAYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DAYS)
}

async fn fill(store: &SqliteStore, today: NaiveDate) -> usize {
    let now = Utc::now();
    let n_days = days();
    for s in 0..SITES {
        store
            .put_site(
                Site {
                    name: site_name(s),
                    time_zone: "UTC".into(),
                    day_change: "00:00".into(),
                    weekly_offs: vec![6, 7],
                    holidays: Vec::new(),
                },
                audit(),
            )
            .await
            .expect("site");
        for t in 0..TERMINALS_PER_SITE {
            let sn = terminal(s, t);
            store
                .upsert_device(DeviceContact {
                    sn: sn.clone(),
                    poll_delay_secs: 10,
                    approval_if_new: Approval::Approved,
                    transport: Transport::Push,
                    seen_at: now,
                    ip: Some(format!("10.{s}.{}.{}", t / 250, t % 250 + 1)),
                    firmware: Some("Ver 8.0.4.2-20220315".into()),
                    push_version: Some("2.4.1".into()),
                    language: None,
                    device_type: None,
                })
                .await
                .expect("device");
            store
                .update_device(
                    &sn,
                    DevicePatch {
                        site: Some(Some(site_name(s))),
                        alias: Some(Some(format!("Site {s} gate {t}"))),
                        ..DevicePatch::default()
                    },
                )
                .await
                .expect("patch");
        }
    }
    store
        .record_seen(
            (0..SITES)
                .flat_map(|s| (0..TERMINALS_PER_SITE).map(move |t| (s, t)))
                // One terminal in 25 last seen two hours ago (offline on the dashboard).
                .map(|(s, t)| SeenUpdate {
                    sn: terminal(s, t),
                    at: if t % 25 == 0 {
                        now - chrono::Duration::hours(2)
                    } else {
                        now
                    },
                    ip: None,
                })
                .collect(),
        )
        .await
        .expect("seen");
    store
        .put_employees(
            (0..SITES * EMPLOYEES_PER_SITE)
                .map(|i| Employee {
                    code: code(i),
                    name: format!("Employee {i}"),
                    status: EmployeeStatus::Active,
                    joined_on: None,
                    left_on: None,
                    site: Some(site_name(i / EMPLOYEES_PER_SITE)),
                    department: Some(format!("Department {}", i % 17)),
                    default_shift: None,
                })
                .collect(),
            audit(),
        )
        .await
        .expect("employees");
    store
        .put_shift(
            ShiftDef {
                name: "Day".into(),
                definition: serde_json::to_value(punchd::attendance::rules::Shift::new(
                    "Day",
                    chrono::NaiveTime::from_hms_opt(9, 0, 0).expect("time"),
                    chrono::NaiveTime::from_hms_opt(17, 30, 0).expect("time"),
                ))
                .expect("shift"),
            },
            false,
            audit(),
        )
        .await
        .expect("shift");
    let first_of_month = today.with_day(1).expect("first");
    store
        .put_roster(
            (0..EMPLOYEES_PER_SITE)
                .flat_map(|i| {
                    (0..28).map(move |d| RosterEntry {
                        employee_code: code(i),
                        day: first_of_month + chrono::Duration::days(d),
                        shift: Some("Day".into()),
                    })
                })
                .collect(),
            audit(),
        )
        .await
        .expect("roster");

    // Punches, day by day (so each terminal's punches arrive in time order, as they do), none after now.
    let mut rng = Rng(0x5eed_0011_2233_4455);
    let mut batch = new_batch();
    let mut stored = 0;
    let first_day = today - chrono::Duration::days(n_days - 1);
    let push =
        |batch: &mut Batch, sn: DeviceSn, pin: String, local: chrono::NaiveDateTime, state| {
            batch.punches.push(NewPunch {
                device_sn: sn,
                pin: Pin(pin),
                punched_at: local,
                time_zone: "UTC".into(),
                punched_at_utc: Utc.from_utc_datetime(&local),
                punch_state: Some(state),
                verify_mode: Some(VerifyMode(1)),
                work_code: None,
                extra: Vec::new(),
                source: Source::Push,
            });
        };
    for day in 0..n_days {
        let date = first_day + chrono::Duration::days(day);
        let midnight = date.and_hms_opt(0, 0, 0).expect("midnight");
        for i in 0..SITES * EMPLOYEES_PER_SITE {
            let s = i / EMPLOYEES_PER_SITE;
            for (secs, state, t) in [
                (9 * 3600, PunchState::CheckIn, i % TERMINALS_PER_SITE),
                (
                    17 * 3600 + 1800,
                    PunchState::CheckOut,
                    (i + TERMINALS_PER_SITE / 2) % TERMINALS_PER_SITE,
                ),
            ] {
                let jitter = (rng.next() % 3600) as i64 - 1800;
                let local = midnight + chrono::Duration::seconds(secs + jitter);
                if local.and_utc() > now {
                    continue;
                }
                push(&mut batch, terminal(s, t), code(i), local, state);
            }
        }
        if day >= n_days - UNMAPPED_DAYS {
            for u in 0..UNMAPPED_PINS {
                let local = midnight + chrono::Duration::seconds((rng.next() % 86_400) as i64);
                if local.and_utc() > now {
                    continue;
                }
                let t = (rng.next() as usize) % TERMINALS_PER_SITE;
                push(
                    &mut batch,
                    terminal(u % SITES, t),
                    format!("9{u:04}"),
                    local,
                    PunchState::CheckIn,
                );
            }
        }
        if batch.punches.len() >= BATCH || day == n_days - 1 {
            stored += batch.punches.len();
            let full = std::mem::replace(&mut batch, new_batch());
            store.write_batch(full).await.expect("punches");
            if day % 50 == 0 {
                println!("  fill: day {day} of {n_days}, {stored} punches");
            }
        }
    }
    stored
}

/// Accounts, a sink with a backlog, sources: small things added on every run (they need no cache).
async fn extras(store: &dyn Store) {
    if store.list_ui_accounts().await.expect("accounts").is_empty() {
        let hash = punchd::web::ui::session::hash_password("bench-password").expect("hash");
        store
            .create_ui_account("ana", Role::Admin, &hash, Utc::now())
            .await
            .expect("admin");
        for i in 0..19 {
            let role = [Role::Hr, Role::Viewer, Role::Admin][i % 3];
            store
                .create_ui_account(&format!("user{i:02}"), role, &hash, Utc::now())
                .await
                .expect("account");
        }
    }
    if store.list_sinks().await.expect("sinks").is_empty() {
        store
            .create_sink(
                NewSink {
                    name: "hr-hook".into(),
                    kind: SinkKind::Webhook,
                    config: serde_json::json!({"url": "http://127.0.0.1:9/hook", "secret": "s"}),
                    since: Some(Utc::now() - chrono::Duration::days(2)),
                },
                Utc::now(),
            )
            .await
            .expect("sink");
    }
    if store.list_sources().await.expect("sources").is_empty() {
        for (name, kind) in [
            ("bt-hq", SourceKind::Biotime),
            ("gate-app", SourceKind::Webhook),
        ] {
            store
                .create_source(
                    NewSource {
                        name: name.into(),
                        kind,
                        token_hash: (kind == SourceKind::Webhook).then(|| "0".repeat(64)),
                        time_zone: None,
                        settings: serde_json::Map::new(),
                        secret: None,
                    },
                    Utc::now(),
                )
                .await
                .expect("source");
        }
    }
}

fn db_path(today: NaiveDate) -> PathBuf {
    if let Ok(p) = std::env::var("PUNCHD_BENCH_DB") {
        return PathBuf::from(p);
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-data");
    std::fs::create_dir_all(&dir).expect("bench-data dir");
    // Older days' files are stale ("now" moved): remove them.
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("ui_pages-") && !name.contains(&today.format("%Y%m%d").to_string())
            {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    dir.join(format!(
        "ui_pages-v{FILL_VERSION}-{}.db",
        today.format("%Y%m%d")
    ))
}

async fn send(app: &App, request: Request<Body>) -> (StatusCode, Vec<u8>, Option<String>) {
    let response = punchd::web::router(app.clone())
        .oneshot(request)
        .await
        .expect("response");
    let status = response.status();
    let cookie = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("pd_session="))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    let body = axum::body::to_bytes(response.into_body(), 1 << 26)
        .await
        .expect("body");
    (status, body.to_vec(), cookie)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let today = Utc::now().date_naive();
        let path = db_path(today);
        let fresh = !path.exists();
        let store = SqliteStore::open(&path, Durability::CrashSafe).expect("open");
        if fresh {
            let started = Instant::now();
            let n = fill(&store, today).await;
            println!(
                "filled {}: {n} punches in {:.0} s",
                path.display(),
                started.elapsed().as_secs_f64()
            );
        } else {
            println!("reusing {}", path.display());
        }
        extras(&store).await;
        drop(store);
        let db_mb = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) / 1_000_000;
        println!("database: {db_mb} MB");

        // The first-ever start: no saved per-PIN summary (an earlier run of the bench saved one in the file).
        {
            let conn = rusqlite::Connection::open(&path).expect("open to forget the summary");
            conn.busy_timeout(Duration::from_secs(30)).expect("busy timeout");
            conn.execute_batch("DELETE FROM pin_summary; DELETE FROM pin_summary_cover;")
                .expect("forget the saved summary");
        }
        let mut config = Config::load(None, &Overrides::default()).expect("config");
        config.database = path.clone();
        let first_start = App::with_store(
            config.clone(),
            Arc::new(SqliteStore::open(&path, Durability::CrashSafe).expect("open")),
        )
        .await
        .expect("app");
        let t = Instant::now();
        let seen = first_start
            .seen
            .get(&first_start.store)
            .await
            .expect("pins seen");
        let read_whole = t.elapsed();
        let t = Instant::now();
        assert!(first_start
            .seen
            .save(first_start.store.as_ref())
            .await
            .expect("save the summary"));
        println!(
            "first-ever start (no saved summary): the per-PIN summary read whole in {} ms ({} pairs; until then \
             the dashboard, terminals and unmapped pages answer 'being prepared'), saved whole in {} ms (in the \
             background)",
            ms(read_whole),
            seen.len(),
            ms(t.elapsed())
        );
        drop(seen);
        drop(first_start);

        // A restart: a new app on the file with the saved summary, as after `punchd serve` starts again.
        let store = SqliteStore::open(&path, Durability::CrashSafe).expect("open");
        let app = App::with_store(config, Arc::new(store)).await.expect("app");
        let (status, _, cookie) = send(
            &app,
            Request::post("/ui/login")
                .header(header::HOST, "hub:8080")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from("name=ana&password=bench-password"))
                .expect("request"),
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "sign-in");
        let cookie = cookie.expect("session cookie");
        // The roster page shows this month (the roster lines are this month's).
        let month = today.format("%Y-%m").to_string();
        // The review pages show last month: complete whatever today's date (the current month has a single day
        // on the 1st), and the month HR reviews and signs off at the start of a month.
        let review_first = (today.with_day(1).expect("first") - chrono::Duration::days(1))
            .with_day(1)
            .expect("first of last month");
        let review_month = review_first.format("%Y-%m").to_string();
        let day = review_first + chrono::Duration::days(14);
        let sn = terminal(3, 42);
        let pages: Vec<(&str, String)> = vec![
            ("dashboard", "/ui".into()),
            ("live", "/ui/live".into()),
            ("live, one site", "/ui/live?site=SITE03".into()),
            ("terminals", "/ui/terminals".into()),
            ("terminals, searched", "/ui/terminals?q=gate+42".into()),
            ("terminal", format!("/ui/terminals/{sn}")),
            ("people", "/ui/people".into()),
            ("people, searched", "/ui/people?q=Employee+4242".into()),
            ("employee", "/ui/people/edit?code=E04242".into()),
            ("mappings", "/ui/mappings".into()),
            ("unmapped", "/ui/unmapped".into()),
            ("shifts", "/ui/shifts".into()),
            ("roster", format!("/ui/roster?month={month}")),
            ("policy", "/ui/policy".into()),
            ("sites", "/ui/sites".into()),
            (
                "review",
                format!("/ui/review?site=SITE03&month={review_month}"),
            ),
            (
                "review day",
                format!(
                    "/ui/review/day?site=SITE03&month={review_month}&employee=E03042&date={day}"
                ),
            ),
            ("audit", "/ui/audit".into()),
            ("delivery", "/ui/delivery".into()),
            ("sink", "/ui/delivery/sink?name=hr-hook".into()),
            ("sources", "/ui/sources".into()),
            ("accounts", "/ui/accounts".into()),
            ("account", "/ui/accounts/user05".into()),
        ];
        let get = |path: &str| {
            Request::get(path)
                .header(header::HOST, "hub:8080")
                .header(header::COOKIE, &cookie)
                .body(Body::empty())
                .expect("request")
        };
        println!(
            "{:<22} {:>10} {:>10} {:>10} {:>8}",
            "page", "first ms", "median ms", "max ms", "KiB"
        );
        let mut worst = Duration::ZERO;
        for (name, path) in &pages {
            let t = Instant::now();
            let (status, mut body, _) = send(&app, get(path)).await;
            let first = t.elapsed();
            assert_eq!(
                status,
                StatusCode::OK,
                "{name} {path}: {}",
                String::from_utf8_lossy(&body[..body.len().min(2000)])
            );
            if *name == "dashboard" {
                // The month figures are computed in the background after the first view; wait for them so the
                // other pages are measured without that computation running beside them.
                let t = Instant::now();
                loop {
                    let (_, body, _) = send(&app, get(path)).await;
                    if !String::from_utf8_lossy(&body).contains("being computed") {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                println!(
                    "  (dashboard: the {SITES} sites' month figures computed in the background in {:.1} s)",
                    t.elapsed().as_secs_f64()
                );
            }
            if String::from_utf8_lossy(&body).contains("<meta http-equiv=\"refresh\"") {
                // The review grid's month is being computed in the background; follow the page's refresh until
                // the grid is there (its size is the one printed).
                let t = Instant::now();
                loop {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let (_, again, _) = send(&app, get(path)).await;
                    if !String::from_utf8_lossy(&again).contains("<meta http-equiv=\"refresh\"") {
                        body = again;
                        break;
                    }
                }
                println!(
                    "  ({name}: the first view said \"being computed\"; the month was there {:.2} s later)",
                    t.elapsed().as_secs_f64()
                );
            }
            let mut times = Vec::new();
            for _ in 0..20 {
                let t = Instant::now();
                let (status, _, _) = send(&app, get(path)).await;
                times.push(t.elapsed());
                assert_eq!(status, StatusCode::OK, "{name}");
            }
            let max = *times.iter().max().expect("times");
            worst = worst.max(max);
            println!(
                "{:<22} {:>10} {:>10} {:>10} {:>8}",
                name,
                ms(first),
                ms(median(times)),
                ms(max),
                body.len() / 1024
            );
        }
        println!("slowest warm request of any page: {} ms", ms(worst));

        // What the pages did on every view before (for the record): the whole per-PIN summary (dashboard,
        // terminals, unmapped queue), one site's month (dashboard, each site, at most once a minute), and loading
        // the chart's 74 hours of punches of one site.
        let store = app.store.as_ref();
        let t = Instant::now();
        let saved = store.load_pin_summary().await.expect("load the summary");
        println!(
            "store.load_pin_summary(): {} ms ({} pairs)",
            ms(t.elapsed()),
            saved.map_or(0, |(_, pairs)| pairs.len())
        );
        let t = Instant::now();
        let seen = store.pins_seen().await.expect("pins seen");
        println!(
            "store.pins_seen() over every punch: {} ms ({} device-PIN pairs)",
            ms(t.elapsed()),
            seen.len()
        );
        let t = Instant::now();
        let m = punchd::attendance::monthly::month(store, "SITE03", &review_month, Utc::now())
            .await
            .expect("month");
        println!(
            "monthly::month of one site ({} employees): {} ms",
            m.employees.len(),
            ms(t.elapsed())
        );
        let devices: Vec<DeviceSn> = (0..TERMINALS_PER_SITE).map(|t| terminal(3, t)).collect();
        let t = Instant::now();
        let punches = store
            .punches_between(devices, Utc::now() - chrono::Duration::hours(74), Utc::now())
            .await
            .expect("punches");
        println!(
            "punches_between, one site's 100 terminals, 74 h: {} ms ({} punches)",
            ms(t.elapsed()),
            punches.len()
        );
    });
}
