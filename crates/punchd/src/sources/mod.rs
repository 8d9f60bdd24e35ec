//! Where punches come from. Each source turns what it receives into an `ingest::Delivery`.
//!
//! - [`push`]: the `/iclock/*` HTTP routes that push terminals (ADMS) talk to.

pub mod push;
