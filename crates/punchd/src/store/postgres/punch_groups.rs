//! Group commit of punch batches on PostgreSQL: the batches of concurrent requests written by one statement.
//!
//! A terminal's ATTLOG upload, a pull or an import is a batch of punches, its raw journal entry and perhaps a
//! stamp ([`super::punches_only`]). Written one statement per batch, PostgreSQL pays a statement's start, a
//! commit record and a WAL flush per request, which on this project's 2-core machine held one instance at about
//! 3,200 single-punch POSTs/s against issue 10's 4,000 (BENCHMARKS.md, "PostgreSQL: one instance and two"). Here
//! every caller queues its batch, and a writer task takes everything queued (up to [`MAX_BATCHES`] batches and
//! [`MAX_PUNCHES`] punches) and writes it with **one statement** ([`GROUP_STATEMENT`]): each batch gets its own
//! journal id and journal row with its own counts, its punches carry that id, re-sent punches are skipped by the
//! identity index as before, and the stamps are upserted. The statement commits on its own, so a group is stored
//! whole or not at all, and no caller's `Ok` comes before the commit. Under light load a batch finds no writer at
//! work and is written alone, at once; under load the groups grow by themselves while a writer is busy, as the
//! SQLite writer's group commit does (perf-limits.md: "group commit … adds 10–30 % for small batches").
//!
//! One writer works at a time until [`PARALLEL_FROM`] punches wait; then up to [`WRITERS`] do, so large uploads
//! spread over PostgreSQL's cores while small ones share statements and commits. Before, every upload took a free
//! writer of its own (four at once), so single-punch uploads were written in groups a third the size, and two
//! instances on one database in groups smaller still (BENCHMARKS.md, "PostgreSQL: small uploads wait for the
//! writer at work").
//!
//! If a group's statement fails, each of its batches is written again alone, so one batch PostgreSQL refuses
//! fails only its own request. The write runs in a task of its own: a caller that goes away (a terminal that hung
//! up) does not cancel the others' write.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use deadpool_postgres::Object;
use tokio::sync::oneshot;

use super::{backend, col, errors_json, hardening, PgStore, PunchColumns};
use crate::store::{Batch, BatchOutcome, Result, StoreError};

/// Groups being written at once at most, each on its own pooled connection (of [`super::POOL_SIZE`]): while one
/// group's statement runs the next ones collect, and PostgreSQL spreads the statements over its cores. Measured on
/// the 2-core machine (BENCHMARKS.md, "PostgreSQL: group commit"): 1 writer is best at one punch per upload but
/// holds PostgreSQL to one core at 100 per upload (40k punches/s); 4 reach 66k there. The writers beyond the first
/// start only for large queues ([`PARALLEL_FROM`]).
pub(super) const WRITERS: usize = 4;
/// Batches written by one statement at most; what is left waits for the next group.
pub(super) const MAX_BATCHES: usize = 256;
/// Punches written by one statement at most (a larger batch is written alone): bounds the statement's arrays.
pub(super) const MAX_PUNCHES: usize = 20_000;
/// Punches that must wait before a second (third, fourth) writer starts beside one at work; fewer wait for it and
/// form the next group. Chosen among 100, 200 and 300 on the 2-core machine (BENCHMARKS.md, "PostgreSQL: small
/// uploads wait for the writer at work").
pub(super) const PARALLEL_FROM: usize = 100;

