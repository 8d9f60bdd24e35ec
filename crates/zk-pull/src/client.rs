//! A tokio client for one device over TCP or UDP (pull.md §1, §11): owns the socket, the read buffer, the
//! timeouts and the retry loop, and drives a [`Session`] with the packets it reads.
//!
//! TCP frames are cut by length from a stream buffer (several packets per read and packets split over reads
//! are both normal); on UDP a datagram that does not decode is dropped and the session continues.
//! Bulk reads (users, attendance, templates) are bracketed by `CMD_DISABLEDEVICE` / `CMD_ENABLEDEVICE`
//! unless [`ClientOptions::disable_during_reads`] is off.
//!
//! Depends on `codec`, `records`, `session` and tokio; must not depend on anything of punchd.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use chrono::NaiveDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, ToSocketAddrs, UdpSocket};

use crate::codec::{self, cmd, DecodeError, Packet};
use crate::records::{
    self, Attendance, AttendanceEvent, AttendanceLayout, FreeSizes, RecordError, Template, User,
    UserLayout,
};
use crate::session::{
    command_name, DeviceEvent, HumanDuration, Outcome, Request, Session, SessionConfig,
    SessionError,
};

/// Which socket type to speak over (pull.md §1). Both use port 4370 by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TCP with the 8-byte frame header (TFT "ZK8" firmware).
    Tcp,
    /// One packet per UDP datagram (older B&W "ZK6" firmware, or when TCP is unavailable).
    Udp,
}

/// Everything that can be tuned about a connection; [`ClientOptions::new`] gives the usual values.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// TCP or UDP.
    pub transport: Transport,
    /// The device's numeric comm key; 0 = none (pull.md §5).
    pub comm_key: u32,
    /// Time allowed for connecting and for each reply packet to arrive.
    pub timeout: Duration,
    /// Re-sends of one request or chunk after a timeout.
    pub retries: u32,
    /// Largest chunk per `CMD_DATA_RDY` in bytes; `None` = 65472 on TCP, 16384 on UDP (pull.md §7.4).
    pub max_chunk: Option<u32>,
    /// Lock the keypad/sensor during bulk reads, as pull.md §11 recommends.
    pub disable_during_reads: bool,
    /// Text encoding of user names and passwords on this device (pull.md §8.3), e.g. `encoding_rs::GBK`;
    /// `None` = UTF-8 when valid, else Windows-1252 on read, UTF-8 on write.
    pub encoding: Option<&'static encoding_rs::Encoding>,
}

impl ClientOptions {
    /// Usual options for `transport`: no comm key, 5 s timeout, 2 retries, device disabled during reads.
    pub fn new(transport: Transport) -> ClientOptions {
        ClientOptions {
            transport,
            comm_key: 0,
            timeout: Duration::from_secs(5),
            retries: 2,
            max_chunk: None,
            disable_during_reads: true,
            encoding: None,
        }
    }
}

/// What went wrong talking to a device, in words an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens on the port (TCP RST, or ICMP port unreachable on UDP).
    #[error("connection refused by {addr}")]
    ConnectionRefused {
        /// The device address.
        addr: SocketAddr,
    },
    /// The TCP connection could not be set up in time.
    #[error("timeout after {} connecting to {addr}", HumanDuration(*after))]
    ConnectTimeout {
        /// The device address.
        addr: SocketAddr,
        /// The configured timeout.
        after: Duration,
    },
    /// The device rejected our comm key.
    #[error("wrong comm key")]
    WrongCommKey,
    /// No reply in time, after retries.
    #[error("timeout after {} waiting for the reply to {}", HumanDuration(*after), command_name(*command))]
    Timeout {
        /// The command that got no answer.
        command: u16,
        /// The configured timeout.
        after: Duration,
    },
    /// The device answered with an error code.
    #[error("device refused {}: {}", command_name(*command), command_name(*code))]
    Refused {
        /// The command refused.
        command: u16,
        /// The reply code.
        code: u16,
    },
    /// A reply that does not fit the protocol.
    #[error("malformed reply: {0}")]
    Malformed(String),
    /// No user with this uid on the device.
    #[error("no user with uid {uid} on the device")]
    UserNotFound {
        /// The uid asked for.
        uid: u16,
    },
    /// The device closed the connection.
    #[error("connection closed by the device")]
    Closed,
    /// The client was used after `disconnect`, `restart` or a fatal error.
    #[error("not connected")]
    NotConnected,
    /// Any other network error.
    #[error("network error with {addr}: {source}")]
    Io {
        /// The device address.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl From<SessionError> for ClientError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Timeout { command, after } => ClientError::Timeout { command, after },
            SessionError::WrongCommKey => ClientError::WrongCommKey,
            SessionError::Refused { command, code } => ClientError::Refused { command, code },
            SessionError::Malformed { command, reason } => {
                ClientError::Malformed(format!("{}: {reason}", command_name(command)))
            }
            SessionError::Busy | SessionError::NotConnected => ClientError::NotConnected,
        }
    }
}

