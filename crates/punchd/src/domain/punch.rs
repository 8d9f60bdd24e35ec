//! A punch: one attendance event, who (PIN), when, where (device), how (verify mode), what (punch state).

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use super::DeviceSn;

/// The user id on a device. A string: leading zeros matter, and "StringPin" firmware allows letters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Pin(pub String);

impl Pin {
    /// The PIN as sent by the device.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the person meant by the punch (ATTLOG column 3, push.md §7.1). Unknown codes are kept, never rejected:
/// punch-state keys can be remapped on TFT clocks, and `255` means "punch-state keys disabled".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PunchState {
    /// 0
    CheckIn,
    /// 1
    CheckOut,
    /// 2
    BreakOut,
    /// 3
    BreakIn,
    /// 4
    OvertimeIn,
    /// 5
    OvertimeOut,
    /// Any other code as sent (255 = the device has punch-state keys disabled).
    Other(u16),
}

impl PunchState {
    /// From the wire code.
    pub fn from_code(code: u16) -> PunchState {
        match code {
            0 => PunchState::CheckIn,
            1 => PunchState::CheckOut,
            2 => PunchState::BreakOut,
            3 => PunchState::BreakIn,
            4 => PunchState::OvertimeIn,
            5 => PunchState::OvertimeOut,
            other => PunchState::Other(other),
        }
    }

    /// The wire code.
    pub fn code(self) -> u16 {
        match self {
            PunchState::CheckIn => 0,
            PunchState::CheckOut => 1,
            PunchState::BreakOut => 2,
            PunchState::BreakIn => 3,
            PunchState::OvertimeIn => 4,
            PunchState::OvertimeOut => 5,
            PunchState::Other(code) => code,
        }
    }

    /// A stable name for tables and JSON: `check-in`, `check-out`, `break-out`, `break-in`, `overtime-in`,
    /// `overtime-out`, `unset` (255) or `other`.
    pub fn name(self) -> &'static str {
        match self {
            PunchState::CheckIn => "check-in",
            PunchState::CheckOut => "check-out",
            PunchState::BreakOut => "break-out",
            PunchState::BreakIn => "break-in",
            PunchState::OvertimeIn => "overtime-in",
            PunchState::OvertimeOut => "overtime-out",
            PunchState::Other(255) => "unset",
            PunchState::Other(_) => "other",
        }
    }
}

/// How the person was identified (ATTLOG column 4; push.md appendix B). Kept as the number the device sent, with a
/// name where the code is known. Codes 2/3/4 differ between firmware lineages, so the number is the truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VerifyMode(pub u16);

impl VerifyMode {
    /// The name of a known code (SPEC-ATT appendix 7), or `None`.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "password",
            1 => "fingerprint",
            2 => "user-id",
            3 => "password",
            4 => "card",
            5 => "fingerprint-or-password",
            6 => "fingerprint-or-card",
            7 => "card-or-password",
            8 => "user-id+fingerprint",
            9 => "fingerprint+password",
            10 => "card+fingerprint",
            11 => "card+password",
            15 => "face",
            16 => "face+fingerprint",
            17 => "face+password",
            18 => "face+card",
            21 => "finger-vein",
            25 => "palm",
            26 => "palm+card",
            27 => "palm+face",
            28 => "palm+fingerprint",
            200 => "other",
            _ => return None,
        })
    }
}

/// Where a punch came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A terminal pushed it over HTTP (`/iclock/cdata?table=ATTLOG`).
    Push,
    /// punchd read it from a terminal over TCP/UDP 4370.
    Pull,
    /// Read from a ZKBio Time server.
    Biotime,
    /// A file import (USB attlog, CSV, XLSX).
    Import,
    /// The JSON webhook.
    Webhook,
}

impl Source {
    /// Lowercase name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Push => "push",
            Source::Pull => "pull",
            Source::Biotime => "biotime",
            Source::Import => "import",
            Source::Webhook => "webhook",
        }
    }

    /// Parse the stored name.
    pub fn parse(s: &str) -> Option<Source> {
        Some(match s {
            "push" => Source::Push,
            "pull" => Source::Pull,
            "biotime" => Source::Biotime,
            "import" => Source::Import,
            "webhook" => Source::Webhook,
            _ => return None,
        })
    }
}

/// A punch ready to be stored, produced by `ingest` from a source's records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPunch {
    /// The terminal.
    pub device_sn: DeviceSn,
    /// Who.
    pub pin: Pin,
    /// The terminal's local wall-clock time, as sent (terminals have no time zone).
    pub punched_at: NaiveDateTime,
    /// The IANA zone used to derive `punched_at_utc` (the device's, its site's, or the configured default).
    pub time_zone: String,
    /// `punched_at` interpreted in `time_zone`. In a DST gap or overlap, the earlier valid instant.
    pub punched_at_utc: DateTime<Utc>,
    /// `None` when the device did not send a punch state.
    pub punch_state: Option<PunchState>,
    /// `None` when the device did not send a verify mode.
    pub verify_mode: Option<VerifyMode>,
    /// Work code, if any (empty and `0` are kept as sent).
    pub work_code: Option<String>,
    /// Columns beyond the known ones, as sent (mask flag, temperature, sequence number, job codes…).
    pub extra: Vec<String>,
    /// Where it came from.
    pub source: Source,
}

/// A stored punch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Punch {
    /// Store id; increases with insertion order (the pagination cursor).
    pub id: i64,
    /// Terminal serial number.
    #[schema(value_type = String)]
    pub device_sn: DeviceSn,
    /// User id on the terminal.
    #[schema(value_type = String)]
    pub pin: Pin,
    /// Terminal local wall time, `YYYY-MM-DDTHH:MM:SS`, as the terminal sent it.
    #[schema(value_type = String)]
    #[serde(serialize_with = "crate::format::chrono_serde::naive")]
    pub punched_at: NaiveDateTime,
    /// IANA zone used for `punched_at_utc`.
    pub time_zone: String,
    /// The instant (UTC).
    #[serde(serialize_with = "crate::format::chrono_serde::utc")]
    pub punched_at_utc: DateTime<Utc>,
    /// When punchd received it (UTC).
    #[serde(serialize_with = "crate::format::chrono_serde::utc")]
    pub received_at: DateTime<Utc>,
    /// Punch state code (0 check-in, 1 check-out, 2 break-out, 3 break-in, 4 overtime-in, 5 overtime-out,
    /// others as sent); absent when the terminal did not send one.
    pub punch_state: Option<u16>,
    /// Verify mode code (1 fingerprint, 15 face, …); absent when not sent.
    pub verify_mode: Option<u16>,
    /// Work code as sent.
    pub work_code: Option<String>,
    /// Extra columns as sent.
    pub extra: Vec<String>,
    /// push, pull, biotime, import or webhook.
    #[schema(value_type = String)]
    pub source: Source,
    /// The raw journal entry this punch was read from.
    pub journal_id: i64,
}
