//! Completeness: per device, the **watermark** — the instant up to which punchd holds everything the device will
//! send — and, per site and working day, which devices still hold the day back.
//!
//! The watermark is the device's `last_seen` as the store keeps it:
//! - push terminals (push.md §6): `last_seen` moves on every request the terminal makes; a terminal uploads its
//!   new ATTLOG lines before (or in) the poll that follows them and punchd acknowledges an upload only after it
//!   is durable, so a terminal that polled at T has delivered everything it recorded before T. While it is offline
//!   the watermark stays at its last contact.
//! - pull terminals: `last_seen` moves only when a pull succeeds (`record_device_health` with no error): the time
//!   of the last complete read.
//!
//! A day is complete when every device of its site has a watermark at or past the day's end plus the checkout
//! window ([`CHECKOUT_WINDOW_SECS`]); a site without devices has no complete day.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::devices::health;
use crate::domain::Device;

/// The check-out window after a day's end that a device must also have delivered (vendor convention: 2 h).
pub const CHECKOUT_WINDOW_SECS: i64 = 2 * 3600;

/// One device's watermark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Watermark {
    /// The device SN.
    pub device_sn: String,
    /// Its site.
    pub site: Option<String>,
    /// push, tcp, udp or biotime.
    pub transport: String,
    /// Everything up to this instant (UTC) is held; `None` when the device never delivered.
    pub watermark: Option<DateTime<Utc>>,
    /// Whether the device counts as online now (devices::health).
    pub online: bool,
    /// Where the watermark comes from: `last contact (push)`, `last complete pull`, or `last complete BioTime
    /// read` (sources::biotime).
    pub basis: String,
}

/// The watermark of a device at `now`.
pub fn watermark(device: &Device, now: DateTime<Utc>) -> Watermark {
    use crate::domain::Transport;
    Watermark {
        device_sn: device.sn.as_str().to_owned(),
        site: device.site.clone(),
        transport: device.transport.as_str().to_owned(),
        watermark: device.last_seen,
        online: health::is_online(device, now),
        basis: match device.transport {
            Transport::Push => "last contact (push)".into(),
            Transport::Biotime => "last complete BioTime read".into(),
            _ => "last complete pull".into(),
        },
    }
}

/// The devices (SNs) whose watermark is before `needed`: they hold back a day ending at `needed`.
pub fn held_by(marks: &[Watermark], needed: DateTime<Utc>) -> Vec<String> {
    marks
        .iter()
        .filter(|m| m.watermark.is_none_or(|w| w < needed))
        .map(|m| m.device_sn.clone())
        .collect()
}
