//! The store: everything punchd keeps, behind one [`Store`] trait.
//!
//! [`sqlite`] is the embedded default: one writer thread fed by a channel, group commit (every queued write in one
//! transaction, each answered after the commit), and a small pool of read connections. [`postgres`] implements
//! the same trait with native SQL, for several instances on one database. Callers never see SQL: `ingest`, `devices`,
//! `sources` and `web` speak in the types below. This module depends only on `domain` ([`open`] reads the `Config`).

pub mod agents;
pub mod attendance;
#[cfg(test)]
mod contract;
#[cfg(test)]
mod contract_agents;
#[cfg(test)]
mod contract_attendance;
#[cfg(test)]
mod contract_delivery;
#[cfg(test)]
mod contract_hardening;
#[cfg(test)]
mod contract_leases;
#[cfg(test)]
mod contract_operations;
#[cfg(test)]
mod contract_outbox;
#[cfg(test)]
mod contract_push;
#[cfg(test)]
mod contract_sources;
#[cfg(test)]
mod contract_ui_accounts;
pub mod delivery;
pub mod hardening;
pub mod leases;
mod open;
pub mod operations;
pub mod outbox;
pub mod postgres;
pub mod push;
pub mod sources;
pub mod sqlite;
pub mod ui_accounts;

pub use hardening::HardeningStore;
pub use open::open;
pub use operations::{JournalFilter, OperationsStore};

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;

use crate::domain::{
    Approval, Command, CommandKind, CommandStatus, Device, DeviceSn, NewCommand, NewPunch, Pin,
    Punch, Scope, Source, Transport,
};

/// What went wrong in the store, in the domain's terms.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The thing asked for does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A uniqueness rule refused the write (a token name in use, a device that already exists).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database failed (disk full, I/O error, corrupt file). Nothing of the failed write was kept.
    #[error("database error: {0}")]
    Backend(String),
    /// The store is shutting down; the write was not attempted.
    #[error("the store is closed")]
    Closed,
}

/// Store result.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A line (or record) that could not be read, kept in the journal next to the bytes it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct LineIssue {
    /// 1-based line (or record) number within the body.
    pub line_no: usize,
    /// The line as text (lossy for invalid UTF-8), at most 512 characters.
    pub line: String,
    /// Why it was not stored.
    pub reason: String,
}

/// One raw journal entry: the untouched bytes of what arrived, with when and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    /// When it arrived (UTC).
    pub received_at: DateTime<Utc>,
    /// The device it came from, when known.
    pub device_sn: Option<DeviceSn>,
    /// How it arrived.
    pub source: Source,
    /// What it is: `ATTLOG`, `OPERLOG`, `ATTPHOTO`, `BIODATA`, `devicecmd`, `options`, `INFO`, `pull:attendance`…
    pub kind: String,
    /// The request line target (`POST /iclock/cdata?SN=…`), or a description for non-HTTP sources.
    pub request: String,
    /// Remote address.
    pub remote_addr: Option<String>,
    /// The bytes exactly as received.
    pub body: Vec<u8>,
    /// Lines that could not be read.
    pub errors: Vec<LineIssue>,
}

/// A user as a device knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DeviceUser {
    /// The device.
    #[schema(value_type = String)]
    pub device_sn: DeviceSn,
    /// User id on the device.
    #[schema(value_type = String)]
    pub pin: Pin,
    /// Name (decoded from UTF-8, GB18030 or Latin-1).
    pub name: String,
    /// 0 user, 2 enroller, 6 admin, 14 super admin.
    pub privilege: Option<u16>,
    /// Password as sent (may be empty).
    pub password: String,
    /// Card number as sent.
    pub card: String,
    /// Group.
    pub group: String,
    /// Time-zone string (16 characters on att firmware).
    pub time_zones: String,
    /// Verify mode the user is set to, if sent.
    pub verify_mode: Option<i32>,
    /// False after a `disable_user` command succeeded.
    pub enabled: bool,
    /// Every key=value the device sent, as an object.
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// Last change (UTC).
    pub updated_at: DateTime<Utc>,
}

