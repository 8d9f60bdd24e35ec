//! The edge agent end to end, with real processes: a hub (`punchd serve` on SQLite), an agent (`punchd agent`)
//! pulling a simulated terminal (`zk_sim::pull::PullSim`, in this test process) that keeps punching. The agent
//! is killed with SIGKILL at random points more than 20 times and the hub is taken down and up; at the end the
//! hub holds every punch of the terminal exactly once. Then a range of punches is deleted from the hub's SQLite
//! file while the hub is stopped: the agent raises the alarm (shown in `punchd agents`) and sends them again.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use zk_sim::pull::{PullSim, PullSimConfig, PullSimHandle};

use crate::harness;

const SN: &str = "TX628AGENT01";

/// A process with its stderr collected; SIGKILLed on drop.
struct Proc {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Proc {
    fn spawn(args: &[String]) -> Proc {
        let mut child = harness::punchd_command()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Proc { child, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn wait_for_log(&self, needle: &str, within: Duration) {
        let start = Instant::now();
        while !self.log().contains(needle) {
            assert!(
                start.elapsed() < within,
                "no {needle:?} within {within:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_hub(db: &Path, port: u16) -> Proc {
    let hub = Proc::spawn(&[
        "--database".into(),
        db.display().to_string(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "serve".into(),
        "--time-zone".into(),
        "UTC".into(),
    ]);
    hub.wait_for_log("punchd is running", Duration::from_secs(20));
    hub
}

struct AgentSetup {
    db: PathBuf,
    hub_port: u16,
    token: String,
    sim_port: u16,
}

fn start_agent(s: &AgentSetup) -> Proc {
    Proc::spawn(&[
        "--database".into(),
        s.db.display().to_string(),
        "agent".into(),
        "--hub".into(),
        format!("http://127.0.0.1:{}", s.hub_port),
        "--token".into(),
        s.token.clone(),
        "--site".into(),
        "lagos".into(),
        "--device".into(),
        format!("{SN}@127.0.0.1:{},interval=1", s.sim_port),
        "--time-zone".into(),
        "UTC".into(),
        "--batch-size".into(),
        "40".into(),
        "--verify-every".into(),
        "1".into(),
        "--max-backoff".into(),
        "1".into(),
        "--request-timeout".into(),
        "5".into(),
    ])
}

/// The terminal's punches as (PIN, local time, punch state): what the hub must hold, once each.
fn terminal_punches(sim: &PullSimHandle) -> BTreeSet<(String, String, i64)> {
    sim.attendance()
        .iter()
        .map(|a| {
            (
                a.user_id.clone(),
                a.time.format("%Y-%m-%d %H:%M:%S").to_string(),
                i64::from(a.punch),
            )
        })
        .collect()
}

/// The hub's rows of the device, and how many there are (a set would hide a second copy).
fn hub_punches(db: &Path) -> (BTreeSet<(String, String, i64)>, usize) {
    let conn = harness::sqlite(db);
    let mut st = conn
        .prepare("SELECT pin, punched_at, punch_state FROM punches WHERE device_sn = ?1")
        .unwrap();
    let rows: Vec<(String, String, i64)> = st
        .query_map([SN], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let n = rows.len();
    (rows.into_iter().collect(), n)
}

/// Wait until the hub holds exactly the terminal's punches.
fn wait_until_delivered(
    hub_db: &Path,
    expected: &BTreeSet<(String, String, i64)>,
    within: Duration,
    agent: &Proc,
) {
    let start = Instant::now();
    loop {
        let (held, _) = hub_punches(hub_db);
        if &held == expected {
            return;
        }
        assert!(
            start.elapsed() < within,
            "the hub holds {} of {} punches after {within:?}; missing e.g. {:?}; agent log tail:\n{}",
            held.len(),
            expected.len(),
            expected.difference(&held).next(),
            tail(&agent.log(), 40)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[test]
fn the_agent_survives_kill_9_and_hub_outages_and_repairs_a_deleted_range() {
    let dir = tempfile::tempdir().unwrap();
    let hub_db = dir.path().join("hub.db");
    let hub_port = free_port();

    // The hub registers the agent; the token is printed once.
    let added = harness::cli(
        &hub_db,
        &["agents", "add", "lagos-office", "--site", "lagos"],
    );
    assert!(added.ok, "{}", added.stderr);
    let token = added.stdout.trim().to_owned();
    assert!(token.starts_with("pd_"), "{token:?}");
    // The agent token is not an API token.
    let mut hub = start_hub(&hub_db, hub_port);
    let refused = harness::raw_request(
        hub_port,
        format!("GET /api/v1/devices HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(refused.status, 401);

    // A terminal with a small log that keeps punching (a new PIN each time, so every punch is distinct).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let sim = rt.block_on(async {
        let config = PullSimConfig {
            serial_number: SN.into(),
            punches: 150,
            ..PullSimConfig::default()
        };
        let sim = PullSim::bind("127.0.0.1:0".parse().unwrap(), config)
            .await
            .unwrap();
        let handle = sim.handle();
        tokio::spawn(sim.run(std::future::pending::<()>()));
        handle
    });
    let punching = Arc::new(AtomicBool::new(true));
    let puncher = {
        let sim = sim.clone();
        let punching = punching.clone();
        std::thread::spawn(move || {
            let mut i = 0u32;
            while punching.load(Ordering::Relaxed) {
                sim.punch(&format!("9{i:05}"), (i % 2) as u8, 1);
                i += 1;
                std::thread::sleep(Duration::from_millis(25));
            }
        })
    };

    let setup = AgentSetup {
        db: dir.path().join("agent.db"),
        hub_port,
        token,
        sim_port: sim.local_addr().port(),
    };
    let mut agent = start_agent(&setup);
    agent.wait_for_log("punchd agent is running", Duration::from_secs(20));

    // Kill -9 the agent at random points, 24 times; take the hub down and up twice meanwhile.
    let mut rng = rand::rng();
    for round in 0..24 {
        std::thread::sleep(Duration::from_millis(rng.random_range(100..700)));
        agent.kill9();
        if round == 8 || round == 16 {
            hub.kill9();
            agent = start_agent(&setup);
            std::thread::sleep(Duration::from_millis(rng.random_range(300..1200)));
            hub = start_hub(&hub_db, hub_port);
        } else {
            agent = start_agent(&setup);
        }
    }
    punching.store(false, Ordering::Relaxed);
    puncher.join().unwrap();
    let expected = terminal_punches(&sim);
    assert!(expected.len() > 400, "{}", expected.len());
    wait_until_delivered(&hub_db, &expected, Duration::from_secs(20), &agent);
    let (held, n_rows) = hub_punches(&hub_db);
    assert_eq!(held, expected);
    assert_eq!(n_rows, expected.len(), "a punch is held twice");

    // The hub lists the agent with its device and site; no alarm so far (crashes are not gaps).
    let agents = harness::cli_json(&hub_db, &["agents", "--format", "json"]);
    assert_eq!(agents[0]["name"], "lagos-office");
    assert_eq!(agents[0]["site"], "lagos");
    assert_eq!(agents[0]["devices"][0]["device_sn"], SN);
    assert_eq!(agents[0]["alarms"], serde_json::json!([]), "{agents:#}");
    let device = harness::cli_json(&hub_db, &["devices", "show", SN]);
    assert_eq!(device["site"], "lagos");
    assert!(
        device["last_seen"].is_string(),
        "watermark follows the agent: {device:#}"
    );

    // Delete a range at the hub while it is stopped: the agent notices, raises the alarm, sends it again.
    hub.kill9();
    let conn = harness::sqlite(&hub_db);
    let deleted = conn
        .execute(
            "DELETE FROM punches WHERE id IN (SELECT id FROM punches WHERE device_sn = ?1 ORDER BY id LIMIT 60 OFFSET 100)",
            [SN],
        )
        .unwrap();
    assert_eq!(deleted, 60);
    drop(conn);
    assert_eq!(hub_punches(&hub_db).1, expected.len() - 60);
    let _hub = start_hub(&hub_db, hub_port);
    wait_until_delivered(&hub_db, &expected, Duration::from_secs(20), &agent);
    let (held, n_rows) = hub_punches(&hub_db);
    assert_eq!((held, n_rows), (expected.clone(), expected.len()));
    agent.wait_for_log("ALARM", Duration::from_secs(5));
    let agents = harness::cli_json(&hub_db, &["agents", "--format", "json"]);
    let kinds: Vec<&str> = agents[0]["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"gap"), "{agents:#}");
    let table = harness::cli(&hub_db, &["agents"]);
    assert!(
        table.stdout.contains("lagos-office") && table.stdout.contains("gap"),
        "{}",
        table.stdout
    );
    drop(rt);
}
