//! Cache semantics (§3) through the public API, on real files.

use crate::common;

use std::sync::{Arc, Barrier};
use texcache::key::Resolver;
use texcache::observe::stats::PixelFormat;
use texcache::tier::{Resource, Tier, TierKind};
use texcache::ErrorKind;
use texcache::{Cache, Error, Handle};

#[test]
fn sixteen_threads_on_one_cold_href_decode_once() {
    let cache = common::cache(&common::corpus().join("photos"), 1 << 30);
    let barrier = Arc::new(Barrier::new(16));
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let (cache, barrier) = (cache.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                cache.bitmap("kodim23_3072x2048.jpg").unwrap()
            })
        })
        .collect();
    let got: Vec<_> = handles.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(
        got.iter().all(|h| Handle::ptr_eq(h, &got[0])),
        "all share one bitmap"
    );
    assert_eq!(got[0].refs(), 16);
    let s = cache.stats().cpu;
    // One decode. A thread the scheduler starts after the decode finished counts a hit rather
    // than a coalesced wait (`coalesced_waiters_share_one_load` pins the exact 15 with a gated
    // loader); on a normal machine the 6-megapixel decode outlasts the barrier by far.
    assert_eq!((s.misses, s.coalesced + s.hits), (1, 15), "{s:?}");
    assert_eq!(
        (s.entries, s.in_use, s.used),
        (1, 3072 * 2048 * 4, 3072 * 2048 * 4)
    );
    drop(got);
    assert_eq!(cache.stats().cpu.unused, 3072 * 2048 * 4);
}

struct Blob(u64);
impl Resource for Blob {
    fn bytes(&self) -> u64 {
        self.0
    }
    fn dimensions(&self) -> (u32, u32) {
        (1, 1)
    }
    fn format(&self) -> PixelFormat {
        PixelFormat::Gray8
    }
}

/// Runs 16 threads on one key; the loader waits (without sleeping) until the 15 others are
/// registered as waiters, then returns `outcome()`.
fn coalesce(
    outcome: fn() -> texcache::Result<Blob>,
) -> (Arc<Tier<Blob>>, Vec<texcache::Result<Handle<Blob>>>) {
    let tier = Arc::new(Tier::<Blob>::new(TierKind::Cpu, 1 << 20, 0));
    let resolver = Resolver::new("/m");
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let (tier, resolver) = (tier.clone(), resolver.clone());
            std::thread::spawn(move || {
                tier.acquire(
                    "k",
                    || resolver.key("k"),
                    |_| {
                        while tier.stats().coalesced < 15 {
                            std::thread::yield_now();
                        }
                        outcome()
                    },
                )
            })
        })
        .collect();
    let results = threads.into_iter().map(|t| t.join().unwrap()).collect();
    (tier, results)
}

#[test]
fn coalesced_waiters_share_one_load() {
    let (tier, results) = coalesce(|| Ok(Blob(1000)));
    let handles: Vec<_> = results.into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(handles[0].refs(), 16);
    let s = tier.stats();
    assert_eq!(
        (s.misses, s.coalesced, s.in_use, s.entries),
        (1, 15, 1000, 1)
    );
    drop(handles);
    assert_eq!(tier.stats().unused, 1000);
}

#[test]
fn a_failed_or_panicking_load_wakes_every_waiter_with_the_error() {
    let (tier, results) = coalesce(|| {
        Err(Error::new(
            "k",
            ErrorKind::Corrupt {
                detail: "bad".into(),
            },
        ))
    });
    assert!(results
        .iter()
        .all(|r| matches!(r, Err(e) if matches!(e.kind(), ErrorKind::Corrupt { .. }))));
    let s = tier.stats();
    assert_eq!(
        (s.misses, s.coalesced, s.failures, s.entries, s.used),
        (1, 15, 1, 0, 0)
    );

    let (tier, results) = coalesce(|| panic!("decoder exploded"));
    for r in &results {
        match r.as_ref().map_err(Error::kind) {
            Err(ErrorKind::LoadPanicked { message }) => assert_eq!(message, "decoder exploded"),
            other => panic!("{:?}", other.as_ref().map(|h| h.bytes())),
        }
    }
    assert_eq!(tier.stats().failures, 1);
    // Not remembered: the next acquire loads again.
    let r = Resolver::new("/m");
    assert_eq!(
        tier.acquire("k", || r.key("k"), |_| Ok(Blob(7)))
            .unwrap()
            .bytes(),
        7
    );
}

