//! [`DeliveryStore`] for SQLite (tables of migrations/sqlite/0008_outbox.sql; no schema of its own).

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::params;

use super::{backend, ms, SqliteStore};
use crate::store::delivery::{DeliveryStore, Undelivered};
use crate::store::{Result, StoreError};

#[async_trait::async_trait]
impl DeliveryStore for SqliteStore {
    async fn undelivered_by_device(&self, sink_id: i64) -> Result<Vec<Undelivered>> {
        self.read(move |conn| {
            let exists: bool = conn
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM sinks WHERE id = ?1)",
                    [sink_id],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            if !exists {
                return Err(StoreError::NotFound(format!("sink {sink_id}")));
            }
            // Taken and pending (the deliveries_status index), plus not yet taken: past the cursor and inside the
            // sink's start date (what take_events will take).
            let mut st = conn
                .prepare_cached(
                    "SELECT p.device_sn, COUNT(*), MIN(p.punched_at_utc) FROM ( \
                       SELECT d.event_id AS id FROM deliveries d WHERE d.sink_id = ?1 AND d.status = 'pending' \
                       UNION ALL \
                       SELECT o.id FROM outbox o JOIN punches q ON q.id = o.punch_id, sinks s \
                       WHERE s.id = ?1 AND o.id > s.cursor \
                         AND (s.since_utc IS NULL OR q.punched_at_utc >= s.since_utc) \
                     ) e JOIN outbox o ON o.id = e.id JOIN punches p ON p.id = o.punch_id \
                     GROUP BY p.device_sn ORDER BY p.device_sn",
                )
                .map_err(backend)?;
            let rows = st
                .query_map([sink_id], |r| {
                    Ok(Undelivered {
                        device_sn: r.get(0)?,
                        events: r.get::<_, i64>(1)? as u64,
                        oldest_punch_at: Utc
                            .timestamp_opt(r.get(2)?, 0)
                            .single()
                            .unwrap_or_default(),
                    })
                })
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn prune_outbox(&self, before: DateTime<Utc>, max: usize) -> Result<usize> {
        self.write(move |conn| {
            // Candidates: old events every sink has taken (id <= its cursor; no sink: all) with no delivery row
            // that is pending or parked.
            conn.execute_batch(
                "CREATE TEMP TABLE IF NOT EXISTS prune_ids (id INTEGER PRIMARY KEY); DELETE FROM prune_ids;",
            )
            .map_err(backend)?;
            conn.execute(
                "INSERT INTO prune_ids (id) SELECT o.id FROM outbox o \
                 WHERE o.created_at < ?1 \
                   AND o.id <= COALESCE((SELECT MIN(cursor) FROM sinks), o.id) \
                   AND NOT EXISTS (SELECT 1 FROM sinks s JOIN deliveries d ON d.sink_id = s.id AND d.event_id = o.id \
                                   WHERE d.status <> 'delivered') \
                 ORDER BY o.id LIMIT ?2",
                params![ms(before), max as i64],
            )
            .map_err(backend)?;
            conn.execute(
                "DELETE FROM deliveries WHERE (sink_id, event_id) IN (SELECT s.id, p.id FROM sinks s, prune_ids p)",
                [],
            )
            .map_err(backend)?;
            let n = conn
                .execute(
                    "DELETE FROM outbox WHERE id IN (SELECT id FROM prune_ids)",
                    [],
                )
                .map_err(backend)?;
            conn.execute("DELETE FROM prune_ids", []).map_err(backend)?;
            Ok(n)
        })
        .await
    }
}
