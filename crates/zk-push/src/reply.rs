//! Server replies: handshake options block (push.md §3.2), upload acknowledgements, time (§5). Must not depend
//! on any other module.

use chrono::NaiveDateTime;

/// Plain acknowledgement.
pub const OK: &str = "OK";
/// Reply to a device the server does not know.
pub const UNKNOWN_DEVICE: &str = "UNKNOWN DEVICE";

/// The handshake reply (push.md §3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionsReply {
    /// The device SN, echoed in `GET OPTION FROM:`.
    pub sn: String,
    /// Per-table stamps, e.g. `("ATTLOG", "9999")`.
    pub stamps: Vec<(String, String)>,
    /// Seconds to wait after a failed request.
    pub error_delay: u32,
    /// Seconds between getrequest polls.
    pub delay: u32,
    /// `TransTimes=`: times of day to upload, `HH:MM;HH:MM`.
    pub trans_times: String,
    /// `TransInterval=`: minutes between uploads of new data.
    pub trans_interval: u32,
    /// `TransFlag=`: which tables the device uploads (push.md §3.3).
    pub trans_flag: String,
    /// Server time zone offset, minutes east of UTC.
    pub time_zone_minutes: i32,
    /// `Realtime=1`: upload each punch as it happens.
    pub realtime: bool,
    /// `ServerVer=`.
    pub server_version: String,
    /// `PushProtVer=`.
    pub push_protocol_version: String,
    /// `PushOptionsFlag=1`: ask the device to push its options.
    pub push_options_flag: bool,
    /// `PushOptions=`: which options to push.
    pub push_options: Option<String>,
}

impl OptionsReply {
    /// Defaults: ErrorDelay 30, Delay 10, TransTimes 00:00;14:05, TransInterval 1, TransFlag string form
    /// with every token we store, Realtime 1, Encrypt None, ServerVer/PushProtVer "2.4.1", PushOptionsFlag 1.
    pub fn new(sn: &str, time_zone_minutes: i32) -> OptionsReply {
        let _ = (sn, time_zone_minutes);
        todo!()
    }

    /// `GET OPTION FROM: <SN>` block, `\n` line endings, `<TABLE>Stamp=` per table plus legacy
    /// Stamp/OpStamp/PhotoStamp, TimeZone via [`encode_time_zone`].
    pub fn encode(&self) -> String {
        todo!()
    }
}

/// Whole hours -> "8"/"-5"; otherwise minutes -> "330"/"345"/"-210". Never fractional (push.md §3.2.1).
pub fn encode_time_zone(minutes: i32) -> String {
    let _ = minutes;
    todo!()
}

/// `OK:<n>`: acknowledges `n` records of an upload.
pub fn encode_ok_count(n: usize) -> String {
    format!("OK:{n}")
}

/// `Time=YYYY-MM-DDThh:mm:ss±hh:mm` for cdata?type=time (push.md §5).
pub fn encode_server_time(local: NaiveDateTime, offset_minutes: i32) -> String {
    let _ = (local, offset_minutes);
    todo!()
}

/// `DateTime=<OldEncodeTime of UTC>,ServerTZ=+0800` for rtdata?type=time (push.md §5, appendix F).
pub fn encode_rtdata_time(utc: NaiveDateTime, offset_minutes: i32) -> String {
    let _ = (utc, offset_minutes);
    todo!()
}

/// ZK "OldEncodeTime" (appendix F).
pub fn old_encode_time(t: NaiveDateTime) -> u32 {
    let _ = t;
    todo!()
}

/// Inverse of [`old_encode_time`]; `None` when the value is not a valid date.
pub fn old_decode_time(v: u32) -> Option<NaiveDateTime> {
    let _ = v;
    todo!()
}