#[test]
fn hrefs_with_the_same_key_share_one_entry() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("sub")).unwrap();
    common::png(&tmp.path().join("sub"), "a.png", 5, 3);
    let cache = common::cache(tmp.path(), 1 << 20);
    let abs = format!("{}/sub/a.png", tmp.path().display());
    let hrefs = [
        "sub/a.png",
        "./sub/a.png",
        "sub//a.png",
        "sub/x/../a.png",
        abs.as_str(),
    ];
    let handles: Vec<_> = hrefs.iter().map(|h| cache.bitmap(h).unwrap()).collect();
    assert!(handles.iter().all(|h| Handle::ptr_eq(h, &handles[0])));
    let s = cache.stats().cpu;
    assert_eq!((s.misses, s.hits, s.entries, s.used), (1, 4, 1, 60));
}

#[test]
fn remove_frees_unused_at_once_and_in_use_on_last_drop() {
    let tmp = tempfile::tempdir().unwrap();
    common::png(tmp.path(), "a.png", 10, 10);
    common::png(tmp.path(), "b.png", 10, 10);
    let cache = common::cache(tmp.path(), 1 << 20);
    drop(cache.bitmap("a.png").unwrap());
    let b = cache.bitmap("b.png").unwrap();
    assert!(cache.remove("a.png"));
    assert!(cache.remove("b.png"));
    let s = cache.stats().cpu;
    // a is gone; b is still counted while its handle lives (§3.5), and is not an eviction.
    assert_eq!(
        (s.used, s.in_use, s.entries, s.in_use_entries, s.evictions),
        (400, 400, 1, 1, 0)
    );
    // The next acquire loads afresh: a second copy, while the orphan lives on.
    let b2 = cache.bitmap("b.png").unwrap();
    assert!(!Handle::ptr_eq(&b, &b2));
    assert_eq!(cache.stats().cpu.used, 800);
    drop(b);
    let s = cache.stats().cpu;
    assert_eq!((s.used, s.entries, s.misses), (400, 1, 3));
    assert!(!cache.remove("missing.png"));
}

#[test]
fn over_budget_images_are_still_served_and_shared() {
    let tmp = tempfile::tempdir().unwrap();
    common::png(tmp.path(), "big.png", 20, 20);
    common::png(tmp.path(), "small.png", 2, 2);
    let cache = common::cache(tmp.path(), 1000);
    let big = cache.bitmap("big.png").unwrap();
    let big2 = cache.bitmap("big.png").unwrap();
    assert!(Handle::ptr_eq(&big, &big2));
    let s = cache.stats().cpu;
    assert_eq!((s.used, s.over_budget, s.evictions), (1600, 600, 0));
    drop(cache.bitmap("small.png").unwrap()); // inserted, then evicted at once: used > budget
    let s = cache.stats().cpu;
    assert_eq!((s.used, s.evictions, s.evicted_bytes), (1600, 1, 16));
    drop((big, big2)); // released: now evicted, since 1600 > 1000
    let s = cache.stats().cpu;
    assert_eq!(
        (s.used, s.over_budget, s.evictions, s.peak_used),
        (0, 0, 2, 1616)
    );
    // small was in use at 1616
}

#[test]
fn max_entries_limits_the_count() {
    let tmp = tempfile::tempdir().unwrap();
    for n in ["a", "b", "c"] {
        common::png(tmp.path(), &format!("{n}.png"), 2, 2);
    }
    let mut cfg = texcache::Config::default();
    cfg.mediadir = tmp.path().into();
    cfg.cpu.max_entries = 2;
    let cache = Cache::new(cfg).unwrap();
    for n in ["a", "b", "c"] {
        drop(cache.bitmap(&format!("{n}.png")).unwrap());
    }
    let keys: Vec<_> = cache
        .cpu_tier()
        .entries()
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(keys.len(), 2);
    assert!(
        keys[0].ends_with("/b.png") && keys[1].ends_with("/c.png"),
        "{keys:?}"
    );
}

#[test]
fn handles_outlive_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    common::png(tmp.path(), "a.png", 8, 8);
    let cache = common::cache(tmp.path(), 1 << 20);
    let a = cache.bitmap("a.png").unwrap();
    let pixels = a.pixels().to_vec();
    drop(cache);
    let a2 = a.clone();
    assert_eq!(a2.pixels(), &pixels[..]);
    assert_eq!(a.refs(), 2);
    drop(a);
    drop(a2);
}

