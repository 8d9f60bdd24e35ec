//! One running punchd instance: the store, the registry, the ingest path, the command queue and the metrics,
//! wired together, plus the housekeeping loop (flush last-seen, reload settings, resend or expire commands).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::config::Config;
use crate::devices::registry::new_pull_device;
use crate::devices::{ApprovalPolicy, CommandQueue, Registry};
use crate::domain::{Approval, DeviceSn, Transport};
use crate::ingest::Ingest;
use crate::metrics::Metrics;
use crate::store::{DevicePatch, Store, StoreError};

/// Everything a request handler needs: one shared [`AppState`], so a clone is one reference count (axum clones
/// the state for every request and every layer; a clone of each field's own handles was 5 % of the server's CPU
/// at one punch per POST, issue 6, BENCHMARKS.md "Session of 2026-12-01 (2)"). Fields are read through `Deref`.
#[derive(Clone)]
pub struct App(Arc<AppState>);

impl std::ops::Deref for App {
    type Target = AppState;

    fn deref(&self) -> &AppState {
        &self.0
    }
}

/// The parts of a running instance ([`App`] derefs to it).
#[derive(Clone)]
pub struct AppState {
    /// Settings.
    pub config: Arc<Config>,
    /// The store.
    pub store: Arc<dyn Store>,
    /// Known devices.
    pub registry: Arc<Registry>,
    /// The ingest path.
    pub ingest: Ingest,
    /// The command queue.
    pub commands: CommandQueue,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Push terminal authentication (address binding, comm keys).
    pub push_guard: Arc<crate::devices::push_auth::PushGuard>,
    /// The resource limits' state (new SNs per address, connections).
    pub guards: Arc<crate::limits::Guards>,
    /// This instance's lease identity and timing (who drains a sink, who pulls a terminal; `leases`).
    pub leases: crate::leases::Leases,
    /// Punches stored and terminals going on- or offline, as they happen (the web UI's live page).
    pub live: crate::live::LiveFeed,
    /// Computed months kept up to date (`attendance::month_cache`), shared by the JSON API and the web UI.
    pub month_cache: Arc<crate::attendance::month_cache::MonthCache>,
    /// Punches per (device, PIN) kept up to date (`attendance::seen_cache`): the unmapped queue and every
    /// terminal's last punch without reading every punch. Saved in the store by the web UI's background work,
    /// so a start reads only the punches stored after the saved copy.
    pub seen: Arc<crate::attendance::seen_cache::SeenCache>,
}

/// Bring the store in line with the `[[devices]]` of the settings file.
async fn sync_configured_devices(config: &Config, store: &dyn Store) -> anyhow::Result<()> {
    for d in &config.devices {
        let sn = DeviceSn::parse(&d.sn)
            .map_err(|e| anyhow::anyhow!("[[devices]] sn {:?}: {e}", d.sn))?;
        let transport = match d.transport.as_deref().unwrap_or("tcp") {
            "tcp" => Transport::Tcp,
            "udp" => Transport::Udp,
            other => anyhow::bail!("[[devices]] {sn}: transport {other:?} is not tcp or udp"),
        };
        if let Some(zone) = &d.time_zone {
            crate::config::parse_time_zone(zone)?;
        }
        let patch = DevicePatch {
            approval: Some(Approval::Approved),
            alias: Some(d.alias.clone()),
            site: Some(d.site.clone()),
            time_zone: Some(d.time_zone.clone()),
            address: Some(Some(d.address.clone())),
            comm_key: Some(d.comm_key),
            pull_interval_secs: Some(d.interval_secs.unwrap_or(300)),
            clear_after_pull: Some(d.clear_after_pull),
            transport: Some(transport),
            poll_delay_secs: None,
            safe_clear: None,
        };
        match store.get_device(&sn).await {
            Ok(_) => {}
            Err(StoreError::NotFound(_)) => {
                let device = new_pull_device(
                    sn.clone(),
                    transport,
                    d.address.clone(),
                    d.comm_key,
                    300,
                    false,
                    Utc::now(),
                );
                store.create_device(device).await?;
            }
            Err(e) => return Err(e.into()),
        }
        store.update_device(&sn, patch).await?;
    }
    Ok(())
}

/// How often housekeeping runs.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(2);

impl App {
    /// Open the configured database and load the registry.
    ///
    /// Errors: the database cannot be opened or migrated, or the registry cannot be read.
    pub async fn open(config: Config) -> anyhow::Result<App> {
        let store = crate::store::open(&config, true).await?;
        App::with_store(config, store).await
    }

    /// Wire an instance around an open store.
    pub async fn with_store(config: Config, store: Arc<dyn Store>) -> anyhow::Result<App> {
        sync_configured_devices(&config, store.as_ref()).await?;
        let metrics = Arc::new(Metrics::new());
        let registry = Arc::new(
            Registry::load(
                store.clone(),
                ApprovalPolicy::new(config.approval.clone()),
                config.default_time_zone,
                config.push.delay_secs,
            )
            .await
            .map_err(|e| anyhow::anyhow!("loading devices: {e}"))?,
        );
        let live = crate::live::LiveFeed::new();
        Ok(App(Arc::new(AppState {
            ingest: Ingest::new(store.clone(), metrics.clone())
                .with_max_line_errors(config.limits.max_line_errors)
                .with_live(live.clone()),
            live,
            month_cache: Arc::default(),
            seen: Arc::default(),
            commands: CommandQueue::new(store.clone(), Some(registry.clone())),
            push_guard: Arc::new(crate::devices::push_auth::PushGuard::new(
                store.clone(),
                config.push.bind_addresses,
            )),
            guards: Arc::new(crate::limits::Guards::new(&config.limits)),
            leases: crate::leases::Leases::new(
                crate::leases::Leases::default().holder,
                config.lease_ttl,
            ),
            config: Arc::new(config),
            store,
            registry,
            metrics,
        })))
    }

    /// Replace this instance's lease identity and timing (tests of several instances in one process). Other
    /// clones of this `App` keep the old ones.
    pub fn set_leases(&mut self, leases: crate::leases::Leases) {
        Arc::make_mut(&mut self.0).leases = leases;
    }

    /// One housekeeping pass: flush last-seen, pick up settings and commands changed elsewhere, resend
    /// commands that got no result, expire the ones that never will.
    pub async fn housekeeping(&self) -> anyhow::Result<()> {
        self.registry.flush_seen().await?;
        let now = Utc::now();
        let timeout = chrono::Duration::from_std(self.config.command_timeout).unwrap_or_default();
        let expiry = chrono::Duration::from_std(self.config.command_expiry).unwrap_or_default();
        let (requeued, expired) = self
            .store
            .sweep_commands(
                now,
                now - timeout,
                now - expiry,
                self.config.command_max_attempts,
            )
            .await?;
        if requeued + expired > 0 {
            tracing::info!(
                requeued,
                expired,
                "commands without a result were requeued or expired"
            );
        }
        self.registry.refresh().await?;
        Ok(())
    }

    /// Run housekeeping until `shutdown` resolves, then flush last-seen once more.
    pub async fn run_housekeeping(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(HOUSEKEEPING_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tick.tick() => {
                    if let Err(e) = self.housekeeping().await {
                        tracing::warn!(error = %e, "housekeeping failed; will retry");
                    }
                }
            }
        }
        if let Err(e) = self.registry.flush_seen().await {
            tracing::warn!(error = %e, "flushing last-seen at shutdown failed");
        }
    }
}
