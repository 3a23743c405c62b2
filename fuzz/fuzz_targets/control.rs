//! `cargo fuzz run control`: see [`texcache::testing::fuzzing::control`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| texcache::testing::fuzzing::control(data));
