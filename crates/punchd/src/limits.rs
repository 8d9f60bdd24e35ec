//! What one request, one client or one address may cost the server (issue 6, "Resources"): the `[limits]`
//! settings, the checks of an upload body before it is parsed, the cap on recorded line errors, the rate limit
//! on new serial numbers per address, and the connection admission of the accept loop.
//!
//! Every limit is a key of the `[limits]` table of the settings file (some also a `serve` flag); the README's
//! "Configuration" section lists them with their defaults.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::store::LineIssue;

/// The `[limits]` table of the settings file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// An upload body (ATTLOG, OPERLOG, BIODATA, IDCARD, ERRORLOG) with more lines than this is refused with
    /// `413` before it is parsed, and nothing of it is kept: terminals send 30 to 150 records per request
    /// (push.md §7.1 "Batch size") and send a refused batch again in smaller pieces.
    pub max_lines_per_request: usize,
    /// A line longer than this (bytes) is not parsed: it is recorded as a line error with its first 512
    /// characters. Large enough for a user photo or a template line.
    pub max_line_bytes: usize,
    /// At most this many line errors are recorded in one journal entry; the rest are counted in one last
    /// entry (line 0) that says how many were not recorded.
    pub max_line_errors: usize,
    /// At most this many devices wait in `pending`; when a new one arrives the one pending longest is
    /// forgotten (and logged).
    pub max_pending_devices: usize,
    /// At most this many serial numbers never seen before are registered per source address per minute; more
    /// are answered `UNKNOWN DEVICE` and not registered. 0 = no limit.
    pub new_sns_per_address_per_minute: u32,
    /// At most this many connections at once (terminals and API together). 0 = derived from the process's
    /// file-descriptor limit (which `serve` raises to its hard limit at start): three quarters of it, at most
    /// 16,384.
    pub max_connections: usize,
    /// Of `max_connections`, this many are kept for established terminals (approved, seen in the last hour):
    /// a connection that would take one of them must send its request line within 2 s and name such a
    /// terminal, or it is closed. 0 = a tenth of `max_connections`.
    pub reserved_connections: usize,
    /// The database file may grow to this many bytes; writes beyond fail like on a full disk (answered `503`,
    /// nothing acknowledged, `/healthz` reports it) until space is freed. 0 = no limit but the disk's.
    pub max_database_bytes: u64,
    /// Seconds a client may take to send its request headers.
    pub header_timeout_secs: u64,
    /// Seconds one request may take, body included (a slow body is cut off with `408`).
    pub request_timeout_secs: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_lines_per_request: 10_000,
            max_line_bytes: 1024 * 1024,
            max_line_errors: 100,
            max_pending_devices: 1_000,
            new_sns_per_address_per_minute: 20,
            max_connections: 0,
            reserved_connections: 0,
            max_database_bytes: 0,
            header_timeout_secs: 10,
            request_timeout_secs: 30,
        }
    }
}

/// The longest a recorded line is, in characters (the journal's `LineIssue::line`).
pub const MAX_ISSUE_LINE_CHARS: usize = 512;
/// The longest a recorded reason is, in characters.
pub const MAX_ISSUE_REASON_CHARS: usize = 256;
/// Lines of an upload are parsed in runs of at most this many bytes, so the parser's intermediate results stay
/// small whatever the body's size.
const RUN_BYTES: usize = 256 * 1024;

/// At most `max` characters of `text`; a clipped text ends with `…(N bytes)` giving the full length.
pub fn clip_text(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((at, _)) => format!("{}…({} bytes)", &text[..at], text.len()),
    }
}

/// A line issue with its line and reason clipped to [`MAX_ISSUE_LINE_CHARS`] / [`MAX_ISSUE_REASON_CHARS`].
pub fn clipped_issue(line_no: usize, line: &str, reason: &str) -> LineIssue {
    LineIssue {
        line_no,
        line: clip_text(line, MAX_ISSUE_LINE_CHARS),
        reason: clip_text(reason, MAX_ISSUE_REASON_CHARS),
    }
}

