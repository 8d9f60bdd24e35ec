//! `punchd agent`: the edge agent. It runs next to terminals the hub cannot reach (a Raspberry Pi beside a
//! TX628), pulls them with the same scheduler `punchd serve` uses, keeps everything in its own SQLite file first
//! (the same store and `ingest` as the hub), and forwards to the hub's agent API over HTTPS.
//!
//! Submodules in reading order:
//! - [`wire`]: the agent API's JSON bodies (shared with `web::agent_api`; no IO).
//! - [`spec`]: `--device SN@host:port,…` values (pure).
//! - [`client`]: the HTTPS client of the hub (reqwest + rustls).
//! - [`forward`]: the persisted per-device state machine (stored → sent → acknowledged), gap alarms.
//!
//! This module calls `app`, `store`, `sources::pull` and `web` (for the optional local push endpoint); nothing
//! calls it but the CLI.

pub mod client;
pub mod forward;
pub mod spec;
pub mod wire;

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::app::App;
use crate::config::Config;
use crate::domain::{Approval, DeviceSn};
use crate::sources::pull::session::backoff;
use crate::sources::pull::PullSettings;
use client::HubClient;
use forward::Step;
use wire::{AlarmReport, Backlog, Hello, HelloDevice};

/// `punchd agent` options. The agent's own SQLite file is the global `--database`; `[[devices]]` of the global
/// `--config` file are pulled as well as every `--device`.
#[derive(Debug, Clone, clap::Args)]
pub struct AgentArgs {
    /// The hub, `https://hub.example.com` (`http://` only for tests on one machine).
    #[arg(long, env = "PUNCHD_AGENT_HUB", value_name = "URL")]
    pub hub: String,
    /// The agent token `punchd agents add` printed on the hub.
    #[arg(
        long,
        env = "PUNCHD_AGENT_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: String,
    /// The site this agent writes for; must be the site the hub registered the token for.
    #[arg(long, env = "PUNCHD_AGENT_SITE")]
    pub site: String,
    /// A pull terminal: `SN@host[:port][,comm_key=K][,interval=SECS][,udp][,tz=ZONE]` (repeat for more).
    #[arg(long = "device", value_name = "SPEC")]
    pub devices: Vec<String>,
    /// Also serve the push protocol (`/iclock`) for LAN push terminals on this address (`0.0.0.0:8080`).
    #[arg(long, value_name = "IP:PORT")]
    pub push_listen: Option<String>,
    /// A PEM file with the CA that signed the hub's certificate (besides the usual web PKI roots).
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// IANA zone of the terminals' clocks when a device gives none [default: this machine's zone].
    #[arg(long, env = "PUNCHD_TIME_ZONE", value_name = "ZONE")]
    pub time_zone: Option<String>,
    /// Punches per batch sent to the hub.
    #[arg(long, default_value_t = 5000)]
    pub batch_size: usize,
    /// Seconds between checks that the hub still holds what it acknowledged.
    #[arg(long, default_value_t = 60)]
    pub verify_every: u64,
    /// Longest sleep, seconds, when the hub or a terminal stays unreachable (waits double from 1 s up to this).
    #[arg(long, default_value_t = 600)]
    pub max_backoff: u64,
    /// Seconds a request to the hub may take.
    #[arg(long, default_value_t = 60)]
    pub request_timeout: u64,
}

/// How often an idle agent looks for new punches.
const IDLE_WAIT: Duration = Duration::from_millis(500);
/// How often the backlog sent to the hub is measured (it reads the whole local punch table).
const BACKLOG_EVERY: Duration = Duration::from_secs(10);

