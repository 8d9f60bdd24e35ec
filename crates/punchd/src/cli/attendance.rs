//! Attendance subcommands: `sites`, `employees`, `pins`, `shifts`, `roster` and `attendance` (policy, month,
//! corrections, exceptions, sign-off, audit, watermarks). They work on the database directly, like the other
//! subcommands, and go through the same checked functions as the JSON API (`crate::attendance`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{anyhow, bail};
use chrono::{Datelike, NaiveDate, NaiveDateTime};
use clap::Subcommand;

use crate::attendance::rules::{
    BreakRule, LateFrom, OvertimeRounding, OvertimeRule, Shift, WorkedTime,
};
use crate::attendance::{import, mapping, setup};
use crate::config::Config;
use crate::format::{Format, Rows};
use crate::store::attendance::{
    Employee, EmployeeStatus, Holiday, PinMapping, PolicySetting, RosterEntry, Scope, Site,
};
use crate::store::Store;

mod month;

/// The attendance subcommands (flattened into `punchd`'s own).
#[derive(Debug, Subcommand)]
pub enum AttendanceCmd {
    /// Sites: IANA zone, day-change time, weekly offs, holidays.
    Sites {
        /// What to do (default: list).
        #[command(subcommand)]
        action: Option<SiteAction>,
        /// Output format for listings.
        #[arg(long, value_enum, default_value_t = Format::Table, global = true)]
        format: Format,
    },
    /// Employees: import from XLSX/CSV, add, edit, list.
    Employees {
        /// What to do (default: list).
        #[command(subcommand)]
        action: Option<EmployeeAction>,
        /// Output format for listings.
        #[arg(long, value_enum, default_value_t = Format::Table, global = true)]
        format: Format,
    },
    /// PIN mappings and the unmapped queue.
    Pins {
        /// What to do (default: list).
        #[command(subcommand)]
        action: Option<PinAction>,
        /// Output format for listings.
        #[arg(long, value_enum, default_value_t = Format::Table, global = true)]
        format: Format,
    },
    /// Shifts: named working-time rules.
    Shifts {
        /// What to do (default: list).
        #[command(subcommand)]
        action: Option<ShiftAction>,
        /// Output format for listings.
        #[arg(long, value_enum, default_value_t = Format::Table, global = true)]
        format: Format,
    },
    /// Roster: who works which shift on which day (overrides the employee's default shift).
    Roster {
        /// What to do.
        #[command(subcommand)]
        action: RosterAction,
        /// Output format for listings.
        #[arg(long, value_enum, default_value_t = Format::Table, global = true)]
        format: Format,
    },
    /// The month: punch-state policy, the grid, corrections, exceptions, sign-off, audit, watermarks.
    Attendance {
        /// What to do.
        #[command(subcommand)]
        action: month::MonthAction,
    },
}

/// Site actions.
#[derive(Debug, Subcommand)]
pub enum SiteAction {
    /// List sites.
    List,
    /// Add or change a site.
    Add {
        /// Name (what devices carry in their `site` setting).
        name: String,
        /// IANA time zone of the site's days.
        #[arg(long)]
        zone: String,
        /// When a day without a shift starts, `HH:MM`.
        #[arg(long, default_value = "00:00")]
        day_change: String,
        /// Weekly offs, weekday names or numbers (Monday 1): `sat,sun`.
        #[arg(long, value_delimiter = ',')]
        weekly_off: Vec<String>,
    },
    /// Add a holiday to a site.
    Holiday {
        /// The site.
        site: String,
        /// The date, `YYYY-MM-DD`.
        date: String,
        /// What it is called.
        #[arg(long, default_value = "")]
        name: String,
    },
}

/// Employee actions.
#[derive(Debug, Subcommand)]
pub enum EmployeeAction {
    /// List employees.
    List,
    /// Import employees from an XLSX or CSV file (a bad row is reported by number; the rest import).
    Import {
        /// The file (`.xlsx`, `.xls`, `.ods` or `.csv`).
        file: PathBuf,
        /// Import nothing when any row is bad.
        #[arg(long)]
        all_or_nothing: bool,
        /// Check the file and report, write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Who (recorded in the audit log).
        #[arg(long, default_value = "cli")]
        author: String,
    },
    /// Add an employee (or replace one with the same code).
    Add(EmployeeFields),
    /// Change fields of an employee.
    Edit(EmployeeEdit),
}

