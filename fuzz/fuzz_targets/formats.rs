//! `cargo fuzz run formats`: see [`texcache::testing::fuzzing::formats`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| texcache::testing::fuzzing::formats(data));
