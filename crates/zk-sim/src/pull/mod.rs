//! A simulated pull terminal: serves the ZK binary protocol (shared/protocol/pull.md) on one port for both TCP
//! and UDP. It follows what pyzk needs packet by packet (shared/protocol/pull-simulator.md §3, checked by
//! tests/conformance/pyzk_matrix.py), the Node clients' constraints (§4: single direct frames, a frame-gap
//! knob, events that do not wait forever for an ACK), and drives our own `zk_pull::client` in tests.
//!
//! Submodules in reading order, each depending only on those before it:
//! - `generate`: deterministic sample data (users, punches, templates) from a seed.
//! - `model`: the device model (stored data, options, clock offset) and its datasets. Pure.
//! - `responder`: one request in, reply packets out (sessions, comm key, buffered transfers). Sans-IO.
//! - `wire`: reply packets to bytes with faults applied; TCP request framing. Pure.
//! - `tcp`, `udp`: the tokio transports: sockets, timing, live events.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use zk_sim::pull::{PullSim, PullSimConfig, Profile};
//! let config = PullSimConfig { users: 500, punches: 100_000, ..PullSimConfig::new(Profile::Zk8) };
//! let sim = PullSim::bind("127.0.0.1:4370".parse().expect("literal address"), config).await?;
//! let handle = sim.handle();
//! tokio::spawn(sim.run(std::future::pending::<()>()));
//! handle.punch("1", 0, 1); // a live punch: check-in by fingerprint, sent to registered clients
//! # Ok(()) }
//! ```

mod drain;
mod generate;
mod model;
mod responder;
mod tcp;
mod udp;
mod wire;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, NaiveDateTime};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinSet;
use zk_pull::records::{
    Attendance, AttendanceEvent, AttendanceLayout, FreeSizes, Template, User, UserLayout,
};

use model::DeviceModel;
pub use responder::Transport;
use zk_pull::codec::Packet;

/// Device families the simulator can play; they differ in record layouts and reply sizes (pull.md §8,
/// pull-simulator.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// TFT ("ZK8") firmware: 72-byte users, 40-byte attendance records, 92-byte free sizes.
    Zk8,
    /// Black-and-white ("ZK6") firmware: 28-byte users (PIN as a number, 8-byte names), 16-byte attendance
    /// records, 80-byte free sizes. Real ZK6 units are often UDP-only; the simulator serves TCP as well.
    Zk6,
    /// ZEM500/MA300-era firmware: 28-byte users and 8-byte attendance records in the device's order (uid,
    /// verify mode, punch state, time at offset 4). pyzk mis-reads these dates exactly as it does on real
    /// units (pull.md §8.5); use it to test our client's layout detection.
    Zem500,
}

impl Profile {
    /// The user record layout (pull.md §8.1, §8.2).
    pub fn user_layout(self) -> UserLayout {
        match self {
            Profile::Zk8 => UserLayout::Size72,
            Profile::Zk6 | Profile::Zem500 => UserLayout::Size28,
        }
    }

    /// The attendance record layout (pull.md §8.5).
    pub fn attendance_layout(self) -> AttendanceLayout {
        match self {
            Profile::Zk8 => AttendanceLayout::Size40,
            Profile::Zk6 => AttendanceLayout::Size16,
            Profile::Zem500 => AttendanceLayout::Size8,
        }
    }

    /// Whether `CMD_GET_FREE_SIZES` answers 92 bytes (with the face block) rather than 80 (pull.md §6.4).
    pub fn free_sizes_face_block(self) -> bool {
        self == Profile::Zk8
    }

    /// The `~Platform` option this family usually reports.
    pub fn default_platform(self) -> &'static str {
        match self {
            Profile::Zk8 => "ZEM560_TFT",
            Profile::Zk6 => "ZEM510",
            Profile::Zem500 => "ZEM500",
        }
    }
}

/// A profile name that is not one of `zk8`, `zk6`, `zem500`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownProfile(pub String);

