//! The NATS sink: JetStream publishing, delivered = acknowledged by the stream.
//!
//! For every event two messages are published, both with a `Nats-Msg-Id` header so the stream drops a re-send
//! within its duplicate window (JetStream's de-duplication; 2 minutes by default, longer if the stream says so):
//! - the stored punch (JSON of the API's `Punch`) on `punchd.punches.<site>.<sn>`, `Nats-Msg-Id` = the idempotency
//!   key (not for a punch HR added in the monthly review, which is no stored punch; its key is
//!   [`super::added_key`]);
//! - the check-in ([`super::CheckIn`], schema `punchd.checkins.v1`) on `punchd.checkins.<site>.<employee>`,
//!   `Nats-Msg-Id` = the idempotency key + `.checkin`, header `Punchd-Event: checkin`.
//!
//! When HR voids a punch whose check-in was delivered, a withdrawal ([`super::withdraw::VoidedCheckIn`]) follows on
//! the same check-in subject with `Punchd-Event: checkin.voided` ([`super::withdraw`]).
//!
//! `<site>` is the device's site or `default`; subject tokens keep ASCII letters, digits, `-` and `_`, anything else
//! becomes `_`. The stream (default `PUNCHD`, subjects `punchd.>`) is created when missing, with JetStream's default
//! limits (it keeps everything: create it yourself beforehand to choose a retention). An event is delivered
//! when both acknowledgements came back (a duplicate acknowledgement counts: the stream has the message); the
//! reference kept is `<stream>:<sequence>` of the check-in. Connection and publish errors are retried.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::withdraw::{VoidedCheckIn, VOIDED_EVENT};
use super::{event_key, Attempt, CheckIn, Deliver};
use crate::store::outbox::OutboxEvent;

/// A NATS sink's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NatsConfig {
    /// Server URL, e.g. `nats://127.0.0.1:4222`.
    pub url: String,
    /// Stream name (default `PUNCHD`).
    #[serde(default = "default_stream")]
    pub stream: String,
}

/// Header naming what a check-in subject's message holds: `checkin` (a [`super::CheckIn`]) or `checkin.voided`
/// (a [`VoidedCheckIn`]: HR voided the punch, [`super::withdraw`]).
pub const EVENT_HEADER: &str = "Punchd-Event";

fn default_stream() -> String {
    "PUNCHD".into()
}

/// A subject token from free text (site, SN, employee).
pub fn subject_token(s: &str) -> String {
    let t: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if t.is_empty() {
        "_".into()
    } else {
        t
    }
}

/// The NATS deliverer; connects on first use and again after a failure.
pub struct Nats {
    config: NatsConfig,
    context: Mutex<Option<async_nats::jetstream::Context>>,
}

impl Nats {
    /// A deliverer for these settings (does not connect yet).
    pub fn new(config: NatsConfig) -> Nats {
        Nats {
            config,
            context: Mutex::new(None),
        }
    }

    /// Connect and make sure the stream exists.
    ///
    /// Errors: the server cannot be reached within 5 s, or the stream cannot be created (e.g. its subjects
    /// overlap another stream's).
    pub async fn connect(&self) -> anyhow::Result<async_nats::jetstream::Context> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .connect(self.config.url.as_str())
            .await
            .map_err(|e| anyhow::anyhow!("connecting to NATS at {}: {e}", self.config.url))?;
        let js = async_nats::jetstream::new(client);
        js.get_or_create_stream(async_nats::jetstream::stream::Config {
            name: self.config.stream.clone(),
            subjects: vec!["punchd.>".into()],
            ..Default::default()
        })
        .await
        .map_err(|e| {
            let text = e.to_string();
            let hint = if text.contains("overlap") {
                " (another stream already takes punchd.>: use its name with --stream)"
            } else if text.contains("no responders") || text.contains("not enabled") {
                " (is JetStream enabled: nats-server -js?)"
            } else {
                ""
            };
            anyhow::anyhow!(
                "JetStream stream {} on {}: {text}{hint}",
                self.config.stream,
                self.config.url
            )
        })?;
        Ok(js)
    }

    async fn context(&self) -> anyhow::Result<async_nats::jetstream::Context> {
        let mut slot = self.context.lock().await;
        if let Some(js) = slot.as_ref() {
            return Ok(js.clone());
        }
        let js = self.connect().await?;
        *slot = Some(js.clone());
        Ok(js)
    }

    async fn publish(
        js: &async_nats::jetstream::Context,
        subject: String,
        msg_id: &str,
        event: Option<&str>,
        payload: Vec<u8>,
    ) -> Result<async_nats::jetstream::context::PublishAckFuture, String> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, msg_id);
        if let Some(event) = event {
            headers.insert(EVENT_HEADER, event);
        }
        js.publish_with_headers(subject, headers, payload.into())
            .await
            .map_err(|e| format!("publishing to NATS failed: {e}"))
    }
}

