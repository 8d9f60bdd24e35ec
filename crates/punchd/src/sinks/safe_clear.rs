//! Safe device clear: a terminal's attendance log is cleared (`clear_after_pull`, the `clear_attendance_log`
//! command) only once every sink has delivered or parked every punch of that terminal, not merely once punchd has
//! stored them (issue 8). The official sync tool clears right after the dump, before the data reached Frappe
//! (frappe-hr.md §6 "Known defects"); punchd keeps the terminal as a second copy until every destination has its
//! punches. A paused or failing sink therefore postpones clearing; the next pull tries again.
//!
//! Parked events count as done (they are kept in punchd's outbox with their reason, never dropped). A sink that is
//! removed no longer holds anything back.

use crate::domain::DeviceSn;
use crate::store::{Store, StoreError};

/// Why the log of `sn` must not be cleared yet (the sinks that still owe its punches, with counts), or `None` when
/// every sink has delivered or parked all of them (or there is no sink).
///
/// Errors: the store failed (callers then do not clear).
pub async fn clear_blocked_by(
    store: &dyn Store,
    sn: &DeviceSn,
) -> Result<Option<String>, StoreError> {
    let mut owing = Vec::new();
    for sink in store.list_sinks().await? {
        let owed = match store.undelivered_by_device(sink.id).await {
            Ok(owed) => owed,
            // Removed between the two reads: it owes nothing any more.
            Err(StoreError::NotFound(_)) => continue,
            Err(e) => return Err(e),
        };
        if let Some(o) = owed.iter().find(|o| o.device_sn == sn.as_str()) {
            owing.push(format!("{} ({} punches)", sink.name, o.events));
        }
    }
    Ok((!owing.is_empty()).then(|| {
        format!(
            "not every sink has delivered this terminal's punches yet: {}; the log is cleared by a later pull",
            owing.join(", ")
        )
    }))
}
