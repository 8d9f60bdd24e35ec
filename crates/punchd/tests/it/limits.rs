//! Issue 6, "Resources: one request must never take the server down". Each reproduction of the issue, asserted
//! on what the server stored (journal rows, error counts, byte sizes, devices) and on its peak memory.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::Duration;

use crate::harness::{parse_response, punchd_command, sqlite, Options, Server};

fn count(server: &Server, sql: &str) -> i64 {
    sqlite(&server.db).query_row(sql, [], |r| r.get(0)).unwrap()
}

fn metrics(server: &Server) -> String {
    server
        .raw(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .text()
}

/// The value of one metric sample line (`name{labels} value`), 0 when absent.
fn metric(server: &Server, sample: &str) -> f64 {
    metrics(server)
        .lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Peak resident memory of the server process so far (VmHWM), bytes.
fn peak_rss(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

fn healthz(server: &Server) -> (u16, String) {
    let r = server.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    (r.status, r.text())
}

#[test]
fn a_16_mib_body_of_8_million_bad_lines_is_refused_before_parsing_and_nothing_is_kept() {
    let server = Server::start();
    // The reproduction: python3 -c "import sys;sys.stdout.write('x\n'*8388608)".
    let body = "x\n".repeat(8_388_608);
    assert_eq!(body.len(), 16 * 1024 * 1024);
    for _ in 0..2 {
        let r = server.iclock(
            "POST",
            "/iclock/cdata?SN=ANY1&table=ATTLOG",
            body.as_bytes(),
        );
        assert_eq!(r.status, 413, "{}", r.text());
        assert!(
            r.text()
                .contains("8388608 lines in one request is over the limit of 10000"),
            "{}",
            r.text()
        );
    }
    assert_eq!(count(&server, "SELECT COUNT(*) FROM journal"), 0);
    assert_eq!(
        metric(&server, "punchd_refused_total{reason=\"too_many_lines\"}"),
        2.0
    );
    // A normal terminal is served right after.
    assert_eq!(
        server
            .attlog("NORMAL1", "1\t2024-06-01 08:00:00\t0\t1\n")
            .text(),
        "OK:1"
    );
    let peak = peak_rss(&server);
    assert!(peak < 100 * 1024 * 1024, "peak RSS {peak} bytes");
}

#[test]
fn a_16_mib_body_of_long_bad_lines_records_100_clipped_errors_and_counts_the_rest() {
    let server = Server::start();
    // 10,000 lines (the most one request may carry) of 1,677 control bytes each: 16 MiB.
    let line = format!("{}\n", "\u{1}".repeat(1_676));
    let body = line.repeat(10_000);
    assert!(body.len() <= 16 * 1024 * 1024);
    let r = server.iclock(
        "POST",
        "/iclock/cdata?SN=LONG1&table=ATTLOG",
        body.as_bytes(),
    );
    assert_eq!((r.status, r.text()), (200, "OK:0".to_owned()));
    // One bad line of 1.5 MiB (over max_line_bytes) and one of 900 KiB (under it), each with a good line.
    let mut one = format!("1\t2024-06-01 08:00:00\n{}\n", "\u{1}".repeat(1_572_864));
    one.push_str(&format!(
        "x\t{}\n2\t2024-06-01 08:01:00\n",
        "\u{1}".repeat(921_600)
    ));
    let r = server.iclock(
        "POST",
        "/iclock/cdata?SN=LONG1&table=ATTLOG",
        one.as_bytes(),
    );
    assert_eq!((r.status, r.text()), (200, "OK:2".to_owned()));

    let conn = sqlite(&server.db);
    let rows: Vec<(i64, i64, String)> = conn
        .prepare("SELECT length(body), length(errors), errors FROM journal WHERE device_sn = 'LONG1' ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 2);
    // The bytes are kept whole; the error text is bounded.
    assert_eq!(rows[0].0 as usize, body.len());
    // 101 entries; a control byte is 6 bytes of JSON (\u0001), so at most ~4.6 KB per entry.
    assert!(rows[0].1 < 500_000, "errors JSON of {} bytes", rows[0].1);
    let errors: Vec<serde_json::Value> = serde_json::from_str(&rows[0].2).unwrap();
    assert_eq!(errors.len(), 101);
    assert_eq!(errors[0]["line_no"], 1);
    assert_eq!(errors[99]["line_no"], 100);
    assert_eq!(errors[100]["line_no"], 0);
    assert_eq!(
        errors[100]["reason"],
        "9900 more line errors not recorded (10000 in all; at most 100 are recorded per request)"
    );
    for e in &errors {
        assert!(e["line"].as_str().unwrap().chars().count() <= 530, "{e}");
        assert!(e["reason"].as_str().unwrap().chars().count() <= 280, "{e}");
    }
    let errors: Vec<serde_json::Value> = serde_json::from_str(&rows[1].2).unwrap();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0]["line_no"], 2);
    assert!(
        errors[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("line of 1572864 bytes is over the limit of 1048576 bytes"),
        "{errors:?}"
    );
    assert_eq!(errors[1]["line_no"], 3);
    assert!(rows[1].1 < 10_000, "errors JSON of {} bytes", rows[1].1);
    assert_eq!(
        count(
            &server,
            "SELECT COUNT(*) FROM punches WHERE device_sn = 'LONG1'"
        ),
        2
    );
    // The error counter counts every bad line, recorded or not.
    assert_eq!(metric(&server, "punchd_line_errors_total"), 10_002.0);
    // An options upload keeps short keys and values only (it is merged into the device's info).
    let mut options = format!("FaceFunOn=1\nHuge={}\n", "v".repeat(5_000));
    for n in 0..1_500 {
        options.push_str(&format!("K{n}=1\n"));
    }
    let r = server.iclock(
        "POST",
        "/iclock/cdata?SN=LONG1&table=options",
        options.as_bytes(),
    );
    assert_eq!((r.status, r.text()), (200, "OK".to_owned()));
    let info: serde_json::Value = serde_json::from_str(
        &sqlite(&server.db)
            .query_row("SELECT info FROM devices WHERE sn = 'LONG1'", [], |r| {
                r.get::<_, String>(0)
            })
            .unwrap(),
    )
    .unwrap();
    assert_eq!(info["FaceFunOn"], "1");
    assert!(info.get("Huge").is_none());
    assert_eq!(info.as_object().unwrap().len(), 1_000);
    // No log line carries the bad bytes at length.
    let log = server.log();
    let longest = log.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 8 * 1024, "a log line of {longest} bytes");
    // The heap's peak for a 16 MiB request is ~77 MB (valgrind massif): the body as received, its journal copy,
    // and SQLite's bound copy and record of it. Resident memory adds the runtime and the allocator's slack.
    let peak = peak_rss(&server);
    assert!(peak < 128 * 1024 * 1024, "peak RSS {peak} bytes");
}

#[test]
fn requests_without_an_approved_sn_are_not_journaled_and_pending_devices_are_capped() {
    let server = Server::with(Options {
        time_zone: Some("UTC".into()),
        approval: Some("manual".into()),
        config: Some(
            "[limits]\nmax_pending_devices = 5\nnew_sns_per_address_per_minute = 8\n".into(),
        ),
        ..Options::default()
    });
    // No SN, unknown path: answered OK (push.md §1.1), nothing kept.
    let big = vec![b'z'; 4 * 1024 * 1024];
    for _ in 0..3 {
        let r = server.iclock("POST", "/iclock/x.bin", &big);
        assert_eq!((r.status, r.text()), (200, "OK".to_owned()));
    }
    assert_eq!(count(&server, "SELECT COUNT(*) FROM journal"), 0);
    assert_eq!(
        metric(&server, "punchd_refused_total{reason=\"no_sn\"}"),
        3.0
    );
    // Ten fake SNs from one address: eight registered (pending), the last two refused by the rate limit; of
    // the eight, the five newest stay pending.
    for n in 1..=10 {
        let r = server.attlog(&format!("FAKE{n:03}"), "1\t2024-06-01 08:00:00\n");
        assert_eq!((r.status, r.text()), (200, "UNKNOWN DEVICE".to_owned()));
    }
    let conn = sqlite(&server.db);
    let sns: Vec<String> = conn
        .prepare("SELECT sn FROM devices ORDER BY sn")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(sns, ["FAKE004", "FAKE005", "FAKE006", "FAKE007", "FAKE008"]);
    assert_eq!(count(&server, "SELECT COUNT(*) FROM journal"), 0);
    assert_eq!(metric(&server, "punchd_pending_dropped_total"), 3.0);
    assert_eq!(
        metric(&server, "punchd_refused_total{reason=\"new_sn_rate\"}"),
        2.0
    );
    assert_eq!(
        metric(&server, "punchd_refused_total{reason=\"unapproved\"}"),
        8.0
    );
    let log = server.log();
    assert!(
        log.lines()
            .any(|l| l.contains("pending device forgotten") && l.contains("FAKE001")),
        "{log}"
    );
    // The API lists what the store holds.
    let listed = server.get_json("/devices");
    assert_eq!(listed.as_array().unwrap().len(), 5, "{listed}");
}

/// Connect and keep the socket open without sending anything.
fn idle(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port)).unwrap()
}

