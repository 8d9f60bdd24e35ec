//! How busy collection is right now, for the sinks to decide whether a round can wait ("collection first",
//! README; `sinks::collection_wait`).
//!
//! The measure is the share of recent wall time during which at least one delivery (a push upload, a pulled
//! batch, an import chunk, a webhook post) was being written to the store: from [`crate::ingest::Ingest`] handing
//! the batch to the store until the store answered (the commit, fsync included). One terminal uploading now and
//! then keeps it near 0; many terminals uploading back to back keep it near 1. It is taken over the last
//! completed window of [`WINDOW`] and the current one, so it follows a burst and forgets it within two windows
//! (half a second). It is per process: on PostgreSQL with several instances, each instance's sinks see their
//! own instance's collection.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The length of one measuring window.
pub const WINDOW: Duration = Duration::from_millis(250);

/// The share of recent wall time spent writing collected punches (see the module docs). Shared by every clone of
/// the ingest path; cheap: one uncontended lock and one clock reading per write start and end.
#[derive(Debug)]
pub struct CollectionLoad {
    state: Mutex<LoadState>,
}

#[derive(Debug)]
struct LoadState {
    /// Deliveries being written now.
    writing: usize,
    /// Since when the current busy stretch is counted in this window (while `writing > 0`).
    busy_from: Option<Instant>,
    /// Start of the current window.
    window_start: Instant,
    /// Busy time of the current window, ended stretches only.
    busy: Duration,
    /// Length and busy time of the last completed window.
    prev_len: Duration,
    prev_busy: Duration,
}

impl LoadState {
    fn ongoing(&self, now: Instant) -> Duration {
        self.busy_from
            .map_or(Duration::ZERO, |from| now.saturating_duration_since(from))
    }

    /// Close the current window if it is [`WINDOW`] old (a window read after a long quiet spell is that long: its
    /// share is then small, as it should be).
    fn roll(&mut self, now: Instant) {
        let len = now.saturating_duration_since(self.window_start);
        if len < WINDOW {
            return;
        }
        self.prev_busy = (self.busy + self.ongoing(now)).min(len);
        self.prev_len = len;
        self.window_start = now;
        self.busy = Duration::ZERO;
        if self.busy_from.is_some() {
            self.busy_from = Some(now);
        }
    }
}

impl Default for CollectionLoad {
    fn default() -> Self {
        CollectionLoad::new(Instant::now())
    }
}

impl CollectionLoad {
    /// A measure that starts idle at `now`.
    pub fn new(now: Instant) -> CollectionLoad {
        CollectionLoad {
            state: Mutex::new(LoadState {
                writing: 0,
                busy_from: None,
                window_start: now,
                busy: Duration::ZERO,
                prev_len: Duration::ZERO,
                prev_busy: Duration::ZERO,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LoadState> {
        // Every change is a few plain assignments; a panic elsewhere cannot leave it half-made.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A delivery starts being written; it counts as busy until the returned guard is dropped.
    pub fn writing(&self) -> Writing<'_> {
        self.begin_at(Instant::now());
        Writing { load: self }
    }

    /// [`Self::writing`] at a given instant, without a guard (pair it with [`Self::end_at`]).
    pub fn begin_at(&self, now: Instant) {
        let mut s = self.lock();
        s.roll(now);
        s.writing += 1;
        if s.writing == 1 {
            s.busy_from = Some(now);
        }
    }

    /// A write that [`Self::begin_at`] started has its answer.
    pub fn end_at(&self, now: Instant) {
        let mut s = self.lock();
        s.roll(now);
        s.writing = s.writing.saturating_sub(1);
        if s.writing == 0 {
            let ongoing = s.ongoing(now);
            s.busy += ongoing;
            s.busy_from = None;
        }
    }

    /// The busy share (0.0–1.0) over the last completed window and the current one, at `now`.
    pub fn busy_share_at(&self, now: Instant) -> f64 {
        let mut s = self.lock();
        s.roll(now);
        let total = s.prev_len + now.saturating_duration_since(s.window_start);
        if total.is_zero() {
            return if s.writing > 0 { 1.0 } else { 0.0 };
        }
        let busy = s.prev_busy + s.busy + s.ongoing(now);
        (busy.as_secs_f64() / total.as_secs_f64()).min(1.0)
    }

    /// [`Self::busy_share_at`] now.
    pub fn busy_share(&self) -> f64 {
        self.busy_share_at(Instant::now())
    }
}

/// A delivery being written ([`CollectionLoad::writing`]); dropping it ends the write, also when the future
/// holding it is cancelled.
#[derive(Debug)]
pub struct Writing<'a> {
    load: &'a CollectionLoad,
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.load.end_at(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn idle_is_zero_and_writing_all_the_time_is_one() {
        let t0 = Instant::now();
        let load = CollectionLoad::new(t0);
        assert_eq!(load.busy_share_at(t0 + ms(400)), 0.0);
        load.begin_at(t0 + ms(400));
        // Still writing 600 ms later: the last window and this one were busy throughout.
        assert_eq!(load.busy_share_at(t0 + ms(1000)), 1.0);
    }

    #[test]
    fn overlapping_writes_count_once_and_a_burst_is_forgotten_after_two_windows() {
        let t0 = Instant::now();
        let load = CollectionLoad::new(t0);
        // Two writes overlapping over 50..150 ms: busy 100 ms of the first 250.
        load.begin_at(t0 + ms(50));
        load.begin_at(t0 + ms(100));
        load.end_at(t0 + ms(120));
        load.end_at(t0 + ms(150));
        let share = load.busy_share_at(t0 + ms(250));
        assert!((share - 0.4).abs() < 1e-9, "{share}");
        // Half a window later, quiet since: 100 ms of 375.
        let share = load.busy_share_at(t0 + ms(375));
        assert!((share - 100.0 / 375.0).abs() < 1e-9, "{share}");
        // Two quiet windows later the burst no longer counts.
        assert_eq!(load.busy_share_at(t0 + ms(760)), 0.0);
    }

    #[test]
    fn a_write_spanning_windows_is_split_between_them() {
        let t0 = Instant::now();
        let load = CollectionLoad::new(t0);
        load.begin_at(t0 + ms(200));
        // Rolled at 300: the first window (300 ms long) had 100 ms busy.
        let share = load.busy_share_at(t0 + ms(300));
        assert!((share - 100.0 / 300.0).abs() < 1e-9, "{share}");
        load.end_at(t0 + ms(400));
        // 100 of 300, then 100 of 100 in the current window.
        let share = load.busy_share_at(t0 + ms(400));
        assert!((share - 200.0 / 400.0).abs() < 1e-9, "{share}");
    }

    #[test]
    fn the_guard_ends_the_write_when_dropped() {
        let load = CollectionLoad::new(Instant::now());
        {
            let _w = load.writing();
            assert_eq!(load.lock().writing, 1);
        }
        assert_eq!(load.lock().writing, 0);
    }
}