impl std::fmt::Display for UnknownProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "unknown device profile {:?}: expected zk8, zk6 or zem500",
            self.0
        )
    }
}

impl std::error::Error for UnknownProfile {}

impl std::str::FromStr for Profile {
    type Err = UnknownProfile;

    /// `zk8`, `zk6` or `zem500`, in any case (for `punchd simulate pull --profile`).
    fn from_str(s: &str) -> Result<Profile, UnknownProfile> {
        match s.to_ascii_lowercase().as_str() {
            "zk8" => Ok(Profile::Zk8),
            "zk6" => Ok(Profile::Zk6),
            "zem500" => Ok(Profile::Zem500),
            _ => Err(UnknownProfile(s.to_owned())),
        }
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Profile::Zk8 => "zk8",
            Profile::Zk6 => "zk6",
            Profile::Zem500 => "zem500",
        })
    }
}

/// Misbehaviour to inject, for testing clients (timeouts, retries, reconnection). Each "first reply to
/// command X" fault and the mid-transfer disconnect fire once per simulator (the first matching reply on any
/// connection), so a client that retries or reconnects then succeeds. Delays and frame splitting apply to
/// every reply. The default injects nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// Wait this long before every reply (a slow device).
    pub reply_delay: Duration,
    /// Wait this long between the packets of a multi-packet transfer (PREPARE_DATA, CMD_DATA…, ACK_OK). The
    /// Node clients need 10–20 ms when frames coalesce (pull-simulator.md §4).
    pub frame_gap: Duration,
    /// Split the data of a TCP transfer into `CMD_DATA` frames of at most this many bytes (1008 like some real
    /// devices, whose data frames then count 0, 1, 2… in the session field). `None`: one frame per chunk, which
    /// is what pyzk needs (pull-simulator.md rule R3).
    pub data_frame_size: Option<usize>,
    /// Send no reply at all to the first request with this command code.
    pub drop_reply_to: Option<u16>,
    /// Send only the first `.1` bytes of the reply to the first request with command `.0`.
    pub truncate_reply_to: Option<(u16, usize)>,
    /// Complement the checksum of the reply to the first request with this command code.
    pub corrupt_checksum_of_reply_to: Option<u16>,
    /// In the first bulk transfer (1504 or a legacy read), send `PREPARE_DATA` and half of the first data
    /// frame, then close the TCP connection (UDP: send `PREPARE_DATA` and one data datagram, then nothing).
    pub disconnect_mid_transfer: bool,
    /// Silently drop requests whose checksum does not verify. Off (the default): answer them anyway and count
    /// them in [`Counters::bad_checksums`]; real terminals' behaviour is not documented (pull.md §2).
    pub drop_bad_checksum_requests: bool,
}

/// How bulk transfers (1504 chunks, legacy reads) are spread over time. The default lets pyzk 0.9,
/// node-zklib 1.3.0 and zkteco-js 1.7.2 read 100 000 punches over TCP and UDP (pull-simulator.md §4, tested in
/// `tests/it/node.rs` and `tests/it/pyzk.rs`); [`Pacing::none`] writes every reply at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    /// TCP: a transfer goes out as `PREPARE_DATA`, a wait, the data frames and `ACK_OK` in one write, and a
    /// wait again. node-zklib and zkteco-js take one frame per socket read and drop the rest of that read,
    /// so coalesced frames stall or truncate their downloads, and an `ACK_OK` arriving on its own after the
    /// data is taken as the reply to their next request. For a client on this machine (Linux, 127.0.0.0/8)
    /// each wait lasts until the client has read what was sent (the kernel's socket table says; after 1 s
    /// without reading, the rest of that reply goes out without waits); for other clients it is this pause. Default 20 ms. Zero: one write per reply, no waits (pyzk
    /// and the Rust client still work; the Node clients don't). Ignored when [`Faults::frame_gap`] is set.
    pub tcp_gap: Duration,
    /// UDP: after this many datagrams of a transfer, wait as for `tcp_gap` until the client has read them
    /// (for a remote client: pause [`Pacing::udp_burst_gap`]). node-zklib asks for every chunk at once; sent
    /// back to back, the datagrams overflow its socket's receive buffer (about 90 datagrams at Linux
    /// defaults) and the download times out. Default 8. Zero: no waits.
    pub udp_burst: usize,
    /// UDP: the pause after each burst when the client's reading cannot be observed. Default 2 ms; zero: no
    /// waits.
    pub udp_burst_gap: Duration,
}