/// The text that marks the last entry of a capped list: `N more line errors not recorded …`.
const NOT_RECORDED: &str = " more line errors not recorded";

/// How many issues a summary entry (made by [`cap_issues`] or [`IssueLog`]) stands for.
fn summary_count(issue: &LineIssue) -> Option<usize> {
    if issue.line_no != 0 || !issue.line.is_empty() {
        return None;
    }
    issue
        .reason
        .split_once(NOT_RECORDED)
        .and_then(|(n, _)| n.parse().ok())
}

fn summary(not_recorded: usize, total: usize, max: usize) -> LineIssue {
    LineIssue {
        line_no: 0,
        line: String::new(),
        reason: format!(
            "{not_recorded}{NOT_RECORDED} ({total} in all; at most {max} are recorded per request)"
        ),
    }
}

/// Keep the first `max` issues; when there were more, add one last issue (line 0) saying how many were not
/// recorded. A list capped before (by the parser, then extended by later checks) is counted with what its
/// summary stands for. Returns the number of issues there were in all.
pub fn cap_issues(issues: &mut Vec<LineIssue>, max: usize) -> usize {
    let mut carried = 0usize;
    issues.retain(|issue| match summary_count(issue) {
        Some(n) => {
            carried += n;
            false
        }
        None => true,
    });
    let total = issues.len() + carried;
    if total > max || carried > 0 {
        issues.truncate(max);
        issues.shrink_to_fit();
        let not_recorded = total - issues.len();
        issues.push(summary(not_recorded, total, max));
    }
    total
}

/// Collects line issues as they are found, keeping at most `max` (the rest only counted), so that a body of
/// many bad lines never holds more than `max` issues in memory.
#[derive(Debug)]
pub struct IssueLog {
    max: usize,
    kept: Vec<LineIssue>,
    dropped: usize,
}

impl IssueLog {
    /// An empty log keeping at most `max` issues.
    pub fn new(max: usize) -> IssueLog {
        IssueLog {
            max,
            kept: Vec::new(),
            dropped: 0,
        }
    }

    /// Keep `issue`, or count it when `max` are kept already.
    pub fn push(&mut self, issue: LineIssue) {
        if self.kept.len() < self.max {
            self.kept.push(issue);
        } else {
            self.dropped += 1;
        }
    }

    /// Keep a parser's line error, clipped ([`clipped_issue`]), or count it when `max` are kept already (then
    /// nothing of it is copied).
    pub fn push_line_error(&mut self, line_no: usize, line: &str, reason: &str) {
        if self.kept.len() < self.max {
            self.kept.push(clipped_issue(line_no, line, reason));
        } else {
            self.dropped += 1;
        }
    }

    /// The kept issues, then (when some were only counted) one summary entry saying how many.
    pub fn finish(mut self) -> Vec<LineIssue> {
        if self.dropped > 0 {
            let total = self.kept.len() + self.dropped;
            self.kept.push(summary(self.dropped, total, self.max));
        }
        self.kept
    }
}

/// A piece of an upload body, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Consecutive lines to parse; the first is line `offset + 1` of the body.
    Lines {
        /// Lines before this run.
        offset: usize,
        /// The bytes of the run (whole lines).
        bytes: &'a [u8],
    },
    /// A line over `max_line_bytes`, not parsed.
    Overlong(LineIssue),
}

/// Why an upload body was refused before parsing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{lines} lines in one request is over the limit of {max} (send smaller batches)")]
pub struct TooManyLines {
    /// Non-blank lines in the body (counted up to `max + 1`).
    pub lines: usize,
    /// The limit.
    pub max: usize,
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

/// Split an upload body into runs of lines to parse (each at most ~256 KiB, whole lines, numbered as
/// `zk_push`'s parsers number them: split on `\n`, 1-based, blank lines counted) and overlong lines, checking
/// the body against `limits` first.
///
/// Errors: the body has more than `max_lines_per_request` non-blank lines; nothing was parsed.
pub fn split_body<'a>(
    body: &'a [u8],
    limits: &LimitsConfig,
) -> Result<Vec<Piece<'a>>, TooManyLines> {
    split_body_counted(body, limits).map(|(pieces, _)| pieces)
}

