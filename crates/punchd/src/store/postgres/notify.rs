//! Live events across instances (issue 10, "Several instances"): every `punchd serve` on one PostgreSQL sends
//! the events of its [`LiveFeed`] (punches stored, terminals online or offline) to the others with `pg_notify`,
//! and shows theirs, so the web UI's live page shows every punch once whichever instance serves it.
//!
//! How:
//! - The feed hands each event to a queue ([`LiveFeed::relay_to`], [`QUEUE`] events; full means lost, counted in
//!   [`LiveFeed::relay_dropped`], ingest never waits). Events reach the queue only after their transaction
//!   committed (the ingest path's rule), so another instance never shows a punch the database does not hold.
//! - One task per instance holds a dedicated connection (not from the pool). It `LISTEN`s on the channel
//!   `punchd_live_<schema>` (the schema punchd works in, so instances on other schemas of the same database are
//!   not mixed) and sends what the queue gathered every [`GATHER`] at most, in one statement: as many
//!   notifications as needed, each under PostgreSQL's 8000-byte payload limit ([`PAYLOAD_MAX`], about 100
//!   punches each).
//! - A payload is `{"o": <sender>, "e": [<event>, …]}` in a compact form ([`Wire`]); the sender is the
//!   instance's lease holder name (`host:pid:random`, unique per run). An instance skips its own notifications
//!   (PostgreSQL delivers them to the sending session too), so it never shows its own events twice.
//! - The connection's `application_name` is `punchd-live <process id>` (find it in `pg_stat_activity`), and
//!   `punchd-live <process id> watching` while this instance's live page has viewers. Every [`WATCH_CHECK`] the
//!   task updates its own name and asks `pg_stat_activity` whether another session of the database is named
//!   `punchd-live … watching`; punches are sent only while one is ([`crate::live::LiveFeed::set_others_watching`],
//!   logged when it changes). Nobody watching the live page is the common case under load, and sending every
//!   punch through PostgreSQL's notification queue anyway (encoding it, and reading every notification back,
//!   one's own included) took about a third of punchd's CPU per upload at 100 punches per upload (BENCHMARKS.md,
//!   "PostgreSQL: the live relay on demand"). A viewer who opens the live page sees other instances' punches
//!   from at most two checks later; presence events are always sent.
//! - When the connection drops, the task logs a warning, waits (1 s, doubling up to 30 s) and reconnects; events
//!   that other instances sent meanwhile are not seen (the live feed is "what happens now", never a record:
//!   the punches themselves are in the database); its own queued events are sent once it is back.
//!
//! SQLite runs one instance only, so nothing of this runs there. Depends on `live` and the PostgreSQL store's
//! connection helpers.

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

use super::tls::{self, ParsedUrl};
use crate::live::{LiveEvent, LiveFeed, LivePunch};
use crate::store::StoreError;

/// Events the relay queue holds while the database is slower than they come (about 16 s at 1,000 punches/s).
pub const QUEUE: usize = 16_384;
/// How long the relay gathers events after the first before sending them: at most ~50 notifying statements per
/// second whatever the punch rate, and no live event later than this plus a round trip.
pub const GATHER: Duration = Duration::from_millis(20);
/// The largest payload sent, in bytes (PostgreSQL refuses 8000 and more).
pub const PAYLOAD_MAX: usize = 7_900;
/// The most events sent in one statement (the queue is drained by the next ones).
const MAX_PER_SEND: usize = 8_192;
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often the relay updates whether this instance's live page has viewers and asks whether another's has.
pub const WATCH_CHECK: Duration = Duration::from_secs(1);

/// The `application_name` of an instance's LISTEN connection: `punchd-live <pid>`, with ` watching` while its
/// live page has viewers.
fn session_name(watching: bool) -> String {
    let pid = std::process::id();
    if watching {
        format!("punchd-live {pid} watching")
    } else {
        format!("punchd-live {pid}")
    }
}

