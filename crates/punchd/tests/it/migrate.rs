//! `punchd migrate` (issue 10): an installation filled the way users fill one (simulated push terminals, the
//! attendance CLI, a token) is moved to PostgreSQL; the first run is interrupted in the middle of the punches,
//! the second resumes there, the third finds everything copied; a changed row on the target is then refused.
//! Runs when `PUNCHD_TEST_POSTGRES_URL` is set (always in CI), in a schema of its own.

use std::path::Path;
use std::process::Stdio;

use serde_json::Value;

use crate::harness::{cli, punchd_command, sqlite, Server};

/// The PostgreSQL the tests use; `None` (skipped, with a line saying so) when unset outside CI.
fn test_url() -> Option<String> {
    match std::env::var("PUNCHD_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").is_err(),
                "PUNCHD_TEST_POSTGRES_URL must be set in CI (.ci/run sets it)"
            );
            eprintln!("skipped: PUNCHD_TEST_POSTGRES_URL is not set");
            None
        }
    }
}

/// A client on the test database, and a runtime to drive it from a plain test.
struct Pg {
    runtime: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl Pg {
    fn connect(url: &str) -> Pg {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            client
        });
        Pg { runtime, client }
    }

    fn execute(&self, sql: &str) {
        self.runtime
            .block_on(self.client.batch_execute(sql))
            .unwrap();
    }

    fn count(&self, table: &str) -> i64 {
        self.int(&format!("SELECT COUNT(*) FROM {table}"))
    }

    fn int(&self, sql: &str) -> i64 {
        let row = self
            .runtime
            .block_on(self.client.query_one(sql, &[]))
            .unwrap();
        row.get(0)
    }

    fn rows(&self, sql: &str) -> Vec<tokio_postgres::Row> {
        self.runtime.block_on(self.client.query(sql, &[])).unwrap()
    }
}

/// A fresh schema, and the URL that works in it.
fn schema_url(pg: &Pg, url: &str) -> (String, String) {
    let schema = format!(
        "punchd_migrate_{}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp_subsec_nanos()
    );
    pg.execute(&format!("CREATE SCHEMA {schema}"));
    let sep = if url.contains('?') { '&' } else { '?' };
    (
        schema.clone(),
        format!("{url}{sep}options=-csearch_path%3D{schema}"),
    )
}

