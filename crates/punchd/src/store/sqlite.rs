//! SQLite store: WAL, one writer thread with group commit, a small pool of readers.
//!
//! Why one writer (perf-limits.md): SQLite has one write lock; a pool of writers only adds contention. Every write
//! is a job sent to the writer thread. The thread drains its queue, runs every job queued in ONE transaction (each
//! job inside its own savepoint, so one failing job does not undo the others), commits, and only then answers each
//! caller. With `synchronous=FULL` (the default, power-safe) the fsync cost is shared by everything queued, which
//! is what makes per-request acknowledgement after a durable commit cheap.

mod agents;
mod attendance;
mod hardening;
mod held_stamps;
mod leases;
mod operations;
mod push;
mod sources;
mod ui_accounts;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, NaiveDateTime, TimeZone, Timelike, Utc};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row};
use tokio::sync::oneshot;

mod delivery;
mod outbox;
#[cfg(test)]
mod outbox_tests;

use super::{
    command_kind_from_json, Batch, BatchOutcome, CommandCompletion, CommandFilter, DeviceContact,
    DevicePatch, DeviceUser, JournalEntry, LineIssue, PunchFilter, RawEntry, Result, SeenUpdate,
    Store, StoreError, Template, TimeBound, TokenInfo,
};
use crate::domain::{
    Approval, Command, CommandKind, CommandStatus, Device, DeviceSn, NewCommand, Pin, Punch, Scope,
    Source, Transport,
};

/// How durable an acknowledged write is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Durability {
    /// `synchronous=FULL`: a committed write survives power loss (the default).
    #[default]
    PowerSafe,
    /// `synchronous=NORMAL`: a committed write survives a crash of punchd, but the last commits may be lost on
    /// power loss.
    CrashSafe,
}

/// The schema, in order. `PRAGMA user_version` records how many have run.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/sqlite/0001_init.sql"),
    include_str!("../../migrations/sqlite/0002_drop_punches_pin.sql"),
    include_str!("../../migrations/sqlite/0003_hardening.sql"),
    include_str!("../../migrations/sqlite/0004_push.sql"),
    include_str!("../../migrations/sqlite/0005_operations.sql"),
    include_str!("../../migrations/sqlite/0006_attendance.sql"),
    include_str!("../../migrations/sqlite/0007_sources.sql"),
    include_str!("../../migrations/sqlite/0008_outbox.sql"),
    include_str!("../../migrations/sqlite/0009_agents.sql"),
    include_str!("../../migrations/sqlite/0010_ui_accounts.sql"),
    include_str!("../../migrations/sqlite/0012_delivery.sql"),
    include_str!("../../migrations/sqlite/0013_leases.sql"),
    include_str!("../../migrations/sqlite/0014_delivery_gaps.sql"),
    include_str!("../../migrations/sqlite/0015_agent_batches.sql"),
    include_str!("../../migrations/sqlite/0016_source_run_requests.sql"),
    include_str!("../../migrations/sqlite/0017_review_pages.sql"),
    include_str!("../../migrations/sqlite/0018_pin_summary.sql"),
    include_str!("../../migrations/sqlite/0019_journal_device_dropped.sql"),
    include_str!("../../migrations/sqlite/0020_outbox_by_punch.sql"),
];

/// How often the checkpointer moves committed pages from the WAL into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(500);
/// WAL frames (pages) after which the writer checkpoints the rest itself, between two transactions, so that the
/// next transaction writes the WAL from its start again: 4,096 frames, 16 MiB. See [`checkpoint_loop`].
const WAL_RESTART_FRAMES: i64 = 4096;
/// A WAL file left larger than this after a checkpoint is truncated to it (bytes).
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// The page cache a connection keeps between transactions, in KiB (SQLite's default is about 2 MiB too).
const CACHE_KIB: i64 = 2048;
/// How many pages (4 KiB each) one transaction may hold in the writer's cache before SQLite writes some of them to
/// the WAL early (`PRAGMA cache_spill`): 8 MiB.
const CACHE_SPILL_PAGES: i64 = 2048;

/// How many queued jobs one transaction takes at most.
const MAX_GROUP: usize = 4096;
/// How many idle read connections are kept.
const MAX_IDLE_READERS: usize = 8;

/// Read connections in use at once; further reads wait for one. Without a bound, 10,000 terminals greeting the
/// server at once ran about 80 reads at a time, each on its own blocking thread with its own connection and page
/// cache, and the connections beyond the idle pool were opened and closed again thousands of times (peak memory of
/// the `fleet10k` benchmark, issue 6). Reads are short (a device, its stamps); the month read is the long one.
const MAX_READERS: usize = MAX_IDLE_READERS;

type Completion = Box<dyn FnOnce(Option<&StoreError>) + Send>;
/// A write run in the group's transaction (or told why it cannot run), returning what to do after the commit.
type WriteJob = Box<dyn FnOnce(std::result::Result<&Connection, StoreError>) -> Completion + Send>;

/// What the writer thread is asked to do, in the next group transaction ([`writer_loop`]).
enum Job {
    /// Any write: run in a savepoint of its own, so that if it fails it undoes only itself.
    Write(WriteJob),
    /// A batch of records ([`Store::write_batch`], the hot path): written without a savepoint, and if any batch
    /// of the group fails, the group's batches are rolled back and written again, each in a savepoint of its
    /// own, so the failing one still fails alone. A savepoint is not free: SQLite copies every page the group
    /// already changed into the savepoint's journal before a job changes it again (the last pages of the journal
    /// and punch tables, the stamps page): 11 % of the server's CPU at one punch per upload (BENCHMARKS.md,
    /// "What each guarantee costs").
    ///
    /// The batch goes back with its outcome, so the requesting task frees it: its strings and body were
    /// allocated there, and freeing them on the writer thread cost the allocator a cache flush on one side and a
    /// refill on the other for every upload (issue 6).
    Batch(Box<Batch>, BatchDone),
}

/// Where a [`Job::Batch`]'s outcome goes, with the batch itself.
type BatchDone = oneshot::Sender<(Result<BatchOutcome>, Box<Batch>)>;

/// The SQLite store. Cheap to clone: clones share the writer thread and the reader pool.
#[derive(Clone)]
pub struct SqliteStore {
    jobs: mpsc::Sender<Job>,
    readers: Arc<Mutex<Vec<Connection>>>,
    /// [`MAX_READERS`] permits: one per read in progress.
    reading: Arc<tokio::sync::Semaphore>,
    path: Arc<PathBuf>,
    /// Dropped with the last clone; the checkpoint thread then runs a last checkpoint and ends.
    _checkpoints: Arc<mpsc::Sender<()>>,
    /// Why storage fails, while it does (`hardening`).
    fault: hardening::Fault,
    /// Push stamps committed with their uploads and not yet written to `stamps` (`held_stamps`).
    held: Arc<held_stamps::HeldStamps>,
    /// The runtime that opened the store (in `punchd serve`, the one serving terminals), whose blocking pool runs
    /// every read: at collection's CPU priority, whoever asks. A read from a low-priority caller (the sinks'
    /// runtime, `sinks::run_at_priority`) on that caller's own threads could wait for the CPU in the middle of
    /// its read transaction, and the WAL cannot start over while a reader holds an old snapshot: the writer then
    /// appended to an ever longer file (373 MB against 89 MB in the push benchmark with three sinks; BENCHMARKS.md,
    /// "Sink reads at collection's priority"). `None` when opened outside a runtime: the caller's runtime then.
    read_pool: Option<tokio::runtime::Handle>,
}

fn backend(e: rusqlite::Error) -> StoreError {
    hardening::note(&e);
    StoreError::Backend(e.to_string())
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v).single().unwrap_or_default()
}

/// A terminal-local time as stored: `YYYY-MM-DD HH:MM:SS` (whole seconds; terminals have no finer clock).
fn local_text(t: NaiveDateTime) -> String {
    match local_text_bytes(t) {
        Some(b) => String::from_utf8(b.to_vec()).unwrap_or_default(),
        // Years outside 0..=9999 (never from a terminal) take the `Display` path.
        None => t.with_nanosecond(0).unwrap_or(t).to_string(),
    }
}

/// [`local_text`] on the stack, for years 0..=9999 (`None` otherwise).
fn local_text_bytes(t: NaiveDateTime) -> Option<[u8; 19]> {
    crate::format::wall_time_bytes(t, b' ')
}

fn parse_local(s: &str) -> rusqlite::Result<NaiveDateTime> {
    // What `local_text` writes, read digit by digit by the push parser's reader: chrono's format-string parser was
    // a visible part of reading a month of punches (attendance, issue 7). Anything it declines goes through chrono.
    if let Some(t) = zk_push::attlog::fixed_width_time(s.as_bytes()) {
        return Ok(t);
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn conversion(msg: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        Box::new(std::io::Error::other(msg)),
    )
}

fn sn_from(s: String) -> rusqlite::Result<DeviceSn> {
    DeviceSn::parse(&s).map_err(|e| conversion(format!("stored SN {s:?}: {e}")))
}

fn json_map(s: &str) -> serde_json::Map<String, serde_json::Value> {
    serde_json::from_str(s).unwrap_or_default()
}

fn configure(conn: &Connection, durability: Durability) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(
        None,
        "synchronous",
        match durability {
            Durability::PowerSafe => "FULL",
            Durability::CrashSafe => "NORMAL",
        },
    )?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    // Every job runs in a savepoint (run_in_savepoint); with temp files the savepoint journal of each page a job
    // touches is written to a temporary file first — measured at 30 % of the writer thread's time on ATTLOG
    // batches (BENCHMARKS.md). Savepoint journals only live for one transaction, so memory is the right place.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // A group commit of 64 terminals × 1000 punches dirties ≈ 13 MB of pages; with the default 2 MB cache SQLite
    // spills pages to the WAL mid-transaction and reads them back (pagerStress + readDbPage were 40 % of the
    // writer at 1000 punches per POST, BENCHMARKS.md). So a transaction may hold up to CACHE_SPILL_PAGES (8 MiB)
    // before it spills, as it did with an 8 MiB cache, but between transactions only CACHE_KIB are kept: SQLite
    // frees each page over the cache size as it is released after the commit. A 10,000-terminal fleet touches
    // pages all over the database and kept the whole 8 MiB (issue 6, fleet memory: −8 MB resident with the
    // allocator change, BENCHMARKS.md "Session of 2026-12-01 (2)").
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
    conn.pragma_update(None, "cache_spill", CACHE_SPILL_PAGES)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    migrate_to(conn, MIGRATIONS.len())
}

/// Run the migrations not yet run among the first `upto`, each in its own transaction.
fn migrate_to(conn: &Connection, upto: usize) -> rusqlite::Result<()> {
    let done: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in MIGRATIONS[..upto]
        .iter()
        .enumerate()
        .skip(done.max(0) as usize)
    {
        conn.execute_batch(&format!(
            "BEGIN; {sql}; PRAGMA user_version = {}; COMMIT;",
            i + 1
        ))?;
    }
    Ok(())
}

