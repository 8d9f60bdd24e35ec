//! Punches per (device, PIN) kept between requests ([`PinSeen`]: count, first and last punch), brought up to date
//! by reading only the punches stored since the last look (issue 11, "Speed").
//!
//! The unmapped queue, the dashboard's unmapped count and every terminal's last punch come from this summary.
//! From the store it is a `GROUP BY` over every punch: seconds with 10 million punches, on every page view. Here
//! it is built once per process and then, per look, only the punches with an id above the highest one it has seen
//! (`pins_seen_between`, a range of the primary key) are read and merged in. Punches are never deleted, so counts
//! only grow.
//!
//! It survives restarts: the summary is saved in the store (`save_pin_summary`, table `pin_summary`) by the web
//! UI's background work ([`SeenCache::save`]: about every minute the pairs changed since the last save, and the
//! whole after each whole read), never on a page's path. The first look after a start loads the saved summary and
//! reads only the punches above the id it counts, punches stored while no process ran included. Only when none is
//! saved (the first start, or a saved one that counts more punches than the store holds) is it read whole. The
//! saved copy is derived data: `punches` stay the truth.
//!
//! A whole read also runs [`REBUILD_EVERY`] in the background while the old summary keeps answering. On SQLite
//! ids are handed out by the one writer in commit order, so "above the highest id seen" is exact. On PostgreSQL a
//! transaction may commit a lower id after a higher one was seen; such a punch is missed until the next whole read
//! (at most [`REBUILD_EVERY`]), as in [`crate::attendance::month_cache`]. The saved copy inherits that (a punch
//! missed when it was saved stays missed by the process that loads it until that process's first whole read, at
//! most [`REBUILD_EVERY`] after its start) and is replaced whole after each whole read.
//!
//! Depends on `store` only.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::store::attendance::PinSeen;
use crate::store::{Store, StoreError};

/// How long the summary is kept up to date piece by piece before it is read whole again (in the background).
pub const REBUILD_EVERY: Duration = Duration::from_secs(600);

/// What the cache did since it was made (for tests and benchmarks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeenStats {
    /// Whole reads of every punch (`pins_seen_between(0, …)`): the first look without a saved summary, and the
    /// background re-reads.
    pub whole_reads: u64,
    /// First looks answered from the saved summary and the punches above it.
    pub loads: u64,
    /// Saves written to the store (whole or the changed pairs).
    pub saves: u64,
}

#[derive(Default)]
struct State {
    /// (device SN, PIN) → what is held.
    pairs: BTreeMap<(String, String), PinSeen>,
    /// The highest punch id counted.
    max_id: i64,
    /// When it was last read whole (or loaded); `None` before the first look.
    built_at: Option<Instant>,
    /// A whole read is running in the background.
    rebuilding: bool,
    /// `pairs` as handed out (rebuilt only when something changed).
    snapshot: Arc<Vec<PinSeen>>,
    /// The highest punch id of what the store holds as saved by this cache (or loaded from it); `None` when the
    /// next save must be whole (nothing saved yet, a whole read since, or a save refused or failed).
    saved_up_to: Option<i64>,
    /// Pairs whose punches changed since the last save.
    changed: BTreeSet<(String, String)>,
    stats: SeenStats,
}

/// What [`SeenCache::hold_reading_whole`] holds (tests only).
#[cfg(test)]
pub(crate) struct HeldReadingWhole<'a> {
    _state: tokio::sync::MutexGuard<'a, State>,
    flag: &'a std::sync::atomic::AtomicBool,
}

#[cfg(test)]
impl Drop for HeldReadingWhole<'_> {
    fn drop(&mut self) {
        self.flag.store(false, std::sync::atomic::Ordering::Release);
    }
}

/// The summary, shared by the pages of one process (`App::seen`).
#[derive(Default)]
pub struct SeenCache {
    state: tokio::sync::Mutex<State>,
    /// Held while saving, so saves run one at a time.
    saving: tokio::sync::Mutex<()>,
    /// Set while a first look reads every punch (no saved summary): what [`SeenCache::get_within`] does not wait
    /// for. Loading a saved summary and bringing it up to date is waited for.
    reading_whole: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for SeenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeenCache").finish_non_exhaustive()
    }
}

/// Pairs from the store (one row per pair) keyed.
fn keyed(seen: Vec<PinSeen>) -> BTreeMap<(String, String), PinSeen> {
    seen.into_iter()
        .map(|s| ((s.device_sn.as_str().to_owned(), s.pin.clone()), s))
        .collect()
}