impl Pacing {
    /// No pacing: every reply in one TCP write, datagrams back to back (fastest; only pyzk and the Rust
    /// client read it reliably).
    pub fn none() -> Pacing {
        Pacing {
            tcp_gap: Duration::ZERO,
            udp_burst: 0,
            udp_burst_gap: Duration::ZERO,
        }
    }
}

impl Default for Pacing {
    fn default() -> Pacing {
        Pacing {
            tcp_gap: Duration::from_millis(20),
            udp_burst: 8,
            udp_burst_gap: Duration::from_millis(2),
        }
    }
}

/// What the simulated terminal holds and how it behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullSimConfig {
    /// Users 1..=N (uid = N, PIN = N as text). At most 65 534 (the uid is a u16).
    pub users: usize,
    /// Punches in the attendance log, spread over the working days before `punches_until`.
    pub punches: usize,
    /// Fingerprint templates, spread over the users round-robin.
    pub templates: usize,
    /// The device's comm key (0 = none): clients must then authenticate with `CMD_AUTH` (pull.md §5).
    pub comm_key: u32,
    /// Record layouts and reply sizes.
    pub profile: Profile,
    /// `~SerialNumber`.
    pub serial_number: String,
    /// The `CMD_GET_VERSION` reply, e.g. "Ver 6.60 Apr 28 2015".
    pub firmware: String,
    /// `~Platform`.
    pub platform: String,
    /// `~DeviceName`.
    pub device_name: String,
    /// `MAC`.
    pub mac: String,
    /// The newest punch is at or before this device wall-clock time. `None`: the device's "now" at bind time
    /// (recent days, but then the data depends on the date; tests set it).
    pub punches_until: Option<NaiveDateTime>,
    /// Device wall-clock time minus the host's UTC time at start (devices have no time zone).
    pub clock_offset: chrono::Duration,
    /// Datasets up to this many bytes (with the 4-byte size prefix) are answered to 1503 with one direct
    /// `CMD_DATA`; larger ones go through the buffer and 1504 chunks (pull-simulator.md rule R2). Capped at
    /// 1016 on UDP, where pyzk truncates larger datagrams.
    pub direct_threshold: usize,
    /// How bulk transfers are spread over time so the Node clients read them (pull-simulator.md §4).
    pub pacing: Pacing,
    /// Payload size of live attendance events (pull.md §9.3). `None`: 32 on TCP, 12 on UDP.
    pub event_payload_len: Option<usize>,
    /// How long a TCP connection waits for the client's ACK of a live event before sending the next one
    /// (pyzk needs one event per read; the Node clients never ACK).
    pub event_ack_timeout: Duration,
    /// Demo mode: while at least one client is registered for live events, a user picked by the seeded
    /// generator punches this often (so `pyzk_matrix.py`'s live step, or any live client, sees traffic without
    /// a test driving the handle). `None`: only [`PullSimHandle::punch`] punches.
    pub live_punch_every: Option<Duration>,
    /// Keep every request, reply and event packet in a log readable with [`PullSimHandle::frame_log`], to
    /// assert on what a client sent. Off by default (a 100 000-punch download logs 4 MB).
    pub record_frames: bool,
    /// Faults to inject.
    pub faults: Faults,
    /// Seed of the generated data and of the session ids.
    pub seed: u64,
}

