//! [`HardeningStore`] for SQLite: the pending-device cap, and storage health — which failures are storage
//! failures, and how the writer recovers from them on its own.
//!
//! A storage failure (`SQLITE_FULL`, `SQLITE_IOERR`, `SQLITE_READONLY`, `SQLITE_CANTOPEN`) seen by the writer
//! thread sets the store's fault (logged once, reported by `/healthz`). While the fault is set the writer, before
//! each group and every [`PROBE_EVERY`] when idle, rolls back anything left open, truncates the WAL
//! (`wal_checkpoint(TRUNCATE)`: after a disk-full the WAL may be the file that holds the space) and writes a
//! probe of [`PROBE_BYTES`] that it deletes in the same transaction; the first group or probe that commits
//! clears the fault and logs that storage recovered. Failures that are not about storage (a constraint, a
//! trigger) concern one write only and leave the health alone.

use std::cell::RefCell;
use std::sync::{mpsc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode};

use super::{backend, Job, SqliteStore};
use crate::domain::DeviceSn;
use crate::store::{HardeningStore, Result};

/// How often an idle writer probes storage while it is failing.
pub(super) const PROBE_EVERY: Duration = Duration::from_secs(2);
/// Bytes the probe writes (and deletes): a write this size must fit before the store reports health again.
const PROBE_BYTES: usize = 1024 * 1024;

thread_local! {
    /// The last storage failure seen on this thread (the writer thread reads it after each group).
    static NOTED: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Whether an SQLite error means storage itself fails (not one write's data).
fn is_storage_failure(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(
            ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure
                | ErrorCode::ReadOnly
                | ErrorCode::CannotOpen
                | ErrorCode::FileLockingProtocolFailed
        )
    )
}

/// Remember `e` when it is a storage failure (called by `backend` for every error it maps).
pub(super) fn note(e: &rusqlite::Error) {
    if is_storage_failure(e) {
        NOTED.with(|n| *n.borrow_mut() = Some(e.to_string()));
    }
}

fn take_noted() -> Option<String> {
    NOTED.with(|n| n.borrow_mut().take())
}

/// The shared fault state of one store.
pub(super) type Fault = std::sync::Arc<Mutex<Option<String>>>;

/// Why storage fails, while it does.
pub(super) fn current(fault: &Fault) -> Option<String> {
    match fault.lock() {
        Ok(f) => f.clone(),
        Err(p) => p.into_inner().clone(),
    }
}

fn set(fault: &Fault, value: Option<String>) {
    let mut f = match fault.lock() {
        Ok(f) => f,
        Err(p) => p.into_inner(),
    };
    match (&*f, &value) {
        (None, Some(reason)) => tracing::error!(
            error = %reason,
            "storage is failing: writes are answered 503 and nothing is acknowledged; /healthz reports it; \
             punchd retries on its own every {} s once space or the device is back",
            PROBE_EVERY.as_secs()
        ),
        (Some(was), None) => {
            tracing::info!(was = %was, "storage recovered: writes succeed again")
        }
        _ => {}
    }
    *f = value;
}

/// After a group: a storage failure seen during it sets the fault; a committed group without one clears it.
pub(super) fn after_group(fault: &Fault, committed: bool) {
    match take_noted() {
        Some(reason) => set(fault, Some(reason)),
        None if committed && current(fault).is_some() => set(fault, None),
        None => {}
    }
}

/// Roll back what a failure left open and truncate the WAL; errors are expected while storage still fails.
fn clean_up(conn: &Connection) {
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
}

/// One probe write: [`PROBE_BYTES`] written and deleted in one committed transaction.
fn probe(conn: &Connection) -> Result<()> {
    let run = || -> rusqlite::Result<()> {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        conn.execute(
            "INSERT INTO storage_probe (pad) VALUES (zeroblob(?1))",
            [PROBE_BYTES as i64],
        )?;
        conn.execute("DELETE FROM storage_probe", [])?;
        conn.execute_batch("COMMIT")
    };
    run().map_err(|e| {
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        backend(e)
    })
}

/// The writer's next job. While storage fails: clean up first, and when no job comes within [`PROBE_EVERY`],
/// probe (clearing the fault when the probe commits). `None` when every sender is gone.
pub(super) fn next_job(conn: &Connection, rx: &mpsc::Receiver<Job>, fault: &Fault) -> Option<Job> {
    loop {
        if current(fault).is_none() {
            return rx.recv().ok();
        }
        clean_up(conn);
        match rx.recv_timeout(PROBE_EVERY) {
            Ok(job) => return Some(job),
            Err(mpsc::RecvTimeoutError::Disconnected) => return None,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let ok = probe(conn).is_ok();
                after_group(fault, ok);
            }
        }
    }
}

