//! `punchd simulate`: simulated terminals for tests, demos, load, and for users checking an installation.
//! `simulate pull` serves the pull protocol like a terminal (`zk_sim::pull`); `simulate push` drives a push server
//! with a fleet of realistic push terminals (`zk_sim::push`), prints a summary and, given the server's database,
//! checks that every acknowledged punch was stored exactly once.
//!
//! Depends on `zk_sim` and, for the check only, on [`crate::store`]; nothing in the hub depends on this module.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use zk_sim::push::{
    check_device, ExactlyOnce, FleetReport, PunchPlan, PushSimConfig, RequestKind, StoredPunch,
};

use crate::domain::DeviceSn;
use crate::store::sqlite::{Durability, SqliteStore};
use crate::store::{PunchFilter, Store};

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
    /// A terminal serving the pull protocol (TCP and UDP on one port) until Ctrl-C; prints what to try against it.
    Pull(PullSimArgs),
    /// A fleet of push terminals driving a push server (`/iclock`, HTTP/1.1, `Connection: close` per request, as
    /// att firmware sends): handshake, first poll with INFO, OPERLOG users, ATTLOG batches (re-sent until
    /// acknowledged), polls, command results. Prints requests and punches per second and p50/p99 latency per
    /// request kind.
    Push(PushSimArgs),
}

/// `punchd simulate pull` options.
#[derive(Debug, clap::Args)]
pub struct PullSimArgs {
    /// Port to serve on (TCP and UDP).
    #[arg(long, default_value_t = 4370)]
    pub port: u16,
    /// Address to bind.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind: std::net::IpAddr,
    /// Users on the terminal (at most 65534).
    #[arg(long, default_value_t = 500)]
    pub users: usize,
    /// Punches in the terminal's attendance log.
    #[arg(long, default_value_t = 100_000)]
    pub punches: usize,
    /// Fingerprint templates.
    #[arg(long, default_value_t = 50)]
    pub templates: usize,
    /// Comm key clients must authenticate with (0 = none).
    #[arg(long, default_value_t = 0)]
    pub comm_key: u32,
    /// Device family: zk8 (TFT), zk6 (black and white) or zem500.
    #[arg(long, default_value = "zk8")]
    pub profile: String,
    /// While a client listens for live events, a user punches this often (0 = never).
    #[arg(long, default_value_t = 2000)]
    pub live_every_ms: u64,
    /// Seed of the generated users and punches.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The terminal's serial number [default: SIMPULL and the port, e.g. SIMPULL004370, so simulators on
    /// different ports, and the push simulator's SIM0000000001…, never share one; with --port 0,
    /// SIMPULLP and the process id].
    #[arg(long)]
    pub sn: Option<String>,
    /// Send every reply in one write, datagrams back to back (fastest, for benchmarks). By default bulk
    /// transfers are paced so node-zklib and zkteco-js read them (pull-simulator.md §4); pyzk and `punchd pull`
    /// read both.
    #[arg(long)]
    pub no_pacing: bool,
    /// Serve a realistic month (`YYYY-MM`, `zk_sim::month`) instead of generated punches: the terminal becomes
    /// terminal `--month-device` of the simulated site, with its SN, its people and its records.
    #[arg(long)]
    pub month: Option<String>,
    /// With `--month`: which terminal of the site (1 and 2 entrances, 3 the warehouse, whose clock is in
    /// Europe/London).
    #[arg(long, default_value_t = 1)]
    pub month_device: usize,
}

