//! [`SourcesStore`] for SQLite: the `sources` table (migration 0007_sources.sql).

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{backend, from_ms, ms, punch_from_row, punch_where, SqliteStore, PUNCH_COLUMNS};
use crate::domain::Punch;
use crate::store::sources::PunchOrder;
use crate::store::sources::{NewSource, SourceInfo, SourceKind, SourceRun, SourcesStore};
use crate::store::PunchFilter;
use crate::store::{Result, StoreError};

const COLUMNS: &str =
    "id, name, kind, time_zone, settings, enabled, cursor, created_at, last_run_at, \
     last_success_at, last_error, last_error_at, n_runs, n_stored, n_duplicate, n_rejected, run_requested_at";

fn source_from_row(row: &Row<'_>) -> rusqlite::Result<SourceInfo> {
    let kind: String = row.get(2)?;
    let settings: String = row.get(4)?;
    let enabled: bool = row.get(5)?;
    let last_run_at: Option<i64> = row.get(8)?;
    let last_error: Option<String> = row.get(10)?;
    let state = if !enabled {
        "disabled"
    } else if last_error.is_some() {
        "failing"
    } else if last_run_at.is_some() {
        "ok"
    } else {
        "new"
    };
    Ok(SourceInfo {
        id: row.get(0)?,
        name: row.get(1)?,
        kind: SourceKind::parse(&kind).unwrap_or(SourceKind::Import),
        time_zone: row.get(3)?,
        settings: serde_json::from_str(&settings).unwrap_or_default(),
        enabled,
        state: state.to_owned(),
        cursor: row.get(6)?,
        created_at: from_ms(row.get(7)?),
        last_run_at: last_run_at.map(from_ms),
        last_success_at: row.get::<_, Option<i64>>(9)?.map(from_ms),
        last_error,
        last_error_at: row.get::<_, Option<i64>>(11)?.map(from_ms),
        n_runs: row.get::<_, i64>(12)? as u64,
        n_stored: row.get::<_, i64>(13)? as u64,
        n_duplicate: row.get::<_, i64>(14)? as u64,
        n_rejected: row.get::<_, i64>(15)? as u64,
        run_requested_at: row.get::<_, Option<i64>>(16)?.map(from_ms),
    })
}

fn by_name(conn: &Connection, name: &str) -> Result<Option<SourceInfo>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM sources WHERE name = ?1"))
        .and_then(|mut st| st.query_row([name], source_from_row).optional())
        .map_err(backend)
}

/// Insert; `Ok(false)` when the name (or token) is taken.
fn insert(conn: &Connection, s: &NewSource, now: DateTime<Utc>) -> Result<bool> {
    let settings = serde_json::Value::Object(s.settings.clone()).to_string();
    let n = conn
        .prepare_cached(
            "INSERT INTO sources (name, kind, token_hash, time_zone, settings, created_at, secret) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
        )
        .and_then(|mut st| {
            st.execute(params![
                s.name,
                s.kind.as_str(),
                s.token_hash,
                s.time_zone,
                settings,
                ms(now),
                s.secret
            ])
        })
        .map_err(backend)?;
    Ok(n == 1)
}

#[async_trait::async_trait]
impl SourcesStore for SqliteStore {
    async fn create_source(&self, source: NewSource, now: DateTime<Utc>) -> Result<SourceInfo> {
        self.write(move |conn| {
            if !insert(conn, &source, now)? {
                return Err(StoreError::Conflict(format!(
                    "a source named {:?} exists",
                    source.name
                )));
            }
            by_name(conn, &source.name)?
                .ok_or_else(|| StoreError::Backend("inserted source not found".into()))
        })
        .await
    }

    async fn ensure_source(&self, source: NewSource, now: DateTime<Utc>) -> Result<SourceInfo> {
        self.write(move |conn| {
            insert(conn, &source, now)?;
            by_name(conn, &source.name)?
                .ok_or_else(|| StoreError::Backend("inserted source not found".into()))
        })
        .await
    }

