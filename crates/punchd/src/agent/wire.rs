//! The agent API's bodies, shared by the hub ([`crate::web::agent_api`]) and the agent's client
//! ([`super::client`]): plain serde types, no IO.
//!
//! Sequence numbers: the agent numbers each device's punches 1, 2, 3, … in the order it stored them. A batch
//! carries a contiguous run `first_seq ..= first_seq + len - 1`; the hub acknowledges the last one. Times:
//! `punched_at` is the terminal's local wall time as the terminal recorded it (no zone); every other time is UTC.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

/// What the agent holds that the hub has not acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Backlog {
    /// Punches held.
    pub count: u64,
    /// When the oldest of them reached the agent (UTC).
    pub oldest_at: Option<DateTime<Utc>>,
}

/// A device the agent feeds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HelloDevice {
    /// Serial number.
    pub sn: String,
    /// IANA zone of its clock, when the agent knows it.
    pub time_zone: Option<String>,
}

/// `POST /api/v1/agent/hello`: the agent starts (or reconnects) and names its devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Hello {
    /// The agent's punchd version.
    pub version: String,
    /// Its devices.
    pub devices: Vec<HelloDevice>,
    /// Its backlog.
    pub backlog: Backlog,
}

/// How far the hub holds one agent-fed device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeviceStatus {
    /// Serial number.
    pub device_sn: String,
    /// The highest sequence number the hub acknowledged (0 = none).
    pub last_seq: i64,
    /// Punches of the device the hub holds now (from every source). Fewer than `last_seq` means punches the
    /// hub acknowledged are missing: a gap.
    pub count: u64,
    /// Set only with a gap (hubs from the version that added it; older hubs never send it, and older agents
    /// ignore it): the first sequence number of the earliest batch the hub acknowledged and no longer holds in
    /// full. Everything before it is held, so the agent re-sends from here instead of from sequence 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resend_from: Option<i64>,
}

/// The answer to a hello.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HelloReply {
    /// The agent's name on the hub.
    pub agent: String,
    /// Its site.
    pub site: String,
    /// Where each of its devices stands.
    pub devices: Vec<DeviceStatus>,
}

/// One punch in a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WirePunch {
    /// PIN.
    pub pin: String,
    /// Terminal local wall time, `YYYY-MM-DDTHH:MM:SS`.
    #[schema(value_type = String)]
    pub punched_at: NaiveDateTime,
    /// Punch state code, if the terminal sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub punch_state: Option<u16>,
    /// Verify mode code, if sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_mode: Option<u16>,
    /// Work code, if sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_code: Option<String>,
    /// Extra columns as sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<String>,
}

/// `POST /api/v1/agent/batches`: punches of one device, a contiguous run of sequence numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PunchBatch {
    /// The device.
    pub device_sn: String,
    /// IANA zone of its clock (the hub's own setting for the device wins).
    pub time_zone: Option<String>,
    /// Sequence number of the first punch.
    pub first_seq: i64,
    /// The punches, in sequence order.
    pub punches: Vec<WirePunch>,
    /// Set when this batch empties the agent's backlog of the device: the last complete pull of the terminal
    /// (UTC); the hub's watermark of the device follows it.
    pub complete_as_of: Option<DateTime<Utc>>,
    /// The agent's whole backlog, when it measured it.
    pub backlog: Option<Backlog>,
}

impl PunchBatch {
    /// Sequence number of the last punch (`first_seq - 1` for an empty batch).
    pub fn last_seq(&self) -> i64 {
        self.first_seq + self.punches.len() as i64 - 1
    }
}

/// The hub's answer to a batch, sent only after the batch is durable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchReply {
    /// Everything up to this sequence number is held.
    pub acked_seq: i64,
    /// Punches newly stored.
    pub n_stored: usize,
    /// Punches already held.
    pub n_duplicate: usize,
    /// The raw journal entry of the batch.
    pub journal_id: i64,
}

/// The hub's answer when a batch starts past what it holds (409): send again from `last_seq + 1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SequenceGap {
    /// What went wrong.
    pub error: String,
    /// The highest sequence number the hub holds for the device.
    pub last_seq: i64,
}

/// An alarm the agent raised, reported to the hub (`POST /api/v1/agent/alarms`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AlarmReport {
    /// The device concerned.
    pub device_sn: Option<String>,
    /// `gap` or `sequence`.
    pub kind: String,
    /// What the agent found.
    pub message: String,
    /// When (UTC).
    pub raised_at: DateTime<Utc>,
}
