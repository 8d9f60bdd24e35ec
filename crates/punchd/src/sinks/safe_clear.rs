//! Safe device clear: a terminal's attendance log is cleared (`clear_after_pull`, the `clear_attendance_log`
//! command) only once every sink has delivered or parked every punch of that terminal, not merely once punchd has
//! stored them (issue 8). The official sync tool clears right after the dump, before the data reached Frappe
//! (frappe-hr.md §6 "Known defects"); punchd keeps the terminal as a second copy until every destination has its
//! punches. A paused or failing sink therefore postpones clearing; the next pull tries again.
//!
//! Parked events count as done (they are kept in punchd's outbox with their reason, never dropped). A sink that is
//! removed no longer holds anything back.
//!
//! It is a per-device setting, `safe_clear` (`punchd devices set SN --safe-clear false`, `PATCH
//! /api/v1/devices/{sn}` with `{"safe_clear": false}`), **on by default** for every device: clearing cannot be undone,
//! and the terminal is the one other copy of a punch until the HR systems have it. Turn it off only for a terminal
//! whose log is about to fill up while a sink is down for long (punchd itself still holds every punch).
//!
//! A queued `clear_attendance_log` command (CLI `punchd devices send SN clear-log`, API, web UI) on such a device
//! is **held** while a sink owes punches: it stays `queued` and is not handed to the terminal (push: not sent on
//! `getrequest`; pull: not run in the session), its message says which sinks owe how many punches ([`HELD`]
//! prefix). It is sent on the first poll (push) or scheduled pull session (pull) after every sink caught up, and
//! expires like any queued command when that takes longer than the queue's expiry. Only the clear is held; the
//! device's other commands are sent as usual.

use crate::domain::{Command, CommandKind, Device, DeviceSn};
use crate::store::{Store, StoreError};

/// How the message of a held command starts.
pub const HELD: &str = "held until every sink has this terminal's punches: ";

/// Why the log of `sn` must not be cleared yet (the sinks that still owe its punches, with counts), or `None` when
/// every sink has delivered or parked all of them (or there is no sink).
///
/// Errors: the store failed (callers then do not clear).
pub async fn clear_blocked_by(
    store: &dyn Store,
    sn: &DeviceSn,
) -> Result<Option<String>, StoreError> {
    Ok(owed_by(store, sn).await?.map(|owing| {
        format!(
            "not every sink has delivered this terminal's punches yet: {owing}; the log is cleared by a later pull"
        )
    }))
}

/// The sinks that still owe punches of `sn`, with counts (`frappe (3 punches), hooks (1 punches)`), or `None`.
pub async fn owed_by(store: &dyn Store, sn: &DeviceSn) -> Result<Option<String>, StoreError> {
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
    Ok((!owing.is_empty()).then(|| owing.join(", ")))
}

/// Whether a queued command must wait: it is a `clear_attendance_log` for a device with `safe_clear` on, and a sink
/// still owes punches of that device. A held command's message says why ([`HELD`], set when it changed); a command
/// held before that may go now has that message removed.
///
/// Errors: the store failed (callers then do not send the command).
pub async fn hold_if_owed(
    store: &dyn Store,
    device: &Device,
    command: &Command,
) -> Result<bool, StoreError> {
    if command.kind != CommandKind::ClearAttendanceLog {
        return Ok(false);
    }
    let owed = if device.safe_clear {
        owed_by(store, &device.sn).await?
    } else {
        None
    };
    match owed {
        Some(owing) => {
            let note = held_note(&owing);
            if command.message.as_deref() != Some(note.as_str()) {
                store.hold_command(command.id, Some(note)).await?;
            }
            Ok(true)
        }
        None => {
            if command
                .message
                .as_deref()
                .is_some_and(|m| m.starts_with(HELD))
            {
                store.hold_command(command.id, None).await?;
            }
            Ok(false)
        }
    }
}

/// The message of a held clear: [`HELD`] and the sinks that owe punches, with counts.
pub fn held_note(owing: &str) -> String {
    format!("{HELD}{owing} still to deliver")
}
