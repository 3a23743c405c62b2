//! The memory history: a bounded ring of exact samples, from the sampler thread or the
//! application, and a sampler that ends with its cache.

use crate::common;

use texcache::{Cache, Config};

fn history_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .filter(|c| c.trim() == "texcache-histor") // comm is cut at 15 bytes
                .count()
        })
        .unwrap_or(0)
}

/// Polls `f` until it holds (or fails after 20 s): waiting on another thread's progress
/// without a fixed sleep.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::yield_now();
    }
}

#[test]
fn the_ring_keeps_the_last_samples_and_they_add_up() {
    let tmp = tempfile::tempdir().unwrap();
    for i in 0..5 {
        common::png(tmp.path(), &format!("p{i}.png"), 10, 10);
    }
    let mut cfg = Config::default();
    cfg.mediadir = tmp.path().into();
    cfg.stats.history_interval_ms = 0; // samples only when asked
    cfg.stats.history_length = 3;
    cfg.cpu.budget.0 = 1000;
    let cache = Cache::new(cfg).unwrap();
    let mut held = Vec::new();
    for i in 0..5 {
        held.push(cache.bitmap(&format!("p{i}.png")).unwrap());
        cache.sample_history();
    }
    let h = cache.history();
    assert_eq!(h.len(), 3, "only the last three are kept");
    assert_eq!(
        h.iter().map(|s| s.cpu_used).collect::<Vec<_>>(),
        [1200, 1600, 2000],
        "in-use bitmaps are never evicted, so used grows past the budget"
    );
    assert!(h.windows(2).all(|w| w[0].t_ms <= w[1].t_ms));
    assert!(h.iter().all(|s| s.cpu_budget == 1000 && s.rss > 0));
    let s = cache.stats_with_history();
    assert_eq!(s.history.as_deref(), Some(&h[..]));
}

#[test]
fn the_sampler_thread_samples_and_ends_with_its_cache() {
    let before = history_threads();
    let mut cfg = Config::default();
    cfg.stats.history_interval_ms = 1;
    cfg.stats.history_length = 4;
    let cache = Cache::new(cfg).unwrap();
    eventually("four samples", || cache.history().len() == 4);
    eventually("the ring stays full", || {
        let h = cache.history();
        h.len() == 4 && h[0].t_ms > 0
    });
    assert_eq!(history_threads(), before + 1);
    drop(cache);
    eventually("the sampler thread exits", || history_threads() == before);
}

#[test]
fn no_history_means_no_thread_and_no_samples() {
    let before = history_threads();
    let mut cfg = Config::default();
    cfg.stats.history_length = 0;
    let cache = Cache::new(cfg).unwrap();
    cache.sample_history();
    assert!(cache.history().is_empty());
    assert_eq!(history_threads(), before);
}
