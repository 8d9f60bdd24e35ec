//! Delivery (issue 8): the outbox worker and one file per destination ([`webhook`], [`nats`], [`frappe`]); voided
//! punches are withdrawn from every sink by [`withdraw`], punches HR added are delivered by [`added`].
//!
//! Every punch stored while a sink exists has one outbox event, written in the punch's transaction
//! (store/sqlite/outbox.rs). `punchd serve` runs one worker per sink ([`run`]): it takes new events past the sink's
//! cursor, picks the ones due (at most one per employee at a time where the sink cares about order: Frappe pairs
//! alternating IN/OUT, frappe-hr.md §5), hands them to the sink in batches with a configurable number in flight, and
//! records each outcome: delivered, retried later (exponential backoff with jitter), or parked with its reason once
//! the maximum attempts or age is reached, never dropped. A sink answering "your credentials are wrong" pauses with
//! a configuration error. Delivery is at least once; each event carries an idempotency key ([`idempotency_key`]) so
//! the receiver sees it once. A crash between the punch's commit and the send loses nothing: the event is in the
//! store and is sent after the restart. While terminals upload without pause, a worker's rounds wait, at most
//! `delivery_wait_secs` per busy stretch ([`collection_wait`]).
//!
//! Several instances on one PostgreSQL each run a worker per sink, but only the instance holding the sink's lease
//! (`sink:<name>`, [`crate::leases`]) takes and delivers its events; the others wait for it to become free (a clean
//! stop releases it, a crashed instance's lease expires). A worker checks the lease before it sends and before it
//! records outcomes, so a worker that lost it records nothing and the new holder sends again (same idempotency
//! keys).

pub mod added;
pub mod collection_wait;
pub mod frappe;
pub mod frappe_employees;
pub mod frappe_shift;
pub mod frappe_withdraw;
pub mod nats;
pub mod retention;
pub mod safe_clear;
pub mod webhook;
pub mod withdraw;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use tokio::sync::watch;

use crate::app::App;
use crate::domain::Punch;
use crate::leases::Held;
use crate::metrics::SinkLabels;
use crate::sinks::collection_wait::{CollectionWait, WAIT_STEP};
use crate::store::outbox::{
    NewSink, OutboxEvent, Outcome, ParkKind, Peeked, Sink, SinkCounts, SinkKind,
};
use crate::store::{Store, StoreError};

/// The employee value a check-in carries for an outbox event.
///
/// This is the seam between delivery and the attendance area's employees and mappings: the sink worker resolves
/// each event's (device, PIN) with [`crate::attendance::mapping::Resolver`] just before delivery (a device
/// mapping, then a site mapping, then an employee whose code is the PIN on the device's site) and stores the result
/// in [`OutboxEvent::employee`]. The value is that **employee code**; a PIN unmapped in punchd is sent as the PIN
/// itself, Frappe's convention (`Employee.attendance_device_id` holds the device user id, frappe-hr.md §3), so
/// the receiver can do its own lookup. The same value is Frappe's `employee_field_value`, the webhook's
/// `employee` and the NATS subject's `<employee>` token.
pub fn employee_for(event: &OutboxEvent) -> String {
    event
        .employee
        .clone()
        .unwrap_or_else(|| event.punch.pin.as_str().to_owned())
}

/// Resolve each event's employee ([`OutboxEvent::employee`]) from the store's mappings, employees and devices as
/// they are now (read per delivery round, so a mapping change applies to the next attempt).
async fn resolve_employees(
    store: &dyn Store,
    events: &mut [OutboxEvent],
) -> Result<(), StoreError> {
    let resolver = crate::attendance::mapping::Resolver::new(
        &store.list_mappings().await?,
        &store.list_employees().await?,
        &store.list_devices().await?,
    );
    for e in events {
        e.employee = resolver
            .resolve(e.punch.device_sn.as_str(), e.punch.pin.as_str())
            .map(str::to_owned);
    }
    Ok(())
}

/// The stable idempotency key of a punch's event: `p1-` and the first 32 hex digits of SHA-256 over
/// `SN \t PIN \t terminal local time (YYYY-MM-DD HH:MM:SS) \t punch state (-1 when not sent)`. The same punch
/// (a re-send, a replay, a restart mid-delivery) always has the same key; two different punches never share one.
/// Hashed so it is safe in HTTP headers and NATS headers whatever a PIN contains.
pub fn idempotency_key(punch: &Punch) -> String {
    idempotency_key_of(
        punch.device_sn.as_str(),
        punch.pin.as_str(),
        punch.punched_at,
        punch.punch_state,
    )
}

/// The idempotency key of an event: [`idempotency_key`] of its punch, or for a punch HR added (`sinks::added`),
/// which has no terminal identity, [`added_key`].
pub fn event_key(event: &OutboxEvent) -> String {
    match event.correction_id {
        Some(id) => added_key(id, event.created_at),
        None => idempotency_key(&event.punch),
    }
}

/// The idempotency key of a punch HR added: `c1-<correction id>-<when HR added it, unix milliseconds>`. The time
/// keeps keys of different punchd databases apart (correction ids start at 1 in each), so two installations
/// publishing into one NATS stream, whose de-duplication goes by `Nats-Msg-Id`, never drop each other's.
pub fn added_key(correction_id: i64, added_at: DateTime<Utc>) -> String {
    format!("c1-{correction_id}-{}", added_at.timestamp_millis())
}

/// [`idempotency_key`] from the punch's parts: SN, PIN, terminal local time, punch state.
pub fn idempotency_key_of(
    sn: &str,
    pin: &str,
    punched_at: chrono::NaiveDateTime,
    punch_state: Option<u16>,
) -> String {
    use std::fmt::Write as _;
    let mut text = String::with_capacity(sn.len() + pin.len() + 32);
    text.push_str(sn);
    text.push('\t');
    text.push_str(pin);
    text.push('\t');
    text.push_str(&crate::format::wall_time_text(punched_at, b' '));
    let _ = write!(text, "\t{}", punch_state.map_or(-1, i32::from));
    let digest = sha2::Sha256::digest(text.as_bytes());
    let mut key = String::with_capacity(35);
    key.push_str("p1-");
    key.push_str(&hex::encode(&digest[..16]));
    key
}

