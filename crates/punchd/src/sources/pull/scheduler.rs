//! The pull scheduler of `punchd serve`: one task per approved pull device (so never two sessions against one
//! terminal at once), started, restarted and stopped as the registry changes.
//!
//! A device with an interval is pulled every `pull_interval_secs`; commands queued for it meanwhile run in a
//! short session at once. A device with interval 0 keeps a live connection (`CMD_REG_EVENT`): each punch is
//! stored as it happens, and after a lost connection it reconnects with backoff and catches up from the log.
//!
//! With several instances on one PostgreSQL, every instance runs a task per pull device but only the one holding
//! the terminal's lease (`pull:<SN>`, [`crate::leases`]) connects to it; the others wait until the lease is released
//! (a clean stop) or expires (a crash). A task that loses the lease drops its session at once.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use zk_pull::records::AttendanceEvent;

use super::commands::run_queued;
use super::session::{backoff, DeviceState, Session, SessionError};
use super::PullSettings;
use crate::app::App;
use crate::devices::registry::Entry;
use crate::domain::{Approval, Device, DeviceSn, Source, Transport};
use crate::ingest::Delivery;
use crate::leases::Held;
use crate::store::{Batch, RawEntry};

/// The settings a device task was started with; any change restarts the task.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TaskKey {
    address: Option<String>,
    transport: Transport,
    comm_key: Option<u32>,
    interval: Option<u32>,
    clear_after_pull: bool,
    time_zone: Option<String>,
}

impl TaskKey {
    fn of(device: &Device) -> TaskKey {
        TaskKey {
            address: device.address.clone(),
            transport: device.transport,
            comm_key: device.comm_key,
            interval: device.pull_interval_secs,
            clear_after_pull: device.clear_after_pull,
            time_zone: device.time_zone.clone(),
        }
    }
}

struct DeviceTask {
    key: TaskKey,
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

fn is_pulled(device: &Device) -> bool {
    matches!(device.transport, Transport::Tcp | Transport::Udp)
        && device.approval == Approval::Approved
        && device.address.is_some()
}

/// Run until `shutdown` resolves; then stop every device task (each finishes its current exchange).
pub async fn run(app: App, settings: PullSettings, shutdown: impl Future<Output = ()>) {
    let settings = Arc::new(settings);
    let mut tasks: HashMap<DeviceSn, DeviceTask> = HashMap::new();
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(settings.check_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = tick.tick() => {}
        }
        let wanted: HashMap<DeviceSn, Device> = app
            .registry
            .devices_where(is_pulled)
            .into_iter()
            .map(|d| (d.sn.clone(), d))
            .collect();
        let mut previous: HashMap<DeviceSn, JoinHandle<()>> = HashMap::new();
        let stale: Vec<DeviceSn> = tasks
            .iter()
            .filter(|(sn, task)| {
                task.handle.is_finished()
                    || wanted.get(*sn).is_none_or(|d| TaskKey::of(d) != task.key)
            })
            .map(|(sn, _)| sn.clone())
            .collect();
        for sn in stale {
            if let Some(task) = tasks.remove(&sn) {
                let _ = task.stop.send(true);
                // A restarted device's new task waits for this one to end before its first session.
                previous.insert(sn, task.handle);
            }
        }
        for (sn, device) in wanted {
            if tasks.contains_key(&sn) {
                continue;
            }
            let (stop, stop_rx) = watch::channel(false);
            let key = TaskKey::of(&device);
            let old = previous.remove(&sn);
            let handle = tokio::spawn(run_device(
                app.clone(),
                settings.clone(),
                sn.clone(),
                stop_rx,
                old,
            ));
            tracing::info!(sn = %sn, address = ?device.address, interval = ?device.pull_interval_secs, "pulling device");
            tasks.insert(sn, DeviceTask { key, stop, handle });
        }
    }
    for task in tasks.values() {
        let _ = task.stop.send(true);
    }
    let grace = settings.timeout.saturating_mul(4);
    for (sn, task) in tasks {
        let abort = task.handle.abort_handle();
        if tokio::time::timeout(grace, task.handle).await.is_err() {
            tracing::warn!(sn = %sn, "pull session did not end in time; abandoned at shutdown");
            abort.abort();
        }
    }
}

/// Record the outcome of a session: success sets last-seen and clears the error.
async fn record_health(app: &App, sn: &DeviceSn, result: &Result<Option<i64>, SessionError>) {
    let (error, drift) = match result {
        Ok(drift) => (None, *drift),
        Err(e) => (Some(e.to_string()), None),
    };
    if let Some(error) = &error {
        tracing::warn!(sn = %sn, %error, "pull failed");
    }
    if let Err(e) = app
        .store
        .record_device_health(sn, Utc::now(), error, drift)
        .await
    {
        tracing::warn!(sn = %sn, error = %e, "recording device health failed");
    }
}

