//! [`OutboxStore`] for SQLite (schema: migrations/sqlite/0008_outbox.sql; events on their punch since
//! 0020_outbox_by_punch.sql).
//!
//! **Events live on their punch.** A punch's outbox event is `punches.outbox_at` (when it was written, unix ms;
//! NULL: no event), and the event's id is the punch's id: one event per punch, ever, and events in punch order.
//! `outbox` is a read-only view of those rows (`id`, `punch_id`, `created_at`), for `punchd migrate` and for a
//! person reading the database.
//!
//! The hot path costs one bound column: `write_batch_on` (sqlite.rs) stores each new punch with `outbox_at` set to
//! its receive time while at least one sink exists, in the punch's own row, so nothing stored is ever missing from
//! the outbox. Whether a sink exists is read once per group inside its transaction (`GroupFacts` in sqlite.rs),
//! so it is exact even when another process (`punchd sinks add` while `punchd serve` runs) creates the first
//! sink. The outbox row this replaced, a second table with a unique index on the punch, cost 2,761 instructions per
//! punch (BENCHMARKS.md, "Outbox events on the punch row").
//!
//! **Events written later** for older punches (a sink's start date, a replay: [`backfill_on`]) keep their punch's
//! id, below the cursors of sinks that already passed it. A sink made with a start date reads from the first
//! punch; a replay gives the replaying sink a pending delivery for each event at or below its cursor; other sinks
//! do not see them: they deliver what was stored after they were made, as [`NewSink::since`] says.
//!
//! **Counts.** `sinks.passed` is the number of events at or below the sink's cursor inside its start date, moved
//! in the same transaction as the cursor (a range count over the events just passed), recounted by a replay and
//! lowered by pruning; [`OutboxStore::sink_counts`] reads it instead of counting the outbox up to the cursor.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::{backend, from_ms, ms, punch_from_row, SqliteStore};
use crate::store::outbox::{
    NewSink, OutboxEvent, OutboxStore, Outcome, ParkKind, ParkedEvent, Peeked, Sink, SinkCounts,
    SinkKind,
};
use crate::store::{Result, StoreError};

/// Put every event parked as unmapped (any sink) back to pending, due now: called in the transaction of each
/// attendance write that can change who a PIN means (employee add/edit/import, mapping add/remove), so the sink
/// workers retry them within their next idle turn, from any process (CLI or API). Uses the
/// `deliveries_status (sink_id, status, …)` index per sink; returns how many events were put back.
pub(super) fn retry_unmapped_on(conn: &Connection, now_ms: i64) -> Result<usize> {
    conn.execute(
        "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?1, park_kind = NULL, \
         updated_at = ?1 WHERE sink_id IN (SELECT id FROM sinks) AND status = 'parked' AND park_kind = 'unmapped'",
        params![now_ms],
    )
    .map_err(backend)
}

/// Write an event (`outbox_at = now_ms`) for each stored punch from `from_s` (unix seconds) that has none; returns
/// how many were written. Scans every punch (there is no index on the punch time); a person asks for it.
fn backfill_on(conn: &Connection, from_s: i64, now_ms: i64) -> Result<usize> {
    // Older punches get events again: pruning starts over from the first punch (sqlite/delivery.rs).
    conn.execute("UPDATE outbox_prune SET from_id = 0", [])
        .map_err(backend)?;
    conn.execute(
        "UPDATE punches SET outbox_at = ?2 WHERE punched_at_utc >= ?1 AND outbox_at IS NULL",
        params![from_s, now_ms],
    )
    .map_err(backend)
}

/// Move sink `sink_id`'s cursor from `from` to `through`, adding the events in between (inside its start date) to
/// its `passed` count, if the cursor is still at `from`; returns whether it moved. A range read of the events
/// just passed.
fn move_cursor_on(conn: &Connection, sink_id: i64, from: i64, through: i64) -> Result<bool> {
    let moved = conn
        .prepare_cached(
            "UPDATE sinks SET cursor = ?3, passed = passed + ( \
               SELECT COUNT(*) FROM punches p WHERE p.id > ?2 AND p.id <= ?3 AND p.outbox_at IS NOT NULL \
                 AND (sinks.since_utc IS NULL OR p.punched_at_utc >= sinks.since_utc)) \
             WHERE id = ?1 AND cursor = ?2",
        )
        .and_then(|mut st| st.execute(params![sink_id, from, through]))
        .map_err(backend)?;
    Ok(moved > 0)
}

