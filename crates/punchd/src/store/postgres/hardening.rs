//! [`HardeningStore`] on PostgreSQL: the pending-device cap, and storage health.
//!
//! A storage failure (disk full, I/O error, out of resources, the server gone or unreachable) seen by any call
//! sets the fault (logged once, reported by `/healthz`); the next transaction that commits clears it and logs
//! that storage recovered. PostgreSQL recovers on its own once space is back, so there is no probe here as in
//! SQLite: the writes that keep arriving are the probe. The fault is process-wide (one process, one database).

use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::{backend, col, commit, sn_from, PgStore};
use crate::domain::DeviceSn;
use crate::store::{HardeningStore, Result};

/// Why storage fails, while it does.
static FAULT: Mutex<Option<String>> = Mutex::new(None);

fn set(value: Option<String>) {
    let mut f = match FAULT.lock() {
        Ok(f) => f,
        Err(p) => p.into_inner(),
    };
    match (&*f, &value) {
        (None, Some(reason)) => tracing::error!(
            error = %reason,
            "database storage is failing: writes are answered 503 and nothing is acknowledged; /healthz \
             reports it; the next write that commits clears it"
        ),
        (Some(was), None) => {
            tracing::info!(was = %was, "database storage recovered: writes succeed again")
        }
        _ => {}
    }
    *f = value;
}

/// Remember a storage failure (called by `backend` for errors of that kind).
pub(super) fn note(reason: &str) {
    set(Some(reason.to_owned()));
}

/// A transaction committed: storage works.
pub(super) fn clear() {
    let failing = match FAULT.lock() {
        Ok(f) => f.is_some(),
        Err(p) => p.into_inner().is_some(),
    };
    if failing {
        set(None);
    }
}

#[async_trait::async_trait]
impl HardeningStore for PgStore {
    async fn prune_pending(&self, keep: usize) -> Result<Vec<DeviceSn>> {
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let rows = tx
            .query(
                "DELETE FROM devices WHERE approval = 'pending' AND sn IN ( \
                   SELECT sn FROM devices WHERE approval = 'pending' \
                   ORDER BY first_seen DESC, sn DESC OFFSET $1) \
                 RETURNING sn, first_seen",
                &[&keep],
            )
            .await
            .map_err(backend)?;
        commit(tx).await?;
        let mut gone: Vec<(DateTime<Utc>, String)> = rows
            .iter()
            .map(|r| Ok((col(r, 1)?, col(r, 0)?)))
            .collect::<Result<_>>()?;
        // Oldest first (the reverse of the order kept).
        gone.sort();
        gone.into_iter().map(|(_, sn)| sn_from(sn)).collect()
    }

    fn storage_fault(&self) -> Option<String> {
        match FAULT.lock() {
            Ok(f) => f.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}
