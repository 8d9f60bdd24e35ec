//! Server replies: handshake options block (push.md §3.2), upload acknowledgements, time (§5). Must not depend
//! on any other module.

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};

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

/// TransFlag string form with every token punchd stores (push.md §3.3 recommended list).
pub const DEFAULT_TRANS_FLAG: &str =
    "TransData AttLog\tOpLog\tAttPhoto\tEnrollUser\tChgUser\tEnrollFP\tChgFP\tFPImag\tFACE\tUserPic\tWORKCODE\tBioPhoto";

/// The protocol version punchd answers with, as `ServerVer=` and `PushProtVer=`. 2.4.1 is the newest att
/// version that does not require payload encryption (push.md §2, §11).
pub const SERVER_VERSION: &str = "2.4.1";

/// The options punchd asks a device to push (`PushOptions=`, push.md §3.2.1, §7.5): identity, network and
/// counts for device health, biometric support for choosing template commands.
pub const DEFAULT_PUSH_OPTIONS: &str = "~DeviceName,FWVersion,PushVersion,IPAddress,MAC,~Platform,UserCount,\
TransactionCount,FPCount,FaceCount,FingerFunOn,FaceFunOn,FPVersion,FaceVersion,BioDataFun,BioPhotoFun,\
MultiBioDataSupport,MultiBioPhotoSupport,MultiBioVersion";

impl OptionsReply {
    /// Defaults: ErrorDelay 30, Delay 10, TransTimes 00:00;14:05, TransInterval 1, TransFlag string form
    /// with every token we store, Realtime 1, Encrypt None, ServerVer/PushProtVer "2.4.1", PushOptionsFlag 1,
    /// PushOptions [`DEFAULT_PUSH_OPTIONS`]. Stamps are `0` for ATTLOG, OPERLOG, ATTPHOTO and BIODATA, i.e.
    /// "upload everything" (push.md §4): the caller replaces them with the stamps it stored.
    pub fn new(sn: &str, time_zone_minutes: i32) -> OptionsReply {
        OptionsReply {
            sn: sn.to_string(),
            stamps: ["ATTLOG", "OPERLOG", "ATTPHOTO", "BIODATA"]
                .iter()
                .map(|table| (table.to_string(), "0".to_string()))
                .collect(),
            error_delay: 30,
            delay: 10,
            trans_times: "00:00;14:05".to_string(),
            trans_interval: 1,
            trans_flag: DEFAULT_TRANS_FLAG.to_string(),
            time_zone_minutes,
            realtime: true,
            server_version: SERVER_VERSION.to_string(),
            push_protocol_version: SERVER_VERSION.to_string(),
            push_options_flag: true,
            push_options: Some(DEFAULT_PUSH_OPTIONS.to_string()),
        }
    }

    /// `GET OPTION FROM: <SN>` block, `\n` line endings, `<TABLE>Stamp=` per table plus legacy
    /// Stamp/OpStamp/PhotoStamp, TimeZone via [`encode_time_zone`].
    ///
    /// The legacy keys repeat the ATTLOG, OPERLOG and ATTPHOTO stamps and are only written for tables present
    /// in [`OptionsReply::stamps`]. `ServerVer` is always written: without it firmware falls back to PUSH 1.0
    /// upload URLs and push 3.x firmware repeats the handshake (push.md §2). Every line, the last included,
    /// ends with `\n`. TAB, CR and LF inside values other than TransFlag (which needs its TABs) become
    /// spaces.
    pub fn encode(&self) -> String {
        let mut out = format!("GET OPTION FROM: {}\n", one_line(&self.sn));
        let mut line = |key: &str, value: &str| {
            out.push_str(key);
            out.push('=');
            out.push_str(value);
            out.push('\n');
        };
        for (table, stamp) in &self.stamps {
            line(&format!("{}Stamp", one_line(table)), &one_line(stamp));
        }
        for (legacy, table) in [
            ("Stamp", "ATTLOG"),
            ("OpStamp", "OPERLOG"),
            ("PhotoStamp", "ATTPHOTO"),
        ] {
            if let Some((_, stamp)) = self
                .stamps
                .iter()
                .find(|(t, _)| t.eq_ignore_ascii_case(table))
            {
                line(legacy, &one_line(stamp));
            }
        }
        line("ErrorDelay", &self.error_delay.to_string());
        line("Delay", &self.delay.to_string());
        line("TransTimes", &one_line(&self.trans_times));
        line("TransInterval", &self.trans_interval.to_string());
        line("TransFlag", &self.trans_flag.replace(['\r', '\n'], " "));
        line("TimeZone", &encode_time_zone(self.time_zone_minutes));
        line("Realtime", if self.realtime { "1" } else { "0" });
        line("Encrypt", "None");
        line("ServerVer", &one_line(&self.server_version));
        line("PushProtVer", &one_line(&self.push_protocol_version));
        line(
            "PushOptionsFlag",
            if self.push_options_flag { "1" } else { "0" },
        );
        if let Some(options) = &self.push_options {
            line("PushOptions", &one_line(options));
        }
        out
    }
}

