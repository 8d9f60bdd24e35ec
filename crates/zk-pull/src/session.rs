//! The client side of one ZK protocol session as a plain state machine (pull.md §3, §5, §7, §9).
//!
//! The session owns the session id, the reply-id counter, the one operation in flight (connect with comm key,
//! a command, a buffered dataset read, a legacy streamed read) and the queue of real-time events. It never
//! touches a socket or a clock: the transport feeds it decoded packets with [`Session::handle_packet`] and the
//! current time with [`Session::handle_timeout`], and drains it with [`Session::poll_transmit`],
//! [`Session::poll_outcome`], [`Session::poll_event`] and [`Session::poll_timeout`] (quinn-proto style).
//!
//! Replies are matched by reply id, never by arrival order: stale replies (a late answer to a retried request,
//! the trailing `ACK_OK` of a finished chunk) are counted and dropped, and events (`CMD_REG_EVENT` packets)
//! may arrive at any moment, even in the middle of a transfer.
//!
//! Depends on `codec` and `records`; must not depend on `client`, tokio or sockets.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::codec::{cmd, Packet};
use crate::records::{self, AttendanceEvent};

/// The reply-id counter wraps from 65534 to 0, as pyzk and node-zklib do (modulo 65535, pull.md §3).
const REPLY_ID_MODULUS: u16 = 65535;
/// Largest dataset a device may announce before we refuse it: 64 MiB is far above the 100 000-punch log
/// (4 MB) or a full template store, and stops a garbage size from allocating gigabytes.
pub const MAX_DATASET_LEN: usize = 64 << 20;

/// Settings for one session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The device's numeric comm key ("communication password"); 0 = none (pull.md §5).
    pub comm_key: u32,
    /// How long to wait for the next packet of a reply before retrying or failing.
    pub timeout: Duration,
    /// How many times one step (a request or one chunk) is re-sent after a timeout, with a fresh reply id.
    pub retries: u32,
    /// Largest chunk asked for with `CMD_DATA_RDY` (bytes): 65472 on TCP, 16384 on UDP (pull.md §7.4).
    pub max_chunk: u32,
    /// Answer every real-time event with `CMD_ACK_OK` (session id, reply id 0), as pyzk does (pull.md §3).
    pub ack_events: bool,
    /// The "ticks" byte of the comm-key scrambling; pyzk uses 50 (pull.md §5).
    pub ticks: u8,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            comm_key: 0,
            timeout: Duration::from_secs(5),
            retries: 2,
            max_chunk: 0xFFC0,
            ack_events: true,
            ticks: 50,
        }
    }
}

/// An operation the session can run; one at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `CMD_CONNECT`, then `CMD_AUTH` with the scrambled comm key if the device answers `ACK_UNAUTH`.
    Connect,
    /// One request answered by one reply packet (any reply code; the caller interprets it).
    Command {
        /// Command code.
        command: u16,
        /// Request payload.
        payload: Vec<u8>,
    },
    /// A dataset read through the device buffer (pull.md §7.2–7.4): `CMD_DATA_WRRQ` answered directly by
    /// `CMD_DATA`, or by a size after which the buffer is read in chunks with `CMD_DATA_RDY` and freed with
    /// `CMD_FREE_DATA`. If the device refuses `CMD_DATA_WRRQ`, the legacy direct command is tried for users
    /// and attendance (pull.md §7.1).
    ReadDataset {
        /// Command whose data is wanted: 9 users, 13 attendance, 7 templates, 34 operation log.
        command: u16,
        /// The "fct" argument: 5 users, 0 attendance, 2 templates, 0 operation log.
        fct: u32,
    },
    /// A command answered by `CMD_PREPARE_DATA` + `CMD_DATA`… + `CMD_ACK_OK`, or by one packet carrying
    /// the data (legacy reads, pull.md §7.1; one template, command 88).
    ReadStream {
        /// Command code.
        command: u16,
        /// Request payload.
        payload: Vec<u8>,
    },
}

impl Request {
    fn command(&self) -> u16 {
        match self {
            Request::Connect => cmd::CONNECT,
            Request::Command { command, .. } | Request::ReadStream { command, .. } => *command,
            Request::ReadDataset { .. } => cmd::DATA_WRRQ,
        }
    }
}

/// The result of a finished [`Request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Connected (and authenticated); the device assigned this session id.
    Connected {
        /// The session id carried by every later request.
        session_id: u16,
    },
    /// The reply packet to a [`Request::Command`].
    Reply(Packet),
    /// The bytes of a dataset or streamed read exactly as the device sent them (for datasets: the u32 size
    /// prefix, then the records, pull.md §7.5).
    Data(Vec<u8>),
}

/// A real-time event pushed by the device after `CMD_REG_EVENT` (pull.md §9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceEvent {
    /// An `EF_ATTLOG` event: a punch as it happens.
    Attendance(AttendanceEvent),
    /// Any other event, or an `EF_ATTLOG` payload we could not decode, kept raw.
    Other {
        /// The event code (the packet's session field).
        code: u16,
        /// The raw payload.
        payload: Vec<u8>,
    },
}