const SINK_COLUMNS: &str =
    "id, name, kind, config, since_utc, paused, pause_reason, failing_since, \
    last_error, created_at";

fn sink_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Sink> {
    let kind: String = row.get(2)?;
    let config: String = row.get(3)?;
    let since: Option<i64> = row.get(4)?;
    Ok(Sink {
        id: row.get(0)?,
        name: row.get(1)?,
        kind: SinkKind::parse(&kind)
            .ok_or_else(|| super::conversion(format!("sink kind {kind:?}")))?,
        config: serde_json::from_str(&config).unwrap_or(serde_json::Value::Null),
        since: since.and_then(|s| DateTime::from_timestamp(s, 0)),
        paused: row.get(5)?,
        pause_reason: row.get(6)?,
        failing_since: row.get::<_, Option<i64>>(7)?.map(from_ms),
        last_error: row.get(8)?,
        created_at: from_ms(row.get(9)?),
    })
}

fn sink_by_name_on(conn: &Connection, name: &str) -> Result<Sink> {
    conn.query_row(
        &format!("SELECT {SINK_COLUMNS} FROM sinks WHERE name = ?1"),
        [name],
        sink_from_row,
    )
    .optional()
    .map_err(backend)?
    .ok_or_else(|| StoreError::NotFound(format!("sink {name:?}")))
}

fn park_kind(s: &str) -> ParkKind {
    match s {
        "unmapped" => ParkKind::Unmapped,
        "rejected" => ParkKind::Rejected,
        _ => ParkKind::GaveUp,
    }
}

/// The delivery columns an outcome sets: status, next attempt (unix ms), error, park kind, the sink's name for it.
fn outcome_columns(
    outcome: &Outcome,
    now_ms: i64,
) -> (
    &'static str,
    i64,
    Option<&str>,
    Option<&'static str>,
    Option<&str>,
) {
    match outcome {
        Outcome::Delivered(remote) => ("delivered", now_ms, None, None, remote.as_deref()),
        Outcome::Retry { at, error } => ("pending", ms(*at), Some(error), None, None),
        Outcome::Parked { kind, reason } => {
            ("parked", now_ms, Some(reason), Some(kind.as_str()), None)
        }
    }
}