/// Whether another session on this database is the LISTEN connection of an instance whose live page has viewers.
const OTHERS_WATCHING: &str =
    "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database() \
     AND pid <> pg_backend_pid() AND application_name LIKE 'punchd-live % watching')";

/// One event as sent: short tags and positional fields, to fit ~100 punches in a notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Wire {
    /// A punch: SN, PIN, terminal-local time, the same instant in UTC (Unix seconds), punch state, verify mode.
    P(String, String, NaiveDateTime, i64, Option<u16>, Option<u16>),
    /// A terminal came online: SN, when (UTC).
    On(String, DateTime<Utc>),
    /// A terminal went offline: SN, last seen (UTC).
    Off(String, Option<DateTime<Utc>>),
}

impl From<&LiveEvent> for Wire {
    fn from(e: &LiveEvent) -> Wire {
        match e {
            LiveEvent::Punch(p) => Wire::P(
                p.sn.clone(),
                p.pin.clone(),
                p.punched_at,
                p.punched_at_utc.timestamp(),
                p.state,
                p.verify,
            ),
            LiveEvent::DeviceOnline { sn, at } => Wire::On(sn.clone(), *at),
            LiveEvent::DeviceOffline { sn, last_seen } => Wire::Off(sn.clone(), *last_seen),
        }
    }
}

impl From<Wire> for LiveEvent {
    fn from(w: Wire) -> LiveEvent {
        match w {
            Wire::P(sn, pin, punched_at, utc, state, verify) => LiveEvent::Punch(LivePunch {
                sn,
                pin,
                punched_at,
                punched_at_utc: DateTime::from_timestamp(utc, 0)
                    .unwrap_or_else(|| punched_at.and_utc()),
                state,
                verify,
            }),
            Wire::On(sn, at) => LiveEvent::DeviceOnline { sn, at },
            Wire::Off(sn, last_seen) => LiveEvent::DeviceOffline { sn, last_seen },
        }
    }
}

/// A notification's payload as read.
#[derive(Debug, Deserialize)]
struct Payload {
    /// The sending instance.
    o: String,
    /// Its events, in order.
    e: Vec<Wire>,
}

/// The start of every payload `origin` sends: `{"o":"<origin>","e":[`.
fn head(origin: &str) -> String {
    format!(
        "{{\"o\":{},\"e\":[",
        serde_json::to_string(origin).unwrap_or_else(|_| "\"\"".into())
    )
}

/// The payloads carrying `events` from `origin`, each at most [`PAYLOAD_MAX`] bytes, in order. An event that
/// alone does not fit (no real one comes close) is left out.
pub fn encode(origin: &str, events: &[LiveEvent]) -> Vec<String> {
    let head = head(origin);
    let mut payloads = Vec::new();
    let mut current = head.clone();
    for event in events {
        let Ok(one) = serde_json::to_string(&Wire::from(event)) else {
            continue;
        };
        if head.len() + one.len() + 2 > PAYLOAD_MAX {
            continue;
        }
        if current.len() + one.len() + 3 > PAYLOAD_MAX {
            current.push_str("]}");
            payloads.push(std::mem::replace(&mut current, head.clone()));
        }
        if current.len() > head.len() {
            current.push(',');
        }
        current.push_str(&one);
    }
    if current.len() > head.len() {
        current.push_str("]}");
        payloads.push(current);
    }
    payloads
}

/// The events of a payload, unless `origin` (this instance) sent it or it cannot be read.
pub fn decode(origin: &str, payload: &str) -> Vec<LiveEvent> {
    // PostgreSQL hands an instance its own notifications too: at thousands of punches a second, reading them only
    // to drop them was most of the relay's work. What this instance sent starts with its own head.
    if payload.starts_with(&head(origin)) {
        return Vec::new();
    }
    match serde_json::from_str::<Payload>(payload) {
        Ok(p) if p.o != origin => p.e.into_iter().map(LiveEvent::from).collect(),
        Ok(_) => Vec::new(),
        Err(e) => {
            tracing::debug!(error = %e, "live events: a notification that is not ours was ignored");
            Vec::new()
        }
    }
}

