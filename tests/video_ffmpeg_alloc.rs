//! Steady FFmpeg playback allocates nothing on the Rust side (§4): after the queue and the
//! decoder's pool have warmed up, taking and dropping 30 frames of the H.264 clip makes no Rust
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
    // No thread but the node's: the counter sees the whole process, and the memory-pressure
    // watcher's first reads (when a loaded machine gets round to starting it) would count.
    cfg.stats.history_interval_ms = 0;
    cfg.pressure.trim = false;
    cfg.video.queue_length = 4;
    let cache = texcache::Cache::new(cfg).unwrap();
    let mut node = cache.video("testsrc2_640x360_h264.mp4").unwrap();
    node.play().unwrap();
    for _ in 0..15 {
        drop(node.next_frame().unwrap().unwrap());
    }
    let before = counting::allocations();
    // 15 + 30 frames taken and 4 queued stay clear of the end of the 60-frame clip, whose
    // handling (draining the decoder, freeing spare buffers) is not steady playback.
    for _ in 0..30 {
        drop(std::hint::black_box(node.next_frame().unwrap().unwrap()));
    }
    let allocations = counting::allocations() - before;
    // At most one: about one run in twenty sees a single allocation, once; most likely when a thread
    // parks for the first time inside the window (parking_lot's per-thread data and table,
    // made lazily; which thread first waits for the other is timing). An allocation per frame
    // would show 30.
    assert!(
        allocations <= 1,
        "{allocations} Rust allocations during 30 steady frames"
    );
}