/// A scheduled session: read the log (clearing it when the device says so), set the clock when due, run
/// queued commands, read the users.
async fn full_session(
    app: &App,
    settings: &PullSettings,
    device: Device,
    state: &mut DeviceState,
) -> Result<Option<i64>, SessionError> {
    let clear = device.clear_after_pull;
    let mut session = Session::open(app, settings, device).await?;
    let result = async {
        session.measure_drift().await?;
        session.pull_attendance_scheduled(clear, state).await?;
        session.sync_time_if_due(state).await?;
        run_queued(&mut session, state).await?;
        session.sync_users_if_due(state).await?;
        Ok::<_, SessionError>(())
    }
    .await;
    let closed = session.close().await;
    result?;
    closed
}

/// A session for commands queued between scheduled pulls.
async fn commands_session(
    app: &App,
    settings: &PullSettings,
    device: Device,
    state: &mut DeviceState,
) -> Result<Option<i64>, SessionError> {
    let mut session = Session::open(app, settings, device).await?;
    let result = async {
        session.measure_drift().await?;
        run_queued(&mut session, state).await?;
        session.sync_users_if_due(state).await?;
        Ok::<_, SessionError>(())
    }
    .await;
    let closed = session.close().await;
    result?;
    closed
}

async fn run_device(
    app: App,
    settings: Arc<PullSettings>,
    sn: DeviceSn,
    mut stop: watch::Receiver<bool>,
    previous: Option<JoinHandle<()>>,
) {
    if let Some(previous) = previous {
        let _ = previous.await;
    }
    let Some(entry) = app.registry.get(&sn) else {
        return;
    };
    let lease_name = format!("pull:{sn}");
    let mut state = DeviceState::default();
    loop {
        // Several instances on one PostgreSQL each run this task; only the holder of the terminal's lease talks
        // to it. Losing the lease ends the session at once, before it writes more.
        let Some(held) = wait_for_lease(&app, &settings, &sn, &lease_name, &mut stop).await else {
            return;
        };
        tokio::select! {
            () = pull_while_held(&app, &settings, &entry, &mut state, &mut stop) => {
                held.release().await;
                return;
            }
            () = held.lost() => {
                tracing::warn!(sn = %sn, "this instance lost the terminal's lease; another instance pulls it now");
            }
        }
    }
}

/// Wait until this instance holds the terminal's lease; `None` when stopped first.
async fn wait_for_lease(
    app: &App,
    settings: &PullSettings,
    sn: &DeviceSn,
    lease_name: &str,
    stop: &mut watch::Receiver<bool>,
) -> Option<Held> {
    let mut waiting = false;
    loop {
        if *stop.borrow() {
            return None;
        }
        match app.leases.try_hold(app.store.clone(), lease_name).await {
            Ok(Some(held)) => {
                let lease = held.lease();
                tracing::info!(sn = %sn, holder = %lease.holder, generation = lease.generation, "this instance holds the terminal's lease and pulls it");
                return Some(held);
            }
            Ok(None) => {
                if !waiting {
                    tracing::info!(sn = %sn, "another instance pulls this terminal; waiting for its lease");
                    waiting = true;
                }
            }
            Err(e) => {
                tracing::warn!(sn = %sn, error = %e, "taking the terminal's lease failed; will retry")
            }
        }
        tokio::select! {
            changed = stop.changed() => if changed.is_err() { return None; },
            () = tokio::time::sleep(app.leases.poll_every.max(settings.check_every)) => {}
        }
    }
}

/// Pull the terminal (live or on its interval) until stopped; the caller holds the terminal's lease.
async fn pull_while_held(
    app: &App,
    settings: &PullSettings,
    entry: &Entry,
    state: &mut DeviceState,
    stop: &mut watch::Receiver<bool>,
) {
    let sn = entry.device().sn.clone();
    if entry.device().pull_interval_secs == Some(0) {
        run_live(app, settings, entry, state, stop).await;
        return;
    }
    while !*stop.borrow() {
        let result = full_session(app, settings, entry.device(), state).await;
        let mut commands_failed = result.is_err();
        record_health(app, &sn, &result).await;
        let every = u64::from(entry.device().pull_interval_secs.unwrap_or(300).max(1));
        let next = Instant::now() + Duration::from_secs(every);
        loop {
            let now = Instant::now();
            if now >= next {
                break;
            }
            tokio::select! {
                _ = stop.changed() => return,
                () = tokio::time::sleep(settings.check_every.min(next - now)) => {}
            }
            if !commands_failed && entry.may_have_commands() && Instant::now() < next {
                let result = commands_session(app, settings, entry.device(), state).await;
                commands_failed = result.is_err();
                record_health(app, &sn, &result).await;
            }
        }
    }
}

/// Why the live loop stopped listening.
enum Pause {
    Stop,
    Maintain,
}