/// The first look: the saved summary and the punches above the id it counts, or every punch when none is saved
/// (or the saved one counts punches up to an id the store does not hold: a store restored from an older backup).
/// `reading_whole` is set while every punch is read (what [`SeenCache::get_within`] does not wait for).
async fn first_look(
    state: &mut State,
    store: &dyn Store,
    max: i64,
    reading_whole: &std::sync::atomic::AtomicBool,
) -> Result<(), StoreError> {
    let saved = match store.load_pin_summary().await {
        Ok(saved) => saved,
        Err(e) => {
            tracing::warn!(error = %e, "loading the saved punches per PIN failed; reading every punch");
            None
        }
    };
    state.changed.clear();
    match saved {
        Some((up_to, pairs)) if up_to <= max => {
            state.pairs = keyed(pairs);
            if max > up_to {
                let delta = store.pins_seen_between(up_to, max).await?;
                merge(&mut state.pairs, delta, &mut state.changed);
            }
            state.saved_up_to = Some(up_to);
            state.stats.loads += 1;
        }
        saved => {
            if let Some((up_to, _)) = saved {
                tracing::info!(
                    up_to,
                    max,
                    "the saved punches per PIN count punches the store does not hold; reading every punch"
                );
            }
            reading_whole.store(true, std::sync::atomic::Ordering::Release);
            let whole = store.pins_seen_between(0, max).await;
            reading_whole.store(false, std::sync::atomic::Ordering::Release);
            state.pairs = keyed(whole?);
            state.saved_up_to = None;
            state.stats.whole_reads += 1;
        }
    }
    state.max_id = max;
    state.built_at = Some(Instant::now());
    state.snapshot = Arc::new(state.pairs.values().cloned().collect());
    Ok(())
}

/// Merge the punches with ids above what `state` counts, up to `max`.
async fn catch_up(state: &mut State, store: &dyn Store, max: i64) -> Result<(), StoreError> {
    if max > state.max_id {
        let delta = store.pins_seen_between(state.max_id, max).await?;
        merge(&mut state.pairs, delta, &mut state.changed);
        state.max_id = max;
        state.snapshot = Arc::new(state.pairs.values().cloned().collect());
    }
    Ok(())
}

