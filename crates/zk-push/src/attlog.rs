//! ATTLOG bodies: the attendance log (push.md §7.1, §13 items 1–3). Depends only on [`crate::text`].
//!
//! A line is `PIN\tTime\tStatus\tVerify\tWorkcode\t…`, 2 to 16 (or more) columns depending on the platform,
//! often with a trailing tab. Unknown codes and extra columns are kept, never rejected.

use chrono::{Datelike, NaiveDateTime};

use crate::text::{body_lines, decode_text_cow, trim_field};

/// One punch as a device uploaded it in an ATTLOG line (push.md §7.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttlogRecord {
    /// The user id on the device; a string because leading zeros matter.
    pub pin: String,
    /// Terminal local wall time, as sent (devices have no time zone).
    pub time: NaiveDateTime,
    /// Punch state code as sent (255 kept); `None` if the column is absent or empty.
    pub status: Option<u16>,
    /// Verify mode code as sent; `None` if absent or empty.
    pub verify: Option<u16>,
    /// Work code; `None` if absent or empty.
    pub work_code: Option<String>,
    /// Columns 6.. as sent (after dropping ONE trailing empty field): reserved fields, mask flag, temperature,
    /// sequence number, job codes — their meaning depends on the platform.
    pub extra: Vec<String>,
    /// The raw line (decoded text, without the line ending), for the audit trail.
    pub line: String,
}

impl AttlogRecord {
    /// Format the record as an ATTLOG line (no line ending), the way a device would send it: columns up to the
    /// last present one, absent middle columns empty, time as `YYYY-MM-DD HH:MM:SS`. When the last column is
    /// empty a trailing tab is added, so that [`parse_attlog`] (which drops one trailing empty field) reads the
    /// same record back. [`AttlogRecord::line`] is ignored.
    pub fn encode_line(&self) -> String {
        let mut columns = vec![
            self.pin.clone(),
            self.time.format(TIME_FORMAT).to_string(),
            self.status.map(|s| s.to_string()).unwrap_or_default(),
            self.verify.map(|v| v.to_string()).unwrap_or_default(),
            self.work_code.clone().unwrap_or_default(),
        ];
        columns.extend(self.extra.iter().cloned());
        let present = if self.extra.is_empty() {
            columns
                .iter()
                .rposition(|c| !c.is_empty())
                .map_or(2, |last| last + 1)
                .max(2)
        } else {
            columns.len()
        };
        columns.truncate(present);
        let mut line = columns.join("\t");
        if columns.last().is_some_and(String::is_empty) {
            line.push('\t');
        }
        line
    }
}

/// Why one line of an upload body could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number within the body (empty lines count).
    pub line_no: usize,
    /// The raw line (decoded text, without the line ending).
    pub line: String,
    /// Lowercase human reason.
    pub reason: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line_no, self.reason)
    }
}

impl std::error::Error for LineError {}

/// The wire time format of ATTLOG and OPLOG lines.
pub(crate) const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// Parse a device wall time: `YYYY-MM-DD HH:MM:SS` (also with a `T`), year 2000..=2099.
pub(crate) fn parse_device_time(field: &str) -> Result<NaiveDateTime, String> {
    let field = trim_field(field);
    let time = match fixed_width_time(field.as_bytes()) {
        Some(time) => time,
        None => NaiveDateTime::parse_from_str(field, TIME_FORMAT)
            .or_else(|_| NaiveDateTime::parse_from_str(field, "%Y-%m-%dT%H:%M:%S"))
            .map_err(|_| format!("unparseable time {field:?}"))?,
    };
    if !(2000..=2099).contains(&time.year()) {
        return Err(format!("time {field:?} outside years 2000..=2099"));
    }
    Ok(time)
}

/// The common shape, `YYYY-MM-DD HH:MM:SS` (or with `T`) with every digit present and seconds below 60, read
/// without chrono's format-string interpreter (issue 6: it was a third of the push worker's time at 100 punches
/// per POST). `None` for anything else — including an impossible date — which then takes chrono's path, so the
/// accepted set and every error message stay exactly chrono's. Public so that other readers of this wire shape
/// (punchd's file import, its SQLite store's local-time column) use the same reader.
pub fn fixed_width_time(b: &[u8]) -> Option<NaiveDateTime> {
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || (b[10] != b' ' && b[10] != b'T')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    // A leap second (:60) is chrono's to interpret.
    if second >= 60 {
        return None;
    }
    chrono::NaiveDate::from_ymd_opt(year as i32, month, day)?.and_hms_opt(hour, minute, second)
}

