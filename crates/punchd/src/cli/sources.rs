//! `punchd import` and `punchd sources` (issue 9). Both work on the database directly, like the other
//! subcommands; a running server sees new sources at once (webhook tokens are looked up per request).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::app::App;
use crate::config::Config;
use crate::domain::DeviceSn;
use crate::format::{Format, Rows};
use crate::sources::import::{
    self, AttlogLayout, ColumnSpec, FileFormat, ImportInput, ImportOptions, ImportReport,
};
use crate::store::sources::SourceInfo;

/// `punchd import FILE` options.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file: a terminal's USB export (`<SN>_attlog.dat`), a CSV file or a spreadsheet (XLSX).
    pub file: PathBuf,
    /// The device the punches belong to (SN); required unless the file name or a device column names it.
    #[arg(long, value_name = "SN")]
    pub device: Option<String>,
    /// The file's format [default: from the extension, else the content].
    #[arg(long, value_enum)]
    pub format: Option<FileFormat>,
    /// Attlog layout: push (PIN, time, state, verify, work code, …) or machine (PIN, time, machine no, state,
    /// verify, work code) [default: detected from the first line].
    #[arg(long, value_enum)]
    pub attlog_layout: Option<AttlogLayout>,
    /// IANA zone of the times in the file [default: the device's zone, else the configured default].
    #[arg(long, value_name = "ZONE")]
    pub time_zone: Option<String>,
    /// Which column holds what, by header text or 1-based number: `pin=Emp No,time=Punch Time` or
    /// `pin=1,date=3,time=4,state=5` (keys: pin, time, date, state, verify, workcode, device)
    /// [default: found from the header].
    #[arg(long, value_name = "KEY=COLUMN,…")]
    pub columns: Option<ColumnSpec>,
    /// chrono strftime format of the time cells (or of "date time" with two columns), e.g. `%d/%m/%Y %H:%M`.
    #[arg(long, value_name = "FORMAT")]
    pub date_format: Option<String>,
    /// Read the file and print what would be stored (counts, first rows, every bad row); store nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `punchd sources` actions.
#[derive(Debug, Subcommand)]
pub enum SourceAction {
    /// List sources with their state, cursor, last success, last error and counts.
    List,
    /// Add a source.
    Add {
        /// What kind.
        #[command(subcommand)]
        kind: AddSource,
    },
    /// Read a BioTime source once now (as `punchd serve` does at its interval) and print what it did.
    Run {
        /// The source's name.
        name: String,
    },
}

/// Sources that can be added.
#[derive(Debug, Subcommand)]
pub enum AddSource {
    /// A ZKBio Time server, read by `punchd serve` every `--interval`.
    Biotime {
        /// A unique name [default: biotime].
        #[arg(long, default_value = "biotime")]
        name: String,
        /// Base URL, e.g. http://biotime.local:8081.
        #[arg(long)]
        url: String,
        /// API user.
        #[arg(long)]
        username: String,
        /// API password (kept in the database, needed in clear to log in).
        #[arg(long, env = "PUNCHD_BIOTIME_PASSWORD")]
        password: String,
        /// How to log in.
        #[arg(long, value_enum, default_value = "jwt")]
        auth: crate::sources::biotime::Auth,
        /// Time between reads: 60s, 5m, 1h.
        #[arg(long, default_value = "60s")]
        interval: String,
        /// Only punches at or after this server wall time (YYYY-MM-DD[ HH:MM:SS]).
        #[arg(long)]
        since: Option<String>,
        /// IANA zone of the BioTime server's wall times [default: the configured default zone].
        #[arg(long, value_name = "ZONE")]
        time_zone: Option<String>,
        /// Rows per page asked for.
        #[arg(long, default_value_t = crate::sources::biotime::PAGE_SIZE)]
        page_size: u32,
        /// Also read BioTime's employees (emp_code, name, department, area) into punchd's employees on every run.
        #[arg(long)]
        employees: bool,
    },
    /// A JSON webhook: prints the token devices or apps send as `X-Device-Token` (shown only once).
    Webhook {
        /// A unique name (`gate-app`).
        #[arg(long)]
        name: String,
        /// IANA zone naive event times are read in [default: the configured default zone].
        #[arg(long, value_name = "ZONE")]
        time_zone: Option<String>,
    },
}

/// Run `punchd import`.
pub async fn import(config: Config, args: ImportArgs) -> anyhow::Result<()> {
    let app = App::open(config).await?;
    let device = args
        .device
        .as_deref()
        .map(|s| DeviceSn::parse(s).map_err(|e| anyhow::anyhow!("--device {s:?}: {e}")))
        .transpose()?;
    let time_zone = args
        .time_zone
        .as_deref()
        .map(crate::config::parse_time_zone)
        .transpose()?;
    let size = std::fs::metadata(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?
        .len();
    let options = ImportOptions {
        file_name: args
            .file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        device,
        format: args.format,
        attlog_layout: args.attlog_layout,
        time_zone,
        columns: args.columns,
        date_format: args.date_format,
        dry_run: args.dry_run,
    };
    let report = import::import(
        &app,
        ImportInput::Path(args.file.clone()),
        options,
        import::progress_bar(size),
    )
    .await
    .with_context(|| format!("importing {}", args.file.display()))?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        write_report(&mut out, &report)?;
    }
    Ok(())
}

