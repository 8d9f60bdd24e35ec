//! OPERLOG bodies (push.md §7.2), also BIODATA (§7.4), IDCARD and ERRORLOG (§7.5) bodies. Depends on
//! [`crate::text`] and [`crate::attlog`] (for [`LineError`]).

use chrono::NaiveDateTime;

use crate::attlog::LineError;

/// An `OPLOG` line: an operation done on the device (push.md §7.2, appendix C).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Oplog {
    /// Operation code (appendix C).
    pub op_type: u16,
    /// Who did it (admin PIN, or 0).
    pub operator: String,
    /// Terminal local wall time, as sent.
    pub time: NaiveDateTime,
    /// The operation's objects (`obj1`..`obj4`) as sent.
    pub objects: Vec<String>,
}

/// A `USER` line (push.md §7.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// `PIN=`.
    pub pin: String,
    /// `Name=`.
    pub name: String,
    /// `Pri=`: 0 user, 14 admin, …
    pub privilege: Option<u16>,
    /// `Passwd=`.
    pub password: String,
    /// `Card=`.
    pub card: String,
    /// `Grp=`.
    pub group: String,
    /// `TZ=`.
    pub time_zones: String,
    /// `Verify=`.
    pub verify_mode: Option<i32>,
    /// `ViceCard=`.
    pub vice_card: String,
    /// Every `key=value` as sent.
    pub fields: Vec<(String, String)>,
}

/// Which biometric a template is (push.md §7.2, §7.4, appendix E).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateKind {
    /// `FP` line.
    Finger,
    /// `FACE` line.
    Face,
    /// `FVEIN` line.
    FingerVein,
    /// `BIODATA` line with its `Type=`.
    Bio {
        /// Biometric type index (appendix E).
        bio_type: u16,
    },
}

/// A template line (`FP`, `FACE`, `FVEIN`, `BIODATA`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateRecord {
    /// Which biometric.
    pub kind: TemplateKind,
    /// `PIN=`.
    pub pin: String,
    /// `FID=` or `No=`.
    pub no: u16,
    /// `Index=`.
    pub index: u16,
    /// `Valid=`.
    pub valid: Option<u16>,
    /// `Duress=1`.
    pub duress: bool,
    /// `MajorVer=`.
    pub major_ver: Option<String>,
    /// `MinorVer=`.
    pub minor_ver: Option<String>,
    /// `Format=`.
    pub format: Option<u16>,
    /// `Size=`, bytes.
    pub size: Option<usize>,
    /// `TMP=` base64 as sent.
    pub template: String,
    /// Every `key=value` as sent.
    pub fields: Vec<(String, String)>,
}

/// Which photo a photo line is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhotoKind {
    /// `USERPIC`: the user's display photo.
    UserPic,
    /// `BIOPHOTO`: the photo a face template was made from.
    BioPhoto,
}

/// A photo line (`USERPIC`, `BIOPHOTO`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhotoRecord {
    /// Which photo.
    pub kind: PhotoKind,
    /// `PIN=`.
    pub pin: String,
    /// `FileName=`.
    pub file_name: String,
    /// `Size=`, bytes.
    pub size: Option<usize>,
    /// `Content=` base64 as sent.
    pub content_base64: String,
    /// Every `key=value` as sent.
    pub fields: Vec<(String, String)>,
}

/// One line of an OPERLOG-style body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperlogRecord {
    /// `OPLOG`.
    Oplog(Oplog),
    /// `USER`.
    User(UserRecord),
    /// `FP`, `FACE`, `FVEIN`, `BIODATA`.
    Template(TemplateRecord),
    /// `USERPIC`, `BIOPHOTO`.
    Photo(PhotoRecord),
    /// IDCARD, ERRORLOG, WORKCODE and any unknown tag: kept as key=value fields.
    Other {
        /// The line's tag as sent, e.g. `IDCARD`.
        tag: String,
        /// Every `key=value` as sent.
        fields: Vec<(String, String)>,
    },
}

/// Parse an OPERLOG-style body. One entry per non-empty line; one bad line never loses the others.
pub fn parse_operlog(body: &[u8]) -> Vec<Result<OperlogRecord, LineError>> {
    let _ = body;
    todo!()
}
