//! A fleet of simulated push terminals (attendance dialect 2.x, shared/protocol/push.md §3–§9) driving a push
//! server over plain HTTP/1.1, the way att firmware does: one TCP connection per request with
//! `Connection: close`, user agent `iClock Proxy/1.09`, no `Content-Type` on POST.
//!
//! Each terminal handshakes (§3), polls `getrequest` (§6; the first poll after a handshake carries `INFO=`),
//! uploads OPERLOG `USER` lines once (§7.2), pushes ATTLOG batches (§7.1) and executes the commands it is given
//! (§8), answering them on `devicecmd` (§9). A batch that is not acknowledged (status other than 200, or a body
//! without `OK`, §7) is sent again until it is; acknowledged batches can also be re-sent on purpose, to exercise
//! the server's dedupe (§4). Every acknowledged punch is recorded ([`DeviceReport::acked`]) so that
//! [`check_device`] can verify "every acknowledged punch stored exactly once" against what the server stored.
//!
//! Punch number `seq` of a terminal is a pure function of `seq` ([`PunchPlan`]), which is what makes the check
//! possible without keeping the punches themselves.
//!
//! Layout, in reading order: [`PunchPlan`] (what is sent) → the HTTP/1.1 exchange ([`parse_response`]) →
//! [`LatencyHistogram`] and [`FleetStats`] → [`PushSimConfig`] and [`run_fleet`] → [`check_device`]. Depends on
//! `zk_push` (line encoding) and tokio only; never on punchd.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{NaiveDate, NaiveDateTime, TimeDelta};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Notify, Semaphore};
use zk_push::attlog::AttlogRecord;

/// The user agent of att firmware on every platform (push.md §1).
pub const USER_AGENT: &str = "iClock Proxy/1.09";
/// The `pushver=` the simulated terminals announce in the handshake (push.md §2).
pub const PUSH_VERSION: &str = "2.4.1";
/// The `INFO=` value of the first poll after a handshake (push.md §6): firmware, users, fingerprints, attendance
/// records, IP, fingerprint and face algorithm versions, faces per enrolment, faces, support bits. URL-encoded.
pub const INFO: &str = "Ver%202.4.1-20250101,0,0,0,192.168.1.201,10,7,15,0,111";

// ---------------------------------------------------------------------------------------------------------------
// What is sent
// ---------------------------------------------------------------------------------------------------------------

/// The punches a simulated terminal records: punch number `seq` (0, 1, 2, …) is a pure function of `seq`, so a
/// checker can map a stored punch back to its number without the simulator keeping any punch.
///
/// Punch `seq` is at `first_punch_at + seq` seconds (terminal local wall time), by user `seq % users + 1`; the PIN of
/// every fifth user is written with leading zeros (`"00005"`), because PINs are strings and leading zeros matter.
/// The punch state alternates check-in (0) / check-out (1) per round of users; the verify mode cycles through
/// face (15), fingerprint (1) and card (2). Lines have the 7 columns of the att examples (push.md §7.1):
/// `PIN, Time, Status, Verify, Workcode=0, Reserved1=0, Reserved2=0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PunchPlan {
    /// Terminal local wall time of punch 0.
    pub first_punch_at: NaiveDateTime,
    /// Users on the terminal (PINs 1..=users); at least 1 is used.
    pub users: u32,
}

impl Default for PunchPlan {
    /// Punch 0 on 2026-01-05 07:00:00, 500 users.
    fn default() -> PunchPlan {
        PunchPlan {
            first_punch_at: NaiveDate::from_ymd_opt(2026, 1, 5)
                .and_then(|d| d.and_hms_opt(7, 0, 0))
                .unwrap_or_default(),
            users: 500,
        }
    }
}

const VERIFY_MODES: [u16; 3] = [15, 1, 2];

impl PunchPlan {
    fn users(&self) -> u64 {
        u64::from(self.users.max(1))
    }

    /// The user number (1-based) of punch `seq`.
    fn user_of(&self, seq: u64) -> u64 {
        seq % self.users() + 1
    }

    /// The PIN of user number `user` (1-based): every fifth user has a zero-padded 5-digit PIN.
    pub fn pin_of_user(user: u64) -> String {
        if user % 5 == 0 {
            format!("{user:05}")
        } else {
            user.to_string()
        }
    }

    /// The terminal local wall time of punch `seq`; `None` past the end of chrono's calendar.
    pub fn time(&self, seq: u64) -> Option<NaiveDateTime> {
        let seconds = i64::try_from(seq).ok()?;
        self.first_punch_at
            .checked_add_signed(TimeDelta::try_seconds(seconds)?)
    }

    /// Punch `seq` as an ATTLOG record; `None` past the end of chrono's calendar.
    pub fn punch(&self, seq: u64) -> Option<AttlogRecord> {
        let users = self.users();
        Some(AttlogRecord {
            pin: Self::pin_of_user(self.user_of(seq)),
            time: self.time(seq)?,
            status: Some(u16::from((seq / users) % 2 == 1)),
            verify: VERIFY_MODES
                .get(usize::try_from(seq % 3).unwrap_or(0))
                .copied(),
            work_code: Some("0".to_owned()),
            extra: vec!["0".to_owned(), "0".to_owned()],
            line: String::new(),
        })
    }

    /// The ATTLOG body of punches `seqs` (one line each, LF-terminated, encoded with
    /// [`AttlogRecord::encode_line`]).
    pub fn attlog_body(&self, seqs: Range<u64>) -> Vec<u8> {
        let mut body = Vec::with_capacity(usize::try_from(seqs.end - seqs.start).unwrap_or(0) * 40);
        for seq in seqs {
            if let Some(record) = self.punch(seq) {
                body.extend_from_slice(record.encode_line().as_bytes());
                body.push(b'\n');
            }
        }
        body
    }

    /// Which punch a stored punch is: `Some(seq)` when PIN, time and punch state are exactly those of punch `seq`.
    pub fn seq_of(
        &self,
        pin: &str,
        punched_at: NaiveDateTime,
        punch_state: Option<u16>,
    ) -> Option<u64> {
        let seconds = punched_at
            .signed_duration_since(self.first_punch_at)
            .num_seconds();
        let seq = u64::try_from(seconds).ok()?;
        let expected = self.punch(seq)?;
        (expected.pin == pin && expected.time == punched_at && expected.status == punch_state)
            .then_some(seq)
    }

    /// The OPERLOG body a terminal uploads once after its first handshake: one `OPLOG` line (op 4, "enter the
    /// menu") and a `USER` line for each of the first `n_users` users (push.md §7.2).
    pub fn operlog_body(&self, n_users: u32) -> Vec<u8> {
        let mut body = String::new();
        let at = self.first_punch_at.format("%Y-%m-%d %H:%M:%S");
        body.push_str(&format!("OPLOG 4\t0\t{at}\t0\t0\t0\t0\n"));
        for user in 1..=u64::from(n_users.min(self.users.max(1))) {
            let pin = Self::pin_of_user(user);
            body.push_str(&format!(
                "USER PIN={pin}\tName=User {user}\tPri=0\tPasswd=\tCard=\tGrp=1\tTZ=0000000000000000\tVerify=0\t\
                 ViceCard=\n"
            ));
        }
        body.into_bytes()
    }
}

// ---------------------------------------------------------------------------------------------------------------
// One HTTP/1.1 exchange
// ---------------------------------------------------------------------------------------------------------------

/// A server's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    /// The status code.
    pub status: u16,
    /// The body (chunked transfer coding removed).
    pub body: Vec<u8>,
}

