//! PostgreSQL store: the same [`Store`] contract as [`super::sqlite`], for several punchd instances on one database.
//!
//! A [`PgStore`] is a pool of connections (deadpool over tokio-postgres); every write is one transaction that is
//! committed before the call returns `Ok` (PostgreSQL's default `synchronous_commit = on`, so `Ok` is durable).
//! Uploads of punches that arrive at once share one statement and its commit (`postgres/punch_groups.rs`); text
//! is stored with NUL characters replaced, which PostgreSQL cannot hold (`postgres/nul.rs`).
//! Several instances may run against one database at once: migrations run under an advisory lock, device
//! revisions are handed out in commit order, and commands are marked sent with `FOR UPDATE SKIP LOCKED`, so a
//! command reaches its terminal once whichever instance the terminal polls.
//!
//! Layout: this file holds the pool, migrations, the shared helpers (`backend`, `commit`, row readers) and the
//! core [`Store`] methods; `postgres/<area>.rs` holds each area trait (hardening, push, operations, sources,
//! outbox, attendance), like `sqlite/<area>.rs`. Schema: `migrations/postgres/NNNN_*.sql`, listed in
//! [`MIGRATIONS`]. Depends on `domain` and the store types only.

mod agents;
mod attendance;
mod delivery;
mod hardening;
mod leases;
pub mod notify;
mod nul;
mod operations;
mod outbox;
mod punch_groups;
mod push;
mod sources;
pub mod tls;
mod ui_accounts;

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, NaiveDateTime, Timelike, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::Row;

use crate::store::NewPunch;

use super::{
    command_kind_from_json, Batch, BatchOutcome, CommandCompletion, CommandFilter, DeviceContact,
    DevicePatch, DeviceUser, JournalEntry, LineIssue, PunchFilter, RawEntry, Result, SeenUpdate,
    Store, StoreError, Template, TimeBound, TokenInfo,
};
use crate::domain::{
    Approval, Command, CommandKind, CommandStatus, Device, DeviceSn, NewCommand, Pin, Punch, Scope,
    Source, Transport,
};

/// One schema migration: its number, its file name (without `.sql`) and its SQL (several statements).
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The number, from the file name; applied in increasing order, each once.
    pub version: i64,
    /// The file name without `.sql` (recorded in `punchd_migrations` for people reading the table).
    pub name: &'static str,
    /// The statements, run in one transaction.
    pub sql: &'static str,
}

/// The PostgreSQL schema, in order; `punchd_migrations` records which have run. Numbers are owned by area:
/// 0001 core (this file), 0002 operations/sources/outbox, 0003 attendance, 0004 agent, 0005 ui, 0006–0007
/// gaps. Append a line per file.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_core",
        sql: include_str!("../../migrations/postgres/0001_core.sql"),
    },
    Migration {
        version: 2,
        name: "0002_operations_sources_outbox",
        sql: include_str!("../../migrations/postgres/0002_operations_sources_outbox.sql"),
    },
    Migration {
        version: 3,
        name: "0003_attendance",
        sql: include_str!("../../migrations/postgres/0003_attendance.sql"),
    },
    Migration {
        version: 4,
        name: "0004_agents",
        sql: include_str!("../../migrations/postgres/0004_agents.sql"),
    },
    Migration {
        version: 5,
        name: "0005_ui_accounts",
        sql: include_str!("../../migrations/postgres/0005_ui_accounts.sql"),
    },
    Migration {
        version: 7,
        name: "0007_delivery",
        sql: include_str!("../../migrations/postgres/0007_delivery.sql"),
    },
    Migration {
        version: 8,
        name: "0008_leases",
        sql: include_str!("../../migrations/postgres/0008_leases.sql"),
    },
    Migration {
        version: 9,
        name: "0009_delivery_gaps",
        sql: include_str!("../../migrations/postgres/0009_delivery_gaps.sql"),
    },
    Migration {
        version: 10,
        name: "0010_agent_batches",
        sql: include_str!("../../migrations/postgres/0010_agent_batches.sql"),
    },
    Migration {
        version: 11,
        name: "0011_source_run_requests",
        sql: include_str!("../../migrations/postgres/0011_source_run_requests.sql"),
    },
    Migration {
        version: 12,
        name: "0012_review_pages",
        sql: include_str!("../../migrations/postgres/0012_review_pages.sql"),
    },
    Migration {
        version: 13,
        name: "0013_pin_summary",
        sql: include_str!("../../migrations/postgres/0013_pin_summary.sql"),
    },
    Migration {
        version: 14,
        name: "0014_journal_lz4",
        sql: include_str!("../../migrations/postgres/0014_journal_lz4.sql"),
    },
    Migration {
        version: 15,
        name: "0015_outbox_backfilled",
        sql: include_str!("../../migrations/postgres/0015_outbox_backfilled.sql"),
    },
];

/// The advisory lock key migrations run under (any constant; "punchd" in ASCII): several instances starting at
/// once apply each migration once, the others wait and then find it done.
const MIGRATION_LOCK: i64 = 0x7075_6e63_6864;
/// The advisory lock key device revisions are handed out under, held to the end of the transaction: revisions
/// then become visible in the order they were taken, so an instance reloading "revision > N" misses none.
pub(super) const REVISION_LOCK: i64 = 0x7075_6e63_6865;

/// Connections per instance (the pool's size).
const POOL_SIZE: usize = 16;

/// The PostgreSQL store. Cheap to clone: clones share the pool.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    /// The group commit of punch batches ([`punch_groups`]), shared by the clones.
    groups: std::sync::Arc<punch_groups::PunchGroups>,
    /// The schema every connection works in (`search_path`), when not the server's default: isolated test
    /// schemas, or `?options=-csearch_path%3D…` in the URL.
    schema: Option<String>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// Map a driver error to the store's terms: a unique violation is a `Conflict`, everything else `Backend`.
/// A storage failure (disk full, I/O error, out of resources, the server gone) also sets the store's fault
/// until the next commit succeeds ([`super::HardeningStore::storage_fault`]). For every area file.
/// An error and its causes, `outer: inner: innermost` (tokio-postgres prints only the outer one: "error performing
/// TLS handshake", without rustls' reason, such as a certificate not valid for the host name).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !message.ends_with(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = c.source();
    }
    message
}

pub(super) fn backend(e: tokio_postgres::Error) -> StoreError {
    use tokio_postgres::error::SqlState;
    let message = match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => with_causes(&e),
    };
    match e.code() {
        Some(code) if *code == SqlState::UNIQUE_VIOLATION => StoreError::Conflict(message),
        Some(code) => {
            // Class 53: insufficient resources (disk full, out of memory); class 58: system error (I/O);
            // 57P01–57P03: the server shuts down or cannot be connected to.
            let c = code.code();
            if c.starts_with("53") || c.starts_with("58") || c.starts_with("57P") {
                hardening::note(&message);
            }
            StoreError::Backend(message)
        }
        None => {
            if e.is_closed() {
                hardening::note(&message);
            }
            StoreError::Backend(message)
        }
    }
}

/// A column of a row, converted (a type mismatch is a `Backend` error, never a panic).
pub(super) fn col<'a, T: FromSql<'a>>(row: &'a Row, idx: usize) -> Result<T> {
    row.try_get(idx).map_err(backend)
}

/// Commit `tx`; a committed write also clears a storage fault.
pub(super) async fn commit(tx: deadpool_postgres::Transaction<'_>) -> Result<()> {
    tx.commit().await.map_err(backend)?;
    hardening::clear();
    Ok(())
}

/// A value the domain keeps unsigned, as the signed column type holds it.
pub(super) fn wide(v: u32) -> i64 {
    i64::from(v)
}

/// A stored number back to the domain's unsigned type (out of range: 0, which no writer produces).
pub(super) fn narrow<T: TryFrom<i64> + Default>(v: i64) -> T {
    T::try_from(v).unwrap_or_default()
}

/// A terminal-local time as stored: whole seconds (terminals have no finer clock; the same rule as SQLite's text).
pub(super) fn whole_seconds(t: NaiveDateTime) -> NaiveDateTime {
    t.with_nanosecond(0).unwrap_or(t)
}

pub(super) fn sn_from(s: String) -> Result<DeviceSn> {
    DeviceSn::parse(&s).map_err(|e| StoreError::Backend(format!("stored SN {s:?}: {e}")))
}