/// Parse an ATTLOG body (push.md §7.1). One entry per non-empty line (split on `\r?\n`); one bad line never
/// loses the others.
///
/// Each line is decoded with [`decode_text`](crate::text::decode_text), split on TAB, and ONE trailing empty field
/// is dropped. Rejected: fewer than 2 fields, empty PIN, unparseable time, year outside 2000..=2099, a status or
/// verify column that is neither empty nor a number up to 65535. Never rejected for extra columns.
pub fn parse_attlog(body: &[u8]) -> Vec<Result<AttlogRecord, LineError>> {
    parse_attlog_numbered(body)
        .into_iter()
        .map(|(_, result)| result)
        .collect()
}

/// [`parse_attlog`], with each entry's 1-based line number in the body (blank lines are skipped but counted), so
/// that a record refused later (by the hub's own checks) can still be reported by its line.
pub fn parse_attlog_numbered(body: &[u8]) -> Vec<(usize, Result<AttlogRecord, LineError>)> {
    let mut out = Vec::new();
    visit_attlog(body, |line_no, line, parsed| {
        let line = line.to_owned();
        let result = match parsed {
            Ok(fields) => Ok(fields.into_record(line)),
            Err(reason) => Err(LineError {
                line_no,
                line,
                reason,
            }),
        };
        out.push((line_no, result));
    });
    out
}

/// [`parse_attlog_numbered`] without a copy of anything: `visit` is called for each non-blank line in order with
/// its 1-based line number, its text (decoded as [`decode_text`](crate::text::decode_text) decodes it, borrowed
/// from `body` when it is UTF-8; without the line ending) and its columns borrowed from that text, or the reason
/// it was refused (the same reasons, word for word). For a reader that copies only what it keeps (punchd's push
/// path, issue 6: a `String` for the line, the PIN, the work code and each extra column was most of the parse).
pub fn visit_attlog(
    body: &[u8],
    mut visit: impl FnMut(usize, &str, Result<AttlogFields<'_>, String>),
) {
    for (line_no, raw) in body_lines(body) {
        let line = decode_text_cow(raw);
        visit(line_no, &line, parse_line(&line));
    }
}

/// The columns of one good ATTLOG line, borrowed from its text ([`visit_attlog`]); [`AttlogRecord`] without the
/// copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttlogFields<'a> {
    /// [`AttlogRecord::pin`]: trimmed, never empty.
    pub pin: &'a str,
    /// [`AttlogRecord::time`].
    pub time: NaiveDateTime,
    /// [`AttlogRecord::status`].
    pub status: Option<u16>,
    /// [`AttlogRecord::verify`].
    pub verify: Option<u16>,
    /// [`AttlogRecord::work_code`]: trimmed, `None` if absent or empty.
    pub work_code: Option<&'a str>,
    /// Columns 6.. as sent, still TAB-separated, after dropping ONE trailing empty field: `None` when there are
    /// none, `Some("")` for one empty column. [`AttlogFields::extra`] splits them.
    pub extra_columns: Option<&'a str>,
}

impl<'a> AttlogFields<'a> {
    /// The extra columns one by one, as in [`AttlogRecord::extra`].
    pub fn extra(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.extra_columns
            .into_iter()
            .flat_map(|columns| columns.split('\t'))
    }

    /// How many extra columns there are (what [`AttlogFields::extra`] yields), to size a vector for them.
    pub fn n_extra(&self) -> usize {
        self.extra_columns.map_or(0, |columns| {
            columns.bytes().filter(|&b| b == b'\t').count() + 1
        })
    }

    /// The extra columns copied, as [`AttlogRecord::extra`] holds them (one allocation for the vector).
    pub fn extra_owned(&self) -> Vec<String> {
        let mut extra = Vec::with_capacity(self.n_extra());
        extra.extend(self.extra().map(str::to_owned));
        extra
    }

    /// The record, carrying `line` as its [`AttlogRecord::line`].
    pub fn into_record(self, line: String) -> AttlogRecord {
        AttlogRecord {
            pin: self.pin.to_owned(),
            time: self.time,
            status: self.status,
            verify: self.verify,
            work_code: self.work_code.map(str::to_owned),
            extra: self.extra_owned(),
            line,
        }
    }
}