/// An employee's fields.
#[derive(Debug, clap::Args)]
pub struct EmployeeFields {
    /// Employee code (a PIN equal to it maps itself).
    pub code: String,
    /// Name.
    #[arg(long)]
    pub name: String,
    /// active, inactive or left.
    #[arg(long, default_value = "active")]
    pub status: String,
    /// First working day.
    #[arg(long)]
    pub joined_on: Option<String>,
    /// Last working day (status left).
    #[arg(long)]
    pub left_on: Option<String>,
    /// Site.
    #[arg(long)]
    pub site: Option<String>,
    /// Department.
    #[arg(long)]
    pub department: Option<String>,
    /// Default shift.
    #[arg(long)]
    pub shift: Option<String>,
    /// Who (audit log).
    #[arg(long, default_value = "cli")]
    pub author: String,
}

/// Changes to an employee; absent flags keep the value.
#[derive(Debug, clap::Args)]
pub struct EmployeeEdit {
    /// Employee code.
    pub code: String,
    /// Name.
    #[arg(long)]
    pub name: Option<String>,
    /// active, inactive or left.
    #[arg(long)]
    pub status: Option<String>,
    /// First working day.
    #[arg(long)]
    pub joined_on: Option<String>,
    /// Last working day.
    #[arg(long)]
    pub left_on: Option<String>,
    /// Site.
    #[arg(long)]
    pub site: Option<String>,
    /// Department.
    #[arg(long)]
    pub department: Option<String>,
    /// Default shift.
    #[arg(long)]
    pub shift: Option<String>,
    /// Who (audit log).
    #[arg(long, default_value = "cli")]
    pub author: String,
}

/// PIN actions.
#[derive(Debug, Subcommand)]
pub enum PinAction {
    /// List explicit mappings.
    List,
    /// Map a PIN to an employee on a site or a device.
    Map {
        /// The PIN as the device sends it.
        pin: String,
        /// The employee code.
        #[arg(long)]
        employee: String,
        /// On every device of this site.
        #[arg(long, conflicts_with = "device", required_unless_present = "device")]
        site: Option<String>,
        /// On this device only.
        #[arg(long)]
        device: Option<String>,
        /// Who (audit log).
        #[arg(long, default_value = "cli")]
        author: String,
    },
    /// Remove a mapping (its punches go back to the unmapped queue).
    Unmap {
        /// The PIN.
        pin: String,
        /// The site of the mapping.
        #[arg(long, conflicts_with = "device", required_unless_present = "device")]
        site: Option<String>,
        /// The device of the mapping.
        #[arg(long)]
        device: Option<String>,
        /// Who (audit log).
        #[arg(long, default_value = "cli")]
        author: String,
    },
    /// The unmapped queue: PINs with punches that mean nobody yet.
    Unmapped,
}

/// Shift actions.
#[derive(Debug, Subcommand)]
pub enum ShiftAction {
    /// List shifts.
    List,
    /// Add a shift (`shifts add Day --start 09:00 --end 18:00 --grace-in 10m --grace-out 5m --break 60m`).
    Add(ShiftFields),
    /// Change a shift (same flags; replaces the definition).
    Edit(ShiftFields),
}

/// A shift's definition.
#[derive(Debug, clap::Args)]
pub struct ShiftFields {
    /// Name.
    pub name: String,
    /// Start, `HH:MM` site local.
    #[arg(long)]
    pub start: String,
    /// End, `HH:MM`; before the start = overnight.
    #[arg(long)]
    pub end: String,
    /// Grace after the start (`10m`).
    #[arg(long, default_value = "0")]
    pub grace_in: String,
    /// Grace before the end (`5m`).
    #[arg(long, default_value = "0")]
    pub grace_out: String,
    /// Break deducted automatically from worked time (`60m`).
    #[arg(long = "break", default_value = "0", conflicts_with = "break_punches")]
    pub break_: String,
    /// Breaks come from break punches (states 2/3) instead.
    #[arg(long)]
    pub break_punches: bool,
    /// Check-in window before the start (`2h`).
    #[arg(long, default_value = "2h")]
    pub checkin_window: String,
    /// Check-out window after the end (`2h`).
    #[arg(long, default_value = "2h")]
    pub checkout_window: String,
    /// Late (and early exit) counted from the end of the grace instead of the shift start.
    #[arg(long)]
    pub late_from_grace_end: bool,
    /// Worked time from first IN to last OUT instead of every pair.
    #[arg(long)]
    pub first_in_last_out: bool,
    /// Worked time below this is absent (`4h`; 0 disables).
    #[arg(long, default_value = "0")]
    pub absent_below: String,
    /// Worked time below this is a half day (`6h`; 0 disables).
    #[arg(long, default_value = "0")]
    pub half_day_below: String,
    /// Overtime also before the start.
    #[arg(long)]
    pub overtime_before_start: bool,
    /// Overtime below this is dropped (`30m`).
    #[arg(long, default_value = "0")]
    pub overtime_min_block: String,
    /// Overtime rounded down to a multiple of this (`15m`).
    #[arg(long, default_value = "0")]
    pub overtime_rounding: String,
    /// At most this much overtime a day (`4h`; 0 = no cap).
    #[arg(long, default_value = "0")]
    pub overtime_cap: String,
    /// Who (audit log).
    #[arg(long, default_value = "cli")]
    pub author: String,
}

