//! SQLite's outbox events on their punch (migration 0020): the migration of a database that has events,
//! deliveries and cursors under the old event ids (what each sink owed before, it owes after; what it had, it does
//! not get again), and pruning, which resumes its scan where it stopped.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection};

use super::{migrate_to, Durability, SqliteStore, MIGRATIONS};
use crate::store::delivery::DeliveryStore;
use crate::store::outbox::{NewSink, OutboxStore, Outcome, ParkKind, SinkKind};
use crate::test_support::punch;

/// The ids of the events sink `sink_id` has past its cursor (the fast path's read, at most 10).
async fn peeked_ids(store: &SqliteStore, sink_id: i64) -> Vec<i64> {
    let peeked = store.peek_events(sink_id, None, 10).await.expect("peek");
    peeked
        .expect("SQLite has the fast path")
        .events
        .iter()
        .map(|e| e.id)
        .collect()
}

/// Punch `id` of device MIGR0001 at 2026-03-0`id` 08:00 UTC, received at `id` s (unix ms).
fn old_punch(conn: &Connection, id: i64) {
    let at = DateTime::parse_from_rfc3339(&format!("2026-03-0{id}T08:00:00Z"))
        .expect("time")
        .with_timezone(&Utc);
    conn.execute(
        "INSERT INTO punches (id, device_sn, pin, punched_at, punch_state, time_zone, punched_at_utc, \
         received_at, source, journal_id) VALUES (?1, 'MIGR0001', ?2, ?3, 0, 'UTC', ?4, ?5, 'push', 0)",
        params![
            id,
            format!("{}", 100 + id),
            at.format("%Y-%m-%d %H:%M:%S").to_string(),
            at.timestamp(),
            id * 1000
        ],
    )
    .expect("punch");
}

#[tokio::test]
async fn events_deliveries_and_cursors_move_to_punch_ids_and_nothing_owed_is_lost() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("old.db");
    {
        // The schema before 0020, as a 0.1 installation has it.
        let conn = Connection::open(&path).expect("open");
        let before = MIGRATIONS
            .iter()
            .position(|sql| sql.starts_with("-- Outbox events live on their punch"))
            .expect("0020 is listed");
        migrate_to(&conn, before).expect("old schema");
        conn.execute_batch(
            // Punch 1 came before any sink. Sink a (no start date) then saw punches 2, 3, 4 as events 1, 2, 3, and
            // took events 1 (delivered, no row) and 2 (parked). Sink b, made with a start date before punch 1,
            // backfilled punch 1 as event 4 and has taken nothing. Punch 5 is event 5.
            "INSERT INTO sinks (id, name, kind, config, since_utc, cursor, created_at) VALUES \
               (1, 'a', 'webhook', '{}', NULL, 2, 0), (2, 'b', 'webhook', '{}', 1772323200, 0, 0);",
        )
        .expect("sinks");
        for id in 1..=5 {
            old_punch(&conn, id);
        }
        conn.execute_batch(
            "INSERT INTO outbox (id, punch_id, created_at) VALUES \
               (1, 2, 2000), (2, 3, 3000), (3, 4, 4000), (4, 1, 4500), (5, 5, 5000); \
             INSERT INTO deliveries (sink_id, event_id, status, attempts, next_attempt_at, last_error, park_kind, \
               updated_at) VALUES (1, 2, 'parked', 1, 3000, 'No Employee found', 'unmapped', 3000);",
        )
        .expect("events");
    }

    let store = SqliteStore::open(&path, Durability::CrashSafe).expect("migrated");
    let reader = Connection::open(&path).expect("reader");
    let rows = |sql: &str| -> Vec<(i64, i64, i64)> {
        reader
            .prepare(sql)
            .and_then(|mut st| {
                st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect()
            })
            .expect("rows")
    };
    // Each event on its punch, written when it was; the `outbox` view shows them as the table did, under punch ids.
    let events = [
        (1, 1, 4500),
        (2, 2, 2000),
        (3, 3, 3000),
        (4, 4, 4000),
        (5, 5, 5000),
    ];
    assert_eq!(
        rows("SELECT id, id, outbox_at FROM punches WHERE outbox_at IS NOT NULL ORDER BY id"),
        events
    );
    assert_eq!(
        rows("SELECT id, punch_id, created_at FROM outbox ORDER BY id"),
        events
    );
    assert_eq!(
        rows("SELECT id, cursor, passed FROM sinks ORDER BY id"),
        [(1, 3, 3), (2, 0, 0)],
        "a had taken punches 2 and 3 (and owes 1, now below its cursor); b nothing"
    );
    assert_eq!(
        reader
            .query_row(
                "SELECT type FROM sqlite_master WHERE name = 'outbox'",
                [],
                |r| r.get::<_, String>(0)
            )
            .expect("outbox"),
        "view"
    );

    // Sink a: the parked event kept its state under punch 3; punch 1's event, which a had not taken and which is
    // now below its cursor, is pending; punches 4 and 5 wait past the cursor.
    let parked = store.parked_events(1, 10).await.expect("parked");
    assert_eq!(
        parked
            .iter()
            .map(|p| (p.event_id, p.pin.as_str(), p.kind))
            .collect::<Vec<_>>(),
        [(3, "103", ParkKind::Unmapped)]
    );
    let pending: Vec<(i64, String)> = store
        .pending_events(1, None, 10)
        .await
        .expect("pending")
        .into_iter()
        .map(|e| (e.id, e.punch.pin.0))
        .collect();
    assert_eq!(pending, [(1, "101".to_owned())]);
    assert_eq!(peeked_ids(&store, 1).await, [4, 5]);
    let counts = store.sink_counts(1).await.expect("counts a");
    assert_eq!(
        (counts.pending, counts.delivered, counts.parked),
        (3, 1, 1),
        "a: punch 2 delivered, 3 parked, 1, 4 and 5 owed"
    );

    // Sink b: every event, in punch order.
    assert_eq!(peeked_ids(&store, 2).await, [1, 2, 3, 4, 5]);

    // New punches get their events on their own rows, past both cursors.
    let dev = crate::domain::DeviceSn::parse("MIGR0001").expect("sn");
    punch(&store, &dev, 6, 7).await;
    let new_id: i64 = reader
        .query_row("SELECT MAX(id) FROM punches", [], |r| r.get(0))
        .expect("id");
    assert_eq!(
        rows("SELECT id, punch_id, created_at > 0 FROM outbox WHERE id > 5"),
        [(new_id, new_id, 1)]
    );
    assert_eq!(
        peeked_ids(&store, 1).await,
        [4, 5, new_id],
        "a: punches 4, 5 and the new one"
    );
    drop(store);
}

