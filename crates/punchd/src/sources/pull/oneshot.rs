//! `punchd pull ADDRESS`: read a terminal once and print its info and attendance log, with no server and no
//! database (useful before anything is set up: is the terminal reachable, is the comm key right, what is its
//! SN, how full is its log?).

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use chrono_tz::Tz;
use zk_pull::records::Attendance;
use zk_pull::{Client, ClientOptions, DeviceInfo};

use super::session::clock_drift_secs;
use super::PullArgs;
use crate::config::Config;
use crate::domain::PunchState;
use crate::format::{Format, Rows};

/// How long `punchd pull` waits for each reply.
const TIMEOUT: Duration = Duration::from_secs(5);

/// What was read.
struct Reading {
    info: DeviceInfo,
    device_time: chrono::NaiveDateTime,
    drift_secs: i64,
    records: Vec<Attendance>,
    n_undecoded: usize,
}

/// `ADDRESS` and `--port` as one `host:port`; a port in the address wins.
fn target(address: &str, port: u16) -> String {
    let address = address.trim();
    if address.parse::<std::net::SocketAddr>().is_ok() {
        return address.to_owned();
    }
    if let Ok(ip) = address.parse::<std::net::IpAddr>() {
        return std::net::SocketAddr::new(ip, port).to_string();
    }
    match address.rsplit_once(':') {
        Some((_, p)) if p.parse::<u16>().is_ok() => address.to_owned(),
        _ => format!("{address}:{port}"),
    }
}

/// Run `punchd pull`.
///
/// Errors: the terminal cannot be reached, refuses the comm key, or stops answering; the message says which.
pub async fn run(config: Config, args: PullArgs) -> anyhow::Result<()> {
    let address = target(&args.address, args.port);
    let tz = match &args.time_zone {
        Some(zone) => crate::config::parse_time_zone(zone)?,
        None => config.default_time_zone,
    };
    let transport = if args.udp {
        zk_pull::Transport::Udp
    } else {
        zk_pull::Transport::Tcp
    };
    let mut options = ClientOptions::new(transport);
    options.comm_key = args.comm_key;
    options.timeout = TIMEOUT;
    let attempts = options.retries + 1;
    let transport_name = if args.udp { "UDP" } else { "TCP" };
    let started = std::time::Instant::now();
    // A timeout error names the per-attempt limit; say how long the whole run waited.
    let gave_up = |what: String| {
        format!(
            "{what}: gave up after {:.1} s ({attempts} attempts of {} s per request)",
            started.elapsed().as_secs_f64(),
            TIMEOUT.as_secs()
        )
    };
    let mut client = Client::connect_with(address.as_str(), options)
        .await
        .map_err(|e| {
            let what = format!("connecting to {address} over {transport_name}");
            let what = if is_timeout(&e) { gave_up(what) } else { what };
            anyhow::Error::new(e).context(what)
        })?;
    let read = async {
        let info = client.device_info().await.context("reading device info")?;
        let device_time = client.get_time().await.context("reading the clock")?;
        let drift_secs = clock_drift_secs(device_time, tz, Utc::now());
        let download = client
            .attendance()
            .await
            .context("reading the attendance log")?;
        Ok::<_, anyhow::Error>(Reading {
            info,
            device_time,
            drift_secs,
            n_undecoded: download.errors.len(),
            records: download.records,
        })
    }
    .await;
    let timed_out = read.as_ref().err().is_some_and(|e| {
        e.chain().any(|c| {
            c.downcast_ref::<zk_pull::ClientError>()
                .is_some_and(is_timeout)
        })
    });
    let what = format!("pulling from {address}");
    let what = if timed_out { gave_up(what) } else { what };
    let _ = client.disconnect().await;
    let reading = read.context(what)?;
    if reading.n_undecoded > 0 {
        eprintln!(
            "punchd: {} attendance records could not be decoded and are not listed",
            reading.n_undecoded
        );
    }
    match print(&reading, args.format, tz) {
        // `punchd pull … | head`: the reader has what it wanted; stop quietly.
        Err(e) if is_broken_pipe(&e) => Ok(()),
        other => other,
    }
}

fn is_timeout(e: &zk_pull::ClientError) -> bool {
    matches!(
        e,
        zk_pull::ClientError::Timeout { .. } | zk_pull::ClientError::ConnectTimeout { .. }
    )
}

