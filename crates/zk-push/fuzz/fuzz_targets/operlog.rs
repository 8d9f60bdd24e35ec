//! Fuzz `parse_operlog`: must never panic on any bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|body: &[u8]| drop(zk_push::operlog::parse_operlog(body)));
