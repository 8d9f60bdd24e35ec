//! [`DeliveryStore`] on PostgreSQL: undelivered events per device, outbox pruning and withdrawals (migration
//! 0007_delivery.sql; the outbox tables of 0002). The same rules as `sqlite/delivery.rs`; "not yet taken" is the
//! outbox's own rule here: past the sink's `(xid, id)` cursor and inside its start date or creation snapshot
//! ([`super::outbox::OF_SINK`]).

use chrono::{DateTime, Utc};
use tokio_postgres::Row;

use super::outbox::OF_SINK;
use super::{backend, col, commit, narrow, PgStore};
use crate::domain::CORRECTION_DEVICE;
use crate::store::delivery::{
    AddedPunch, CorrectionDelivery, DeliveryStore, Undelivered, VoidedPunch, Withdrawal,
    WithdrawalStatus,
};
use crate::store::{Result, StoreError};

fn withdrawal_from_row(row: &Row) -> Result<Withdrawal> {
    let status: String = col(row, 2)?;
    Ok(Withdrawal {
        correction_id: col(row, 0)?,
        punch_id: col(row, 1)?,
        status: WithdrawalStatus::parse(&status).unwrap_or(WithdrawalStatus::NeedsHr),
        remote_ref: col(row, 3)?,
        note: col(row, 4)?,
        updated_at: col(row, 5)?,
    })
}

