//! `punchd serve --database postgres://…` (issue 10): simulated push terminals upload their attendance logs,
//! re-sending some batches on purpose; every acknowledged punch is stored exactly once, read back straight from
//! PostgreSQL and through the API. Each test works in a schema of its own (`?options=-csearch_path%3D…`).
//!
//! Needs `PUNCHD_TEST_POSTGRES_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`); without it the tests say
//! SKIPPED and pass, except in CI (`.ci/run` sets it and starts PostgreSQL).

use std::path::PathBuf;
use std::process::Stdio;

use crate::harness::{cli, punchd_command, raw_request, Options, Server};

/// The test database, or `None` (test skipped) when `PUNCHD_TEST_POSTGRES_URL` is not set outside CI.
pub(crate) fn test_url() -> Option<String> {
    match std::env::var("PUNCHD_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").map_or(true, |v| v != "true"),
                "PUNCHD_TEST_POSTGRES_URL must be set in CI (.ci/run sets it)"
            );
            println!("SKIPPED: PUNCHD_TEST_POSTGRES_URL is not set");
            None
        }
    }
}

/// Run `f` with a client on `url` (a small runtime of its own: these tests are synchronous).
pub(crate) fn with_client<T>(url: &str, f: impl AsyncFnOnce(&tokio_postgres::Client) -> T) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        let task = tokio::spawn(connection);
        let out = f(&client).await;
        drop(client);
        let _ = task.await;
        out
    })
}

/// A new empty schema on the test database, and the URL whose connections work in it.
pub(crate) fn isolated(base: &str, name: &str) -> (String, String) {
    let schema = format!("punchd_it_{name}_{}", std::process::id());
    with_client(base, async |c| {
        c.batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .await
        .unwrap();
    });
    let sep = if base.contains('?') { '&' } else { '?' };
    (
        format!("{base}{sep}options=-csearch_path%3D{schema}"),
        schema,
    )
}

#[test]
fn punches_pushed_to_a_postgres_backed_server_are_stored_exactly_once() {
    let Some(base) = test_url() else { return };
    let (url, _schema) = isolated(&base, "push");
    let server = Server::with(Options {
        time_zone: Some("UTC".into()),
        db: Some(PathBuf::from(&url)),
        ..Options::default()
    });
    assert!(
        server.log().contains("search_path%3Dpunchd_it_push"),
        "the start line names the database: {}",
        server.log()
    );

    // 3 terminals × 6 batches × 25 punches, every 2nd acknowledged batch sent again.
    let out = punchd_command()
        .args(["simulate", "push", "--server"])
        .arg(format!("http://127.0.0.1:{}", server.port))
        .args([
            "--devices",
            "3",
            "--batches",
            "6",
            "--punches-per-batch",
            "25",
            "--poll-interval-ms",
            "0",
            "--resend-every",
            "2",
            "--operlog-users",
            "4",
            "--sn-prefix",
            "PGIT",
            "--json",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "simulate push: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["punches_acked"], 450, "{summary}");
    assert!(summary["batches_resent"].as_u64().unwrap() > 0, "{summary}");

    // Straight from PostgreSQL: 150 punches per terminal, none twice, each from a journal entry of its own
    // terminal; the re-sent batches are journaled with every punch counted as a duplicate.
    let (per_device, distinct, orphans, stored, duplicates, users) = with_client(&url, async |c| {
        let rows = c
            .query(
                "SELECT device_sn, COUNT(*) FROM punches GROUP BY device_sn ORDER BY device_sn",
                &[],
            )
            .await
            .unwrap();
        let per_device: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let distinct: i64 = c
            .query_one(
                "SELECT COUNT(*) FROM (SELECT DISTINCT device_sn, punched_at, pin, punch_state \
                     FROM punches) d",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        let orphans: i64 = c
            .query_one(
                "SELECT COUNT(*) FROM punches p LEFT JOIN journal j ON j.id = p.journal_id \
                     WHERE j.id IS NULL OR j.device_sn <> p.device_sn OR j.kind <> 'ATTLOG'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        let totals = c
            .query_one(
                "SELECT COALESCE(SUM(n_stored), 0)::bigint, COALESCE(SUM(n_duplicate), 0)::bigint \
                     FROM journal WHERE kind = 'ATTLOG'",
                &[],
            )
            .await
            .unwrap();
        let users: i64 = c
            .query_one("SELECT COUNT(*) FROM device_users", &[])
            .await
            .unwrap()
            .get(0);
        (
            per_device,
            distinct,
            orphans,
            totals.get::<_, i64>(0),
            totals.get::<_, i64>(1),
            users,
        )
    });
    assert_eq!(
        per_device,
        vec![
            ("PGIT000000001".to_owned(), 150),
            ("PGIT000000002".to_owned(), 150),
            ("PGIT000000003".to_owned(), 150),
        ]
    );
    assert_eq!(distinct, 450);
    assert_eq!(orphans, 0);
    assert_eq!(stored, 450);
    assert_eq!(
        duplicates,
        summary["batches_resent"].as_i64().unwrap() * 25,
        "{summary}"
    );
    assert_eq!(users, 12, "4 OPERLOG users per terminal");

    // The API reads the same rows; the CLI works on the same database by URL.
    let api = server.punches("PGIT000000002");
    assert_eq!(api.len(), 150);
    assert_eq!(api[0]["punched_at"], "2026-01-05T07:00:00");
    let devices = cli(&server.db, &["devices", "--format", "json"]);
    assert!(devices.ok, "{}", devices.stderr);
    let devices: serde_json::Value = serde_json::from_str(&devices.stdout).unwrap();
    assert_eq!(devices.as_array().unwrap().len(), 3, "{devices}");
}

#[test]
fn two_servers_share_one_postgres_database() {
    let Some(base) = test_url() else { return };
    let (url, _schema) = isolated(&base, "two");
    let options = Options {
        time_zone: Some("UTC".into()),
        db: Some(PathBuf::from(&url)),
        ..Options::default()
    };
    // SQLite refuses a second `serve` on one file; on PostgreSQL both run.
    let a = Server::with(options.clone());
    let b = Server::with(options);
    let r = a.attlog("PGTWO00000001", "1\t2026-01-05 08:00:00\t0\t1\n");
    assert_eq!((r.status, r.text()), (200, "OK:1".to_owned()));
    // The same line through the other instance is a duplicate, acknowledged and not stored again.
    let r = b.attlog(
        "PGTWO00000001",
        "1\t2026-01-05 08:00:00\t0\t1\n2\t2026-01-05 08:01:00\t0\t1\n",
    );
    assert_eq!((r.status, r.text()), (200, "OK:2".to_owned()));
    let via_a = a.punches("PGTWO00000001");
    assert_eq!(via_a.len(), 2);
    // The token made through A's database works on B: tokens live in the shared store.
    let request = format!(
        "GET /api/v1/punches?device=PGTWO00000001 HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Authorization: Bearer {}\r\nConnection: close\r\n\r\n",
        a.token()
    );
    let via_b = raw_request(b.port, request.as_bytes());
    assert_eq!(via_b.status, 200, "{}", via_b.text());
    assert_eq!(via_b.json()["punches"].as_array().unwrap(), &via_a);
}