/// A biometric template as a device sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Template {
    /// The device.
    #[schema(value_type = String)]
    pub device_sn: DeviceSn,
    /// Whose.
    #[schema(value_type = String)]
    pub pin: Pin,
    /// finger, face, finger-vein or bio (unified BIODATA).
    pub kind: String,
    /// BIODATA type (push.md appendix E); 0 for the older kinds.
    pub bio_type: u16,
    /// Finger number (FID) or BIODATA `No`.
    pub no: u16,
    /// Template index within the finger/face.
    pub index: u16,
    /// Valid flag (1 normal, 3 duress on FP).
    pub valid: Option<u16>,
    /// Duress template.
    pub duress: bool,
    /// Algorithm major version.
    pub major_ver: Option<String>,
    /// Algorithm minor version.
    pub minor_ver: Option<String>,
    /// 0 ZK, 1 ISO, 2 ANSI.
    pub format: Option<u16>,
    /// The template, base64 as sent.
    pub template: String,
    /// Last change (UTC).
    pub updated_at: DateTime<Utc>,
}

/// A photo (capture photo, user photo or comparison photo).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Photo {
    /// The device.
    pub device_sn: DeviceSn,
    /// attphoto, userpic or biophoto.
    pub kind: String,
    /// Whose, when known.
    pub pin: Option<String>,
    /// File name as sent (unique per device and kind).
    pub file_name: String,
    /// Terminal local time from the file name, when it carries one.
    pub taken_at: Option<NaiveDateTime>,
    /// The image bytes (JPEG).
    pub content: Vec<u8>,
}

/// One operation-log entry (push.md §7.2 OPLOG; appendix C codes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OplogEntry {
    /// The device.
    pub device_sn: DeviceSn,
    /// Operation code.
    pub op_type: u16,
    /// Admin PIN (0 = none).
    pub operator: String,
    /// Terminal local time.
    pub op_at: NaiveDateTime,
    /// Objects 1–4 as sent.
    pub objects: Vec<String>,
}

/// A record kept as key=value fields (IDCARD, ERRORLOG, WORKCODE, unknown tags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// The device.
    pub device_sn: DeviceSn,
    /// The record tag as sent.
    pub tag: String,
    /// key=value pairs as sent.
    pub fields: Vec<(String, String)>,
}

/// Everything one request (or one pull) delivered, written atomically with its raw journal entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The raw bytes; journaled first, in the same transaction.
    pub raw: RawEntry,
    /// Punches (deduplicated by device, local time, PIN and punch state).
    pub punches: Vec<NewPunch>,
    /// Users (upserted by device and PIN).
    pub users: Vec<DeviceUser>,
    /// Templates (upserted).
    pub templates: Vec<Template>,
    /// Photos (deduplicated by device, kind and file name).
    pub photos: Vec<Photo>,
    /// Operation log (deduplicated).
    pub oplog: Vec<OplogEntry>,
    /// Other records.
    pub records: Vec<DeviceRecord>,
    /// A stamp to remember: (device, table, value). A push terminal's upload cursor (push.md §4), the pull
    /// cursor (`pull:attendance`), written with the batch unless [`Batch::stamp_may_lag`].
    pub stamp: Option<(DeviceSn, String, String)>,
    /// Whether [`Batch::stamp`] may be written up to a second after the batch commits rather than in its
    /// transaction: true for push upload cursors only, where a stale stamp after a crash just makes the terminal
    /// send again what the punches' identity absorbs. The SQLite store holds such stamps in memory and writes them
    /// together (`store/sqlite/held_stamps.rs`); PostgreSQL writes them with the batch. Never for the pull cursor
    /// or an agent's sequence.
    pub stamp_may_lag: bool,
    /// Key/values to merge into the device's `info` (options push, INFO).
    pub device_info: Option<(DeviceSn, serde_json::Map<String, serde_json::Value>)>,
    /// An agent batch's sequence run (issue 10, [`agents`] module doc): checked against the device's
    /// [`agents::SEQ_STAMP`] and advanced in the batch's transaction, holding the device's sequence across
    /// instances; `Conflict` ([`agents::is_sequence_gap`]) when it starts past what the hub holds.
    pub agent_seq: Option<agents::SeqRun>,
}

