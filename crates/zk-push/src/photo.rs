//! ATTPHOTO uploads (push.md §7.3). Depends on [`crate::text`].

use chrono::NaiveDateTime;

use crate::text::{decode_text, trim_field};

/// A capture photo uploaded by a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttPhoto {
    /// File name (`PIN=` line, or the legacy query PIN), e.g. `20150731103012-123.jpg`.
    pub file_name: String,
    /// The user PIN, when the file name carries one.
    pub pin: Option<String>,
    /// Terminal local wall time the photo was taken, from the file name.
    pub taken_at: Option<NaiveDateTime>,
    /// `SN=` line.
    pub sn: Option<String>,
    /// `size=` line, bytes.
    pub declared_size: Option<usize>,
    /// `CMD=` line (`uploadphoto`, `realupload`).
    pub cmd: Option<String>,
    /// The JPEG bytes.
    pub jpeg: Vec<u8>,
}

/// Why a photo body could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhotoError {
    /// The body is empty.
    #[error("empty photo body")]
    Empty,
    /// No file name in the body nor in the query.
    #[error("photo has no file name")]
    MissingFileName,
    /// The photo is declared base64 but does not decode.
    #[error("photo base64 does not decode: {0}")]
    Base64(String),
}

/// Parse a photo body: header lines, `CMD=uploadphoto|realupload`, NUL, JPEG (or base64 when
/// `ATTPHOTOBase64=1`). `query_pin` is the legacy fdata `PIN=` query value, used as file name when the body has
/// no `PIN=` line.
///
/// The header ends at the first NUL byte; without a NUL, at the end of the `CMD=` line; a body that starts
/// with the JPEG marker `FF D8` has no header at all. The payload is taken as raw JPEG when it starts with
/// `FF D8`; as base64 when it consists only of base64 characters (and whitespace); otherwise it is kept as
/// sent, so nothing a device uploads is thrown away.
///
/// The file name says who and when (push.md §7.3): `<YYYYMMDDHHMMSS>-<PIN>.jpg` (verified),
/// `<YYYYMMDDHHMMSS>.jpg` (failed verification, no PIN), pid firmware `<time>-<type>-<PIN>-<IDNum>.jpg`.
///
/// # Errors
/// [`PhotoError::Empty`] for an empty body, [`PhotoError::MissingFileName`] when neither the body nor the
/// query names the file, [`PhotoError::Base64`] when a payload made of base64 characters does not decode.
pub fn parse_attphoto(body: &[u8], query_pin: Option<&str>) -> Result<AttPhoto, PhotoError> {
    if body.is_empty() {
        return Err(PhotoError::Empty);
    }
    let (header, payload) = split_header(body);
    let header = decode_text(header);
    let mut file_name = None;
    let mut sn = None;
    let mut declared_size = None;
    let mut cmd = None;
    for line in header.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = trim_field(value);
        match key.trim().to_ascii_lowercase().as_str() {
            "pin" if file_name.is_none() => file_name = Some(value.to_string()),
            "sn" if sn.is_none() => sn = Some(value.to_string()),
            "size" if declared_size.is_none() => declared_size = value.parse().ok(),
            "cmd" if cmd.is_none() => cmd = Some(value.to_string()),
            _ => {}
        }
    }
    let file_name = file_name
        .filter(|name| !name.is_empty())
        .or_else(|| {
            query_pin
                .map(trim_field)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
        })
        .ok_or(PhotoError::MissingFileName)?;
    let (taken_at, pin) = parse_file_name(&file_name);
    Ok(AttPhoto {
        file_name,
        pin,
        taken_at,
        sn,
        declared_size,
        cmd,
        jpeg: decode_payload(payload)?,
    })
}

const JPEG_MAGIC: &[u8] = &[0xFF, 0xD8];

fn split_header(body: &[u8]) -> (&[u8], &[u8]) {
    if body.starts_with(JPEG_MAGIC) {
        return (&[], body);
    }
    if let Some(nul) = body.iter().position(|&b| b == 0) {
        return (&body[..nul], &body[nul + 1..]);
    }
    // No NUL: the header runs to the end of the `CMD=` line.
    let mut offset = 0;
    for line in body.split_inclusive(|&b| b == b'\n') {
        offset += line.len();
        if line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"CMD=") {
            return (&body[..offset], &body[offset..]);
        }
    }
    (body, &[])
}

fn decode_payload(payload: &[u8]) -> Result<Vec<u8>, PhotoError> {
    use base64::Engine as _;
    let is_base64_char = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=');
    let compact: Vec<u8> = payload
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if payload.starts_with(JPEG_MAGIC) || compact.is_empty() || !compact.iter().all(is_base64_char)
    {
        return Ok(payload.to_vec());
    }
    base64::engine::general_purpose::STANDARD
        .decode(&compact)
        .map_err(|e| PhotoError::Base64(e.to_string()))
}