impl SqliteStore {
    /// Open (creating if needed) the database file at `path`, run migrations, start the writer thread.
    ///
    /// Errors: the file cannot be created or opened, is not a SQLite database, or a migration fails.
    pub fn open(path: &Path, durability: Durability) -> Result<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Backend(format!("creating directory {}: {e}", dir.display()))
            })?;
        }
        let conn = Connection::open(path).map_err(backend)?;
        configure(&conn, durability).map_err(backend)?;
        migrate(&conn).map_err(backend)?;
        // Checkpoints run on their own thread (below), not inside a commit of the writer: a checkpoint writes
        // pages into the database file and fsyncs it, and every request of a group commit would wait for it.
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(backend)?;
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)
            .map_err(backend)?;
        let checkpointer = Connection::open(path).map_err(backend)?;
        configure(&checkpointer, durability).map_err(backend)?;
        let (stop_checkpoints, stopped) = mpsc::channel::<()>();
        let wal_long = Arc::new(AtomicBool::new(false));
        let wal_long_seen = wal_long.clone();
        std::thread::Builder::new()
            .name("punchd-sqlite-checkpoint".into())
            .spawn(move || checkpoint_loop(checkpointer, stopped, &wal_long_seen))
            .map_err(|e| StoreError::Backend(format!("starting the checkpoint thread: {e}")))?;
        let (jobs, rx) = mpsc::channel::<Job>();
        let fault = hardening::Fault::default();
        let writer_fault = fault.clone();
        let held = Arc::new(held_stamps::HeldStamps::default());
        let writer_held = held.clone();
        std::thread::Builder::new()
            .name("punchd-sqlite-writer".into())
            .spawn(move || {
                batch_scheduling();
                writer_loop(conn, rx, writer_fault, &wal_long, &writer_held)
            })
            .map_err(|e| StoreError::Backend(format!("starting the writer thread: {e}")))?;
        Ok(SqliteStore {
            jobs,
            readers: Arc::new(Mutex::new(Vec::new())),
            reading: Arc::new(tokio::sync::Semaphore::new(MAX_READERS)),
            path: Arc::new(path.to_owned()),
            _checkpoints: Arc::new(stop_checkpoints),
            fault,
            held,
            read_pool: tokio::runtime::Handle::try_current().ok(),
        })
    }

    /// Run `f` on the writer thread inside the current group transaction; resolves after the commit.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T>>();
        let job = Job::Write(Box::new(move |conn| {
            let result = match conn {
                Err(e) => Err(e),
                Ok(conn) => run_in_savepoint(conn, f),
            };
            Box::new(move |commit_err: Option<&StoreError>| {
                let out = match commit_err {
                    Some(e) => Err(e.clone()),
                    None => result,
                };
                let _ = tx.send(out);
            })
        }));
        self.jobs.send(job).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Run `f` on a pooled read connection on the blocking pool of the runtime that opened the store
    /// (`read_pool`).
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let readers = self.readers.clone();
        let path = self.path.clone();
        let permit = self
            .reading
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let run = move || {
            let _permit = permit;
            let pooled = readers.lock().map(|mut pool| pool.pop()).unwrap_or(None);
            let conn = match pooled {
                Some(conn) => conn,
                None => {
                    let conn = Connection::open_with_flags(
                        path.as_path(),
                        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    )
                    .map_err(backend)?;
                    conn.busy_timeout(std::time::Duration::from_secs(10))
                        .map_err(backend)?;
                    conn.set_prepared_statement_cache_capacity(32);
                    conn
                }
            };
            let out = f(&conn);
            if let Ok(mut pool) = readers.lock() {
                if pool.len() < MAX_IDLE_READERS {
                    pool.push(conn);
                }
            }
            out
        };
        let task = match &self.read_pool {
            Some(handle) => handle.spawn_blocking(run),
            None => tokio::task::spawn_blocking(run),
        };
        task.await
            .map_err(|e| StoreError::Backend(format!("read task failed: {e}")))?
    }
}

fn run_in_savepoint<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    // Cached statements: `execute_batch` compiled each of these anew for every job (issue 6).
    exec_cached(conn, "SAVEPOINT job").map_err(backend)?;
    let result = f(conn);
    let end = match &result {
        Ok(_) => exec_cached(conn, "RELEASE job"),
        Err(_) => {
            exec_cached(conn, "ROLLBACK TO job").and_then(|()| exec_cached(conn, "RELEASE job"))
        }
    };
    match end {
        Ok(()) => result,
        Err(e) => Err(backend(e)),
    }
}

/// Run one parameterless statement through the prepared-statement cache.
fn exec_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Move committed pages from the WAL into the database file every [`CHECKPOINT_EVERY`], without waiting for
/// readers or the writer (`PASSIVE`); when the WAL was fully copied and no reader uses it, the writer starts it
/// over. Ends, after a last checkpoint, when the store is dropped.
///
/// Under a steady stream of commits the WAL is never fully copied here (the writer appends while this copies),
/// so it was never started over: an ATTLOG run grew it to 1.1 GB in 12 s, and a tenth of the server's CPU went
/// to the file system allocating and zeroing the new blocks (issue 6, BENCHMARKS.md "Session of 2026-12-01
/// (2)"). So once the WAL holds more than [`WAL_RESTART_FRAMES`], `wal_long` asks the writer to copy what is
/// left itself between two transactions ([`writer_loop`]): little is left by then, as this thread copied the rest.
fn checkpoint_loop(conn: Connection, stopped: mpsc::Receiver<()>, wal_long: &AtomicBool) {
    loop {
        let last = match stopped.recv_timeout(CHECKPOINT_EVERY) {
            Err(mpsc::RecvTimeoutError::Timeout) | Ok(()) => false,
            Err(mpsc::RecvTimeoutError::Disconnected) => true,
        };
        // (busy, frames in the WAL, frames copied); frames are -1 when the database is not in WAL mode.
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1)) {
            Ok(frames) if frames > WAL_RESTART_FRAMES => wal_long.store(true, Ordering::Relaxed),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; will retry"),
        }
        if last {
            break;
        }
    }
}

/// Put the calling thread (the writer) under Linux's `SCHED_BATCH` policy, at its nice value: woken by a request,
/// it does not preempt the HTTP workers on a busy core but runs when they yield, so each group commit takes in
/// more of the requests that arrived meanwhile. On one busy core that is 14–16 % less CPU per single-punch upload,
/// with the same p99 (BENCHMARKS.md, issue 6); with a core to spare it changes nothing. Anything but Linux, or a
/// refusal (a seccomp filter), leaves the thread as it is, with a debug line.
fn batch_scheduling() {
    #[cfg(target_os = "linux")]
    {
        let normal = uapi::c::sched_param { sched_priority: 0 };
        if let Err(e) = uapi::sched_setscheduler(0, uapi::c::SCHED_BATCH, &normal) {
            tracing::debug!(error = %e, "the SQLite writer stays under the default scheduling policy");
        }
    }
}

fn writer_loop(
    conn: Connection,
    rx: mpsc::Receiver<Job>,
    fault: hardening::Fault,
    wal_long: &AtomicBool,
    held: &held_stamps::HeldStamps,
) {
    let mut held_written_at = Instant::now();
    loop {
        // Held push stamps wait at most FLUSH_EVERY: written with the next group, or alone when none comes.
        let due = (!held.is_empty() && hardening::current(&fault).is_none())
            .then(|| held_stamps::FLUSH_EVERY.saturating_sub(held_written_at.elapsed()));
        let first = match due {
            Some(wait) => match rx.recv_timeout(wait) {
                Ok(job) => job,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    write_held_alone(&conn, held, &fault);
                    held_written_at = Instant::now();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            },
            None => match hardening::next_job(&conn, &rx, &fault) {
                Some(job) => job,
                None => break,
            },
        };
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        // The group's jobs are concurrent requests (a caller's next write waits for this commit), so their order
        // in the transaction is free: batches first, so that rolling them back undoes nothing else.
        let mut batches = Vec::new();
        let mut writes = Vec::new();
        for job in jobs {
            match job {
                Job::Batch(batch, done) => batches.push((batch, done)),
                Job::Write(write) => writes.push(write),
            }
        }
        if let Err(e) = exec_cached(&conn, "BEGIN IMMEDIATE") {
            let err = backend(e);
            for (batch, done) in batches {
                let _ = done.send((Err(err.clone()), batch));
            }
            for write in writes {
                write(Err(err.clone()))(Some(&err));
            }
            hardening::after_group(&fault, false);
            continue;
        }
        let write_held = !held.is_empty() && held_written_at.elapsed() >= held_stamps::FLUSH_EVERY;
        let mut held_written = Vec::new();
        let (outcomes, completions, commit) = match write_batches(&conn, &batches) {
            Ok(outcomes) => {
                let completions: Vec<Completion> =
                    writes.into_iter().map(|job| job(Ok(&conn))).collect();
                // After the writes: a device removed by one of them has no held stamp left to write.
                if write_held {
                    match held.write_on(&conn) {
                        Ok(written) => held_written = written,
                        Err(e) => {
                            tracing::debug!(error = %e, "held stamps not written; kept for the next group")
                        }
                    }
                }
                (
                    outcomes,
                    completions,
                    exec_cached(&conn, "COMMIT").map_err(backend),
                )
            }
            Err(e) => {
                let completions = writes.into_iter().map(|job| job(Err(e.clone()))).collect();
                (Vec::new(), completions, Err(e))
            }
        };
        if commit.is_err() && !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        let err = commit.err();
        hardening::after_group(&fault, err.is_none());
        // Before the answers, so a terminal's next handshake already gets the stamp of the upload just answered.
        if err.is_none() {
            if write_held {
                held.written(&held_written);
                held_written_at = Instant::now();
            }
            held.hold_committed(batches.iter().zip(&outcomes).filter_map(
                |((batch, _), outcome)| match (&batch.stamp, outcome) {
                    (Some((sn, table, value)), Ok(_)) if batch.stamp_may_lag => Some((
                        sn.as_str(),
                        table.as_str(),
                        value.as_str(),
                        ms(batch.raw.received_at),
                    )),
                    _ => None,
                },
            ));
        } else {
            held.group_failed();
        }
        let mut outcomes = outcomes.into_iter();
        for (batch, done) in batches {
            let outcome = match (&err, outcomes.next()) {
                (None, Some(outcome)) => outcome,
                (Some(e), _) => Err(e.clone()),
                (None, None) => Err(StoreError::Backend("batch left unwritten".into())),
            };
            let _ = done.send((outcome, batch));
        }
        for done in completions {
            done(err.as_ref());
        }
        // After the answers: the requests of this group do not wait for it, the next group does (checkpoint_loop).
        if wal_long.swap(false, Ordering::Relaxed) {
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::debug!(error = %e, "writer's WAL checkpoint failed; the checkpoint thread goes on");
            }
        }
    }
    // Every sender is gone: the store is being dropped. What is held goes to the table now.
    write_held_alone(&conn, held, &fault);
    tracing::debug!("sqlite writer stopped");
}

/// Write the held push stamps in a transaction of their own (no job came for [`held_stamps::FLUSH_EVERY`], or
/// the writer stops). On failure they stay held, and a storage failure is noted as for any group.
fn write_held_alone(conn: &Connection, held: &held_stamps::HeldStamps, fault: &hardening::Fault) {
    if held.is_empty() {
        return;
    }
    let result = exec_cached(conn, "BEGIN IMMEDIATE")
        .map_err(backend)
        .and_then(|()| held.write_on(conn))
        .and_then(|written| {
            exec_cached(conn, "COMMIT")
                .map_err(backend)
                .map(|()| written)
        });
    match result {
        Ok(written) => {
            held.written(&written);
            hardening::after_group(fault, true);
        }
        Err(e) => {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            hardening::after_group(fault, false);
            tracing::debug!(error = %e, "held stamps not written; kept for later");
        }
    }
}

