//! Steady FFmpeg playback allocates nothing on the Rust side (§4): after the queue and the
//! decoder's pool have warmed up, taking and dropping frames of the H.264 clip makes no Rust
//! allocation. Its own test binary, since the counting allocator sees the whole process.
#![cfg(feature = "ffmpeg")]

mod common;

#[path = "common/counting.rs"]
mod counting;

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

#[test]
fn steady_playback_allocates_nothing() {
    let mut cfg = texcache::Config::default();
    cfg.mediadir = common::corpus().join("video/encoded");
    cfg.stats.history_interval_ms = 0;
    cfg.video.queue_length = 4;
    let cache = texcache::Cache::new(cfg).unwrap();
    let mut node = cache.video("testsrc2_640x360_h264.mp4").unwrap();
    node.play().unwrap();
    for _ in 0..15 {
        drop(node.next_frame().unwrap().unwrap());
    }
    let before = counting::allocations();
    for _ in 0..40 {
        drop(std::hint::black_box(node.next_frame().unwrap().unwrap()));
    }
    let allocations = counting::allocations() - before;
    assert_eq!(allocations, 0, "Rust allocations during 40 steady frames");
}