/// Why an operation failed. Messages read well to an operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// No reply within the timeout, after all retries.
    #[error("timeout after {} waiting for the reply to {}", HumanDuration(*after), command_name(*command))]
    Timeout {
        /// The command that got no answer.
        command: u16,
        /// The configured timeout.
        after: Duration,
    },
    /// The device rejected the comm key (`ACK_UNAUTH` to `CMD_AUTH`).
    #[error("wrong comm key")]
    WrongCommKey,
    /// The device answered with an error code (`ACK_ERROR`, `ACK_UNAUTH`, `ACK_UNKNOWN` …).
    #[error("device refused {}: {}", command_name(*command), command_name(*code))]
    Refused {
        /// The command refused.
        command: u16,
        /// The reply code.
        code: u16,
    },
    /// A reply that does not fit the protocol.
    #[error("malformed reply to {}: {reason}", command_name(*command))]
    Malformed {
        /// The command answered.
        command: u16,
        /// What was wrong.
        reason: String,
    },
    /// An operation was started while another one was in flight.
    #[error("another request is still in flight")]
    Busy,
    /// A request other than connect was started before connecting.
    #[error("not connected")]
    NotConnected,
}

/// A command code by its protocol name, or as a number.
pub fn command_name(code: u16) -> String {
    match cmd::name(code) {
        Some(name) => name.to_owned(),
        None => format!("command {code}"),
    }
}

/// Formats a duration for operators: "5 s", "1.5 s", "250 ms".
#[derive(Debug, Clone, Copy)]
pub struct HumanDuration(pub Duration);

impl std::fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = self.0;
        if d.subsec_millis() == 0 && d.as_secs() > 0 {
            write!(f, "{} s", d.as_secs())
        } else if d.as_secs() == 0 {
            write!(f, "{} ms", d.as_millis())
        } else {
            write!(f, "{:.1} s", d.as_secs_f64())
        }
    }
}

/// Where a multi-step operation stands.
#[derive(Debug)]
enum Step {
    Connect,
    Auth,
    Command,
    DatasetStart {
        command: u16,
    },
    Chunk {
        buffer: Vec<u8>,
        total: usize,
        chunk_len: usize,
        chunk: Vec<u8>,
    },
    FreeData {
        buffer: Vec<u8>,
    },
    Stream {
        expected: Option<usize>,
        data: Vec<u8>,
    },
}

#[derive(Debug)]
struct Pending {
    /// The command the caller asked for, for error messages.
    request_command: u16,
    /// The packet last sent for the current step (re-sent with a new reply id on timeout).
    sent: Packet,
    deadline: Instant,
    retries_left: u32,
    step: Step,
}

/// Counters for health checks and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Packets whose reply id matched nothing in flight (late or duplicate replies), dropped.
    pub stale_replies: u64,
    /// Requests re-sent after a timeout.
    pub retransmits: u64,
    /// Real-time events received.
    pub events: u64,
}

/// One session with a device (see the module docs).
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    session_id: u16,
    connected: bool,
    /// The reply id of the last request built; the next is one more, modulo 65535.
    last_reply_id: u16,
    pending: Option<Pending>,
    transmit: VecDeque<Packet>,
    outcome: Option<Result<Outcome, SessionError>>,
    events: VecDeque<DeviceEvent>,
    stats: SessionStats,
}

impl Session {
    /// A new, unconnected session.
    pub fn new(config: SessionConfig) -> Session {
        Session {
            config,
            session_id: 0,
            connected: false,
            // The first request (CONNECT) then carries reply id 0, byte-identical to pyzk.
            last_reply_id: REPLY_ID_MODULUS - 1,
            pending: None,
            transmit: VecDeque::new(),
            outcome: None,
            events: VecDeque::new(),
            stats: SessionStats::default(),
        }
    }

    /// The session id assigned by the device (0 before connecting).
    pub fn session_id(&self) -> u16 {
        self.session_id
    }

    /// Whether `CMD_CONNECT` (and `CMD_AUTH`) succeeded.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Whether no operation is in flight.
    pub fn is_idle(&self) -> bool {
        self.pending.is_none()
    }

    /// The settings in use.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Change the settings (e.g. fewer retries for `CMD_RESTART`); applies to the next step.
    pub fn config_mut(&mut self) -> &mut SessionConfig {
        &mut self.config
    }

    /// Counters so far.
    pub fn stats(&self) -> &SessionStats {
        &self.stats
    }

    /// Mark the session closed (after `CMD_EXIT` or a lost connection); a later [`Request::Connect`] starts over.
    pub fn reset(&mut self) {
        self.connected = false;
        self.session_id = 0;
        self.pending = None;
        self.transmit.clear();
    }