impl Batch {
    /// An empty batch around a raw entry.
    pub fn new(raw: RawEntry) -> Batch {
        Batch {
            raw,
            punches: Vec::new(),
            users: Vec::new(),
            templates: Vec::new(),
            photos: Vec::new(),
            oplog: Vec::new(),
            records: Vec::new(),
            stamp: None,
            stamp_may_lag: false,
            device_info: None,
            agent_seq: None,
        }
    }

    /// How many records the batch carries (what `OK:<n>` counts).
    pub fn n_records(&self) -> usize {
        self.punches.len()
            + self.users.len()
            + self.templates.len()
            + self.photos.len()
            + self.oplog.len()
            + self.records.len()
    }
}

/// What a committed batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BatchOutcome {
    /// The journal entry id.
    pub journal_id: i64,
    /// Punches newly stored.
    pub n_stored: usize,
    /// Punches already held (re-sent).
    pub n_duplicate: usize,
    /// All records held after the commit (new or already there): punches, users, templates, photos, …
    pub n_records: usize,
}

/// A device seen for the first time, or seen again with new facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceContact {
    /// The device.
    pub sn: DeviceSn,
    /// Poll delay a new device gets (push `Delay`, seconds).
    pub poll_delay_secs: u32,
    /// The approval a new device gets (the policy decides).
    pub approval_if_new: Approval,
    /// How it talks to us.
    pub transport: Transport,
    /// When (UTC).
    pub seen_at: DateTime<Utc>,
    /// From where.
    pub ip: Option<String>,
    /// Firmware, if this contact reported it.
    pub firmware: Option<String>,
    /// `pushver=`, if reported.
    pub push_version: Option<String>,
    /// `language=`, if reported.
    pub language: Option<String>,
    /// `DeviceType=`, if reported.
    pub device_type: Option<String>,
}

/// A change to a device's settings; `None` fields are left as they are, `Some(None)` clears. Unknown fields are
/// refused (a typo must not be answered 200 with nothing changed).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DevicePatch {
    /// New approval.
    pub approval: Option<Approval>,
    /// New alias.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub alias: Option<Option<String>>,
    /// New site.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub site: Option<Option<String>>,
    /// New IANA time zone.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub time_zone: Option<Option<String>>,
    /// New poll delay (push `Delay`), seconds.
    pub poll_delay_secs: Option<u32>,
    /// Pull: address `host[:port]`.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub address: Option<Option<String>>,
    /// Pull: comm key.
    pub comm_key: Option<u32>,
    /// Pull: seconds between pulls, 0 = live.
    pub pull_interval_secs: Option<u32>,
    /// Pull: clear the attendance log after a verified complete pull.
    pub clear_after_pull: Option<bool>,
    /// Pull: transport (tcp or udp).
    pub transport: Option<Transport>,
    /// Safe clear: clear the attendance log only once every sink has delivered or parked every punch of the
    /// device (push and pull; see `Device::safe_clear`).
    pub safe_clear: Option<bool>,
}

/// "Last seen" facts flushed in bulk (heartbeats are kept in memory and written every few seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenUpdate {
    /// The device.
    pub sn: DeviceSn,
    /// Last request (UTC).
    pub at: DateTime<Utc>,
    /// Remote address.
    pub ip: Option<String>,
}

/// A bound of a punch time filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeBound {
    /// Terminal local wall time (compared with `punched_at`).
    Local(NaiveDateTime),
    /// An instant (compared with `punched_at_utc`).
    Utc(DateTime<Utc>),
}

/// Which punches to list. `from` is inclusive, `to` exclusive; results are ordered by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PunchFilter {
    /// Only this device.
    pub device_sn: Option<DeviceSn>,
    /// Only this PIN.
    pub pin: Option<Pin>,
    /// From (inclusive).
    pub from: Option<TimeBound>,
    /// To (exclusive).
    pub to: Option<TimeBound>,
    /// Only ids greater than this (the pagination cursor).
    pub after_id: Option<i64>,
    /// At most this many (0 = no limit).
    pub limit: usize,
}

/// A device's answer to one command.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandCompletion {
    /// The command id.
    pub id: i64,
    /// Device return code (≥ 0 success).
    pub return_code: i64,
    /// Readable meaning.
    pub message: String,
    /// Payload (INFO key/values, Shell output…).
    pub result: Option<serde_json::Value>,
}

