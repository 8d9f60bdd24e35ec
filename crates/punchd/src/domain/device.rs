//! A device (terminal), identified by its serial number (SN).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The SN shown for punches an HR correction added in the monthly review (they come from no terminal): the month's
/// punch lists, the sinks' check-ins (`device_id` in Frappe) and their withdrawals.
pub const CORRECTION_DEVICE: &str = "HR-CORRECTION";

/// A terminal's serial number, as the terminal sends it (`SN=` on every push request; `~SerialNumber` over pull).
/// Case-sensitive. Parsed once at the edge; afterwards trusted.
///
/// Shared, not copied: every punch, rule punch and classified punch carries its terminal's SN, so a clone is a
/// reference count (a month of 10,000 employees holds about a million of them; issue 7).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceSn(std::sync::Arc<str>);

/// As a plain string.
impl Serialize for DeviceSn {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// From a plain string, as stored (not validated again: stored SNs were validated by [`DeviceSn::parse`]).
impl<'de> Deserialize<'de> for DeviceSn {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|s| DeviceSn(s.into()))
    }
}

/// Why a string is not a serial number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSn {
    /// Empty after trimming.
    #[error("serial number is empty")]
    Empty,
    /// Longer than 64 characters.
    #[error("serial number is {0} characters long (at most 64)")]
    TooLong(usize),
    /// Contains a space, a control character or a character outside ASCII.
    #[error("serial number contains {0:?} (only visible ASCII characters are allowed)")]
    BadChar(char),
}

impl DeviceSn {
    /// Validate a serial number: 1–64 visible ASCII characters, surrounding white space trimmed. ZKTeco serials are
    /// 10–20 letters and digits; the rule is wider on purpose, so that third-party firmware and simulators are
    /// heard rather than refused (the SN is an identifier, never interpreted).
    pub fn parse(s: &str) -> Result<DeviceSn, InvalidSn> {
        let s = s.trim();
        if s.is_empty() {
            return Err(InvalidSn::Empty);
        }
        let n_chars = s.chars().count();
        if n_chars > 64 {
            return Err(InvalidSn::TooLong(n_chars));
        }
        if let Some(bad) = s.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(InvalidSn::BadChar(bad));
        }
        Ok(DeviceSn(s.into()))
    }

    /// The serial number.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DeviceSn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether a device may deliver data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Approval {
    /// Registered on first contact, waiting for an operator; it is answered `UNKNOWN DEVICE` and keeps its data.
    Pending,
    /// Accepted: its data is stored and acknowledged.
    Approved,
    /// Refused by an operator; answered `UNKNOWN DEVICE`.
    Blocked,
}

impl Approval {
    /// Lowercase name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Approval::Pending => "pending",
            Approval::Approved => "approved",
            Approval::Blocked => "blocked",
        }
    }

    /// Parse the stored name.
    pub fn parse(s: &str) -> Option<Approval> {
        Some(match s {
            "pending" => Approval::Pending,
            "approved" => Approval::Approved,
            "blocked" => Approval::Blocked,
            _ => return None,
        })
    }
}

/// How punchd talks to a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// The device pushes over HTTP (iclock).
    Push,
    /// punchd pulls over TCP port 4370.
    Tcp,
    /// punchd pulls over UDP port 4370.
    Udp,
    /// A terminal listed by a BioTime (ZKBio Time) source: its punches are read from BioTime, never from the
    /// terminal, so punchd neither pulls it nor sends it commands (biotime.md §6).
    Biotime,
}

impl Transport {
    /// Lowercase name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Push => "push",
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
            Transport::Biotime => "biotime",
        }
    }

    /// Parse the stored name.
    pub fn parse(s: &str) -> Option<Transport> {
        Some(match s {
            "push" => Transport::Push,
            "tcp" => Transport::Tcp,
            "udp" => Transport::Udp,
            "biotime" => Transport::Biotime,
            _ => return None,
        })
    }
}

/// A registered device as stored.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Device {
    /// Serial number.
    #[schema(value_type = String)]
    pub sn: DeviceSn,
    /// pending, approved or blocked.
    pub approval: Approval,
    /// push, tcp or udp; `biotime` for a terminal read through a BioTime source (where the device comes from).
    pub transport: Transport,
    /// A name people recognise ("Gate 2").
    pub alias: Option<String>,
    /// Site the device belongs to.
    pub site: Option<String>,
    /// IANA zone of the device's wall clock (`None`: the configured default applies).
    pub time_zone: Option<String>,
    /// For pull devices: address (host or IP) and port.
    pub address: Option<String>,
    /// For pull devices: the comm key (0 = none).
    pub comm_key: Option<u32>,
    /// For pull devices: seconds between pulls (0 = live connection).
    pub pull_interval_secs: Option<u32>,
    /// For pull devices: clear the attendance log after a verified complete pull.
    pub clear_after_pull: bool,
    /// First contact (UTC).
    pub first_seen: DateTime<Utc>,
    /// Last request from or successful session with the device (UTC).
    pub last_seen: Option<DateTime<Utc>>,
    /// Remote address of the last request.
    pub last_ip: Option<String>,
    /// Firmware version as reported.
    pub firmware: Option<String>,
    /// Push protocol version (`pushver=`).
    pub push_version: Option<String>,
    /// Language id (`language=`).
    pub language: Option<String>,
    /// `DeviceType=` (att, acc, pid) or the pull platform.
    pub device_type: Option<String>,
    /// Seconds between polls we asked for (`Delay`), used for online detection.
    pub poll_delay_secs: u32,
    /// Counts and capacities reported by the device (INFO, options, free sizes), as key → value.
    pub info: serde_json::Map<String, serde_json::Value>,
    /// Last error talking to the device (pull), readable.
    pub last_error: Option<String>,
    /// Terminal clock minus our clock, seconds, when last measured.
    pub clock_drift_secs: Option<i64>,
    /// Safe clear: the attendance log is cleared (`clear_after_pull`, the `clear_attendance_log` command) only once
    /// every sink has delivered or parked every punch of this device; until then a queued `clear_attendance_log`
    /// is held (stays `queued`, its message says which sinks still owe how many punches). On by default: a clear
    /// cannot be undone, and until every HR system has a punch the terminal is its second copy.
    pub safe_clear: bool,
}
