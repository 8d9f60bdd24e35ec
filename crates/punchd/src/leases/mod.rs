//! Leases at run time (issue 10, "Several instances"): how one punchd instance holds a job that only one instance
//! may do at a time — draining a sink (`sink:<name>`, [`crate::sinks`]) or pulling a terminal (`pull:<SN>`,
//! [`crate::sources::pull::scheduler`]) — through the store's [`LeaseStore`](crate::store::leases::LeaseStore).
//!
//! [`Leases::try_hold`] takes a lease; the returned [`Held`] renews it in the background every third of its time
//! and keeps, on this process's **monotonic** clock, the instant up to which the holder may count on it: the
//! start of the last successful renewal plus the lease time, minus a margin for clocks that disagree between
//! machines. [`Held::is_held`] turns false, and [`Held::lost`] resolves, as soon as a renewal is refused (another
//! instance has it) or that instant passes without one (the store did not answer) — before another instance can
//! take the lease over. So a holder checks [`Held::is_held`] right before each write of the job, and a job that
//! must not run a moment longer is raced against [`Held::lost`]. [`Held::release`] hands the lease over at once
//! on a clean stop; a crashed holder's lease is taken over when it expires.
//!
//! Depends on `store` only.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::watch;

use crate::store::leases::Lease;
use crate::store::{Store, StoreError};

/// This instance's identity and lease timing; one per [`crate::app::App`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leases {
    /// Who this instance is in the `leases` table: `host:pid:random` by default, unique per run.
    pub holder: String,
    /// How long a lease lasts without renewal (30 s): how long a job waits after its instance died.
    pub ttl: Duration,
    /// How often an instance that does not hold a lease looks whether it became free (5 s).
    pub poll_every: Duration,
}

impl Default for Leases {
    fn default() -> Leases {
        Leases::new(default_holder(), Duration::from_secs(30))
    }
}

/// `host:pid:random` (8 hex digits): readable in `list_leases`, and distinct for every run of every instance.
fn default_holder() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "punchd".to_owned());
    format!(
        "{host}:{}:{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// Free every lease in `store`, whoever holds it, and say how many there were.
///
/// Only for a store that one process owns, called while that process holds the SQLite file's
/// [`crate::instance_lock`]: the lock proves no other instance is alive, so any lease in the table is a leftover of
/// a process that died (`kill -9`, power cut) and would otherwise hold its sink or terminal idle until it expires
/// (30 s). Never call it on PostgreSQL, where other instances hold live leases.
///
/// Errors: the store cannot list or release leases.
pub async fn free_leftovers(store: &dyn Store) -> Result<usize, StoreError> {
    let mut freed = 0;
    for lease in store.list_leases().await? {
        if store.release_lease(&lease.name, &lease.holder).await? {
            freed += 1;
        }
    }
    Ok(freed)
}

impl Leases {
    /// An identity `holder` with leases of `ttl` (looked at every `ttl / 6` when held elsewhere, at least 100 ms).
    pub fn new(holder: impl Into<String>, ttl: Duration) -> Leases {
        Leases {
            holder: holder.into(),
            ttl,
            poll_every: (ttl / 6).max(Duration::from_millis(100)),
        }
    }

    /// Take the lease `name` if it is free, expired, or already ours; `Ok(None)` while another instance holds
    /// it. Looks first (a read), so instances waiting for a lease do not write.
    ///
    /// Errors: the store fails.
    pub async fn try_hold(
        &self,
        store: Arc<dyn Store>,
        name: &str,
    ) -> Result<Option<Held>, StoreError> {
        let ttl = chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::seconds(30));
        if let Some(current) = store.get_lease(name).await? {
            if current.holder != self.holder && current.expires_at > Utc::now() {
                return Ok(None);
            }
        }
        let started = Instant::now();
        let Some(lease) = store
            .acquire_lease(name, &self.holder, ttl, Utc::now())
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(Held::start(store, self.clone(), lease, started)))
    }

    /// The part of the lease time a holder does not count on: 1/6 of it (5 s of 30 s), for clocks of two
    /// machines that disagree and for the time a renewal takes to reach the store.
    fn margin(&self) -> Duration {
        self.ttl / 6
    }

    /// Until when a lease renewed at `started` (before the store was asked) may be counted on.
    fn deadline(&self, started: Instant) -> Instant {
        started + self.ttl.saturating_sub(self.margin())
    }
}

/// What the renewal task shares with the holder.
struct Shared {
    /// The lease as last stored.
    lease: std::sync::Mutex<Lease>,
    /// Until when the holder may count on it (monotonic clock).
    deadline: std::sync::Mutex<Instant>,
    /// `true` once the lease is lost for good.
    lost: watch::Sender<bool>,
}

/// A lease this instance holds, renewed in the background until it is released, dropped or lost.
pub struct Held {
    name: String,
    leases: Leases,
    store: Arc<dyn Store>,
    shared: Arc<Shared>,
    renewer: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held")
            .field("name", &self.name)
            .field("holder", &self.leases.holder)
            .field("is_held", &self.is_held())
            .finish()
    }
}

