//! A realistic month of punches for demos, tests and benchmarks of attendance (issue 7, "Real input").
//!
//! [`generate_month`] is a pure function of a [`MonthConfig`] (seed included): the same config gives the same
//! records, byte for byte. The site runs in one IANA zone (default Europe/Berlin) with three terminals: two
//! entrances on the site's clock and a warehouse terminal whose clock is set to another zone (default
//! Europe/London, an hour behind), as happens when a terminal is installed with the factory zone. Records carry
//! the **terminal's** local wall time, as a terminal stores and sends it; [`MonthDevice::zone`] says which zone
//! that is, so the hub can derive the instant.
//!
//! The people, per working day:
//! - the **day team** (shift 09:00–18:00, Monday to Friday) arrives around 08:55 with a spread of about ±15 min
//!   (some are late), most punch a lunch break (break-out ~12:30, break-in 30–60 min later, states 2/3), and leave
//!   around 18:05; a few are absent; one in ten is forgetful and often does not punch out;
//! - the **night team** (shift 22:00–06:00, nights starting Tuesday to Saturday) arrives ~21:50 and leaves ~06:05
//!   the next day, so its punches cross midnight and, on the last night of a month, the month end; in a month with
//!   a DST change (e.g. 2026-03 or 2026-10 in Europe/Berlin, always a Saturday-to-Sunday night) that night is an
//!   hour shorter or longer in real time;
//! - the **warehouse team** (shift 07:00–16:00, Monday to Friday) punches on the terminal in the other zone;
//! - about 3 % of punches are **double taps**: the same person again 3–40 s later, often on the other entrance.
//!
//! [`push_month`] uploads a month to a push server the way terminals do (handshake, then `ATTLOG` batches), for
//! `punchd simulate push --month`; the pull simulator serves one terminal's records (`punchd simulate pull
//! --month`). Generation depends on chrono and chrono-tz only; the upload on [`crate::push`]'s request helpers.

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{
    DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, TimeZone, Utc, Weekday,
};
use chrono_tz::Tz;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct MonthConfig {
    /// Year of the month.
    pub year: i32,
    /// Month, 1–12.
    pub month: u32,
    /// Seed: the same seed gives the same records.
    pub seed: u64,
    /// The site's zone: shift times are wall times here.
    pub site_zone: Tz,
    /// The zone the warehouse terminal's clock is set to.
    pub other_zone: Tz,
    /// People on the day team (PINs 1001, 1002, …).
    pub day_team: usize,
    /// People on the night team (PINs 2001, …).
    pub night_team: usize,
    /// People on the warehouse team (PINs 3001, …).
    pub warehouse_team: usize,
    /// Serial numbers are this prefix and the terminal's number (1–3) on four digits.
    pub sn_prefix: String,
}

impl MonthConfig {
    /// Defaults for a month: seed 1, Europe/Berlin with the warehouse clock on Europe/London, 30 day, 6 night and 4
    /// warehouse people, SNs `SIMMONTH0001`–`SIMMONTH0003`.
    pub fn new(year: i32, month: u32) -> MonthConfig {
        MonthConfig {
            year,
            month,
            seed: 1,
            site_zone: chrono_tz::Europe::Berlin,
            other_zone: chrono_tz::Europe::London,
            day_team: 30,
            night_team: 6,
            warehouse_team: 4,
            sn_prefix: "SIMMONTH".to_owned(),
        }
    }

    /// Parse `YYYY-MM` (the `--month` flag) into a default config.
    ///
    /// # Errors
    /// [`MonthError::BadMonth`] when the text is not a month.
    pub fn parse(month: &str) -> Result<MonthConfig, MonthError> {
        let bad = || MonthError::BadMonth(month.to_owned());
        let (year, number) = month.split_once('-').ok_or_else(bad)?;
        let year: i32 = year.parse().map_err(|_| bad())?;
        let number: u32 = number.parse().map_err(|_| bad())?;
        NaiveDate::from_ymd_opt(year, number, 1).ok_or_else(bad)?;
        Ok(MonthConfig::new(year, number))
    }
}

