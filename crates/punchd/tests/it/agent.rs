//! The edge agent end to end, with real processes: a hub (`punchd serve` on SQLite), an agent (`punchd agent`)
//! pulling a simulated terminal (`zk_sim::pull::PullSim`, in this test process) that keeps punching. The agent
//! is killed with SIGKILL at random points more than 20 times and the hub is taken down and up; at the end the
//! hub holds every punch of the terminal exactly once. Then a range of punches is deleted from the hub's SQLite
//! file while the hub is stopped: the agent raises the alarm (shown in `punchd agents`) and sends them again,
//! from the earliest batch that lost punches on (not its whole history).
//!
//! On PostgreSQL (`PUNCHD_TEST_POSTGRES_URL`): two hubs on one schema take an agent's batches in any order and
//! from both at once without the device's sequence stamp moving back or a punch stored twice.

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
    // Only the batches from the gap on are sent again: the earliest batch that stored one of the deleted
    // punches is where both agree the loss starts.
    hub.kill9();
    let conn = harness::sqlite(&hub_db);
    let gap_from: i64 = conn
        .query_row(
            "SELECT MIN(b.first_seq) FROM agent_batches b WHERE b.journal_id IN (SELECT journal_id FROM punches \
             WHERE id IN (SELECT id FROM punches WHERE device_sn = ?1 ORDER BY id LIMIT 60 OFFSET 100))",
            [SN],
            |r| r.get(0),
        )
        .unwrap();
    let (journal_before, held_seq): (i64, String) = conn
        .query_row(
            "SELECT (SELECT MAX(id) FROM journal), \
             (SELECT value FROM stamps WHERE device_sn = ?1 AND table_name = 'agent:seq')",
            [SN],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let held_seq: i64 = held_seq.parse().unwrap();
    assert_eq!(
        held_seq,
        expected.len() as i64,
        "one sequence number per punch"
    );
    assert!((61..=101).contains(&gap_from), "{gap_from}");
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
    // The journal of the hub since it came back: batches from the gap's first sequence number on, nothing before
    // it.
    let conn = harness::sqlite(&hub_db);
    let mut st = conn
        .prepare("SELECT request FROM journal WHERE id > ?1 AND kind = 'agent:batch' ORDER BY id")
        .unwrap();
    let resent: Vec<(i64, i64)> = st
        .query_map([journal_before], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|request| {
            let request = request.unwrap();
            let (_, range) = request.rsplit_once("seq ").unwrap();
            let (first, last) = range.trim_end_matches(')').split_once("..=").unwrap();
            (first.parse().unwrap(), last.parse().unwrap())
        })
        .collect();
    assert_eq!(
        resent.iter().map(|r| r.0).min(),
        Some(gap_from),
        "{resent:?}"
    );
    // From the gap on, with no hole, at least over the deleted sequence numbers (hub rows 101..=160); once the hub
    // is whole again the agent's next check finds it holding the rest and stops re-sending.
    let covered: BTreeSet<i64> = resent.iter().flat_map(|&(a, b)| a..=b).collect();
    let top = covered.last().copied().unwrap_or(0);
    assert!(top >= 160, "{resent:?}");
    assert_eq!(
        covered,
        (gap_from..=top).collect::<BTreeSet<i64>>(),
        "{resent:?}"
    );
    let n_resent: i64 = resent.iter().map(|&(a, b)| b - a + 1).sum();
    assert!(
        n_resent <= held_seq - gap_from + 1 + 40,
        "{n_resent} punches sent again for a gap from {gap_from} to {held_seq}: {resent:?}"
    );
    assert!(
        agent
            .log()
            .contains(&format!("sending again from sequence {gap_from} ")),
        "{}",
        tail(&agent.log(), 40)
    );
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

/// The PostgreSQL test database (`PUNCHD_TEST_POSTGRES_URL`) in a new empty schema of its own, or `None` (the
/// test is skipped) when it is not set outside CI.
fn postgres_schema(name: &str) -> Option<String> {
    let base = match std::env::var("PUNCHD_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            assert!(
                std::env::var("CI").map_or(true, |v| v != "true"),
                "PUNCHD_TEST_POSTGRES_URL must be set in CI (.ci/run sets it)"
            );
            println!("SKIPPED: PUNCHD_TEST_POSTGRES_URL is not set");
            return None;
        }
    };
    let schema = format!("punchd_it_{name}_{}", std::process::id());
    pg(&base, async |c| {
        c.batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .await
    });
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}options=-csearch_path%3D{schema}"))
}

/// Run `f` with a client on PostgreSQL at `url` (a small runtime of its own: these tests are synchronous).
fn pg<T>(
    url: &str,
    f: impl AsyncFnOnce(&tokio_postgres::Client) -> Result<T, tokio_postgres::Error>,
) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        let task = tokio::spawn(connection);
        let out = f(&client).await.unwrap();
        drop(client);
        let _ = task.await;
        out
    })
}