impl SqliteStore {
    /// Let the database file grow to at most `bytes` (SQLite `max_page_count`); a write beyond fails as on a
    /// full disk (`SQLITE_FULL`). Returns the limit in force, in bytes (never below the current size).
    ///
    /// Errors: the database failed.
    pub async fn limit_size(&self, bytes: u64) -> Result<u64> {
        self.write(move |conn| {
            let page_size: i64 = conn
                .query_row("PRAGMA page_size", [], |r| r.get(0))
                .map_err(backend)?;
            let pages = i64::try_from(bytes).unwrap_or(i64::MAX) / page_size.max(1);
            let max: i64 = conn
                .query_row(
                    &format!("PRAGMA max_page_count = {}", pages.max(1)),
                    [],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            Ok(u64::try_from(max * page_size).unwrap_or(0))
        })
        .await
    }
}

/// A journal body at least this large (bytes) is not bound as a parameter but written into its row through
/// SQLite's incremental blob I/O (issue 6, memory). Binding copies the body once (rusqlite binds blobs as
/// `SQLITE_TRANSIENT`) and the row record SQLite builds is a second copy; with a zero blob of the body's length
/// bound instead only the record is built, and the bytes are then written into it in place, page by page.
pub(super) const STREAMED_BODY_BYTES: usize = 64 * 1024;

/// Whether `body` is written with [`fill_body`] after the insert (see [`STREAMED_BODY_BYTES`]).
fn streamed(body: &[u8]) -> bool {
    body.len() >= STREAMED_BODY_BYTES && i32::try_from(body.len()).is_ok()
}

/// The `body` parameter of a journal insert: the bytes themselves, or for a large body a zero blob of its length
/// that [`fill_body`] fills once the row exists.
pub(super) fn body_param(body: &[u8]) -> rusqlite::types::ToSqlOutput<'_> {
    use rusqlite::types::{ToSqlOutput, ValueRef};
    match i32::try_from(body.len()) {
        Ok(len) if streamed(body) => ToSqlOutput::ZeroBlob(len),
        _ => ToSqlOutput::Borrowed(ValueRef::Blob(body)),
    }
}

/// Write a large body into journal row `id`, whose body was inserted as [`body_param`]'s zero blob; nothing for a
/// small body. Same transaction as the insert.
pub(super) fn fill_body(conn: &Connection, id: i64, body: &[u8]) -> Result<()> {
    if !streamed(body) {
        return Ok(());
    }
    let mut blob = conn
        .blob_open(rusqlite::MAIN_DB, c"journal", c"body", id, false)
        .map_err(backend)?;
    blob.write_at(body, 0).map_err(backend)
}

/// Insert a journal row with a known `id` and its counts (records, newly stored, duplicates).
pub(super) fn insert_journal_with_counts(
    conn: &Connection,
    raw: &crate::store::RawEntry,
    id: i64,
    counts: (usize, usize, usize),
) -> Result<i64> {
    let errors = if raw.errors.is_empty() {
        None
    } else {
        Some(serde_json::to_string(&raw.errors).unwrap_or_default())
    };
    conn.prepare_cached(
        "INSERT INTO journal (id, received_at, device_sn, source, kind, request, remote_addr, body, errors, \
         n_records, n_stored, n_duplicate) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )
    .and_then(|mut st| {
        // Bound one by one with their own types, not through `params!`'s `&dyn ToSql` (one row per request:
        // issue 6).
        st.raw_bind_parameter(1, id)?;
        st.raw_bind_parameter(2, raw.received_at.timestamp_millis())?;
        st.raw_bind_parameter(3, raw.device_sn.as_ref().map(DeviceSn::as_str))?;
        st.raw_bind_parameter(4, raw.source.as_str())?;
        st.raw_bind_parameter(5, raw.kind.as_str())?;
        st.raw_bind_parameter(6, raw.request.as_str())?;
        st.raw_bind_parameter(7, raw.remote_addr.as_deref())?;
        st.raw_bind_parameter(8, body_param(&raw.body))?;
        st.raw_bind_parameter(9, errors.as_deref())?;
        st.raw_bind_parameter(10, counts.0 as i64)?;
        st.raw_bind_parameter(11, counts.1 as i64)?;
        st.raw_bind_parameter(12, counts.2 as i64)?;
        st.raw_execute()
    })
    .map_err(backend)?;
    fill_body(conn, id, &raw.body)?;
    Ok(id)
}

#[async_trait::async_trait]
impl HardeningStore for SqliteStore {
    async fn prune_pending(&self, keep: usize) -> Result<Vec<DeviceSn>> {
        self.write(move |conn| {
            let keep = i64::try_from(keep).unwrap_or(i64::MAX);
            let sns: Vec<String> = conn
                .prepare_cached(
                    "SELECT sn FROM devices WHERE approval = 'pending' ORDER BY first_seen DESC, sn DESC \
                     LIMIT -1 OFFSET ?1",
                )
                .and_then(|mut st| {
                    st.query_map([keep], |r| r.get::<_, String>(0))?
                        .collect::<rusqlite::Result<Vec<String>>>()
                })
                .map_err(backend)?;
            let mut gone = Vec::with_capacity(sns.len());
            for sn in sns.into_iter().rev() {
                conn.prepare_cached("DELETE FROM devices WHERE sn = ?1 AND approval = 'pending'")
                    .and_then(|mut st| st.execute([&sn]))
                    .map_err(backend)?;
                if let Ok(sn) = DeviceSn::parse(&sn) {
                    gone.push(sn);
                }
            }
            Ok(gone)
        })
        .await
    }

    fn storage_fault(&self) -> Option<String> {
        current(&self.fault)
    }
}