fn one_line(value: &str) -> String {
    value.replace(['\t', '\r', '\n'], " ")
}

/// Whole hours -> "8"/"-5"; otherwise minutes -> "330"/"345"/"-210". Never fractional (push.md §3.2.1).
///
/// Firmware reads a value with magnitude below 25 as hours, so an offset that is not whole hours and smaller
/// than 25 minutes cannot be expressed; no real zone has one today, and such a value is rounded to the nearest
/// hour (`0`).
pub fn encode_time_zone(minutes: i32) -> String {
    if minutes % 60 == 0 {
        (minutes / 60).to_string()
    } else if minutes.unsigned_abs() >= 25 {
        minutes.to_string()
    } else {
        "0".to_string()
    }
}

/// `OK:<n>`: acknowledges `n` records of an upload (push.md §7: always this form for table uploads).
pub fn encode_ok_count(n: usize) -> String {
    format!("OK:{n}")
}

/// `Time=YYYY-MM-DDThh:mm:ss±hh:mm` for cdata?type=time (push.md §5): `local` is the server's wall time in
/// the device's zone, `offset_minutes` that zone's offset east of UTC.
pub fn encode_server_time(local: NaiveDateTime, offset_minutes: i32) -> String {
    format!(
        "Time={}{}",
        local.format("%Y-%m-%dT%H:%M:%S"),
        format_offset(offset_minutes, ":")
    )
}

/// `DateTime=<OldEncodeTime of UTC>,ServerTZ=+0800` for rtdata?type=time (push.md §5, appendix F): `utc` is the
/// current UTC time, `offset_minutes` the zone offset east of UTC.
pub fn encode_rtdata_time(utc: NaiveDateTime, offset_minutes: i32) -> String {
    format!(
        "DateTime={},ServerTZ={}",
        old_encode_time(utc),
        format_offset(offset_minutes, "")
    )
}

fn format_offset(minutes: i32, separator: &str) -> String {
    let sign = if minutes < 0 { '-' } else { '+' };
    let abs = minutes.unsigned_abs();
    format!("{sign}{:02}{separator}{:02}", abs / 60, abs % 60)
}

/// Seconds in one ZK day, and days in a ZK month and year (every month has 31 days, appendix F).
const DAY: u64 = 86_400;
const MONTH_DAYS: u64 = 31;
const YEAR_DAYS: u64 = 12 * 31;

/// ZK "OldEncodeTime" (appendix F): seconds since 2000-01-01 in a calendar of 12 months of 31 days. Times
/// before 2000 encode as 0; times past the `u32` range (year 2133) saturate at `u32::MAX`.
pub fn old_encode_time(t: NaiveDateTime) -> u32 {
    let Ok(years) = u64::try_from(t.year() - 2000) else {
        return 0;
    };
    let days = years * YEAR_DAYS + u64::from(t.month0()) * MONTH_DAYS + u64::from(t.day0());
    let seconds = days * DAY + u64::from(t.num_seconds_from_midnight());
    u32::try_from(seconds).unwrap_or(u32::MAX)
}

