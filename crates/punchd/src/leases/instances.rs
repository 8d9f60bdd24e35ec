//! Two punchd instances ([`App`]s) on one store, as several `punchd serve` share one PostgreSQL: a sink is drained
//! by exactly one of them at a time and a live pull terminal is connected by exactly one, and when that instance
//! dies (its runtime dropped: no clean stop, no release) the other takes over once the lease expired — and not
//! before, as the stored lease times show. Runs on SQLite (one store shared by both instances) always, and on
//! PostgreSQL (one store per instance on one schema) when `PUNCHD_TEST_POSTGRES_URL` is set.

use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, Utc};

use crate::app::App;
use crate::config::{Config, Overrides};
use crate::domain::DeviceSn;
use crate::leases::Leases;
use crate::metrics::SinkLabels;
use crate::store::leases::Lease;
use crate::store::outbox::{NewSink, SinkKind};
use crate::store::sqlite::{Durability, SqliteStore};
use crate::store::Store;
use crate::test_support::{punch, receiver, wait_for};

/// How long the test leases last: long enough for a loaded 2-core machine to renew, short enough to wait for.
const TTL: Duration = Duration::from_secs(3);

fn config(dir: &tempfile::TempDir) -> Config {
    Config::load(
        None,
        &Overrides {
            database: Some(dir.path().join("punchd.db").display().to_string()),
            default_time_zone: Some("UTC".into()),
            ..Overrides::default()
        },
    )
    .expect("config")
}

/// One instance: an [`App`] with its own lease identity, running on its own runtime so the test can kill it.
struct Instance {
    app: App,
    runtime: Option<tokio::runtime::Runtime>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Instance {
    /// Start instance `holder` on `store`: its sink workers, and its pull scheduler when `pull` is given. The
    /// runtime is built on a plain thread (a runtime cannot be started from inside the test's).
    fn start(
        holder: &str,
        config: Config,
        store: Arc<dyn Store>,
        pull: Option<crate::sources::pull::PullSettings>,
    ) -> Instance {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let holder = holder.to_owned();
        let (runtime, app, tasks) = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            let (app, tasks) = runtime.block_on(async move {
                let mut app = App::with_store(config, store).await.expect("app");
                app.set_leases(Leases::new(holder, TTL));
                let until = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
                    let _ = rx.wait_for(|s| *s).await;
                };
                let mut tasks = vec![
                    tokio::spawn(crate::sinks::run(app.clone(), until(stopped.clone()))),
                    tokio::spawn(app.clone().run_housekeeping(until(stopped.clone()))),
                ];
                if let Some(settings) = pull {
                    tasks.push(tokio::spawn(crate::sources::pull::run_scheduler_with(
                        app.clone(),
                        settings,
                        until(stopped),
                    )));
                }
                (app, tasks)
            });
            (runtime, app, tasks)
        })
        .join()
        .expect("instance thread");
        Instance {
            app,
            runtime: Some(runtime),
            tasks,
            stop,
        }
    }

    /// Kill the instance as `kill -9` would: every task dropped where it stands, no lease released.
    fn kill(mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }

    fn delivered(&self, sink: &str) -> u64 {
        self.app
            .metrics
            .sinks
            .delivered
            .get_or_create(&SinkLabels {
                sink: sink.to_owned(),
            })
            .get()
    }
}

impl Drop for Instance {
    /// A clean stop: the shutdown signal, then every task ends (releasing its leases).
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        let tasks = std::mem::take(&mut self.tasks);
        if let Some(runtime) = self.runtime.take() {
            let _ = std::thread::spawn(move || {
                runtime.block_on(async {
                    for task in tasks {
                        let _ = tokio::time::timeout(Duration::from_secs(20), task).await;
                    }
                });
                runtime.shutdown_timeout(Duration::from_secs(5));
            })
            .join();
        }
    }
}

async fn lease(store: &dyn Store, name: &str) -> Option<Lease> {
    store.get_lease(name).await.expect("lease")
}

