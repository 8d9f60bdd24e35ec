//! The agent's client of the hub's agent API (`/api/v1/agent/…`): HTTPS with rustls, the hub's certificate
//! verified against the bundled web PKI roots or, with `--ca-cert`, a custom CA.

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;

use super::wire::{
    AlarmReport, BatchReply, DeviceStatus, Hello, HelloReply, PunchBatch, SequenceGap,
};

/// What went wrong talking to the hub.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The hub could not be reached or did not answer in time (nothing is known to be stored).
    #[error("hub unreachable: {0}")]
    Unreachable(String),
    /// The hub answered with an error status; its message is kept.
    #[error("hub answered {status}: {message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The hub's `error` text (or the body).
        message: String,
    },
    /// The batch starts past what the hub holds: send again from `last_seq + 1`.
    #[error("the hub holds the device up to sequence {last_seq}")]
    Gap {
        /// The highest sequence the hub holds.
        last_seq: i64,
    },
}

impl HubError {
    /// Whether retrying later may help (unreachable, timeouts, 5xx, 429) rather than a refusal that needs an
    /// operator (401, 403, 400).
    pub fn is_transient(&self) -> bool {
        match self {
            HubError::Unreachable(_) | HubError::Gap { .. } => true,
            HubError::Status { status, .. } => *status >= 500 || *status == 429 || *status == 408,
        }
    }
}

/// A client of one hub with one agent token.
#[derive(Clone)]
pub struct HubClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl HubClient {
    /// A client for the hub at `base` (`https://hub.example.com`), waiting at most `timeout` per request. With
    /// `ca_cert` (a PEM file), that CA is trusted as well as the web PKI roots.
    ///
    /// Errors: the CA file cannot be read or is not PEM, or the TLS setup fails.
    pub fn new(
        base: &str,
        token: &str,
        ca_cert: Option<&Path>,
        timeout: Duration,
    ) -> anyhow::Result<HubClient> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("punchd-agent/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = ca_cert {
            let pem = std::fs::read(path).map_err(|e| {
                anyhow::anyhow!("reading the CA certificate {}: {e}", path.display())
            })?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| {
                anyhow::anyhow!("the CA certificate {} is not PEM: {e}", path.display())
            })?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder
            .build()
            .map_err(|e| anyhow::anyhow!("setting up the HTTPS client: {e}"))?;
        Ok(HubClient {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        })
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, HubError> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| HubError::Unreachable(error_chain(&e)))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| HubError::Unreachable(error_chain(&e)))?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| HubError::Status {
                status: status.as_u16(),
                message: format!("unreadable answer: {e}"),
            });
        }
        if status == StatusCode::CONFLICT {
            if let Ok(gap) = serde_json::from_slice::<SequenceGap>(&body) {
                return Err(HubError::Gap {
                    last_seq: gap.last_seq,
                });
            }
        }
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned());
        Err(HubError::Status {
            status: status.as_u16(),
            message,
        })
    }

    /// `POST /api/v1/agent/hello`.
    pub async fn hello(&self, hello: &Hello) -> Result<HelloReply, HubError> {
        self.send(
            self.http
                .post(format!("{}/api/v1/agent/hello", self.base))
                .json(hello),
        )
        .await
    }

    /// `POST /api/v1/agent/batches`: answered after the hub stored the batch durably.
    pub async fn send_batch(&self, batch: &PunchBatch) -> Result<BatchReply, HubError> {
        self.send(
            self.http
                .post(format!("{}/api/v1/agent/batches", self.base))
                .json(batch),
        )
        .await
    }

    /// `GET /api/v1/agent/devices/{sn}`.
    pub async fn device_status(&self, sn: &str) -> Result<DeviceStatus, HubError> {
        let sn = percent_encoding::utf8_percent_encode(sn, percent_encoding::NON_ALPHANUMERIC);
        self.send(
            self.http
                .get(format!("{}/api/v1/agent/devices/{sn}", self.base)),
        )
        .await
    }

    /// `POST /api/v1/agent/alarms`.
    pub async fn report_alarms(&self, alarms: &[AlarmReport]) -> Result<(), HubError> {
        let _: serde_json::Value = self
            .send(
                self.http
                    .post(format!("{}/api/v1/agent/alarms", self.base))
                    .json(alarms),
            )
            .await?;
        Ok(())
    }
}

/// An error and its causes on one line (reqwest hides the useful part, "connection refused", in a source).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}