/// Inverse of [`old_encode_time`]; `None` when the value names a day that does not exist (the 31-day calendar
/// has 2001-02-30).
pub fn old_decode_time(v: u32) -> Option<NaiveDateTime> {
    let mut t = u64::from(v);
    let second = t % 60;
    t /= 60;
    let minute = t % 60;
    t /= 60;
    let hour = t % 24;
    t /= 24;
    let day = t % MONTH_DAYS + 1;
    t /= MONTH_DAYS;
    let month = t % 12 + 1;
    let year = t / 12 + 2000;
    NaiveDate::from_ymd_opt(
        i32::try_from(year).ok()?,
        u32::try_from(month).ok()?,
        u32::try_from(day).ok()?,
    )?
    .and_hms_opt(
        u32::try_from(hour).ok()?,
        u32::try_from(minute).ok()?,
        u32::try_from(second).ok()?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_opt(h, mi, s)
            .unwrap()
    }

    #[test]
    fn default_options_block_exact_bytes() {
        let reply = OptionsReply::new("0316144680030", 480);
        assert_eq!(
            reply.encode(),
            "GET OPTION FROM: 0316144680030\n\
             ATTLOGStamp=0\n\
             OPERLOGStamp=0\n\
             ATTPHOTOStamp=0\n\
             BIODATAStamp=0\n\
             Stamp=0\n\
             OpStamp=0\n\
             PhotoStamp=0\n\
             ErrorDelay=30\n\
             Delay=10\n\
             TransTimes=00:00;14:05\n\
             TransInterval=1\n\
             TransFlag=TransData AttLog\tOpLog\tAttPhoto\tEnrollUser\tChgUser\tEnrollFP\tChgFP\tFPImag\tFACE\tUserPic\tWORKCODE\tBioPhoto\n\
             TimeZone=8\n\
             Realtime=1\n\
             Encrypt=None\n\
             ServerVer=2.4.1\n\
             PushProtVer=2.4.1\n\
             PushOptionsFlag=1\n\
             PushOptions=~DeviceName,FWVersion,PushVersion,IPAddress,MAC,~Platform,UserCount,TransactionCount,FPCount,FaceCount,FingerFunOn,FaceFunOn,FPVersion,FaceVersion,BioDataFun,BioPhotoFun,MultiBioDataSupport,MultiBioPhotoSupport,MultiBioVersion\n"
        );
    }

    #[test]
    fn custom_options_block() {
        let mut reply = OptionsReply::new("A1", 330);
        reply.stamps = vec![
            ("ATTLOG".into(), "9999".into()),
            ("IDCARD".into(), "5".into()),
        ];
        reply.realtime = false;
        reply.push_options_flag = false;
        reply.push_options = None;
        reply.trans_flag = "1111000000".into();
        let text = reply.encode();
        assert!(text.starts_with(
            "GET OPTION FROM: A1\nATTLOGStamp=9999\nIDCARDStamp=5\nStamp=9999\nErrorDelay=30\n"
        ));
        assert!(text.contains("\nTransFlag=1111000000\nTimeZone=330\nRealtime=0\n"));
        assert!(text.ends_with("\nPushProtVer=2.4.1\nPushOptionsFlag=0\n"));
        assert!(!text.contains("OpStamp"));
    }

    #[test]
    fn time_zones() {
        let cases = [
            (330, "330"),
            (345, "345"),
            (-210, "-210"),
            (480, "8"),
            (-300, "-5"),
            (0, "0"),
            (780, "13"),
            (-570, "-570"),
            (20, "0"),
        ];
        for (minutes, text) in cases {
            assert_eq!(encode_time_zone(minutes), text, "{minutes}");
        }
    }

    #[test]
    fn acknowledgements_and_time() {
        assert_eq!(encode_ok_count(9), "OK:9");
        assert_eq!(encode_ok_count(0), "OK:0");
        assert_eq!(
            encode_server_time(at(2011, 5, 5, 17, 40, 20), -300),
            "Time=2011-05-05T17:40:20-05:00"
        );
        assert_eq!(
            encode_server_time(at(2024, 2, 29, 0, 0, 0), 345),
            "Time=2024-02-29T00:00:00+05:45"
        );
        assert_eq!(
            encode_rtdata_time(at(2000, 1, 1, 0, 0, 1), -210),
            "DateTime=1,ServerTZ=-0330"
        );
    }

    #[test]
    fn old_encode_time_matches_appendix_f() {
        // ((17*12*31) + (0*31) + (10)) days, 01:30:03.
        let t = at(2017, 1, 11, 1, 30, 3);
        assert_eq!(old_encode_time(t), (17 * 372 + 10) * 86_400 + 5_403);
        assert_eq!(old_decode_time(old_encode_time(t)), Some(t));
        // The SPEC-SEC example value decodes to a real day and encodes back.
        let decoded = old_decode_time(583_050_990).unwrap();
        assert_eq!(decoded, at(2018, 2, 22, 6, 36, 30));
        assert_eq!(
            encode_rtdata_time(decoded, 480),
            "DateTime=583050990,ServerTZ=+0800"
        );
        // Day 30 of February exists only in the ZK calendar.
        let february_30 = (31 + 29) * 86_400;
        assert_eq!(old_decode_time(february_30), None);
        assert_eq!(old_encode_time(at(1999, 12, 31, 23, 59, 59)), 0);
        assert_eq!(old_encode_time(at(2200, 1, 1, 0, 0, 0)), u32::MAX);
        assert_eq!(old_decode_time(0), Some(at(2000, 1, 1, 0, 0, 0)));
    }
}
