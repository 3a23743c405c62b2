//! A hit allocates nothing: not for a normal relative href, and not for one that needs
//! normalising (`./a.png`, `sub/../a.png`, an absolute path), and not a shared tier's client's
//! hit (§12). Its own test binary, since the counting allocator sees the whole process.

mod common;

#[path = "common/counting.rs"]
mod counting;

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

/// The count is the whole process's: one test at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// A cache over `dir` with no sampler thread allocating beside the test.
fn quiet_cache(dir: &std::path::Path) -> texcache::Cache {
    let mut cfg = texcache::Config::default();
    cfg.mediadir = dir.into();
    cfg.stats.history_interval_ms = 0;
    texcache::Cache::new(cfg).unwrap()
}

#[test]
fn hits_allocate_nothing_however_the_href_is_spelled() {
    let _alone = alone();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("sub")).unwrap();
    common::png(tmp.path(), "a.png", 4, 4);
    common::png(&tmp.path().join("sub"), "b.png", 3, 3);
    let cache = quiet_cache(tmp.path());
    let absolute = tmp.path().join("sub/./b.png").to_str().unwrap().to_string();
    let hrefs = [
        "a.png",
        "./a.png",
        "sub/../a.png",
        "sub//b.png",
        absolute.as_str(),
    ];
    // Warm up: the loads, the index, the release queue's capacity, the normalising buffers.
    for _ in 0..2000 {
        for h in hrefs {
            drop(cache.bitmap(h).unwrap());
        }
    }
    let before = counting::allocations();
    for _ in 0..1000 {
        for h in hrefs {
            drop(std::hint::black_box(cache.bitmap(h).unwrap()));
        }
    }
    let allocations = counting::allocations() - before;
    let s = cache.stats().cpu;
    assert_eq!((s.misses, s.hits), (2, 3000 * 5 - 2), "{s:?}");
    assert_eq!(allocations, 0, "allocations during 5,000 hits");
}

#[test]
fn fitted_hits_allocate_nothing_either() {
    let _alone = alone();
    let tmp = tempfile::tempdir().unwrap();
    common::png(tmp.path(), "a.png", 40, 30);
    let cache = quiet_cache(tmp.path());
    for _ in 0..2000 {
        drop(cache.bitmap_fit("a.png", 16, 16).unwrap());
        drop(cache.bitmap_fit("./a.png", 8, 8).unwrap());
    }
    let before = counting::allocations();
    for _ in 0..1000 {
        drop(std::hint::black_box(
            cache.bitmap_fit("a.png", 16, 16).unwrap(),
        ));
        drop(std::hint::black_box(
            cache.bitmap_fit("./a.png", 8, 8).unwrap(),
        ));
    }
    let allocations = counting::allocations() - before;
    let s = cache.stats().cpu;
    assert_eq!(
        (s.misses, s.entries, s.used),
        (2, 2, 16 * 12 * 4 + 8 * 6 * 4),
        "{s:?}"
    );
    assert_eq!(allocations, 0, "allocations during 2,000 fitted hits");
}

#[test]
fn ready_requests_allocate_nothing() {
    let _alone = alone();
    let tmp = tempfile::tempdir().unwrap();
    common::png(tmp.path(), "a.png", 40, 30);
    let cache = quiet_cache(tmp.path());
    drop(cache.bitmap("a.png").unwrap());
    drop(cache.bitmap_fit("a.png", 16, 16).unwrap());
    for _ in 0..2000 {
        drop(cache.request_bitmap("a.png", None).try_get());
        drop(cache.request_bitmap("./a.png", Some((16, 16))).try_get());
    }
    let before = counting::allocations();
    for _ in 0..1000 {
        let mut r = cache.request_bitmap("a.png", None);
        assert!(std::hint::black_box(r.try_get()).is_some());
        let mut r = cache.request_bitmap("./a.png", Some((16, 16)));
        assert!(std::hint::black_box(r.try_get()).is_some());
    }
    assert_eq!(
        counting::allocations() - before,
        0,
        "allocations during 2,000 ready requests"
    );
}

#[test]
fn a_shared_tier_clients_hits_allocate_nothing() {
    let _alone = alone();
    let tmp = tempfile::tempdir().unwrap();
    common::png(tmp.path(), "a.png", 40, 30);
    let cache = quiet_cache(tmp.path());
    let socket = tmp.path().join("shared.sock");
    cache.share(&socket).unwrap();
    let client = texcache::shared::connect(&socket).unwrap();
    // Warm up: the first acquire is the owner's (mapped once); the rest the client serves.
    for _ in 0..2000 {
        drop(client.bitmap("a.png").unwrap());
        drop(client.bitmap_fit("a.png", 16, 16).unwrap());
    }
    let before = counting::allocations();
    for _ in 0..1000 {
        drop(std::hint::black_box(client.bitmap("a.png").unwrap()));
        drop(std::hint::black_box(
            client.bitmap_fit("a.png", 16, 16).unwrap(),
        ));
    }
    let allocations = counting::allocations() - before;
    let shared = cache.stats().shared.unwrap();
    // Every acquire was a hit the client served, but for the few it asked the owner for
    // (the first of each, and one again once the owner's load of the other let it go).
    let requests = shared.clients[0].requests;
    assert!(requests <= 4, "{shared:?}");
    assert_eq!(shared.client_hits + requests, 2 * 3000, "{shared:?}");
    assert_eq!(allocations, 0, "allocations during 2,000 client hits");
}
