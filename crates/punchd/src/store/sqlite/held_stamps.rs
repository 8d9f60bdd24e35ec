//! Push stamps the writer holds in memory after their batch commits, and writes to `stamps` about once a
//! second ([`FLUSH_EVERY`]) instead of in every upload's transaction (issue 6).
//!
//! A push stamp ([`Batch::stamp_may_lag`](crate::store::Batch::stamp_may_lag)) is the terminal's upload cursor
//! (push.md §4): the handshake gives it back so the terminal sends only what came after it. Written with every
//! upload it cost an upsert and a dirty page (one more WAL frame) per group commit: 3.3 µs of a 55 µs
//! single-punch upload (BENCHMARKS.md, "What each guarantee costs"). Held instead:
//!
//! - A stamp is held only **after** its batch committed, so a handshake never hands out a stamp newer than the
//!   punches stored: that would make a terminal skip punches punchd does not have.
//! - A stamp older than the newest one (after a crash, the held ones are gone) only makes the terminal send again
//!   what it sent since; the punches' identity absorbs the re-sent ones (`punches_identity`). So a crash loses no
//!   punch, and costs at most about a second of re-sent uploads.
//! - Readers ([`SqliteStore::stamps`](super::SqliteStore)) look at the held stamps first, then at the table; a
//!   held stamp is dropped only after the transaction that wrote it committed, so in-process readers never see an
//!   older stamp than the newest committed one. Other processes (the CLI) read the table: up to
//!   [`FLUSH_EVERY`] behind.
//! - Removing a device forgets its held stamps in the removal's own transaction, including those of a batch of the
//!   same group, so a removed device's stamps do not come back.
//! - The pull cursor and the agent's sequence are not held: they stay in their batch's transaction. An agent's
//!   sequence must move with its batch (one that ran ahead of the stored punches would raise a false gap alarm),
//!   and the pull cursor is written once per pull of a whole log, where one statement more costs nothing.
//!
//! Only the writer thread holds and forgets stamps; a stamp leaves after its write committed (the writer, or
//! `write_held` as the server stops); readers take a copy under the lock.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{params, Connection};

use super::{backend, exec_cached};
use crate::store::Result;

/// How long a held stamp may wait before the writer writes it: after a group commit when this much has passed
/// since the last write of held stamps, or alone when no job comes for this long.
pub(super) const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// A held stamp of one table of one terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HeldStamp {
    pub(super) table: String,
    pub(super) value: String,
    /// When its upload was received (UTC milliseconds): the row's `updated_at`.
    pub(super) received_ms: i64,
}

/// The held stamps, by terminal (SN), at most one per table; see the module documentation.
#[derive(Debug, Default)]
pub(super) struct HeldStamps {
    held: Mutex<HashMap<String, Vec<HeldStamp>>>,
    /// Terminals removed in the group now being written (writer thread only).
    removed_in_group: Mutex<HashSet<String>>,
}

impl HeldStamps {
    /// The held stamps of one terminal, as (table, value).
    pub(super) fn of(&self, sn: &str) -> Vec<(String, String)> {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.get(sn).map_or_else(Vec::new, |stamps| {
            stamps
                .iter()
                .map(|s| (s.table.clone(), s.value.clone()))
                .collect()
        })
    }

