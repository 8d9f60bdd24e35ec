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
    /// Requests and connections refused by a limit, nothing of them kept, by reason (`no_sn`, `unapproved`,
    /// `new_sn_rate`, `too_many_lines`, `connection_limit`, `not_established`) — see `limits`.
    pub refused: Family<RefusedLabels, Counter>,
    /// Devices dropped from `pending` because `max_pending_devices` was reached.
    pub pending_dropped: Counter,
    /// Connections open now (set when scraped).
    pub connections_open: Gauge,
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
            "Devices seen within their online window",
            devices_online.clone(),
        );
        registry.register(
            "devices_registered",
            "Devices registered",
            devices_registered.clone(),
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
        Metrics {
            refused,
            pending_dropped,
            connections_open,
            registry,
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