    /// Give up the operation in flight without a result (its caller went away); late replies to it will be
    /// dropped as stale.
    pub fn abandon(&mut self) {
        self.pending = None;
        self.outcome = None;
    }

    fn next_reply_id(&mut self) -> u16 {
        self.last_reply_id = (self.last_reply_id + 1) % REPLY_ID_MODULUS;
        self.last_reply_id
    }

    /// Start an operation at `now`. Its packets appear in [`Session::poll_transmit`], its result in
    /// [`Session::poll_outcome`].
    ///
    /// # Errors
    /// [`SessionError::Busy`] when an operation is in flight, [`SessionError::NotConnected`] for anything but
    /// [`Request::Connect`] before connecting.
    pub fn start(&mut self, request: Request, now: Instant) -> Result<(), SessionError> {
        if self.pending.is_some() {
            return Err(SessionError::Busy);
        }
        if !self.connected && request != Request::Connect {
            return Err(SessionError::NotConnected);
        }
        self.outcome = None;
        let request_command = request.command();
        let (command, session_id, payload, step) = match request {
            Request::Connect => {
                self.session_id = 0;
                (cmd::CONNECT, 0, Vec::new(), Step::Connect)
            }
            Request::Command { command, payload } => {
                (command, self.session_id, payload, Step::Command)
            }
            Request::ReadDataset { command, fct } => (
                cmd::DATA_WRRQ,
                self.session_id,
                cmd::data_wrrq_payload(command, fct),
                Step::DatasetStart { command },
            ),
            Request::ReadStream { command, payload } => (
                command,
                self.session_id,
                payload,
                Step::Stream {
                    expected: None,
                    data: Vec::new(),
                },
            ),
        };
        let packet = Packet::new(command, session_id, self.next_reply_id(), payload);
        self.transmit.push_back(packet.clone());
        self.pending = Some(Pending {
            request_command,
            sent: packet,
            deadline: now + self.config.timeout,
            retries_left: self.config.retries,
            step,
        });
        Ok(())
    }

    /// The next packet to send, if any (requests, retries, event acknowledgements).
    pub fn poll_transmit(&mut self) -> Option<Packet> {
        self.transmit.pop_front()
    }

    /// The result of the finished operation, once.
    pub fn poll_outcome(&mut self) -> Option<Result<Outcome, SessionError>> {
        self.outcome.take()
    }

    /// The next real-time event received, if any.
    pub fn poll_event(&mut self) -> Option<DeviceEvent> {
        self.events.pop_front()
    }