    /// Whether anything waits to be written.
    pub(super) fn is_empty(&self) -> bool {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    /// After a group committed: hold the stamps of its batches that were stored, in order (a later upload's stamp
    /// replaces an earlier one of the same table), except those of terminals removed in the same group.
    pub(super) fn hold_committed<'a>(
        &self,
        stamps: impl IntoIterator<Item = (&'a str, &'a str, &'a str, i64)>,
    ) {
        let mut removed = self
            .removed_in_group
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        for (sn, table, value, received_ms) in stamps {
            if removed.contains(sn) {
                continue;
            }
            let of_sn = held.entry(sn.to_owned()).or_default();
            match of_sn.iter_mut().find(|s| s.table == table) {
                Some(s) => {
                    s.value.clear();
                    s.value.push_str(value);
                    s.received_ms = received_ms;
                }
                None => of_sn.push(HeldStamp {
                    table: table.to_owned(),
                    value: value.to_owned(),
                    received_ms,
                }),
            }
        }
        removed.clear();
    }

    /// A group ended without committing: forget which terminals it removed.
    pub(super) fn group_failed(&self) {
        self.removed_in_group
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Forget a terminal's held stamps: called in the transaction that removes the device (writer thread).
    pub(super) fn forget(&self, sn: &str) {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(sn);
        self.removed_in_group
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sn.to_owned());
    }

    /// Write every held stamp into `stamps`, in the open transaction, inside a savepoint of its own (a failure
    /// undoes only this and keeps them held). Returns what was written, for [`HeldStamps::written`] after the
    /// commit.
    pub(super) fn write_on(&self, conn: &Connection) -> Result<Vec<(String, HeldStamp)>> {
        let snapshot: Vec<(String, HeldStamp)> = {
            let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            held.iter()
                .flat_map(|(sn, stamps)| stamps.iter().map(|s| (sn.clone(), s.clone())))
                .collect()
        };
        if snapshot.is_empty() {
            return Ok(snapshot);
        }
        exec_cached(conn, "SAVEPOINT held_stamps").map_err(backend)?;
        let written = snapshot.iter().try_for_each(|(sn, s)| {
            conn.prepare_cached(
                "INSERT INTO stamps (device_sn, table_name, value, updated_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (device_sn, table_name) DO UPDATE SET value = excluded.value, \
                 updated_at = excluded.updated_at",
            )
            .and_then(|mut st| st.execute(params![sn, s.table, s.value, s.received_ms]))
            .map(|_| ())
        });
        match written {
            Ok(()) => {
                exec_cached(conn, "RELEASE held_stamps").map_err(backend)?;
                Ok(snapshot)
            }
            Err(e) => {
                let _ = exec_cached(conn, "ROLLBACK TO held_stamps")
                    .and_then(|()| exec_cached(conn, "RELEASE held_stamps"));
                Err(backend(e))
            }
        }
    }

    /// After the transaction of [`HeldStamps::write_on`] committed: stop holding each stamp written, unless a
    /// newer one of the same table came since.
    pub(super) fn written(&self, written: &[(String, HeldStamp)]) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        for (sn, w) in written {
            if let Some(stamps) = held.get_mut(sn) {
                stamps.retain(|s| s != w);
                if stamps.is_empty() {
                    held.remove(sn);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_upload_replaces_the_held_stamp_and_a_removed_terminal_holds_none() {
        let held = HeldStamps::default();
        held.hold_committed([
            ("A1", "ATTLOG", "1", 10),
            ("A1", "OPERLOG", "7", 10),
            ("A1", "ATTLOG", "2", 11),
        ]);
        let mut of_a1 = held.of("A1");
        of_a1.sort();
        assert_eq!(
            of_a1,
            [
                ("ATTLOG".to_owned(), "2".to_owned()),
                ("OPERLOG".to_owned(), "7".to_owned())
            ]
        );
        // Removed in a group that also stored one of its uploads: nothing of it is held after the commit.
        held.forget("A1");
        held.hold_committed([("A1", "ATTLOG", "3", 12), ("B2", "ATTLOG", "5", 12)]);
        assert_eq!(held.of("A1"), []);
        assert_eq!(held.of("B2"), [("ATTLOG".to_owned(), "5".to_owned())]);
        // The next group holds A1's stamps again (it came back as a new device).
        held.hold_committed([("A1", "ATTLOG", "4", 13)]);
        assert_eq!(held.of("A1"), [("ATTLOG".to_owned(), "4".to_owned())]);
    }

    #[test]
    fn written_stamps_are_dropped_unless_a_newer_one_came() {
        let conn = Connection::open_in_memory().unwrap();
        super::super::migrate(&conn).unwrap();
        conn.execute_batch("BEGIN").unwrap();
        let held = HeldStamps::default();
        held.hold_committed([("A1", "ATTLOG", "1", 10), ("B2", "ATTLOG", "9", 10)]);
        let written = held.write_on(&conn).unwrap();
        conn.execute_batch("COMMIT").unwrap();
        // B2 uploaded again between the write and its commit being noted.
        held.hold_committed([("B2", "ATTLOG", "10", 11)]);
        held.written(&written);
        assert_eq!(held.of("A1"), []);
        assert_eq!(held.of("B2"), [("ATTLOG".to_owned(), "10".to_owned())]);
        let rows: Vec<(String, String, i64)> = conn
            .prepare("SELECT device_sn, value, updated_at FROM stamps ORDER BY device_sn")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            rows,
            [
                ("A1".to_owned(), "1".to_owned(), 10),
                ("B2".to_owned(), "9".to_owned(), 10)
            ]
        );
    }
}
