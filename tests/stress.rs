//! Concurrency stress: threads doing random acquire, clone, drop, remove, trim, budget changes,
//! prefetch and texture requests on one cache, checking the §2–3 invariants all along and,
//! at every batch boundary (all handles dropped, prefetch drained), exactly. Its own test
//! binary, so the process-wide live-object counters see no other test.
// These tests need the GPU tier (the default `gpu` feature).
#![cfg(feature = "gpu")]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::time::Duration;
use texcache::{Cache, TierKind, TierStats};

const THREADS: usize = 4;
const BATCHES: usize = 12;
const OPS: usize = 1000;
const PICTURES: u32 = 40;

/// Xorshift: reproducible per thread, no dependency.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Holds at any instant, whatever other threads are doing (each snapshot is taken under the
/// tier lock).
fn check_always(t: &TierStats) {
    assert!(t.in_use <= t.used && t.in_use_entries <= t.entries, "{t:?}");
    assert_eq!(t.unused, t.used - t.in_use, "{t:?}");
    assert!(
        t.used <= t.budget || t.unused == 0,
        "over budget while unused entries could be evicted: {t:?}"
    );
}

/// Holds when no handle is held and no load is in flight.
fn check_quiet(cache: &Cache) {
    let s = cache.stats_with_entries();
    for (tier, t) in [("cpu", &s.cpu), ("gpu", &s.gpu)] {
        let listed: Vec<_> = s
            .entries
            .iter()
            .flatten()
            .filter(|e| e.tier() == tier)
            .collect();
        let sum = |field: &str| {
            listed
                .iter()
                .map(|e| {
                    if field == "bytes" {
                        e.bytes()
                    } else {
                        e.refs()
                    }
                })
                .sum::<u64>()
        };
        assert_eq!(t.in_use, 0, "{tier}: {t:?}");
        assert_eq!(t.used, sum("bytes"), "{tier}");
        assert_eq!(t.entries, listed.len() as u64, "{tier}");
        assert_eq!(sum("refs"), 0, "{tier}");
        assert!(t.used <= t.budget, "{tier}: {t:?}");
    }
    let (bitmaps, bitmap_bytes) = texcache::picture::live_bitmaps();
    assert_eq!(
        (bitmaps as u64, bitmap_bytes as u64),
        (s.cpu.entries, s.cpu.used)
    );
    let (textures, texture_bytes) = texcache::gpu::live_textures();
    assert_eq!(
        (textures as u64, texture_bytes as u64),
        (s.gpu.entries, s.gpu.used)
    );
}

