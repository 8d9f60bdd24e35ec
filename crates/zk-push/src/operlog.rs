//! OPERLOG bodies (push.md §7.2), also BIODATA (§7.4), IDCARD and ERRORLOG (§7.5) bodies. Depends on
//! [`crate::text`] and [`crate::attlog`] (for [`LineError`]).

use chrono::NaiveDateTime;

use crate::attlog::{parse_device_time, LineError};
use crate::text::{body_lines, decode_text, trim_field};

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

/// Parse an OPERLOG-style body (push.md §7.2, §7.4, §7.5). One entry per non-empty line; one bad line never
/// loses the others.
///
/// Each line is `<TAG><SP><rest>` (a TAB after the tag is tolerated). Tags are matched ignoring ASCII case, so
/// the 3.x `tabledata` lines (`user`, `biodata`, `biophoto`, `userpic`) parse too; keys are looked up ignoring
/// case and under their 3.x names (`privilege`, `password`, `cardno`, `group`, `verify`). Fields are parsed by
/// key, never by position, except OPLOG which is positional.
///
/// Rejected: a tag that is not letters/digits/`_`; OPLOG with a non-numeric code or a bad time; a USER,
/// template or photo line without a PIN; a template without `TMP=`; a photo without `Content=`; a numeric key
/// (`FID`, `No`, `Index`, `Type`) that does not parse; an unknown tag with no `key=value` field.
pub fn parse_operlog(body: &[u8]) -> Vec<Result<OperlogRecord, LineError>> {
    body_lines(body)
        .map(|(line_no, raw)| {
            let line = decode_text(raw);
            parse_line(&line).map_err(|reason| LineError {
                line_no,
                line: line.clone(),
                reason,
            })
        })
        .collect()
}

fn parse_line(line: &str) -> Result<OperlogRecord, String> {
    let line = line.trim_start();
    let (tag, rest) = line
        .find([' ', '\t'])
        .map_or((line, ""), |at| (&line[..at], &line[at + 1..]));
    if tag.is_empty() || !tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(format!("unrecognised line tag {:?}", truncate(tag)));
    }
    match tag.to_ascii_uppercase().as_str() {
        "OPLOG" => parse_oplog(rest).map(OperlogRecord::Oplog),
        "USER" => parse_user(key_values(rest)).map(OperlogRecord::User),
        "FP" => parse_template(TemplateKind::Finger, key_values(rest)),
        "FACE" => parse_template(TemplateKind::Face, key_values(rest)),
        "FVEIN" => parse_template(TemplateKind::FingerVein, key_values(rest)),
        "BIODATA" => {
            let fields = key_values(rest);
            let bio_type = number_or(&fields, &["Type"], 0)?;
            parse_template(TemplateKind::Bio { bio_type }, fields)
        }
        "USERPIC" => parse_photo(PhotoKind::UserPic, key_values(rest)),
        "BIOPHOTO" => parse_photo(PhotoKind::BioPhoto, key_values(rest)),
        _ => {
            if !rest.contains('=') {
                return Err(format!(
                    "unrecognised line tag {:?} without key=value fields",
                    truncate(tag)
                ));
            }
            let fields = key_values(rest);
            Ok(OperlogRecord::Other {
                tag: tag.to_string(),
                fields,
            })
        }
    }
}

/// Keep error reasons short even for a megabyte of garbage without a newline.
fn truncate(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

/// `Key=Value` fields separated by TAB, split at the first `=` (base64 values end in `=`); empty fields
/// skipped; a field without `=` is kept as a key with an empty value.
///
/// A line with no TAB after its tag but with spaces is read as space-separated fields, the way hand-written
/// examples and some third-party clients send them (`USER PIN=1001 Name=Test User Grp=1`): a token that is
/// `Key=…` (key made of letters, digits, `_` or `~`) starts a field, any other token continues the previous
/// value, so a name keeps its spaces. Lines with TABs are read exactly as before.
fn key_values(rest: &str) -> Vec<(String, String)> {
    if !rest.contains('\t') && rest.contains(' ') {
        return space_key_values(rest);
    }
    rest.split('\t')
        .filter(|field| !trim_field(field).is_empty())
        .map(|field| {
            let (key, value) = field.split_once('=').unwrap_or((field, ""));
            (key.trim().to_string(), value.to_string())
        })
        .collect()
}

/// Whether a space-separated token starts a new `Key=Value` field.
fn starts_field(token: &str) -> bool {
    token.split_once('=').is_some_and(|(key, _)| {
        !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'~')
    })
}

