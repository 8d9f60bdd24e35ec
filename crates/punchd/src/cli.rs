//! The `punchd` subcommands. Every subcommand takes the same `--config`, `--database` and `--listen` (or their
//! `PUNCHD_*` variables); listing subcommands take `--format table|csv|json`.
//!
//! Subcommands other than `serve` and `replay --server` work on the database directly: they are safe to run
//! while the server runs (SQLite WAL, or PostgreSQL), and a running server picks up their changes within a few
//! seconds.
//! Only `serve`, `token create`, `ui-users add`, `devices add` and `replay` create a missing database; every other
//! subcommand
//! says "no database at PATH" and exits non-zero (a typo in `--database` must not look like an empty install).

mod ops;

mod push;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use chrono::Utc;
use clap::{Args, Parser, Subcommand};

mod agent;
mod attendance;
mod migrate;
pub mod sinks;
mod sources;
mod ui_users;

use crate::app::App;
use crate::config::{ApprovalMode, Config, Overrides};
use crate::domain::{Approval, CommandKind, CommandStatus, DeviceSn, Pin, Scope, Transport};
use crate::format::{self, Format, Rows};
use crate::store::sqlite::Durability;
use crate::store::{CommandFilter, DevicePatch, PunchFilter, Store};

/// punchd: an attendance hub for ZKTeco-compatible biometric terminals.
#[derive(Debug, Parser)]
#[command(name = "punchd", version, about, long_about = None)]
pub struct Cli {
    /// Settings file (TOML); flags and PUNCHD_* variables override it.
    #[arg(long, global = true, env = "PUNCHD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// SQLite database file [default: punchd.db], or a PostgreSQL URL (postgres://user@host/db).
    #[arg(long, global = true, env = "PUNCHD_DATABASE", value_name = "PATH|URL")]
    pub database: Option<String>,
    /// Address for terminals and the API [default: 0.0.0.0:8080].
    #[arg(long, global = true, env = "PUNCHD_LISTEN", value_name = "IP:PORT")]
    pub listen: Option<String>,
    /// Log filter (tracing EnvFilter syntax), e.g. `punchd=debug`.
    #[arg(long, global = true, env = "PUNCHD_LOG", value_name = "FILTER")]
    pub log: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Cmd,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run the server: terminals push to /iclock, the JSON API answers on /api/v1.
    Serve(ServeArgs),
    /// List and manage devices.
    Devices {
        /// What to do (default: list).
        #[command(subcommand)]
        action: Option<DeviceAction>,
        /// Output format for listings.
        #[arg(long, value_enum, default_value_t = Format::Table, global = true)]
        format: Format,
    },
    /// List stored punches.
    Punches(PunchArgs),
    /// List the users a device reported.
    Users {
        /// The device.
        #[arg(long)]
        device: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Send commands to devices and see their results.
    Commands {
        /// What to do (default: list).
        #[command(subcommand)]
        action: Option<CommandAction>,
        /// Listing filters when no action is given (`punchd commands --limit 2`).
        #[command(flatten)]
        list: CommandListArgs,
        /// Output format for listings.
        #[arg(long, value_enum, default_value_t = Format::Table, global = true)]
        format: Format,
    },
    /// Manage API tokens.
    Token {
        /// What to do.
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Feed captured request files (as in samples/push) through a running server or straight into the database.
    Replay(ReplayArgs),
    /// Read a terminal once over TCP/UDP 4370: its info and attendance log (no server needed).
    Pull(crate::sources::pull::PullArgs),
    /// Run simulated terminals: `simulate pull` (a terminal to read) or `simulate push` (a fleet pushing to a server).
    Simulate(crate::simulate::SimulateArgs),
    /// List raw journal entries (what terminals sent, with the lines that could not be read).
    Journal(ops::JournalArgs),
    /// Where check-ins go (Frappe HR, webhook, NATS): list, add, pause, resume, retry, replay.
    Sinks {
        /// What to do (default: list).
        #[command(subcommand)]
        action: Option<sinks::SinkAction>,
        /// Output format for listings.
        #[arg(long, value_enum, default_value_t = Format::Table, global = true)]
        format: Format,
    },
    /// Import a file: a terminal's USB export (`<SN>_attlog.dat`), a CSV file or an XLSX sheet.
    Import(sources::ImportArgs),
    /// List and add sources other than terminals (webhooks, imports).
    Sources {
        /// What to do (default: list).
        #[command(subcommand)]
        action: Option<sources::SourceAction>,
        /// Output format for listings.
        #[arg(long, value_enum, default_value_t = Format::Table, global = true)]
        format: Format,
    },
    /// Accounts of the web UI (/ui): add, list, passwd, role, disable, enable.
    UiUsers {
        /// What to do (default: list).
        #[command(subcommand)]
        action: Option<ui_users::UiUserAction>,
        /// Output format for listings.
        #[arg(long, value_enum, default_value_t = Format::Table, global = true)]
        format: Format,
    },
    /// Attendance: sites, employees, pins, shifts, roster, attendance (flattened).
    #[command(flatten)]
    Attendance(attendance::AttendanceCmd),
    /// Move an installation from SQLite to PostgreSQL: copy every table, verified by counts and checksums;
    /// resumable.
    Migrate(migrate::MigrateArgs),
    /// Run the edge agent: pull LAN terminals into its own database (`--database`) and forward to a hub.
    Agent(crate::agent::AgentArgs),
    /// On the hub: register edge agents (`agents add --site SITE` prints a token) and list them.
    Agents {
        /// What to do (default: list).
        #[command(subcommand)]
        action: Option<agent::AgentsAction>,
        /// Output format for listings.
        #[arg(long, value_enum, default_value_t = Format::Table, global = true)]
        format: Format,
    },
}

/// `serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Zone for terminals without one (IANA name) [default: this machine's zone].
    #[arg(long, env = "PUNCHD_TIME_ZONE", value_name = "ZONE")]
    pub time_zone: Option<String>,
    /// How durable an acknowledgement is [default: power-safe].
    #[arg(long, env = "PUNCHD_DURABILITY", value_enum)]
    pub durability: Option<Durability>,
    /// auto: approve new terminals on first contact; manual: they wait in pending [default: auto].
    #[arg(long, env = "PUNCHD_APPROVAL", value_name = "auto|manual")]
    pub approval: Option<ApprovalMode>,
    /// Connections served at once [default: 3/4 of the open-file limit, at most 16384].
    #[arg(long, env = "PUNCHD_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Devices kept waiting in pending; the oldest is forgotten first [default: 1000].
    #[arg(long, env = "PUNCHD_MAX_PENDING_DEVICES", value_name = "N")]
    pub max_pending_devices: Option<usize>,
    /// New serial numbers registered per source address per minute, 0 = no limit [default: 20].
    #[arg(long, env = "PUNCHD_NEW_SNS_PER_MINUTE", value_name = "N")]
    pub new_sns_per_minute: Option<u32>,
}

/// Device actions.
#[derive(Debug, Subcommand)]
pub enum DeviceAction {
    /// List devices with their approval and online state.
    List,
    /// Show one device in full (JSON).
    Show {
        /// Serial number.
        sn: String,
    },
    /// Approve a pending or blocked device.
    Approve {
        /// Serial number.
        sn: String,
    },
    /// Show or change a push terminal's authentication: address binding, ComKey, pinned pushcommkey.
    PushAuth(push::PushAuthArgs),
    /// Block a device (it is answered UNKNOWN DEVICE).
    Block {
        /// Serial number.
        sn: String,
    },
    /// Register a pull terminal (read over TCP/UDP 4370 by `punchd serve`).
    Add {
        /// Serial number (as the terminal reports it; `punchd pull ADDRESS` shows it).
        sn: String,
        /// Address: `host` or `host:port` (port 4370 when omitted).
        #[arg(long)]
        address: String,
        /// tcp or udp.
        #[arg(long, default_value = "tcp")]
        transport: String,
        /// Comm key (0 = none).
        #[arg(long, default_value_t = 0)]
        comm_key: u32,
        /// Seconds between pulls; 0 keeps a live connection and stores each punch as it happens.
        #[arg(long, default_value_t = 300)]
        interval: u32,
        /// Clear the terminal's attendance log after a pull that punchd verified complete.
        #[arg(long)]
        clear_after_pull: bool,
        /// Safe clear: clear the attendance log (after a pull, or by the clear_attendance_log command) only once
        /// every sink has delivered or parked every punch of this terminal (true or false; default true).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        safe_clear: bool,
        /// IANA zone of the terminal's clock.
        #[arg(long)]
        time_zone: Option<String>,
        /// A name people recognise.
        #[arg(long)]
        alias: Option<String>,
        /// Site.
        #[arg(long)]
        site: Option<String>,
    },
    /// Change a device's settings (pull settings only for pull terminals).
    Set {
        /// Serial number.
        sn: String,
        /// A name people recognise.
        #[arg(long)]
        alias: Option<String>,
        /// Site.
        #[arg(long)]
        site: Option<String>,
        /// IANA zone of the device's clock.
        #[arg(long)]
        time_zone: Option<String>,
        /// Seconds between polls asked of the terminal (push Delay), 1–3600.
        #[arg(long)]
        poll_delay: Option<u32>,
        /// Pull: address, `host` or `host:port`.
        #[arg(long)]
        address: Option<String>,
        /// Pull: seconds between pulls; 0 keeps a live connection.
        #[arg(long)]
        interval: Option<u32>,
        /// Pull: comm key (0 = none).
        #[arg(long)]
        comm_key: Option<u32>,
        /// Pull: tcp or udp.
        #[arg(long)]
        transport: Option<String>,
        /// Pull: clear the attendance log after a verified complete pull (true or false).
        #[arg(long)]
        clear_after_pull: Option<bool>,
        /// Safe clear (push and pull): clear the attendance log, after a pull or by the clear_attendance_log
        /// command, only once every sink has delivered or parked every punch of this terminal; a queued clear is
        /// held until then (true or false; new devices: true).
        #[arg(long)]
        safe_clear: Option<bool>,
    },
    /// Remove a device: its registration, settings and stamps; its queued commands are cancelled. Its punches,
    /// journal, users, templates and command history are kept. A terminal that contacts punchd again
    /// registers anew.
    Delete {
        /// Serial number.
        sn: String,
    },
}

/// `punches` options.
#[derive(Debug, Args)]
pub struct PunchArgs {
    /// Only this device (SN).
    #[arg(long)]
    pub device: Option<String>,
    /// Only this PIN.
    #[arg(long)]
    pub pin: Option<String>,
    /// From (inclusive): terminal local `YYYY-MM-DD[ HH:MM:SS]`, or an RFC 3339 instant.
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// To (exclusive), same forms.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// At most this many (0 = all).
    #[arg(long, default_value_t = 0)]
    pub limit: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Filters of a command listing.
#[derive(Debug, Clone, Args)]
pub struct CommandListArgs {
    /// Only this device.
    #[arg(long)]
    pub device: Option<String>,
    /// Only this status (queued, sent, succeeded, failed, expired, cancelled).
    #[arg(long)]
    pub status: Option<String>,
    /// At most this many (0 = all).
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
}

/// Command actions.
#[derive(Debug, Subcommand)]
pub enum CommandAction {
    /// List commands, newest first.
    List(CommandListArgs),
    /// Cancel a queued command (a command already sent cannot be called back: the terminal may have run it).
    Cancel {
        /// Command id.
        id: i64,
    },
    /// Show one command and its result (JSON).
    Show {
        /// Command id.
        id: i64,
    },
    /// Queue a command for a device; it is delivered on the device's next poll.
    Send {
        /// Serial number.
        sn: String,
        /// The command.
        #[command(subcommand)]
        kind: SendKind,
    },
}

/// Commands that can be sent.
#[derive(Debug, Subcommand)]
pub enum SendKind {
    /// Add or replace a user (the full record is sent).
    UpsertUser {
        /// User id on the device.
        #[arg(long)]
        pin: String,
        /// Name.
        #[arg(long, default_value = "")]
        name: String,
        /// 0 user, 2 enroller, 6 admin, 14 super admin.
        #[arg(long, default_value_t = 0)]
        privilege: u16,
        /// Password.
        #[arg(long, default_value = "")]
        password: String,
        /// Card number.
        #[arg(long, default_value = "")]
        card: String,
        /// Group.
        #[arg(long, default_value = "")]
        group: String,
    },
    /// Delete a user and their templates.
    DeleteUser {
        /// User id on the device.
        #[arg(long)]
        pin: String,
    },
    /// Restore a disabled user (from punchd's copy of the record and templates).
    EnableUser {
        /// User id on the device.
        #[arg(long)]
        pin: String,
    },
    /// Stop a user from punching (removed from the terminal, kept in punchd).
    DisableUser {
        /// User id on the device.
        #[arg(long)]
        pin: String,
    },
    /// Ask the device to send again the punches between two terminal local times.
    Reupload {
        /// Start, `YYYY-MM-DD HH:MM:SS` terminal local time.
        #[arg(long)]
        from: String,
        /// End, same form.
        #[arg(long)]
        to: String,
    },
    /// Ask the device for its info, counts and options.
    Info,
    /// Set the device clock from punchd's clock.
    SyncTime,
    /// Clear the device's attendance log.
    ClearLog,
    /// Restart the device.
    Reboot,
    /// Open the door relay.
    Unlock,
    /// Set one device option.
    SetOption {
        /// `Key=Value`.
        assignment: String,
    },
    /// Send a raw command line (support cases).
    Raw {
        /// The command text after `C:<id>:`.
        text: String,
    },
}

/// Token actions.
#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Create a token and print it (it is shown only once).
    Create {
        /// A name for the token (who or what uses it).
        name: String,
        /// What it may do: read (every GET), hr (also change attendance: employees, mapping, shifts,
        /// policy, review, sign-off), operate (also queue and cancel commands, approve and block
        /// devices) or admin (also create, change and delete devices). Default read: the least privilege; a
        /// token that can reboot terminals or delete devices is asked for by name.
        #[arg(long, default_value = "read", value_parser = parse_scope)]
        scope: Scope,
    },
    /// List tokens: name, live or revoked, created (UTC), scope; TAB-separated.
    List,
    /// Revoke a token.
    Revoke {
        /// Its name.
        name: String,
    },
}

/// `replay` options.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Captured request files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Send to a running server (`http://host:port`) instead of writing into the database directly.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
}