/// `punchd simulate push` options.
#[derive(Debug, clap::Args)]
pub struct PushSimArgs {
    /// The server, `http://host:port`.
    #[arg(long)]
    pub server: String,
    /// How many terminals.
    #[arg(long, default_value_t = 1)]
    pub devices: usize,
    /// Punches per ATTLOG POST.
    #[arg(long, default_value_t = 10)]
    pub punches_per_batch: usize,
    /// ATTLOG batches per terminal (default 10, or unlimited with --duration-secs).
    #[arg(long)]
    pub batches: Option<u64>,
    /// Milliseconds between polls (0: after every batch, back to back when idle).
    #[arg(long, default_value_t = 10_000)]
    pub poll_interval_ms: u64,
    /// Milliseconds between two ATTLOG batches of a terminal (0: back to back, a terminal draining a backlog).
    #[arg(long, default_value_t = 0)]
    pub batch_interval_ms: u64,
    /// Stop after this many seconds (requests in flight finish).
    #[arg(long)]
    pub duration_secs: Option<u64>,
    /// Users (PINs) per terminal; every fifth PIN has leading zeros.
    #[arg(long, default_value_t = 500)]
    pub users: u32,
    /// USER lines uploaded on OPERLOG once after the first handshake (0: none).
    #[arg(long, default_value_t = 10)]
    pub operlog_users: u32,
    /// Re-send every n-th acknowledged batch once more, to exercise dedupe.
    #[arg(long)]
    pub resend_every: Option<u64>,
    /// At most this many requests in flight (one connection each).
    #[arg(long, default_value_t = 64)]
    pub max_in_flight: usize,
    /// Spread the terminals' first requests over this many milliseconds.
    #[arg(long, default_value_t = 0)]
    pub ramp_up_ms: u64,
    /// Serial numbers are this prefix and the terminal's number, 13 characters in all.
    #[arg(long, default_value = "SIM")]
    pub sn_prefix: String,
    /// Punch 0 of every terminal, terminal local time `YYYY-MM-DD HH:MM:SS`; punch n is n seconds later.
    #[arg(long, default_value = "2026-01-05 07:00:00")]
    pub first_punch_at: String,
    /// After the run, read this SQLite database (the server's) and check that every acknowledged punch is stored
    /// exactly once and nothing else is stored for the simulated terminals. Exits non-zero when it does not hold.
    #[arg(long)]
    pub check_database: Option<PathBuf>,
    /// Print the summary as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Upload a realistic month (`YYYY-MM`, `zk_sim::month`: three terminals, teams, breaks, double taps, a
    /// terminal clock in another zone) instead of the fleet's numbered punches; `--seed` varies it.
    #[arg(long)]
    pub month: Option<String>,
    /// Seed of the `--month` data.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// With `--month`: only greet the server (handshake) so it registers the three terminals, and stop; set the
    /// warehouse terminal's zone (`punchd devices set SIMMONTH0003 --time-zone Europe/London`), then upload.
    #[arg(long)]
    pub month_handshake_only: bool,
}

/// Run a simulator until interrupted (or until its work is done).
pub async fn run(args: SimulateArgs) -> anyhow::Result<()> {
    match args.kind {
        SimulateKind::Pull(args) => run_pull(args).await,
        SimulateKind::Push(args) => run_push(args).await,
    }
}

async fn run_pull(args: PullSimArgs) -> anyhow::Result<()> {
    let profile: zk_sim::pull::Profile = args
        .profile
        .parse()
        .map_err(|e| anyhow::anyhow!("--profile: {e}"))?;
    let mut config = zk_sim::pull::PullSimConfig::new(profile);
    config.users = args.users;
    config.punches = args.punches;
    config.templates = args.templates;
    config.comm_key = args.comm_key;
    config.seed = args.seed;
    config.serial_number = match &args.sn {
        Some(sn) => DeviceSn::parse(sn)
            .map_err(|e| anyhow::anyhow!("--sn {sn:?}: {e}"))?
            .to_string(),
        None => default_pull_sn(args.port),
    };
    if args.no_pacing {
        config.pacing = zk_sim::pull::Pacing::none();
    }
    config.live_punch_every =
        (args.live_every_ms > 0).then(|| Duration::from_millis(args.live_every_ms));
    let month = args
        .month
        .as_deref()
        .map(|month| month_scenario(month, args.seed))
        .transpose()?;
    if let Some(month) = &month {
        let device = month
            .devices
            .get(args.month_device.wrapping_sub(1))
            .with_context(|| {
                format!(
                    "--month-device {}: the simulated site has terminals 1 to {}",
                    args.month_device,
                    month.devices.len()
                )
            })?;
        config.serial_number.clone_from(&device.sn);
        config.punches = 0;
        config.users = 0;
    }
    let sim = zk_sim::pull::PullSim::bind(SocketAddr::new(args.bind, args.port), config)
        .await
        .with_context(|| format!("binding {}:{}", args.bind, args.port))?;
    if let Some(month) = &month {
        load_month(&sim.handle(), month, args.month_device - 1);
    }
    let addr = sim.local_addr();
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        addr.ip().to_string()
    };
    let port = addr.port();
    println!(
        "simulated pull terminal {} ({profile}) on {addr}, TCP and UDP: {} users, {} punches, comm key {}",
        sim.handle().config().serial_number,
        args.users,
        args.punches,
        args.comm_key
    );
    println!("try:");
    println!(
        "  punchd pull {host} --port {port} --comm-key {}",
        args.comm_key
    );
    println!(
        "  punchd pull {host} --port {port} --udp --comm-key {}",
        args.comm_key
    );
    println!("  {}", pyzk_command(&host, port, args.comm_key));
    println!("Ctrl-C stops it.");
    sim.run(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .context("serving the pull protocol")
}

