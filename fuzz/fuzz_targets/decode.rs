//! `cargo fuzz run decode`: see [`texcache::testing::fuzzing::decode`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| texcache::testing::fuzzing::decode(data));