fn migrate(db: &Path, to: &str, extra: &[&str]) -> (bool, String, String) {
    let out = punchd_command()
        .args(["migrate", "--from"])
        .arg(db)
        .args(["--to", to])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// How many batches of `batch` rows `punchd migrate` writes before it reaches `table` (tables in name order, the
/// `outbox` view among them, keyed by id; a table without primary key goes in one batch).
fn batches_before(db: &Path, table: &str, batch: i64) -> usize {
    let conn = sqlite(db);
    let names: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE (type = 'table' AND name NOT LIKE 'sqlite%') \
               OR (type = 'view' AND name = 'outbox') ORDER BY name",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut n = 0;
    for name in names.iter().filter(|n| n.as_str() < table) {
        let rows: i64 = conn
            .query_row(&format!("SELECT COUNT(*) FROM \"{name}\""), [], |r| {
                r.get(0)
            })
            .unwrap();
        let keyed: i64 = conn
            .query_row(
                &format!("SELECT COUNT(*) FROM pragma_table_info('{name}') WHERE pk > 0"),
                [],
                |r| r.get(0),
            )
            .unwrap();
        // Never copied (migrate.rs's NEVER_COPIED): the storage probe, leases (the sink worker holds one) and
        // where outbox pruning resumes.
        if rows > 0 && !["storage_probe", "leases", "outbox_prune"].contains(&name.as_str()) {
            n += if keyed > 0 || name == "outbox" {
                ((rows + batch - 1) / batch) as usize
            } else {
                1
            };
        }
    }
    n
}

/// Fill a server's database as users do: a (paused) sink, so every punch gets an outbox event, two simulated push
/// terminals, a site, a shift, employees, a mapping, a review and a token.
fn fill(server: &Server) {
    for args in [
        &[
            "sinks",
            "add",
            "webhook",
            "--name",
            "hr",
            "--url",
            "http://127.0.0.1:9/",
            "--secret",
            "s",
        ][..],
        &["sinks", "pause", "hr"],
    ] {
        let out = cli(&server.db, args);
        assert!(out.ok, "punchd {args:?}: {}", out.stderr);
    }
    let out = punchd_command()
        .args(["simulate", "push", "--server"])
        .arg(format!("http://127.0.0.1:{}", server.port))
        .args([
            "--devices",
            "2",
            "--batches",
            "6",
            "--punches-per-batch",
            "25",
        ])
        .args([
            "--users",
            "20",
            "--operlog-users",
            "5",
            "--poll-interval-ms",
            "0",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "simulate push: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let db = &server.db;
    let run = |args: &[&str]| {
        let out = cli(db, args);
        assert!(out.ok, "punchd {args:?}: {}", out.stderr);
    };
    run(&[
        "sites",
        "add",
        "HQ",
        "--zone",
        "Asia/Shanghai",
        "--weekly-off",
        "sat,sun",
    ]);
    run(&[
        "shifts", "add", "Day", "--start", "09:00", "--end", "18:00", "--break", "60m",
    ]);
    let csv = db.with_file_name("staff.csv");
    std::fs::write(
        &csv,
        "Employee Code,Name,Status,Site,Default Shift\n1,Ana,active,HQ,Day\n2,Bo,active,HQ,Day\n",
    )
    .unwrap();
    run(&["employees", "import", csv.to_str().unwrap()]);
    let sns: Vec<String> = sqlite(db)
        .prepare("SELECT sn FROM devices ORDER BY sn")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(sns.len(), 2, "{sns:?}");
    run(&["devices", "set", &sns[0], "--site", "HQ"]);
    run(&["pins", "map", "7", "--employee", "1", "--site", "HQ"]);
    run(&[
        "attendance",
        "review",
        "--employee",
        "2",
        "--date",
        "2026-01-05",
        "--kind",
        "late",
        "--state",
        "approved",
        "--note",
        "train strike",
    ]);
    let _ = server.token();
}

fn summary(stdout: &str) -> Vec<Value> {
    serde_json::from_str::<Value>(stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout}"))
        .as_array()
        .unwrap()
        .clone()
}

fn state_of<'a>(summary: &'a [Value], table: &str) -> &'a Value {
    summary
        .iter()
        .find(|o| o["table"] == table)
        .unwrap_or_else(|| panic!("{table} not in {summary:?}"))
}

#[test]
fn migrate_resumes_after_an_interruption_verifies_and_refuses_other_data() {
    let Some(url) = test_url() else { return };
    let mut server = Server::start();
    fill(&server);
    assert!(server.terminate(std::time::Duration::from_secs(20)));
    let db = server.db.clone();
    let n_punches: i64 = sqlite(&db)
        .query_row("SELECT COUNT(*) FROM punches", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n_punches, 300, "2 terminals × 6 batches × 25 punches");

    let pg = Pg::connect(&url);
    let (schema, to) = schema_url(&pg, &url);

    // Interrupted after three batches of punches.
    let stop = batches_before(&db, "punches", 10) + 3;
    let (ok, _, stderr) = migrate(
        &db,
        &to,
        &["--batch", "10", "--stop-after-batches", &stop.to_string()],
    );
    assert!(!ok && stderr.contains("in table punches"), "{stderr}");
    assert_eq!(pg.count(&format!("{schema}.punches")), 30);
    assert_eq!(
        pg.int(&format!("SELECT MAX(id) FROM {schema}.punches")),
        sqlite(&db)
            .query_row(
                "SELECT id FROM punches ORDER BY id LIMIT 1 OFFSET 29",
                [],
                |r| r.get::<_, i64>(0)
            )
            .unwrap(),
        "the first 30 punches in id order"
    );
    assert_eq!(pg.count(&format!("{schema}.sites")), 0, "not reached yet");

    // Resumed: every table ends equal; punches continued where they stopped.
    let (ok, stdout, stderr) = migrate(&db, &to, &["--batch", "10", "--format", "json"]);
    assert!(ok, "{stderr}\n{stdout}");
    let outcomes = summary(&stdout);
    let punches = state_of(&outcomes, "punches");
    assert_eq!(punches["state"], "resumed", "{punches}");
    assert_eq!(punches["copied_now"], 270);
    assert_eq!(punches["target_rows"], 300);
    for o in &outcomes {
        assert_eq!(o["source_rows"], o["target_rows"], "{o}");
        assert!(!o["checksum"].as_str().unwrap().contains("!="), "{o}");
    }
    for table in [
        "devices",
        "journal",
        "device_users",
        "sites",
        "employees",
        "pin_mappings",
        "api_tokens",
    ] {
        assert_ne!(
            state_of(&outcomes, table)["source_rows"],
            0,
            "{table} was filled"
        );
    }

    // Sample rows, read back on PostgreSQL.
    let conn = sqlite(&db);
    let (id, sn, pin, local, utc): (i64, String, String, String, i64) = conn
        .query_row(
            "SELECT id, device_sn, pin, punched_at, punched_at_utc FROM punches ORDER BY id LIMIT 1 OFFSET 150",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    let row = &pg.rows(&format!(
        "SELECT device_sn, pin, to_char(punched_at, 'YYYY-MM-DD HH24:MI:SS'), \
         extract(epoch FROM punched_at_utc)::bigint FROM {schema}.punches WHERE id = {id}"
    ))[0];
    assert_eq!(
        (
            row.get::<_, String>(0),
            row.get::<_, String>(1),
            row.get::<_, String>(2),
            row.get::<_, i64>(3)
        ),
        (sn, pin, local, utc)
    );
    let body: Vec<u8> = conn
        .query_row(
            "SELECT body FROM journal ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let row = &pg.rows(&format!(
        "SELECT body FROM {schema}.journal ORDER BY id DESC LIMIT 1"
    ))[0];
    assert_eq!(row.get::<_, Vec<u8>>(0), body, "raw bytes unchanged");
    let row = &pg.rows(&format!(
        "SELECT time_zone, weekly_offs FROM {schema}.sites WHERE name = 'HQ'"
    ))[0];
    assert_eq!(row.get::<_, String>(0), "Asia/Shanghai");
    assert_eq!(row.get::<_, Value>(1), serde_json::json!([6, 7]));
    let row = &pg.rows(&format!(
        "SELECT employee_code FROM {schema}.pin_mappings WHERE scope = 'site' AND scope_key = 'HQ' AND pin = '7'"
    ))[0];
    assert_eq!(row.get::<_, String>(0), "1");
    // The outbox events (SQLite keeps them on the punch rows; the `outbox` view shows them) are PostgreSQL's outbox
    // rows, under the punches' ids, and the sink's cursor is where it was: before every one.
    assert_eq!(
        state_of(&outcomes, "outbox")["source_rows"],
        300,
        "one event per punch"
    );
    assert_eq!(
        pg.int(&format!(
            "SELECT COUNT(*) FROM {schema}.outbox o JOIN {schema}.punches p ON p.id = o.punch_id \
             WHERE o.id = o.punch_id"
        )),
        300
    );
    assert_eq!(
        pg.int(&format!(
            "SELECT cursor_id FROM {schema}.sinks WHERE name = 'hr'"
        )),
        0
    );
    // New rows on PostgreSQL get ids after the copied ones.
    assert_eq!(
        pg.int(&format!("SELECT last_value FROM {schema}.punches_id_seq")),
        pg.int(&format!("SELECT MAX(id) FROM {schema}.punches"))
    );

    // Again: nothing to copy.
    let (ok, stdout, stderr) = migrate(&db, &to, &["--format", "json"]);
    assert!(ok, "{stderr}");
    for o in summary(&stdout) {
        assert_eq!(o["copied_now"], 0, "{o}");
        assert!(
            o["state"] == "already copied" || o["state"] == "empty",
            "{o}"
        );
    }

    // A target whose rows differ from the source is refused, untouched, and --verify-only names the table.
    pg.execute(&format!(
        "UPDATE {schema}.devices SET alias = 'changed on the target'"
    ));
    let (ok, _, stderr) = migrate(&db, &to, &[]);
    assert!(
        !ok && stderr.contains("devices") && stderr.contains("other data"),
        "{stderr}"
    );
    let (ok, stdout, _) = migrate(&db, &to, &["--verify-only"]);
    assert!(!ok);
    let line = stdout.lines().find(|l| l.starts_with("devices")).unwrap();
    assert!(line.contains("MISMATCH"), "{stdout}");
    assert_eq!(pg.count(&format!("{schema}.punches")), 300);

    // On PostgreSQL now: a punch without an event (as one stored while no sink existed), then a sink from a date
    // before it. The new sink owes it; the migrated sink, made without a start date, does not: it still owes its
    // 300, as it would on SQLite.
    pg.execute(&format!(
        "INSERT INTO {schema}.punches (device_sn, pin, punched_at, punch_state, time_zone, punched_at_utc, \
           received_at, source, journal_id) \
         VALUES ('OLD-1', '9', '2020-01-01 08:00', 0, 'UTC', '2020-01-01 08:00+00', now(), 'push', 0)"
    ));
    let target = Path::new(&to);
    let out = cli(
        target,
        &[
            "sinks",
            "add",
            "webhook",
            "--name",
            "late",
            "--url",
            "http://127.0.0.1:9/",
            "--secret",
            "s",
            "--since",
            "2019-01-01",
        ],
    );
    assert!(out.ok, "{}", out.stderr);
    let out = cli(target, &["sinks", "list", "--format", "json"]);
    assert!(out.ok, "{}", out.stderr);
    let sinks: Value = serde_json::from_str(&out.stdout).unwrap();
    let pending = |name: &str| {
        sinks
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("sink {name} in {sinks}"))["pending"]
            .clone()
    };
    assert_eq!(pending("late"), 301, "{sinks}");
    assert_eq!(pending("hr"), 300, "{sinks}");
}