/// [`split_body`], with the number of non-blank lines it counted.
fn split_body_counted<'a>(
    body: &'a [u8],
    limits: &LimitsConfig,
) -> Result<(Vec<Piece<'a>>, usize), TooManyLines> {
    let n_lines = body
        .split(|&b| b == b'\n')
        .filter(|line| !is_blank(line))
        .count();
    if n_lines > limits.max_lines_per_request {
        return Err(TooManyLines {
            lines: n_lines,
            max: limits.max_lines_per_request,
        });
    }
    let mut pieces = Vec::new();
    let mut run_start: Option<(usize, usize)> = None; // (byte offset, lines before)
    let mut at = 0usize;
    for (idx, line) in body.split(|&b| b == b'\n').enumerate() {
        let start = at;
        at += line.len() + 1;
        let end = at.min(body.len());
        if line.len() > limits.max_line_bytes {
            if let Some((from, offset)) = run_start.take() {
                pieces.push(Piece::Lines {
                    offset,
                    bytes: &body[from..start],
                });
            }
            let head = String::from_utf8_lossy(&line[..line.len().min(4 * MAX_ISSUE_LINE_CHARS)]);
            pieces.push(Piece::Overlong(clipped_issue(
                idx + 1,
                &head,
                &format!(
                    "line of {} bytes is over the limit of {} bytes (max_line_bytes); not read",
                    line.len(),
                    limits.max_line_bytes
                ),
            )));
            continue;
        }
        let (from, offset) = *run_start.get_or_insert((start, idx));
        if end - from >= RUN_BYTES {
            pieces.push(Piece::Lines {
                offset,
                bytes: &body[from..end],
            });
            run_start = None;
        }
    }
    if let Some((from, offset)) = run_start {
        if from < body.len() {
            pieces.push(Piece::Lines {
                offset,
                bytes: &body[from..],
            });
        }
    }
    Ok((pieces, n_lines))
}

/// What [`parse_in_runs`] found: the records with their line numbers, and the line errors to record.
pub type Parsed<T> = (Vec<(usize, T)>, Vec<LineIssue>);

/// Parse an upload body run by run with `parse` (a `zk_push` parser giving each entry's 1-based line number
/// within what it was given, or 0), after [`split_body`]: the records with their line numbers in the whole body,
/// and the line errors (clipped with [`clipped_issue`]; overlong lines included) in body order: at most
/// `max_line_errors` of them, then one summary entry counting the rest (see [`cap_issues`]).
///
/// Errors: the body has too many lines; nothing was parsed.
pub fn parse_in_runs<T>(
    body: &[u8],
    limits: &LimitsConfig,
    mut parse: impl FnMut(&[u8]) -> Vec<(usize, Result<T, zk_push::attlog::LineError>)>,
) -> Result<Parsed<T>, TooManyLines> {
    let mut records = Vec::new();
    let issues = read_runs(
        split_body(body, limits)?,
        limits,
        |offset, bytes, issues| {
            for (line_no, result) in parse(bytes) {
                match result {
                    Ok(record) => {
                        records.push((if line_no > 0 { line_no + offset } else { 0 }, record))
                    }
                    Err(e) => issues.push_line_error(e.line_no + offset, &e.line, &e.reason),
                }
            }
        },
    );
    Ok((records, issues))
}

