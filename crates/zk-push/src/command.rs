//! Commands from the server to a device (push.md §8). Must not depend on any other module.

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

/// A user record as sent in `DATA UPDATE USERINFO` (push.md §8.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// `PIN=`.
    pub pin: String,
    /// `Name=`.
    pub name: String,
    /// `Pri=`: 0 user, 14 admin.
    pub privilege: u16,
    /// `Passwd=`.
    pub password: String,
    /// `Card=`.
    pub card: String,
    /// `Grp=`.
    pub group: String,
    /// `TZ=`.
    pub time_zones: String,
    /// `Verify=`; omitted when `None`.
    pub verify_mode: Option<i32>,
}

/// A command for a device (push.md §8.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// `DATA UPDATE USERINFO` (always the full record).
    UpdateUser(UserInfo),
    /// `DATA DELETE USERINFO PIN=`.
    DeleteUser {
        /// The PIN to delete.
        pin: String,
    },
    /// `DATA UPDATE FINGERTMP`.
    UpdateFingerTemplate {
        /// Owner.
        pin: String,
        /// Finger index 0..=9.
        fid: u16,
        /// 1 valid, 3 duress.
        valid: u16,
        /// Base64 template.
        template: String,
    },
    /// `DATA UPDATE FACE`.
    UpdateFace {
        /// Owner.
        pin: String,
        /// Face index.
        fid: u16,
        /// 1 valid.
        valid: u16,
        /// Base64 template.
        template: String,
    },
    /// `DATA UPDATE BIODATA` (push.md §7.4).
    UpdateBioData {
        /// Owner.
        pin: String,
        /// `No=`.
        no: u16,
        /// `Index=`.
        index: u16,
        /// `Valid=`.
        valid: u16,
        /// `Duress=`.
        duress: bool,
        /// `Type=` (appendix E).
        bio_type: u16,
        /// `MajorVer=`.
        major_ver: String,
        /// `MinorVer=`.
        minor_ver: String,
        /// `Format=`.
        format: u16,
        /// `Tmp=` base64.
        template: String,
    },
    /// `DATA DELETE FINGERTMP PIN= [FID=]`.
    DeleteFingerTemplate {
        /// Owner.
        pin: String,
        /// One finger, or all when `None`.
        fid: Option<u16>,
    },
    /// `DATA QUERY ATTLOG StartTime= EndTime=` (terminal local wall time).
    QueryAttLog {
        /// From (inclusive).
        start: NaiveDateTime,
        /// To (inclusive).
        end: NaiveDateTime,
    },
    /// `DATA QUERY USERINFO [PIN=]`.
    QueryUserInfo {
        /// One user, or all when `None`.
        pin: Option<String>,
    },
    /// `CHECK`: re-handshake and upload what is new.
    Check,
    /// `LOG`: upload what is new.
    Log,
    /// `INFO`: report device information.
    Info,
    /// `CLEAR LOG`: delete the attendance log on the device.
    ClearLog,
    /// `CLEAR PHOTO`.
    ClearPhoto,
    /// `CLEAR DATA`: delete everything on the device.
    ClearData,
    /// `SET OPTION key=value`.
    SetOption {
        /// Option name.
        key: String,
        /// Option value.
        value: String,
    },
    /// `RELOAD OPTIONS`.
    ReloadOptions,
    /// `REBOOT`.
    Reboot,
    /// `AC_UNLOCK`.
    Unlock,
    /// `SHELL <cmd>`.
    Shell(String),
    /// `VERIFY SUM ATTLOG StartTime= EndTime=`.
    VerifySumAttLog {
        /// From (inclusive).
        start: NaiveDateTime,
        /// To (inclusive).
        end: NaiveDateTime,
    },
    /// Any text, sent as is.
    Raw(String),
}

impl Command {
    /// The command text after `C:<id>:` (TAB separators, documented case).
    pub fn encode(&self) -> String {
        todo!()
    }

    /// REBOOT / CHECK / CLEAR DATA must be last in a reply (push.md §8.1).
    pub fn must_be_last(&self) -> bool {
        todo!()
    }
}

/// `C:<id>:<text>\n` lines for a getrequest reply; stops after the first command whose text must be last
/// (returns how many were included). Also enforces a byte budget (e.g. 40 KB, push.md §8.1).
pub fn encode_command_reply(commands: &[(u64, String)], max_bytes: usize) -> (String, usize) {
    let _ = (commands, max_bytes);
    todo!()
}