/// Why a month cannot be generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MonthError {
    /// Not a `YYYY-MM` month chrono knows.
    #[error("{0:?} is not a month (expected YYYY-MM)")]
    BadMonth(String),
}

/// A team and its shift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Team {
    /// 09:00–18:00, Monday to Friday, on the entrances.
    Day,
    /// 22:00–06:00, nights starting Tuesday to Saturday (so the DST nights are worked), on entrance 1.
    Night,
    /// 07:00–16:00, Monday to Friday, on the warehouse terminal (clock in the other zone).
    Warehouse,
}

impl Team {
    /// Shift start and end, site wall time (end before start: overnight).
    pub fn shift(self) -> (NaiveTime, NaiveTime) {
        let hm = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap_or(NaiveTime::MIN);
        match self {
            Team::Day => (hm(9, 0), hm(18, 0)),
            Team::Night => (hm(22, 0), hm(6, 0)),
            Team::Warehouse => (hm(7, 0), hm(16, 0)),
        }
    }

    /// The shift's name: `Day`, `Night`, `Warehouse`.
    pub fn name(self) -> &'static str {
        match self {
            Team::Day => "Day",
            Team::Night => "Night",
            Team::Warehouse => "Warehouse",
        }
    }

    /// Whether a shift starts on this date.
    pub fn works_on(self, date: NaiveDate) -> bool {
        match self {
            Team::Day | Team::Warehouse => !matches!(date.weekday(), Weekday::Sat | Weekday::Sun),
            Team::Night => !matches!(date.weekday(), Weekday::Sun | Weekday::Mon),
        }
    }
}

/// A simulated terminal of the site.
#[derive(Debug, Clone, PartialEq)]
pub struct MonthDevice {
    /// Serial number.
    pub sn: String,
    /// The zone its clock is set to: its records are wall times in this zone.
    pub zone: Tz,
    /// Where it hangs (`entrance 1`, `entrance 2`, `warehouse`).
    pub place: &'static str,
}

/// A simulated employee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthEmployee {
    /// PIN on every terminal (also the employee code: the common convention).
    pub pin: String,
    /// Name, for an employee import.
    pub name: String,
    /// Team (and so shift and terminal).
    pub team: Team,
    /// Forgets to punch out on about one working day in four.
    pub forgetful: bool,
}

/// One punch as a terminal records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthRecord {
    /// The terminal's serial number.
    pub sn: String,
    /// The employee's PIN.
    pub pin: String,
    /// The terminal's local wall time (its clock's zone, [`MonthDevice::zone`]).
    pub punched_at: NaiveDateTime,
    /// The instant (UTC), for checks: a terminal does not send it.
    pub at: DateTime<Utc>,
    /// Punch state: 0 check-in, 1 check-out, 2 break-out, 3 break-in.
    pub punch_state: u8,
    /// Verify mode: 15 face or 1 fingerprint.
    pub verify_mode: u8,
    /// A double tap the generator added on purpose (the hub should count it once).
    pub double_tap: bool,
}

/// A generated month: terminals, people and their punches (ordered by instant).
#[derive(Debug, Clone, PartialEq)]
pub struct MonthScenario {
    /// The terminals; index 2 is the one whose clock is in the other zone.
    pub devices: Vec<MonthDevice>,
    /// The people.
    pub employees: Vec<MonthEmployee>,
    /// Every punch of the month, by instant (a night shift starting on the month's last day is included whole).
    pub records: Vec<MonthRecord>,
}

impl MonthScenario {
    /// The records of one terminal, by instant.
    pub fn records_of<'a>(&'a self, sn: &'a str) -> impl Iterator<Item = &'a MonthRecord> + 'a {
        self.records.iter().filter(move |record| record.sn == sn)
    }
}

