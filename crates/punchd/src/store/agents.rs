//! Edge agents (issue 10): on the hub, the agents an admin registered (each bound to one site), the devices they
//! feed and the alarms raised about them; on the agent, the forwarding state of each device. Both sides run the
//! same migrations, so one [`AgentStore`] serves both; a hub simply has no `agent_outbound` rows and an agent no
//! `agents` rows.
//!
//! How far the hub holds an agent-fed device is not kept here but in the device's stamp [`SEQ_STAMP`], which the
//! store advances in the same transaction as the punches of a batch (so it is never ahead of them), when the batch
//! carries a [`SeqRun`] ([`crate::store::Batch::agent_seq`]).
//!
//! **Several hub instances.** The check "does this batch start at most one past what the hub holds?" and the
//! advance of [`SEQ_STAMP`] happen inside the batch's transaction, holding the device's sequence until the commit:
//! on PostgreSQL a transaction-scoped advisory lock keyed by the device (`pg_advisory_xact_lock(
//! hashtextextended('agent:seq:<SN>', 0))`, the same key on every instance), on SQLite the single writer (one
//! instance per file). So two instances behind a load balancer taking batches of one device never interleave the
//! check and the write: the stamp never moves back and never skips a sequence number.
//!
//! **Gaps.** Each acknowledged batch of punches is recorded (table `agent_batches`: its journal entry, its
//! sequence run and how many punches it newly stored). The punches it stored carry its journal id, so when the
//! hub holds fewer punches of a device than it acknowledged, the earliest batch whose journal id holds fewer
//! punches than it stored is where the loss starts ([`AgentStore::agent_resend_from`]): the agent re-sends from
//! there, not from the start. Once the device is whole again ([`AgentStore::settle_agent_gap`]) each batch's
//! count is re-based on what it holds now (the punches re-sent are held by the new batches' journal entries).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Result;
use crate::domain::{DeviceSn, Punch};

/// The stamps-table key under which the hub keeps, per agent-fed device, the highest sequence number of a batch
/// it acknowledged (`<seq>` in decimal).
pub const SEQ_STAMP: &str = "agent:seq";

/// The stamps-table key under which the hub keeps, while a device fed by an agent has a gap, the sequence number
/// it told the agent to re-send from (`<seq>` in decimal); removed by [`AgentStore::settle_agent_gap`].
pub const GAP_STAMP: &str = "agent:gap";

/// The sequence run of an agent batch ([`crate::store::Batch::agent_seq`]): the punches of the batch are the
/// device's sequence numbers `first_seq ..= last_seq` on the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqRun {
    /// The device.
    pub device_sn: DeviceSn,
    /// Sequence number of the first punch (≥ 1).
    pub first_seq: i64,
    /// Sequence number of the last punch (`first_seq - 1` for a batch without punches).
    pub last_seq: i64,
}

/// The message of the `Conflict` a store returns when a batch's [`SeqRun`] starts past what the hub holds
/// (`first_seq > held + 1`); nothing of the batch was written.
pub fn sequence_gap_message(sn: &DeviceSn, held: i64, first_seq: i64) -> String {
    format!(
        "sequence gap: the hub holds {sn} up to sequence {held}; the batch starts at {first_seq}"
    )
}

/// Whether a store error is the sequence-gap refusal of [`sequence_gap_message`].
pub fn is_sequence_gap(e: &super::StoreError) -> bool {
    matches!(e, super::StoreError::Conflict(m) if m.starts_with("sequence gap: "))
}

/// An agent to register on the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAgent {
    /// Unique name (`lagos-office`).
    pub name: String,
    /// The site it writes for; its token can write for this site's devices only.
    pub site: String,
    /// SHA-256 hex of the agent token (never the token itself).
    pub token_hash: String,
}