/// Record outcomes of taken events (their rows exist): attempts + 1 each.
fn update_outcomes_on(
    conn: &Connection,
    sink_id: i64,
    outcomes: &[(i64, Outcome)],
    now_ms: i64,
) -> Result<()> {
    let mut st = conn
        .prepare_cached(
            "UPDATE deliveries SET status = ?3, attempts = attempts + 1, next_attempt_at = ?4, \
             last_error = ?5, park_kind = ?6, remote_ref = COALESCE(?7, remote_ref), updated_at = ?8 \
             WHERE sink_id = ?1 AND event_id = ?2",
        )
        .map_err(backend)?;
    for (event_id, outcome) in outcomes {
        let (status, next, error, kind, remote) = outcome_columns(outcome, now_ms);
        st.execute(params![
            sink_id, event_id, status, next, error, kind, remote, now_ms
        ])
        .map_err(backend)?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl OutboxStore for SqliteStore {
    async fn create_sink(&self, sink: NewSink, now: DateTime<Utc>) -> Result<Sink> {
        self.write(move |conn| {
            let since_s = sink.since.map(|t| t.timestamp());
            let cursor: i64 = if let Some(from) = since_s {
                backfill_on(conn, from, ms(now))?;
                0
            } else {
                // Every punch stored from now on (event ids are punch ids).
                conn.query_row("SELECT COALESCE(MAX(id), 0) FROM punches", [], |r| r.get(0))
                    .map_err(backend)?
            };
            let inserted = conn.execute(
                "INSERT INTO sinks (name, kind, config, since_utc, cursor, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (name) DO NOTHING",
                params![
                    sink.name,
                    sink.kind.as_str(),
                    sink.config.to_string(),
                    since_s,
                    cursor,
                    ms(now)
                ],
            );
            match inserted.map_err(backend)? {
                0 => Err(StoreError::Conflict(format!(
                    "a sink named {:?} exists",
                    sink.name
                ))),
                _ => sink_by_name_on(conn, &sink.name),
            }
        })
        .await
    }

    async fn list_sinks(&self) -> Result<Vec<Sink>> {
        self.read(|conn| {
            let mut st = conn
                .prepare(&format!("SELECT {SINK_COLUMNS} FROM sinks ORDER BY name"))
                .map_err(backend)?;
            let rows = st.query_map([], sink_from_row).map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn get_sink(&self, name: &str) -> Result<Sink> {
        let name = name.to_owned();
        self.read(move |conn| sink_by_name_on(conn, &name)).await
    }

    async fn delete_sink(&self, name: &str) -> Result<()> {
        let name = name.to_owned();
        self.write(move |conn| {
            let sink = sink_by_name_on(conn, &name)?;
            conn.execute("DELETE FROM deliveries WHERE sink_id = ?1", [sink.id])
                .map_err(backend)?;
            conn.execute("DELETE FROM withdrawals WHERE sink_id = ?1", [sink.id])
                .map_err(backend)?;
            conn.execute("DELETE FROM sinks WHERE id = ?1", [sink.id])
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn set_sink_paused(
        &self,
        name: &str,
        paused: bool,
        reason: Option<String>,
    ) -> Result<()> {
        let name = name.to_owned();
        self.write(move |conn| {
            let n = conn
                .execute(
                    "UPDATE sinks SET paused = ?2, pause_reason = ?3 WHERE name = ?1",
                    params![name, paused, reason],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("sink {name:?}")));
            }
            Ok(())
        })
        .await
    }

    async fn set_sink_health(
        &self,
        id: i64,
        failing_since: Option<DateTime<Utc>>,
        last_error: Option<String>,
    ) -> Result<()> {
        self.write(move |conn| {
            conn.execute(
                "UPDATE sinks SET failing_since = ?2, last_error = ?3 WHERE id = ?1",
                params![id, failing_since.map(ms), last_error],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn take_events(&self, sink_id: i64, max: usize, now: DateTime<Utc>) -> Result<usize> {
        // A read first: an idle worker asks often, and should not queue a write each time.
        let any_new: bool = self
            .read(move |conn| {
                conn.query_row(
                    "SELECT EXISTS (SELECT 1 FROM punches WHERE id > (SELECT cursor FROM sinks WHERE id = ?1) \
                     AND outbox_at IS NOT NULL)",
                    [sink_id],
                    |r| r.get(0),
                )
                .map_err(backend)
            })
            .await?;
        if !any_new {
            return Ok(0);
        }
        self.write(move |conn| {
            let (cursor, since): (i64, Option<i64>) = conn
                .query_row(
                    "SELECT cursor, since_utc FROM sinks WHERE id = ?1",
                    [sink_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(backend)?;
            let last: Option<i64> = conn
                .query_row(
                    "SELECT MAX(id) FROM (SELECT id FROM punches WHERE id > ?1 AND outbox_at IS NOT NULL \
                     ORDER BY id LIMIT ?2)",
                    params![cursor, max as i64],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            let Some(last) = last else { return Ok(0) };
            let taken = conn
                .prepare_cached(
                    "INSERT INTO deliveries (sink_id, event_id, status, next_attempt_at, updated_at) \
                     SELECT ?1, p.id, 'pending', ?4, ?4 FROM punches p \
                     WHERE p.id > ?2 AND p.id <= ?3 AND p.outbox_at IS NOT NULL \
                       AND (?5 IS NULL OR p.punched_at_utc >= ?5) \
                     ON CONFLICT (sink_id, event_id) DO NOTHING",
                )
                .and_then(|mut st| st.execute(params![sink_id, cursor, last, ms(now), since]))
                .map_err(backend)?;
            move_cursor_on(conn, sink_id, cursor, last)?;
            Ok(taken)
        })
        .await
    }

    async fn pending_events(
        &self,
        sink_id: i64,
        due_at: Option<DateTime<Utc>>,
        max: usize,
    ) -> Result<Vec<OutboxEvent>> {
        let due_at = due_at.map(ms);
        self.read(move |conn| {
            let mut st = conn
                .prepare_cached(
                    "SELECT p.id, p.device_sn, p.pin, p.punched_at, p.punch_state, p.verify_mode, p.work_code, \
                     p.extra, p.time_zone, p.punched_at_utc, p.received_at, p.source, p.journal_id, \
                     d.event_id, COALESCE(p.outbox_at, p.received_at), d.attempts, d.next_attempt_at, dev.alias, \
                     dev.site FROM deliveries d JOIN punches p ON p.id = d.event_id \
                     LEFT JOIN devices dev ON dev.sn = p.device_sn \
                     WHERE d.sink_id = ?1 AND d.status = 'pending' AND (?3 IS NULL OR d.next_attempt_at <= ?3) \
                     ORDER BY d.event_id LIMIT ?2",
                )
                .map_err(backend)?;
            let rows = st
                .query_map(params![sink_id, max as i64, due_at], |row| {
                    Ok(OutboxEvent {
                        punch: punch_from_row(row)?,
                        id: row.get(13)?,
                        created_at: from_ms(row.get(14)?),
                        attempts: row.get(15)?,
                        next_attempt_at: from_ms(row.get(16)?),
                        device_alias: row.get(17)?,
                        device_site: row.get(18)?,
                        employee: None,
                        correction_id: None,
                    })
                })
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn record_outcomes(
        &self,
        sink_id: i64,
        outcomes: Vec<(i64, Outcome)>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.write(move |conn| update_outcomes_on(conn, sink_id, &outcomes, ms(now)))
            .await
    }

    async fn peek_events(
        &self,
        sink_id: i64,
        after: Option<i64>,
        max: usize,
    ) -> Result<Option<Peeked>> {
        self.read(move |conn| {
            let (cursor, since): (i64, Option<i64>) = conn
                .prepare_cached("SELECT cursor, since_utc FROM sinks WHERE id = ?1")
                .and_then(|mut st| st.query_row([sink_id], |r| Ok((r.get(0)?, r.get(1)?))))
                .optional()
                .map_err(backend)?
                .ok_or_else(|| StoreError::NotFound(format!("sink {sink_id}")))?;
            let from = after.unwrap_or(cursor);
            let mut st = conn
                .prepare_cached(
                    "SELECT p.id, p.device_sn, p.pin, p.punched_at, p.punch_state, p.verify_mode, p.work_code, \
                     p.extra, p.time_zone, p.punched_at_utc, p.received_at, p.source, p.journal_id, \
                     p.id, p.outbox_at, dev.alias, dev.site \
                     FROM punches p LEFT JOIN devices dev ON dev.sn = p.device_sn \
                     WHERE p.id > ?1 AND p.outbox_at IS NOT NULL ORDER BY p.id LIMIT ?2",
                )
                .map_err(backend)?;
            let mut rows = st
                .query(params![from, max as i64])
                .map_err(backend)?;
            let mut peeked = Peeked {
                from,
                through: from,
                events: Vec::new(),
            };
            while let Some(row) = rows.next().map_err(backend)? {
                peeked.through = row.get(13).map_err(backend)?;
                let punched_at_utc: i64 = row.get(9).map_err(backend)?;
                if since.is_some_and(|since| punched_at_utc < since) {
                    continue;
                }
                let created_at = from_ms(row.get(14).map_err(backend)?);
                peeked.events.push(OutboxEvent {
                    punch: punch_from_row(row).map_err(backend)?,
                    id: peeked.through,
                    created_at,
                    attempts: 0,
                    next_attempt_at: created_at,
                    device_alias: row.get(15).map_err(backend)?,
                    device_site: row.get(16).map_err(backend)?,
                    employee: None,
                    correction_id: None,
                });
            }
            Ok(Some(peeked))
        })
        .await
    }

    async fn record_peeked(
        &self,
        sink_id: i64,
        from: i64,
        through: i64,
        outcomes: Vec<(i64, Outcome)>,
        held: Vec<i64>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.write(move |conn| {
            let now = ms(now);
            let (taken, peeked): (Vec<_>, Vec<_>) =
                outcomes.into_iter().partition(|(id, _)| *id <= from);
            update_outcomes_on(conn, sink_id, &taken, now)?;
            if !move_cursor_on(conn, sink_id, from, through)? {
                return Ok(false);
            }
            let mut insert = conn
                .prepare_cached(
                    "INSERT INTO deliveries (sink_id, event_id, status, attempts, next_attempt_at, last_error, \
                     park_kind, remote_ref, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
                     ON CONFLICT (sink_id, event_id) DO NOTHING",
                )
                .map_err(backend)?;
            for (event_id, outcome) in &peeked {
                let (status, next, error, kind, remote) = match outcome {
                    // Delivered and nothing to keep: no row (at or below the cursor, no row = delivered).
                    Outcome::Delivered(None) => continue,
                    _ => outcome_columns(outcome, now),
                };
                insert
                    .execute(params![sink_id, event_id, status, 1, next, error, kind, remote, now])
                    .map_err(backend)?;
            }
            for event_id in &held {
                insert
                    .execute(params![
                        sink_id,
                        event_id,
                        "pending",
                        0,
                        now,
                        None::<&str>,
                        None::<&str>,
                        None::<&str>,
                        now
                    ])
                    .map_err(backend)?;
            }
            Ok(true)
        })
        .await
    }

    async fn retry_sink(
        &self,
        name: &str,
        only: Option<ParkKind>,
        now: DateTime<Utc>,
    ) -> Result<usize> {
        let name = name.to_owned();
        self.write(move |conn| {
            let sink = sink_by_name_on(conn, &name)?;
            let kind = only.map(ParkKind::as_str);
            let mut n = conn
                .execute(
                    "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?2, \
                     park_kind = NULL, updated_at = ?2 \
                     WHERE sink_id = ?1 AND status = 'parked' AND (?3 IS NULL OR park_kind = ?3)",
                    params![sink.id, ms(now), kind],
                )
                .map_err(backend)?;
            if only.is_none() {
                n += conn
                    .execute(
                        "UPDATE deliveries SET next_attempt_at = ?2, updated_at = ?2 \
                         WHERE sink_id = ?1 AND status = 'pending' AND next_attempt_at > ?2",
                        params![sink.id, ms(now)],
                    )
                    .map_err(backend)?;
            }
            Ok(n)
        })
        .await
    }

    async fn replay_sink(
        &self,
        name: &str,
        from: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<usize> {
        let name = name.to_owned();
        self.write(move |conn| {
            let sink = sink_by_name_on(conn, &name)?;
            let from_s = from.timestamp();
            backfill_on(conn, from_s, ms(now))?;
            // Events past the cursor are taken by the worker anyway; widen the sink's start so they are not
            // filtered out.
            conn.execute(
                "UPDATE sinks SET since_utc = MIN(since_utc, ?2) WHERE id = ?1 AND since_utc IS NOT NULL",
                params![sink.id, from_s],
            )
            .map_err(backend)?;
            let n = conn
                .execute(
                    "INSERT INTO deliveries (sink_id, event_id, status, next_attempt_at, updated_at) \
                     SELECT ?1, p.id, 'pending', ?3, ?3 FROM punches p \
                     WHERE p.punched_at_utc >= ?2 AND p.outbox_at IS NOT NULL \
                       AND p.id <= (SELECT cursor FROM sinks WHERE id = ?1) \
                     ON CONFLICT (sink_id, event_id) DO UPDATE SET status = 'pending', attempts = 0, \
                     next_attempt_at = excluded.next_attempt_at, last_error = NULL, park_kind = NULL, \
                     updated_at = excluded.updated_at",
                    params![sink.id, from_s, ms(now)],
                )
                .map_err(backend)?;
            // The backfill and the wider start changed which events are at or below the cursor: count them again
            // (a scan of the punches up to the cursor, once per replay).
            conn.execute(
                "UPDATE sinks SET passed = (SELECT COUNT(*) FROM punches p \
                   WHERE p.id <= sinks.cursor AND p.outbox_at IS NOT NULL \
                     AND (sinks.since_utc IS NULL OR p.punched_at_utc >= sinks.since_utc)) \
                 WHERE id = ?1",
                [sink.id],
            )
            .map_err(backend)?;
            Ok(n)
        })
        .await
    }

    async fn sink_counts(&self, sink_id: i64) -> Result<SinkCounts> {
        self.read(move |conn| {
            let mut counts = SinkCounts::default();
            let mut st = conn
                .prepare_cached(
                    "SELECT status, COUNT(*), SUM(attempts > 0) FROM deliveries WHERE sink_id = ?1 GROUP BY status",
                )
                .map_err(backend)?;
            let rows = st
                .query_map([sink_id], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
                })
                .map_err(backend)?;
            for row in rows {
                let (status, n, failed) = row.map_err(backend)?;
                match status.as_str() {
                    "pending" => {
                        counts.pending += n as u64;
                        counts.failed = failed as u64;
                    }
                    "delivered" => {}
                    _ => counts.parked += n as u64,
                }
            }
            // Delivered: every event at or below the cursor inside the sink's start (`passed`, kept with the
            // cursor), less those pending or parked (the fast path writes no row for an event it simply delivered;
            // see store/outbox.rs).
            let passed: i64 = conn
                .query_row("SELECT passed FROM sinks WHERE id = ?1", [sink_id], |r| {
                    r.get(0)
                })
                .map_err(backend)?;
            counts.delivered = (passed as u64).saturating_sub(counts.pending + counts.parked);
            let (untaken, oldest_untaken): (i64, Option<i64>) = conn
                .query_row(
                    "SELECT COUNT(*), MIN(p.outbox_at) FROM punches p, sinks s \
                     WHERE s.id = ?1 AND p.id > s.cursor AND p.outbox_at IS NOT NULL \
                       AND (s.since_utc IS NULL OR p.punched_at_utc >= s.since_utc)",
                    [sink_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(backend)?;
            let oldest_taken: Option<i64> = conn
                .query_row(
                    "SELECT MIN(p.outbox_at) FROM deliveries d JOIN punches p ON p.id = d.event_id \
                     WHERE d.sink_id = ?1 AND d.status = 'pending'",
                    [sink_id],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            counts.pending += untaken as u64;
            counts.oldest_pending_at = match (oldest_taken, oldest_untaken) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
            .map(from_ms);
            Ok(counts)
        })
        .await
    }

    async fn parked_events(&self, sink_id: i64, max: usize) -> Result<Vec<ParkedEvent>> {
        self.read(move |conn| {
            let mut st = conn
                .prepare(
                    "SELECT d.event_id, p.device_sn, p.pin, p.punched_at, d.park_kind, COALESCE(d.last_error, '') \
                     FROM deliveries d JOIN punches p ON p.id = d.event_id \
                     WHERE d.sink_id = ?1 AND d.status = 'parked' ORDER BY d.event_id LIMIT ?2",
                )
                .map_err(backend)?;
            let rows = st
                .query_map(params![sink_id, max as i64], |r| {
                    Ok(ParkedEvent {
                        event_id: r.get(0)?,
                        device_sn: r.get(1)?,
                        pin: r.get(2)?,
                        punched_at: r.get(3)?,
                        kind: park_kind(&r.get::<_, Option<String>>(4)?.unwrap_or_default()),
                        reason: r.get(5)?,
                    })
                })
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn remote_ref(&self, sink_id: i64, event_id: i64) -> Result<Option<String>> {
        self.read(move |conn| {
            conn.query_row(
                "SELECT remote_ref FROM deliveries WHERE sink_id = ?1 AND event_id = ?2",
                [sink_id, event_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)
            .map(Option::flatten)
        })
        .await
    }
}
