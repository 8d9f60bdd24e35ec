//! ATTPHOTO uploads (push.md §7.3). Depends on [`crate::text`].

use chrono::NaiveDateTime;

/// A capture photo uploaded by a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttPhoto {
    /// File name (`PIN=` line, or the legacy query PIN), e.g. `20150701082023-123.jpg`.
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
/// # Errors
/// [`PhotoError`] when the body is empty, names no file or carries bad base64.
pub fn parse_attphoto(body: &[u8], query_pin: Option<&str>) -> Result<AttPhoto, PhotoError> {
    let _ = (body, query_pin);
    todo!()
}
