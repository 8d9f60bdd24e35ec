//! Simulated ZKTeco terminals for tests, benchmarks, demos and users checking an installation.
//!
//! Modules in reading order:
//! - [`pull`]: a terminal serving the ZK binary protocol on one TCP+UDP port (shared/protocol/pull.md), built on
//!   `zk_pull::codec` and `zk_pull::records`. Inside: `generate` (sample data) → `model` (device data) →
//!   `responder` (sans-IO answers) → `wire` (bytes and faults) → `tcp`/`udp` (tokio transports).
//! - [`push`]: a fleet of push terminals driving a push server over HTTP/1.1 with `Connection: close`
//!   (shared/protocol/push.md §3–§9), built on `zk_push::attlog`; records what was acknowledged so a checker can
//!   verify that every acknowledged punch was stored exactly once. Independent of `pull`.
//! - [`month`]: a realistic month of punches (teams around their shifts, lunch breaks, forgotten check-outs,
//!   double taps, an overnight team, a terminal whose clock is in another zone, DST days), deterministic from a
//!   seed, as (SN, PIN, terminal local time, punch state) records the simulators can serve or send. Pure.
//!
//! The simulators depend on the protocol crates only; they must not depend on punchd (the hub depends on them,
//! for `punchd simulate`), and the protocol crates must not depend on them.

pub mod month;
pub mod pull;
pub mod push;
