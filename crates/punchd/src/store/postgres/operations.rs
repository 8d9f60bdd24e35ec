//! [`OperationsStore`] on PostgreSQL: removing devices, cancelling commands, listing the journal (schema:
//! migrations/postgres/0002_operations_sources_outbox.sql). The same rules as `sqlite/operations.rs`.

use chrono::{DateTime, Utc};

use super::{
    backend, col, commit, get_command_on, narrow, next_revision, param_refs, sn_from, Params,
    PgStore,
};
use crate::domain::{Command, DeviceSn, Source};
use crate::store::operations::{CancelError, JournalFilter, JournalSummary, OperationsStore};
use crate::store::{LineIssue, Result, StoreError};

#[async_trait::async_trait]
impl OperationsStore for PgStore {
    async fn delete_device(&self, sn: &DeviceSn, now: DateTime<Utc>) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let n = tx
            .execute("DELETE FROM devices WHERE sn = $1", &[&sn.as_str()])
            .await
            .map_err(backend)?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("device {sn}")));
        }
        // The removal takes a device revision like any settings change, so every instance reloading by revision
        // sees it, in order.
        let revision = next_revision(&tx).await?;
        tx.execute("DELETE FROM stamps WHERE device_sn = $1", &[&sn.as_str()])
            .await
            .map_err(backend)?;
        tx.execute(
            "UPDATE commands SET status = 'cancelled', finished_at = $2, \
             message = 'cancelled: the device was removed' WHERE device_sn = $1 AND status = 'queued'",
            &[&sn.as_str(), &now],
        )
        .await
        .map_err(backend)?;
        tx.execute(
            "INSERT INTO device_deletions (sn, revision, deleted_at) VALUES ($1, $2, $3)",
            &[&sn.as_str(), &revision, &now],
        )
        .await
        .map_err(backend)?;
        commit(tx).await
    }

    async fn devices_deleted_since(&self, revision: i64) -> Result<(Vec<DeviceSn>, i64)> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT sn, revision FROM device_deletions WHERE revision > $1 ORDER BY revision",
                &[&revision],
            )
            .await
            .map_err(backend)?;
        let mut max = revision;
        let mut sns = Vec::with_capacity(rows.len());
        for row in &rows {
            sns.push(sn_from(col(row, 0)?)?);
            max = max.max(col(row, 1)?);
        }
        Ok((sns, max))
    }

    async fn cancel_command(
        &self,
        id: i64,
        by: &str,
        now: DateTime<Utc>,
    ) -> std::result::Result<Command, CancelError> {
        let client = self.client().await?;
        // One statement: a command another instance marks sent at the same moment is either cancelled first
        // (and then never sent) or sent first (and then refused here), never both.
        let cancelled = client
            .execute(
                "UPDATE commands SET status = 'cancelled', finished_at = $2, message = $3 \
                 WHERE id = $1 AND status = 'queued'",
                &[&id, &now, &format!("cancelled by {by}")],
            )
            .await
            .map_err(backend)?;
        let command = get_command_on(&**client, id).await?;
        if cancelled == 0 {
            return Err(CancelError::NotQueued(Box::new(command)));
        }
        Ok(command)
    }

    async fn list_journal(&self, filter: &JournalFilter) -> Result<Vec<JournalSummary>> {
        let mut params: Params = Vec::new();
        let mut clauses: Vec<String> = Vec::new();
        if let Some(sn) = &filter.device_sn {
            params.push(Box::new(sn.as_str().to_owned()));
            clauses.push(format!("device_sn = ${}", params.len()));
        }
        if let Some(kind) = &filter.kind {
            params.push(Box::new(kind.clone()));
            clauses.push(format!("kind = ${}", params.len()));
        }
        match filter.has_errors {
            Some(true) => clauses.push("errors IS NOT NULL".into()),
            Some(false) => clauses.push("errors IS NULL".into()),
            None => {}
        }
        if let Some(from) = filter.from {
            params.push(Box::new(from));
            clauses.push(format!("received_at >= ${}", params.len()));
        }
        if let Some(to) = filter.to {
            params.push(Box::new(to));
            clauses.push(format!("received_at < ${}", params.len()));
        }
        if let Some(after) = filter.after_id {
            params.push(Box::new(after));
            clauses.push(format!("id > ${}", params.len()));
        }
        let where_sql = if clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", clauses.join(" AND "))
        };
        let limit = if filter.limit == 0 {
            String::new()
        } else {
            format!(" LIMIT {}", filter.limit)
        };
        let sql = format!(
            "SELECT id, received_at, device_sn, source, kind, request, remote_addr, octet_length(body)::int8, \
             n_records, n_stored, n_duplicate, errors FROM journal{where_sql} ORDER BY id{limit}"
        );
        let client = self.client().await?;
        let rows = client
            .query(&sql, &param_refs(&params))
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                let sn: Option<String> = col(r, 2)?;
                let source: String = col(r, 3)?;
                let errors: Option<serde_json::Value> = col(r, 11)?;
                Ok(JournalSummary {
                    id: col(r, 0)?,
                    received_at: col(r, 1)?,
                    device_sn: sn.map(sn_from).transpose()?,
                    source: Source::parse(&source)
                        .ok_or_else(|| StoreError::Backend(format!("stored source {source:?}")))?,
                    kind: col(r, 4)?,
                    request: col(r, 5)?,
                    remote_addr: col(r, 6)?,
                    body_len: narrow(col(r, 7)?),
                    n_records: narrow(col(r, 8)?),
                    n_stored: narrow(col(r, 9)?),
                    n_duplicate: narrow(col(r, 10)?),
                    errors: errors
                        .and_then(|e| serde_json::from_value::<Vec<LineIssue>>(e).ok())
                        .unwrap_or_default(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    /// The operations contract on PostgreSQL, in a schema of its own.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_keeps_the_operations_contract() {
        let Some(url) = super::super::tests::test_url() else {
            return;
        };
        let store = super::PgStore::open_isolated_for_test(&url)
            .await
            .expect("open postgres");
        crate::store::contract_operations::run_all(&store).await;
    }
}