/// Write the group's batches, first all together without savepoints, right after `BEGIN`. If one fails, roll
/// the transaction back (it holds only the batches so far) and begin it again, writing each batch in a savepoint
/// of its own. One outcome per batch, in order; `Err` when the transaction could not be begun again (the group's
/// other writes then fail with it). See [`Job::Batch`].
fn write_batches(
    conn: &Connection,
    batches: &[(Box<Batch>, BatchDone)],
) -> Result<Vec<Result<BatchOutcome>>> {
    let together = GroupFacts::read(conn).and_then(|mut facts| {
        batches
            .iter()
            .map(|(batch, _)| write_batch_on(conn, batch, &mut facts))
            .collect::<Result<Vec<_>>>()
    });
    if let Ok(outcomes) = together {
        return Ok(outcomes.into_iter().map(Ok).collect());
    }
    // SQLite may have ended the transaction itself (a full disk, an I/O error).
    if !conn.is_autocommit() {
        exec_cached(conn, "ROLLBACK").map_err(backend)?;
    }
    exec_cached(conn, "BEGIN IMMEDIATE").map_err(backend)?;
    Ok(batches
        .iter()
        .map(|(batch, _)| {
            run_in_savepoint(conn, |conn| {
                GroupFacts::read(conn).and_then(|mut facts| write_batch_on(conn, batch, &mut facts))
            })
        })
        .collect())
}

/// What the batches of a group need to know of the database, read once at the start of the group (and again for
/// each batch when they are written one by one in savepoints): exact for every batch, because the group's
/// transaction holds SQLite's write lock, so no other process writes until it ends, and its batches are written
/// before its other jobs. One statement per group instead of two per batch (issue 6).
struct GroupFacts {
    /// The id the next journal row takes: `MAX(id) + 1`, the rowid rule. Each batch takes one.
    next_journal_id: i64,
    /// Whether any sink exists: without one, new punches get no outbox event (`punches.outbox_at` NULL). Read
    /// inside the transaction, so it is exact even when another process (`punchd sinks add` while `punchd serve`
    /// runs) created the first sink.
    sinks_exist: bool,
}

impl GroupFacts {
    fn read(conn: &Connection) -> Result<GroupFacts> {
        conn.prepare_cached(
            "SELECT COALESCE((SELECT MAX(id) FROM journal), 0) + 1, EXISTS (SELECT 1 FROM sinks)",
        )
        .and_then(|mut st| {
            st.query_row([], |r| {
                Ok(GroupFacts {
                    next_journal_id: r.get(0)?,
                    sinks_exist: r.get(1)?,
                })
            })
        })
        .map_err(backend)
    }
}

const DEVICE_COLUMNS: &str = "sn, approval, transport, alias, site, time_zone, address, comm_key, \
    pull_interval_secs, clear_after_pull, first_seen, last_seen, last_ip, firmware, push_version, language, \
    device_type, poll_delay_secs, info, last_error, clock_drift_secs, safe_clear";

fn device_from_row(row: &Row<'_>) -> rusqlite::Result<Device> {
    let approval: String = row.get(1)?;
    let transport: String = row.get(2)?;
    Ok(Device {
        sn: sn_from(row.get(0)?)?,
        approval: Approval::parse(&approval)
            .ok_or_else(|| conversion(format!("approval {approval:?}")))?,
        transport: Transport::parse(&transport)
            .ok_or_else(|| conversion(format!("transport {transport:?}")))?,
        alias: row.get(3)?,
        site: row.get(4)?,
        time_zone: row.get(5)?,
        address: row.get(6)?,
        comm_key: row.get(7)?,
        pull_interval_secs: row.get(8)?,
        clear_after_pull: row.get(9)?,
        first_seen: from_ms(row.get(10)?),
        last_seen: row.get::<_, Option<i64>>(11)?.map(from_ms),
        last_ip: row.get(12)?,
        firmware: row.get(13)?,
        push_version: row.get(14)?,
        language: row.get(15)?,
        device_type: row.get(16)?,
        poll_delay_secs: row.get(17)?,
        info: json_map(&row.get::<_, String>(18)?),
        last_error: row.get(19)?,
        clock_drift_secs: row.get(20)?,
        safe_clear: row.get(21)?,
    })
}

fn get_device_on(conn: &Connection, sn: &str) -> Result<Device> {
    conn.prepare_cached(&format!(
        "SELECT {DEVICE_COLUMNS} FROM devices WHERE sn = ?1"
    ))
    .and_then(|mut st| st.query_row([sn], device_from_row).optional())
    .map_err(backend)?
    .ok_or_else(|| StoreError::NotFound(format!("device {sn}")))
}

fn next_revision(conn: &Connection) -> Result<i64> {
    // Removed devices keep their revision in device_deletions: the counter must never go back.
    conn.query_row(
        "SELECT MAX(COALESCE((SELECT MAX(revision) FROM devices), 0), \
         COALESCE((SELECT MAX(revision) FROM device_deletions), 0)) + 1",
        [],
        |r| r.get(0),
    )
    .map_err(backend)
}

const PUNCH_COLUMNS: &str =
    "id, device_sn, pin, punched_at, punch_state, verify_mode, work_code, extra, \
    time_zone, punched_at_utc, received_at, source, journal_id";

fn punch_from_row(row: &Row<'_>) -> rusqlite::Result<Punch> {
    let state: i64 = row.get(4)?;
    let extra: Option<String> = row.get(7)?;
    let source = row.get_ref(11)?.as_str()?;
    Ok(Punch {
        id: row.get(0)?,
        device_sn: sn_from(row.get(1)?)?,
        pin: Pin(row.get(2)?),
        punched_at: parse_local(row.get_ref(3)?.as_str()?)?,
        punch_state: u16::try_from(state).ok(),
        verify_mode: row.get(5)?,
        work_code: row.get(6)?,
        extra: extra
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default(),
        time_zone: row.get(8)?,
        punched_at_utc: Utc
            .timestamp_opt(row.get(9)?, 0)
            .single()
            .unwrap_or_default(),
        received_at: from_ms(row.get(10)?),
        source: Source::parse(source).ok_or_else(|| conversion(format!("source {source:?}")))?,
        journal_id: row.get(12)?,
    })
}

const COMMAND_COLUMNS: &str =
    "id, device_sn, kind, wire, status, attempts, requested_by, created_at, sent_at, \
    finished_at, return_code, message, result";

fn command_from_row(row: &Row<'_>) -> rusqlite::Result<Command> {
    let kind: String = row.get(2)?;
    let status: String = row.get(4)?;
    let result: Option<String> = row.get(12)?;
    Ok(Command {
        id: row.get(0)?,
        device_sn: sn_from(row.get(1)?)?,
        kind: command_kind_from_json(&kind).map_err(|e| conversion(e.to_string()))?,
        wire: row.get(3)?,
        status: CommandStatus::parse(&status)
            .ok_or_else(|| conversion(format!("command status {status:?}")))?,
        attempts: row.get(5)?,
        requested_by: row.get(6)?,
        created_at: from_ms(row.get(7)?),
        sent_at: row.get::<_, Option<i64>>(8)?.map(from_ms),
        finished_at: row.get::<_, Option<i64>>(9)?.map(from_ms),
        return_code: row.get(10)?,
        message: row.get(11)?,
        result: result.and_then(|s| serde_json::from_str(&s).ok()),
    })
}

fn get_command_on(conn: &Connection, id: i64) -> Result<Command> {
    conn.prepare_cached(&format!(
        "SELECT {COMMAND_COLUMNS} FROM commands WHERE id = ?1"
    ))
    .and_then(|mut st| st.query_row([id], command_from_row).optional())
    .map_err(backend)?
    .ok_or_else(|| StoreError::NotFound(format!("command {id}")))
}

const TOKEN_COLUMNS: &str = "id, name, created_at, revoked_at, scope";

fn token_from_row(row: &Row<'_>) -> rusqlite::Result<TokenInfo> {
    let scope: String = row.get(4)?;
    Ok(TokenInfo {
        id: row.get(0)?,
        name: row.get(1)?,
        scope: Scope::parse(&scope).ok_or_else(|| conversion(format!("token scope {scope:?}")))?,
        created_at: from_ms(row.get(2)?),
        revoked_at: row.get::<_, Option<i64>>(3)?.map(from_ms),
    })
}

fn insert_journal(conn: &Connection, raw: &RawEntry) -> Result<i64> {
    let errors = if raw.errors.is_empty() {
        None
    } else {
        Some(serde_json::to_string(&raw.errors).unwrap_or_default())
    };
    conn.prepare_cached(
        "INSERT INTO journal (received_at, device_sn, source, kind, request, remote_addr, body, errors) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .and_then(|mut st| {
        st.execute(params![
            ms(raw.received_at),
            raw.device_sn.as_ref().map(DeviceSn::as_str),
            raw.source.as_str(),
            raw.kind,
            raw.request,
            raw.remote_addr,
            hardening::body_param(&raw.body),
            errors,
        ])
    })
    .map_err(backend)?;
    let id = conn.last_insert_rowid();
    hardening::fill_body(conn, id, &raw.body)?;
    Ok(id)
}

/// The largest multi-row INSERT of punches: 64 rows. A run of punches is written in statements of 64, 32, 16, 8,
/// 4, 2 and 1 rows (64s first, then the remainder in binary: 100 punches are 64 + 32 + 4), so the per-statement
/// work (reset, step set-up, counting) is paid once per 64 punches and at most six times more for the remainder,
/// instead of once per punch left over after the 64s.
const PUNCH_ROWS_PER_INSERT: usize = 64;

/// The columns of `punches` a statement binds once for all its rows when every row has the same value: the
/// terminal, the zone, the source (a push upload's or a pull's punches all share them), the receive time and the
/// journal row (the same for every punch of a batch). SQLite reads a parameter named in several rows without
/// copying it again, so each text is copied once per statement instead of once per punch: those copies were
/// ≈ 2,900 of the ≈ 4,500 instructions binding a punch took (BENCHMARKS.md, "ATTLOG path", issue 6). The last,
/// `outbox_at`, is the punch's outbox event: the receive time while a sink exists, NULL otherwise
/// (store/sqlite/outbox.rs).
const PUNCH_SHARED_COLUMNS: &str =
    "device_sn, time_zone, source, received_at, journal_id, outbox_at";

/// Parameters bound once per statement ([`PUNCH_SHARED_COLUMNS`]): `?1`–`?6`.
const PUNCH_SHARED_PARAMS: usize = 6;

/// The columns bound per row, in [`bind_punch_row`] order.
const PUNCH_ROW_COLUMNS: &str =
    "pin, punched_at, punch_state, verify_mode, work_code, extra, punched_at_utc";

/// Parameters bound per row of a statement that shares [`PUNCH_SHARED_COLUMNS`].
const PUNCH_ROW_PARAMS: usize = 7;