/// The sink check, on instances A and B over `store_a` / `store_b` (the same database).
async fn one_instance_drains_a_sink_and_the_other_takes_over_after_expiry(
    dir: &tempfile::TempDir,
    store_a: Arc<dyn Store>,
    store_b: Arc<dyn Store>,
) {
    let rx = receiver().await;
    let sink = store_a
        .create_sink(
            NewSink {
                name: "hr".into(),
                kind: SinkKind::Webhook,
                config: serde_json::json!({"url": rx.url, "secret": "s", "batch_size": 7}),
                since: None,
            },
            Utc::now(),
        )
        .await
        .expect("sink");
    let a = Instance::start("A", config(dir), store_a.clone(), None);
    let first = wait_for("A holds the sink's lease", || async {
        lease(store_b.as_ref(), "sink:hr")
            .await
            .filter(|l| l.holder == "A")
    })
    .await;
    assert_eq!(first.generation, 1);
    let b = Instance::start("B", config(dir), store_b.clone(), None);

    // Both instances run a worker for the sink; punches arrive through either store.
    let dev = DeviceSn::parse("LEASE-SINK-1").expect("sn");
    punch(store_b.as_ref(), &dev, 0, 30).await;
    punch(store_a.as_ref(), &dev, 30, 60).await;
    wait_for("60 events delivered and recorded", || async {
        let counts = store_b.sink_counts(sink.id).await.expect("counts");
        (counts.delivered == 60 && counts.pending == 0).then_some(())
    })
    .await;
    let keys = rx.keys();
    let distinct: std::collections::HashSet<&String> = keys.iter().collect();
    assert_eq!(
        (keys.len(), distinct.len()),
        (60, 60),
        "every event sent once"
    );
    assert_eq!(
        (a.delivered("hr"), b.delivered("hr")),
        (60, 0),
        "only the lease holder delivered"
    );

    // A dies holding the lease. Its last renewal says until when; B may not take over before that.
    a.kill();
    let last_of_a = lease(store_b.as_ref(), "sink:hr")
        .await
        .expect("A's lease is still stored");
    assert_eq!(
        last_of_a.holder, "A",
        "B took over before A's lease expired"
    );
    punch(store_b.as_ref(), &dev, 60, 80).await;
    let taken = wait_for("B holds the sink's lease", || async {
        lease(store_b.as_ref(), "sink:hr")
            .await
            .filter(|l| l.holder == "B")
    })
    .await;
    assert!(
        taken.acquired_at >= last_of_a.expires_at,
        "taken over at {} before A's lease ended at {}",
        taken.acquired_at,
        last_of_a.expires_at
    );
    assert_eq!(taken.generation, 2);
    wait_for("80 events delivered and recorded", || async {
        let counts = store_b.sink_counts(sink.id).await.expect("counts");
        (counts.delivered == 80 && counts.pending == 0).then_some(())
    })
    .await;
    let keys = rx.keys();
    let distinct: std::collections::HashSet<&String> = keys.iter().collect();
    assert_eq!(
        (keys.len(), distinct.len()),
        (80, 80),
        "every event sent once"
    );
    assert_eq!(
        b.delivered("hr"),
        20,
        "B delivered what arrived after A died"
    );

    // A clean stop releases the lease at once.
    drop(b);
    let released = lease(store_a.as_ref(), "sink:hr").await.expect("stored");
    assert!(
        released.expires_at <= Utc::now(),
        "released on a clean stop: {released:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_one_instance_drains_a_sink_and_the_other_takes_over_after_expiry() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&dir.path().join("punchd.db"), Durability::CrashSafe).expect("open"),
    );
    one_instance_drains_a_sink_and_the_other_takes_over_after_expiry(&dir, store.clone(), store)
        .await;
}

