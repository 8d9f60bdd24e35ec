//! zk-push integration tests: every captured sample in `shared/samples/push` through the public API, and
//! property tests over arbitrary bytes.
#![allow(clippy::unwrap_used)]

mod props;
mod samples;