/// Which commands to list, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandFilter {
    /// Only this device.
    pub device_sn: Option<DeviceSn>,
    /// Only this status.
    pub status: Option<CommandStatus>,
    /// At most this many (0 = no limit).
    pub limit: usize,
}

/// A stored journal entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct JournalEntry {
    /// Id.
    pub id: i64,
    /// Arrival (UTC).
    pub received_at: DateTime<Utc>,
    /// Device.
    #[schema(value_type = Option<String>)]
    pub device_sn: Option<DeviceSn>,
    /// Source.
    #[schema(value_type = String)]
    pub source: Source,
    /// Kind.
    pub kind: String,
    /// Request line target.
    pub request: String,
    /// Remote address.
    pub remote_addr: Option<String>,
    /// Body bytes, base64 (standard alphabet, padded) in JSON as `body_base64`.
    #[serde(rename = "body_base64", serialize_with = "operations::base64_bytes")]
    #[schema(value_type = String, format = Byte)]
    pub body: Vec<u8>,
    /// Records seen.
    pub n_records: usize,
    /// Punches newly stored.
    pub n_stored: usize,
    /// Punches already held.
    pub n_duplicate: usize,
    /// Lines that could not be read.
    pub errors: Vec<LineIssue>,
}

/// An API token's public facts (the secret is only shown once, at creation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    /// Id.
    pub id: i64,
    /// Name given at creation.
    pub name: String,
    /// What it may do.
    pub scope: Scope,
    /// Created (UTC).
    pub created_at: DateTime<Utc>,
    /// Revoked (UTC), if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Everything punchd keeps. Implementations must make every `write_*`/`enqueue_*`/`take_*`/`complete_*`
