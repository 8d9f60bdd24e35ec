//! Sinks wait for a pause in collection ("collection first", README): while terminals upload back to back, a
//! sink's rounds wait, at most `delivery_wait_secs` per busy stretch ([`CollectionWait`]).
//!
//! The sinks' threads already run at the lowest CPU priority (`sinks::run_at_priority`), but part of what a round
//! costs is not lowered with them: its outbox read and the recording of its outcomes run on the store's threads,
//! and the receivers (a JetStream server, a webhook receiver on the same box) run at their own priority. During an
//! upload burst that work competes with the terminals' uploads; waiting keeps it out of the burst, and the outbox,
//! written in each punch's own transaction, keeps every event meanwhile (BENCHMARKS.md, "Sinks wait for a pause in
//! collection").

use std::time::{Duration, Instant};

/// The busy share ([`crate::collection_load`]) at or above which collection counts as writing without pause.
/// Many terminals uploading back to back keep the share at 0.95–1 (the push benchmark's 64 terminals); a site
/// whose terminals upload now and then stays far below.
pub const COLLECTION_BUSY: f64 = 0.8;

/// How often a waiting sink looks at collection's load again.
pub const WAIT_STEP: Duration = Duration::from_millis(100);

/// Whether a sink's next round waits for collection. One per sink worker.
///
/// While the busy share is at least [`COLLECTION_BUSY`], rounds wait; once one busy stretch has lasted `max`
/// (`delivery_wait_secs`, `Config::delivery_wait`), rounds run alongside collection until the share drops, so
/// sustained load delays delivery by at most `max` and never stops it.
#[derive(Debug, Default)]
pub struct CollectionWait {
    /// When this sink first saw the current busy stretch.
    since: Option<Instant>,
    /// Whether the end of this stretch's wait was logged.
    told: bool,
}

impl CollectionWait {
    /// Whether the round due at `now` waits, given collection's busy `share` (0.0–1.0) and the longest wait `max`
    /// (`Duration::ZERO`: never). Logs at info, once per stretch, when a stretch outlasts `max`.
    pub fn waits(&mut self, share: f64, now: Instant, max: Duration, sink: &str) -> bool {
        if max.is_zero() || share < COLLECTION_BUSY {
            self.since = None;
            self.told = false;
            return false;
        }
        let since = *self.since.get_or_insert(now);
        if now.saturating_duration_since(since) < max {
            return true;
        }
        if !self.told {
            self.told = true;
            tracing::info!(
                sink,
                "collection has been writing without pause for {} s: delivering alongside it until it pauses",
                max.as_secs()
            );
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::Utc;

    use super::*;
    use crate::app::App;
    use crate::config::{Config, Overrides};
    use crate::domain::DeviceSn;
    use crate::metrics::SinkLabels;
    use crate::store::outbox::{NewSink, SinkKind};
    use crate::store::sqlite::{Durability, SqliteStore};
    use crate::store::Store;
    use crate::test_support::{punch, receiver};

    const MAX: Duration = Duration::from_secs(30);

    #[test]
    fn rounds_wait_while_collection_is_busy_at_most_max_per_stretch() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let mut wait = CollectionWait::default();
        assert!(!wait.waits(0.5, s(0), MAX, "hr"), "not busy: no wait");
        assert!(wait.waits(0.95, s(1), MAX, "hr"), "busy: waits");
        assert!(wait.waits(1.0, s(30), MAX, "hr"), "29 s into the stretch");
        assert!(!wait.waits(1.0, s(31), MAX, "hr"), "30 s: delivers");
        assert!(
            !wait.waits(1.0, s(200), MAX, "hr"),
            "and goes on delivering while the stretch lasts"
        );
        assert!(!wait.waits(0.3, s(201), MAX, "hr"), "a pause ends it");
        assert!(
            wait.waits(0.9, s(202), MAX, "hr"),
            "the next stretch waits again"
        );
        assert!(
            !wait.waits(1.0, s(203), Duration::ZERO, "hr"),
            "0 never waits"
        );
    }

    /// The worker end to end: with collection busy (a write held open on the ingest path), the punches already
    /// in the outbox wait the configured time, then reach the receiver although collection is still busy. Fails
    /// without the wait (the receiver has them within a few hundred milliseconds).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_busy_collection_holds_delivery_back_for_delivery_wait_then_lets_it_through() {
        let dir = tempfile::tempdir().expect("dir");
        let mut config = Config::load(
            None,
            &Overrides {
                database: Some(dir.path().join("punchd.db").display().to_string()),
                default_time_zone: Some("UTC".into()),
                ..Overrides::default()
            },
        )
        .expect("config");
        let wait = Duration::from_secs(3);
        config.delivery_wait = wait;
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&dir.path().join("punchd.db"), Durability::CrashSafe).expect("open"),
        );
        let app = App::with_store(config, store.clone()).await.expect("app");
        let rx = receiver().await;
        store
            .create_sink(
                NewSink {
                    name: "hr".into(),
                    kind: SinkKind::Webhook,
                    config: serde_json::json!({"url": rx.url, "secret": "s"}),
                    since: None,
                },
                Utc::now(),
            )
            .await
            .expect("sink");
        let dev = DeviceSn::parse("WAIT0001").expect("sn");
        punch(store.as_ref(), &dev, 0, 5).await;

        // Collection writing without pause: one write held open until the share says so (a window or two).
        app.ingest.load().begin_at(Instant::now());
        let until = Instant::now() + Duration::from_secs(10);
        while app.ingest.load().busy_share() < COLLECTION_BUSY {
            assert!(
                Instant::now() < until,
                "a write held open never made collection busy"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        let (stop, stopped) = tokio::sync::watch::channel(false);
        let started = Instant::now();
        let worker = tokio::spawn(crate::sinks::run(app.clone(), async move {
            let mut stopped = stopped;
            let _ = stopped.wait_for(|s| *s).await;
        }));
        let waiting = app
            .metrics
            .sinks
            .waiting
            .get_or_create(&SinkLabels { sink: "hr".into() })
            .clone();
        // The worker's first round waits (however long a loaded machine takes to start it), and shows it.
        let until = Instant::now() + Duration::from_secs(30);
        while waiting.get() != 1 {
            assert!(Instant::now() < until, "the sink never showed it waits");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(rx.keys().len(), 0, "delivered while waiting");
        assert_eq!(waiting.get(), 1, "still waiting");

        let until = Instant::now() + Duration::from_secs(60);
        while rx.keys().len() < 5 {
            assert!(Instant::now() < until, "not delivered within 60 s");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(
            started.elapsed() >= wait,
            "delivered after {:?}, before the wait of {wait:?} was over",
            started.elapsed()
        );
        assert!(
            app.ingest.load().busy_share() >= COLLECTION_BUSY,
            "collection was still busy when the sink delivered"
        );
        assert_eq!(waiting.get(), 0);
        let keys: std::collections::HashSet<String> = rx.keys().into_iter().collect();
        assert_eq!((rx.keys().len(), keys.len()), (5, 5), "each punch once");
        let _ = stop.send(true);
        let _ = worker.await;
    }
}
