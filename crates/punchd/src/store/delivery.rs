//! Delivery facts the sinks' neighbours need ([`DeliveryStore`], issue 8): per device, what a sink has not
//! delivered yet (so Frappe's `last_sync_of_checkin` never passes an undelivered punch, and a terminal's log is
//! never cleared before every sink has its punches), pruning of fully delivered outbox events, withdrawals of
//! check-ins whose punch HR voided (migrations/sqlite/0012_delivery.sql), punches HR added and what each sink made
//! of them, and holding a command (safe clear; 0014_delivery_gaps.sql).
//!
//! Kept apart from [`super::outbox::OutboxStore`] so a backend adds it in a file of its own. Times are UTC.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

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

/// A punch voided by an HR correction (or a punch HR added, then revoked), as one sink saw it: what must be
/// withdrawn there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoidedPunch {
    /// The void-punch correction.
    pub correction_id: i64,
    /// The voided punch.
    pub punch_id: i64,
    /// Its device.
    pub device_sn: String,
    /// Its PIN.
    pub pin: String,
    /// Its terminal local time.
    pub punched_at: NaiveDateTime,
    /// Its punch state (`None` when the terminal sent none); with SN, PIN and time it makes the check-in's
    /// idempotency key (`sinks::idempotency_key`).
    pub punch_state: Option<u16>,
    /// Where the punch's event stands for the sink: `delivered`, `pending` (taken, or not taken yet), `parked`, or
    /// `None` when the sink never had an event for it.
    pub delivery: Option<String>,
    /// What the sink called the delivered check-in (the Frappe document name), if it said.
    pub remote_ref: Option<String>,
    /// Set for a punch HR added and then revoked, not a stored punch: when HR added it (UTC; part of the key its
    /// check-in was delivered under, `sinks::added_key`). Then `correction_id` is the revoked add-punch correction,
    /// `punch_id` 0, `device_sn` `HR-CORRECTION`, `pin` the employee code, `punched_at` the site local time HR
    /// typed.
    pub added_at: Option<DateTime<Utc>>,
}

/// A punch HR added in the monthly review (an add-punch correction) that one sink has not had yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedPunch {
    /// The add-punch correction.
    pub correction_id: i64,
    /// The employee it was added for (the check-in's employee as it is; no PIN mapping involved).
    pub employee_code: String,
    /// When, as a site local wall time.
    pub punched_at: NaiveDateTime,
    /// Its punch state, if HR gave one.
    pub punch_state: Option<u16>,
    /// When HR added it (UTC).
    pub created_at: DateTime<Utc>,
}

/// What became of an added punch at one sink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CorrectionDelivery {
    /// The add-punch correction.
    pub correction_id: i64,
    /// `delivered` or `parked`.
    pub status: String,
    /// The sink's name for the check-in (Frappe's document name), if it said.
    pub remote_ref: Option<String>,
    /// In plain words: what the sink answered.
    pub note: String,
    /// When (UTC).
    pub updated_at: DateTime<Utc>,
}

/// What became of a voided punch at one sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum WithdrawalStatus {
    /// The check-in was removed from the sink (or was gone already).
    Withdrawn,
    /// punchd cannot remove it: HR must act in the sink (the note says what).
    NeedsHr,
    /// The sink never received it (parked, or no event): nothing to withdraw.
    NotDelivered,
}

impl WithdrawalStatus {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            WithdrawalStatus::Withdrawn => "withdrawn",
            WithdrawalStatus::NeedsHr => "needs-hr",
            WithdrawalStatus::NotDelivered => "not-delivered",
        }
    }

    /// From the stored form.
    pub fn parse(s: &str) -> Option<WithdrawalStatus> {
        Some(match s {
            "withdrawn" => WithdrawalStatus::Withdrawn,
            "needs-hr" => WithdrawalStatus::NeedsHr,
            "not-delivered" => WithdrawalStatus::NotDelivered,
            _ => return None,
        })
    }
}

/// The withdrawal of one voided punch at one sink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Withdrawal {
    /// The void-punch correction, or the revoked add-punch correction of a punch HR added.
    pub correction_id: i64,
    /// The voided punch (0 for a punch HR added, which is no stored punch).
    pub punch_id: i64,
    /// Outcome.
    pub status: WithdrawalStatus,
    /// The sink's name for the check-in, if known.
    pub remote_ref: Option<String>,
    /// In plain words: what was done, or what HR must do.
    pub note: String,
    /// When (UTC).
    pub updated_at: DateTime<Utc>,
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

    /// Punches voided by a (not revoked) void-punch correction that have no withdrawal recorded for sink
    /// `sink_id` yet, by correction id, at most `max`, each with where its event stands for the sink.
    async fn voids_to_withdraw(&self, sink_id: i64, max: usize) -> Result<Vec<VoidedPunch>>;
    /// Punches HR added whose add-punch correction was revoked after sink `sink_id` had them delivered, with no
    /// withdrawal recorded for the sink yet, by correction id, at most `max` ([`VoidedPunch::added_at`] set;
    /// `delivery` is `delivered`). Revoked ones the sink never had (or had parked) need nothing and are left out.
    async fn revoked_additions_to_withdraw(
        &self,
        sink_id: i64,
        max: usize,
    ) -> Result<Vec<VoidedPunch>>;
    /// Record (or replace) what became of a voided punch (or a revoked added punch) at a sink.
    async fn record_withdrawal(&self, sink_id: i64, withdrawal: Withdrawal) -> Result<()>;
    /// The withdrawals recorded for a sink, by correction id.
    async fn list_withdrawals(&self, sink_id: i64) -> Result<Vec<Withdrawal>>;

    /// Hold a command (safe clear, `sinks::safe_clear`): a `queued` or `sent` command becomes (or stays) `queued`
    /// with `note` as its message (`None` clears the message); a `sent` one gets its delivery back (attempts − 1,
    /// no `sent_at`), since holding it is punchd's doing, not the device's. Returns whether the command was queued
    /// or sent (a finished, expired or cancelled command is left alone).
    async fn hold_command(&self, id: i64, note: Option<String>) -> Result<bool>;

    /// Punches added by (not revoked) add-punch corrections that sink `sink_id` has no outcome for yet, by
    /// correction id, at most `max`. A sink without a start date (`since`) gets the ones added after it was
    /// created; with one, every one.
    async fn added_punches_to_deliver(&self, sink_id: i64, max: usize) -> Result<Vec<AddedPunch>>;
    /// Record (or replace) what became of an added punch at a sink.
    async fn record_correction_delivery(
        &self,
        sink_id: i64,
        delivery: CorrectionDelivery,
    ) -> Result<()>;
    /// The outcomes recorded for a sink's added punches, by correction id.
    async fn list_correction_deliveries(&self, sink_id: i64) -> Result<Vec<CorrectionDelivery>>;
}
