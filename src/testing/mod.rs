//! Support for the demo, the benches, the tests and the fuzzers (feature `samples`): sample
//! media written by real encoders ([`samples`]) and, with feature `fuzzing`, the fuzz targets'
//! entry points. An application embedding texcache compiles none of it.

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod samples;
