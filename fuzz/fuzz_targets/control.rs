//! `cargo fuzz run control`: see [`texcache::fuzzing::control`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| texcache::fuzzing::control(data));