/// Start logging to stderr. `--log`/`PUNCHD_LOG` or `RUST_LOG` set the filter.
pub fn init_tracing(cli: &Cli) {
    let default = match cli.command {
        Cmd::Serve(_) | Cmd::Agent(_) => "punchd=info,tower_http=warn",
        _ => "punchd=warn",
    };
    let filter = cli
        .log
        .clone()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| default.to_owned());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(crate::logfmt::use_colours())
        .fmt_fields(crate::logfmt::fields())
        .try_init();
}

fn overrides(cli: &Cli) -> Overrides {
    let mut o = Overrides {
        listen: cli.listen.clone(),
        database: cli.database.clone(),
        ..Overrides::default()
    };
    if let Cmd::Serve(args) = &cli.command {
        o.default_time_zone.clone_from(&args.time_zone);
        o.durability = args.durability;
        o.approval_mode = args.approval;
        o.max_connections = args.max_connections;
        o.max_pending_devices = args.max_pending_devices;
        o.new_sns_per_address_per_minute = args.new_sns_per_minute;
    }
    o
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    if let Cmd::Simulate(args) = &cli.command {
        let (config, database, listen) = (
            cli.config.as_deref(),
            cli.database.as_deref(),
            cli.listen.as_deref(),
        );
        crate::simulate::reject_global_flags(&args.kind, config, database, listen)?;
    }
    let config = Config::load(cli.config.as_deref(), &overrides(&cli))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run_async(cli.command, config))
}