/// IN/OUT from the terminal's punch state, as the official sync tool maps it by default (frappe-hr.md §6,
/// `device_punch_values_IN`/`_OUT`): check-in 0 and overtime-in 4 → `IN`; check-out 1 and overtime-out 5 → `OUT`;
/// anything else (breaks 2/3, 255, not sent) → none.
pub fn log_type_by_device(punch_state: Option<u16>) -> Option<&'static str> {
    match punch_state {
        Some(0 | 4) => Some("IN"),
        Some(1 | 5) => Some("OUT"),
        _ => None,
    }
}

/// One check-in as webhook batches and NATS messages carry it (schema `punchd.checkins.v1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckIn {
    /// Stable per punch ([`idempotency_key`]): a receiver that has seen it must ignore it.
    pub idempotency_key: String,
    /// The outbox event id (increasing in store order; not stable across databases).
    pub event_id: i64,
    /// The employee code punchd maps the PIN to, or the PIN itself when punchd has no mapping ([`employee_for`]).
    pub employee: String,
    /// Terminal serial number.
    pub device_sn: String,
    /// The device's alias, if set.
    pub device_alias: Option<String>,
    /// The device's site, if set.
    pub site: Option<String>,
    /// User id on the terminal.
    pub pin: String,
    /// Terminal local wall time, `YYYY-MM-DDTHH:MM:SS`, as the terminal recorded it.
    pub punched_at: String,
    /// The IANA zone of `punched_at`.
    pub time_zone: String,
    /// The instant (UTC, RFC 3339).
    #[serde(serialize_with = "crate::format::chrono_serde::utc")]
    pub punched_at_utc: DateTime<Utc>,
    /// Punch state code (0 check-in, 1 check-out, 2 break-out, 3 break-in, 4 OT-in, 5 OT-out, others as sent).
    pub punch_state: Option<u16>,
    /// `IN`, `OUT` or null, from the punch state ([`log_type_by_device`]).
    pub log_type: Option<String>,
    /// Verify mode code (1 fingerprint, 15 face, …).
    pub verify_mode: Option<u16>,
    /// push, pull, biotime, import or webhook.
    pub source: String,
    /// When punchd received the punch (UTC); for a punch HR added, when HR added it.
    #[serde(serialize_with = "crate::format::chrono_serde::utc")]
    pub received_at: DateTime<Utc>,
    /// Only on a punch HR added in the monthly review: the add-punch correction's id (`source` is then
    /// `correction`, `device_sn` `HR-CORRECTION`, `punched_at` site local time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correction_id: Option<i64>,
}

/// The body of a webhook delivery: a versioned batch of check-ins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckInBatch {
    /// Always `punchd.checkins.v1` for this shape; a new shape gets a new name.
    pub schema: String,
    /// When this attempt was sent (UTC).
    pub sent_at: DateTime<Utc>,
    /// The check-ins, in store order.
    pub checkins: Vec<CheckIn>,
}

/// The schema name of [`CheckInBatch`].
pub const CHECKINS_SCHEMA: &str = "punchd.checkins.v1";

impl CheckIn {
    /// The check-in of an outbox event.
    pub fn of(event: &OutboxEvent) -> CheckIn {
        let p = &event.punch;
        CheckIn {
            idempotency_key: event_key(event),
            event_id: event.id,
            employee: employee_for(event),
            device_sn: p.device_sn.as_str().to_owned(),
            device_alias: event.device_alias.clone(),
            site: event.device_site.clone(),
            pin: p.pin.as_str().to_owned(),
            punched_at: crate::format::wall_time_text(p.punched_at, b'T'),
            time_zone: p.time_zone.clone(),
            punched_at_utc: p.punched_at_utc,
            punch_state: p.punch_state,
            log_type: log_type_by_device(p.punch_state).map(str::to_owned),
            verify_mode: p.verify_mode,
            source: if event.correction_id.is_some() {
                "correction".to_owned()
            } else {
                p.source.as_str().to_owned()
            },
            received_at: p.received_at,
            correction_id: event.correction_id,
        }
    }
}

/// What one attempt at one event came to, as a sink reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The sink has it (with its name for it, if any).
    Delivered(Option<String>),
    /// A failure worth retrying (5xx, timeout, connection refused), in plain words.
    Retry(String),
    /// The sink refused it for a reason retrying will not fix by itself.
    Park(ParkKind, String),
    /// The sink's configuration is wrong (credentials refused): pause the sink; the event stays pending.
    Pause(String),
}

/// A destination. Implementations live in [`webhook`], [`nats`] and [`frappe`].
#[async_trait::async_trait]
pub trait Deliver: Send + Sync {
    /// Whether events of one employee must reach the sink in order, one at a time.
    fn ordered(&self) -> bool;
    /// How many events one call takes at most.
    fn batch_size(&self) -> usize;
    /// Deliver `events`; one [`Attempt`] per event, in the same order.
    async fn deliver(&self, events: &[OutboxEvent]) -> Vec<Attempt>;
}

/// How a sink retries; stored with the sink's settings under `delivery`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryOptions {
    /// Calls in flight at once (Frappe: requests; webhook: batches).
    pub concurrency: usize,
    /// Attempts after which a failing event is parked.
    pub max_attempts: u32,
    /// Age (seconds since the event was written) after which a failing event is parked.
    pub max_age_secs: u64,
    /// First retry delay (milliseconds); doubles with each attempt, with jitter (a random 50–100 % of it).
    pub backoff_ms: u64,
    /// Longest retry delay (seconds).
    pub backoff_max_secs: u64,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        DeliveryOptions {
            concurrency: 4,
            max_attempts: 50,
            max_age_secs: 7 * 24 * 3600,
            backoff_ms: 1000,
            backoff_max_secs: 3600,
        }
    }
}

