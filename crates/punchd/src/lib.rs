//! punchd, the hub: collects punches from terminals, keeps an audit trail, manages devices, delivers.
//!
//! Modules in reading order (dependencies point inward, to `domain`):
//! - [`domain`]: pure types of the field (punch, device, command). Imports nothing of ours.
//! - [`store`]: the [`store::Store`] trait (one supertrait per area) and its SQLite and PostgreSQL
//!   implementations. Depends on `domain` (and `config`, for `store::open`).
//! - [`ingest`]: the single door into the store for punches: normalise (time zones), dedupe, write with the raw
//!   journal entry, atomically; [`collection_load`] measures how busy it is, for the sinks to wait on.
//! - [`devices`]: the registry (approval, settings, last seen), the command queue, health.
//! - [`sources`]: where punches come from: `push` (the `/iclock` HTTP routes for terminals) and `pull` (the
//!   scheduler and one-shot reader for terminals read over TCP/UDP 4370), `import` (files), `webhook` (JSON
//!   events) and `biotime` (a ZKBio Time server).
//! - [`attendance`]: punches become working days and months; [`attendance::rules`] is the pure rules engine.
//! - [`web`]: the JSON API (`/api/v1`), the web UI (`/ui`), auth, health, metrics, and the HTTP server loop.
//! - [`live`]: the live feed (punches stored, terminals on- and offline) the web UI's live page follows.
//! - [`metrics`] (Prometheus counters) and [`format`](mod@format) (table, CSV and JSON listings for the CLI and the API).
//! - [`replay`] (feed captured requests through the handlers or a server) and [`simulate`] (simulated terminals
//!   from `zk-sim`): support and test tools behind CLI subcommands.
//! - [`sinks`]: delivery of check-ins from the outbox to Frappe HR, webhooks and NATS (one worker per sink).
//! - [`config`] and [`cli`]: settings and the `punchd` subcommands; `main.rs` only parses and calls.
//! - [`limits`] (what one request, client or address may cost), [`logfmt`] (log fields escaped and clipped) and
//!   [`instance_lock`] (one `serve` per database).
//! - [`leases`]: which instance drains a sink or pulls a terminal when several share one PostgreSQL.
//!
//! - [`agent`]: `punchd agent`, the edge agent (pulls LAN terminals into its own store, forwards to a hub).
//!
//! [`app::App`] wires these together for one running instance.

pub mod agent;
pub mod app;
pub mod attendance;
pub mod cli;
pub mod collection_load;
pub mod config;
pub mod devices;
pub mod domain;
pub mod format;
pub mod ingest;
pub mod instance_lock;
pub mod leases;
pub mod limits;
pub mod live;
pub mod logfmt;
pub mod metrics;
pub mod replay;
pub mod simulate;
pub mod sinks;
pub mod sources;
pub mod store;
#[cfg(test)]
mod test_support;
pub mod web;
