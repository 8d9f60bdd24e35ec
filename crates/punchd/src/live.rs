//! The live feed: what happens right now (punches stored, terminals going online or offline), for the web UI's
//! live page and dashboard.
//!
//! A [`LiveFeed`] is a tokio broadcast channel held by [`crate::app::App`]. The ingest path publishes punches
//! only AFTER the transaction that stores them committed, so the feed never shows a punch the store does not
//! hold. Subscribers that fall behind lose the oldest events (they are told how many, never blocked): the feed
//! must not slow ingest down.
//!
//! Several instances on one PostgreSQL (issue 10): a feed may also hand every event it publishes to a **relay**
//! ([`LiveFeed::relay_to`]), which `store::postgres::notify` sends to the other instances with `pg_notify`; the
//! events they send come back through [`LiveFeed::publish_remote`], which shows them here without relaying them
//! again. So the live page shows every instance's punches, each once, whichever instance serves it. Punches are
//! relayed only while another instance shows the live page ([`LiveFeed::set_others_watching`], which the relay
//! keeps up to date): at tens of thousands of punches a second, sending every punch through PostgreSQL for
//! nobody to see took about a third of punchd's CPU per upload. Presence (online/offline) is always relayed; it
//! is a state: an event that repeats the state last shown for its terminal — the same change seen by two
//! instances — is dropped. Depends on `domain` only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

use crate::domain::{DeviceSn, NewPunch};

/// How many events the channel holds for a subscriber that has not read them yet (about 4 s at 1,000 punches/s).
pub const CAPACITY: usize = 4096;

/// One punch as the live page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LivePunch {
    /// The device's serial number.
    pub sn: String,
    /// The user id on the device.
    pub pin: String,
    /// Terminal local wall time (the device's clock, no zone).
    pub punched_at: NaiveDateTime,
    /// The same instant in UTC.
    pub punched_at_utc: DateTime<Utc>,
    /// Punch state code (0 check-in, 1 check-out, …), when sent.
    pub state: Option<u16>,
    /// Verify mode code (1 fingerprint, 15 face, …), when sent.
    pub verify: Option<u16>,
}

/// Something that just happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveEvent {
    /// A punch was stored (committed).
    Punch(LivePunch),
    /// A terminal was seen after being offline (or for the first time).
    DeviceOnline {
        /// The device's serial number.
        sn: String,
        /// When (UTC).
        at: DateTime<Utc>,
    },
    /// A terminal has not been seen within its online window.
    DeviceOffline {
        /// The device's serial number.
        sn: String,
        /// Last seen (UTC).
        last_seen: Option<DateTime<Utc>>,
    },
}

impl LiveEvent {
    /// The device the event is about.
    pub fn sn(&self) -> &str {
        match self {
            LiveEvent::Punch(p) => &p.sn,
            LiveEvent::DeviceOnline { sn, .. } | LiveEvent::DeviceOffline { sn, .. } => sn,
        }
    }
}

/// The broadcast of [`LiveEvent`]s. Cheap to clone (all clones share the channel, the relay and the presence
/// states).
#[derive(Clone)]
pub struct LiveFeed {
    sender: broadcast::Sender<LiveEvent>,
    /// Where events published here also go, for the other instances (set once, by [`LiveFeed::relay_to`]).
    relay: Arc<OnceLock<mpsc::Sender<LiveEvent>>>,
    /// Events the relay could not take (its queue full: the database is slower than the punches).
    relay_dropped: Arc<AtomicU64>,
    /// Whether another instance shows the live page now: punches go to the relay only then.
    others_watching: Arc<AtomicBool>,
    /// The last presence shown per terminal SN (`true` online), to drop repeats.
    presence: Arc<Mutex<HashMap<String, bool>>>,
}

impl Default for LiveFeed {
    fn default() -> Self {
        LiveFeed::new()
    }
}

