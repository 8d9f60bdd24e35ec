//! The pyzk conformance matrix: tests/conformance/pyzk_matrix.py (unmodified pyzk) against the simulator,
//! over TCP and UDP, with and without a comm key. Every assertion compares with the simulator's own model.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::process::Command;
use zk_pull::records::{Attendance, User};
use zk_sim::pull::{Profile, PullSimConfig, PullSimHandle};

use crate::support::{start, until};

const MARKER: &str = "PYZK_MATRIX_JSON ";

fn driver() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance/pyzk_matrix.py")
}

/// Whether pyzk can be imported. When it cannot: skip with a clear line, except in CI (CI=true), where a
/// missing pyzk is a failure.
fn pyzk_available() -> bool {
    let importable = std::process::Command::new("python3")
        .args(["-c", "import zk"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !importable {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("pyzk not importable in CI (pip install pyzk)");
        }
        println!("SKIPPED: pyzk not importable (pip install pyzk)");
    }
    importable
}

struct Run {
    summary: Value,
    elapsed: Duration,
}

/// Run the driver against `handle`'s simulator; meanwhile wait for the driver's live registration and then
/// punch `live_pin` (check-out by face).
async fn run_driver(handle: &PullSimHandle, udp: bool, comm_key: u32, live_pin: &str) -> Run {
    let mut command = Command::new("python3");
    command
        .arg(driver())
        .args(["--host", "127.0.0.1"])
        .args(["--port", &handle.local_addr().port().to_string()])
        .args(["--comm-key", &comm_key.to_string()])
        .args(["--timeout", "20", "--live-timeout", "20"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if udp {
        command.arg("--udp");
    }
    let started = Instant::now();
    let mut child = command.spawn().unwrap();
    let injector = {
        let handle = handle.clone();
        let pin = live_pin.to_owned();
        tokio::spawn(async move {
            handle.wait_for_live_subscribers(1).await;
            handle.punch(&pin, 1, 15)
        })
    };
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (mut out, mut err) = (String::new(), String::new());
    let finished = tokio::time::timeout(Duration::from_secs(180), async {
        let (read_out, read_err) = tokio::join!(
            stdout.read_to_string(&mut out),
            stderr.read_to_string(&mut err)
        );
        read_out.unwrap();
        read_err.unwrap();
        child.wait().await.unwrap()
    })
    .await
    .expect("pyzk driver did not finish within 180 s");
    let elapsed = started.elapsed();
    let json = out
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix(MARKER))
        .unwrap_or_else(|| panic!("no summary line; stdout:\n{out}\nstderr:\n{err}"));
    let summary: Value = serde_json::from_str(json).unwrap();
    assert!(
        finished.success() && summary["ok"] == true,
        "driver failed ({finished}): {}\n{}\nstderr:\n{err}",
        summary["error"],
        summary["traceback"].as_str().unwrap_or("")
    );
    let live = injector.await.unwrap();
    assert_eq!(summary["live"]["count"], 1);
    assert_eq!(summary["live"]["events"][0], attendance_json(&live));
    Run { summary, elapsed }
}

fn iso(t: chrono::NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// What the driver prints for a user (pyzk's `User`): a missing name reads as "NN-<PIN>".
fn user_json(user: &User) -> Value {
    serde_json::json!({
        "uid": user.uid,
        "user_id": user.user_id,
        "name": if user.name.is_empty() { format!("NN-{}", user.user_id) } else { user.name.clone() },
        "privilege": user.privilege,
        "password": user.password,
        "group_id": user.group_id,
        "card": user.card,
    })
}

fn attendance_json(record: &Attendance) -> Value {
    serde_json::json!({
        "uid": record.uid,
        "user_id": record.user_id,
        "timestamp": iso(record.time),
        "status": record.status,
        "punch": record.punch,
    })
}

struct Expected {
    users: Vec<User>,
    attendance_first: Attendance,
    attendance_last: Attendance,
    attendance_count: usize,
    template: (u16, u8, usize),
    template_count: usize,
}

fn snapshot(handle: &PullSimHandle) -> Expected {
    let attendance = handle.attendance();
    let templates = handle.templates();
    Expected {
        users: handle.users(),
        attendance_first: attendance.first().cloned().unwrap(),
        attendance_last: attendance.last().cloned().unwrap(),
        attendance_count: attendance.len(),
        template: templates
            .first()
            .map(|t| (t.uid, t.finger, t.data.len()))
            .unwrap(),
        template_count: templates.len(),
    }
}

fn check_summary(run: &Run, expected: &Expected, handle: &PullSimHandle, user_record_size: f64) {
    let s = &run.summary;
    let config = handle.config();
    let info = &s["info"];
    assert_eq!(info["serial_number"], config.serial_number.as_str());
    assert_eq!(info["firmware_version"], config.firmware.as_str());
    assert_eq!(info["platform"], config.platform.as_str());
    assert_eq!(info["device_name"], config.device_name.as_str());
    assert_eq!(info["mac"], config.mac.as_str());
    assert_eq!(info["fp_version"], 10);
    assert_eq!(info["pin_width"], 9);
    assert_eq!(info["network"]["ip"], "127.0.0.1");

    let n_users = expected.users.len();
    assert_eq!(s["sizes"]["users"], n_users);
    assert_eq!(s["sizes"]["records"], expected.attendance_count);
    assert_eq!(s["sizes"]["fingers"], expected.template_count);

    assert_eq!(s["users"]["count"], n_users);
    assert_eq!(s["users"]["record_size"], user_record_size);
    assert_eq!(s["users"]["first"], user_json(&expected.users[0]));
    assert_eq!(s["users"]["last"], user_json(&expected.users[n_users - 1]));

    assert_eq!(s["attendance"]["count"], expected.attendance_count);
    assert_eq!(
        s["attendance"]["first"],
        attendance_json(&expected.attendance_first)
    );
    assert_eq!(
        s["attendance"]["last"],
        attendance_json(&expected.attendance_last)
    );

    assert_eq!(s["templates"]["count"], expected.template_count);
    let (uid, finger, size) = expected.template;
    assert_eq!(
        s["templates"]["first"],
        serde_json::json!({"uid": uid, "fid": finger, "valid": 1, "size": size})
    );
    assert_eq!(s["templates"]["single_read_size"], size);

    assert!(s["time"]["after_set"]
        .as_str()
        .unwrap()
        .starts_with("2025-01-02T03:04:0"));

    assert_eq!(s["set_user"]["count_before"], n_users);
    assert_eq!(s["set_user"]["count_after_set"], n_users + 1);
    assert_eq!(s["set_user"]["count_after_delete"], n_users);
    assert_eq!(s["set_user"]["written"]["user_id"], "990001");
    assert_eq!(s["set_user"]["written"]["name"], "Conform");
    assert_eq!(s["set_user"]["written"]["card"], 12345);

    assert_eq!(s["records_after_clear"], 0);
    assert_eq!(s["after_restart"]["users"], n_users);
    assert_eq!(s["after_restart"]["records"], 0);

    // The model saw the same session.
    assert_eq!(handle.attendance_count(), 0);
    assert_eq!(handle.users().len(), n_users);
    assert!(handle.is_enabled());
    let counters = handle.counters();
    assert_eq!(counters.users_written, 1);
    assert_eq!(counters.users_deleted, 1);
    assert_eq!(counters.unlocks, 1);
    assert_eq!(counters.restarts, 1);
    assert_eq!(counters.events_sent, 1);
    assert_eq!(counters.events_acked, 1);
    assert_eq!(counters.bad_checksums, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyzk_tcp_zk8_comm_key_100k_punches() {
    if !pyzk_available() {
        return;
    }
    let comm_key = 123_456;
    let sim = start(PullSimConfig {
        users: 500,
        punches: 100_000,
        templates: 40,
        comm_key,
        punches_until: Some(until()),
        seed: 11,
        ..PullSimConfig::new(Profile::Zk8)
    })
    .await;
    let expected = snapshot(&sim.handle);
    let run = run_driver(&sim.handle, false, comm_key, "42").await;
    println!(
        "pyzk TCP zk8, 100 000 punches: {:?}, timings {}",
        run.elapsed, run.summary["timings_ms"]
    );
    check_summary(&run, &expected, &sim.handle, 72.0);
    assert_eq!(
        run.summary["wrong_keys_refused"],
        serde_json::json!([0, 123_457])
    );
    // Two wrong keys were refused.
    assert_eq!(sim.handle.counters().auth_failures, 2);
    sim.stop().await;
}

/// 20 000 punches rather than 100 000 to keep the suite fast: pyzk's record parsers re-slice the remaining
/// bytes for every record (quadratic) and its 16-byte parser scans all users per record, so 100 000 punches
/// take about 5 s over UDP (measured), as over TCP, which the test above already covers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyzk_udp_zk6_no_key() {
    if !pyzk_available() {
        return;
    }
    let sim = start(PullSimConfig {
        users: 300,
        punches: 20_000,
        templates: 20,
        punches_until: Some(until()),
        seed: 12,
        ..PullSimConfig::new(Profile::Zk6)
    })
    .await;
    let expected = snapshot(&sim.handle);
    let run = run_driver(&sim.handle, true, 0, "7").await;
    println!(
        "pyzk UDP zk6, 20 000 punches: {:?}, timings {}",
        run.elapsed, run.summary["timings_ms"]
    );
    check_summary(&run, &expected, &sim.handle, 28.0);
    assert!(sim.handle.counters().udp_sessions >= 2);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyzk_udp_zk8_comm_key() {
    if !pyzk_available() {
        return;
    }
    let sim = start(PullSimConfig {
        users: 40,
        punches: 3_000,
        templates: 5,
        comm_key: 999,
        punches_until: Some(until()),
        seed: 13,
        ..PullSimConfig::new(Profile::Zk8)
    })
    .await;
    let expected = snapshot(&sim.handle);
    let run = run_driver(&sim.handle, true, 999, "3").await;
    check_summary(&run, &expected, &sim.handle, 72.0);
    assert_eq!(
        run.summary["wrong_keys_refused"],
        serde_json::json!([0, 1000])
    );
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyzk_tcp_zk6_small_direct_reads() {
    if !pyzk_available() {
        return;
    }
    // Datasets under the direct threshold: 1503 is answered with one CMD_DATA.
    let sim = start(PullSimConfig {
        users: 6,
        punches: 25,
        templates: 1,
        punches_until: Some(until()),
        seed: 14,
        ..PullSimConfig::new(Profile::Zk6)
    })
    .await;
    let expected = snapshot(&sim.handle);
    let run = run_driver(&sim.handle, false, 0, "2").await;
    check_summary(&run, &expected, &sim.handle, 28.0);
    sim.stop().await;
}
