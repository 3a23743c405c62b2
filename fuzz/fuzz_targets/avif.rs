//! `cargo fuzz run avif`: see [`texcache::testing::fuzzing::avif`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| texcache::testing::fuzzing::avif(data));
