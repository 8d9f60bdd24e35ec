//! Command results, `POST /iclock/devicecmd` (push.md §9). Depends on [`crate::text`] and [`crate::attlog`]
//! (for [`LineError`]).

use crate::attlog::LineError;
use crate::text::{decode_text, trim_field};

/// The result of one command, as the device reported it (push.md §9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandResult {
    /// `ID=`: the command id the server sent.
    pub id: String,
    /// `Return=`: 0 success, negative error (see [`describe_return_code`]).
    pub return_code: i64,
    /// `CMD=`: the command word as echoed.
    pub cmd: String,
    /// Every other key (INFO lines, AttlogCount, …) as sent.
    pub fields: Vec<(String, String)>,
    /// `Content=` of Shell/GetFile results (at most the `max_content` bytes [`for_each_command_result`] was
    /// given; all of it from [`parse_command_results`]).
    pub content: Option<Vec<u8>>,
    /// The length of the whole `Content=` in bytes (0 without one); more than `content.len()` when clipped.
    pub content_bytes: usize,
    /// Fields beyond [`MAX_FIELDS_PER_RESULT`] that were read but not kept in `fields`.
    pub dropped_fields: usize,
}

/// At most this many fields (`Key=Value` pairs other than `ID`, `Return`, `CMD`) are kept per result; the rest
/// are only counted in [`CommandResult::dropped_fields`]. An INFO result carries about 30, so a body of millions
/// of `Key=Value` lines after one `ID=` line costs no more than this many.
pub const MAX_FIELDS_PER_RESULT: usize = 1_024;

/// Parse a devicecmd body (push.md §9). Several results per body; INFO/Shell/GetFile multi-line forms; one bad
/// result never loses the others.
///
/// A result starts at a line beginning with `ID=`. If that line contains `&` it is the one-line form
/// `ID=..&Return=..&CMD=..[&Key=Value…]`; otherwise it is the newline form (`ID=`, `SN=`, `Return=`, `CMD=`,
/// `FILENAME=` on separate lines). Following lines that do not start with `ID=` belong to the same result
/// (the INFO form puts one `Key=Value` per line). A `Content=` key swallows the rest of the body as raw bytes,
/// as the vendor server does. A piece without `=` (`&transaction&` in acc ACCOUNT results) is kept as a key with
/// an empty value.
///
/// Rejected: a result without a non-empty `ID`, or without a numeric `Return`; a line before the first `ID=`.
/// The error names the result's first line.
pub fn parse_command_results(body: &[u8]) -> Vec<Result<CommandResult, LineError>> {
    let mut results = Vec::new();
    for_each_command_result(body, usize::MAX, |result| results.push(result));
    results
}

/// [`parse_command_results`] one result at a time: `each` is called with every result (or error) in body order
/// as soon as it is complete, so a caller that keeps only what it needs holds one result at a time, whatever the
/// body's size and shape. At most `max_content` bytes of a `Content=` are copied into the result
/// ([`CommandResult::content_bytes`] gives the whole length).
pub fn for_each_command_result(
    body: &[u8],
    max_content: usize,
    mut each: impl FnMut(Result<CommandResult, LineError>),
) {
    let content_of = |from: usize| {
        let content = &body[from..];
        (
            content[..content.len().min(max_content)].to_vec(),
            content.len(),
        )
    };
    let mut results = Sink(&mut each);
    let mut current: Option<Builder> = None;
    let mut offset = 0;
    for (idx, piece) in body.split_inclusive(|&b| b == b'\n').enumerate() {
        let line_no = idx + 1;
        let line_start = offset;
        offset += piece.len();
        let raw = piece.strip_suffix(b"\n").unwrap_or(piece);
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if raw.starts_with(b"ID=") {
            if let Some(done) = current.take() {
                results.push(done.finish());
            }
            let mut builder = Builder::new(line_no, decode_text(raw));
            if raw.contains(&b'&') {
                let content_at = find(raw, b"&Content=").map(|at| at + 1);
                let head = content_at.map_or(raw, |at| &raw[..at - 1]);
                for pair in head.split(|&b| b == b'&') {
                    builder.add(pair);
                }
                if let Some(at) = content_at {
                    let (content, n) = content_of(line_start + at + CONTENT.len());
                    builder.content = Some(content);
                    builder.content_bytes = n;
                    results.push(builder.finish());
                    return;
                }
            } else {
                builder.add(raw);
            }
            current = Some(builder);
            continue;
        }
        let Some(builder) = current.as_mut() else {
            results.push(Err(LineError {
                line_no,
                line: decode_text(raw),
                reason: "line outside a command result (no ID= line before it)".to_string(),
            }));
            continue;
        };
        if raw.len() >= CONTENT.len() && raw[..CONTENT.len()].eq_ignore_ascii_case(CONTENT) {
            let (content, n) = content_of(line_start + CONTENT.len());
            builder.content = Some(content);
            builder.content_bytes = n;
            break;
        }
        builder.add(raw);
    }
    if let Some(done) = current.take() {
        results.push(done.finish());
    }
}