/// The channel for the schema punchd works in: `punchd_live_<schema>`, or with the schema's hash when that
/// would pass PostgreSQL's 63-byte limit on names.
pub fn channel_name(schema: &str) -> String {
    let plain = format!("punchd_live_{schema}");
    if plain.len() <= 63 {
        return plain;
    }
    use sha2::Digest;
    let hash = sha2::Sha256::digest(schema.as_bytes());
    format!("punchd_live_{}", hex::encode(&hash[..12]))
}

/// `name` as a quoted SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Relay `feed`'s events to the other instances on the database at `url`, and theirs to it, until the feed is
/// dropped: sets the feed's relay ([`LiveFeed::relay_to`]) and spawns the task. `origin` names this instance
/// (unique per run: the lease holder name).
///
/// Errors: the URL cannot be read (checked before anything starts; connection failures are retried).
pub fn start(
    url: &str,
    feed: &LiveFeed,
    origin: String,
) -> Result<tokio::task::JoinHandle<()>, StoreError> {
    let parsed = tls::parse_url(url).map_err(StoreError::Backend)?;
    let (tx, rx) = mpsc::channel(QUEUE);
    feed.relay_to(tx);
    // The task holds a clone of the feed to show remote events; the feed's relay sender lives in it too, so the
    // task ends when the App's feed and every clone are gone — in practice with the runtime.
    Ok(tokio::spawn(run(parsed, feed.clone(), origin, rx)))
}

