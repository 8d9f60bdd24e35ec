//! The pull benchmark's Rust driver (benches/pull/run.sh at the repo root runs it; the results go to
//! BENCHMARKS.md, section "Pull"). Not a criterion bench: the simulator is a separate process shared with pyzk, so the
//! driver times whole operations against it and prints one JSON line for the script.
//!
//! - `pull`: `Client::connect` + `attendance()` + `disconnect()` against a running pull terminal, `--runs` times
//!   after one warm-up: the library time of a whole attendance-log download (`punchd pull` also reads the device
//!   info and clock, and prints).
//! - `ingest`: downloads the log once, then `--runs` times: a fresh SQLite store (power-safe, the default) in a new
//!   directory, `Ingest::ingest` of the whole download as one delivery (built as the pull session builds it:
//!   raw journal entry with the downloaded bytes, the pull cursor as the stamp), then the same delivery again
//!   (every punch a duplicate).
//!
//! Run it through the script; by hand:
//! `cargo bench -p punchd --bench pull -- pull --address 127.0.0.1:4370 --expect 100000 --runs 7`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::Utc;
use clap::Parser;
use punchd::domain::{DeviceSn, Source};
use punchd::ingest::{Delivery, Ingest};
use punchd::metrics::Metrics;
use punchd::sources::pull::cursor::{Cursor, STAMP_TABLE};
use punchd::sources::pull::session::punch_record;
use punchd::store::sqlite::{Durability, SqliteStore};
use punchd::store::{Batch, RawEntry};
use serde_json::json;
use zk_pull::{AttendanceDownload, Client, ClientOptions, Transport};

#[derive(Debug, Parser)]
#[command(about = "pull benchmark driver (see benches/pull/run.sh)")]
struct Args {
    #[command(subcommand)]
    mode: Mode,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, global = true, hide = true)]
    bench: bool,
}

#[derive(Debug, clap::Subcommand)]
enum Mode {
    /// Time whole attendance-log downloads.
    Pull(Target),
    /// Time ingest of one download into a fresh store, and again (all duplicates).
    Ingest {
        #[command(flatten)]
        target: Target,
        /// Directory for the SQLite files (one subdirectory per run, removed after it); must be on a real
        /// disk for power-safe commits to mean anything.
        #[arg(long)]
        work: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
struct Target {
    /// The simulated (or real) terminal, `host:port`.
    #[arg(long)]
    address: SocketAddr,
    /// UDP instead of TCP.
    #[arg(long)]
    udp: bool,
    /// Comm key (0 = none).
    #[arg(long, default_value_t = 0)]
    comm_key: u32,
    /// Timed runs (after one untimed warm-up).
    #[arg(long, default_value_t = 7)]
    runs: usize,
    /// Punches the terminal holds; a download of any other count fails the run.
    #[arg(long)]
    expect: usize,
}

impl Target {
    fn options(&self) -> ClientOptions {
        let mut options = ClientOptions::new(if self.udp {
            Transport::Udp
        } else {
            Transport::Tcp
        });
        options.comm_key = self.comm_key;
        options.timeout = Duration::from_secs(10);
        options
    }

    /// Connect, read the attendance log, disconnect: the unit a pull costs.
    async fn download(&self) -> anyhow::Result<AttendanceDownload> {
        let mut client = Client::connect_with(self.address, self.options())
            .await
            .with_context(|| format!("connecting to {}", self.address))?;
        let download = client
            .attendance()
            .await
            .context("reading the attendance log")?;
        client.disconnect().await.context("disconnecting")?;
        if download.records.len() != self.expect || !download.errors.is_empty() {
            bail!(
                "read {} punches ({} undecoded), expected {}",
                download.records.len(),
                download.errors.len(),
                self.expect
            );
        }
        Ok(download)
    }
}

/// Per thread of this process: (CPU time, time spent runnable but waiting for a core), from Linux
/// `/proc/self/task/*/schedstat` (nanoseconds); empty where that is not readable. Wall time alone mixes in waiting
/// for a core that another process holds, which on a shared 2-core machine is most of the noise; the wait says
/// how much of that a run suffered.
fn sched_times() -> HashMap<u64, (u64, u64)> {
    let mut out = HashMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in tasks.flatten() {
        let Some(tid) = task
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<u64>().ok())
        else {
            continue;
        };
        // A thread may exit between the listing and the read (a dropped store's writer): skip it.
        let Ok(stat) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        let mut fields = stat.split_whitespace().map(str::parse::<u64>);
        if let (Some(Ok(cpu)), Some(Ok(wait))) = (fields.next(), fields.next()) {
            out.insert(tid, (cpu, wait));
        }
    }
    out
}

/// Wall time, CPU time and run-queue wait of one timed operation.
struct Timer {
    wall: Instant,
    sched: HashMap<u64, (u64, u64)>,
}

/// What a [`Timer`] measured.
struct Timing {
    wall: Duration,
    /// CPU time of the threads alive at the end (threads that exited meanwhile are not counted).
    cpu: Duration,
    /// Time those threads were ready to run but waited for a core.
    wait: Duration,
}

impl Timer {
    fn start() -> Timer {
        Timer {
            sched: sched_times(),
            wall: Instant::now(),
        }
    }