    /// When [`Session::handle_timeout`] must be called next, if an operation is in flight.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending.as_ref().map(|p| p.deadline)
    }

    /// Let time pass: a step whose deadline is reached is re-sent with a fresh reply id while retries remain,
    /// then fails with [`SessionError::Timeout`]. A lost `CMD_FREE_DATA` answer does not fail the read.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(mut pending) = self.pending.take() else {
            return;
        };
        if now < pending.deadline {
            self.pending = Some(pending);
            return;
        }
        if let Step::FreeData { buffer } = &mut pending.step {
            let buffer = std::mem::take(buffer);
            self.finish(Ok(Outcome::Data(buffer)));
            return;
        }
        if pending.retries_left == 0 {
            self.finish(Err(SessionError::Timeout {
                command: pending.request_command,
                after: self.config.timeout,
            }));
            return;
        }
        pending.retries_left -= 1;
        // Start the step over: partial chunk data may mix with the retry's answer otherwise.
        match &mut pending.step {
            Step::Chunk { chunk, .. } => chunk.clear(),
            Step::Stream { expected, data } => {
                *expected = None;
                data.clear();
            }
            _ => {}
        }
        pending.sent.reply_id = self.next_reply_id();
        pending.deadline = now + self.config.timeout;
        self.stats.retransmits += 1;
        tracing::debug!(
            command = pending.sent.command,
            reply_id = pending.sent.reply_id,
            "retrying after timeout"
        );
        self.transmit.push_back(pending.sent.clone());
        self.pending = Some(pending);
    }

    /// Feed one packet received from the device at `now`.
    pub fn handle_packet(&mut self, packet: Packet, now: Instant) {
        if packet.command == cmd::REG_EVENT {
            self.handle_event(packet);
            return;
        }
        let Some(mut pending) = self.pending.take() else {
            self.stats.stale_replies += 1;
            tracing::debug!(
                command = packet.command,
                reply_id = packet.reply_id,
                "reply with nothing in flight"
            );
            return;
        };
        if packet.reply_id != pending.sent.reply_id {
            self.stats.stale_replies += 1;
            tracing::debug!(
                command = packet.command,
                reply_id = packet.reply_id,
                expected = pending.sent.reply_id,
                "stale reply dropped"
            );
            self.pending = Some(pending);
            return;
        }
        pending.deadline = now + self.config.timeout;
        self.advance(pending, packet, now);
    }

    fn handle_event(&mut self, packet: Packet) {
        self.stats.events += 1;
        if self.config.ack_events {
            self.transmit
                .push_back(Packet::new(cmd::ACK_OK, self.session_id, 0, Vec::new()));
        }
        let code = packet.session_id;
        let event = if u32::from(code) == cmd::EF_ATTLOG {
            match records::decode_attendance_event(&packet.payload) {
                Ok(event) => DeviceEvent::Attendance(event),
                Err(error) => {
                    tracing::warn!(%error, len = packet.payload.len(), "undecodable attendance event kept raw");
                    DeviceEvent::Other {
                        code,
                        payload: packet.payload,
                    }
                }
            }
        } else {
            DeviceEvent::Other {
                code,
                payload: packet.payload,
            }
        };
        self.events.push_back(event);
    }

    fn finish(&mut self, outcome: Result<Outcome, SessionError>) {
        self.pending = None;
        self.outcome = Some(outcome);
    }

    /// Send the next request of a multi-step operation.
    fn next_step(
        &mut self,
        mut pending: Pending,
        command: u16,
        payload: Vec<u8>,
        step: Step,
        now: Instant,
    ) {
        let packet = Packet::new(command, self.session_id, self.next_reply_id(), payload);
        self.transmit.push_back(packet.clone());
        pending.sent = packet;
        pending.step = step;
        pending.deadline = now + self.config.timeout;
        pending.retries_left = self.config.retries;
        self.pending = Some(pending);
    }

    fn malformed(&mut self, command: u16, reason: impl Into<String>) {
        self.finish(Err(SessionError::Malformed {
            command,
            reason: reason.into(),
        }));
    }

    fn advance(&mut self, mut pending: Pending, packet: Packet, now: Instant) {
        let request_command = pending.request_command;
        let step = std::mem::replace(&mut pending.step, Step::Command);
        match step {
            Step::Connect => match packet.command {
                cmd::ACK_OK => {
                    self.session_id = packet.session_id;
                    self.connected = true;
                    self.finish(Ok(Outcome::Connected {
                        session_id: packet.session_id,
                    }));
                }
                cmd::ACK_UNAUTH => {
                    self.session_id = packet.session_id;
                    let key = records::make_comm_key(
                        self.config.comm_key,
                        packet.session_id,
                        self.config.ticks,
                    );
                    self.next_step(pending, cmd::AUTH, key.to_vec(), Step::Auth, now);
                }
                code => self.finish(Err(SessionError::Refused {
                    command: cmd::CONNECT,
                    code,
                })),
            },
            Step::Auth => match packet.command {
                cmd::ACK_OK => {
                    self.connected = true;
                    self.finish(Ok(Outcome::Connected {
                        session_id: self.session_id,
                    }));
                }
                cmd::ACK_UNAUTH => self.finish(Err(SessionError::WrongCommKey)),
                code => self.finish(Err(SessionError::Refused {
                    command: cmd::AUTH,
                    code,
                })),
            },
            Step::Command => self.finish(Ok(Outcome::Reply(packet))),
            Step::DatasetStart { command } => {
                match packet.command {
                    cmd::DATA => self.finish(Ok(Outcome::Data(packet.payload))),
                    cmd::ACK_OK => {
                        let Some(size) = packet.payload.get(1..5) else {
                            self.malformed(
                                request_command,
                                format!(
                                    "buffer size reply has {} bytes, need 5",
                                    packet.payload.len()
                                ),
                            );
                            return;
                        };
                        let size = u32::from_le_bytes([size[0], size[1], size[2], size[3]]);
                        let total = usize::try_from(size).unwrap_or(usize::MAX);
                        if total > MAX_DATASET_LEN {
                            self.malformed(
                            request_command,
                            format!("dataset of {total} bytes exceeds the {MAX_DATASET_LEN}-byte limit"),
                        );
                            return;
                        }
                        let buffer = Vec::with_capacity(total.min(1 << 20));
                        self.request_chunk(pending, buffer, total, now);
                    }
                    cmd::PREPARE_DATA => {
                        let expected = packet_u32(&packet.payload, 0);
                        pending.step = Step::Stream {
                            expected,
                            data: Vec::new(),
                        };
                        self.pending = Some(pending);
                    }
                    code @ (cmd::ACK_ERROR | cmd::ACK_UNKNOWN | cmd::ACK_ERROR_CMD)
                        if command == cmd::ATTLOG_RRQ || command == cmd::USERTEMP_RRQ =>
                    {
                        tracing::debug!(
                            code,
                            command,
                            "CMD_DATA_WRRQ refused, trying the legacy direct read"
                        );
                        pending.request_command = command;
                        self.next_step(
                            pending,
                            command,
                            Vec::new(),
                            Step::Stream {
                                expected: None,
                                data: Vec::new(),
                            },
                            now,
                        );
                    }
                    code => self.finish(Err(SessionError::Refused {
                        command: request_command,
                        code,
                    })),
                }
            }
            Step::Chunk {
                mut buffer,
                total,
                mut chunk_len,
                mut chunk,
            } => match packet.command {
                cmd::PREPARE_DATA => {
                    match packet_u32(&packet.payload, 0) {
                        Some(announced) if announced <= total - buffer.len() && announced > 0 => {
                            chunk_len = announced;
                        }
                        Some(announced) => {
                            self.malformed(
                                cmd::DATA_RDY,
                                format!(
                                    "chunk of {announced} bytes announced, {} expected",
                                    chunk_len
                                ),
                            );
                            return;
                        }
                        None => {}
                    }
                    pending.step = Step::Chunk {
                        buffer,
                        total,
                        chunk_len,
                        chunk,
                    };
                    self.pending = Some(pending);
                }
                cmd::DATA => {
                    chunk.extend_from_slice(&packet.payload);
                    if chunk.len() > chunk_len {
                        self.malformed(
                            cmd::DATA_RDY,
                            format!("chunk of {} bytes, {chunk_len} expected", chunk.len()),
                        );
                    } else if chunk.len() == chunk_len {
                        // Complete: the trailing ACK_OK (if any) will be dropped as stale.
                        buffer.extend_from_slice(&chunk);
                        self.request_chunk(pending, buffer, total, now);
                    } else {
                        pending.step = Step::Chunk {
                            buffer,
                            total,
                            chunk_len,
                            chunk,
                        };
                        self.pending = Some(pending);
                    }
                }
                cmd::ACK_OK => {
                    // The chunk ended short; re-ask for it while retries remain.
                    pending.step = Step::Chunk {
                        buffer,
                        total,
                        chunk_len,
                        chunk,
                    };
                    if pending.retries_left == 0 {
                        let got = match &pending.step {
                            Step::Chunk { chunk, .. } => chunk.len(),
                            _ => 0,
                        };
                        self.malformed(
                            cmd::DATA_RDY,
                            format!("chunk ended after {got} of {chunk_len} bytes"),
                        );
                    } else {
                        pending.deadline = now;
                        self.pending = Some(pending);
                        self.handle_timeout(now);
                    }
                }
                code => self.finish(Err(SessionError::Refused {
                    command: cmd::DATA_RDY,
                    code,
                })),
            },
            Step::FreeData { buffer } => self.finish(Ok(Outcome::Data(buffer))),
            Step::Stream { expected, mut data } => match packet.command {
                cmd::PREPARE_DATA => {
                    let expected = packet_u32(&packet.payload, 0);
                    if expected.is_some_and(|n| n > MAX_DATASET_LEN) {
                        self.malformed(request_command, "announced size exceeds the limit");
                        return;
                    }
                    pending.step = Step::Stream { expected, data };
                    self.pending = Some(pending);
                }
                cmd::DATA => {
                    data.extend_from_slice(&packet.payload);
                    match expected {
                        // A single direct data packet, with no announcement.
                        None => self.finish(Ok(Outcome::Data(data))),
                        Some(n) if data.len() >= n => {
                            data.truncate(n);
                            self.finish(Ok(Outcome::Data(data)));
                        }
                        Some(_) => {
                            pending.step = Step::Stream { expected, data };
                            self.pending = Some(pending);
                        }
                    }
                }
                cmd::ACK_OK if expected.is_none() && data.is_empty() => {
                    // Small answers come back as one ACK_OK carrying the data.
                    self.finish(Ok(Outcome::Data(packet.payload)));
                }
                cmd::ACK_OK => match expected {
                    Some(n) if data.len() < n => self.malformed(
                        request_command,
                        format!("data ended after {} of {n} bytes", data.len()),
                    ),
                    _ => self.finish(Ok(Outcome::Data(data))),
                },
                code => self.finish(Err(SessionError::Refused {
                    command: request_command,
                    code,
                })),
            },
        }
    }

    /// Ask for the next chunk of a buffered read, or free the buffer when all of it has arrived.
    fn request_chunk(&mut self, pending: Pending, buffer: Vec<u8>, total: usize, now: Instant) {
        let offset = buffer.len();
        if offset >= total {
            self.next_step(
                pending,
                cmd::FREE_DATA,
                Vec::new(),
                Step::FreeData { buffer },
                now,
            );
            return;
        }
        let max_chunk = usize::try_from(self.config.max_chunk.max(1)).unwrap_or(0xFFC0);
        let chunk_len = (total - offset).min(max_chunk);
        let mut payload = Vec::with_capacity(8);
        // Both fit in u32: total is bounded by MAX_DATASET_LEN.
        payload.extend_from_slice(&u32::try_from(offset).unwrap_or(0).to_le_bytes());
        payload.extend_from_slice(&u32::try_from(chunk_len).unwrap_or(0).to_le_bytes());
        self.next_step(
            pending,
            cmd::DATA_RDY,
            payload,
            Step::Chunk {
                buffer,
                total,
                chunk_len,
                chunk: Vec::with_capacity(chunk_len),
            },
            now,
        );
    }
}