/// Add `seen` to `pairs`; the keys touched are added to `changed`.
fn merge(
    pairs: &mut BTreeMap<(String, String), PinSeen>,
    seen: Vec<PinSeen>,
    changed: &mut BTreeSet<(String, String)>,
) {
    for s in seen {
        let key = (s.device_sn.as_str().to_owned(), s.pin.clone());
        changed.insert(key.clone());
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
    /// The first call loads the saved summary and reads the punches above it (or, with none saved, every punch).
    ///
    /// Errors: the store's.
    pub async fn get(
        self: &Arc<Self>,
        store: &Arc<dyn Store>,
    ) -> Result<Arc<Vec<PinSeen>>, StoreError> {
        let mut state = self.state.lock().await;
        let max = store.max_punch_id().await?;
        if state.built_at.is_none() {
            first_look(&mut state, store.as_ref(), max, &self.reading_whole).await?;
            return Ok(state.snapshot.clone());
        }
        catch_up(&mut state, store.as_ref(), max).await?;
        if !state.rebuilding && state.built_at.is_some_and(|t| t.elapsed() >= REBUILD_EVERY) {
            state.rebuilding = true;
            let (cache, store) = (self.clone(), store.clone());
            tokio::spawn(async move { cache.rebuild(store).await });
        }
        Ok(state.snapshot.clone())
    }

    /// [`SeenCache::get`], except while the process's first look reads every punch (a database without a saved
    /// summary: seconds with millions): then `Ok(None)` after `wait`. The look runs in a task of its own and goes
    /// on after `wait`, so a later call finds it done (or waits for the same one: looks take the summary's lock one
    /// at a time). Loading a saved summary and bringing it up to date (only new punches are read) is waited for.
    ///
    /// Errors: the store's, and a look that ended without an answer (it panicked).
    pub async fn get_within(
        self: &Arc<Self>,
        store: &Arc<dyn Store>,
        wait: Duration,
    ) -> Result<Option<Arc<Vec<PinSeen>>>, StoreError> {
        let (cache, store) = (self.clone(), store.clone());
        let mut look = tokio::spawn(async move { cache.get(&store).await });
        let answer = match tokio::time::timeout(wait, &mut look).await {
            Ok(answer) => answer,
            Err(_still_looking)
                if self
                    .reading_whole
                    .load(std::sync::atomic::Ordering::Acquire) =>
            {
                return Ok(None)
            }
            Err(_still_looking) => look.await,
        };
        match answer {
            Ok(answer) => answer.map(Some),
            Err(e) => Err(StoreError::Backend(format!(
                "reading the punches per PIN ended without an answer: {e}"
            ))),
        }
    }

    /// Hold the summary as a look holds it (tests only): [`SeenCache::get`] waits until the returned guard is
    /// dropped.
    #[cfg(test)]
    pub(crate) async fn hold(&self) -> tokio::sync::MutexGuard<'_, impl Sized> {
        self.state.lock().await
    }

    /// Hold the summary as a first look that reads every punch holds it (tests only): [`SeenCache::get`] waits
    /// until the returned guard is dropped, [`SeenCache::get_within`] does not.
    #[cfg(test)]
    pub(crate) async fn hold_reading_whole(&self) -> HeldReadingWhole<'_> {
        let state = self.state.lock().await;
        self.reading_whole
            .store(true, std::sync::atomic::Ordering::Release);
        HeldReadingWhole {
            _state: state,
            flag: &self.reading_whole,
        }
    }

    /// Bring the summary up to date with the punches stored since the last look, then save what changed since
    /// the last save to the store (the web UI's background work calls it about every minute; never on a page's
    /// path): the pairs whose punches changed and the new highest id, or the whole summary after a whole read (or
    /// when the store refused the changed pairs: another instance saved meanwhile). Nothing is written when
    /// nothing changed, or before the first look. `Ok(true)` when written.
    ///
    /// Errors: the store's; the next save is then whole.
    pub async fn save(&self, store: &dyn Store) -> Result<bool, StoreError> {
        let one_at_a_time = self.saving.lock().await;
        self.save_holding(store, &one_at_a_time).await
    }

    /// [`SeenCache::save`] with `saving` held by the caller.
    async fn save_holding(
        &self,
        store: &dyn Store,
        _saving: &tokio::sync::MutexGuard<'_, ()>,
    ) -> Result<bool, StoreError> {
        loop {
            let (changed_after, up_to, pairs) = {
                let mut state = self.state.lock().await;
                if state.built_at.is_none() {
                    return Ok(false);
                }
                let max = store.max_punch_id().await?;
                catch_up(&mut state, store, max).await?;
                match state.saved_up_to {
                    Some(saved) if saved == state.max_id && state.changed.is_empty() => {
                        return Ok(false)
                    }
                    Some(saved) => {
                        let changed = std::mem::take(&mut state.changed);
                        let pairs = changed
                            .iter()
                            .filter_map(|k| state.pairs.get(k).cloned())
                            .collect();
                        (Some(saved), state.max_id, pairs)
                    }
                    None => {
                        state.changed.clear();
                        (None, state.max_id, state.snapshot.to_vec())
                    }
                }
            };
            // The state is not held while writing: pages keep being answered, and what changes meanwhile is in
            // `changed` for the next save.
            let written = store.save_pin_summary(changed_after, up_to, pairs).await;
            let mut state = self.state.lock().await;
            match written {
                Ok(true) => {
                    state.saved_up_to = Some(up_to);
                    state.stats.saves += 1;
                    return Ok(true);
                }
                Ok(false) if changed_after.is_some() => {
                    tracing::debug!(
                        "the saved punches per PIN moved on meanwhile; saving them whole"
                    );
                    state.saved_up_to = None;
                }
                Ok(false) => return Ok(false),
                Err(e) => {
                    state.saved_up_to = None;
                    return Err(e);
                }
            }
        }
    }

    /// What the cache did so far.
    pub async fn stats(&self) -> SeenStats {
        self.state.lock().await.stats
    }

    /// Read the summary whole and put it in place of the pieced-together one (punches above the whole read's
    /// highest id are added by the next [`SeenCache::get`]), then save it whole.
    async fn rebuild(self: Arc<Self>, store: Arc<dyn Store>) {
        let read = async {
            let max = store.max_punch_id().await?;
            let seen = store.pins_seen_between(0, max).await?;
            Ok::<_, StoreError>((max, seen))
        }
        .await;
        // No save runs while the whole read is put in place and saved (one that started before would otherwise
        // mark the pieced-together copy as saved after this one was put in place).
        let saving = self.saving.lock().await;
        {
            let mut state = self.state.lock().await;
            let state = &mut *state;
            state.rebuilding = false;
            state.stats.whole_reads += 1;
            match read {
                Ok((max, seen)) => {
                    let mut pairs = keyed(seen);
                    let mut changed = BTreeSet::new();
                    // Punches stored while the whole read ran (above its highest id) are in the old summary: add
                    // them.
                    if state.max_id > max {
                        match store.pins_seen_between(max, state.max_id).await {
                            Ok(delta) => merge(&mut pairs, delta, &mut changed),
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
                    // The saved copy is replaced whole: it may miss what this read found.
                    state.saved_up_to = None;
                    state.changed.clear();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "re-reading the punches per PIN failed; kept the old");
                    state.built_at = Some(Instant::now());
                    return;
                }
            }
        }
        if let Err(e) = self.save_holding(store.as_ref(), &saving).await {
            tracing::warn!(error = %e, "saving the punches per PIN failed; the next save tries again");
        }
    }
}

