//! `cargo bench --bench hit`: one cache hit (acquire a handle and drop it) on a cache holding
//! 10,000 resident entries, against the caches a user would pick instead. Every peer walks the
//! same pseudo-random key sequence and holds values of the same kind (an `Arc` to pixels).

use criterion::{criterion_group, criterion_main, Criterion};
use parking_lot::Mutex;
use std::hint::black_box;
use std::num::NonZeroUsize;
use std::sync::Arc;

const N: usize = 10_000;

fn keys() -> Vec<String> {
    let mut x = 0x9E37_79B9u32;
    (0..N * 4)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            format!("img/{:05}.png", x as usize % N)
        })
        .collect()
}

fn hit(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("img")).unwrap();
    let one = {
        let mut v = Vec::new();
        image::RgbaImage::new(1, 1)
            .write_to(&mut std::io::Cursor::new(&mut v), image::ImageFormat::Png)
            .unwrap();
        v
    };
    for i in 0..N {
        std::fs::write(tmp.path().join(format!("img/{i:05}.png")), &one).unwrap();
    }
    let keys = keys();
    let mut cfg = texcache::Config::default();
    cfg.mediadir = tmp.path().into();
    let cache = texcache::Cache::new(cfg).unwrap();
    for i in 0..N {
        drop(cache.bitmap(&format!("img/{i:05}.png")).unwrap());
    }
    assert_eq!(cache.stats().cpu.entries, N as u64);
    // The same cache recording a trace (`stats.trace`), to /dev/null so that the disk is not
    // what is measured; the recorder must keep up (checked below).
    let mut rcfg = cache.config();
    rcfg.stats.trace = "/dev/null".into();
    let recording = texcache::Cache::new(rcfg).unwrap();
    for i in 0..N {
        drop(recording.bitmap(&format!("img/{i:05}.png")).unwrap());
    }

    let qc: quick_cache::sync::Cache<String, Arc<Vec<u8>>, PixelWeighter> =
        quick_cache::sync::Cache::with_weighter(N, 1 << 30, PixelWeighter);
    let moka: moka::sync::Cache<String, Arc<Vec<u8>>> = moka::sync::Cache::builder()
        .max_capacity(1 << 30)
        .weigher(|_k, v: &Arc<Vec<u8>>| v.len() as u32)
        .build();
    let lru = Mutex::new(lru::LruCache::<String, Arc<Vec<u8>>>::new(
        NonZeroUsize::new(N).unwrap(),
    ));
    for i in 0..N {
        // One value per key, as texcache has one bitmap per key.
        let k = format!("img/{i:05}.png");
        qc.insert(k.clone(), Arc::new(vec![0u8; 4]));
        moka.insert(k.clone(), Arc::new(vec![0u8; 4]));
        lru.lock().put(k, Arc::new(vec![0u8; 4]));
    }
    moka.run_pending_tasks();

    let mut g = c.benchmark_group("hit");
    let mut i = 0usize;
    let mut next = || {
        i = (i + 1) % keys.len();
        keys[i].as_str()
    };
    g.bench_function("texcache", |b| {
        b.iter(|| drop(black_box(cache.bitmap(next()).unwrap())))
    });
    g.bench_function("texcache_recording", |b| {
        b.iter(|| drop(black_box(recording.bitmap(next()).unwrap())))
    });
    g.bench_function("quick_cache", |b| {
        b.iter(|| drop(black_box(qc.get(next()).unwrap())))
    });
    g.bench_function("moka", |b| {
        b.iter(|| drop(black_box(moka.get(next()).unwrap())))
    });
    g.bench_function("mutex_lru", |b| {
        b.iter(|| drop(black_box(lru.lock().get(next()).cloned().unwrap())))
    });
    g.finish();
    recording
        .flush_trace()
        .expect("the trace recorder kept up with the hit loop");
    let s = cache.stats().cpu;
    assert_eq!(
        (s.misses, s.entries),
        (N as u64, N as u64),
        "every benchmarked acquire was a hit"
    );
}

#[derive(Clone)]
struct PixelWeighter;
impl quick_cache::Weighter<String, Arc<Vec<u8>>> for PixelWeighter {
    fn weight(&self, _k: &String, v: &Arc<Vec<u8>>) -> u64 {
        v.len() as u64
    }
}

criterion_group!(benches, hit);
criterion_main!(benches);
