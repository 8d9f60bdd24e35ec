//! The BioTime reader against pybiotime's `FakeBioTime` (an in-memory BioTime written by others, with the real
//! server's quirks), served over loopback by `tests/biotime/fake_server.py`. SKIPPED when pybiotime is not
//! installed, unless `CI=true` (`.ci/run` installs it). Each scenario changes the fake through its control
//! endpoints, runs `punchd sources run`, and checks the stored punches exactly.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

use std::time::Duration;

use crate::harness::{cli, raw_request, CliOutput, Options, Server};

const ADAPTER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/biotime/fake_server.py");

/// Whether pybiotime can be imported; panics when it cannot and CI=true.
fn pybiotime_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import pybiotime.testing"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "pybiotime is required in CI (pip install pybiotime)"
        );
        eprintln!("SKIPPED: pybiotime is not installed (pip install pybiotime)");
    }
    ok
}

/// The fake BioTime, killed on drop.
struct Fake {
    child: Child,
    port: u16,
}

impl Fake {
    fn start(version: &str, page_size: u32) -> Fake {
        let mut child = Command::new("python3")
            .args([
                "-u",
                ADAPTER,
                "--version",
                version,
                "--page-size",
                &page_size.to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the adapter did not start: {line:?}"));
        Fake { child, port }
    }

    fn control(&self, what: &str, body: Value) -> Value {
        let body = body.to_string();
        let request = format!(
            "POST /_control/{what} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let r = raw_request(self.port, request.as_bytes());
        assert_eq!(r.status, 200, "{what}: {}", r.text());
        r.json()
    }

    fn punch(&self, emp: &str, at: &str, terminal: &str, state: &str, upload: Option<&str>) -> i64 {
        let mut body = json!({"emp_code": emp, "punch_time": at, "terminal_sn": terminal, "punch_state": state});
        if let Some(u) = upload {
            body["upload_time"] = json!(u);
        }
        self.control("transaction", body)["id"].as_i64().unwrap()
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn add_source(db: &Path, name: &str, url: &str, auth: &str, password: &str) {
    let out = cli(
        db,
        &[
            "sources",
            "add",
            "biotime",
            "--name",
            name,
            "--url",
            url,
            "--username",
            "api",
            "--password",
            password,
            "--auth",
            auth,
            "--time-zone",
            "Asia/Dubai",
        ],
    );
    assert!(out.ok, "{}", out.stderr);
}

fn run(db: &Path, name: &str) -> CliOutput {
    cli(db, &["sources", "run", name])
}

fn run_ok(db: &Path, name: &str) -> Value {
    let out = run(db, name);
    assert!(out.ok, "run failed: {}", out.stderr);
    serde_json::from_str(out.stdout.trim()).unwrap()
}

/// (device, PIN, wall time, state, source) of every punch, by wall time (pages are read newest upload first, so
/// the store's id order is not the punch order).
fn stored(db: &Path) -> Vec<(String, String, String, i64, String)> {
    let conn = crate::harness::sqlite(db);
    let mut st = conn
        .prepare("SELECT device_sn, pin, punched_at, punch_state, source FROM punches ORDER BY punched_at, device_sn")
        .unwrap();
    st.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn p(dev: &str, pin: &str, at: &str, state: i64) -> (String, String, String, i64, String) {
    (dev.into(), pin.into(), at.into(), state, "biotime".into())
}

#[test]
fn biotime_is_read_incrementally_through_late_uploads_errors_and_a_restore() {
    if !pybiotime_available() {
        return;
    }
    let fake = Fake::start("9.5", 3);
    fake.control(
        "terminal",
        json!({"sn": "BT00000001", "alias": "Main gate"}),
    );
    // The CLI reads (`sources run`) without a server, so that no scheduler reads at the same time; `serve` is
    // checked at the end.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("punchd.db");
    add_source(&db, "hq", &fake.url(), "jwt", "secret");
    for (i, emp) in ["1001", "1002", "1003", "1004", "1005"].iter().enumerate() {
        fake.punch(
            emp,
            &format!("2026-11-02 0{i}:00:00"),
            "BT00000001",
            "0",
            None,
        );
    }
    // First run: everything, over two pages of 3.
    let r = run_ok(&db, "hq");
    assert_eq!(
        (r["stored"].as_u64(), r["terminals"].as_u64()),
        (Some(5), Some(1)),
        "{r}"
    );
    let mut want: Vec<_> = (0..5)
        .map(|i| {
            p(
                "BT00000001",
                &format!("100{}", i + 1),
                &format!("2026-11-02 0{i}:00:00"),
                0,
            )
        })
        .collect();
    assert_eq!(stored(&db), want);
    // Dubai is +04:00: the server's wall time, read in the source's zone.
    let utc: i64 = crate::harness::sqlite(&db)
        .query_row(
            "SELECT punched_at_utc FROM punches WHERE pin = '1001'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let want_utc = chrono::DateTime::parse_from_rfc3339("2026-11-02T00:00:00+04:00").unwrap();
    assert_eq!(utc, want_utc.timestamp());

    // Nothing new: nothing stored, and the run stops at the first page (newest uploads first; the page ends more
    // than the 10-minute overlap before the newest upload seen).
    let r = run_ok(&db, "hq");
    assert_eq!(
        (r["stored"].as_u64(), r["pages"].as_u64()),
        (Some(0), Some(1)),
        "{r}"
    );

    // A late upload: punched yesterday, uploaded now (a terminal that was offline). A punch-time window would miss it.
    fake.punch(
        "2001",
        "2026-11-01 17:00:00",
        "BT00000002",
        "1",
        Some("2026-11-02 09:00:00"),
    );
    // A 503 burst on the transactions: retried.
    for _ in 0..2 {
        fake.control(
            "fail_next",
            json!({"status": 503, "path": "/iclock/api/transactions/"}),
        );
    }
    let r = run_ok(&db, "hq");
    assert_eq!(r["stored"].as_u64(), Some(1), "{r}");
    want.insert(0, p("BT00000002", "2001", "2026-11-01 17:00:00", 1));
    assert_eq!(stored(&db), want);

    // An expired token mid-life (401 on data): logged in again, the read goes on.
    fake.control(
        "fail_next",
        json!({"status": 401, "path": "/iclock/api/transactions/"}),
    );
    fake.punch(
        "1001",
        "2026-11-02 17:30:00",
        "BT00000001",
        "1",
        Some("2026-11-02 17:30:05"),
    );
    let r = run_ok(&db, "hq");
    assert_eq!(r["stored"].as_u64(), Some(1), "{r}");
    want.push(p("BT00000001", "1001", "2026-11-02 17:30:00", 1));
    assert_eq!(stored(&db), want);

    // A 503 that outlasts the retries: the run fails, nothing moves, and the next run catches up.
    for _ in 0..6 {
        fake.control(
            "fail_next",
            json!({"status": 503, "path": "/iclock/api/transactions/"}),
        );
    }
    fake.punch(
        "1002",
        "2026-11-02 17:31:00",
        "BT00000001",
        "1",
        Some("2026-11-02 17:31:00"),
    );
    let out = run(&db, "hq");
    assert!(!out.ok && out.stderr.contains("HTTP 503"), "{}", out.stderr);
    let r = run_ok(&db, "hq");
    assert_eq!(r["stored"].as_u64(), Some(1), "{r}");
    want.push(p("BT00000001", "1002", "2026-11-02 17:31:00", 1));
    assert_eq!(stored(&db), want);

    // A punch arriving while punchd pages (after page 1): rows shift, page 2 repeats a row of page 1 (taken
    // once); the new punch, already past, is read by the next run.
    fake.punch(
        "1003",
        "2026-11-02 17:32:00",
        "BT00000001",
        "1",
        Some("2026-11-02 17:32:00"),
    );
    fake.punch(
        "1004",
        "2026-11-02 17:33:00",
        "BT00000001",
        "1",
        Some("2026-11-02 17:33:00"),
    );
    fake.punch(
        "1005",
        "2026-11-02 17:34:00",
        "BT00000001",
        "1",
        Some("2026-11-02 17:34:00"),
    );
    fake.punch(
        "1001",
        "2026-11-02 17:35:00",
        "BT00000001",
        "1",
        Some("2026-11-02 17:35:00"),
    );
    fake.control(
        "insert_during_paging",
        json!({"after_page": 1, "transaction": {"emp_code": "1002", "punch_time": "2026-11-02 17:36:00",
               "terminal_sn": "BT00000001", "punch_state": "1", "upload_time": "2026-11-02 17:36:00"}}),
    );
    let r = run_ok(&db, "hq");
    assert_eq!(
        (r["stored"].as_u64(), r["duplicate"].as_u64()),
        (Some(4), Some(0)),
        "{r}"
    );
    let r = run_ok(&db, "hq");
    assert_eq!(
        (r["stored"].as_u64(), r["duplicate"].as_u64()),
        (Some(1), Some(0)),
        "{r}"
    );
    for (pin, at) in [
        ("1003", "17:32"),
        ("1004", "17:33"),
        ("1005", "17:34"),
        ("1001", "17:35"),
        ("1002", "17:36"),
    ] {
        want.push(p("BT00000001", pin, &format!("2026-11-02 {at}:00"), 1));
    }
    assert_eq!(stored(&db), want);

    // A restore: the database goes back to its first 2 transactions (ids 2 and 3; the terminal took id 1) and ids
    // restart at 4. The new punch reuses an id punchd has seen; it is not missed, and the source says why.
    fake.control("restore", json!({"keep": 2, "next_id": 4}));
    fake.punch(
        "3001",
        "2026-11-03 08:00:00",
        "BT00000001",
        "0",
        Some("2026-11-03 08:00:00"),
    );
    let out = run(&db, "hq");
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stderr.contains("ids went back"), "{}", out.stderr);
    let r: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(
        (r["stored"].as_u64(), r["duplicate"].as_u64()),
        (Some(1), Some(2)),
        "{r}"
    );
    want.push(p("BT00000001", "3001", "2026-11-03 08:00:00", 0));
    assert_eq!(stored(&db), want);
    let sources: Value =
        serde_json::from_str(&cli(&db, &["sources", "--format", "json"]).stdout).unwrap();
    let hq = &sources.as_array().unwrap()[0];
    assert!(
        hq["last_error"].as_str().unwrap().contains("restored"),
        "{hq}"
    );
    assert!(
        hq["cursor"].as_str().unwrap().contains("\"max_id\":4,"),
        "{hq}"
    );
    assert_eq!(hq["n_stored"], 14);

    // HTML where JSON was expected (a wrong base URL: the fake answers its "Page not found" page with 200).
    add_source(
        &db,
        "wrong",
        &format!("{}/biotime", fake.url()),
        "token",
        "secret",
    );
    let out = run(&db, "wrong");
    assert!(
        !out.ok && out.stderr.contains("expected JSON, got an HTML page"),
        "{}",
        out.stderr
    );
    // A rejected password: a clear error (and, under `serve`, a 60 s pause).
    add_source(&db, "badpw", &fake.url(), "token", "nope");
    let out = run(&db, "badpw");
    assert!(
        !out.ok && out.stderr.contains("rejected user \"api\""),
        "{}",
        out.stderr
    );
    assert_eq!(stored(&db).len(), want.len());

    // `punchd serve` reads the source on its own (first read at start, then every --interval).
    fake.punch(
        "4001",
        "2026-11-03 09:00:00",
        "BT00000001",
        "0",
        Some("2026-11-03 09:00:00"),
    );
    let server = Server::with(Options {
        db: Some(db.clone()),
        time_zone: Some("Asia/Dubai".into()),
        ..Options::default()
    });
    let punch = server.wait_for("the scheduler's read", Duration::from_secs(20), || {
        server
            .punches("BT00000001")
            .into_iter()
            .find(|p| p["pin"] == "4001")
    });
    assert_eq!(
        (punch["source"].as_str(), punch["punched_at"].as_str()),
        (Some("biotime"), Some("2026-11-03T09:00:00"))
    );
}

#[test]
fn every_biotime_version_shape_is_read() {
    if !pybiotime_available() {
        return;
    }
    for (version, auth) in [
        ("8.0", "token"),
        ("8.5", "basic"),
        ("9.0", "jwt"),
        ("9.5", "token"),
    ] {
        let fake = Fake::start(version, 10);
        let server = Server::start();
        add_source(&server.db, "bt", &fake.url(), auth, "secret");
        fake.punch("0042", "2026-11-02 08:00:00", "V0000001", "4", None);
        fake.punch("0043", "2026-11-02 08:01:00", "", "5", None);
        if auth == "basic" {
            // The fake accepts Token and JWT only: Basic is refused with 401, a clear failure.
            let out = run(&server.db, "bt");
            assert!(
                !out.ok && out.stderr.contains("HTTP 401"),
                "{version}: {}",
                out.stderr
            );
            continue;
        }
        let r = run_ok(&server.db, "bt");
        assert_eq!(r["stored"].as_u64(), Some(2), "{version}: {r}");
        assert_eq!(
            stored(&server.db),
            vec![
                p("V0000001", "0042", "2026-11-02 08:00:00", 4),
                p("biotime:bt", "0043", "2026-11-02 08:01:00", 5)
            ],
            "{version}"
        );
    }
}

const READER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/biotime/read_punchd.py");

/// pybiotime's client against punchd's BioTime-compatible API.
fn read_with_pybiotime(server: &Server, auth: &str, state: &str) -> Value {
    let out = Command::new("python3")
        .args([
            READER,
            &format!("http://127.0.0.1:{}", server.port),
            "hubtest",
            &server.token(),
            auth,
            state,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_biotime_api_under_iclock_is_not_taken_for_a_terminal() {
    // The server loop hands terminal paths straight to the push handler; BioTime's API shares the /iclock
    // prefix and must still reach its own routes (no pybiotime needed for this).
    let server = Server::start();
    server.attlog("PUSH000001", "1001\t2026-11-02 08:00:00\t0\t1\t0\t0\n");
    let r =
        server.raw(b"GET /iclock/api/terminals/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(
        serde_json::from_str::<Value>(&r.text()).unwrap(),
        json!({"detail": "Authentication credentials were not provided."})
    );
    let request = format!(
        "GET /iclock/api/terminals/ HTTP/1.1\r\nHost: x\r\nAuthorization: Token {}\r\nConnection: close\r\n\r\n",
        server.token()
    );
    let r = server.raw(request.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let page: Value = serde_json::from_str(&r.text()).unwrap();
    assert_eq!(page["count"], 1, "{page}");
    assert_eq!(page["data"][0]["sn"], "PUSH000001", "{page}");
}

#[test]
fn biotime_consumers_read_punches_of_every_source_from_punchd() {
    if !pybiotime_available() {
        return;
    }
    let server = Server::start();
    // A pushed punch, an imported file and a webhook event.
    let r = server.attlog("PUSH000001", "1001\t2026-11-02 08:00:00\t0\t1\t0\t0\n");
    assert_eq!(r.status, 200, "{}", r.text());
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("p.csv");
    std::fs::write(&csv, "PIN,Time,State\n0042,2026-11-02 08:05:00,0\n").unwrap();
    let out = cli(
        &server.db,
        &["import", csv.to_str().unwrap(), "--device", "FILE000001"],
    );
    assert!(out.ok, "{}", out.stderr);
    let token = cli(&server.db, &["sources", "add", "webhook", "--name", "gate"])
        .stdout
        .trim()
        .to_owned();
    let body = r#"{"device_id": "HOOK000001", "events": [{"user_id": "7", "time": "2026-11-02T08:07:00", "type": "OUT"}]}"#;
    let request = format!(
        "POST /api/v1/sources/webhook HTTP/1.1\r\nHost: x\r\nX-Device-Token: {token}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(server.raw(request.as_bytes()).status, 200);

    let first = read_with_pybiotime(&server, "token", "");
    let want = json!([
        [1, "1001", "2026-11-02 08:00:00", "0", "PUSH000001"],
        [2, "0042", "2026-11-02 08:05:00", "0", "FILE000001"],
        [3, "7", "2026-11-02 08:07:00", "1", "HOOK000001"]
    ]);
    assert_eq!(first["all"], want, "{first}");
    assert_eq!(first["new"], want, "{first}");
    assert!(
        first["terminals"]
            .as_array()
            .unwrap()
            .contains(&json!("PUSH000001")),
        "{first}"
    );

    // A late punch (an old punch time, arriving now): read_new returns it and only it.
    let r = server.attlog("PUSH000001", "1003\t2026-10-30 17:00:00\t1\t1\t0\t0\n");
    assert_eq!(r.status, 200);
    let second = read_with_pybiotime(&server, "jwt", &first["state"].to_string());
    assert_eq!(
        second["new"],
        json!([[4, "1003", "2026-10-30 17:00:00", "1", "PUSH000001"]]),
        "{second}"
    );

    // Wrong credentials: refused as BioTime refuses them.
    let body = r#"{"username": "hubtest", "password": "pd_wrong"}"#;
    let request = format!(
        "POST /api-token-auth/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let r = server.raw(request.as_bytes());
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["non_field_errors"][0],
        "Unable to log in with provided credentials."
    );
    let r = server
        .raw(b"GET /iclock/api/transactions/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 401);
}

/// (sn, transport, approval, alias, site, address) as stored.
type DeviceRow = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

#[test]
fn biotime_terminals_become_devices_that_are_neither_pulled_nor_commanded() {
    if !pybiotime_available() {
        return;
    }
    let fake = Fake::start("9.5", 3);
    fake.control(
        "terminal",
        json!({"sn": "BT00000001", "alias": "Main gate"}),
    );
    fake.control(
        "terminal",
        json!({"sn": "BT00000002", "alias": "Store room",
               "area": {"id": 2, "area_code": "2", "area_name": "Warehouse"}, "area_name": "Warehouse"}),
    );
    fake.punch("1001", "2026-11-02 08:00:00", "BT00000002", "0", None);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("punchd.db");
    add_source(&db, "hq", &fake.url(), "jwt", "secret");
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    let before = now_ms();
    let r = run_ok(&db, "hq");
    let after = now_ms();
    assert_eq!(r["terminals"].as_u64(), Some(2), "{r}");
    // A complete read is the terminals' watermark (attendance completeness): `last_seen` is the read's start.
    let last_seen = || -> Vec<Option<i64>> {
        let conn = crate::harness::sqlite(&db);
        let mut st = conn
            .prepare("SELECT last_seen FROM devices ORDER BY sn")
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let first_seen = last_seen();
    assert_eq!(first_seen.len(), 2);
    for seen in &first_seen {
        let seen = seen.expect("a BioTime terminal has a watermark after a complete read");
        assert!(
            before <= seen && seen <= after,
            "{before} <= {seen} <= {after}"
        );
    }
    let devices = || -> Vec<DeviceRow> {
        let conn = crate::harness::sqlite(&db);
        let mut st = conn
            .prepare(
                "SELECT sn, transport, approval, alias, site, address FROM devices ORDER BY sn",
            )
            .unwrap();
        st.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    };
    let bt = |sn: &str, alias: &str, site: &str| {
        (
            sn.to_owned(),
            "biotime".to_owned(),
            "approved".to_owned(),
            Some(alias.to_owned()),
            Some(site.to_owned()),
            None,
        )
    };
    let want = vec![
        bt("BT00000001", "Main gate", "Head office"),
        bt("BT00000002", "Store room", "Warehouse"),
    ];
    assert_eq!(devices(), want);
    // The punch is stored against the terminal's device.
    assert_eq!(
        stored(&db),
        vec![p("BT00000002", "1001", "2026-11-02 08:00:00", 0)]
    );
    // A second run registers nothing twice, and moves the watermark on.
    run_ok(&db, "hq");
    assert_eq!(devices(), want);
    for (first, second) in first_seen.iter().zip(last_seen()) {
        assert!(second > *first, "{second:?} > {first:?}");
    }

    // `punchd devices list` shows where they come from.
    let out = cli(&db, &["devices", "list", "--format", "json"]);
    assert!(out.ok, "{}", out.stderr);
    let listed: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let listed: Vec<(String, String)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["sn"].as_str().unwrap().to_owned(),
                d["transport"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        vec![
            ("BT00000001".to_owned(), "biotime".to_owned()),
            ("BT00000002".to_owned(), "biotime".to_owned())
        ]
    );

    // A command to a BioTime terminal is refused, and nothing is queued.
    let out = cli(&db, &["commands", "send", "BT00000001", "reboot"]);
    assert!(!out.ok, "{}", out.stdout);
    assert!(
        out.stderr.contains("read through BioTime"),
        "{}",
        out.stderr
    );
    let queued: i64 = crate::harness::sqlite(&db)
        .query_row("SELECT COUNT(*) FROM commands", [], |r| r.get(0))
        .unwrap();
    assert_eq!(queued, 0);
}

/// A BioTime source reading in `zone` (the server's wall times are read in it).
fn add_source_in(db: &Path, name: &str, url: &str, zone: &str) {
    let out = cli(
        db,
        &[
            "sources",
            "add",
            "biotime",
            "--name",
            name,
            "--url",
            url,
            "--username",
            "api",
            "--password",
            "secret",
            "--auth",
            "token",
            "--time-zone",
            zone,
        ],
    );
    assert!(out.ok, "{}", out.stderr);
}

#[test]
fn biotime_terminals_are_read_beyond_the_first_page_of_100() {
    if !pybiotime_available() {
        return;
    }
    let fake = Fake::start("9.5", 10);
    for n in 1..=230 {
        fake.control(
            "terminal",
            json!({"sn": format!("PG{n:06}"), "alias": format!("Gate {n}")}),
        );
    }
    fake.punch("1001", "2026-11-02 08:00:00", "PG000230", "0", None);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("punchd.db");
    add_source(&db, "hq", &fake.url(), "token", "secret");
    let r = run_ok(&db, "hq");
    assert_eq!(r["terminals"].as_u64(), Some(230), "{r}");
    let conn = crate::harness::sqlite(&db);
    let (n, first, last): (i64, String, String) = conn
        .query_row(
            "SELECT COUNT(*), MIN(sn), MAX(sn) FROM devices WHERE transport = 'biotime'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (n, first.as_str(), last.as_str()),
        (230, "PG000001", "PG000230")
    );
    let alias: String = conn
        .query_row("SELECT alias FROM devices WHERE sn = 'PG000230'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(alias, "Gate 230");
    // The punch of a terminal listed on the third page is stored against it.
    assert_eq!(
        stored(&db),
        vec![p("PG000230", "1001", "2026-11-02 08:00:00", 0)]
    );
    // Three pages of 100 were asked for, numbered by punchd.
    let requests = fake.control("requests", json!({}));
    let pages: Vec<String> = requests
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r[1] == "/iclock/api/terminals/")
        .map(|r| format!("{}/{}", r[2]["page"], r[2]["page_size"]))
        .collect();
    assert_eq!(pages, ["\"1\"/\"100\"", "\"2\"/\"100\"", "\"3\"/\"100\""]);
}

/// (PIN, wall time, state, verify mode, work code, UTC seconds) of a stored punch.
type PunchRow = (String, String, i64, Option<i64>, Option<String>, i64);

#[test]
fn biotime_numbers_sent_as_strings_and_a_wall_time_in_the_dst_gap_are_read() {
    if !pybiotime_available() {
        return;
    }
    let fake = Fake::start("9.5", 10);
    fake.control("terminal", json!({"sn": "BT00000001"}));
    // Europe/Berlin skips 02:00–03:00 on 2026-03-29. BioTime sends the terminal's wall time as it was recorded,
    // so a terminal whose clock had not sprung forward yet reports a time that does not exist in the zone.
    // Numbers come as strings (punch_state always, verify_type and work_code on some servers), emp_code as a
    // JSON number.
    fake.control(
        "transaction",
        json!({"emp_code": "1001", "punch_time": "2026-03-29 02:30:00", "terminal_sn": "BT00000001",
               "punch_state": "1", "verify_type": "15", "work_code": "7"}),
    );
    fake.control(
        "transaction",
        json!({"emp_code": 1002, "punch_time": "2026-03-29 03:30:00", "terminal_sn": "BT00000001",
               "punch_state": " 5 ", "verify_type": 1, "work_code": 8}),
    );
    // A state that is not a number is kept as "unknown" (-1), not refused.
    fake.control(
        "transaction",
        json!({"emp_code": "1003", "punch_time": "2026-03-29 04:00:00", "terminal_sn": "BT00000001",
               "punch_state": "IN", "verify_type": "x"}),
    );
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("punchd.db");
    add_source_in(&db, "berlin", &fake.url(), "Europe/Berlin");
    let r = run_ok(&db, "berlin");
    assert_eq!(
        (r["stored"].as_u64(), r["rejected"].as_u64()),
        (Some(3), Some(0)),
        "{r}"
    );
    let conn = crate::harness::sqlite(&db);
    let rows: Vec<PunchRow> = conn
        .prepare(
            "SELECT pin, punched_at, punch_state, verify_mode, work_code, punched_at_utc FROM punches \
             ORDER BY punched_at",
        )
        .unwrap()
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    // The wall time is kept as sent; its UTC instant is read with the offset in force before the gap (+01:00):
    // 02:30 → 01:30Z, the same instant as 03:30 CEST.
    let half_past_one_utc = 1_774_747_800; // 2026-03-29T01:30:00Z
    assert_eq!(
        rows,
        vec![
            (
                "1001".to_owned(),
                "2026-03-29 02:30:00".to_owned(),
                1,
                Some(15),
                Some("7".to_owned()),
                half_past_one_utc
            ),
            (
                "1002".to_owned(),
                "2026-03-29 03:30:00".to_owned(),
                5,
                Some(1),
                Some("8".to_owned()),
                half_past_one_utc
            ),
            (
                "1003".to_owned(),
                "2026-03-29 04:00:00".to_owned(),
                -1,
                None,
                None,
                half_past_one_utc + 1_800
            ),
        ]
    );
}

#[test]
fn biotime_employees_are_read_into_punchds_employees_when_asked() {
    if !pybiotime_available() {
        return;
    }
    for version in ["9.5", "8.0"] {
        let fake = Fake::start(version, 10);
        fake.control("terminal", json!({"sn": "BT00000001"}));
        for n in 1..=120 {
            fake.control(
                "employee",
                json!({"emp_code": format!("{n:04}"), "first_name": format!("First{n}"), "last_name": "Last",
                       "department": {"code": "10", "name": "Sales"},
                       "area": {"code": "2", "name": "Warehouse"}, "hire_date": "2024-02-01"}),
            );
        }
        fake.punch("0007", "2026-11-02 08:00:00", "BT00000001", "0", None);
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("punchd.db");
        let out = cli(
            &db,
            &[
                "sources",
                "add",
                "biotime",
                "--name",
                "hq",
                "--url",
                &fake.url(),
                "--username",
                "api",
                "--password",
                "secret",
                "--auth",
                "token",
                "--time-zone",
                "Asia/Dubai",
                "--employees",
            ],
        );
        assert!(out.ok, "{}", out.stderr);
        let r = run_ok(&db, "hq");
        assert_eq!(
            (
                r["employees"].as_u64(),
                r["employees_changed"].as_u64(),
                r["stored"].as_u64()
            ),
            (Some(120), Some(120), Some(1)),
            "{version}: {r}"
        );
        let conn = crate::harness::sqlite(&db);
        let row: (String, String, Option<String>, Option<String>, Option<String>) = conn
            .query_row(
                "SELECT name, status, site, department, joined_on FROM employees WHERE code = '0007'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .unwrap();
        assert_eq!(
            row,
            (
                "First7 Last".to_owned(),
                "active".to_owned(),
                Some("Warehouse".to_owned()),
                Some("Sales".to_owned()),
                Some("2024-02-01".to_owned())
            ),
            "{version}"
        );
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM employees", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 120);
        // A second run finds nothing new and writes nothing (one audit entry in all).
        let r = run_ok(&db, "hq");
        assert_eq!(r["employees_changed"].as_u64(), Some(0), "{version}: {r}");
        let audits: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM audit_log WHERE action = 'employee.import'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(audits, 1, "{version}");
    }
}

/// "Read now" (`POST /api/v1/sources/{name}/run`, scope operate): a BioTime source read every hour, paused for a
/// minute after its password was rejected, is read within seconds of the request, and the pause is lifted.
#[test]
fn a_biotime_source_is_read_now_on_request_inside_its_interval_and_pause() {
    if !pybiotime_available() {
        return;
    }
    let fake = Fake::start("9.5", 100);
    fake.control("terminal", json!({"sn": "BT00000009"}));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("punchd.db");
    let out = cli(
        &db,
        &[
            "sources",
            "add",
            "biotime",
            "--name",
            "hourly",
            "--url",
            &fake.url(),
            "--username",
            "api",
            "--password",
            "secret",
            "--auth",
            "token",
            "--interval",
            "1h",
        ],
    );
    assert!(out.ok, "{}", out.stderr);
    assert!(
        cli(&db, &["sources", "add", "webhook", "--name", "gate-app"]).ok,
        "webhook source"
    );
    // The first read at start is refused at login: the source pauses for a minute, then waits an hour.
    fake.control(
        "fail_next",
        json!({"status": 400, "method": "POST", "path": "/api-token-auth/"}),
    );
    let server = Server::with(Options {
        db: Some(db.clone()),
        time_zone: Some("UTC".into()),
        ..Options::default()
    });
    let source = |server: &Server| -> Value {
        server
            .get_json("/sources")
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "hourly")
            .cloned()
            .unwrap()
    };
    let failed = server.wait_for("the refused first read", Duration::from_secs(20), || {
        let s = source(&server);
        (s["state"] == "failing").then_some(s)
    });
    assert!(
        failed["last_error"]
            .as_str()
            .unwrap()
            .contains("rejected user \"api\""),
        "{failed}"
    );
    assert_eq!(failed["run_requested_at"], Value::Null);
    fake.punch(
        "5001",
        "2026-11-30 08:00:00",
        "BT00000009",
        "0",
        Some("2026-11-30 08:00:01"),
    );

    // Refused: a viewer's token, a source that is not read, an unknown one.
    let read_token = cli(&db, &["token", "create", "viewer", "--scope", "read"])
        .stdout
        .trim()
        .to_owned();
    let as_viewer = server.raw(
        format!(
            "POST /api/v1/sources/hourly/run HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {read_token}\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(as_viewer.status, 403, "{}", as_viewer.text());
    let webhook = server.api("POST", "/sources/gate-app/run", None);
    assert_eq!(webhook.status, 409, "{}", webhook.text());
    assert!(
        webhook.text().contains("webhook source"),
        "{}",
        webhook.text()
    );
    assert_eq!(server.api("POST", "/sources/nope/run", None).status, 404);
    assert_eq!(source(&server)["run_requested_at"], Value::Null);

    let asked = server.api("POST", "/sources/hourly/run", None);
    assert_eq!(asked.status, 202, "{}", asked.text());
    let asked = asked.json();
    assert_eq!(asked["name"], "hourly");
    assert!(asked["run_requested_at"].is_string(), "{asked}");
    // Read within seconds, not after the minute's pause or the hour.
    let punch = server.wait_for("the read asked for", Duration::from_secs(10), || {
        server
            .punches("BT00000009")
            .into_iter()
            .find(|p| p["pin"] == "5001")
    });
    assert_eq!(
        (punch["source"].as_str(), punch["punched_at"].as_str()),
        (Some("biotime"), Some("2026-11-30T08:00:00"))
    );
    let s = server.wait_for("the read recorded", Duration::from_secs(10), || {
        let s = source(&server);
        (s["state"] == "ok").then_some(s)
    });
    assert_eq!(
        (s["last_error"].clone(), s["n_stored"].as_u64()),
        (Value::Null, Some(1)),
        "{s}"
    );
    assert_eq!(s["run_requested_at"], asked["run_requested_at"]);
}
