//! Punches per (device, PIN) kept between requests ([`PinSeen`]: count, first and last punch), brought up to date
//! by reading only the punches stored since the last look (issue 11, "Speed").
//!
//! The unmapped queue, the dashboard's unmapped count and every terminal's last punch come from this summary.
//! From the store it is a `GROUP BY` over every punch: seconds with 10 million punches, on every page view. Here
//! it is read whole once (the first look after start, or [`REBUILD_EVERY`] later in the background while the old
//! one keeps answering) and then, per look, only the punches with an id above the highest one it has seen
//! (`pins_seen_between`, a range of the primary key), merged in. Punches are never deleted, so counts only grow.
//!
//! On SQLite ids are handed out by the one writer in commit order, so "above the highest id seen" is exact. On
//! PostgreSQL a transaction may commit a lower id after a higher one was seen; such a punch is missed until the
//! next whole read (at most [`REBUILD_EVERY`]), as in [`crate::attendance::month_cache`].
//!
//! Depends on `store` only.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::store::attendance::PinSeen;
use crate::store::{Store, StoreError};

/// How long the summary is kept up to date piece by piece before it is read whole again (in the background).
pub const REBUILD_EVERY: Duration = Duration::from_secs(600);

#[derive(Default)]
struct State {
    /// (device SN, PIN) → what is held.
    pairs: BTreeMap<(String, String), PinSeen>,
    /// The highest punch id counted.
    max_id: i64,
    /// When it was last read whole; `None` before the first read.
    built_at: Option<Instant>,
    /// A whole read is running in the background.
    rebuilding: bool,
    /// `pairs` as handed out (rebuilt only when something changed).
    snapshot: Arc<Vec<PinSeen>>,
}

/// The summary, shared by the pages of one process (`App::seen`).
#[derive(Default)]
pub struct SeenCache {
    state: tokio::sync::Mutex<State>,
}

impl std::fmt::Debug for SeenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeenCache").finish_non_exhaustive()
    }
}

fn merge(pairs: &mut BTreeMap<(String, String), PinSeen>, seen: Vec<PinSeen>) {
    for s in seen {
        let key = (s.device_sn.as_str().to_owned(), s.pin.clone());
        match pairs.get_mut(&key) {
            Some(held) => {
                held.count += s.count;
                held.first_seen = held.first_seen.min(s.first_seen);
                held.last_seen = held.last_seen.max(s.last_seen);
            }
            None => {
                pairs.insert(key, s);
            }
        }
    }
}

impl SeenCache {
    /// Every (device, PIN) with punches, by device then PIN, as the store holds them now (what
    /// [`crate::store::attendance::AttendanceStore::pins_seen`] answers, without reading every punch).
    ///
    /// Errors: the store's.
    pub async fn get(
        self: &Arc<Self>,
        store: &Arc<dyn Store>,
    ) -> Result<Arc<Vec<PinSeen>>, StoreError> {
        let mut state = self.state.lock().await;
        let max = store.max_punch_id().await?;
        if state.built_at.is_none() {
            state.pairs = BTreeMap::new();
            merge(&mut state.pairs, store.pins_seen_between(0, max).await?);
            state.max_id = max;
            state.built_at = Some(Instant::now());
            state.snapshot = Arc::new(state.pairs.values().cloned().collect());
            return Ok(state.snapshot.clone());
        }
        if max > state.max_id {
            let delta = store.pins_seen_between(state.max_id, max).await?;
            merge(&mut state.pairs, delta);
            state.max_id = max;
            state.snapshot = Arc::new(state.pairs.values().cloned().collect());
        }
        if !state.rebuilding && state.built_at.is_some_and(|t| t.elapsed() >= REBUILD_EVERY) {
            state.rebuilding = true;
            let (cache, store) = (self.clone(), store.clone());
            tokio::spawn(async move { cache.rebuild(store).await });
        }
        Ok(state.snapshot.clone())
    }

