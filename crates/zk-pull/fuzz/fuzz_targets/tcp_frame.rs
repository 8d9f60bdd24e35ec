#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| drop(zk_pull::codec::decode_tcp_frame(
    &mut bytes::BytesMut::from(data)
)));