impl HttpReply {
    /// Whether the terminal counts this answer to an upload as accepted (push.md §7, FW `svr_res_proc`): status 200 and `OK`
    /// somewhere in the body, and not `UNKNOWN DEVICE`.
    pub fn accepted(&self) -> bool {
        self.status == 200 && !self.unknown_device() && find(&self.body, b"OK").is_some()
    }

    /// Whether the terminal counts this answer to a request of `kind` as accepted: an upload or command results
    /// as [`HttpReply::accepted`]; a handshake or poll needs status 200 and not `UNKNOWN DEVICE` (its body is the
    /// option block or the commands, push.md §3.2, §6).
    pub fn accepted_as(&self, kind: RequestKind) -> bool {
        match kind {
            RequestKind::Handshake | RequestKind::Poll => {
                self.status == 200 && !self.unknown_device()
            }
            RequestKind::Attlog | RequestKind::Operlog | RequestKind::DeviceCmd => self.accepted(),
        }
    }

    /// Whether the server refused the terminal (`UNKNOWN DEVICE`, push.md §1).
    pub fn unknown_device(&self) -> bool {
        self.status == 200 && find(&self.body, b"UNKNOWN DEVICE").is_some()
    }

    /// `n` of an `OK:<n>` (or `OK: <n>`) body.
    pub fn ok_count(&self) -> Option<u64> {
        let at = find(&self.body, b"OK:")?;
        let rest = self.body.get(at + 3..)?;
        let digits: Vec<u8> = rest
            .iter()
            .skip_while(|b| **b == b' ')
            .take_while(|b| b.is_ascii_digit())
            .copied()
            .collect();
        std::str::from_utf8(&digits).ok()?.parse().ok()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Parse a complete HTTP/1.x response (everything read until the server closed the connection). `None` when it
/// is not one: no status line, no end of headers, or a broken chunked body. A `Content-Length` shorter than what
/// was read cuts the body; chunked bodies are decoded.
pub fn parse_response(raw: &[u8]) -> Option<HttpReply> {
    if !raw.starts_with(b"HTTP/1.") {
        return None;
    }
    let status_text = std::str::from_utf8(raw.get(9..12)?).ok()?;
    let status: u16 = status_text.parse().ok()?;
    let head_end = find(raw, b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..head_end]).ok()?;
    let mut body = &raw[head_end + 4..];
    let mut chunked = false;
    for line in head.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked") {
            chunked = true;
        } else if name.eq_ignore_ascii_case("content-length") {
            let length: usize = value.parse().ok()?;
            body = body.get(..length)?;
        }
    }
    let body = if chunked {
        decode_chunked(body)?
    } else {
        body.to_vec()
    };
    Some(HttpReply { status, body })
}

fn decode_chunked(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = find(rest, b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

/// The bytes of a request as att firmware sends it (push.md §1): `Host`, `User-Agent: iClock Proxy/1.09`,
/// `Connection: close`, `Accept: */*`, and for a POST `Content-Length` but no `Content-Type`.
pub fn encode_request(method: &str, target: &str, host: &str, body: Option<&[u8]>) -> Vec<u8> {
    let mut request = format!(
        "{method} {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {USER_AGENT}\r\nConnection: close\r\nAccept: */*\r\n"
    )
    .into_bytes();
    if let Some(body) = body {
        request.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        request.extend_from_slice(body);
    } else {
        request.extend_from_slice(b"\r\n");
    }
    request
}

/// Why one exchange failed below HTTP.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// Connecting, writing or reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// No complete answer within the request timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The server closed the connection without a well-formed HTTP answer.
    #[error("malformed answer ({0} bytes)")]
    Malformed(usize),
}

/// Send one request on a new connection (from `local`, when given, with a port the kernel picks) and read the
/// answer until the server closes the connection.
///
/// # Errors
/// [`ExchangeError`]: connection refused or reset, timeout, or an answer that is not HTTP/1.x.
pub async fn exchange(
    addr: SocketAddr,
    local: Option<IpAddr>,
    request: &[u8],
    timeout: Duration,
) -> Result<HttpReply, ExchangeError> {
    let work = async {
        let mut stream = match local {
            Some(ip) => {
                let socket = if ip.is_ipv4() {
                    TcpSocket::new_v4()?
                } else {
                    TcpSocket::new_v6()?
                };
                socket.bind(SocketAddr::new(ip, 0))?;
                socket.connect(addr).await?
            }
            None => TcpStream::connect(addr).await?,
        };
        stream.set_nodelay(true)?;
        stream.write_all(request).await?;
        let mut raw = Vec::with_capacity(512);
        stream.read_to_end(&mut raw).await?;
        parse_response(&raw).ok_or(ExchangeError::Malformed(raw.len()))
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(result) => result,
        Err(_) => Err(ExchangeError::Timeout(timeout)),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Measurements
// ---------------------------------------------------------------------------------------------------------------

const HISTOGRAM_BUCKETS: usize = 128 + 40 * 64;

/// Latencies in microseconds, log-linear buckets: exact below 128 µs, then 64 buckets per power of two (at most
/// 1/64 ≈ 1.6 % relative error), up to about 2^47 µs. Fixed size (≈ 21 KB), so it is cheap to keep per request kind.
#[derive(Clone, PartialEq, Eq)]
pub struct LatencyHistogram {
    counts: Vec<u64>,
    n: u64,
    max_us: u64,
    sum_us: u64,
}

impl std::fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("n", &self.n)
            .field("p50_us", &self.percentile_us(0.5))
            .field("p99_us", &self.percentile_us(0.99))
            .field("max_us", &self.max_us)
            .finish()
    }
}

impl Default for LatencyHistogram {
    fn default() -> LatencyHistogram {
        LatencyHistogram {
            counts: vec![0; HISTOGRAM_BUCKETS],
            n: 0,
            max_us: 0,
            sum_us: 0,
        }
    }
}

fn bucket_of(us: u64) -> usize {
    if us < 128 {
        return usize::try_from(us).unwrap_or(0);
    }
    let exponent = u64::from(63 - us.leading_zeros()); // ≥ 7
    let sub = (us >> (exponent - 6)) & 63;
    let index = 128 + (exponent - 7) * 64 + sub;
    usize::try_from(index)
        .unwrap_or(HISTOGRAM_BUCKETS - 1)
        .min(HISTOGRAM_BUCKETS - 1)
}

/// The largest value that falls into bucket `index`.
fn bucket_top(index: usize) -> u64 {
    if index < 128 {
        return index as u64;
    }
    let exponent = (index as u64 - 128) / 64 + 7;
    let sub = (index as u64 - 128) % 64;
    ((64 + sub + 1) << (exponent - 6)) - 1
}

impl LatencyHistogram {
    /// Count one latency.
    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        if let Some(count) = self.counts.get_mut(bucket_of(us)) {
            *count += 1;
        }
        self.n += 1;
        self.max_us = self.max_us.max(us);
        self.sum_us = self.sum_us.saturating_add(us);
    }

    /// How many latencies were recorded.
    pub fn len(&self) -> u64 {
        self.n
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The `q` quantile (0.0–1.0) in microseconds: the top of the bucket holding it, capped at the maximum seen;
    /// 0 when empty.
    pub fn percentile_us(&self, q: f64) -> u64 {
        if self.n == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.n as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return bucket_top(index).min(self.max_us);
            }
        }
        self.max_us
    }

    /// The largest latency seen, microseconds.
    pub fn max_us(&self) -> u64 {
        self.max_us
    }

    /// The mean latency, microseconds (0 when empty).
    pub fn mean_us(&self) -> u64 {
        self.sum_us.checked_div(self.n).unwrap_or(0)
    }

    /// Add another histogram's counts to this one.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.n += other.n;
        self.max_us = self.max_us.max(other.max_us);
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
    }
}

