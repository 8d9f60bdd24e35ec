//! The `INFO=` device status line (push.md §6). Must not depend on any other module.

/// Device status sent on `getrequest?INFO=` (push.md §6): comma-separated, positional.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceInfo {
    /// Firmware version (field 1).
    pub firmware: Option<String>,
    /// Number of enrolled users (field 2).
    pub user_count: Option<i64>,
    /// Number of fingerprint templates (field 3).
    pub fp_count: Option<i64>,
    /// Number of attendance log records (field 4).
    pub attlog_count: Option<i64>,
    /// Device IP address (field 5).
    pub ip: Option<String>,
    /// Fingerprint algorithm version (field 6).
    pub fp_alg_version: Option<String>,
    /// Face algorithm version (field 7).
    pub face_alg_version: Option<String>,
    /// Number of face templates (field 9).
    pub face_count: Option<i64>,
    /// The value as sent.
    pub raw: String,
}

/// Parse an `INFO=` value. Never fails: fields that do not parse are `None`.
pub fn parse_info(s: &str) -> DeviceInfo {
    let _ = s;
    todo!()
}