impl PullSimConfig {
    /// A small terminal of the given family: 10 users, 100 punches, 5 templates, no comm key, no faults.
    pub fn new(profile: Profile) -> PullSimConfig {
        PullSimConfig {
            users: 10,
            punches: 100,
            templates: 5,
            comm_key: 0,
            profile,
            serial_number: "SIM0000000001".to_owned(),
            firmware: "Ver 6.60 Apr 28 2015".to_owned(),
            platform: profile.default_platform().to_owned(),
            device_name: "punchd-sim".to_owned(),
            mac: "00:17:61:00:00:01".to_owned(),
            punches_until: None,
            clock_offset: chrono::Duration::zero(),
            direct_threshold: 1016,
            pacing: Pacing::default(),
            event_payload_len: None,
            event_ack_timeout: Duration::from_millis(500),
            live_punch_every: None,
            record_frames: false,
            faults: Faults::default(),
            seed: 1,
        }
    }
}

impl Default for PullSimConfig {
    /// [`PullSimConfig::new`] with [`Profile::Zk8`].
    fn default() -> PullSimConfig {
        PullSimConfig::new(Profile::Zk8)
    }
}

/// What the simulator has seen and done, for assertions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// TCP connections accepted (pyzk's empty probe connection counts too).
    pub tcp_connections: u64,
    /// UDP sessions opened by `CMD_CONNECT`.
    pub udp_sessions: u64,
    /// Requests answered or dropped (including clients' event ACKs).
    pub requests: u64,
    /// Requests whose checksum did not verify.
    pub bad_checksums: u64,
    /// TCP streams closed because of a bad frame (bad magic, impossible length), and UDP datagrams under 8
    /// bytes.
    pub malformed_frames: u64,
    /// Requests answered with `CMD_ACK_UNKNOWN`.
    pub unknown_commands: u64,
    /// `CMD_AUTH` with a wrong key.
    pub auth_failures: u64,
    /// `CMD_USER_WRQ` accepted.
    pub users_written: u64,
    /// `CMD_DELETE_USER` accepted.
    pub users_deleted: u64,
    /// `CMD_UNLOCK` received.
    pub unlocks: u64,
    /// `CMD_RESTART` received.
    pub restarts: u64,
    /// Dataset bytes sent (direct and buffered).
    pub bulk_bytes_sent: u64,
    /// Live events sent (one per registered client per punch).
    pub events_sent: u64,
    /// Clients' `CMD_ACK_OK` for live events.
    pub events_acked: u64,
    /// Faults that fired: replies dropped, truncated, checksum-corrupted, transfers cut.
    pub faults_fired: u64,
}

/// Which way a logged packet went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to simulator.
    Request,
    /// Simulator to client, in answer to a request (as planned, before faults cut or drop it).
    Reply,
    /// Simulator to client, unsolicited (a live event).
    Event,
}

/// One packet in the frame log ([`PullSimConfig::record_frames`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedPacket {
    /// TCP or UDP.
    pub transport: Transport,
    /// The client's address.
    pub peer: SocketAddr,
    /// Which way it went.
    pub direction: Direction,
    /// The packet.
    pub packet: Packet,
    /// Whether a request's checksum verified (always true for what the simulator sends).
    pub checksum_ok: bool,
}

/// State shared by the transports and handles.
pub(crate) struct Shared {
    config: PullSimConfig,
    model: Mutex<DeviceModel>,
    /// Live punches, fanned out to every connection registered for `EF_ATTLOG`.
    events: broadcast::Sender<AttendanceEvent>,
    /// How many TCP connections and UDP sessions are registered for live punches.
    subscribers: watch::Sender<usize>,
    /// Bumped by `CMD_RESTART`: every connection closes, every subscription ends.
    restarts: watch::Sender<u64>,
    next_session_id: AtomicU16,
    /// Which faults have fired (each fires once per simulator).
    fault_state: Mutex<wire::FaultState>,
    frame_log: Mutex<Vec<LoggedPacket>>,
}