/// SplitMix64: tiny and deterministic (sample data, nothing secret).
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `from..=to`.
    fn between(&mut self, from: i64, to: i64) -> i64 {
        let width = (to - from + 1).max(1) as u64;
        from + (self.next_u64() % width) as i64
    }

    /// True with probability `percent` / 100.
    fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    /// About normal around `mean` seconds (sum of three uniforms), within ±`spread` seconds.
    fn around(&mut self, mean: i64, spread: i64) -> i64 {
        let third = spread / 3;
        mean + self.between(-third, third)
            + self.between(-third, third)
            + self.between(-third, third)
    }
}

const FIRST_NAMES: [&str; 12] = [
    "Anna",
    "Ben",
    "Clara",
    "David",
    "Elif",
    "Farid",
    "Greta",
    "Hamza",
    "Ines",
    "Jonas",
    "Katarzyna",
    "Luca",
];
const LAST_NAMES: [&str; 10] = [
    "Becker", "Nowak", "Yilmaz", "Rossi", "Schmidt", "Kowalski", "Weber", "Haddad", "Fischer",
    "Silva",
];

/// A site wall time as an instant: the earlier one in a DST overlap, an hour later in a DST gap.
fn site_instant(zone: &Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match zone.from_local_datetime(&local).earliest() {
        Some(at) => at.with_timezone(&Utc),
        None => zone
            .from_local_datetime(&(local - TimeDelta::hours(1)))
            .earliest()
            .map_or_else(
                || Utc.from_utc_datetime(&local),
                |at| at.with_timezone(&Utc) + TimeDelta::hours(1),
            ),
    }
}

/// Generate the month.
///
/// # Errors
/// [`MonthError::BadMonth`] for a month chrono does not know.
pub fn generate_month(config: &MonthConfig) -> Result<MonthScenario, MonthError> {
    let first = NaiveDate::from_ymd_opt(config.year, config.month, 1)
        .ok_or_else(|| MonthError::BadMonth(format!("{}-{:02}", config.year, config.month)))?;
    let devices: Vec<MonthDevice> = [
        (config.site_zone, "entrance 1"),
        (config.site_zone, "entrance 2"),
        (config.other_zone, "warehouse"),
    ]
    .into_iter()
    .enumerate()
    .map(|(idx, (zone, place))| MonthDevice {
        sn: format!("{}{:04}", config.sn_prefix, idx + 1),
        zone,
        place,
    })
    .collect();

    let mut rng = Rng(config.seed ^ 0x4D4F_4E54_4850_554E);
    let mut employees = Vec::new();
    for (team, count, base) in [
        (Team::Day, config.day_team, 1001),
        (Team::Night, config.night_team, 2001),
        (Team::Warehouse, config.warehouse_team, 3001),
    ] {
        for idx in 0..count {
            let name = format!(
                "{} {}",
                FIRST_NAMES[(rng.next_u64() % FIRST_NAMES.len() as u64) as usize],
                LAST_NAMES[(rng.next_u64() % LAST_NAMES.len() as u64) as usize]
            );
            employees.push(MonthEmployee {
                pin: (base + idx).to_string(),
                name,
                team,
                forgetful: idx % 10 == 7,
            });
        }
    }

    let mut records = Vec::new();
    let dates: Vec<NaiveDate> = first
        .iter_days()
        .take_while(|date| date.month() == config.month)
        .collect();
    for employee in &employees {
        let (start, end) = employee.team.shift();
        for &date in &dates {
            if !employee.team.works_on(date) || rng.chance(3) {
                continue; // weekly off, or absent
            }
            let start_at = site_instant(&config.site_zone, date.and_time(start));
            let end_date = if end <= start {
                date.succ_opt().unwrap_or(date)
            } else {
                date
            };
            let end_at = site_instant(&config.site_zone, end_date.and_time(end));
            let secs = TimeDelta::seconds;
            let mut day: Vec<(DateTime<Utc>, u8)> = Vec::new();
            // Arrival: about 5 min early, ±15 min; one in six days a few minutes more late.
            let mut arrival = rng.around(-300, 900);
            if rng.chance(16) {
                arrival += rng.between(60, 1200);
            }
            day.push((start_at + secs(arrival), 0));
            if employee.team != Team::Night && rng.chance(80) {
                let lunch = start_at + secs(3 * 3600 + 1800 + rng.around(0, 1200));
                day.push((lunch, 2));
                day.push((lunch + secs(rng.between(1800, 3600)), 3));
            }
            let forgets = rng.chance(if employee.forgetful { 25 } else { 1 });
            if !forgets {
                day.push((end_at + secs(rng.around(300, 1200)), 1));
            }
            for (at, punch_state) in day {
                let device_idx = match employee.team {
                    Team::Day => (rng.next_u64() % 2) as usize,
                    Team::Night => 0,
                    Team::Warehouse => 2,
                };
                let verify_mode = if rng.chance(70) { 15 } else { 1 };
                records.push(record(
                    &devices[device_idx],
                    &employee.pin,
                    at,
                    punch_state,
                    verify_mode,
                    false,
                ));
                if rng.chance(3) {
                    // Again a few seconds later: the other entrance for the day team, the same terminal otherwise.
                    let again = if employee.team == Team::Day {
                        1 - device_idx
                    } else {
                        device_idx
                    };
                    let at = at + secs(rng.between(3, 40));
                    records.push(record(
                        &devices[again],
                        &employee.pin,
                        at,
                        punch_state,
                        verify_mode,
                        true,
                    ));
                }
            }
        }
    }
    records.sort_by(|a, b| (a.at, &a.sn, &a.pin).cmp(&(b.at, &b.sn, &b.pin)));
    Ok(MonthScenario {
        devices,
        employees,
        records,
    })
}

