//! Integration tests of the simulated pull terminal over real loopback sockets: a raw-socket client checking
//! framing, faults and live events byte by byte, the pyzk conformance matrix and the Node clients
//! (tests/conformance).
#![allow(clippy::unwrap_used)]

mod client;
mod faults;
mod node;
mod pyzk;
mod raw;
mod support;
