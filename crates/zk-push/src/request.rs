//! Classifying a device request by endpoint (push.md §1.1). Depends on [`crate::query`] and [`crate::info`].

use crate::info::{parse_info, DeviceInfo};
use crate::query::Query;

/// The `table=` of an upload (push.md §7).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Table {
    /// `ATTLOG`: punches (push.md §7.1).
    AttLog,
    /// `OPERLOG`: operation log, users, templates (push.md §7.2).
    OperLog,
    /// `ATTPHOTO`: capture photos (push.md §7.3).
    AttPhoto,
    /// `BIODATA`: unified templates (push.md §7.4).
    BioData,
    /// `IDCARD`: ID card records (push.md §7.5).
    IdCard,
    /// `ERRORLOG` (push.md §7.5).
    ErrorLog,
    /// `options`: the device's option push (push.md §7.5).
    Options,
    /// Any other table, spelled as sent.
    Other(String),
}

impl Table {
    /// Parse a wire table name, ignoring ASCII case; unknown names are kept as sent.
    pub fn parse(s: &str) -> Table {
        let known = [
            Table::AttLog,
            Table::OperLog,
            Table::AttPhoto,
            Table::BioData,
            Table::IdCard,
            Table::ErrorLog,
            Table::Options,
        ];
        known
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
            .unwrap_or_else(|| Table::Other(s.to_string()))
    }

    /// The wire spelling: `ATTLOG`, `OPERLOG`, `ATTPHOTO`, `BIODATA`, `IDCARD`, `ERRORLOG`, `options`, or an
    /// unknown name as sent. This is also the prefix of the `<TABLE>Stamp=` handshake key.
    pub fn as_str(&self) -> &str {
        match self {
            Table::AttLog => "ATTLOG",
            Table::OperLog => "OPERLOG",
            Table::AttPhoto => "ATTPHOTO",
            Table::BioData => "BIODATA",
            Table::IdCard => "IDCARD",
            Table::ErrorLog => "ERRORLOG",
            Table::Options => "options",
            Table::Other(name) => name,
        }
    }
}

/// The parameters of the initialization request (push.md §3.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Handshake {
    /// `pushver=`.
    pub push_version: Option<String>,
    /// `language=` (appendix A).
    pub language: Option<String>,
    /// `DeviceType=` (`att`, `acc`).
    pub device_type: Option<String>,
    /// `PushOptionsFlag=1`: the device will push its options after the handshake.
    pub push_options_flag: bool,
    /// `pushcommkey=`.
    pub push_comm_key: Option<String>,
}

/// What a device asked for (push.md §1.1 endpoint inventory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `GET /iclock/cdata?options=all…`.
    Handshake(Handshake),
    /// `GET /iclock/cdata?type=time` (SPEC-US).
    ServerTime,
    /// `GET /iclock/rtdata?type=time`.
    RtdataTime,
    /// `GET cdata?table=RemoteAtt&PIN=` and legacy `GET cdata?PIN=`.
    RemoteAtt {
        /// The PIN asked for.
        pin: String,
    },
    /// `POST /iclock/cdata?table=…(&Stamp= | &OpStamp=)`.
    Upload {
        /// Which table the body holds.
        table: Table,
        /// The stamp as sent, if any.
        stamp: Option<String>,
    },
    /// `POST /iclock/fdata` (legacy photo upload).
    PhotoUpload {
        /// The stamp as sent, if any.
        stamp: Option<String>,
    },
    /// `GET /iclock/getrequest[?INFO=…]`.
    Poll {
        /// The device status, when sent.
        info: Option<DeviceInfo>,
    },
    /// `GET /iclock/ping`.
    Ping,
    /// `POST /iclock/devicecmd` (body parsed by [`crate::devicecmd`]).
    CommandResults,
    /// 3.x security dialect endpoints (registry, push, querydata, exchange, tabledata uploads, rtlog…):
    /// recognised so the server can log exactly what was asked, not implemented.
    SecurityDialect {
        /// What was asked, e.g. `registry` or `tabledata/user`.
        what: String,
    },
    /// Any other `/iclock/*` path: answer 200 OK, keep raw.
    Other {
        /// The path as sent.
        path: String,
    },
}

/// Why a request could not be classified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// No `SN=` in the query.
    #[error("request has no SN")]
    MissingSn,
    /// The SN is empty, too long or has characters a serial number never has.
    #[error("invalid SN {0:?}")]
    InvalidSn(String),
    /// The path is not under `/iclock/`.
    #[error("not an iclock path: {0:?}")]
    NotIclock(String),
}

/// Longest SN accepted; real serials are 10–19 characters.
pub const MAX_SN_LEN: usize = 40;