#[test]
fn past_the_connection_limit_only_established_terminals_are_served() {
    let server = Server::with(Options {
        time_zone: Some("UTC".into()),
        config: Some("[limits]\nmax_connections = 6\nreserved_connections = 2\n".into()),
        ..Options::default()
    });
    assert_eq!(
        server.attlog("TERM1", "1\t2024-06-01 08:00:00\n").text(),
        "OK:1"
    );
    // Four slow clients take every connection that is not reserved.
    let held: Vec<TcpStream> = (0..4).map(|_| idle(server.port)).collect();
    // A stranger gets a reserved slot only to be closed: no answer, nothing registered.
    let mut stranger = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stranger
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let body = "1\t2024-06-01 08:00:00\n";
    let request = format!(
        "POST /iclock/cdata?SN=STRANGER1&table=ATTLOG HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    stranger.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = stranger.read_to_end(&mut answer);
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    // The established terminal is still served.
    let r = server.attlog("TERM1", "1\t2024-06-01 09:00:00\n");
    assert_eq!((r.status, r.text()), (200, "OK:1".to_owned()));
    drop(held);
    assert_eq!(
        count(
            &server,
            "SELECT COUNT(*) FROM devices WHERE sn = 'STRANGER1'"
        ),
        0
    );
    assert_eq!(
        count(
            &server,
            "SELECT COUNT(*) FROM punches WHERE device_sn = 'TERM1'"
        ),
        2
    );
    // Until the server has seen the held sockets close, /metrics itself may land on a reserved slot (and be
    // closed unanswered): ask until it answers.
    let text = server.wait_for("metrics answered", Duration::from_secs(10), || {
        let mut s = TcpStream::connect(("127.0.0.1", server.port)).ok()?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut bytes = Vec::new();
        s.read_to_end(&mut bytes).ok()?;
        Some(parse_response(&bytes)?.text())
    });
    assert!(
        text.lines()
            .any(|l| l.starts_with("punchd_refused_total{reason=\"not_established\"}")),
        "{text}"
    );
}

#[test]
fn a_full_database_turns_healthz_red_and_the_server_recovers_on_its_own_when_space_returns() {
    let server = Server::with(Options {
        time_zone: Some("UTC".into()),
        config: Some("[limits]\nmax_database_bytes = 4194304\n".into()),
        ..Options::default()
    });
    assert_eq!(healthz(&server), (200, "ok\n".to_owned()));
    // Bodies of ~600 KiB (one good line, then padding lines the terminal would not send) fill 4 MiB.
    let batch = |n: usize| {
        let mut body = format!("{n}\t2024-06-01 08:00:00\n");
        for _ in 0..600 {
            body.push_str(&format!("#{}\n", "p".repeat(1_000)));
        }
        body
    };
    let mut first_refused = None;
    for n in 1..=20 {
        let r = server.attlog("FULL1", &batch(n));
        if r.status == 503 {
            first_refused = Some(n);
            break;
        }
        assert_eq!((r.status, r.text()), (200, "OK:1".to_owned()));
    }
    let refused = first_refused.expect("the database filled up");
    let (status, text) = healthz(&server);
    assert_eq!(status, 503, "{text}");
    assert!(text.starts_with("storage failing: "), "{text}");
    assert!(text.contains("full"), "{text}");
    assert_eq!(server.attlog("FULL1", &batch(refused)).status, 503);
    // Nothing of the refused batch was kept.
    assert_eq!(
        count(
            &server,
            "SELECT COUNT(*) FROM punches WHERE device_sn = 'FULL1'"
        ),
        refused as i64 - 1
    );
    // Space returns (an operator deletes old journal bodies); no restart, no request needed.
    sqlite(&server.db)
        .execute("UPDATE journal SET body = x''", [])
        .unwrap();
    server.wait_for("healthz ok again", Duration::from_secs(15), || {
        (healthz(&server).0 == 200).then_some(())
    });
    assert!(
        server.log().contains("storage recovered"),
        "{}",
        server.log()
    );
    let r = server.attlog("FULL1", &batch(refused));
    assert_eq!((r.status, r.text()), (200, "OK:1".to_owned()));
    assert_eq!(
        count(
            &server,
            "SELECT COUNT(*) FROM punches WHERE device_sn = 'FULL1'"
        ),
        refused as i64
    );
}

#[test]
fn logged_fields_from_the_wire_cannot_forge_a_log_line() {
    let server = Server::start();
    let r = server.iclock(
        "POST",
        "/iclock/cdata?SN=X1&table=X%0A2026-11-30T06:00:00Z%20ERROR%20fake",
        b"a",
    );
    assert_eq!(r.status, 200);
    let log = server.log();
    assert!(
        !log.lines().any(|l| l.starts_with("2026-11-30T06:00:00Z")),
        "a forged line:\n{log}"
    );
    assert!(
        log.contains("table=X\\n2026-11-30T06:00:00Z ERROR fake"),
        "{log}"
    );
}

#[test]
fn no_colour_codes_when_the_log_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = punchd_command()
        .env_remove("NO_COLOR")
        .arg("--database")
        .arg(dir.path().join("punchd.db"))
        .args(["--listen", "127.0.0.1:0", "serve", "--time-zone", "UTC"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let mut seen = String::new();
    while lines.read_line(&mut line).unwrap() > 0 {
        seen.push_str(&line);
        if line.contains("punchd is running") {
            break;
        }
        line.clear();
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen.contains("punchd is running"), "{seen}");
    assert!(
        !seen.contains('\u{1b}'),
        "ANSI codes in a piped log: {seen:?}"
    );
}

#[test]
fn resent_idcard_and_errorlog_records_are_stored_once() {
    let server = Server::start();
    for _ in 0..3 {
        let r = server.iclock(
            "POST",
            "/iclock/cdata?SN=IDC1&table=IDCARD&Stamp=1",
            "IDCARD PIN=1\tSNNum=1\tIDNum=110101199001011234\tName=Zhang\n".as_bytes(),
        );
        assert_eq!(r.text(), "OK:1");
        let r = server.iclock(
            "POST",
            "/iclock/cdata?SN=IDC1&table=ERRORLOG&Stamp=1",
            "ERRORLOG ErrCode=D01E0001\tErrMsg=face detection failed\tDataOrigin=dev\tCmdId=0\tAdditional=\n"
                .as_bytes(),
        );
        assert_eq!(r.text(), "OK:1");
    }
    let conn = sqlite(&server.db);
    let tags: Vec<(String, i64)> = conn
        .prepare("SELECT tag, COUNT(*) FROM device_records WHERE device_sn = 'IDC1' GROUP BY tag ORDER BY tag")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(tags, [("ERRORLOG".to_owned(), 1), ("IDCARD".to_owned(), 1)]);
}

#[test]
fn the_migration_removes_duplicate_records_an_older_punchd_stored() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("punchd.db");
    {
        let conn = sqlite(&db);
        let migrations = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite");
        for name in ["0001_init.sql", "0002_drop_punches_pin.sql"] {
            let sql = std::fs::read_to_string(format!("{migrations}/{name}")).unwrap();
            conn.execute_batch(&sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 2).unwrap();
        for _ in 0..3 {
            conn.execute(
                "INSERT INTO device_records (device_sn, tag, fields, received_at) VALUES ('OLD1', 'IDCARD', '{\"PIN\":\"1\"}', 1)",
                [],
            )
            .unwrap();
        }
        conn.execute(
            "INSERT INTO device_records (device_sn, tag, fields, received_at) VALUES ('OLD1', 'IDCARD', '{\"PIN\":\"2\"}', 1)",
            [],
        )
        .unwrap();
    }
    let server = Server::with(Options {
        time_zone: Some("UTC".into()),
        db: Some(db.clone()),
        ..Options::default()
    });
    let ids: Vec<i64> = sqlite(&server.db)
        .prepare("SELECT id FROM device_records ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(ids, [1, 4], "the first copy of each record is kept");
}

#[test]
fn a_second_serve_on_the_same_database_is_refused_with_a_clear_message() {
    let server = Server::start();
    let mut second = punchd_command()
        .arg("--database")
        .arg(&server.db)
        .args(["--listen", "127.0.0.1:0", "serve"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // It must exit on its own; one still running after 20 s is a second server (killed, and the test fails).
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = second.kill();
            let _ = second.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    second
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        status.is_some_and(|s| !s.success()),
        "a second server started: {stderr}"
    );
    assert!(
        stderr.contains("another punchd serve is already running on database"),
        "{stderr}"
    );
    assert!(stderr.contains(&server.pid().to_string()), "{stderr}");
    // The first one still works.
    assert_eq!(
        server.attlog("LOCK1", "1\t2024-06-01 08:00:00\n").text(),
        "OK:1"
    );
}