impl Shared {
    pub(crate) fn model(&self) -> MutexGuard<'_, DeviceModel> {
        // A panic while holding the lock would leave a consistent-enough model for a simulator.
        self.model
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A fresh non-zero session id (pull.md §3: devices assign arbitrary-looking ids).
    pub(crate) fn new_session_id(&self) -> u16 {
        loop {
            let id = self.next_session_id.fetch_add(0x0101, Ordering::Relaxed);
            if id != 0 {
                return id;
            }
        }
    }

    pub(crate) fn fault_state(&self) -> MutexGuard<'_, wire::FaultState> {
        self.fault_state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Append packets to the frame log when [`PullSimConfig::record_frames`] is on.
    pub(crate) fn log<'a>(
        &self,
        transport: Transport,
        peer: SocketAddr,
        direction: Direction,
        packets: impl IntoIterator<Item = &'a Packet>,
        checksum_ok: bool,
    ) {
        if !self.config.record_frames {
            return;
        }
        let mut log = self
            .frame_log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        log.extend(packets.into_iter().map(|packet| LoggedPacket {
            transport,
            peer,
            direction,
            packet: packet.clone(),
            checksum_ok,
        }));
    }

    /// Count the faults a rendered reply fired.
    pub(crate) fn count_faults(&self, rendered: wire::Rendered) {
        let fired = [
            rendered.dropped,
            rendered.truncated,
            rendered.corrupted,
            rendered.disconnected,
        ]
        .into_iter()
        .filter(|&fired| fired)
        .count();
        if fired > 0 {
            self.model().counters.faults_fired += fired as u64;
        }
    }

    pub(crate) fn add_subscriber(&self, delta: isize) {
        self.subscribers
            .send_modify(|n| *n = n.saturating_add_signed(delta));
    }

    pub(crate) fn restart(&self) {
        self.restarts.send_modify(|n| *n += 1);
    }
}

/// The host's UTC time as a naive date-time (the device clock adds an offset to it).
pub(crate) fn utc_now() -> NaiveDateTime {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = i64::try_from(since_epoch.as_secs()).unwrap_or(0);
    DateTime::from_timestamp(seconds, since_epoch.subsec_nanos())
        .unwrap_or_default()
        .naive_utc()
}

/// A simulated pull terminal bound to a TCP listener and a UDP socket on the same address.
pub struct PullSim {
    tcp: TcpListener,
    udp: UdpSocket,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PullSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullSim")
            .field("local_addr", &self.local_addr)
            .field("profile", &self.shared.config.profile)
            .finish_non_exhaustive()
    }
}