    async fn get_source(&self, name: &str) -> Result<SourceInfo> {
        let name = name.to_owned();
        self.read(move |conn| {
            by_name(conn, &name)?.ok_or_else(|| StoreError::NotFound(format!("source {name:?}")))
        })
        .await
    }

    async fn find_source_by_token(&self, token_hash: &str) -> Result<Option<SourceInfo>> {
        let hash = token_hash.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM sources WHERE token_hash = ?1 AND enabled = 1"
            ))
            .and_then(|mut st| st.query_row([&hash], source_from_row).optional())
            .map_err(backend)
        })
        .await
    }

    async fn list_sources(&self) -> Result<Vec<SourceInfo>> {
        self.read(|conn| {
            let mut st = conn
                .prepare_cached(&format!("SELECT {COLUMNS} FROM sources ORDER BY name"))
                .map_err(backend)?;
            let rows = st.query_map([], source_from_row).map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn source_secret(&self, id: i64) -> Result<Option<String>> {
        self.read(move |conn| {
            conn.prepare_cached("SELECT secret FROM sources WHERE id = ?1")
                .and_then(|mut st| st.query_row([id], |r| r.get(0)).optional())
                .map_err(backend)
                .map(Option::flatten)
        })
        .await
    }

    async fn punch_page(
        &self,
        filter: &PunchFilter,
        order: PunchOrder,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<Punch>> {
        let filter = filter.clone();
        self.read(move |conn| {
            let (where_sql, values) = punch_where(&filter);
            let order_sql = match order {
                PunchOrder::Id => "id",
                PunchOrder::IdDesc => "id DESC",
                PunchOrder::PunchTime => "punched_at, id",
                PunchOrder::PunchTimeDesc => "punched_at DESC, id DESC",
                PunchOrder::Received => "received_at, id",
                PunchOrder::ReceivedDesc => "received_at DESC, id DESC",
            };
            let sql = format!(
                "SELECT {PUNCH_COLUMNS} FROM punches{where_sql} ORDER BY {order_sql} LIMIT {limit} OFFSET {offset}"
            );
            let mut st = conn.prepare(&sql).map_err(backend)?;
            let rows = st
                .query_map(rusqlite::params_from_iter(values), punch_from_row)
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn record_source_run(&self, id: i64, run: SourceRun) -> Result<()> {
        self.write(move |conn| {
            let at = ms(run.at);
            let n = conn
                .prepare_cached(
                    "UPDATE sources SET last_run_at = ?2, \
                       last_success_at = CASE WHEN ?3 IS NULL THEN ?2 ELSE last_success_at END, \
                       last_error = ?3, \
                       last_error_at = CASE WHEN ?3 IS NULL THEN last_error_at ELSE ?2 END, \
                       cursor = COALESCE(?4, cursor), \
                       n_runs = n_runs + 1, n_stored = n_stored + ?5, n_duplicate = n_duplicate + ?6, \
                       n_rejected = n_rejected + ?7 \
                     WHERE id = ?1",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        id,
                        at,
                        run.error,
                        run.cursor,
                        run.n_stored as i64,
                        run.n_duplicate as i64,
                        run.n_rejected as i64
                    ])
                })
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("source {id}")));
            }
            Ok(())
        })
        .await
    }

    async fn request_source_run(&self, name: &str, at: DateTime<Utc>) -> Result<SourceInfo> {
        let name = name.to_owned();
        self.write(move |conn| {
            conn.prepare_cached("UPDATE sources SET run_requested_at = ?2 WHERE name = ?1")
                .and_then(|mut st| st.execute(params![name, ms(at)]))
                .map_err(backend)?;
            by_name(conn, &name)?.ok_or_else(|| StoreError::NotFound(format!("source {name:?}")))
        })
        .await
    }
}