fn record(
    device: &MonthDevice,
    pin: &str,
    at: DateTime<Utc>,
    punch_state: u8,
    verify_mode: u8,
    double_tap: bool,
) -> MonthRecord {
    MonthRecord {
        sn: device.sn.clone(),
        pin: pin.to_owned(),
        punched_at: at.with_timezone(&device.zone).naive_local(),
        at,
        punch_state,
        verify_mode,
        double_tap,
    }
}

/// What [`push_month`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MonthUpload {
    /// Terminals that uploaded.
    pub devices: usize,
    /// `ATTLOG` POSTs acknowledged.
    pub batches: u64,
    /// Punches the server acknowledged (the sum of its `OK:<n>` answers).
    pub punches_acked: u64,
}

/// Why [`push_month`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum MonthPushError {
    /// Below HTTP: connection refused or reset, timeout, not HTTP.
    #[error("terminal {sn}: {source}")]
    Exchange {
        /// The terminal.
        sn: String,
        /// What failed.
        #[source]
        source: crate::push::ExchangeError,
    },
    /// The server did not accept (an unapproved terminal is answered so): nothing after this was sent.
    #[error("terminal {sn}: the server answered {status} {body:?} to the {what}")]
    Refused {
        /// The terminal.
        sn: String,
        /// `handshake` or `ATTLOG batch`.
        what: &'static str,
        /// HTTP status.
        status: u16,
        /// The answer's body.
        body: String,
    },
}

