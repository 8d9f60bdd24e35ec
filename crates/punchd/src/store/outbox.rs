//! The outbox and the sinks it feeds: types and the [`OutboxStore`] trait (issue 8).
//!
//! Model. Every punch stored while at least one sink exists gets one **event** in the outbox, written in the same
//! transaction as the punch (so nothing stored is ever missing, and a crash between commit and send loses
//! nothing). Each sink reads the events in id order past its **cursor** and keeps a **delivery** row per event:
//! `pending` (with attempts and the next attempt time), `delivered` (with what the sink called it), or `parked`
//! (with a kind and a reason; never dropped, replayed on request or, for `unmapped`, by [`OutboxStore::retry_sink`]).
//!
//! Two ways through a round. [`OutboxStore::take_events`] first writes a pending row for each event past the
//! cursor, [`OutboxStore::pending_events`] reads them back and [`OutboxStore::record_outcomes`] updates them: three
//! writes per event and sink. A store with a **fast path** ([`OutboxStore::peek_events`] answers `Some`; SQLite)
//! lets the worker read the events past the cursor without writing, and [`OutboxStore::record_peeked`] then moves
//! the cursor and writes a row only for an event that needs one (it failed, was parked, was held back, or the sink
//! named it); an event at or below the cursor with no row was delivered. The first attempt of a healthy sink then
//! costs one cursor update per round, not rows per event: the push path and the sinks share SQLite's one writer.
//! Times are UTC.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Result;
use crate::domain::Punch;

/// Where check-ins go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// HTTP POST of signed JSON batches (sinks/webhook.rs).
    Webhook,
    /// NATS JetStream (sinks/nats.rs).
    Nats,
    /// Frappe HR / ERPNext Employee Checkin (sinks/frappe.rs).
    Frappe,
}

impl SinkKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::Webhook => "webhook",
            SinkKind::Nats => "nats",
            SinkKind::Frappe => "frappe",
        }
    }

    /// Read a stored name.
    pub fn parse(s: &str) -> Option<SinkKind> {
        match s {
            "webhook" => Some(SinkKind::Webhook),
            "nats" => Some(SinkKind::Nats),
            "frappe" => Some(SinkKind::Frappe),
            _ => None,
        }
    }
}

/// A sink to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSink {
    /// Unique name (`punchd sinks pause NAME`).
    pub name: String,
    /// Kind.
    pub kind: SinkKind,
    /// The kind's settings as JSON (sinks/*.rs define them).
    pub config: serde_json::Value,
    /// Deliver punches from this instant on, including ones stored before the sink existed. `None`: every punch
    /// stored from now on (whatever its time: late uploads included).
    pub since: Option<DateTime<Utc>>,
}

/// A stored sink.
#[derive(Debug, Clone, PartialEq)]
pub struct Sink {
    /// Id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Kind.
    pub kind: SinkKind,
    /// Settings (JSON; secrets included).
    pub config: serde_json::Value,
    /// Only punches from this instant (see [`NewSink::since`]).
    pub since: Option<DateTime<Utc>>,
    /// Paused by a person or by punchd.
    pub paused: bool,
    /// Why punchd paused it (a configuration error, e.g. Frappe answered 401); `None` when a person did.
    pub pause_reason: Option<String>,
    /// Start of the current run of failures; `None` when the last attempt succeeded.
    pub failing_since: Option<DateTime<Utc>>,
    /// The last error, in plain words.
    pub last_error: Option<String>,
    /// Created (UTC).
    pub created_at: DateTime<Utc>,
}

/// Counts of one sink's deliveries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SinkCounts {
    /// Events not yet delivered or parked (taken or not yet taken from the outbox).
    pub pending: u64,
    /// When the oldest pending event was written (UTC).
    pub oldest_pending_at: Option<DateTime<Utc>>,
    /// Delivered.
    pub delivered: u64,
    /// Pending events that failed at least once (being retried).
    pub failed: u64,
    /// Parked (see the reasons with `punchd sinks show NAME`).
    pub parked: u64,
}