#[async_trait::async_trait]
impl DeliveryStore for PgStore {
    async fn undelivered_by_device(&self, sink_id: i64) -> Result<Vec<Undelivered>> {
        let client = self.client().await?;
        let exists: bool = col(
            &client
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM sinks WHERE id = $1)",
                    &[&sink_id],
                )
                .await
                .map_err(backend)?,
            0,
        )?;
        if !exists {
            return Err(StoreError::NotFound(format!("sink {sink_id}")));
        }
        // Taken and pending, plus not yet taken (what take_events will take).
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
            .map(|r| {
                Ok(Undelivered {
                    device_sn: col(r, 0)?,
                    events: narrow(col::<i64>(r, 1)?),
                    oldest_punch_at: col(r, 2)?,
                })
            })
            .collect()
    }

    async fn prune_outbox(&self, before: DateTime<Utc>, max: usize) -> Result<usize> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        // Old events every sink has taken (at or before its cursor; no sink: all) with no delivery row that is
        // pending or parked.
        let row = tx
            .query_one(
                "WITH candidates AS (SELECT o.id FROM outbox o \
                   WHERE o.created_at < $1 \
                     AND NOT EXISTS (SELECT 1 FROM sinks s WHERE (o.xid, o.id) > (s.cursor_xid, s.cursor_id)) \
                     AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = o.id AND d.status <> 'delivered') \
                   ORDER BY o.id LIMIT $2), \
                 gone AS (DELETE FROM deliveries d USING candidates c WHERE d.event_id = c.id RETURNING 1), \
                 pruned AS (DELETE FROM outbox o USING candidates c WHERE o.id = c.id RETURNING 1) \
                 SELECT (SELECT count(*) FROM pruned), (SELECT count(*) FROM gone)",
                &[&before, &(max as i64)],
            )
            .await
            .map_err(backend)?;
        let pruned: i64 = col(&row, 0)?;
        commit(tx).await?;
        Ok(narrow(pruned))
    }

    async fn voids_to_withdraw(&self, sink_id: i64, max: usize) -> Result<Vec<VoidedPunch>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT c.id, p.id, p.device_sn, p.pin, p.punched_at, \
                       CASE WHEN d.status IS NOT NULL THEN d.status \
                            WHEN (o.xid, o.id) > (s.cursor_xid, s.cursor_id) AND {OF_SINK} THEN 'pending' END, \
                       d.remote_ref, p.punch_state \
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
            .map(|r| {
                Ok(VoidedPunch {
                    correction_id: col(r, 0)?,
                    punch_id: col(r, 1)?,
                    device_sn: col(r, 2)?,
                    pin: col(r, 3)?,
                    punched_at: col(r, 4)?,
                    delivery: col(r, 5)?,
                    remote_ref: col(r, 6)?,
                    punch_state: u16::try_from(col::<i32>(r, 7)?).ok(),
                    added_at: None,
                })
            })
            .collect()
    }

    async fn revoked_additions_to_withdraw(
        &self,
        sink_id: i64,
        max: usize,
    ) -> Result<Vec<VoidedPunch>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT c.id, c.employee_code, c.punched_at, c.punch_state, d.remote_ref, c.created_at \
                 FROM corrections c JOIN correction_deliveries d ON d.sink_id = $1 AND d.correction_id = c.id \
                 WHERE c.kind = 'add-punch' AND c.revoked_at IS NOT NULL AND c.punched_at IS NOT NULL \
                   AND d.status = 'delivered' \
                   AND NOT EXISTS (SELECT 1 FROM withdrawals w WHERE w.sink_id = $1 AND w.correction_id = c.id) \
                 ORDER BY c.id LIMIT $2",
                &[&sink_id, &(max as i64)],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                Ok(VoidedPunch {
                    correction_id: col(r, 0)?,
                    punch_id: 0,
                    device_sn: CORRECTION_DEVICE.to_owned(),
                    pin: col(r, 1)?,
                    punched_at: col(r, 2)?,
                    punch_state: col::<Option<i32>>(r, 3)?.and_then(|s| u16::try_from(s).ok()),
                    delivery: Some("delivered".to_owned()),
                    remote_ref: col(r, 4)?,
                    added_at: Some(col(r, 5)?),
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
        client
            .query(
                "SELECT correction_id, punch_id, status, remote_ref, note, updated_at FROM withdrawals \
                 WHERE sink_id = $1 ORDER BY correction_id",
                &[&sink_id],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(withdrawal_from_row)
            .collect()
    }

    async fn hold_command(&self, id: i64, note: Option<String>) -> Result<bool> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE commands SET message = $2, \
                   attempts = CASE WHEN status = 'sent' THEN GREATEST(attempts - 1, 0) ELSE attempts END, \
                   sent_at = CASE WHEN status = 'sent' THEN NULL ELSE sent_at END, status = 'queued' \
                 WHERE id = $1 AND status IN ('queued', 'sent')",
                &[&id, &note],
            )
            .await
            .map_err(backend)?;
        Ok(n > 0)
    }

    async fn added_punches_to_deliver(&self, sink_id: i64, max: usize) -> Result<Vec<AddedPunch>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT c.id, c.employee_code, c.punched_at, c.punch_state, c.created_at \
                 FROM corrections c JOIN sinks s ON s.id = $1 \
                 WHERE c.kind = 'add-punch' AND c.revoked_at IS NULL AND c.punched_at IS NOT NULL \
                   AND (s.since_utc IS NOT NULL OR c.created_at >= s.created_at) \
                   AND NOT EXISTS (SELECT 1 FROM correction_deliveries d \
                                   WHERE d.sink_id = s.id AND d.correction_id = c.id) \
                 ORDER BY c.id LIMIT $2",
                &[&sink_id, &(max as i64)],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                Ok(AddedPunch {
                    correction_id: col(r, 0)?,
                    employee_code: col(r, 1)?,
                    punched_at: col(r, 2)?,
                    punch_state: col::<Option<i32>>(r, 3)?.and_then(|s| u16::try_from(s).ok()),
                    created_at: col(r, 4)?,
                })
            })
            .collect()
    }

    async fn record_correction_delivery(&self, sink_id: i64, d: CorrectionDelivery) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO correction_deliveries (sink_id, correction_id, status, remote_ref, note, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (sink_id, correction_id) DO UPDATE SET status = excluded.status, \
                 remote_ref = excluded.remote_ref, note = excluded.note, updated_at = excluded.updated_at",
                &[
                    &sink_id,
                    &d.correction_id,
                    &d.status,
                    &d.remote_ref,
                    &d.note,
                    &d.updated_at,
                ],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn list_correction_deliveries(&self, sink_id: i64) -> Result<Vec<CorrectionDelivery>> {
        let client = self.client().await?;
        client
            .query(
                "SELECT correction_id, status, remote_ref, note, updated_at FROM correction_deliveries \
                 WHERE sink_id = $1 ORDER BY correction_id",
                &[&sink_id],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(|r| {
                Ok(CorrectionDelivery {
                    correction_id: col(r, 0)?,
                    status: col(r, 1)?,
                    remote_ref: col(r, 2)?,
                    note: col(r, 3)?,
                    updated_at: col(r, 4)?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    /// The delivery contract on PostgreSQL, in a schema of its own.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_keeps_the_delivery_contract() {
        let Some(url) = super::super::tests::test_url() else {
            return;
        };
        let store = super::PgStore::open_isolated_for_test(&url)
            .await
            .expect("open postgres");
        crate::store::contract_delivery::run_all(&store).await;
    }
}