/// Hand each run of lines of `pieces` to `read` (with the number of lines before it in the body, and the log its
/// line errors go to) and log each overlong line in its place: the line errors to record, in body order, capped
/// at `max_line_errors` ([`IssueLog`]).
fn read_runs(
    pieces: Vec<Piece<'_>>,
    limits: &LimitsConfig,
    mut read: impl FnMut(usize, &[u8], &mut IssueLog),
) -> Vec<LineIssue> {
    let mut issues = IssueLog::new(limits.max_line_errors);
    for piece in pieces {
        match piece {
            Piece::Overlong(issue) => issues.push(issue),
            Piece::Lines { offset, bytes } => read(offset, bytes, &mut issues),
        }
    }
    issues.finish()
}

/// Parse an ATTLOG upload (push.md §7.1) within the limits, as [`parse_in_runs`] would with
/// [`zk_push::attlog::parse_attlog_numbered`]: the punches as reported, each with its line in the whole body, and
/// the line errors to record (the same, word for word).
///
/// The lines are read with [`zk_push::attlog::visit_attlog`], so only what a punch keeps is copied: its PIN, work
/// code and extra columns, not the line (the body itself goes to the raw journal; a bad line is recorded in the
/// line errors as before).
///
/// Errors: the body has too many lines; nothing was parsed.
pub fn parse_attlog_in_runs(
    body: &[u8],
    limits: &LimitsConfig,
) -> Result<(Vec<crate::ingest::PunchRecord>, Vec<LineIssue>), TooManyLines> {
    let (pieces, n_lines) = split_body_counted(body, limits)?;
    let mut punches = Vec::with_capacity(n_lines);
    let issues = read_runs(pieces, limits, |offset, bytes, issues| {
        zk_push::attlog::visit_attlog(bytes, |line_no, line, parsed| match parsed {
            Ok(fields) => punches.push(crate::ingest::PunchRecord {
                line_no: line_no + offset,
                pin: fields.pin.to_owned(),
                punched_at: fields.time,
                punch_state: fields.status,
                verify_mode: fields.verify,
                work_code: fields.work_code.map(str::to_owned),
                extra: fields.extra_owned(),
            }),
            Err(reason) => issues.push_line_error(line_no + offset, line, &reason),
        });
    });
    Ok((punches, issues))
}

/// At most this many keys of an options upload are kept (a terminal sends about a hundred).
pub const MAX_OPTION_KEYS: usize = 1_000;
/// An option key or value longer than this (characters) is not kept but recorded as a line error.
pub const MAX_OPTION_CHARS: usize = 1_024;

/// Parse an options upload (`table=options`, push.md §3.4) within the limits: lines checked with
/// [`split_body`] and parsed run by run, keys and values over [`MAX_OPTION_CHARS`] and keys beyond
/// [`MAX_OPTION_KEYS`] left out and recorded as line errors (line 0: the options parser does not number lines).
///
/// Errors: the body has too many lines; nothing was parsed.
pub fn parse_options_bounded(
    body: &[u8],
    limits: &LimitsConfig,
) -> Result<Parsed<(String, String)>, TooManyLines> {
    let mut kept = Vec::new();
    let mut issues = IssueLog::new(limits.max_line_errors);
    for piece in split_body(body, limits)? {
        match piece {
            Piece::Overlong(issue) => issues.push(issue),
            Piece::Lines { bytes, .. } => {
                for (key, value) in zk_push::options::parse_options(bytes) {
                    let long = key.chars().count() > MAX_OPTION_CHARS
                        || value.chars().count() > MAX_OPTION_CHARS;
                    if long || kept.len() >= MAX_OPTION_KEYS {
                        issues.push(clipped_issue(
                            0,
                            &format!("{key}={value}"),
                            if long {
                                "option key or value over 1024 characters; not kept"
                            } else {
                                "more than 1000 options in one upload; not kept"
                            },
                        ));
                    } else {
                        kept.push((0, (key, value)));
                    }
                }
            }
        }
    }
    Ok((kept, issues.finish()))
}