/// One event handed to a sink: the punch with the device facts a check-in carries.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEvent {
    /// Event id. SQLite: the punch's id, and sinks read events in id order (store/sqlite/outbox.rs). PostgreSQL: an
    /// id of its own, read in order of the writing transaction, then id (store/postgres/outbox.rs).
    pub id: i64,
    /// When the event was written (UTC).
    pub created_at: DateTime<Utc>,
    /// Attempts so far.
    pub attempts: u32,
    /// When it may be tried (UTC).
    pub next_attempt_at: DateTime<Utc>,
    /// The punch.
    pub punch: Punch,
    /// The device's alias, if set.
    pub device_alias: Option<String>,
    /// The device's site, if set.
    pub device_site: Option<String>,
    /// The employee punchd resolves the PIN to (`attendance::mapping::Resolver`: a device mapping, a site mapping,
    /// or an employee whose code is the PIN), filled by the sink worker just before delivery; `None` when the
    /// store returns the event or the PIN is unmapped in punchd ([`crate::sinks::employee_for`]).
    pub employee: Option<String>,
    /// Set for a punch HR added in the monthly review (an add-punch correction, `sinks::added`): its id. Such an
    /// event has no stored punch (`punch.id` 0, device `HR-CORRECTION`) and no outbox row.
    pub correction_id: Option<i64>,
}

/// Events past a sink's cursor, read by [`OutboxStore::peek_events`] without taking them.
#[derive(Debug, Clone, PartialEq)]
pub struct Peeked {
    /// The cursor they were read from (highest event id taken or peeked before).
    pub from: i64,
    /// The highest event id looked at (`from` when there was none). Events of punches before the sink's start
    /// (`Sink::since`) are passed over, not returned; recording moves the cursor here.
    pub through: i64,
    /// The events in id order: attempts 0, due when written.
    pub events: Vec<OutboxEvent>,
}

/// Why an event was parked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ParkKind {
    /// The sink does not know the employee (Frappe "No Employee found" / "Inactive Employee", frappe-hr.md §10.2);
    /// retried when employees or mappings change.
    Unmapped,
    /// The sink refused the event for good (a 4xx it will answer again).
    Rejected,
    /// Maximum attempts or age reached while it kept failing.
    GaveUp,
}

impl ParkKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ParkKind::Unmapped => "unmapped",
            ParkKind::Rejected => "rejected",
            ParkKind::GaveUp => "gave-up",
        }
    }
}

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The sink has it; with the sink's name for it when it gave one (Frappe's document name; webhook and NATS
    /// give none).
    Delivered(Option<String>),
    /// Try again at the given time; the error in plain words.
    Retry {
        /// When.
        at: DateTime<Utc>,
        /// Why it failed.
        error: String,
    },
    /// Parked, never dropped.
    Parked {
        /// Kind.
        kind: ParkKind,
        /// Why, in plain words.
        reason: String,
    },
}

/// A parked event, for `punchd sinks show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ParkedEvent {
    /// Event id.
    pub event_id: i64,
    /// Device SN.
    pub device_sn: String,
    /// PIN.
    pub pin: String,
    /// Terminal local time of the punch.
    pub punched_at: String,
    /// Kind.
    pub kind: ParkKind,
    /// Reason.
    pub reason: String,
}

