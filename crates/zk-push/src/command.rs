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
    /// The command text after `C:<id>:` (TAB separators, documented case, push.md §8.2).
    ///
    /// Values are cleaned before they are put on the wire: TAB, CR and LF would split a record or start a new
    /// command line, so each becomes a space. Times are `YYYY-MM-DD HH:MM:SS` (SPEC-ATT form). `Size=` of a
    /// template is the length of its base64 text. `Shell` uses the spelling real firmware echoes (`Shell date`).
    pub fn encode(&self) -> String {
        match self {
            Command::UpdateUser(user) => {
                let mut text = format!(
                    "DATA UPDATE USERINFO PIN={}\tName={}\tPri={}\tPasswd={}\tCard={}\tGrp={}\tTZ={}",
                    clean(&user.pin),
                    clean(&user.name),
                    user.privilege,
                    clean(&user.password),
                    clean(&user.card),
                    clean(&user.group),
                    clean(&user.time_zones),
                );
                if let Some(verify) = user.verify_mode {
                    text.push_str(&format!("\tVerify={verify}"));
                }
                text
            }
            Command::DeleteUser { pin } => format!("DATA DELETE USERINFO PIN={}", clean(pin)),
            Command::UpdateFingerTemplate {
                pin,
                fid,
                valid,
                template,
            } => format!(
                "DATA UPDATE FINGERTMP PIN={}\tFID={fid}\tSize={}\tValid={valid}\tTMP={}",
                clean(pin),
                clean(template).len(),
                clean(template),
            ),
            Command::UpdateFace {
                pin,
                fid,
                valid,
                template,
            } => format!(
                "DATA UPDATE FACE PIN={}\tFID={fid}\tValid={valid}\tSize={}\tTMP={}",
                clean(pin),
                clean(template).len(),
                clean(template),
            ),
            Command::UpdateBioData {
                pin,
                no,
                index,
                valid,
                duress,
                bio_type,
                major_ver,
                minor_ver,
                format,
                template,
            } => format!(
                "DATA UPDATE BIODATA Pin={}\tNo={no}\tIndex={index}\tValid={valid}\tDuress={}\tType={bio_type}\t\
                 MajorVer={}\tMinorVer={}\tFormat={format}\tTmp={}",
                clean(pin),
                u8::from(*duress),
                clean(major_ver),
                clean(minor_ver),
                clean(template),
            ),
            Command::DeleteFingerTemplate { pin, fid } => match fid {
                Some(fid) => format!("DATA DELETE FINGERTMP PIN={}\tFID={fid}", clean(pin)),
                None => format!("DATA DELETE FINGERTMP PIN={}", clean(pin)),
            },
            Command::QueryAttLog { start, end } => format!(
                "DATA QUERY ATTLOG StartTime={}\tEndTime={}",
                start.format(TIME_FORMAT),
                end.format(TIME_FORMAT)
            ),
            Command::QueryUserInfo { pin } => match pin {
                Some(pin) => format!("DATA QUERY USERINFO PIN={}", clean(pin)),
                None => "DATA QUERY USERINFO".to_string(),
            },
            Command::Check => "CHECK".to_string(),
            Command::Log => "LOG".to_string(),
            Command::Info => "INFO".to_string(),
            Command::ClearLog => "CLEAR LOG".to_string(),
            Command::ClearPhoto => "CLEAR PHOTO".to_string(),
            Command::ClearData => "CLEAR DATA".to_string(),
            Command::SetOption { key, value } => {
                format!("SET OPTION {}={}", clean(key), clean(value))
            }
            Command::ReloadOptions => "RELOAD OPTIONS".to_string(),
            Command::Reboot => "REBOOT".to_string(),
            Command::Unlock => "AC_UNLOCK".to_string(),
            Command::Shell(command) => format!("Shell {}", clean(command)),
            Command::VerifySumAttLog { start, end } => format!(
                "VERIFY SUM ATTLOG StartTime={}\tEndTime={}",
                start.format(TIME_FORMAT),
                end.format(TIME_FORMAT)
            ),
            Command::Raw(text) => text.replace(['\r', '\n'], " "),
        }
    }

    /// REBOOT / CHECK / CLEAR DATA must be last in a reply (push.md §8.1): the device ignores what follows.
    pub fn must_be_last(&self) -> bool {
        text_must_be_last(&self.encode())
    }
}

/// Whether command text ends a reply: `REBOOT`, `RESTART`, `CHECK`, `CLEAR DATA` (ASCII case-insensitive,
/// also with arguments). Used on stored text, so commands queued as [`Command::Raw`] are covered too.
pub fn text_must_be_last(text: &str) -> bool {
    let words: Vec<String> = text
        .split_whitespace()
        .take(2)
        .map(str::to_ascii_uppercase)
        .collect();
    match words.as_slice() {
        [first, ..] if first == "REBOOT" || first == "RESTART" || first == "CHECK" => true,
        [first, second] => first == "CLEAR" && second == "DATA",
        _ => false,
    }
}

