//! Run a simulated pull terminal until Ctrl-C, for manual checks and for tests/conformance/pyzk_matrix.py:
//!
//! ```text
//! cargo run -p zk-sim --example pull_sim -- --port 4370 --users 500 --punches 100000 \
//!     [--comm-key K] [--profile zk8|zk6|zem500] [--live-every-ms 2000] [--seed N] [--frame-gap-ms 15]
//! ```
//!
//! `punchd simulate pull` is the supported front end; this example only parses `--name value` pairs.

use std::time::Duration;

use zk_sim::pull::{Profile, PullSimConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = PullSimConfig::new(Profile::Zk8);
    config.live_punch_every = Some(Duration::from_secs(2));
    let mut port: u16 = 4370;
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let (name, value) = match pair {
            [name, value] => (name.as_str(), value.as_str()),
            _ => return Err(format!("{pair:?}: expected --name value pairs").into()),
        };
        match name {
            "--port" => port = value.parse()?,
            "--users" => config.users = value.parse()?,
            "--punches" => config.punches = value.parse()?,
            "--templates" => config.templates = value.parse()?,
            "--comm-key" => config.comm_key = value.parse()?,
            "--seed" => config.seed = value.parse()?,
            "--profile" => {
                config.profile = value.parse::<Profile>()?;
                config.platform = config.profile.default_platform().to_owned();
            }
            "--live-every-ms" => {
                let ms: u64 = value.parse()?;
                config.live_punch_every = (ms > 0).then(|| Duration::from_millis(ms));
            }
            "--frame-gap-ms" => config.faults.frame_gap = Duration::from_millis(value.parse()?),
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let sim = zk_sim::pull::PullSim::bind(addr, config).await?;
        println!(
            "simulated pull terminal on {} (TCP and UDP); Ctrl-C stops it",
            sim.local_addr()
        );
        sim.run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
    })?;
    Ok(())
}
