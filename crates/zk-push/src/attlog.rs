//! ATTLOG bodies: the attendance log (push.md §7.1). Depends only on [`crate::text`].

use chrono::NaiveDateTime;

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
    /// Columns 6.. as sent (after dropping ONE trailing empty field).
    pub extra: Vec<String>,
    /// The raw line (decoded text), for the audit trail.
    pub line: String,
}

/// Why one line of an upload body could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number within the body.
    pub line_no: usize,
    /// The raw line (decoded text).
    pub line: String,
    /// Lowercase human reason.
    pub reason: String,
}

/// Parse an ATTLOG body (push.md §7.1). One entry per non-empty line (split on `\r?\n`); one bad line never
/// loses the others.
pub fn parse_attlog(body: &[u8]) -> Vec<Result<AttlogRecord, LineError>> {
    let _ = body;
    todo!()
}