/// Identity and capacity of a device, read at once (pull.md §6.1, §6.4). Options the firmware does not know
/// are `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// `~SerialNumber`: the SN.
    pub serial_number: Option<String>,
    /// `~Platform`, e.g. `ZEM760_TFT`.
    pub platform: Option<String>,
    /// `CMD_GET_VERSION`, e.g. `Ver 6.60 Apr 28 2015`.
    pub firmware_version: Option<String>,
    /// `~DeviceName`, e.g. `K40`.
    pub device_name: Option<String>,
    /// `MAC`, e.g. `00:17:61:00:00:01`.
    pub mac: Option<String>,
    /// `~ZKFPVersion`: fingerprint algorithm version (10 = ZKFinger v10).
    pub fingerprint_version: Option<String>,
    /// `ZKFaceVersion`.
    pub face_version: Option<String>,
    /// Counts and capacities.
    pub sizes: FreeSizes,
}

/// An attendance log download: the records, what could not be decoded, and the raw bytes for the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttendanceDownload {
    /// Records that decoded, in device order.
    pub records: Vec<Attendance>,
    /// Records that did not (each with its index), kept so nothing is lost silently.
    pub errors: Vec<RecordError>,
    /// The dataset exactly as received (u32 size prefix + records, pull.md §7.5).
    pub raw: Vec<u8>,
    /// The record layout detected; `None` for an empty log.
    pub layout: Option<AttendanceLayout>,
}

enum Io {
    Tcp { stream: TcpStream, buf: BytesMut },
    Udp { socket: UdpSocket, buf: Vec<u8> },
}

/// A connected device (see the module docs). Methods take `&mut self`: one request at a time.
pub struct Client {
    addr: SocketAddr,
    options: ClientOptions,
    io: Io,
    session: Session,
    /// Learned from `users()`: the layout `set_user` must write. Before that, 72 on TCP and 28 on UDP, as
    /// pyzk assumes (pull.md §8.8).
    user_layout: UserLayout,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.addr)
            .field("transport", &self.options.transport)
            .field("session_id", &self.session.session_id())
            .finish()
    }
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

impl Client {
    /// Connect to the device at `addr` and open a session (with the comm key if the device asks for it).
    ///
    /// # Errors
    /// [`ClientError::ConnectionRefused`], [`ClientError::ConnectTimeout`], [`ClientError::Timeout`] (no answer
    /// to `CMD_CONNECT`), [`ClientError::WrongCommKey`], [`ClientError::Io`].
    pub async fn connect(
        addr: impl ToSocketAddrs,
        transport: Transport,
        comm_key: u32,
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        let mut options = ClientOptions::new(transport);
        options.comm_key = comm_key;
        options.timeout = timeout;
        Client::connect_with(addr, options).await
    }

    /// Connect over TCP, falling back to UDP when nothing accepts TCP connections (refused or no answer),
    /// the "auto" mode pull.md §11 recommends for devices whose firmware generation is unknown.
    ///
    /// # Errors
    /// The UDP attempt's error when both fail; a TCP error other than refused/unreachable as is.
    pub async fn connect_auto(
        addr: SocketAddr,
        comm_key: u32,
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        match Client::connect(addr, Transport::Tcp, comm_key, timeout).await {
            Err(ClientError::ConnectionRefused { .. } | ClientError::ConnectTimeout { .. }) => {
                tracing::debug!(%addr, "tcp unavailable, trying udp");
                Client::connect(addr, Transport::Udp, comm_key, timeout).await
            }
            other => other,
        }
    }

    /// The transport in use (after [`Client::connect_auto`], the one that worked).
    pub fn transport(&self) -> Transport {
        self.options.transport
    }