/// Classify a request (push.md §1.1). `path` is the URL path (`/iclock/cdata`), `query` the parsed query.
/// Returns the SN as sent.
///
/// Classification is by path and query, not by method: firmware is not consistent about GET and POST, and
/// the tolerance rule (push.md §1.1) says an unexpected request must still get `200 OK`. Within `cdata`,
/// `options=` (handshake) wins over `type=time`, which wins over `table=`, which wins over a bare `PIN=`
/// (legacy remote attendance; with `type=` or `AuthType=` it is [`Request::Other`]). `method` is accepted for the record but does not change the result.
///
/// An SN is 1..=[`MAX_SN_LEN`] visible ASCII characters (ZKTeco serials are letters and digits; the rest is
/// tolerance for rebranded units and simulators: the SN is an opaque identifier, and a terminal that is refused
/// is never heard).
///
/// # Errors
/// [`RequestError::NotIclock`] when the path is not under `/iclock/`; [`RequestError::MissingSn`] when there is
/// no `SN=`; [`RequestError::InvalidSn`] when the SN is empty, too long, or has a space, a control character or
/// a non-ASCII byte.
pub fn parse_request(
    method: &str,
    path: &str,
    query: &Query,
) -> Result<(String, Request), RequestError> {
    let _ = method;
    let endpoint =
        iclock_endpoint(path).ok_or_else(|| RequestError::NotIclock(path.to_string()))?;
    let sn = query.get("SN").ok_or(RequestError::MissingSn)?;
    if !is_valid_sn(sn) {
        return Err(RequestError::InvalidSn(sn.to_string()));
    }
    let request = match endpoint.to_ascii_lowercase().as_str() {
        "cdata" => classify_cdata(query),
        "fdata" => Request::PhotoUpload {
            stamp: stamp(query),
        },
        "getrequest" => Request::Poll {
            info: query
                .get("INFO")
                .filter(|info| !info.trim().is_empty())
                .map(parse_info),
        },
        "ping" => Request::Ping,
        "devicecmd" => Request::CommandResults,
        "rtdata"
            if query
                .get("type")
                .is_some_and(|t| t.eq_ignore_ascii_case("time")) =>
        {
            Request::RtdataTime
        }
        "rtdata" => security("rtdata", &[query.get("type")]),
        "registry" => security("registry", &[]),
        "push" => security("push", &[]),
        "exchange" => security("exchange", &[query.get("type")]),
        "querydata" => security("querydata", &[query.get("type"), query.get("tablename")]),
        _ => Request::Other {
            path: path.to_string(),
        },
    };
    Ok((sn.to_string(), request))
}

/// The part of `path` after `/iclock/`, without a trailing `/`; `None` outside `/iclock/`.
fn iclock_endpoint(path: &str) -> Option<&str> {
    let prefix = path.get(..8)?;
    if !prefix.eq_ignore_ascii_case("/iclock/") {
        return None;
    }
    Some(path.get(8..)?.trim_end_matches('/'))
}

fn is_valid_sn(sn: &str) -> bool {
    !sn.is_empty() && sn.len() <= MAX_SN_LEN && sn.bytes().all(|b| b.is_ascii_graphic())
}

/// The upload cursor: `Stamp=`, else `OpStamp=` (PUSH-1.0 OPERLOG), else `PhotoStamp=` (legacy photos).
fn stamp(query: &Query) -> Option<String> {
    ["Stamp", "OpStamp", "PhotoStamp"]
        .iter()
        .find_map(|key| query.get(key))
        .map(str::to_string)
}

/// Tables of the 3.x security dialect posted to `cdata`.
const SECURITY_TABLES: [&str; 4] = ["rtlog", "rtstate", "irstate", "testdata"];

fn classify_cdata(query: &Query) -> Request {
    if query.get("options").is_some() {
        return Request::Handshake(Handshake {
            push_version: query.get("pushver").map(str::to_string),
            language: query.get("language").map(str::to_string),
            device_type: query.get("DeviceType").map(str::to_string),
            push_options_flag: query
                .get("PushOptionsFlag")
                .is_some_and(|f| f.trim() == "1"),
            push_comm_key: query.get("pushcommkey").map(str::to_string),
        });
    }
    if query
        .get("type")
        .is_some_and(|t| t.eq_ignore_ascii_case("time"))
    {
        return Request::ServerTime;
    }
    if let Some(table) = query.get("table") {
        if table.eq_ignore_ascii_case("RemoteAtt") {
            return Request::RemoteAtt {
                pin: query.get("PIN").unwrap_or_default().to_string(),
            };
        }
        if table.eq_ignore_ascii_case("tabledata") {
            return security("tabledata", &[query.get("tablename")]);
        }
        if let Some(name) = SECURITY_TABLES
            .iter()
            .find(|t| t.eq_ignore_ascii_case(table))
        {
            return security(name, &[]);
        }
        return Request::Upload {
            table: Table::parse(table),
            stamp: stamp(query),
        };
    }
    // Legacy remote attendance is a bare `PIN=`; with `type=` (LastPunch, PostVerifyData) or `AuthType=` (server
    // verification) it is something else, which punchd does not implement.
    let other_purpose = query.get("type").is_some() || query.get("AuthType").is_some();
    if let (Some(pin), false) = (query.get("PIN"), other_purpose) {
        return Request::RemoteAtt {
            pin: pin.to_string(),
        };
    }
    Request::Other {
        path: "/iclock/cdata".to_string(),
    }
}