/// Upload every terminal's records of `scenario` to the push server at `addr` (`host` is the `Host` header), one
/// terminal after the other: the handshake (`GET /iclock/cdata?SN=…&options=all`, push.md §2), then `ATTLOG`
/// POSTs of `punches_per_batch` lines each, oldest first (push.md §7.1), each on its own connection with
/// `Connection: close`, as att firmware sends. A batch counts when the server answers `OK:<n>`.
///
/// # Errors
/// [`MonthPushError`] at the first failed or refused request; what was acknowledged before it stays stored on the
/// server.
pub async fn push_month(
    addr: SocketAddr,
    host: &str,
    scenario: &MonthScenario,
    punches_per_batch: usize,
) -> Result<MonthUpload, MonthPushError> {
    const TIMEOUT: Duration = Duration::from_secs(30);
    let mut upload = MonthUpload::default();
    for device in &scenario.devices {
        let sn = device.sn.as_str();
        let exchange = |request: Vec<u8>| async move {
            crate::push::exchange(addr, None, &request, TIMEOUT)
                .await
                .map_err(|source| MonthPushError::Exchange {
                    sn: sn.to_owned(),
                    source,
                })
        };
        handshake(addr, host, sn).await?;
        let records: Vec<&MonthRecord> = scenario.records_of(sn).collect();
        for (batch_idx, batch) in records.chunks(punches_per_batch.max(1)).enumerate() {
            let mut body = String::new();
            for record in batch {
                let line = zk_push::attlog::AttlogRecord {
                    pin: record.pin.clone(),
                    time: record.punched_at,
                    status: Some(u16::from(record.punch_state)),
                    verify: Some(u16::from(record.verify_mode)),
                    work_code: Some("0".to_owned()),
                    extra: Vec::new(),
                    line: String::new(),
                };
                body.push_str(&line.encode_line());
                body.push('\n');
            }
            let target = format!("/iclock/cdata?SN={sn}&table=ATTLOG&Stamp={}", batch_idx + 1);
            let reply = exchange(crate::push::encode_request(
                "POST",
                &target,
                host,
                Some(body.as_bytes()),
            ))
            .await?;
            let text = String::from_utf8_lossy(&reply.body);
            let acked = text
                .trim()
                .strip_prefix("OK")
                .and_then(|rest| rest.trim_start_matches(':').trim().parse::<u64>().ok());
            match acked {
                Some(n) if reply.status == 200 => {
                    upload.batches += 1;
                    upload.punches_acked += n;
                }
                _ => return Err(refused(sn, "ATTLOG batch", reply.status, &reply.body)),
            }
        }
        upload.devices += 1;
    }
    Ok(upload)
}

/// Only the handshake of every terminal of `scenario` (push.md §2), so the server registers them: then their
/// settings (the warehouse terminal's clock zone) can be set before [`push_month`] uploads their punches.
///
/// # Errors
/// As [`push_month`].
pub async fn handshake_month(
    addr: SocketAddr,
    host: &str,
    scenario: &MonthScenario,
) -> Result<usize, MonthPushError> {
    for device in &scenario.devices {
        handshake(addr, host, &device.sn).await?;
    }
    Ok(scenario.devices.len())
}

async fn handshake(addr: SocketAddr, host: &str, sn: &str) -> Result<(), MonthPushError> {
    let target = format!(
        "/iclock/cdata?SN={sn}&options=all&pushver={}&language=69",
        crate::push::PUSH_VERSION
    );
    let request = crate::push::encode_request("GET", &target, host, None);
    let reply = crate::push::exchange(addr, None, &request, Duration::from_secs(30))
        .await
        .map_err(|source| MonthPushError::Exchange {
            sn: sn.to_owned(),
            source,
        })?;
    if reply.status != 200 {
        return Err(refused(sn, "handshake", reply.status, &reply.body));
    }
    Ok(())
}