/// `POST path` with the agent token and a JSON body, to the hub on `port`.
fn agent_post(port: u16, token: &str, path: &str, body: &serde_json::Value) -> harness::Response {
    let body = body.to_string();
    harness::raw_request(
        port,
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

/// The agent batch `k` (0-based) of device `sn`: sequence numbers `10k+1 ..= 10k+10`, PIN = sequence number.
fn numbered_batch(sn: &str, k: i64) -> serde_json::Value {
    let first = k * 10 + 1;
    let punches: Vec<serde_json::Value> = (first..first + 10)
        .map(|seq| {
            let at = chrono::NaiveDate::from_ymd_opt(2026, 11, 2)
                .unwrap()
                .and_hms_opt(8, 0, 0)
                .unwrap()
                + chrono::Duration::seconds(seq);
            serde_json::json!({
                "pin": seq.to_string(),
                "punched_at": at.format("%Y-%m-%dT%H:%M:%S").to_string(),
                "punch_state": 0
            })
        })
        .collect();
    serde_json::json!({
        "device_sn": sn,
        "time_zone": "UTC",
        "first_seq": first,
        "punches": punches,
        "complete_as_of": null,
        "backlog": null
    })
}

/// Two hubs (`punchd serve`) on one PostgreSQL schema, as behind a load balancer: an agent's batches go to
/// either. One sender posts batches 1, 2, 3, … alternating between the hubs, each only after the previous was
/// acknowledged; meanwhile a second client keeps re-posting the newest acknowledged batch to the other hub (an
/// agent whose answer was lost, retrying through the other instance). The device's sequence stamp never moves
/// back (every next batch is taken, none is refused as past the hub's sequence), the last batch is posted to both
/// hubs at once, and at the end every punch is held once and the stamp is the last sequence number.
#[test]
fn two_hubs_on_one_postgres_keep_an_agents_sequence() {
    const PG_SN: &str = "TX628AGENTPG";
    const BATCHES: i64 = 40;
    let Some(url) = postgres_schema("agentseq") else {
        return;
    };
    let db = PathBuf::from(&url);
    let added = harness::cli(&db, &["agents", "add", "pg-office", "--site", "lagos"]);
    assert!(added.ok, "{}", added.stderr);
    let token = added.stdout.trim().to_owned();
    let ports = [free_port(), free_port()];
    let _hubs = [start_hub(&db, ports[0]), start_hub(&db, ports[1])];
    let hello = agent_post(
        ports[0],
        &token,
        "/api/v1/agent/hello",
        &serde_json::json!({
            "version": "test",
            "devices": [{"sn": PG_SN, "time_zone": "UTC"}],
            "backlog": {"count": 0, "oldest_at": null}
        }),
    );
    assert_eq!(hello.status, 200, "{}", hello.text());

    let newest = Arc::new(std::sync::atomic::AtomicI64::new(-1));
    let done = Arc::new(AtomicBool::new(false));
    let reposter = {
        let (newest, done, token) = (newest.clone(), done.clone(), token.clone());
        std::thread::spawn(move || {
            let mut n = 0u32;
            while !done.load(Ordering::Relaxed) {
                let k = newest.load(Ordering::Relaxed);
                if k < 0 {
                    std::thread::yield_now();
                    continue;
                }
                // The other hub than the one that took batch k.
                let port = ports[((k + 1) % 2) as usize];
                let answer = agent_post(
                    port,
                    &token,
                    "/api/v1/agent/batches",
                    &numbered_batch(PG_SN, k),
                );
                assert_eq!(
                    answer.status,
                    200,
                    "re-post of batch {k}: {}",
                    answer.text()
                );
                assert_eq!(answer.json()["n_stored"], 0, "batch {k} was held already");
                n += 1;
            }
            n
        })
    };
    for k in 0..BATCHES - 1 {
        let answer = agent_post(
            ports[(k % 2) as usize],
            &token,
            "/api/v1/agent/batches",
            &numbered_batch(PG_SN, k),
        );
        assert_eq!(
            answer.status,
            200,
            "batch {k} (sequence {}..): {}",
            k * 10 + 1,
            answer.text()
        );
        assert_eq!(answer.json()["acked_seq"], (k + 1) * 10);
        newest.store(k, Ordering::Relaxed);
    }
    done.store(true, Ordering::Relaxed);
    let reposts = reposter.join().unwrap();
    assert!(reposts > 0);
    // The last batch to both hubs at once.
    let both: Vec<_> = ports
        .iter()
        .map(|&port| {
            let token = token.clone();
            std::thread::spawn(move || {
                agent_post(
                    port,
                    &token,
                    "/api/v1/agent/batches",
                    &numbered_batch(PG_SN, BATCHES - 1),
                )
            })
        })
        .collect();
    let mut stored = 0;
    for answer in both {
        let answer = answer.join().unwrap();
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(answer.json()["acked_seq"], BATCHES * 10);
        stored += answer.json()["n_stored"].as_i64().unwrap();
    }
    assert_eq!(
        stored, 10,
        "the last batch stored once between the two hubs"
    );

    let (rows, distinct, stamp, recorded) = pg(&url, async |c| {
        let counts = c
            .query_one(
                "SELECT COUNT(*), COUNT(DISTINCT pin) FROM punches WHERE device_sn = $1",
                &[&PG_SN],
            )
            .await?;
        let stamp = c
            .query_one(
                "SELECT value FROM stamps WHERE device_sn = $1 AND table_name = 'agent:seq'",
                &[&PG_SN],
            )
            .await?;
        let recorded = c
            .query_one(
                "SELECT COALESCE(SUM(n_stored), 0)::bigint FROM agent_batches WHERE device_sn = $1",
                &[&PG_SN],
            )
            .await?;
        Ok((
            counts.get::<_, i64>(0),
            counts.get::<_, i64>(1),
            stamp.get::<_, String>(0),
            recorded.get::<_, i64>(0),
        ))
    });
    assert_eq!((rows, distinct), (BATCHES * 10, BATCHES * 10));
    assert_eq!(stamp, (BATCHES * 10).to_string());
    assert_eq!(recorded, BATCHES * 10);
}