/// Space-separated `Key=Value` fields (see [`key_values`]).
fn space_key_values(rest: &str) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for token in rest.split(' ') {
        if starts_field(token) {
            let (key, value) = token.split_once('=').unwrap_or((token, ""));
            fields.push((key.to_string(), value.to_string()));
        } else if let Some((_, value)) = fields.last_mut() {
            value.push(' ');
            value.push_str(token);
        } else if !trim_field(token).is_empty() {
            fields.push((trim_field(token).to_string(), String::new()));
        }
    }
    for (_, value) in &mut fields {
        let kept = value.trim_end_matches([' ', '\r', '\n', '\0']).len();
        value.truncate(kept);
    }
    fields
}

/// Parse a `table=BIODATA` body (push.md §7.4). Lines in the documented form (`BIODATA Pin=…\tNo=…\tTmp=…`)
/// are read as by [`parse_operlog`]. A line without the tag whose fields are joined by `&`
/// (`Pin=1001&No=0&Tmp=<base64>`, the form-encoded shape some integration guides and clients send) is read as a
/// BIODATA template too: fields are split at `&`, `%XX` escapes in values are decoded (a `+` is kept: it is a
/// base64 character), keys are matched ignoring case as everywhere else (`Pin`, `Tmp`). `Type` defaults to 0.
pub fn parse_biodata(body: &[u8]) -> Vec<Result<OperlogRecord, LineError>> {
    body_lines(body)
        .map(|(line_no, raw)| {
            let line = decode_text(raw);
            let trimmed = line.trim();
            let first = trimmed.split([' ', '\t']).next().unwrap_or("");
            let result = if starts_field(first) && !trimmed.contains('\t') {
                biodata_form(trimmed)
            } else {
                parse_line(&line)
            };
            result.map_err(|reason| LineError {
                line_no,
                line: line.clone(),
                reason,
            })
        })
        .collect()
}

/// `Pin=1001&No=0&Tmp=<base64>` as a BIODATA template.
fn biodata_form(line: &str) -> Result<OperlogRecord, String> {
    let fields: Vec<(String, String)> = line
        .split('&')
        .filter(|field| !trim_field(field).is_empty())
        .map(|field| {
            let (key, value) = field.split_once('=').unwrap_or((field, ""));
            (key.trim().to_string(), percent_decode(trim_field(value)))
        })
        .collect();
    let bio_type = number_or(&fields, &["Type"], 0)?;
    parse_template(TemplateKind::Bio { bio_type }, fields)
}

/// Decode `%XX` escapes (invalid ones are kept as written); `+` stays `+`.
fn percent_decode(value: &str) -> String {
    if !value.contains('%') {
        return value.to_string();
    }
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of the first key matching any of `names` (ASCII case-insensitive).
fn get<'a>(fields: &'a [(String, String)], names: &[&str]) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| names.iter().any(|n| k.eq_ignore_ascii_case(n)))
        .map(|(_, v)| v.as_str())
}

fn text(fields: &[(String, String)], names: &[&str]) -> String {
    get(fields, names).unwrap_or_default().to_string()
}

/// `None` when absent, empty or not a number: informational fields never reject a line.
fn lenient<T: std::str::FromStr>(fields: &[(String, String)], names: &[&str]) -> Option<T> {
    get(fields, names).and_then(|v| trim_field(v).parse().ok())
}

/// `default` when absent or empty; an error when present but not a number (identity fields).
fn number_or(fields: &[(String, String)], names: &[&str], default: u16) -> Result<u16, String> {
    match get(fields, names).map(trim_field) {
        None | Some("") => Ok(default),
        Some(v) => v.parse().map_err(|_| {
            format!(
                "non-numeric {} {:?}",
                names.first().copied().unwrap_or("field"),
                truncate(v)
            )
        }),
    }
}

fn required_pin(fields: &[(String, String)]) -> Result<String, String> {
    let pin = get(fields, &["PIN"]).map(trim_field).unwrap_or_default();
    if pin.is_empty() {
        return Err("missing PIN".to_string());
    }
    Ok(pin.to_string())
}

