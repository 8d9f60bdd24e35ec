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
    /// Devices seen within their online window (set when scraped).
    pub devices_online: Gauge,
    /// Devices registered (set when scraped).
    pub devices_registered: Gauge,
    /// Per source: punches stored through it so far (set when scraped, from the store).
    pub source_punches_stored: Family<SourceLabels, Gauge>,
    /// Per source: punches it delivered that were already held (set when scraped).
    pub source_punches_duplicate: Family<SourceLabels, Gauge>,
    /// Per source: rows or events refused (set when scraped).
    pub source_rejected: Family<SourceLabels, Gauge>,
    /// Per source: 1 when its last run failed, else 0 (set when scraped).
    pub source_failing: Family<SourceLabels, Gauge>,
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
            "Devices seen within their online window",
            devices_online.clone(),
        );
        registry.register(
            "devices_registered",
            "Devices registered",
            devices_registered.clone(),
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
        Metrics {
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

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