async fn run(
    parsed: ParsedUrl,
    feed: LiveFeed,
    origin: String,
    mut outgoing: mpsc::Receiver<LiveEvent>,
) {
    let mut backoff = Duration::from_secs(1);
    let mut lost_before = false;
    loop {
        let mut listening = false;
        match session(
            &parsed,
            &feed,
            &origin,
            &mut outgoing,
            &mut listening,
            lost_before,
        )
        .await
        {
            Ok(()) => return,
            Err(e) => {
                if listening {
                    backoff = Duration::from_secs(1);
                }
                tracing::warn!(
                    error = %e,
                    retry_in_secs = backoff.as_secs(),
                    "live events of other instances: the LISTEN connection to PostgreSQL is lost; reconnecting"
                );
                lost_before = true;
                // Nothing can be sent until the connection is back; who watches is asked again then.
                feed.set_others_watching(false);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// One connection's life: LISTEN, then show what arrives and send what the queue gathers, until the connection
/// fails (`Err`, with why) or the queue's senders are all gone (`Ok`: the instance is stopping).
async fn session(
    parsed: &ParsedUrl,
    feed: &LiveFeed,
    origin: &str,
    outgoing: &mut mpsc::Receiver<LiveEvent>,
    listening: &mut bool,
    reconnected: bool,
) -> Result<(), String> {
    let mut parsed = parsed.clone();
    // Named so an operator (or a test) finds it in pg_stat_activity: `punchd-live <process id>`.
    parsed.config.application_name(session_name(false));
    let (client, mut connection) = super::connect_one(&parsed)
        .await
        .map_err(|e| e.to_string())?;
    let (note_tx, mut notes) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if note_tx.send(n).is_err() {
                        return "the relay stopped".to_owned();
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return e.to_string(),
                None => return "the server closed the connection".to_owned(),
            }
        }
    });
    let result = async {
        let schema: String = client
            .query_one("SELECT current_schema()::text", &[])
            .await
            .map_err(|e| e.to_string())?
            .try_get(0)
            .map_err(|e| e.to_string())?;
        let channel = channel_name(&schema);
        client
            .batch_execute(&format!("LISTEN {}", quote_ident(&channel)))
            .await
            .map_err(|e| e.to_string())?;
        *listening = true;
        if reconnected {
            tracing::info!(channel, "live events of other instances: listening again");
        } else {
            tracing::info!(channel, "live events of other instances: listening");
        }
        let mut batch = Vec::new();
        let mut check = tokio::time::interval(WATCH_CHECK);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut watching_here = false;
        loop {
            tokio::select! {
                _ = check.tick() => {
                    let now_here = feed.n_subscribers() > 0;
                    if now_here != watching_here {
                        let name = session_name(now_here);
                        client
                            .batch_execute(&format!("SET application_name = '{name}'"))
                            .await
                            .map_err(|e| e.to_string())?;
                        watching_here = now_here;
                    }
                    let others: bool = client
                        .query_one(OTHERS_WATCHING, &[])
                        .await
                        .map_err(|e| e.to_string())?
                        .try_get(0)
                        .map_err(|e| e.to_string())?;
                    if others != feed.others_watching() {
                        feed.set_others_watching(others);
                        if others {
                            tracing::info!("live events: another instance shows the live page; relaying punches");
                        } else {
                            tracing::info!(
                                "live events: no other instance shows the live page; punches are not relayed"
                            );
                        }
                    }
                }
                note = notes.recv() => match note {
                    Some(n) if n.channel() == channel => {
                        for event in decode(origin, n.payload()) {
                            feed.publish_remote(event);
                        }
                    }
                    Some(_) => {}
                    None => return Err(String::new()),
                },
                first = outgoing.recv() => {
                    let Some(first) = first else { return Ok(()) };
                    tokio::time::sleep(GATHER).await;
                    batch.clear();
                    batch.push(first);
                    while batch.len() < MAX_PER_SEND {
                        match outgoing.try_recv() {
                            Ok(e) => batch.push(e),
                            Err(_) => break,
                        }
                    }
                    let payloads = encode(origin, &batch);
                    client
                        .execute(
                            "SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS u(p, n) \
                             ORDER BY n",
                            &[&channel, &payloads],
                        )
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
        }
    }
    .await;
    drop(client);
    match result {
        Ok(()) => {
            driver.abort();
            Ok(())
        }
        Err(e) if e.is_empty() => Err(driver.await.unwrap_or_else(|e| e.to_string())),
        Err(e) => {
            driver.abort();
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn punch(i: u32) -> LiveEvent {
        let at = chrono::NaiveDate::from_ymd_opt(2026, 11, 30)
            .and_then(|d| d.and_hms_opt(8, i % 60, 0))
            .expect("valid");
        LiveEvent::Punch(LivePunch {
            sn: "CNYG213260182".into(),
            pin: format!("{}", 10_000 + i),
            punched_at: at,
            punched_at_utc: at.and_utc() - chrono::Duration::hours(1),
            state: Some(1),
            verify: Some(15),
        })
    }

    #[test]
    fn events_are_split_under_the_payload_limit_and_read_back_in_order_by_others_only() {
        let mut events: Vec<LiveEvent> = (0..1_000).map(punch).collect();
        events.push(LiveEvent::DeviceOnline {
            sn: "A1".into(),
            at: DateTime::from_timestamp(1_764_489_600, 0).expect("time"),
        });
        events.push(LiveEvent::DeviceOffline {
            sn: "A2".into(),
            last_seen: None,
        });
        let payloads = encode("host:1:abc", &events);
        assert!(payloads.iter().all(|p| p.len() <= PAYLOAD_MAX));
        assert!(
            payloads.len() <= 12,
            "about 100 punches per notification: {}",
            payloads.len()
        );
        let back: Vec<LiveEvent> = payloads
            .iter()
            .flat_map(|p| decode("host:2:def", p))
            .collect();
        assert_eq!(back, events);
        assert!(payloads.iter().all(|p| decode("host:1:abc", p).is_empty()));
        assert!(decode("x", "not json").is_empty());
        assert!(encode("x", &[]).is_empty());
    }

    #[test]
    fn channels_are_per_schema_and_valid_names() {
        assert_eq!(channel_name("public"), "punchd_live_public");
        let long = channel_name(&"s".repeat(80));
        assert!(long.len() <= 63 && long.starts_with("punchd_live_"));
        assert_ne!(long, channel_name(&"s".repeat(81)));
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
