//! [`DeliveryStore`] for SQLite (outbox tables of migrations/sqlite/0008_outbox.sql, events on their punch since
//! 0020_outbox_by_punch.sql; withdrawals of 0012_delivery.sql).

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use rusqlite::params;

use super::{backend, from_ms, ms, SqliteStore};
use crate::domain::CORRECTION_DEVICE;
use crate::store::delivery::{
    AddedPunch, CorrectionDelivery, DeliveryStore, Undelivered, VoidedPunch, Withdrawal,
    WithdrawalStatus,
};
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
                       SELECT q.id FROM punches q, sinks s \
                       WHERE s.id = ?1 AND q.id > s.cursor AND q.outbox_at IS NOT NULL \
                         AND (s.since_utc IS NULL OR q.punched_at_utc >= s.since_utc) \
                     ) e JOIN punches p ON p.id = e.id \
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
            // that is pending or parked. An event is pruned by clearing its punch's `outbox_at` (the punch stays);
            // the sinks' `passed` counts lose it.
            //
            // There is no index on `outbox_at`, so the scan starts at `outbox_prune.from_id`, the first punch that
            // still had an event after the last call; a backfill (sqlite/outbox.rs) sets it back to 0, from any
            // process.
            conn.execute_batch(
                "CREATE TEMP TABLE IF NOT EXISTS prune_ids (id INTEGER PRIMARY KEY); DELETE FROM prune_ids;",
            )
            .map_err(backend)?;
            let from: i64 = conn
                .query_row("SELECT COALESCE((SELECT from_id FROM outbox_prune), 0)", [], |r| r.get(0))
                .map_err(backend)?;
            conn.execute(
                "INSERT INTO prune_ids (id) SELECT p.id FROM punches p \
                 WHERE p.id >= ?3 AND p.outbox_at IS NOT NULL AND p.outbox_at < ?1 \
                   AND p.id <= COALESCE((SELECT MIN(cursor) FROM sinks), p.id) \
                   AND NOT EXISTS (SELECT 1 FROM sinks s JOIN deliveries d ON d.sink_id = s.id AND d.event_id = p.id \
                                   WHERE d.status <> 'delivered') \
                 ORDER BY p.id LIMIT ?2",
                params![ms(before), max as i64, from],
            )
            .map_err(backend)?;
            conn.execute(
                "DELETE FROM deliveries WHERE (sink_id, event_id) IN (SELECT s.id, p.id FROM sinks s, prune_ids p)",
                [],
            )
            .map_err(backend)?;
            conn.execute(
                "UPDATE sinks SET passed = passed - (SELECT COUNT(*) FROM prune_ids i JOIN punches q ON q.id = i.id \
                   WHERE i.id <= sinks.cursor \
                     AND (sinks.since_utc IS NULL OR q.punched_at_utc >= sinks.since_utc))",
                [],
            )
            .map_err(backend)?;
            let n = conn
                .execute(
                    "UPDATE punches SET outbox_at = NULL WHERE id IN (SELECT id FROM prune_ids)",
                    [],
                )
                .map_err(backend)?;
            // Next time, start at the first event left from here (none: past the last punch).
            conn.execute(
                "UPDATE outbox_prune SET from_id = COALESCE( \
                   (SELECT id FROM punches WHERE id >= ?1 AND outbox_at IS NOT NULL ORDER BY id LIMIT 1), \
                   (SELECT COALESCE(MAX(id), 0) + 1 FROM punches))",
                [from],
            )
            .map_err(backend)?;
            conn.execute("DELETE FROM prune_ids", []).map_err(backend)?;
            Ok(n)
        })
        .await
    }

    async fn voids_to_withdraw(&self, sink_id: i64, max: usize) -> Result<Vec<VoidedPunch>> {
        self.read(move |conn| {
            let mut st = conn
                .prepare_cached(
                    "SELECT c.id, p.id, p.device_sn, p.pin, p.punched_at, \
                       CASE WHEN d.status IS NOT NULL THEN d.status \
                            WHEN p.outbox_at IS NULL \
                              OR (s.since_utc IS NOT NULL AND p.punched_at_utc < s.since_utc) THEN NULL \
                            WHEN p.id > s.cursor THEN 'pending' \
                            ELSE 'delivered' END, \
                       d.remote_ref, p.punch_state \
                     FROM corrections c JOIN punches p ON p.id = c.punch_id JOIN sinks s ON s.id = ?1 \
                     LEFT JOIN deliveries d ON d.sink_id = s.id AND d.event_id = p.id \
                     WHERE c.kind = 'void-punch' AND c.revoked_at IS NULL \
                       AND NOT EXISTS (SELECT 1 FROM withdrawals w WHERE w.sink_id = s.id AND w.correction_id = c.id) \
                     ORDER BY c.id LIMIT ?2",
                )
                .map_err(backend)?;
            let rows = st
                .query_map(params![sink_id, max as i64], |r| {
                    let local: String = r.get(4)?;
                    Ok(VoidedPunch {
                        correction_id: r.get(0)?,
                        punch_id: r.get(1)?,
                        device_sn: r.get(2)?,
                        pin: r.get(3)?,
                        punched_at: NaiveDateTime::parse_from_str(&local, "%Y-%m-%d %H:%M:%S")
                            .unwrap_or_default(),
                        delivery: r.get(5)?,
                        remote_ref: r.get(6)?,
                        punch_state: u16::try_from(r.get::<_, i64>(7)?).ok(),
                        added_at: None,
                    })
                })
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn revoked_additions_to_withdraw(
        &self,
        sink_id: i64,
        max: usize,
    ) -> Result<Vec<VoidedPunch>> {
        self.read(move |conn| {
            let mut st = conn
                .prepare_cached(
                    "SELECT c.id, c.employee_code, c.punched_at, c.punch_state, d.remote_ref, c.created_at \
                     FROM corrections c JOIN correction_deliveries d ON d.sink_id = ?1 AND d.correction_id = c.id \
                     WHERE c.kind = 'add-punch' AND c.revoked_at IS NOT NULL AND c.punched_at IS NOT NULL \
                       AND d.status = 'delivered' \
                       AND NOT EXISTS (SELECT 1 FROM withdrawals w WHERE w.sink_id = ?1 AND w.correction_id = c.id) \
                     ORDER BY c.id LIMIT ?2",
                )
                .map_err(backend)?;
            let rows = st
                .query_map(params![sink_id, max as i64], |r| {
                    let local: String = r.get(2)?;
                    Ok(VoidedPunch {
                        correction_id: r.get(0)?,
                        punch_id: 0,
                        device_sn: CORRECTION_DEVICE.to_owned(),
                        pin: r.get(1)?,
                        punched_at: super::parse_local(&local)?,
                        punch_state: r
                            .get::<_, Option<i64>>(3)?
                            .and_then(|s| u16::try_from(s).ok()),
                        delivery: Some("delivered".to_owned()),
                        remote_ref: r.get(4)?,
                        added_at: Some(from_ms(r.get(5)?)),
                    })
                })
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn record_withdrawal(&self, sink_id: i64, w: Withdrawal) -> Result<()> {
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO withdrawals (sink_id, correction_id, punch_id, status, remote_ref, note, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                 ON CONFLICT (sink_id, correction_id) DO UPDATE SET punch_id = excluded.punch_id, \
                 status = excluded.status, remote_ref = excluded.remote_ref, note = excluded.note, \
                 updated_at = excluded.updated_at",
                params![
                    sink_id,
                    w.correction_id,
                    w.punch_id,
                    w.status.as_str(),
                    w.remote_ref,
                    w.note,
                    ms(w.updated_at)
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn list_withdrawals(&self, sink_id: i64) -> Result<Vec<Withdrawal>> {
        self.read(move |conn| {
            let mut st = conn
                .prepare_cached(
                    "SELECT correction_id, punch_id, status, remote_ref, note, updated_at FROM withdrawals \
                     WHERE sink_id = ?1 ORDER BY correction_id",
                )
                .map_err(backend)?;
            let rows = st
                .query_map([sink_id], |r| {
                    let status: String = r.get(2)?;
                    Ok(Withdrawal {
                        correction_id: r.get(0)?,
                        punch_id: r.get(1)?,
                        status: WithdrawalStatus::parse(&status).unwrap_or(WithdrawalStatus::NeedsHr),
                        remote_ref: r.get(3)?,
                        note: r.get(4)?,
                        updated_at: from_ms(r.get(5)?),
                    })
                })
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn hold_command(&self, id: i64, note: Option<String>) -> Result<bool> {
        self.write(move |conn| {
            let n = conn
                .execute(
                    "UPDATE commands SET message = ?2, \
                       attempts = CASE WHEN status = 'sent' THEN MAX(attempts - 1, 0) ELSE attempts END, \
                       sent_at = CASE WHEN status = 'sent' THEN NULL ELSE sent_at END, status = 'queued' \
                     WHERE id = ?1 AND status IN ('queued', 'sent')",
                    params![id, note],
                )
                .map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn added_punches_to_deliver(&self, sink_id: i64, max: usize) -> Result<Vec<AddedPunch>> {
        self.read(move |conn| {
            let mut st = conn
                .prepare_cached(
                    "SELECT c.id, c.employee_code, c.punched_at, c.punch_state, c.created_at \
                     FROM corrections c JOIN sinks s ON s.id = ?1 \
                     WHERE c.kind = 'add-punch' AND c.revoked_at IS NULL AND c.punched_at IS NOT NULL \
                       AND (s.since_utc IS NOT NULL OR c.created_at >= s.created_at) \
                       AND NOT EXISTS (SELECT 1 FROM correction_deliveries d \
                                       WHERE d.sink_id = s.id AND d.correction_id = c.id) \
                     ORDER BY c.id LIMIT ?2",
                )
                .map_err(backend)?;
            let rows = st
                .query_map(params![sink_id, max as i64], |r| {
                    let local: String = r.get(2)?;
                    Ok(AddedPunch {
                        correction_id: r.get(0)?,
                        employee_code: r.get(1)?,
                        punched_at: super::parse_local(&local)?,
                        punch_state: r.get(3)?,
                        created_at: from_ms(r.get(4)?),
                    })
                })
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn record_correction_delivery(&self, sink_id: i64, d: CorrectionDelivery) -> Result<()> {
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO correction_deliveries (sink_id, correction_id, status, remote_ref, note, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT (sink_id, correction_id) DO UPDATE SET status = excluded.status, \
                 remote_ref = excluded.remote_ref, note = excluded.note, updated_at = excluded.updated_at",
                params![
                    sink_id,
                    d.correction_id,
                    d.status,
                    d.remote_ref,
                    d.note,
                    ms(d.updated_at)
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn list_correction_deliveries(&self, sink_id: i64) -> Result<Vec<CorrectionDelivery>> {
        self.read(move |conn| {
            let mut st = conn
                .prepare_cached(
                    "SELECT correction_id, status, remote_ref, note, updated_at FROM correction_deliveries \
                     WHERE sink_id = ?1 ORDER BY correction_id",
                )
                .map_err(backend)?;
            let rows = st
                .query_map([sink_id], |r| {
                    Ok(CorrectionDelivery {
                        correction_id: r.get(0)?,
                        status: r.get(1)?,
                        remote_ref: r.get(2)?,
                        note: r.get(3)?,
                        updated_at: from_ms(r.get(4)?),
                    })
                })
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }
}
