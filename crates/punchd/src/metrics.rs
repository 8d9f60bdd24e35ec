//! Prometheus metrics (`/metrics`): requests, punches stored, duplicates, errors, devices online.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of the request counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `handshake`, `attlog`, `operlog`, `poll`, `devicecmd`, `api`, …
    pub endpoint: String,
    /// HTTP status code.
    pub status: u16,
}

/// Labels of the per-source gauges (issue 9).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    /// The source's name.
    pub source: String,
    /// webhook, import or biotime.
    pub kind: String,
}

/// Every metric punchd exports.
pub struct Metrics {
    registry: Registry,
    /// Requests served, by endpoint and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Punches newly stored.
    pub punches_stored: Counter,
    /// Punches received again and not stored twice.
    pub punches_duplicate: Counter,
    /// Lines or records that could not be read (kept in the journal).
    pub line_errors: Counter,
    /// Writes that failed in the store (the terminal was not acknowledged and will retry).
    pub storage_errors: Counter,
    /// Approved devices seen within their online window (set when scraped; pending and blocked not counted).
    pub devices_online: Gauge,
    /// Devices registered (set when scraped).
    pub devices_registered: Gauge,
    /// Per sink: delivery counters and gauges (sinks/mod.rs).
    pub sinks: SinkMetrics,
    /// Requests and connections refused by a limit, nothing of them kept, by reason (`no_sn`, `unapproved`,
    /// `new_sn_rate`, `too_many_lines`, `connection_limit`, `not_established`) — see `limits`.
    pub refused: Family<RefusedLabels, Counter>,
    /// Devices dropped from `pending` because `max_pending_devices` was reached.
    pub pending_dropped: Counter,
    /// Connections open now (set when scraped).
    pub connections_open: Gauge,
    /// Per source: punches stored through it so far (set when scraped, from the store).
    pub source_punches_stored: Family<SourceLabels, Gauge>,
    /// Per source: punches it delivered that were already held (set when scraped).
    pub source_punches_duplicate: Family<SourceLabels, Gauge>,
    /// Per source: rows or events refused (set when scraped).
    pub source_rejected: Family<SourceLabels, Gauge>,
    /// Per source: 1 when its last run failed, else 0 (set when scraped).
    pub source_failing: Family<SourceLabels, Gauge>,
    /// Alarms raised about edge agents: punches acknowledged but missing (on the hub), or found missing by the
    /// agent (on the agent) — see `agent`.
    pub agent_alarms: Counter,
}

/// Labels of the per-sink metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabels {
    /// The sink's name.
    pub sink: String,
}

/// Per-sink metrics: `punchd_sink_delivered_total`, `punchd_sink_retried_total`, `punchd_sink_parked_total`
/// (events), `punchd_sink_pending` (events not yet delivered or parked) and `punchd_sink_failing` (1 while the
/// sink's last attempt failed or it is paused by punchd).
#[derive(Debug, Clone, Default)]
pub struct SinkMetrics {
    /// Events delivered.
    pub delivered: Family<SinkLabels, Counter>,
    /// Attempts that failed and will be retried.
    pub retried: Family<SinkLabels, Counter>,
    /// Events parked.
    pub parked: Family<SinkLabels, Counter>,
    /// Events pending.
    pub pending: Family<SinkLabels, Gauge>,
    /// 1 while failing.
    pub failing: Family<SinkLabels, Gauge>,
    /// 1 while the sink's rounds wait for a pause in collection (`sinks::collection_wait`).
    pub waiting: Family<SinkLabels, Gauge>,
}

/// Labels of the refused counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    /// Which limit refused it.
    pub reason: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Create and register every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("punchd");
        let requests = Family::<RequestLabels, Counter>::default();
        let punches_stored = Counter::default();
        let punches_duplicate = Counter::default();
        let line_errors = Counter::default();
        let storage_errors = Counter::default();
        let devices_online = Gauge::default();
        let devices_registered = Gauge::default();
        registry.register("requests", "HTTP requests served", requests.clone());
        registry.register(
            "punches_stored",
            "Punches newly stored",
            punches_stored.clone(),
        );
        registry.register(
            "punches_duplicate",
            "Punches received again and not stored twice",
            punches_duplicate.clone(),
        );
        registry.register(
            "line_errors",
            "Lines or records that could not be read (kept in the raw journal)",
            line_errors.clone(),
        );
        registry.register(
            "storage_errors",
            "Writes that failed in the store (not acknowledged)",
            storage_errors.clone(),
        );
        registry.register(
            "devices_online",
            "Approved devices seen within their online window (pending and blocked ones are not counted)",
            devices_online.clone(),
        );
        registry.register(
            "devices_registered",
            "Devices registered",
            devices_registered.clone(),
        );
        let sinks = SinkMetrics::default();
        registry.register(
            "sink_delivered",
            "Events a sink delivered",
            sinks.delivered.clone(),
        );
        registry.register(
            "sink_retried",
            "Failed attempts to be retried",
            sinks.retried.clone(),
        );
        registry.register(
            "sink_parked",
            "Events parked (never dropped)",
            sinks.parked.clone(),
        );
        registry.register(
            "sink_pending",
            "Events not yet delivered or parked",
            sinks.pending.clone(),
        );
        registry.register(
            "sink_failing",
            "1 while the sink is failing",
            sinks.failing.clone(),
        );
        registry.register(
            "sink_waiting",
            "1 while the sink waits for a pause in collection (delivery_wait_secs)",
            sinks.waiting.clone(),
        );
        let refused = Family::<RefusedLabels, Counter>::default();
        let pending_dropped = Counter::default();
        let connections_open = Gauge::default();
        registry.register(
            "refused",
            "Requests and connections refused by a limit; nothing of them was kept",
            refused.clone(),
        );
        registry.register(
            "pending_dropped",
            "Devices dropped from pending because max_pending_devices was reached",
            pending_dropped.clone(),
        );
        registry.register(
            "connections_open",
            "Connections open now",
            connections_open.clone(),
        );
        let source_punches_stored = Family::<SourceLabels, Gauge>::default();
        let source_punches_duplicate = Family::<SourceLabels, Gauge>::default();
        let source_rejected = Family::<SourceLabels, Gauge>::default();
        let source_failing = Family::<SourceLabels, Gauge>::default();
        registry.register(
            "source_punches_stored",
            "Punches stored through a source (webhook, import, biotime)",
            source_punches_stored.clone(),
        );
        registry.register(
            "source_punches_duplicate",
            "Punches a source delivered that were already held",
            source_punches_duplicate.clone(),
        );
        registry.register(
            "source_rejected",
            "Rows or events a source delivered that were refused",
            source_rejected.clone(),
        );
        registry.register(
            "source_failing",
            "1 when the source's last run failed",
            source_failing.clone(),
        );
        let agent_alarms = Counter::default();
        registry.register(
            "agent_alarms",
            "Alarms about edge agents: acknowledged punches found missing",
            agent_alarms.clone(),
        );
        Metrics {
            agent_alarms,
            sinks,
            refused,
            pending_dropped,
            connections_open,
            registry,
            source_punches_stored,
            source_punches_duplicate,
            source_rejected,
            source_failing,
            requests,
            punches_stored,
            punches_duplicate,
            line_errors,
            storage_errors,
            devices_online,
            devices_registered,
        }
    }

    /// Count one request.
    pub fn request(&self, endpoint: &str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                endpoint: endpoint.to_owned(),
                status,
            })
            .inc();
    }

    /// Count one request or connection refused by a limit.
    pub fn refuse(&self, reason: &str) {
        self.refused
            .get_or_create(&RefusedLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
