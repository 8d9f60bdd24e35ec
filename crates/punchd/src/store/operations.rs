//! Store area "operations" (issue 6): removing devices, cancelling commands, listing the raw journal.
//!
//! Token scopes live with the tokens in [`super::Store`]; these are the operations an operator runs on what the
//! store already holds.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{LineIssue, Result};
use crate::domain::{Command, DeviceSn, Source};

/// Which journal entries to list, by id (arrival order). Times compare with `received_at` (UTC); `from` is
/// inclusive, `to` exclusive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalFilter {
    /// Only entries of this device.
    pub device_sn: Option<DeviceSn>,
    /// Only this kind (`ATTLOG`, `OPERLOG`, `devicecmd`, …), compared exactly.
    pub kind: Option<String>,
    /// `Some(true)`: only entries with line errors; `Some(false)`: only entries without.
    pub has_errors: Option<bool>,
    /// Arrived at or after (UTC).
    pub from: Option<DateTime<Utc>>,
    /// Arrived before (UTC).
    pub to: Option<DateTime<Utc>>,
    /// Only ids greater than this (the pagination cursor).
    pub after_id: Option<i64>,
    /// At most this many (0 = no limit).
    pub limit: usize,
}

/// A journal entry without its body (listings); `GET /api/v1/journal/{id}` gives the body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct JournalSummary {
    /// Id (what log lines name as `journal_id`).
    pub id: i64,
    /// Arrival (UTC).
    pub received_at: DateTime<Utc>,
    /// Device, when known.
    #[schema(value_type = Option<String>)]
    pub device_sn: Option<DeviceSn>,
    /// Source (push, pull, …).
    #[schema(value_type = String)]
    pub source: Source,
    /// Kind: `ATTLOG`, `OPERLOG`, `devicecmd`, `pull:attendance`, …
    pub kind: String,
    /// Request line target, or a description for non-HTTP sources.
    pub request: String,
    /// Remote address.
    pub remote_addr: Option<String>,
    /// Body size in bytes.
    pub body_len: u64,
    /// Records seen.
    pub n_records: usize,
    /// Punches newly stored.
    pub n_stored: usize,
    /// Punches already held.
    pub n_duplicate: usize,
    /// Lines that could not be read.
    pub errors: Vec<LineIssue>,
}

/// Why a command could not be cancelled.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CancelError {
    /// It is no longer queued: sent (the terminal may already have run it) or finished. Carries the command.
    #[error("command {} is {}, not queued: only a queued command can be cancelled (a sent one may already have run on the terminal)", .0.id, .0.status.as_str())]
    NotQueued(Box<Command>),
    /// The store failed or the command does not exist.
    #[error(transparent)]
    Store(#[from] super::StoreError),
}

/// Operations on what the store holds.
#[async_trait::async_trait]
pub trait OperationsStore {
    /// Remove a device's registration, settings and stamps; its queued commands become `cancelled` (sent ones
    /// keep their state and expire as usual). Its punches, journal entries, users, templates, photos and command history are KEPT: the
    /// audit trail does not change. A terminal that contacts punchd again registers anew. `NotFound` if unknown.
    async fn delete_device(&self, sn: &DeviceSn, now: DateTime<Utc>) -> Result<()>;
    /// Devices removed after `revision` (the device revision of [`super::Store::devices_changed_since`]), and
    /// the highest revision of those removals (`revision` when none).
    async fn devices_deleted_since(&self, revision: i64) -> Result<(Vec<DeviceSn>, i64)>;
    /// Cancel a queued command (status `cancelled`, with who and when in its message). A command already sent
    /// or finished is refused with [`CancelError::NotQueued`]: a sent command cannot be called back.
    async fn cancel_command(
        &self,
        id: i64,
        by: &str,
        now: DateTime<Utc>,
    ) -> std::result::Result<Command, CancelError>;
    /// Journal entries matching the filter, by id, without bodies.
    async fn list_journal(&self, filter: &JournalFilter) -> Result<Vec<JournalSummary>>;
}

/// Serialize bytes as standard base64 (for `JournalEntry::body`).
pub(crate) fn base64_bytes<S: serde::Serializer>(
    bytes: &[u8],
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    use base64::Engine;
    serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
}
