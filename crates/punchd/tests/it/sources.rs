//! Sources other than terminals (issue 9): file import (CLI and `POST /api/v1/imports`) and the JSON webhook,
//! end to end against a running server. Every test reads back what was stored (`GET /api/v1/punches`, the
//! journal, `punchd sources`) and checks PIN, wall time, punch state and source exactly.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::harness::{cli, cli_json, sqlite, Response, Server};

/// The import fixtures (real formats; see fixtures/import/README.md).
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/import")
        .join(name)
}

/// (PIN, wall time, punch state, source) of every punch of a device, by id.
fn facts(server: &Server, sn: &str) -> Vec<(String, String, Option<i64>, String)> {
    server
        .punches(sn)
        .iter()
        .map(|p| {
            (
                p["pin"].as_str().unwrap().to_owned(),
                p["punched_at"].as_str().unwrap().replace('T', " "),
                p["punch_state"].as_i64(),
                p["source"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn fact(
    pin: &str,
    at: &str,
    state: Option<i64>,
    source: &str,
) -> (String, String, Option<i64>, String) {
    (pin.into(), at.into(), state, source.into())
}

fn import_json(server: &Server, args: &[&str]) -> Value {
    let mut all = vec!["import", "--json"];
    all.extend_from_slice(args);
    cli_json(&server.db, &all)
}

#[test]
fn attlog_exports_of_both_layouts_are_imported_once() {
    let server = Server::start();
    let file = fixture("CQZ7224460025_attlog.dat");
    // The CLI does not know the server's `--time-zone`: the zone of a device it has not seen is given here.
    let report = import_json(
        &server,
        &[file.to_str().unwrap(), "--time-zone", "Asia/Shanghai"],
    );
    assert_eq!(report["format"], "attlog");
    assert_eq!(
        (
            report["n_rows"].as_u64(),
            report["n_stored"].as_u64(),
            report["n_bad"].as_u64()
        ),
        (Some(5), Some(4), Some(1))
    );
    assert_eq!(report["bad_rows"][0]["line_no"], 4);
    assert!(report["bad_rows"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("\"not a time\""));
    let want = vec![
        fact("1001", "2026-11-02 08:01:00", Some(0), "import"),
        fact("0042", "2026-11-02 08:05:30", Some(0), "import"),
        fact("1001", "2026-11-02 17:30:00", Some(1), "import"),
        fact("0042", "2026-11-02 18:00:00", Some(1), "import"),
    ];
    assert_eq!(facts(&server, "CQZ7224460025"), want);
    // The zone turns wall time into UTC.
    assert_eq!(
        server.punches("CQZ7224460025")[0]["punched_at_utc"],
        "2026-11-02T00:01:00Z"
    );
    // The journal holds the file's bytes exactly, and the bad line with its reason.
    let id = report["journal_ids"][0].as_i64().unwrap();
    let body: Vec<u8> = sqlite(&server.db)
        .query_row("SELECT body FROM journal WHERE id = ?1", [id], |r| r.get(0))
        .unwrap();
    assert_eq!(body, std::fs::read(&file).unwrap());
    let entry = server.get_json(&format!("/journal/{id}"));
    assert_eq!(entry["source"], "import");
    assert_eq!(entry["errors"][0]["line_no"], 4);

    // The same file again: nothing new.
    let again = import_json(&server, &[file.to_str().unwrap()]);
    assert_eq!(
        (again["n_stored"].as_u64(), again["n_duplicate"].as_u64()),
        (Some(0), Some(4))
    );
    assert_eq!(facts(&server, "CQZ7224460025"), want);

    // The older layout (space-padded PIN, machine number third), with a zone given on the command line.
    let old = fixture("OLD0001_attlog.dat");
    let report = import_json(
        &server,
        &[old.to_str().unwrap(), "--time-zone", "Europe/Berlin"],
    );
    assert!(report["columns"]
        .as_str()
        .unwrap()
        .starts_with("attlog layout machine"));
    assert_eq!(
        facts(&server, "OLD0001"),
        vec![
            fact("1001", "2026-11-03 08:01:00", Some(0), "import"),
            fact("42", "2026-11-03 08:02:00", Some(0), "import"),
            fact("1001", "2026-11-03 17:00:00", Some(1), "import"),
        ]
    );
    assert_eq!(
        server.punches("OLD0001")[0]["punched_at_utc"],
        "2026-11-03T07:01:00Z"
    );
    assert_eq!(server.punches("OLD0001")[1]["verify_mode"], 15);
}

#[test]
fn csv_in_utf8_with_bom_and_windows_1252_with_report_titles_and_bad_rows() {
    let server = Server::start();
    let utf8 = fixture("utf8-bom.csv");
    let report = import_json(&server, &[utf8.to_str().unwrap(), "--device", "CSV0000001"]);
    assert_eq!(report["format"], "csv");
    assert_eq!(
        report["columns"],
        "pin=1 \"User ID\", date=3 \"Date\", time=4 \"Time\", state=5 \"Status\""
    );
    let bad: Vec<(u64, String)> = report["bad_rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["line_no"].as_u64().unwrap(),
                b["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert_eq!(bad[0].0, 6);
    assert!(bad[0].1.contains("31/02/2026"), "{}", bad[0].1);
    assert_eq!(bad[1].0, 7);
    assert!(bad[1].1.contains("\"Lunch\""), "{}", bad[1].1);
    assert_eq!(
        facts(&server, "CSV0000001"),
        vec![
            fact("1001", "2026-11-02 08:01:00", Some(0), "import"),
            fact("0042", "2026-11-02 08:05:30", Some(0), "import"),
            fact("1001", "2026-11-02 17:30:00", Some(1), "import"),
        ]
    );
    // The bad row's text in the report is decoded (UTF-8 names intact).
    assert!(report["bad_rows"][1]["line"]
        .as_str()
        .unwrap()
        .contains("Müller, Anna"));

    let cp1252 = fixture("windows-1252.csv");
    let report = import_json(
        &server,
        &[cp1252.to_str().unwrap(), "--device", "CSV0000002"],
    );
    assert_eq!(
        report["columns"],
        "pin=1 \"AC-No.\", time=3 \"Date/Time\", state=4 \"State\""
    );
    assert_eq!(report["first_rows"][0]["line_no"], 2, "CRLF line numbers");
    assert_eq!(
        facts(&server, "CSV0000002"),
        vec![
            fact("1001", "2026-11-02 08:01:00", Some(0), "import"),
            fact("1003", "2026-11-02 08:03:00", Some(0), "import"),
            fact("1003", "2026-11-02 16:59:00", Some(1), "import"),
        ]
    );
}

#[test]
fn xlsx_from_a_spreadsheet_program_with_a_device_column() {
    let server = Server::start();
    // Written by gnumeric's ssconvert from a CSV: real date cells, a numeric PIN column (0042 became 42, as
    // spreadsheets do), a device column naming two terminals, a row with an empty time.
    let file = fixture("gnumeric.xlsx");
    let report = import_json(&server, &[file.to_str().unwrap()]);
    assert_eq!(report["format"], "xlsx");
    assert_eq!(report["devices"], json!(["GNU0000001", "GNU0000002"]));
    assert_eq!(
        (report["n_stored"].as_u64(), report["n_bad"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(report["bad_rows"][0]["line_no"], 5);
    assert_eq!(report["bad_rows"][0]["reason"], "no time");
    assert_eq!(
        facts(&server, "GNU0000001"),
        vec![
            fact("1001", "2026-11-02 08:01:00", Some(0), "import"),
            fact("42", "2026-11-02 08:05:30", Some(0), "import"),
        ]
    );
    assert_eq!(
        facts(&server, "GNU0000002"),
        vec![fact("1001", "2026-11-02 17:30:00", Some(1), "import")]
    );
}

#[test]
fn dry_run_stores_nothing_and_unrecognisable_files_are_refused() {
    let server = Server::start();
    let file = fixture("utf8-bom.csv");
    let out = cli(
        &server.db,
        &[
            "import",
            file.to_str().unwrap(),
            "--device",
            "DRY0000001",
            "--dry-run",
        ],
    );
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("dry run:  5 rows, 3 punches, 2 bad rows; nothing stored"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("line 7: punch state \"Lunch\""),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("1001  2026-11-02 08:01:00"),
        "{}",
        out.stdout
    );
    assert!(server.punches("DRY0000001").is_empty());

    let dir = tempfile::tempdir().unwrap();
    let names = dir.path().join("names.csv");
    std::fs::write(&names, "Name,Department\nJosé,Sales\n").unwrap();
    let out = cli(
        &server.db,
        &["import", names.to_str().unwrap(), "--device", "DRY0000001"],
    );
    assert!(!out.ok);
    assert!(
        out.stderr.contains("no recognisable columns")
            && out.stderr.contains("\"Name\", \"Department\""),
        "{}",
        out.stderr
    );
    // --columns names them; a date format the defaults would misread is given explicitly.
    let custom = dir.path().join("custom.csv");
    std::fs::write(&custom, "Who;When;Dir\n0007;11-02-2026 8.01;IN\n").unwrap();
    let report = import_json(
        &server,
        &[
            custom.to_str().unwrap(),
            "--device",
            "COL0000001",
            "--columns",
            "pin=Who,time=When,state=3",
            "--date-format",
            "%m-%d-%Y %H.%M",
        ],
    );
    assert_eq!(report["n_stored"], 1, "{report}");
    assert_eq!(
        facts(&server, "COL0000001"),
        vec![fact("0007", "2026-11-02 08:01:00", Some(0), "import")]
    );
    // An attlog whose name carries no serial needs --device.
    let unnamed = dir.path().join("1_attlog.dat");
    std::fs::write(&unnamed, "1\t2026-11-02 08:00:00\t0\t1\n").unwrap();
    let out = cli(&server.db, &["import", unnamed.to_str().unwrap()]);
    assert!(
        !out.ok && out.stderr.contains("machine number 1"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_large_attlog_is_imported_in_chunks() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("BIG0000001_attlog.dat");
    let mut body = String::new();
    let start = chrono::NaiveDate::from_ymd_opt(2026, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    let n = 25_000;
    for i in 0..n {
        let t = start + chrono::Duration::seconds(i * 7);
        body.push_str(&format!(
            "{}\t{t}\t{}\t1\t0\t0\t0\t0\t0\t0\n",
            1000 + i % 500,
            i % 2
        ));
    }
    std::fs::write(&file, &body).unwrap();
    let report = import_json(&server, &[file.to_str().unwrap()]);
    assert_eq!(report["n_stored"], n);
    // 10,000 rows a chunk: three journal entries whose bodies, in order, are the file.
    let (first, last) = (
        report["journal_ids"][0].as_i64().unwrap(),
        report["journal_ids"][1].as_i64().unwrap(),
    );
    let conn = sqlite(&server.db);
    let mut st = conn
        .prepare("SELECT body, n_stored FROM journal WHERE id BETWEEN ?1 AND ?2 ORDER BY id")
        .unwrap();
    let parts: Vec<(Vec<u8>, i64)> = st
        .query_map([first, last], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        parts.iter().map(|p| p.1).collect::<Vec<_>>(),
        [10_000, 10_000, 5_000]
    );
    assert_eq!(parts.concat_bytes(), body.as_bytes());
    let count: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM punches WHERE device_sn = 'BIG0000001' AND source = 'import'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(count, n);
}

trait ConcatBytes {
    fn concat_bytes(&self) -> Vec<u8>;
}

impl ConcatBytes for Vec<(Vec<u8>, i64)> {
    fn concat_bytes(&self) -> Vec<u8> {
        self.iter().flat_map(|p| p.0.iter().copied()).collect()
    }
}

/// `POST /api/v1/imports` with one file part and text parts.
fn upload(server: &Server, file_name: &str, content: &[u8], fields: &[(&str, &str)]) -> Response {
    let boundary = "----punchdtestboundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut request = format!(
        "POST /api/v1/imports HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        server.token(),
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    server.raw(&request)
}

#[test]
fn imports_are_uploaded_over_the_api() {
    let server = Server::start();
    let xlsx = std::fs::read(fixture("gnumeric.xlsx")).unwrap();
    let dry = upload(&server, "punches.xlsx", &xlsx, &[("dry_run", "true")]);
    assert_eq!(dry.status, 200, "{}", dry.text());
    assert_eq!(dry.json()["n_punches"], 3);
    assert!(server.punches("GNU0000001").is_empty());
    let r = upload(&server, "punches.xlsx", &xlsx, &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["n_stored"], 3);
    let again = upload(&server, "punches.xlsx", &xlsx, &[]);
    assert_eq!(
        (
            again.json()["n_stored"].as_u64(),
            again.json()["n_duplicate"].as_u64()
        ),
        (Some(0), Some(3))
    );
    assert_eq!(
        facts(&server, "GNU0000002"),
        vec![fact("1001", "2026-11-02 17:30:00", Some(1), "import")]
    );

    let attlog = std::fs::read(fixture("CQZ7224460025_attlog.dat")).unwrap();
    let r = upload(
        &server,
        "export.dat",
        &attlog,
        &[("device", "UPL0000001"), ("time_zone", "Asia/Kolkata")],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        server.punches("UPL0000001")[0]["punched_at_utc"],
        "2026-11-02T02:31:00Z"
    );
    let refused = upload(
        &server,
        "names.csv",
        b"Name,Dept\nA,B\n",
        &[("device", "UPL0000001")],
    );
    assert_eq!(refused.status, 400);
    assert!(refused.json()["error"]
        .as_str()
        .unwrap()
        .contains("no recognisable columns"));
    // Without an API token: 401, nothing read.
    let anonymous = server.raw(
        b"POST /api/v1/imports HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(anonymous.status, 401);
    // The imports are counted under the import source.
    let sources = cli_json(&server.db, &["sources", "--format", "json"]);
    let import = sources
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "import")
        .unwrap();
    assert_eq!(
        (import["n_stored"].as_u64(), import["n_duplicate"].as_u64()),
        (Some(7), Some(3))
    );
}

fn webhook(server: &Server, auth: &str, body: &[u8]) -> Response {
    let mut request = format!(
        "POST /api/v1/sources/webhook HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    server.raw(&request)
}

#[test]
fn webhook_events_are_stored_once_with_their_source_and_zone() {
    let server = Server::start();
    let out = cli(
        &server.db,
        &[
            "sources",
            "add",
            "webhook",
            "--name",
            "gate-app",
            "--time-zone",
            "Europe/Istanbul",
        ],
    );
    assert!(out.ok, "{}", out.stderr);
    let token = out.stdout.trim().to_owned();
    assert!(token.starts_with("pd_"), "{token:?}");

    let body = json!({"device_id": "GATE-01", "events": [
        {"user_id": "1001", "time": "2026-11-02T08:01:00+03:00", "type": "IN"},
        {"user_id": "0042", "time": "2026-11-02T05:02:00Z", "type": "OUT", "verify": 15},
        {"user_id": "7", "time": "2026-11-02 08:03:00"}
    ]})
    .to_string();
    // A wrong token: 401 and nothing stored.
    let r = webhook(&server, "X-Device-Token: pd_wrong", body.as_bytes());
    assert_eq!(r.status, 401);
    let r = webhook(
        &server,
        &format!("Authorization: Bearer {}", server.token()),
        body.as_bytes(),
    );
    assert_eq!(r.status, 401, "an API token is not a source token");
    assert!(server.punches("GATE-01").is_empty());

    let r = webhook(
        &server,
        &format!("X-Device-Token: {token}"),
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"ok": true, "inserted": 3, "duplicates": 0, "errors": []})
    );
    let want = vec![
        fact("1001", "2026-11-02 08:01:00", Some(0), "webhook"),
        fact("0042", "2026-11-02 08:02:00", Some(1), "webhook"),
        fact("7", "2026-11-02 08:03:00", None, "webhook"),
    ];
    assert_eq!(facts(&server, "GATE-01"), want);
    let stored = server.punches("GATE-01");
    assert_eq!(
        stored[2]["punched_at_utc"], "2026-11-02T05:03:00Z",
        "naive time in the source's zone"
    );
    assert_eq!(stored[0]["time_zone"], "Europe/Istanbul");
    // Sent again with a Bearer token: all duplicates.
    let r = webhook(
        &server,
        &format!("Authorization: Bearer {token}"),
        body.as_bytes(),
    );
    assert_eq!(
        r.json(),
        json!({"ok": true, "inserted": 0, "duplicates": 3, "errors": []})
    );
    assert_eq!(facts(&server, "GATE-01"), want);
}

/// Like [`webhook`], for a body the server refuses before reading it all: write errors (the server closed early)
/// and a reset while reading are tolerated; whatever answer arrived is parsed.
fn send_tolerant(server: &Server, auth: &str, body: &[u8]) -> Response {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let head = format!(
        "POST /api/v1/sources/webhook HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let _ = stream.write_all(body);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    crate::harness::parse_response(&answer)
        .unwrap_or_else(|| panic!("no answer: {:?}", String::from_utf8_lossy(&answer)))
}

#[test]
fn webhook_bad_input_gets_reasons_and_good_events_are_kept() {
    let server = Server::start();
    let token = cli(&server.db, &["sources", "add", "webhook", "--name", "app"])
        .stdout
        .trim()
        .to_owned();
    let auth = format!("X-Device-Token: {token}");
    // Malformed JSON: 400 with the reason, nothing stored, the bytes journaled.
    let r = webhook(&server, &auth, b"{\"device_id\": \"APP-1\", \"events\": [");
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"].as_str().unwrap().contains("not JSON"),
        "{}",
        r.text()
    );
    let r = webhook(
        &server,
        &auth,
        br#"{"device_id": "APP-1", "events": [], "extra": true}"#,
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("unknown field \"extra\""));
    // Wrong types and unknown fields per event: 422 with each reason; the good event stored.
    let body = json!({"device_id": "APP-1", "events": [
        {"user_id": 1001, "time": "2026-11-02T08:01:00"},
        {"user_id": "1002", "time": 20261102},
        {"user_id": "1003", "time": "2026-11-02T08:01:00", "temperature": 36.6},
        {"user_id": "1004", "time": "2026-11-02T08:04:00", "type": "IN"}
    ]});
    let r = webhook(&server, &auth, body.to_string().as_bytes());
    assert_eq!(r.status, 422, "{}", r.text());
    let reply = r.json();
    assert_eq!(
        (reply["ok"].as_bool(), reply["inserted"].as_u64()),
        (Some(false), Some(1))
    );
    let errors: Vec<(u64, String)> = reply["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["index"].as_u64().unwrap(),
                e["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(errors.len(), 3);
    assert!(
        errors[0].1.contains("user_id must be a string"),
        "{errors:?}"
    );
    assert!(errors[1].1.contains("time must be a string"), "{errors:?}");
    assert!(
        errors[2].1.contains("unknown field \"temperature\""),
        "{errors:?}"
    );
    assert_eq!(
        facts(&server, "APP-1"),
        vec![fact("1004", "2026-11-02 08:04:00", Some(0), "webhook")]
    );
    // A 10 MB body: 413, nothing stored.
    let mut big = String::from("{\"device_id\": \"APP-1\", \"events\": [");
    while big.len() < 10 * 1024 * 1024 {
        big.push_str("{\"user_id\": \"9\", \"time\": \"2026-11-02T09:00:00\"},");
    }
    big.push_str("{\"user_id\": \"9\", \"time\": \"2026-11-02T09:00:01\"}]}");
    let r = send_tolerant(&server, &auth, big.as_bytes());
    assert_eq!(r.status, 413);
    assert_eq!(server.punches("APP-1").len(), 1);

    // `punchd sources` shows the counts and the last error in words.
    let sources = cli_json(&server.db, &["sources", "--format", "json"]);
    let app = &sources.as_array().unwrap()[0];
    assert_eq!(app["name"], "app");
    assert_eq!(app["state"], "failing");
    assert_eq!(
        (app["n_stored"].as_u64(), app["n_rejected"].as_u64()),
        (Some(1), Some(5))
    );
    assert!(
        app["last_error"]
            .as_str()
            .unwrap()
            .starts_with("3 of 4 events refused"),
        "{app}"
    );
    let table = cli(&server.db, &["sources"]);
    let line = table
        .stdout
        .lines()
        .find(|l| l.starts_with("app "))
        .unwrap();
    assert!(
        line.contains(" webhook ") && line.contains(" failing "),
        "{}",
        table.stdout
    );
    // The API lists the same.
    let listed = server.get_json("/sources");
    assert_eq!(listed[0]["n_rejected"], 5);
    // And the metrics.
    let metrics = server
        .raw(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .text();
    assert!(
        metrics.contains("punchd_source_punches_stored{source=\"app\",kind=\"webhook\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("punchd_source_rejected{source=\"app\",kind=\"webhook\"} 5"));
    assert!(metrics.contains("punchd_source_failing{source=\"app\",kind=\"webhook\"} 1"));
}
