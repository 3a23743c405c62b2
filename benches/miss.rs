//! `cargo bench --bench miss`: a cold acquire (read, decode, insert, release, remove) against
//! reading and decoding the same file to RGBA8 by hand with `image`, on ../shared/corpus/photos.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::path::Path;

const FILES: &[&str] = &[
    "kodim23.png",
    "kodim23.jpg",
    "Fantasy_Digital_Painting.png",
    "kodim23_3072x2048.jpg",
];

fn miss(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/photos");
    let mut cfg = texcache::Config::default();
    cfg.mediadir = dir.clone();
    let cache = texcache::Cache::new(cfg).unwrap();
    let mut g = c.benchmark_group("miss");
    g.sample_size(20);
    for f in FILES {
        let path = dir.join(f);
        let (w, h) = image::image_dimensions(&path).unwrap();
        g.throughput(Throughput::Elements(w as u64 * h as u64));
        g.bench_with_input(BenchmarkId::new("raw_decode", f), &path, |b, path| {
            b.iter(|| {
                let bytes = std::fs::read(path).unwrap();
                black_box(image::load_from_memory(&bytes).unwrap().into_rgba8())
            })
        });
        g.bench_with_input(BenchmarkId::new("texcache_miss", f), f, |b, f| {
            b.iter(|| {
                drop(black_box(cache.bitmap(f).unwrap()));
                cache.remove(f);
            })
        });
    }
    g.finish();
    let s = cache.stats().cpu;
    assert_eq!(
        (s.hits, s.entries),
        (0, 0),
        "every benchmarked acquire was a miss"
    );
}

criterion_group!(benches, miss);
criterion_main!(benches);
