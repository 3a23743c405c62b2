//! `cargo fuzz run avif`: see [`texcache::fuzzing::avif`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| texcache::fuzzing::avif(data));