/// Roster actions.
#[derive(Debug, Subcommand)]
pub enum RosterAction {
    /// Put an employee on a shift (or off) for a day or a range of days.
    Set {
        /// The employee code.
        #[arg(long)]
        employee: String,
        /// First day, `YYYY-MM-DD`.
        #[arg(long)]
        from: String,
        /// Last day (inclusive), default = `--from`.
        #[arg(long)]
        to: Option<String>,
        /// The shift.
        #[arg(long, conflicts_with = "off", required_unless_present = "off")]
        shift: Option<String>,
        /// A day off.
        #[arg(long)]
        off: bool,
        /// Who (audit log).
        #[arg(long, default_value = "cli")]
        author: String,
    },
    /// List the roster lines of a month (`YYYY-MM`).
    List {
        /// The month.
        month: String,
    },
}

fn print(format: Format, rows: Rows, json: serde_json::Value) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match format {
        Format::Table => rows.write_table(&mut out)?,
        Format::Csv => rows.write_csv(&mut out)?,
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?,
    }
    Ok(())
}

fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_default()
}

pub(crate) fn date(s: &str) -> anyhow::Result<NaiveDate> {
    import::parse_date(s).map_err(|e| anyhow!(e))
}

/// `YYYY-MM` → (first day, first day of the next month).
pub(crate) fn month_range(month: &str) -> anyhow::Result<(NaiveDate, NaiveDate)> {
    let first = NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d")
        .map_err(|_| anyhow!("month {month:?} is not YYYY-MM"))?;
    let next = if first.month() == 12 {
        NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
    }
    .ok_or_else(|| anyhow!("month {month:?} is out of range"))?;
    Ok((first, next))
}

fn weekday(s: &str) -> anyhow::Result<u8> {
    let s = s.trim().to_ascii_lowercase();
    if let Ok(n) = s.parse::<u8>() {
        return Ok(n);
    }
    let names = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    names
        .iter()
        .position(|n| s.starts_with(n))
        .map(|i| i as u8 + 1)
        .ok_or_else(|| anyhow!("{s:?} is not a weekday (mon … sun or 1 … 7)"))
}

fn scope(site: Option<String>, device: Option<String>) -> anyhow::Result<(Scope, String)> {
    match (site, device) {
        (Some(s), None) => Ok((Scope::Site, s)),
        (None, Some(d)) => Ok((Scope::Device, d)),
        _ => bail!("give --site or --device"),
    }
}

fn status(s: &str) -> anyhow::Result<EmployeeStatus> {
    EmployeeStatus::parse(s).ok_or_else(|| anyhow!("status {s:?} is not active, inactive or left"))
}

/// Run an attendance subcommand.
pub async fn run(config: Config, cmd: AttendanceCmd) -> anyhow::Result<()> {
    let store = super::open_store(&config).await?;
    let store = store.as_ref();
    match cmd {
        AttendanceCmd::Sites { action, format } => {
            sites(store, action.unwrap_or(SiteAction::List), format).await
        }
        AttendanceCmd::Employees { action, format } => {
            employees(store, action.unwrap_or(EmployeeAction::List), format).await
        }
        AttendanceCmd::Pins { action, format } => {
            pins(store, action.unwrap_or(PinAction::List), format).await
        }
        AttendanceCmd::Shifts { action, format } => {
            shifts(store, action.unwrap_or(ShiftAction::List), format).await
        }
        AttendanceCmd::Roster { action, format } => roster(store, action, format).await,
        AttendanceCmd::Attendance { action } => month::run(store, action).await,
    }
}