fn parse_line(line: &str) -> Result<AttlogFields<'_>, String> {
    // Fields 1..=5 by position; what follows the fifth TAB is the extra columns. Then ONE trailing empty field
    // (the last of all) is dropped.
    let mut head: [Option<&str>; 5] = [None; 5];
    let mut n_head = 0;
    let mut rest = Some(line);
    while let (Some(slot), Some(text)) = (head.get_mut(n_head), rest) {
        match text.split_once('\t') {
            Some((field, after)) => {
                *slot = Some(field);
                rest = Some(after);
            }
            None => {
                *slot = Some(text);
                rest = None;
            }
        }
        n_head += 1;
    }
    // With extra columns there are at least 6 fields, so one trailing empty field is always dropped.
    let extra_columns = match rest {
        Some(columns) => match columns.strip_suffix('\t') {
            Some(kept) => Some(kept),
            None if columns.is_empty() => None,
            None => Some(columns),
        },
        None => {
            if n_head > 1 && head[n_head - 1].is_some_and(str::is_empty) {
                head[n_head - 1] = None;
            }
            None
        }
    };
    let (pin, time) = match (head[0], head[1]) {
        (Some(pin), Some(time)) => (trim_field(pin), time),
        _ => {
            let n = head.iter().flatten().count();
            return Err(format!(
                "expected at least 2 tab-separated fields (PIN, time), got {n}"
            ));
        }
    };
    if pin.is_empty() {
        return Err("empty PIN".to_string());
    }
    let time = parse_device_time(time)?;
    let status = optional_code(head[2], "status")?;
    let verify = optional_code(head[3], "verify")?;
    let work_code = head[4].map(trim_field).filter(|f| !f.is_empty());
    Ok(AttlogFields {
        pin,
        time,
        status,
        verify,
        work_code,
        extra_columns,
    })
}

