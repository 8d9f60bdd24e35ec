//! [`LeaseStore`] for SQLite (schema: migrations/sqlite/0013_leases.sql).
//!
//! SQLite serves one instance (a second `punchd serve` on the file refuses to start), so leases here only change
//! hands between runs or between [`crate::app::App`]s sharing one store in a test; the rules are the same as on
//! PostgreSQL, in the same SQL.

use chrono::{DateTime, Duration, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{backend, from_ms, ms, SqliteStore};
use crate::store::leases::{Lease, LeaseStore};
use crate::store::Result;

const COLUMNS: &str = "name, holder, acquired_at, expires_at, generation";

fn lease_from_row(row: &Row<'_>) -> rusqlite::Result<Lease> {
    Ok(Lease {
        name: row.get(0)?,
        holder: row.get(1)?,
        acquired_at: from_ms(row.get(2)?),
        expires_at: from_ms(row.get(3)?),
        generation: row.get(4)?,
    })
}

fn get_on(conn: &Connection, name: &str) -> Result<Option<Lease>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM leases WHERE name = ?1"))
        .and_then(|mut st| st.query_row([name], lease_from_row).optional())
        .map_err(backend)
}

#[async_trait::async_trait]
impl LeaseStore for SqliteStore {
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<Lease>> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.write(move |conn| {
            conn.prepare_cached(&format!(
                "INSERT INTO leases (name, holder, acquired_at, expires_at, generation) \
                 VALUES (?1, ?2, ?3, ?4, 1) \
                 ON CONFLICT (name) DO UPDATE SET \
                   acquired_at = CASE WHEN leases.holder = excluded.holder THEN leases.acquired_at \
                                 ELSE excluded.acquired_at END, \
                   generation = CASE WHEN leases.holder = excluded.holder THEN leases.generation \
                                ELSE leases.generation + 1 END, \
                   holder = excluded.holder, expires_at = excluded.expires_at \
                 WHERE leases.holder = excluded.holder OR leases.expires_at <= ?3 \
                 RETURNING {COLUMNS}"
            ))
            .and_then(|mut st| {
                st.query_row(
                    params![name, holder, ms(now), ms(now + ttl)],
                    lease_from_row,
                )
                .optional()
            })
            .map_err(backend)
        })
        .await
    }

    async fn renew_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<Lease>> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.write(move |conn| {
            conn.prepare_cached(&format!(
                "UPDATE leases SET expires_at = ?4 WHERE name = ?1 AND holder = ?2 AND expires_at > ?3 \
                 RETURNING {COLUMNS}"
            ))
            .and_then(|mut st| {
                st.query_row(
                    params![name, holder, ms(now), ms(now + ttl)],
                    lease_from_row,
                )
                .optional()
            })
            .map_err(backend)
        })
        .await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<bool> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.write(move |conn| {
            // The row stays (expired at once) so the generation keeps counting across holders.
            let n = conn
                .execute(
                    "UPDATE leases SET expires_at = MIN(expires_at, acquired_at) \
                     WHERE name = ?1 AND holder = ?2",
                    params![name, holder],
                )
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    async fn get_lease(&self, name: &str) -> Result<Option<Lease>> {
        let name = name.to_owned();
        self.read(move |conn| get_on(conn, &name)).await
    }

    async fn list_leases(&self) -> Result<Vec<Lease>> {
        self.read(|conn| {
            let mut st = conn
                .prepare_cached(&format!("SELECT {COLUMNS} FROM leases ORDER BY name"))
                .map_err(backend)?;
            let rows = st.query_map([], lease_from_row).map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }
}