/// The requests a simulated terminal makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// `GET /iclock/cdata?…&options=all` (push.md §3).
    Handshake,
    /// `GET /iclock/getrequest` (push.md §6).
    Poll,
    /// `POST /iclock/cdata?…&table=ATTLOG` (push.md §7.1).
    Attlog,
    /// `POST /iclock/cdata?…&table=OPERLOG` (push.md §7.2).
    Operlog,
    /// `POST /iclock/devicecmd` (push.md §9).
    DeviceCmd,
}

impl RequestKind {
    /// Every kind, in the order of [`FleetStats::kinds`].
    pub const ALL: [RequestKind; 5] = [
        RequestKind::Handshake,
        RequestKind::Poll,
        RequestKind::Attlog,
        RequestKind::Operlog,
        RequestKind::DeviceCmd,
    ];

    /// A short lowercase name (`handshake`, `poll`, `attlog`, `operlog`, `devicecmd`).
    pub fn name(self) -> &'static str {
        match self {
            RequestKind::Handshake => "handshake",
            RequestKind::Poll => "poll",
            RequestKind::Attlog => "attlog",
            RequestKind::Operlog => "operlog",
            RequestKind::DeviceCmd => "devicecmd",
        }
    }

    fn index(self) -> usize {
        match self {
            RequestKind::Handshake => 0,
            RequestKind::Poll => 1,
            RequestKind::Attlog => 2,
            RequestKind::Operlog => 3,
            RequestKind::DeviceCmd => 4,
        }
    }
}

/// What happened to the requests of one kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KindStats {
    /// Requests that got an HTTP answer or failed below HTTP.
    pub requests: u64,
    /// Answers the terminal counts as accepted ([`HttpReply::accepted`]).
    pub accepted: u64,
    /// HTTP answers not accepted (non-200, no `OK`, `UNKNOWN DEVICE`).
    pub refused: u64,
    /// Failures below HTTP: refused or reset connections, timeouts, malformed answers.
    pub transport_errors: u64,
    /// Latency of answered requests, from `connect` to the server closing the connection.
    pub latency: LatencyHistogram,
    /// Seconds from the first request's start to the last answer, the window used for rates.
    pub active_secs: f64,
    first_start: Option<Instant>,
    last_end: Option<Instant>,
}

impl KindStats {
    /// Answered requests per second over [`KindStats::active_secs`] (0 when nothing was answered).
    pub fn per_second(&self) -> f64 {
        let answered = self.requests - self.transport_errors;
        if self.active_secs > 0.0 {
            answered as f64 / self.active_secs
        } else {
            0.0
        }
    }

    fn count(
        &mut self,
        kind: RequestKind,
        started: Instant,
        ended: Instant,
        outcome: &Result<HttpReply, ExchangeError>,
    ) {
        self.requests += 1;
        self.first_start = Some(self.first_start.map_or(started, |t| t.min(started)));
        self.last_end = Some(self.last_end.map_or(ended, |t| t.max(ended)));
        if let (Some(first), Some(last)) = (self.first_start, self.last_end) {
            self.active_secs = last.saturating_duration_since(first).as_secs_f64();
        }
        match outcome {
            Ok(reply) => {
                self.latency
                    .record(ended.saturating_duration_since(started));
                if reply.accepted_as(kind) {
                    self.accepted += 1;
                } else {
                    self.refused += 1;
                }
            }
            Err(_) => self.transport_errors += 1,
        }
    }
}

/// Counters of a fleet run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetStats {
    /// Per request kind, indexed like [`RequestKind::ALL`].
    pub kinds: [KindStats; 5],
    /// Punches in acknowledged ATTLOG batches (re-sends of acknowledged batches not counted twice).
    pub punches_acked: u64,
    /// Punches per second over the ATTLOG window ([`KindStats::active_secs`] of `attlog`).
    pub punches_per_sec: f64,
    /// ATTLOG batches acknowledged (first acknowledgement only).
    pub batches_acked: u64,
    /// ATTLOG batches sent again because they were not acknowledged.
    pub batches_retried: u64,
    /// Acknowledged batches sent again on purpose ([`PushSimConfig::resend_every`]).
    pub batches_resent: u64,
    /// Acknowledgements whose `OK:<n>` did not match the number of lines sent.
    pub ack_count_mismatches: u64,
    /// Commands received in poll answers.
    pub commands_received: u64,
    /// `UNKNOWN DEVICE` answers (terminal not approved).
    pub unknown_device: u64,
    /// The first transport error seen, for the summary.
    pub first_error: Option<String>,
}

impl FleetStats {
    /// The counters of one request kind.
    pub fn kind(&self, kind: RequestKind) -> &KindStats {
        &self.kinds[kind.index()]
    }

    /// All requests of every kind.
    pub fn requests(&self) -> u64 {
        self.kinds.iter().map(|k| k.requests).sum()
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The fleet
// ---------------------------------------------------------------------------------------------------------------

/// How the fleet behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushSimConfig {
    /// The server, `http://host:port` (a trailing `/` is ignored; `/iclock/…` is appended).
    pub server: String,
    /// How many terminals.
    pub devices: usize,
    /// Serial numbers are this prefix followed by the terminal's number, zero-padded so the SN has 13 characters
    /// when the prefix allows (e.g. `SIM` → `SIM0000000001`).
    pub sn_prefix: String,
    /// The punches each terminal sends.
    pub plan: PunchPlan,
    /// Punches per ATTLOG POST.
    pub punches_per_batch: usize,
    /// ATTLOG batches per terminal; `None`: keep pushing until the run ends.
    pub batches: Option<u64>,
    /// Time between polls; zero polls after every batch and back-to-back when there is nothing to upload.
    pub poll_interval: Duration,
    /// Time between the starts of two ATTLOG batches of one terminal; zero pushes them back to back (a terminal
    /// draining a backlog).
    pub batch_interval: Duration,
    /// Stop after this long (requests in flight finish); `None`: when every terminal has sent its batches.
    pub duration: Option<Duration>,
    /// `USER` lines uploaded on OPERLOG once after the first handshake (0: no OPERLOG upload).
    pub operlog_users: u32,
    /// Re-send every n-th acknowledged ATTLOG batch once more (the server must not store it twice).
    pub resend_every: Option<u64>,
    /// At most this many requests in flight over the whole fleet (connections are opened per request).
    pub max_in_flight: usize,
    /// Terminals start spread evenly over this time (0: all at once).
    pub ramp_up: Duration,
    /// First retry delay after a failed request; the n-th consecutive retry waits n times this, the fourth and
    /// later [`PushSimConfig::error_delay`] (firmware: 300, 600, 900 ms, then `ErrorDelay`, push.md §7).
    pub retry_delay: Duration,
    /// Wait after `UNKNOWN DEVICE` or after three failed attempts (the handshake's `ErrorDelay`).
    pub error_delay: Duration,
    /// A request with no complete answer in this time counts as a transport error.
    pub request_timeout: Duration,
    /// When the server is on 127.0.0.1, each terminal connects from its own loopback address (127.0.0.2, …),
    /// as terminals on a site have their own IPs. Besides realism this keeps the kernel from running out of
    /// (address, port) pairs at tens of thousands of `Connection: close` requests per second.
    pub loopback_address_per_terminal: bool,
}

impl PushSimConfig {
    /// One terminal `SIM0000000001` pushing 10 batches of 10 punches to `server`, polling every 10 s, uploading
    /// 10 users on OPERLOG, at most 64 requests in flight.
    pub fn new(server: impl Into<String>) -> PushSimConfig {
        PushSimConfig {
            server: server.into(),
            devices: 1,
            sn_prefix: "SIM".to_owned(),
            plan: PunchPlan::default(),
            punches_per_batch: 10,
            batches: Some(10),
            poll_interval: Duration::from_secs(10),
            batch_interval: Duration::ZERO,
            duration: None,
            operlog_users: 10,
            resend_every: None,
            max_in_flight: 64,
            ramp_up: Duration::ZERO,
            retry_delay: Duration::from_millis(300),
            error_delay: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            loopback_address_per_terminal: true,
        }
    }

