//! Captured request files in the `samples/push` format (samples/push/INDEX.md), also what `punchd replay`
//! reads. Must not depend on any other module.
//!
//! A capture is `#` provenance lines, a `--- request ---` line, the request line, headers, a blank line, the
//! body bytes, and optionally a `--- response ---` line followed by the response (a full HTTP response or just
//! its body). A plain raw HTTP request without any marker is accepted too.
//!
//! Body length: Content-Length values printed in vendor documents are often wrong (the example bodies were
//! edited after the header was printed), and the sample format puts a newline before `--- response ---`. So a
//! Content-Length is trusted only when it equals the bytes present or the bytes present minus that final
//! newline; otherwise every byte present is the body. In a plain raw request (no markers) a Content-Length no
//! larger than the bytes present is always trusted, as an HTTP server would.

/// One captured request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedRequest {
    /// `GET` or `POST` as sent.
    pub method: String,
    /// The request target: `path?query`, or an absolute URL as some documents print it.
    pub target: String,
    /// Headers as sent, in order, names and values trimmed.
    pub headers: Vec<(String, String)>,
    /// Body bytes (see the module doc for how the length is chosen).
    pub body: Vec<u8>,
    /// The response body from the `--- response ---` section, if present: the part after the response headers
    /// when the section starts with `HTTP/`, without the file's final newline (see the module doc).
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
    /// The path part of [`CapturedRequest::target`]; for an absolute URL (`http://host/iclock/…`) the scheme and
    /// authority are removed.
    pub fn path(&self) -> &str {
        let without_query = self
            .target
            .split_once('?')
            .map_or(self.target.as_str(), |(path, _)| path);
        match without_query.find("://") {
            Some(scheme_end) => {
                let after_scheme = &without_query[scheme_end + 3..];
                after_scheme
                    .find('/')
                    .map_or("/", |slash| &after_scheme[slash..])
            }
            None => without_query,
        }
    }

    /// The raw query part of [`CapturedRequest::target`] (empty when absent).
    pub fn raw_query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, query)| query)
    }

    /// The target a terminal would send: the captured one byte for byte (raw spaces kept), with the samples'
    /// `<root>` placeholder for the terminal's root URL made `/iclock/` (push.md §1).
    pub fn terminal_target(&self) -> String {
        match self.target.strip_prefix("<root>") {
            Some(rest) => format!("/iclock/{rest}"),
            None => self.target.clone(),
        }
    }

    /// The request as a terminal puts it on the wire: the request line with [`Self::terminal_target`], the
    /// captured headers except `Content-Length`, `Transfer-Encoding`, `Host` and `Connection`, then
    /// `Host: <host>`, the real `Content-Length`, `Connection: close` (as att firmware sends), and the body.
    pub fn to_terminal_bytes(&self, host: &str) -> Vec<u8> {
        let mut request = format!(
            "{} {} HTTP/1.1\r\nHost: {host}\r\n",
            self.method,
            self.terminal_target()
        )
        .into_bytes();
        for (name, value) in &self.headers {
            if ["content-length", "transfer-encoding", "host", "connection"]
                .iter()
                .any(|h| name.eq_ignore_ascii_case(h))
            {
                continue;
            }
            request.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        request.extend_from_slice(
            format!(
                "Content-Length: {}\r\nConnection: close\r\n\r\n",
                self.body.len()
            )
            .as_bytes(),
        );
        request.extend_from_slice(&self.body);
        request
    }

    /// The value of the first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

const REQUEST_MARKER: &[u8] = b"--- request ---";
const RESPONSE_MARKER: &[u8] = b"--- response ---";

/// Parse a captured request file.
///
/// # Errors
/// [`SampleError::NoRequestLine`] when nothing but comments and blank lines is present,
/// [`SampleError::BadRequestLine`] when the first line is not `METHOD target [HTTP/x]`.
pub fn parse_captured_request(bytes: &[u8]) -> Result<CapturedRequest, SampleError> {
    let lines = split_lines_keep_offsets(bytes);
    let has_markers = lines
        .iter()
        .any(|&line| trim_cr(line_at(bytes, line)) == REQUEST_MARKER);

    // Find where the request starts.
    let mut idx = 0;
    if has_markers {
        while idx < lines.len() && trim_cr(line_at(bytes, lines[idx])) != REQUEST_MARKER {
            idx += 1;
        }
        idx += 1;
    }
    while idx < lines.len() {
        let line = trim_cr(line_at(bytes, lines[idx]));
        let is_comment = !has_markers && line.starts_with(b"#");
        if line.is_empty() || is_comment {
            idx += 1;
        } else {
            break;
        }
    }
    let Some(&request_line) = lines.get(idx) else {
        return Err(SampleError::NoRequestLine);
    };
    let (method, target) = parse_request_line(trim_cr(line_at(bytes, request_line)))?;
    idx += 1;

    // Where the request ends: the response marker line, or the end of the bytes.
    let response_marker = if has_markers {
        lines[idx..]
            .iter()
            .position(|&l| trim_cr(line_at(bytes, l)) == RESPONSE_MARKER)
            .map(|pos| idx + pos)
    } else {
        None
    };
    let request_end = response_marker.map_or(bytes.len(), |m| lines[m].0);

    let (headers, body_start) = parse_headers(bytes, &lines, idx, request_end);
    let available = bytes.get(body_start..request_end).unwrap_or_default();
    let body = choose_body(available, content_length(&headers), has_markers).to_vec();

    let expected_response = response_marker.map(|m| {
        let start = lines.get(m + 1).map_or(bytes.len(), |l| l.0);
        parse_response(bytes.get(start..).unwrap_or_default())
    });

    Ok(CapturedRequest {
        method,
        target,
        headers,
        body,
        expected_response,
    })
}

/// `(start, end)` of every line, `end` excluding the `\n`.
fn split_lines_keep_offsets(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut lines = Vec::new();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' {
            lines.push((start, i));
            start = i + 1;
        }
    }
    if start < bytes.len() {
        lines.push((start, bytes.len()));
    }
    lines
}

