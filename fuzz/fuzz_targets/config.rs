//! `cargo fuzz run config`: see [`texcache::testing::fuzzing::config`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| texcache::testing::fuzzing::config(data));
