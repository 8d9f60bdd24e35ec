//! [`OutboxStore`] on PostgreSQL (schema: migrations/postgres/0002_operations_sources_outbox.sql). The same rules
//! as `sqlite/outbox.rs`, with one difference the database forces.
//!
//! **Order of events.** SQLite has one writer, so outbox ids become visible in id order and a sink's cursor can be
//! "the highest id taken". On PostgreSQL many transactions write at once (the pool, several instances): id 11 can
//! commit while id 10 is still being written, and a sink past 11 would never see 10. So each event records the
//! transaction that wrote it (`xid`, the 64-bit `pg_current_xact_id()`), a sink's cursor is an `(xid, id)` pair,
//! and [`OutboxStore::take_events`] takes events in `(xid, id)` order only from transactions older than the oldest
//! one still running (`pg_snapshot_xmin(pg_current_snapshot())`): those have all committed or rolled back, and
//! any transaction still to commit has a larger xid than the cursor. The price: one long open transaction that
//! wrote anything holds deliveries back until it ends.
//!
//! **A sink made without a start date** delivers the punches of the transactions its creation did not see (its
//! `created_snapshot`), which is "every punch stored from now on" even for batches committing at that moment,
//! and never the events a backfill writes later for older punches (`outbox.backfilled`, [`OF_SINK`]).
//! Its creation first waits for the punch writes at work to commit (a SHARE lock on `punches`, taken first in
//! `create_sink`, for at most [`SINK_LOCK_WAIT`]), so no write that started before the sink existed commits after
//! it without events.
//!
//! The hot path is [`insert_events_on`], called by `write_batch_on` in the batch's transaction with the ids of the
//! punches it stored: one `INSERT … SELECT FROM unnest(…)` guarded by `EXISTS (SELECT 1 FROM sinks)`.

use chrono::{DateTime, Utc};
use tokio_postgres::{GenericClient, Row};

use super::{backend, col, commit, punch_from_row, PgStore};
use crate::store::outbox::{
    NewSink, OutboxEvent, OutboxStore, Outcome, ParkKind, ParkedEvent, Sink, SinkCounts, SinkKind,
};
use crate::store::{Result, StoreError};

/// Write the outbox events of punches `write_batch` just stored (`punch_ids`, ascending), in its transaction,
/// while at least one sink exists. `received_at` is the batch's arrival (UTC), the events' `created_at`.
pub(super) async fn insert_events_on(
    tx: &deadpool_postgres::Transaction<'_>,
    punch_ids: &[i64],
    received_at: DateTime<Utc>,
) -> Result<()> {
    let st = tx
        .prepare_cached(
            "INSERT INTO outbox (punch_id, created_at) \
             SELECT u.id, $2 FROM unnest($1::int8[]) AS u(id) \
             WHERE EXISTS (SELECT 1 FROM sinks) ORDER BY u.id",
        )
        .await
        .map_err(backend)?;
    tx.execute(&st, &[&punch_ids, &received_at])
        .await
        .map_err(backend)?;
    Ok(())
}

/// Put every event parked as unmapped (any sink) back to pending, due now: for the attendance area's writes that
/// can change who a PIN means (employee add/edit/import, mapping add/remove), in their transaction, as
/// `sqlite/outbox.rs` `retry_unmapped_on`. Returns how many events were put back.
pub(super) async fn retry_unmapped_on(
    client: &impl GenericClient,
    now: DateTime<Utc>,
) -> Result<u64> {
    client
        .execute(
            "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = $1, park_kind = NULL, \
             updated_at = $1 WHERE sink_id IN (SELECT id FROM sinks) AND status = 'parked' \
             AND park_kind = 'unmapped'",
            &[&now],
        )
        .await
        .map_err(backend)
}