/// An alarm: the agent or the hub found that data believed delivered is missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AgentAlarm {
    /// Id.
    pub id: i64,
    /// The device concerned, when one is.
    #[schema(value_type = Option<String>)]
    pub device_sn: Option<DeviceSn>,
    /// `gap` (the hub holds fewer punches than were acknowledged) or `sequence` (the hub's sequence number is
    /// behind the agent's).
    pub kind: String,
    /// What was found, in plain words.
    pub message: String,
    /// When it was raised (UTC).
    pub raised_at: DateTime<Utc>,
    /// Agent side: when the hub took the alarm (UTC); `None` while it is still to be reported.
    pub reported_at: Option<DateTime<Utc>>,
}

/// An alarm to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAlarm {
    /// The agent (hub side); 0 on the agent itself.
    pub agent_id: i64,
    /// The device concerned.
    pub device_sn: Option<DeviceSn>,
    /// `gap` or `sequence`.
    pub kind: String,
    /// What was found.
    pub message: String,
    /// When (UTC).
    pub raised_at: DateTime<Utc>,
}

/// A device an agent feeds, as the hub knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AgentDevice {
    /// The device.
    #[schema(value_type = String)]
    pub device_sn: DeviceSn,
    /// The IANA zone of its clock as the agent reported it.
    pub time_zone: Option<String>,
    /// When the agent first named it (UTC).
    pub claimed_at: DateTime<Utc>,
}

/// An agent as the hub keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AgentInfo {
    /// Id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// The site it writes for.
    pub site: String,
    /// Created (UTC).
    pub created_at: DateTime<Utc>,
    /// The punchd version it reported at its last hello.
    pub version: Option<String>,
    /// Its last request (UTC).
    pub last_contact_at: Option<DateTime<Utc>>,
    /// The address of its last request.
    pub last_contact_ip: Option<String>,
    /// Punches it holds that the hub has not acknowledged, as it last reported.
    pub backlog_count: u64,
    /// When the oldest of them reached the agent (UTC), as it last reported.
    pub backlog_oldest_at: Option<DateTime<Utc>>,
    /// The devices it feeds, by SN.
    pub devices: Vec<AgentDevice>,
    /// Its alarms, newest first (at most 20).
    pub alarms: Vec<AgentAlarm>,
}

/// What an agent's request told the hub about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentContact {
    /// When (UTC).
    pub at: DateTime<Utc>,
    /// From where.
    pub ip: Option<String>,
    /// Its version, when it said (hello).
    pub version: Option<String>,
    /// Its backlog (punches held, oldest arrival UTC), when it said.
    pub backlog: Option<(u64, Option<DateTime<Utc>>)>,
}

/// Where the forwarding of one device stands on the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Punches are stored locally past `acked_id` (or nothing is in flight): the next step sends them.
    Stored,
    /// A batch up to `sent_id`/`sent_seq` was sent and not yet acknowledged.
    Sent,
    /// The hub acknowledged everything up to `acked_id`/`acked_seq`.
    Acknowledged,
}

impl Phase {
    /// Lowercase name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Stored => "stored",
            Phase::Sent => "sent",
            Phase::Acknowledged => "acknowledged",
        }
    }

    /// Parse the stored name.
    pub fn parse(s: &str) -> Option<Phase> {
        Some(match s {
            "stored" => Phase::Stored,
            "sent" => Phase::Sent,
            "acknowledged" => Phase::Acknowledged,
            _ => return None,
        })
    }
}

/// The persisted forwarding state of one device on the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outbound {
    /// The device.
    pub device_sn: DeviceSn,
    /// Where it stands.
    pub phase: Phase,
    /// The local punch id up to which the hub acknowledged (0 = nothing yet).
    pub acked_id: i64,
    /// The sequence number of that punch (how many punches of the device the hub acknowledged).
    pub acked_seq: i64,
    /// The last local punch id of the batch in flight (`Sent`), else equal to `acked_id`.
    pub sent_id: i64,
    /// The last sequence number of the batch in flight.
    pub sent_seq: i64,
    /// When the batch in flight was sent (UTC).
    pub sent_at: Option<DateTime<Utc>>,
}

