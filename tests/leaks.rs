//! No bitmap memory is left once every handle and the cache are gone. Its own test binary, so
//! the process-wide live-bitmap counter sees no other test.

mod common;

#[test]
fn nothing_is_left_after_handles_and_cache_drop() {
    assert_eq!(texcache::picture::live_bitmaps(), (0, 0));
    let dir = common::corpus().join("pngsuite");
    let cache = common::cache(&dir, 64 * 1024);
    let mut held = Vec::new();
    for (i, e) in std::fs::read_dir(&dir).unwrap().enumerate() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if let Ok(h) = cache.bitmap(&name) {
            if i % 4 == 0 {
                held.push(h);
            }
        }
    }
    cache.remove(held[0].key().lookup());
    let (live, bytes) = texcache::picture::live_bitmaps();
    let s = cache.stats().cpu;
    assert_eq!(
        bytes as u64, s.used,
        "every live bitmap byte is accounted for"
    );
    assert_eq!(live as u64, s.entries);
    drop(cache);
    let (_, bytes) = texcache::picture::live_bitmaps();
    assert_eq!(
        bytes as u64,
        held.iter().map(|h| h.bytes()).sum::<u64>(),
        "only held bitmaps survive the cache"
    );
    drop(held);
    assert_eq!(texcache::picture::live_bitmaps(), (0, 0));
}

#[test]
fn no_frame_buffer_is_left_after_video_nodes_stop() {
    let tmp = tempfile::tempdir().unwrap();
    texcache::testing::samples::write_y4m(&tmp.path().join("c.y4m"), 32, 16, 12).unwrap();
    let cache = common::cache(tmp.path(), 1 << 20);
    let mut nodes: Vec<_> = (0..3).map(|_| cache.video("c.y4m").unwrap()).collect();
    let mut held = Vec::new();
    for n in &mut nodes {
        n.play().unwrap();
        n.wait_full();
        held.push(n.next_frame().unwrap().unwrap());
    }
    let v = cache.stats().video;
    assert_eq!(
        texcache::video::live_frame_buffers() as u64 * (32 * 16 + 2 * 16 * 8),
        v.cpu_bytes,
        "every live frame buffer is accounted for"
    );
    nodes[0].stop();
    drop(nodes);
    assert_eq!(
        texcache::video::live_frame_buffers(),
        3,
        "only the held frames are left"
    );
    drop(held);
    assert_eq!(texcache::video::live_frame_buffers(), 0);
    assert_eq!(cache.stats().video, Default::default());
}