impl PullSim {
    /// Generate the device model from `config` and bind TCP and UDP on `addr`. With port 0, TCP binds first
    /// and UDP takes TCP's port.
    ///
    /// # Errors
    /// The bind errors, or `InvalidInput` when `config.users` exceeds 65 534.
    pub async fn bind(addr: SocketAddr, config: PullSimConfig) -> std::io::Result<PullSim> {
        if config.users > usize::from(u16::MAX - 1) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "{} users: a terminal numbers users with a u16, at most 65534",
                    config.users
                ),
            ));
        }
        let tcp = TcpListener::bind(addr).await?;
        let local_addr = tcp.local_addr()?;
        let udp = UdpSocket::bind(local_addr).await?;
        let model = DeviceModel::generate(&config, utc_now());
        let (events, _) = broadcast::channel(1024);
        let (subscribers, _) = watch::channel(0);
        let (restarts, _) = watch::channel(0);
        // Session ids start somewhere seed-dependent, like the arbitrary ids of real devices.
        let first_session = u16::try_from(config.seed % 0xFF00).unwrap_or(0) | 0x5a01;
        let shared = Arc::new(Shared {
            model: Mutex::new(model),
            config,
            events,
            subscribers,
            restarts,
            next_session_id: AtomicU16::new(first_session),
            fault_state: Mutex::new(wire::FaultState::default()),
            frame_log: Mutex::new(Vec::new()),
        });
        Ok(PullSim {
            tcp,
            udp,
            local_addr,
            shared,
        })
    }

    /// The bound address (TCP and UDP share it).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle to inspect and change the device model while the simulator runs.
    pub fn handle(&self) -> PullSimHandle {
        PullSimHandle {
            shared: Arc::clone(&self.shared),
            local_addr: self.local_addr,
        }
    }

    /// Serve TCP connections and UDP sessions until `shutdown` resolves; then every connection is dropped.
    ///
    /// # Errors
    /// None today: accept errors (e.g. too many open files) are logged and retried after 10 ms. The `Result`
    /// leaves room for fatal socket errors.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let PullSim {
            tcp,
            udp,
            shared,
            local_addr,
        } = self;
        let mut tasks = JoinSet::new();
        tasks.spawn(udp::serve(udp, Arc::clone(&shared)));
        if let Some(every) = shared.config.live_punch_every {
            let handle = PullSimHandle {
                shared: Arc::clone(&shared),
                local_addr,
            };
            tasks.spawn(demo_punches(handle, every));
        }
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = tcp.accept() => match accepted {
                    Ok((stream, peer)) => {
                        tasks.spawn(tcp::serve(stream, peer, Arc::clone(&shared)));
                    }
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        tasks.shutdown().await;
        Ok(())
    }
}

/// Bind a simulator on `addr`, log where it listens, and serve until `shutdown` resolves: what
/// `punchd simulate pull` needs in one call.
///
/// # Errors
/// As [`PullSim::bind`] and [`PullSim::run`].
pub async fn serve(
    addr: SocketAddr,
    config: PullSimConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let profile = config.profile;
    let (users, punches, comm_key) = (config.users, config.punches, config.comm_key != 0);
    let sim = PullSim::bind(addr, config).await?;
    tracing::info!(
        addr = %sim.local_addr(),
        %profile,
        users,
        punches,
        comm_key,
        "simulated pull terminal listening (TCP and UDP)"
    );
    sim.run(shutdown).await
}

/// [`PullSimConfig::live_punch_every`]: punch for a random user whenever someone is listening.
async fn demo_punches(handle: PullSimHandle, every: Duration) {
    let mut rng = generate::SplitMix64::new(handle.shared.config.seed ^ 0x11FE);
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        if handle.live_subscribers() == 0 {
            continue;
        }
        let users = handle.users();
        let Some(user) = users.get(usize::try_from(rng.below(users.len() as u64)).unwrap_or(0))
        else {
            continue;
        };
        let punch = u8::try_from(rng.below(2)).unwrap_or(0);
        handle.punch(&user.user_id, punch, 1);
    }
}

/// A cheap, cloneable handle on a running simulator's device model.
#[derive(Clone)]
pub struct PullSimHandle {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
}