/// Counts serial numbers never seen before, per source address, in one-minute windows.
#[derive(Debug)]
pub struct NewSnLimiter {
    per_minute: u32,
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

/// Addresses tracked at most; older windows are dropped when it is reached.
const MAX_TRACKED_ADDRESSES: usize = 65_536;

impl NewSnLimiter {
    /// A limiter allowing `per_minute` new SNs per address per minute (0 = unlimited).
    pub fn new(per_minute: u32) -> NewSnLimiter {
        NewSnLimiter {
            per_minute,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `addr` may register one more new SN now (and count it when so).
    pub fn allow(&self, addr: IpAddr, now: Instant) -> bool {
        if self.per_minute == 0 {
            return true;
        }
        let mut windows = match self.windows.lock() {
            Ok(w) => w,
            Err(p) => p.into_inner(),
        };
        if windows.len() >= MAX_TRACKED_ADDRESSES {
            windows.retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(60));
        }
        let window = windows.entry(addr).or_insert((now, 0));
        if now.duration_since(window.0) >= Duration::from_secs(60) {
            *window = (now, 0);
        }
        if window.1 >= self.per_minute {
            return false;
        }
        window.1 += 1;
        true
    }
}

/// How many connections the accept loop admits, and how many of those are kept for established terminals.
#[derive(Debug)]
pub struct ConnectionLimits {
    /// Connections allowed at once.
    pub max: usize,
    /// Of `max`, kept for established terminals.
    pub reserved: usize,
    open: AtomicUsize,
}

/// What the accept loop may do with a new connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// Serve it.
    Open,
    /// Serve it only if its request line names an established terminal.
    Reserved,
    /// Close it at once.
    Refused,
}

impl ConnectionLimits {
    /// Limits from the settings and the process's file-descriptor limit (`nofile`, after raising).
    pub fn new(config: &LimitsConfig, nofile: u64) -> Arc<ConnectionLimits> {
        let max = if config.max_connections > 0 {
            config.max_connections
        } else {
            usize::try_from(nofile / 4 * 3)
                .unwrap_or(usize::MAX)
                .clamp(16, 16_384)
        };
        let reserved = if config.reserved_connections > 0 {
            config.reserved_connections.min(max.saturating_sub(1))
        } else {
            (max / 10).max(1)
        };
        Arc::new(ConnectionLimits {
            max,
            reserved,
            open: AtomicUsize::new(0),
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Take a slot for a new connection; the slot is given back when the returned guard is dropped.
    pub fn admit(self: &Arc<Self>) -> (Admission, Option<ConnectionSlot>) {
        let mut current = self.open.load(Ordering::Acquire);
        loop {
            if current >= self.max {
                return (Admission::Refused, None);
            }
            match self.open.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => current = now,
            }
        }
        let admission = if current >= self.max - self.reserved {
            Admission::Reserved
        } else {
            Admission::Open
        };
        (
            admission,
            Some(ConnectionSlot {
                limits: self.clone(),
            }),
        )
    }
}

/// One admitted connection; dropping it frees the slot.
#[derive(Debug)]
pub struct ConnectionSlot {
    limits: Arc<ConnectionLimits>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.limits.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The limits' state for one running instance (`App::guards`).
#[derive(Debug)]
pub struct Guards {
    /// New serial numbers per source address.
    pub new_sns: NewSnLimiter,
    /// Connections at once.
    pub connections: Arc<ConnectionLimits>,
}

impl Guards {
    /// The state for `config`, with the process's file-descriptor limit as it is now.
    pub fn new(config: &LimitsConfig) -> Guards {
        let nofile = rlimit::getrlimit(rlimit::Resource::NOFILE)
            .map(|(soft, _)| soft)
            .unwrap_or(1024);
        Guards {
            new_sns: NewSnLimiter::new(config.new_sns_per_address_per_minute),
            connections: ConnectionLimits::new(config, nofile),
        }
    }
}

/// Whether a serial number never seen before, arriving from `remote`, may be registered now
/// (`new_sns_per_address_per_minute`); counts and logs a refusal.
pub fn admit_new_sn(
    app: &crate::app::App,
    sn: &crate::domain::DeviceSn,
    remote: Option<&str>,
) -> bool {
    let Some(ip) = remote.and_then(|r| r.parse::<IpAddr>().ok()) else {
        return true;
    };
    if app.guards.new_sns.allow(ip, Instant::now()) {
        return true;
    }
    tracing::warn!(sn = %sn, remote = %ip, per_minute = app.config.limits.new_sns_per_address_per_minute,
        "new serial number refused: too many new SNs from this address this minute (answered UNKNOWN DEVICE, \
         not registered)");
    app.metrics.refuse("new_sn_rate");
    false
}

/// After a new device was registered as pending: forget the pending devices beyond `max_pending_devices`, the
/// one pending longest first, each logged. A store failure is logged and left for the next new device.
pub async fn cap_pending(app: &crate::app::App) {
    match app
        .store
        .prune_pending(app.config.limits.max_pending_devices)
        .await
    {
        Ok(gone) => {
            for sn in gone {
                app.registry.forget(&sn);
                app.metrics.pending_dropped.inc();
                tracing::warn!(sn = %sn, max = app.config.limits.max_pending_devices,
                    "pending device forgotten: max_pending_devices reached and it waited longest");
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "capping pending devices failed; will retry with the next one")
        }
    }
}

/// Raise the soft file-descriptor limit to the hard limit where the system allows it; returns the limit in
/// force afterwards (1024 when it cannot be read).
pub fn raise_nofile_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "could not raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .map(|(soft, _)| soft)
                .unwrap_or(1024)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_lines: usize, max_line: usize) -> LimitsConfig {
        LimitsConfig {
            max_lines_per_request: max_lines,
            max_line_bytes: max_line,
            ..LimitsConfig::default()
        }
    }

    fn lines_of(pieces: &[Piece<'_>]) -> Vec<(usize, Vec<u8>)> {
        pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Lines { offset, bytes } => Some((*offset, bytes.to_vec())),
                Piece::Overlong(_) => None,
            })
            .collect()
    }