impl DeliveryOptions {
    /// The delay before attempt `attempts + 1`, after `attempts` failures (≥ 1): `backoff_ms × 2^(attempts−1)`,
    /// at most `backoff_max_secs`, then a random 50–100 % of that (jitter, so sinks recovering from an outage are
    /// not hit by every event at once).
    pub fn backoff(&self, attempts: u32) -> Duration {
        let exp = attempts.saturating_sub(1).min(30);
        let full = self
            .backoff_ms
            .saturating_mul(1u64 << exp)
            .min(self.backoff_max_secs.saturating_mul(1000))
            .max(1);
        Duration::from_millis(rand::random_range(full.div_ceil(2)..=full))
    }
}

/// The delivery options stored in a sink's settings (defaults when absent or unreadable).
pub fn delivery_options(config: &serde_json::Value) -> DeliveryOptions {
    config
        .get("delivery")
        .and_then(|d| serde_json::from_value(d.clone()).ok())
        .unwrap_or_default()
}

/// Build the sink's deliverer from its stored settings.
///
/// Errors: the settings cannot be read (the sink then shows "needs configuration").
pub fn build(sink: &Sink) -> anyhow::Result<Arc<dyn Deliver>> {
    Ok(match sink.kind {
        SinkKind::Webhook => Arc::new(webhook::Webhook::new(serde_json::from_value(
            sink.config.clone(),
        )?)?),
        SinkKind::Nats => Arc::new(nats::Nats::new(serde_json::from_value(
            sink.config.clone(),
        )?)),
        SinkKind::Frappe => Arc::new(frappe::Frappe::new(serde_json::from_value(
            sink.config.clone(),
        )?)?),
    })
}

/// A sink's state as a person sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SinkState {
    /// Delivering (or idle with nothing to deliver).
    Running,
    /// Paused by a person (`punchd sinks pause`).
    Paused,
    /// Its last attempt failed; retrying with backoff.
    Failing,
    /// Paused by punchd: the sink refused the credentials or the settings are unusable.
    NeedsConfiguration,
}

impl SinkState {
    /// The state's name (`running`, `paused`, `failing`, `needs-configuration`).
    pub fn as_str(self) -> &'static str {
        match self {
            SinkState::Running => "running",
            SinkState::Paused => "paused",
            SinkState::Failing => "failing",
            SinkState::NeedsConfiguration => "needs-configuration",
        }
    }
}

/// One sink's status (`punchd sinks`, `GET /api/v1/sinks`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SinkStatus {
    /// Name.
    pub name: String,
    /// webhook, nats or frappe.
    pub kind: SinkKind,
    /// State.
    pub state: SinkState,
    /// Where it delivers (URL; never a secret).
    pub target: String,
    /// Counts.
    #[serde(flatten)]
    pub counts: SinkCounts,
    /// Age of the oldest pending event (seconds), if any.
    pub oldest_pending_age_secs: Option<i64>,
    /// The last error (or why punchd paused it), in plain words.
    pub last_error: Option<String>,
}

/// The status of a sink now.
///
/// Errors: the store fails.
pub async fn status(store: &dyn Store, sink: &Sink) -> Result<SinkStatus, StoreError> {
    let counts = store.sink_counts(sink.id).await?;
    let state = match (&sink.paused, &sink.pause_reason, &sink.failing_since) {
        (true, Some(_), _) => SinkState::NeedsConfiguration,
        (true, None, _) => SinkState::Paused,
        (false, _, Some(_)) => SinkState::Failing,
        _ => SinkState::Running,
    };
    let age = counts
        .oldest_pending_at
        .map(|t| (Utc::now() - t).num_seconds().max(0));
    Ok(SinkStatus {
        name: sink.name.clone(),
        kind: sink.kind,
        state,
        target: sink
            .config
            .get("url")
            .and_then(|u| u.as_str())
            .unwrap_or("")
            .to_owned(),
        counts,
        oldest_pending_age_secs: age,
        last_error: sink
            .pause_reason
            .clone()
            .or_else(|| sink.last_error.clone()),
    })
}

/// Create a sink after checking it can work: Frappe is probed (frappe-hr.md §2: the HRMS method path, then the
/// ERPNext v12/v13 one), NATS is connected and its stream created; a webhook is only checked for a valid URL (the
/// receiver may not be up yet). `config` is the kind's settings; `delivery` options are stored with them.
///
/// Errors: the settings are invalid, the probe fails (the message says why), or the name is taken.
pub async fn add(
    store: &dyn Store,
    name: String,
    kind: SinkKind,
    mut config: serde_json::Value,
    delivery: DeliveryOptions,
    since: Option<DateTime<Utc>>,
) -> anyhow::Result<Sink> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '/') {
        anyhow::bail!("sink name {name:?} must be non-empty, without spaces or '/'");
    }
    if delivery.concurrency == 0 {
        anyhow::bail!("concurrency must be at least 1");
    }
    match kind {
        SinkKind::Webhook => {
            webhook::Webhook::new(serde_json::from_value(config.clone())?)?;
        }
        SinkKind::Nats => {
            nats::Nats::new(serde_json::from_value(config.clone())?)
                .connect()
                .await?;
        }
        SinkKind::Frappe => {
            let mut settings: frappe::FrappeConfig = serde_json::from_value(config.clone())?;
            settings.method = Some(frappe::probe(&settings).await?);
            if settings.time_zone.is_none() {
                // The site's zone, when the API user may read it; else terminal local time is sent unchanged.
                settings.time_zone = frappe::read_site_time_zone(&settings).await;
            }
            config = serde_json::to_value(settings)?;
        }
    }
    if let Some(map) = config.as_object_mut() {
        map.insert("delivery".into(), serde_json::to_value(delivery)?);
    }
    let sink = store
        .create_sink(
            NewSink {
                name,
                kind,
                config,
                since,
            },
            Utc::now(),
        )
        .await?;
    Ok(sink)
}