    fn stop(self) -> Timing {
        let wall = self.wall.elapsed();
        let (mut cpu, mut wait) = (0u64, 0u64);
        for (tid, (cpu_after, wait_after)) in sched_times() {
            let (cpu_before, wait_before) = self.sched.get(&tid).copied().unwrap_or((0, 0));
            cpu += cpu_after.saturating_sub(cpu_before);
            wait += wait_after.saturating_sub(wait_before);
        }
        Timing {
            wall,
            cpu: Duration::from_nanos(cpu),
            wait: Duration::from_nanos(wait),
        }
    }
}

fn walls(timings: &[Timing]) -> Vec<Duration> {
    timings.iter().map(|t| t.wall).collect()
}

fn cpus(timings: &[Timing]) -> Vec<Duration> {
    timings.iter().map(|t| t.cpu).collect()
}

fn waits(timings: &[Timing]) -> Vec<Duration> {
    timings.iter().map(|t| t.wait).collect()
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Median, min and max in milliseconds (the median of an even count is the mean of the middle two).
fn summary(times: &[Duration]) -> serde_json::Value {
    let mut ms: Vec<f64> = times.iter().copied().map(millis).collect();
    ms.sort_by(f64::total_cmp);
    let n = ms.len();
    let median = match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => ms[n / 2],
        _ => (ms[n / 2 - 1] + ms[n / 2]) / 2.0,
    };
    json!({
        "median_ms": median,
        "min_ms": ms.first().copied().unwrap_or(f64::NAN),
        "max_ms": ms.last().copied().unwrap_or(f64::NAN),
        "runs_ms": ms,
    })
}

fn first_last(download: &AttendanceDownload) -> serde_json::Value {
    let record = |r: Option<&zk_pull::records::Attendance>| {
        r.map(|r| {
            json!({
                "uid": r.uid,
                "pin": r.user_id,
                "time": r.time.format("%Y-%m-%dT%H:%M:%S").to_string(),
                "verify_mode": r.status,
                "punch_state": r.punch,
            })
        })
    };
    json!({
        "count": download.records.len(),
        "first": record(download.records.first()),
        "last": record(download.records.last()),
    })
}

async fn run_pull(target: &Target) -> anyhow::Result<serde_json::Value> {
    let warm = target.download().await.context("warm-up")?;
    let mut timings = Vec::with_capacity(target.runs);
    for _ in 0..target.runs {
        let timer = Timer::start();
        let download = target.download().await?;
        timings.push(timer.stop());
        drop(download);
    }
    Ok(json!({
        "mode": "pull",
        "transport": if target.udp { "udp" } else { "tcp" },
        "punches": warm.records.len(),
        "raw_bytes": warm.raw.len(),
        "records": first_last(&warm),
        "time": summary(&walls(&timings)),
        "cpu": summary(&cpus(&timings)),
        "runqueue_wait": summary(&waits(&timings)),
    }))
}

/// One delivery of the whole download, as `sources::pull::session` builds it for a device's first pull.
fn delivery(download: &AttendanceDownload, address: SocketAddr) -> anyhow::Result<Delivery> {
    let sn = DeviceSn::parse("PULLBENCH0001").map_err(|e| anyhow::anyhow!("bench SN: {e}"))?;
    let raw = RawEntry {
        received_at: Utc::now(),
        device_sn: Some(sn.clone()),
        source: Source::Pull,
        kind: STAMP_TABLE.to_owned(),
        request: format!(
            "pull attendance log from {address} ({} records, {} new)",
            download.records.len(),
            download.records.len()
        ),
        remote_addr: Some(address.to_string()),
        body: download.raw.clone(),
        errors: Vec::new(),
    };
    let mut batch = Batch::new(raw);
    batch.stamp = Some((
        sn.clone(),
        STAMP_TABLE.to_owned(),
        Cursor::after(&download.records).encode(),
    ));
    Ok(Delivery {
        device_sn: sn,
        time_zone: chrono_tz::Asia::Shanghai,
        source: Source::Pull,
        punches: download
            .records
            .iter()
            .enumerate()
            .map(|(idx, r)| punch_record(r, idx + 1))
            .collect(),
        batch,
    })
}

async fn run_ingest(target: &Target, work: &std::path::Path) -> anyhow::Result<serde_json::Value> {
    let download = target.download().await?;
    let n = download.records.len();
    let delivery = delivery(&download, target.address)?;
    let mut fresh = Vec::with_capacity(target.runs);
    let mut again = Vec::with_capacity(target.runs);
    // Run 0 is the warm-up.
    for run in 0..=target.runs {
        let dir = work.join(format!("ingest-{run}"));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        let store = SqliteStore::open(&dir.join("punchd.db"), Durability::PowerSafe)
            .context("opening a fresh store")?;
        let ingest = Ingest::new(Arc::new(store), Arc::new(Metrics::new()));
        // The clone is made before the clock starts: a source hands over a delivery it already owns.
        let first = delivery.clone();
        let timer = Timer::start();
        let outcome = ingest.ingest(first).await.context("first ingest")?;
        let fresh_time = timer.stop();
        if outcome.n_stored != n || outcome.n_duplicate != 0 {
            bail!(
                "first ingest stored {} and found {} duplicates of {n}",
                outcome.n_stored,
                outcome.n_duplicate
            );
        }
        let second = delivery.clone();
        let timer = Timer::start();
        let outcome = ingest.ingest(second).await.context("second ingest")?;
        let again_time = timer.stop();
        if outcome.n_stored != 0 || outcome.n_duplicate != n {
            bail!(
                "re-ingest stored {} and found {} duplicates of {n}",
                outcome.n_stored,
                outcome.n_duplicate
            );
        }
        drop(ingest);
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        if run > 0 {
            fresh.push(fresh_time);
            again.push(again_time);
        }
    }
    let rate = |timings: &[Timing]| {
        let s = summary(&walls(timings));
        let median_ms = s["median_ms"].as_f64().unwrap_or(f64::NAN);
        json!({
            "time": s,
            "cpu": summary(&cpus(timings)),
            "runqueue_wait": summary(&waits(timings)),
            "punches_per_s": n as f64 / (median_ms / 1000.0),
        })
    };
    Ok(json!({
        "mode": "ingest",
        "punches": n,
        "durability": "power-safe",
        "fresh": rate(&fresh),
        "duplicates": rate(&again),
    }))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // One thread: a download is one sequential conversation, and the SQLite writer has its own thread anyway.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting tokio")?;
    let report = runtime.block_on(async {
        match &args.mode {
            Mode::Pull(target) => run_pull(target).await,
            Mode::Ingest { target, work } => run_ingest(target, work).await,
        }
    })?;
    println!("PULLBENCH_JSON {report}");
    Ok(())
}