    /// The serial number of terminal `index` (0-based).
    pub fn sn(&self, index: usize) -> String {
        let number = (index + 1).to_string();
        let width = 13usize
            .saturating_sub(self.sn_prefix.len())
            .max(number.len());
        format!("{}{number:0>width$}", self.sn_prefix)
    }
}

/// What one terminal sent and had acknowledged, for [`check_device`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceReport {
    /// Its serial number.
    pub sn: String,
    /// Punch numbers ([`PunchPlan`] `seq`) of acknowledged batches, merged, ascending.
    pub acked: Vec<Range<u64>>,
    /// One past the highest punch number sent (acknowledged or not).
    pub sent_end: u64,
    /// Whether a handshake was accepted at least once.
    pub handshaken: bool,
}

impl DeviceReport {
    /// How many distinct punches were acknowledged.
    pub fn n_acked(&self) -> u64 {
        self.acked.iter().map(|r| r.end - r.start).sum()
    }

    fn ack(&mut self, seqs: Range<u64>) {
        if let Some(last) = self.acked.last_mut() {
            if last.end == seqs.start {
                last.end = seqs.end;
                return;
            }
        }
        self.acked.push(seqs);
    }
}

/// The outcome of [`run_fleet`].
#[derive(Debug, Clone)]
pub struct FleetReport {
    /// Wall time of the whole run.
    pub elapsed: Duration,
    /// Counters and latencies.
    pub stats: FleetStats,
    /// One entry per terminal, in SN order.
    pub devices: Vec<DeviceReport>,
}

/// Why a fleet could not run.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// `server` is not `http://host:port`.
    #[error("server must be http://host:port, got {0:?}")]
    BadServer(String),
    /// The host did not resolve.
    #[error("resolving {host}: {source}")]
    Resolve {
        /// The host:port given.
        host: String,
        /// The resolver error.
        #[source]
        source: std::io::Error,
    },
    /// Nothing answers at the server's address (connection refused, no route, or no TCP handshake within the
    /// request timeout, at most 10 s), checked once before the terminals start.
    #[error("cannot reach the server at {addr}: {reason}")]
    Unreachable {
        /// The resolved address.
        addr: SocketAddr,
        /// What went wrong, e.g. "connection refused (os error 111)".
        reason: String,
    },
    /// A terminal task panicked or was cancelled.
    #[error("terminal task failed: {0}")]
    Task(String),
}

/// Stop signal shared by the terminals: set at the deadline or when the caller's shutdown future resolves.
#[derive(Default)]
struct Stop {
    flag: AtomicBool,
    notify: Notify,
}

impl Stop {
    fn is_set(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    fn set(&self) {
        self.flag.store(true, Ordering::Relaxed);
        self.notify.notify_waiters();
    }

    /// Sleep for `duration`; `false` if the stop signal came first (or was already set).
    async fn sleep(&self, duration: Duration) -> bool {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.is_set() {
            return false;
        }
        tokio::select! {
            () = tokio::time::sleep(duration) => !self.is_set(),
            () = notified => false,
        }
    }
}

struct Fleet {
    config: PushSimConfig,
    addr: SocketAddr,
    host: String,
    stats: Mutex<FleetStats>,
    in_flight: Semaphore,
    stop: Stop,
}

enum Sent {
    Accepted(HttpReply),
    UnknownDevice,
    Stopped,
}

impl Fleet {
    fn with_stats(&self, f: impl FnOnce(&mut FleetStats)) {
        if let Ok(mut stats) = self.stats.lock() {
            f(&mut stats);
        }
    }

    /// One request, counted.
    async fn send(
        &self,
        kind: RequestKind,
        local: Option<IpAddr>,
        request: &[u8],
    ) -> Result<HttpReply, ExchangeError> {
        let _permit = self.in_flight.acquire().await;
        let started = Instant::now();
        let outcome = exchange(self.addr, local, request, self.config.request_timeout).await;
        let ended = Instant::now();
        self.with_stats(|stats| {
            stats.kinds[kind.index()].count(kind, started, ended, &outcome);
            if let Err(e) = &outcome {
                if stats.first_error.is_none() {
                    stats.first_error = Some(format!("{}: {e}", kind.name()));
                }
            }
        });
        outcome
    }

    /// Send until accepted, like firmware: retry after 1×, 2×, 3× `retry_delay`, then every `error_delay`.
    async fn send_until_accepted(
        &self,
        kind: RequestKind,
        local: Option<IpAddr>,
        request: &[u8],
        on_retry: impl Fn(&Fleet),
    ) -> Sent {
        let mut attempt: u32 = 0;
        loop {
            if self.stop.is_set() {
                return Sent::Stopped;
            }
            let wait = match self.send(kind, local, request).await {
                Ok(reply) if reply.accepted_as(kind) => return Sent::Accepted(reply),
                Ok(reply) if reply.unknown_device() => {
                    self.with_stats(|s| s.unknown_device += 1);
                    if kind != RequestKind::Handshake {
                        return Sent::UnknownDevice;
                    }
                    self.config.error_delay
                }
                _ => {
                    attempt += 1;
                    if attempt <= 3 {
                        self.config.retry_delay * attempt
                    } else {
                        self.config.error_delay
                    }
                }
            };
            if !self.stop.sleep(wait).await {
                return Sent::Stopped;
            }
            on_retry(self);
        }
    }
}

/// The command word a terminal echoes as `CMD=` (push.md §9): `DATA` for data commands, two words for
/// `CLEAR LOG`, `SET OPTION`, `RELOAD OPTIONS`, `VERIFY SUM`, otherwise the first word.
fn command_word(text: &str) -> String {
    let mut words = text.split([' ', '\t']).filter(|w| !w.is_empty());
    let first = words.next().unwrap_or("").to_owned();
    if ["CLEAR", "SET", "RELOAD", "VERIFY"]
        .iter()
        .any(|w| first.eq_ignore_ascii_case(w))
    {
        if let Some(second) = words.next() {
            return format!("{first} {second}");
        }
    }
    first
}

/// The `C:<id>:<text>` lines of a poll answer (push.md §8.1), as `(id, text)`.
pub fn parse_commands(body: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(body)
        .split(['\r', '\n'])
        .filter_map(|line| {
            let rest = line.strip_prefix("C:")?;
            let (id, text) = rest.split_once(':')?;
            (!id.is_empty() && !text.is_empty()).then(|| (id.to_owned(), text.to_owned()))
        })
        .collect()
}

/// The `devicecmd` body answering `commands` with `Return=0` (push.md §9), one `ID=..&Return=0&CMD=..` line each.
pub fn command_results_body(commands: &[(String, String)]) -> Vec<u8> {
    let mut body = String::new();
    for (id, text) in commands {
        body.push_str(&format!("ID={id}&Return=0&CMD={}\n", command_word(text)));
    }
    body.into_bytes()
}

struct Terminal {
    fleet: Arc<Fleet>,
    /// The address this terminal connects from (`None`: the kernel's choice).
    local: Option<IpAddr>,
    report: DeviceReport,
    next_seq: u64,
    batches_acked: u64,
    operlog_sent: bool,
}

impl Terminal {
    fn target(&self, path_and_query: &str) -> String {
        format!("/iclock/{path_and_query}")
    }

