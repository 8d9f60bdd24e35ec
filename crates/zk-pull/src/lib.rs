//! The ZKTeco "ZK binary protocol" spoken by terminals on TCP/UDP port 4370 (the PULL side, see
//! shared/protocol/pull.md).
//!
//! Modules in reading order:
//! - [`codec`]: pure bytes <-> packets: TCP framing, the packet header and checksum, command codes. Depends on
//!   nothing else in this crate.
//! - [`records`]: record layouts inside payloads (users, attendance, templates, times, free sizes, events,
//!   comm key), both decode and encode. Pure; must not depend on `session` or `client`.
//! - [`session`]: the client side of a session as a state machine: session id, reply ids, matching replies by
//!   id, chunked buffered reads, events at any time. Time is passed in; no sockets, no tokio.
//! - [`client`]: the tokio TCP/UDP transport with timeouts and retries, and the device operations
//!   (`users`, `attendance`, `set_time`, `live_events`, …). The only module that does IO.
//!
//! Nothing here knows about punchd, databases or HTTP.
//!
//! ```no_run
//! # async fn demo() -> Result<(), zk_pull::ClientError> {
//! use std::time::Duration;
//! use zk_pull::{Client, Transport};
//!
//! let mut device =
//!     Client::connect("192.0.2.10:4370", Transport::Tcp, 0, Duration::from_secs(5)).await?;
//! let download = device.attendance().await?;
//! for punch in &download.records {
//!     println!("{} at {} (punch state {})", punch.user_id, punch.time, punch.punch);
//! }
//! // Keep `download.raw` in the raw journal before acting on the records.
//! device.disconnect().await?;
//! # Ok(())
//! # }
//! ```

pub mod client;
pub mod codec;
pub mod records;
pub mod session;

pub use client::{
    AttendanceDownload, Client, ClientError, ClientOptions, DeviceInfo, LiveEvents, Transport,
};