fn print_rows(rows: &Rows, format: Format, json: serde_json::Value) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match format {
        Format::Table => rows.write_table(&mut out)?,
        Format::Csv => rows.write_csv(&mut out)?,
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?,
    }
    Ok(())
}

fn sn(s: &str) -> anyhow::Result<DeviceSn> {
    DeviceSn::parse(s).map_err(|e| anyhow::anyhow!("invalid SN {s:?}: {e}"))
}

fn parse_scope(s: &str) -> Result<Scope, String> {
    Scope::parse(s).ok_or_else(|| format!("scope {s:?} is not read, hr, operate or admin"))
}

/// Open the configured database (SQLite file or PostgreSQL URL, `store::open`). Only subcommands that write pass
/// `create` (serve, token create, devices add, replay); the others refuse a missing SQLite file instead of
/// creating an empty one.
async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    open_store_with(config, false).await
}

async fn open_store_with(config: &Config, create: bool) -> anyhow::Result<Arc<dyn Store>> {
    crate::store::open(config, create).await
}

async fn run_async(command: Cmd, config: Config) -> anyhow::Result<()> {
    match command {
        Cmd::Serve(_) => serve(config).await,
        Cmd::Devices { action, format } => {
            devices(config, action.unwrap_or(DeviceAction::List), format).await
        }
        Cmd::Punches(args) => punches(config, args).await,
        Cmd::Users { device, format } => {
            let store = open_store(&config).await?;
            let device = sn(&device)?;
            if let Err(crate::store::StoreError::NotFound(_)) = store.get_device(&device).await {
                bail!("no such device {device} (`punchd devices` lists them)");
            }
            let users = store.list_device_users(&device).await?;
            print_rows(
                &format::user_rows(&users),
                format,
                serde_json::to_value(&users)?,
            )
        }
        Cmd::Commands {
            action,
            list,
            format,
        } => {
            let action = action.unwrap_or(CommandAction::List(list));
            commands(config, action, format).await
        }
        Cmd::Token { action } => token(config, action).await,
        Cmd::Replay(args) => crate::replay::run(config, args.files, args.server).await,
        Cmd::Pull(args) => crate::sources::pull::run_cli(config, args).await,
        Cmd::Simulate(args) => crate::simulate::run(args).await,
        Cmd::Journal(args) => ops::journal(open_store(&config).await?, args).await,
        Cmd::Sinks { action, format } => {
            sinks::run(config, action.unwrap_or(sinks::SinkAction::List), format).await
        }
        Cmd::Import(args) => sources::import(config, args).await,
        Cmd::UiUsers { action, format } => {
            ui_users::run(
                config,
                action.unwrap_or(ui_users::UiUserAction::List),
                format,
            )
            .await
        }
        Cmd::Sources { action, format } => {
            sources::sources(
                config,
                action.unwrap_or(sources::SourceAction::List),
                format,
            )
            .await
        }
        Cmd::Attendance(cmd) => attendance::run(config, cmd).await,
        Cmd::Migrate(args) => migrate::migrate(args).await,
        Cmd::Agent(args) => crate::agent::run(config, args, shutdown_signal()).await,
        Cmd::Agents { action, format } => {
            agent::agents(config, action.unwrap_or(agent::AgentsAction::List), format).await
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    // One `serve` per SQLite file; on PostgreSQL any number of instances share the database.
    let _lock = match config.database_url {
        None => Some(crate::instance_lock::acquire(&config.database)?),
        Some(_) => None,
    };
    let nofile = crate::limits::raise_nofile_limit();
    tracing::debug!(nofile, "open-file limit");
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let local = listener.local_addr()?;
    let app = App::open(config).await?;
    if let Some(url) = &app.config.database_url {
        // Several instances on one PostgreSQL: each shows every instance's live events (store/postgres/notify.rs).
        crate::store::postgres::notify::start(url.expose(), &app.live, app.leases.holder.clone())?;
    }
    if _lock.is_some() {
        // The SQLite lock is ours: leases left by a process that died are free at once, not after 30 s.
        let freed = crate::leases::free_leftovers(app.store.as_ref()).await?;
        if freed > 0 {
            tracing::info!(
                freed,
                "freed the leases of an earlier run that did not stop cleanly"
            );
        }
    }
    tracing::info!(
        listen = %local,
        database = %app.config.database_label(),
        time_zone = %app.config.default_time_zone,
        "punchd is running: point terminals at http://<this machine>:{}/ (their server address and port)",
        local.port()
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let housekeeping = {
        let app = app.clone();
        let mut rx = stop_rx.clone();
        tokio::spawn(app.run_housekeeping(async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }))
    };
    let pull = {
        let app = app.clone();
        let mut rx = stop_rx.clone();
        tokio::spawn(crate::sources::pull::run_scheduler(app, async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }))
    };
    let delivery = {
        let app = app.clone();
        let mut rx = stop_rx.clone();
        let nice = app.config.delivery_nice;
        tokio::spawn(crate::sinks::run_at_priority(app, nice, async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }))
    };
    let biotime = {
        let app = app.clone();
        let mut rx = stop_rx.clone();
        tokio::spawn(crate::sources::biotime::run_scheduler(app, async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }))
    };
    // The web UI's background work: terminals going on- and offline on the live feed, idle sessions pruned.
    tokio::spawn(crate::web::ui::run_background(app.clone(), {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }));
    let store = app.store.clone();
    let shutdown = async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    };
    // On a worker thread, not the thread that blocks on the runtime: accepting there costs a cross-thread
    // wake-up per connection (BENCHMARKS.md).
    tokio::spawn(crate::web::serve(listener, app, shutdown))
        .await
        .context("the server task failed")??;
    let _ = housekeeping.await;
    let _ = pull.await;
    let _ = delivery.await;
    let _ = biotime.await;
    // The push stamps the SQLite writer still holds (store/sqlite/held_stamps.rs).
    if let Err(e) = store.write_held().await {
        tracing::warn!(error = %e, "could not write the last push stamps; terminals will send their last uploads again");
    }
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn devices(config: Config, action: DeviceAction, format: Format) -> anyhow::Result<()> {
    let store = open_store_with(&config, matches!(action, DeviceAction::Add { .. })).await?;
    let print_one = |d: &crate::domain::Device| -> anyhow::Result<()> {
        println!("{}", serde_json::to_string_pretty(d)?);
        Ok(())
    };
    match action {
        DeviceAction::List => {
            let devices = store.list_devices().await?;
            print_rows(
                &format::device_rows(&devices, Utc::now()),
                format,
                serde_json::to_value(&devices)?,
            )
        }
        DeviceAction::Show { sn: s } => print_one(&store.get_device(&sn(&s)?).await?),
        DeviceAction::Approve { sn: s } => {
            set_approval(store.as_ref(), &sn(&s)?, Approval::Approved).await?;
            push::after_approve(store.as_ref(), &sn(&s)?).await
        }
        DeviceAction::PushAuth(args) => {
            let sn = sn(&args.sn)?;
            push::run(store, &sn, args, config.push.bind_addresses).await
        }
        DeviceAction::Block { sn: s } => {
            set_approval(store.as_ref(), &sn(&s)?, Approval::Blocked).await
        }
        DeviceAction::Add {
            sn: s,
            address,
            transport,
            comm_key,
            interval,
            clear_after_pull,
            safe_clear,
            time_zone,
            alias,
            site,
        } => {
            use crate::devices::settings;
            let transport = pull_transport(&transport)?;
            if let Some(zone) = &time_zone {
                crate::config::parse_time_zone(zone)?;
            }
            let address = settings::check_address(&address).map_err(anyhow::Error::msg)?;
            let interval = settings::check_pull_interval(interval).map_err(anyhow::Error::msg)?;
            let device = crate::devices::registry::new_pull_device(
                sn(&s)?,
                transport,
                address,
                comm_key,
                interval,
                clear_after_pull,
                Utc::now(),
            );
            let device = store
                .create_device(crate::domain::Device {
                    time_zone,
                    alias,
                    site,
                    safe_clear,
                    ..device
                })
                .await?;
            print_one(&device)
        }
        DeviceAction::Set {
            sn: s,
            alias,
            site,
            time_zone,
            poll_delay,
            address,
            interval,
            comm_key,
            transport,
            clear_after_pull,
            safe_clear,
        } => {
            let sn = sn(&s)?;
            let patch = DevicePatch {
                alias: alias.map(Some),
                site: site.map(Some),
                time_zone: time_zone.map(Some),
                poll_delay_secs: poll_delay,
                address: address.map(Some),
                pull_interval_secs: interval,
                comm_key,
                transport: transport.as_deref().map(pull_transport).transpose()?,
                clear_after_pull,
                safe_clear,
                ..Default::default()
            };
            if patch == DevicePatch::default() {
                bail!("nothing to change: give at least one setting (see `punchd devices set --help`)");
            }
            let device = store.get_device(&sn).await?;
            crate::devices::settings::check_patch(&device, &patch).map_err(anyhow::Error::msg)?;
            print_one(&store.update_device(&sn, patch).await?)
        }
        DeviceAction::Delete { sn: s } => {
            let sn = sn(&s)?;
            store.delete_device(&sn, Utc::now()).await?;
            let kept = store
                .count_punches(&PunchFilter {
                    device_sn: Some(sn.clone()),
                    ..PunchFilter::default()
                })
                .await?;
            eprintln!(
                "{sn} removed; its {kept} punches, journal, users and command history are kept \
                 (a running server forgets it within a few seconds)"
            );
            Ok(())
        }
    }
}

