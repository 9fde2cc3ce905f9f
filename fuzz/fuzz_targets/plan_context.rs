#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| identity_fuzz::plan_context(data));
