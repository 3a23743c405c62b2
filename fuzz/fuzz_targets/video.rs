//! `cargo fuzz run video`: see [`texcache::fuzzing::video`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| texcache::fuzzing::video(data));
