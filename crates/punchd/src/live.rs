//! The live feed: what happens right now (punches stored, terminals going online or offline), for the web UI's
//! live page and dashboard.
//!
//! A [`LiveFeed`] is a tokio broadcast channel held by [`crate::app::App`]. The ingest path publishes punches
//! only AFTER the transaction that stores them committed, so the feed never shows a punch the store does not
//! hold. Subscribers that fall behind lose the oldest events (they are told how many, never blocked): the feed
//! must not slow ingest down. Depends on `domain` only.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use tokio::sync::broadcast;

use crate::domain::{DeviceSn, NewPunch};

/// How many events the channel holds for a subscriber that has not read them yet (about 4 s at 1,000 punches/s).
pub const CAPACITY: usize = 4096;

/// One punch as the live page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

/// The broadcast of [`LiveEvent`]s. Cheap to clone (all clones share the channel).
#[derive(Clone)]
pub struct LiveFeed {
    sender: broadcast::Sender<LiveEvent>,
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
        LiveFeed { sender }
    }

    /// Receive events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.sender.subscribe()
    }

    /// How many subscribers listen (the live page's connections).
    pub fn n_subscribers(&self) -> usize {
        self.sender.receiver_count()
    }

    /// Publish one event; nobody listening is not an error.
    pub fn publish(&self, event: LiveEvent) {
        let _ = self.sender.send(event);
    }

    /// Publish the punches of a committed batch of which `n_stored` were new. The store does not say which ones
    /// were new; a device re-sending its history with a few new punches puts the new ones last (terminals send
    /// in time order), so the last `n_stored` are published — re-sent history never floods the feed.
    pub fn publish_stored(&self, punches: &[NewPunch], n_stored: usize) {
        if n_stored == 0 || self.sender.receiver_count() == 0 {
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
}
