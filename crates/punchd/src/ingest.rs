//! The single door into the store for device data: validate → normalise → dedupe → write, atomically with the
//! raw journal entry (DESIGN.md "One ingest path").
//!
//! Every source (push, pull, BioTime, import, webhook) builds a [`Delivery`]: the raw bytes, the device's time
//! zone, the punches as the device reported them, and any other records. `ingest` turns terminal-local times into
//! instants with the zone database (never fixed offsets), drops exact repeats inside the delivery, and hands one
//! [`Batch`] to the store. The store's uniqueness rule (device, local time, PIN, punch state) makes re-sent data
//! a no-op; the outcome says how many punches were new and how many were already held.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::domain::{DeviceSn, NewPunch, Pin, PunchState, Source, VerifyMode};
use crate::metrics::Metrics;
use crate::store::{Batch, BatchOutcome, RawEntry, Store, StoreError};

/// A punch as a device reported it, before normalisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PunchRecord {
    /// Where the record stood in what the source received: the 1-based line of a push body, the record number of
    /// a pulled dataset; 0 when unknown (its position in the delivery is reported instead).
    pub line_no: usize,
    /// Who.
    pub pin: String,
    /// Terminal local wall time.
    pub punched_at: NaiveDateTime,
    /// Punch state code, if sent.
    pub punch_state: Option<u16>,
    /// Verify mode code, if sent.
    pub verify_mode: Option<u16>,
    /// Work code, if sent.
    pub work_code: Option<String>,
    /// Extra columns.
    pub extra: Vec<String>,
}

/// What one request, pull or file delivered.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The device.
    pub device_sn: DeviceSn,
    /// The zone of the device's clock.
    pub time_zone: Tz,
    /// How it arrived.
    pub source: Source,
    /// Punches as reported.
    pub punches: Vec<PunchRecord>,
    /// Everything else (users, templates, photos, oplog, records, stamp, info) plus the raw entry. Its
    /// `punches` field is filled by `ingest`.
    pub batch: Batch,
}

/// Longest PIN accepted (terminals allow 9–24 characters; the margin admits odd firmware).
const MAX_PIN_LEN: usize = 64;

/// Interpret a terminal-local time in `tz`. In a DST overlap the earlier instant is taken; in a DST gap (a
/// local time that did not exist) the time is read with the offset in force just before the gap.
pub fn local_to_utc(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local).earliest() {
        Some(t) => t.with_timezone(&Utc),
        None => {
            let before = local - Duration::hours(3);
            let offset = tz
                .from_local_datetime(&before)
                .earliest()
                .map(|t| t.naive_utc() - before)
                .unwrap_or_default();
            DateTime::from_naive_utc_and_offset(local + offset, Utc)
        }
    }
}

/// The ingest path, shared by every source.
#[derive(Clone)]
pub struct Ingest {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    max_line_errors: usize,
    /// Where stored punches are announced after the commit (the web UI's live page), when set.
    live: Option<crate::live::LiveFeed>,
}

