//! Where punches come from. Each source turns what it receives into an `ingest::Delivery`.
//!
//! - [`push`]: the `/iclock/*` HTTP routes that push terminals (ADMS) talk to.
//! - [`pull`]: the scheduler and one-shot reader for terminals polled over TCP/UDP 4370.

pub mod pull;
pub mod push;
