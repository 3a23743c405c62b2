//! `cargo fuzz run exif`: see [`texcache::testing::fuzzing::exif`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| texcache::testing::fuzzing::exif(data));
