//! The webhook sink: batches of check-ins POSTed as JSON ([`super::CheckInBatch`], schema `punchd.checkins.v1`,
//! in the OpenAPI document), signed so the receiver can check who sent them and reject replays.
//!
//! Each request carries:
//! - `X-Punchd-Timestamp`: the send time, unix seconds (UTC);
//! - `X-Punchd-Signature`: `sha256=` and the lowercase hex HMAC-SHA256, keyed with the sink's secret, over the
//!   bytes `<timestamp>.<body>` (the timestamp header's value, a dot, the exact body bytes);
//! - `Idempotency-Key`: the key of the batch's first check-in; every check-in carries its own
//!   `idempotency_key` in the body, which is what a receiver de-duplicates on;
//! - `X-Punchd-Event`: `checkin` for these batches; `checkin.voided` for withdrawals of check-ins whose punch HR
//!   voided (body schema `punchd.checkin-voids.v1`, [`super::withdraw`]).
//!
//! A receiver should recompute the signature over the raw body, compare in constant time, and refuse a timestamp
//! more than 5 minutes from its clock (a replayed request then fails even with a valid signature).
//!
//! Answers: any 2xx → every check-in of the batch delivered; 401/403 → the sink pauses (configuration error);
//! 408, 429, 5xx, timeouts and connection errors → retried with backoff; any other 4xx → the batch's events are
//! parked as rejected with the receiver's answer (replay them once the receiver is fixed).

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};

use super::withdraw::{VoidedCheckIn, VoidedCheckInBatch, VOIDED_EVENT, VOIDS_SCHEMA};
use super::{Attempt, CheckIn, CheckInBatch, Deliver, CHECKINS_SCHEMA};
use crate::store::outbox::{OutboxEvent, ParkKind};

/// Header with the send time (unix seconds).
pub const TIMESTAMP_HEADER: &str = "X-Punchd-Timestamp";
/// Header with `sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub const SIGNATURE_HEADER: &str = "X-Punchd-Signature";
/// Header naming what the body holds: `checkin` (a [`super::CheckInBatch`]) or `checkin.voided` (a
/// [`VoidedCheckInBatch`]).
pub const EVENT_HEADER: &str = "X-Punchd-Event";

/// A webhook sink's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookConfig {
    /// Where to POST (http or https).
    pub url: String,
    /// The HMAC key.
    pub secret: String,
    /// Check-ins per request (default 500).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Seconds to wait for an answer (default 30).
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_batch() -> usize {
    500
}

fn default_timeout() -> u64 {
    30
}

/// The signature header's value for `body` sent at `timestamp` (unix seconds).
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length; new_from_slice cannot fail for it.
    let mut mac = match Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The webhook deliverer.
pub struct Webhook {
    config: WebhookConfig,
    client: reqwest::Client,
}

impl Webhook {
    /// Check the settings and build the HTTP client (rustls).
    ///
    /// Errors: the URL is not http(s), the secret is empty, or the client cannot be built.
    pub fn new(config: WebhookConfig) -> anyhow::Result<Webhook> {
        let url = reqwest::Url::parse(&config.url)
            .map_err(|e| anyhow::anyhow!("webhook URL {:?}: {e}", config.url))?;
        if !matches!(url.scheme(), "http" | "https") {
            anyhow::bail!("webhook URL {:?} is not http or https", config.url);
        }
        if config.secret.is_empty() {
            anyhow::bail!("the webhook secret is empty (receivers verify the signature with it)");
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout_secs.max(1)))
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("punchd/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Webhook { config, client })
    }
}

impl Webhook {
    /// POST a signed body (`event` in [`EVENT_HEADER`]).
    async fn post(
        &self,
        body: Vec<u8>,
        timestamp: i64,
        first_key: &str,
        event: &str,
    ) -> reqwest::Result<reqwest::Response> {
        self.client
            .post(&self.config.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(
                SIGNATURE_HEADER,
                sign(&self.config.secret, timestamp, &body),
            )
            .header("Idempotency-Key", first_key)
            .header(EVENT_HEADER, event)
            .body(body)
            .send()
            .await
    }

    /// Send withdrawals of voided check-ins as one [`VoidedCheckInBatch`] (schema `punchd.checkin-voids.v1`),
    /// signed like check-in batches. `Ok` when the receiver answered 2xx.
    ///
    /// Errors: the receiver's answer or the transport error, in plain words (tried again next round).
    pub async fn send_voids(&self, voids: &[VoidedCheckIn]) -> Result<(), String> {
        let now = chrono::Utc::now();
        let batch = VoidedCheckInBatch {
            schema: VOIDS_SCHEMA.into(),
            sent_at: now,
            voids: voids.to_vec(),
        };
        let body =
            serde_json::to_vec(&batch).map_err(|e| format!("encoding the batch failed: {e}"))?;
        let first_key = voids
            .first()
            .map(|v| v.idempotency_key.clone())
            .unwrap_or_default();
        let response = self
            .post(body, now.timestamp(), &first_key, VOIDED_EVENT)
            .await
            .map_err(|e| format!("could not reach the receiver: {}", error_chain(&e)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text: String = response
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect();
        Err(format!(
            "the receiver answered HTTP {}: {text}",
            status.as_u16()
        ))
    }
}

#[async_trait::async_trait]
impl Deliver for Webhook {
    fn ordered(&self) -> bool {
        false
    }

    fn batch_size(&self) -> usize {
        self.config.batch_size.max(1)
    }

    async fn deliver(&self, events: &[OutboxEvent]) -> Vec<Attempt> {
        let all = |a: Attempt| vec![a; events.len()];
        let now = chrono::Utc::now();
        let batch = CheckInBatch {
            schema: CHECKINS_SCHEMA.into(),
            sent_at: now,
            checkins: events.iter().map(CheckIn::of).collect(),
        };
        let body = match serde_json::to_vec(&batch) {
            Ok(body) => body,
            Err(e) => return all(Attempt::Retry(format!("encoding the batch failed: {e}"))),
        };
        let timestamp = now.timestamp();
        let first_key = batch
            .checkins
            .first()
            .map(|c| c.idempotency_key.clone())
            .unwrap_or_default();
        let answer = self.post(body, timestamp, &first_key, "checkin").await;
        let response = match answer {
            Ok(response) => response,
            Err(e) if e.is_timeout() => {
                return all(Attempt::Retry(format!(
                    "the receiver did not answer within {} s",
                    self.config.timeout_secs
                )))
            }
            Err(e) => {
                return all(Attempt::Retry(format!(
                    "could not reach the receiver: {}",
                    error_chain(&e)
                )))
            }
        };
        let status = response.status();
        if status.is_success() {
            return all(Attempt::Delivered(None));
        }
        let text: String = response
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect();
        let code = status.as_u16();
        match code {
            401 | 403 => all(Attempt::Pause(format!(
                "the receiver refused the request (HTTP {code}: {text}); check the URL and the secret"
            ))),
            408 | 429 | 500..=599 => all(Attempt::Retry(format!("the receiver answered HTTP {code}: {text}"))),
            _ => all(Attempt::Park(
                ParkKind::Rejected,
                format!("the receiver rejected the batch (HTTP {code}: {text})"),
            )),
        }
    }
}

/// An error and its causes, joined (reqwest's top-level message alone says little).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
