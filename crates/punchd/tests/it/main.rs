//! End-to-end tests of the `punchd` binary: a real server process on port 0 in a temp dir, terminals played as
//! raw bytes on a TCP socket, results read back through the JSON API, the CLI and the SQLite file.
//!
//! Modules: `harness` (the server process, raw HTTP, the CLI), then one module per concern.
#![allow(clippy::unwrap_used)]

mod harness;

mod agent;
mod approval;
mod attendance;
mod bad_input;
mod biotime;
mod commands;
mod crash;
mod frappe_contract;
mod frappe_sync;
mod idempotency;
mod instances;
mod lifecycle;
mod limits;
mod limits_memory;
mod migrate;
mod operations;
mod postgres;
mod pull;
mod push_auth;
mod push_seed;
mod push_users;
mod samples;
mod settings;
mod simulate;
mod sinks;
mod sources;
mod storage_failure;
mod ui_browser;