    /// Handshake, then the first poll with `INFO=`, then OPERLOG once. `false` when stopped.
    async fn connect(&mut self) -> bool {
        let fleet = Arc::clone(&self.fleet);
        let sn = self.report.sn.clone();
        let handshake = encode_request(
            "GET",
            &self.target(&format!(
                "cdata?SN={sn}&options=all&pushver={PUSH_VERSION}&language=69"
            )),
            &fleet.host,
            None,
        );
        match fleet
            .send_until_accepted(RequestKind::Handshake, self.local, &handshake, |_| {})
            .await
        {
            Sent::Accepted(_) => self.report.handshaken = true,
            Sent::UnknownDevice | Sent::Stopped => return false,
        }
        let info_poll = encode_request(
            "GET",
            &self.target(&format!("getrequest?SN={sn}&INFO={INFO}")),
            &fleet.host,
            None,
        );
        match fleet
            .send_until_accepted(RequestKind::Poll, self.local, &info_poll, |_| {})
            .await
        {
            Sent::Accepted(reply) => {
                if !self.run_commands(&reply).await {
                    return false;
                }
            }
            Sent::UnknownDevice => {
                self.report.handshaken = false;
                return true;
            }
            Sent::Stopped => return false,
        }
        if !self.operlog_sent && fleet.config.operlog_users > 0 {
            let body = fleet.config.plan.operlog_body(fleet.config.operlog_users);
            let request = encode_request(
                "POST",
                &self.target(&format!("cdata?SN={sn}&table=OPERLOG&Stamp=9999")),
                &fleet.host,
                Some(&body),
            );
            match fleet
                .send_until_accepted(RequestKind::Operlog, self.local, &request, |_| {})
                .await
            {
                Sent::Accepted(_) => self.operlog_sent = true,
                Sent::UnknownDevice => self.report.handshaken = false,
                Sent::Stopped => return false,
            }
        }
        true
    }

    /// Execute the commands of a poll answer and post their results. Returns `false` when stopped; sets
    /// `handshaken = false` after `REBOOT`/`CHECK` so the terminal greets the server again.
    async fn run_commands(&mut self, reply: &HttpReply) -> bool {
        let commands = parse_commands(&reply.body);
        if commands.is_empty() {
            return true;
        }
        let fleet = Arc::clone(&self.fleet);
        fleet.with_stats(|s| s.commands_received += commands.len() as u64);
        let body = command_results_body(&commands);
        let request = encode_request(
            "POST",
            &self.target(&format!("devicecmd?SN={}", self.report.sn)),
            &fleet.host,
            Some(&body),
        );
        if matches!(
            fleet
                .send_until_accepted(RequestKind::DeviceCmd, self.local, &request, |_| {})
                .await,
            Sent::Stopped
        ) {
            return false;
        }
        if commands.iter().any(|(_, text)| {
            ["REBOOT", "CHECK"].contains(&command_word(text).to_ascii_uppercase().as_str())
        }) {
            self.report.handshaken = false;
        }
        true
    }

    /// One plain poll. `Some(true)` if it delivered commands, `None` when stopped or refused.
    async fn poll(&mut self) -> Option<bool> {
        let fleet = Arc::clone(&self.fleet);
        let request = encode_request(
            "GET",
            &self.target(&format!("getrequest?SN={}", self.report.sn)),
            &fleet.host,
            None,
        );
        match fleet
            .send_until_accepted(RequestKind::Poll, self.local, &request, |_| {})
            .await
        {
            Sent::Accepted(reply) => {
                let had_commands = !parse_commands(&reply.body).is_empty();
                if !self.run_commands(&reply).await {
                    return None;
                }
                Some(had_commands)
            }
            Sent::UnknownDevice => {
                self.report.handshaken = false;
                Some(false)
            }
            Sent::Stopped => None,
        }
    }

    /// Push the next batch until acknowledged (and re-send it once more when due). `false` when stopped.
    async fn push_batch(&mut self) -> bool {
        let fleet = Arc::clone(&self.fleet);
        let config = &fleet.config;
        let n = config.punches_per_batch.max(1) as u64;
        let seqs = self.next_seq..self.next_seq + n;
        let body = config.plan.attlog_body(seqs.clone());
        let request = encode_request(
            "POST",
            &self.target(&format!(
                "cdata?SN={}&table=ATTLOG&Stamp=9999",
                self.report.sn
            )),
            &fleet.host,
            Some(&body),
        );
        self.report.sent_end = self.report.sent_end.max(seqs.end);
        let reply = match fleet
            .send_until_accepted(RequestKind::Attlog, self.local, &request, |f| {
                f.with_stats(|s| s.batches_retried += 1)
            })
            .await
        {
            Sent::Accepted(reply) => reply,
            Sent::UnknownDevice => {
                self.report.handshaken = false;
                return true;
            }
            Sent::Stopped => return false,
        };
        if reply.ok_count() != Some(n) {
            fleet.with_stats(|s| s.ack_count_mismatches += 1);
        }
        self.report.ack(seqs.clone());
        self.next_seq = seqs.end;
        self.batches_acked += 1;
        fleet.with_stats(|s| {
            s.batches_acked += 1;
            s.punches_acked += n;
        });
        if config
            .resend_every
            .is_some_and(|every| every > 0 && self.batches_acked % every == 0)
        {
            match fleet
                .send_until_accepted(RequestKind::Attlog, self.local, &request, |_| {})
                .await
            {
                Sent::Accepted(reply) => {
                    fleet.with_stats(|s| {
                        s.batches_resent += 1;
                        if reply.ok_count() != Some(n) {
                            s.ack_count_mismatches += 1;
                        }
                    });
                }
                Sent::UnknownDevice => self.report.handshaken = false,
                Sent::Stopped => return false,
            }
        }
        true
    }

    fn has_batches_left(&self) -> bool {
        self.fleet
            .config
            .batches
            .is_none_or(|k| self.batches_acked < k)
    }