fn pull_transport(s: &str) -> anyhow::Result<Transport> {
    match s {
        "tcp" => Ok(Transport::Tcp),
        "udp" => Ok(Transport::Udp),
        other => bail!("transport {other:?} is not tcp or udp"),
    }
}

async fn set_approval(store: &dyn Store, sn: &DeviceSn, approval: Approval) -> anyhow::Result<()> {
    let patch = DevicePatch {
        approval: Some(approval),
        ..Default::default()
    };
    let device = store.update_device(sn, patch).await?;
    eprintln!("{} is now {}", device.sn, device.approval.as_str());
    Ok(())
}

async fn punches(config: Config, args: PunchArgs) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    let bound = |s: &Option<String>| -> anyhow::Result<_> {
        s.as_deref()
            .map(crate::web::api::parse_time_bound)
            .transpose()
            .map_err(|e| anyhow::anyhow!(e))
    };
    let filter = PunchFilter {
        device_sn: args.device.as_deref().map(sn).transpose()?,
        pin: args.pin.map(Pin),
        from: bound(&args.since)?,
        to: bound(&args.until)?,
        after_id: None,
        limit: args.limit,
    };
    let punches = store.list_punches(&filter).await?;
    let rows = match args.format {
        Format::Csv => format::punch_csv_rows(&punches),
        _ => format::punch_rows(&punches),
    };
    let json = match args.format {
        Format::Json => serde_json::to_value(
            punches
                .iter()
                .cloned()
                .map(format::NamedPunch::from)
                .collect::<Vec<_>>(),
        )?,
        _ => serde_json::Value::Null,
    };
    print_rows(&rows, args.format, json)
}

