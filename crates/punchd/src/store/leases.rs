//! Store area "leases" (issue 10, "Several instances"): a time-limited claim, kept in the store, of one punchd
//! instance on a named job, so several instances on one PostgreSQL never do it twice at once.
//!
//! Names in use: `sink:<sink name>` (one instance drains a sink, `sinks::run`) and `pull:<SN>` (one instance
//! pulls a terminal, `sources::pull::scheduler`). A **holder** is one running instance (`leases::Leases::holder`).
//! A lease is held until `expires_at`; the holder renews it well before, releases it when it stops, and if it dies
//! another instance takes it once it expired. Every time the lease changes hands its `generation` grows by one.
//!
//! Times are UTC instants passed in by the caller (`now`), so the rules are checked without waiting; instances
//! compare their clocks through the store, so their clocks must agree (NTP) to well within the lease time.
//! [`crate::leases`] keeps a lease alive and tells its holder, on its own monotonic clock, when it may no longer
//! count on it, which is how a holder that lost its lease learns it before writing.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::Result;

/// A lease as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Lease {
    /// What it is a claim on: `sink:<name>`, `pull:<SN>`.
    pub name: String,
    /// The instance holding it (`host:pid:random`, see `leases::Leases::holder`).
    pub holder: String,
    /// When this holder took it (UTC); renewals keep it.
    pub acquired_at: DateTime<Utc>,
    /// When it becomes free for anyone unless renewed (UTC).
    pub expires_at: DateTime<Utc>,
    /// How many times the lease changed hands, starting at 1 (a fencing number: a larger one is a later holder).
    pub generation: i64,
}

/// Persistence of leases. Every write is durable before `Ok`.
#[async_trait::async_trait]
pub trait LeaseStore: Send + Sync {
    /// Take the lease `name` for `holder` until `now + ttl`: succeeds when nobody holds it, when it expired
    /// (`expires_at <= now`), or when `holder` already holds it (then it is renewed). `Ok(None)` when another
    /// holder's lease is still running. Taking it from another holder adds 1 to the generation.
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<Lease>>;
    /// Extend `holder`'s running lease to `now + ttl`. `Ok(None)` when `holder` no longer holds it: it expired
    /// (even if nobody took it since) or another holder has it. A holder answered `None` must stop the job.
    async fn renew_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<Lease>>;
    /// Give the lease up so another instance can take it at once. `Ok(false)` when `holder` did not hold it.
    async fn release_lease(&self, name: &str, holder: &str) -> Result<bool>;
    /// The lease `name` as stored (running or expired), if any.
    async fn get_lease(&self, name: &str) -> Result<Option<Lease>>;
    /// Every stored lease, by name (expired ones included: `expires_at` tells).
    async fn list_leases(&self) -> Result<Vec<Lease>>;
}
