//! One running punchd instance: the store, the registry, the ingest path, the command queue and the metrics,
//! wired together, plus the housekeeping loop (flush last-seen, reload settings, resend or expire commands).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::config::Config;
use crate::devices::{ApprovalPolicy, CommandQueue, Registry};
use crate::ingest::Ingest;
use crate::metrics::Metrics;
use crate::store::sqlite::SqliteStore;
use crate::store::Store;

/// Everything a request handler needs. Cheap to clone.
#[derive(Clone)]
pub struct App {
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
}

/// How often housekeeping runs.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(2);

impl App {
    /// Open the configured database and load the registry.
    ///
    /// Errors: the database cannot be opened or migrated, or the registry cannot be read.
    pub async fn open(config: Config) -> anyhow::Result<App> {
        let store = SqliteStore::open(&config.database, config.durability)
            .map_err(|e| anyhow::anyhow!("opening database {}: {e}", config.database.display()))?;
        App::with_store(config, Arc::new(store)).await
    }

    /// Wire an instance around an open store.
    pub async fn with_store(config: Config, store: Arc<dyn Store>) -> anyhow::Result<App> {
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
        Ok(App {
            ingest: Ingest::new(store.clone(), metrics.clone()),
            commands: CommandQueue::new(store.clone(), Some(registry.clone())),
            config: Arc::new(config),
            store,
            registry,
            metrics,
        })
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
