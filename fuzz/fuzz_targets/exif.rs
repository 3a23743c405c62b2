//! `cargo fuzz run exif`: see [`texcache::fuzzing::exif`].
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| texcache::fuzzing::exif(data));