/// Deliver everything sink `sink_id` owes: take it, then record each pending event delivered (a row each).
async fn deliver_all(store: &SqliteStore, sink_id: i64) -> usize {
    store
        .take_events(sink_id, 100, Utc::now())
        .await
        .expect("take");
    let outcomes: Vec<(i64, Outcome)> = store
        .pending_events(sink_id, None, 100)
        .await
        .expect("pending")
        .into_iter()
        .map(|e| (e.id, Outcome::Delivered(None)))
        .collect();
    let n = outcomes.len();
    store
        .record_outcomes(sink_id, outcomes, Utc::now())
        .await
        .expect("record");
    n
}

/// Pruning starts where the last prune stopped, and a replay from another process (the CLI, on its own
/// connection) sends it back to the first punch: the events the replay gave older punches are pruned by the
/// server's next prune, not left behind until it restarts.
#[tokio::test]
async fn pruning_resumes_where_it_stopped_and_a_replay_from_another_process_starts_it_over() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("prune.db");
    let server = SqliteStore::open(&path, Durability::CrashSafe).expect("server");
    let dev = crate::domain::DeviceSn::parse("PRUNE0001").expect("sn");
    // Punches 1 and 2 before the sink, 3 and 4 with it.
    punch(&server, &dev, 0, 2).await;
    let sink = server
        .create_sink(
            NewSink {
                name: "a".into(),
                kind: SinkKind::Webhook,
                config: serde_json::json!({"url": "http://127.0.0.1:9/"}),
                since: None,
            },
            Utc::now(),
        )
        .await
        .expect("sink");
    punch(&server, &dev, 2, 4).await;
    assert_eq!(deliver_all(&server, sink.id).await, 2);
    let later = Utc::now() + chrono::Duration::days(1);
    assert_eq!(server.prune_outbox(later, 100).await.expect("prune"), 2);
    let from_id = |path: &std::path::Path| -> i64 {
        Connection::open(path)
            .and_then(|c| c.query_row("SELECT from_id FROM outbox_prune", [], |r| r.get(0)))
            .expect("from_id")
    };
    assert_eq!(from_id(&path), 5, "past the last punch: no event left");

    // The CLI replays from the start on its own connection: punches 1 and 2 get events, 1–4 are owed again.
    let cli = SqliteStore::open(&path, Durability::CrashSafe).expect("cli");
    let from = DateTime::parse_from_rfc3339("2000-01-01T00:00:00Z")
        .expect("time")
        .with_timezone(&Utc);
    assert_eq!(
        cli.replay_sink("a", from, Utc::now())
            .await
            .expect("replay"),
        4
    );
    drop(cli);
    assert_eq!(from_id(&path), 0, "the replay starts pruning over");
    assert_eq!(deliver_all(&server, sink.id).await, 4);
    assert_eq!(
        server.prune_outbox(later, 100).await.expect("prune"),
        4,
        "the server prunes the replayed events, the older punches' among them"
    );
    assert_eq!(
        server.sink_counts(sink.id).await.expect("counts").delivered,
        0
    );
}