fn packet_u32(payload: &[u8], at: usize) -> Option<usize> {
    let b = payload.get(at..at + 4)?;
    usize::try_from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u16 = 0x5a01;

    fn connected(config: SessionConfig, now: Instant) -> Session {
        let mut session = Session::new(config);
        session.start(Request::Connect, now).unwrap();
        let connect = session.poll_transmit().unwrap();
        assert_eq!(connect, Packet::new(cmd::CONNECT, 0, 0, vec![]));
        session.handle_packet(Packet::new(cmd::ACK_OK, S, 0, vec![]), now);
        assert_eq!(
            session.poll_outcome(),
            Some(Ok(Outcome::Connected { session_id: S }))
        );
        session
    }

    fn ack(reply_id: u16, payload: Vec<u8>) -> Packet {
        Packet::new(cmd::ACK_OK, S, reply_id, payload)
    }

    #[test]
    fn reply_matched_by_id_not_arrival_order() {
        let now = Instant::now();
        let mut session = connected(SessionConfig::default(), now);
        session
            .start(
                Request::Command {
                    command: cmd::GET_TIME,
                    payload: vec![],
                },
                now,
            )
            .unwrap();
        let request = session.poll_transmit().unwrap();
        assert_eq!(request, Packet::new(cmd::GET_TIME, S, 1, vec![]));
        // A stale ACK from an earlier exchange and an event arrive first.
        session.handle_packet(ack(0, vec![]), now);
        let event = Packet::new(
            cmd::REG_EVENT,
            1,
            0,
            vec![
                0xf1, 0x94, 0x49, 0, 0, 0, 0x12, 0x0c, 0x07, 0x13, 0x09, 0x06,
            ],
        );
        session.handle_packet(event, now);
        assert_eq!(session.poll_outcome(), None);
        // The event was acknowledged with our session id and reply id 0.
        assert_eq!(
            session.poll_transmit(),
            Some(Packet::new(cmd::ACK_OK, S, 0, vec![]))
        );
        match session.poll_event() {
            Some(DeviceEvent::Attendance(e)) => assert_eq!(e.user_id, "4822257"),
            other => panic!("unexpected {other:?}"),
        }
        session.handle_packet(ack(1, vec![0xa5, 0x3a, 0xe6, 0x2f]), now);
        assert_eq!(
            session.poll_outcome(),
            Some(Ok(Outcome::Reply(ack(1, vec![0xa5, 0x3a, 0xe6, 0x2f]))))
        );
        assert_eq!(session.stats().stale_replies, 1);
        assert_eq!(session.stats().events, 1);
    }

    #[test]
    fn comm_key_accepted_and_rejected() {
        let now = Instant::now();
        for (device_answer, expected) in [
            (cmd::ACK_OK, Ok(Outcome::Connected { session_id: 0x45cf })),
            (cmd::ACK_UNAUTH, Err(SessionError::WrongCommKey)),
        ] {
            let mut session = Session::new(SessionConfig {
                comm_key: 45,
                ..SessionConfig::default()
            });
            session.start(Request::Connect, now).unwrap();
            session.poll_transmit().unwrap();
            session.handle_packet(Packet::new(cmd::ACK_UNAUTH, 0x45cf, 0, vec![]), now);
            assert_eq!(
                session.poll_transmit(),
                Some(Packet::new(
                    cmd::AUTH,
                    0x45cf,
                    1,
                    vec![0x61, 0xc9, 0x32, 0x3c]
                ))
            );
            session.handle_packet(Packet::new(device_answer, 0x45cf, 1, vec![]), now);
            assert_eq!(session.poll_outcome(), Some(expected.clone()));
            assert_eq!(session.is_connected(), expected.is_ok());
        }
    }

    #[test]
    fn timeout_retries_with_fresh_reply_id_then_fails() {
        let now = Instant::now();
        let config = SessionConfig {
            retries: 1,
            timeout: Duration::from_secs(5),
            ..SessionConfig::default()
        };
        let mut session = connected(config, now);
        session
            .start(
                Request::Command {
                    command: cmd::GET_VERSION,
                    payload: vec![],
                },
                now,
            )
            .unwrap();
        assert_eq!(session.poll_transmit().unwrap().reply_id, 1);
        assert_eq!(session.poll_timeout(), Some(now + Duration::from_secs(5)));
        session.handle_timeout(now + Duration::from_secs(4));
        assert_eq!(session.poll_transmit(), None);
        let later = now + Duration::from_secs(5);
        session.handle_timeout(later);
        assert_eq!(
            session.poll_transmit(),
            Some(Packet::new(cmd::GET_VERSION, S, 2, vec![]))
        );
        // The late answer to the first try is stale now.
        session.handle_packet(ack(1, b"Ver 6.60\0".to_vec()), later);
        assert_eq!(session.poll_outcome(), None);
        session.handle_timeout(later + Duration::from_secs(5));
        let error = session.poll_outcome().unwrap().unwrap_err();
        assert_eq!(
            error,
            SessionError::Timeout {
                command: cmd::GET_VERSION,
                after: Duration::from_secs(5)
            }
        );
        assert_eq!(
            error.to_string(),
            "timeout after 5 s waiting for the reply to CMD_GET_VERSION"
        );
        assert!(session.is_idle());
    }

    #[test]
    fn reply_ids_wrap_at_65535() {
        let now = Instant::now();
        let mut session = connected(SessionConfig::default(), now);
        session.last_reply_id = 65533;
        let mut ids = Vec::new();
        for _ in 0..3 {
            session
                .start(
                    Request::Command {
                        command: cmd::GET_TIME,
                        payload: vec![],
                    },
                    now,
                )
                .unwrap();
            let id = session.poll_transmit().unwrap().reply_id;
            ids.push(id);
            session.handle_packet(ack(id, vec![]), now);
            session.poll_outcome().unwrap().unwrap();
        }
        assert_eq!(ids, vec![65534, 0, 1]);
    }

    fn dataset(total: usize) -> Vec<u8> {
        let mut data = (u32::try_from(total - 4).unwrap()).to_le_bytes().to_vec();
        data.extend((0..total - 4).map(|i| (i % 251) as u8));
        data
    }

    #[test]
    fn buffered_read_in_chunks_with_split_data_and_interleaved_event() {
        let now = Instant::now();
        let config = SessionConfig {
            max_chunk: 1000,
            ..SessionConfig::default()
        };
        let mut session = connected(config, now);
        let data = dataset(2504);
        session
            .start(
                Request::ReadDataset {
                    command: cmd::ATTLOG_RRQ,
                    fct: 0,
                },
                now,
            )
            .unwrap();
        let wrrq = session.poll_transmit().unwrap();
        assert_eq!(
            wrrq,
            Packet::new(
                cmd::DATA_WRRQ,
                S,
                1,
                vec![1, 0x0d, 0, 0, 0, 0, 0, 0, 0, 0, 0]
            )
        );
        let mut stat = vec![0u8];
        stat.extend(2504u32.to_le_bytes());
        stat.extend(2504u32.to_le_bytes());
        stat.extend([0xcd, 0xef, 0x23, 0x00]);
        session.handle_packet(ack(1, stat), now);
        let mut offset = 0;
        let mut expected_id = 2;
        while offset < data.len() {
            let request = session.poll_transmit().unwrap();
            let len = (data.len() - offset).min(1000);
            let mut payload = u32::try_from(offset).unwrap().to_le_bytes().to_vec();
            payload.extend(u32::try_from(len).unwrap().to_le_bytes());
            assert_eq!(request, Packet::new(cmd::DATA_RDY, S, expected_id, payload));
            let mut prepare = u32::try_from(len).unwrap().to_le_bytes().to_vec();
            prepare.extend(1008u32.to_le_bytes());
            session.handle_packet(Packet::new(cmd::PREPARE_DATA, S, expected_id, prepare), now);
            // The chunk arrives as 300-byte DATA packets with a counter in the session field.
            for (i, piece) in data[offset..offset + len].chunks(300).enumerate() {
                if i == 1 {
                    session.handle_packet(Packet::new(cmd::REG_EVENT, 2, 0, vec![]), now);
                }
                session.handle_packet(
                    Packet::new(
                        cmd::DATA,
                        u16::try_from(i).unwrap(),
                        expected_id,
                        piece.to_vec(),
                    ),
                    now,
                );
            }
            // The trailing ACK_OK of the chunk arrives after we moved on: stale, dropped.
            session.handle_packet(ack(expected_id, vec![]), now);
            // Event acknowledgement is queued before the next request.
            assert_eq!(
                session.poll_transmit(),
                Some(Packet::new(cmd::ACK_OK, S, 0, vec![]))
            );
            offset += len;
            expected_id += 1;
        }
        let free = session.poll_transmit().unwrap();
        assert_eq!(free, Packet::new(cmd::FREE_DATA, S, expected_id, vec![]));
        assert_eq!(session.poll_outcome(), None);
        session.handle_packet(ack(expected_id, vec![]), now);
        assert_eq!(session.poll_outcome(), Some(Ok(Outcome::Data(data))));
        assert_eq!(session.stats().stale_replies, 3);
        assert_eq!(
            session.poll_event(),
            Some(DeviceEvent::Other {
                code: 2,
                payload: vec![]
            })
        );
    }

    #[test]
    fn chunk_retried_after_timeout_and_short_ack() {
        let now = Instant::now();
        let config = SessionConfig {
            max_chunk: 65472,
            retries: 2,
            ..SessionConfig::default()
        };
        let mut session = connected(config, now);
        let data = dataset(100);
        session
            .start(
                Request::ReadDataset {
                    command: cmd::USERTEMP_RRQ,
                    fct: 5,
                },
                now,
            )
            .unwrap();
        session.poll_transmit().unwrap();
        let mut stat = vec![0u8];
        stat.extend(100u32.to_le_bytes());
        stat.extend(100u32.to_le_bytes());
        stat.extend([0; 4]);
        session.handle_packet(ack(1, stat), now);
        assert_eq!(session.poll_transmit().unwrap().reply_id, 2);
        // Half a chunk, then ACK_OK: the chunk is asked for again with a new reply id.
        session.handle_packet(Packet::new(cmd::DATA, 0, 2, data[..50].to_vec()), now);
        session.handle_packet(ack(2, vec![]), now);
        let retry = session.poll_transmit().unwrap();
        assert_eq!(retry.command, cmd::DATA_RDY);
        assert_eq!(retry.reply_id, 3);
        assert_eq!(&retry.payload[..4], &[0, 0, 0, 0]);
        // Nothing arrives: retried once more on timeout.
        session.handle_timeout(now + Duration::from_secs(6));
        let retry = session.poll_transmit().unwrap();
        assert_eq!(retry.reply_id, 4);
        session.handle_packet(Packet::new(cmd::DATA, 0, 4, data.clone()), now);
        let free = session.poll_transmit().unwrap();
        assert_eq!(free.command, cmd::FREE_DATA);
        // A lost FREE_DATA answer does not lose the data.
        session.handle_timeout(now + Duration::from_secs(20));
        assert_eq!(session.poll_outcome(), Some(Ok(Outcome::Data(data))));
        assert_eq!(session.stats().retransmits, 2);
    }

    #[test]
    fn direct_dataset_and_legacy_fallback() {
        let now = Instant::now();
        let mut session = connected(SessionConfig::default(), now);
        let data = dataset(84);
        session
            .start(
                Request::ReadDataset {
                    command: cmd::ATTLOG_RRQ,
                    fct: 0,
                },
                now,
            )
            .unwrap();
        session.poll_transmit().unwrap();
        session.handle_packet(Packet::new(cmd::DATA, S, 1, data.clone()), now);
        assert_eq!(
            session.poll_outcome(),
            Some(Ok(Outcome::Data(data.clone())))
        );

        // A device without CMD_DATA_WRRQ: ACK_ERROR, then the legacy CMD_ATTLOG_RRQ stream in UDP-sized packets.
        session
            .start(
                Request::ReadDataset {
                    command: cmd::ATTLOG_RRQ,
                    fct: 0,
                },
                now,
            )
            .unwrap();
        session.poll_transmit().unwrap();
        session.handle_packet(Packet::new(cmd::ACK_ERROR, S, 2, vec![]), now);
        assert_eq!(
            session.poll_transmit(),
            Some(Packet::new(cmd::ATTLOG_RRQ, S, 3, vec![]))
        );
        let mut prepare = 84u32.to_le_bytes().to_vec();
        prepare.extend(1024u32.to_le_bytes());
        session.handle_packet(Packet::new(cmd::PREPARE_DATA, S, 3, prepare), now);
        session.handle_packet(Packet::new(cmd::DATA, S, 3, data[..40].to_vec()), now);
        assert_eq!(session.poll_outcome(), None);
        session.handle_packet(Packet::new(cmd::DATA, S, 3, data[40..].to_vec()), now);
        assert_eq!(session.poll_outcome(), Some(Ok(Outcome::Data(data))));
    }

    #[test]
    fn refusals_and_garbage_sizes() {
        let now = Instant::now();
        let mut session = connected(SessionConfig::default(), now);
        session
            .start(
                Request::ReadDataset {
                    command: cmd::DB_RRQ,
                    fct: 2,
                },
                now,
            )
            .unwrap();
        session.poll_transmit().unwrap();
        session.handle_packet(Packet::new(cmd::ACK_ERROR, S, 1, vec![]), now);
        let error = session.poll_outcome().unwrap().unwrap_err();
        assert_eq!(
            error.to_string(),
            "device refused CMD_DATA_WRRQ: CMD_ACK_ERROR"
        );

        session
            .start(
                Request::ReadDataset {
                    command: cmd::ATTLOG_RRQ,
                    fct: 0,
                },
                now,
            )
            .unwrap();
        session.poll_transmit().unwrap();
        let mut stat = vec![0u8];
        stat.extend(u32::MAX.to_le_bytes());
        session.handle_packet(ack(2, stat), now);
        assert!(matches!(
            session.poll_outcome(),
            Some(Err(SessionError::Malformed { .. }))
        ));
        assert!(session.is_idle());
        assert_eq!(
            session
                .start(Request::Connect, now)
                .and(session.start(Request::Connect, now)),
            Err(SessionError::Busy)
        );
        assert_eq!(
            Session::new(SessionConfig::default()).start(
                Request::Command {
                    command: cmd::GET_TIME,
                    payload: vec![]
                },
                now
            ),
            Err(SessionError::NotConnected)
        );
    }
}