    async fn run(mut self, index: usize) -> DeviceReport {
        let fleet = Arc::clone(&self.fleet);
        let config = &fleet.config;
        if !config.ramp_up.is_zero() && config.devices > 1 {
            let offset = config.ramp_up.mul_f64(index as f64 / config.devices as f64);
            if !fleet.stop.sleep(offset).await {
                return self.report;
            }
        }
        let mut next_poll = Instant::now() + config.poll_interval;
        let mut next_batch = Instant::now();
        let mut polled_last = false;
        loop {
            if fleet.stop.is_set() {
                break;
            }
            let needs_operlog = |t: &Terminal| !t.operlog_sent && config.operlog_users > 0;
            if !self.report.handshaken || needs_operlog(&self) {
                if !self.connect().await {
                    break;
                }
                if !self.report.handshaken || needs_operlog(&self) {
                    // Refused (`UNKNOWN DEVICE`) after the greeting: wait `ErrorDelay`, then greet again.
                    if !fleet.stop.sleep(config.error_delay).await {
                        break;
                    }
                    continue;
                }
                next_poll = Instant::now() + config.poll_interval;
            }
            let uploading = self.has_batches_left();
            if !uploading && config.duration.is_none() {
                break;
            }
            let now = Instant::now();
            // With a zero poll interval an uploading terminal alternates poll and batch.
            let must_batch = uploading && polled_last && config.poll_interval.is_zero();
            if now >= next_poll && !must_batch {
                polled_last = true;
                match self.poll().await {
                    None => break,
                    // Firmware polls again after 1 s when the answer carried commands (push.md §6).
                    Some(true) => {
                        next_poll =
                            Instant::now() + config.poll_interval.min(Duration::from_secs(1))
                    }
                    Some(false) => next_poll = Instant::now() + config.poll_interval,
                }
                continue;
            }
            if uploading && now >= next_batch {
                polled_last = false;
                if !self.push_batch().await {
                    break;
                }
                next_batch = Instant::now() + config.batch_interval;
                continue;
            }
            let wake = if must_batch {
                next_batch
            } else if uploading {
                next_poll.min(next_batch)
            } else {
                next_poll
            };
            if !fleet.stop.sleep(wake.saturating_duration_since(now)).await {
                break;
            }
        }
        self.report
    }
}

/// Terminal `index`'s own loopback address (127.0.0.2, 127.0.0.3, …, wrapping inside 127/8) when the server
/// listens on 127.0.0.1 and [`PushSimConfig::loopback_address_per_terminal`] is set.
fn local_address(config: &PushSimConfig, server: SocketAddr, index: usize) -> Option<IpAddr> {
    if !config.loopback_address_per_terminal || server.ip() != IpAddr::V4(Ipv4Addr::LOCALHOST) {
        return None;
    }
    let offset = u32::try_from(index % 0x00FF_FFF0).unwrap_or(0) + 2;
    Some(IpAddr::V4(Ipv4Addr::from(0x7F00_0000 | offset)))
}

fn resolve_server(server: &str) -> Result<String, FleetError> {
    let authority = server
        .trim_end_matches('/')
        .strip_prefix("http://")
        .filter(|a| !a.is_empty() && !a.contains('/'))
        .ok_or_else(|| FleetError::BadServer(server.to_owned()))?;
    Ok(authority.to_owned())
}

/// Run a fleet of terminals against `config.server` until each has sent its batches, `config.duration` has
/// passed, or `shutdown` resolves — whichever comes first; requests in flight then finish (each bounded by
/// `request_timeout`). Spawns one task per terminal on the current runtime; a current-thread runtime is the
/// cheapest host for a load generator.
///
/// # Errors
/// [`FleetError`]: a server address that is not `http://host:port`, does not resolve or cannot be reached
/// (checked once before the terminals start), or a terminal task that panicked. Failed requests are not errors: they are counted in [`FleetStats`] and retried.
pub async fn run_fleet(
    config: PushSimConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<FleetReport, FleetError> {
    let host = resolve_server(&config.server)?;
    let addr = tokio::net::lookup_host(&host)
        .await
        .map_err(|source| FleetError::Resolve {
            host: host.clone(),
            source,
        })?
        .next()
        .ok_or_else(|| FleetError::Resolve {
            host: host.clone(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
        })?;
    // Terminals retry forever, as firmware does; a server that is not there at all is a mistake to report
    // now, not a run of silent retries.
    let wait = config.request_timeout.min(Duration::from_secs(10));
    match tokio::time::timeout(wait, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            return Err(FleetError::Unreachable {
                addr,
                reason: e.to_string().to_lowercase(),
            })
        }
        Err(_) => {
            return Err(FleetError::Unreachable {
                addr,
                reason: format!("no answer within {} s", wait.as_secs_f64()),
            })
        }
    }
    let started = Instant::now();
    let deadline = config.duration.map(|d| started + d);
    let fleet = Arc::new(Fleet {
        in_flight: Semaphore::new(config.max_in_flight.max(1)),
        addr,
        host,
        stats: Mutex::new(FleetStats::default()),
        stop: Stop::default(),
        config,
    });
    let mut tasks = Vec::with_capacity(fleet.config.devices);
    for index in 0..fleet.config.devices {
        let terminal = Terminal {
            local: local_address(&fleet.config, addr, index),
            fleet: Arc::clone(&fleet),
            report: DeviceReport {
                sn: fleet.config.sn(index),
                acked: Vec::new(),
                sent_end: 0,
                handshaken: false,
            },
            next_seq: 0,
            batches_acked: 0,
            operlog_sent: false,
        };
        tasks.push(tokio::spawn(terminal.run(index)));
    }
    let all_done = async {
        let mut reports = Vec::with_capacity(tasks.len());
        for task in tasks {
            reports.push(task.await.map_err(|e| FleetError::Task(e.to_string())));
        }
        reports
    };
    tokio::pin!(all_done);
    tokio::pin!(shutdown);
    let until_deadline = async {
        match deadline {
            Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(until_deadline);
    let results = tokio::select! {
        results = &mut all_done => results,
        () = &mut shutdown => { fleet.stop.set(); all_done.await }
        () = &mut until_deadline => { fleet.stop.set(); all_done.await }
    };
    let elapsed = started.elapsed();
    let devices = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    let mut stats = fleet.stats.lock().map(|s| s.clone()).unwrap_or_default();
    let attlog_secs = stats.kind(RequestKind::Attlog).active_secs;
    if attlog_secs > 0.0 {
        stats.punches_per_sec = stats.punches_acked as f64 / attlog_secs;
    }
    Ok(FleetReport {
        elapsed,
        stats,
        devices,
    })
}

// ---------------------------------------------------------------------------------------------------------------
// The exactly-once check
// ---------------------------------------------------------------------------------------------------------------

/// A punch as the server stored it, for [`check_device`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPunch {
    /// PIN as stored.
    pub pin: String,
    /// Terminal local wall time as stored.
    pub punched_at: NaiveDateTime,
    /// Punch state as stored (`None` when the server kept none).
    pub punch_state: Option<u16>,
}

/// The result of comparing what terminals had acknowledged with what the server stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExactlyOnce {
    /// Distinct punches the server acknowledged.
    pub acknowledged: u64,
    /// Punches the server holds for the checked terminals.
    pub stored: u64,
    /// Acknowledged punches the server does not hold.
    pub missing: u64,
    /// Extra copies: stored punches whose number was already seen.
    pub duplicated: u64,
    /// Stored punches the terminal never sent (wrong PIN, time or punch state, or never sent).
    pub unexpected: u64,
    /// Punches sent but not acknowledged that the server holds (a request cut at the end of the run); allowed.
    pub stored_unacknowledged: u64,
}

impl ExactlyOnce {
    /// Whether every acknowledged punch is stored exactly once and nothing else is stored.
    pub fn holds(&self) -> bool {
        self.missing == 0 && self.duplicated == 0 && self.unexpected == 0
    }

    /// Add the counts of another terminal.
    pub fn add(&mut self, other: ExactlyOnce) {
        self.acknowledged += other.acknowledged;
        self.stored += other.stored;
        self.missing += other.missing;
        self.duplicated += other.duplicated;
        self.unexpected += other.unexpected;
        self.stored_unacknowledged += other.stored_unacknowledged;
    }
}

/// Compare what `device` had acknowledged with `stored`, everything the server holds for its SN.
pub fn check_device(
    plan: &PunchPlan,
    device: &DeviceReport,
    stored: impl IntoIterator<Item = StoredPunch>,
) -> ExactlyOnce {
    let mut result = ExactlyOnce {
        acknowledged: device.n_acked(),
        ..ExactlyOnce::default()
    };
    let mut seen = vec![false; usize::try_from(device.sent_end).unwrap_or(0)];
    for punch in stored {
        result.stored += 1;
        let slot = plan
            .seq_of(&punch.pin, punch.punched_at, punch.punch_state)
            .and_then(|seq| usize::try_from(seq).ok())
            .and_then(|seq| seen.get_mut(seq));
        match slot {
            Some(slot) if *slot => result.duplicated += 1,
            Some(slot) => *slot = true,
            None => result.unexpected += 1,
        }
    }
    let is_acked = |seq: u64| device.acked.iter().any(|r| r.contains(&seq));
    for range in &device.acked {
        for seq in range.clone() {
            if !usize::try_from(seq)
                .ok()
                .and_then(|s| seen.get(s))
                .copied()
                .unwrap_or(false)
            {
                result.missing += 1;
            }
        }
    }
    result.stored_unacknowledged = seen
        .iter()
        .enumerate()
        .filter(|(seq, present)| **present && !is_acked(*seq as u64))
        .count() as u64;
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn plan_lines_are_att_lines_with_padded_pins() {
        let plan = PunchPlan {
            first_punch_at: at("2026-01-05 07:00:00"),
            users: 5,
        };
        let body = plan.attlog_body(3..6);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "4\t2026-01-05 07:00:03\t0\t15\t0\t0\t0\n\
             00005\t2026-01-05 07:00:04\t0\t1\t0\t0\t0\n\
             1\t2026-01-05 07:00:05\t1\t2\t0\t0\t0\n"
        );
        let parsed = zk_push::attlog::parse_attlog(&plan.attlog_body(0..12));
        assert_eq!(parsed.len(), 12);
        for (seq, line) in parsed.into_iter().enumerate() {
            let record = line.unwrap();
            assert_eq!(
                plan.seq_of(&record.pin, record.time, record.status),
                Some(seq as u64)
            );
        }
    }

    #[test]
    fn seq_of_rejects_a_punch_that_was_not_sent() {
        let plan = PunchPlan::default();
        let punch = plan.punch(7).unwrap();
        assert_eq!(plan.seq_of(&punch.pin, punch.time, punch.status), Some(7));
        assert_eq!(plan.seq_of("0008", punch.time, punch.status), None);
        assert_eq!(plan.seq_of(&punch.pin, punch.time, Some(5)), None);
        assert_eq!(
            plan.seq_of(&punch.pin, at("2020-01-01 00:00:00"), punch.status),
            None
        );
    }

    #[test]
    fn operlog_body_parses_as_users() {
        let plan = PunchPlan::default();
        let parsed = zk_push::operlog::parse_operlog(&plan.operlog_body(5));
        assert_eq!(parsed.len(), 6);
        let pins: Vec<String> = parsed
            .into_iter()
            .filter_map(|r| match r.unwrap() {
                zk_push::operlog::OperlogRecord::User(u) => Some(u.pin),
                _ => None,
            })
            .collect();
        assert_eq!(pins, ["1", "2", "3", "4", "00005"]);
    }

    #[test]
    fn request_bytes_are_what_firmware_sends() {
        assert_eq!(
            encode_request("POST", "/iclock/cdata?SN=A&table=ATTLOG&Stamp=9999", "h:1", Some(b"x\n")),
            b"POST /iclock/cdata?SN=A&table=ATTLOG&Stamp=9999 HTTP/1.1\r\nHost: h:1\r\nUser-Agent: iClock Proxy/1.09\r\n\
              Connection: close\r\nAccept: */*\r\nContent-Length: 2\r\n\r\nx\n"
        );
        assert_eq!(
            encode_request("GET", "/iclock/getrequest?SN=A", "h:1", None),
            b"GET /iclock/getrequest?SN=A HTTP/1.1\r\nHost: h:1\r\nUser-Agent: iClock Proxy/1.09\r\n\
              Connection: close\r\nAccept: */*\r\n\r\n"
        );
    }

    #[test]
    fn responses_parse_with_length_chunked_and_refusals() {
        let reply = parse_response(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\nOK:10",
        )
        .unwrap();
        assert_eq!(
            reply,
            HttpReply {
                status: 200,
                body: b"OK:10".to_vec()
            }
        );
        assert!(reply.accepted());
        assert_eq!(reply.ok_count(), Some(10));
        let chunked = parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nOK:\r\n2\r\n 7\r\n0\r\n\r\n").unwrap();
        assert_eq!(chunked.body, b"OK: 7");
        assert_eq!(chunked.ok_count(), Some(7));
        let unknown = parse_response(b"HTTP/1.1 200 OK\r\n\r\nUNKNOWN DEVICE").unwrap();
        assert!(unknown.unknown_device());
        assert!(!unknown.accepted());
        let busy =
            parse_response(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 2\r\n\r\nOK")
                .unwrap();
        assert_eq!(busy.status, 503);
        assert!(!busy.accepted());
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nOK"),
            None
        );
        assert_eq!(parse_response(b"garbage"), None);
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
            None
        );
    }