async fn sites(store: &dyn Store, action: SiteAction, format: Format) -> anyhow::Result<()> {
    match action {
        SiteAction::List => {
            let sites = store.list_sites().await?;
            let rows = Rows {
                header: vec!["name", "zone", "day change", "weekly offs", "holidays"],
                rows: sites
                    .iter()
                    .map(|s| {
                        vec![
                            s.name.clone(),
                            s.time_zone.clone(),
                            s.day_change.clone(),
                            s.weekly_offs
                                .iter()
                                .map(u8::to_string)
                                .collect::<Vec<_>>()
                                .join(","),
                            s.holidays
                                .iter()
                                .map(|h| h.day.to_string())
                                .collect::<Vec<_>>()
                                .join(","),
                        ]
                    })
                    .collect(),
            };
            print(format, rows, serde_json::to_value(&sites)?)
        }
        SiteAction::Add {
            name,
            zone,
            day_change,
            weekly_off,
        } => {
            let holidays = store
                .list_sites()
                .await?
                .into_iter()
                .find(|s| s.name == name)
                .map(|s| s.holidays)
                .unwrap_or_default();
            let weekly_offs = weekly_off
                .iter()
                .filter(|s| !s.is_empty())
                .map(|s| weekday(s))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let site = Site {
                name: name.clone(),
                time_zone: zone,
                day_change,
                weekly_offs,
                holidays,
            };
            setup::put_site(store, site, "cli").await?;
            println!("site {name} saved");
            Ok(())
        }
        SiteAction::Holiday {
            site,
            date: d,
            name,
        } => {
            let mut s = store
                .list_sites()
                .await?
                .into_iter()
                .find(|s| s.name == site)
                .ok_or_else(|| anyhow!("site {site:?} is unknown"))?;
            let day = date(&d)?;
            s.holidays.retain(|h| h.day != day);
            s.holidays.push(Holiday { day, name });
            setup::put_site(store, s, "cli").await?;
            println!("holiday {day} added to {site}");
            Ok(())
        }
    }
}

fn employee_rows(list: &[Employee]) -> Rows {
    Rows {
        header: vec![
            "code",
            "name",
            "status",
            "joined on",
            "left on",
            "site",
            "department",
            "shift",
        ],
        rows: list
            .iter()
            .map(|e| {
                vec![
                    e.code.clone(),
                    e.name.clone(),
                    e.status.as_str().to_owned(),
                    e.joined_on.map(|d| d.to_string()).unwrap_or_default(),
                    e.left_on.map(|d| d.to_string()).unwrap_or_default(),
                    opt(&e.site),
                    opt(&e.department),
                    opt(&e.default_shift),
                ]
            })
            .collect(),
    }
}

async fn employees(
    store: &dyn Store,
    action: EmployeeAction,
    format: Format,
) -> anyhow::Result<()> {
    match action {
        EmployeeAction::List => {
            let list = store.list_employees().await?;
            print(format, employee_rows(&list), serde_json::to_value(&list)?)
        }
        EmployeeAction::Import {
            file,
            all_or_nothing,
            dry_run,
            author,
        } => {
            let parsed = import::read_file(&file).map_err(|e| anyhow!(e))?;
            let report =
                setup::import_employees(store, parsed, all_or_nothing, dry_run, &author).await?;
            if format == Format::Json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for e in &report.errors {
                    eprintln!("row {}: {}", e.row, e.reason);
                }
                let what = if report.dry_run {
                    "dry run: nothing written".to_owned()
                } else if report.imported == 0 && !report.errors.is_empty() && all_or_nothing {
                    "nothing imported (--all-or-nothing)".to_owned()
                } else {
                    format!("{} employees imported", report.imported)
                };
                println!(
                    "{what}; {} good rows, {} bad rows",
                    report.valid,
                    report.errors.len()
                );
            }
            if !report.errors.is_empty() {
                std::process::exit(2);
            }
            Ok(())
        }
        EmployeeAction::Add(f) => {
            let e = Employee {
                code: f.code.clone(),
                name: f.name,
                status: status(&f.status)?,
                joined_on: f.joined_on.as_deref().map(date).transpose()?,
                left_on: f.left_on.as_deref().map(date).transpose()?,
                site: f.site,
                department: f.department,
                default_shift: f.shift,
            };
            setup::put_employee(store, e, &f.author).await?;
            println!("employee {} saved", f.code);
            Ok(())
        }
        EmployeeAction::Edit(f) => {
            let mut e = store
                .list_employees()
                .await?
                .into_iter()
                .find(|e| e.code == f.code)
                .ok_or_else(|| anyhow!("employee {} is unknown", f.code))?;
            if let Some(v) = f.name {
                e.name = v;
            }
            if let Some(v) = f.status {
                e.status = status(&v)?;
            }
            if let Some(v) = f.joined_on {
                e.joined_on = Some(date(&v)?);
            }
            if let Some(v) = f.left_on {
                e.left_on = Some(date(&v)?);
            }
            if f.site.is_some() {
                e.site = f.site;
            }
            if f.department.is_some() {
                e.department = f.department;
            }
            if f.shift.is_some() {
                e.default_shift = f.shift;
            }
            setup::put_employee(store, e, &f.author).await?;
            println!("employee {} saved", f.code);
            Ok(())
        }
    }
}