/// `INSERT OR IGNORE INTO punches … VALUES (…), …` for `rows` punches that share [`PUNCH_SHARED_COLUMNS`]:
/// parameters `?1`–`?6` are the shared columns (named in every row), then 7 a row ([`PUNCH_ROW_COLUMNS`]) from `?7`
/// on. A re-sent punch is skipped by the identity index (`punches_identity`).
///
/// `OR IGNORE`, not `ON CONFLICT DO NOTHING`: the upsert clause covers only uniqueness, so the NOT NULL columns
/// would keep their default ABORT, and SQLite gives every multi-row statement that may abort halfway a statement
/// journal, a copy of each page it changes, the cost the per-batch savepoint had (measured at 10 punches per POST:
/// 326,000 → 298,000 instructions a request; BENCHMARKS.md, "Punches written in runs"). `punches` has no CHECK,
/// trigger or enforced foreign key, and every NOT NULL column is bound from a value that cannot be NULL
/// ([`bind_punch_shared`], [`bind_punch_row`]), so the only conflict `OR IGNORE` can resolve is the identity
/// index's, as `ON CONFLICT DO NOTHING` did (`punches_can_conflict_only_on_their_identity` pins that schema).
fn punch_insert_sql(rows: usize) -> String {
    let mut sql = format!(
        "INSERT OR IGNORE INTO punches ({PUNCH_SHARED_COLUMNS}, {PUNCH_ROW_COLUMNS}) VALUES "
    );
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push_str("(?1, ?2, ?3, ?4, ?5, ?6");
        for k in 0..PUNCH_ROW_PARAMS {
            let _ = write!(
                sql,
                ", ?{}",
                PUNCH_SHARED_PARAMS + 1 + r * PUNCH_ROW_PARAMS + k
            );
        }
        sql.push(')');
    }
    sql
}

/// Whether two punches share the columns a statement binds once ([`PUNCH_SHARED_COLUMNS`]; the receive time and
/// journal row are the batch's).
fn shares_columns(a: &crate::domain::NewPunch, b: &crate::domain::NewPunch) -> bool {
    a.device_sn == b.device_sn && a.time_zone == b.time_zone && a.source == b.source
}

/// Bind the shared parameters `?1`–`?6` of a [`punch_insert_sql`] statement from `p`, the first of its rows;
/// `outbox_at` is the events' time (unix ms), `None` when no sink exists.
fn bind_punch_shared(
    st: &mut rusqlite::Statement<'_>,
    p: &crate::domain::NewPunch,
    received_ms: i64,
    journal_id: i64,
    outbox_at: Option<i64>,
) -> rusqlite::Result<()> {
    st.raw_bind_parameter(1, p.device_sn.as_str())?;
    st.raw_bind_parameter(2, p.time_zone.as_str())?;
    st.raw_bind_parameter(3, p.source.as_str())?;
    st.raw_bind_parameter(4, received_ms)?;
    st.raw_bind_parameter(5, journal_id)?;
    st.raw_bind_parameter(6, outbox_at)
}

/// Bind one punch's 7 own parameters ([`PUNCH_ROW_COLUMNS`]) from 1-based parameter `first` on. `scratch` is
/// reused for the text of `extra` (SQLite copies bound text).
fn bind_punch_row(
    st: &mut rusqlite::Statement<'_>,
    first: usize,
    p: &crate::domain::NewPunch,
    scratch: &mut String,
) -> rusqlite::Result<()> {
    st.raw_bind_parameter(first, p.pin.as_str())?;
    match local_text_bytes(p.punched_at) {
        Some(b) => st.raw_bind_parameter(first + 1, std::str::from_utf8(&b).unwrap_or_default())?,
        None => st.raw_bind_parameter(first + 1, local_text(p.punched_at))?,
    }
    st.raw_bind_parameter(first + 2, p.punch_state.map_or(-1, |s| i64::from(s.code())))?;
    st.raw_bind_parameter(first + 3, p.verify_mode.map(|v| v.0))?;
    st.raw_bind_parameter(first + 4, p.work_code.as_deref())?;
    let extra = if p.extra.is_empty() {
        None
    } else {
        Some(extra_json(&p.extra, scratch))
    };
    st.raw_bind_parameter(first + 5, extra)?;
    st.raw_bind_parameter(first + 6, p.punched_at_utc.timestamp())
}

/// Insert punches in order, skipping those already held (the identity index), each stored one with its outbox
/// event when `outbox_at` is set (unix ms; `None`: no sink exists). Returns (stored, duplicates). Each run of
/// punches that share [`PUNCH_SHARED_COLUMNS`] (a whole batch from one terminal) is written in statements of 64,
/// 32, 16, 8, 4, 2 and 1 rows.
fn insert_punches_on(
    conn: &Connection,
    punches: &[crate::domain::NewPunch],
    received_ms: i64,
    journal_id: i64,
    outbox_at: Option<i64>,
) -> Result<(usize, usize)> {
    /// The statements' text for 1, 2, 4 … 64 rows (index: log2 of the rows).
    static SQL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| {
        (0..=PUNCH_ROWS_PER_INSERT.trailing_zeros())
            .map(|power| punch_insert_sql(1 << power))
            .collect()
    });
    let mut n_stored = 0usize;
    let mut scratch = String::new();
    let mut rest = punches;
    while let Some(first) = rest.first() {
        // Only the next statement's rows are looked at, so a pull of 100,000 punches stays linear.
        let window = &rest[..rest.len().min(PUNCH_ROWS_PER_INSERT)];
        let run_len = window
            .iter()
            .position(|p| !shares_columns(first, p))
            .unwrap_or(window.len());
        let rows = 1usize << run_len.ilog2();
        let (chunk, after) = rest.split_at(rows);
        let mut st = conn
            .prepare_cached(&sql[rows.trailing_zeros() as usize])
            .map_err(backend)?;
        bind_punch_shared(&mut st, first, received_ms, journal_id, outbox_at).map_err(backend)?;
        for (r, p) in chunk.iter().enumerate() {
            bind_punch_row(
                &mut st,
                PUNCH_SHARED_PARAMS + 1 + r * PUNCH_ROW_PARAMS,
                p,
                &mut scratch,
            )
            .map_err(backend)?;
        }
        n_stored += st.raw_execute().map_err(backend)?;
        rest = after;
    }
    Ok((n_stored, punches.len() - n_stored))
}

/// A punch's `extra` columns as stored: exactly `serde_json::to_string(extra)`, a JSON array of strings, written
/// into `out` (reused from punch to punch: issue 6, a new `String` and serde's machinery per punch were a visible
/// part of binding the row). Columns with nothing JSON escapes — no `"`, `\\` or control character below U+0020,
/// which is what terminals send — are written as they are; otherwise serde_json writes the whole array.
fn extra_json<'a>(extra: &[String], out: &'a mut String) -> &'a str {
    out.clear();
    let plain = extra
        .iter()
        .all(|column| !column.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\'));
    if plain {
        out.push('[');
        for (idx, column) in extra.iter().enumerate() {
            if idx > 0 {
                out.push(',');
            }
            out.push('"');
            out.push_str(column);
            out.push('"');
        }
        out.push(']');
    } else {
        *out = serde_json::to_string(extra).unwrap_or_default();
    }
    out
}

fn write_batch_on(
    conn: &Connection,
    batch: &Batch,
    facts: &mut GroupFacts,
) -> Result<BatchOutcome> {
    // The journal row is written once, last, with its counts, under the id an insert would have taken now
    // (`MAX(id) + 1`, the rowid rule, counted on from the group's start by GroupFacts), so its row is never
    // rewritten: for a large body that saves rewriting it (hardening.rs); for every other one it saves an UPDATE
    // per request (issue 6). It is in the same savepoint and transaction as the records, so it is durable exactly
    // when they are.
    let journal_id = facts.next_journal_id;
    facts.next_journal_id += 1;
    let received = ms(batch.raw.received_at);
    // An agent batch is checked against its device's sequence first (sqlite/agents.rs).
    let agent_held = match &batch.agent_seq {
        Some(run) => Some(agents::begin_agent_seq(conn, run)?),
        None => None,
    };
    let outbox_at = facts.sinks_exist.then_some(received);
    let (n_stored, n_duplicate) =
        insert_punches_on(conn, &batch.punches, received, journal_id, outbox_at)?;
    for u in &batch.users {
        conn.prepare_cached(
            "INSERT INTO device_users (device_sn, pin, name, privilege, password, card, grp, time_zones, \
             verify_mode, enabled, fields, updated_at, journal_id) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
             ON CONFLICT (device_sn, pin) DO UPDATE SET name = excluded.name, privilege = excluded.privilege, \
             password = excluded.password, card = excluded.card, grp = excluded.grp, \
             time_zones = excluded.time_zones, verify_mode = excluded.verify_mode, fields = excluded.fields, \
             updated_at = excluded.updated_at, journal_id = excluded.journal_id",
        )
        .and_then(|mut st| {
            st.execute(params![
                u.device_sn.as_str(),
                u.pin.as_str(),
                u.name,
                u.privilege,
                u.password,
                u.card,
                u.group,
                u.time_zones,
                u.verify_mode,
                u.enabled,
                serde_json::Value::Object(u.fields.clone()).to_string(),
                ms(u.updated_at),
                journal_id,
            ])
        })
        .map_err(backend)?;
    }
    for t in &batch.templates {
        conn.prepare_cached(
            "INSERT INTO templates (device_sn, pin, kind, bio_type, no, idx, valid, duress, major_ver, minor_ver, \
             format, template, updated_at, journal_id) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) \
             ON CONFLICT (device_sn, pin, kind, bio_type, no, idx) DO UPDATE SET valid = excluded.valid, \
             duress = excluded.duress, major_ver = excluded.major_ver, minor_ver = excluded.minor_ver, \
             format = excluded.format, template = excluded.template, updated_at = excluded.updated_at, \
             journal_id = excluded.journal_id",
        )
        .and_then(|mut st| {
            st.execute(params![
                t.device_sn.as_str(),
                t.pin.as_str(),
                t.kind,
                t.bio_type,
                t.no,
                t.index,
                t.valid,
                t.duress,
                t.major_ver,
                t.minor_ver,
                t.format,
                t.template,
                ms(t.updated_at),
                journal_id,
            ])
        })
        .map_err(backend)?;
    }
    for p in &batch.photos {
        conn.prepare_cached(
            "INSERT INTO photos (device_sn, kind, pin, file_name, taken_at, content, received_at, journal_id) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING",
        )
        .and_then(|mut st| {
            st.execute(params![
                p.device_sn.as_str(),
                p.kind,
                p.pin,
                p.file_name,
                p.taken_at.map(local_text),
                p.content,
                received,
                journal_id,
            ])
        })
        .map_err(backend)?;
    }
    for o in &batch.oplog {
        conn.prepare_cached(
            "INSERT INTO oplog (device_sn, op_type, operator, op_at, objects, journal_id) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
        )
        .and_then(|mut st| {
            st.execute(params![
                o.device_sn.as_str(),
                o.op_type,
                o.operator,
                local_text(o.op_at),
                serde_json::to_string(&o.objects).unwrap_or_default(),
                journal_id,
            ])
        })
        .map_err(backend)?;
    }
    for r in &batch.records {
        let fields: serde_json::Map<String, serde_json::Value> = r
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        conn.prepare_cached(
            "INSERT INTO device_records (device_sn, tag, fields, received_at, journal_id) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
        )
        .and_then(|mut st| {
            st.execute(params![
                r.device_sn.as_str(),
                r.tag,
                serde_json::Value::Object(fields).to_string(),
                received,
                journal_id,
            ])
        })
        .map_err(backend)?;
    }
    // A push stamp is held by the writer after the commit instead (held_stamps.rs).
    if let Some((sn, table, value)) = batch.stamp.as_ref().filter(|_| !batch.stamp_may_lag) {
        conn.prepare_cached(
            "INSERT INTO stamps (device_sn, table_name, value, updated_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (device_sn, table_name) DO UPDATE SET value = excluded.value, \
             updated_at = excluded.updated_at",
        )
        .and_then(|mut st| st.execute(params![sn.as_str(), table, value, received]))
        .map_err(backend)?;
    }
    if let (Some(run), Some(held)) = (&batch.agent_seq, agent_held) {
        agents::finish_agent_seq(
            conn,
            run,
            held,
            journal_id,
            (n_stored, batch.punches.len()),
            received,
        )?;
    }
    if let Some((sn, info)) = &batch.device_info {
        merge_info_on(conn, sn.as_str(), info)?;
    }
    // Every punch is either newly stored or a duplicate, so this counts all records held after the commit.
    let n_records = batch.n_records();
    hardening::insert_journal_with_counts(
        conn,
        &batch.raw,
        journal_id,
        (n_records, n_stored, n_duplicate),
    )?;
    Ok(BatchOutcome {
        journal_id,
        n_stored,
        n_duplicate,
        n_records,
    })
}

