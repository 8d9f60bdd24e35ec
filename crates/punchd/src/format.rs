//! Output formats shared by the CLI and the API: aligned tables for people, CSV and JSON for programs.

use std::io::Write;

use crate::domain::{Command, Device, Punch, PunchState, VerifyMode};
use crate::store::DeviceUser;

/// How a listing is printed.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Aligned columns for a terminal.
    #[default]
    Table,
    /// RFC 4180 CSV with a header row.
    Csv,
    /// A JSON array.
    Json,
}

/// A listing: header and rows of text cells.
pub struct Rows {
    /// Column names.
    pub header: Vec<&'static str>,
    /// Cells.
    pub rows: Vec<Vec<String>>,
}

impl Rows {
    /// Write as an aligned table.
    pub fn write_table(&self, out: &mut impl Write) -> std::io::Result<()> {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: Vec<&str>| -> String {
            cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_owned()
        };
        writeln!(out, "{}", line(self.header.clone()))?;
        for row in &self.rows {
            writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
        }
        Ok(())
    }

    /// Write as CSV.
    pub fn write_csv(&self, out: impl Write) -> std::io::Result<()> {
        let mut w = csv::Writer::from_writer(out);
        w.write_record(&self.header)
            .map_err(std::io::Error::other)?;
        for row in &self.rows {
            w.write_record(row).map_err(std::io::Error::other)?;
        }
        w.flush()
    }
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

/// A punch with the names of its codes, as the API and `punches --format json` answer it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct NamedPunch {
    /// The punch.
    #[serde(flatten)]
    pub punch: Punch,
    /// Name of the punch state: `check-in`, `check-out`, `break-out`, `break-in`, `overtime-in`,
    /// `overtime-out`, `unset` (255) or `other`; absent when no state was sent.
    pub punch_state_name: Option<String>,
    /// Name of the verify mode (`fingerprint`, `face`, `card`, … push.md appendix B); absent when not sent or
    /// the code is not known (the number is the truth).
    pub verify_mode_name: Option<String>,
}

impl From<Punch> for NamedPunch {
    fn from(punch: Punch) -> NamedPunch {
        NamedPunch {
            punch_state_name: state_name(&punch).map(str::to_owned),
            verify_mode_name: verify_name(&punch).map(str::to_owned),
            punch,
        }
    }
}

fn state_name(p: &Punch) -> Option<&'static str> {
    p.punch_state.map(|s| PunchState::from_code(s).name())
}

fn verify_name(p: &Punch) -> Option<&'static str> {
    p.verify_mode.and_then(|v| VerifyMode(v).name())
}

/// Punches as rows for people: id, device, PIN, local time, zone, UTC, punch state and verify mode (code and
/// name), work code, source, received.
pub fn punch_rows(punches: &[Punch]) -> Rows {
    let with_name = |code: Option<u16>, name: Option<&str>| match (code, name) {
        (Some(code), Some(name)) => format!("{code} {name}"),
        (Some(code), None) => code.to_string(),
        (None, _) => String::new(),
    };
    Rows {
        header: vec![
            "id",
            "device_sn",
            "pin",
            "punched_at",
            "time_zone",
            "punched_at_utc",
            "punch_state",
            "verify_mode",
            "work_code",
            "source",
            "received_at",
        ],
        rows: punches
            .iter()
            .map(|p| {
                vec![
                    p.id.to_string(),
                    p.device_sn.to_string(),
                    p.pin.to_string(),
                    p.punched_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                    p.time_zone.clone(),
                    p.punched_at_utc.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                    with_name(p.punch_state, state_name(p)),
                    with_name(p.verify_mode, verify_name(p)),
                    opt(&p.work_code),
                    p.source.as_str().to_owned(),
                    p.received_at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
                ]
            })
            .collect(),
    }
}

/// Column names of the punch CSV (CLI `--format csv` and `GET /api/v1/punches?format=csv`).
pub const PUNCH_CSV_HEADER: [&str; 14] = [
    "id",
    "device_sn",
    "pin",
    "punched_at",
    "time_zone",
    "punched_at_utc",
    "punch_state",
    "punch_state_name",
    "verify_mode",
    "verify_mode_name",
    "work_code",
    "source",
    "received_at",
    "extra",
];