async fn pins(store: &dyn Store, action: PinAction, format: Format) -> anyhow::Result<()> {
    match action {
        PinAction::List => {
            let list = store.list_mappings().await?;
            let rows = Rows {
                header: vec!["scope", "on", "pin", "employee"],
                rows: list
                    .iter()
                    .map(|m| {
                        vec![
                            m.scope.as_str().to_owned(),
                            m.scope_key.clone(),
                            m.pin.clone(),
                            m.employee_code.clone(),
                        ]
                    })
                    .collect(),
            };
            print(format, rows, serde_json::to_value(&list)?)
        }
        PinAction::Map {
            pin,
            employee,
            site,
            device,
            author,
        } => {
            let (scope, scope_key) = scope(site, device)?;
            let m = PinMapping {
                scope,
                scope_key: scope_key.clone(),
                pin: pin.clone(),
                employee_code: employee.clone(),
            };
            setup::add_mapping(store, m, &author).await?;
            println!(
                "PIN {pin} on {} {scope_key} → employee {employee}",
                scope.as_str()
            );
            Ok(())
        }
        PinAction::Unmap {
            pin,
            site,
            device,
            author,
        } => {
            let (scope, key) = scope(site, device)?;
            let subject = format!("{}:{key}/{pin}", scope.as_str());
            store
                .remove_mapping(
                    scope,
                    &key,
                    &pin,
                    setup::audit(&author, "mapping.remove", &subject, serde_json::json!({})),
                )
                .await?;
            println!("mapping of PIN {pin} on {} {key} removed", scope.as_str());
            Ok(())
        }
        PinAction::Unmapped => {
            let queue = unmapped_queue(store).await?;
            let rows = Rows {
                header: vec!["device", "site", "pin", "count", "first seen", "last seen"],
                rows: queue
                    .iter()
                    .map(|u| {
                        vec![
                            u.device_sn.clone(),
                            opt(&u.site),
                            u.pin.clone(),
                            u.count.to_string(),
                            u.first_seen.to_rfc3339(),
                            u.last_seen.to_rfc3339(),
                        ]
                    })
                    .collect(),
            };
            print(format, rows, serde_json::to_value(&queue)?)
        }
    }
}

/// The unmapped queue as it is now.
pub async fn unmapped_queue(store: &dyn Store) -> anyhow::Result<Vec<mapping::Unmapped>> {
    let resolver = mapping::Resolver::new(
        &store.list_mappings().await?,
        &store.list_employees().await?,
        &store.list_devices().await?,
    );
    Ok(mapping::unmapped(&resolver, &store.pins_seen().await?))
}

fn shift_def(f: ShiftFields) -> anyhow::Result<(Shift, String)> {
    let d = |s: &str| setup::parse_duration_secs(s);
    let mut shift = Shift::new(
        &f.name,
        setup::parse_clock(&f.start)?,
        setup::parse_clock(&f.end)?,
    );
    shift.grace_in_secs = d(&f.grace_in)?;
    shift.grace_out_secs = d(&f.grace_out)?;
    let break_secs = d(&f.break_)?;
    shift.break_rule = if f.break_punches {
        BreakRule::Punches
    } else if break_secs > 0 {
        BreakRule::Deduct {
            secs: break_secs,
            min_worked_secs: 0,
        }
    } else {
        BreakRule::None
    };
    shift.checkin_window_secs = d(&f.checkin_window)?;
    shift.checkout_window_secs = d(&f.checkout_window)?;
    if f.late_from_grace_end {
        shift.late_from = LateFrom::GraceEnd;
    }
    if f.first_in_last_out {
        shift.worked_time = WorkedTime::FirstInLastOut;
    }
    shift.absent_below_secs = d(&f.absent_below)?;
    shift.half_day_below_secs = d(&f.half_day_below)?;
    shift.overtime = OvertimeRule {
        before_start: f.overtime_before_start,
        min_block_secs: d(&f.overtime_min_block)?,
        rounding_secs: d(&f.overtime_rounding)?,
        rounding: OvertimeRounding::Down,
        daily_cap_secs: d(&f.overtime_cap)?,
    };
    Ok((shift, f.author))
}