fn write_report(out: &mut impl Write, r: &ImportReport) -> std::io::Result<()> {
    let format = r
        .format
        .map(|f| format!("{f:?}").to_lowercase())
        .unwrap_or_default();
    writeln!(out, "file:     {} ({format})", r.file)?;
    writeln!(out, "columns:  {}", r.columns)?;
    writeln!(out, "devices:  {}", r.devices.join(", "))?;
    if r.dry_run {
        writeln!(
            out,
            "dry run:  {} rows, {} punches, {} bad rows; nothing stored",
            r.n_rows, r.n_punches, r.n_bad
        )?;
    } else {
        writeln!(
            out,
            "imported: {} rows, {} punches: {} stored, {} already held; {} bad rows",
            r.n_rows, r.n_punches, r.n_stored, r.n_duplicate, r.n_bad
        )?;
    }
    if !r.first_rows.is_empty() {
        writeln!(out, "\nfirst rows:")?;
        let mut rows = Rows {
            header: vec!["line", "device", "pin", "time", "state", "verify"],
            rows: Vec::new(),
        };
        for p in &r.first_rows {
            rows.rows.push(vec![
                p.line_no.to_string(),
                p.device_sn.clone(),
                p.pin.clone(),
                p.punched_at.clone(),
                p.punch_state.map(|s| s.to_string()).unwrap_or_default(),
                p.verify_mode.map(|s| s.to_string()).unwrap_or_default(),
            ]);
        }
        rows.write_table(out)?;
    }
    if !r.bad_rows.is_empty() {
        writeln!(out, "\nbad rows:")?;
        for b in &r.bad_rows {
            writeln!(out, "  line {}: {} ({:?})", b.line_no, b.reason, b.line)?;
        }
        if r.n_bad as usize > r.bad_rows.len() {
            writeln!(
                out,
                "  … and {} more (all are in the journal)",
                r.n_bad as usize - r.bad_rows.len()
            )?;
        }
    }
    Ok(())
}

/// Run `punchd sources …`.
pub async fn sources(config: Config, action: SourceAction, format: Format) -> anyhow::Result<()> {
    let app = App::open(config).await?;
    match action {
        SourceAction::List => {
            let sources = app.store.list_sources().await?;
            let rows = source_rows(&sources);
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            match format {
                Format::Table => rows.write_table(&mut out)?,
                Format::Csv => rows.write_csv(&mut out)?,
                Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&sources)?)?,
            }
        }
        SourceAction::Add {
            kind: AddSource::Webhook { name, time_zone },
        } => {
            let (source, token) =
                crate::web::sources::create_webhook_source(&app, &name, time_zone.as_deref())
                    .await?;
            eprintln!(
                "webhook source {:?} created; POST events to /api/v1/sources/webhook with this token as \
                 X-Device-Token (it is shown only once):",
                source.name
            );
            println!("{token}");
        }
        SourceAction::Add {
            kind:
                AddSource::Biotime {
                    name,
                    url,
                    username,
                    password,
                    auth,
                    interval,
                    since,
                    time_zone,
                    page_size,
                    employees,
                },
        } => {
            use crate::sources::biotime::{parse_interval, Settings};
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                anyhow::bail!("--url {url:?} must start with http:// or https://");
            }
            if let Some(zone) = &time_zone {
                crate::config::parse_time_zone(zone)?;
            }
            let since = since.map(|s| {
                if s.len() == 10 {
                    format!("{s} 00:00:00")
                } else {
                    s
                }
            });
            let settings = Settings {
                url,
                username,
                auth,
                interval_secs: parse_interval(&interval).map_err(anyhow::Error::msg)?,
                since,
                page_size,
                employees,
            };
            let serde_json::Value::Object(settings) = serde_json::to_value(&settings)? else {
                anyhow::bail!("settings are not an object");
            };
            let source = app
                .store
                .create_source(
                    crate::store::sources::NewSource {
                        name,
                        kind: crate::store::sources::SourceKind::Biotime,
                        token_hash: None,
                        time_zone,
                        settings,
                        secret: Some(password),
                    },
                    chrono::Utc::now(),
                )
                .await?;
            println!(
                "BioTime source {:?} added; `punchd serve` reads it every {} s (`punchd sources run {}` reads it now)",
                source.name,
                interval,
                source.name
            );
        }
        SourceAction::Run { name } => {
            let source = app.store.get_source(&name).await?;
            if source.kind != crate::store::sources::SourceKind::Biotime {
                anyhow::bail!(
                    "source {name:?} is a {} source; only BioTime sources are run",
                    source.kind.as_str()
                );
            }
            let mut session = crate::sources::biotime::Session::default();
            let report = crate::sources::biotime::run_once(&app, &source, &mut session)
                .await
                .map_err(|e| anyhow::anyhow!("reading BioTime source {name:?}: {e}"))?;
            if let Some(w) = &report.warning {
                eprintln!("warning: {w}");
            }
            println!("{}", serde_json::to_string(&report)?);
        }
    }
    Ok(())
}

/// Sources as a table: name, kind, state, cursor, last success, last error, counts.
pub fn source_rows(sources: &[SourceInfo]) -> Rows {
    let mut rows = Rows {
        header: vec![
            "name",
            "kind",
            "state",
            "cursor",
            "last_success",
            "last_error",
            "runs",
            "stored",
            "duplicate",
            "rejected",
        ],
        rows: Vec::new(),
    };
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
            .unwrap_or_default()
    };
    for s in sources {
        rows.rows.push(vec![
            s.name.clone(),
            s.kind.as_str().to_owned(),
            s.state.clone(),
            s.cursor.clone().unwrap_or_default(),
            time(s.last_success_at),
            s.last_error.clone().unwrap_or_default(),
            s.n_runs.to_string(),
            s.n_stored.to_string(),
            s.n_duplicate.to_string(),
            s.n_rejected.to_string(),
        ]);
    }
    rows
}