/// Hands each finished result to the caller's closure.
struct Sink<'a, F: FnMut(Result<CommandResult, LineError>)>(&'a mut F);

impl<F: FnMut(Result<CommandResult, LineError>)> Sink<'_, F> {
    fn push(&mut self, result: Result<CommandResult, LineError>) {
        (self.0)(result)
    }
}

const CONTENT: &[u8] = b"Content=";

/// Whether a `Key=Value` piece names `ID`, `Return` or `CMD` (the key trimmed, any case).
fn names_a_slot(pair: &[u8]) -> bool {
    let key = pair
        .split(|&b| b == b'=')
        .next()
        .unwrap_or(pair)
        .trim_ascii();
    [&b"ID"[..], b"Return", b"CMD"]
        .iter()
        .any(|slot| key.eq_ignore_ascii_case(slot))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window.eq_ignore_ascii_case(needle))
}

/// One result being read.
struct Builder {
    line_no: usize,
    first_line: String,
    id: Option<String>,
    return_code: Option<String>,
    cmd: Option<String>,
    fields: Vec<(String, String)>,
    dropped_fields: usize,
    content: Option<Vec<u8>>,
    content_bytes: usize,
}

impl Builder {
    fn new(line_no: usize, first_line: String) -> Builder {
        Builder {
            line_no,
            first_line,
            id: None,
            return_code: None,
            cmd: None,
            fields: Vec::new(),
            dropped_fields: 0,
            content: None,
            content_bytes: 0,
        }
    }

    fn add(&mut self, pair: &[u8]) {
        if self.fields.len() >= MAX_FIELDS_PER_RESULT && !names_a_slot(pair) {
            // Not kept: counted without decoding it.
            self.dropped_fields += 1;
            return;
        }
        let text = decode_text(pair);
        let (key, value) = text.split_once('=').unwrap_or((&text, ""));
        let key = key.trim();
        let slot = match key {
            k if k.eq_ignore_ascii_case("ID") => &mut self.id,
            k if k.eq_ignore_ascii_case("Return") => &mut self.return_code,
            k if k.eq_ignore_ascii_case("CMD") => &mut self.cmd,
            _ => {
                self.push_field(key, value);
                return;
            }
        };
        if slot.is_none() {
            *slot = Some(value.to_string());
        } else {
            self.push_field(key, value);
        }
    }

    fn push_field(&mut self, key: &str, value: &str) {
        // The cap is checked again: ID, Return or CMD named twice is a field too.
        if self.fields.len() < MAX_FIELDS_PER_RESULT {
            self.fields.push((key.to_string(), value.to_string()));
        } else {
            self.dropped_fields += 1;
        }
    }

    fn finish(self) -> Result<CommandResult, LineError> {
        let error = |reason: String| LineError {
            line_no: self.line_no,
            line: self.first_line.clone(),
            reason,
        };
        let id = self.id.as_deref().map(trim_field).unwrap_or_default();
        if id.is_empty() {
            return Err(error("command result without ID".to_string()));
        }
        let return_code = match self.return_code.as_deref().map(trim_field) {
            None => return Err(error("command result without Return".to_string())),
            Some(code) => code
                .parse()
                .map_err(|_| error(format!("non-numeric Return {code:?}")))?,
        };
        Ok(CommandResult {
            id: id.to_string(),
            return_code,
            cmd: self
                .cmd
                .as_deref()
                .map(trim_field)
                .unwrap_or_default()
                .to_string(),
            fields: self.fields,
            content: self.content,
            content_bytes: self.content_bytes,
            dropped_fields: self.dropped_fields,
        })
    }
}