async fn shifts(store: &dyn Store, action: ShiftAction, format: Format) -> anyhow::Result<()> {
    match action {
        ShiftAction::List => {
            let list = setup::load_shifts(store).await?;
            let rows = Rows {
                header: vec![
                    "name",
                    "start",
                    "end",
                    "grace in (s)",
                    "grace out (s)",
                    "break",
                ],
                rows: list
                    .iter()
                    .map(|s| {
                        vec![
                            s.name.clone(),
                            s.start.format("%H:%M").to_string(),
                            s.end.format("%H:%M").to_string(),
                            s.grace_in_secs.to_string(),
                            s.grace_out_secs.to_string(),
                            match s.break_rule {
                                BreakRule::None => "none".to_owned(),
                                BreakRule::Punches => "punches".to_owned(),
                                BreakRule::Deduct { secs, .. } => format!("{} min", secs / 60),
                            },
                        ]
                    })
                    .collect(),
            };
            print(format, rows, serde_json::to_value(&list)?)
        }
        ShiftAction::Add(f) => {
            let (def, author) = shift_def(f)?;
            let name = def.name.clone();
            setup::put_shift(store, def, false, &author).await?;
            println!("shift {name} added");
            Ok(())
        }
        ShiftAction::Edit(f) => {
            let (def, author) = shift_def(f)?;
            let name = def.name.clone();
            if !store.list_shifts().await?.iter().any(|s| s.name == name) {
                bail!("shift {name:?} is unknown");
            }
            setup::put_shift(store, def, true, &author).await?;
            println!("shift {name} changed");
            Ok(())
        }
    }
}

async fn roster(store: &dyn Store, action: RosterAction, format: Format) -> anyhow::Result<()> {
    match action {
        RosterAction::Set {
            employee,
            from,
            to,
            shift,
            off,
            author,
        } => {
            let from = date(&from)?;
            let to = to.as_deref().map(date).transpose()?.unwrap_or(from);
            if to < from {
                bail!("--to {to} is before --from {from}");
            }
            let shift = if off { None } else { shift };
            let entries: Vec<RosterEntry> = from
                .iter_days()
                .take_while(|d| *d <= to)
                .map(|day| RosterEntry {
                    employee_code: employee.clone(),
                    day,
                    shift: shift.clone(),
                })
                .collect();
            let n = entries.len();
            setup::put_roster(store, entries, &author).await?;
            println!("{n} roster lines saved");
            Ok(())
        }
        RosterAction::List { month } => {
            let (from, to) = month_range(&month)?;
            let list = store.list_roster(from, to).await?;
            let rows = Rows {
                header: vec!["day", "employee", "shift"],
                rows: list
                    .iter()
                    .map(|r| {
                        vec![
                            r.day.to_string(),
                            r.employee_code.clone(),
                            r.shift.clone().unwrap_or_else(|| "off".into()),
                        ]
                    })
                    .collect(),
            };
            print(format, rows, serde_json::to_value(&list)?)
        }
    }
}

/// Parse a site local wall time `YYYY-MM-DD HH:MM[:SS]`.
pub(crate) fn local_time(s: &str) -> anyhow::Result<NaiveDateTime> {
    for fmt in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s.trim(), fmt) {
            return Ok(t);
        }
    }
    bail!("time {s:?} is not YYYY-MM-DD HH:MM[:SS]")
}

/// A policy from the CLI.
pub(crate) fn policy_setting(
    site: Option<String>,
    device: Option<String>,
    policy: String,
    double_tap_secs: u32,
) -> anyhow::Result<PolicySetting> {
    let (scope, scope_key) = scope(site, device)?;
    Ok(PolicySetting {
        scope,
        scope_key,
        policy,
        double_tap_secs,
    })
}
