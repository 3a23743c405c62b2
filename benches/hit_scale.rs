//! `cargo bench --bench hit_scale`: how the hit (acquire a handle and drop it) scales.
//!
//! - group `hit_scale`: one thread, on caches of 1,000, 100,000 and 1,000,000 resident entries,
//!   texcache and quick_cache side by side (ids `texcache/N`, `quick_cache/N`), with keys drawn
//!   uniformly from all N entries; and (ids `texcache_hot/N`, `quick_cache_hot/N`) from a hot
//!   set of 1,000 entries spread evenly over the N, as an application's working set: whether
//!   the cache's own cost grows with its size, apart from the memory system's;
//! - group `hit_mt`: 10,000 resident entries, 1 and 2 threads hitting at once, each on its own
//!   key sequence (ids `texcache/T`, `quick_cache/T`); the throughput (hits/s, all threads
//!   together) of `/2` over `/1` is the scaling. The `_disjoint` ids give each thread its own
//!   half of the keys, so that the threads share the cache but no entry;
//! - group `evict`: the cost of one eviction as the cache grows: a tier (and a quick_cache)
//!   holding exactly N entries takes a new one, which evicts the least recently used (ids
//!   `texcache/N`, `quick_cache/N`, N = 1,000, 100,000, 1,000,000).
//!
//! The entries hold 1x1 bitmaps put in through the CPU tier directly (decoding a million files
//! would only make the setup slow): the hit path, `Cache::bitmap`, is the one an application
//! uses.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

#[derive(Clone)]
struct PixelWeighter;
impl quick_cache::Weighter<String, Arc<Vec<u8>>> for PixelWeighter {
    fn weight(&self, _k: &String, v: &Arc<Vec<u8>>) -> u64 {
        v.len() as u64
    }
}
type Qc = quick_cache::sync::Cache<String, Arc<Vec<u8>>, PixelWeighter>;

fn name(i: usize) -> String {
    format!("img/{i:07}.png")
}

/// A pseudo-random sequence of entry numbers below `n` (xorshift, seeded per thread).
fn sequence(n: usize, len: usize, seed: u32) -> Vec<u32> {
    let mut x = 0x9E37_79B9u32 ^ seed.wrapping_mul(0x85EB_CA6B);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x as usize % n) as u32
        })
        .collect()
}

/// A texcache and a quick_cache holding `n` entries of 4 bytes (1x1 RGBA) each, with room for
/// `room` such entries; and the entries' names.
fn caches_with_room(n: usize, room: usize) -> (texcache::Cache, Qc, Vec<String>) {
    let mut cfg = texcache::Config::default();
    cfg.mediadir = "/bench".into();
    cfg.stats.history_interval_ms = 0;
    cfg.cpu.budget.0 = 4 * room as u64;
    let cache = texcache::Cache::new(cfg).unwrap();
    let names: Vec<String> = (0..n).map(name).collect();
    let qc = Qc::with_weighter(room, 4 * room as u64, PixelWeighter);
    for h in &names {
        insert(&cache, &qc, h);
    }
    assert_eq!(cache.stats().cpu.entries, n as u64);
    (cache, qc, names)
}

fn caches(n: usize) -> (texcache::Cache, Qc, Vec<String>) {
    caches_with_room(n, 1 << 38)
}

/// Puts `h` in both caches (a miss in each), as a 1x1 RGBA bitmap.
fn insert(cache: &texcache::Cache, qc: &Qc, h: &str) {
    insert_texcache(cache, h);
    insert_qc(qc, h);
}

fn insert_texcache(cache: &texcache::Cache, h: &str) {
    let one = || {
        Ok(texcache::Bitmap::new(
            1,
            1,
            texcache::PixelFormat::Rgba8,
            vec![0u8; 4],
        ))
    };
    drop(
        cache
            .cpu_tier()
            .acquire(h, || cache.key(h), |_| one())
            .unwrap(),
    );
}

fn insert_qc(qc: &Qc, h: &str) {
    qc.insert(h.to_owned(), Arc::new(vec![0u8; 4]));
}