/// The live pull check: a live terminal is connected by the lease holder only; B connects after A died and its
/// lease expired, and the punches made meanwhile are caught up from the log.
async fn one_instance_pulls_a_live_terminal_and_the_other_takes_over_after_expiry(
    dir: &tempfile::TempDir,
    store_a: Arc<dyn Store>,
    store_b: Arc<dyn Store>,
) {
    use zk_sim::pull::{Profile, PullSim, PullSimConfig};
    let sim_config = PullSimConfig {
        punches: 5,
        punches_until: NaiveDate::from_ymd_opt(2026, 3, 6).and_then(|d| d.and_hms_opt(18, 0, 0)),
        ..PullSimConfig::new(Profile::Zk8)
    };
    let sn = DeviceSn::parse(&sim_config.serial_number).expect("sn");
    let sim = PullSim::bind("127.0.0.1:0".parse().expect("addr"), sim_config)
        .await
        .expect("sim");
    let terminal = sim.handle();
    tokio::spawn(sim.run(std::future::pending::<()>()));
    store_a
        .create_device(crate::devices::registry::new_pull_device(
            sn.clone(),
            crate::domain::Transport::Tcp,
            terminal.local_addr().to_string(),
            0,
            0,
            false,
            Utc::now(),
        ))
        .await
        .expect("device");
    let settings = crate::sources::pull::PullSettings {
        keep_alive_every: Duration::from_millis(500),
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(400),
        check_every: Duration::from_millis(50),
        ..crate::sources::pull::PullSettings::default()
    };
    let count = |store: Arc<dyn Store>, sn: DeviceSn| async move {
        store
            .count_punches(&crate::store::PunchFilter {
                device_sn: Some(sn),
                ..Default::default()
            })
            .await
            .expect("count")
    };
    let name = format!("pull:{sn}");

    let a = Instance::start("A", config(dir), store_a.clone(), Some(settings.clone()));
    wait_for("A listens live", || async {
        let held = lease(store_b.as_ref(), &name)
            .await
            .is_some_and(|l| l.holder == "A");
        (held && terminal.live_subscribers() == 1).then_some(())
    })
    .await;
    let b = Instance::start("B", config(dir), store_b.clone(), Some(settings));
    assert_eq!(
        count(store_b.clone(), sn.clone()).await,
        5,
        "the log caught up"
    );
    terminal.punch("7", 0, 1);
    wait_for("A stores the live punch", || async {
        (count(store_b.clone(), sn.clone()).await == 6).then_some(())
    })
    .await;

    a.kill();
    let last_of_a = lease(store_b.as_ref(), &name).await.expect("A's lease");
    assert_eq!(
        last_of_a.holder, "A",
        "B took over before A's lease expired"
    );
    terminal.punch("8", 1, 1);
    let taken = wait_for("B holds the terminal's lease", || async {
        lease(store_b.as_ref(), &name)
            .await
            .filter(|l| l.holder == "B")
    })
    .await;
    assert!(
        taken.acquired_at >= last_of_a.expires_at,
        "taken over at {} before A's lease ended at {}",
        taken.acquired_at,
        last_of_a.expires_at
    );
    assert_eq!(taken.generation, 2);
    wait_for(
        "B listens live and caught up the punch made meanwhile",
        || async {
            (terminal.live_subscribers() == 1 && count(store_b.clone(), sn.clone()).await == 7)
                .then_some(())
        },
    )
    .await;
    terminal.punch("9", 0, 1);
    wait_for("B stores the live punch", || async {
        (count(store_b.clone(), sn.clone()).await == 8).then_some(())
    })
    .await;
    assert_eq!(
        terminal.counters().tcp_connections,
        2,
        "one connection from A, then one from B: never both"
    );
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_one_instance_pulls_a_live_terminal_and_the_other_takes_over_after_expiry() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&dir.path().join("punchd.db"), Durability::CrashSafe).expect("open"),
    );
    one_instance_pulls_a_live_terminal_and_the_other_takes_over_after_expiry(
        &dir,
        store.clone(),
        store,
    )
    .await;
}

/// Two stores on one fresh PostgreSQL schema (one per instance, as two `punchd serve` processes have), when
/// `PUNCHD_TEST_POSTGRES_URL` is set; `None` (skipped, with a line saying so) otherwise. CI always sets it.
async fn postgres_pair() -> Option<(Arc<dyn Store>, Arc<dyn Store>)> {
    use crate::store::postgres::PgStore;
    let url = match std::env::var("PUNCHD_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            assert!(
                std::env::var("CI").is_err(),
                "PUNCHD_TEST_POSTGRES_URL must be set in CI (.ci/run sets it)"
            );
            eprintln!("skipped: PUNCHD_TEST_POSTGRES_URL is not set");
            return None;
        }
    };
    let a = PgStore::open_isolated_for_test(&url)
        .await
        .expect("open postgres");
    let schema = a.schema().expect("an isolated schema").to_owned();
    let joiner = if url.contains('?') { '&' } else { '?' };
    let b = PgStore::open(&format!("{url}{joiner}options=-csearch_path%3D{schema}"))
        .await
        .expect("open the same schema again");
    Some((Arc::new(a), Arc::new(b)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_one_instance_drains_a_sink_and_the_other_takes_over_after_expiry() {
    let Some((a, b)) = postgres_pair().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    one_instance_drains_a_sink_and_the_other_takes_over_after_expiry(&dir, a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_one_instance_pulls_a_live_terminal_and_the_other_takes_over_after_expiry() {
    let Some((a, b)) = postgres_pair().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    one_instance_pulls_a_live_terminal_and_the_other_takes_over_after_expiry(&dir, a, b).await;
}
