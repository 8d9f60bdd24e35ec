//! The `INFO=` device status sent on `getrequest` (push.md §6). Must not depend on any other module.

/// Device status sent on `getrequest?INFO=` (push.md §6): comma-separated and positional,
/// `fw,users,fps,attlogs,ip,fp alg,face alg,faces per enrolment,faces,support bits[,…]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceInfo {
    /// Firmware version (field 1), e.g. `Ver 2.0.12-20150625`.
    pub firmware: Option<String>,
    /// Number of enrolled users (field 2).
    pub user_count: Option<i64>,
    /// Number of fingerprint templates (field 3).
    pub fp_count: Option<i64>,
    /// Number of attendance log records held by the device (field 4).
    pub attlog_count: Option<i64>,
    /// Device IP address as the device sees it (field 5); behind NAT this is the only real address.
    pub ip: Option<String>,
    /// Fingerprint algorithm version (field 6), e.g. `10`.
    pub fp_alg_version: Option<String>,
    /// Face algorithm version (field 7), e.g. `7`; `-1` on devices without face.
    pub face_alg_version: Option<String>,
    /// Face templates needed per enrolment (field 8), e.g. `15`.
    pub faces_per_enrolment: Option<i64>,
    /// Number of face templates (field 9).
    pub face_count: Option<i64>,
    /// Support bits (field 10): fingerprint, face, user photo, comparison photo, visible-light face.
    pub support_flags: Option<String>,
    /// Fields 11.. as sent (cards, user photos, att photos on newer firmware).
    pub extra: Vec<String>,
    /// The value as sent.
    pub raw: String,
}

/// Parse an `INFO=` value (already percent-decoded). Never fails: split on `,` only, fields trimmed, a field
/// that is empty or does not parse is `None`.
///
/// SPEC-US firmware (`Ver 6.8.0(build640)`) sends nine fields; the ninth there is the support-bit string
/// (`101`), not a face count, so with exactly nine fields the ninth goes to
/// [`DeviceInfo::support_flags`] (push.md §6 example; an inference, the raw value is kept).
pub fn parse_info(s: &str) -> DeviceInfo {
    let fields: Vec<&str> = s.split(',').map(str::trim).collect();
    let text = |idx: usize| {
        fields
            .get(idx)
            .filter(|f| !f.is_empty())
            .map(|f| (*f).to_string())
    };
    let number = |idx: usize| fields.get(idx).and_then(|f| f.parse::<i64>().ok());
    let nine_fields = fields.len() == 9;
    DeviceInfo {
        firmware: text(0),
        user_count: number(1),
        fp_count: number(2),
        attlog_count: number(3),
        ip: text(4),
        fp_alg_version: text(5),
        face_alg_version: text(6),
        faces_per_enrolment: number(7),
        face_count: if nine_fields { None } else { number(8) },
        support_flags: if nine_fields { text(8) } else { text(9) },
        extra: fields.iter().skip(10).map(|f| (*f).to_string()).collect(),
        raw: s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_fields() {
        let raw = "Ver 2.0.12-20150625,0,0,0,192.168.16.27,10,7,15,0,111";
        assert_eq!(
            parse_info(raw),
            DeviceInfo {
                firmware: Some("Ver 2.0.12-20150625".into()),
                user_count: Some(0),
                fp_count: Some(0),
                attlog_count: Some(0),
                ip: Some("192.168.16.27".into()),
                fp_alg_version: Some("10".into()),
                face_alg_version: Some("7".into()),
                faces_per_enrolment: Some(15),
                face_count: Some(0),
                support_flags: Some("111".into()),
                extra: vec![],
                raw: raw.into(),
            }
        );
    }

    #[test]
    fn thirteen_fields_keep_extra() {
        let info = parse_info("Ver 8,12,3,4500,10.0.0.9,10,7,15,2,11111,7,8,9");
        assert_eq!(info.attlog_count, Some(4500));
        assert_eq!(info.face_count, Some(2));
        assert_eq!(info.support_flags.as_deref(), Some("11111"));
        assert_eq!(info.extra, vec!["7", "8", "9"]);
    }

    #[test]
    fn garbage_and_empty() {
        let info = parse_info("");
        assert_eq!(info.firmware, None);
        assert_eq!(info.user_count, None);
        let info = parse_info("fw,x,,12abc");
        assert_eq!(info.firmware.as_deref(), Some("fw"));
        assert_eq!(info.user_count, None);
        assert_eq!(info.fp_count, None);
        assert_eq!(info.attlog_count, None);
        assert_eq!(info.ip, None);
    }
}
