//! Captured request files in the `samples/push` format, also what `punchd replay` reads. Must not depend on
//! any other module.

/// One captured request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedRequest {
    /// `GET` or `POST` as sent.
    pub method: String,
    /// The request target: `path?query`.
    pub target: String,
    /// Headers as sent, in order.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// The response body from the `--- response ---` section, if present.
    pub expected_response: Option<Vec<u8>>,
}

/// Why a capture could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SampleError {
    /// No request line found.
    #[error("capture has no request line")]
    NoRequestLine,
    /// The request line is not `METHOD target [HTTP/x]`.
    #[error("bad request line: {0:?}")]
    BadRequestLine(String),
}

impl CapturedRequest {
    /// The path part of [`CapturedRequest::target`].
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(self.target.as_str(), |(p, _)| p)
    }

    /// The raw query part of [`CapturedRequest::target`] (empty when absent).
    pub fn raw_query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, q)| q)
    }
}

/// Parse a captured request file.
///
/// # Errors
/// [`SampleError`] when no request line can be found.
pub fn parse_captured_request(bytes: &[u8]) -> Result<CapturedRequest, SampleError> {
    let _ = bytes;
    todo!()
}