/// The default SN of a pull simulator on `port`: 13 characters, distinct per port and from the push
/// simulator's `SIM0000000001`…; on port 0 (any free port) from the process id instead.
fn default_pull_sn(port: u16) -> String {
    if port == 0 {
        format!("SIMPULLP{:05}", std::process::id() % 100_000)
    } else {
        format!("SIMPULL{port:06}")
    }
}

/// A pyzk one-liner reading the simulator. `ommit_ping=True` (pyzk's spelling): without it pyzk first runs
/// `ping`, and `connect()` fails with "can't reach device" where no `ping` binary is installed
/// (pull-simulator.md §2).
fn pyzk_command(host: &str, port: u16, comm_key: u32) -> String {
    format!(
        "python3 -c \"from zk import ZK; c = ZK('{host}', port={port}, password={comm_key}, ommit_ping=True).connect(); \
         print(len(c.get_users()), len(c.get_attendance())); c.disconnect()\""
    )
}

/// `--config`, `--database` and `--listen` are global flags of `punchd`, but no simulator reads them: given on
/// the command line (not through `PUNCHD_*` variables, which may be set for the server), they are a mistake.
///
/// # Errors
/// Names the flag and what to use instead.
pub fn reject_global_flags(
    kind: &SimulateKind,
    config: Option<&std::path::Path>,
    database: Option<&str>,
    listen: Option<&str>,
) -> anyhow::Result<()> {
    let from_env =
        |var: &str, value: &std::ffi::OsStr| std::env::var_os(var).as_deref() == Some(value);
    let (name, instead_listen, instead_database) = match kind {
        SimulateKind::Pull(_) => (
            "pull",
            "--bind and --port",
            "nothing: it serves generated data",
        ),
        SimulateKind::Push(_) => ("push", "--server", "--check-database"),
    };
    if let Some(listen) = listen.filter(|v| !from_env("PUNCHD_LISTEN", v.as_ref())) {
        anyhow::bail!(
            "--listen {listen} does not apply to `punchd simulate {name}` (it uses {instead_listen})"
        );
    }
    if let Some(database) = database.filter(|v| !from_env("PUNCHD_DATABASE", v.as_ref())) {
        anyhow::bail!(
            "--database {database} does not apply to `punchd simulate {name}` (it uses {instead_database})"
        );
    }
    if let Some(config) = config.filter(|v| !from_env("PUNCHD_CONFIG", v.as_os_str())) {
        anyhow::bail!(
            "--config {} does not apply to `punchd simulate {name}` (its flags are all it reads)",
            config.display()
        );
    }
    Ok(())
}

