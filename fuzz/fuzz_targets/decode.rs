//! `cargo fuzz run decode`: see [`texcache::fuzzing::decode`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| texcache::fuzzing::decode(data));
