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

use chrono::{
    DateTime, Duration, FixedOffset, LocalResult, NaiveDateTime, Offset, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

use crate::collection_load::CollectionLoad;
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

/// [`local_to_utc`] for the punches of one delivery, asking the zone database about each hour once instead of
/// about each punch (issue 6: the lookup, a binary search over the zone's transitions, was a visible part of
/// ingest per punch). Consecutive punches of a terminal mostly fall in one hour. When the first and the last
/// second of that hour each have a single offset, the same one, every time in between has it too, because no zone
/// changes its offset twice within an hour: in the zone data punchd is built with (chrono-tz 0.10.4) two changes
/// of a zone's offset are at least 7 days apart. So the result is [`local_to_utc`]'s; the tests compare the two
/// across the transitions of zones with odd rules. An hour with a DST gap or overlap in it is converted time by
/// time with [`local_to_utc`].
struct LocalToUtc {
    tz: Tz,
    /// The start of the last hour found to have one offset throughout, and that offset.
    hour: Option<(NaiveDateTime, FixedOffset)>,
}

impl LocalToUtc {
    fn new(tz: Tz) -> LocalToUtc {
        LocalToUtc { tz, hour: None }
    }

    fn convert(&mut self, local: NaiveDateTime) -> DateTime<Utc> {
        let Some(start) = local.date().and_hms_opt(local.hour(), 0, 0) else {
            return local_to_utc(self.tz, local);
        };
        let offset = match self.hour {
            Some((hour, offset)) if hour == start => Some(offset),
            _ => {
                self.hour = self.one_offset(start).map(|offset| (start, offset));
                self.hour.map(|(_, offset)| offset)
            }
        };
        // What `from_local_datetime` computes from a single offset.
        match offset.and_then(|offset| local.checked_sub_offset(offset)) {
            Some(utc) => DateTime::from_naive_utc_and_offset(utc, Utc),
            None => local_to_utc(self.tz, local),
        }
    }

    /// The offset of the hour from `start`, when its first and last second have one and the same.
    fn one_offset(&self, start: NaiveDateTime) -> Option<FixedOffset> {
        let end = start.checked_add_signed(Duration::seconds(3599))?;
        match (
            self.tz.offset_from_local_datetime(&start),
            self.tz.offset_from_local_datetime(&end),
        ) {
            (LocalResult::Single(first), LocalResult::Single(last))
                if first.fix() == last.fix() =>
            {
                Some(first.fix())
            }
            _ => None,
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
    /// How much of the time deliveries are being written (the sinks wait while it is high).
    load: Arc<CollectionLoad>,
}

impl Ingest {
    /// A new ingest path over a store.
    pub fn new(store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Ingest {
        Ingest {
            store,
            metrics,
            max_line_errors: crate::limits::LimitsConfig::default().max_line_errors,
            live: None,
            load: Arc::new(CollectionLoad::default()),
        }
    }

    /// The share of recent time this ingest path (every clone of it) spent writing deliveries to the store: the
    /// sinks' measure of how busy collection is (`sinks::collection_wait`).
    pub fn load(&self) -> &CollectionLoad {
        &self.load
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
        let mut n_repeated = 0usize;
        // First pass, over borrowed PINs (no copy per punch): which punches are valid and which repeat one earlier
        // in the delivery. Deliveries in time order (a terminal's log, an export) have strictly increasing
        // (time, PIN, state) and so no repeats: that is checked in passing and the set is built only otherwise.
        let keep: Vec<bool> = {
            let mut keep = Vec::with_capacity(punches.len());
            let mut ascending = true;
            let mut last: Option<(NaiveDateTime, &str, Option<u16>)> = None;
            for (idx, p) in punches.iter().enumerate() {
                let pin = p.pin.trim();
                // Characters are counted only when the bytes could be too many; an ASCII PIN (nearly all) is
                // checked byte by byte (its control characters are the ASCII ones).
                let control = if pin.is_ascii() {
                    pin.bytes().any(|b| b.is_ascii_control())
                } else {
                    pin.chars().any(char::is_control)
                };
                if pin.is_empty()
                    || (pin.len() > MAX_PIN_LEN && pin.chars().count() > MAX_PIN_LEN)
                    || control
                {
                    batch.raw.errors.push(crate::limits::clipped_issue(
                        if p.line_no > 0 { p.line_no } else { idx + 1 },
                        &format!("{}\t{}", p.pin, p.punched_at),
                        &format!(
                            "PIN {:?} is empty, too long or has control characters",
                            p.pin
                        ),
                    ));
                    keep.push(false);
                    continue;
                }
                let key = (p.punched_at, pin, p.punch_state);
                ascending = ascending && last.is_none_or(|l| l < key);
                last = Some(key);
                keep.push(true);
            }
            if !ascending {
                let mut seen = HashSet::with_capacity(punches.len());
                for (p, keep) in punches.iter().zip(keep.iter_mut()) {
                    if *keep && !seen.insert((p.pin.trim(), p.punched_at, p.punch_state)) {
                        // The same punch twice in one delivery: held once, counted as a duplicate.
                        *keep = false;
                        n_repeated += 1;
                    }
                }
            }
            keep
        };
        batch.punches.reserve(punches.len());
        let mut to_utc = LocalToUtc::new(time_zone);
        for (p, keep) in punches.into_iter().zip(keep) {
            if !keep {
                continue;
            }
            // The PIN is moved when it needs no trimming (nearly always), not copied.
            let trimmed = p.pin.trim();
            let pin = if trimmed.len() == p.pin.len() {
                p.pin
            } else {
                trimmed.to_owned()
            };
            batch.punches.push(NewPunch {
                device_sn: device_sn.clone(),
                pin: Pin(pin),
                punched_at: p.punched_at,
                time_zone: zone_name.clone(),
                punched_at_utc: to_utc.convert(p.punched_at),
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
        let written = {
            let _writing = self.load.writing();
            self.store.write_batch(batch).await
        };
        match written {
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

    /// Repeats inside one delivery are held once and counted as duplicates, whether the delivery is in time order
    /// (no set is built) or not; a bad PIN is reported with its line and the rest stored. Real SQLite store.
    #[tokio::test]
    async fn repeats_in_a_delivery_are_held_once_in_or_out_of_order() {
        use crate::store::sqlite::{Durability, SqliteStore};
        let dir = tempfile::tempdir().expect("temp dir");
        let store =
            SqliteStore::open(&dir.path().join("t.db"), Durability::CrashSafe).expect("open");
        let ingest = Ingest::new(Arc::new(store.clone()), Arc::new(Metrics::new()));
        let sn = DeviceSn::parse("INGEST0001").expect("sn");
        let record = |line_no: usize, pin: &str, min: u32, state: u16| PunchRecord {
            line_no,
            pin: pin.to_owned(),
            punched_at: at(2026, 1, 10, 9, min),
            punch_state: Some(state),
            verify_mode: Some(1),
            work_code: None,
            extra: Vec::new(),
        };
        let delivery = |punches: Vec<PunchRecord>| Delivery {
            device_sn: sn.clone(),
            time_zone: chrono_tz::UTC,
            source: Source::Import,
            punches,
            batch: Batch::new(RawEntry {
                received_at: Utc::now(),
                device_sn: Some(sn.clone()),
                source: Source::Import,
                kind: "import".into(),
                request: "test".into(),
                remote_addr: None,
                body: b"lines".to_vec(),
                errors: Vec::new(),
            }),
        };
        // In time order, no repeats; " 1" is trimmed to "1".
        let sorted = vec![
            record(1, " 1", 0, 0),
            record(2, "1", 0, 1),
            record(3, "2", 1, 0),
        ];
        let outcome = ingest.ingest(delivery(sorted)).await.expect("sorted");
        assert_eq!((outcome.n_stored, outcome.n_duplicate), (3, 0));
        // Out of order, with a repeat of a new punch (" 3" = "3"), a held one and a bad PIN.
        let mixed = vec![
            record(1, "3", 5, 0),
            record(2, "1", 0, 0),
            record(3, " 3", 5, 0),
            record(4, "bad\u{7}", 6, 0),
            record(5, "3", 4, 0),
        ];
        let outcome = ingest.ingest(delivery(mixed)).await.expect("mixed");
        assert_eq!((outcome.n_stored, outcome.n_duplicate), (2, 2));
        let journal = store
            .get_journal(outcome.journal_id)
            .await
            .expect("journal");
        assert_eq!(
            journal.errors.iter().map(|e| e.line_no).collect::<Vec<_>>(),
            [4]
        );
        let stored: Vec<(String, String, Option<u16>)> = store
            .list_punches(&crate::store::PunchFilter::default())
            .await
            .expect("list")
            .into_iter()
            .map(|p| (p.pin.0, p.punched_at.to_string(), p.punch_state))
            .collect();
        let want = |pin: &str, t: &str, s: u16| (pin.to_owned(), t.to_owned(), Some(s));
        assert_eq!(
            stored,
            [
                want("1", "2026-01-10 09:00:00", 0),
                want("1", "2026-01-10 09:00:00", 1),
                want("2", "2026-01-10 09:01:00", 0),
                want("3", "2026-01-10 09:05:00", 0),
                want("3", "2026-01-10 09:04:00", 0),
            ]
        );
    }

    /// The per-hour offset gives exactly what [`local_to_utc`] gives, time by time in order as a delivery would
    /// bring them, through every offset change from 2000 to 2040 of zones with odd rules: 30-minute DST
    /// (Lord Howe), DST suspended for Ramadan (Casablanca, Gaza), negative DST (Dublin), a skipped day (Apia),
    /// quarter-hour offsets (Kathmandu, Chatham), and plain ones.
    #[test]
    fn the_hourly_offset_is_local_to_utc_across_transitions() {
        let zones = [
            "Europe/Berlin",
            "America/New_York",
            "Australia/Lord_Howe",
            "Africa/Casablanca",
            "Asia/Gaza",
            "Europe/Dublin",
            "Pacific/Apia",
            "Asia/Kathmandu",
            "Pacific/Chatham",
            "America/Sao_Paulo",
            "Asia/Kolkata",
            "UTC",
        ];
        let mut n_changes = 0;
        for zone in zones {
            let tz: Tz = zone.parse().expect("zone");
            let mut to_utc = LocalToUtc::new(tz);
            let mut check = |local: NaiveDateTime| {
                assert_eq!(
                    to_utc.convert(local),
                    local_to_utc(tz, local),
                    "{zone} {local}"
                );
            };
            // Each day's offset at noon UTC; around a change, every 7 min 13 s of local time for two days.
            let mut day = at(2000, 1, 1, 12, 0);
            let mut offset = tz.offset_from_utc_datetime(&day).fix();
            while day < at(2040, 1, 1, 12, 0) {
                let next = day + Duration::days(1);
                let next_offset = tz.offset_from_utc_datetime(&next).fix();
                if next_offset != offset {
                    n_changes += 1;
                    let mut local = day - Duration::hours(14);
                    while local < next + Duration::hours(14) {
                        check(local);
                        local += Duration::seconds(7 * 60 + 13);
                    }
                }
                // Elsewhere one time a day, and the last second of an hour.
                check(day + Duration::minutes(17));
                check(day + Duration::seconds(3599));
                (day, offset) = (next, next_offset);
            }
        }
        assert!(n_changes > 600, "{n_changes} offset changes walked");
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