/// Persistence of the outbox, sinks and deliveries. Every write is durable before `Ok`.
#[async_trait::async_trait]
pub trait OutboxStore: Send + Sync {
    /// Create a sink. With `since`, events are written for stored punches from that instant that have none
    /// (backfill), in the same transaction. From then on every stored punch gets an event. `Conflict` if the name
    /// is taken.
    async fn create_sink(&self, sink: NewSink, now: DateTime<Utc>) -> Result<Sink>;
    /// All sinks, by name.
    async fn list_sinks(&self) -> Result<Vec<Sink>>;
    /// One sink by name, or `NotFound`.
    async fn get_sink(&self, name: &str) -> Result<Sink>;
    /// Delete a sink and its delivery state. The outbox keeps its events.
    async fn delete_sink(&self, name: &str) -> Result<()>;
    /// Pause (with punchd's reason, or `None` when a person paused it) or resume.
    async fn set_sink_paused(&self, name: &str, paused: bool, reason: Option<String>)
        -> Result<()>;
    /// Record the sink's health: when its current run of failures began (`None` = healthy) and the last error.
    async fn set_sink_health(
        &self,
        id: i64,
        failing_since: Option<DateTime<Utc>>,
        last_error: Option<String>,
    ) -> Result<()>;
    /// Take up to `max` new events past the sink's cursor into its deliveries (pending, due now); returns how
    /// many were taken.
    async fn take_events(&self, sink_id: i64, max: usize, now: DateTime<Utc>) -> Result<usize>;
    /// Up to `max` pending events of the sink in event order: with `due_at` `None`, due or not (callers that keep
    /// order per employee need to see the ones waiting); with `Some(now)`, only those due by then
    /// (`next_attempt_at <= now`), so events backing off do not take the places of the ones behind them.
    async fn pending_events(
        &self,
        sink_id: i64,
        due_at: Option<DateTime<Utc>>,
        max: usize,
    ) -> Result<Vec<OutboxEvent>>;
    /// The fast path's read (see the module docs): up to `max` events past the sink's cursor, without writing.
    /// With `after`, past that event id instead of the cursor: a **read-ahead** of the next round while the
    /// current one (which read through `after`) is still being delivered. Its [`Peeked::from`] is `after`, so
    /// recording it ([`Self::record_peeked`]) succeeds only once the current round has moved the cursor there.
    /// `Ok(None)` when this store has no fast path (the default; PostgreSQL): the worker takes events instead.
    async fn peek_events(
        &self,
        _sink_id: i64,
        _after: Option<i64>,
        _max: usize,
    ) -> Result<Option<Peeked>> {
        Ok(None)
    }
    /// Record a round that read events with [`Self::peek_events`] (`from` and `through` of its [`Peeked`]) and
    /// maybe pending events too, in one transaction: `outcomes` of taken events (ids up to `from`) update their
    /// rows as [`Self::record_outcomes`] does; an outcome of a peeked event (id above `from`) writes a row unless
    /// the event was simply delivered with no name; each of `held` (peeked events not attempted: held behind an
    /// earlier event of the same employee, or the sink paused) gets a pending row, due `now`, attempts 0; the
    /// cursor moves to `through`. If the cursor is no longer at `from` (another instance moved it), nothing of the
    /// peeked events is written and `Ok(false)` comes back (they are sent again, under the same keys); taken
    /// events' outcomes are recorded all the same. A store without a fast path (its `peek_events` never answers
    /// `Some`) refuses with `Backend`.
    async fn record_peeked(
        &self,
        _sink_id: i64,
        _from: i64,
        _through: i64,
        _outcomes: Vec<(i64, Outcome)>,
        _held: Vec<i64>,
        _now: DateTime<Utc>,
    ) -> Result<bool> {
        Err(super::StoreError::Backend(
            "this store has no fast path for delivery rounds".into(),
        ))
    }
    /// Record outcomes of attempts (attempts + 1 each).
    async fn record_outcomes(
        &self,
        sink_id: i64,
        outcomes: Vec<(i64, Outcome)>,
        now: DateTime<Utc>,
    ) -> Result<()>;
    /// Parked events back to pending, due now: all of them, or only one kind. Returns how many.
    async fn retry_sink(
        &self,
        name: &str,
        only: Option<ParkKind>,
        now: DateTime<Utc>,
    ) -> Result<usize>;
    /// Deliver again every event of punches from `from` (UTC instant), delivered or not (the idempotency key keeps
    /// the sink from counting one twice); writes missing events first. Returns how many it owes again: those set
    /// pending and those it wrote.
    async fn replay_sink(
        &self,
        name: &str,
        from: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<usize>;
    /// Counts of a sink's deliveries.
    async fn sink_counts(&self, sink_id: i64) -> Result<SinkCounts>;
    /// Parked events of a sink, oldest first, at most `max`.
    async fn parked_events(&self, sink_id: i64, max: usize) -> Result<Vec<ParkedEvent>>;
    /// The sink's name for a delivered event (Frappe document name), if it gave one.
    async fn remote_ref(&self, sink_id: i64, event_id: i64) -> Result<Option<String>>;
}
