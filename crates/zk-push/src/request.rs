//! Classifying a device request by endpoint (push.md §1.1). Depends on [`crate::query`] and [`crate::info`].

use crate::info::DeviceInfo;
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
    /// Parse a wire table name, ignoring ASCII case.
    pub fn parse(s: &str) -> Table {
        let _ = s;
        todo!()
    }

    /// The wire spelling.
    pub fn as_str(&self) -> &str {
        todo!()
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

/// Classify a request. `path` is the URL path (`/iclock/cdata`), `query` the parsed query. Returns the SN as
/// sent.
///
/// # Errors
/// [`RequestError`] when the path is not under `/iclock/` or the SN is missing or invalid.
pub fn parse_request(
    method: &str,
    path: &str,
    query: &Query,
) -> Result<(String, Request), RequestError> {
    let _ = (method, path, query);
    todo!()
}
