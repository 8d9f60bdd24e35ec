//! The attendance-log cursor of a pull device: how far punchd has read the terminal's log, so that only new
//! punches reach `ingest` (the pull protocol has no "since" filter, pull.md §10.1: every pull reads the whole
//! log).
//!
//! The cursor is kept in the store's stamps table under [`STAMP_TABLE`] as `<count>|<time>|<PIN>`: how many
//! records the log held, and the time and PIN of the last one. A log that still holds that record at that
//! position has only grown; anything else (cleared, shrunk, rewritten) sends the whole log to `ingest` again,
//! which keeps what it already holds once. Pure: no IO, depends on `zk_pull::records` only.

use chrono::NaiveDateTime;
use zk_pull::records::Attendance;

/// The stamps-table key of the cursor.
pub const STAMP_TABLE: &str = "pull:attendance";

/// How far the attendance log was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Records the log held (decoded records, in device order).
    pub count: usize,
    /// The last record's time and PIN; `None` for an empty log.
    pub last: Option<(NaiveDateTime, String)>,
}

const TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";

impl Cursor {
    /// The cursor after reading `records`.
    pub fn after(records: &[Attendance]) -> Cursor {
        Cursor {
            count: records.len(),
            last: records.last().map(|r| (r.time, r.user_id.clone())),
        }
    }

    /// Parse a stored value; `None` when it is not one (it is then ignored and the whole log is read).
    pub fn parse(s: &str) -> Option<Cursor> {
        let mut parts = s.splitn(3, '|');
        let count = parts.next()?.parse().ok()?;
        let time = parts.next()?;
        let pin = parts.next()?;
        let last = if time.is_empty() {
            None
        } else {
            let time = NaiveDateTime::parse_from_str(time, TIME_FORMAT).ok()?;
            Some((time, pin.to_owned()))
        };
        if (count == 0) != last.is_none() {
            return None;
        }
        Some(Cursor { count, last })
    }

    /// The stored form, `<count>|<time>|<PIN>` (`0||` for an empty log).
    pub fn encode(&self) -> String {
        match &self.last {
            Some((time, pin)) => format!("{}|{}|{pin}", self.count, time.format(TIME_FORMAT)),
            None => format!("{}||", self.count),
        }
    }

    /// The index of the first record not read before: `count` when the log still holds the last record read
    /// at its position (it only grew), else 0 (the log was cleared or rewritten: read it all again).
    pub fn first_new(cursor: Option<&Cursor>, records: &[Attendance]) -> usize {
        let Some(cursor) = cursor else { return 0 };
        let Some((time, pin)) = &cursor.last else {
            return 0;
        };
        match cursor.count.checked_sub(1).and_then(|i| records.get(i)) {
            Some(r) if r.time == *time && r.user_id == *pin => cursor.count,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn punch(pin: &str, minute: u32) -> Attendance {
        Attendance {
            uid: 1,
            user_id: pin.to_owned(),
            time: NaiveDate::from_ymd_opt(2026, 3, 2)
                .and_then(|d| d.and_hms_opt(8, minute, 5))
                .unwrap(),
            status: 1,
            punch: 0,
        }
    }

    #[test]
    fn stored_form_round_trips() {
        let records = vec![punch("7", 1), punch("0012", 2)];
        let cursor = Cursor::after(&records);
        assert_eq!(cursor.encode(), "2|2026-03-02T08:02:05|0012");
        assert_eq!(Cursor::parse(&cursor.encode()), Some(cursor));
        let empty = Cursor::after(&[]);
        assert_eq!(empty.encode(), "0||");
        assert_eq!(Cursor::parse("0||"), Some(empty));
        // A PIN with the separator in it survives.
        let odd = Cursor::after(&[punch("a|b", 3)]);
        assert_eq!(Cursor::parse(&odd.encode()), Some(odd));
    }

    #[test]
    fn garbage_is_not_a_cursor() {
        for s in [
            "",
            "x",
            "3",
            "3|",
            "3||",
            "0|2026-03-02T08:02:05|1",
            "-1||",
            "2|yesterday|1",
        ] {
            assert_eq!(Cursor::parse(s), None, "{s:?}");
        }
    }

    #[test]
    fn a_grown_log_yields_only_the_new_records() {
        let before = vec![punch("1", 1), punch("2", 2)];
        let cursor = Cursor::after(&before);
        let now = vec![punch("1", 1), punch("2", 2), punch("3", 3)];
        assert_eq!(Cursor::first_new(Some(&cursor), &now), 2);
        assert_eq!(Cursor::first_new(Some(&cursor), &before), 2);
    }

    #[test]
    fn a_cleared_or_rewritten_log_is_read_again() {
        let cursor = Cursor::after(&[punch("1", 1), punch("2", 2)]);
        // Cleared, then one new punch.
        assert_eq!(Cursor::first_new(Some(&cursor), &[punch("5", 9)]), 0);
        // Cleared, then refilled past the old count with other punches.
        let refilled = vec![punch("5", 9), punch("6", 10), punch("7", 11)];
        assert_eq!(Cursor::first_new(Some(&cursor), &refilled), 0);
        assert_eq!(Cursor::first_new(Some(&cursor), &[]), 0);
        assert_eq!(Cursor::first_new(None, &refilled), 0);
        assert_eq!(Cursor::first_new(Some(&Cursor::after(&[])), &refilled), 0);
    }
}