impl Held {
    fn start(store: Arc<dyn Store>, leases: Leases, lease: Lease, started: Instant) -> Held {
        let (lost, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            lease: std::sync::Mutex::new(lease.clone()),
            deadline: std::sync::Mutex::new(leases.deadline(started)),
            lost,
        });
        let renewer = tokio::spawn(renew_loop(
            store.clone(),
            leases.clone(),
            lease.name.clone(),
            shared.clone(),
        ));
        Held {
            name: lease.name,
            leases,
            store,
            shared,
            renewer,
        }
    }

    /// The lease's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The lease as last stored (its generation tells a later holder from an earlier one).
    pub fn lease(&self) -> Lease {
        self.shared
            .lease
            .lock()
            .map(|l| l.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// Whether this instance may still act on the lease now: not refused by the store, and its last renewal
    /// still covers now on the monotonic clock (less the margin). Check it right before every write of the job.
    pub fn is_held(&self) -> bool {
        !*self.shared.lost.borrow() && Instant::now() < deadline_of(&self.shared)
    }

    /// Resolves once the lease is lost (refused by the store, or not renewed in time). Race a job against it to
    /// stop the job the moment the lease goes.
    pub async fn lost(&self) {
        let mut lost = self.shared.lost.subscribe();
        let _ = lost.wait_for(|l| *l).await;
    }

    /// Stop renewing and give the lease up in the store, so another instance takes it at once.
    ///
    /// Errors: none returned; a failed release is logged and the lease then expires on its own.
    pub async fn release(self) {
        self.renewer.abort();
        if let Err(e) = self
            .store
            .release_lease(&self.name, &self.leases.holder)
            .await
        {
            tracing::warn!(lease = %self.name, error = %e, "releasing a lease failed; it expires on its own");
        }
    }
}

impl Drop for Held {
    /// Dropping without [`Held::release`] stops the renewals only: the lease expires on its own (what a crash
    /// does, too).
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

fn deadline_of(shared: &Shared) -> Instant {
    shared
        .deadline
        .lock()
        .map(|d| *d)
        .unwrap_or_else(|e| *e.into_inner())
}

/// Renew every third of the lease time (sooner after a failed attempt) until refused or out of time.
async fn renew_loop(store: Arc<dyn Store>, leases: Leases, name: String, shared: Arc<Shared>) {
    let ttl = chrono::Duration::from_std(leases.ttl).unwrap_or(chrono::Duration::seconds(30));
    let every = (leases.ttl / 3).max(Duration::from_millis(10));
    let mut next = Instant::now() + every;
    loop {
        let deadline = deadline_of(&shared);
        tokio::time::sleep_until(next.min(deadline).into()).await;
        if Instant::now() >= deadline_of(&shared) {
            tracing::warn!(lease = %name, "lease not renewed in time; letting it go");
            shared.lost.send_replace(true);
            return;
        }
        let started = Instant::now();
        // A renewal that hangs past the deadline must not keep the holder believing it holds the lease.
        let renewed = tokio::time::timeout_at(
            deadline_of(&shared).into(),
            store.renew_lease(&name, &leases.holder, ttl, Utc::now()),
        )
        .await;
        let Ok(renewed) = renewed else {
            tracing::warn!(lease = %name, "lease renewal got no answer in time; letting it go");
            shared.lost.send_replace(true);
            return;
        };
        match renewed {
            Ok(Some(lease)) => {
                if let Ok(mut d) = shared.deadline.lock() {
                    *d = leases.deadline(started);
                }
                if let Ok(mut l) = shared.lease.lock() {
                    *l = lease;
                }
                next = started + every;
            }
            Ok(None) => {
                tracing::warn!(lease = %name, "lease lost: another instance holds it, or it expired");
                shared.lost.send_replace(true);
                return;
            }
            Err(e) => {
                tracing::warn!(lease = %name, error = %e, "renewing a lease failed; retrying");
                next = Instant::now() + (every / 4).max(Duration::from_millis(10));
            }
        }
    }
}

#[cfg(test)]
mod instances;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::{Durability, SqliteStore};

    fn store() -> (tempfile::TempDir, Arc<dyn Store>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store =
            SqliteStore::open(&dir.path().join("l.db"), Durability::PowerSafe).expect("open");
        (dir, Arc::new(store))
    }

    #[tokio::test]
    async fn a_held_lease_is_refused_to_another_instance_and_released_to_it() {
        let (_dir, store) = store();
        let a = Leases::new("A", Duration::from_secs(30));
        let b = Leases::new("B", Duration::from_secs(30));
        let held = a
            .try_hold(store.clone(), "sink:x")
            .await
            .expect("store")
            .expect("free");
        assert!(held.is_held());
        assert_eq!(
            (held.lease().holder.as_str(), held.lease().generation),
            ("A", 1)
        );
        assert!(b
            .try_hold(store.clone(), "sink:x")
            .await
            .expect("store")
            .is_none());
        held.release().await;
        let taken = b
            .try_hold(store.clone(), "sink:x")
            .await
            .expect("store")
            .expect("released");
        assert_eq!(
            (taken.lease().holder.as_str(), taken.lease().generation),
            ("B", 2)
        );
    }

    #[tokio::test]
    async fn a_holder_whose_lease_was_taken_learns_it_at_its_next_renewal() {
        let (_dir, store) = store();
        // A's lease is taken from under it (as after a long stall): its next renewal is refused and it knows.
        let a = Leases::new("A", Duration::from_millis(300));
        let held = a
            .try_hold(store.clone(), "pull:X")
            .await
            .expect("store")
            .expect("free");
        store
            .acquire_lease(
                "pull:X",
                "B",
                chrono::Duration::seconds(60),
                Utc::now() + chrono::Duration::seconds(1),
            )
            .await
            .expect("store")
            .expect("B takes the expired lease");
        held.lost().await;
        assert!(!held.is_held());
        assert_eq!(
            store
                .get_lease("pull:X")
                .await
                .expect("get")
                .map(|l| l.holder),
            Some("B".to_owned())
        );
    }
}
