//! Store operations behind the resource limits (issue 6): the cap on pending devices and the storage-health
//! state `/healthz` reports.

use crate::domain::DeviceSn;

use super::Result;

/// What the store knows about its own health and the pending-device cap.
#[async_trait::async_trait]
pub trait HardeningStore {
    /// Forget pending devices beyond the `keep` most recent (by first contact): the one pending longest goes
    /// first. Returns the serial numbers forgotten, oldest first. Approved and blocked devices are never touched.
    ///
    /// Errors: the database failed; nothing was forgotten.
    async fn prune_pending(&self, keep: usize) -> Result<Vec<DeviceSn>>;

    /// Why writes are failing for a storage reason (disk full, I/O error, read-only file), when they are: set by
    /// the first such failure, cleared (with a log line) by the first write that succeeds after it. `None`
    /// when storage works.
    fn storage_fault(&self) -> Option<String>;
}
