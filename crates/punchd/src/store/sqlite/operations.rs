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
        let held = self.held.clone();
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
            // Runs on the writer thread, in the group that removes the device (held_stamps.rs).
            held.forget(sn.as_str());
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
            let (sql, values) = journal_listing_sql(&f);
            let mut st = conn.prepare_cached(&sql).map_err(backend)?;
            let rows = st
                .query_map(rusqlite::params_from_iter(values), |r| {
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
                })
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }
}

/// The journal listing's statement and its parameters, with a condition only for each filter that is set: a
/// condition written `(?n IS NULL OR …)` for every filter kept SQLite from seeing any of them when it planned the
/// statement, so every listing — a page after a cursor, the last seven days — read the journal from its first row.
/// This way the cursor starts the walk at its rowid, and a start time first finds the lowest id received since
/// on `journal_received` (named: left to itself, SQLite found that lowest id by walking the table from its first
/// row; ids follow the writer's commits, so an entry received a moment earlier may hold a higher id: the lowest is
/// looked up, not the first in time). The device, kind and error filters are compared
/// on the way, in id order (there is no index by device: migration 0019). One statement per combination of set
/// filters, each cached.
fn journal_listing_sql(f: &JournalFilter) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value;
    let mut sql = String::from(
        "SELECT id, received_at, device_sn, source, kind, request, remote_addr, length(body), n_records, \
         n_stored, n_duplicate, errors FROM journal WHERE 1",
    );
    let mut values = Vec::new();
    let mut bind = |sql: &mut String, condition: &str, value: Value| {
        values.push(value);
        sql.push_str(" AND ");
        sql.push_str(&condition.replace('?', &format!("?{}", values.len())));
    };
    if let Some(after) = f.after_id {
        bind(&mut sql, "id > ?", Value::Integer(after));
    }
    if let Some(from) = f.from {
        bind(
            &mut sql,
            "id >= (SELECT COALESCE(MIN(id), 1 << 62) FROM journal INDEXED BY journal_received \
             WHERE received_at >= ?)",
            Value::Integer(ms(from)),
        );
        bind(&mut sql, "received_at >= ?", Value::Integer(ms(from)));
    }
    if let Some(to) = f.to {
        bind(&mut sql, "received_at < ?", Value::Integer(ms(to)));
    }
    if let Some(sn) = &f.device_sn {
        bind(
            &mut sql,
            "device_sn = ?",
            Value::Text(sn.as_str().to_owned()),
        );
    }
    if let Some(kind) = &f.kind {
        bind(&mut sql, "kind = ?", Value::Text(kind.clone()));
    }
    if let Some(has_errors) = f.has_errors {
        bind(
            &mut sql,
            "(errors IS NOT NULL) = ?",
            Value::Integer(i64::from(has_errors)),
        );
    }
    sql.push_str(" ORDER BY id");
    if f.limit > 0 {
        values.push(Value::Integer(i64::try_from(f.limit).unwrap_or(i64::MAX)));
        sql.push_str(&format!(" LIMIT ?{}", values.len()));
    }
    (sql, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How SQLite would run the listing for `filter`, on a database with the whole schema.
    fn plan(filter: &JournalFilter) -> String {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("plan.db");
        drop(SqliteStore::open(&path, crate::store::sqlite::Durability::CrashSafe).expect("open"));
        let conn = rusqlite::Connection::open(&path).expect("open");
        let (sql, values) = journal_listing_sql(filter);
        let mut st = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("prepare");
        let rows = st
            .query_map(rusqlite::params_from_iter(values), |r| {
                r.get::<_, String>(3)
            })
            .expect("plan")
            .collect::<rusqlite::Result<Vec<_>>>()
            .expect("plan rows");
        rows.join(" | ")
    }

    #[test]
    fn a_cursor_or_a_start_time_does_not_read_the_journal_from_its_first_row() {
        let after = plan(&JournalFilter {
            after_id: Some(7),
            device_sn: Some(DeviceSn::parse("X1").expect("sn")),
            limit: 100,
            ..JournalFilter::default()
        });
        assert!(
            after.contains("USING INTEGER PRIMARY KEY (rowid>?)"),
            "{after}"
        );
        let since = plan(&JournalFilter {
            from: Some(from_ms(1_000)),
            has_errors: Some(true),
            ..JournalFilter::default()
        });
        assert!(
            since.contains("USING INTEGER PRIMARY KEY (rowid>?)"),
            "{since}"
        );
        assert!(
            since.contains("journal_received (received_at>?)"),
            "{since}"
        );
    }

    #[test]
    fn the_journal_has_no_index_by_device() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("schema.db");
        drop(SqliteStore::open(&path, crate::store::sqlite::Durability::CrashSafe).expect("open"));
        let conn = rusqlite::Connection::open(&path).expect("open");
        let mut indexes: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'journal'")
            .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
            .expect("indexes");
        indexes.sort();
        assert_eq!(indexes, vec!["journal_received".to_owned()]);
    }
}
