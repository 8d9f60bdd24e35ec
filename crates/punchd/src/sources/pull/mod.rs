//! The pull source: terminals without push firmware, read over TCP/UDP port 4370 with `zk_pull`
//! (shared/protocol/pull.md §5–§9).
//!
//! Submodules in reading order:
//! - [`cursor`]: how far a device's attendance log was read (pure; depends on nothing of punchd).
//! - [`session`]: one verified connection to a registered device: SN check, incremental attendance pull with
//!   raw journaling through `ingest`, safe clear, clock sync, user sync, device info.
//! - [`commands`]: queued commands (`CommandKind`) run on a session, results through the command queue.
//! - [`scheduler`]: one task per approved pull device in `punchd serve` (interval or live), health.
//! - [`oneshot`]: `punchd pull ADDRESS`, a read with no server and no database.
//!
//! This module calls `ingest`, `devices` and `store`; nothing here is called by them, and `web` only sees it
//! through the command queue and the store.

pub mod commands;
pub mod cursor;
pub mod oneshot;
pub mod scheduler;
pub mod session;

use std::time::Duration;

use crate::app::App;
use crate::config::Config;
use crate::format::Format;

/// `punchd pull` options.
#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// Terminal address (IP or host name, optionally with `:port`).
    pub address: String,
    /// Terminal port.
    #[arg(long, default_value_t = 4370)]
    pub port: u16,
    /// Use UDP instead of TCP.
    #[arg(long)]
    pub udp: bool,
    /// Comm key (0 = none).
    #[arg(long, default_value_t = 0)]
    pub comm_key: u32,
    /// IANA zone of the terminal's clock, for the drift shown (default: the configured default zone).
    #[arg(long, env = "PUNCHD_TIME_ZONE", value_name = "ZONE")]
    pub time_zone: Option<String>,
    /// Output format: `table` (info, then the log), `csv` (the log on stdout, the info on stderr) or `json`
    /// (`{"device": {...}, "attendance": [...]}`).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// How the scheduler talks to pull devices. [`PullSettings::default`] is what `punchd serve` uses; tests
/// shorten the waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullSettings {
    /// Time allowed for connecting and for each reply (5 s).
    pub timeout: Duration,
    /// Re-sends of one request after a timeout (2).
    pub retries: u32,
    /// How often a terminal's clock is set even when it looks right (24 h).
    pub time_sync_every: Duration,
    /// Set the clock at once when it is off by more than this many seconds (60).
    pub max_drift_secs: i64,
    /// How often the terminal's users are read into the store besides after user commands (1 h; the first
    /// session of a device always reads them).
    pub users_every: Duration,
    /// How often a live connection is checked with `CMD_GET_TIME` (30 s); each check also refreshes last-seen.
    pub keep_alive_every: Duration,
    /// First wait before reconnecting a live device (1 s); doubles after each failure …
    pub backoff_min: Duration,
    /// … up to this (60 s).
    pub backoff_max: Duration,
    /// How often the scheduler looks for added or changed devices and queued commands (1 s).
    pub check_every: Duration,
}

impl Default for PullSettings {
    fn default() -> PullSettings {
        PullSettings {
            timeout: Duration::from_secs(5),
            retries: 2,
            time_sync_every: Duration::from_secs(24 * 3600),
            max_drift_secs: 60,
            users_every: Duration::from_secs(3600),
            keep_alive_every: Duration::from_secs(30),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            check_every: Duration::from_secs(1),
        }
    }
}

/// Run `punchd pull`: print a terminal's info and attendance log.
///
/// Errors: the terminal cannot be reached, refuses the comm key, or stops answering.
pub async fn run_cli(config: Config, args: PullArgs) -> anyhow::Result<()> {
    oneshot::run(config, args).await
}

/// Start the pull scheduler for the running server with the default settings; returns when `shutdown`
/// resolves. Devices added or changed elsewhere are picked up when the registry refreshes (housekeeping).
pub async fn run_scheduler(app: App, shutdown: impl std::future::Future<Output = ()>) {
    scheduler::run(app, PullSettings::default(), shutdown).await;
}

/// [`run_scheduler`] with explicit settings.
pub async fn run_scheduler_with(
    app: App,
    settings: PullSettings,
    shutdown: impl std::future::Future<Output = ()>,
) {
    scheduler::run(app, settings, shutdown).await;
}