/// A sink listed in the settings file (`[[sinks]]`). `punchd serve` creates it at start when no sink of that name
/// exists (probing Frappe, connecting to NATS, as `punchd sinks add` does); a stored sink whose settings differ from
/// the file is left as it is and the difference is logged (remove it to re-create it from the file).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkFileConfig {
    /// Unique name.
    pub name: String,
    /// webhook, nats or frappe.
    pub kind: SinkKind,
    /// Also deliver punches stored before, from this date (RFC 3339, or a local date/time in the default zone).
    #[serde(default)]
    pub since: Option<String>,
    /// The kind's settings, as `POST /api/v1/sinks` takes them (`url`, `secret`, `api_key`, …).
    pub settings: serde_json::Value,
    /// Retry settings.
    #[serde(default)]
    pub delivery: DeliveryOptions,
}

/// An instant given by a person: RFC 3339, or a local date/time (`YYYY-MM-DD[ HH:MM[:SS]]`) in `zone`.
///
/// Errors: neither form, or a local time that does not exist in the zone.
pub fn parse_instant(zone: chrono_tz::Tz, s: &str) -> anyhow::Result<DateTime<Utc>> {
    match crate::web::api::parse_time_bound(s).map_err(anyhow::Error::msg)? {
        crate::store::TimeBound::Utc(t) => Ok(t),
        crate::store::TimeBound::Local(t) => t
            .and_local_timezone(zone)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| anyhow::anyhow!("{s} does not exist in {zone}")),
    }
}

/// Create the `[[sinks]]` of the settings file that do not exist yet; log the ones whose stored settings differ.
async fn sync_configured(app: &App) {
    for c in &app.config.sinks {
        match app.store.get_sink(&c.name).await {
            Ok(stored) => {
                let differs: Vec<&String> = c
                    .settings
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .filter(|(k, v)| stored.config.get(k.as_str()) != Some(v))
                            .map(|(k, _)| k)
                            .collect()
                    })
                    .unwrap_or_default();
                if stored.kind != c.kind || !differs.is_empty() {
                    tracing::warn!(
                        sink = %c.name,
                        "the stored sink differs from the settings file ({differs:?}); it is kept as stored: \
                         `punchd sinks remove {}` and restart to re-create it from the file",
                        c.name
                    );
                }
            }
            Err(StoreError::NotFound(_)) => {
                let since = match c
                    .since
                    .as_deref()
                    .map(|s| parse_instant(app.config.default_time_zone, s))
                {
                    Some(Err(e)) => {
                        tracing::error!(sink = %c.name, "[[sinks]] since: {e:#}");
                        continue;
                    }
                    Some(Ok(t)) => Some(t),
                    None => None,
                };
                match add(
                    app.store.as_ref(),
                    c.name.clone(),
                    c.kind,
                    c.settings.clone(),
                    c.delivery.clone(),
                    since,
                )
                .await
                {
                    Ok(_) => tracing::info!(sink = %c.name, "sink created from the settings file"),
                    Err(e) => tracing::error!(
                        sink = %c.name,
                        "the sink in the settings file could not be created: {e:#} (fix it and restart)"
                    ),
                }
            }
            Err(e) => tracing::error!(sink = %c.name, error = %e, "reading the sink failed"),
        }
    }
}

/// How many new events a worker takes from the outbox at a time.
const TAKE: usize = 1000;
/// How often an idle worker looks for new events (and a paused one for a resume).
const IDLE: Duration = Duration::from_millis(250);
/// How long a worker that has caught up waits before its next round (see the end of `worker`): the added latency
/// of a check-in, traded for rounds that carry many events.
const LINGER: Duration = Duration::from_millis(100);
/// How often an idle worker refreshes its pending gauge.
const COUNT_EVERY: Duration = Duration::from_secs(5);
/// How often the supervisor looks for new, changed or deleted sinks.
const SUPERVISE_EVERY: Duration = Duration::from_secs(1);
/// How often events parked as unmapped are retried anyway (employee and mapping writes in punchd retry them at once,
/// store/sqlite/outbox.rs `retry_unmapped_on`; this catches fixes made in Frappe).
const UNMAPPED_RETRY_EVERY: Duration = Duration::from_secs(600);
/// How often Frappe Shift Types' `last_sync_of_checkin` is advanced ([`frappe_shift`]), voided punches are
/// withdrawn from every sink ([`withdraw`]) and punches HR added are delivered ([`added`]).
const SHIFT_SYNC_EVERY: Duration = Duration::from_secs(60);
/// How often delivered outbox events past the retention are pruned ([`retention`]).
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// [`run`] on a runtime of its own (two worker threads, thread name `punchd-sinks`) whose threads run `nice`
/// steps below the process (Linux `setpriority` per thread; elsewhere at the same priority), until `shutdown`
/// resolves. `punchd serve` runs delivery this way (`delivery_nice`, default 19): on a busy machine the
/// terminals' uploads get the CPU first and the sinks work through the outbox, which keeps every event, as soon
/// as it is free. At 19, the lowest, the threads also take Linux's idle scheduling class (`SCHED_IDLE`,
/// `lower_priority`). The store's writer thread is shared and keeps its priority, so a sink round, once it
/// runs, never holds a push batch back behind a starved thread.
pub async fn run_at_priority(
    app: App,
    nice: i32,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    if nice == 0 {
        return run(app, shutdown).await;
    }
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("punchd-sinks".into())
        .spawn(move || {
            // This thread drives `run` itself (`block_on`), so it is lowered like the runtime's own threads.
            lower_priority(nice);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("punchd-sinks")
                .on_thread_start(move || lower_priority(nice))
                .enable_all()
                .build();
            match runtime {
                Ok(runtime) => runtime.block_on(run(app, shutdown)),
                Err(e) => tracing::error!(error = %e, "the sinks' runtime could not start: nothing is delivered"),
            }
            let _ = done_tx.send(());
        });
    match spawned {
        Ok(_) => {
            let _ = done_rx.await;
        }
        Err(e) => {
            tracing::error!(error = %e, "the sinks' thread could not start: nothing is delivered")
        }
    }
}

