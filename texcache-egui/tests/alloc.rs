//! A pass of only hits allocates nothing in texcache or its loader: images drawn in the last
//! pass are answered from the loader's own map, and images let go at the end of a pass but
//! still resident are a cache hit on the very texture egui has registered. Its own test
//! binary, since the counting allocator sees the whole process.

mod common;

#[path = "../../tests/common/counting.rs"]
mod counting;

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

use egui::load::{SizeHint, TextureLoader};
use egui::TextureOptions;

#[test]
fn loading_what_is_on_screen_again_allocates_nothing() {
    let Some(rs) = common::render_state() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let names =
        texcache::testing::samples::write_pictures(tmp.path(), 20, 320, 240, false).unwrap();
    let mut cfg = texcache::Config::default();
    cfg.mediadir = tmp.path().into();
    cfg.stats.history_interval_ms = 0; // no sampler thread allocating beside the test
    let cache = texcache::Cache::new(cfg).unwrap();
    let mut h = common::harness(&rs, cache.clone(), &names, egui::vec2(720.0, 560.0));
    common::settle(&mut h);
    let loader = h.state().loader.clone();
    let uris: Vec<String> = h
        .state()
        .drawn
        .iter()
        .map(|&(i, _)| h.state().uris[i].clone())
        .collect();
    assert!(uris.len() >= 8);
    // What egui's Image asks for a thumbnail fitted to exactly 160x120 points at 1 pixel a point.
    let hint = SizeHint::Size {
        width: 160,
        height: 120,
        maintain_aspect_ratio: true,
    };
    let options = TextureOptions::default();
    let load_all = || {
        for uri in &uris {
            let poll = loader.load(&h.ctx, uri, options, hint).expect("loaded");
            assert!(poll.texture_id().is_some(), "{uri} is ready");
        }
    };
    load_all(); // the same entries the pass made, or the test asks for other ones
    let registered = loader.stats().registered;
    let hits = cache.stats().gpu.hits;

    let before = counting::allocations();
    for _ in 0..100 {
        load_all();
    }
    assert_eq!(
        counting::allocations() - before,
        0,
        "drawn again: allocations"
    );
    assert_eq!(
        cache.stats().gpu.hits,
        hits,
        "drawn again: answered by the loader alone"
    );

    // A pass that does not draw them lets go (they stay resident), then asked again: cache
    // hits on the textures egui has registered. Warmed up first: the tier's release queue
    // and the normalising buffers reach their size.
    let mut pass = 0;
    let mut let_go_and_ask = || {
        loader.end_pass(pass); // the pass that drew them
        loader.end_pass(pass + 1); // a pass that did not: let go
        pass += 2;
        assert_eq!(loader.stats().held, 0);
        load_all();
    };
    for _ in 0..100 {
        let_go_and_ask();
    }
    let hits = cache.stats().gpu.hits;
    let before = counting::allocations();
    for _ in 0..100 {
        let_go_and_ask();
    }
    assert_eq!(
        counting::allocations() - before,
        0,
        "let go and asked again: allocations"
    );
    assert_eq!(cache.stats().gpu.hits, hits + 100 * uris.len() as u64);
    assert_eq!(
        loader.stats().registered,
        registered,
        "the same registrations, reused"
    );
}