pub(super) fn json_map(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match v {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

/// The URL without its password, for messages and logs.
pub fn redact_url(url: &str) -> String {
    // postgres://user:secret@host/db → postgres://user:***@host/db
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// A connection of its own, outside the pool (schema setup, the live-event relay's LISTEN): `parsed`'s settings
/// and TLS, a 10 s connect timeout when the URL sets none. The returned connection must be polled (spawned).
///
/// Errors: the CA file cannot be read, the server cannot be reached, refuses the login or fails the TLS check.
pub(crate) async fn connect_one(
    parsed: &tls::ParsedUrl,
) -> Result<(
    tokio_postgres::Client,
    tokio_postgres::Connection<
        tokio_postgres::Socket,
        <tokio_postgres_rustls::MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<
            tokio_postgres::Socket,
        >>::Stream,
    >,
)> {
    let mut config = parsed.config.clone();
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(10));
    }
    config
        .connect(tls::connector(&parsed.tls).map_err(StoreError::Backend)?)
        .await
        .map_err(backend)
}

/// Whether a `--database` value names a PostgreSQL database (a `postgres://` or `postgresql://` URL) rather
/// than an SQLite file.
pub fn is_postgres_url(database: &str) -> bool {
    database.starts_with("postgres://") || database.starts_with("postgresql://")
}

impl PgStore {
    /// Connect to the database at `url` (`postgres://user[:password]@host[:port]/db[?options]`), apply pending
    /// migrations under an advisory lock, and keep a pool of 16 connections. TLS as the URL's `sslmode` and
    /// `sslrootcert` say, read as libpq reads them ([`tls`]: `prefer` when not given).
    ///
    /// Errors: the URL cannot be read (or names a CA file that cannot be), the server cannot be reached, refuses
    /// the login or fails the TLS check, or a migration fails.
    pub async fn open(url: &str) -> Result<PgStore> {
        let parsed = tls::parse_url(url).map_err(StoreError::Backend)?;
        PgStore::open_with(parsed, None).await
    }

    /// Like [`PgStore::open`], in a new schema of its own (`punchd_test_<pid>_<n>`, made the `search_path` of
    /// every connection), so tests running at once on one database never see each other's rows. The schema is
    /// left behind for inspection until a later test run finds its process gone and drops it; it holds only test
    /// data.
    ///
    /// Errors: as [`PgStore::open`], or the schema cannot be created.
    pub async fn open_isolated_for_test(url: &str) -> Result<PgStore> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = Utc::now().timestamp_subsec_nanos();
        let schema = format!(
            "punchd_test_{}_{}_{}",
            std::process::id(),
            nanos,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let parsed = tls::parse_url(url).map_err(StoreError::Backend)?;
        let (client, connection) = connect_one(&parsed).await?;
        let task = tokio::spawn(connection);
        // Schemas of test processes that have ended are dropped, so a machine that runs the tests every day does
        // not collect them without bound (those of running processes, this one included, are kept).
        let stale: Vec<String> = client
            .query(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'punchd\\_test\\_%'",
                &[],
            )
            .await
            .map_err(backend)?
            .iter()
            .filter_map(|row| row.try_get::<_, String>(0).ok())
            .filter(|name| {
                name.split('_')
                    .nth(2)
                    .and_then(|pid| pid.parse::<u32>().ok())
                    .is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
            })
            .collect();
        for name in stale {
            // Another test process may drop the same schema at the same moment: its error is not ours.
            let _ = client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                .await;
        }
        client
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .map_err(backend)?;
        drop(client);
        let _ = task.await;
        PgStore::open_with(parsed, Some(schema)).await
    }

    async fn open_with(parsed: tls::ParsedUrl, schema: Option<String>) -> Result<PgStore> {
        let tls::ParsedUrl { mut config, tls } = parsed;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("punchd");
        }
        if let Some(schema) = &schema {
            let options = config.get_options().unwrap_or_default().to_owned();
            config.options(format!("{options} -c search_path={schema}").trim());
        }
        let manager = Manager::from_config(
            config,
            tls::connector(&tls).map_err(StoreError::Backend)?,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|e| StoreError::Backend(format!("building the connection pool: {e}")))?;
        let store = PgStore {
            pool,
            groups: std::sync::Arc::new(punch_groups::PunchGroups::new()),
            schema,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Apply every migration not yet recorded, in one transaction under [`MIGRATION_LOCK`].
    async fn migrate(&self) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(backend)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS punchd_migrations (
                 version    bigint PRIMARY KEY,
                 name       text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await
        .map_err(backend)?;
        let done: Vec<i64> = tx
            .query("SELECT version FROM punchd_migrations", &[])
            .await
            .map_err(backend)?
            .iter()
            .map(|r| col(r, 0))
            .collect::<Result<_>>()?;
        for m in MIGRATIONS.iter().filter(|m| !done.contains(&m.version)) {
            tx.batch_execute(m.sql).await.map_err(|e| {
                StoreError::Backend(format!("migration {}: {}", m.name, backend(e)))
            })?;
            tx.execute(
                "INSERT INTO punchd_migrations (version, name) VALUES ($1, $2)",
                &[&m.version, &m.name],
            )
            .await
            .map_err(backend)?;
        }
        commit(tx).await
    }

    /// The schema this store works in, when it is not the server's default (isolated tests).
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// A pooled connection. For every area file.
    ///
    /// Errors: no connection could be made (the server is down or refuses the login).
    pub(super) async fn client(&self) -> Result<Object> {
        self.pool.get().await.map_err(|e| {
            let message = format!("no database connection: {}", with_causes(&e));
            hardening::note(&message);
            StoreError::Backend(message)
        })
    }
}

const DEVICE_COLUMNS: &str = "sn, approval, transport, alias, site, time_zone, address, comm_key, \
    pull_interval_secs, clear_after_pull, first_seen, last_seen, last_ip, firmware, push_version, language, \
    device_type, poll_delay_secs, info, last_error, clock_drift_secs, safe_clear";

pub(super) fn device_from_row(row: &Row) -> Result<Device> {
    let approval: String = col(row, 1)?;
    let transport: String = col(row, 2)?;
    Ok(Device {
        sn: sn_from(col(row, 0)?)?,
        approval: Approval::parse(&approval)
            .ok_or_else(|| StoreError::Backend(format!("stored approval {approval:?}")))?,
        transport: Transport::parse(&transport)
            .ok_or_else(|| StoreError::Backend(format!("stored transport {transport:?}")))?,
        alias: col(row, 3)?,
        site: col(row, 4)?,
        time_zone: col(row, 5)?,
        address: col(row, 6)?,
        comm_key: col::<Option<i64>>(row, 7)?.map(narrow),
        pull_interval_secs: col::<Option<i64>>(row, 8)?.map(narrow),
        clear_after_pull: col(row, 9)?,
        first_seen: col(row, 10)?,
        last_seen: col(row, 11)?,
        last_ip: col(row, 12)?,
        firmware: col(row, 13)?,
        push_version: col(row, 14)?,
        language: col(row, 15)?,
        device_type: col(row, 16)?,
        poll_delay_secs: narrow(col(row, 17)?),
        info: json_map(col(row, 18)?),
        last_error: col(row, 19)?,
        clock_drift_secs: col(row, 20)?,
        safe_clear: col(row, 21)?,
    })
}

async fn get_device_on(client: &impl tokio_postgres::GenericClient, sn: &str) -> Result<Device> {
    let row = client
        .query_opt(
            &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE sn = $1"),
            &[&sn],
        )
        .await
        .map_err(backend)?
        .ok_or_else(|| StoreError::NotFound(format!("device {sn}")))?;
    device_from_row(&row)
}

/// The next device revision, taken under [`REVISION_LOCK`] (held until the transaction ends), so revisions
/// become visible in increasing order. Every change of a device's settings and every removal takes one.
pub(super) async fn next_revision(tx: &deadpool_postgres::Transaction<'_>) -> Result<i64> {
    let row = tx
        .query_one(
            "SELECT pg_advisory_xact_lock($1)::text, nextval('device_revision')",
            &[&REVISION_LOCK],
        )
        .await
        .map_err(backend)?;
    col(&row, 1)
}

/// The columns [`punch_from_row`] reads, in order.
pub(super) const PUNCH_COLUMNS: &str =
    "id, device_sn, pin, punched_at, punch_state, verify_mode, work_code, extra, \
    time_zone, punched_at_utc, received_at, source, journal_id";

/// A punch from a row of [`PUNCH_COLUMNS`].
pub(super) fn punch_from_row(row: &Row) -> Result<Punch> {
    let state: i32 = col(row, 4)?;
    let extra: Option<serde_json::Value> = col(row, 7)?;
    let source: String = col(row, 11)?;
    Ok(Punch {
        id: col(row, 0)?,
        device_sn: sn_from(col(row, 1)?)?,
        pin: Pin(col(row, 2)?),
        punched_at: col(row, 3)?,
        punch_state: u16::try_from(state).ok(),
        verify_mode: col::<Option<i32>>(row, 5)?.and_then(|v| u16::try_from(v).ok()),
        work_code: col(row, 6)?,
        extra: extra
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default(),
        time_zone: col(row, 8)?,
        punched_at_utc: col(row, 9)?,
        received_at: col(row, 10)?,
        source: Source::parse(&source)
            .ok_or_else(|| StoreError::Backend(format!("stored source {source:?}")))?,
        journal_id: col(row, 12)?,
    })
}

/// The columns [`command_from_row`] reads, in order.
pub(super) const COMMAND_COLUMNS: &str =
    "id, device_sn, kind::text, wire, status, attempts, requested_by, created_at, sent_at, \
    finished_at, return_code, message, result";

/// A command from a row of [`COMMAND_COLUMNS`].
pub(super) fn command_from_row(row: &Row) -> Result<Command> {
    let kind: String = col(row, 2)?;
    let status: String = col(row, 4)?;
    Ok(Command {
        id: col(row, 0)?,
        device_sn: sn_from(col(row, 1)?)?,
        kind: command_kind_from_json(&kind)?,
        wire: col(row, 3)?,
        status: CommandStatus::parse(&status)
            .ok_or_else(|| StoreError::Backend(format!("stored command status {status:?}")))?,
        attempts: narrow(col(row, 5)?),
        requested_by: col(row, 6)?,
        created_at: col(row, 7)?,
        sent_at: col(row, 8)?,
        finished_at: col(row, 9)?,
        return_code: col(row, 10)?,
        message: col(row, 11)?,
        result: col(row, 12)?,
    })
}

/// One command, or `NotFound`.
pub(super) async fn get_command_on(
    client: &impl tokio_postgres::GenericClient,
    id: i64,
) -> Result<Command> {
    let row = client
        .query_opt(
            &format!("SELECT {COMMAND_COLUMNS} FROM commands WHERE id = $1"),
            &[&id],
        )
        .await
        .map_err(backend)?
        .ok_or_else(|| StoreError::NotFound(format!("command {id}")))?;
    command_from_row(&row)
}

const TOKEN_COLUMNS: &str = "id, name, created_at, revoked_at, scope";

fn token_from_row(row: &Row) -> Result<TokenInfo> {
    let scope: String = col(row, 4)?;
    Ok(TokenInfo {
        id: col(row, 0)?,
        name: col(row, 1)?,
        scope: Scope::parse(&scope)
            .ok_or_else(|| StoreError::Backend(format!("stored token scope {scope:?}")))?,
        created_at: col(row, 2)?,
        revoked_at: col(row, 3)?,
    })
}

fn errors_json(errors: &[LineIssue]) -> Option<serde_json::Value> {
    if errors.is_empty() {
        None
    } else {
        serde_json::to_value(errors).ok()
    }
}

/// Insert a journal row with a known id (or the next of `journal_id_seq` when `None`) and its counts (records,
/// newly stored, duplicates). Returns the id.
pub(super) async fn insert_journal_on(
    tx: &deadpool_postgres::Transaction<'_>,
    raw: &RawEntry,
    id: Option<i64>,
    counts: (usize, usize, usize),
) -> Result<i64> {
    let st = tx
        .prepare_cached(
            "INSERT INTO journal (id, received_at, device_sn, source, kind, request, remote_addr, body, errors, \
             n_records, n_stored, n_duplicate) \
             VALUES (COALESCE($1, nextval('journal_id_seq')), $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             RETURNING id",
        )
        .await
        .map_err(backend)?;
    let row = tx
        .query_one(
            &st,
            &[
                &id,
                &raw.received_at,
                &raw.device_sn.as_ref().map(DeviceSn::as_str),
                &raw.source.as_str(),
                &raw.kind,
                &raw.request,
                &raw.remote_addr,
                &raw.body,
                &errors_json(&raw.errors),
                &(counts.0 as i64),
                &(counts.1 as i64),
                &(counts.2 as i64),
            ],
        )
        .await
        .map_err(backend)?;
    col(&row, 0)
}

/// Keep the last of each key (a batch that names one user twice stores the later record, as row by row would):
/// PostgreSQL refuses to update one row twice in one `INSERT … ON CONFLICT DO UPDATE`.
fn last_per_key<T, K: Eq + std::hash::Hash>(items: &[T], key: impl Fn(&T) -> K) -> Vec<&T> {
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<&T> = items
        .iter()
        .rev()
        .filter(|item| seen.insert(key(item)))
        .collect();
    out.reverse();
    out
}

/// The first part of the statement that stores a batch's punches: `j` takes the journal id, `ins` inserts the
/// punches from the arrays `$1`…`$10` ([`PunchColumns`]) with the receive time `$11`, skipping re-sent ones by the
/// identity index, and returns the ids newly stored (perf-limits.md: one statement per batch, arrays unnested,
/// `ON CONFLICT DO NOTHING`). Callers add their own parts and the final `SELECT`.
const INSERT_PUNCHES: &str = "WITH j AS (SELECT nextval('journal_id_seq') AS id), \
     ins AS (INSERT INTO punches (device_sn, pin, punched_at, punch_state, verify_mode, work_code, extra, \
         time_zone, punched_at_utc, received_at, source, journal_id) \
       SELECT u.device_sn, u.pin, u.punched_at, u.punch_state, u.verify_mode, u.work_code, u.extra, \
         u.time_zone, u.punched_at_utc, $11::timestamptz, u.source, (SELECT id FROM j) \
       FROM unnest($1::text[], $2::text[], $3::timestamp[], $4::int4[], $5::int4[], $6::text[], \
         $7::jsonb[], $8::text[], $9::timestamptz[], $10::text[]) WITH ORDINALITY \
         AS u(device_sn, pin, punched_at, punch_state, verify_mode, work_code, extra, time_zone, \
         punched_at_utc, source, ord) \
       ORDER BY u.ord \
       ON CONFLICT DO NOTHING RETURNING id)";

/// A batch's punches as the column arrays `$1`…`$10` of [`INSERT_PUNCHES`].
struct PunchColumns<'a> {
    sns: Vec<&'a str>,
    pins: Vec<&'a str>,
    locals: Vec<NaiveDateTime>,
    states: Vec<i32>,
    verifies: Vec<Option<i32>>,
    work_codes: Vec<Option<&'a str>>,
    extras: Vec<Option<serde_json::Value>>,
    zones: Vec<&'a str>,
    utcs: Vec<DateTime<Utc>>,
    sources: Vec<&'static str>,
}

impl<'a> PunchColumns<'a> {
    fn of(punches: &'a [NewPunch]) -> PunchColumns<'a> {
        PunchColumns::of_all(punches.iter(), punches.len())
    }

    /// The columns of `punches` (`n` of them, for the capacity), in one pass.
    fn of_all(punches: impl Iterator<Item = &'a NewPunch>, n: usize) -> PunchColumns<'a> {
        let mut c = PunchColumns {
            sns: Vec::with_capacity(n),
            pins: Vec::with_capacity(n),
            locals: Vec::with_capacity(n),
            states: Vec::with_capacity(n),
            verifies: Vec::with_capacity(n),
            work_codes: Vec::with_capacity(n),
            extras: Vec::with_capacity(n),
            zones: Vec::with_capacity(n),
            utcs: Vec::with_capacity(n),
            sources: Vec::with_capacity(n),
        };
        for p in punches {
            c.sns.push(p.device_sn.as_str());
            c.pins.push(p.pin.as_str());
            c.locals.push(whole_seconds(p.punched_at));
            c.states
                .push(p.punch_state.map_or(-1, |s| i32::from(s.code())));
            c.verifies.push(p.verify_mode.map(|v| i32::from(v.0)));
            c.work_codes.push(p.work_code.as_deref());
            c.extras.push(
                (!p.extra.is_empty())
                    .then(|| serde_json::to_value(&p.extra).ok())
                    .flatten(),
            );
            c.zones.push(p.time_zone.as_str());
            c.utcs.push(p.punched_at_utc);
            c.sources.push(p.source.as_str());
        }
        c
    }

    /// `$1`…`$11`: the arrays and the receive time.
    fn params<'b>(&'b self, received: &'b DateTime<Utc>) -> [&'b (dyn ToSql + Sync); 11] {
        [
            &self.sns,
            &self.pins,
            &self.locals,
            &self.states,
            &self.verifies,
            &self.work_codes,
            &self.extras,
            &self.zones,
            &self.utcs,
            &self.sources,
            received,
        ]
    }
}

async fn write_batch_on(
    tx: &deadpool_postgres::Transaction<'_>,
    batch: &Batch,
) -> Result<BatchOutcome> {
    let received = batch.raw.received_at;
    // An agent batch holds its device's sequence first (postgres/agents.rs), so instances never interleave.
    let agent_held = match &batch.agent_seq {
        Some(run) => Some(agents::begin_agent_seq(&**tx, run).await?),
        None => None,
    };
    // One statement takes the journal id and stores every punch of the batch (perf-limits.md: one statement per
    // batch, arrays unnested, ON CONFLICT DO NOTHING). Re-sent punches are skipped by the identity index; the
    // ids returned are the ones newly stored.
    let n = batch.punches.len();
    let columns = PunchColumns::of(&batch.punches);
    let st = tx
        .prepare_cached(&format!(
            "{INSERT_PUNCHES} SELECT (SELECT id FROM j), \
                 COALESCE((SELECT array_agg(id ORDER BY id) FROM ins), '{{}}'::bigint[])"
        ))
        .await
        .map_err(backend)?;
    let row = tx
        .query_one(&st, &columns.params(&received))
        .await
        .map_err(backend)?;
    let journal_id: i64 = col(&row, 0)?;
    let new_ids: Vec<i64> = col(&row, 1)?;
    let n_stored = new_ids.len();
    let n_duplicate = n - n_stored;
    if !new_ids.is_empty() {
        outbox::insert_events_on(tx, &new_ids, received).await?;
    }
    if !batch.users.is_empty() {
        write_users_on(tx, batch, journal_id).await?;
    }
    if !batch.templates.is_empty() {
        write_templates_on(tx, batch, journal_id).await?;
    }
    if !batch.photos.is_empty() || !batch.oplog.is_empty() || !batch.records.is_empty() {
        write_other_records_on(tx, batch, journal_id).await?;
    }
    if let Some((sn, table, value)) = &batch.stamp {
        tx.execute(
            "INSERT INTO stamps (device_sn, table_name, value, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (device_sn, table_name) DO UPDATE SET value = excluded.value, \
             updated_at = excluded.updated_at",
            &[&sn.as_str(), table, value, &received],
        )
        .await
        .map_err(backend)?;
    }
    if let (Some(run), Some(held)) = (&batch.agent_seq, agent_held) {
        agents::finish_agent_seq(&**tx, run, held, journal_id, n_stored, n, received).await?;
    }
    if let Some((sn, info)) = &batch.device_info {
        let firmware = info
            .get("FWVersion")
            .or_else(|| info.get("firmware"))
            .and_then(|v| v.as_str());
        tx.execute(
            "UPDATE devices SET info = info || $2::jsonb, firmware = COALESCE($3, firmware) WHERE sn = $1",
            &[
                &sn.as_str(),
                &serde_json::Value::Object(info.clone()),
                &firmware,
            ],
        )
        .await
        .map_err(backend)?;
    }
    // Every punch is either newly stored or a duplicate, so this counts all records held after the commit.
    let n_records = batch.n_records();
    insert_journal_on(
        tx,
        &batch.raw,
        Some(journal_id),
        (n_records, n_stored, n_duplicate),
    )
    .await?;
    Ok(BatchOutcome {
        journal_id,
        n_stored,
        n_duplicate,
        n_records,
    })
}

/// Whether a batch holds nothing but punches, its raw entry and perhaps a stamp: what a terminal's ATTLOG upload,
/// a pull or an import is, and what [`punch_groups`] writes, grouped with other requests' batches.
fn punches_only(batch: &Batch) -> bool {
    batch.users.is_empty()
        && batch.templates.is_empty()
        && batch.photos.is_empty()
        && batch.oplog.is_empty()
        && batch.records.is_empty()
        && batch.device_info.is_none()
        && batch.agent_seq.is_none()
}

async fn write_users_on(
    tx: &deadpool_postgres::Transaction<'_>,
    batch: &Batch,
    journal_id: i64,
) -> Result<()> {
    let users = last_per_key(&batch.users, |u| (u.device_sn.clone(), u.pin.clone()));
    let sns: Vec<&str> = users.iter().map(|u| u.device_sn.as_str()).collect();
    let pins: Vec<&str> = users.iter().map(|u| u.pin.as_str()).collect();
    let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
    let privileges: Vec<Option<i32>> = users.iter().map(|u| u.privilege.map(i32::from)).collect();
    let passwords: Vec<&str> = users.iter().map(|u| u.password.as_str()).collect();
    let cards: Vec<&str> = users.iter().map(|u| u.card.as_str()).collect();
    let groups: Vec<&str> = users.iter().map(|u| u.group.as_str()).collect();
    let zones: Vec<&str> = users.iter().map(|u| u.time_zones.as_str()).collect();
    let verifies: Vec<Option<i32>> = users.iter().map(|u| u.verify_mode).collect();
    let enabled: Vec<bool> = users.iter().map(|u| u.enabled).collect();
    let fields: Vec<serde_json::Value> = users
        .iter()
        .map(|u| serde_json::Value::Object(u.fields.clone()))
        .collect();
    let updated: Vec<DateTime<Utc>> = users.iter().map(|u| u.updated_at).collect();
    let st = tx
        .prepare_cached(
            "INSERT INTO device_users (device_sn, pin, name, privilege, password, card, grp, time_zones, \
             verify_mode, enabled, fields, updated_at, journal_id) \
             SELECT u.*, $13::bigint FROM unnest($1::text[], $2::text[], $3::text[], $4::int4[], $5::text[], $6::text[], \
               $7::text[], $8::text[], $9::int4[], $10::bool[], $11::jsonb[], $12::timestamptz[]) AS u \
             ON CONFLICT (device_sn, pin) DO UPDATE SET name = excluded.name, privilege = excluded.privilege, \
             password = excluded.password, card = excluded.card, grp = excluded.grp, \
             time_zones = excluded.time_zones, verify_mode = excluded.verify_mode, fields = excluded.fields, \
             updated_at = excluded.updated_at, journal_id = excluded.journal_id",
        )
        .await
        .map_err(backend)?;
    tx.execute(
        &st,
        &[
            &sns,
            &pins,
            &names,
            &privileges,
            &passwords,
            &cards,
            &groups,
            &zones,
            &verifies,
            &enabled,
            &fields,
            &updated,
            &journal_id,
        ],
    )
    .await
    .map_err(backend)?;
    Ok(())
}

async fn write_templates_on(
    tx: &deadpool_postgres::Transaction<'_>,
    batch: &Batch,
    journal_id: i64,
) -> Result<()> {
    let templates = last_per_key(&batch.templates, |t| {
        (
            t.device_sn.clone(),
            t.pin.clone(),
            t.kind.clone(),
            t.bio_type,
            t.no,
            t.index,
        )
    });
    let sns: Vec<&str> = templates.iter().map(|t| t.device_sn.as_str()).collect();
    let pins: Vec<&str> = templates.iter().map(|t| t.pin.as_str()).collect();
    let kinds: Vec<&str> = templates.iter().map(|t| t.kind.as_str()).collect();
    let bio_types: Vec<i32> = templates.iter().map(|t| i32::from(t.bio_type)).collect();
    let nos: Vec<i32> = templates.iter().map(|t| i32::from(t.no)).collect();
    let idxs: Vec<i32> = templates.iter().map(|t| i32::from(t.index)).collect();
    let valids: Vec<Option<i32>> = templates.iter().map(|t| t.valid.map(i32::from)).collect();
    let duress: Vec<bool> = templates.iter().map(|t| t.duress).collect();
    let majors: Vec<Option<&str>> = templates.iter().map(|t| t.major_ver.as_deref()).collect();
    let minors: Vec<Option<&str>> = templates.iter().map(|t| t.minor_ver.as_deref()).collect();
    let formats: Vec<Option<i32>> = templates.iter().map(|t| t.format.map(i32::from)).collect();
    let bodies: Vec<&str> = templates.iter().map(|t| t.template.as_str()).collect();
    let updated: Vec<DateTime<Utc>> = templates.iter().map(|t| t.updated_at).collect();
    let st = tx
        .prepare_cached(
            "INSERT INTO templates (device_sn, pin, kind, bio_type, no, idx, valid, duress, major_ver, minor_ver, \
             format, template, updated_at, journal_id) \
             SELECT u.*, $14::bigint FROM unnest($1::text[], $2::text[], $3::text[], $4::int4[], $5::int4[], $6::int4[], \
               $7::int4[], $8::bool[], $9::text[], $10::text[], $11::int4[], $12::text[], $13::timestamptz[]) AS u \
             ON CONFLICT (device_sn, pin, kind, bio_type, no, idx) DO UPDATE SET valid = excluded.valid, \
             duress = excluded.duress, major_ver = excluded.major_ver, minor_ver = excluded.minor_ver, \
             format = excluded.format, template = excluded.template, updated_at = excluded.updated_at, \
             journal_id = excluded.journal_id",
        )
        .await
        .map_err(backend)?;
    tx.execute(
        &st,
        &[
            &sns,
            &pins,
            &kinds,
            &bio_types,
            &nos,
            &idxs,
            &valids,
            &duress,
            &majors,
            &minors,
            &formats,
            &bodies,
            &updated,
            &journal_id,
        ],
    )
    .await
    .map_err(backend)?;
    Ok(())
}

/// Photos, operation log entries and tagged records: each kept once (ON CONFLICT DO NOTHING).
async fn write_other_records_on(
    tx: &deadpool_postgres::Transaction<'_>,
    batch: &Batch,
    journal_id: i64,
) -> Result<()> {
    let received = batch.raw.received_at;
    if !batch.photos.is_empty() {
        let st = tx
            .prepare_cached(
                "INSERT INTO photos (device_sn, kind, pin, file_name, taken_at, content, received_at, journal_id) \
                 SELECT u.device_sn, u.kind, u.pin, u.file_name, u.taken_at, u.content, $7::timestamptz, $8::bigint \
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamp[], $6::bytea[]) \
                   WITH ORDINALITY AS u(device_sn, kind, pin, file_name, taken_at, content, ord) \
                 ORDER BY u.ord ON CONFLICT DO NOTHING",
            )
            .await
            .map_err(backend)?;
        let p = &batch.photos;
        let sns: Vec<&str> = p.iter().map(|x| x.device_sn.as_str()).collect();
        let kinds: Vec<&str> = p.iter().map(|x| x.kind.as_str()).collect();
        let pins: Vec<Option<&str>> = p.iter().map(|x| x.pin.as_deref()).collect();
        let names: Vec<&str> = p.iter().map(|x| x.file_name.as_str()).collect();
        let taken: Vec<Option<NaiveDateTime>> =
            p.iter().map(|x| x.taken_at.map(whole_seconds)).collect();
        let contents: Vec<&[u8]> = p.iter().map(|x| x.content.as_slice()).collect();
        tx.execute(
            &st,
            &[
                &sns,
                &kinds,
                &pins,
                &names,
                &taken,
                &contents,
                &received,
                &journal_id,
            ],
        )
        .await
        .map_err(backend)?;
    }
    if !batch.oplog.is_empty() {
        let st = tx
            .prepare_cached(
                "INSERT INTO oplog (device_sn, op_type, operator, op_at, objects, journal_id) \
                 SELECT u.device_sn, u.op_type, u.operator, u.op_at, u.objects, $6::bigint \
                 FROM unnest($1::text[], $2::int4[], $3::text[], $4::timestamp[], $5::jsonb[]) WITH ORDINALITY \
                   AS u(device_sn, op_type, operator, op_at, objects, ord) \
                 ORDER BY u.ord ON CONFLICT DO NOTHING",
            )
            .await
            .map_err(backend)?;
        let o = &batch.oplog;
        let sns: Vec<&str> = o.iter().map(|x| x.device_sn.as_str()).collect();
        let types: Vec<i32> = o.iter().map(|x| i32::from(x.op_type)).collect();
        let operators: Vec<&str> = o.iter().map(|x| x.operator.as_str()).collect();
        let ats: Vec<NaiveDateTime> = o.iter().map(|x| whole_seconds(x.op_at)).collect();
        let objects: Vec<serde_json::Value> = o
            .iter()
            .map(|x| serde_json::to_value(&x.objects).unwrap_or_default())
            .collect();
        tx.execute(
            &st,
            &[&sns, &types, &operators, &ats, &objects, &journal_id],
        )
        .await
        .map_err(backend)?;
    }
    if !batch.records.is_empty() {
        let st = tx
            .prepare_cached(
                "INSERT INTO device_records (device_sn, tag, fields, received_at, journal_id) \
                 SELECT u.device_sn, u.tag, u.fields, $4::timestamptz, $5::bigint \
                 FROM unnest($1::text[], $2::text[], $3::jsonb[]) WITH ORDINALITY AS u(device_sn, tag, fields, ord) \
                 ORDER BY u.ord ON CONFLICT DO NOTHING",
            )
            .await
            .map_err(backend)?;
        let r = &batch.records;
        let sns: Vec<&str> = r.iter().map(|x| x.device_sn.as_str()).collect();
        let tags: Vec<&str> = r.iter().map(|x| x.tag.as_str()).collect();
        let fields: Vec<serde_json::Value> = r
            .iter()
            .map(|x| {
                serde_json::Value::Object(
                    x.fields
                        .iter()
                        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                        .collect(),
                )
            })
            .collect();
        tx.execute(&st, &[&sns, &tags, &fields, &received, &journal_id])
            .await
            .map_err(backend)?;
    }
    Ok(())
}

/// Forget a user of a device and their templates.
async fn delete_user_on(
    client: &impl tokio_postgres::GenericClient,
    sn: &str,
    pin: &str,
) -> Result<()> {
    client
        .execute(
            "DELETE FROM device_users WHERE device_sn = $1 AND pin = $2",
            &[&sn, &pin],
        )
        .await
        .map_err(backend)?;
    client
        .execute(
            "DELETE FROM templates WHERE device_sn = $1 AND pin = $2",
            &[&sn, &pin],
        )
        .await
        .map_err(backend)?;
    Ok(())
}

/// What a succeeded command changes in what punchd knows about the device's users, in the same transaction as
/// the result (so a crash cannot record one without the other).
async fn apply_command_effect_on(
    tx: &deadpool_postgres::Transaction<'_>,
    command: &Command,
) -> Result<()> {
    let sn = command.device_sn.as_str();
    match &command.kind {
        CommandKind::DeleteUser { pin } => delete_user_on(&**tx, sn, pin).await?,
        CommandKind::UpsertUser { .. } => push::apply_upsert_on(tx, command).await?,
        CommandKind::DisableUser { pin } | CommandKind::EnableUser { pin } => {
            let enabled = matches!(command.kind, CommandKind::EnableUser { .. });
            tx.execute(
                "UPDATE device_users SET enabled = $3 WHERE device_sn = $1 AND pin = $2",
                &[&sn, pin, &enabled],
            )
            .await
            .map_err(backend)?;
        }
        _ => {}
    }
    Ok(())
}

/// Parameters of a dynamically built statement.
pub(super) type Params = Vec<Box<dyn ToSql + Sync + Send>>;

/// Borrow boxed parameters for a query call.
pub(super) fn param_refs(params: &Params) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

/// The WHERE clause (with its leading space, or empty) and parameters of a punch filter; `after_id` and `limit`
/// are the caller's.
pub(super) fn punch_where(filter: &PunchFilter, params: &mut Params) -> String {
    let mut clauses: Vec<String> = Vec::new();
    if let Some(sn) = &filter.device_sn {
        params.push(Box::new(sn.as_str().to_owned()));
        clauses.push(format!("device_sn = ${}", params.len()));
    }
    if let Some(pin) = &filter.pin {
        params.push(Box::new(pin.as_str().to_owned()));
        clauses.push(format!("pin = ${}", params.len()));
    }
    for (bound, op) in [(&filter.from, ">="), (&filter.to, "<")] {
        match bound {
            Some(TimeBound::Local(t)) => {
                params.push(Box::new(whole_seconds(*t)));
                clauses.push(format!("punched_at {op} ${}", params.len()));
            }
            Some(TimeBound::Utc(t)) => {
                // Stored instants are whole seconds (from terminal times); SQLite compares seconds too.
                params.push(Box::new(*t));
                clauses.push(format!("punched_at_utc {op} ${}", params.len()));
            }
            None => {}
        }
    }
    if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    }
}

#[async_trait::async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<()> {
        let client = self.client().await?;
        client.execute("SELECT 1", &[]).await.map_err(backend)?;
        Ok(())
    }

    async fn write_batch(&self, mut batch: Batch) -> Result<BatchOutcome> {
        nul::clean_batch(&mut batch);
        if punches_only(&batch) {
            return self.groups.write(self, batch).await;
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let outcome = write_batch_on(&tx, &batch).await?;
        commit(tx).await?;
        Ok(outcome)
    }

    async fn write_journal(&self, mut raw: RawEntry) -> Result<i64> {
        nul::clean_raw(&mut raw);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let id = insert_journal_on(&tx, &raw, None, (0, 0, 0)).await?;
        commit(tx).await?;
        Ok(id)
    }

    async fn upsert_device(&self, mut c: DeviceContact) -> Result<Device> {
        for s in [
            &mut c.ip,
            &mut c.firmware,
            &mut c.push_version,
            &mut c.language,
            &mut c.device_type,
        ] {
            nul::clean_opt(s);
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        // A known device only gets its new facts (no revision: settings did not change); a new one takes a
        // revision, so other instances load it.
        let updated = tx
            .execute(
                "UPDATE devices SET last_seen = $2, last_ip = COALESCE($3, last_ip), \
                 firmware = COALESCE($4, firmware), push_version = COALESCE($5, push_version), \
                 language = COALESCE($6, language), device_type = COALESCE($7, device_type) WHERE sn = $1",
                &[
                    &c.sn.as_str(),
                    &c.seen_at,
                    &c.ip,
                    &c.firmware,
                    &c.push_version,
                    &c.language,
                    &c.device_type,
                ],
            )
            .await
            .map_err(backend)?;
        if updated == 0 {
            let revision = next_revision(&tx).await?;
            tx.execute(
                "INSERT INTO devices (sn, approval, transport, first_seen, last_seen, last_ip, firmware, \
                 push_version, language, device_type, revision, poll_delay_secs) \
                 VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (sn) DO UPDATE SET last_seen = excluded.last_seen, \
                 last_ip = COALESCE(excluded.last_ip, devices.last_ip), \
                 firmware = COALESCE(excluded.firmware, devices.firmware), \
                 push_version = COALESCE(excluded.push_version, devices.push_version), \
                 language = COALESCE(excluded.language, devices.language), \
                 device_type = COALESCE(excluded.device_type, devices.device_type)",
                &[
                    &c.sn.as_str(),
                    &c.approval_if_new.as_str(),
                    &c.transport.as_str(),
                    &c.seen_at,
                    &c.ip,
                    &c.firmware,
                    &c.push_version,
                    &c.language,
                    &c.device_type,
                    &revision,
                    &wide(c.poll_delay_secs),
                ],
            )
            .await
            .map_err(backend)?;
        }
        let device = get_device_on(&*tx, c.sn.as_str()).await?;
        commit(tx).await?;
        Ok(device)
    }

    async fn create_device(&self, d: Device) -> Result<Device> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let revision = next_revision(&tx).await?;
        let inserted = tx
            .execute(
                "INSERT INTO devices (sn, approval, transport, alias, site, time_zone, address, comm_key, \
                 pull_interval_secs, clear_after_pull, first_seen, poll_delay_secs, revision, safe_clear) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT DO NOTHING",
                &[
                    &d.sn.as_str(),
                    &d.approval.as_str(),
                    &d.transport.as_str(),
                    &d.alias,
                    &d.site,
                    &d.time_zone,
                    &d.address,
                    &d.comm_key.map(wide),
                    &d.pull_interval_secs.map(wide),
                    &d.clear_after_pull,
                    &d.first_seen,
                    &wide(d.poll_delay_secs),
                    &revision,
                    &d.safe_clear,
                ],
            )
            .await
            .map_err(backend)?;
        if inserted == 0 {
            return Err(StoreError::Conflict(format!(
                "device {} already exists",
                d.sn
            )));
        }
        let device = get_device_on(&*tx, d.sn.as_str()).await?;
        commit(tx).await?;
        Ok(device)
    }

    async fn get_device(&self, sn: &DeviceSn) -> Result<Device> {
        let client = self.client().await?;
        get_device_on(&**client, sn.as_str()).await
    }

    async fn list_devices(&self) -> Result<Vec<Device>> {
        let client = self.client().await?;
        client
            .query(
                &format!("SELECT {DEVICE_COLUMNS} FROM devices ORDER BY sn"),
                &[],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(device_from_row)
            .collect()
    }

    async fn devices_changed_since(&self, revision: i64) -> Result<(Vec<Device>, i64)> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {DEVICE_COLUMNS}, revision FROM devices WHERE revision > $1 ORDER BY revision"
                ),
                &[&revision],
            )
            .await
            .map_err(backend)?;
        let mut max = revision;
        let mut devices = Vec::with_capacity(rows.len());
        for row in &rows {
            max = max.max(col::<i64>(row, 22)?);
            devices.push(device_from_row(row)?);
        }
        Ok((devices, max))
    }

    async fn update_device(&self, sn: &DeviceSn, patch: DevicePatch) -> Result<Device> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let row = tx
            .query_opt(
                &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE sn = $1 FOR UPDATE"),
                &[&sn.as_str()],
            )
            .await
            .map_err(backend)?
            .ok_or_else(|| StoreError::NotFound(format!("device {sn}")))?;
        let mut device = device_from_row(&row)?;
        if let Some(a) = patch.approval {
            device.approval = a;
        }
        if let Some(v) = patch.alias {
            device.alias = v;
        }
        if let Some(v) = patch.site {
            device.site = v;
        }
        if let Some(v) = patch.time_zone {
            device.time_zone = v;
        }
        if let Some(v) = patch.poll_delay_secs {
            device.poll_delay_secs = v;
        }
        if let Some(v) = patch.address {
            device.address = v;
        }
        if let Some(v) = patch.comm_key {
            device.comm_key = Some(v);
        }
        if let Some(v) = patch.pull_interval_secs {
            device.pull_interval_secs = Some(v);
        }
        if let Some(v) = patch.clear_after_pull {
            device.clear_after_pull = v;
        }
        if let Some(v) = patch.transport {
            device.transport = v;
        }
        if let Some(v) = patch.safe_clear {
            device.safe_clear = v;
        }
        let revision = next_revision(&tx).await?;
        tx.execute(
            "UPDATE devices SET approval = $2, alias = $3, site = $4, time_zone = $5, poll_delay_secs = $6, \
             address = $7, comm_key = $8, pull_interval_secs = $9, clear_after_pull = $10, transport = $11, \
             revision = $12, safe_clear = $13 WHERE sn = $1",
            &[
                &sn.as_str(),
                &device.approval.as_str(),
                &device.alias,
                &device.site,
                &device.time_zone,
                &wide(device.poll_delay_secs),
                &device.address,
                &device.comm_key.map(wide),
                &device.pull_interval_secs.map(wide),
                &device.clear_after_pull,
                &device.transport.as_str(),
                &revision,
                &device.safe_clear,
            ],
        )
        .await
        .map_err(backend)?;
        commit(tx).await?;
        Ok(device)
    }

    async fn record_seen(&self, seen: Vec<SeenUpdate>) -> Result<()> {
        if seen.is_empty() {
            return Ok(());
        }
        let sns: Vec<&str> = seen.iter().map(|s| s.sn.as_str()).collect();
        let ats: Vec<DateTime<Utc>> = seen.iter().map(|s| s.at).collect();
        let ips: Vec<Option<&str>> = seen.iter().map(|s| s.ip.as_deref()).collect();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        // One row per device, as if the facts were applied in order: the latest time (last seen only moves
        // forward) and the last address given.
        tx.execute(
            "UPDATE devices d SET last_seen = GREATEST(d.last_seen, s.at), last_ip = COALESCE(s.ip, d.last_ip) \
             FROM (SELECT sn, MAX(at) AS at, \
                     (array_agg(ip ORDER BY ord DESC) FILTER (WHERE ip IS NOT NULL))[1] AS ip \
                   FROM unnest($1::text[], $2::timestamptz[], $3::text[]) WITH ORDINALITY AS u(sn, at, ip, ord) \
                   GROUP BY sn) s \
             WHERE d.sn = s.sn",
            &[&sns, &ats, &ips],
        )
        .await
        .map_err(backend)?;
        commit(tx).await
    }

    async fn record_device_health(
        &self,
        sn: &DeviceSn,
        at: DateTime<Utc>,
        last_error: Option<String>,
        clock_drift_secs: Option<i64>,
    ) -> Result<()> {
        let seen = if last_error.is_none() { Some(at) } else { None };
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        tx.execute(
            "UPDATE devices SET last_error = $2, clock_drift_secs = COALESCE($3, clock_drift_secs), \
             last_seen = COALESCE($4, last_seen) WHERE sn = $1",
            &[&sn.as_str(), &last_error, &clock_drift_secs, &seen],
        )
        .await
        .map_err(backend)?;
        commit(tx).await
    }

    async fn stamps(&self, sn: &DeviceSn) -> Result<Vec<(String, String)>> {
        let client = self.client().await?;
        client
            .query(
                "SELECT table_name, value FROM stamps WHERE device_sn = $1 ORDER BY table_name",
                &[&sn.as_str()],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(|r| Ok((col(r, 0)?, col(r, 1)?)))
            .collect()
    }

    async fn list_punches(&self, filter: &PunchFilter) -> Result<Vec<Punch>> {
        let mut params: Params = Vec::new();
        let mut where_sql = punch_where(filter, &mut params);
        if let Some(after) = filter.after_id {
            params.push(Box::new(after));
            let clause = format!("id > ${}", params.len());
            where_sql = if where_sql.is_empty() {
                format!(" WHERE {clause}")
            } else {
                format!("{where_sql} AND {clause}")
            };
        }
        let limit = if filter.limit == 0 {
            String::new()
        } else {
            format!(" LIMIT {}", filter.limit)
        };
        let sql = format!("SELECT {PUNCH_COLUMNS} FROM punches{where_sql} ORDER BY id{limit}");
        let client = self.client().await?;
        client
            .query(&sql, &param_refs(&params))
            .await
            .map_err(backend)?
            .iter()
            .map(punch_from_row)
            .collect()
    }

    async fn count_punches(&self, filter: &PunchFilter) -> Result<u64> {
        let mut params: Params = Vec::new();
        let where_sql = punch_where(filter, &mut params);
        let client = self.client().await?;
        let row = client
            .query_one(
                &format!("SELECT COUNT(*) FROM punches{where_sql}"),
                &param_refs(&params),
            )
            .await
            .map_err(backend)?;
        Ok(narrow(col::<i64>(&row, 0)?))
    }

    async fn list_device_users(&self, sn: &DeviceSn) -> Result<Vec<DeviceUser>> {
        let client = self.client().await?;
        client
            .query(
                "SELECT device_sn, pin, name, privilege, password, card, grp, time_zones, verify_mode, enabled, \
                 fields, updated_at FROM device_users WHERE device_sn = $1 ORDER BY pin",
                &[&sn.as_str()],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(|r| {
                Ok(DeviceUser {
                    device_sn: sn_from(col(r, 0)?)?,
                    pin: Pin(col(r, 1)?),
                    name: col(r, 2)?,
                    privilege: col::<Option<i32>>(r, 3)?.and_then(|v| u16::try_from(v).ok()),
                    password: col(r, 4)?,
                    card: col(r, 5)?,
                    group: col(r, 6)?,
                    time_zones: col(r, 7)?,
                    verify_mode: col(r, 8)?,
                    enabled: col(r, 9)?,
                    fields: json_map(col(r, 10)?),
                    updated_at: col(r, 11)?,
                })
            })
            .collect()
    }

    async fn list_templates(&self, sn: &DeviceSn, pin: Option<&Pin>) -> Result<Vec<Template>> {
        let client = self.client().await?;
        client
            .query(
                "SELECT device_sn, pin, kind, bio_type, no, idx, valid, duress, major_ver, minor_ver, format, \
                 template, updated_at FROM templates WHERE device_sn = $1 AND ($2::text IS NULL OR pin = $2) \
                 ORDER BY pin, kind, bio_type, no, idx",
                &[&sn.as_str(), &pin.map(Pin::as_str)],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(|r| {
                let small = |i: usize| -> Result<u16> { Ok(narrow(i64::from(col::<i32>(r, i)?))) };
                let small_opt = |i: usize| -> Result<Option<u16>> {
                    Ok(col::<Option<i32>>(r, i)?.and_then(|v| u16::try_from(v).ok()))
                };
                Ok(Template {
                    device_sn: sn_from(col(r, 0)?)?,
                    pin: Pin(col(r, 1)?),
                    kind: col(r, 2)?,
                    bio_type: small(3)?,
                    no: small(4)?,
                    index: small(5)?,
                    valid: small_opt(6)?,
                    duress: col(r, 7)?,
                    major_ver: col(r, 8)?,
                    minor_ver: col(r, 9)?,
                    format: small_opt(10)?,
                    template: col(r, 11)?,
                    updated_at: col(r, 12)?,
                })
            })
            .collect()
    }

    async fn delete_device_user(&self, sn: &DeviceSn, pin: &Pin) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        delete_user_on(&*tx, sn.as_str(), pin.as_str()).await?;
        commit(tx).await
    }

    async fn get_journal(&self, id: i64) -> Result<JournalEntry> {
        let client = self.client().await?;
        let r = client
            .query_opt(
                "SELECT id, received_at, device_sn, source, kind, request, remote_addr, body, n_records, \
                 n_stored, n_duplicate, errors FROM journal WHERE id = $1",
                &[&id],
            )
            .await
            .map_err(backend)?
            .ok_or_else(|| StoreError::NotFound(format!("journal entry {id}")))?;
        let source: String = col(&r, 3)?;
        let errors: Option<serde_json::Value> = col(&r, 11)?;
        Ok(JournalEntry {
            id: col(&r, 0)?,
            received_at: col(&r, 1)?,
            device_sn: col::<Option<String>>(&r, 2)?.map(sn_from).transpose()?,
            source: Source::parse(&source)
                .ok_or_else(|| StoreError::Backend(format!("stored source {source:?}")))?,
            kind: col(&r, 4)?,
            request: col(&r, 5)?,
            remote_addr: col(&r, 6)?,
            body: col(&r, 7)?,
            n_records: narrow(col::<i64>(&r, 8)?),
            n_stored: narrow(col::<i64>(&r, 9)?),
            n_duplicate: narrow(col::<i64>(&r, 10)?),
            errors: errors
                .and_then(|e| serde_json::from_value::<Vec<LineIssue>>(e).ok())
                .unwrap_or_default(),
        })
    }

    async fn enqueue_commands(
        &self,
        commands: Vec<NewCommand>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Command>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let mut out = Vec::with_capacity(commands.len());
        for c in &commands {
            let kind = serde_json::to_value(&c.kind)
                .map_err(|e| StoreError::Backend(format!("encoding command: {e}")))?;
            let row = tx
                .query_one(
                    &format!(
                        "INSERT INTO commands (device_sn, kind, wire, status, requested_by, created_at) \
                         VALUES ($1, $2, $3, 'queued', $4, $5) RETURNING {COMMAND_COLUMNS}"
                    ),
                    &[&c.device_sn.as_str(), &kind, &c.wire, &c.requested_by, &now],
                )
                .await
                .map_err(backend)?;
            out.push(command_from_row(&row)?);
        }
        commit(tx).await?;
        Ok(out)
    }

    async fn queued_commands(&self, sn: &DeviceSn, max: usize) -> Result<Vec<Command>> {
        let client = self.client().await?;
        client
            .query(
                &format!(
                    "SELECT {COMMAND_COLUMNS} FROM commands WHERE device_sn = $1 AND status = 'queued' \
                     ORDER BY id LIMIT $2"
                ),
                &[&sn.as_str(), &(max as i64)],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(command_from_row)
            .collect()
    }

    async fn mark_sent(&self, ids: Vec<i64>, now: DateTime<Utc>) -> Result<Vec<i64>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        // Two instances answering polls of one terminal at once: each row is marked by exactly one of them. A
        // row another transaction is marking is skipped (SKIP LOCKED) rather than waited for; if that other
        // transaction rolls back, the command is still queued and goes out on the next poll.
        let rows = tx
            .query(
                "UPDATE commands SET status = 'sent', attempts = attempts + 1, sent_at = $2 \
                 WHERE id IN (SELECT id FROM commands WHERE id = ANY($1) AND status = 'queued' \
                              FOR UPDATE SKIP LOCKED) \
                 RETURNING id",
                &[&ids, &now],
            )
            .await
            .map_err(backend)?;
        commit(tx).await?;
        let marked: std::collections::HashSet<i64> =
            rows.iter().map(|r| col(r, 0)).collect::<Result<_>>()?;
        // In the caller's order.
        Ok(ids.into_iter().filter(|id| marked.contains(id)).collect())
    }

    async fn complete_commands(
        &self,
        sn: &DeviceSn,
        mut completions: Vec<CommandCompletion>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Command>> {
        completions.iter_mut().for_each(nul::clean_completion);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let mut out = Vec::new();
        for c in &completions {
            let status = if c.return_code >= 0 {
                CommandStatus::Succeeded
            } else {
                CommandStatus::Failed
            };
            let row = tx
                .query_opt(
                    &format!(
                        "UPDATE commands SET status = $3, finished_at = $4, return_code = $5, message = $6, \
                         result = $7 WHERE id = $1 AND device_sn = $2 AND status IN ('sent', 'queued', 'expired') \
                         RETURNING {COMMAND_COLUMNS}"
                    ),
                    &[
                        &c.id,
                        &sn.as_str(),
                        &status.as_str(),
                        &now,
                        &c.return_code,
                        &c.message,
                        &c.result,
                    ],
                )
                .await
                .map_err(backend)?;
            if let Some(row) = row {
                let command = command_from_row(&row)?;
                if c.return_code >= 0 {
                    apply_command_effect_on(&tx, &command).await?;
                }
                out.push(command);
            }
        }
        commit(tx).await?;
        Ok(out)
    }

    async fn sweep_commands(
        &self,
        now: DateTime<Utc>,
        sent_before: DateTime<Utc>,
        queued_before: DateTime<Utc>,
        max_attempts: u32,
    ) -> Result<(usize, usize)> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let expired_sent = tx
            .execute(
                "UPDATE commands SET status = 'expired', finished_at = $1, \
                 message = 'no result after ' || attempts || ' deliveries' \
                 WHERE status = 'sent' AND sent_at < $2 AND attempts >= $3",
                &[&now, &sent_before, &wide(max_attempts)],
            )
            .await
            .map_err(backend)?;
        let requeued = tx
            .execute(
                "UPDATE commands SET status = 'queued' WHERE status = 'sent' AND sent_at < $1",
                &[&sent_before],
            )
            .await
            .map_err(backend)?;
        let expired_queued = tx
            .execute(
                "UPDATE commands SET status = 'expired', finished_at = $1, \
                 message = 'not delivered: the device did not poll in time' \
                 WHERE status = 'queued' AND created_at < $2",
                &[&now, &queued_before],
            )
            .await
            .map_err(backend)?;
        commit(tx).await?;
        Ok((
            narrow(requeued as i64),
            narrow((expired_sent + expired_queued) as i64),
        ))
    }

    async fn list_commands(&self, filter: &CommandFilter) -> Result<Vec<Command>> {
        let limit = if filter.limit == 0 {
            None
        } else {
            Some(filter.limit as i64)
        };
        let client = self.client().await?;
        client
            .query(
                &format!(
                    "SELECT {COMMAND_COLUMNS} FROM commands WHERE ($1::text IS NULL OR device_sn = $1) \
                     AND ($2::text IS NULL OR status = $2) ORDER BY id DESC LIMIT $3"
                ),
                &[
                    &filter.device_sn.as_ref().map(DeviceSn::as_str),
                    &filter.status.map(CommandStatus::as_str),
                    &limit,
                ],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(command_from_row)
            .collect()
    }

    async fn get_command(&self, id: i64) -> Result<Command> {
        let client = self.client().await?;
        get_command_on(&**client, id).await
    }

    async fn devices_with_queued_commands(&self) -> Result<Vec<DeviceSn>> {
        let client = self.client().await?;
        client
            .query(
                "SELECT DISTINCT device_sn FROM commands WHERE status = 'queued' ORDER BY device_sn",
                &[],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(|r| sn_from(col(r, 0)?))
            .collect()
    }

    async fn create_token(
        &self,
        name: &str,
        hash: &str,
        scope: Scope,
        now: DateTime<Utc>,
    ) -> Result<TokenInfo> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let row = tx
            .query_opt(
                &format!(
                    "INSERT INTO api_tokens (name, hash, created_at, scope) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT DO NOTHING RETURNING {TOKEN_COLUMNS}"
                ),
                &[&name, &hash, &now, &scope.as_str()],
            )
            .await
            .map_err(backend)?
            .ok_or_else(|| StoreError::Conflict(format!("a token named {name:?} exists")))?;
        let token = token_from_row(&row)?;
        commit(tx).await?;
        Ok(token)
    }

    async fn find_token(&self, hash: &str) -> Result<Option<TokenInfo>> {
        let client = self.client().await?;
        client
            .query_opt(
                &format!(
                    "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE hash = $1 AND revoked_at IS NULL"
                ),
                &[&hash],
            )
            .await
            .map_err(backend)?
            .as_ref()
            .map(token_from_row)
            .transpose()
    }

    async fn list_tokens(&self) -> Result<Vec<TokenInfo>> {
        let client = self.client().await?;
        client
            .query(
                &format!("SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY id"),
                &[],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(token_from_row)
            .collect()
    }

    async fn revoke_token(&self, name: &str, now: DateTime<Utc>) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let n = tx
            .execute(
                "UPDATE api_tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL",
                &[&name, &now],
            )
            .await
            .map_err(backend)?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("live token {name:?}")));
        }
        commit(tx).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The database the PostgreSQL tests use, from `PUNCHD_TEST_POSTGRES_URL`; `None` (the test is skipped, with
    /// a line saying so) when it is not set. CI (`.ci/run`) always sets it.
    pub(crate) fn test_url() -> Option<String> {
        match std::env::var("PUNCHD_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => Some(url),
            _ => {
                assert!(
                    std::env::var("CI").map_or(true, |v| v != "true"),
                    "PUNCHD_TEST_POSTGRES_URL must be set in CI (.ci/run sets it)"
                );
                eprintln!("skipped: PUNCHD_TEST_POSTGRES_URL is not set");
                None
            }
        }
    }

    /// A store in a schema of its own on the test database ([`PgStore::open_isolated_for_test`]); `None` (the
    /// test is skipped, with a line saying so) without `PUNCHD_TEST_POSTGRES_URL`.
    pub(super) async fn isolated_store() -> Option<PgStore> {
        let url = test_url()?;
        Some(
            PgStore::open_isolated_for_test(&url)
                .await
                .expect("open postgres"),
        )
    }

    /// Every contract suite on PostgreSQL, one isolated schema per test. Areas add their line here.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_store_keeps_the_contract() {
        let Some(store) = isolated_store().await else {
            return;
        };
        super::super::contract::run_all(&store).await;
        super::super::contract_hardening::run_all(&store).await;
        super::super::contract_push::run_all(&store).await;
        // Attendance, operations, sources, outbox, delivery and leases run in schemas of their own (the tests at
        // the end of postgres/<area>.rs and contract_attendance.rs), as do agents and UI accounts (below): their
        // suites count rows store-wide.
    }

    /// The agents contract on PostgreSQL, in a schema of its own (it counts the backlog over every punch).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_store_keeps_the_agents_contract() {
        let Some(store) = isolated_store().await else {
            return;
        };
        let lose = async |sn: &str, pins: Vec<String>| {
            let client = store.client().await.expect("client");
            client
                .execute(
                    "DELETE FROM punches WHERE device_sn = $1 AND pin = ANY($2)",
                    &[&sn, &pins],
                )
                .await
                .expect("delete");
        };
        super::super::contract_agents::run_all(&store, lose).await;
    }

    /// The UI accounts contract on PostgreSQL, in a schema of its own.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_store_keeps_the_ui_accounts_contract() {
        let Some(store) = isolated_store().await else {
            return;
        };
        super::super::contract_ui_accounts::run_all(&store).await;
    }

    /// An ATTLOG upload's raw entry from `sn`, pushed now.
    fn attlog_upload(sn: &DeviceSn, request: String, body: Vec<u8>) -> RawEntry {
        RawEntry {
            received_at: Utc::now(),
            device_sn: Some(sn.clone()),
            source: Source::Push,
            kind: "ATTLOG".into(),
            request,
            remote_addr: None,
            body,
            errors: Vec::new(),
        }
    }

    /// A pushed check-in (state 0) of `pin` at `at`, a terminal in UTC.
    fn punch_at(sn: &DeviceSn, pin: String, at: NaiveDateTime) -> NewPunch {
        NewPunch {
            device_sn: sn.clone(),
            pin: crate::domain::Pin(pin),
            punched_at: at,
            time_zone: "UTC".into(),
            punched_at_utc: at.and_utc(),
            punch_state: Some(crate::domain::PunchState::from_code(0)),
            verify_mode: None,
            work_code: None,
            extra: Vec::new(),
            source: Source::Push,
        }
    }

    /// Uploads written together ([`punch_groups`]) with some that PostgreSQL refuses (a trigger fails punches
    /// whose PIN starts with "poison"): the refused ones fail alone, nothing of theirs kept, journal included; the
    /// others are stored once with their own journal entries; a refused one goes through when sent again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refused_uploads_in_a_group_fail_alone() {
        let Some(store) = isolated_store().await else {
            return;
        };
        let client = store.client().await.expect("client");
        client
            .batch_execute(
                "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'disk on fire'; END $$; \
                 CREATE TRIGGER poison BEFORE INSERT ON punches FOR EACH ROW \
                 WHEN (NEW.pin LIKE 'poison%') EXECUTE FUNCTION poison();",
            )
            .await
            .expect("trigger");
        let sn = DeviceSn::parse("GROUPF1").expect("sn");
        let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 30).expect("day");
        let upload = |i: u32, pin: String| {
            let request = format!("POST /iclock/cdata?SN=GROUPF1&table=ATTLOG&n={i}");
            let mut batch = Batch::new(attlog_upload(&sn, request, format!("{i}").into_bytes()));
            batch.punches = [(format!("ok{i}"), 8), (pin, 9)]
                .into_iter()
                .map(|(pin, hour)| {
                    punch_at(&sn, pin, day.and_hms_opt(hour, 0, i % 60).expect("time"))
                })
                .collect();
            batch
        };
        let writes = (0..60u32).map(|i| {
            let pin = if i % 10 == 3 {
                format!("poison{i}")
            } else {
                format!("{i}")
            };
            let (store, batch) = (store.clone(), upload(i, pin));
            tokio::spawn(async move { store.write_batch(batch).await })
        });
        let outcomes = futures_util::future::join_all(writes).await;
        let mut journal_ids = std::collections::HashSet::new();
        for (i, outcome) in outcomes.into_iter().enumerate() {
            match outcome.expect("task") {
                Err(StoreError::Backend(message)) if i % 10 == 3 => {
                    assert!(message.contains("disk on fire"), "{message}")
                }
                Ok(o) if i % 10 != 3 => {
                    assert_eq!((o.n_stored, o.n_duplicate), (2, 0), "upload {i}");
                    assert!(journal_ids.insert(o.journal_id), "upload {i}'s own entry");
                }
                other => panic!("upload {i}: {other:?}"),
            }
        }
        let counts = client
            .query_one(
                "SELECT (SELECT count(*) FROM punches), (SELECT count(*) FROM journal), \
                 (SELECT count(*) FROM punches WHERE pin = 'ok3')",
                &[],
            )
            .await
            .expect("counts");
        let counts: (i64, i64, i64) = (counts.get(0), counts.get(1), counts.get(2));
        assert_eq!(counts, (54 * 2, 54, 0));
        client
            .batch_execute("DROP TRIGGER poison ON punches")
            .await
            .expect("drop");
        let again = store
            .write_batch(upload(3, "poison3".into()))
            .await
            .expect("sent again");
        assert_eq!((again.n_stored, again.n_duplicate), (2, 0));
    }

    /// Single-punch uploads that arrive while a group is being written wait for it and are then written together,
    /// by one statement: before, each took a writer of its own while one was free (four at once), so two instances
    /// on one PostgreSQL wrote smaller groups, paid more commits, and were slower than one (BENCHMARKS.md,
    /// "PostgreSQL: small uploads wait for the writer at work"). Which transaction wrote a row is its `xmin`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn small_uploads_that_arrive_during_a_write_share_the_next_statement() {
        let Some(store) = isolated_store().await else {
            return;
        };
        let locker = store.client().await.expect("client");
        let watcher = store.client().await.expect("client");
        locker
            .batch_execute("BEGIN; LOCK TABLE punches IN SHARE MODE")
            .await
            .expect("lock");
        let sn = DeviceSn::parse("GROUPS1").expect("sn");
        let at = chrono::NaiveDate::from_ymd_opt(2026, 12, 3)
            .expect("day")
            .and_hms_opt(8, 0, 0)
            .expect("time");
        let upload = |i: i64| {
            let request = format!("POST /iclock/cdata?SN=GROUPS1&table=ATTLOG&n={i}");
            let mut batch = Batch::new(attlog_upload(&sn, request, format!("{i}").into_bytes()));
            batch.punches = vec![punch_at(&sn, format!("{i}"), at)];
            let store = store.clone();
            tokio::spawn(async move { store.write_batch(batch).await })
        };
        let waiting_for_lock = async || -> i64 {
            watcher
                .query_one(
                    "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'punches'::regclass",
                    &[],
                )
                .await
                .expect("locks")
                .get(0)
        };
        let mut writes = vec![upload(0)];
        crate::test_support::wait_for("the first upload reaches the lock", || async {
            (waiting_for_lock().await > 0).then_some(())
        })
        .await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        writes.extend((1..20).map(upload));
        while store.groups.queued() < 19 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            if std::time::Instant::now() > deadline {
                panic!(
                    "19 uploads should wait behind the writer at work, {} do ({} statements wait for the lock)",
                    store.groups.queued(),
                    waiting_for_lock().await
                );
            }
        }
        locker.batch_execute("COMMIT").await.expect("unlock");
        for (i, write) in futures_util::future::join_all(writes)
            .await
            .into_iter()
            .enumerate()
        {
            let outcome = write.expect("task").expect("stored");
            assert_eq!(
                (outcome.n_stored, outcome.n_duplicate),
                (1, 0),
                "upload {i}"
            );
        }
        let row = watcher
            .query_one(
                "SELECT (SELECT count(*) FROM punches), \
                 (SELECT count(DISTINCT xmin::text) FROM punches), \
                 (SELECT count(DISTINCT xmin::text) FROM journal)",
                &[],
            )
            .await
            .expect("transactions");
        let counts: (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(
            counts,
            (20, 2, 2),
            "(punches, statements that wrote them, that wrote the journal)"
        );
    }

    /// 08:00 on 2026-12-03, terminal local time: when the sink tests' punches happen.
    pub(super) fn eight_oclock() -> NaiveDateTime {
        chrono::NaiveDate::from_ymd_opt(2026, 12, 3)
            .and_then(|d| d.and_hms_opt(8, 0, 0))
            .expect("time")
    }

    /// A terminal's ATTLOG upload of one punch, `pin` at [`eight_oclock`], with the stamp `pin`.
    pub(super) fn one_punch_upload(sn: &DeviceSn, pin: &str) -> Batch {
        let mut batch = Batch::new(attlog_upload(
            sn,
            format!("POST /iclock/cdata?SN={sn}&table=ATTLOG&Stamp={pin}"),
            pin.as_bytes().to_vec(),
        ));
        batch.punches = vec![punch_at(sn, pin.into(), eight_oclock())];
        batch.stamp = Some((sn.clone(), "ATTLOG".into(), pin.into()));
        batch
    }

    /// The webhook sink "hr" (the sink tests deliver nothing; they read what it owes), from `since` or from now on.
    pub(super) fn hr_sink(since: Option<DateTime<Utc>>) -> crate::store::outbox::NewSink {
        crate::store::outbox::NewSink {
            name: "hr".into(),
            kind: crate::store::outbox::SinkKind::Webhook,
            config: serde_json::json!({}),
            since,
        }
    }

    /// A sink made while an upload's group statement is at work (its snapshot taken before the sink existed) owes
    /// every punch of the transactions its creation did not see committed: before, the statement saw no sink and
    /// wrote no event, yet committed after the sink's creation had returned, so a sink without a start date never
    /// delivered that punch, and one with a start date missed it in its backfill (not yet committed). The
    /// statement is held at work by a stamp row another transaction is inserting.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sink_made_while_an_upload_is_written_gets_every_punch_acknowledged_after_it() {
        use crate::store::contract_outbox::owed_pins;
        use crate::store::outbox::OutboxStore;
        use crate::test_support::wait_for;
        for since in [
            None,
            Some(eight_oclock().and_utc() - chrono::Duration::days(1)),
        ] {
            let Some(store) = isolated_store().await else {
                return;
            };
            let holder = store.client().await.expect("client");
            let watcher = store.client().await.expect("client");
            holder
                .batch_execute(
                    "BEGIN; INSERT INTO stamps (device_sn, table_name, value, updated_at) \
                     VALUES ('SINKR1', 'ATTLOG', 'held', now())",
                )
                .await
                .expect("hold the stamp");
            let sn = DeviceSn::parse("SINKR1").expect("sn");
            let waiting = async |condition: &str| -> Option<()> {
                let n: i64 = watcher
                    .query_one(
                        &format!("SELECT count(*) FROM pg_locks WHERE NOT granted AND {condition}"),
                        &[],
                    )
                    .await
                    .expect("locks")
                    .get(0);
                (n > 0).then_some(())
            };
            let write = tokio::spawn({
                let (store, batch) = (store.clone(), one_punch_upload(&sn, "1"));
                async move { store.write_batch(batch).await }
            });
            wait_for("the upload waits for the held stamp", || {
                waiting("locktype = 'transactionid'")
            })
            .await;
            let create = tokio::spawn({
                let store = store.clone();
                async move { store.create_sink(hr_sink(since), Utc::now()).await }
            });
            // The creation either returns at once or waits for the upload's statement; either way, then let the
            // statement go on.
            wait_for("the sink's creation returns or waits", || async {
                if create.is_finished() {
                    Some(())
                } else {
                    waiting("relation = 'punches'::regclass").await
                }
            })
            .await;
            holder.batch_execute("ROLLBACK").await.expect("release");
            let outcome = write.await.expect("task").expect("stored");
            assert_eq!(outcome.n_stored, 1);
            let sink = create.await.expect("task").expect("sink");
            store
                .write_batch(one_punch_upload(&sn, "2"))
                .await
                .expect("stored");
            // Without a start date the sink owes the punches of every transaction its creation did not see
            // committed: decided by the database, not by which task the runtime happened to wake first. (The
            // transaction id from `xmin` is taken as of epoch 0: a test cluster never wraps around.)
            let seen_committed: bool = watcher
                .query_one(
                    "SELECT pg_visible_in_snapshot(p.xmin::text::xid8, s.created_snapshot) \
                     FROM punches p, sinks s WHERE p.pin = '1' AND s.name = 'hr'",
                    &[],
                )
                .await
                .expect("visibility")
                .get::<_, Option<bool>>(0)
                .unwrap_or(false);
            let expected = if since.is_some() || !seen_committed {
                vec!["1", "2"]
            } else {
                vec!["2"]
            };
            assert_eq!(
                owed_pins(&store, sink.id, Utc::now()).await,
                expected,
                "since {since:?}: the sink's creation saw the upload {}",
                if seen_committed {
                    "committed"
                } else {
                    "at work"
                }
            );
        }
    }

    /// A terminal's upload with NUL bytes (in a punch's extra column and work code, a bad line, a user's padded
    /// name, the stamp) was refused by PostgreSQL (22P05) and answered 503 for ever, so that terminal's later
    /// punches never arrived. Now each NUL is stored as U+FFFD and the journal keeps the exact bytes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nul_bytes_from_a_terminal_are_stored_as_replacement_characters() {
        let Some(store) = isolated_store().await else {
            return;
        };
        let sn = DeviceSn::parse("NUL0001").expect("sn");
        let body = b"1001\t2026-11-30 08:00:00\t0\t1\t\x00\t0\x00\n10\x0002\t2026-11-30 08:01:00\n"
            .to_vec();
        let mut raw = attlog_upload(
            &sn,
            "POST /iclock/cdata?SN=NUL0001&table=ATTLOG".into(),
            body.clone(),
        );
        raw.errors = vec![crate::store::LineIssue {
            line_no: 2,
            line: "10\u{0}02\t2026-11-30 08:01:00".into(),
            reason: "a control character\u{0}".into(),
        }];
        let punched_at = NaiveDateTime::parse_from_str("2026-11-30 08:00:00", "%Y-%m-%d %H:%M:%S")
            .expect("time");
        let mut batch = Batch::new(raw.clone());
        batch.punches = vec![NewPunch {
            work_code: Some("\u{0}".into()),
            extra: vec!["0\u{0}".into()],
            ..punch_at(&sn, "1001".into(), punched_at)
        }];
        batch.stamp = Some((sn.clone(), "ATTLOG".into(), "9\u{0}".into()));
        let outcome = store.write_batch(batch).await.expect("stored, not refused");
        assert_eq!(outcome.n_stored, 1);
        let punches = store
            .list_punches(&PunchFilter {
                device_sn: Some(sn.clone()),
                ..PunchFilter::default()
            })
            .await
            .expect("list");
        assert_eq!(punches.len(), 1);
        assert_eq!(punches[0].work_code.as_deref(), Some("\u{FFFD}"));
        assert_eq!(punches[0].extra, ["0\u{FFFD}"]);
        let journal = store
            .get_journal(outcome.journal_id)
            .await
            .expect("journal");
        assert_eq!(journal.body, body, "the journal keeps the exact bytes");
        assert_eq!(journal.errors[0].line, "10\u{FFFD}02\t2026-11-30 08:01:00");
        assert_eq!(
            store.stamps(&sn).await.expect("stamps"),
            [("ATTLOG".to_owned(), "9\u{FFFD}".to_owned())]
        );
        // The transaction path (a batch with users) and a journal entry of its own.
        let mut users = Batch::new(raw.clone());
        users.users = vec![crate::store::DeviceUser {
            name: "Ann\u{0}\u{0}".into(),
            ..super::super::contract::user(&sn, "1001", "Ann")
        }];
        store.write_batch(users).await.expect("users stored");
        let held = store.list_device_users(&sn).await.expect("users");
        assert_eq!(held[0].name, "Ann\u{FFFD}\u{FFFD}");
        let id = store.write_journal(raw).await.expect("journal entry");
        assert_eq!(
            store.get_journal(id).await.expect("entry").errors[0].reason,
            "a control character\u{FFFD}"
        );
    }

    #[test]
    fn urls_print_without_their_password() {
        assert_eq!(
            redact_url("postgres://punchd:s3cret@db.example:5432/punchd"),
            "postgres://punchd:***@db.example:5432/punchd"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1/test"),
            "postgres://postgres@127.0.0.1/test"
        );
        assert!(is_postgres_url("postgresql://x@y/z"));
        assert!(!is_postgres_url("/var/lib/punchd/punchd.db"));
    }
}
