//! `cargo fuzz run trace`: see [`texcache::testing::fuzzing::trace`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| texcache::testing::fuzzing::trace(data));