/// Run the agent until Ctrl-C or SIGTERM.
///
/// Errors: a bad `--device`, the database cannot be opened or is used by another process, the hub refuses the
/// token or the site (checked at the first contact; an unreachable hub is waited for, not an error).
pub async fn run(
    mut config: Config,
    args: AgentArgs,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    if let Some(zone) = &args.time_zone {
        config.default_time_zone = crate::config::parse_time_zone(zone)?;
    }
    for spec in &args.devices {
        let mut device = spec::parse_device_spec(spec)?;
        device.site = Some(args.site.clone());
        config.devices.push(device);
    }
    let _lock = crate::instance_lock::acquire(&config.database)?;
    let max_backoff = Duration::from_secs(args.max_backoff.max(1));
    let hub = HubClient::new(
        &args.hub,
        &args.token,
        args.ca_cert.as_deref(),
        Duration::from_secs(args.request_timeout.max(1)),
    )?;
    let push_listener = match &args.push_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening for push terminals on {addr}"))?,
        ),
        None => None,
    };
    let app = App::open(config).await?;
    // The agent's SQLite file is locked to this process: leases of an earlier run that died are free at once.
    crate::leases::free_leftovers(app.store.as_ref()).await?;
    tracing::info!(
        hub = %args.hub,
        site = %args.site,
        database = %app.config.database.display(),
        devices = app.registry.devices_where(|d| d.approval == Approval::Approved).len(),
        "punchd agent is running"
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |rx: &tokio::sync::watch::Receiver<bool>| {
        let mut rx = rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let housekeeping = tokio::spawn(app.clone().run_housekeeping(stopped(&stop_rx)));
    let settings = PullSettings {
        backoff_max: max_backoff,
        ..PullSettings::default()
    };
    let pull = tokio::spawn(crate::sources::pull::run_scheduler_with(
        app.clone(),
        settings,
        stopped(&stop_rx),
    ));
    let push = push_listener
        .map(|listener| tokio::spawn(crate::web::serve(listener, app.clone(), stopped(&stop_rx))));
    let forwarding = tokio::spawn(forward_loop(app.clone(), hub, args, stopped(&stop_rx)));
    shutdown.await;
    tracing::info!("agent shutting down");
    let _ = stop_tx.send(true);
    let result = forwarding.await.context("the forwarding task failed")?;
    let _ = housekeeping.await;
    let _ = pull.await;
    if let Some(push) = push {
        let _ = push.await;
    }
    // The push stamps the SQLite writer still holds (store/sqlite/held_stamps.rs).
    if let Err(e) = app.store.write_held().await {
        tracing::warn!(error = %e, "could not write the last push stamps; terminals will send their last uploads again");
    }
    result
}

/// The devices to forward: every approved device of the agent's store.
async fn devices(app: &App) -> anyhow::Result<Vec<crate::domain::Device>> {
    Ok(app
        .store
        .list_devices()
        .await?
        .into_iter()
        .filter(|d| d.approval == Approval::Approved)
        .collect())
}

/// Say hello, check the site, reconcile every device, report alarms the hub has not taken.
async fn verify(app: &App, hub: &HubClient, args: &AgentArgs) -> anyhow::Result<HashSet<DeviceSn>> {
    let devices = devices(app).await?;
    let (count, oldest_at) = app.store.outbound_backlog().await?;
    let hello = Hello {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        devices: devices
            .iter()
            .map(|d| HelloDevice {
                sn: d.sn.to_string(),
                time_zone: Some(
                    d.time_zone
                        .clone()
                        .unwrap_or_else(|| app.config.default_time_zone.name().to_owned()),
                ),
            })
            .collect(),
        backlog: Backlog { count, oldest_at },
    };
    let reply = hub.hello(&hello).await?;
    if reply.site != args.site {
        anyhow::bail!(
            "the hub registered this agent's token ({:?}) for site {:?}, not {:?}",
            reply.agent,
            reply.site,
            args.site
        );
    }
    for status in &reply.devices {
        forward::reconcile(app, status).await?;
    }
    let alarms: Vec<_> = app
        .store
        .agent_alarms(0, 100)
        .await?
        .into_iter()
        .filter(|a| a.reported_at.is_none())
        .collect();
    if !alarms.is_empty() {
        let reports: Vec<AlarmReport> = alarms
            .iter()
            .map(|a| AlarmReport {
                device_sn: a.device_sn.as_ref().map(ToString::to_string),
                kind: a.kind.clone(),
                message: a.message.clone(),
                raised_at: a.raised_at,
            })
            .collect();
        hub.report_alarms(&reports).await?;
        app.store
            .mark_alarms_reported(alarms.iter().map(|a| a.id).collect(), chrono::Utc::now())
            .await?;
    }
    Ok(devices.into_iter().map(|d| d.sn).collect())
}

/// Forward until `shutdown`: verify at the start, after every failure and every `--verify-every` seconds; in
/// between send batches device by device. A failure (hub or terminal unreachable, hub refusing) backs off,
/// doubling from 1 s up to `--max-backoff`, logging the reason and the wait. A refusal (wrong token or site) is
/// logged as an error and retried the same way, so fixing it on the hub needs no restart of the agent.
async fn forward_loop(
    app: App,
    hub: HubClient,
    args: AgentArgs,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    let verify_every = Duration::from_secs(args.verify_every.max(1));
    let max_backoff = Duration::from_secs(args.max_backoff.max(1));
    let batch_size = args.batch_size.max(1);
    let mut known: Option<(HashSet<DeviceSn>, Instant)> = None;
    let mut backlog: Option<(Backlog, Instant)> = None;
    let mut failures = 0u32;
    let mut watermarks: std::collections::HashMap<DeviceSn, Option<chrono::DateTime<chrono::Utc>>> =
        std::collections::HashMap::new();
    loop {
        let result: anyhow::Result<bool> = async {
            let devices = match &known {
                Some((devices, at)) if at.elapsed() < verify_every => devices.clone(),
                _ => {
                    let devices = verify(&app, &hub, &args).await?;
                    known = Some((devices.clone(), Instant::now()));
                    devices
                }
            };
            // A device added since the last hello (a push terminal that just appeared) is named first.
            let current = crate::agent::devices(&app).await?;
            if current.iter().any(|d| !devices.contains(&d.sn)) {
                known = None;
                return Ok(true);
            }
            let measured = match backlog {
                Some((b, at)) if at.elapsed() < BACKLOG_EVERY => Some(b),
                _ => {
                    let (count, oldest_at) = app.store.outbound_backlog().await?;
                    let b = Backlog { count, oldest_at };
                    backlog = Some((b, Instant::now()));
                    Some(b)
                }
            };
            let mut progressed = false;
            let mut sorted: Vec<&DeviceSn> = devices.iter().collect();
            sorted.sort();
            for sn in sorted {
                let watermark = watermarks.entry(sn.clone()).or_default();
                match forward::step(&app, &hub, sn, batch_size, measured, watermark).await? {
                    Step::Idle => {}
                    Step::Sent(n) => {
                        tracing::debug!(sn = %sn, n, "batch acknowledged");
                        progressed = true;
                    }
                    Step::Rewound => {
                        progressed = true;
                    }
                }
            }
            Ok(progressed)
        }
        .await;
        let wait = match result {
            Ok(true) => {
                failures = 0;
                Duration::ZERO
            }
            Ok(false) => {
                failures = 0;
                IDLE_WAIT
            }
            Err(e) => {
                let refused = e.chain().any(|c| {
                    c.downcast_ref::<client::HubError>()
                        .is_some_and(|h| !h.is_transient())
                });
                failures += 1;
                known = None;
                let wait = backoff(failures, Duration::from_secs(1), max_backoff);
                if refused {
                    tracing::error!(reason = %format!("{e:#}"), wait_secs = wait.as_secs(), "the hub refused the agent; will try again");
                } else if wait >= max_backoff {
                    tracing::warn!(reason = %format!("{e:#}"), sleep_secs = wait.as_secs(), "forwarding failed again; sleeping");
                } else {
                    tracing::warn!(reason = %format!("{e:#}"), wait_secs = wait.as_secs(), "forwarding failed; backing off");
                }
                wait
            }
        };
        if wait.is_zero() {
            // Let the shutdown signal in between batches.
            tokio::select! {
                biased;
                () = &mut shutdown => return Ok(()),
                () = tokio::task::yield_now() => {}
            }
        } else {
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}
