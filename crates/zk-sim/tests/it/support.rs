//! Starting and stopping a simulator on 127.0.0.1:0.

use chrono::{NaiveDate, NaiveDateTime};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use zk_sim::pull::{PullSim, PullSimConfig, PullSimHandle};

/// A simulator running in a background task; stopped when dropped.
pub struct Running {
    pub handle: PullSimHandle,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Running {
    pub fn addr(&self) -> std::net::SocketAddr {
        self.handle.local_addr()
    }

    /// Stop the simulator and wait for it to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The fixed end of generated logs in tests, so the data does not depend on today's date.
pub fn until() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 3, 6)
        .and_then(|d| d.and_hms_opt(18, 30, 0))
        .unwrap()
}

pub async fn start(config: PullSimConfig) -> Running {
    let sim = PullSim::bind("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let handle = sim.handle();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(sim.run(async {
        let _ = stopped.await;
    }));
    Running {
        handle,
        stop: Some(stop),
        task: Some(task),
    }
}
