//! [`OperationsStore`] on PostgreSQL: removing devices, cancelling commands, listing the journal.
//!
//! PLACEHOLDER until the operations area is ported (helper pgops): every method answers a `Backend` error.
//! Port `sqlite/operations.rs`; a removed device's revision comes from `super::next_revision`.

use chrono::{DateTime, Utc};

use super::{unported, PgStore};
use crate::domain::{Command, DeviceSn};
use crate::store::operations::{CancelError, JournalFilter, JournalSummary, OperationsStore};
use crate::store::Result;

#[async_trait::async_trait]
impl OperationsStore for PgStore {
    async fn delete_device(&self, _sn: &DeviceSn, _now: DateTime<Utc>) -> Result<()> {
        Err(unported("removing devices"))
    }

    async fn devices_deleted_since(&self, revision: i64) -> Result<(Vec<DeviceSn>, i64)> {
        // Nothing can be removed until delete_device is ported, so nothing was.
        Ok((Vec::new(), revision))
    }

    async fn cancel_command(
        &self,
        _id: i64,
        _by: &str,
        _now: DateTime<Utc>,
    ) -> std::result::Result<Command, CancelError> {
        Err(CancelError::Store(unported("cancelling commands")))
    }

    async fn list_journal(&self, _filter: &JournalFilter) -> Result<Vec<JournalSummary>> {
        Err(unported("listing the journal"))
    }
}
