//! Pull terminals, played by `zk_sim::pull::PullSim` on 127.0.0.1:0: `punchd pull` (the real binary), and the
//! server's scheduler in process (short timeouts, so failures show in milliseconds) with results read through
//! the JSON API router, plus one run of the real `punchd serve` with a `[[devices]]` entry.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, NaiveDateTime, Utc};
use http_body_util::BodyExt;
use punchd::app::App;
use punchd::config::{Config, Overrides};
use punchd::domain::{DeviceSn, Transport};
use punchd::sources::pull::PullSettings;
use punchd::store::sqlite::{Durability, SqliteStore};
use punchd::store::{DevicePatch, PunchFilter};
use serde_json::{json, Value};
use tower::ServiceExt;
use zk_pull::records::Attendance;
use zk_sim::pull::{Faults, Profile, PullSim, PullSimConfig, PullSimHandle};

use crate::harness::{self, Options, Server};

const SIM_SN: &str = "SIM0000000001";
const TOKEN: &str = "pull-test-token";

fn newest_punch() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 3, 6)
        .and_then(|d| d.and_hms_opt(18, 0, 0))
        .unwrap()
}

fn sim_config(profile: Profile) -> PullSimConfig {
    PullSimConfig {
        punches_until: Some(newest_punch()),
        ..PullSimConfig::new(profile)
    }
}

async fn start_sim(config: PullSimConfig) -> PullSimHandle {
    let sim = PullSim::bind("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let handle = sim.handle();
    tokio::spawn(sim.run(std::future::pending::<()>()));
    handle
}

/// A simulator on its own runtime, for the tests that run the binary from a plain thread.
fn sim_on_runtime(config: PullSimConfig) -> (tokio::runtime::Runtime, PullSimHandle) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let handle = rt.block_on(start_sim(config));
    (rt, handle)
}

/// A record as `punchd pull --format json` prints it; `uid` only where the layout carries one (not the
/// 16-byte ZK6 layout, which has only the PIN).
fn record_json(a: &Attendance, with_uid: bool) -> Value {
    let uid = if with_uid { a.uid } else { 0 };
    json!({
        "pin": a.user_id,
        "punched_at": a.time.format("%Y-%m-%dT%H:%M:%S").to_string(),
        "punch_state": a.punch,
        "verify_mode": a.status,
        "uid": uid,
    })
}

