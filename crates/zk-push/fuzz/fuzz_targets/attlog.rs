//! Fuzz `parse_attlog`: must never panic on any bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|body: &[u8]| drop(zk_push::attlog::parse_attlog(body)));