/// Whether writing the output failed because its reader went away (EPIPE), also when the CSV writer
/// wrapped the error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    fn io_broken(io: &std::io::Error) -> bool {
        io.kind() == std::io::ErrorKind::BrokenPipe
            || io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<csv::Error>())
                .is_some_and(|csv| matches!(csv.kind(), csv::ErrorKind::Io(io) if io_broken(io)))
    }
    e.chain()
        .any(|c| c.downcast_ref::<std::io::Error>().is_some_and(io_broken))
}

fn info_lines(r: &Reading, tz: Tz) -> Vec<(&'static str, String)> {
    let i = &r.info;
    let s = &i.sizes;
    let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let mut lines = vec![
        ("serial number", text(&i.serial_number)),
        ("platform", text(&i.platform)),
        ("firmware", text(&i.firmware_version)),
        ("name", text(&i.device_name)),
        ("MAC", text(&i.mac)),
        ("users", format!("{} of {}", s.users, s.user_capacity)),
        (
            "fingerprints",
            format!("{} of {}", s.fingers, s.finger_capacity),
        ),
        (
            "punches",
            format!(
                "{} of {} ({} free)",
                s.records, s.record_capacity, s.records_available
            ),
        ),
    ];
    if let (Some(faces), Some(capacity)) = (s.faces, s.face_capacity) {
        lines.push(("faces", format!("{faces} of {capacity}")));
    }
    lines.push((
        "device time",
        format!(
            "{} (drift {:+} s against {})",
            r.device_time.format("%Y-%m-%d %H:%M:%S"),
            r.drift_secs,
            tz
        ),
    ));
    lines
}

fn attendance_rows(records: &[Attendance], names: bool) -> Rows {
    Rows {
        header: vec!["pin", "punched_at", "punch_state", "verify_mode", "uid"],
        rows: records
            .iter()
            .map(|r| {
                vec![
                    r.user_id.clone(),
                    // Pulled times are whole seconds, so Display gives YYYY-MM-DD HH:MM:SS without parsing a
                    // format string per row.
                    r.time.to_string(),
                    if names {
                        format!(
                            "{} {}",
                            r.punch,
                            PunchState::from_code(u16::from(r.punch)).name()
                        )
                    } else {
                        r.punch.to_string()
                    },
                    r.status.to_string(),
                    r.uid.to_string(),
                ]
            })
            .collect(),
    }
}

fn print(r: &Reading, format: Format, tz: Tz) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match format {
        Format::Table => {
            for (key, value) in info_lines(r, tz) {
                writeln!(out, "{key:<14} {value}")?;
            }
            writeln!(out)?;
            attendance_rows(&r.records, true).write_table(&mut out)?;
        }
        Format::Csv => {
            // stdout stays pure CSV; the info goes to stderr.
            for (key, value) in info_lines(r, tz) {
                eprintln!("{key}: {value}");
            }
            attendance_rows(&r.records, false).write_csv(&mut out)?;
        }
        Format::Json => {
            let i = &r.info;
            let s = &i.sizes;
            let json = serde_json::json!({
                "device": {
                    "serial_number": i.serial_number,
                    "platform": i.platform,
                    "firmware": i.firmware_version,
                    "name": i.device_name,
                    "mac": i.mac,
                    "fingerprint_version": i.fingerprint_version,
                    "face_version": i.face_version,
                    "users": s.users,
                    "user_capacity": s.user_capacity,
                    "fingerprints": s.fingers,
                    "fingerprint_capacity": s.finger_capacity,
                    "punches": s.records,
                    "punch_capacity": s.record_capacity,
                    "punches_free": s.records_available,
                    "faces": s.faces,
                    "face_capacity": s.face_capacity,
                    "device_time": r.device_time.format("%Y-%m-%dT%H:%M:%S").to_string(),
                    "clock_drift_secs": r.drift_secs,
                    "time_zone": tz.name(),
                },
                "attendance": r.records.iter().map(|a| serde_json::json!({
                    "pin": a.user_id,
                    "punched_at": a.time.format("%Y-%m-%dT%H:%M:%S").to_string(),
                    "punch_state": a.punch,
                    "verify_mode": a.status,
                    "uid": a.uid,
                })).collect::<Vec<_>>(),
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_flag_applies_unless_the_address_has_one() {
        assert_eq!(target("192.168.1.201", 4370), "192.168.1.201:4370");
        assert_eq!(target("192.168.1.201", 5005), "192.168.1.201:5005");
        assert_eq!(target("192.168.1.201:4371", 5005), "192.168.1.201:4371");
        assert_eq!(target("gate", 4370), "gate:4370");
        assert_eq!(target("fe80::1", 4370), "[fe80::1]:4370");
    }
}