fn push_config(args: &PushSimArgs) -> anyhow::Result<PushSimConfig> {
    let first_punch_at =
        chrono::NaiveDateTime::parse_from_str(&args.first_punch_at, "%Y-%m-%d %H:%M:%S")
            .with_context(|| {
                format!(
                    "--first-punch-at {:?}: expected YYYY-MM-DD HH:MM:SS",
                    args.first_punch_at
                )
            })?;
    if args.punches_per_batch == 0 {
        anyhow::bail!("--punches-per-batch must be at least 1");
    }
    let mut config = PushSimConfig::new(args.server.clone());
    config.devices = args.devices;
    config.sn_prefix.clone_from(&args.sn_prefix);
    config.plan = PunchPlan {
        first_punch_at,
        users: args.users.max(1),
    };
    config.punches_per_batch = args.punches_per_batch;
    config.batches = match (args.batches, args.duration_secs) {
        (Some(k), _) => Some(k),
        (None, Some(_)) => None,
        (None, None) => Some(10),
    };
    config.poll_interval = Duration::from_millis(args.poll_interval_ms);
    config.batch_interval = Duration::from_millis(args.batch_interval_ms);
    config.duration = args.duration_secs.map(Duration::from_secs);
    config.operlog_users = args.operlog_users;
    config.resend_every = args.resend_every;
    config.max_in_flight = args.max_in_flight.max(1);
    config.ramp_up = Duration::from_millis(args.ramp_up_ms);
    Ok(config)
}

async fn run_push(args: PushSimArgs) -> anyhow::Result<()> {
    if let Some(month) = &args.month {
        return run_push_month(&args, month).await;
    }
    let config = push_config(&args)?;
    let plan = config.plan.clone();
    // The fleet runs on its own current-thread runtime: one core drives thousands of connections, and the load
    // generator stays cheap next to the server it measures.
    let report = tokio::task::spawn_blocking(move || -> anyhow::Result<FleetReport> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the simulator runtime")?;
        runtime.block_on(async {
            zk_sim::push::run_fleet(config, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(anyhow::Error::from)
        })
    })
    .await
    .context("simulator thread")??;
    let greeted = report.devices.iter().filter(|d| d.handshaken).count();
    let check = match &args.check_database {
        Some(path) => Some(check_database(path, &plan, &report).await?),
        None => None,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&summary_json(&report, check.as_ref()))?
        );
    } else {
        print_summary(&report, check.as_ref());
    }
    if greeted == 0 && !report.devices.is_empty() {
        let stats = &report.stats;
        let why = match (&stats.first_error, stats.unknown_device) {
            (_, n) if n > 0 => {
                "it answered UNKNOWN DEVICE (approve the terminals: punchd devices approve <SN>)"
                    .to_owned()
            }
            (Some(error), _) => format!("first error: {error}"),
            (None, _) => "no handshake was accepted".to_owned(),
        };
        anyhow::bail!(
            "no terminal was accepted by the server at {}: {why}",
            args.server
        );
    }
    if let Some(check) = check {
        if !check.holds() {
            anyhow::bail!(
                "exactly-once check failed: {} missing, {} duplicated, {} unexpected",
                check.missing,
                check.duplicated,
                check.unexpected
            );
        }
    }
    Ok(())
}

/// `--month YYYY-MM`: the simulated site's month (`zk_sim::month`), with its seed.
fn month_scenario(month: &str, seed: u64) -> anyhow::Result<zk_sim::month::MonthScenario> {
    let config =
        zk_sim::month::MonthConfig::parse(month).map_err(|e| anyhow::anyhow!("--month: {e}"))?;
    let config = zk_sim::month::MonthConfig { seed, ..config };
    zk_sim::month::generate_month(&config).map_err(|e| anyhow::anyhow!("--month: {e}"))
}

/// Give the pull terminal the month's people and the records of terminal `device_idx`.
fn load_month(
    handle: &zk_sim::pull::PullSimHandle,
    month: &zk_sim::month::MonthScenario,
    device_idx: usize,
) {
    for (idx, employee) in month.employees.iter().enumerate() {
        handle.put_user(zk_pull::records::User {
            uid: u16::try_from(idx + 1).unwrap_or(u16::MAX),
            user_id: employee.pin.clone(),
            name: employee.name.clone(),
            privilege: 0,
            password: String::new(),
            group_id: "1".to_owned(),
            card: 0,
        });
    }
    let sn = &month.devices[device_idx].sn;
    for record in month.records_of(sn) {
        handle.add_punch(zk_pull::records::Attendance {
            uid: month
                .employees
                .iter()
                .position(|e| e.pin == record.pin)
                .map_or(0, |idx| (idx + 1) as u16),
            user_id: record.pin.clone(),
            time: record.punched_at,
            status: record.verify_mode,
            punch: record.punch_state,
        });
    }
    let device = &month.devices[device_idx];
    println!(
        "month: terminal {sn} ({}, clock in {}), {} people, {} punches",
        device.place,
        device.zone,
        month.employees.len(),
        month.records_of(sn).count()
    );
}