fn parse_oplog(rest: &str) -> Result<Oplog, String> {
    let mut fields: Vec<&str> = rest.split('\t').collect();
    if fields.len() > 1 && fields.last().is_some_and(|f| f.is_empty()) {
        fields.pop();
    }
    let [op_type, operator, time, objects @ ..] = fields.as_slice() else {
        return Err(format!(
            "OPLOG needs at least 3 fields (code, operator, time), got {}",
            fields.len()
        ));
    };
    let op_type = trim_field(op_type)
        .parse()
        .map_err(|_| format!("non-numeric OPLOG code {:?}", truncate(op_type)))?;
    Ok(Oplog {
        op_type,
        operator: trim_field(operator).to_string(),
        time: parse_device_time(time)?,
        objects: objects.iter().map(|o| (*o).to_string()).collect(),
    })
}

fn parse_user(fields: Vec<(String, String)>) -> Result<UserRecord, String> {
    Ok(UserRecord {
        pin: required_pin(&fields)?,
        name: text(&fields, &["Name"]),
        privilege: lenient(&fields, &["Pri", "Privilege"]),
        password: text(&fields, &["Passwd", "Password"]),
        card: text(&fields, &["Card", "CardNo"]),
        group: text(&fields, &["Grp", "Group"]),
        time_zones: text(&fields, &["TZ"]),
        verify_mode: lenient(&fields, &["Verify", "VerifyMode"]),
        vice_card: text(&fields, &["ViceCard"]),
        fields,
    })
}

fn parse_template(
    kind: TemplateKind,
    fields: Vec<(String, String)>,
) -> Result<OperlogRecord, String> {
    let pin = required_pin(&fields)?;
    let template = get(&fields, &["TMP"])
        .ok_or("template line without TMP=")?
        .to_string();
    let valid = lenient(&fields, &["Valid"]);
    // FP `Valid=3` marks a duress finger (push.md §7.2); BIODATA has its own `Duress=`.
    let duress = get(&fields, &["Duress"]).is_some_and(|d| trim_field(d) == "1")
        || (kind == TemplateKind::Finger && valid == Some(3));
    Ok(OperlogRecord::Template(TemplateRecord {
        no: number_or(&fields, &["FID", "No"], 0)?,
        index: number_or(&fields, &["Index"], 0)?,
        kind,
        pin,
        valid,
        duress,
        major_ver: get(&fields, &["MajorVer"]).map(str::to_string),
        minor_ver: get(&fields, &["MinorVer"]).map(str::to_string),
        format: lenient(&fields, &["Format"]),
        size: lenient(&fields, &["Size"]),
        template,
        fields,
    }))
}

