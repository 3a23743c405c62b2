//! The integration suite, one binary: a module per area. The tests that count allocations,
//! measure the process's memory or its live objects, or run under the model checker are
//! binaries of their own beside this one (tests/*.rs), so that nothing else runs in their
//! process meanwhile.

#[path = "../common/mod.rs"]
mod common;

mod cache;
mod cli;
mod decode;
mod examples;
mod faults;
mod fit;
mod formats;
mod fuzz_regressions;
mod gpu;
mod gpu_pressure;
mod history;
mod hostile;
mod jpeg;
mod pressure;
mod pressure_psi;
mod readme;
mod record;
mod request;
mod shared;
mod tier_model;
mod video;
mod video_ffmpeg;