fn optional_code(field: Option<&str>, what: &str) -> Result<Option<u16>, String> {
    let Some(field) = field.map(trim_field) else {
        return Ok(None);
    };
    if field.is_empty() {
        return Ok(None);
    }
    field
        .parse::<u16>()
        .map(Some)
        .map_err(|_| format!("non-numeric {what} {field:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_opt(h, mi, s)
            .unwrap()
    }

    fn one(body: &[u8]) -> Result<AttlogRecord, LineError> {
        let mut all = parse_attlog(body);
        assert_eq!(all.len(), 1, "{all:?}");
        all.remove(0)
    }

    fn reason(body: &[u8]) -> String {
        one(body).unwrap_err().reason
    }

    #[test]
    fn seven_columns() {
        let rec = one(b"1452\t2015-07-30 15:16:28\t0\t1\t0\t0\t0\n").unwrap();
        assert_eq!(
            rec,
            AttlogRecord {
                pin: "1452".into(),
                time: at(2015, 7, 30, 15, 16, 28),
                status: Some(0),
                verify: Some(1),
                work_code: Some("0".into()),
                extra: vec!["0".into(), "0".into()],
                line: "1452\t2015-07-30 15:16:28\t0\t1\t0\t0\t0".into(),
            }
        );
    }

    #[test]
    fn trailing_tab_empty_workcode_crlf() {
        let rec = one(b"1156\t2024-08-05 12:40:57\t1\t1\t\t0\t0\t\r\n").unwrap();
        assert_eq!(rec.work_code, None);
        assert_eq!(rec.extra, vec!["0", "0"]);
        assert_eq!(rec.line, "1156\t2024-08-05 12:40:57\t1\t1\t\t0\t0\t");
    }

    #[test]
    fn only_one_trailing_empty_field_is_dropped() {
        let rec = one(b"7\t2024-08-05 12:40:57\t1\t1\t0\t0\t\t\n").unwrap();
        assert_eq!(rec.extra, vec!["0", ""]);
    }

    #[test]
    fn ten_columns_status_255() {
        let rec = one(b"3\t2023-10-16 08:38:16\t255\t15\t0\t0\t0\t255\t0\t0\t\n").unwrap();
        assert_eq!(rec.status, Some(255));
        assert_eq!(rec.verify, Some(15));
        assert_eq!(rec.extra, vec!["0", "0", "255", "0", "0"]);
    }

    #[test]
    fn sixteen_columns() {
        let rec =
            one(b"982\t2016-02-25 12:08:21\t1\t0\t9001\t0\t0\t1\t2\t3\t4\t5\t6\t1.0\t2.0\t3.0")
                .unwrap();
        assert_eq!(rec.work_code.as_deref(), Some("9001"));
        assert_eq!(rec.extra.len(), 11);
        assert_eq!(rec.extra.last().map(String::as_str), Some("3.0"));
    }

    #[test]
    fn two_and_five_columns() {
        let rec = one(b"0042\t2020-01-01 00:00:00").unwrap();
        assert_eq!(rec.pin, "0042");
        assert_eq!((rec.status, rec.verify, rec.work_code), (None, None, None));
        let rec = one(b"982\t2008-02-25 18:01:09\t1\t0\t9001\n").unwrap();
        assert_eq!(rec.work_code.as_deref(), Some("9001"));
        assert!(rec.extra.is_empty());
    }

    #[test]
    fn rejections() {
        assert_eq!(
            reason(b"1452"),
            "expected at least 2 tab-separated fields (PIN, time), got 1"
        );
        assert_eq!(
            reason(b"1452\t"),
            "expected at least 2 tab-separated fields (PIN, time), got 1"
        );
        assert_eq!(reason(b"\t2015-07-30 15:16:28\t0"), "empty PIN");
        assert_eq!(
            reason(b"1\t2015-07-30 15:16"),
            "unparseable time \"2015-07-30 15:16\""
        );
        assert_eq!(
            reason(b"1\t2015-02-30 10:00:00"),
            "unparseable time \"2015-02-30 10:00:00\""
        );
        assert_eq!(
            reason(b"1\t1999-12-31 23:59:59\t0"),
            "time \"1999-12-31 23:59:59\" outside years 2000..=2099"
        );
        assert_eq!(
            reason(b"1\t2100-01-01 00:00:00\t0"),
            "time \"2100-01-01 00:00:00\" outside years 2000..=2099"
        );
        assert_eq!(
            reason(b"1\t2015-07-30 15:16:28\tIN\t1"),
            "non-numeric status \"IN\""
        );
        assert_eq!(
            reason(b"1\t2015-07-30 15:16:28\t0\t-1"),
            "non-numeric verify \"-1\""
        );
        assert_eq!(
            reason(b"1\t2015-07-30 15:16:28\t70000"),
            "non-numeric status \"70000\""
        );
    }

    #[test]
    fn one_bad_line_keeps_the_others() {
        let out = parse_attlog(
            b"1\t2015-07-30 15:16:28\t0\n\ngarbage\r\n2\t2015-07-30 15:16:29\t1\n1\t2015-07-30 15:",
        );
        assert_eq!(out.len(), 4);
        assert_eq!(out[0].as_ref().unwrap().pin, "1");
        let err = out[1].as_ref().unwrap_err();
        assert_eq!((err.line_no, err.line.as_str()), (3, "garbage"));
        assert_eq!(out[2].as_ref().unwrap().status, Some(1));
        assert_eq!(out[3].as_ref().unwrap_err().line_no, 5);
    }

    #[test]
    fn empty_and_garbage_bodies() {
        assert!(parse_attlog(b"").is_empty());
        assert!(parse_attlog(b"\r\n\n  \n").is_empty());
        let out = parse_attlog(&[0xFF, 0x00, 0x81, b'\t', 0x00]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].as_ref().unwrap_err().reason, "unparseable time \"\"");
    }

    #[test]
    fn nul_padding_is_trimmed_from_fields() {
        let rec = one(b"5\t2021-03-04 05:06:07\t1\t15\0\0").unwrap();
        assert_eq!(rec.verify, Some(15));
    }

    #[test]
    fn gbk_and_invalid_utf8_in_pin_are_kept_as_text() {
        let (gbk, _, _) = encoding_rs::GBK.encode("张三");
        let mut body = gbk.into_owned();
        body.extend_from_slice(b"\t2021-03-04 05:06:07\t0\t1\n");
        assert_eq!(one(&body).unwrap().pin, "张三");
        let rec = one(b"A\xFF\t2021-03-04 05:06:07\t0\t1\n").unwrap();
        assert_eq!(rec.pin, "A\u{ff}");
    }

    #[test]
    fn fixed_width_time_agrees_with_chrono() {
        for field in [
            "2015-07-30 15:16:28",
            "2015-07-30T15:16:28",
            "2099-12-31 23:59:59",
            "2000-01-01 00:00:00",
            "2024-02-29 12:00:00",
            "2023-02-29 12:00:00",
            "2015-02-30 10:00:00",
            "2015-13-01 10:00:00",
            "2015-07-30 24:00:00",
            "2015-07-30 23:60:00",
            "2015-07-30 23:59:60",
            "2015-07-30 15:16:2x",
            "2015/07/30 15:16:28",
            "2015-7-30 15:16:28",
            "2015-07-30 15:16",
        ] {
            let chrono = NaiveDateTime::parse_from_str(field, TIME_FORMAT)
                .or_else(|_| NaiveDateTime::parse_from_str(field, "%Y-%m-%dT%H:%M:%S"));
            if let Some(fast) = fixed_width_time(field.as_bytes()) {
                assert_eq!(Ok(fast), chrono, "{field}");
            }
            assert_eq!(
                parse_device_time(field).ok(),
                chrono.ok().filter(|t| (2000..=2099).contains(&t.year())),
                "{field}"
            );
        }
        assert!(fixed_width_time(b"2015-07-30 15:16:28").is_some());
    }

    /// The borrowed columns: the extra columns as one text, one trailing empty field dropped; a line that is not
    /// UTF-8 handed over decoded; refusals with their reasons.
    #[test]
    fn visit_attlog_lends_the_columns() {
        let mut seen = Vec::new();
        visit_attlog(
            b"3\t2023-10-16 08:38:16\t255\t15\t0\t0\t0\t255\t0\t0\t\n\
              1156\t2024-08-05 12:40:57\t1\t1\t\t0\t0\t\r\n\n\
              7\t2024-08-05 12:40:57\t1\t1\t0\t\t\n\
              8\t2024-08-05 12:40:57\t1\t1\t0\t\n\
              A\xFF\t2021-03-04 05:06:07\n\
              \t2015-07-30 15:16:28",
            |line_no, line, parsed| {
                let parsed = parsed.map(|f| {
                    let extra: Vec<&str> = f.extra().collect();
                    assert_eq!(extra.len(), f.n_extra());
                    (
                        f.pin.to_owned(),
                        f.work_code.map(str::to_owned),
                        f.extra_columns.map(str::to_owned),
                        extra.join("|"),
                    )
                });
                seen.push((line_no, line.to_owned(), parsed));
            },
        );
        let ok = |pin: &str, work_code: Option<&str>, columns: Option<&str>, extra: &str| {
            Ok((
                pin.to_owned(),
                work_code.map(str::to_owned),
                columns.map(str::to_owned),
                extra.to_owned(),
            ))
        };
        assert_eq!(
            seen,
            [
                (
                    1,
                    "3\t2023-10-16 08:38:16\t255\t15\t0\t0\t0\t255\t0\t0\t".to_owned(),
                    ok("3", Some("0"), Some("0\t0\t255\t0\t0"), "0|0|255|0|0")
                ),
                (
                    2,
                    "1156\t2024-08-05 12:40:57\t1\t1\t\t0\t0\t".to_owned(),
                    ok("1156", None, Some("0\t0"), "0|0")
                ),
                (
                    4,
                    "7\t2024-08-05 12:40:57\t1\t1\t0\t\t".to_owned(),
                    ok("7", Some("0"), Some(""), "")
                ),
                (
                    5,
                    "8\t2024-08-05 12:40:57\t1\t1\t0\t".to_owned(),
                    ok("8", Some("0"), None, "")
                ),
                (
                    6,
                    "A\u{ff}\t2021-03-04 05:06:07".to_owned(),
                    ok("A\u{ff}", None, None, "")
                ),
                (
                    7,
                    "\t2015-07-30 15:16:28".to_owned(),
                    Err("empty PIN".to_owned())
                ),
            ]
        );
    }

    #[test]
    fn encode_line_round_trips() {
        let rec = one(b"1156\t2024-08-05 12:40:57\t1\t1\t\t0\t0\t").unwrap();
        assert_eq!(rec.encode_line(), "1156\t2024-08-05 12:40:57\t1\t1\t\t0\t0");
        let rec = AttlogRecord {
            pin: "9".into(),
            time: at(2024, 1, 2, 3, 4, 5),
            status: None,
            verify: Some(15),
            work_code: None,
            extra: vec![],
            line: String::new(),
        };
        assert_eq!(rec.encode_line(), "9\t2024-01-02 03:04:05\t\t15");
        let rec = AttlogRecord {
            verify: None,
            extra: vec!["".into()],
            ..rec
        };
        assert_eq!(rec.encode_line(), "9\t2024-01-02 03:04:05\t\t\t\t\t");
        let back = one(rec.encode_line().as_bytes()).unwrap();
        assert_eq!(back.extra, vec![""]);
    }
}