    /// Read the summary whole and put it in place of the pieced-together one (punches above the whole read's
    /// highest id are added by the next [`SeenCache::get`]).
    async fn rebuild(self: Arc<Self>, store: Arc<dyn Store>) {
        let read = async {
            let max = store.max_punch_id().await?;
            let seen = store.pins_seen_between(0, max).await?;
            Ok::<_, StoreError>((max, seen))
        }
        .await;
        let mut state = self.state.lock().await;
        state.rebuilding = false;
        match read {
            Ok((max, seen)) => {
                let mut pairs = BTreeMap::new();
                merge(&mut pairs, seen);
                // Punches stored while the whole read ran (above its highest id) are in the old summary: add them.
                if state.max_id > max {
                    match store.pins_seen_between(max, state.max_id).await {
                        Ok(delta) => merge(&mut pairs, delta),
                        Err(e) => {
                            tracing::warn!(error = %e, "re-reading the punches per PIN failed; kept the old");
                            return;
                        }
                    }
                }
                state.max_id = state.max_id.max(max);
                state.pairs = pairs;
                state.built_at = Some(Instant::now());
                state.snapshot = Arc::new(state.pairs.values().cloned().collect());
            }
            Err(e) => {
                tracing::warn!(error = %e, "re-reading the punches per PIN failed; kept the old");
                state.built_at = Some(Instant::now());
            }
        }
    }

    /// The last punch (UTC) of every device that has one, keyed by SN.
    ///
    /// Errors: the store's.
    pub async fn last_punches(
        self: &Arc<Self>,
        store: &Arc<dyn Store>,
    ) -> Result<std::collections::HashMap<String, chrono::DateTime<chrono::Utc>>, StoreError> {
        let mut last = std::collections::HashMap::<String, chrono::DateTime<chrono::Utc>>::new();
        for seen in self.get(store).await?.iter() {
            let entry = last
                .entry(seen.device_sn.as_str().to_owned())
                .or_insert(seen.last_seen);
            if seen.last_seen > *entry {
                *entry = seen.last_seen;
            }
        }
        Ok(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DeviceSn, NewPunch, Pin, PunchState, Source};
    use crate::store::sqlite::{Durability, SqliteStore};
    use crate::store::{Batch, RawEntry};
    use chrono::{TimeZone, Utc};

    async fn punch(store: &dyn Store, sn: &str, pin: &str, secs: i64) {
        let mut batch = Batch::new(RawEntry {
            received_at: Utc::now(),
            device_sn: None,
            source: Source::Import,
            kind: "test".into(),
            request: "test".into(),
            remote_addr: None,
            body: Vec::new(),
            errors: Vec::new(),
        });
        let utc = Utc.timestamp_opt(1_790_000_000 + secs, 0).unwrap();
        batch.punches.push(NewPunch {
            device_sn: DeviceSn::parse(sn).unwrap(),
            pin: Pin(pin.into()),
            punched_at: utc.naive_utc(),
            time_zone: "UTC".into(),
            punched_at_utc: utc,
            punch_state: Some(PunchState::CheckIn),
            verify_mode: None,
            work_code: None,
            extra: Vec::new(),
            source: Source::Import,
        });
        store.write_batch(batch).await.unwrap();
    }

    /// After every new punch (and after a whole re-read), the cache answers what the store's `pins_seen` does.
    #[tokio::test]
    async fn the_cache_equals_the_stores_summary_as_punches_arrive() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&dir.path().join("seen.db"), Durability::CrashSafe).unwrap(),
        );
        let cache = Arc::new(SeenCache::default());
        assert!(cache.get(&store).await.unwrap().is_empty());
        let steps = [
            ("SEEN1", "7", 0),
            ("SEEN1", "7", 60),
            ("SEEN2", "7", 30),
            ("SEEN1", "8", -100),
            ("SEEN1", "7", -500),
        ];
        for (sn, pin, secs) in steps {
            punch(store.as_ref(), sn, pin, secs).await;
            assert_eq!(
                *cache.get(&store).await.unwrap(),
                store.pins_seen().await.unwrap(),
                "after {sn}/{pin}"
            );
        }
        let last = cache.last_punches(&store).await.unwrap();
        assert_eq!(last["SEEN1"], Utc.timestamp_opt(1_790_000_060, 0).unwrap());
        // A whole re-read with a punch stored after it started ends the same.
        cache.clone().rebuild(store.clone()).await;
        punch(store.as_ref(), "SEEN2", "9", 5).await;
        assert_eq!(
            *cache.get(&store).await.unwrap(),
            store.pins_seen().await.unwrap()
        );
    }
}
