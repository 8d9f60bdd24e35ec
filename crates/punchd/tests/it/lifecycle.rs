//! The server's life and its API door: tokens (created, refused, revoked with the CLI), the open endpoints
//! (health, metrics, OpenAPI), graceful shutdown on SIGTERM with last-seen flushed, restart on the same data.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{cli, sqlite, Options, Server};

fn get(server: &Server, path: &str, token: Option<&str>) -> crate::harness::Response {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    server.raw(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n").as_bytes(),
    )
}

#[test]
fn the_api_wants_a_live_token_and_the_open_endpoints_do_not() {
    let server = Server::start();
    let token = server.token();
    assert!(token.starts_with("pd_"), "{token}");
    assert_eq!(get(&server, "/api/v1/devices", Some(&token)).status, 200);
    assert_eq!(get(&server, "/api/v1/devices", None).status, 401);
    assert_eq!(get(&server, "/api/v1/devices", Some("pd_0000")).status, 401);
    let basic = server.raw(b"GET /api/v1/punches HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YTpi\r\nConnection: close\r\n\r\n");
    assert_eq!(basic.status, 401);
    // A second token with the same name is refused; listing shows one live token.
    let again = cli(&server.db, &["token", "create", "hubtest"]);
    assert!(!again.ok);
    assert_eq!(again.stdout, "");
    let listed = cli(&server.db, &["token", "list"]);
    let rows: Vec<Vec<&str>> = listed
        .stdout
        .lines()
        .map(|l| l.split('\t').collect())
        .collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][..2], ["hubtest", "live"]);
    // Revoked with the CLI while the server runs: refused from then on.
    let revoked = cli(&server.db, &["token", "revoke", "hubtest"]);
    assert!(revoked.ok, "{}", revoked.stderr);
    assert_eq!(get(&server, "/api/v1/devices", Some(&token)).status, 401);
    let listed = cli(&server.db, &["token", "list"]);
    assert!(
        listed.stdout.starts_with("hubtest\trevoked\t"),
        "{}",
        listed.stdout
    );

    let health = get(&server, "/healthz", None);
    assert_eq!((health.status, health.text()), (200, "ok\n".to_owned()));
    let openapi = get(&server, "/api/v1/openapi.json", None);
    assert_eq!(openapi.status, 200);
    let doc: Value = openapi.json();
    for path in [
        "/api/v1/devices",
        "/api/v1/punches",
        "/api/v1/devices/{sn}/commands",
        "/api/v1/journal/{id}",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    // Metrics count what terminals did.
    assert_eq!(
        server
            .attlog("METRIC0001", "1\t2024-01-01 08:00:00\t0\t1\n")
            .text(),
        "OK:1"
    );
    assert_eq!(
        server
            .attlog("METRIC0001", "1\t2024-01-01 08:00:00\t0\t1\n")
            .text(),
        "OK:1"
    );
    let metrics = get(&server, "/metrics", None);
    assert_eq!(metrics.status, 200);
    let text = metrics.text();
    let value = |name: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    };
    assert_eq!(value("punchd_punches_stored_total"), Some(1.0), "{text}");
    assert_eq!(value("punchd_punches_duplicate_total"), Some(1.0), "{text}");
}

#[test]
fn sigterm_stops_gracefully_and_a_restart_serves_the_same_data() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("punchd.db");
    let options = Options {
        time_zone: Some("Asia/Kolkata".into()),
        db: Some(db.clone()),
        ..Options::default()
    };
    let mut server = Server::with(options.clone());
    assert_eq!(
        server
            .attlog("LIFE000001", "1\t2024-01-01 08:00:00\t0\t1\n")
            .text(),
        "OK:1"
    );
    // A poll right before the stop: its last-seen is only in memory until a flush (housekeeping or shutdown).
    std::thread::sleep(Duration::from_millis(50));
    let before_poll = chrono::Utc::now().timestamp_millis();
    let polled = server.iclock("GET", "/iclock/getrequest?SN=LIFE000001", b"");
    assert_eq!(polled.text(), "OK");
    assert!(
        server.terminate(Duration::from_secs(15)),
        "punchd did not exit cleanly:\n{}",
        server.log()
    );
    assert!(server.log().contains("shutting down"), "{}", server.log());
    let last_seen: i64 = sqlite(&db)
        .query_row(
            "SELECT last_seen FROM devices WHERE sn = 'LIFE000001'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        last_seen >= before_poll,
        "the poll's last-seen was not flushed: {last_seen} < {before_poll}"
    );
    drop(server);

    let restarted = Server::with(options);
    let punches = restarted.punches("LIFE000001");
    assert_eq!(punches.len(), 1);
    assert_eq!(punches[0]["punched_at_utc"], "2024-01-01T02:30:00Z");
    assert_eq!(
        restarted
            .attlog("LIFE000001", "1\t2024-01-01 08:00:00\t0\t1\n")
            .text(),
        "OK:1"
    );
    assert_eq!(restarted.punches("LIFE000001").len(), 1);
}