fn pull_cli(args: &[&str]) -> harness::CliOutput {
    let out = harness::punchd_command()
        .args(["pull", "--time-zone", "Asia/Kolkata"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    harness::CliOutput {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

// ---- punchd pull (the binary) ----

#[test]
fn punchd_pull_prints_info_and_exactly_the_log_as_json_table_and_csv() {
    let (_rt, sim) = sim_on_runtime(sim_config(Profile::Zk8));
    let port = sim.local_addr().port().to_string();
    let expected: Vec<Value> = sim
        .attendance()
        .iter()
        .map(|a| record_json(a, true))
        .collect();
    assert_eq!(expected.len(), 100);

    let out = pull_cli(&["127.0.0.1", "--port", &port, "--format", "json"]);
    assert!(out.ok, "{}", out.stderr);
    let json: Value = serde_json::from_str(&out.stdout).unwrap();
    let device = &json["device"];
    assert_eq!(device["serial_number"], SIM_SN);
    assert_eq!(device["platform"], "ZEM560_TFT");
    assert_eq!(device["firmware"], "Ver 6.60 Apr 28 2015");
    assert_eq!(device["name"], "punchd-sim");
    assert_eq!(device["mac"], "00:17:61:00:00:01");
    let sizes = sim.free_sizes();
    assert_eq!(device["users"], sizes.users);
    assert_eq!(device["user_capacity"], sizes.user_capacity);
    assert_eq!(device["punches"], 100);
    assert_eq!(device["punch_capacity"], sizes.record_capacity);
    assert_eq!(device["time_zone"], "Asia/Kolkata");
    // The simulator's clock is UTC; Kolkata is 5:30 ahead.
    let drift = device["clock_drift_secs"].as_i64().unwrap();
    assert!((drift + 19_800).abs() <= 5, "drift {drift}");
    assert!(
        json["attendance"] == Value::Array(expected),
        "{}",
        out.stdout
    );

    let out = pull_cli(&["127.0.0.1", "--port", &port, "--format", "csv"]);
    assert!(out.ok, "{}", out.stderr);
    let mut lines = out.stdout.lines();
    assert_eq!(
        lines.next(),
        Some("pin,punched_at,punch_state,verify_mode,uid")
    );
    let rows: Vec<String> = lines.map(str::to_owned).collect();
    let want: Vec<String> = sim
        .attendance()
        .iter()
        .map(|a| {
            format!(
                "{},{},{},{},{}",
                a.user_id,
                a.time.format("%Y-%m-%d %H:%M:%S"),
                a.punch,
                a.status,
                a.uid
            )
        })
        .collect();
    assert_eq!(rows, want);
    assert!(
        out.stderr.contains(&format!("serial number: {SIM_SN}")),
        "{}",
        out.stderr
    );

    let out = pull_cli(&[&format!("127.0.0.1:{port}"), "--format", "table"]);
    assert!(out.ok, "{}", out.stderr);
    let text = out.stdout;
    assert!(
        text.contains(&format!("serial number  {SIM_SN}\n")),
        "{text}"
    );
    assert!(text.contains("punches        100 of "), "{text}");
    let table: Vec<&str> = text.lines().skip_while(|l| !l.is_empty()).skip(1).collect();
    assert_eq!(table.len(), 101, "{text}");
    assert!(table[0].starts_with("pin"), "{text}");
    let first = &sim.attendance()[0];
    let cells: Vec<&str> = table[1].split_whitespace().collect();
    let state = first.punch.to_string();
    let day = first.time.format("%Y-%m-%d").to_string();
    assert_eq!(cells[0], first.user_id);
    assert_eq!(cells[1], day);
    assert_eq!(cells[3], state);
}

#[test]
fn punchd_pull_over_udp_with_a_comm_key_and_a_wrong_key_fails_readably() {
    let (_rt, sim) = sim_on_runtime(PullSimConfig {
        comm_key: 123_456,
        ..sim_config(Profile::Zk6)
    });
    let port = sim.local_addr().port().to_string();
    let out = pull_cli(&[
        "127.0.0.1",
        "--port",
        &port,
        "--udp",
        "--comm-key",
        "123456",
        "--format",
        "json",
    ]);
    assert!(out.ok, "{}", out.stderr);
    let json: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["device"]["serial_number"], SIM_SN);
    let expected: Vec<Value> = sim
        .attendance()
        .iter()
        .map(|a| record_json(a, false))
        .collect();
    assert!(
        json["attendance"] == Value::Array(expected),
        "{}",
        out.stdout
    );

    // Over TCP with the key too.
    let out = pull_cli(&[
        "127.0.0.1",
        "--port",
        &port,
        "--comm-key",
        "123456",
        "--format",
        "json",
    ]);
    assert!(out.ok, "{}", out.stderr);

    for transport in [&["--udp"][..], &[][..]] {
        let mut args = vec!["127.0.0.1", "--port", &port, "--comm-key", "1"];
        args.extend_from_slice(transport);
        let out = pull_cli(&args);
        assert!(!out.ok);
        assert_eq!(out.stdout, "");
        assert!(
            out.stderr
                .contains(&format!("connecting to 127.0.0.1:{port}"))
                && out.stderr.contains("wrong comm key"),
            "{}",
            out.stderr
        );
    }
    assert!(sim.counters().auth_failures >= 2);
}

#[test]
fn punchd_pull_against_nothing_says_connection_refused() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let out = pull_cli(&["127.0.0.1", "--port", &port.to_string()]);
    assert!(!out.ok);
    assert!(out.stderr.contains("connection refused"), "{}", out.stderr);
}

// ---- the scheduler, in process ----

fn fast() -> PullSettings {
    PullSettings {
        timeout: Duration::from_secs(1),
        retries: 0,
        keep_alive_every: Duration::from_millis(500),
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(400),
        check_every: Duration::from_millis(50),
        ..PullSettings::default()
    }
}

struct Hub {
    app: App,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Hub {
    async fn start(settings: PullSettings) -> Hub {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("punchd.db");
        let config = Config::load(
            None,
            &Overrides {
                database: Some(db.display().to_string()),
                default_time_zone: Some("Asia/Kolkata".into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        let store = SqliteStore::open(&db, Durability::CrashSafe).unwrap();
        let app = App::with_store(config, Arc::new(store)).await.unwrap();
        app.store
            .create_token("test", &punchd::web::auth::hash_token(TOKEN), Utc::now())
            .await
            .unwrap();
        let (stop, rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let tasks = vec![
            tokio::spawn(app.clone().run_housekeeping(stopped(rx.clone()))),
            tokio::spawn(punchd::sources::pull::run_scheduler_with(
                app.clone(),
                settings,
                stopped(rx),
            )),
        ];
        Hub {
            app,
            stop: Some(stop),
            tasks,
            _dir: dir,
        }
    }

    /// Register a pull device the way `POST /api/v1/devices` does.
    async fn add(&self, sn: &str, addr: SocketAddr, patch: DevicePatch) -> DeviceSn {
        let sn = DeviceSn::parse(sn).unwrap();
        let device = punchd::devices::registry::new_pull_device(
            sn.clone(),
            patch.transport.unwrap_or(Transport::Tcp),
            addr.to_string(),
            patch.comm_key.unwrap_or(0),
            patch.pull_interval_secs.unwrap_or(1),
            patch.clear_after_pull.unwrap_or(false),
            Utc::now(),
        );
        let device = self.app.store.create_device(device).await.unwrap();
        self.app.registry.update(device);
        sn
    }

    async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let request = axum::http::Request::builder()
            .method(method)
            .uri(format!("/api/v1{path}"))
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/json")
            .body(axum::body::Body::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            ))
            .unwrap();
        let response = punchd::web::router(self.app.clone())
            .oneshot(request)
            .await
            .unwrap();
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, value)
    }

    async fn get(&self, path: &str) -> Value {
        let (status, value) = self.api("GET", path, None).await;
        assert_eq!(status, 200, "GET {path}: {value}");
        value
    }

    async fn count(&self, sn: &DeviceSn) -> u64 {
        self.app
            .store
            .count_punches(&PunchFilter {
                device_sn: Some(sn.clone()),
                ..PunchFilter::default()
            })
            .await
            .unwrap()
    }

    /// Queue a command through the API and wait for its result.
    async fn command(&self, sn: &DeviceSn, kind: Value) -> Value {
        let (status, queued) = self
            .api(
                "POST",
                &format!("/devices/{sn}/commands"),
                Some(kind.clone()),
            )
            .await;
        assert_eq!(status, 201, "{kind}: {queued}");
        let id = queued[0]["id"].as_i64().unwrap();
        assert_eq!(queued[0]["wire"], Value::Null);
        let path = format!("/commands/{id}");
        wait_for(&format!("result of {kind}"), || async {
            let c = self.get(&path).await;
            matches!(c["status"].as_str(), Some("succeeded" | "failed")).then_some(c)
        })
        .await
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        for task in self.tasks.drain(..) {
            tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .unwrap()
                .unwrap();
        }
    }
}

async fn wait_for<T, F: Future<Output = Option<T>>>(what: &str, mut f: impl FnMut() -> F) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what}: not within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn sorted(mut v: Vec<(String, String, i64, i64)>) -> Vec<(String, String, i64, i64)> {
    v.sort();
    v
}

fn sim_punches(sim: &PullSimHandle) -> Vec<(String, String, i64, i64)> {
    sorted(
        sim.attendance()
            .iter()
            .map(|a| {
                (
                    a.user_id.clone(),
                    a.time.format("%Y-%m-%dT%H:%M:%S").to_string(),
                    i64::from(a.punch),
                    i64::from(a.status),
                )
            })
            .collect(),
    )
}

fn api_punches(list: &Value) -> Vec<(String, String, i64, i64)> {
    sorted(
        list["punches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["pin"].as_str().unwrap().to_owned(),
                    p["punched_at"].as_str().unwrap().to_owned(),
                    p["punch_state"].as_i64().unwrap(),
                    p["verify_mode"].as_i64().unwrap(),
                )
            })
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_pulls_store_each_punch_once_and_then_only_new_ones() {
    let sim = start_sim(sim_config(Profile::Zk8)).await;
    let hub = Hub::start(fast()).await;
    let sn = hub
        .add(SIM_SN, sim.local_addr(), DevicePatch::default())
        .await;

    wait_for("first pull", || async {
        (hub.count(&sn).await == 100).then_some(())
    })
    .await;
    let list = hub.get(&format!("/punches?device={sn}&limit=1000")).await;
    assert_eq!(api_punches(&list), sim_punches(&sim));
    let first = &list["punches"][0];
    assert_eq!(first["source"], "pull");
    assert_eq!(first["time_zone"], "Asia/Kolkata");
    let journal_id = first["journal_id"].as_i64().unwrap();
    let journal = hub.get(&format!("/journal/{journal_id}")).await;
    assert_eq!(journal["kind"], "pull:attendance");
    assert_eq!(journal["source"], "pull");
    assert_eq!(journal["n_stored"], 100);

    // More pulls (every second) store nothing new and journal nothing.
    let requests = sim.counters().requests;
    wait_for("two more pulls", || async {
        (sim.counters().requests > requests + 30).then_some(())
    })
    .await;
    assert_eq!(hub.count(&sn).await, 100);
    let list = hub.get(&format!("/punches?device={sn}&limit=1000")).await;
    assert!(list["punches"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["journal_id"] == journal_id));

    // A new punch arrives at the next pull, alone in its journal entry.
    let punch = sim.punch("3", 1, 15);
    wait_for("new punch", || async {
        (hub.count(&sn).await == 101).then_some(())
    })
    .await;
    let newest = hub
        .get(&format!("/punches?device={sn}&pin=3&limit=1000"))
        .await;
    let newest = newest["punches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["journal_id"] != journal_id)
        .cloned()
        .unwrap();
    assert_eq!(
        newest["punched_at"],
        punch.time.format("%Y-%m-%dT%H:%M:%S").to_string()
    );
    assert_eq!(newest["punch_state"], 1);
    assert_eq!(newest["verify_mode"], 15);
    let journal = hub.get(&format!("/journal/{}", newest["journal_id"])).await;
    assert_eq!(journal["n_stored"], 1);
    assert_eq!(journal["n_records"], 1);
    // The journal holds the first pull, the users read once, and this pull: pulls that found nothing new
    // wrote nothing.
    assert_eq!(newest["journal_id"], journal_id + 2);
    let users_entry = hub.get(&format!("/journal/{}", journal_id + 1)).await;
    assert_eq!(users_entry["kind"], "pull:users");

    // Health and facts: last seen, no error, the clock set to Kolkata time, counts in the info.
    let device = wait_for("device facts", || async {
        let d = hub.get(&format!("/devices/{sn}")).await;
        (d["info"]["TransactionCount"] == 101).then_some(d)
    })
    .await;
    assert!(device["last_seen"].is_string(), "{device}");
    assert_eq!(device["last_error"], Value::Null);
    assert!(
        device["clock_drift_secs"].as_i64().unwrap().abs() <= 2,
        "{device}"
    );
    assert_eq!(device["firmware"], "Ver 6.60 Apr 28 2015");
    assert_eq!(device["device_type"], "ZEM560_TFT");
    assert_eq!(device["info"]["UserCount"], 10);
    assert_eq!(device["info"]["MAC"], "00:17:61:00:00:01");
    let kolkata = Utc::now()
        .with_timezone(&chrono_tz::Asia::Kolkata)
        .naive_local();
    assert!((sim.device_time() - kolkata).num_seconds().abs() <= 2);
    // Users were read into the store.
    let users = hub.get(&format!("/devices/{sn}/users")).await;
    assert_eq!(users.as_array().unwrap().len(), sim.users().len());
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_device_stores_punches_as_they_happen_and_runs_commands_promptly() {
    let sim = start_sim(PullSimConfig {
        punches: 5,
        ..sim_config(Profile::Zk8)
    })
    .await;
    let hub = Hub::start(fast()).await;
    let sn = hub
        .add(
            SIM_SN,
            sim.local_addr(),
            DevicePatch {
                pull_interval_secs: Some(0),
                ..DevicePatch::default()
            },
        )
        .await;
    wait_for("live registration", || async {
        (sim.live_subscribers() == 1).then_some(())
    })
    .await;
    assert_eq!(
        hub.count(&sn).await,
        5,
        "the log is caught up before listening"
    );
    sim.punch("7", 0, 1);
    wait_for("live punch", || async {
        (hub.count(&sn).await == 6).then_some(())
    })
    .await;
    let list = hub.get(&format!("/punches?device={sn}&pin=7")).await;
    let journal_id = list["punches"][0]["journal_id"].as_i64().unwrap();
    let journal = hub.get(&format!("/journal/{journal_id}")).await;
    assert_eq!(journal["kind"], "pull:live");

    // A command runs while the connection is live, then the device listens again.
    let unlock = hub.command(&sn, json!({"type": "unlock"})).await;
    assert_eq!(unlock["status"], "succeeded", "{unlock}");
    assert_eq!(sim.counters().unlocks, 1);

    // A reboot drops the connection; punchd reconnects, catches up and listens again.
    let reboot = hub.command(&sn, json!({"type": "reboot"})).await;
    assert_eq!(reboot["status"], "succeeded", "{reboot}");
    assert_eq!(sim.counters().restarts, 1);
    wait_for("live again", || async {
        (sim.live_subscribers() == 1).then_some(())
    })
    .await;
    sim.punch("8", 1, 15);
    wait_for("live punch after reconnect", || async {
        (hub.count(&sn).await == 7).then_some(())
    })
    .await;
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_punch_made_while_a_live_device_runs_a_command_is_caught_up_from_the_log() {
    let sim = start_sim(PullSimConfig {
        punches: 5,
        faults: Faults {
            reply_delay: Duration::from_millis(20),
            ..Faults::default()
        },
        ..sim_config(Profile::Zk8)
    })
    .await;
    let hub = Hub::start(fast()).await;
    let sn = hub
        .add(
            SIM_SN,
            sim.local_addr(),
            DevicePatch {
                pull_interval_secs: Some(0),
                ..DevicePatch::default()
            },
        )
        .await;
    wait_for("live registration", || async {
        (sim.live_subscribers() == 1).then_some(())
    })
    .await;
    let watcher = {
        let sim = sim.clone();
        tokio::spawn(async move {
            while sim.live_subscribers() > 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            // Nobody listens: the punch only reaches the log.
            sim.punch("9200", 0, 1);
            sim.counters().events_sent
        })
    };
    let c = hub.command(&sn, json!({"type": "unlock"})).await;
    assert_eq!(c["status"], "succeeded", "{c}");
    assert_eq!(watcher.await.unwrap(), 0, "no live event was sent for it");
    wait_for("caught up", || async {
        (hub.count(&sn).await == 6).then_some(())
    })
    .await;
    let list = hub.get(&format!("/punches?device={sn}&pin=9200")).await;
    let journal_id = list["punches"][0]["journal_id"].as_i64().unwrap();
    let journal = hub.get(&format!("/journal/{journal_id}")).await;
    assert_eq!(journal["kind"], "pull:attendance");
    wait_for("live again", || async {
        (sim.live_subscribers() == 1).then_some(())
    })
    .await;
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_on_a_pull_terminal_report_results_through_the_api() {
    let sim = start_sim(sim_config(Profile::Zk8)).await;
    let hub = Hub::start(fast()).await;
    let sn = hub
        .add(
            SIM_SN,
            sim.local_addr(),
            DevicePatch {
                pull_interval_secs: Some(3600),
                ..DevicePatch::default()
            },
        )
        .await;
    wait_for("first pull", || async {
        (hub.count(&sn).await == 100).then_some(())
    })
    .await;

    let c = hub
        .command(
            &sn,
            json!({"type": "upsert_user", "pin": "077", "name": "Zoe", "privilege": 0, "card": "4242"}),
        )
        .await;
    assert_eq!(c["status"], "succeeded", "{c}");
    assert_eq!(c["return_code"], 0);
    let zoe = sim
        .users()
        .into_iter()
        .find(|u| u.user_id == "077")
        .unwrap();
    assert_eq!(
        (zoe.name.as_str(), zoe.card, zoe.privilege),
        ("Zoe", 4242, 0)
    );
    let user = |users: &Value| {
        users
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["pin"] == "077")
            .cloned()
    };
    let stored = wait_for("user in the store", || async {
        user(&hub.get(&format!("/devices/{sn}/users")).await)
    })
    .await;
    assert_eq!(stored["name"], "Zoe");
    assert_eq!(stored["card"], "4242");
    assert_eq!(stored["enabled"], true);
    // A rename is in punchd's copy as soon as the command succeeded (same transaction as the result).
    let c = hub
        .command(
            &sn,
            json!({"type": "upsert_user", "pin": "077", "name": "Zoe Ng", "privilege": 0, "card": "4242"}),
        )
        .await;
    assert_eq!(c["status"], "succeeded", "{c}");
    let stored = user(&hub.get(&format!("/devices/{sn}/users")).await).unwrap();
    assert_eq!(stored["name"], "Zoe Ng");

    let c = hub
        .command(&sn, json!({"type": "disable_user", "pin": "077"}))
        .await;
    assert_eq!(c["status"], "succeeded", "{c}");
    let zoe = sim
        .users()
        .into_iter()
        .find(|u| u.user_id == "077")
        .unwrap();
    assert!(!zoe.is_enabled());
    let stored = user(&hub.get(&format!("/devices/{sn}/users")).await).unwrap();
    assert_eq!(stored["enabled"], false);

    let c = hub
        .command(&sn, json!({"type": "enable_user", "pin": "077"}))
        .await;
    assert_eq!(c["status"], "succeeded", "{c}");
    assert!(sim
        .users()
        .iter()
        .any(|u| u.user_id == "077" && u.is_enabled()));
    let stored = user(&hub.get(&format!("/devices/{sn}/users")).await).unwrap();
    assert_eq!(stored["enabled"], true);

    let c = hub
        .command(&sn, json!({"type": "delete_user", "pin": "077"}))
        .await;
    assert_eq!(c["status"], "succeeded", "{c}");
    assert!(!sim.users().iter().any(|u| u.user_id == "077"));
    assert_eq!(user(&hub.get(&format!("/devices/{sn}/users")).await), None);

    let c = hub
        .command(&sn, json!({"type": "delete_user", "pin": "999999"}))
        .await;
    assert_eq!(c["status"], "failed", "{c}");
    assert_eq!(c["return_code"], -1);
    assert_eq!(c["message"], "no user with PIN 999999 on the terminal");
    // A PIN a pull terminal cannot hold is refused when queued (pull.md §8.1, §8.2: 1–9 digits).
    let (status, body) = hub
        .api(
            "POST",
            &format!("/devices/{sn}/commands"),
            Some(json!({"type": "delete_user", "pin": "nobody"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");

    sim.set_device_time(newest_punch());
    let c = hub.command(&sn, json!({"type": "sync_time"})).await;
    assert_eq!(c["status"], "succeeded", "{c}");
    let kolkata = Utc::now()
        .with_timezone(&chrono_tz::Asia::Kolkata)
        .naive_local();
    assert!((sim.device_time() - kolkata).num_seconds().abs() <= 2);
    assert!(
        c["message"].as_str().unwrap().contains("(Asia/Kolkata)"),
        "{c}"
    );

    let c = hub
        .command(&sn, json!({"type": "raw", "text": "INFO"}))
        .await;
    assert_eq!(c["status"], "failed", "{c}");

    let c = hub
        .command(&sn, json!({"type": "clear_attendance_log"}))
        .await;
    assert_eq!(c["status"], "succeeded", "{c}");
    assert_eq!(
        c["message"],
        "attendance log cleared; punchd holds all 100 punches it had"
    );
    assert_eq!(sim.attendance_count(), 0);
    assert_eq!(hub.count(&sn).await, 100);

    let c = hub.command(&sn, json!({"type": "reboot"})).await;
    assert_eq!(c["status"], "succeeded", "{c}");
    assert_eq!(sim.counters().restarts, 1);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_after_pull_clears_only_what_punchd_holds() {
    let sim = start_sim(sim_config(Profile::Zk8)).await;
    let hub = Hub::start(fast()).await;
    let sn = hub
        .add(
            SIM_SN,
            sim.local_addr(),
            DevicePatch {
                clear_after_pull: Some(true),
                ..DevicePatch::default()
            },
        )
        .await;
    wait_for("pull and clear", || async {
        (hub.count(&sn).await == 100 && sim.attendance_count() == 0).then_some(())
    })
    .await;
    // A cleared log does not confuse the cursor: the next punch is stored, then cleared too.
    sim.punch("4", 0, 1);
    wait_for("second pull and clear", || async {
        (hub.count(&sn).await == 101 && sim.attendance_count() == 0).then_some(())
    })
    .await;
    // A record punchd cannot keep (no PIN) stops the clear; the rest is stored.
    let time = sim.device_time();
    sim.add_punch(Attendance {
        uid: 0,
        user_id: String::new(),
        time,
        status: 1,
        punch: 0,
    });
    sim.punch("9005", 0, 1);
    wait_for("punch 9005 stored", || async {
        (hub.count(&sn).await == 102).then_some(())
    })
    .await;
    let requests = sim.counters().requests;
    // The session that stored punch 9005 decides about the clear after storing; wait until the next one runs.
    wait_for("one more pull", || async {
        (sim.counters().requests > requests + 20).then_some(())
    })
    .await;
    assert_eq!(sim.attendance_count(), 2, "not cleared");
    assert_eq!(hub.count(&sn).await, 102);
    let journal_of = |pin: &'static str| {
        let hub = &hub;
        async move {
            let list = hub
                .get(&format!("/punches?device={SIM_SN}&pin={pin}"))
                .await;
            list["punches"][0]["journal_id"].as_i64().unwrap()
        }
    };
    let refused_at = journal_of("9005").await;
    let journal = hub.get(&format!("/journal/{refused_at}")).await;
    assert_eq!(journal["errors"].as_array().unwrap().len(), 1, "{journal}");

    // While the log stays as it was (the pull above), pulls do not journal it again; once it changes, the
    // clear is tried (and refused) again with the new punch stored.
    sim.punch("9006", 0, 1);
    wait_for("punch 9006 stored", || async {
        (hub.count(&sn).await == 103).then_some(())
    })
    .await;
    assert_eq!(journal_of("9006").await, refused_at + 1);
    assert_eq!(sim.attendance_count(), 3, "not cleared");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_refuses_when_a_punch_arrives_during_the_pull() {
    let sim = start_sim(PullSimConfig {
        faults: Faults {
            reply_delay: Duration::from_millis(40),
            ..Faults::default()
        },
        ..sim_config(Profile::Zk8)
    })
    .await;
    let hub = Hub::start(PullSettings {
        timeout: Duration::from_secs(2),
        ..fast()
    })
    .await;
    let sn = hub
        .add(
            SIM_SN,
            sim.local_addr(),
            DevicePatch {
                pull_interval_secs: Some(3600),
                ..DevicePatch::default()
            },
        )
        .await;
    wait_for("first session done", || async {
        let users = hub.app.store.list_device_users(&sn).await.unwrap();
        (users.len() == 10 && sim.is_enabled()).then_some(())
    })
    .await;
    assert_eq!(hub.count(&sn).await, 100);

    // Someone punches right after the terminal counted its log for the clear.
    let watcher = {
        let sim = sim.clone();
        tokio::spawn(async move {
            while sim.is_enabled() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let counted = sim.counters().requests;
            while sim.counters().requests == counted {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            sim.punch("9", 0, 1);
        })
    };
    let c = hub
        .command(&sn, json!({"type": "clear_attendance_log"}))
        .await;
    watcher.await.unwrap();
    assert_eq!(c["status"], "failed", "{c}");
    // The punch lands before the read (the count taken for the clear is then short) or after it (the
    // re-count right before clearing catches it); which one depends on the scheduler, both refuse.
    let message = c["message"].as_str().unwrap();
    assert!(
        message == "not cleared: the terminal reports 100 punches but 101 were read"
            || message
                == "not cleared: the terminal's log changed during the pull (100 punches, then 101); \
                    the next pull reads them",
        "{c}"
    );
    assert_eq!(sim.attendance_count(), 101);
    assert!(sim.is_enabled(), "the keypad is unlocked again");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_wrong_key_silent_and_impostor_devices_show_readable_errors() {
    let sim = start_sim(PullSimConfig {
        comm_key: 1234,
        ..sim_config(Profile::Zk8)
    })
    .await;
    let closed: SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    // Accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let hub = Hub::start(fast()).await;
    let refused = hub.add("REFUSED1", closed, DevicePatch::default()).await;
    let wrong_key = hub
        .add(
            SIM_SN,
            sim.local_addr(),
            DevicePatch {
                comm_key: Some(1),
                ..DevicePatch::default()
            },
        )
        .await;
    let silent = hub
        .add("SILENT1", silent_addr, DevicePatch::default())
        .await;
    let impostor = hub
        .add(
            "OTHER0000001",
            sim.local_addr(),
            DevicePatch {
                comm_key: Some(1234),
                ..DevicePatch::default()
            },
        )
        .await;
    let error = |sn: DeviceSn| {
        let hub = &hub;
        async move {
            wait_for(&format!("last_error of {sn}"), || async {
                let d = hub.get(&format!("/devices/{sn}")).await;
                d["last_error"].as_str().map(str::to_owned)
            })
            .await
        }
    };
    assert_eq!(
        error(refused).await,
        format!("connection refused by {closed}")
    );
    assert_eq!(error(wrong_key.clone()).await, "wrong comm key");
    let timeout = error(silent).await;
    assert_eq!(
        timeout,
        "timeout after 1 s waiting for the reply to CMD_CONNECT"
    );
    let mismatch = error(impostor.clone()).await;
    assert_eq!(
        mismatch,
        format!(
            "serial number mismatch: the terminal at {} reports \"{SIM_SN}\", registered as OTHER0000001; nothing stored",
            sim.local_addr()
        )
    );
    assert_eq!(hub.count(&impostor).await, 0);
    assert_eq!(hub.count(&wrong_key).await, 0);
    let device = hub.get(&format!("/devices/{impostor}")).await;
    assert_eq!(device["last_seen"], Value::Null);

    // Fixing the key through the API heals the device.
    let (status, _) = hub
        .api(
            "PATCH",
            &format!("/devices/{wrong_key}"),
            Some(json!({"comm_key": 1234})),
        )
        .await;
    assert_eq!(status, 200);
    wait_for("pull with the right key", || async {
        (hub.count(&wrong_key).await == 100).then_some(())
    })
    .await;
    let healed = wait_for("error cleared", || async {
        let d = hub.get(&format!("/devices/{wrong_key}")).await;
        d["last_error"].is_null().then_some(d)
    })
    .await;
    assert!(healed["last_seen"].is_string());
    hub.stop().await;
}

// ---- the real server ----

#[test]
fn punchd_serve_pulls_a_configured_terminal_and_lists_its_punches_like_pushed_ones() {
    let (rt, sim) = sim_on_runtime(sim_config(Profile::Zk6));
    let config = format!(
        "[[devices]]\nsn = \"{SIM_SN}\"\naddress = \"{}\"\ntransport = \"udp\"\ninterval_secs = 300\n",
        sim.local_addr()
    );
    let server = Server::with(Options {
        time_zone: Some("Asia/Shanghai".into()),
        config: Some(config),
        ..Options::default()
    });
    let pulled = server.wait_for("pulled punches", Duration::from_secs(20), || {
        let punches = server.punches(SIM_SN);
        (punches.len() == 100).then_some(punches)
    });
    let pulled_json = json!({ "punches": pulled.clone() });
    assert_eq!(api_punches(&pulled_json), sim_punches(&sim));
    assert!(pulled.iter().all(|p| p["source"] == "pull"));
    assert!(pulled.iter().all(|p| p["time_zone"] == "Asia/Shanghai"));

    // A pushed punch has exactly the same fields.
    let r = server.attlog("PUSH0000001", "1\t2026-03-06 08:00:00\t0\t1\t0\t0\t0\n");
    assert_eq!(r.status, 200);
    let pushed = server.punches("PUSH0000001");
    assert_eq!(pushed.len(), 1);
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&pulled[0]), keys(&pushed[0]));

    let device = server.get_json(&format!("/devices/{SIM_SN}"));
    assert_eq!(device["transport"], "udp");
    assert_eq!(device["last_error"], Value::Null);
    assert_eq!(device["info"]["TransactionCount"], 100);

    // A terminal added with the CLI while the server runs is picked up, here as a live device.
    let second = rt.block_on(start_sim(PullSimConfig {
        serial_number: "SIM0000000002".into(),
        punches: 3,
        ..sim_config(Profile::Zk8)
    }));
    let address = second.local_addr().to_string();
    let out = harness::cli(
        &server.db,
        &[
            "devices",
            "add",
            "SIM0000000002",
            "--address",
            &address,
            "--interval",
            "0",
        ],
    );
    assert!(out.ok, "{}", out.stderr);
    server.wait_for("live registration", Duration::from_secs(20), || {
        (second.live_subscribers() == 1).then_some(())
    });
    assert_eq!(server.punches("SIM0000000002").len(), 3);
    let live = second.punch("1", 0, 15);
    let stored = server.wait_for("live punch", Duration::from_secs(10), || {
        let punches = server.punches("SIM0000000002");
        (punches.len() == 4).then_some(punches)
    });
    assert!(stored.iter().any(|p| p["pin"] == "1"
        && p["punched_at"] == live.time.format("%Y-%m-%dT%H:%M:%S").to_string()
        && p["verify_mode"] == 15));

    // A command queued with the CLI reaches the live connection of the running server.
    let queued = harness::cli_json(
        &server.db,
        &[
            "commands",
            "send",
            "SIM0000000002",
            "unlock",
            "--format",
            "json",
        ],
    );
    let id = queued[0]["id"].as_i64().unwrap();
    let done = server.wait_for("unlock result", Duration::from_secs(10), || {
        let c = harness::cli_json(&server.db, &["commands", "show", &id.to_string()]);
        (c["status"] != "queued" && c["status"] != "sent").then_some(c)
    });
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["message"], "door opened for 3 s");
    assert_eq!(second.counters().unlocks, 1);
}