/// Forget a user of a device and their templates.
fn delete_user_on(conn: &Connection, sn: &str, pin: &str) -> Result<()> {
    conn.execute(
        "DELETE FROM device_users WHERE device_sn = ?1 AND pin = ?2",
        params![sn, pin],
    )
    .and_then(|_| {
        conn.execute(
            "DELETE FROM templates WHERE device_sn = ?1 AND pin = ?2",
            params![sn, pin],
        )
    })
    .map_err(backend)?;
    Ok(())
}

/// What a succeeded command changes in what punchd knows about the device's users, in the same transaction as
/// the result (so a crash cannot record one without the other).
fn apply_command_effect_on(conn: &Connection, command: &Command) -> Result<()> {
    let sn = command.device_sn.as_str();
    match &command.kind {
        CommandKind::DeleteUser { pin } => delete_user_on(conn, sn, pin)?,
        CommandKind::UpsertUser { .. } => push::apply_upsert_on(conn, command)?,
        CommandKind::DisableUser { pin } | CommandKind::EnableUser { pin } => {
            let enabled = matches!(command.kind, CommandKind::EnableUser { .. });
            conn.execute(
                "UPDATE device_users SET enabled = ?3 WHERE device_sn = ?1 AND pin = ?2",
                params![sn, pin, enabled],
            )
            .map_err(backend)?;
        }
        _ => {}
    }
    Ok(())
}

fn merge_info_on(
    conn: &Connection,
    sn: &str,
    info: &serde_json::Map<String, serde_json::Value>,
) -> Result<()> {
    let current: Option<String> = conn
        .prepare_cached("SELECT info FROM devices WHERE sn = ?1")
        .and_then(|mut st| st.query_row([sn], |r| r.get(0)).optional())
        .map_err(backend)?;
    let Some(current) = current else {
        return Ok(());
    };
    let mut merged = json_map(&current);
    for (k, v) in info {
        merged.insert(k.clone(), v.clone());
    }
    let firmware = info
        .get("FWVersion")
        .or_else(|| info.get("firmware"))
        .and_then(|v| v.as_str());
    conn.prepare_cached(
        "UPDATE devices SET info = ?2, firmware = COALESCE(?3, firmware) WHERE sn = ?1",
    )
    .and_then(|mut st| {
        st.execute(params![
            sn,
            serde_json::Value::Object(merged).to_string(),
            firmware
        ])
    })
    .map_err(backend)?;
    Ok(())
}

