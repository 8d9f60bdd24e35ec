//! [`DeliveryStore`] on PostgreSQL (outbox tables of migrations/postgres/0002_operations_sources_outbox.sql;
//! withdrawals of 0007_delivery.sql). The same rules as `sqlite/delivery.rs`, with the outbox's `(xid, id)` cursor:
//! an event is "taken" by a sink when `(xid, id) <= (cursor_xid, cursor_id)` (store/postgres/outbox.rs).

use chrono::{DateTime, NaiveDateTime, Utc};

use super::{backend, col, commit, PgStore};
use crate::store::delivery::{
    DeliveryStore, Undelivered, VoidedPunch, Withdrawal, WithdrawalStatus,
};
use crate::store::{Result, StoreError};

/// The condition an outbox row `o` (with its punch `p`) must meet to be one of sink `s`'s events (outbox.rs).
const OF_SINK: &str = "(s.since_utc IS NULL OR p.punched_at_utc >= s.since_utc) \
     AND (s.created_snapshot IS NULL OR NOT pg_visible_in_snapshot(o.xid::text::xid8, s.created_snapshot))";

#[async_trait::async_trait]
impl DeliveryStore for PgStore {
    async fn undelivered_by_device(&self, sink_id: i64) -> Result<Vec<Undelivered>> {
        let client = self.client().await?;
        let exists: bool = col(
            &client
                .query_one("SELECT EXISTS (SELECT 1 FROM sinks WHERE id = $1)", &[&sink_id])
                .await
                .map_err(backend)?,
            0,
        )?;
        if !exists {
            return Err(StoreError::NotFound(format!("sink {sink_id}")));
        }
        let rows = client
            .query(
                &format!(
                    "SELECT p.device_sn, COUNT(*), MIN(p.punched_at_utc) FROM ( \
                       SELECT d.event_id AS id FROM deliveries d WHERE d.sink_id = $1 AND d.status = 'pending' \
                       UNION ALL \
                       SELECT o.id FROM outbox o JOIN punches p ON p.id = o.punch_id, sinks s \
                       WHERE s.id = $1 AND (o.xid, o.id) > (s.cursor_xid, s.cursor_id) AND {OF_SINK} \
                     ) e JOIN outbox o ON o.id = e.id JOIN punches p ON p.id = o.punch_id \
                     GROUP BY p.device_sn ORDER BY p.device_sn"
                ),
                &[&sink_id],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| {
                Ok(Undelivered {
                    device_sn: col(row, 0)?,
                    events: col::<i64>(row, 1)? as u64,
                    oldest_punch_at: col(row, 2)?,
                })
            })
            .collect()
    }

    async fn prune_outbox(&self, before: DateTime<Utc>, max: usize) -> Result<usize> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        // Old events every sink has taken (at or below its (xid, id) cursor; no sink: all) with no delivery row
        // that is pending or parked.
        let ids: Vec<i64> = tx
            .query(
                "SELECT o.id FROM outbox o WHERE o.created_at < $1 \
                   AND NOT EXISTS (SELECT 1 FROM sinks s WHERE (o.xid, o.id) > (s.cursor_xid, s.cursor_id)) \
                   AND NOT EXISTS (SELECT 1 FROM sinks s JOIN deliveries d ON d.sink_id = s.id AND d.event_id = o.id \
                                   WHERE d.status <> 'delivered') \
                 ORDER BY o.id LIMIT $2 FOR UPDATE SKIP LOCKED",
                &[&before, &(max as i64)],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(|row| col(row, 0))
            .collect::<Result<_>>()?;
        tx.execute(
            "DELETE FROM deliveries WHERE sink_id IN (SELECT id FROM sinks) AND event_id = ANY($1)",
            &[&ids],
        )
        .await
        .map_err(backend)?;
        let n = tx
            .execute("DELETE FROM outbox WHERE id = ANY($1)", &[&ids])
            .await
            .map_err(backend)?;
        commit(tx).await?;
        Ok(n as usize)
    }

    async fn voids_to_withdraw(&self, sink_id: i64, max: usize) -> Result<Vec<VoidedPunch>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT c.id, p.id, p.device_sn, p.pin, p.punched_at, \
                       CASE WHEN d.status IS NOT NULL THEN d.status \
                            WHEN o.id IS NOT NULL AND (o.xid, o.id) > (s.cursor_xid, s.cursor_id) AND {OF_SINK} \
                              THEN 'pending' END, \
                       d.remote_ref \
                     FROM corrections c JOIN punches p ON p.id = c.punch_id JOIN sinks s ON s.id = $1 \
                     LEFT JOIN outbox o ON o.punch_id = p.id \
                     LEFT JOIN deliveries d ON d.sink_id = s.id AND d.event_id = o.id \
                     WHERE c.kind = 'void-punch' AND c.revoked_at IS NULL \
                       AND NOT EXISTS (SELECT 1 FROM withdrawals w WHERE w.sink_id = s.id AND w.correction_id = c.id) \
                     ORDER BY c.id LIMIT $2"
                ),
                &[&sink_id, &(max as i64)],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| {
                let punched_at: NaiveDateTime = col(row, 4)?;
                Ok(VoidedPunch {
                    correction_id: col(row, 0)?,
                    punch_id: col(row, 1)?,
                    device_sn: col(row, 2)?,
                    pin: col(row, 3)?,
                    punched_at,
                    delivery: col(row, 5)?,
                    remote_ref: col(row, 6)?,
                })
            })
            .collect()
    }

    async fn record_withdrawal(&self, sink_id: i64, w: Withdrawal) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO withdrawals (sink_id, correction_id, punch_id, status, remote_ref, note, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (sink_id, correction_id) DO UPDATE SET punch_id = excluded.punch_id, \
                 status = excluded.status, remote_ref = excluded.remote_ref, note = excluded.note, \
                 updated_at = excluded.updated_at",
                &[
                    &sink_id,
                    &w.correction_id,
                    &w.punch_id,
                    &w.status.as_str(),
                    &w.remote_ref,
                    &w.note,
                    &w.updated_at,
                ],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn list_withdrawals(&self, sink_id: i64) -> Result<Vec<Withdrawal>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT correction_id, punch_id, status, remote_ref, note, updated_at FROM withdrawals \
                 WHERE sink_id = $1 ORDER BY correction_id",
                &[&sink_id],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| {
                let status: String = col(row, 2)?;
                Ok(Withdrawal {
                    correction_id: col(row, 0)?,
                    punch_id: col(row, 1)?,
                    status: WithdrawalStatus::parse(&status).unwrap_or(WithdrawalStatus::NeedsHr),
                    remote_ref: col(row, 3)?,
                    note: col(row, 4)?,
                    updated_at: col(row, 5)?,
                })
            })
            .collect()
    }
}