fn line_at(bytes: &[u8], (start, end): (usize, usize)) -> &[u8] {
    bytes.get(start..end).unwrap_or_default()
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// `METHOD target [HTTP/x]`; the target may contain spaces in printed documents (`INFO= Ver 6.8.0, 2, …`).
fn parse_request_line(line: &[u8]) -> Result<(String, String), SampleError> {
    let text = String::from_utf8_lossy(line);
    let text = text.trim();
    // Keep the error short even when the "request line" is a megabyte of garbage.
    let bad = || SampleError::BadRequestLine(text.chars().take(100).collect());
    let (method, rest) = text.split_once(' ').ok_or_else(bad)?;
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(bad());
    }
    let rest = rest.trim();
    let target = match rest.rsplit_once(' ') {
        Some((target, version)) if version.starts_with("HTTP/") => target.trim_end(),
        _ => rest,
    };
    if target.is_empty() {
        return Err(bad());
    }
    Ok((method.to_string(), target.to_string()))
}

/// Headers from line `idx` on, up to a blank line; a line that is not `Token: value` ends the headers without
/// being consumed (some printed examples have no blank line before the body). Returns the headers and the
/// byte offset where the body starts.
fn parse_headers(
    bytes: &[u8],
    lines: &[(usize, usize)],
    mut idx: usize,
    request_end: usize,
) -> (Vec<(String, String)>, usize) {
    let mut headers = Vec::new();
    while let Some(&line) = lines.get(idx) {
        if line.0 >= request_end {
            return (headers, request_end);
        }
        let text = trim_cr(line_at(bytes, line));
        if text.is_empty() {
            let next = lines.get(idx + 1).map_or(request_end, |l| l.0);
            return (headers, next.min(request_end));
        }
        match as_header(text) {
            Some(header) => headers.push(header),
            None => return (headers, line.0),
        }
        idx += 1;
    }
    (headers, request_end)
}

fn as_header(line: &[u8]) -> Option<(String, String)> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = line.get(..colon)?;
    let is_token = !name.is_empty()
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b) || b == b' ');
    // "User - Agent" appears in one retyped capture: tolerate inner spaces but not tabs or `=`.
    if !is_token || name.first() == Some(&b' ') {
        return None;
    }
    let value = String::from_utf8_lossy(line.get(colon + 1..)?);
    let name = String::from_utf8_lossy(name).replace(' ', "");
    Some((name, value.trim().to_string()))
}

fn content_length(headers: &[(String, String)]) -> Option<usize> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("Content-Length"))
        .and_then(|(_, v)| v.trim().parse().ok())
}

fn choose_body(available: &[u8], content_length: Option<usize>, has_markers: bool) -> &[u8] {
    match content_length {
        Some(n) if n == available.len() => available,
        Some(n)
            if has_markers
                && n.checked_add(1) == Some(available.len())
                && available.ends_with(b"\n") =>
        {
            &available[..n]
        }
        Some(n) if !has_markers && n < available.len() => &available[..n],
        _ => available,
    }
}

