//! Delivery facts the sinks' neighbours need ([`DeliveryStore`], issue 8): per device, what a sink has not
//! delivered yet (so Frappe's `last_sync_of_checkin` never passes an undelivered punch, and a terminal's log is
//! never cleared before every sink has its punches), and pruning of fully delivered outbox events.
//!
//! Kept apart from [`super::outbox::OutboxStore`] so a backend adds it in a file of its own. Times are UTC.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Result;

/// What one sink still owes for one device's punches: events neither delivered nor parked, whether already taken
/// into the sink's deliveries (pending, retrying) or still past its cursor (not taken yet, inside its `since`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Undelivered {
    /// The device SN.
    pub device_sn: String,
    /// How many events.
    pub events: u64,
    /// The earliest punch instant (UTC, `punched_at_utc`) among them.
    pub oldest_punch_at: DateTime<Utc>,
}

/// Persistence for delivery bookkeeping beyond the outbox itself. Writes are durable on `Ok`.
#[async_trait::async_trait]
pub trait DeliveryStore: Send + Sync {
    /// Per device (by SN), the events of sink `sink_id` neither delivered nor parked. Devices with none are
    /// left out. `NotFound` for an unknown sink.
    async fn undelivered_by_device(&self, sink_id: i64) -> Result<Vec<Undelivered>>;

    /// Delete at most `max` outbox events written before `before` that every existing sink has taken (its cursor is
    /// past them) and delivered or skipped (outside its start date); events that are pending or parked for any
    /// sink are kept, never dropped. With no sink at all, every event older than `before` goes. Their delivery
    /// rows go with them. A later replay or `since` backfill writes events for those punches again. Returns how
    /// many events were deleted (call again while it returns `max`).
    async fn prune_outbox(&self, before: DateTime<Utc>, max: usize) -> Result<usize>;
}