/// Keep a live connection until stopped; reconnect with backoff.
async fn run_live(
    app: &App,
    settings: &PullSettings,
    entry: &Entry,
    state: &mut DeviceState,
    stop: &mut watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    loop {
        if *stop.borrow() {
            return;
        }
        let device = entry.device();
        let sn = device.sn.clone();
        let result = live_session(app, settings, entry, device, state, stop, &mut failures).await;
        match result {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => {
                failures = failures.saturating_add(1);
                record_health(app, &sn, &Err(e)).await;
            }
        }
        let wait = backoff(failures.max(1), settings.backoff_min, settings.backoff_max);
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// One live connection: catch up from the log, then store punches as they happen. `Ok(true)` when stopped,
/// `Ok(false)` to reconnect (after a reboot).
async fn live_session(
    app: &App,
    settings: &PullSettings,
    entry: &Entry,
    device: Device,
    state: &mut DeviceState,
    stop: &mut watch::Receiver<bool>,
    failures: &mut u32,
) -> Result<bool, SessionError> {
    let clear = device.clear_after_pull;
    let sn = device.sn.clone();
    let mut session = Session::open(app, settings, device).await?;
    let result = async {
        session.measure_drift().await?;
        session.pull_attendance_scheduled(clear, state).await?;
        session.sync_time_if_due(state).await?;
        run_queued(&mut session, state).await?;
        session.sync_users_if_due(state).await?;
        *failures = 0;
        record_health(app, &sn, &Ok(session.drift_secs)).await;
        listen(&mut session, entry, state, stop).await
    }
    .await;
    let closed = session.close().await;
    let stopped = result?;
    closed?;
    Ok(stopped)
}

async fn listen(
    session: &mut Session<'_>,
    entry: &Entry,
    state: &mut DeviceState,
    stop: &mut watch::Receiver<bool>,
) -> Result<bool, SessionError> {
    let settings = session.settings;
    loop {
        let app = session.app;
        let (sn, tz, address) = (session.sn().clone(), session.tz, session.address.clone());
        let Some(client) = session.client.as_mut() else {
            // A reboot closed the connection: reconnect.
            return Ok(false);
        };
        let mut events = client.live_events().await?;
        let mut keep_alive = tokio::time::interval(settings.keep_alive_every);
        keep_alive.tick().await;
        let mut check = tokio::time::interval(settings.check_every);
        let pause = loop {
            tokio::select! {
                _ = stop.changed() => break Pause::Stop,
                event = events.next() => store_live_punch(app, &sn, tz, &address, event?).await?,
                _ = keep_alive.tick() => {
                    let device_time = events.keep_alive().await?;
                    let drift = super::session::clock_drift_secs(device_time, tz, Utc::now());
                    record_health(app, &sn, &Ok(Some(drift))).await;
                    if state.last_time_sync.is_none_or(|t| t.elapsed() >= settings.time_sync_every)
                        || drift.abs() > settings.max_drift_secs
                    {
                        break Pause::Maintain;
                    }
                }
                _ = check.tick() => {
                    if entry.may_have_commands() {
                        break Pause::Maintain;
                    }
                }
            }
        };
        events.stop().await?;
        match pause {
            Pause::Stop => return Ok(true),
            Pause::Maintain => {
                session.drift_secs = None;
                session.sync_time_if_due(state).await?;
                run_queued(session, state).await?;
                session.sync_users_if_due(state).await?;
                if session.client.is_some() {
                    // Punches made while no events were registered are only in the log: catch up before
                    // listening again.
                    let clear = session.device.clear_after_pull;
                    session.pull_attendance_scheduled(clear, state).await?;
                }
            }
        }
    }
}

/// Store one live punch, journaled as a text line (the client hands over the decoded event, not its bytes).
async fn store_live_punch(
    app: &App,
    sn: &DeviceSn,
    tz: chrono_tz::Tz,
    address: &str,
    event: AttendanceEvent,
) -> Result<(), SessionError> {
    let record = zk_pull::records::Attendance {
        uid: 0,
        user_id: event.user_id,
        time: event.time,
        status: event.status,
        punch: event.punch,
    };
    let body = format!(
        "{}\t{}\t{}\t{}\n",
        record.user_id,
        record.time.format("%Y-%m-%d %H:%M:%S"),
        record.punch,
        record.status
    );
    let raw = RawEntry {
        received_at: Utc::now(),
        device_sn: Some(sn.clone()),
        source: Source::Pull,
        kind: "pull:live".into(),
        request: format!("live punch from {address} (PIN, time, punch state, verify mode)"),
        remote_addr: Some(address.to_owned()),
        body: body.into_bytes(),
        errors: Vec::new(),
    };
    let outcome = app
        .ingest
        .ingest(Delivery {
            device_sn: sn.clone(),
            time_zone: tz,
            source: Source::Pull,
            punches: vec![super::session::punch_record(&record, 0)],
            batch: Batch::new(raw),
        })
        .await?;
    tracing::info!(sn = %sn, pin = %record.user_id, stored = outcome.n_stored, "live punch");
    Ok(())
}