impl Nats {
    /// Publish withdrawals of voided check-ins, each on its check-in's subject `punchd.checkins.<site>.<employee>`
    /// with `Punchd-Event: checkin.voided` and `Nats-Msg-Id` = its idempotency key. One answer per withdrawal, in
    /// order: `Ok` with the stream reference once acknowledged, or why not (tried again next round).
    pub async fn publish_voids(&self, voids: &[VoidedCheckIn]) -> Vec<Result<String, String>> {
        let js = match self.context().await {
            Ok(js) => js,
            Err(e) => return vec![Err(format!("{e:#}")); voids.len()],
        };
        let mut pending = Vec::with_capacity(voids.len());
        for v in voids {
            let site = subject_token(v.site.as_deref().unwrap_or("default"));
            let subject = format!("punchd.checkins.{site}.{}", subject_token(&v.employee));
            let body = serde_json::to_vec(v).unwrap_or_default();
            pending.push(
                Self::publish(&js, subject, &v.idempotency_key, Some(VOIDED_EVENT), body).await,
            );
        }
        let mut out = Vec::with_capacity(voids.len());
        let mut broken = false;
        for ack in pending {
            out.push(match ack {
                Ok(ack) => match ack.await {
                    Ok(ack) => Ok(format!(
                        "{VOIDED_EVENT} acknowledged by the stream ({}:{})",
                        ack.stream, ack.sequence
                    )),
                    Err(e) => Err(format!("the stream did not acknowledge: {e}")),
                },
                Err(e) => {
                    broken = true;
                    Err(e)
                }
            });
        }
        if broken {
            *self.context.lock().await = None;
        }
        out
    }
}

#[async_trait::async_trait]
impl Deliver for Nats {
    fn ordered(&self) -> bool {
        false
    }

    fn batch_size(&self) -> usize {
        256
    }

    async fn deliver(&self, events: &[OutboxEvent]) -> Vec<Attempt> {
        let js = match self.context().await {
            Ok(js) => js,
            Err(e) => return vec![Attempt::Retry(format!("{e:#}")); events.len()],
        };
        // Publish everything first, then wait for the acknowledgements (pipelined).
        let mut pending = Vec::with_capacity(events.len());
        for event in events {
            let checkin = CheckIn::of(event);
            let site = subject_token(event.device_site.as_deref().unwrap_or("default"));
            let key = event_key(event);
            let body = serde_json::to_vec(&checkin).unwrap_or_default();
            // A punch HR added is no stored punch: only its check-in is published.
            let punch_ack = match event.correction_id {
                Some(_) => None,
                None => Some(
                    Self::publish(
                        &js,
                        format!(
                            "punchd.punches.{site}.{}",
                            subject_token(event.punch.device_sn.as_str())
                        ),
                        &key,
                        None,
                        serde_json::to_vec(&event.punch).unwrap_or_default(),
                    )
                    .await,
                ),
            };
            let checkin_ack = Self::publish(
                &js,
                format!(
                    "punchd.checkins.{site}.{}",
                    subject_token(&checkin.employee)
                ),
                &format!("{key}.checkin"),
                Some("checkin"),
                body,
            )
            .await;
            pending.push((punch_ack, checkin_ack));
        }
        let mut out = Vec::with_capacity(events.len());
        let mut broken = false;
        for (punch_ack, checkin_ack) in pending {
            let outcome = match (punch_ack.transpose(), checkin_ack) {
                (Ok(p), Ok(c)) => {
                    let punch_acked = match p {
                        Some(p) => p.await.map(|_| ()),
                        None => Ok(()),
                    };
                    match (punch_acked, c.await) {
                        (Ok(()), Ok(ack)) => {
                            Attempt::Delivered(Some(format!("{}:{}", ack.stream, ack.sequence)))
                        }
                        (Err(e), _) | (_, Err(e)) => {
                            Attempt::Retry(format!("the stream did not acknowledge: {e}"))
                        }
                    }
                }
                (Err(e), _) | (_, Err(e)) => {
                    broken = true;
                    Attempt::Retry(e)
                }
            };
            out.push(outcome);
        }
        if broken {
            // Reconnect on the next call.
            *self.context.lock().await = None;
        }
        out
    }
}
