//! `cargo fuzz run video`: see [`texcache::testing::fuzzing::video`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| texcache::testing::fuzzing::video(data));
