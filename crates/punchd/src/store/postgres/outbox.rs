//! [`OutboxStore`] on PostgreSQL: the outbox, sinks and deliveries.
//!
//! PLACEHOLDER until the outbox area is ported (helper pgops): [`insert_events_on`] writes nothing and every
//! trait method answers a `Backend` error. Port `sqlite/outbox.rs` (tables in migration 0002).

use chrono::{DateTime, Utc};

use super::{unported, PgStore};
use crate::store::outbox::{
    NewSink, OutboxEvent, OutboxStore, Outcome, ParkKind, ParkedEvent, Sink, SinkCounts,
};
use crate::store::Result;

/// Write the outbox events of punches `write_batch` just stored (`punch_ids`, ascending), in its transaction.
/// `received_at` is the batch's arrival (UTC).
pub(super) async fn insert_events_on(
    _tx: &deadpool_postgres::Transaction<'_>,
    _punch_ids: &[i64],
    _received_at: DateTime<Utc>,
) -> Result<()> {
    Ok(())
}

#[async_trait::async_trait]
impl OutboxStore for PgStore {
    async fn create_sink(&self, _sink: NewSink, _now: DateTime<Utc>) -> Result<Sink> {
        Err(unported("sinks"))
    }

    async fn list_sinks(&self) -> Result<Vec<Sink>> {
        // No sink can exist until the outbox is ported; an empty list lets `serve` start with no sink workers.
        Ok(Vec::new())
    }

    async fn get_sink(&self, name: &str) -> Result<Sink> {
        Err(crate::store::StoreError::NotFound(format!("sink {name}")))
    }

    async fn delete_sink(&self, _name: &str) -> Result<()> {
        Err(unported("sinks"))
    }

    async fn set_sink_paused(
        &self,
        _name: &str,
        _paused: bool,
        _reason: Option<String>,
    ) -> Result<()> {
        Err(unported("sinks"))
    }

    async fn set_sink_health(
        &self,
        _id: i64,
        _failing_since: Option<DateTime<Utc>>,
        _last_error: Option<String>,
    ) -> Result<()> {
        Err(unported("sinks"))
    }

    async fn take_events(&self, _sink_id: i64, _max: usize, _now: DateTime<Utc>) -> Result<usize> {
        Err(unported("the outbox"))
    }

    async fn pending_events(&self, _sink_id: i64, _max: usize) -> Result<Vec<OutboxEvent>> {
        Err(unported("the outbox"))
    }

    async fn record_outcomes(
        &self,
        _sink_id: i64,
        _outcomes: Vec<(i64, Outcome)>,
        _now: DateTime<Utc>,
    ) -> Result<()> {
        Err(unported("the outbox"))
    }

    async fn retry_sink(
        &self,
        _name: &str,
        _only: Option<ParkKind>,
        _now: DateTime<Utc>,
    ) -> Result<usize> {
        Err(unported("the outbox"))
    }

    async fn replay_sink(
        &self,
        _name: &str,
        _from: DateTime<Utc>,
        _now: DateTime<Utc>,
    ) -> Result<usize> {
        Err(unported("the outbox"))
    }

    async fn sink_counts(&self, _sink_id: i64) -> Result<SinkCounts> {
        Err(unported("the outbox"))
    }

    async fn parked_events(&self, _sink_id: i64, _max: usize) -> Result<Vec<ParkedEvent>> {
        Err(unported("the outbox"))
    }

    async fn remote_ref(&self, _sink_id: i64, _event_id: i64) -> Result<Option<String>> {
        Err(unported("the outbox"))
    }
}