fn scale(c: &mut Criterion) {
    let mut g = c.benchmark_group("hit_scale");
    for n in [1_000usize, 100_000, 1_000_000] {
        let (cache, qc, names) = caches(n);
        let uniform = sequence(n, (4 * n).min(1 << 20), 1);
        const HOT: usize = 1_000;
        let hot: Vec<u32> = sequence(HOT, 1 << 16, 2)
            .into_iter()
            .map(|i| (i as usize * (n / HOT)) as u32)
            .collect();
        for (suffix, seq) in [("", &uniform), ("_hot", &hot)] {
            let mut i = 0usize;
            let mut next = || {
                i = (i + 1) % seq.len();
                names[seq[i] as usize].as_str()
            };
            g.bench_function(BenchmarkId::new(format!("texcache{suffix}"), n), |b| {
                b.iter(|| drop(std::hint::black_box(cache.bitmap(next()).unwrap())))
            });
            g.bench_function(BenchmarkId::new(format!("quick_cache{suffix}"), n), |b| {
                b.iter(|| drop(std::hint::black_box(qc.get(next()).unwrap())))
            });
        }
        let misses = cache.stats().cpu.misses;
        assert_eq!(misses, n as u64, "every benchmarked acquire was a hit");
    }
    g.finish();
}

/// Runs `hit(thread, k)` for k in 0..iters on each of `threads` threads at once; the time the
/// slowest took.
fn in_parallel(threads: usize, iters: u64, hit: &(impl Fn(usize, usize) + Sync)) -> Duration {
    let start = Barrier::new(threads);
    std::thread::scope(|s| {
        let runs: Vec<_> = (0..threads)
            .map(|t| {
                let start = &start;
                s.spawn(move || {
                    start.wait();
                    let t0 = Instant::now();
                    for k in 0..iters as usize {
                        hit(t, k);
                    }
                    t0.elapsed()
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).max().unwrap()
    })
}

fn threads(c: &mut Criterion) {
    const N: usize = 10_000;
    let (cache, qc, names) = caches(N);
    let shared: Vec<Vec<u32>> = (0..2).map(|t| sequence(N, 1 << 16, t + 7)).collect();
    // Thread t on the entries numbered t modulo 2.
    let disjoint: Vec<Vec<u32>> = (0..2)
        .map(|t| {
            let seq = sequence(N / 2, 1 << 16, t + 7);
            seq.into_iter().map(|i| i * 2 + t).collect()
        })
        .collect();
    let mut g = c.benchmark_group("hit_mt");
    for (suffix, seqs) in [("", &shared), ("_disjoint", &disjoint)] {
        let key = |t: usize, k: usize| names[seqs[t][k % seqs[t].len()] as usize].as_str();
        for t in [1usize, 2] {
            g.throughput(Throughput::Elements(t as u64));
            g.bench_function(BenchmarkId::new(format!("texcache{suffix}"), t), |b| {
                b.iter_custom(|iters| {
                    in_parallel(t, iters, &|th, k| {
                        drop(std::hint::black_box(cache.bitmap(key(th, k)).unwrap()))
                    })
                })
            });
            g.bench_function(BenchmarkId::new(format!("quick_cache{suffix}"), t), |b| {
                b.iter_custom(|iters| {
                    in_parallel(t, iters, &|th, k| {
                        drop(std::hint::black_box(qc.get(key(th, k)).unwrap()))
                    })
                })
            });
        }
    }
    g.finish();
    let misses = cache.stats().cpu.misses;
    assert_eq!(misses, N as u64, "every benchmarked acquire was a hit");
}

/// One insertion into a full cache, which evicts one entry: texcache's least recently
/// released, quick_cache's own choice. The names go round a ring of twice the capacity, so
/// each one was evicted long before it comes again: every insertion is a miss.
fn evict(c: &mut Criterion) {
    let mut g = c.benchmark_group("evict");
    for n in [1_000usize, 100_000, 1_000_000] {
        let (cache, qc, mut names) = caches_with_room(n, n);
        names.extend((n..2 * n).map(name));
        for (id, insert) in [
            (
                "texcache",
                &(|h: &str| insert_texcache(&cache, h)) as &dyn Fn(&str),
            ),
            ("quick_cache", &|h: &str| insert_qc(&qc, h)),
        ] {
            let mut i = n;
            g.bench_function(BenchmarkId::new(id, n), |b| {
                b.iter(|| {
                    i = (i + 1) % names.len();
                    insert(&names[i]);
                })
            });
        }
        let s = cache.stats().cpu;
        assert_eq!(s.entries, n as u64, "the tier stayed full");
        assert_eq!(
            s.evictions,
            s.misses - n as u64,
            "every insertion evicted one"
        );
    }
    g.finish();
}

criterion_group!(benches, scale, threads, evict);
criterion_main!(benches);