/// Human meaning of a `Return=` code (push.md §9 table, att firmware), e.g. -10 -> "PIN does not exist".
///
/// Codes ≥ 0 other than the enrolment results mean success (a byte or record count for file, ACCOUNT and
/// query commands). The enrolment codes 2, 4, 5, 6, 7 only mean what they say for `ENROLL_*` commands.
pub fn describe_return_code(code: i64) -> &'static str {
    match code {
        2 => "success, or for enrolment: already exists",
        4 => "success, or for enrolment: failed",
        5 => "success, or for enrolment: duplicate",
        6 => "success, or for enrolment: cancelled",
        7 => "success, or for enrolment: device busy",
        c if c >= 0 => "success",
        -1 => "parameter error, not supported, or no data",
        -2 => "wrong operation or file operation failed",
        -3 => "flash read/write error",
        -4 => "no matched data",
        -5 => "no space",
        -6 => "data not valid",
        -9 => "template size does not match Size",
        -10 => "PIN does not exist",
        -11 => "illegal fingerprint template format",
        -12 => "illegal fingerprint template",
        -13 => "main process did not handle the update",
        -21 => "request lines not supported",
        -22 => "unknown command",
        -30 => "template algorithm version mismatch",
        -1001 => "capacity limit",
        -1002 => "not supported (invalid command syntax)",
        -1003 => "command timeout",
        -1004 => "data inconsistent with device configuration",
        -1005 => "device busy",
        -1006 => "data too long",
        -1007 => "memory error",
        -1008 => "failed to fetch server data",
        _ => "unknown error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn ok(id: &str, return_code: i64, cmd: &str, fields: &[(&str, &str)]) -> CommandResult {
        CommandResult {
            id: id.into(),
            return_code,
            cmd: cmd.into(),
            fields: kv(fields),
            content: None,
            content_bytes: 0,
            dropped_fields: 0,
        }
    }

    #[test]
    fn several_one_line_results() {
        let out = parse_command_results(
            b"ID=1001&Return=0&CMD=DATA\r\nID=1002&SN=A1&Return=-10&CMD=DATA\nID=1003&Return=-22&CMD=UNKNOWN CMD\n",
        );
        assert_eq!(
            out,
            vec![
                Ok(ok("1001", 0, "DATA", &[])),
                Ok(ok("1002", -10, "DATA", &[("SN", "A1")])),
                Ok(ok("1003", -22, "UNKNOWN CMD", &[])),
            ]
        );
    }

    #[test]
    fn info_multi_line() {
        let out = parse_command_results(
            b"ID=info8487&Return=0&CMD=INFO\n~DeviceName=K40\nUserCount=3\nMainTime=2024-01-02 03:04:05\nID=9&Return=0&CMD=LOG\n",
        );
        assert_eq!(
            out,
            vec![
                Ok(ok(
                    "info8487",
                    0,
                    "INFO",
                    &[
                        ("~DeviceName", "K40"),
                        ("UserCount", "3"),
                        ("MainTime", "2024-01-02 03:04:05")
                    ]
                )),
                Ok(ok("9", 0, "LOG", &[])),
            ]
        );
    }

    #[test]
    fn shell_newline_form_content_swallows_rest() {
        let out = parse_command_results(
            b"ID=5\nSN=A1\nReturn=0\nCMD=Shell\nFILENAME=shell.out\nContent=line 1\nID=6 is not a result\n\xFF\n",
        );
        assert_eq!(out.len(), 1);
        let result = out[0].as_ref().unwrap();
        assert_eq!(
            (result.id.as_str(), result.return_code, result.cmd.as_str()),
            ("5", 0, "Shell")
        );
        assert_eq!(
            result.fields,
            kv(&[("SN", "A1"), ("FILENAME", "shell.out")])
        );
        assert_eq!(
            result.content.as_deref(),
            Some(&b"line 1\nID=6 is not a result\n\xFF\n"[..])
        );
    }

    #[test]
    fn getfile_binary_content_in_one_line_form() {
        let out = parse_command_results(b"ID=7&Return=4&CMD=GetFile&Content=\0\x01\n\x02");
        assert_eq!(out.len(), 1);
        let result = out[0].as_ref().unwrap();
        assert_eq!(result.return_code, 4);
        assert_eq!(result.content.as_deref(), Some(&b"\0\x01\n\x02"[..]));
    }

    #[test]
    fn verify_sum_and_account_pieces() {
        let out = parse_command_results(
            b"ID=3&Return=0&CMD=VERIFY SUM ATTLOG&StartTime=2024-01-01 00:00:00&EndTime=2024-01-31 23:59:59&AttlogCount=42\nID=4&Return=41&CMD=ACCOUNT&transaction&RecordSum=41\n",
        );
        assert_eq!(
            out,
            vec![
                Ok(ok(
                    "3",
                    0,
                    "VERIFY SUM ATTLOG",
                    &[
                        ("StartTime", "2024-01-01 00:00:00"),
                        ("EndTime", "2024-01-31 23:59:59"),
                        ("AttlogCount", "42")
                    ]
                )),
                Ok(ok(
                    "4",
                    41,
                    "ACCOUNT",
                    &[("transaction", ""), ("RecordSum", "41")]
                )),
            ]
        );
    }

    #[test]
    fn bad_results_do_not_lose_the_others() {
        let out = parse_command_results(
            b"stray line\nID=&Return=0&CMD=INFO\nKey=1\nID=2&Return=x&CMD=DATA\nID=3&CMD=DATA\nID=4&Return=0\n",
        );
        let reasons: Vec<String> = out
            .iter()
            .map(|r| match r {
                Ok(r) => format!("ok {} {:?}", r.id, r.cmd),
                Err(e) => format!("{}: {}", e.line_no, e.reason),
            })
            .collect();
        assert_eq!(
            reasons,
            vec![
                "1: line outside a command result (no ID= line before it)",
                "2: command result without ID",
                "4: non-numeric Return \"x\"",
                "5: command result without Return",
                "ok 4 \"\"",
            ]
        );
        assert!(parse_command_results(b"").is_empty());
        assert!(parse_command_results(b"\n\r\n").is_empty());
    }

    #[test]
    fn fields_beyond_the_cap_are_counted_not_kept_and_results_stream_in_order() {
        let mut body = b"ID=7\nReturn=0\nCMD=INFO\n".to_vec();
        for n in 0..MAX_FIELDS_PER_RESULT + 5 {
            body.extend_from_slice(format!("K{n}=v\n").as_bytes());
        }
        body.extend_from_slice(b"ID=8&Return=-10&CMD=DATA\nstray\n");
        let mut seen = Vec::new();
        for_each_command_result(&body, usize::MAX, |r| seen.push(r));
        assert_eq!(seen.len(), 2);
        let first = seen[0].as_ref().unwrap();
        assert_eq!(first.id, "7");
        assert_eq!(first.fields.len(), MAX_FIELDS_PER_RESULT);
        assert_eq!(first.fields[0], ("K0".to_string(), "v".to_string()));
        assert_eq!(first.dropped_fields, 5);
        let second = seen[1].as_ref().unwrap();
        assert_eq!((second.id.as_str(), second.return_code), ("8", -10));
        assert_eq!(second.fields, kv(&[("stray", "")]));
        assert_eq!(parse_command_results(&body), seen);
    }

    #[test]
    fn return_codes() {
        assert_eq!(describe_return_code(-10), "PIN does not exist");
        assert_eq!(describe_return_code(0), "success");
        assert_eq!(describe_return_code(9512), "success");
        assert_eq!(describe_return_code(-22), "unknown command");
        assert_eq!(
            describe_return_code(-1002),
            "not supported (invalid command syntax)"
        );
        assert_eq!(describe_return_code(-777), "unknown error");
    }
}