/// The last punch (UTC) of every device in `seen` (a summary [`SeenCache::get`] answered), keyed by SN.
pub fn last_punches_of(
    seen: &[PinSeen],
) -> std::collections::HashMap<String, chrono::DateTime<chrono::Utc>> {
    let mut last = std::collections::HashMap::<String, chrono::DateTime<chrono::Utc>>::new();
    for seen in seen {
        let entry = last
            .entry(seen.device_sn.as_str().to_owned())
            .or_insert(seen.last_seen);
        if seen.last_seen > *entry {
            *entry = seen.last_seen;
        }
    }
    last
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

    /// While a first look reads every punch, `get_within` answers `None` after its wait instead of waiting; the look
    /// it started goes on, and once the summary is free the answer is there. A look that only brings it up to date
    /// is waited for.
    #[tokio::test]
    async fn get_within_answers_none_only_while_every_punch_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&dir.path().join("seen.db"), Durability::CrashSafe).unwrap(),
        );
        punch(store.as_ref(), "WAIT1", "7", 0).await;
        let cache = Arc::new(SeenCache::default());
        let held = cache.hold_reading_whole().await;
        assert_eq!(
            cache
                .get_within(&store, Duration::from_millis(20))
                .await
                .unwrap(),
            None
        );
        drop(held);
        let seen = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                if let Some(seen) = cache
                    .get_within(&store, Duration::from_millis(20))
                    .await
                    .unwrap()
                {
                    return seen;
                }
            }
        })
        .await
        .expect("answered once the summary is free");
        assert_eq!(*seen, store.pins_seen().await.unwrap());
        assert_eq!(seen.len(), 1);
        // Once it is there, a look that takes longer than the wait (only new punches are read) is waited for.
        punch(store.as_ref(), "WAIT1", "8", 60).await;
        let held = cache.hold().await;
        let waiting = {
            let (cache, store) = (cache.clone(), store.clone());
            tokio::spawn(async move {
                cache
                    .get_within(&store, Duration::from_millis(20))
                    .await
                    .unwrap()
            })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !waiting.is_finished(),
            "waits past its wait once the summary is there"
        );
        drop(held);
        let seen = waiting.await.unwrap().expect("the summary");
        assert_eq!(*seen, store.pins_seen().await.unwrap());
        assert_eq!(seen.len(), 2);
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
        let last = last_punches_of(&cache.get(&store).await.unwrap());
        assert_eq!(last["SEEN1"], Utc.timestamp_opt(1_790_000_060, 0).unwrap());
        // A whole re-read with a punch stored after it started ends the same, and is saved whole.
        cache.clone().rebuild(store.clone()).await;
        assert_saved_is_current(&store).await;
        punch(store.as_ref(), "SEEN2", "9", 5).await;
        assert_eq!(
            *cache.get(&store).await.unwrap(),
            store.pins_seen().await.unwrap()
        );
    }

    async fn open(dir: &tempfile::TempDir) -> Arc<dyn Store> {
        Arc::new(SqliteStore::open(&dir.path().join("seen.db"), Durability::CrashSafe).unwrap())
    }

    /// What the store holds as saved equals the store's summary up to its highest punch id.
    async fn assert_saved_is_current(store: &Arc<dyn Store>) {
        assert_eq!(
            store.load_pin_summary().await.unwrap(),
            Some((
                store.max_punch_id().await.unwrap(),
                store.pins_seen().await.unwrap()
            ))
        );
    }

    /// A start with a saved summary reads only the punches stored after it (also those stored while no cache
    /// ran) and answers what the store's `pins_seen` does; only the very first start reads every punch.
    #[tokio::test]
    async fn a_new_cache_starts_from_the_saved_summary() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir).await;
        punch(store.as_ref(), "SEEN1", "7", 0).await;
        punch(store.as_ref(), "SEEN1", "8", 10).await;
        let first = Arc::new(SeenCache::default());
        // Nothing to save before the first look.
        assert!(!first.save(store.as_ref()).await.unwrap());
        first.get(&store).await.unwrap();
        assert!(first.save(store.as_ref()).await.unwrap(), "the whole");
        assert_saved_is_current(&store).await;
        // Punches seen by a page, then saved as changed pairs; a save with nothing new writes nothing.
        punch(store.as_ref(), "SEEN1", "7", 100).await;
        first.get(&store).await.unwrap();
        assert!(first.save(store.as_ref()).await.unwrap(), "changed pairs");
        assert!(
            !first.save(store.as_ref()).await.unwrap(),
            "nothing changed"
        );
        // Punches no page asked about yet are brought in by the save itself.
        punch(store.as_ref(), "SEEN2", "1", 5).await;
        assert!(first.save(store.as_ref()).await.unwrap(), "caught up");
        assert_saved_is_current(&store).await;
        assert_eq!(
            first.stats().await,
            SeenStats {
                whole_reads: 1,
                loads: 0,
                saves: 3
            }
        );
        drop(first);

        // Stored while no cache ran: a new pair, a known pair later and one earlier than its first punch.
        punch(store.as_ref(), "SEEN3", "7", 0).await;
        punch(store.as_ref(), "SEEN1", "7", 500).await;
        punch(store.as_ref(), "SEEN1", "8", -500).await;
        let second = Arc::new(SeenCache::default());
        assert_eq!(
            *second.get(&store).await.unwrap(),
            store.pins_seen().await.unwrap()
        );
        punch(store.as_ref(), "SEEN2", "1", 600).await;
        assert_eq!(
            *second.get(&store).await.unwrap(),
            store.pins_seen().await.unwrap()
        );
        assert_eq!(
            second.stats().await,
            SeenStats {
                whole_reads: 0,
                loads: 1,
                saves: 0
            },
            "loaded, not read whole"
        );
        assert!(second.save(store.as_ref()).await.unwrap());
        assert_saved_is_current(&store).await;
    }

    /// A saved summary the store cannot have (it counts punch ids above the highest stored: a store restored from
    /// an older backup) is not used: the punches are read whole.
    #[tokio::test]
    async fn a_saved_summary_ahead_of_the_store_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir).await;
        punch(store.as_ref(), "SEEN1", "7", 0).await;
        let ghost = PinSeen {
            device_sn: DeviceSn::parse("GHOST").unwrap(),
            pin: "1".into(),
            count: 99,
            first_seen: Utc.timestamp_opt(1_790_000_000, 0).unwrap(),
            last_seen: Utc.timestamp_opt(1_790_000_000, 0).unwrap(),
        };
        assert!(store
            .save_pin_summary(None, 1_000, vec![ghost])
            .await
            .unwrap());
        let cache = Arc::new(SeenCache::default());
        assert_eq!(
            *cache.get(&store).await.unwrap(),
            store.pins_seen().await.unwrap()
        );
        assert_eq!(cache.stats().await.whole_reads, 1);
        // Its save replaces the impossible one whole.
        assert!(cache.save(store.as_ref()).await.unwrap());
        assert_saved_is_current(&store).await;
    }

    /// When another instance saved meanwhile (what is saved is no longer where this cache left it), the changed
    /// pairs are refused by the store and this cache saves whole instead.
    #[tokio::test]
    async fn a_save_moved_on_by_another_instance_is_redone_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir).await;
        punch(store.as_ref(), "SEEN1", "7", 0).await;
        let cache = Arc::new(SeenCache::default());
        cache.get(&store).await.unwrap();
        assert!(cache.save(store.as_ref()).await.unwrap());
        punch(store.as_ref(), "SEEN1", "8", 0).await;
        // Another instance's (here: nonsense) save, counting up to an id above this cache's.
        assert!(store
            .save_pin_summary(None, 1_000, Vec::new())
            .await
            .unwrap());
        assert!(cache.save(store.as_ref()).await.unwrap());
        assert_saved_is_current(&store).await;
    }
}