fn send_kind(kind: SendKind) -> anyhow::Result<CommandKind> {
    let local = |s: &str| -> anyhow::Result<chrono::NaiveDateTime> {
        match crate::web::api::parse_time_bound(s).map_err(|e| anyhow::anyhow!(e))? {
            crate::store::TimeBound::Local(t) => Ok(t),
            crate::store::TimeBound::Utc(_) => {
                bail!("give terminal local time (YYYY-MM-DD HH:MM:SS), not an instant")
            }
        }
    };
    Ok(match kind {
        SendKind::UpsertUser {
            pin,
            name,
            privilege,
            password,
            card,
            group,
        } => CommandKind::UpsertUser {
            pin,
            name,
            privilege,
            password,
            card,
            group,
        },
        SendKind::DeleteUser { pin } => CommandKind::DeleteUser { pin },
        SendKind::EnableUser { pin } => CommandKind::EnableUser { pin },
        SendKind::DisableUser { pin } => CommandKind::DisableUser { pin },
        SendKind::Reupload { from, to } => CommandKind::ReuploadPunches {
            from: local(&from)?,
            to: local(&to)?,
        },
        SendKind::Info => CommandKind::FetchInfo,
        SendKind::SyncTime => CommandKind::SyncTime,
        SendKind::ClearLog => CommandKind::ClearAttendanceLog,
        SendKind::Reboot => CommandKind::Reboot,
        SendKind::Unlock => CommandKind::Unlock,
        SendKind::SetOption { assignment } => {
            let Some((key, value)) = assignment.split_once('=') else {
                bail!("set-option takes Key=Value");
            };
            CommandKind::SetOption {
                key: key.trim().to_owned(),
                value: value.to_owned(),
            }
        }
        SendKind::Raw { text } => CommandKind::Raw { text },
    })
}