fn punch_where(filter: &PunchFilter) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value;
    let mut clauses: Vec<String> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    if let Some(sn) = &filter.device_sn {
        values.push(Value::Text(sn.as_str().to_owned()));
        clauses.push(format!("device_sn = ?{}", values.len()));
    }
    if let Some(pin) = &filter.pin {
        values.push(Value::Text(pin.as_str().to_owned()));
        clauses.push(format!("pin = ?{}", values.len()));
    }
    for (bound, op) in [(&filter.from, ">="), (&filter.to, "<")] {
        match bound {
            Some(TimeBound::Local(t)) => {
                values.push(Value::Text(local_text(*t)));
                clauses.push(format!("punched_at {op} ?{}", values.len()));
            }
            Some(TimeBound::Utc(t)) => {
                values.push(Value::Integer(t.timestamp()));
                clauses.push(format!("punched_at_utc {op} ?{}", values.len()));
            }
            None => {}
        }
    }
    if clauses.is_empty() {
        (String::new(), values)
    } else {
        (format!(" WHERE {}", clauses.join(" AND ")), values)
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<()> {
        self.read(|conn| conn.query_row("SELECT 1", [], |_| Ok(())).map_err(backend))
            .await
    }

    async fn write_batch(&self, batch: Batch) -> Result<BatchOutcome> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Job::Batch(Box::new(batch), tx))
            .map_err(|_| StoreError::Closed)?;
        // The batch is dropped here, on the task that built it (Job::Batch).
        let (outcome, _batch) = rx.await.map_err(|_| StoreError::Closed)?;
        outcome
    }

    async fn write_journal(&self, raw: RawEntry) -> Result<i64> {
        self.write(move |conn| insert_journal(conn, &raw)).await
    }

    async fn upsert_device(&self, c: DeviceContact) -> Result<Device> {
        self.write(move |conn| {
            let now = ms(c.seen_at);
            let revision = next_revision(conn)?;
            conn.prepare_cached(
                "INSERT INTO devices (sn, approval, transport, first_seen, last_seen, last_ip, firmware, \
                 push_version, language, device_type, revision, poll_delay_secs) \
                 VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
                 ON CONFLICT (sn) DO UPDATE SET last_seen = excluded.last_seen, \
                 last_ip = COALESCE(excluded.last_ip, last_ip), \
                 firmware = COALESCE(excluded.firmware, firmware), \
                 push_version = COALESCE(excluded.push_version, push_version), \
                 language = COALESCE(excluded.language, language), \
                 device_type = COALESCE(excluded.device_type, device_type)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    c.sn.as_str(),
                    c.approval_if_new.as_str(),
                    c.transport.as_str(),
                    now,
                    c.ip,
                    c.firmware,
                    c.push_version,
                    c.language,
                    c.device_type,
                    revision,
                    c.poll_delay_secs,
                ])
            })
            .map_err(backend)?;
            get_device_on(conn, c.sn.as_str())
        })
        .await
    }

    async fn create_device(&self, d: Device) -> Result<Device> {
        self.write(move |conn| {
            let revision = next_revision(conn)?;
            let inserted = conn
                .execute(
                    "INSERT INTO devices (sn, approval, transport, alias, site, time_zone, address, comm_key, \
                     pull_interval_secs, clear_after_pull, first_seen, poll_delay_secs, revision, safe_clear) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) ON CONFLICT DO NOTHING",
                    params![
                        d.sn.as_str(),
                        d.approval.as_str(),
                        d.transport.as_str(),
                        d.alias,
                        d.site,
                        d.time_zone,
                        d.address,
                        d.comm_key,
                        d.pull_interval_secs,
                        d.clear_after_pull,
                        ms(d.first_seen),
                        d.poll_delay_secs,
                        revision,
                        d.safe_clear,
                    ],
                )
                .map_err(backend)?;
            if inserted == 0 {
                return Err(StoreError::Conflict(format!("device {} already exists", d.sn)));
            }
            get_device_on(conn, d.sn.as_str())
        })
        .await
    }

    async fn get_device(&self, sn: &DeviceSn) -> Result<Device> {
        let sn = sn.clone();
        self.read(move |conn| get_device_on(conn, sn.as_str()))
            .await
    }

    async fn list_devices(&self) -> Result<Vec<Device>> {
        self.read(|conn| {
            let mut st = conn
                .prepare_cached(&format!("SELECT {DEVICE_COLUMNS} FROM devices ORDER BY sn"))
                .map_err(backend)?;
            let rows = st.query_map([], device_from_row).map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn devices_changed_since(&self, revision: i64) -> Result<(Vec<Device>, i64)> {
        self.read(move |conn| {
            let mut st = conn
                .prepare_cached(&format!(
                    "SELECT {DEVICE_COLUMNS}, revision FROM devices WHERE revision > ?1 ORDER BY revision"
                ))
                .map_err(backend)?;
            let mut max = revision;
            let rows = st
                .query_map([revision], |row| {
                    Ok((device_from_row(row)?, row.get::<_, i64>(22)?))
                })
                .map_err(backend)?;
            let mut devices = Vec::new();
            for row in rows {
                let (device, rev) = row.map_err(backend)?;
                max = max.max(rev);
                devices.push(device);
            }
            Ok((devices, max))
        })
        .await
    }

    async fn update_device(&self, sn: &DeviceSn, patch: DevicePatch) -> Result<Device> {
        let sn = sn.clone();
        self.write(move |conn| {
            let mut device = get_device_on(conn, sn.as_str())?;
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
            let revision = next_revision(conn)?;
            conn.execute(
                "UPDATE devices SET approval = ?2, alias = ?3, site = ?4, time_zone = ?5, poll_delay_secs = ?6, \
                 address = ?7, comm_key = ?8, pull_interval_secs = ?9, clear_after_pull = ?10, transport = ?11, \
                 revision = ?12, safe_clear = ?13 WHERE sn = ?1",
                params![
                    sn.as_str(),
                    device.approval.as_str(),
                    device.alias,
                    device.site,
                    device.time_zone,
                    device.poll_delay_secs,
                    device.address,
                    device.comm_key,
                    device.pull_interval_secs,
                    device.clear_after_pull,
                    device.transport.as_str(),
                    revision,
                    device.safe_clear,
                ],
            )
            .map_err(backend)?;
            Ok(device)
        })
        .await
    }

    async fn record_seen(&self, seen: Vec<SeenUpdate>) -> Result<()> {
        if seen.is_empty() {
            return Ok(());
        }
        self.write(move |conn| {
            let mut st = conn
                .prepare_cached(
                    "UPDATE devices SET last_seen = MAX(COALESCE(last_seen, 0), ?2), \
                     last_ip = COALESCE(?3, last_ip) WHERE sn = ?1",
                )
                .map_err(backend)?;
            for s in &seen {
                st.execute(params![s.sn.as_str(), ms(s.at), s.ip])
                    .map_err(backend)?;
            }
            Ok(())
        })
        .await
    }

    async fn record_device_health(
        &self,
        sn: &DeviceSn,
        at: DateTime<Utc>,
        last_error: Option<String>,
        clock_drift_secs: Option<i64>,
    ) -> Result<()> {
        let sn = sn.clone();
        self.write(move |conn| {
            let seen = if last_error.is_none() { Some(ms(at)) } else { None };
            conn.execute(
                "UPDATE devices SET last_error = ?2, clock_drift_secs = COALESCE(?3, clock_drift_secs), \
                 last_seen = COALESCE(?4, last_seen) WHERE sn = ?1",
                params![sn.as_str(), last_error, clock_drift_secs, seen],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn stamps(&self, sn: &DeviceSn) -> Result<Vec<(String, String)>> {
        // Held first, the table second: a held stamp leaves only after the table has it (held_stamps.rs).
        let held = self.held.of(sn.as_str());
        let sn = sn.clone();
        let mut stamps = self
            .read(move |conn| {
                let mut st = conn
                    .prepare_cached(
                        "SELECT table_name, value FROM stamps WHERE device_sn = ?1 ORDER BY table_name",
                    )
                    .map_err(backend)?;
                let rows = st
                    .query_map([sn.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(backend)?;
                rows.collect::<rusqlite::Result<Vec<(String, String)>>>()
                    .map_err(backend)
            })
            .await?;
        if !held.is_empty() {
            for (table, value) in held {
                match stamps.iter_mut().find(|(t, _)| *t == table) {
                    Some(stored) => stored.1 = value,
                    None => stamps.push((table, value)),
                }
            }
            stamps.sort();
        }
        Ok(stamps)
    }

    async fn write_held(&self) -> Result<()> {
        let held = self.held.clone();
        let written = self.write(move |conn| held.write_on(conn)).await?;
        self.held.written(&written);
        Ok(())
    }

    async fn list_punches(&self, filter: &PunchFilter) -> Result<Vec<Punch>> {
        let filter = filter.clone();
        self.read(move |conn| {
            let (mut where_sql, mut values) = punch_where(&filter);
            if let Some(after) = filter.after_id {
                values.push(rusqlite::types::Value::Integer(after));
                let clause = format!("id > ?{}", values.len());
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
            let mut st = conn.prepare_cached(&sql).map_err(backend)?;
            let rows = st
                .query_map(rusqlite::params_from_iter(values), punch_from_row)
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn count_punches(&self, filter: &PunchFilter) -> Result<u64> {
        let filter = filter.clone();
        self.read(move |conn| {
            let (where_sql, values) = punch_where(&filter);
            let sql = format!("SELECT COUNT(*) FROM punches{where_sql}");
            conn.query_row(&sql, rusqlite::params_from_iter(values), |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as u64)
            .map_err(backend)
        })
        .await
    }

    async fn list_device_users(&self, sn: &DeviceSn) -> Result<Vec<DeviceUser>> {
        let sn = sn.clone();
        self.read(move |conn| {
            let mut st = conn
                .prepare_cached(
                    "SELECT device_sn, pin, name, privilege, password, card, grp, time_zones, verify_mode, enabled, \
                     fields, updated_at FROM device_users WHERE device_sn = ?1 ORDER BY pin",
                )
                .map_err(backend)?;
            let rows = st
                .query_map([sn.as_str()], |r| {
                    Ok(DeviceUser {
                        device_sn: sn_from(r.get(0)?)?,
                        pin: Pin(r.get(1)?),
                        name: r.get(2)?,
                        privilege: r.get(3)?,
                        password: r.get(4)?,
                        card: r.get(5)?,
                        group: r.get(6)?,
                        time_zones: r.get(7)?,
                        verify_mode: r.get(8)?,
                        enabled: r.get(9)?,
                        fields: json_map(&r.get::<_, String>(10)?),
                        updated_at: from_ms(r.get(11)?),
                    })
                })
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn list_templates(&self, sn: &DeviceSn, pin: Option<&Pin>) -> Result<Vec<Template>> {
        let sn = sn.clone();
        let pin = pin.cloned();
        self.read(move |conn| {
            let mut st = conn
                .prepare_cached(
                    "SELECT device_sn, pin, kind, bio_type, no, idx, valid, duress, major_ver, minor_ver, format, \
                     template, updated_at FROM templates WHERE device_sn = ?1 AND (?2 IS NULL OR pin = ?2) \
                     ORDER BY pin, kind, bio_type, no, idx",
                )
                .map_err(backend)?;
            let rows = st
                .query_map(params![sn.as_str(), pin.as_ref().map(Pin::as_str)], |r| {
                    Ok(Template {
                        device_sn: sn_from(r.get(0)?)?,
                        pin: Pin(r.get(1)?),
                        kind: r.get(2)?,
                        bio_type: r.get(3)?,
                        no: r.get(4)?,
                        index: r.get(5)?,
                        valid: r.get(6)?,
                        duress: r.get(7)?,
                        major_ver: r.get(8)?,
                        minor_ver: r.get(9)?,
                        format: r.get(10)?,
                        template: r.get(11)?,
                        updated_at: from_ms(r.get(12)?),
                    })
                })
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn delete_device_user(&self, sn: &DeviceSn, pin: &Pin) -> Result<()> {
        let (sn, pin) = (sn.clone(), pin.clone());
        self.write(move |conn| delete_user_on(conn, sn.as_str(), pin.as_str()))
            .await
    }

    async fn get_journal(&self, id: i64) -> Result<JournalEntry> {
        self.read(move |conn| {
            conn.query_row(
                "SELECT id, received_at, device_sn, source, kind, request, remote_addr, body, n_records, n_stored, \
                 n_duplicate, errors FROM journal WHERE id = ?1",
                [id],
                |r| {
                    let sn: Option<String> = r.get(2)?;
                    let source: String = r.get(3)?;
                    let errors: Option<String> = r.get(11)?;
                    Ok(JournalEntry {
                        id: r.get(0)?,
                        received_at: from_ms(r.get(1)?),
                        device_sn: sn.map(sn_from).transpose()?,
                        source: Source::parse(&source)
                            .ok_or_else(|| conversion(format!("source {source:?}")))?,
                        kind: r.get(4)?,
                        request: r.get(5)?,
                        remote_addr: r.get(6)?,
                        body: r.get(7)?,
                        n_records: r.get::<_, i64>(8)? as usize,
                        n_stored: r.get::<_, i64>(9)? as usize,
                        n_duplicate: r.get::<_, i64>(10)? as usize,
                        errors: errors
                            .and_then(|e| serde_json::from_str::<Vec<LineIssue>>(&e).ok())
                            .unwrap_or_default(),
                    })
                },
            )
            .optional()
            .map_err(backend)?
            .ok_or_else(|| StoreError::NotFound(format!("journal entry {id}")))
        })
        .await
    }

    async fn enqueue_commands(
        &self,
        commands: Vec<NewCommand>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Command>> {
        self.write(move |conn| {
            let mut out = Vec::with_capacity(commands.len());
            for c in &commands {
                let kind = serde_json::to_string(&c.kind)
                    .map_err(|e| StoreError::Backend(format!("encoding command: {e}")))?;
                conn.prepare_cached(
                    "INSERT INTO commands (device_sn, kind, wire, status, requested_by, created_at) \
                     VALUES (?1, ?2, ?3, 'queued', ?4, ?5)",
                )
                .and_then(|mut st| {
                    st.execute(params![c.device_sn.as_str(), kind, c.wire, c.requested_by, ms(now)])
                })
                .map_err(backend)?;
                out.push(get_command_on(conn, conn.last_insert_rowid())?);
            }
            Ok(out)
        })
        .await
    }

    async fn queued_commands(&self, sn: &DeviceSn, max: usize) -> Result<Vec<Command>> {
        let sn = sn.clone();
        self.read(move |conn| {
            let mut st = conn
                .prepare_cached(&format!(
                    "SELECT {COMMAND_COLUMNS} FROM commands WHERE device_sn = ?1 AND status = 'queued' \
                     ORDER BY id LIMIT ?2"
                ))
                .map_err(backend)?;
            let rows = st
                .query_map(params![sn.as_str(), max as i64], command_from_row)
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn mark_sent(&self, ids: Vec<i64>, now: DateTime<Utc>) -> Result<Vec<i64>> {
        self.write(move |conn| {
            let mut marked = Vec::with_capacity(ids.len());
            let mut st = conn
                .prepare_cached(
                    "UPDATE commands SET status = 'sent', attempts = attempts + 1, sent_at = ?2 \
                     WHERE id = ?1 AND status = 'queued'",
                )
                .map_err(backend)?;
            for id in ids {
                if st.execute(params![id, ms(now)]).map_err(backend)? > 0 {
                    marked.push(id);
                }
            }
            Ok(marked)
        })
        .await
    }

    async fn complete_commands(
        &self,
        sn: &DeviceSn,
        completions: Vec<CommandCompletion>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Command>> {
        let sn = sn.clone();
        self.write(move |conn| {
            let mut out = Vec::new();
            for c in &completions {
                let status = if c.return_code >= 0 {
                    CommandStatus::Succeeded
                } else {
                    CommandStatus::Failed
                };
                let changed = conn
                    .prepare_cached(
                        "UPDATE commands SET status = ?3, finished_at = ?4, return_code = ?5, message = ?6, \
                         result = ?7 WHERE id = ?1 AND device_sn = ?2 AND status IN ('sent', 'queued', 'expired')",
                    )
                    .and_then(|mut st| {
                        st.execute(params![
                            c.id,
                            sn.as_str(),
                            status.as_str(),
                            ms(now),
                            c.return_code,
                            c.message,
                            c.result.as_ref().map(|v| v.to_string()),
                        ])
                    })
                    .map_err(backend)?;
                if changed > 0 {
                    let command = get_command_on(conn, c.id)?;
                    if c.return_code >= 0 {
                        apply_command_effect_on(conn, &command)?;
                    }
                    out.push(command);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn sweep_commands(
        &self,
        now: DateTime<Utc>,
        sent_before: DateTime<Utc>,
        queued_before: DateTime<Utc>,
        max_attempts: u32,
    ) -> Result<(usize, usize)> {
        self.write(move |conn| {
            let expired_sent = conn
                .execute(
                    "UPDATE commands SET status = 'expired', finished_at = ?1, \
                     message = 'no result after ' || attempts || ' deliveries' \
                     WHERE status = 'sent' AND sent_at < ?2 AND attempts >= ?3",
                    params![ms(now), ms(sent_before), max_attempts],
                )
                .map_err(backend)?;
            let requeued = conn
                .execute(
                    "UPDATE commands SET status = 'queued' WHERE status = 'sent' AND sent_at < ?1",
                    params![ms(sent_before)],
                )
                .map_err(backend)?;
            let expired_queued = conn
                .execute(
                    "UPDATE commands SET status = 'expired', finished_at = ?1, \
                     message = 'not delivered: the device did not poll in time' \
                     WHERE status = 'queued' AND created_at < ?2",
                    params![ms(now), ms(queued_before)],
                )
                .map_err(backend)?;
            Ok((requeued, expired_sent + expired_queued))
        })
        .await
    }

    async fn list_commands(&self, filter: &CommandFilter) -> Result<Vec<Command>> {
        let filter = filter.clone();
        self.read(move |conn| {
            let limit = if filter.limit == 0 {
                -1
            } else {
                filter.limit as i64
            };
            let mut st = conn
                .prepare_cached(&format!(
                    "SELECT {COMMAND_COLUMNS} FROM commands WHERE (?1 IS NULL OR device_sn = ?1) \
                     AND (?2 IS NULL OR status = ?2) ORDER BY id DESC LIMIT ?3"
                ))
                .map_err(backend)?;
            let rows = st
                .query_map(
                    params![
                        filter.device_sn.as_ref().map(DeviceSn::as_str),
                        filter.status.map(CommandStatus::as_str),
                        limit
                    ],
                    command_from_row,
                )
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn get_command(&self, id: i64) -> Result<Command> {
        self.read(move |conn| get_command_on(conn, id)).await
    }

    async fn devices_with_queued_commands(&self) -> Result<Vec<DeviceSn>> {
        self.read(|conn| {
            let mut st = conn
                .prepare_cached("SELECT DISTINCT device_sn FROM commands WHERE status = 'queued'")
                .map_err(backend)?;
            let rows = st.query_map([], |r| sn_from(r.get(0)?)).map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn create_token(
        &self,
        name: &str,
        hash: &str,
        scope: Scope,
        now: DateTime<Utc>,
    ) -> Result<TokenInfo> {
        let (name, hash) = (name.to_owned(), hash.to_owned());
        self.write(move |conn| {
            let inserted = conn
                .execute(
                    "INSERT INTO api_tokens (name, hash, created_at, scope) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT DO NOTHING",
                    params![name, hash, ms(now), scope.as_str()],
                )
                .map_err(backend)?;
            if inserted == 0 {
                return Err(StoreError::Conflict(format!("a token named {name:?} exists")));
            }
            conn.query_row(
                &format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE name = ?1"),
                [&name],
                token_from_row,
            )
            .map_err(backend)
        })
        .await
    }

    async fn find_token(&self, hash: &str) -> Result<Option<TokenInfo>> {
        let hash = hash.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE hash = ?1 AND revoked_at IS NULL"
            ))
            .and_then(|mut st| st.query_row([&hash], token_from_row).optional())
            .map_err(backend)
        })
        .await
    }

    async fn list_tokens(&self) -> Result<Vec<TokenInfo>> {
        self.read(|conn| {
            let mut st = conn
                .prepare_cached(&format!(
                    "SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY id"
                ))
                .map_err(backend)?;
            let rows = st.query_map([], token_from_row).map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn revoke_token(&self, name: &str, now: DateTime<Utc>) -> Result<()> {
        let name = name.to_owned();
        self.write(move |conn| {
            let n = conn
                .execute(
                    "UPDATE api_tokens SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
                    params![name, ms(now)],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("live token {name:?}")));
            }
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first column of every row `sql` returns, as text.
    fn texts(conn: &Connection, sql: &str) -> Vec<String> {
        conn.prepare(sql)
            .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
            .expect("rows")
    }

    /// A read asked for from another runtime (the sinks' low-priority one) runs on the blocking pool of the
    /// runtime that opened the store, at its priority. Fails when reads run on the caller's own threads.
    #[test]
    fn reads_run_on_the_opening_runtimes_threads_whoever_asks() {
        let runtime = |name: &str| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name(name)
                .build()
                .expect("runtime")
        };
        let opener = runtime("store-opener");
        let caller = runtime("store-caller");
        let dir = tempfile::tempdir().expect("temp dir");
        let store = opener
            .block_on(async { SqliteStore::open(&dir.path().join("r.db"), Durability::CrashSafe) })
            .expect("open");
        let (asker, reader) = caller.block_on(async {
            tokio::spawn(async move {
                let asker = std::thread::current().name().map(str::to_owned);
                let reader = store
                    .read(|_| Ok(std::thread::current().name().map(str::to_owned)))
                    .await
                    .expect("read");
                (asker, reader)
            })
            .await
            .expect("task")
        });
        assert_eq!(
            (asker.as_deref(), reader.as_deref()),
            (Some("store-caller"), Some("store-opener"))
        );
    }

    #[test]
    fn parse_local_reads_what_local_text_writes_and_refuses_what_chrono_refuses() {
        for s in [
            "2026-11-30 07:05:03",
            "2024-02-29 23:59:59",
            "0001-01-01 00:00:00",
            "2026-02-29 10:00:00",
            "2026-13-01 10:00:00",
            "2026-11-30 24:00:00",
            "2026-11-30 10:60:00",
            "2026-11-30 10:00",
            "2026-11-3a 10:00:00",
            "+026-11-30 10:00:00",
        ] {
            let chrono = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").ok();
            assert_eq!(parse_local(s).ok(), chrono, "{s}");
            if let Some(t) = chrono {
                assert_eq!(
                    parse_local(&local_text(t)).ok(),
                    Some(t),
                    "round trip of {s}"
                );
            }
        }
    }

    /// `extra` is serde_json's text of the columns, byte for byte, for every character below U+0080 alone and
    /// within text, and for text beyond ASCII.
    #[test]
    fn extra_json_is_serde_jsons_text() {
        let mut scratch = String::new();
        let mut columns: Vec<Vec<String>> = (0u8..128)
            .map(|b| vec![char::from(b).to_string(), format!("a{}b", char::from(b))])
            .collect();
        columns.push(vec![
            "张三".into(),
            "Zoë".into(),
            String::new(),
            "\u{2028}".into(),
        ]);
        columns.push(vec!["0".into()]);
        for extra in columns {
            let want = serde_json::to_string(&extra).expect("json");
            assert_eq!(extra_json(&extra, &mut scratch), want, "{extra:?}");
        }
    }

    /// The stored text of a punch row's `extra` and local time, pinned: what the SQLite store writes must not
    /// change under it (both the 64-row statement and the one-row one are used: 70 punches).
    #[tokio::test]
    async fn stored_extra_and_local_time_texts_are_pinned() {
        use crate::domain::{NewPunch, Pin, PunchState, Source, VerifyMode};
        use crate::store::{Batch, RawEntry, Store};
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("pinned.db");
        let store = SqliteStore::open(&path, Durability::CrashSafe).expect("open");
        let sn = DeviceSn::parse("PINNED0001").expect("sn");
        let extras = |i: usize| -> Vec<String> {
            match i % 4 {
                0 => vec![],
                1 => vec!["0".into(), "255".into()],
                2 => vec![
                    "a\"b".into(),
                    "c\\d".into(),
                    "\u{1}\t\n".into(),
                    "é\u{7f}".into(),
                    String::new(),
                ],
                _ => vec![String::new()],
            }
        };
        let base = chrono::NaiveDate::from_ymd_opt(2026, 3, 9)
            .and_then(|d| d.and_hms_opt(7, 5, 3))
            .expect("valid");
        let punches: Vec<NewPunch> = (0..70)
            .map(|i| NewPunch {
                device_sn: sn.clone(),
                pin: Pin(format!("{i}")),
                punched_at: base + chrono::Duration::seconds(3607 * i as i64),
                time_zone: "UTC".into(),
                punched_at_utc: (base + chrono::Duration::seconds(3607 * i as i64)).and_utc(),
                punch_state: Some(PunchState::from_code(0)),
                verify_mode: Some(VerifyMode(15)),
                work_code: None,
                extra: extras(i),
                source: Source::Push,
            })
            .collect();
        let mut batch = Batch::new(RawEntry {
            received_at: Utc::now(),
            device_sn: Some(sn.clone()),
            source: Source::Push,
            kind: "ATTLOG".into(),
            request: "test".into(),
            remote_addr: None,
            body: b"lines".to_vec(),
            errors: Vec::new(),
        });
        batch.punches = punches;
        let outcome = store.write_batch(batch).await.expect("write");
        assert_eq!(outcome.n_stored, 70);
        let conn = Connection::open(&path).expect("reader");
        let rows: Vec<(String, Option<String>)> = conn
            .prepare("SELECT punched_at, extra FROM punches ORDER BY id")
            .and_then(|mut st| {
                st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()
            })
            .expect("rows");
        assert_eq!(rows.len(), 70);
        assert_eq!(
            rows[..5],
            [
                ("2026-03-09 07:05:03".to_owned(), None),
                (
                    "2026-03-09 08:05:10".to_owned(),
                    Some(r#"["0","255"]"#.to_owned())
                ),
                (
                    "2026-03-09 09:05:17".to_owned(),
                    Some("[\"a\\\"b\",\"c\\\\d\",\"\\u0001\\t\\n\",\"é\u{7f}\",\"\"]".to_owned())
                ),
                ("2026-03-09 10:05:24".to_owned(), Some(r#"[""]"#.to_owned())),
                ("2026-03-09 11:05:31".to_owned(), None),
            ]
        );
        for (i, (local, extra)) in rows.iter().enumerate() {
            let want = base + chrono::Duration::seconds(3607 * i as i64);
            assert_eq!(local, &want.to_string(), "row {i}");
            assert_eq!(extra, &rows[i % 4].1, "row {i}");
        }
        assert_eq!(rows[69].0, "2026-03-12 04:13:06");
    }

    /// `punch_insert_sql` uses `OR IGNORE`, which is `ON CONFLICT DO NOTHING` only while the identity index is the
    /// one conflict a punch row can meet: no CHECK, trigger or foreign key on `punches`, and every NOT NULL column
    /// bound from a value that cannot be NULL. A migration that changes this must revisit that statement.
    #[test]
    fn punches_can_conflict_only_on_their_identity() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("schema.db");
        drop(SqliteStore::open(&path, Durability::CrashSafe).expect("open"));
        let conn = Connection::open(&path).expect("reader");
        let table_sql: String = conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'punches'",
                [],
                |r| r.get(0),
            )
            .expect("punches");
        let upper = table_sql.to_uppercase();
        assert!(
            !upper.contains("CHECK") && !upper.contains("REFERENCES"),
            "{table_sql}"
        );
        let triggers: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'punches'",
                [],
                |r| r.get(0),
            )
            .expect("triggers");
        assert_eq!(triggers, 0);
        assert_eq!(
            texts(
                &conn,
                "SELECT name FROM pragma_table_info('punches') WHERE \"notnull\" = 1 ORDER BY cid"
            ),
            [
                "device_sn",
                "pin",
                "punched_at",
                "punch_state",
                "time_zone",
                "punched_at_utc",
                "received_at",
                "source",
                "journal_id"
            ]
        );
        assert_eq!(
            texts(
                &conn,
                "SELECT name FROM pragma_index_list('punches') WHERE \"unique\" = 1"
            ),
            ["punches_identity"]
        );
    }

    /// The punch statements bind the terminal, zone, source, receive time and journal row once for a run of rows
    /// that share them: a batch that mixes terminals, zones and sources, with re-sent punches among them, must
    /// store every new row with its own values, in order, under one range of ids, and count the re-sent ones.
    #[tokio::test]
    async fn mixed_runs_of_punches_store_each_rows_own_columns_in_order() {
        use crate::domain::{NewPunch, Pin, PunchState, Source, VerifyMode};
        use crate::store::{Batch, RawEntry, Store};
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("runs.db");
        let store = SqliteStore::open(&path, Durability::CrashSafe).expect("open");
        let base = chrono::NaiveDate::from_ymd_opt(2026, 11, 2)
            .and_then(|d| d.and_hms_opt(8, 0, 0))
            .expect("valid");
        let punch = |sn: &str, zone: &str, source: Source, i: i64| NewPunch {
            device_sn: DeviceSn::parse(sn).expect("sn"),
            pin: Pin(format!("{}", 1000 + i)),
            punched_at: base + chrono::Duration::seconds(61 * i),
            time_zone: zone.into(),
            punched_at_utc: (base + chrono::Duration::seconds(61 * i)).and_utc(),
            punch_state: Some(PunchState::from_code((i % 2) as u16)),
            verify_mode: Some(VerifyMode(1)),
            work_code: None,
            extra: Vec::new(),
            source,
        };
        let batch_of = |punches: Vec<NewPunch>, ms: i64| {
            let mut batch = Batch::new(RawEntry {
                received_at: Utc.timestamp_millis_opt(ms).single().expect("ms"),
                device_sn: None,
                source: Source::Import,
                kind: "test".into(),
                request: "test".into(),
                remote_addr: None,
                body: b"rows".to_vec(),
                errors: Vec::new(),
            });
            batch.punches = punches;
            batch
        };
        // First batch: 100 punches of one terminal (statements of 64, 32 and 4 rows).
        let first: Vec<NewPunch> = (0..100)
            .map(|i| punch("RUNA0001", "UTC", Source::Push, i))
            .collect();
        let one = store
            .write_batch(batch_of(first.clone(), 1_000))
            .await
            .expect("first");
        assert_eq!((one.n_stored, one.n_duplicate), (100, 0));
        // Second batch: runs of 70, 3, 1 and 40 rows that differ in terminal, zone or source, with every fifth
        // row of the first run a re-sent punch of the first batch.
        let mut second = Vec::new();
        for i in 0..70 {
            second.push(if i % 5 == 0 {
                first[i as usize].clone()
            } else {
                punch("RUNA0001", "UTC", Source::Push, 200 + i)
            });
        }
        for i in 0..3 {
            second.push(punch("RUNB0002", "Europe/Berlin", Source::Import, 300 + i));
        }
        second.push(punch("RUNB0002", "Africa/Lagos", Source::Import, 400));
        for i in 0..40 {
            second.push(punch("RUNB0002", "Africa/Lagos", Source::Pull, 500 + i));
        }
        let two = store
            .write_batch(batch_of(second.clone(), 2_000))
            .await
            .expect("second");
        assert_eq!((two.n_stored, two.n_duplicate), (114 - 14, 14));
        type Row = (i64, String, String, String, String, String, i64, i64, i64);
        let rows: Vec<Row> = Connection::open(&path)
            .expect("reader")
            .prepare(
                "SELECT id, device_sn, pin, punched_at, time_zone, source, punch_state, received_at, \
                 journal_id FROM punches ORDER BY id",
            )
            .and_then(|mut st| {
                st.query_map([], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                    ))
                })?
                .collect::<rusqlite::Result<_>>()
            })
            .expect("rows");
        let expected: Vec<Row> = first
            .iter()
            .map(|p| (p, 1_000, one.journal_id))
            .chain(
                second
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i >= 70 || i % 5 != 0)
                    .map(|(_, p)| (p, 2_000, two.journal_id)),
            )
            .enumerate()
            .map(|(idx, (p, ms, journal))| {
                (
                    idx as i64 + 1,
                    p.device_sn.as_str().to_owned(),
                    p.pin.as_str().to_owned(),
                    p.punched_at.to_string(),
                    p.time_zone.clone(),
                    p.source.as_str().to_owned(),
                    i64::from(p.punch_state.expect("state").code()),
                    ms,
                    journal,
                )
            })
            .collect();
        assert_eq!(rows, expected);
    }

    #[test]
    fn local_text_is_what_display_prints() {
        use chrono::Datelike;
        let base = chrono::NaiveDate::from_ymd_opt(2026, 3, 9)
            .and_then(|d| d.and_hms_opt(7, 5, 3))
            .expect("valid");
        for t in [
            base,
            base.with_nanosecond(123_000_000).expect("valid"),
            base.with_nanosecond(1_500_000_000).expect("leap second"),
            base.with_year(1).expect("valid"),
            base.with_year(9999).expect("valid"),
            base.with_year(12345).expect("valid"),
            base.with_year(-3).expect("valid"),
        ] {
            assert_eq!(local_text(t), t.with_nanosecond(0).unwrap_or(t).to_string());
        }
        assert_eq!(local_text(base), "2026-03-09 07:05:03");
    }

    /// A batch of one punch of `pin` from terminal `sn`, received now.
    fn one_punch(sn: &str, pin: &str) -> crate::store::Batch {
        use crate::domain::{NewPunch, Pin, PunchState, Source};
        let sn = DeviceSn::parse(sn).expect("sn");
        let at = chrono::NaiveDate::from_ymd_opt(2026, 3, 9)
            .and_then(|d| d.and_hms_opt(7, 5, 3))
            .expect("valid");
        let mut batch = crate::store::Batch::new(crate::store::RawEntry {
            received_at: Utc::now(),
            device_sn: Some(sn.clone()),
            source: Source::Push,
            kind: "ATTLOG".into(),
            request: "test".into(),
            remote_addr: None,
            body: pin.as_bytes().to_vec(),
            errors: Vec::new(),
        });
        batch.punches = vec![NewPunch {
            device_sn: sn,
            pin: Pin(pin.into()),
            punched_at: at,
            time_zone: "UTC".into(),
            punched_at_utc: at.and_utc(),
            punch_state: Some(PunchState::from_code(0)),
            verify_mode: None,
            work_code: None,
            extra: Vec::new(),
            source: Source::Push,
        }];
        batch
    }

    /// In one group (queued while a job holds the writer): a write, then batches of PIN 1, "poison", 3 and a
    /// write again. The failing batch fails alone; the batches written together were rolled back and written
    /// again; the writes (which run after the batches) are kept.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_batch_fails_alone_and_the_groups_other_writes_are_kept() {
        use crate::store::Store;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("group.db");
        let store = SqliteStore::open(&path, Durability::CrashSafe).expect("open");
        Connection::open(&path)
            .and_then(|c| {
                c.execute_batch(
                    "CREATE TRIGGER poison BEFORE INSERT ON punches WHEN NEW.pin = 'poison' \
                     BEGIN SELECT RAISE(ABORT, 'poisoned punch'); END;",
                )
            })
            .expect("trigger");
        let holder = store.clone();
        let held = tokio::spawn(async move {
            holder
                .write(|_| {
                    std::thread::sleep(std::time::Duration::from_millis(300));
                    Ok(())
                })
                .await
        });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let stamp = |table: &'static str| {
            store.write(move |conn| {
                conn.execute(
                    "INSERT INTO stamps (device_sn, table_name, value, updated_at) VALUES ('W1', ?1, 'v', 0)",
                    [table],
                )
                .map(|_| ())
                .map_err(backend)
            })
        };
        let (w1, a, b, c, w2) = tokio::join!(
            stamp("before"),
            store.write_batch(one_punch("GROUP0001", "1")),
            store.write_batch(one_punch("GROUP0002", "poison")),
            store.write_batch(one_punch("GROUP0003", "3")),
            stamp("after"),
        );
        held.await.expect("holder").expect("held");
        w1.expect("write before the batches");
        w2.expect("write after the batches");
        assert_eq!(a.expect("1 stored").n_stored, 1);
        let err = b.expect_err("the poisoned batch fails");
        assert!(err.to_string().contains("poisoned punch"), "{err}");
        assert_eq!(c.expect("3 stored").n_stored, 1);
        let conn = Connection::open(&path).expect("reader");
        let strings = |sql: &str| texts(&conn, sql);
        assert_eq!(strings("SELECT pin FROM punches ORDER BY pin"), ["1", "3"]);
        assert_eq!(
            strings("SELECT CAST(body AS TEXT) FROM journal ORDER BY id"),
            ["1", "3"]
        );
        assert_eq!(
            strings("SELECT table_name FROM stamps WHERE device_sn = 'W1' ORDER BY table_name"),
            ["after", "before"]
        );
    }

    /// A push stamp (`stamp_may_lag`) is held after its upload commits: the store's readers see it at once, the
    /// table gets it with a later write (here `write_held`, as `punchd serve` stops). The pull cursor is written
    /// with its batch. A removed device's held stamps are gone, also from the table after the next write.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn push_stamps_are_held_after_the_commit_and_written_later() {
        use crate::store::operations::OperationsStore;
        use crate::store::Store;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("held.db");
        let store = SqliteStore::open(&path, Durability::CrashSafe).expect("open");
        let table = |sql: &str| texts(&Connection::open(&path).expect("reader"), sql);
        let stamped = |sn: &str, pin: &str, table: &str, value: &str, may_lag: bool| {
            let mut batch = one_punch(sn, pin);
            batch.stamp = Some((DeviceSn::parse(sn).expect("sn"), table.into(), value.into()));
            batch.stamp_may_lag = may_lag;
            batch
        };
        for sn in ["HELD0001", "HELD0002"] {
            let sn = DeviceSn::parse(sn).expect("sn");
            store
                .upsert_device(crate::store::contract::contact(
                    &sn,
                    Utc::now(),
                    Approval::Approved,
                ))
                .await
                .expect("device");
        }
        store
            .write_batch(stamped("HELD0001", "1", "ATTLOG", "100", true))
            .await
            .expect("upload");
        store
            .write_batch(stamped("HELD0001", "2", "ATTLOG", "101", true))
            .await
            .expect("upload");
        store
            .write_batch(stamped("HELD0001", "3", "pull:attendance", "3|x|3", false))
            .await
            .expect("pull");
        store
            .write_batch(stamped("HELD0002", "1", "OPERLOG", "7", true))
            .await
            .expect("upload");
        let s = |t: &str, v: &str| (t.to_owned(), v.to_owned());
        let sn1 = DeviceSn::parse("HELD0001").expect("sn");
        let sn2 = DeviceSn::parse("HELD0002").expect("sn");
        assert_eq!(
            store.stamps(&sn1).await.expect("stamps"),
            [s("ATTLOG", "101"), s("pull:attendance", "3|x|3")]
        );
        // Held: not in the table yet (the writer writes held stamps a second after the last time it did).
        assert_eq!(
            table("SELECT device_sn || ' ' || table_name || ' ' || value FROM stamps ORDER BY 1"),
            ["HELD0001 pull:attendance 3|x|3"]
        );
        store
            .delete_device(&sn2, Utc::now())
            .await
            .expect("removed");
        assert_eq!(store.stamps(&sn2).await.expect("stamps"), []);
        store.write_held().await.expect("written");
        assert_eq!(
            table("SELECT device_sn || ' ' || table_name || ' ' || value FROM stamps ORDER BY 1"),
            ["HELD0001 ATTLOG 101", "HELD0001 pull:attendance 3|x|3"]
        );
        assert_eq!(
            store.stamps(&sn1).await.expect("stamps"),
            [s("ATTLOG", "101"), s("pull:attendance", "3|x|3")]
        );
        assert!(store.held.is_empty());
    }

    /// Queue `batches` behind a job that holds the writer for a moment, so they are written as one group; returns
    /// how many were stored.
    async fn write_as_one_group(store: &SqliteStore, batches: Vec<crate::store::Batch>) -> usize {
        use crate::store::Store;
        let holder = store.clone();
        let held = tokio::spawn(async move {
            holder
                .write(|_| {
                    std::thread::sleep(std::time::Duration::from_millis(200));
                    Ok(())
                })
                .await
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let outcomes =
            futures_util::future::join_all(batches.into_iter().map(|b| store.write_batch(b))).await;
        held.await.expect("holder").expect("held");
        outcomes
            .into_iter()
            .map(|o| o.expect("stored").n_stored)
            .sum()
    }

    /// The batches of one group take consecutive journal ids, each punch linked to its own upload's row, and a
    /// sink another process created between two groups gets the events of the second group's punches and only
    /// those (GroupFacts).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_groups_batches_take_their_own_journal_ids_and_see_a_sink_made_elsewhere() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("facts.db");
        let store = SqliteStore::open(&path, Durability::CrashSafe).expect("open");
        let first = ["1", "2", "3"]
            .map(|pin| one_punch("FACTS001", pin))
            .to_vec();
        assert_eq!(write_as_one_group(&store, first).await, 3);
        Connection::open(&path)
            .and_then(|c| {
                c.execute(
                    "INSERT INTO sinks (name, kind, config, created_at) VALUES ('elsewhere', 'webhook', '{}', 0)",
                    [],
                )
            })
            .expect("sink made by another connection");
        let second = ["4", "5"].map(|pin| one_punch("FACTS002", pin)).to_vec();
        assert_eq!(write_as_one_group(&store, second).await, 2);
        let conn = Connection::open(&path).expect("reader");
        // Each punch's journal row is the upload that carried it (one_punch's body is the PIN).
        assert_eq!(
            texts(
                &conn,
                "SELECT p.pin || '=' || CAST(j.body AS TEXT) FROM punches p JOIN journal j ON j.id = p.journal_id \
                 ORDER BY p.pin"
            ),
            ["1=1", "2=2", "3=3", "4=4", "5=5"]
        );
        assert_eq!(
            texts(
                &conn,
                "SELECT CAST(COUNT(DISTINCT id) AS TEXT) FROM journal"
            ),
            ["5"]
        );
        assert_eq!(
            texts(
                &conn,
                "SELECT p.pin FROM outbox o JOIN punches p ON p.id = o.punch_id ORDER BY p.pin"
            ),
            ["4", "5"]
        );
    }
}