/// `(taken_at, pin)` from `<time>[-<PIN>].jpg` or `<time>-<type>-<PIN>-<IDNum>.jpg`.
fn parse_file_name(file_name: &str) -> (Option<NaiveDateTime>, Option<String>) {
    let stem = match file_name.rsplit_once('.') {
        Some((stem, ext))
            if ext.eq_ignore_ascii_case("jpg") || ext.eq_ignore_ascii_case("jpeg") =>
        {
            stem
        }
        _ => file_name,
    };
    let parts: Vec<&str> = stem.split('-').collect();
    let taken_at = parts
        .first()
        .filter(|t| t.len() == 14)
        .and_then(|t| NaiveDateTime::parse_from_str(t, "%Y%m%d%H%M%S").ok());
    let pin = match parts.as_slice() {
        [_, pin] | [_, _, pin, _] => Some(pin.to_string()).filter(|p| !p.is_empty()),
        _ => None,
    };
    (taken_at, pin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn jpeg() -> Vec<u8> {
        vec![
            0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00, 0xFF, 0xD9,
        ]
    }

    #[test]
    fn framed_raw_jpeg() {
        let mut body =
            b"PIN=20150731103012-123.jpg\nSN=0316144680030\nsize=13\nCMD=uploadphoto\0".to_vec();
        body.extend_from_slice(&jpeg());
        let photo = parse_attphoto(&body, None).unwrap();
        assert_eq!(
            photo,
            AttPhoto {
                file_name: "20150731103012-123.jpg".into(),
                pin: Some("123".into()),
                taken_at: Some(
                    NaiveDate::from_ymd_opt(2015, 7, 31)
                        .unwrap()
                        .and_hms_opt(10, 30, 12)
                        .unwrap()
                ),
                sn: Some("0316144680030".into()),
                declared_size: Some(13),
                cmd: Some("uploadphoto".into()),
                jpeg: jpeg(),
            }
        );
    }

    #[test]
    fn base64_payload_and_failed_verification_name() {
        let body = b"PIN=20150731103012.jpg\r\nCMD=realupload\0/9j/4A==\n";
        let photo = parse_attphoto(body, None).unwrap();
        assert_eq!(photo.pin, None);
        assert!(photo.taken_at.is_some());
        assert_eq!(photo.cmd.as_deref(), Some("realupload"));
        assert_eq!(photo.jpeg, vec![0xFF, 0xD8, 0xFF, 0xE0]);
    }

    #[test]
    fn pid_name_and_query_pin() {
        let mut body = b"SN=1\nCMD=uploadphoto\0".to_vec();
        body.extend_from_slice(&jpeg());
        let photo = parse_attphoto(&body, Some("20240102030405-0-77-ID9.jpg")).unwrap();
        assert_eq!(photo.file_name, "20240102030405-0-77-ID9.jpg");
        assert_eq!(photo.pin.as_deref(), Some("77"));
        assert_eq!(photo.jpeg, jpeg());
        // Body without header at all.
        let photo = parse_attphoto(&jpeg(), Some("20081119172119-4.jpg")).unwrap();
        assert_eq!(photo.pin.as_deref(), Some("4"));
        assert_eq!(photo.sn, None);
        assert_eq!(photo.jpeg, jpeg());
    }

    #[test]
    fn no_nul_splits_after_cmd_line() {
        let photo = parse_attphoto(b"PIN=x.jpg\nCMD=uploadphoto\nQUJD\n", None).unwrap();
        assert_eq!(photo.jpeg, b"ABC");
        assert_eq!((photo.pin, photo.taken_at), (None, None));
    }

    #[test]
    fn errors_and_odd_payloads() {
        assert_eq!(parse_attphoto(b"", None), Err(PhotoError::Empty));
        assert_eq!(
            parse_attphoto(b"SN=1\nCMD=uploadphoto\0", None),
            Err(PhotoError::MissingFileName)
        );
        assert_eq!(
            parse_attphoto(b"PIN=\nCMD=uploadphoto\0", Some("  ")),
            Err(PhotoError::MissingFileName)
        );
        assert!(matches!(
            parse_attphoto(b"PIN=a.jpg\nCMD=uploadphoto\0QUJDR", None),
            Err(PhotoError::Base64(_))
        ));
        // Not JPEG and not base64: kept as sent.
        let photo = parse_attphoto(b"PIN=a.jpg\nCMD=uploadphoto\0[omitted]\n", None).unwrap();
        assert_eq!(photo.jpeg, b"[omitted]\n");
    }
}