/// The statement that writes a group. Per batch (`$1`…`$9`, one element each, in queue order): receive time,
/// device SN, source, kind, request, remote address, body, line errors, number of records. Per punch (`$10`…`$20`):
/// the columns of [`PunchColumns`] and the 1-based batch each punch belongs to. Stamps (`$21`…`$24`): device,
/// table, value, time, at most one per device and table. Answers one row per batch, in queue order: its journal id
/// and how many of its punches were newly stored.
const GROUP_STATEMENT: &str = "WITH b AS MATERIALIZED ( \
       SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
         $7::bytea[], $8::jsonb[], $9::int8[]) WITH ORDINALITY \
         AS b(received_at, device_sn, source, kind, request, remote_addr, body, errors, n_records, idx)), \
     j AS MATERIALIZED (SELECT idx, nextval('journal_id_seq') AS id, received_at FROM b ORDER BY idx), \
     ins AS (INSERT INTO punches (device_sn, pin, punched_at, punch_state, verify_mode, work_code, extra, \
         time_zone, punched_at_utc, received_at, source, journal_id) \
       SELECT u.device_sn, u.pin, u.punched_at, u.punch_state, u.verify_mode, u.work_code, u.extra, \
         u.time_zone, u.punched_at_utc, j.received_at, u.source, j.id \
       FROM unnest($10::text[], $11::text[], $12::timestamp[], $13::int4[], $14::int4[], $15::text[], \
         $16::jsonb[], $17::text[], $18::timestamptz[], $19::text[], $20::int8[]) WITH ORDINALITY \
         AS u(device_sn, pin, punched_at, punch_state, verify_mode, work_code, extra, time_zone, \
         punched_at_utc, source, batch, ord) \
       JOIN j ON j.idx = u.batch \
       ORDER BY u.ord \
       ON CONFLICT DO NOTHING RETURNING id, journal_id, received_at), \
     ob AS (INSERT INTO outbox (punch_id, created_at) \
       SELECT id, received_at FROM ins WHERE EXISTS (SELECT 1 FROM sinks) ORDER BY id), \
     st AS (INSERT INTO stamps (device_sn, table_name, value, updated_at) \
       SELECT * FROM unnest($21::text[], $22::text[], $23::text[], $24::timestamptz[]) \
       ON CONFLICT (device_sn, table_name) DO UPDATE SET value = excluded.value, \
       updated_at = excluded.updated_at), \
     n AS (SELECT journal_id, count(*) AS stored FROM ins GROUP BY journal_id), \
     jr AS (INSERT INTO journal (id, received_at, device_sn, source, kind, request, remote_addr, body, errors, \
         n_records, n_stored, n_duplicate) \
       SELECT j.id, b.received_at, b.device_sn, b.source, b.kind, b.request, b.remote_addr, b.body, b.errors, \
         b.n_records, COALESCE(n.stored, 0), b.n_records - COALESCE(n.stored, 0) \
       FROM b JOIN j ON j.idx = b.idx LEFT JOIN n ON n.journal_id = j.id) \
     SELECT j.id, COALESCE(n.stored, 0) FROM j LEFT JOIN n ON n.journal_id = j.id ORDER BY j.idx";

/// A batch waiting for its group, and where its outcome goes.
struct Pending {
    batch: Batch,
    done: oneshot::Sender<Result<BatchOutcome>>,
}

/// The queue of batches waiting to be written and the writers at work; one per [`PgStore`] (its clones share it).
pub(super) struct PunchGroups {
    state: Mutex<GroupState>,
}

/// What [`PunchGroups`] guards with one lock, so that starting a writer and a writer ending cannot both decide
/// to leave queued batches to the other.
#[derive(Default)]
struct GroupState {
    queue: VecDeque<Pending>,
    /// Punches in `queue`.
    queued_punches: usize,
    /// Groups being written now (at most [`WRITERS`]).
    running: usize,
}

impl std::fmt::Debug for PunchGroups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("PunchGroups")
            .field("running", &state.running)
            .field("queued", &state.queue.len())
            .finish_non_exhaustive()
    }
}

impl PunchGroups {
    pub(super) fn new() -> PunchGroups {
        PunchGroups {
            state: Mutex::new(GroupState::default()),
        }
    }