/// Events for stored punches from `from` (an instant, whole seconds) that have none, in the caller's transaction,
/// marked `backfilled` (which sinks made without a start date pass over, [`OF_SINK`]). An event another
/// transaction is writing for the same punch (a second sink added with a start date, a replay) is waited for and,
/// once committed, left as it is: the punch keeps one event.
async fn backfill_on(
    client: &impl GenericClient,
    from: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<u64> {
    client
        .execute(
            "INSERT INTO outbox (punch_id, created_at, backfilled) SELECT p.id, $2, true FROM punches p \
             WHERE p.punched_at_utc >= $1 AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.punch_id = p.id) \
             ORDER BY p.id ON CONFLICT (punch_id) DO NOTHING",
            &[&from, &now],
        )
        .await
        .map_err(backend)
}

/// How long adding a sink waits for the punch writes at work ([`OutboxStore::create_sink`]): a group statement
/// takes well under a second; a transaction that takes longer is most likely left open, and uploads queue behind
/// the waiting sink.
pub(super) const SINK_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Whole seconds: a sink's start is kept to the second, as SQLite keeps it.
fn whole_second(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

const SINK_COLUMNS: &str =
    "id, name, kind, config, since_utc, paused, pause_reason, failing_since, last_error, created_at";

fn sink_from_row(row: &Row) -> Result<Sink> {
    let kind: String = col(row, 2)?;
    Ok(Sink {
        id: col(row, 0)?,
        name: col(row, 1)?,
        kind: SinkKind::parse(&kind)
            .ok_or_else(|| StoreError::Backend(format!("stored sink kind {kind:?}")))?,
        config: col(row, 3)?,
        since: col(row, 4)?,
        paused: col(row, 5)?,
        pause_reason: col(row, 6)?,
        failing_since: col(row, 7)?,
        last_error: col(row, 8)?,
        created_at: col(row, 9)?,
    })
}

async fn sink_by_name_on(client: &impl GenericClient, name: &str) -> Result<Sink> {
    let row = client
        .query_opt(
            &format!("SELECT {SINK_COLUMNS} FROM sinks WHERE name = $1"),
            &[&name],
        )
        .await
        .map_err(backend)?
        .ok_or_else(|| StoreError::NotFound(format!("sink {name:?}")))?;
    sink_from_row(&row)
}

fn park_kind(s: &str) -> ParkKind {
    match s {
        "unmapped" => ParkKind::Unmapped,
        "rejected" => ParkKind::Rejected,
        _ => ParkKind::GaveUp,
    }
}

/// How long [`OutboxStore::take_events`] waits at most for older transactions that hold committed events back.
const HELD_BACK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The condition an outbox row `o` (joined with its punch `p`) must meet to be one of sink `s`'s events past its
/// cursor: the start date, and for a sink made without one, an event written with its punch by a transaction its
/// creation did not see (a replay gives it the others from its date as delivery rows). A backfilled event is
/// never one of those: its punch had no event, so it was stored while no sink existed, before this one, even when
/// the backfill (another sink's start date or replay, a punch whose event was pruned) commits after this sink was
/// made.
pub(super) const OF_SINK: &str = "(s.since_utc IS NULL OR p.punched_at_utc >= s.since_utc) \
     AND (s.created_snapshot IS NULL OR (NOT o.backfilled \
          AND NOT pg_visible_in_snapshot(o.xid::text::xid8, s.created_snapshot)))";

#[async_trait::async_trait]
impl OutboxStore for PgStore {
    async fn create_sink(&self, sink: NewSink, now: DateTime<Utc>) -> Result<Sink> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        // Wait for every write of punches at work (on any instance) to commit, and hold new ones back until this
        // sink is committed. A punch write decides whether to write events by whether a sink exists in its
        // snapshot, taken when its statement starts; without this lock one that started before the sink and
        // committed after it wrote no event, yet its punches were neither backfilled (not yet visible) nor
        // before the sink's `created_snapshot`: they were never delivered. Every punch write takes ROW EXCLUSIVE
        // on `punches` before its snapshot, which SHARE waits for and holds back. Writes wait at most this
        // transaction, backfill included; readers (the API, sink workers) do not wait. A transaction left open
        // after writing punches (someone's psql session) would hold this lock request, and every upload queued
        // behind it, for ever: after SINK_LOCK_WAIT the sink is not added, and says why.
        tx.batch_execute(&format!(
            "SET LOCAL lock_timeout = '{}ms'; LOCK TABLE punches IN SHARE MODE; SET LOCAL lock_timeout TO DEFAULT",
            SINK_LOCK_WAIT.as_millis()
        ))
        .await
        .map_err(|e| {
            if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) {
                StoreError::Backend(format!(
                    "the sink was not added: a transaction has been writing punches for more than {} s (see \
                     pg_stat_activity); uploads go on; try again",
                    SINK_LOCK_WAIT.as_secs()
                ))
            } else {
                backend(e)
            }
        })?;
        let since = sink.since.map(whole_second);
        let inserted = match since {
            Some(from) => {
                backfill_on(&*tx, from, now).await?;
                tx.execute(
                    "INSERT INTO sinks (name, kind, config, since_utc, created_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING",
                    &[&sink.name, &sink.kind.as_str(), &sink.config, &from, &now],
                )
                .await
            }
            // From now on: the cursor skips every settled transaction, the snapshot every other one that had
            // committed by now.
            None => {
                tx.execute(
                    "INSERT INTO sinks (name, kind, config, cursor_xid, cursor_id, created_snapshot, created_at) \
                     VALUES ($1, $2, $3, pg_snapshot_xmin(pg_current_snapshot())::text::int8 - 1, \
                     9223372036854775807, pg_current_snapshot(), $4) ON CONFLICT (name) DO NOTHING",
                    &[&sink.name, &sink.kind.as_str(), &sink.config, &now],
                )
                .await
            }
        }
        .map_err(backend)?;
        if inserted == 0 {
            return Err(StoreError::Conflict(format!(
                "a sink named {:?} exists",
                sink.name
            )));
        }
        let created = sink_by_name_on(&*tx, &sink.name).await?;
        commit(tx).await?;
        Ok(created)
    }

    async fn list_sinks(&self) -> Result<Vec<Sink>> {
        let client = self.client().await?;
        client
            .query(
                &format!("SELECT {SINK_COLUMNS} FROM sinks ORDER BY name"),
                &[],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(sink_from_row)
            .collect()
    }

    async fn get_sink(&self, name: &str) -> Result<Sink> {
        let client = self.client().await?;
        sink_by_name_on(&**client, name).await
    }

    async fn delete_sink(&self, name: &str) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let sink = sink_by_name_on(&*tx, name).await?;
        tx.execute("DELETE FROM deliveries WHERE sink_id = $1", &[&sink.id])
            .await
            .map_err(backend)?;
        tx.execute("DELETE FROM withdrawals WHERE sink_id = $1", &[&sink.id])
            .await
            .map_err(backend)?;
        tx.execute("DELETE FROM sinks WHERE id = $1", &[&sink.id])
            .await
            .map_err(backend)?;
        commit(tx).await
    }

    async fn set_sink_paused(
        &self,
        name: &str,
        paused: bool,
        reason: Option<String>,
    ) -> Result<()> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE sinks SET paused = $2, pause_reason = $3 WHERE name = $1",
                &[&name, &paused, &reason],
            )
            .await
            .map_err(backend)?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("sink {name:?}")));
        }
        Ok(())
    }

    async fn set_sink_health(
        &self,
        id: i64,
        failing_since: Option<DateTime<Utc>>,
        last_error: Option<String>,
    ) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE sinks SET failing_since = $2, last_error = $3 WHERE id = $1",
                &[&id, &failing_since, &last_error],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn take_events(&self, sink_id: i64, max: usize, now: DateTime<Utc>) -> Result<usize> {
        let mut client = self.client().await?;
        // A read first: an idle worker asks often, and should not write each time.
        let any_new: bool = col(
            &client
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM outbox o, sinks s WHERE s.id = $1 \
                     AND (o.xid, o.id) > (s.cursor_xid, s.cursor_id))",
                    &[&sink_id],
                )
                .await
                .map_err(backend)?,
            0,
        )?;
        if !any_new {
            return Ok(0);
        }
        // Committed events can be held back by an older transaction still running (any writer on the server,
        // not only ours). Such transactions are short; wait for them a little, so a take right after a commit
        // takes what that commit wrote, rather than leave it to the next turn.
        let started = std::time::Instant::now();
        while started.elapsed() < HELD_BACK_WAIT {
            let held_back: bool = col(
                &client
                    .query_one(
                        "SELECT EXISTS (SELECT 1 FROM (SELECT o.xid FROM outbox o, sinks s WHERE s.id = $1 \
                           AND (o.xid, o.id) > (s.cursor_xid, s.cursor_id) ORDER BY o.xid, o.id LIMIT $2) n \
                         WHERE n.xid >= pg_snapshot_xmin(pg_current_snapshot())::text::int8)",
                        &[&sink_id, &(max as i64)],
                    )
                    .await
                    .map_err(backend)?,
                0,
            )?;
            if !held_back {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let tx = client.transaction().await.map_err(backend)?;
        // The sink's row lock makes two takers of one sink (two instances, before the lease settles) take in
        // turn; the second then starts from the first one's cursor.
        if tx
            .query_opt("SELECT 1 FROM sinks WHERE id = $1 FOR UPDATE", &[&sink_id])
            .await
            .map_err(backend)?
            .is_none()
        {
            return Err(StoreError::NotFound(format!("sink {sink_id}")));
        }
        // One statement, so the snapshot whose xmin bounds the events is the one that reads them.
        let row = tx
            .query_one(
                &format!(
                    "WITH picked AS (SELECT o.id, o.xid, o.punch_id, o.backfilled FROM outbox o, sinks s \
                       WHERE s.id = $1 AND (o.xid, o.id) > (s.cursor_xid, s.cursor_id) \
                       AND o.xid < pg_snapshot_xmin(pg_current_snapshot())::text::int8 \
                       ORDER BY o.xid, o.id LIMIT $2), \
                     ins AS (INSERT INTO deliveries (sink_id, event_id, status, next_attempt_at, updated_at) \
                       SELECT $1, o.id, 'pending', $3, $3 FROM picked o JOIN punches p ON p.id = o.punch_id, \
                       sinks s WHERE s.id = $1 AND {OF_SINK} \
                       ON CONFLICT (sink_id, event_id) DO NOTHING RETURNING 1), \
                     last AS (SELECT xid, id FROM picked ORDER BY xid DESC, id DESC LIMIT 1), \
                     moved AS (UPDATE sinks SET cursor_xid = last.xid, cursor_id = last.id FROM last \
                       WHERE sinks.id = $1 RETURNING 1) \
                     SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM moved)"
                ),
                &[&sink_id, &(max as i64), &now],
            )
            .await
            .map_err(backend)?;
        let taken: i64 = col(&row, 0)?;
        commit(tx).await?;
        Ok(taken as usize)
    }

    async fn pending_events(
        &self,
        sink_id: i64,
        due_at: Option<DateTime<Utc>>,
        max: usize,
    ) -> Result<Vec<OutboxEvent>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT p.id, p.device_sn, p.pin, p.punched_at, p.punch_state, p.verify_mode, p.work_code, \
                 p.extra, p.time_zone, p.punched_at_utc, p.received_at, p.source, p.journal_id, \
                 d.event_id, o.created_at, d.attempts, d.next_attempt_at, dev.alias, dev.site \
                 FROM deliveries d JOIN outbox o ON o.id = d.event_id JOIN punches p ON p.id = o.punch_id \
                 LEFT JOIN devices dev ON dev.sn = p.device_sn \
                 WHERE d.sink_id = $1 AND d.status = 'pending' \
                   AND ($3::timestamptz IS NULL OR d.next_attempt_at <= $3) \
                 ORDER BY d.event_id LIMIT $2",
                &[&sink_id, &(max as i64), &due_at],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| {
                Ok(OutboxEvent {
                    punch: punch_from_row(row)?,
                    id: col(row, 13)?,
                    created_at: col(row, 14)?,
                    attempts: u32::try_from(col::<i32>(row, 15)?).unwrap_or_default(),
                    next_attempt_at: col(row, 16)?,
                    device_alias: col(row, 17)?,
                    device_site: col(row, 18)?,
                    employee: None,
                    correction_id: None,
                })
            })
            .collect()
    }

    async fn record_outcomes(
        &self,
        sink_id: i64,
        outcomes: Vec<(i64, Outcome)>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let n = outcomes.len();
        let mut ids = Vec::with_capacity(n);
        let mut statuses = Vec::with_capacity(n);
        let mut nexts = Vec::with_capacity(n);
        let mut errors: Vec<Option<String>> = Vec::with_capacity(n);
        let mut kinds: Vec<Option<&str>> = Vec::with_capacity(n);
        let mut remotes: Vec<Option<String>> = Vec::with_capacity(n);
        for (event_id, outcome) in &outcomes {
            ids.push(*event_id);
            match outcome {
                Outcome::Delivered(remote) => {
                    statuses.push("delivered");
                    nexts.push(now);
                    errors.push(None);
                    kinds.push(None);
                    remotes.push(remote.clone());
                }
                Outcome::Retry { at, error } => {
                    statuses.push("pending");
                    nexts.push(*at);
                    errors.push(Some(error.clone()));
                    kinds.push(None);
                    remotes.push(None);
                }
                Outcome::Parked { kind, reason } => {
                    statuses.push("parked");
                    nexts.push(now);
                    errors.push(Some(reason.clone()));
                    kinds.push(Some(kind.as_str()));
                    remotes.push(None);
                }
            }
        }
        let client = self.client().await?;
        // One statement for the whole round (one row per event).
        client
            .execute(
                "UPDATE deliveries d SET status = u.status, attempts = d.attempts + 1, next_attempt_at = u.next, \
                 last_error = u.error, park_kind = u.kind, remote_ref = COALESCE(u.remote, d.remote_ref), \
                 updated_at = $2 \
                 FROM unnest($3::int8[], $4::text[], $5::timestamptz[], $6::text[], $7::text[], $8::text[]) \
                   AS u(event_id, status, next, error, kind, remote) \
                 WHERE d.sink_id = $1 AND d.event_id = u.event_id",
                &[
                    &sink_id, &now, &ids, &statuses, &nexts, &errors, &kinds, &remotes,
                ],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn retry_sink(
        &self,
        name: &str,
        only: Option<ParkKind>,
        now: DateTime<Utc>,
    ) -> Result<usize> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let sink = sink_by_name_on(&*tx, name).await?;
        let kind = only.map(ParkKind::as_str);
        let mut n = tx
            .execute(
                "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = $2, \
                 park_kind = NULL, updated_at = $2 \
                 WHERE sink_id = $1 AND status = 'parked' AND ($3::text IS NULL OR park_kind = $3)",
                &[&sink.id, &now, &kind],
            )
            .await
            .map_err(backend)?;
        if only.is_none() {
            n += tx
                .execute(
                    "UPDATE deliveries SET next_attempt_at = $2, updated_at = $2 \
                     WHERE sink_id = $1 AND status = 'pending' AND next_attempt_at > $2",
                    &[&sink.id, &now],
                )
                .await
                .map_err(backend)?;
        }
        commit(tx).await?;
        Ok(n as usize)
    }

    async fn replay_sink(
        &self,
        name: &str,
        from: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<usize> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let sink = sink_by_name_on(&*tx, name).await?;
        let from = whole_second(from);
        let backfilled = backfill_on(&*tx, from, now).await?;
        // A sink with a start date: widen it, so the worker takes the events past the cursor from `from` on (the
        // ones just written among them). A sink made without one keeps its creation snapshot, so a later backfill
        // (another sink's start date) still gives it no older punch; what that filter passes over here (the
        // events just written, those its creation saw committed) gets a delivery row below instead.
        let snapshot_kept: bool = tx
            .query_one(
                "UPDATE sinks SET since_utc = CASE WHEN since_utc IS NULL THEN NULL ELSE LEAST(since_utc, $2) END \
                 WHERE id = $1 RETURNING created_snapshot IS NOT NULL",
                &[&sink.id, &from],
            )
            .await
            .map_err(backend)?
            .get(0);
        // Pending again: every event from `from` up to the cursor, and past it those the worker would not take.
        let n = tx
            .execute(
                &format!(
                    "INSERT INTO deliveries (sink_id, event_id, status, next_attempt_at, updated_at) \
                     SELECT $1, o.id, 'pending', $3, $3 FROM outbox o JOIN punches p ON p.id = o.punch_id, \
                     sinks s WHERE s.id = $1 AND p.punched_at_utc >= $2 \
                     AND ((o.xid, o.id) <= (s.cursor_xid, s.cursor_id) OR NOT ({OF_SINK})) \
                     ON CONFLICT (sink_id, event_id) DO UPDATE SET status = 'pending', attempts = 0, \
                     next_attempt_at = excluded.next_attempt_at, last_error = NULL, park_kind = NULL, \
                     updated_at = excluded.updated_at"
                ),
                &[&sink.id, &from, &now],
            )
            .await
            .map_err(backend)?;
        commit(tx).await?;
        // With a start date, the events it wrote (past the cursor, taken by the worker) are owed again too;
        // without, they are among `n`.
        Ok((n + if snapshot_kept { 0 } else { backfilled }) as usize)
    }

    async fn sink_counts(&self, sink_id: i64) -> Result<SinkCounts> {
        let client = self.client().await?;
        let mut counts = SinkCounts::default();
        let rows = client
            .query(
                "SELECT status, COUNT(*), COUNT(*) FILTER (WHERE attempts > 0) FROM deliveries \
                 WHERE sink_id = $1 GROUP BY status",
                &[&sink_id],
            )
            .await
            .map_err(backend)?;
        for row in &rows {
            let status: String = col(row, 0)?;
            let n = col::<i64>(row, 1)? as u64;
            let failed = col::<i64>(row, 2)? as u64;
            match status.as_str() {
                "pending" => {
                    counts.pending += n;
                    counts.failed = failed;
                }
                "delivered" => counts.delivered = n,
                _ => counts.parked += n,
            }
        }
        let untaken = client
            .query_one(
                &format!(
                    "SELECT COUNT(*), MIN(o.created_at) FROM outbox o JOIN punches p ON p.id = o.punch_id, \
                     sinks s WHERE s.id = $1 AND (o.xid, o.id) > (s.cursor_xid, s.cursor_id) AND {OF_SINK}"
                ),
                &[&sink_id],
            )
            .await
            .map_err(backend)?;
        let oldest_taken: Option<DateTime<Utc>> = col(
            &client
                .query_one(
                    "SELECT MIN(o.created_at) FROM deliveries d JOIN outbox o ON o.id = d.event_id \
                     WHERE d.sink_id = $1 AND d.status = 'pending'",
                    &[&sink_id],
                )
                .await
                .map_err(backend)?,
            0,
        )?;
        counts.pending += col::<i64>(&untaken, 0)? as u64;
        let oldest_untaken: Option<DateTime<Utc>> = col(&untaken, 1)?;
        counts.oldest_pending_at = match (oldest_taken, oldest_untaken) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Ok(counts)
    }

    async fn parked_events(&self, sink_id: i64, max: usize) -> Result<Vec<ParkedEvent>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT d.event_id, p.device_sn, p.pin, to_char(p.punched_at, 'YYYY-MM-DD HH24:MI:SS'), \
                 d.park_kind, COALESCE(d.last_error, '') \
                 FROM deliveries d JOIN outbox o ON o.id = d.event_id JOIN punches p ON p.id = o.punch_id \
                 WHERE d.sink_id = $1 AND d.status = 'parked' ORDER BY d.event_id LIMIT $2",
                &[&sink_id, &(max as i64)],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                Ok(ParkedEvent {
                    event_id: col(r, 0)?,
                    device_sn: col(r, 1)?,
                    pin: col(r, 2)?,
                    punched_at: col(r, 3)?,
                    kind: park_kind(&col::<Option<String>>(r, 4)?.unwrap_or_default()),
                    reason: col(r, 5)?,
                })
            })
            .collect()
    }

    async fn remote_ref(&self, sink_id: i64, event_id: i64) -> Result<Option<String>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT remote_ref FROM deliveries WHERE sink_id = $1 AND event_id = $2",
                &[&sink_id, &event_id],
            )
            .await
            .map_err(backend)?;
        match row {
            Some(row) => col(&row, 0),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{eight_oclock, hr_sink, isolated_store, one_punch_upload};
    use crate::domain::DeviceSn;
    use crate::store::contract_outbox::owed_pins;
    use crate::store::outbox::OutboxStore;
    use crate::store::Store;
    use crate::test_support::wait_for;

    /// The outbox contract on PostgreSQL, in a schema of its own.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_keeps_the_outbox_contract() {
        let Some(store) = isolated_store().await else {
            return;
        };
        crate::store::contract_outbox::run_all(&store).await;
        crate::store::contract_outbox::run_fast_path(&store).await;
    }

    /// The same on PostgreSQL: a sink without a start date is not given the events a later sink's start date
    /// writes for older punches.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_sinks_without_a_start_date_get_no_older_punch() {
        let Some(store) = isolated_store().await else {
            return;
        };
        crate::store::contract_outbox::run_start_dates_apart(&store).await;
    }

    /// Adding a sink waits for the punch writes at work, and uploads queue behind it: a transaction left open after
    /// writing punches must not hold both for ever. The sink is refused after [`super::SINK_LOCK_WAIT`], with
    /// why, nothing of it kept; once the transaction ends it is added.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sink_is_refused_while_a_transaction_left_open_holds_the_punches() {
        use crate::store::StoreError;
        let Some(store) = isolated_store().await else {
            return;
        };
        let open = store.client().await.expect("client");
        // The lock a write of punches takes, without writing: a transaction that wrote would also hold back the
        // deliveries of the other tests on this PostgreSQL (events are taken only from transactions older than
        // the oldest running one) for as long as it stays open.
        open.batch_execute("BEGIN; LOCK TABLE punches IN ROW EXCLUSIVE MODE")
            .await
            .expect("an open transaction");
        let started = std::time::Instant::now();
        let refused = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            store.create_sink(hr_sink(None), chrono::Utc::now()),
        )
        .await
        .expect("the sink's creation waited for the open transaction");
        match refused {
            Err(StoreError::Backend(why)) => assert!(
                why.contains("a transaction has been writing punches for more than 5 s"),
                "{why}"
            ),
            other => panic!("the sink should be refused, got {other:?}"),
        }
        assert!(started.elapsed() >= super::SINK_LOCK_WAIT);
        assert!(matches!(
            store.get_sink("hr").await,
            Err(StoreError::NotFound(_))
        ));
        // Uploads go on while the transaction stays open.
        let sn = DeviceSn::parse("OPEN2").expect("sn");
        let outcome = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            store.write_batch(one_punch_upload(&sn, "1")),
        )
        .await
        .expect("the upload is not held")
        .expect("stored");
        assert_eq!(outcome.n_stored, 1);
        open.batch_execute("COMMIT").await.expect("commit");
        let added = store
            .create_sink(hr_sink(None), chrono::Utc::now())
            .await
            .expect("added");
        assert_eq!(added.name, "hr");
    }

    /// Two backfills of the same punches at once (a sink added with a start date while another is, or while a
    /// replay runs): the later one waits for the earlier one's events and keeps them. Before, it failed on
    /// `outbox_punch`'s uniqueness, reported as a conflict, and the sink was not added.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sink_added_with_a_start_date_during_another_backfill_is_added() {
        let Some(store) = isolated_store().await else {
            return;
        };
        let sn = DeviceSn::parse("BACKF1").expect("sn");
        store
            .write_batch(one_punch_upload(&sn, "1"))
            .await
            .expect("stored");
        // The other backfill, at work: the punch's event written, not yet committed.
        let other = store.client().await.expect("client");
        other
            .batch_execute(
                "BEGIN; INSERT INTO outbox (punch_id, created_at) SELECT id, now() FROM punches",
            )
            .await
            .expect("the other backfill");
        let since = eight_oclock().and_utc() - chrono::Duration::days(1);
        let create = tokio::spawn({
            let store = store.clone();
            async move {
                store
                    .create_sink(hr_sink(Some(since)), chrono::Utc::now())
                    .await
            }
        });
        let watcher = store.client().await.expect("client");
        wait_for("the backfill waits for the other one", || async {
            let waiting: i64 = watcher
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
                     AND query LIKE 'INSERT INTO outbox (punch_id, created_at, backfilled) SELECT p.id%'",
                    &[],
                )
                .await
                .expect("activity")
                .get(0);
            (waiting > 0).then_some(())
        })
        .await;
        other.batch_execute("COMMIT").await.expect("commit");
        let sink = create.await.expect("task").expect("the sink is added");
        assert_eq!(owed_pins(&store, sink.id, chrono::Utc::now()).await, ["1"]);
        let events: i64 = watcher
            .query_one("SELECT count(*) FROM outbox", &[])
            .await
            .expect("count")
            .get(0);
        assert_eq!(events, 1);
    }
}