/// `simulate push --month`: upload the simulated site's month, terminal after terminal.
async fn run_push_month(args: &PushSimArgs, month: &str) -> anyhow::Result<()> {
    let scenario = month_scenario(month, args.seed)?;
    let authority = args
        .server
        .strip_prefix("http://")
        .unwrap_or(&args.server)
        .trim_end_matches('/');
    let addr = tokio::net::lookup_host(authority)
        .await
        .with_context(|| format!("--server {:?}: expected http://host:port", args.server))?
        .next()
        .with_context(|| format!("--server {:?}: no address", args.server))?;
    if args.month_handshake_only {
        let n = zk_sim::month::handshake_month(addr, authority, &scenario)
            .await
            .context("greeting the server")?;
        println!("{n} terminals greeted the server; set their zones, then run again without --month-handshake-only:");
        for device in &scenario.devices {
            println!(
                "  punchd devices set {} --time-zone {}   # {}",
                device.sn, device.zone, device.place
            );
        }
        return Ok(());
    }
    let upload = zk_sim::month::push_month(addr, authority, &scenario, args.punches_per_batch)
        .await
        .context("uploading the month (unapproved terminals? punchd devices approve <SN>)")?;
    println!(
        "month {month}: {} terminals uploaded {} batches, {} of {} punches acknowledged",
        upload.devices,
        upload.batches,
        upload.punches_acked,
        scenario.records.len()
    );
    for device in &scenario.devices {
        println!(
            "  {} ({}): clock in {}",
            device.sn, device.place, device.zone
        );
    }
    Ok(())
}

/// Read every punch the database holds for the fleet's terminals and compare with what they had acknowledged.
async fn check_database(
    path: &std::path::Path,
    plan: &PunchPlan,
    report: &FleetReport,
) -> anyhow::Result<ExactlyOnce> {
    let store = SqliteStore::open(path, Durability::PowerSafe)
        .map_err(|e| anyhow::anyhow!("opening database {}: {e}", path.display()))?;
    let mut total = ExactlyOnce::default();
    for device in &report.devices {
        let sn =
            DeviceSn::parse(&device.sn).map_err(|e| anyhow::anyhow!("SN {:?}: {e}", device.sn))?;
        let filter = PunchFilter {
            device_sn: Some(sn),
            ..PunchFilter::default()
        };
        let stored = store
            .list_punches(&filter)
            .await
            .with_context(|| format!("reading the punches of {}", device.sn))?;
        total.add(check_device(
            plan,
            device,
            stored.into_iter().map(|p| StoredPunch {
                pin: p.pin.0,
                punched_at: p.punched_at,
                punch_state: p.punch_state,
            }),
        ));
    }
    Ok(total)
}