/// durable before returning `Ok` (the push server acknowledges on it).
#[async_trait::async_trait]
pub trait Store:
    HardeningStore
    + push::PushStore
    + OperationsStore
    + outbox::OutboxStore
    + delivery::DeliveryStore
    + sources::SourcesStore
    + attendance::AttendanceStore
    + leases::LeaseStore
    + agents::AgentStore
    + ui_accounts::UiAccountsStore
    + Send
    + Sync
    + 'static
{
    /// Check that the database answers (health checks).
    async fn ping(&self) -> Result<()>;
    /// Write a batch and its raw journal entry atomically. Re-sent punches are counted as duplicates and not
    /// stored twice. `Ok` means committed.
    async fn write_batch(&self, batch: Batch) -> Result<BatchOutcome>;
    /// Journal a request that carries no records (e.g. a command result body); returns the journal id.
    async fn write_journal(&self, raw: RawEntry) -> Result<i64>;

    /// Register a device on first contact, or record the new facts of a known one. Returns the device.
    async fn upsert_device(&self, contact: DeviceContact) -> Result<Device>;
    /// Create a device with explicit settings (pull devices); `Conflict` if it exists.
    async fn create_device(&self, device: Device) -> Result<Device>;
    /// One device, or `NotFound`.
    async fn get_device(&self, sn: &DeviceSn) -> Result<Device>;
    /// All devices, by SN.
    async fn list_devices(&self) -> Result<Vec<Device>>;
    /// Devices whose settings changed after `revision`, and the highest revision seen.
    async fn devices_changed_since(&self, revision: i64) -> Result<(Vec<Device>, i64)>;
    /// Change settings; bumps the revision. `NotFound` if unknown.
    async fn update_device(&self, sn: &DeviceSn, patch: DevicePatch) -> Result<Device>;
    /// Flush last-seen facts.
    async fn record_seen(&self, seen: Vec<SeenUpdate>) -> Result<()>;
    /// Record the outcome of a pull session: last error (None = success) and clock drift.
    async fn record_device_health(
        &self,
        sn: &DeviceSn,
        at: DateTime<Utc>,
        last_error: Option<String>,
        clock_drift_secs: Option<i64>,
    ) -> Result<()>;
    /// The stamps remembered for a device: (table, value), by table.
    async fn stamps(&self, sn: &DeviceSn) -> Result<Vec<(String, String)>>;
    /// Write what the store holds in memory to write later: on SQLite the push stamps of the last second
    /// ([`Batch::stamp_may_lag`], `store/sqlite/held_stamps.rs`); nothing on PostgreSQL. `punchd serve` calls it
    /// as it stops; after a crash instead those stamps are only older, and terminals send again what dedup absorbs.
    async fn write_held(&self) -> Result<()> {
        Ok(())
    }

    /// Punches matching the filter, by id.
    async fn list_punches(&self, filter: &PunchFilter) -> Result<Vec<Punch>>;
    /// How many punches match the filter (ignores `limit` and `after_id`).
    async fn count_punches(&self, filter: &PunchFilter) -> Result<u64>;
    /// Users of a device, by PIN.
    async fn list_device_users(&self, sn: &DeviceSn) -> Result<Vec<DeviceUser>>;
    /// Templates of a device (optionally one PIN).
    async fn list_templates(&self, sn: &DeviceSn, pin: Option<&Pin>) -> Result<Vec<Template>>;
    /// Forget a user and their templates (after the device confirmed a delete).
    async fn delete_device_user(&self, sn: &DeviceSn, pin: &Pin) -> Result<()>;
    /// One journal entry.
    async fn get_journal(&self, id: i64) -> Result<JournalEntry>;

    /// Enqueue commands; ids are generated by the store.
    async fn enqueue_commands(
        &self,
        commands: Vec<NewCommand>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Command>>;
    /// Up to `max` queued commands of a device, oldest first (not yet marked sent).
    async fn queued_commands(&self, sn: &DeviceSn, max: usize) -> Result<Vec<Command>>;
    /// Mark commands delivered: those still `queued` become `sent` (attempts + 1). Returns the ids marked; an id
    /// missing from the answer was delivered by another instance meanwhile and must not be sent again.
    async fn mark_sent(&self, ids: Vec<i64>, now: DateTime<Utc>) -> Result<Vec<i64>>;
    /// Record results. Unknown ids and commands that already have a result (succeeded or failed) are ignored:
    /// devices re-post results. A late result for an `expired` command is recorded, because the device did run it.
    /// A succeeded `delete_user` forgets the user and their templates, `disable_user`/`enable_user` mark the
    /// user, in the same transaction as the result.
    async fn complete_commands(
        &self,
        sn: &DeviceSn,
        completions: Vec<CommandCompletion>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Command>>;
    /// Commands sent before `sent_before` without a result go back to the queue, or expire after
    /// `max_attempts` deliveries; queued commands created before `queued_before` expire. Returns
    /// (requeued, expired).
    async fn sweep_commands(
        &self,
        now: DateTime<Utc>,
        sent_before: DateTime<Utc>,
        queued_before: DateTime<Utc>,
        max_attempts: u32,
    ) -> Result<(usize, usize)>;
    /// Commands, newest first.
    async fn list_commands(&self, filter: &CommandFilter) -> Result<Vec<Command>>;
    /// One command.
    async fn get_command(&self, id: i64) -> Result<Command>;
    /// Devices that have queued commands.
    async fn devices_with_queued_commands(&self) -> Result<Vec<DeviceSn>>;

    /// Store a new API token's hash with its scope; `Conflict` if the name is taken.
    async fn create_token(
        &self,
        name: &str,
        hash: &str,
        scope: Scope,
        now: DateTime<Utc>,
    ) -> Result<TokenInfo>;
    /// The live (not revoked) token with this hash.
    async fn find_token(&self, hash: &str) -> Result<Option<TokenInfo>>;
    /// All tokens.
    async fn list_tokens(&self) -> Result<Vec<TokenInfo>>;
    /// Revoke a token by name.
    async fn revoke_token(&self, name: &str, now: DateTime<Utc>) -> Result<()>;
}

/// Convenience for command kinds stored as JSON.
pub(crate) fn command_kind_from_json(s: &str) -> Result<CommandKind> {
    serde_json::from_str(s)
        .map_err(|e| StoreError::Backend(format!("stored command kind is unreadable: {e}")))
}

/// Distinguishes a JSON field that is absent (`None`, leave as is) from one that is `null` (`Some(None)`, clear).
fn double_option<'de, D, T>(deserializer: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde::Deserialize::deserialize(deserializer).map(Some)
}