/// `what` = the endpoint or table, then each present qualifier, joined by `/` (`querydata/tabledata/user`).
fn security(base: &str, qualifiers: &[Option<&str>]) -> Request {
    let mut what = base.to_string();
    for qualifier in qualifiers.iter().flatten() {
        what.push('/');
        what.push_str(qualifier);
    }
    Request::SecurityDialect { what }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(path: &str, query: &str) -> Result<(String, Request), RequestError> {
        parse_request("GET", path, &Query::parse(query))
    }

    #[test]
    fn table_names_round_trip() {
        for name in [
            "ATTLOG", "OPERLOG", "ATTPHOTO", "BIODATA", "IDCARD", "ERRORLOG", "options",
        ] {
            assert_eq!(Table::parse(name).as_str(), name);
        }
        assert_eq!(Table::parse("attlog"), Table::AttLog);
        assert_eq!(Table::parse("OPTIONS"), Table::Options);
        assert_eq!(Table::parse("USERINFO"), Table::Other("USERINFO".into()));
        assert_eq!(Table::Other("x".into()).as_str(), "x");
    }

    #[test]
    fn errors() {
        assert_eq!(
            classify("/favicon.ico", "SN=A1"),
            Err(RequestError::NotIclock("/favicon.ico".into()))
        );
        assert_eq!(
            classify("/iclock", "SN=A1"),
            Err(RequestError::NotIclock("/iclock".into()))
        );
        assert_eq!(
            classify("/iclock/cdata", "options=all"),
            Err(RequestError::MissingSn)
        );
        assert_eq!(
            classify("/iclock/cdata", "SN=&options=all"),
            Err(RequestError::InvalidSn(String::new()))
        );
        assert_eq!(
            classify("/iclock/cdata", "SN=A%0A1"),
            Err(RequestError::InvalidSn("A\n1".into()))
        );
        let long = "A".repeat(MAX_SN_LEN + 1);
        assert_eq!(
            classify("/iclock/cdata", &format!("SN={long}")),
            Err(RequestError::InvalidSn(long))
        );
    }

    #[test]
    fn cdata_precedence() {
        assert_eq!(
            classify("/iclock/cdata", "SN=A1&table=ATTLOG&options=all")
                .unwrap()
                .1,
            Request::Handshake(Handshake::default())
        );
        assert_eq!(
            classify("/iclock/cdata", "SN=A1&table=ATTLOG&type=time")
                .unwrap()
                .1,
            Request::ServerTime
        );
        assert_eq!(
            classify("/iclock/cdata", "SN=A1&PIN=7&table=OPERLOG&OpStamp=12")
                .unwrap()
                .1,
            Request::Upload {
                table: Table::OperLog,
                stamp: Some("12".into())
            }
        );
        assert_eq!(
            classify("/iclock/cdata", "SN=A1&table=RemoteAtt&PIN=0042")
                .unwrap()
                .1,
            Request::RemoteAtt { pin: "0042".into() }
        );
        assert_eq!(
            classify("/iclock/cdata", "SN=A1&table=rtlog").unwrap().1,
            Request::SecurityDialect {
                what: "rtlog".into()
            }
        );
        assert_eq!(
            classify("/iclock/cdata", "SN=A1&PIN=7").unwrap().1,
            Request::RemoteAtt { pin: "7".into() }
        );
        for query in [
            "SN=A1",
            "SN=A1&type=LastPunch&PIN=7",
            "SN=A1&AuthType=FP",
            "SN=A1&type=PostVerifyData",
        ] {
            assert_eq!(
                classify("/iclock/cdata", query).unwrap().1,
                Request::Other {
                    path: "/iclock/cdata".into()
                },
                "{query}"
            );
        }
    }

    #[test]
    fn other_endpoints() {
        assert_eq!(
            classify("/iclock/ping/", "SN=A1").unwrap(),
            ("A1".into(), Request::Ping)
        );
        assert_eq!(
            classify("/iclock/getrequest", "SN=A1&INFO=").unwrap().1,
            Request::Poll { info: None }
        );
        assert_eq!(
            classify("/iclock/rtdata", "SN=A1&type=door").unwrap().1,
            Request::SecurityDialect {
                what: "rtdata/door".into()
            }
        );
        assert_eq!(
            classify("/iclock/file", "SN=A1&url=x").unwrap().1,
            Request::Other {
                path: "/iclock/file".into()
            }
        );
        assert_eq!(
            classify("/ICLOCK/CDATA", "SN=A1&type=TIME").unwrap().1,
            Request::ServerTime
        );
    }
}