/// Punches as CSV for programs: codes as numbers, each followed by its name column, and an `extra` column with
/// the columns beyond the known ones (mask flag, temperature, sequence number, job codes…) as the terminal
/// sent them, encoded as a JSON array of strings (`["1","36.5"]`; empty when there are none), so no raw tab
/// or line break ever lands in a cell.
pub fn punch_csv_rows(punches: &[Punch]) -> Rows {
    Rows {
        header: PUNCH_CSV_HEADER.to_vec(),
        rows: punches
            .iter()
            .map(|p| {
                vec![
                    p.id.to_string(),
                    p.device_sn.to_string(),
                    p.pin.to_string(),
                    p.punched_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                    p.time_zone.clone(),
                    p.punched_at_utc.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                    opt(&p.punch_state),
                    state_name(p).unwrap_or_default().to_owned(),
                    opt(&p.verify_mode),
                    verify_name(p).unwrap_or_default().to_owned(),
                    opt(&p.work_code),
                    p.source.as_str().to_owned(),
                    p.received_at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
                    if p.extra.is_empty() {
                        String::new()
                    } else {
                        serde_json::to_string(&p.extra).unwrap_or_default()
                    },
                ]
            })
            .collect(),
    }
}

/// Write punches as CSV rows ([`punch_csv_rows`]), with the header row first when `header` (a streamed export
/// writes it with its first step only).
pub fn write_punch_csv(punches: &[Punch], header: bool, out: impl Write) -> std::io::Result<()> {
    let rows = punch_csv_rows(punches);
    let mut w = csv::Writer::from_writer(out);
    if header {
        w.write_record(&rows.header)
            .map_err(std::io::Error::other)?;
    }
    for row in &rows.rows {
        w.write_record(row).map_err(std::io::Error::other)?;
    }
    w.flush()
}

/// Devices as rows, with online state at `now`.
pub fn device_rows(devices: &[Device], now: chrono::DateTime<chrono::Utc>) -> Rows {
    Rows {
        header: vec![
            "sn",
            "approval",
            "online",
            "transport",
            "alias",
            "site",
            "time_zone",
            "last_seen",
            "last_ip",
            "firmware",
            "safe_clear",
            "last_error",
        ],
        rows: devices
            .iter()
            .map(|d| {
                vec![
                    d.sn.to_string(),
                    d.approval.as_str().to_owned(),
                    if crate::devices::health::is_online(d, now) {
                        "online"
                    } else {
                        "offline"
                    }
                    .to_owned(),
                    d.transport.as_str().to_owned(),
                    opt(&d.alias),
                    opt(&d.site),
                    opt(&d.time_zone),
                    d.last_seen
                        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                        .unwrap_or_default(),
                    opt(&d.last_ip),
                    opt(&d.firmware),
                    if d.safe_clear { "yes" } else { "no" }.to_owned(),
                    opt(&d.last_error),
                ]
            })
            .collect(),
    }
}

/// Commands as rows.
pub fn command_rows(commands: &[Command]) -> Rows {
    Rows {
        header: vec![
            "id",
            "device_sn",
            "kind",
            "status",
            "attempts",
            "created_at",
            "return_code",
            "message",
            "wire",
        ],
        rows: commands
            .iter()
            .map(|c| {
                vec![
                    c.id.to_string(),
                    c.device_sn.to_string(),
                    c.kind.name().to_owned(),
                    c.status.as_str().to_owned(),
                    c.attempts.to_string(),
                    c.created_at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                    opt(&c.return_code),
                    opt(&c.message),
                    opt(&c.wire).replace('\t', " "),
                ]
            })
            .collect(),
    }
}

/// Device users as rows.
pub fn user_rows(users: &[DeviceUser]) -> Rows {
    Rows {
        header: vec![
            "device_sn",
            "pin",
            "name",
            "privilege",
            "card",
            "group",
            "enabled",
        ],
        rows: users
            .iter()
            .map(|u| {
                vec![
                    u.device_sn.to_string(),
                    u.pin.to_string(),
                    u.name.clone(),
                    opt(&u.privilege),
                    u.card.clone(),
                    u.group.clone(),
                    u.enabled.to_string(),
                ]
            })
            .collect(),
    }
}
