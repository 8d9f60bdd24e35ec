//! The outbox and the sinks it feeds: types and the [`OutboxStore`] trait (issue 8).
//!
//! Model. Every punch stored while at least one sink exists gets one **event** in the outbox, written in the same
//! transaction as the punch (so nothing stored is ever missing, and a crash between commit and send loses
//! nothing). Each sink reads the events in id order past its **cursor** and keeps one **delivery** row per event:
//! `pending` (with attempts and the next attempt time), `delivered` (with what the sink called it), or `parked`
//! (with a kind and a reason; never dropped, replayed on request or, for `unmapped`, by [`OutboxStore::retry_sink`]).
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
    /// Event id (outbox order).
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
    /// The sink has it; with the sink's name for it when it gave one (Frappe document name, stream sequence).
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
    /// the sink from counting one twice); writes missing events first. Returns how many were set pending.
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