impl Outbound {
    /// The state of a device nothing was sent for.
    pub fn new(device_sn: DeviceSn) -> Outbound {
        Outbound {
            device_sn,
            phase: Phase::Acknowledged,
            acked_id: 0,
            acked_seq: 0,
            sent_id: 0,
            sent_seq: 0,
            sent_at: None,
        }
    }
}

/// Persistence of agents (hub side) and of the forwarding state (agent side). Every write is durable before
/// `Ok`.
#[async_trait::async_trait]
pub trait AgentStore: Send + Sync + 'static {
    /// Register an agent; `Conflict` if the name is taken.
    async fn create_agent(&self, agent: NewAgent, now: DateTime<Utc>) -> Result<AgentInfo>;
    /// The agent holding this token hash, if any.
    async fn find_agent_by_token(&self, token_hash: &str) -> Result<Option<AgentInfo>>;
    /// All agents by name, with their devices and latest alarms.
    async fn list_agents(&self) -> Result<Vec<AgentInfo>>;
    /// Record a request of an agent: last contact, and version and backlog when given. `NotFound` if unknown.
    async fn record_agent_contact(&self, agent_id: i64, contact: AgentContact) -> Result<()>;
    /// Record that the agent feeds these devices (with their zones). `Conflict` naming the device when one is
    /// fed by another agent; nothing is recorded then.
    async fn claim_agent_devices(
        &self,
        agent_id: i64,
        devices: Vec<(DeviceSn, Option<String>)>,
        now: DateTime<Utc>,
    ) -> Result<()>;
    /// The agent feeding a device, if any.
    async fn agent_of_device(&self, sn: &DeviceSn) -> Result<Option<i64>>;
    /// Record an alarm; returns its id.
    async fn raise_agent_alarm(&self, alarm: NewAlarm) -> Result<i64>;
    /// Alarms of an agent (0 = the agent's own), newest first, at most `limit`.
    async fn agent_alarms(&self, agent_id: i64, limit: usize) -> Result<Vec<AgentAlarm>>;
    /// Agent side: mark alarms as taken by the hub.
    async fn mark_alarms_reported(&self, ids: Vec<i64>, now: DateTime<Utc>) -> Result<()>;

    /// Hub side: where an agent must re-send a device from, when the hub lost punches it acknowledged: the first
    /// sequence number of the earliest recorded batch of the device (table `agent_batches`) that holds fewer
    /// punches than it stored, or 1 when no batch does (the loss is in punches the hub holds from elsewhere, or
    /// older than the records). Remembers the open gap ([`GAP_STAMP`]). Reads every punch of the device: call it
    /// only when the device's count is below its sequence stamp.
    async fn agent_resend_from(&self, sn: &DeviceSn, now: DateTime<Utc>) -> Result<i64>;
    /// Hub side: the device is whole again (its count reached its sequence stamp). If a gap was open
    /// ([`GAP_STAMP`]), re-base each recorded batch's count on the punches it holds now and close the gap;
    /// returns whether one was open. Cheap when none is.
    async fn settle_agent_gap(&self, sn: &DeviceSn) -> Result<bool>;

    /// Agent side: the forwarding state of a device (`Outbound::new` when there is none yet).
    async fn outbound(&self, sn: &DeviceSn) -> Result<Outbound>;
    /// Agent side: write the forwarding state of a device.
    async fn save_outbound(&self, state: Outbound, now: DateTime<Utc>) -> Result<()>;
    /// Agent side: punches of a device with a local id above `after_id`, by id, at most `limit`.
    async fn punches_after(&self, sn: &DeviceSn, after_id: i64, limit: usize)
        -> Result<Vec<Punch>>;
    /// Agent side: the local id of the `seq`-th punch of a device (1-based, by id), or 0 for `seq` 0; `None`
    /// when the device has fewer punches.
    async fn punch_id_at_seq(&self, sn: &DeviceSn, seq: i64) -> Result<Option<i64>>;
    /// Agent side: the backlog, punches past each device's acknowledged id (devices without a state count from
    /// 0), and when the oldest of them was received (UTC).
    async fn outbound_backlog(&self) -> Result<(u64, Option<DateTime<Utc>>)>;
}
