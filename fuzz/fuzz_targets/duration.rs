#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| identity_fuzz::duration(data));