/// Lower the calling thread's CPU priority by `nice` steps (Linux: the nice value is per thread; `setpriority`
/// on the thread id touches only this thread). A failure is logged; delivery then runs at normal priority.
///
/// At [`crate::config::DEFAULT_DELIVERY_NICE`] (19, the lowest) the thread also moves to `SCHED_IDLE`
/// (sched(7)). A nice-19 thread already gets little CPU while others want it, but a thread waking up beside it
/// may still wait out the rest of its time slice: the kernel does not let a woken `SCHED_BATCH` thread (the
/// SQLite writer, store/sqlite.rs `batch_scheduling`) preempt it at all, and lets a normal one (an HTTP worker)
/// wait until the running thread's slice is spent. A `SCHED_IDLE` thread is preempted by either at once, so a
/// terminal's upload never waits behind a sink. It still runs whenever the CPU would otherwise be idle, and gets
/// a small share (less than nice 19's) when it never is. If the kernel refuses, the nice value alone applies.
fn lower_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    {
        let tid = Some(rustix::thread::gettid());
        let lowered = rustix::process::getpriority_process(tid).and_then(|current| {
            rustix::process::setpriority_process(tid, (current + nice).min(19))
        });
        if let Err(e) = lowered {
            tracing::warn!(error = %e, "could not lower the sinks' CPU priority; they run at collection's");
        }
        if nice >= crate::config::DEFAULT_DELIVERY_NICE {
            let param = uapi::c::sched_param { sched_priority: 0 };
            if let Err(e) = uapi::sched_setscheduler(0, uapi::c::SCHED_IDLE, &param) {
                tracing::debug!(error = %e, "the sinks' threads stay under the default scheduling policy");
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

/// Run one worker per sink until `shutdown` resolves (inside `punchd serve`). Sinks added, changed, paused or
/// deleted by the CLI or the API are picked up within a second.
pub async fn run(app: App, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    sync_configured(&app).await;
    let mut workers: HashMap<
        String,
        (
            i64,
            String,
            watch::Sender<bool>,
            tokio::task::JoinHandle<()>,
        ),
    > = HashMap::new();
    let mut tick = tokio::time::interval(SUPERVISE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut unmapped_tick = tokio::time::interval(UNMAPPED_RETRY_EVERY);
    unmapped_tick.tick().await;
    let mut shift_tick = tokio::time::interval(SHIFT_SYNC_EVERY);
    shift_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut prune_tick = tokio::time::interval(PRUNE_EVERY);
    prune_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Background rounds that talk to Frappe or delete in chunks: one at a time each, never blocking the loop.
    let mut shift_round: Option<tokio::task::JoinHandle<()>> = None;
    let mut prune_round: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = shift_tick.tick() => {
                if shift_round.as_ref().is_none_or(|h| h.is_finished()) {
                    let store = app.store.clone();
                    let zone = app.config.default_time_zone;
                    let leases = app.leases.clone();
                    shift_round = Some(tokio::spawn(async move {
                        frappe_shift::sync_all(store.as_ref(), zone).await;
                        withdraw::withdraw_all(store.as_ref()).await;
                        added::deliver_all(store, &leases, zone).await;
                    }));
                }
            }
            _ = prune_tick.tick() => {
                if let Some(retention) = app.config.outbox_retention {
                    if prune_round.as_ref().is_none_or(|h| h.is_finished()) {
                        let store = app.store.clone();
                        prune_round = Some(tokio::spawn(async move {
                            match retention::prune(store.as_ref(), retention, Utc::now()).await {
                                Ok(0) => {}
                                Ok(n) => tracing::info!(events = n, "delivered outbox events pruned"),
                                Err(e) => tracing::warn!(error = %e, "pruning the outbox failed; will retry"),
                            }
                        }));
                    }
                }
            }
            _ = unmapped_tick.tick() => {
                if let Ok(sinks) = app.store.list_sinks().await {
                    for sink in sinks {
                        match app.store.retry_sink(&sink.name, Some(ParkKind::Unmapped), Utc::now()).await {
                            Ok(n) if n > 0 => tracing::info!(sink = %sink.name, events = n, "unmapped events retried"),
                            Ok(_) => {}
                            Err(e) => tracing::warn!(sink = %sink.name, error = %e, "retrying unmapped events failed"),
                        }
                    }
                }
            }
            _ = tick.tick() => {
                let sinks = match app.store.list_sinks().await {
                    Ok(sinks) => sinks,
                    Err(e) => {
                        tracing::warn!(error = %e, "listing sinks failed; will retry");
                        continue;
                    }
                };
                let names: HashSet<&str> = sinks.iter().map(|s| s.name.as_str()).collect();
                workers.retain(|name, (_, _, stop, handle)| {
                    let keep = names.contains(name.as_str()) && !handle.is_finished();
                    if !keep {
                        let _ = stop.send(true);
                    }
                    keep
                });
                for sink in sinks {
                    let config = sink.config.to_string();
                    if let Some((id, running_config, stop, _)) = workers.get(&sink.name) {
                        if *id == sink.id && *running_config == config {
                            continue;
                        }
                        let _ = stop.send(true);
                    }
                    let deliver = match build(&sink) {
                        Ok(d) => d,
                        Err(e) => {
                            if sink.pause_reason.is_none() {
                                let reason = format!("the settings cannot be used: {e:#}");
                                tracing::warn!(sink = %sink.name, "{reason}");
                                let _ = app.store.set_sink_paused(&sink.name, true, Some(reason)).await;
                            }
                            continue;
                        }
                    };
                    let (stop, stopped) = watch::channel(false);
                    let handle = tokio::spawn(worker(app.clone(), sink.clone(), deliver, stopped));
                    workers.insert(sink.name.clone(), (sink.id, config, stop, handle));
                }
            }
        }
    }
    for (_, (_, _, stop, _)) in workers.iter() {
        let _ = stop.send(true);
    }
    for (_, (_, _, _, handle)) in workers {
        let _ = tokio::time::timeout(Duration::from_secs(10), handle).await;
    }
}

/// Sleep `d`, or less when `stop` is set.
async fn pause_for(d: Duration, stop: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = stop.wait_for(|s| *s) => {}
    }
}

/// One sink's delivery loop.
async fn worker(app: App, sink: Sink, deliver: Arc<dyn Deliver>, mut stop: watch::Receiver<bool>) {
    let store = app.store.clone();
    let labels = SinkLabels {
        sink: sink.name.clone(),
    };
    let options = delivery_options(&sink.config);
    let batch_size = deliver.batch_size().max(1);
    let mut failing_since = sink.failing_since;
    let mut last_count = std::time::Instant::now() - COUNT_EVERY;
    // Several instances on one PostgreSQL each run a worker per sink; the lease lets one of them drain it.
    let lease_name = format!("sink:{}", sink.name);
    let mut held: Option<Held> = None;
    // The next round's events, read while this round is delivered (a sink that does not keep order, on a store
    // with the fast path, while the backlog fills whole rounds). Used only if this round moved the cursor to where
    // the read-ahead starts; dropped on any other way out of a round.
    let mut read_ahead: Option<tokio::task::JoinHandle<Result<Option<Peeked>, StoreError>>> = None;
    let mut collection_wait = CollectionWait::default();
    tracing::info!(sink = %sink.name, kind = sink.kind.as_str(), "sink worker started");
    let waiting = app.metrics.sinks.waiting.get_or_create(&labels).clone();
    while !*stop.borrow() {
        let waits = collection_wait.waits(
            app.ingest.load().busy_share(),
            std::time::Instant::now(),
            app.config.delivery_wait,
            &sink.name,
        );
        waiting.set(i64::from(waits));
        if waits {
            pause_for(WAIT_STEP, &mut stop).await;
            continue;
        }
        let ahead = read_ahead.take();
        let current = match store.get_sink(&sink.name).await {
            Ok(s) if s.id == sink.id => s,
            Ok(_) | Err(StoreError::NotFound(_)) => break,
            Err(e) => {
                tracing::warn!(sink = %sink.name, error = %e, "reading the sink failed; will retry");
                pause_for(Duration::from_secs(1), &mut stop).await;
                continue;
            }
        };
        if current.paused {
            pause_for(IDLE, &mut stop).await;
            continue;
        }
        if !held.as_ref().is_some_and(Held::is_held) {
            match hold_lease(&app, &sink, &lease_name, held.take()).await {
                Ok(Some(h)) => held = Some(h),
                Ok(None) => {
                    pause_for(app.leases.poll_every, &mut stop).await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(sink = %sink.name, error = %e, "taking the sink's lease failed; will retry");
                    pause_for(Duration::from_secs(1), &mut stop).await;
                    continue;
                }
            }
        }
        let now = Utc::now();
        let limit = options.concurrency * batch_size;
        // The fast path (SQLite): read the events past the cursor without taking them; the round's record then
        // writes rows only for the events that need one. Otherwise take them into pending rows first.
        let read = match ahead {
            Some(ahead) => match ahead.await {
                Ok(read) => read,
                Err(_) => store.peek_events(sink.id, None, limit.max(1)).await,
            },
            None => store.peek_events(sink.id, None, limit.max(1)).await,
        };
        let peeked = match read {
            Ok(peeked) => peeked,
            Err(e) => {
                tracing::warn!(sink = %sink.name, error = %e, "reading the outbox failed; will retry");
                pause_for(Duration::from_secs(1), &mut stop).await;
                continue;
            }
        };
        if peeked.is_none() {
            if let Err(e) = store.take_events(sink.id, limit.max(TAKE), now).await {
                tracing::warn!(sink = %sink.name, error = %e, "taking events from the outbox failed; will retry");
                pause_for(Duration::from_secs(1), &mut stop).await;
                continue;
            }
        }
        // A sink that keeps order per employee must see the events waiting (backing off) to hold back the later
        // ones of the same employee, so it reads a wider window, due or not; any other sink reads only what is
        // due, exactly as many as one round sends.
        let (due_at, window) = if deliver.ordered() {
            (None, (limit * 4).max(TAKE))
        } else {
            (Some(now), limit)
        };
        let mut events = match store.pending_events(sink.id, due_at, window).await {
            Ok(events) => events,
            Err(e) => {
                tracing::warn!(sink = %sink.name, error = %e, "reading pending events failed; will retry");
                pause_for(Duration::from_secs(1), &mut stop).await;
                continue;
            }
        };
        // Peeked events come after every taken one (their ids are past the cursor, taken ones at or below it).
        // When the taken ones fill the window, the peeked ones wait for a later round: an ordered sink may have
        // an earlier event of the same employee beyond the window, and any sink has enough to send.
        let peeked = peeked.map(|p| {
            if events.len() >= window {
                Peeked {
                    through: p.from,
                    events: Vec::new(),
                    ..p
                }
            } else {
                p
            }
        });
        let (peeked_from, peeked_through) = peeked.as_ref().map_or((0, 0), |p| (p.from, p.through));
        // Every peeked event must end the round with an outcome or a pending row (held back), or moving the cursor
        // would lose it: the ones without an outcome are written as held when the round is recorded.
        let peeked_ids: Vec<i64> = peeked
            .as_ref()
            .map(|p| p.events.iter().map(|e| e.id).collect())
            .unwrap_or_default();
        if let Some(p) = peeked {
            events.extend(p.events);
        }
        let is_peeked = |id: i64| peeked_through > peeked_from && id > peeked_from;
        // Resolving reads the mappings: only when something is due, not on every idle turn of a backing-off event.
        if events
            .iter()
            .any(|e| is_peeked(e.id) || e.next_attempt_at <= now)
        {
            if let Err(e) = resolve_employees(store.as_ref(), &mut events).await {
                tracing::warn!(sink = %sink.name, error = %e, "reading PIN mappings failed; will retry");
                pause_for(Duration::from_secs(1), &mut stop).await;
                continue;
            }
        }
        let mut blocked: HashSet<String> = HashSet::new();
        let mut chosen: Vec<OutboxEvent> = Vec::new();
        let mut next_due: Option<DateTime<Utc>> = None;
        for event in events {
            let key = employee_for(&event);
            if (deliver.ordered() && !blocked.insert(key)) || chosen.len() >= limit {
                // Held back (behind an earlier event of the employee, or past this round's size): a peeked one
                // gets a pending row, due now; a taken one waits in its row.
                continue;
            }
            // A peeked event is always due: it was never tried (its write time may even be after `now`).
            if !is_peeked(event.id) && event.next_attempt_at > now {
                next_due =
                    Some(next_due.map_or(event.next_attempt_at, |t| t.min(event.next_attempt_at)));
                continue;
            }
            chosen.push(event);
        }
        // Nothing to send and nothing past the cursor: idle. (With events past the cursor but none sent — all held
        // back, or all before the sink's start — the round is still recorded, which moves the cursor.)
        if chosen.is_empty() && peeked_through == peeked_from {
            // Counting is a scan of the sink's deliveries: every few seconds, not every idle turn.
            if last_count.elapsed() >= COUNT_EVERY {
                last_count = std::time::Instant::now();
                if let Ok(counts) = store.sink_counts(sink.id).await {
                    app.metrics
                        .sinks
                        .pending
                        .get_or_create(&labels)
                        .set(counts.pending as i64);
                }
            }
            let wait = next_due
                .and_then(|t| (t - now).to_std().ok())
                .map_or(IDLE, |d| d.min(IDLE));
            pause_for(wait, &mut stop).await;
            continue;
        }
        if !held.as_ref().is_some_and(Held::is_held) {
            continue;
        }
        let mut calls = tokio::task::JoinSet::new();
        let full_round = chosen.len() >= limit;
        for chunk in chosen.chunks(batch_size) {
            let deliver = deliver.clone();
            let chunk = chunk.to_vec();
            calls.spawn(async move {
                let attempts = deliver.deliver(&chunk).await;
                (chunk, attempts)
            });
        }
        // A whole round of new events: more are likely waiting, so the next round's read overlaps this round's
        // delivery (the sink's receiver is not left idle while the store is read). Not for a sink that keeps
        // order per employee: its next round must see this round's outcomes first.
        let ahead = (!deliver.ordered() && full_round && peeked_through > peeked_from).then(|| {
            let store = store.clone();
            let sink_id = sink.id;
            tokio::spawn(async move {
                store
                    .peek_events(sink_id, Some(peeked_through), limit.max(1))
                    .await
            })
        });
        let mut outcomes = Vec::with_capacity(chosen.len());
        let mut pause: Option<String> = None;
        let mut error: Option<String> = None;
        let mut delivered_any = false;
        let now = Utc::now();
        while let Some(joined) = calls.join_next().await {
            let Ok((chunk, attempts)) = joined else {
                error = Some("a delivery task failed".into());
                continue;
            };
            for (i, event) in chunk.iter().enumerate() {
                let attempt = attempts.get(i).cloned().unwrap_or_else(|| {
                    Attempt::Retry("the sink gave no answer for this event".into())
                });
                let outcome = match attempt {
                    Attempt::Delivered(remote) => {
                        delivered_any = true;
                        app.metrics.sinks.delivered.get_or_create(&labels).inc();
                        Outcome::Delivered(remote)
                    }
                    Attempt::Park(kind, reason) => {
                        delivered_any = true;
                        app.metrics.sinks.parked.get_or_create(&labels).inc();
                        Outcome::Parked { kind, reason }
                    }
                    Attempt::Pause(reason) => {
                        pause = Some(reason);
                        continue;
                    }
                    Attempt::Retry(reason) => {
                        let attempts = event.attempts + 1;
                        let age = (now - event.created_at).num_seconds().max(0) as u64;
                        error.get_or_insert_with(|| reason.clone());
                        if attempts >= options.max_attempts || age >= options.max_age_secs {
                            app.metrics.sinks.parked.get_or_create(&labels).inc();
                            Outcome::Parked {
                                kind: ParkKind::GaveUp,
                                reason: format!(
                                    "gave up after {attempts} attempts over {age} s; last error: {reason}"
                                ),
                            }
                        } else {
                            app.metrics.sinks.retried.get_or_create(&labels).inc();
                            let delay = chrono::Duration::from_std(options.backoff(attempts))
                                .unwrap_or_else(|_| chrono::Duration::seconds(1));
                            Outcome::Retry {
                                at: now + delay,
                                error: reason,
                            }
                        }
                    }
                };
                outcomes.push((event.id, outcome));
            }
        }
        if !held.as_ref().is_some_and(Held::is_held) {
            tracing::warn!(
                sink = %sink.name,
                events = outcomes.len(),
                "the sink's lease was lost during delivery: outcomes not recorded; the instance holding it now \
                 sends these events again, under the same idempotency keys"
            );
            continue;
        }
        let attempted = outcomes.len();
        // Peeked events without an outcome (held back, their delivery task failed, or the sink asked to pause)
        // stay pending.
        let answered: HashSet<i64> = outcomes.iter().map(|(id, _)| *id).collect();
        let held_back: Vec<i64> = peeked_ids
            .into_iter()
            .filter(|id| !answered.contains(id))
            .collect();
        let mut cursor_moved = false;
        let recorded = if peeked_through > peeked_from {
            store
                .record_peeked(sink.id, peeked_from, peeked_through, outcomes, held_back, now)
                .await
                .map(|moved| {
                    cursor_moved = moved;
                    if !moved {
                        tracing::warn!(
                            sink = %sink.name,
                            "the sink's cursor moved under this round (another instance): its new events are \
                             sent again, under the same idempotency keys"
                        );
                    }
                })
        } else {
            store.record_outcomes(sink.id, outcomes, now).await
        };
        if let Err(e) = recorded {
            // Not recorded: the events stay pending (or past the cursor) and are sent again (the idempotency key
            // absorbs it).
            tracing::warn!(sink = %sink.name, error = %e, "recording delivery outcomes failed; events will be sent again");
        }
        // The read-ahead starts where this round ended: usable only if this round moved the cursor there, and
        // only while the sink delivers (after a failure the next round looks at what is due first).
        if cursor_moved && pause.is_none() && error.is_none() {
            read_ahead = ahead;
        }
        if let Some(reason) = pause {
            tracing::warn!(
                sink = %sink.name,
                "sink paused: {reason}; fix its settings, then `punchd sinks resume {}`",
                sink.name
            );
            let _ = store
                .set_sink_paused(&sink.name, true, Some(reason.clone()))
                .await;
            let _ = store
                .set_sink_health(sink.id, Some(failing_since.unwrap_or(now)), Some(reason))
                .await;
            failing_since.get_or_insert(now);
            app.metrics.sinks.failing.get_or_create(&labels).set(1);
        } else if let Some(reason) = error {
            if failing_since.is_none() {
                tracing::warn!(sink = %sink.name, "sink started failing: {reason}; retrying with backoff");
                failing_since = Some(now);
            }
            let _ = store
                .set_sink_health(sink.id, failing_since, Some(reason))
                .await;
            app.metrics.sinks.failing.get_or_create(&labels).set(1);
        } else if delivered_any {
            if let Some(since) = failing_since.take() {
                tracing::info!(
                    sink = %sink.name,
                    "sink recovered after {} s of failures",
                    (now - since).num_seconds().max(0)
                );
                let _ = store.set_sink_health(sink.id, None, None).await;
            }
            app.metrics.sinks.failing.get_or_create(&labels).set(0);
        }
        // A round well short of its size means the sink has caught up: let events gather for a moment, so the
        // next round carries many of them for the same few statements (SQLite has one writer, shared with the
        // push path).
        if attempted < limit / 2 {
            pause_for(LINGER, &mut stop).await;
        }
    }
    if let Some(held) = held {
        held.release().await;
    }
    tracing::info!(sink = %sink.name, "sink worker stopped");
}

/// Take (or take back) the sink's lease; `Ok(None)` while another instance drains the sink. `lost` is the lease
/// this worker held until it lapsed, if any.
async fn hold_lease(
    app: &App,
    sink: &Sink,
    lease_name: &str,
    lost: Option<Held>,
) -> Result<Option<Held>, StoreError> {
    if lost.is_some() {
        tracing::warn!(sink = %sink.name, "this instance lost the sink's lease; another instance may drain it now");
    }
    drop(lost);
    let held = app.leases.try_hold(app.store.clone(), lease_name).await?;
    if let Some(h) = &held {
        let lease = h.lease();
        tracing::info!(
            sink = %sink.name,
            holder = %lease.holder,
            generation = lease.generation,
            "this instance holds the sink's lease and drains it"
        );
    }
    Ok(held)
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    /// The key is a promise to receivers: the same punch must get the same key in every version, or a re-send
    /// after an upgrade would count twice. Pinned to values computed independently (Python's hashlib over the
    /// documented text).
    #[test]
    fn the_idempotency_key_never_changes() {
        let t = NaiveDate::from_ymd_opt(2025, 6, 1)
            .and_then(|d| d.and_hms_opt(9, 0, 0))
            .expect("time");
        assert_eq!(
            super::idempotency_key_of("CNYG001", "1001", t, Some(0)),
            "p1-5ede849537529583e6130c1256d2feb9"
        );
        assert_eq!(
            super::idempotency_key_of("CNYG001", "1001", t, None),
            "p1-294ab34c3db6647e45f441535814387e"
        );
    }

    /// The policy and nice value a fresh thread has after [`super::lower_priority`]`(nice)`, and its nice value
    /// before.
    #[cfg(target_os = "linux")]
    fn lowered(nice: i32) -> (i32, i32, i32) {
        std::thread::spawn(move || {
            let tid = Some(rustix::thread::gettid());
            let before = rustix::process::getpriority_process(tid).expect("nice before");
            super::lower_priority(nice);
            let policy = uapi::sched_getscheduler(0).expect("policy");
            let after = rustix::process::getpriority_process(tid).expect("nice after");
            (before, policy, after)
        })
        .join()
        .expect("thread")
    }

    /// At the lowest priority (the default) a delivery thread is preempted at once by any upload or by the
    /// store's writer (`SCHED_IDLE`); below that only its nice value changes. Fails without the idle class.
    #[cfg(target_os = "linux")]
    #[test]
    fn delivery_at_the_lowest_priority_takes_the_idle_class_and_otherwise_only_a_nice_value() {
        let (_, policy, after) = lowered(crate::config::DEFAULT_DELIVERY_NICE);
        assert_eq!((policy, after), (uapi::c::SCHED_IDLE, 19));
        let (before, policy, after) = lowered(3);
        assert_eq!(
            (policy, after),
            (uapi::c::SCHED_OTHER, (before + 3).min(19))
        );
    }

    #[test]
    fn wall_times_print_as_chrono_does() {
        let t = NaiveDate::from_ymd_opt(987, 12, 31)
            .and_then(|d| d.and_hms_opt(23, 59, 7))
            .expect("time");
        assert_eq!(
            crate::format::wall_time_text(t, b'T'),
            t.format("%Y-%m-%dT%H:%M:%S").to_string()
        );
        let far = NaiveDate::from_ymd_opt(12_345, 1, 2)
            .and_then(|d| d.and_hms_opt(3, 4, 5))
            .expect("time");
        assert_eq!(
            crate::format::wall_time_text(far, b' '),
            far.format("%Y-%m-%d %H:%M:%S").to_string()
        );
    }
}