    /// [`Client::connect`] with every option.
    ///
    /// # Errors
    /// As [`Client::connect`].
    pub async fn connect_with(
        addr: impl ToSocketAddrs,
        options: ClientOptions,
    ) -> Result<Client, ClientError> {
        let unresolved = || ClientError::Io {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "address did not resolve"),
        };
        let addr = tokio::net::lookup_host(addr)
            .await
            .map_err(|source| ClientError::Io {
                addr: SocketAddr::from(([0, 0, 0, 0], 0)),
                source,
            })?
            .next()
            .ok_or_else(unresolved)?;
        let io_error = |source: std::io::Error| io_to_client(addr, source);
        let io = match options.transport {
            Transport::Tcp => {
                let stream = tokio::time::timeout(options.timeout, TcpStream::connect(addr))
                    .await
                    .map_err(|_| ClientError::ConnectTimeout {
                        addr,
                        after: options.timeout,
                    })?
                    .map_err(io_error)?;
                stream.set_nodelay(true).map_err(io_error)?;
                Io::Tcp {
                    stream,
                    buf: BytesMut::with_capacity(4096),
                }
            }
            Transport::Udp => {
                let local: SocketAddr = if addr.is_ipv4() {
                    SocketAddr::from(([0, 0, 0, 0], 0))
                } else {
                    SocketAddr::from(([0u16; 8], 0))
                };
                let socket = UdpSocket::bind(local).await.map_err(io_error)?;
                socket.connect(addr).await.map_err(io_error)?;
                // 64 KiB: never truncate a datagram the way pyzk's recv(1024) does (pull.md §11).
                Io::Udp {
                    socket,
                    buf: vec![0; 65_536],
                }
            }
        };
        let max_chunk = options.max_chunk.unwrap_or(match options.transport {
            Transport::Tcp => 0xFFC0,
            Transport::Udp => 16_384,
        });
        let session = Session::new(SessionConfig {
            comm_key: options.comm_key,
            timeout: options.timeout,
            retries: options.retries,
            max_chunk,
            ..SessionConfig::default()
        });
        let user_layout = match options.transport {
            Transport::Tcp => UserLayout::Size72,
            Transport::Udp => UserLayout::Size28,
        };
        let mut client = Client {
            addr,
            options,
            io,
            session,
            user_layout,
        };
        client.run(Request::Connect).await?;
        tracing::debug!(addr = %client.addr, session_id = client.session.session_id(), "connected");
        Ok(client)
    }

    /// The device address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The session id the device assigned.
    pub fn session_id(&self) -> u16 {
        self.session.session_id()
    }

    /// The session's counters (stale replies, retransmits, events).
    pub fn stats(&self) -> &crate::session::SessionStats {
        self.session.stats()
    }

    async fn send(&mut self, packet: &Packet) -> Result<(), ClientError> {
        let addr = self.addr;
        match &mut self.io {
            Io::Tcp { stream, .. } => stream
                .write_all(&packet.encode_tcp())
                .await
                .map_err(|e| io_to_client(addr, e)),
            Io::Udp { socket, .. } => socket
                .send(&packet.encode())
                .await
                .map(|_| ())
                .map_err(|e| io_to_client(addr, e)),
        }
    }

    /// Read the next packet. Cancel-safe: partial TCP frames stay in the buffer.
    async fn recv(&mut self) -> Result<Packet, ClientError> {
        let addr = self.addr;
        match &mut self.io {
            Io::Tcp { stream, buf } => loop {
                match codec::decode_tcp_frame(buf) {
                    Ok(Some(packet)) => return Ok(packet),
                    Ok(None) => {}
                    Err(e) => return Err(malformed_frame(e)),
                }
                let n = stream
                    .read_buf(buf)
                    .await
                    .map_err(|e| io_to_client(addr, e))?;
                if n == 0 {
                    return Err(ClientError::Closed);
                }
            },
            Io::Udp { socket, buf } => loop {
                let n = socket.recv(buf).await.map_err(|e| io_to_client(addr, e))?;
                match codec::decode_checked(&buf[..n]) {
                    Ok((packet, checksum_ok)) => {
                        if !checksum_ok {
                            tracing::debug!(
                                command = packet.command,
                                "datagram with a bad checksum"
                            );
                        }
                        return Ok(packet);
                    }
                    Err(error) => tracing::debug!(%error, "undecodable datagram dropped"),
                }
            },
        }
    }

    /// Send whatever the session has queued (requests, retries, event acknowledgements).
    async fn flush(&mut self) -> Result<(), ClientError> {
        while let Some(packet) = self.session.poll_transmit() {
            self.send(&packet).await?;
        }
        Ok(())
    }

    /// Run one session operation to its end.
    async fn run(&mut self, request: Request) -> Result<Outcome, ClientError> {
        if !self.session.is_idle() {
            // A previous call was cancelled (its future dropped) mid-operation.
            tracing::debug!("abandoning an operation whose caller went away");
            self.session.abandon();
        }
        self.session.start(request, now())?;
        loop {
            self.flush().await?;
            if let Some(outcome) = self.session.poll_outcome() {
                return outcome.map_err(ClientError::from);
            }
            let Some(deadline) = self.session.poll_timeout() else {
                return Err(ClientError::NotConnected);
            };
            let deadline = tokio::time::Instant::from_std(deadline);
            match tokio::time::timeout_at(deadline, self.recv()).await {
                Ok(Ok(packet)) => self.session.handle_packet(packet, now()),
                Ok(Err(error)) => {
                    self.session.reset();
                    return Err(error);
                }
                Err(_elapsed) => self.session.handle_timeout(now()),
            }
        }
    }

    /// Send any command and return the device's reply packet (whatever its code). For commands this client
    /// does not wrap.
    ///
    /// # Errors
    /// [`ClientError::Timeout`] and network errors.
    pub async fn command(&mut self, command: u16, payload: Vec<u8>) -> Result<Packet, ClientError> {
        match self.run(Request::Command { command, payload }).await? {
            Outcome::Reply(packet) => Ok(packet),
            other => Err(ClientError::Malformed(format!(
                "unexpected outcome {other:?} for {}",
                command_name(command)
            ))),
        }
    }

    /// Send a command that must be answered `CMD_ACK_OK`; returns the reply payload.
    async fn command_ok(&mut self, command: u16, payload: Vec<u8>) -> Result<Vec<u8>, ClientError> {
        let reply = self.command(command, payload).await?;
        if reply.command == cmd::ACK_OK {
            Ok(reply.payload)
        } else {
            Err(ClientError::Refused {
                command,
                code: reply.command,
            })
        }
    }

    async fn read_dataset(&mut self, command: u16, fct: u32) -> Result<Vec<u8>, ClientError> {
        match self.run(Request::ReadDataset { command, fct }).await? {
            Outcome::Data(data) => Ok(data),
            other => Err(ClientError::Malformed(format!(
                "unexpected outcome {other:?} for a dataset read"
            ))),
        }
    }

    /// Read one option (`CMD_OPTIONS_RRQ`, pull.md §6.1); `None` when the firmware does not know the key.
    ///
    /// # Errors
    /// [`ClientError::Timeout`], [`ClientError::Refused`] for codes other than ACK_OK / ACK_ERROR.
    pub async fn option(&mut self, name: &str) -> Result<Option<String>, ClientError> {
        let mut payload = name.as_bytes().to_vec();
        payload.push(0);
        let reply = self.command(cmd::OPTIONS_RRQ, payload).await?;
        match reply.command {
            cmd::ACK_OK => Ok(records::parse_option_value(&reply.payload)),
            cmd::ACK_ERROR | cmd::ACK_UNKNOWN => Ok(None),
            code => Err(ClientError::Refused {
                command: cmd::OPTIONS_RRQ,
                code,
            }),
        }
    }

    /// Write one option (`CMD_OPTIONS_WRQ` `name=value\0`, then `CMD_REFRESHOPTION`, pull.md §6.1).
    ///
    /// # Errors
    /// [`ClientError::Refused`] when the device does not answer ACK_OK.
    pub async fn set_option(&mut self, name: &str, value: &str) -> Result<(), ClientError> {
        let mut payload = format!("{name}={value}").into_bytes();
        payload.push(0);
        self.command_ok(cmd::OPTIONS_WRQ, payload).await?;
        self.command_ok(cmd::REFRESHOPTION, Vec::new()).await?;
        Ok(())
    }

    /// The firmware version string (`CMD_GET_VERSION`), without the trailing NUL.
    ///
    /// # Errors
    /// [`ClientError::Refused`], [`ClientError::Timeout`].
    pub async fn firmware_version(&mut self) -> Result<String, ClientError> {
        let payload = self.command_ok(cmd::GET_VERSION, Vec::new()).await?;
        Ok(records::decode_text(&payload))
    }

    /// Serial number, platform, firmware, name, MAC, algorithm versions, counts and capacities.
    ///
    /// # Errors
    /// [`ClientError::Timeout`], [`ClientError::Malformed`] (free sizes), network errors.
    pub async fn device_info(&mut self) -> Result<DeviceInfo, ClientError> {
        let firmware_version = match self.firmware_version().await {
            Ok(v) => Some(v),
            Err(ClientError::Refused { .. }) => None,
            Err(e) => return Err(e),
        };
        Ok(DeviceInfo {
            serial_number: self.option("~SerialNumber").await?,
            platform: self.option("~Platform").await?,
            firmware_version,
            device_name: self.option("~DeviceName").await?,
            mac: self.option("MAC").await?,
            fingerprint_version: self.option("~ZKFPVersion").await?,
            face_version: self.option("ZKFaceVersion").await?,
            sizes: self.free_sizes().await?,
        })
    }

    /// Counts and capacities (`CMD_GET_FREE_SIZES`, pull.md §6.4).
    ///
    /// # Errors
    /// [`ClientError::Malformed`] when the reply is under 80 bytes.
    pub async fn free_sizes(&mut self) -> Result<FreeSizes, ClientError> {
        let payload = self.command_ok(cmd::GET_FREE_SIZES, Vec::new()).await?;
        FreeSizes::decode(&payload).map_err(|e| ClientError::Malformed(e.to_string()))
    }

    /// The device clock (local wall time, no zone; pull.md §6.5).
    ///
    /// # Errors
    /// [`ClientError::Malformed`] for a short reply or an impossible date.
    pub async fn get_time(&mut self) -> Result<NaiveDateTime, ClientError> {
        let payload = self.command_ok(cmd::GET_TIME, Vec::new()).await?;
        let raw = payload
            .get(..4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| {
                ClientError::Malformed(format!("time reply has {} bytes, need 4", payload.len()))
            })?;
        records::decode_time(raw)
            .ok_or_else(|| ClientError::Malformed(format!("impossible device time {raw:#010x}")))
    }

    /// Set the device clock (`CMD_SET_TIME`, then `CMD_REFRESHDATA` as ADRO advises). `t` is the device's local
    /// wall time; only years 2000–2099 can be represented.
    ///
    /// # Errors
    /// [`ClientError::Refused`] when the device does not answer ACK_OK.
    pub async fn set_time(&mut self, t: NaiveDateTime) -> Result<(), ClientError> {
        let payload = records::encode_time(t).to_le_bytes().to_vec();
        self.command_ok(cmd::SET_TIME, payload).await?;
        self.command_ok(cmd::REFRESHDATA, Vec::new()).await?;
        Ok(())
    }

    /// Run a bulk read with the device disabled (keypad locked), re-enabling it even when the read fails.
    async fn with_device_disabled<T>(
        &mut self,
        read: impl AsyncFnOnce(&mut Client) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        if !self.options.disable_during_reads {
            return read(self).await;
        }
        match self.disable_device().await {
            Ok(()) => {}
            Err(ClientError::Refused { code, .. }) => {
                // Reading without the lock is what pyzk does; better than not reading at all.
                tracing::warn!(addr = %self.addr, code, "device refused CMD_DISABLEDEVICE, reading anyway");
                return read(self).await;
            }
            Err(e) => return Err(e),
        }
        let result = read(self).await;
        let enabled = self.enable_device().await;
        let value = result?;
        enabled?;
        Ok(value)
    }

    /// All users (pull.md §7, §8.1–8.2). The record layout (28 or 72 bytes) is detected from the user count
    /// and remembered for [`Client::set_user`]. Records that do not decode are logged and skipped.
    ///
    /// # Errors
    /// Timeouts, refusals and malformed replies of the underlying reads.
    pub async fn users(&mut self) -> Result<Vec<User>, ClientError> {
        let (users, layout) = self
            .with_device_disabled(async |client: &mut Client| {
                let sizes = client.free_sizes().await?;
                let hint = usize::try_from(sizes.users).ok();
                let raw = client
                    .read_dataset(cmd::USERTEMP_RRQ, cmd::FCT_USER)
                    .await?;
                let data = dataset_body(&raw);
                let layout = records::detect_user_layout(data.len(), hint);
                let encoding = client.options.encoding;
                Ok((
                    records::decode_users_records_with(data, layout, encoding),
                    layout,
                ))
            })
            .await?;
        if !users.is_empty() {
            self.user_layout = layout;
        }
        let mut out = Vec::with_capacity(users.len());
        for user in users {
            match user {
                Ok(user) => out.push(user),
                Err(error) => tracing::warn!(%error, addr = %self.addr, "user record skipped"),
            }
        }
        Ok(out)
    }

    /// The whole attendance log with its raw bytes (pull.md §7, §8.5). The record size is detected robustly
    /// (see [`records::decode_attendance_dataset`]); records that do not decode are returned in `errors`.
    ///
    /// # Errors
    /// Timeouts, refusals and malformed replies of the underlying reads.
    pub async fn attendance(&mut self) -> Result<AttendanceDownload, ClientError> {
        let (raw, hint) = self
            .with_device_disabled(async |client: &mut Client| {
                let sizes = client.free_sizes().await?;
                let hint = usize::try_from(sizes.records).ok();
                let raw = client
                    .read_dataset(cmd::ATTLOG_RRQ, cmd::FCT_ATTLOG)
                    .await?;
                Ok((raw, hint))
            })
            .await?;
        let data = dataset_body(&raw);
        let layout = records::detect_attendance_layout(data, hint);
        let mut download = AttendanceDownload {
            records: Vec::new(),
            errors: Vec::new(),
            raw: Vec::new(),
            layout,
        };
        if let Some(layout) = layout {
            for record in records::decode_attendance_records(data, layout) {
                match record {
                    Ok(record) => download.records.push(record),
                    Err(error) => download.errors.push(error),
                }
            }
        }
        if !download.errors.is_empty() {
            tracing::warn!(
                addr = %self.addr,
                failed = download.errors.len(),
                decoded = download.records.len(),
                "attendance records that did not decode are kept in the raw bytes"
            );
        }
        download.raw = raw;
        Ok(download)
    }

    /// All fingerprint templates (pull.md §8.6). Biometric data: handle accordingly.
    ///
    /// # Errors
    /// Timeouts, refusals, and [`ClientError::Malformed`] when an entry overruns the dataset.
    pub async fn templates(&mut self) -> Result<Vec<Template>, ClientError> {
        let raw = self
            .with_device_disabled(async |client: &mut Client| {
                client.read_dataset(cmd::DB_RRQ, cmd::FCT_FINGERTMP).await
            })
            .await?;
        records::decode_templates_dataset(dataset_body(&raw))
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ClientError::Malformed(e.to_string()))
    }

    /// Create or overwrite a user (`CMD_USER_WRQ` with a 72- or 28-byte record, then `CMD_REFRESHDATA`).
    ///
    /// # Errors
    /// [`ClientError::Refused`] when the device does not answer ACK_OK.
    pub async fn set_user(&mut self, user: &User) -> Result<(), ClientError> {
        let encoding = self.options.encoding.unwrap_or(encoding_rs::UTF_8);
        let record = match self.user_layout {
            UserLayout::Size72 => records::encode_user_72_with(user, encoding).to_vec(),
            UserLayout::Size28 => records::encode_user_28_with(user, encoding).to_vec(),
        };
        self.command_ok(cmd::USER_WRQ, record).await?;
        self.command_ok(cmd::REFRESHDATA, Vec::new()).await?;
        Ok(())
    }

    /// Enable or disable a user (privilege bit 0, pull.md §8.4) by reading the users, changing that bit of the
    /// record and writing it back. Other fields are kept as read (the 28-byte layout loses the time zone).
    ///
    /// # Errors
    /// [`ClientError::UserNotFound`], and the errors of [`Client::users`] and [`Client::set_user`].
    pub async fn set_user_enabled(&mut self, uid: u16, enabled: bool) -> Result<(), ClientError> {
        let mut user = self
            .users()
            .await?
            .into_iter()
            .find(|u| u.uid == uid)
            .ok_or(ClientError::UserNotFound { uid })?;
        user.set_enabled(enabled);
        self.set_user(&user).await
    }

    /// Delete a user by uid (`CMD_DELETE_USER`, then `CMD_REFRESHDATA`).
    ///
    /// # Errors
    /// [`ClientError::Refused`] when the device does not know the uid.
    pub async fn delete_user(&mut self, uid: u16) -> Result<(), ClientError> {
        self.command_ok(cmd::DELETE_USER, uid.to_le_bytes().to_vec())
            .await?;
        self.command_ok(cmd::REFRESHDATA, Vec::new()).await?;
        Ok(())
    }

    /// Unlock the keypad and sensor (`CMD_ENABLEDEVICE`).
    ///
    /// # Errors
    /// [`ClientError::Refused`], [`ClientError::Timeout`].
    pub async fn enable_device(&mut self) -> Result<(), ClientError> {
        self.command_ok(cmd::ENABLEDEVICE, Vec::new())
            .await
            .map(drop)
    }

    /// Lock the keypad and sensor ("Working…") until [`Client::enable_device`] (`CMD_DISABLEDEVICE`).
    ///
    /// # Errors
    /// [`ClientError::Refused`], [`ClientError::Timeout`].
    pub async fn disable_device(&mut self) -> Result<(), ClientError> {
        self.command_ok(cmd::DISABLEDEVICE, Vec::new())
            .await
            .map(drop)
    }

    /// Delete the whole attendance log (`CMD_CLEAR_ATTLOG`). Only after the download is stored durably.
    ///
    /// # Errors
    /// [`ClientError::Refused`], [`ClientError::Timeout`].
    pub async fn clear_attendance(&mut self) -> Result<(), ClientError> {
        self.command_ok(cmd::CLEAR_ATTLOG, Vec::new())
            .await
            .map(drop)
    }

    /// Open the door for `secs` seconds (`CMD_UNLOCK` with tenths of a second, as pyzk sends).
    ///
    /// # Errors
    /// [`ClientError::Refused`], [`ClientError::Timeout`].
    pub async fn unlock(&mut self, secs: u32) -> Result<(), ClientError> {
        let payload = secs.saturating_mul(10).to_le_bytes().to_vec();
        self.command_ok(cmd::UNLOCK, payload).await.map(drop)
    }

    /// Reboot the device (`CMD_RESTART`). Some firmware ACKs, the F19 does not (pull.md §10.9): both are
    /// success. The client is closed afterwards.
    ///
    /// # Errors
    /// [`ClientError::Refused`] when the device answers with an error code; network errors.
    pub async fn restart(mut self) -> Result<(), ClientError> {
        self.session.config_mut().retries = 0;
        let result = self.command(cmd::RESTART, Vec::new()).await;
        match result {
            Ok(reply) if reply.command == cmd::ACK_OK => Ok(()),
            Ok(reply) => Err(ClientError::Refused {
                command: cmd::RESTART,
                code: reply.command,
            }),
            Err(ClientError::Timeout { .. } | ClientError::Closed) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Register for real-time attendance events (`CMD_REG_EVENT` with `EF_ATTLOG`, pull.md §9) and return a
    /// receiver borrowing this client. Events stop silently when the device restarts: call
    /// [`LiveEvents::keep_alive`] periodically and reconnect when it fails.
    ///
    /// # Errors
    /// [`ClientError::Refused`], [`ClientError::Timeout`].
    pub async fn live_events(&mut self) -> Result<LiveEvents<'_>, ClientError> {
        self.command_ok(cmd::REG_EVENT, cmd::EF_ATTLOG.to_le_bytes().to_vec())
            .await?;
        Ok(LiveEvents { client: self })
    }

    /// Register for real-time attendance events and hand the connection to a background task that sends each
    /// punch to the returned receiver, checks the connection every `keep_alive_every` with `CMD_GET_TIME`, and
    /// on the first error sends it and ends. Dropping the receiver unregisters and disconnects.
    ///
    /// # Errors
    /// [`ClientError::Refused`], [`ClientError::Timeout`] when registering.
    pub async fn into_live_events(
        mut self,
        keep_alive_every: Duration,
        capacity: usize,
    ) -> Result<LiveReceiver, ClientError> {
        self.command_ok(cmd::REG_EVENT, cmd::EF_ATTLOG.to_le_bytes().to_vec())
            .await?;
        let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(keep_alive_every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                if let Err(error) = self.flush().await {
                    let _ = tx.send(Err(error)).await;
                    return;
                }
                while let Some(event) = self.session.poll_event() {
                    if let DeviceEvent::Attendance(event) = event {
                        if tx.send(Ok(event)).await.is_err() {
                            break;
                        }
                    }
                }
                tokio::select! {
                    () = tx.closed() => {
                        let _ = self
                            .command_ok(cmd::REG_EVENT, 0u32.to_le_bytes().to_vec())
                            .await;
                        let _ = self.disconnect().await;
                        return;
                    }
                    _ = ticker.tick() => {
                        if let Err(error) = self.get_time().await {
                            let _ = tx.send(Err(error)).await;
                            return;
                        }
                    }
                    packet = self.recv() => match packet {
                        Ok(packet) => self.session.handle_packet(packet, now()),
                        Err(error) => {
                            let _ = tx.send(Err(error)).await;
                            return;
                        }
                    },
                }
            }
        });
        Ok(LiveReceiver { rx, task })
    }

    /// End the session (`CMD_EXIT`) and close the socket. A device that closes without answering is fine.
    ///
    /// # Errors
    /// [`ClientError::Refused`] when the device answers with an error code.
    pub async fn disconnect(mut self) -> Result<(), ClientError> {
        self.session.config_mut().retries = 0;
        let result = self.command(cmd::EXIT, Vec::new()).await;
        self.session.reset();
        if let Io::Tcp { stream, .. } = &mut self.io {
            let _ = stream.shutdown().await;
        }
        match result {
            Ok(reply) if reply.command == cmd::ACK_OK => Ok(()),
            Ok(reply) => Err(ClientError::Refused {
                command: cmd::EXIT,
                code: reply.command,
            }),
            Err(ClientError::Timeout { .. } | ClientError::Closed) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Real-time events of a registered connection (see [`Client::live_events`]). Reading is cancel-safe, so
/// `next` can sit in a `tokio::select!` with a shutdown signal or a keep-alive tick.
#[derive(Debug)]
pub struct LiveEvents<'a> {
    client: &'a mut Client,
}

impl LiveEvents<'_> {
    /// The next event of any kind, waiting as long as it takes. Each event is acknowledged to the device.
    ///
    /// # Errors
    /// [`ClientError::Closed`] and network errors.
    pub async fn next_event(&mut self) -> Result<DeviceEvent, ClientError> {
        loop {
            self.client.flush().await?;
            if let Some(event) = self.client.session.poll_event() {
                return Ok(event);
            }
            let packet = self.client.recv().await?;
            self.client.session.handle_packet(packet, now());
        }
    }

    /// The next punch (`EF_ATTLOG` event); other events are skipped.
    ///
    /// # Errors
    /// [`ClientError::Closed`] and network errors.
    pub async fn next(&mut self) -> Result<AttendanceEvent, ClientError> {
        loop {
            match self.next_event().await? {
                DeviceEvent::Attendance(event) => return Ok(event),
                DeviceEvent::Other { code, payload } => {
                    tracing::debug!(code, len = payload.len(), "non-attendance event skipped");
                }
            }
        }
    }

    /// Check the connection is alive with a cheap request (`CMD_GET_TIME`); events arriving meanwhile are
    /// kept for `next`.
    ///
    /// # Errors
    /// [`ClientError::Timeout`] when the device stopped answering (reconnect and register again).
    pub async fn keep_alive(&mut self) -> Result<NaiveDateTime, ClientError> {
        self.client.get_time().await
    }

    /// Unregister (`CMD_REG_EVENT` with mask 0) and give the client back for other requests.
    ///
    /// # Errors
    /// [`ClientError::Refused`], [`ClientError::Timeout`].
    pub async fn stop(self) -> Result<(), ClientError> {
        self.client
            .command_ok(cmd::REG_EVENT, 0u32.to_le_bytes().to_vec())
            .await
            .map(drop)
    }
}