async fn commands(config: Config, action: CommandAction, format: Format) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    match action {
        CommandAction::List(CommandListArgs {
            device,
            status,
            limit,
        }) => {
            let status = status
                .as_deref()
                .map(|s| {
                    CommandStatus::parse(s).ok_or_else(|| anyhow::anyhow!("unknown status {s:?}"))
                })
                .transpose()?;
            let list = store
                .list_commands(&CommandFilter {
                    device_sn: device.as_deref().map(sn).transpose()?,
                    status,
                    limit,
                })
                .await?;
            print_rows(
                &format::command_rows(&list),
                format,
                serde_json::to_value(&list)?,
            )
        }
        CommandAction::Cancel { id } => {
            let user = std::env::var("USER").unwrap_or_else(|_| "cli".into());
            match store
                .cancel_command(id, &format!("cli:{user}"), Utc::now())
                .await
            {
                Ok(command) => {
                    eprintln!("command {id} cancelled");
                    print_rows(
                        &format::command_rows(std::slice::from_ref(&command)),
                        format,
                        serde_json::to_value(&command)?,
                    )
                }
                Err(e) => Err(e.into()),
            }
        }
        CommandAction::Show { id } => {
            println!(
                "{}",
                serde_json::to_string_pretty(&store.get_command(id).await?)?
            );
            Ok(())
        }
        CommandAction::Send { sn: s, kind } => {
            let queue = crate::devices::CommandQueue::new(store, None);
            let user = std::env::var("USER").unwrap_or_else(|_| "cli".into());
            let queued = queue
                .enqueue(
                    &sn(&s)?,
                    send_kind(kind)?,
                    &format!("cli:{user}"),
                    Utc::now(),
                )
                .await?;
            print_rows(
                &format::command_rows(&queued),
                format,
                serde_json::to_value(&queued)?,
            )
        }
    }
}

async fn token(config: Config, action: TokenAction) -> anyhow::Result<()> {
    let store = open_store_with(&config, matches!(action, TokenAction::Create { .. })).await?;
    match action {
        TokenAction::Create { name, scope } => {
            let token = crate::web::auth::generate_token();
            store
                .create_token(
                    &name,
                    &crate::web::auth::hash_token(&token),
                    scope,
                    Utc::now(),
                )
                .await?;
            eprintln!("token {name:?} (scope {scope}) created; it is shown only this once:");
            println!("{token}");
            Ok(())
        }
        TokenAction::List => {
            for t in store.list_tokens().await? {
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else {
                    "live"
                };
                println!(
                    "{}\t{}\t{}\t{}",
                    t.name,
                    state,
                    t.created_at.format("%Y-%m-%dT%H:%M:%SZ"),
                    t.scope,
                );
            }
            Ok(())
        }
        TokenAction::Revoke { name } => {
            store.revoke_token(&name, Utc::now()).await?;
            eprintln!("token {name:?} revoked");
            Ok(())
        }
    }
}
