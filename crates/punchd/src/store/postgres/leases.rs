//! [`LeaseStore`] on PostgreSQL (schema: migrations/postgres/0008_leases.sql): how several punchd instances on one
//! database agree who drains a sink and who pulls a terminal.
//!
//! Taking a lease is one `INSERT … ON CONFLICT (name) DO UPDATE … WHERE holder = us OR expires_at <= now`: the
//! row lock of the conflicting row makes instances racing for one lease take turns, and the second one then sees
//! the first one's lease running and gets nothing. Renewing is an `UPDATE … WHERE holder = us AND expires_at >
//! now`. `now` comes from the caller, so instances must keep their clocks in step (NTP) to well within the lease
//! time; `leases::Held` counts on a lease for less than its time for that reason.

use chrono::{DateTime, Duration, Utc};
use tokio_postgres::Row;

use super::{backend, col, PgStore};
use crate::store::leases::{Lease, LeaseStore};
use crate::store::Result;

const COLUMNS: &str = "name, holder, acquired_at, expires_at, generation";

fn lease_from_row(row: &Row) -> Result<Lease> {
    Ok(Lease {
        name: col(row, 0)?,
        holder: col(row, 1)?,
        acquired_at: col(row, 2)?,
        expires_at: col(row, 3)?,
        generation: col(row, 4)?,
    })
}

#[async_trait::async_trait]
impl LeaseStore for PgStore {
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<Lease>> {
        let client = self.client().await?;
        client
            .query_opt(
                &format!(
                    "INSERT INTO leases (name, holder, acquired_at, expires_at, generation) \
                     VALUES ($1, $2, $3, $4, 1) \
                     ON CONFLICT (name) DO UPDATE SET \
                       acquired_at = CASE WHEN leases.holder = excluded.holder THEN leases.acquired_at \
                                     ELSE excluded.acquired_at END, \
                       generation = CASE WHEN leases.holder = excluded.holder THEN leases.generation \
                                    ELSE leases.generation + 1 END, \
                       holder = excluded.holder, expires_at = excluded.expires_at \
                     WHERE leases.holder = excluded.holder OR leases.expires_at <= excluded.acquired_at \
                     RETURNING {COLUMNS}"
                ),
                &[&name, &holder, &now, &(now + ttl)],
            )
            .await
            .map_err(backend)?
            .as_ref()
            .map(lease_from_row)
            .transpose()
    }

    async fn renew_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<Lease>> {
        let client = self.client().await?;
        client
            .query_opt(
                &format!(
                    "UPDATE leases SET expires_at = $4 WHERE name = $1 AND holder = $2 AND expires_at > $3 \
                     RETURNING {COLUMNS}"
                ),
                &[&name, &holder, &now, &(now + ttl)],
            )
            .await
            .map_err(backend)?
            .as_ref()
            .map(lease_from_row)
            .transpose()
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<bool> {
        let client = self.client().await?;
        // The row stays (expired at once) so the generation keeps counting across holders.
        let n = client
            .execute(
                "UPDATE leases SET expires_at = LEAST(expires_at, acquired_at) WHERE name = $1 AND holder = $2",
                &[&name, &holder],
            )
            .await
            .map_err(backend)?;
        Ok(n == 1)
    }

    async fn get_lease(&self, name: &str) -> Result<Option<Lease>> {
        let client = self.client().await?;
        client
            .query_opt(
                &format!("SELECT {COLUMNS} FROM leases WHERE name = $1"),
                &[&name],
            )
            .await
            .map_err(backend)?
            .as_ref()
            .map(lease_from_row)
            .transpose()
    }

    async fn list_leases(&self) -> Result<Vec<Lease>> {
        let client = self.client().await?;
        client
            .query(&format!("SELECT {COLUMNS} FROM leases ORDER BY name"), &[])
            .await
            .map_err(backend)?
            .iter()
            .map(lease_from_row)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    /// The leases contract on PostgreSQL, in a schema of its own.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_keeps_the_leases_contract() {
        let Some(url) = super::super::tests::test_url() else {
            return;
        };
        let store = super::PgStore::open_isolated_for_test(&url)
            .await
            .expect("open postgres");
        crate::store::contract_leases::run_all(&store).await;
    }
}