impl LiveFeed {
    /// A feed holding up to [`CAPACITY`] unread events per subscriber.
    pub fn new() -> LiveFeed {
        let (sender, _) = broadcast::channel(CAPACITY);
        LiveFeed {
            sender,
            relay: Arc::new(OnceLock::new()),
            relay_dropped: Arc::new(AtomicU64::new(0)),
            others_watching: Arc::new(AtomicBool::new(false)),
            presence: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Hand every event published from now on (not those from [`LiveFeed::publish_remote`]) to `relay` as well.
    /// A relay whose queue is full loses the event (counted in [`LiveFeed::relay_dropped`]); ingest never
    /// waits for it. Only the first call counts.
    pub fn relay_to(&self, relay: mpsc::Sender<LiveEvent>) {
        let _ = self.relay.set(relay);
    }

    /// Whether anything wants punches: a subscriber here, or a relay to other instances of which one shows the
    /// live page. Ingest keeps a copy of a batch for the feed only then.
    pub fn wanted(&self) -> bool {
        self.sender.receiver_count() > 0 || self.relaying_punches()
    }

    /// Whether punches published here go to the relay: there is one, and another instance watches.
    fn relaying_punches(&self) -> bool {
        self.relay.get().is_some() && self.others_watching()
    }

    /// Tell the feed whether another instance shows the live page now (the relay asks PostgreSQL every
    /// second or so); until it is told, punches are not relayed. Presence events are relayed either way.
    pub fn set_others_watching(&self, watching: bool) {
        self.others_watching.store(watching, Ordering::Relaxed);
    }

    /// What [`LiveFeed::set_others_watching`] said last.
    pub fn others_watching(&self) -> bool {
        self.others_watching.load(Ordering::Relaxed)
    }

    /// Events the relay lost since start because its queue was full.
    pub fn relay_dropped(&self) -> u64 {
        self.relay_dropped.load(Ordering::Relaxed)
    }

    /// Receive events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.sender.subscribe()
    }

    /// How many subscribers listen (the live page's connections).
    pub fn n_subscribers(&self) -> usize {
        self.sender.receiver_count()
    }

    /// Publish one event here and hand it to the relay, if any (a punch only while another instance watches);
    /// nobody listening is not an error. A presence event repeating the state last shown for its terminal is
    /// dropped.
    pub fn publish(&self, event: LiveEvent) {
        if !self.presence_is_news(&event) {
            return;
        }
        let relayed = !matches!(event, LiveEvent::Punch(_)) || self.relaying_punches();
        if let Some(relay) = self.relay.get().filter(|_| relayed) {
            if relay.try_send(event.clone()).is_err() {
                self.relay_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        let _ = self.sender.send(event);
    }

    /// Publish an event another instance relayed: shown here, never relayed again. A presence event repeating
    /// the state last shown for its terminal is dropped.
    pub fn publish_remote(&self, event: LiveEvent) {
        if self.presence_is_news(&event) {
            let _ = self.sender.send(event);
        }
    }

    /// Whether `event` is a punch, or a presence that changes the state last shown for its terminal (which it
    /// then becomes).
    fn presence_is_news(&self, event: &LiveEvent) -> bool {
        let online = match event {
            LiveEvent::Punch(_) => return true,
            LiveEvent::DeviceOnline { .. } => true,
            LiveEvent::DeviceOffline { .. } => false,
        };
        let mut states = match self.presence.lock() {
            Ok(states) => states,
            Err(poisoned) => poisoned.into_inner(),
        };
        states.insert(event.sn().to_owned(), online) != Some(online)
    }

    /// Publish the punches of a committed batch of which `n_stored` were new. The store does not say which ones
    /// were new; a device re-sending its history with a few new punches puts the new ones last (terminals send
    /// in time order), so the last `n_stored` are published — re-sent history never floods the feed.
    pub fn publish_stored(&self, punches: &[NewPunch], n_stored: usize) {
        if n_stored == 0 || !self.wanted() {
            return;
        }
        let skip = punches.len().saturating_sub(n_stored);
        for p in &punches[skip..] {
            self.publish(LiveEvent::Punch(LivePunch {
                sn: p.device_sn.to_string(),
                pin: p.pin.0.clone(),
                punched_at: p.punched_at,
                punched_at_utc: p.punched_at_utc,
                state: p.punch_state.map(|s| s.code()),
                verify: p.verify_mode.map(|v| v.0),
            }));
        }
    }

    /// Publish that a device went online or offline.
    pub fn publish_presence(&self, sn: &DeviceSn, online: bool, at: Option<DateTime<Utc>>) {
        self.publish(if online {
            LiveEvent::DeviceOnline {
                sn: sn.to_string(),
                at: at.unwrap_or_else(Utc::now),
            }
        } else {
            LiveEvent::DeviceOffline {
                sn: sn.to_string(),
                last_seen: at,
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Pin, PunchState, Source, VerifyMode};

    fn punch(pin: &str, minute: u32) -> NewPunch {
        let at = chrono::NaiveDate::from_ymd_opt(2026, 11, 30)
            .and_then(|d| d.and_hms_opt(8, minute, 0))
            .expect("valid");
        NewPunch {
            device_sn: DeviceSn::parse("LIVE1").expect("sn"),
            pin: Pin(pin.to_owned()),
            punched_at: at,
            time_zone: "UTC".into(),
            punched_at_utc: at.and_utc(),
            punch_state: Some(PunchState::from_code(1)),
            verify_mode: Some(VerifyMode(15)),
            work_code: None,
            extra: Vec::new(),
            source: Source::Push,
        }
    }

    #[test]
    fn only_the_newly_stored_punches_are_published_after_the_commit() {
        let feed = LiveFeed::new();
        let mut rx = feed.subscribe();
        let batch = [punch("1", 0), punch("2", 1), punch("3", 2)];
        feed.publish_stored(&batch, 0);
        feed.publish_stored(&batch, 2);
        let mut pins = Vec::new();
        while let Ok(LiveEvent::Punch(p)) = rx.try_recv() {
            assert_eq!(
                (p.sn.as_str(), p.state, p.verify),
                ("LIVE1", Some(1), Some(15))
            );
            pins.push(p.pin);
        }
        assert_eq!(pins, ["2", "3"]);
    }

    #[test]
    fn published_events_go_to_the_relay_and_remote_ones_are_shown_but_not_relayed() {
        let feed = LiveFeed::new();
        let (tx, mut relayed) = mpsc::channel(2);
        feed.relay_to(tx);
        assert!(
            !feed.wanted(),
            "nobody watches anywhere: punches are not even copied"
        );
        feed.set_others_watching(true);
        assert!(
            feed.wanted(),
            "a relay wants punches without local subscribers while another instance watches"
        );
        let mut rx = feed.subscribe();
        let sn = DeviceSn::parse("LIVE1").expect("sn");
        feed.publish_stored(&[punch("1", 0)], 1);
        feed.publish_remote(LiveEvent::DeviceOnline {
            sn: "LIVE2".into(),
            at: Utc::now(),
        });
        // The same change seen by this instance too: not news.
        feed.publish_presence(&DeviceSn::parse("LIVE2").expect("sn"), true, None);
        feed.publish_presence(&sn, false, None);
        feed.publish_presence(&sn, false, None);
        let mut shown = Vec::new();
        while let Ok(e) = rx.try_recv() {
            shown.push(e);
        }
        assert!(matches!(&shown[0], LiveEvent::Punch(p) if p.pin == "1"));
        assert!(matches!(&shown[1], LiveEvent::DeviceOnline { sn, .. } if sn == "LIVE2"));
        assert!(matches!(&shown[2], LiveEvent::DeviceOffline { sn, .. } if sn == "LIVE1"));
        assert_eq!(shown.len(), 3, "{shown:?}");
        assert!(matches!(relayed.try_recv(), Ok(LiveEvent::Punch(_))));
        assert!(matches!(
            relayed.try_recv(),
            Ok(LiveEvent::DeviceOffline { .. })
        ));
        assert!(relayed.try_recv().is_err(), "remote events are not relayed");
        // A full relay queue loses events, counted; the local feed still shows them.
        for minute in 0..3 {
            feed.publish_stored(&[punch("9", minute)], 1);
        }
        assert_eq!(feed.relay_dropped(), 1);
        assert_eq!(rx.len(), 3);
    }

    #[test]
    fn punches_are_relayed_only_while_another_instance_watches_and_presence_always() {
        let feed = LiveFeed::new();
        let (tx, mut relayed) = mpsc::channel(8);
        feed.relay_to(tx);
        let rx = feed.subscribe();
        feed.publish_stored(&[punch("1", 0)], 1);
        feed.publish_presence(&DeviceSn::parse("LIVE3").expect("sn"), true, None);
        assert!(matches!(
            relayed.try_recv(),
            Ok(LiveEvent::DeviceOnline { sn, .. }) if sn == "LIVE3"
        ));
        assert!(relayed.try_recv().is_err(), "the punch stayed here");
        assert_eq!(rx.len(), 2, "shown here all the same");
        feed.set_others_watching(true);
        feed.publish_stored(&[punch("2", 1)], 1);
        assert!(matches!(relayed.try_recv(), Ok(LiveEvent::Punch(p)) if p.pin == "2"));
        feed.set_others_watching(false);
        feed.publish_stored(&[punch("3", 2)], 1);
        assert!(relayed.try_recv().is_err());
    }
}
