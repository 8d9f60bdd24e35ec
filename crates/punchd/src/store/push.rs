//! What punchd keeps for push terminals beyond their data: who a terminal is allowed to be (the addresses it was
//! approved from and the keys the push protocol carries, README "Terminal authentication") and the files a
//! terminal uploads for a user (`POST /iclock/fdata?SN=…&PIN=…`).
//!
//! Depends only on `domain`.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;

use super::Result;
use crate::domain::{DeviceSn, Pin};

/// A push terminal's authentication state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PushAuth {
    /// Whether requests are bound to `addresses`: `None` follows the server-wide setting
    /// (`[push] bind_addresses`), `Some(false)` turns binding off for this terminal (DHCP sites).
    pub bind_addresses: Option<bool>,
    /// Remote addresses (IP, no port) the terminal is accepted from. Empty: the next request of the approved
    /// terminal binds its address (trust on first use).
    pub addresses: Vec<String>,
    /// An address the terminal's SN was used from that is not in `addresses`: its requests are answered
    /// `UNKNOWN DEVICE` (the terminal keeps its data and retries) until `punchd devices approve SN` accepts it.
    pub held_address: Option<String>,
    /// When the first request from `held_address` arrived (UTC).
    pub held_since: Option<DateTime<Utc>>,
    /// Requests refused from `held_address` (counted when the state is written, at most every few seconds).
    pub held_requests: u64,
    /// The `ComKey=` value every request must carry (SPEC-US, device option `IsPushComKey=1`); `None`: not
    /// required. Never shown by the API (only whether it is set).
    #[serde(skip)]
    pub comm_key: Option<String>,
    /// Whether a request carried `comm_key`: until then requests without `ComKey=` are still accepted (the
    /// terminal has not applied `SET OPTION IsPushComKey=1` yet); from then on every request must carry it.
    pub comm_key_seen: bool,
    /// The `pushcommkey=` value pinned from the terminal's first approved handshake (push.md §3.1); a later
    /// handshake with another value is held.
    #[serde(skip)]
    pub handshake_key: Option<String>,
}

/// A change to a terminal's authentication settings; `None` leaves a field as it is, `Some(None)` clears.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushAuthPatch {
    /// Binding on, off, or back to the server-wide setting.
    pub bind_addresses: Option<Option<bool>>,
    /// Required `ComKey=` (setting or clearing it resets `comm_key_seen`).
    pub comm_key: Option<Option<String>>,
    /// Forget the pinned `pushcommkey` (a terminal replaced or reset).
    pub clear_handshake_key: bool,
    /// Forget the accepted addresses (the next request binds again).
    pub clear_addresses: bool,
}

/// A file a terminal uploaded for a user (stored in the photo table with kind `userfile`, or a `userpic`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UserFile {
    /// Id (for `GET …/files/{id}`).
    pub id: i64,
    /// The device.
    #[schema(value_type = String)]
    pub device_sn: DeviceSn,
    /// Whose.
    #[schema(value_type = String)]
    pub pin: Pin,
    /// `userfile` (fdata upload) or `userpic` (USERPIC line) or `biophoto`.
    pub kind: String,
    /// File name as sent, or `<PIN>-<sha256 prefix>.<ext>` when the terminal gave none.
    pub file_name: String,
    /// Size in bytes.
    pub size: u64,
    /// Terminal local time from the file name, when it carries one.
    #[schema(value_type = Option<String>)]
    pub taken_at: Option<NaiveDateTime>,
    /// When it arrived (UTC).
    pub received_at: DateTime<Utc>,
}

/// Persistence for push terminal authentication and user files.
#[async_trait::async_trait]
pub trait PushStore: Send + Sync {
    /// A terminal's authentication state (the default when nothing was stored).
    async fn push_auth(&self, sn: &DeviceSn) -> Result<PushAuth>;
    /// Accept `address` for the terminal (added to its addresses; a held address equal to it is cleared).
    async fn bind_push_address(
        &self,
        sn: &DeviceSn,
        address: &str,
        now: DateTime<Utc>,
    ) -> Result<PushAuth>;
    /// Record a refused address: sets `held_address` (and `held_since` when it changed), adds `n_requests`.
    async fn hold_push_address(
        &self,
        sn: &DeviceSn,
        address: &str,
        n_requests: u64,
        now: DateTime<Utc>,
    ) -> Result<PushAuth>;
    /// Accept the held address, if any (what `punchd devices approve SN` does). Returns the state after.
    async fn accept_held_push_address(&self, sn: &DeviceSn, now: DateTime<Utc>)
        -> Result<PushAuth>;
    /// Record that a request carried the configured `ComKey=` (from then on it is required).
    async fn mark_push_comm_key_seen(&self, sn: &DeviceSn, now: DateTime<Utc>) -> Result<PushAuth>;
    /// Pin the `pushcommkey` of the terminal's handshake.
    async fn pin_push_handshake_key(
        &self,
        sn: &DeviceSn,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<PushAuth>;
    /// Change the settings.
    async fn update_push_auth(
        &self,
        sn: &DeviceSn,
        patch: PushAuthPatch,
        now: DateTime<Utc>,
    ) -> Result<PushAuth>;

    /// Files uploaded for a user (userfile, userpic, biophoto), oldest first.
    async fn list_user_files(&self, sn: &DeviceSn, pin: &Pin) -> Result<Vec<UserFile>>;
    /// One file and its bytes; `NotFound` when it is not a file of this user.
    async fn get_user_file(&self, sn: &DeviceSn, pin: &Pin, id: i64)
        -> Result<(UserFile, Vec<u8>)>;
}