#[test]
fn random_operations_from_many_threads_keep_the_invariants() {
    let tmp = tempfile::tempdir().unwrap();
    let mut total = 0;
    for i in 0..PICTURES {
        let side = 8 + i % 24;
        common::png(tmp.path(), &format!("p{i}.png"), side, side);
        total += side as u64 * side as u64 * 4;
    }
    std::fs::write(tmp.path().join("bad.png"), b"\x89PNG\r\n\x1a\nnope").unwrap();
    let mut cfg = texcache::Config::default();
    cfg.mediadir = tmp.path().into();
    cfg.cpu.budget.0 = total / 4;
    cfg.gpu.budget.0 = total / 4;
    cfg.loader.threads = 2;
    let cache = Arc::new(Cache::new(cfg).unwrap());
    let gpu = common::gpu();
    if let Some(g) = &gpu {
        cache.bind_gpu(g.clone());
    }
    let hrefs: Vec<String> = (0..PICTURES)
        .map(|i| format!("p{i}.png"))
        .chain(["bad.png".into(), "missing.png".into(), "./p1.png".into()])
        .collect();
    let acquires = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(THREADS));
    let (done, finished) = mpsc::channel();
    let mut threads = Vec::new();
    for t in 0..THREADS {
        let (cache, hrefs, acquires, barrier, done) = (
            cache.clone(),
            hrefs.clone(),
            acquires.clone(),
            barrier.clone(),
            done.clone(),
        );
        let with_gpu = gpu.is_some();
        threads.push(std::thread::spawn(move || {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((t as u64 + 1) * 0x1234_5678_9ABC));
            let pick = |rng: &mut Rng| hrefs[rng.below(hrefs.len() as u64) as usize].as_str();
            for _ in 0..BATCHES {
                let mut bitmaps = Vec::new();
                let mut textures = Vec::new();
                for _ in 0..OPS {
                    match rng.below(100) {
                        0..=44 => {
                            acquires.fetch_add(1, Ordering::Relaxed);
                            match cache.bitmap(pick(&mut rng)) {
                                Ok(h) => bitmaps.push(h),
                                Err(e) => assert!(
                                    e.to_string().contains("bad.png")
                                        || e.to_string().contains("missing.png"),
                                    "{e}"
                                ),
                            }
                        }
                        45..=59 if !bitmaps.is_empty() => {
                            let i = rng.below(bitmaps.len() as u64) as usize;
                            bitmaps.swap_remove(i);
                        }
                        60..=67 => {
                            if let Some(h) = bitmaps.last() {
                                let c = h.clone();
                                assert!(texcache::Handle::ptr_eq(&c, h));
                                bitmaps.push(c);
                            }
                        }
                        68..=73 => {
                            cache.remove(pick(&mut rng));
                        }
                        74..=77 => {
                            let target = rng.below(total / 4);
                            check_always(&cache.trim(TierKind::Cpu, target));
                        }
                        78..=80 => {
                            let budget = [total / 8, total / 4, total / 2][rng.below(3) as usize];
                            check_always(&cache.set_budget(TierKind::Cpu, budget));
                        }
                        81..=85 => cache
                            .prefetch([pick(&mut rng), pick(&mut rng)], None)
                            .unwrap(),
                        86..=91 if with_gpu => {
                            if let Ok(h) = cache.texture(pick(&mut rng)) {
                                textures.push(h);
                            }
                        }
                        92..=93 if with_gpu => {
                            textures.pop();
                        }
                        94..=95 if with_gpu => {
                            check_always(&cache.trim(TierKind::Gpu, rng.below(total / 4)));
                        }
                        _ => {}
                    }
                    if bitmaps.len() > 8 {
                        bitmaps.remove(0);
                    }
                    if textures.len() > 4 {
                        textures.remove(0);
                    }
                    let s = cache.stats();
                    check_always(&s.cpu);
                    check_always(&s.gpu);
                }
                drop((bitmaps, textures));
                // Batch boundary: every thread has dropped its handles.
                if barrier.wait().is_leader() {
                    cache.wait_prefetch();
                    check_quiet(&cache);
                }
                barrier.wait();
            }
            done.send(()).unwrap();
        }));
    }
    drop(done);
    for _ in 0..THREADS {
        finished
            .recv_timeout(Duration::from_secs(300))
            .expect("a stress thread is stuck (a waiter blocked forever?) or panicked");
    }
    // The threads have finished their work; join them so that their clones of the cache are
    // gone before the leak check below.
    for t in threads {
        t.join().unwrap();
    }
    cache.wait_prefetch();
    check_quiet(&cache);
    let s = cache.stats().cpu;
    assert!(
        s.hits + s.misses + s.coalesced >= acquires.load(Ordering::Relaxed),
        "every acquire counted: {s:?}"
    );
    let g = cache.stats().gpu;
    eprintln!("cpu {s:?}\ngpu {g:?}");
    assert!(
        s.evictions > 0 && s.failures > 0,
        "the run evicted and failed: {s:?}"
    );
    assert!(
        gpu.is_none() || g.evictions > 0,
        "the run evicted textures: {g:?}"
    );
    drop(cache);
    assert_eq!(texcache::picture::live_bitmaps(), (0, 0), "bitmaps leaked");
    assert_eq!(texcache::gpu::live_textures(), (0, 0), "textures leaked");
}