impl Ingest {
    /// A new ingest path over a store.
    pub fn new(store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Ingest {
        Ingest {
            store,
            metrics,
            max_line_errors: crate::limits::LimitsConfig::default().max_line_errors,
            live: None,
        }
    }

    /// Announce the punches each committed delivery stored on `feed` ([`crate::live::LiveFeed::publish_stored`]).
    pub fn with_live(mut self, feed: crate::live::LiveFeed) -> Ingest {
        self.live = Some(feed);
        self
    }

    /// Record at most `max` line errors per delivery in its journal entry (the rest are counted in one last
    /// entry, see [`crate::limits::cap_issues`]).
    pub fn with_max_line_errors(mut self, max: usize) -> Ingest {
        self.max_line_errors = max;
        self
    }

    /// Normalise and write a delivery. `Ok` means committed (durable at the configured level): only then may the
    /// source acknowledge. Punches that fail validation are recorded in the journal entry's errors and the rest
    /// are stored.
    ///
    /// Errors: the store failed; nothing of the delivery was kept, the source must not acknowledge.
    pub async fn ingest(&self, delivery: Delivery) -> Result<BatchOutcome, StoreError> {
        let Delivery {
            device_sn,
            time_zone,
            source,
            punches,
            mut batch,
        } = delivery;
        let zone_name = time_zone.name().to_owned();
        let mut seen = HashSet::with_capacity(punches.len());
        let mut n_repeated = 0usize;
        batch.punches.reserve(punches.len());
        for (idx, p) in punches.into_iter().enumerate() {
            let pin = p.pin.trim();
            if pin.is_empty()
                || pin.chars().count() > MAX_PIN_LEN
                || pin.chars().any(char::is_control)
            {
                batch.raw.errors.push(crate::limits::clipped_issue(
                    if p.line_no > 0 { p.line_no } else { idx + 1 },
                    &format!("{}\t{}", p.pin, p.punched_at),
                    &format!(
                        "PIN {:?} is empty, too long or has control characters",
                        p.pin
                    ),
                ));
                continue;
            }
            if !seen.insert((pin.to_owned(), p.punched_at, p.punch_state)) {
                // The same punch twice in one delivery: held once, counted as a duplicate.
                n_repeated += 1;
                continue;
            }
            batch.punches.push(NewPunch {
                device_sn: device_sn.clone(),
                pin: Pin(pin.to_owned()),
                punched_at: p.punched_at,
                time_zone: zone_name.clone(),
                punched_at_utc: local_to_utc(time_zone, p.punched_at),
                punch_state: p.punch_state.map(PunchState::from_code),
                verify_mode: p.verify_mode.map(VerifyMode),
                work_code: p.work_code,
                extra: p.extra,
                source,
            });
        }
        // Whatever the source, one delivery records a bounded number of errors (issue 6: 8.4 M bad lines once
        // stored 915 MB of error text); the rest are counted.
        let n_errors = crate::limits::cap_issues(&mut batch.raw.errors, self.max_line_errors);
        // Kept for the live feed only when someone listens here or on another instance (a copy of a 10k-punch
        // batch is not free).
        let published = self
            .live
            .as_ref()
            .filter(|feed| feed.wanted())
            .map(|feed| (feed.clone(), batch.punches.clone()));
        match self.store.write_batch(batch).await {
            Ok(mut outcome) => {
                // After the commit: the feed never shows a punch the store does not hold.
                if let Some((feed, punches)) = published {
                    feed.publish_stored(&punches, outcome.n_stored);
                }
                outcome.n_duplicate += n_repeated;
                self.metrics.punches_stored.inc_by(outcome.n_stored as u64);
                self.metrics
                    .punches_duplicate
                    .inc_by(outcome.n_duplicate as u64);
                self.metrics.line_errors.inc_by(n_errors as u64);
                Ok(outcome)
            }
            Err(e) => {
                self.metrics.storage_errors.inc();
                Err(e)
            }
        }
    }

    /// Journal bytes that carry no records (a command result body, an unknown table) and return the id.
    pub async fn journal(&self, raw: RawEntry) -> Result<i64, StoreError> {
        let result = self.store.write_journal(raw).await;
        if result.is_err() {
            self.metrics.storage_errors.inc();
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .and_then(|d| d.and_hms_opt(h, min, 0))
            .expect("valid test date")
    }

    #[test]
    fn local_time_becomes_utc_with_the_zone_database() {
        let kolkata: Tz = "Asia/Kolkata".parse().unwrap();
        assert_eq!(
            local_to_utc(kolkata, at(2026, 1, 10, 9, 0)).naive_utc(),
            at(2026, 1, 10, 3, 30)
        );
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // Winter +01:00, summer +02:00.
        assert_eq!(
            local_to_utc(berlin, at(2026, 1, 10, 9, 0)).naive_utc(),
            at(2026, 1, 10, 8, 0)
        );
        assert_eq!(
            local_to_utc(berlin, at(2026, 7, 10, 9, 0)).naive_utc(),
            at(2026, 7, 10, 7, 0)
        );
    }

    #[test]
    fn dst_gap_and_overlap_are_resolved_not_dropped() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // 02:30 on 2026-03-29 does not exist in Berlin: read with +01:00 (the offset before the gap).
        assert_eq!(
            local_to_utc(berlin, at(2026, 3, 29, 2, 30)).naive_utc(),
            at(2026, 3, 29, 1, 30)
        );
        // 02:30 on 2026-10-25 happens twice: the earlier instant (+02:00).
        assert_eq!(
            local_to_utc(berlin, at(2026, 10, 25, 2, 30)).naive_utc(),
            at(2026, 10, 25, 0, 30)
        );
    }
}
