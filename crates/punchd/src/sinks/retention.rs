//! Outbox pruning: events every sink has delivered are deleted once they are older than the retention
//! (`outbox_retention_days` in the settings file, default 90 days, 0 = keep everything), so the outbox does not
//! grow with every punch ever stored. Pending and parked events are never pruned (a parked event waits for a
//! person), and the punches themselves stay: a replay or a new sink's `since` writes their events again.
//!
//! Trade-off: a pruned event loses what the sink called it (the Frappe document name), which is what a withdrawal
//! of that check-in would need; keep the retention longer than the time HR takes to review a month.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::store::Store;

/// Events deleted per store call (one write transaction each, so punches keep flowing in between).
const CHUNK: usize = 5_000;

/// Prune fully delivered events written before `now - retention`; returns how many were deleted.
///
/// Errors: the store failed (what was deleted before the failure stays deleted).
pub async fn prune(
    store: &dyn Store,
    retention: Duration,
    now: DateTime<Utc>,
) -> crate::store::Result<usize> {
    let before =
        now - chrono::Duration::from_std(retention).unwrap_or_else(|_| chrono::Duration::days(30));
    let mut total = 0;
    loop {
        let n = store.prune_outbox(before, CHUNK).await?;
        total += n;
        if n < CHUNK {
            return Ok(total);
        }
        tokio::task::yield_now().await;
    }
}
