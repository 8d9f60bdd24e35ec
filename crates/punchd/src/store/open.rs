//! Opening the configured store: SQLite for a file path, PostgreSQL for a `postgres://` URL. The one place
//! `serve` (`App::open`) and every CLI subcommand get their [`Store`] from.

use std::sync::Arc;

use anyhow::bail;

use super::postgres::PgStore;
use super::sqlite::SqliteStore;
use super::Store;
use crate::config::Config;

/// Open the store `config` names and apply pending migrations. `create`: whether a missing SQLite file may be
/// created (subcommands that only read refuse a typo'd path instead of creating an empty database); a
/// PostgreSQL database must exist (its tables are created on first open). `limits.max_database_bytes` caps an
/// SQLite file; PostgreSQL's size is the server's to limit (a warning says it is ignored).
///
/// Errors: the SQLite file is missing (and `create` is false), cannot be opened or migrated; the PostgreSQL
/// server cannot be reached, refuses the login, or a migration fails. Messages name the database (a URL
/// without its password).
pub async fn open(config: &Config, create: bool) -> anyhow::Result<Arc<dyn Store>> {
    if let Some(url) = &config.database_url {
        let store = PgStore::open(url.expose())
            .await
            .map_err(|e| anyhow::anyhow!("opening database {url}: {e}"))?;
        if config.limits.max_database_bytes > 0 {
            tracing::warn!(
                "limits.max_database_bytes applies to SQLite only and is ignored on PostgreSQL (limit the \
                 server's disk instead)"
            );
        }
        return Ok(Arc::new(store));
    }
    if !create && !config.database.exists() {
        bail!(
            "no database at {} (give --database PATH or PUNCHD_DATABASE; `punchd serve` creates one)",
            config.database.display()
        );
    }
    let store = SqliteStore::open(&config.database, config.durability)
        .map_err(|e| anyhow::anyhow!("opening database {}: {e}", config.database.display()))?;
    if config.limits.max_database_bytes > 0 {
        store
            .limit_size(config.limits.max_database_bytes)
            .await
            .map_err(|e| anyhow::anyhow!("limiting the database size: {e}"))?;
    }
    Ok(Arc::new(store))
}
