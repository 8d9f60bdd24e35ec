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
//! when both acknowledgements came back (a duplicate acknowledgement counts: the stream has the message). No
//! reference is kept (a withdrawal is a new message on the subject, it needs none), so a delivered event costs
//! the store no row (store/outbox.rs, the fast path). Connection and publish errors are retried.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::withdraw::{VoidedCheckIn, VOIDED_EVENT};
use super::{Attempt, CheckIn, Deliver};
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
        payload: bytes::Bytes,
    ) -> Result<async_nats::jetstream::context::PublishAckFuture, String> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, msg_id);
        if let Some(event) = event {
            headers.insert(EVENT_HEADER, event);
        }
        js.publish_with_headers(subject, headers, payload)
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
            pending.push(
                Self::publish(
                    &js,
                    subject,
                    &v.idempotency_key,
                    Some(VOIDED_EVENT),
                    json_bytes(v),
                )
                .await,
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

/// The acknowledgements one event waits for: its punch's (none for a punch HR added) and its check-in's.
type EventAcks = (
    Option<async_nats::jetstream::context::PublishAckFuture>,
    async_nats::jetstream::context::PublishAckFuture,
);

#[async_trait::async_trait]
impl Deliver for Nats {
    fn ordered(&self) -> bool {
        false
    }

    fn batch_size(&self) -> usize {
        BATCH
    }

    async fn deliver(&self, events: &[OutboxEvent]) -> Vec<Attempt> {
        let js = match self.context().await {
            Ok(js) => js,
            Err(e) => return vec![Attempt::Retry(format!("{e:#}")); events.len()],
        };
        // Publishing and taking acknowledgements run side by side: each acknowledgement is taken as it arrives,
        // which frees its place among the client's publishes in flight (`max_ack_inflight`), so a batch larger
        // than that limit flows instead of waiting on itself, and several batches at once cannot block each other.
        let (sent, mut acks) = tokio::sync::mpsc::unbounded_channel::<EventAcks>();
        let publish = async move {
            for event in events {
                // The check-in carries the event's idempotency key: computed once, used for both message ids.
                let checkin = CheckIn::of(event);
                let key = checkin.idempotency_key.as_str();
                let site = subject_token(event.device_site.as_deref().unwrap_or("default"));
                // A punch HR added is no stored punch: only its check-in is published.
                let punch_ack = match event.correction_id {
                    Some(_) => None,
                    None => {
                        let subject = format!(
                            "punchd.punches.{site}.{}",
                            subject_token(event.punch.device_sn.as_str())
                        );
                        match Self::publish(&js, subject, key, None, json_bytes(&event.punch)).await
                        {
                            Ok(ack) => Some(ack),
                            Err(e) => return Some(e),
                        }
                    }
                };
                let subject = format!(
                    "punchd.checkins.{site}.{}",
                    subject_token(&checkin.employee)
                );
                let checkin_ack = match Self::publish(
                    &js,
                    subject,
                    &format!("{key}.checkin"),
                    Some("checkin"),
                    json_bytes(&checkin),
                )
                .await
                {
                    Ok(ack) => ack,
                    Err(e) => return Some(e),
                };
                if sent.send((punch_ack, checkin_ack)).is_err() {
                    return None;
                }
            }
            None
        };
        let collect = async {
            let mut out = Vec::with_capacity(events.len());
            while let Some((punch_ack, checkin_ack)) = acks.recv().await {
                let punch_acked = match punch_ack {
                    Some(p) => p.await.map(|_| ()),
                    None => Ok(()),
                };
                out.push(match (punch_acked, checkin_ack.await) {
                    (Ok(()), Ok(_)) => Attempt::Delivered(None),
                    (Err(e), _) | (_, Err(e)) => {
                        Attempt::Retry(format!("the stream did not acknowledge: {e}"))
                    }
                });
            }
            out
        };
        let (publish_error, mut out) = tokio::join!(publish, collect);
        if let Some(e) = publish_error {
            // The connection is gone: what was not published is tried again later, on a new connection.
            out.resize(events.len(), Attempt::Retry(e));
            *self.context.lock().await = None;
        }
        out
    }
}

/// Events per [`Deliver::deliver`] call. Each is two messages; several calls run at once (the sink's
/// concurrency), all through one connection.
const BATCH: usize = 1024;

/// JSON of a message body, written into one buffer sized for a typical check-in. Serialising these types does not
/// fail (plain structs with string keys); if it ever did, the body would be what was written so far.
fn json_bytes<T: Serialize>(value: &T) -> bytes::Bytes {
    let mut body = Vec::with_capacity(512);
    let _ = serde_json::to_writer(&mut body, value);
    body.into()
}
