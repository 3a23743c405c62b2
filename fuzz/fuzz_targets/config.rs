//! `cargo fuzz run config`: see [`texcache::fuzzing::config`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| texcache::fuzzing::config(data));
