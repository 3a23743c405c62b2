//! `cargo fuzz run trace`: see [`texcache::fuzzing::trace`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| texcache::fuzzing::trace(data));
