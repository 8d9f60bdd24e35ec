#![no_main]
libfuzzer_sys::fuzz_target!(
    |data: &[u8]| drop(zk_pull::records::decode_attendance_dataset(data, None))
);
