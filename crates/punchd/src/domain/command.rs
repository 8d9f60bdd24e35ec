//! Commands: server-to-device instructions with an id and a result (DESIGN.md "Commands are data").
//!
//! The vocabulary is device-neutral; `sources::push` translates a [`CommandKind`] to the push wire form
//! (push.md §8.2) and `sources::pull` to pull protocol calls.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use super::DeviceSn;

/// What to do on the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CommandKind {
    /// Add or replace a user on the device. The full record is always sent: a partial update wipes the fields
    /// left out on real firmware (push.md §8.2, FIELD X3).
    UpsertUser {
        /// User id on the device.
        pin: String,
        /// Display name.
        #[serde(default)]
        name: String,
        /// 0 user, 2 enroller, 6 admin, 14 super admin.
        #[serde(default)]
        privilege: u16,
        /// Password, empty for none.
        #[serde(default)]
        password: String,
        /// Card number, empty for none.
        #[serde(default)]
        card: String,
        /// Access group, empty for the default.
        #[serde(default)]
        group: String,
    },
    /// Delete a user and their templates from the device.
    DeleteUser {
        /// User id on the device.
        pin: String,
    },
    /// Let a user punch again: the stored user record is written back to the device.
    EnableUser {
        /// User id on the device.
        pin: String,
    },
    /// Stop a user from punching. On push terminals the user is removed from the terminal and kept in punchd
    /// (att push firmware has no reliable "disabled" flag); `enable_user` restores them.
    DisableUser {
        /// User id on the device.
        pin: String,
    },
    /// Ask the device to send again the punches between two terminal-local times (push: `DATA QUERY ATTLOG`).
    ReuploadPunches {
        /// Start, terminal local time.
        #[schema(value_type = String)]
        from: NaiveDateTime,
        /// End, terminal local time.
        #[schema(value_type = String)]
        to: NaiveDateTime,
    },
    /// Ask the device for its status, counts and options (push: `INFO`).
    FetchInfo,
    /// Set the device clock. Push terminals set it from the HTTP `Date` header on their next handshake, which
    /// `CHECK` triggers (push.md §5); pull terminals get `CMD_SET_TIME`.
    SyncTime,
    /// Clear the device's attendance log (push: `CLEAR LOG`).
    ClearAttendanceLog,
    /// Restart the device (push: `REBOOT`, always last in a reply).
    Reboot,
    /// Set one device option (push: `SET OPTION key=value`).
    SetOption {
        /// Option name (read-only `~` options are refused by the device).
        key: String,
        /// New value.
        value: String,
    },
    /// Open the door relay (push: `AC_UNLOCK`).
    Unlock,
    /// A raw push command line, sent as written, for support cases the catalogue does not cover.
    Raw {
        /// The command text after `C:<id>:`.
        text: String,
    },
}

impl CommandKind {
    /// Short name for tables and logs (the serde tag).
    pub fn name(&self) -> &'static str {
        match self {
            CommandKind::UpsertUser { .. } => "upsert_user",
            CommandKind::DeleteUser { .. } => "delete_user",
            CommandKind::EnableUser { .. } => "enable_user",
            CommandKind::DisableUser { .. } => "disable_user",
            CommandKind::ReuploadPunches { .. } => "reupload_punches",
            CommandKind::FetchInfo => "fetch_info",
            CommandKind::SyncTime => "sync_time",
            CommandKind::ClearAttendanceLog => "clear_attendance_log",
            CommandKind::Reboot => "reboot",
            CommandKind::SetOption { .. } => "set_option",
            CommandKind::Unlock => "unlock",
            CommandKind::Raw { .. } => "raw",
        }
    }
}

/// Where a command is in its life: queued → sent → succeeded | failed, or expired; a queued command can be
/// cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CommandStatus {
    /// Waiting for the device to poll.
    Queued,
    /// Delivered; waiting for the device's result.
    Sent,
    /// The device answered with a return code ≥ 0.
    Succeeded,
    /// The device answered with a negative return code.
    Failed,
    /// Not delivered or not answered within the attempts allowed.
    Expired,
    /// Cancelled by an operator while still queued (never delivered).
    Cancelled,
}

impl CommandStatus {
    /// Lowercase name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            CommandStatus::Queued => "queued",
            CommandStatus::Sent => "sent",
            CommandStatus::Succeeded => "succeeded",
            CommandStatus::Failed => "failed",
            CommandStatus::Expired => "expired",
            CommandStatus::Cancelled => "cancelled",
        }
    }

    /// Parse the stored name.
    pub fn parse(s: &str) -> Option<CommandStatus> {
        Some(match s {
            "queued" => CommandStatus::Queued,
            "sent" => CommandStatus::Sent,
            "succeeded" => CommandStatus::Succeeded,
            "failed" => CommandStatus::Failed,
            "expired" => CommandStatus::Expired,
            "cancelled" => CommandStatus::Cancelled,
            _ => return None,
        })
    }
}

/// A command to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCommand {
    /// Target device.
    pub device_sn: DeviceSn,
    /// What to do.
    pub kind: CommandKind,
    /// The exact wire text to deliver (push), fixed at enqueue time so history shows what was sent.
    pub wire: Option<String>,
    /// Who asked (CLI, API token name, scheduler).
    pub requested_by: String,
}

/// A command as stored.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Command {
    /// Server-generated id; also the `C:<id>:` on the wire.
    pub id: i64,
    /// Target device.
    #[schema(value_type = String)]
    pub device_sn: DeviceSn,
    /// What to do.
    pub kind: CommandKind,
    /// Wire text (push).
    pub wire: Option<String>,
    /// Life-cycle state.
    pub status: CommandStatus,
    /// Deliveries so far.
    pub attempts: u32,
    /// Who asked.
    pub requested_by: String,
    /// Enqueued at (UTC).
    pub created_at: DateTime<Utc>,
    /// Last delivered at (UTC).
    pub sent_at: Option<DateTime<Utc>>,
    /// Result received at (UTC).
    pub finished_at: Option<DateTime<Utc>>,
    /// Device return code (push `Return=`).
    pub return_code: Option<i64>,
    /// Readable result ("PIN does not exist", "expired after 3 deliveries").
    pub message: Option<String>,
    /// Result payload (INFO key/values, Shell output…).
    pub result: Option<serde_json::Value>,
}
