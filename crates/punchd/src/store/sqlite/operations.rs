//! [`OperationsStore`] for SQLite: device removal, command cancellation, journal listing.

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{
    backend, conversion, from_ms, get_command_on, ms, next_revision, sn_from, SqliteStore,
};
use crate::domain::{Command, CommandStatus, DeviceSn, Source};
use crate::store::operations::{CancelError, JournalFilter, JournalSummary, OperationsStore};
use crate::store::{LineIssue, Result, StoreError};

#[async_trait::async_trait]
impl OperationsStore for SqliteStore {
    async fn delete_device(&self, sn: &DeviceSn, now: DateTime<Utc>) -> Result<()> {
        let sn = sn.clone();
        self.write(move |conn| {
            let revision = next_revision(conn)?;
            let n = conn
                .execute("DELETE FROM devices WHERE sn = ?1", [sn.as_str()])
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("device {sn}")));
            }
            conn.execute("DELETE FROM stamps WHERE device_sn = ?1", [sn.as_str()])
                .map_err(backend)?;
            conn.execute(
                "UPDATE commands SET status = 'cancelled', finished_at = ?2, \
                 message = 'cancelled: the device was removed' WHERE device_sn = ?1 AND status = 'queued'",
                params![sn.as_str(), ms(now)],
            )
            .map_err(backend)?;
            conn.execute(
                "INSERT INTO device_deletions (sn, revision, deleted_at) VALUES (?1, ?2, ?3)",
                params![sn.as_str(), revision, ms(now)],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn devices_deleted_since(&self, revision: i64) -> Result<(Vec<DeviceSn>, i64)> {
        self.read(move |conn| {
            let mut st = conn
                .prepare_cached(
                    "SELECT sn, revision FROM device_deletions WHERE revision > ?1 ORDER BY revision",
                )
                .map_err(backend)?;
            let rows = st
                .query_map([revision], |r| Ok((sn_from(r.get(0)?)?, r.get::<_, i64>(1)?)))
                .map_err(backend)?;
            let rows = rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)?;
            let max = rows.iter().map(|(_, r)| *r).max().unwrap_or(revision);
            Ok((rows.into_iter().map(|(sn, _)| sn).collect(), max))
        })
        .await
    }

    async fn cancel_command(
        &self,
        id: i64,
        by: &str,
        now: DateTime<Utc>,
    ) -> std::result::Result<Command, CancelError> {
        let by = by.to_owned();
        let outcome = self
            .write(move |conn| {
                let command = get_command_on(conn, id)?;
                if command.status != CommandStatus::Queued {
                    return Ok(Err(command));
                }
                conn.execute(
                    "UPDATE commands SET status = 'cancelled', finished_at = ?2, message = ?3 \
                     WHERE id = ?1 AND status = 'queued'",
                    params![id, ms(now), format!("cancelled by {by}")],
                )
                .map_err(backend)?;
                get_command_on(conn, id).map(Ok)
            })
            .await?;
        outcome.map_err(|c| CancelError::NotQueued(Box::new(c)))
    }

    async fn list_journal(&self, filter: &JournalFilter) -> Result<Vec<JournalSummary>> {
        let f = filter.clone();
        self.read(move |conn| {
            let limit = if f.limit == 0 { -1 } else { f.limit as i64 };
            let mut st = conn
                .prepare_cached(
                    "SELECT id, received_at, device_sn, source, kind, request, remote_addr, length(body), \
                     n_records, n_stored, n_duplicate, errors FROM journal \
                     WHERE (?1 IS NULL OR device_sn = ?1) AND (?2 IS NULL OR kind = ?2) \
                     AND (?3 IS NULL OR (errors IS NOT NULL) = ?3) \
                     AND (?4 IS NULL OR received_at >= ?4) AND (?5 IS NULL OR received_at < ?5) \
                     AND (?6 IS NULL OR id > ?6) ORDER BY id LIMIT ?7",
                )
                .map_err(backend)?;
            let rows = st
                .query_map(
                    params![
                        f.device_sn.as_ref().map(DeviceSn::as_str),
                        f.kind,
                        f.has_errors,
                        f.from.map(ms),
                        f.to.map(ms),
                        f.after_id,
                        limit
                    ],
                    |r| {
                        let sn: Option<String> = r.get(2)?;
                        let source: String = r.get(3)?;
                        let errors: Option<String> = r.get(11)?;
                        Ok(JournalSummary {
                            id: r.get(0)?,
                            received_at: from_ms(r.get(1)?),
                            device_sn: sn.map(sn_from).transpose()?,
                            source: Source::parse(&source)
                                .ok_or_else(|| conversion(format!("source {source:?}")))?,
                            kind: r.get(4)?,
                            request: r.get(5)?,
                            remote_addr: r.get(6)?,
                            body_len: r.get::<_, i64>(7)? as u64,
                            n_records: r.get::<_, i64>(8)? as usize,
                            n_stored: r.get::<_, i64>(9)? as usize,
                            n_duplicate: r.get::<_, i64>(10)? as usize,
                            errors: errors
                                .and_then(|e| serde_json::from_str::<Vec<LineIssue>>(&e).ok())
                                .unwrap_or_default(),
                        })
                    },
                )
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }
}