    /// Write a batch of punches only ([`super::punches_only`]) with whatever else is queued; answers after the
    /// commit of the statement that held it.
    ///
    /// Errors: as [`super::Store::write_batch`]: the database refused or failed the write (nothing of the batch
    /// was kept), or no connection could be had.
    pub(super) async fn write(&self, store: &PgStore, batch: Batch) -> Result<BatchOutcome> {
        let (done, outcome) = oneshot::channel();
        {
            let mut state = self.lock();
            state.queued_punches += batch.punches.len();
            state.queue.push_back(Pending { batch, done });
        }
        self.start_writer(store);
        outcome.await.unwrap_or_else(|_| {
            Err(StoreError::Backend(
                "the group write ended without an answer (the runtime is shutting down)".into(),
            ))
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GroupState> {
        // A panic while holding the state cannot leave it half-changed (counters move with the queue): carry on.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// If batches wait and a writer may start, take a group and write it in a task of its own; the task starts
    /// the next group when it is done, so nothing queued is left behind: a batch not taken here waits for a
    /// writer at work, which looks again when it ends (the decision and the end are made under one lock).
    ///
    /// A writer starts when none is at work, or when fewer than [`WRITERS`] are and the queue holds at least
    /// [`PARALLEL_FROM`] punches. Small uploads thus wait for the writer at work and form larger groups (one
    /// statement and one commit for more requests), while large ones spread over PostgreSQL's cores.
    fn start_writer(&self, store: &PgStore) {
        let group = {
            let mut state = self.lock();
            let may_start = state.running == 0
                || (state.running < WRITERS && state.queued_punches >= PARALLEL_FROM);
            if state.queue.is_empty() || !may_start {
                return;
            }
            state.running += 1;
            take_group(&mut state)
        };
        let writer = Writer {
            store: store.clone(),
        };
        tokio::spawn(async move {
            write_group(&writer.store, group).await;
            drop(writer);
        });
    }

    /// Batches waiting for a writer.
    #[cfg(test)]
    pub(super) fn queued(&self) -> usize {
        self.lock().queue.len()
    }
}

/// A writer at work: when it ends, also by a panic, it leaves its place and starts the next group if one waits.
struct Writer {
    store: PgStore,
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.store.groups.lock().running -= 1;
        // Without a runtime (one shutting down drops this task) nothing more is written; whoever still waits is
        // answered when the queue is dropped with the store.
        if tokio::runtime::Handle::try_current().is_ok() {
            self.store.groups.start_writer(&self.store);
        }
    }
}

/// The next group: queued batches in order, up to [`MAX_BATCHES`] and [`MAX_PUNCHES`] (at least one).
fn take_group(state: &mut GroupState) -> Vec<Pending> {
    let mut group = Vec::new();
    let mut punches = 0;
    while let Some(next) = state.queue.front() {
        let n = next.batch.punches.len();
        if !group.is_empty() && (group.len() == MAX_BATCHES || punches + n > MAX_PUNCHES) {
            break;
        }
        punches += n;
        group.extend(state.queue.pop_front());
    }
    state.queued_punches -= punches;
    group
}

/// Write a group and answer each of its callers; on a failed statement, each batch alone.
async fn write_group(store: &PgStore, group: Vec<Pending>) {
    let outcome = match store.client().await {
        Ok(client) => {
            let batches: Vec<&Batch> = group.iter().map(|p| &p.batch).collect();
            match write_at_once(&client, &batches).await {
                Err(_) if group.len() > 1 => {
                    for p in group {
                        let alone = write_at_once(&client, &[&p.batch]).await;
                        let _ = p.done.send(alone.map(|mut one| one.remove(0)));
                    }
                    return;
                }
                outcome => outcome,
            }
        }
        Err(e) => Err(e),
    };
    match outcome {
        Ok(outcomes) => {
            for (p, outcome) in group.into_iter().zip(outcomes) {
                let _ = p.done.send(Ok(outcome));
            }
        }
        Err(e) => {
            for p in group {
                let _ = p.done.send(Err(e.clone()));
            }
        }
    }
}

/// Run [`GROUP_STATEMENT`] for `batches` (each of punches only); one outcome per batch, in order.
///
/// Errors: the statement failed; nothing of any batch was kept.
async fn write_at_once(client: &Object, batches: &[&Batch]) -> Result<Vec<BatchOutcome>> {
    let n_punches = batches.iter().map(|b| b.punches.len()).sum();
    let columns = PunchColumns::of_all(batches.iter().flat_map(|b| b.punches.iter()), n_punches);
    let batch_of: Vec<i64> = batches
        .iter()
        .zip(1_i64..)
        .flat_map(|(b, idx)| std::iter::repeat_n(idx, b.punches.len()))
        .collect();
    let received: Vec<DateTime<Utc>> = batches.iter().map(|b| b.raw.received_at).collect();
    let device_sns: Vec<Option<&str>> = batches
        .iter()
        .map(|b| b.raw.device_sn.as_ref().map(|sn| sn.as_str()))
        .collect();
    let sources: Vec<&str> = batches.iter().map(|b| b.raw.source.as_str()).collect();
    let kinds: Vec<&str> = batches.iter().map(|b| b.raw.kind.as_str()).collect();
    let requests: Vec<&str> = batches.iter().map(|b| b.raw.request.as_str()).collect();
    let remotes: Vec<Option<&str>> = batches
        .iter()
        .map(|b| b.raw.remote_addr.as_deref())
        .collect();
    let bodies: Vec<&[u8]> = batches.iter().map(|b| b.raw.body.as_slice()).collect();
    let errors: Vec<Option<serde_json::Value>> =
        batches.iter().map(|b| errors_json(&b.raw.errors)).collect();
    let n_records: Vec<i64> = batches.iter().map(|b| b.punches.len() as i64).collect();
    // One stamp per device and table (an upsert cannot touch a row twice in one statement): the last queued wins,
    // as it would have written one statement per batch.
    let mut stamps: HashMap<(&str, &str), (&str, DateTime<Utc>)> = HashMap::new();
    for b in batches {
        if let Some((sn, table, value)) = &b.stamp {
            stamps.insert(
                (sn.as_str(), table.as_str()),
                (value.as_str(), b.raw.received_at),
            );
        }
    }
    let stamp_sns: Vec<&str> = stamps.keys().map(|(sn, _)| *sn).collect();
    let stamp_tables: Vec<&str> = stamps.keys().map(|(_, table)| *table).collect();
    let stamp_values: Vec<&str> = stamps.values().map(|(value, _)| *value).collect();
    let stamp_times: Vec<DateTime<Utc>> = stamps.values().map(|(_, at)| *at).collect();
    let st = client
        .prepare_cached(GROUP_STATEMENT)
        .await
        .map_err(backend)?;
    let rows = client
        .query(
            &st,
            &[
                &received,
                &device_sns,
                &sources,
                &kinds,
                &requests,
                &remotes,
                &bodies,
                &errors,
                &n_records,
                &columns.sns,
                &columns.pins,
                &columns.locals,
                &columns.states,
                &columns.verifies,
                &columns.work_codes,
                &columns.extras,
                &columns.zones,
                &columns.utcs,
                &columns.sources,
                &batch_of,
                &stamp_sns,
                &stamp_tables,
                &stamp_values,
                &stamp_times,
            ],
        )
        .await
        .map_err(backend)?;
    hardening::clear();
    if rows.len() != batches.len() {
        return Err(StoreError::Backend(format!(
            "the group statement answered {} rows for {} batches",
            rows.len(),
            batches.len()
        )));
    }
    batches
        .iter()
        .zip(&rows)
        .map(|(b, row)| {
            let journal_id: i64 = col(row, 0)?;
            let stored: i64 = col(row, 1)?;
            let n = b.punches.len();
            let n_stored = usize::try_from(stored).unwrap_or(0);
            Ok(BatchOutcome {
                journal_id,
                n_stored,
                n_duplicate: n - n_stored,
                n_records: n,
            })
        })
        .collect()
}
