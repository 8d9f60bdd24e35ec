//! Integration tests for zk-pull: captured frames, property tests, and the client over loopback sockets.
#![allow(clippy::unwrap_used)]

mod client;
mod props;
mod samples;