fn summary_json(report: &FleetReport, check: Option<&ExactlyOnce>) -> serde_json::Value {
    let stats = &report.stats;
    let kinds: serde_json::Map<String, serde_json::Value> = RequestKind::ALL
        .iter()
        .map(|kind| {
            let k = stats.kind(*kind);
            (
                kind.name().to_owned(),
                serde_json::json!({
                    "requests": k.requests,
                    "accepted": k.accepted,
                    "refused": k.refused,
                    "transport_errors": k.transport_errors,
                    "per_sec": k.per_second(),
                    "active_secs": k.active_secs,
                    "p50_us": k.latency.percentile_us(0.5),
                    "p99_us": k.latency.percentile_us(0.99),
                    "max_us": k.latency.max_us(),
                    "mean_us": k.latency.mean_us(),
                }),
            )
        })
        .collect();
    let mut all = zk_sim::push::LatencyHistogram::default();
    for kind in &stats.kinds {
        all.merge(&kind.latency);
    }
    let elapsed = report.elapsed.as_secs_f64();
    serde_json::json!({
        "elapsed_secs": elapsed,
        "devices": report.devices.len(),
        "devices_handshaken": report.devices.iter().filter(|d| d.handshaken).count(),
        "requests": stats.requests(),
        "requests_per_sec": if elapsed > 0.0 { stats.requests() as f64 / elapsed } else { 0.0 },
        "p50_us": all.percentile_us(0.5),
        "p99_us": all.percentile_us(0.99),
        "punches_acked": stats.punches_acked,
        "punches_per_sec": stats.punches_per_sec,
        "batches_acked": stats.batches_acked,
        "batches_retried": stats.batches_retried,
        "batches_resent": stats.batches_resent,
        "ack_count_mismatches": stats.ack_count_mismatches,
        "commands_received": stats.commands_received,
        "unknown_device": stats.unknown_device,
        "first_error": stats.first_error,
        "kinds": kinds,
        "exactly_once": check.map(|c| serde_json::json!({
            "holds": c.holds(),
            "acknowledged": c.acknowledged,
            "stored": c.stored,
            "missing": c.missing,
            "duplicated": c.duplicated,
            "unexpected": c.unexpected,
            "stored_unacknowledged": c.stored_unacknowledged,
        })),
    })
}

fn print_summary(report: &FleetReport, check: Option<&ExactlyOnce>) {
    let stats = &report.stats;
    let elapsed = report.elapsed.as_secs_f64();
    println!(
        "{} terminals ({} greeted the server) in {elapsed:.1} s: {} requests ({:.0}/s)",
        report.devices.len(),
        report.devices.iter().filter(|d| d.handshaken).count(),
        stats.requests(),
        if elapsed > 0.0 {
            stats.requests() as f64 / elapsed
        } else {
            0.0
        },
    );
    println!(
        "punches acknowledged: {} ({:.0}/s over the upload window); batches acknowledged {}, retried {}, re-sent on \
         purpose {}; OK:<n> mismatches {}",
        stats.punches_acked,
        stats.punches_per_sec,
        stats.batches_acked,
        stats.batches_retried,
        stats.batches_resent,
        stats.ack_count_mismatches
    );
    println!(
        "{:<10} {:>9} {:>9} {:>8} {:>8} {:>10} {:>9} {:>9} {:>9}",
        "request", "sent", "accepted", "refused", "errors", "per sec", "p50 ms", "p99 ms", "max ms"
    );
    for kind in RequestKind::ALL {
        let k = stats.kind(kind);
        if k.requests == 0 {
            continue;
        }
        println!(
            "{:<10} {:>9} {:>9} {:>8} {:>8} {:>10.0} {:>9.2} {:>9.2} {:>9.2}",
            kind.name(),
            k.requests,
            k.accepted,
            k.refused,
            k.transport_errors,
            k.per_second(),
            k.latency.percentile_us(0.5) as f64 / 1000.0,
            k.latency.percentile_us(0.99) as f64 / 1000.0,
            k.latency.max_us() as f64 / 1000.0,
        );
    }
    if stats.commands_received > 0 {
        println!("commands executed: {}", stats.commands_received);
    }
    if stats.unknown_device > 0 {
        println!(
            "UNKNOWN DEVICE answers: {} (approve the terminals: punchd devices approve <SN>)",
            stats.unknown_device
        );
    }
    if let Some(error) = &stats.first_error {
        println!("first transport error: {error}");
    }
    if let Some(c) = check {
        println!(
            "exactly once: {} — {} acknowledged, {} stored, {} missing, {} duplicated, {} unexpected, {} stored but \
             not acknowledged",
            if c.holds() { "holds" } else { "FAILS" },
            c.acknowledged,
            c.stored,
            c.missing,
            c.duplicated,
            c.unexpected,
            c.stored_unacknowledged
        );
    }
}