    #[test]
    fn commands_are_answered_with_their_word() {
        let commands =
            parse_commands(b"C:12:DATA UPDATE USERINFO PIN=1\tName=A\nC:13:REBOOT\r\nC::x\nOK\n");
        assert_eq!(
            commands,
            [
                (
                    "12".to_owned(),
                    "DATA UPDATE USERINFO PIN=1\tName=A".to_owned()
                ),
                ("13".to_owned(), "REBOOT".to_owned())
            ]
        );
        assert_eq!(
            command_results_body(&commands),
            b"ID=12&Return=0&CMD=DATA\nID=13&Return=0&CMD=REBOOT\n"
        );
        assert_eq!(command_word("CLEAR LOG"), "CLEAR LOG");
        assert_eq!(command_word("SET OPTION Delay=10"), "SET OPTION");
    }

    #[test]
    fn histogram_percentiles_are_within_two_percent() {
        let mut h = LatencyHistogram::default();
        for us in 1..=10_000u64 {
            h.record(Duration::from_micros(us));
        }
        assert_eq!(h.len(), 10_000);
        let p50 = h.percentile_us(0.5);
        let p99 = h.percentile_us(0.99);
        assert!((5000..=5080).contains(&p50), "p50 {p50}");
        assert!((9900..=10_000).contains(&p99), "p99 {p99}");
        assert_eq!(h.percentile_us(1.0), 10_000);
        assert_eq!(h.max_us(), 10_000);
        assert_eq!(h.mean_us(), 5000);
        for index in 0..HISTOGRAM_BUCKETS - 1 {
            assert_eq!(bucket_of(bucket_top(index)), index);
            assert_eq!(bucket_of(bucket_top(index) + 1), index + 1);
        }
    }

    #[test]
    fn sn_is_thirteen_characters() {
        let config = PushSimConfig::new("http://127.0.0.1:1");
        assert_eq!(config.sn(0), "SIM0000000001");
        let mut long = config.clone();
        long.sn_prefix = "BENCHRUN12345X".into();
        assert_eq!(long.sn(41), "BENCHRUN12345X42");
    }