fn refused(sn: &str, what: &'static str, status: u16, body: &[u8]) -> MonthPushError {
    MonthPushError::Refused {
        sn: sn.to_owned(),
        what,
        status,
        body: String::from_utf8_lossy(body).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_month_and_another_seed_another() {
        let config = MonthConfig::parse("2026-11").unwrap();
        let a = generate_month(&config).unwrap();
        assert_eq!(a, generate_month(&config).unwrap());
        let b = generate_month(&MonthConfig { seed: 2, ..config }).unwrap();
        assert_ne!(a.records, b.records);
        assert_eq!(a.employees.len(), 40);
        assert_eq!(
            a.devices.iter().map(|d| d.sn.as_str()).collect::<Vec<_>>(),
            ["SIMMONTH0001", "SIMMONTH0002", "SIMMONTH0003"]
        );
    }

    #[test]
    fn bad_months_are_refused() {
        assert_eq!(
            MonthConfig::parse("2026-13"),
            Err(MonthError::BadMonth("2026-13".into()))
        );
        assert!(MonthConfig::parse("november").is_err());
        assert!(generate_month(&MonthConfig::new(2026, 0)).is_err());
    }

    #[test]
    fn the_month_has_what_attendance_must_handle() {
        let month = generate_month(&MonthConfig::parse("2026-11").unwrap()).unwrap();
        let records = &month.records;
        // Sorted by instant; every terminal wall time is the instant in the terminal's zone.
        assert!(records.windows(2).all(|w| w[0].at <= w[1].at));
        for record in records {
            let zone = month
                .devices
                .iter()
                .find(|d| d.sn == record.sn)
                .unwrap()
                .zone;
            assert_eq!(
                record.at.with_timezone(&zone).naive_local(),
                record.punched_at
            );
        }
        // The warehouse terminal's clock runs an hour behind the site (London vs Berlin): arrivals around 07:00
        // site time read around 06:00 on it.
        let warehouse_ins: Vec<&MonthRecord> = month
            .records_of("SIMMONTH0003")
            .filter(|r| r.punch_state == 0 && !r.double_tap)
            .collect();
        assert!(!warehouse_ins.is_empty());
        for record in &warehouse_ins {
            let site_hour = record
                .at
                .with_timezone(&chrono_tz::Europe::Berlin)
                .naive_local()
                .time();
            assert_eq!((site_hour - record.punched_at.time()).num_seconds(), 3600);
        }
        // Lunch breaks, double taps, forgotten check-outs.
        assert!(
            records.iter().any(|r| r.punch_state == 2)
                && records.iter().any(|r| r.punch_state == 3)
        );
        let taps: Vec<&MonthRecord> = records.iter().filter(|r| r.double_tap).collect();
        assert!(taps.len() > 10, "{} double taps", taps.len());
        for tap in taps {
            let previous = records
                .iter()
                .filter(|r| r.pin == tap.pin && !r.double_tap && r.at <= tap.at)
                .max_by_key(|r| r.at)
                .unwrap();
            let gap = (tap.at - previous.at).num_seconds();
            assert!(
                (3..=40).contains(&gap),
                "double tap {gap} s after the punch"
            );
        }
        let forgetful_days = |pin: &str| {
            let ins = records
                .iter()
                .filter(|r| r.pin == pin && r.punch_state == 0 && !r.double_tap)
                .count();
            let outs = records
                .iter()
                .filter(|r| r.pin == pin && r.punch_state == 1 && !r.double_tap)
                .count();
            ins - outs
        };
        let forgetful: usize = month
            .employees
            .iter()
            .filter(|e| e.forgetful)
            .map(|e| forgetful_days(&e.pin))
            .sum();
        assert!(forgetful > 0);
    }

    #[test]
    fn a_dst_night_is_an_hour_longer_in_real_time() {
        // Europe/Berlin falls back on Sunday 2026-10-25 at 03:00: the night team's Saturday night lasts an hour more
        // than its wall clock says; on the day team, a Berlin arrival reads as UTC+2 before and UTC+1 after.
        let month = generate_month(&MonthConfig::parse("2026-10").unwrap()).unwrap();
        let mut dst_nights = 0;
        for employee in month.employees.iter().filter(|e| e.team == Team::Night) {
            let of = |day: u32, state: u8| {
                month.records.iter().find(|r| {
                    r.pin == employee.pin
                        && !r.double_tap
                        && r.punch_state == state
                        && r.punched_at.date().day() == day
                })
            };
            if let (Some(check_in), Some(check_out)) = (of(24, 0), of(25, 1)) {
                let real = (check_out.at - check_in.at).num_seconds();
                let wall = (check_out.punched_at - check_in.punched_at).num_seconds();
                assert_eq!(real - wall, 3600, "{}", employee.pin);
                dst_nights += 1;
            }
        }
        assert!(dst_nights > 0);
        // Saturday 31 October is a night shift: its check-outs fall on 1 November, past the month end.
        let last_out = month
            .records
            .iter()
            .filter(|r| r.pin.starts_with('2') && r.punch_state == 1)
            .max_by_key(|r| r.at);
        assert_eq!(
            last_out.unwrap().punched_at.date(),
            NaiveDate::from_ymd_opt(2026, 11, 1).unwrap()
        );
        let offsets = |day: u32| {
            month
                .records
                .iter()
                .filter(|r| {
                    r.pin.starts_with('1') && r.punch_state == 0 && r.punched_at.date().day() == day
                })
                .map(|r| (r.punched_at - r.at.naive_utc()).num_seconds())
                .collect::<Vec<_>>()
        };
        assert!(!offsets(23).is_empty() && offsets(23).iter().all(|offset| *offset == 7200));
        assert!(!offsets(26).is_empty() && offsets(26).iter().all(|offset| *offset == 3600));
    }

    /// A push server in miniature: answers the handshake with options and each ATTLOG POST with `OK:<lines>`;
    /// returns the request lines and the ATTLOG bodies it saw.
    async fn fake_server(
        listener: tokio::net::TcpListener,
        refuse_sn: Option<&'static str>,
    ) -> Vec<(String, String)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut seen = Vec::new();
        while let Ok(Ok((mut stream, _))) =
            tokio::time::timeout(std::time::Duration::from_millis(500), listener.accept()).await
        {
            let mut raw = Vec::new();
            let mut buf = [0u8; 4096];
            let (head, body) = loop {
                let n = stream.read(&mut buf).await.unwrap();
                raw.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&raw).into_owned();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .map_or(0, |v| v.parse().unwrap());
                    if body.len() >= length {
                        break (head.to_owned(), body.to_owned());
                    }
                }
            };
            let request_line = head.lines().next().unwrap().to_owned();
            let answer = if refuse_sn.is_some_and(|sn| request_line.contains(sn))
                && request_line.starts_with("POST")
            {
                "UNKNOWN DEVICE".to_owned()
            } else if request_line.starts_with("POST") {
                format!("OK: {}", body.lines().count())
            } else {
                "GET OPTION FROM: X\nDelay=10\n".to_owned()
            };
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{answer}",
                answer.len()
            );
            stream.write_all(reply.as_bytes()).await.unwrap();
            seen.push((request_line, body));
        }
        seen
    }

    #[tokio::test]
    async fn push_month_uploads_every_record_as_attlog_lines() {
        let config = MonthConfig {
            day_team: 3,
            night_team: 1,
            warehouse_team: 1,
            ..MonthConfig::new(2026, 11)
        };
        let month = generate_month(&config).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(fake_server(listener, None));
        let upload = push_month(addr, &addr.to_string(), &month, 50)
            .await
            .unwrap();
        assert_eq!(handshake_month(addr, "h", &month).await.unwrap(), 3);
        let seen = server.await.unwrap();
        assert_eq!(upload.devices, 3);
        assert_eq!(upload.punches_acked, month.records.len() as u64);
        assert_eq!(
            seen.iter()
                .filter(|(line, _)| line.starts_with("GET /iclock/cdata?SN=SIMMONTH"))
                .count(),
            6,
            "3 handshakes by push_month, 3 by handshake_month"
        );
        // The first line sent by the warehouse terminal is its first record, in its own clock's wall time.
        let first = month.records_of("SIMMONTH0003").next().unwrap();
        let (line, body) = seen
            .iter()
            .find(|(line, _)| line.contains("SN=SIMMONTH0003&table=ATTLOG&Stamp=1"))
            .unwrap();
        assert!(line.starts_with("POST "));
        assert_eq!(
            body.lines().next().unwrap(),
            format!(
                "{}\t{}\t{}\t{}\t0",
                first.pin,
                first.punched_at.format("%Y-%m-%d %H:%M:%S"),
                first.punch_state,
                first.verify_mode
            )
        );
    }

    #[tokio::test]
    async fn push_month_stops_at_a_refused_terminal() {
        let month = generate_month(&MonthConfig {
            day_team: 2,
            ..MonthConfig::new(2026, 11)
        })
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(fake_server(listener, Some("SIMMONTH0002")));
        let error = push_month(addr, "h", &month, 1000).await.unwrap_err();
        server.await.unwrap();
        assert!(
            matches!(&error, MonthPushError::Refused { sn, what: "ATTLOG batch", body, .. } if sn == "SIMMONTH0002" && body == "UNKNOWN DEVICE"),
            "{error}"
        );
    }
}