fn parse_response(section: &[u8]) -> Vec<u8> {
    if !section.starts_with(b"HTTP/") {
        return strip_one_newline(section).to_vec();
    }
    let lines = split_lines_keep_offsets(section);
    let (headers, body_start) = parse_headers(section, &lines, 1, section.len());
    let available = section.get(body_start..).unwrap_or_default();
    match content_length(&headers) {
        Some(n) if n == available.len() => available.to_vec(),
        _ => strip_one_newline(available).to_vec(),
    }
}

fn strip_one_newline(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    bytes.strip_suffix(b"\r").unwrap_or(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_raw_request_with_content_length() {
        let raw =
            b"POST /iclock/cdata?SN=A1&table=ATTLOG HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcdEXTRA";
        let req = parse_captured_request(raw).unwrap();
        assert_eq!(req.method, "POST");
        assert_eq!(req.target, "/iclock/cdata?SN=A1&table=ATTLOG");
        assert_eq!(req.path(), "/iclock/cdata");
        assert_eq!(req.raw_query(), "SN=A1&table=ATTLOG");
        assert_eq!(req.header("content-length"), Some("4"));
        assert_eq!(req.body, b"abcd");
        assert_eq!(req.expected_response, None);
    }

    #[test]
    fn terminal_bytes_keep_the_target_and_fix_length_and_connection() {
        let raw = b"GET <root>getrequest?SN=A1&INFO=Ver 6.8 HTTP/1.1\r\nHost: old\r\nUser-Agent: iClock Proxy/1.09\r\nContent-Length: 99\r\nConnection: keep-alive\r\n\r\nxy";
        let req = parse_captured_request(raw).unwrap();
        assert_eq!(
            req.terminal_target(),
            "/iclock/getrequest?SN=A1&INFO=Ver 6.8"
        );
        assert_eq!(
            req.to_terminal_bytes("127.0.0.1:8080"),
            b"GET /iclock/getrequest?SN=A1&INFO=Ver 6.8 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: iClock Proxy/1.09\r\nContent-Length: 2\r\nConnection: close\r\n\r\nxy".to_vec()
        );
    }

    #[test]
    fn marker_file_body_and_response() {
        let raw = b"# c\n--- request ---\nPOST /iclock/cdata?SN=A1 HTTP/1.1\r\nContent-Length: 3\r\n\r\na\tb\n--- response ---\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nOK:1\n";
        let req = parse_captured_request(raw).unwrap();
        assert_eq!(req.body, b"a\tb");
        assert_eq!(req.expected_response.as_deref(), Some(&b"OK:1"[..]));
    }

    #[test]
    fn wrong_content_length_keeps_every_byte() {
        let raw = b"--- request ---\nPOST /x HTTP/1.1\r\nContent-Length: 2\r\n\r\nabcdef\n--- response ---\nOK\n";
        let req = parse_captured_request(raw).unwrap();
        assert_eq!(req.body, b"abcdef\n");
        assert_eq!(req.expected_response.as_deref(), Some(&b"OK"[..]));
    }

    #[test]
    fn body_without_blank_line_and_absolute_target() {
        let raw = b"--- request ---\nGET http://host/iclock/getrequest?SN=1&INFO= a, b\n";
        let req = parse_captured_request(raw).unwrap();
        assert_eq!(req.target, "http://host/iclock/getrequest?SN=1&INFO= a, b");
        assert_eq!(req.path(), "/iclock/getrequest");
        assert_eq!(req.body, b"");
        let raw = b"--- request ---\nPOST /iclock/devicecmd?SN=1\nID=1\nContent=x: y\n";
        let req = parse_captured_request(raw).unwrap();
        assert!(req.headers.is_empty());
        assert_eq!(req.body, b"ID=1\nContent=x: y\n");
    }

    #[test]
    fn errors() {
        assert_eq!(parse_captured_request(b""), Err(SampleError::NoRequestLine));
        assert_eq!(
            parse_captured_request(b"# only a comment\n\n"),
            Err(SampleError::NoRequestLine)
        );
        assert_eq!(
            parse_captured_request(b"hello\n"),
            Err(SampleError::BadRequestLine("hello".to_string()))
        );
        let long = "x".repeat(500);
        assert_eq!(
            parse_captured_request(long.as_bytes()),
            Err(SampleError::BadRequestLine("x".repeat(100)))
        );
        assert_eq!(
            parse_captured_request(b"get /x\n"),
            Err(SampleError::BadRequestLine("get /x".to_string()))
        );
    }
}