/// Largest reply body SPEC-US allows (push.md §8.1: "no more than 200 commands or 40 KB per reply").
pub const DEFAULT_REPLY_BUDGET: usize = 40 * 1024;

/// Most commands in one reply (push.md §8.1).
pub const MAX_COMMANDS_PER_REPLY: usize = 200;

/// `C:<id>:<text>\n` lines for a getrequest reply (push.md §8.1); returns the reply and how many of
/// `commands` it includes (always a prefix, so the rest stay queued in order).
///
/// Stops after the first command whose text must be last ([`text_must_be_last`]), after
/// [`MAX_COMMANDS_PER_REPLY`] commands, and before a line that would take the reply past `max_bytes` (e.g.
/// [`DEFAULT_REPLY_BUDGET`]). The first command is always included even when it alone is larger than the
/// budget, so an oversized command cannot block the queue forever. CR and LF inside a text become spaces
/// (they would start a new command line). No commands → `("", 0)`; the caller answers `OK`.
pub fn encode_command_reply(commands: &[(u64, String)], max_bytes: usize) -> (String, usize) {
    let mut reply = String::new();
    let mut included = 0;
    for (id, text) in commands.iter().take(MAX_COMMANDS_PER_REPLY) {
        let line = format!("C:{id}:{}\n", text.replace(['\r', '\n'], " "));
        if included > 0 && reply.len() + line.len() > max_bytes {
            break;
        }
        reply.push_str(&line);
        included += 1;
        if text_must_be_last(text) {
            break;
        }
    }
    (reply, included)
}

