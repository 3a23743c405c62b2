//! 1,000 play/stop cycles of a video node leave memory flat. Its own test binary, so the
//! process's RSS is this test's alone.

use texcache::Cache;

#[test]
fn a_thousand_play_stop_cycles_leave_memory_flat() {
    let tmp = tempfile::tempdir().unwrap();
    texcache::testing::samples::write_y4m(&tmp.path().join("c.y4m"), 64, 48, 8).unwrap();
    let mut cfg = texcache::Config::default();
    cfg.mediadir = tmp.path().to_path_buf();
    cfg.video.queue_length = 3;
    let cache = Cache::new(cfg).unwrap();
    let mut node = cache.video("c.y4m").unwrap();
    let mut rss_after_warmup = 0;
    for cycle in 0..1000 {
        node.play().unwrap();
        let f = node.next_frame().unwrap().unwrap();
        assert_eq!(f.index(), 0);
        drop(f);
        if cycle % 2 == 0 {
            node.wait_full();
        }
        node.stop();
        assert_eq!(cache.stats().video.cpu_bytes, 0, "cycle {cycle}");
        assert_eq!(texcache::video::live_frame_buffers(), 0, "cycle {cycle}");
        if cycle == 100 {
            rss_after_warmup = texcache::observe::stats::process_rss();
        }
    }
    let grown = texcache::observe::stats::process_rss().saturating_sub(rss_after_warmup);
    assert!(grown < 4 << 20, "RSS grew {grown} bytes over 900 cycles");
}
