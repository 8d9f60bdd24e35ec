//! Where punches come from. Each source turns what it receives into an `ingest::Delivery`.
//!
//! - [`push`]: the `/iclock/*` HTTP routes that push terminals (ADMS) talk to.
//! - [`pull`]: the scheduler and one-shot reader for terminals polled over TCP/UDP 4370.
//! - [`biotime`]: the ZKBio Time reader (transactions read incrementally, run by `punchd serve`).
//! - [`import`]: files (a terminal's USB attlog export, CSV, XLSX) read into punches.
//! - [`webhook`]: devices and apps POSTing JSON events with a source token.

pub mod biotime;
pub mod import;
pub mod pull;
pub mod push;
pub mod webhook;