/// The time format of `StartTime=`/`EndTime=` (SPEC-ATT).
const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// TAB, CR and LF would break the record or the reply: replace each with a space.
fn clean(value: &str) -> String {
    value.replace(['\t', '\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(d: u32, h: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2024, 1, d)
            .unwrap()
            .and_hms_opt(h, 0, 0)
            .unwrap()
    }

    #[test]
    fn user_commands() {
        let user = UserInfo {
            pin: "0042".into(),
            name: "Ann\tLee".into(),
            privilege: 14,
            password: "".into(),
            card: "133440".into(),
            group: "1".into(),
            time_zones: "0000000000000000".into(),
            verify_mode: Some(0),
        };
        assert_eq!(
            Command::UpdateUser(user.clone()).encode(),
            "DATA UPDATE USERINFO PIN=0042\tName=Ann Lee\tPri=14\tPasswd=\tCard=133440\tGrp=1\tTZ=0000000000000000\tVerify=0"
        );
        let no_verify = UserInfo {
            verify_mode: None,
            ..user
        };
        assert!(!Command::UpdateUser(no_verify).encode().contains("Verify"));
        assert_eq!(
            Command::DeleteUser { pin: "7".into() }.encode(),
            "DATA DELETE USERINFO PIN=7"
        );
        assert_eq!(
            Command::QueryUserInfo { pin: None }.encode(),
            "DATA QUERY USERINFO"
        );
        assert_eq!(
            Command::QueryUserInfo {
                pin: Some("7".into())
            }
            .encode(),
            "DATA QUERY USERINFO PIN=7"
        );
    }

    #[test]
    fn template_commands() {
        assert_eq!(
            Command::UpdateFingerTemplate {
                pin: "1".into(),
                fid: 6,
                valid: 1,
                template: "QUJDRA==".into()
            }
            .encode(),
            "DATA UPDATE FINGERTMP PIN=1\tFID=6\tSize=8\tValid=1\tTMP=QUJDRA=="
        );
        assert_eq!(
            Command::UpdateFace {
                pin: "1".into(),
                fid: 0,
                valid: 1,
                template: "AAAA".into()
            }
            .encode(),
            "DATA UPDATE FACE PIN=1\tFID=0\tValid=1\tSize=4\tTMP=AAAA"
        );
        assert_eq!(
            Command::UpdateBioData {
                pin: "1".into(),
                no: 0,
                index: 0,
                valid: 1,
                duress: false,
                bio_type: 9,
                major_ver: "39".into(),
                minor_ver: "1".into(),
                format: 0,
                template: "CCCC".into(),
            }
            .encode(),
            "DATA UPDATE BIODATA Pin=1\tNo=0\tIndex=0\tValid=1\tDuress=0\tType=9\tMajorVer=39\tMinorVer=1\tFormat=0\tTmp=CCCC"
        );
        assert_eq!(
            Command::DeleteFingerTemplate {
                pin: "1".into(),
                fid: Some(3)
            }
            .encode(),
            "DATA DELETE FINGERTMP PIN=1\tFID=3"
        );
        assert_eq!(
            Command::DeleteFingerTemplate {
                pin: "1".into(),
                fid: None
            }
            .encode(),
            "DATA DELETE FINGERTMP PIN=1"
        );
    }

    #[test]
    fn control_commands() {
        let cases = [
            (
                Command::QueryAttLog {
                    start: at(1, 0),
                    end: at(2, 23),
                },
                "DATA QUERY ATTLOG StartTime=2024-01-01 00:00:00\tEndTime=2024-01-02 23:00:00",
            ),
            (
                Command::VerifySumAttLog {
                    start: at(1, 0),
                    end: at(2, 23),
                },
                "VERIFY SUM ATTLOG StartTime=2024-01-01 00:00:00\tEndTime=2024-01-02 23:00:00",
            ),
            (Command::Check, "CHECK"),
            (Command::Log, "LOG"),
            (Command::Info, "INFO"),
            (Command::ClearLog, "CLEAR LOG"),
            (Command::ClearPhoto, "CLEAR PHOTO"),
            (Command::ClearData, "CLEAR DATA"),
            (
                Command::SetOption {
                    key: "Delay".into(),
                    value: "10".into(),
                },
                "SET OPTION Delay=10",
            ),
            (Command::ReloadOptions, "RELOAD OPTIONS"),
            (Command::Reboot, "REBOOT"),
            (Command::Unlock, "AC_UNLOCK"),
            (Command::Shell("date".into()), "Shell date"),
            (
                Command::Raw("GET OPTION FROM IPAddress\nC:9:REBOOT".into()),
                "GET OPTION FROM IPAddress C:9:REBOOT",
            ),
        ];
        for (command, text) in cases {
            assert_eq!(command.encode(), text);
        }
    }

    #[test]
    fn must_be_last() {
        assert!(Command::Reboot.must_be_last());
        assert!(Command::Check.must_be_last());
        assert!(Command::ClearData.must_be_last());
        assert!(Command::Raw("restart".into()).must_be_last());
        assert!(!Command::ClearLog.must_be_last());
        assert!(!Command::Info.must_be_last());
        assert!(!Command::Raw("CHECKSUM".into()).must_be_last());
        assert!(!text_must_be_last(""));
    }

    #[test]
    fn reply_stops_after_reboot_and_at_budget() {
        let commands = vec![
            (1001, "DATA UPDATE USERINFO PIN=1".to_string()),
            (1002, "INFO".to_string()),
            (1003, "REBOOT".to_string()),
            (1004, "LOG".to_string()),
        ];
        assert_eq!(
            encode_command_reply(&commands, DEFAULT_REPLY_BUDGET),
            (
                "C:1001:DATA UPDATE USERINFO PIN=1\nC:1002:INFO\nC:1003:REBOOT\n".to_string(),
                3
            )
        );
        // 34 bytes for the first line; the second (12) would exceed 40.
        assert_eq!(
            encode_command_reply(&commands, 40),
            ("C:1001:DATA UPDATE USERINFO PIN=1\n".to_string(), 1)
        );
        assert_eq!(encode_command_reply(&commands, 46).1, 2);
        // An oversized first command still goes out alone.
        assert_eq!(encode_command_reply(&commands, 1).1, 1);
        assert_eq!(encode_command_reply(&[], 100), (String::new(), 0));
        let many: Vec<(u64, String)> = (0..300).map(|i| (i, "LOG".to_string())).collect();
        assert_eq!(
            encode_command_reply(&many, usize::MAX).1,
            MAX_COMMANDS_PER_REPLY
        );
        assert_eq!(
            encode_command_reply(&[(1, "A\r\nC:2:REBOOT".into())], 100),
            ("C:1:A  C:2:REBOOT\n".to_string(), 1)
        );
    }

    #[test]
    fn serde_round_trip() {
        let commands = vec![
            Command::UpdateUser(UserInfo {
                pin: "0042".into(),
                name: "张三".into(),
                privilege: 0,
                password: String::new(),
                card: String::new(),
                group: "1".into(),
                time_zones: "0000000000000000".into(),
                verify_mode: None,
            }),
            Command::QueryAttLog {
                start: at(1, 0),
                end: at(2, 0),
            },
            Command::Reboot,
            Command::Shell("date".into()),
        ];
        let json = serde_json::to_string(&commands).unwrap();
        let back: Vec<Command> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, commands);
        assert_eq!(
            serde_json::to_string(&Command::Reboot).unwrap(),
            "\"Reboot\""
        );
    }
}
