//! Output formats shared by the CLI and the API: aligned tables for people, CSV and JSON for programs.

use std::io::Write;

use crate::domain::{Command, Device, Punch, PunchState, VerifyMode};
use crate::store::DeviceUser;

/// A wall time as `YYYY-MM-DD?HH:MM:SS` on the stack, `?` being `sep` (`b' '` as terminals and the store write
/// it, `b'T'` for ISO 8601), whole seconds (a leap second prints as :59, as `Display` does after
/// `with_nanosecond(0)`); `None` for years outside 0..=9999 (never from a terminal: callers fall back to chrono).
/// Written digit by digit: chrono's `Display` and `format` go through `fmt::Write` per field (and `format`
/// parses its pattern on every call), which showed in the store's writer per punch (issue 6) and in the sinks'
/// check-ins (issue 8).
pub fn wall_time_bytes(t: chrono::NaiveDateTime, sep: u8) -> Option<[u8; 19]> {
    use chrono::{Datelike, Timelike};
    let year = t.year();
    if !(0..=9999).contains(&year) {
        return None;
    }
    let mut b = *b"0000-00-00 00:00:00";
    b[10] = sep;
    let mut put = |at: usize, width: usize, mut v: u32| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year as u32);
    put(5, 2, t.month());
    put(8, 2, t.day());
    put(11, 2, t.hour());
    put(14, 2, t.minute());
    put(17, 2, t.second());
    Some(b)
}

/// [`wall_time_bytes`] as text; years outside 0..=9999 through chrono (`%Y-%m-%d?%H:%M:%S`).
pub fn wall_time_text(t: chrono::NaiveDateTime, sep: u8) -> String {
    match wall_time_bytes(t, sep) {
        Some(b) => b.iter().map(|&c| char::from(c)).collect(),
        None => t
            .format(&format!("%Y-%m-%d{}%H:%M:%S", char::from(sep)))
            .to_string(),
    }
}

/// Serde `serialize_with` helpers that write chrono values byte for byte as chrono's own `Serialize` does
/// (`NaiveDateTime`: `YYYY-MM-DDTHH:MM:SS` and a fraction of 3, 6 or 9 digits only when not zero; `DateTime<Utc>`:
/// the same and `Z`, RFC 3339), without chrono's `fmt` machinery, which was a tenth of the sinks' CPU per check-in
/// (issue 8, BENCHMARKS.md). Values chrono prints otherwise (a leap second, a year outside 0..=9999) go to chrono.
pub mod chrono_serde {
    use chrono::{DateTime, NaiveDateTime, Timelike, Utc};
    use serde::{Serialize, Serializer};

    /// `t` as chrono's `Debug` prints it, into `buf`; the length, or `None` for what chrono must print.
    fn iso(t: NaiveDateTime, buf: &mut [u8; 30]) -> Option<usize> {
        let nanos = t.nanosecond();
        if nanos >= 1_000_000_000 {
            return None;
        }
        buf[..19].copy_from_slice(&super::wall_time_bytes(t, b'T')?);
        let (digits, mut value) = match nanos {
            0 => return Some(19),
            n if n % 1_000_000 == 0 => (3, n / 1_000_000),
            n if n % 1_000 == 0 => (6, n / 1_000),
            n => (9, n),
        };
        buf[19] = b'.';
        for i in (20..20 + digits).rev() {
            buf[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
        Some(20 + digits)
    }

    /// For a `NaiveDateTime` field: `#[serde(serialize_with = "crate::format::chrono_serde::naive")]`.
    pub fn naive<S: Serializer>(t: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 30];
        match iso(*t, &mut buf).and_then(|n| std::str::from_utf8(&buf[..n]).ok()) {
            Some(text) => s.serialize_str(text),
            None => t.serialize(s),
        }
    }

    /// For a `DateTime<Utc>` field: `#[serde(serialize_with = "crate::format::chrono_serde::utc")]`.
    pub fn utc<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 30];
        let text = iso(t.naive_utc(), &mut buf).and_then(|n| {
            buf[n] = b'Z';
            std::str::from_utf8(&buf[..=n]).ok()
        });
        match text {
            Some(text) => s.serialize_str(text),
            None => t.serialize(s),
        }
    }

    #[cfg(test)]
    mod tests {
        use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

        #[derive(serde::Serialize)]
        struct Ours {
            #[serde(serialize_with = "super::naive")]
            naive: NaiveDateTime,
            #[serde(serialize_with = "super::utc")]
            utc: DateTime<Utc>,
        }

        #[derive(serde::Serialize)]
        struct Chronos {
            naive: NaiveDateTime,
            utc: DateTime<Utc>,
        }

        #[test]
        fn the_same_bytes_as_chrono() {
            let day = |y| NaiveDate::from_ymd_opt(y, 2, 28).expect("date");
            for (y, nanos) in [
                (2026, 0),
                (2026, 123_000_000),
                (2026, 123_456_000),
                (2026, 123_456_789),
                (2026, 1_000_000),
                (2026, 1_500_000_000),
                (7, 5_000),
                (12_345, 0),
                (-44, 0),
            ] {
                let t = day(y).and_hms_nano_opt(23, 59, 59, nanos).expect("time");
                let utc = DateTime::from_naive_utc_and_offset(t, Utc);
                assert_eq!(
                    serde_json::to_string(&Ours { naive: t, utc }).expect("ours"),
                    serde_json::to_string(&Chronos { naive: t, utc }).expect("chrono"),
                    "{t:?}"
                );
            }
        }
    }
}

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