fn parse_photo(kind: PhotoKind, fields: Vec<(String, String)>) -> Result<OperlogRecord, String> {
    Ok(OperlogRecord::Photo(PhotoRecord {
        pin: required_pin(&fields)?,
        file_name: text(&fields, &["FileName"]),
        size: lenient(&fields, &["Size"]),
        content_base64: get(&fields, &["Content"])
            .ok_or("photo line without Content=")?
            .to_string(),
        kind,
        fields,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn kv(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn one(body: &[u8]) -> Result<OperlogRecord, LineError> {
        let mut all = parse_operlog(body);
        assert_eq!(all.len(), 1, "{all:?}");
        all.remove(0)
    }

    fn reason(body: &[u8]) -> String {
        one(body).unwrap_err().reason
    }

    #[test]
    fn oplog_line() {
        assert_eq!(
            one(b"OPLOG 70\t0\t2024-08-05 16:08:50\t1157\t0\t0\t0\n").unwrap(),
            OperlogRecord::Oplog(Oplog {
                op_type: 70,
                operator: "0".into(),
                time: NaiveDate::from_ymd_opt(2024, 8, 5)
                    .unwrap()
                    .and_hms_opt(16, 8, 50)
                    .unwrap(),
                objects: vec!["1157".into(), "0".into(), "0".into(), "0".into()],
            })
        );
    }

    #[test]
    fn user_line_full_and_gbk_name() {
        let (name, _, _) = encoding_rs::GBK.encode("张三");
        let mut body = b"USER PIN=0007\tName=".to_vec();
        body.extend_from_slice(&name);
        body.extend_from_slice(
            b"\tPri=14\tPasswd=123\tCard=[0A0B0C00]\tGrp=1\tTZ=0000000000000000\tVerify=-1\tViceCard=9\r\n",
        );
        let OperlogRecord::User(user) = one(&body).unwrap() else {
            panic!("not a user")
        };
        assert_eq!(user.pin, "0007");
        assert_eq!(user.name, "张三");
        assert_eq!(user.privilege, Some(14));
        assert_eq!(user.password, "123");
        assert_eq!(user.card, "[0A0B0C00]");
        assert_eq!(user.group, "1");
        assert_eq!(user.time_zones, "0000000000000000");
        assert_eq!(user.verify_mode, Some(-1));
        assert_eq!(user.vice_card, "9");
        assert_eq!(user.fields.len(), 9);
    }

    #[test]
    fn fp_face_fvein_biodata() {
        let OperlogRecord::Template(fp) =
            one(b"FP PIN=1\tFID=6\tSize=8\tValid=3\tTMP=QUJDRA==").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (
                fp.kind,
                fp.no,
                fp.valid,
                fp.duress,
                fp.size,
                fp.template.as_str()
            ),
            (TemplateKind::Finger, 6, Some(3), true, Some(8), "QUJDRA==")
        );
        let OperlogRecord::Template(face) =
            one(b"FACE PIN=2\tFID=11\tValid=1\tSize=4\tTMP=AAAA").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (face.kind, face.no, face.duress),
            (TemplateKind::Face, 11, false)
        );
        let OperlogRecord::Template(vein) =
            one(b"FVEIN Pin=3\tFID=1\tIndex=2\tValid=1\tSize=4\tTmp=BBBB").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (
                vein.kind,
                vein.pin.as_str(),
                vein.index,
                vein.template.as_str()
            ),
            (TemplateKind::FingerVein, "3", 2, "BBBB")
        );
        let OperlogRecord::Template(bio) = one(
            b"BIODATA Pin=4\tNo=0\tIndex=1\tValid=1\tDuress=1\tType=9\tMajorVer=39\tMinorVer=1\tFormat=0\tTmp=CCCC",
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(bio.kind, TemplateKind::Bio { bio_type: 9 });
        assert!(bio.duress);
        assert_eq!(bio.major_ver.as_deref(), Some("39"));
        assert_eq!(bio.minor_ver.as_deref(), Some("1"));
        assert_eq!(bio.format, Some(0));
    }

    #[test]
    fn photos_by_key_not_position() {
        let OperlogRecord::Photo(photo) =
            one(b"BIOPHOTO PIN=5\tNo=0\tIndex=0\tFileName=9_5.jpg\tType=9\tSize=4\tContent=/9j/")
                .unwrap()
        else {
            panic!()
        };
        assert_eq!(photo.kind, PhotoKind::BioPhoto);
        assert_eq!(photo.file_name, "9_5.jpg");
        assert_eq!(photo.size, Some(4));
        assert_eq!(photo.content_base64, "/9j/");
        let OperlogRecord::Photo(pic) =
            one(b"USERPIC PIN=5\tFileName=5.jpg\tSize=4\tContent=/9j/").unwrap()
        else {
            panic!()
        };
        assert_eq!(pic.kind, PhotoKind::UserPic);
    }

    #[test]
    fn other_tags_keep_fields() {
        assert_eq!(
            one(b"ERRORLOG ErrCode=D01E0001\tErrMsg=\tDataOrigin=dev\tCmdId=\tAdditional=e30=")
                .unwrap(),
            OperlogRecord::Other {
                tag: "ERRORLOG".into(),
                fields: kv(&[
                    ("ErrCode", "D01E0001"),
                    ("ErrMsg", ""),
                    ("DataOrigin", "dev"),
                    ("CmdId", ""),
                    ("Additional", "e30="),
                ]),
            }
        );
        assert_eq!(
            one(b"WORKCODE PIN=1\tCODE=7\tNAME=x").unwrap(),
            OperlogRecord::Other {
                tag: "WORKCODE".into(),
                fields: kv(&[("PIN", "1"), ("CODE", "7"), ("NAME", "x")]),
            }
        );
    }

    #[test]
    fn rejections() {
        assert_eq!(
            reason(b"OPLOG x\t0\t2024-08-05 16:08:50"),
            "non-numeric OPLOG code \"x\""
        );
        assert_eq!(
            reason(b"OPLOG 4\t14"),
            "OPLOG needs at least 3 fields (code, operator, time), got 2"
        );
        assert_eq!(
            reason(b"OPLOG 4\t14\t1999-01-01 00:00:00"),
            "time \"1999-01-01 00:00:00\" outside years 2000..=2099"
        );
        assert_eq!(reason(b"USER Name=x\tPri=0"), "missing PIN");
        assert_eq!(reason(b"USER PIN=\tName=x"), "missing PIN");
        assert_eq!(
            reason(b"FP PIN=1\tFID=1\tSize=4"),
            "template line without TMP="
        );
        assert_eq!(reason(b"FP PIN=1\tFID=x\tTMP=AA"), "non-numeric FID \"x\"");
        assert_eq!(
            reason(b"USERPIC PIN=1\tFileName=1.jpg"),
            "photo line without Content="
        );
        assert_eq!(
            reason(b"hello world"),
            "unrecognised line tag \"hello\" without key=value fields"
        );
        assert_eq!(
            reason(b"\xFF\xFE=1"),
            "unrecognised line tag \"\u{ff}\u{fe}=1\""
        );
        assert_eq!(
            reason(b"{\"a\":1}"),
            "unrecognised line tag \"{\\\"a\\\":1}\""
        );
    }

    #[test]
    fn space_separated_user_line_keeps_a_name_with_spaces() {
        let OperlogRecord::User(user) =
            one(b"USER PIN=1001 Name=Test User Grp=1 Pri=0 Verify=1 TZ=0\r\n").unwrap()
        else {
            panic!("not a user")
        };
        assert_eq!(user.pin, "1001");
        assert_eq!(user.name, "Test User");
        assert_eq!(user.group, "1");
        assert_eq!(user.privilege, Some(0));
        assert_eq!(user.verify_mode, Some(1));
        assert_eq!(user.time_zones, "0");
        assert_eq!(
            user.fields,
            kv(&[
                ("PIN", "1001"),
                ("Name", "Test User"),
                ("Grp", "1"),
                ("Pri", "0"),
                ("Verify", "1"),
                ("TZ", "0")
            ])
        );
        // A TAB-separated line is read as before: spaces stay inside the value they are in.
        let OperlogRecord::User(tabbed) = one(b"USER PIN=7\tName=A B=C D\tGrp=1").unwrap() else {
            panic!("not a user")
        };
        assert_eq!(
            (tabbed.name.as_str(), tabbed.group.as_str()),
            ("A B=C D", "1")
        );
        // A token like `=)` does not start a field.
        let OperlogRecord::User(odd) = one(b"USER PIN=8 Name=Smile =) x").unwrap() else {
            panic!("not a user")
        };
        assert_eq!(odd.name, "Smile =) x");
    }

    #[test]
    fn biodata_form_shape() {
        let all = parse_biodata(b"Pin=1001&Tmp=QUJD%2BRA==\nPin=1002&No=6&Type=1&Tmp=a+b/\nBIODATA Pin=3\tNo=1\tType=9\tTmp=CC\nPin=&Tmp=AA\n");
        assert_eq!(all.len(), 4);
        let OperlogRecord::Template(a) = all[0].clone().unwrap() else {
            panic!()
        };
        assert_eq!(
            (a.kind, a.pin.as_str(), a.no, a.template.as_str()),
            (TemplateKind::Bio { bio_type: 0 }, "1001", 0, "QUJD+RA==")
        );
        let OperlogRecord::Template(b) = all[1].clone().unwrap() else {
            panic!()
        };
        assert_eq!(
            (b.kind, b.pin.as_str(), b.no, b.template.as_str()),
            (TemplateKind::Bio { bio_type: 1 }, "1002", 6, "a+b/")
        );
        let OperlogRecord::Template(c) = all[2].clone().unwrap() else {
            panic!()
        };
        assert_eq!(
            (c.kind, c.pin.as_str()),
            (TemplateKind::Bio { bio_type: 9 }, "3")
        );
        assert_eq!(all[3].as_ref().unwrap_err().reason, "missing PIN");
    }

    #[test]
    fn mixed_body_one_bad_line() {
        let out = parse_operlog(
            b"OPLOG 30\t0\t2024-08-05 12:48:25\t1160\t0\t0\t0\nUSER PIN=1160\tName=A\nFP PIN=1160\n\nOPLOG 6\t0\t2024-08-05 12:48:25\t1160\t0\t0\t0\n",
        );
        assert_eq!(out.len(), 4);
        assert!(matches!(out[0], Ok(OperlogRecord::Oplog(ref o)) if o.op_type == 30));
        assert!(matches!(out[1], Ok(OperlogRecord::User(ref u)) if u.name == "A"));
        assert_eq!(out[2].as_ref().unwrap_err().line_no, 3);
        assert!(matches!(out[3], Ok(OperlogRecord::Oplog(ref o)) if o.op_type == 6));
        assert!(parse_operlog(b"").is_empty());
    }
}
