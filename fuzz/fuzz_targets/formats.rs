//! `cargo fuzz run formats`: see [`texcache::fuzzing::formats`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| texcache::fuzzing::formats(data));
