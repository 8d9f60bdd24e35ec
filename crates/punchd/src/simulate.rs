//! `punchd simulate`: simulated terminals for tests, demos, load, and for users checking an installation.
//! `simulate pull` serves the pull protocol like a terminal; `simulate push` drives a push server with a fleet of
//! realistic push terminals.

/// `punchd simulate` options.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Which simulator.
    #[command(subcommand)]
    pub kind: SimulateKind,
}

/// The simulators.
#[derive(Debug, clap::Subcommand)]
pub enum SimulateKind {
    /// A terminal serving the pull protocol (TCP and UDP on one port).
    Pull {
        /// Port to serve on.
        #[arg(long, default_value_t = 4370)]
        port: u16,
    },
    /// A fleet of push terminals driving a push server.
    Push {
        /// The server, `http://host:port`.
        #[arg(long)]
        server: String,
        /// How many terminals.
        #[arg(long, default_value_t = 1)]
        devices: usize,
    },
}

/// Run a simulator until interrupted (or until its work is done).
pub async fn run(_args: SimulateArgs) -> anyhow::Result<()> {
    anyhow::bail!("punchd simulate is not built yet")
}
