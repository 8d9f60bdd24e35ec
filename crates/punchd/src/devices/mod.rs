//! Devices: the registry (registration, approval, settings, last seen), the command queue, and health.
//!
//! Depends on `domain`, `store` and the protocol crates (to render push command lines); never on `sources` or
//! `web`, which call in here.

pub mod commands;
pub mod health;
pub mod push_auth;
pub mod registry;
pub mod validate;

pub use commands::CommandQueue;
pub use registry::{ApprovalPolicy, Registry};
