//! The pull source: terminals without push firmware, read over TCP/UDP port 4370 with `zk_pull`.
//!
//! - `punchd pull <addr>`: a one-shot read (info and attendance log), before any server runs.
//! - In `punchd serve`: a scheduler that pulls each approved pull device on its interval (or keeps a live
//!   connection), journals every pulled batch raw, hands it to `ingest`, runs queued commands, and records health.

use crate::app::App;
use crate::config::Config;
use crate::format::Format;

/// `punchd pull` options.
#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// Terminal address (IP or host name).
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
    /// Output format for the attendance log.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Run `punchd pull`.
pub async fn run_cli(_config: Config, _args: PullArgs) -> anyhow::Result<()> {
    anyhow::bail!("punchd pull is not built yet")
}

/// Start the pull scheduler for the running server; returns when `shutdown` resolves.
pub async fn run_scheduler(_app: App, shutdown: impl std::future::Future<Output = ()>) {
    shutdown.await;
}
