//! Operations (issue 6): token scopes per route, one JSON error shape, the OpenAPI document, CSV export of a
//! whole range, JSON limits reported, read-only CLI commands that do not create a database, device removal,
//! command cancellation, settings checked, the journal listing and the journal id in log lines.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{cli, cli_json, punchd_command, sqlite, Options, Response, Server};

/// An API request with an explicit `Authorization` header value (or none) and an optional JSON body.
fn call(
    server: &Server,
    auth: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Response {
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    let body = body.unwrap_or("");
    let request = format!(
        "{method} /api/v1{path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    server.raw(request.as_bytes())
}

fn token(server: &Server, name: &str, scope: Option<&str>) -> String {
    let mut args = vec!["token", "create", name];
    if let Some(scope) = scope {
        args.extend(["--scope", scope]);
    }
    let out = cli(&server.db, &args);
    assert!(out.ok, "{}", out.stderr);
    out.stdout.trim().to_owned()
}

/// The body is exactly `{"error": <message>}` and the content type JSON.
fn error_of(r: &Response) -> String {
    assert_eq!(
        r.header("content-type"),
        Some("application/json"),
        "status {}: {}",
        r.status,
        r.text()
    );
    let v = r.json();
    let obj = v.as_object().unwrap();
    assert_eq!(obj.len(), 1, "{v}");
    obj["error"].as_str().unwrap().to_owned()
}

#[test]
fn tokens_have_scopes_enforced_per_route_and_documented() {
    let server = Server::start();
    assert_eq!(
        server
            .attlog("SCOPE00001", "1\t2024-07-01 08:00:00\t0\t1\n")
            .text(),
        "OK:1"
    );
    let read = token(&server, "viewer", None);
    let operate = token(&server, "gate-ops", Some("operate"));
    let admin = token(&server, "boss", Some("admin"));
    let listed = cli(&server.db, &["token", "list"]);
    let scopes: Vec<(String, String)> = listed
        .stdout
        .lines()
        .map(|l| {
            let cells: Vec<&str> = l.split('\t').collect();
            (cells[0].to_owned(), cells[3].to_owned())
        })
        .collect();
    assert_eq!(
        scopes,
        [
            ("viewer", "read"),
            ("gate-ops", "operate"),
            ("boss", "admin")
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    let bad = cli(&server.db, &["token", "create", "x", "--scope", "root"]);
    assert!(!bad.ok);
    assert!(
        bad.stderr
            .contains("scope \"root\" is not read, hr, operate or admin"),
        "{}",
        bad.stderr
    );

    let reboot = r#"{"type": "reboot"}"#;
    let cmd_path = "/devices/SCOPE00001/commands";
    // read: every GET, nothing else.
    let bearer = |t: &str| format!("Bearer {t}");
    assert_eq!(
        call(&server, Some(&bearer(&read)), "GET", "/devices", None).status,
        200
    );
    assert_eq!(
        call(&server, Some(&bearer(&read)), "GET", "/punches", None).status,
        200
    );
    let r = call(
        &server,
        Some(&bearer(&read)),
        "POST",
        cmd_path,
        Some(reboot),
    );
    assert_eq!(r.status, 403);
    assert_eq!(
        error_of(&r),
        "token \"viewer\" has scope read; this needs operate (create one with `punchd token create NAME --scope operate`)"
    );
    let n_commands = |server: &Server| -> i64 {
        sqlite(&server.db)
            .query_row("SELECT COUNT(*) FROM commands", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(n_commands(&server), 0, "a refused command is not queued");
    // operate: commands and approve/block, not settings or removal.
    let r = call(
        &server,
        Some(&bearer(&operate)),
        "POST",
        cmd_path,
        Some(reboot),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()[0]["requested_by"], "api:gate-ops");
    assert_eq!(n_commands(&server), 1);
    assert_eq!(
        call(
            &server,
            Some(&bearer(&operate)),
            "POST",
            "/devices/SCOPE00001/block",
            None
        )
        .status,
        200
    );
    for (method, path, body) in [
        ("PATCH", "/devices/SCOPE00001", Some(r#"{"alias": "Gate"}"#)),
        ("DELETE", "/devices/SCOPE00001", None),
        (
            "POST",
            "/devices",
            Some(r#"{"sn": "PULL000001", "address": "127.0.0.1:4370"}"#),
        ),
    ] {
        let r = call(&server, Some(&bearer(&operate)), method, path, body);
        assert_eq!(r.status, 403, "{method} {path}: {}", r.text());
        assert!(error_of(&r).ends_with(
            "this needs admin (create one with `punchd token create NAME --scope admin`)"
        ));
    }
    // admin, with the scheme in lower case.
    let r = call(
        &server,
        Some(&format!("bearer {admin}")),
        "PATCH",
        "/devices/SCOPE00001",
        Some(r#"{"alias": "Gate"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["alias"], "Gate");
    let r = call(
        &server,
        Some(&format!("BEARER {read}")),
        "GET",
        "/devices",
        None,
    );
    assert_eq!(r.status, 200);
    // No or unknown token: 401 JSON with a challenge.
    for auth in [None, Some("Bearer pd_nope"), Some("Basic abc")] {
        let r = call(&server, auth, "GET", "/devices", None);
        assert_eq!(r.status, 401);
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer realm=\"punchd\"")
        );
        assert!(error_of(&r).starts_with("missing or invalid API token"));
    }

    // The document says which scope each operation needs.
    let doc = call(&server, None, "GET", "/openapi.json", None).json();
    let security = |path: &str, method: &str| doc["paths"][path][method]["security"].clone();
    assert_eq!(
        security("/api/v1/devices", "get"),
        json!([{"bearer": ["read"]}])
    );
    assert_eq!(
        security("/api/v1/devices/{sn}/commands", "post"),
        json!([{"bearer": ["operate"]}])
    );
    assert_eq!(
        security("/api/v1/commands/{id}/cancel", "post"),
        json!([{"bearer": ["operate"]}])
    );
    assert_eq!(
        security("/api/v1/devices/{sn}", "delete"),
        json!([{"bearer": ["admin"]}])
    );
    assert_eq!(security("/healthz", "get"), json!([{}]));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(
        doc["paths"]["/api/v1/devices"]["get"]["responses"]["403"]["content"]["application/json"]
            ["schema"]["$ref"],
        "#/components/schemas/ApiError"
    );
}

#[test]
fn tokens_made_before_scopes_keep_full_access() {
    // A database at schema version 2 (before scopes) with a token in it.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("old.db");
    let tok = "pd_0123456789abcdef0123456789abcdef01234567";
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(include_str!("../../migrations/sqlite/0001_init.sql"))
            .unwrap();
        conn.execute_batch(include_str!(
            "../../migrations/sqlite/0002_drop_punches_pin.sql"
        ))
        .unwrap();
        conn.pragma_update(None, "user_version", 2).unwrap();
        conn.execute(
            "INSERT INTO api_tokens (name, hash, created_at) VALUES ('old', ?1, 0)",
            [punchd::web::auth::hash_token(tok)],
        )
        .unwrap();
    }
    let server = Server::with(Options {
        time_zone: Some("UTC".into()),
        db: Some(db.clone()),
        ..Options::default()
    });
    let r = call(
        &server,
        Some(&format!("Bearer {tok}")),
        "POST",
        "/devices",
        Some(r#"{"sn": "PULLOLD001", "address": "127.0.0.1:4370"}"#),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let scope: String = sqlite(&db)
        .query_row("SELECT scope FROM api_tokens WHERE name = 'old'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(scope, "admin");
}

#[test]
fn api_errors_are_one_json_shape() {
    let server = Server::with(Options {
        time_zone: Some("UTC".into()),
        config: Some("max_body_bytes = 1024\n".into()),
        ..Options::default()
    });
    let admin = format!("Bearer {}", server.token());
    let auth = Some(admin.as_str());
    let r = call(&server, auth, "GET", "/nope", None);
    assert_eq!(r.status, 404);
    assert_eq!(error_of(&r), "no such API route (see /api/v1/openapi.json)");
    let r = call(&server, auth, "PUT", "/devices", Some("{}"));
    assert_eq!(r.status, 405);
    assert_eq!(
        error_of(&r),
        "method not allowed on this route (see /api/v1/openapi.json)"
    );
    let big = format!(r#"{{"alias": "{}"}}"#, "x".repeat(2000));
    let r = call(&server, auth, "PATCH", "/devices/X", Some(&big));
    assert_eq!(r.status, 413);
    assert_eq!(
        error_of(&r),
        "request body of 2013 bytes is over the limit of 1024 bytes"
    );
    let r = call(&server, auth, "GET", "/commands/abc", None);
    assert_eq!(r.status, 400);
    assert!(error_of(&r).contains("Invalid URL"), "{}", r.text());
    let r = call(&server, auth, "GET", "/punches?after=x", None);
    assert_eq!(r.status, 400);
    assert!(
        error_of(&r).starts_with("Failed to deserialize query string"),
        "{}",
        r.text()
    );
    let r = call(&server, auth, "GET", "/devices/NOSUCH0001", None);
    assert_eq!(
        (r.status, error_of(&r)),
        (404, "device NOSUCH0001 not found".to_owned())
    );
    // The terminal routes keep their plain text.
    let r = server.iclock("GET", "/iclock/nope", b"");
    assert_ne!(r.header("content-type"), Some("application/json"));
}

fn attlog_lines(sn_day: u32, n: usize, first: usize) -> String {
    (first..first + n)
        .map(|i| {
            format!(
                "{}\t2024-07-{sn_day:02} {:02}:{:02}:{:02}\t0\t1\t0\t0\n",
                i % 50,
                (i / 3600) % 24,
                (i / 60) % 60,
                i % 60
            )
        })
        .collect()
}

#[test]
fn csv_export_streams_the_whole_range_and_json_limits_are_reported() {
    let server = Server::start();
    let sn = "CSV0000001";
    for chunk in 0..5 {
        let r = server.attlog(sn, &attlog_lines(1, 500, chunk * 500));
        assert_eq!(r.text(), "OK:500");
    }
    // One punch with columns beyond the known ones (sent TAB-separated).
    assert_eq!(
        server
            .attlog(sn, "7\t2024-07-02 09:00:00\t1\t15\t0\t0\t1\t36.5\n")
            .text(),
        "OK:1"
    );
    let r = call(
        &server,
        Some(&format!("Bearer {}", server.token())),
        "GET",
        &format!("/punches?device={sn}&format=csv"),
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/csv; charset=utf-8"));
    assert_eq!(
        r.header("transfer-encoding"),
        Some("chunked"),
        "streamed, not buffered"
    );
    let text = r.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "id,device_sn,pin,punched_at,time_zone,punched_at_utc,punch_state,punch_state_name,verify_mode,\
         verify_mode_name,work_code,source,received_at,extra"
    );
    assert_eq!(
        lines.len(),
        1 + 2501,
        "every punch of the range, not the first 1000"
    );
    let ids: Vec<i64> = lines[1..]
        .iter()
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "by id, none twice");
    assert!(!text.contains('\t'), "no raw tab in the CSV");
    let last = lines.last().unwrap();
    assert!(last.starts_with(&format!("{},{sn},7,2024-07-02 09:00:00,Asia/Shanghai,2024-07-02T01:00:00Z,1,check-out,15,face,0,push,", ids[2500])), "{last}");
    assert!(last.ends_with(r#","[""0"",""1"",""36.5""]""#), "{last}");
    assert!(
        lines[1].contains(",0,check-in,1,fingerprint,"),
        "{}",
        lines[1]
    );
    // limit caps a CSV export.
    let admin = format!("Bearer {}", server.token());
    let r = call(
        &server,
        Some(&admin),
        "GET",
        &format!("/punches?device={sn}&format=csv&limit=1500"),
        None,
    );
    assert_eq!(r.text().lines().count(), 1 + 1500);

    // JSON: one page, its limit and cursor reported; 0 and too large are refused, not clamped.
    let page = server.get_json(&format!("/punches?device={sn}"));
    assert_eq!(page["limit"], 1000);
    assert_eq!(page["punches"].as_array().unwrap().len(), 1000);
    assert_eq!(page["next_after"], ids[999]);
    assert_eq!(page["punches"][0]["punch_state_name"], "check-in");
    assert_eq!(page["punches"][0]["verify_mode_name"], "fingerprint");
    for limit in ["0", "100000000", "10001"] {
        let r = call(
            &server,
            Some(&admin),
            "GET",
            &format!("/punches?limit={limit}"),
            None,
        );
        assert_eq!(r.status, 400, "limit={limit}");
        assert_eq!(
            error_of(&r),
            format!("limit {limit} is outside 1–10000; page with `after` (the `next_after` of the previous page)")
        );
    }
    let page = server.get_json(&format!("/punches?device={sn}&limit=10000"));
    assert_eq!(
        (page["limit"].as_i64(), page["next_after"].as_i64()),
        (Some(10000), None)
    );
    assert_eq!(page["punches"].as_array().unwrap().len(), 2501);

    // The CLI prints the same columns and names.
    let out = cli(&server.db, &["punches", "--device", sn, "--format", "csv"]);
    assert!(out.ok);
    assert_eq!(out.stdout.lines().count(), 1 + 2501);
    assert!(out
        .stdout
        .lines()
        .last()
        .unwrap()
        .ends_with(r#","[""0"",""1"",""36.5""]""#));
    let table = cli(
        &server.db,
        &[
            "punches",
            "--device",
            sn,
            "--pin",
            "7",
            "--since",
            "2024-07-02",
        ],
    );
    assert!(
        table.stdout.contains("1 check-out") && table.stdout.contains("15 face"),
        "{}",
        table.stdout
    );
}

#[test]
fn read_only_commands_do_not_create_a_database() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["devices"],
        vec!["punches", "--database", "typo.db"],
        vec!["commands"],
        vec!["users", "--device", "X1"],
        vec!["token", "list"],
        vec!["journal"],
    ] {
        let out = punchd_command()
            .current_dir(dir.path())
            .args(&args)
            .output()
            .unwrap();
        let db = if args.contains(&"typo.db") {
            "typo.db"
        } else {
            "punchd.db"
        };
        assert!(!out.status.success(), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "", "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).trim(),
            format!("punchd: no database at {db} (give --database PATH or PUNCHD_DATABASE; `punchd serve` creates one)"),
            "{args:?}"
        );
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{args:?} created {left:?}");
    }
    // Commands that write may create it.
    let out = punchd_command()
        .current_dir(dir.path())
        .args(["token", "create", "first", "--scope", "admin"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(dir.path().join("punchd.db").exists());
}

#[test]
fn devices_can_be_removed_and_their_settings_are_checked() {
    let server = Server::start();
    let sn = "GONE000001";
    assert_eq!(
        server.attlog(sn, "1\t2024-07-01 08:00:00\t0\t1\n").text(),
        "OK:1"
    );
    // Queued, then removed: the command is cancelled, the punch kept.
    let r = server.api(
        "POST",
        &format!("/devices/{sn}/commands"),
        Some(&json!({"type": "reboot"})),
    );
    let command_id = r.json()[0]["id"].as_i64().unwrap();
    let r = server.api("DELETE", &format!("/devices/{sn}"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"sn": sn, "punches_kept": 1}));
    assert_eq!(
        server.api("GET", &format!("/devices/{sn}"), None).status,
        404
    );
    assert_eq!(
        server.api("DELETE", &format!("/devices/{sn}"), None).status,
        404
    );
    assert_eq!(server.punches(sn).len(), 1);
    assert_eq!(
        server.get_json(&format!("/commands/{command_id}"))["status"],
        "cancelled"
    );
    // It registers anew on its next contact.
    assert_eq!(
        server.attlog(sn, "1\t2024-07-01 09:00:00\t0\t1\n").text(),
        "OK:1"
    );
    assert_eq!(
        server.get_json(&format!("/devices/{sn}"))["approval"],
        "approved"
    );
    // The CLI removes too; the running server forgets it.
    let out = cli(&server.db, &["devices", "delete", sn]);
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(
        out.stderr.trim(),
        format!("{sn} removed; its 2 punches, journal, users and command history are kept (a running server forgets it within a few seconds)")
    );
    let n: i64 = sqlite(&server.db)
        .query_row("SELECT COUNT(*) FROM devices WHERE sn = ?1", [sn], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(n, 0);
    server.wait_for(
        "the server forgets the removed device",
        Duration::from_secs(10),
        || {
            let devices = server.get_json("/devices");
            (!devices.as_array().unwrap().iter().any(|d| d["sn"] == sn)).then_some(())
        },
    );

    // Invalid settings are refused.
    let out = cli(
        &server.db,
        &[
            "devices",
            "add",
            "PULL000001",
            "--address",
            "127.0.0.1:99999",
        ],
    );
    assert!(!out.ok);
    assert_eq!(
        out.stderr.trim(),
        "punchd: address \"127.0.0.1:99999\" has port \"99999\", not 1–65535; give host or host:port, e.g. 192.168.1.201:4370"
    );
    let r = server.api(
        "POST",
        "/devices",
        Some(&json!({"sn": "PULL000001", "address": "127.0.0.1:99999"})),
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("not 1–65535"));
    assert_eq!(
        server
            .attlog("PUSH000001", "1\t2024-07-01 08:00:00\t0\t1\n")
            .text(),
        "OK:1"
    );
    let out = cli(
        &server.db,
        &["devices", "set", "PUSH000001", "--poll-delay", "0"],
    );
    assert!(!out.ok);
    assert_eq!(
        out.stderr.trim(),
        "punchd: poll delay 0 s is outside 1–3600 s"
    );
    let r = server.api("PATCH", "/devices/PUSH000001", Some(&json!({"alais": "x"})));
    assert_eq!(r.status, 400);
    let message = r.json()["error"].as_str().unwrap().to_owned();
    assert!(message.contains("unknown field `alais`"), "{message}");
    assert_eq!(server.get_json("/devices/PUSH000001")["alias"], Value::Null);
    let out = cli(
        &server.db,
        &["devices", "set", "PUSH000001", "--address", "10.0.0.9"],
    );
    assert!(!out.ok);
    assert!(
        out.stderr.contains("PUSH000001 is a push terminal"),
        "{}",
        out.stderr
    );

    // A pull terminal's address, interval, comm key and transport can be changed.
    let out = cli(
        &server.db,
        &[
            "devices",
            "add",
            "PULL000001",
            "--address",
            "127.0.0.1:4370",
        ],
    );
    assert!(out.ok, "{}", out.stderr);
    let device = cli_json(
        &server.db,
        &[
            "devices",
            "set",
            "PULL000001",
            "--address",
            "10.1.2.3:4371",
            "--interval",
            "60",
            "--comm-key",
            "1234",
            "--transport",
            "udp",
        ],
    );
    assert_eq!(
        (
            &device["address"],
            &device["pull_interval_secs"],
            &device["comm_key"],
            &device["transport"]
        ),
        (
            &json!("10.1.2.3:4371"),
            &json!(60),
            &json!(1234),
            &json!("udp")
        )
    );
    let stored: (String, i64, i64, String) = sqlite(&server.db)
        .query_row(
            "SELECT address, pull_interval_secs, comm_key, transport FROM devices WHERE sn = 'PULL000001'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(stored, ("10.1.2.3:4371".into(), 60, 1234, "udp".into()));
}

#[test]
fn queued_commands_can_be_cancelled_sent_ones_cannot() {
    let server = Server::start();
    let sn = "CANCEL0001";
    assert_eq!(
        server.attlog(sn, "1\t2024-07-01 08:00:00\t0\t1\n").text(),
        "OK:1"
    );
    let queue = || {
        let r = server.api(
            "POST",
            &format!("/devices/{sn}/commands"),
            Some(&json!({"type": "reboot"})),
        );
        assert_eq!(r.status, 201);
        r.json()[0]["id"].as_i64().unwrap()
    };
    let first = queue();
    let r = server.api("POST", &format!("/commands/{first}/cancel"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    let cancelled = r.json();
    assert_eq!(
        (&cancelled["status"], &cancelled["message"]),
        (&json!("cancelled"), &json!("cancelled by api:hubtest"))
    );
    let poll = server.iclock("GET", &format!("/iclock/getrequest?SN={sn}"), b"");
    assert_eq!(poll.text(), "OK", "a cancelled command is not delivered");

    let second = queue();
    let poll = server.iclock("GET", &format!("/iclock/getrequest?SN={sn}"), b"");
    assert_eq!(poll.text(), format!("C:{second}:REBOOT\n"));
    let r = server.api("POST", &format!("/commands/{second}/cancel"), None);
    assert_eq!(r.status, 409);
    assert_eq!(
        r.json()["error"],
        format!("command {second} is sent, not queued: only a queued command can be cancelled (a sent one may already have run on the terminal)")
    );
    assert_eq!(
        server.api("POST", "/commands/999999/cancel", None).status,
        404
    );

    let third = queue();
    let out = cli(
        &server.db,
        &["commands", "cancel", &third.to_string(), "--format", "json"],
    );
    assert!(out.ok, "{}", out.stderr);
    let status: String = sqlite(&server.db)
        .query_row("SELECT status FROM commands WHERE id = ?1", [third], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(status, "cancelled");
    let out = cli(&server.db, &["commands", "cancel", &second.to_string()]);
    assert!(!out.ok);
    assert!(out.stderr.contains("is sent, not queued"), "{}", out.stderr);
    // `commands --limit` is a listing option (it used to be refused with a hint at --listen).
    let out = cli(
        &server.db,
        &["commands", "--limit", "2", "--format", "json"],
    );
    assert!(out.ok, "{}", out.stderr);
    let listed: Value = serde_json::from_str(&out.stdout).unwrap();
    let ids: Vec<i64> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![third, second]);
}

#[test]
fn bad_lines_are_found_through_the_journal_and_the_log_names_them() {
    let server = Server::start();
    let sn = "JOURNAL001";
    let body = "1\t2024-07-01 08:00:00\t0\t1\nnot a punch\n";
    assert_eq!(server.attlog(sn, body).text(), "OK:1");
    assert_eq!(
        server.attlog(sn, "2\t2024-07-01 08:01:00\t0\t1\n").text(),
        "OK:1"
    );
    let journal_id: i64 = sqlite(&server.db)
        .query_row(
            "SELECT id FROM journal WHERE errors IS NOT NULL AND device_sn = ?1",
            [sn],
            |r| r.get(0),
        )
        .unwrap();
    let log = server.wait_for("the warning", Duration::from_secs(5), || {
        let log = server.log();
        log.contains("could not be read").then_some(log)
    });
    let line = log
        .lines()
        .find(|l| l.contains("could not be read"))
        .unwrap();
    assert!(line.contains(&format!("journal_id={journal_id}")), "{line}");

    let page = server.get_json(&format!("/journal?device={sn}&has_errors=true"));
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{page}");
    assert_eq!(entries[0]["id"], journal_id);
    assert_eq!(entries[0]["kind"], "ATTLOG");
    assert_eq!(entries[0]["body_len"], body.len());
    assert_eq!(entries[0]["errors"][0]["line_no"], 2);
    assert_eq!(page["next_after"], Value::Null);
    let all = server.get_json(&format!("/journal?device={sn}&kind=ATTLOG&limit=1"));
    assert_eq!(all["entries"].as_array().unwrap().len(), 1);
    assert_eq!(all["next_after"], journal_id);
    let rest = server.get_json(&format!("/journal?device={sn}&after={journal_id}"));
    assert_eq!(rest["entries"][0]["errors"], json!([]));
    let none = server.get_json(&format!("/journal?device={sn}&from=2999-01-01"));
    assert_eq!(none["entries"], json!([]));
    let entry = server.get_json(&format!("/journal/{journal_id}"));
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(entry["body_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(bytes, body.as_bytes());

    let listed = cli_json(
        &server.db,
        &["journal", "--device", sn, "--errors", "--format", "json"],
    );
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], journal_id);
    let table = cli(&server.db, &["journal", "--device", sn, "--errors"]);
    assert!(
        table
            .stdout
            .lines()
            .nth(1)
            .unwrap()
            .starts_with(&journal_id.to_string()),
        "{}",
        table.stdout
    );
}

#[test]
fn users_of_an_unknown_device_and_pending_devices_in_metrics() {
    let server = Server::with(Options {
        time_zone: Some("UTC".into()),
        approval: Some("manual".into()),
        ..Options::default()
    });
    let out = cli(&server.db, &["users", "--device", "NOPE"]);
    assert!(!out.ok);
    assert_eq!(
        out.stderr.trim(),
        "punchd: no such device NOPE (`punchd devices` lists them)"
    );
    assert_eq!(out.stdout, "");
    assert_eq!(
        server
            .attlog("PENDING001", "1\t2024-07-01 08:00:00\t0\t1\n")
            .text(),
        "UNKNOWN DEVICE"
    );
    assert_eq!(
        server.get_json("/devices/PENDING001")["approval"],
        "pending"
    );
    let metrics = server
        .raw(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .text();
    assert!(
        metrics.lines().any(|l| l == "punchd_devices_online 0"),
        "{metrics}"
    );
    assert!(
        metrics.lines().any(|l| l == "punchd_devices_registered 1"),
        "{metrics}"
    );
    let r = server.api("GET", "/devices/PENDING001/users", None);
    assert_eq!((r.status, r.json()), (200, json!([])));
    let r = server.api("GET", "/devices/NOPE000001/users", None);
    assert_eq!(r.status, 404);
}

/// Whether `openapi-spec-validator` (pip) can be imported. When it cannot: skip with a clear line, except in CI
/// (CI=true), where it must be there (`.ci/run` installs it).
fn validator_available() -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import openapi_spec_validator"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "openapi-spec-validator not importable in CI (pip install openapi-spec-validator)"
            );
        }
        println!(
            "SKIPPED: openapi-spec-validator not importable (pip install openapi-spec-validator)"
        );
    }
    ok
}

#[test]
fn the_openapi_document_passes_the_real_validator() {
    let server = Server::start();
    let doc = call(&server, None, "GET", "/openapi.json", None);
    assert_eq!(doc.status, 200);
    let doc_json = doc.json();
    // What the invalid document got wrong, checked by name too.
    let params = doc_json["paths"]["/api/v1/punches"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .clone();
    assert!(params.iter().all(|p| p["in"] == "query"), "{params:?}");
    assert_eq!(
        doc_json["components"]["schemas"]["JournalEntry"]["properties"]["body_base64"]["type"],
        "string"
    );
    assert!(doc_json["paths"]["/healthz"]["get"].is_object());
    assert!(doc_json["paths"]["/metrics"]["get"].is_object());
    // The areas' documents (attendance, sinks, sources, seed, push_api) follow the same rules.
    let audit = &doc_json["paths"]["/api/v1/attendance/audit"]["get"];
    assert!(
        audit["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["in"] == "query"),
        "{audit}"
    );
    assert_eq!(audit["security"][0]["bearer"][0], "read");
    let sink = &doc_json["paths"]["/api/v1/sinks/{name}"]["get"]["parameters"][0];
    assert_eq!(sink["name"], "name");
    assert_eq!(sink["in"], "path");
    let month = &doc_json["paths"]["/api/v1/attendance/month"]["get"]["responses"]["200"];
    assert!(month["content"]["text/csv"].is_object(), "{month}");
    for (path, item) in doc_json["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for (status, r) in op["responses"].as_object().into_iter().flatten() {
                assert!(
                    r["description"].as_str().is_some_and(|d| !d.is_empty()),
                    "{method} {path} {status} has no description"
                );
            }
        }
    }
    assert!(
        doc_json["paths"]["/api/v1/punches"]["get"]["responses"]["200"]["content"]["text/csv"]
            .is_object()
    );
    if !validator_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("openapi.json");
    std::fs::write(&path, &doc.body).unwrap();
    let out = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(": OK"), "{stdout}");
}