    #[test]
    fn check_finds_missing_duplicated_and_foreign_punches() {
        let plan = PunchPlan::default();
        let device = DeviceReport {
            sn: "S".into(),
            acked: vec![0..4, 6..8],
            sent_end: 10,
            handshaken: true,
        };
        let stored = |seq: u64| {
            let p = plan.punch(seq).unwrap();
            StoredPunch {
                pin: p.pin,
                punched_at: p.time,
                punch_state: p.status,
            }
        };
        let all: Vec<StoredPunch> = [0, 1, 2, 3, 6, 7].into_iter().map(stored).collect();
        let good = check_device(&plan, &device, all.clone());
        assert!(good.holds());
        assert_eq!(
            (good.acknowledged, good.stored, good.stored_unacknowledged),
            (6, 6, 0)
        );

        let mut bad = all;
        bad.remove(1); // seq 1 missing
        bad.push(stored(7)); // seq 7 twice
        bad.push(stored(8)); // sent, not acknowledged: allowed
        bad.push(StoredPunch {
            pin: "x".into(),
            punched_at: plan.first_punch_at,
            punch_state: Some(0),
        });
        let result = check_device(&plan, &device, bad);
        assert_eq!(
            result,
            ExactlyOnce {
                acknowledged: 6,
                stored: 8,
                missing: 1,
                duplicated: 1,
                unexpected: 1,
                stored_unacknowledged: 1
            }
        );
        assert!(!result.holds());
    }

    /// What the fake server saw.
    #[derive(Default)]
    struct Seen {
        heads: Vec<String>,
        peers: std::collections::BTreeSet<IpAddr>,
        info_polls: usize,
        polls: std::collections::HashMap<String, usize>,
        attlog_attempts: std::collections::HashMap<String, usize>,
        stored: std::collections::HashMap<String, std::collections::BTreeSet<String>>,
        devicecmd: Vec<String>,
    }

    fn query_value<'a>(target: &'a str, key: &str) -> Option<&'a str> {
        target
            .split_once('?')?
            .1
            .split('&')
            .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
    }

    /// A push server in miniature: greets, hands out two commands on each terminal's first poll, refuses each
    /// terminal's first ATTLOG POST with 503, then stores lines (as a set: dedupe) and answers `OK:<n>`.
    async fn fake_server(listener: tokio::net::TcpListener, seen: Arc<Mutex<Seen>>) {
        loop {
            let Ok((mut stream, peer)) = listener.accept().await else {
                return;
            };
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let mut raw = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head, body) = loop {
                    let n = stream.read(&mut chunk).await.unwrap();
                    assert!(n > 0, "request cut short");
                    raw.extend_from_slice(&chunk[..n]);
                    let Some(at) = find(&raw, b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8(raw[..at].to_vec()).unwrap();
                    let length = head
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .map_or(0, |v| v.parse::<usize>().unwrap());
                    if raw.len() >= at + 4 + length {
                        break (head, raw[at + 4..at + 4 + length].to_vec());
                    }
                };
                let target = head.split(' ').nth(1).unwrap().to_owned();
                let sn = query_value(&target, "SN").unwrap().to_owned();
                let body = String::from_utf8(body).unwrap();
                let (status, reply) = {
                    let mut seen = seen.lock().unwrap();
                    seen.heads.push(head.clone());
                    seen.peers.insert(peer.ip());
                    if target.contains("options=all") {
                        (
                            200,
                            format!("GET OPTION FROM: {sn}\nDelay=10\nServerVer=2.4.1\n"),
                        )
                    } else if target.starts_with("/iclock/getrequest") {
                        if target.contains("&INFO=") {
                            seen.info_polls += 1;
                        }
                        let polls = seen.polls.entry(sn.clone()).or_default();
                        *polls += 1;
                        if *polls == 1 {
                            (
                                200,
                                "C:101:DATA UPDATE USERINFO PIN=1\tName=A\nC:102:INFO\n".to_owned(),
                            )
                        } else {
                            (200, "OK".to_owned())
                        }
                    } else if target.starts_with("/iclock/devicecmd") {
                        seen.devicecmd.push(body);
                        (200, "OK".to_owned())
                    } else if target.contains("table=OPERLOG") {
                        (200, format!("OK:{}", body.lines().count()))
                    } else if target.contains("table=ATTLOG") {
                        let attempts = seen.attlog_attempts.entry(sn.clone()).or_default();
                        *attempts += 1;
                        if *attempts == 1 {
                            (503, "storage unavailable".to_owned())
                        } else {
                            let lines = seen.stored.entry(sn).or_default();
                            for line in body.lines() {
                                lines.insert(line.to_owned());
                            }
                            (200, format!("OK:{}", body.lines().count()))
                        }
                    } else {
                        (404, String::new())
                    }
                };
                let answer = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                    reply.len()
                );
                stream.write_all(answer.as_bytes()).await.unwrap();
                stream.shutdown().await.unwrap();
            });
        }
    }

    #[tokio::test]
    async fn fleet_greets_retries_resends_runs_commands_and_is_checked() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let server = tokio::spawn(fake_server(listener, Arc::clone(&seen)));

        let mut config = PushSimConfig::new(format!("http://127.0.0.1:{port}/"));
        config.devices = 2;
        config.punches_per_batch = 4;
        config.batches = Some(3);
        config.poll_interval = Duration::ZERO;
        config.operlog_users = 3;
        config.resend_every = Some(2);
        config.retry_delay = Duration::from_millis(1);
        config.error_delay = Duration::from_millis(5);
        let plan = config.plan.clone();
        let report = tokio::time::timeout(
            Duration::from_secs(20),
            run_fleet(config, std::future::pending()),
        )
        .await
        .expect("the fleet finishes its batches")
        .unwrap();
        server.abort();

        let stats = &report.stats;
        assert_eq!(stats.punches_acked, 24);
        assert_eq!(stats.batches_acked, 6);
        assert_eq!(
            stats.batches_retried, 2,
            "each terminal's first ATTLOG was refused once"
        );
        assert_eq!(
            stats.batches_resent, 2,
            "the second batch of each terminal went out twice"
        );
        assert_eq!(stats.ack_count_mismatches, 0);
        assert_eq!(stats.commands_received, 4);
        let attlog = stats.kind(RequestKind::Attlog);
        assert_eq!(
            (attlog.requests, attlog.accepted, attlog.refused),
            (10, 8, 2)
        );
        assert_eq!(stats.kind(RequestKind::Handshake).accepted, 2);
        assert_eq!(stats.kind(RequestKind::Operlog).accepted, 2);
        assert_eq!(stats.kind(RequestKind::DeviceCmd).accepted, 2);
        assert_eq!(attlog.latency.len(), 10);

        let sns: Vec<&str> = report.devices.iter().map(|d| d.sn.as_str()).collect();
        assert_eq!(sns, ["SIM0000000001", "SIM0000000002"]);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.info_polls, 2);
        assert_eq!(
            seen.devicecmd,
            ["ID=101&Return=0&CMD=DATA\nID=102&Return=0&CMD=INFO\n"; 2]
        );
        assert_eq!(
            seen.peers.iter().copied().collect::<Vec<_>>(),
            [
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3))
            ]
        );
        for head in &seen.heads {
            assert!(
                head.contains("\r\nUser-Agent: iClock Proxy/1.09\r\n"),
                "{head}"
            );
            assert!(head.contains("\r\nConnection: close\r\n"), "{head}");
            assert!(
                !head.to_ascii_lowercase().contains("content-type"),
                "{head}"
            );
        }
        for device in &report.devices {
            assert_eq!(device.acked, vec![0..12]);
            assert_eq!(device.sent_end, 12);
            let stored = seen.stored[&device.sn].iter().map(|line| {
                let record = zk_push::attlog::parse_attlog(line.as_bytes())
                    .remove(0)
                    .unwrap();
                StoredPunch {
                    pin: record.pin,
                    punched_at: record.time,
                    punch_state: record.status,
                }
            });
            let check = check_device(&plan, device, stored);
            assert!(check.holds(), "{check:?}");
            assert_eq!((check.acknowledged, check.stored), (12, 12));
        }
    }
}