impl std::fmt::Debug for PullSimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullSimHandle")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl PullSimHandle {
    /// The simulator's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The configuration the simulator was started with.
    pub fn config(&self) -> &PullSimConfig {
        &self.shared.config
    }

    /// The users, in uid order, exactly as a client reads them back (through the profile's record layout).
    pub fn users(&self) -> Vec<User> {
        self.shared.model().users.values().cloned().collect()
    }

    /// The attendance log, oldest first.
    pub fn attendance(&self) -> Vec<Attendance> {
        self.shared.model().attendance.clone()
    }

    /// How many records the attendance log holds.
    pub fn attendance_count(&self) -> usize {
        self.shared.model().attendance.len()
    }

    /// The fingerprint templates.
    pub fn templates(&self) -> Vec<Template> {
        self.shared.model().templates.clone()
    }

    /// What `CMD_GET_FREE_SIZES` would answer now.
    pub fn free_sizes(&self) -> FreeSizes {
        self.shared.model().free_sizes()
    }

    /// The value of a device option (`~SerialNumber`, `MAC`, …), as `CMD_OPTIONS_RRQ` serves it.
    pub fn option(&self, name: &str) -> Option<String> {
        self.shared.model().options.get(name).cloned()
    }

    /// The device's wall-clock time now (whole seconds).
    pub fn device_time(&self) -> NaiveDateTime {
        self.shared.model().device_time(utc_now())
    }

    /// Set the device clock, as `CMD_SET_TIME` does.
    pub fn set_device_time(&self, t: NaiveDateTime) {
        self.shared.model().set_device_time(t, utc_now());
    }

    /// Whether the device is enabled (`CMD_ENABLEDEVICE` / `CMD_DISABLEDEVICE`).
    pub fn is_enabled(&self) -> bool {
        self.shared.model().enabled
    }

    /// The packets logged so far (empty unless [`PullSimConfig::record_frames`] is on), oldest first.
    pub fn frame_log(&self) -> Vec<LoggedPacket> {
        self.shared
            .frame_log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Empty the frame log.
    pub fn clear_frame_log(&self) {
        self.shared
            .frame_log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clear();
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> Counters {
        self.shared.model().counters.clone()
    }

    /// Add or replace a user (stored through the profile's record layout).
    pub fn put_user(&self, user: User) {
        self.shared.model().put_user(user);
    }

    /// Someone punches now: `user_id` (PIN) with `punch_state` (0 check-in, 1 check-out, …) and `verify_mode`
    /// (1 fingerprint, 15 face, …). The punch is appended to the attendance log at the device's current time
    /// and sent as a live `EF_ATTLOG` event to every registered client. Returns the stored record (uid 0 when
    /// no user has this PIN; `status` is the verify mode and `punch` the punch state, as pyzk names them).
    pub fn punch(&self, user_id: &str, punch_state: u8, verify_mode: u8) -> Attendance {
        let time = self.device_time();
        let uid = self.shared.model().uid_of(user_id).unwrap_or(0);
        let record = Attendance {
            uid,
            user_id: user_id.to_owned(),
            time,
            status: verify_mode,
            punch: punch_state,
        };
        self.add_punch(record.clone());
        record
    }

    /// Append `record` to the attendance log and send it as a live event to every registered client.
    pub fn add_punch(&self, record: Attendance) {
        let event = AttendanceEvent {
            user_id: record.user_id.clone(),
            time: record.time,
            status: record.status,
            punch: record.punch,
        };
        self.shared.model().add_punch(record);
        // No receiver is fine: nobody is listening live.
        let _ = self.shared.events.send(event);
    }

    /// How many TCP connections and UDP sessions are registered for live punches (`CMD_REG_EVENT` with
    /// `EF_ATTLOG`).
    pub fn live_subscribers(&self) -> usize {
        *self.shared.subscribers.borrow()
    }

    /// Wait until at least `n` clients are registered for live punches.
    pub async fn wait_for_live_subscribers(&self, n: usize) {
        let mut rx = self.shared.subscribers.subscribe();
        // The sender lives as long as `self.shared`, so this only ends when the condition holds.
        let _ = rx.wait_for(|count| *count >= n).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_parse_from_cli_names() {
        for profile in [Profile::Zk8, Profile::Zk6, Profile::Zem500] {
            assert_eq!(profile.to_string().parse::<Profile>(), Ok(profile));
        }
        assert_eq!("ZK8".parse::<Profile>(), Ok(Profile::Zk8));
        assert_eq!(
            "f18".parse::<Profile>().unwrap_err().to_string(),
            "unknown device profile \"f18\": expected zk8, zk6 or zem500"
        );
    }

    #[tokio::test]
    async fn bind_refuses_more_users_than_a_u16_numbers() {
        let config = PullSimConfig {
            users: 70_000,
            ..PullSimConfig::default()
        };
        let error = PullSim::bind("127.0.0.1:0".parse().unwrap(), config)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    }
}