/// Punches from a connection handed to a background task by [`Client::into_live_events`].
#[derive(Debug)]
pub struct LiveReceiver {
    rx: tokio::sync::mpsc::Receiver<Result<AttendanceEvent, ClientError>>,
    task: tokio::task::JoinHandle<()>,
}

impl LiveReceiver {
    /// The next punch, or the error that ended the connection; `None` after that error was delivered.
    pub async fn recv(&mut self) -> Option<Result<AttendanceEvent, ClientError>> {
        self.rx.recv().await
    }

    /// Unregister, disconnect, and wait for the background task to end.
    pub async fn close(self) {
        drop(self.rx);
        let _ = self.task.await;
    }
}

/// The records of a dataset: the bytes after the 4-byte size prefix (pull.md §7.5). A prefix that disagrees
/// with the bytes received is logged; the bytes after it are used anyway.
fn dataset_body(raw: &[u8]) -> &[u8] {
    match raw.split_first_chunk::<4>() {
        Some((prefix, body)) => {
            let declared = u32::from_le_bytes(*prefix);
            if usize::try_from(declared).ok() != Some(body.len()) {
                tracing::warn!(
                    declared,
                    actual = body.len(),
                    "dataset size prefix disagrees with the bytes received"
                );
            }
            body
        }
        None => &[],
    }
}

fn malformed_frame(e: DecodeError) -> ClientError {
    ClientError::Malformed(e.to_string())
}

fn io_to_client(addr: SocketAddr, source: std::io::Error) -> ClientError {
    use std::io::ErrorKind;
    match source.kind() {
        ErrorKind::ConnectionRefused => ClientError::ConnectionRefused { addr },
        ErrorKind::ConnectionReset | ErrorKind::UnexpectedEof | ErrorKind::BrokenPipe => {
            ClientError::Closed
        }
        _ => ClientError::Io { addr, source },
    }
}