    #[test]
    fn runs_keep_line_numbers_and_overlong_lines_are_not_parsed() {
        let body = b"a\n\nbbbbbbbbbb\r\nc\nd";
        let pieces = split_body(body, &limits(10, 5)).unwrap();
        assert_eq!(pieces.len(), 3);
        assert_eq!(
            lines_of(&pieces),
            vec![(0, b"a\n\n".to_vec()), (3, b"c\nd".to_vec())]
        );
        match &pieces[1] {
            Piece::Overlong(issue) => {
                assert_eq!(issue.line_no, 3);
                assert!(issue.reason.contains("11 bytes"), "{issue:?}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn too_many_lines_are_refused_before_parsing() {
        let body = "x\n".repeat(11);
        assert_eq!(
            split_body(body.as_bytes(), &limits(10, 100)),
            Err(TooManyLines { lines: 11, max: 10 })
        );
        // Blank lines do not count.
        let body = "x\n\n\n \r\n".repeat(10);
        assert!(split_body(body.as_bytes(), &limits(10, 100)).is_ok());
    }

    #[test]
    fn big_bodies_are_cut_into_bounded_runs_at_line_ends() {
        let line = "1\t2024-01-01 08:00:00\t0\t1\n";
        let body = line.repeat(30_000);
        let pieces = split_body(body.as_bytes(), &limits(30_000, 1000)).unwrap();
        assert!(pieces.len() > 2);
        let mut expected_offset = 0;
        for (offset, bytes) in lines_of(&pieces) {
            assert_eq!(offset, expected_offset);
            assert!(bytes.len() < RUN_BYTES + line.len());
            assert!(bytes.ends_with(b"\n"));
            expected_offset += bytes.iter().filter(|b| **b == b'\n').count();
        }
        assert_eq!(expected_offset, 30_000);
    }

    #[test]
    fn issues_are_capped_and_counted() {
        let mut issues: Vec<LineIssue> = (1..=250).map(|n| clipped_issue(n, "x", "bad")).collect();
        assert_eq!(cap_issues(&mut issues, 100), 250);
        assert_eq!(issues.len(), 101);
        assert_eq!(issues[100].line_no, 0);
        assert!(issues[100].reason.starts_with("150 more line errors"));
        // A list capped earlier (by the parser's collector) keeps counting: 101 + 50 more.
        issues.extend((1..=50).map(|n| clipped_issue(n, "x", "bad")));
        assert_eq!(cap_issues(&mut issues, 100), 300);
        assert_eq!(issues.len(), 101);
        assert!(issues[100]
            .reason
            .starts_with("200 more line errors not recorded (300 in all"));
        let long = "é".repeat(10_000);
        let issue = clipped_issue(1, &long, &long);
        assert_eq!(
            issue.line.chars().count(),
            MAX_ISSUE_LINE_CHARS + "…(20000 bytes)".chars().count()
        );
        assert!(issue.reason.ends_with("…(20000 bytes)"));
    }

    /// What `sources/push.rs` did before [`parse_attlog_in_runs`]: the generic runs over the owning parser.
    fn attlog_through_records(
        body: &[u8],
        limits: &LimitsConfig,
    ) -> Result<(Vec<crate::ingest::PunchRecord>, Vec<LineIssue>), TooManyLines> {
        let (records, errors) = parse_in_runs(body, limits, |run| {
            zk_push::attlog::parse_attlog_numbered(run)
                .into_iter()
                .map(|(n, parsed)| {
                    let punch = parsed.map(|r| crate::ingest::PunchRecord {
                        line_no: 0,
                        pin: r.pin,
                        punched_at: r.time,
                        punch_state: r.status,
                        verify_mode: r.verify,
                        work_code: r.work_code,
                        extra: r.extra,
                    });
                    (n, punch)
                })
                .collect()
        })?;
        let punches = records
            .into_iter()
            .map(|(line_no, punch)| crate::ingest::PunchRecord { line_no, ..punch })
            .collect();
        Ok((punches, errors))
    }

    /// The punches and line errors of an ATTLOG body, exactly: every line shape, bad lines, a line that is not
    /// UTF-8, an overlong line, runs of 256 KiB, and more errors than are recorded. The same as the owning parser
    /// through [`parse_in_runs`] gives.
    #[test]
    fn attlog_punches_and_errors_are_the_owning_parsers() {
        let body = b"1452\t2015-07-30 15:16:28\t0\t1\t0\t0\t0\n\
            \r\n\
            1156\t2024-08-05 12:40:57\t1\t1\t\t0\t0\t\r\n\
            3\t2023-10-16 08:38:16\t255\t15\t0\t0\t0\t255\t0\t0\t\n\
            garbage\n\
            A\xFF\t2021-03-04 05:06:07\t0\t1\n\
            7\t2024-08-05 12:40:57\t1\t1\t0\t\t\t\n\
            0042\t2020-01-01 00:00:00\n\
            9\t2015-07-30 15:16:28\tIN\n";
        let body = [
            &body[..],
            "x".repeat(102).as_bytes(),
            b"\n5\t2021-03-04 05:06:07\t1\t15\0\0",
        ]
        .concat();
        let limits = limits(100, 100);
        let (punches, errors) = parse_attlog_in_runs(&body, &limits).unwrap();
        assert_eq!(
            (punches.clone(), errors.clone()),
            attlog_through_records(&body, &limits).unwrap()
        );
        // Line, PIN, punch state, verify mode, work code, extra columns.
        type Shape<'a> = (
            usize,
            &'a str,
            Option<u16>,
            Option<u16>,
            Option<&'a str>,
            Vec<&'a str>,
        );
        let shapes: Vec<Shape<'_>> = punches
            .iter()
            .map(|p| {
                let extra = p.extra.iter().map(String::as_str).collect();
                (
                    p.line_no,
                    p.pin.as_str(),
                    p.punch_state,
                    p.verify_mode,
                    p.work_code.as_deref(),
                    extra,
                )
            })
            .collect();
        assert_eq!(
            shapes,
            [
                (1, "1452", Some(0), Some(1), Some("0"), vec!["0", "0"]),
                (3, "1156", Some(1), Some(1), None, vec!["0", "0"]),
                (
                    4,
                    "3",
                    Some(255),
                    Some(15),
                    Some("0"),
                    vec!["0", "0", "255", "0", "0"]
                ),
                (6, "A\u{ff}", Some(0), Some(1), None, vec![]),
                (7, "7", Some(1), Some(1), Some("0"), vec!["", ""]),
                (8, "0042", None, None, None, vec![]),
                (11, "5", Some(1), Some(15), None, vec![]),
            ]
        );
        assert_eq!(punches[0].punched_at.to_string(), "2015-07-30 15:16:28");
        let errors: Vec<(usize, &str, &str)> = errors
            .iter()
            .map(|e| (e.line_no, e.line.as_str(), e.reason.as_str()))
            .collect();
        assert_eq!(
            errors,
            [
                (
                    5,
                    "garbage",
                    "expected at least 2 tab-separated fields (PIN, time), got 1"
                ),
                (9, "9\t2015-07-30 15:16:28\tIN", "non-numeric status \"IN\""),
                (
                    10,
                    &"x".repeat(102),
                    "line of 102 bytes is over the limit of 100 bytes (max_line_bytes); not read"
                ),
            ]
        );
        // Many runs, more errors than are recorded: the same as the owning parser.
        let many = "1\t2024-01-01 08:00:00\t0\t1\t0\t0\t0\t\nbad line\n".repeat(20_000);
        let limits = LimitsConfig {
            max_lines_per_request: 40_000,
            ..LimitsConfig::default()
        };
        let (punches, errors) = parse_attlog_in_runs(many.as_bytes(), &limits).unwrap();
        assert_eq!(
            (punches.len(), errors.len(), punches[19_999].line_no),
            (20_000, 101, 39_999)
        );
        assert_eq!(
            (punches, errors),
            attlog_through_records(many.as_bytes(), &limits).unwrap()
        );
        assert_eq!(
            parse_attlog_in_runs(many.as_bytes(), &LimitsConfig::default()),
            Err(TooManyLines {
                lines: 40_000,
                max: 10_000
            })
        );
    }

    #[test]
    fn new_sns_are_limited_per_address_and_minute() {
        let limiter = NewSnLimiter::new(2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "::1".parse().unwrap();
        let t = Instant::now();
        assert!(limiter.allow(a, t));
        assert!(limiter.allow(a, t));
        assert!(!limiter.allow(a, t));
        assert!(limiter.allow(b, t));
        assert!(limiter.allow(a, t + Duration::from_secs(61)));
    }

    #[test]
    fn connections_beyond_the_open_share_are_reserved_then_refused() {
        let limits = ConnectionLimits::new(
            &LimitsConfig {
                max_connections: 3,
                reserved_connections: 1,
                ..LimitsConfig::default()
            },
            1024,
        );
        let (a, sa) = limits.admit();
        let (b, sb) = limits.admit();
        let (c, sc) = limits.admit();
        let (d, sd) = limits.admit();
        assert_eq!(
            [a, b, c, d],
            [
                Admission::Open,
                Admission::Open,
                Admission::Reserved,
                Admission::Refused
            ]
        );
        assert!(sd.is_none());
        drop((sa, sb));
        assert_eq!(limits.open(), 1);
        assert_eq!(limits.admit().0, Admission::Open);
        drop(sc);
    }
}
