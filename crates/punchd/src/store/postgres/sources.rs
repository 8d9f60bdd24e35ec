//! [`SourcesStore`] on PostgreSQL: the `sources` table (migrations/postgres/0002_operations_sources_outbox.sql).
//! The same rules as `sqlite/sources.rs`.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;

use super::{
    backend, col, json_map, narrow, param_refs, punch_from_row, punch_where, Params, PgStore,
    PUNCH_COLUMNS,
};
use crate::domain::Punch;
use crate::store::sources::{
    NewSource, PunchOrder, SourceInfo, SourceKind, SourceRun, SourcesStore,
};
use crate::store::{PunchFilter, Result, StoreError};

const COLUMNS: &str =
    "id, name, kind, time_zone, settings, enabled, cursor, created_at, last_run_at, \
     last_success_at, last_error, last_error_at, n_runs, n_stored, n_duplicate, n_rejected, run_requested_at";

fn source_from_row(row: &Row) -> Result<SourceInfo> {
    let kind: String = col(row, 2)?;
    let enabled: bool = col(row, 5)?;
    let last_run_at: Option<DateTime<Utc>> = col(row, 8)?;
    let last_error: Option<String> = col(row, 10)?;
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
        id: col(row, 0)?,
        name: col(row, 1)?,
        kind: SourceKind::parse(&kind).unwrap_or(SourceKind::Import),
        time_zone: col(row, 3)?,
        settings: json_map(col(row, 4)?),
        enabled,
        state: state.to_owned(),
        cursor: col(row, 6)?,
        created_at: col(row, 7)?,
        last_run_at,
        last_success_at: col(row, 9)?,
        last_error,
        last_error_at: col(row, 11)?,
        n_runs: narrow(col(row, 12)?),
        n_stored: narrow(col(row, 13)?),
        n_duplicate: narrow(col(row, 14)?),
        n_rejected: narrow(col(row, 15)?),
        run_requested_at: col(row, 16)?,
    })
}

impl PgStore {
    /// Insert a source; `Ok(false)` when its name (or token) is taken.
    async fn insert_source(&self, s: &NewSource, now: DateTime<Utc>) -> Result<bool> {
        let client = self.client().await?;
        let settings = serde_json::Value::Object(s.settings.clone());
        let n = client
            .execute(
                "INSERT INTO sources (name, kind, token_hash, time_zone, settings, created_at, secret) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                &[
                    &s.name,
                    &s.kind.as_str(),
                    &s.token_hash,
                    &s.time_zone,
                    &settings,
                    &now,
                    &s.secret,
                ],
            )
            .await
            .map_err(backend)?;
        Ok(n == 1)
    }

    async fn source_by_name(&self, name: &str) -> Result<Option<SourceInfo>> {
        let client = self.client().await?;
        client
            .query_opt(
                &format!("SELECT {COLUMNS} FROM sources WHERE name = $1"),
                &[&name],
            )
            .await
            .map_err(backend)?
            .as_ref()
            .map(source_from_row)
            .transpose()
    }
}

#[async_trait::async_trait]
impl SourcesStore for PgStore {
    async fn create_source(&self, source: NewSource, now: DateTime<Utc>) -> Result<SourceInfo> {
        if !self.insert_source(&source, now).await? {
            return Err(StoreError::Conflict(format!(
                "a source named {:?} exists",
                source.name
            )));
        }
        self.source_by_name(&source.name)
            .await?
            .ok_or_else(|| StoreError::Backend("inserted source not found".into()))
    }

    async fn ensure_source(&self, source: NewSource, now: DateTime<Utc>) -> Result<SourceInfo> {
        self.insert_source(&source, now).await?;
        self.source_by_name(&source.name)
            .await?
            .ok_or_else(|| StoreError::Backend("inserted source not found".into()))
    }

    async fn get_source(&self, name: &str) -> Result<SourceInfo> {
        self.source_by_name(name)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("source {name:?}")))
    }

    async fn find_source_by_token(&self, token_hash: &str) -> Result<Option<SourceInfo>> {
        let client = self.client().await?;
        client
            .query_opt(
                &format!("SELECT {COLUMNS} FROM sources WHERE token_hash = $1 AND enabled"),
                &[&token_hash],
            )
            .await
            .map_err(backend)?
            .as_ref()
            .map(source_from_row)
            .transpose()
    }

    async fn list_sources(&self) -> Result<Vec<SourceInfo>> {
        let client = self.client().await?;
        client
            .query(&format!("SELECT {COLUMNS} FROM sources ORDER BY name"), &[])
            .await
            .map_err(backend)?
            .iter()
            .map(source_from_row)
            .collect()
    }

    async fn source_secret(&self, id: i64) -> Result<Option<String>> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT secret FROM sources WHERE id = $1", &[&id])
            .await
            .map_err(backend)?;
        match row {
            Some(row) => col(&row, 0),
            None => Ok(None),
        }
    }

    async fn punch_page(
        &self,
        filter: &PunchFilter,
        order: PunchOrder,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<Punch>> {
        let mut params: Params = Vec::new();
        let where_sql = punch_where(filter, &mut params);
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
        let client = self.client().await?;
        client
            .query(&sql, &param_refs(&params))
            .await
            .map_err(backend)?
            .iter()
            .map(punch_from_row)
            .collect()
    }

    async fn record_source_run(&self, id: i64, run: SourceRun) -> Result<()> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE sources SET last_run_at = $2, \
                   last_success_at = CASE WHEN $3::text IS NULL THEN $2 ELSE last_success_at END, \
                   last_error = $3, \
                   last_error_at = CASE WHEN $3::text IS NULL THEN last_error_at ELSE $2 END, \
                   cursor = COALESCE($4, cursor), \
                   n_runs = n_runs + 1, n_stored = n_stored + $5, n_duplicate = n_duplicate + $6, \
                   n_rejected = n_rejected + $7 \
                 WHERE id = $1",
                &[
                    &id,
                    &run.at,
                    &run.error,
                    &run.cursor,
                    &(run.n_stored as i64),
                    &(run.n_duplicate as i64),
                    &(run.n_rejected as i64),
                ],
            )
            .await
            .map_err(backend)?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("source {id}")));
        }
        Ok(())
    }

    async fn request_source_run(&self, name: &str, at: DateTime<Utc>) -> Result<SourceInfo> {
        let client = self.client().await?;
        client
            .query_opt(
                &format!(
                    "UPDATE sources SET run_requested_at = $2 WHERE name = $1 RETURNING {COLUMNS}"
                ),
                &[&name, &at],
            )
            .await
            .map_err(backend)?
            .as_ref()
            .map(source_from_row)
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("source {name:?}")))
    }
}

#[cfg(test)]
mod tests {
    /// The sources contract on PostgreSQL, in a schema of its own.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_keeps_the_sources_contract() {
        let Some(url) = super::super::tests::test_url() else {
            return;
        };
        let store = super::PgStore::open_isolated_for_test(&url)
            .await
            .expect("open postgres");
        crate::store::contract_sources::run_all(&store).await;
    }
}