#[test]
fn trim_and_runtime_budgets() {
    let tmp = tempfile::tempdir().unwrap();
    for n in 0..5 {
        common::png(tmp.path(), &format!("{n}.png"), 10, 10);
    }
    let cache = common::cache(tmp.path(), 1 << 20);
    let keep = cache.bitmap("0.png").unwrap();
    for n in 1..5 {
        drop(cache.bitmap(&format!("{n}.png")).unwrap());
    }
    let s = cache.trim(TierKind::Cpu, 1000);
    assert_eq!((s.used, s.evictions, s.budget), (800, 3, 1 << 20)); // 2000 -> 800
    let s = cache.set_budget(TierKind::Cpu, 0);
    assert_eq!(
        (s.used, s.in_use, s.evictions, s.over_budget),
        (400, 400, 4, 400)
    );
    drop(keep);
    assert_eq!(cache.stats().cpu.used, 0);
    assert_eq!(cache.config().cpu.budget.0, 0);
}

#[test]
fn reload_config_changes_budgets() {
    let tmp = tempfile::tempdir().unwrap();
    for n in 0..3 {
        common::png(tmp.path(), &format!("{n}.png"), 10, 10);
    }
    let cache = common::cache(tmp.path(), 1 << 20);
    for n in 0..3 {
        drop(cache.bitmap(&format!("{n}.png")).unwrap());
    }
    let file = tmp.path().join("t.toml");
    std::fs::write(&file, "[cpu]\nbudget = \"500 B\"\n").unwrap();
    cache.reload_config(&file).unwrap();
    let s = cache.stats().cpu;
    assert_eq!((s.budget, s.used, s.evictions), (500, 400, 2));
    std::fs::write(&file, "[cpu]\nbudgte = 1\n").unwrap();
    let err = cache.reload_config(&file).unwrap_err().to_string();
    assert!(err.contains("t.toml:2: cpu.budgte"), "{err}");
    assert_eq!(cache.stats().cpu.budget, 500, "a bad file changes nothing");
}

#[test]
fn prefetch_warms_without_holding() {
    let tmp = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..6).map(|n| format!("{n}.png")).collect();
    for n in &names {
        common::png(tmp.path(), n, 6, 6);
    }
    let cache = common::cache(tmp.path(), 1 << 20);
    cache
        .prefetch(
            names.iter().cloned().chain(["missing.png".to_string()]),
            None,
        )
        .unwrap();
    cache.wait_prefetch();
    let s = cache.stats().cpu;
    assert_eq!(
        (s.entries, s.in_use, s.used, s.failures),
        (6, 0, 6 * 144, 1)
    );
    let before = s.hits;
    for n in &names {
        cache.bitmap(n).unwrap();
    }
    assert_eq!(cache.stats().cpu.hits - before, 6);
    assert!(cache.bitmap_if_resident("0.png").is_some());
    assert!(cache.bitmap_if_resident("missing.png").is_none());
}

#[cfg(unix)]
#[test]
fn confine_rejects_hrefs_outside_mediadir() {
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    std::fs::create_dir(&media).unwrap();
    common::png(tmp.path(), "secret.png", 2, 2);
    common::png(&media, "ok.png", 2, 2);
    std::os::unix::fs::symlink(tmp.path().join("secret.png"), media.join("link.png")).unwrap();
    std::os::unix::fs::symlink(media.join("ok.png"), media.join("inner.png")).unwrap();
    let mut cfg = texcache::Config::default();
    cfg.mediadir = media.clone();
    cfg.confine = true;
    let cache = Cache::new(cfg).unwrap();
    let abs = tmp.path().join("secret.png").display().to_string();
    for href in ["../secret.png", abs.as_str(), "link.png"] {
        let err = cache.bitmap(href).unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::OutsideMediadir { .. }),
            "{href}: {err:?}"
        );
        assert!(err.to_string().starts_with(href), "{err}");
    }
    assert!(cache.bitmap("ok.png").is_ok());
    assert!(
        cache.bitmap("inner.png").is_ok(),
        "a symlink that stays inside is fine"
    );
    // Without confine the same hrefs load.
    let open = common::cache(&media, 1 << 20);
    assert!(open.bitmap("../secret.png").is_ok() && open.bitmap("link.png").is_ok());
}
