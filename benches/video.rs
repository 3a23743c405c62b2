//! `cargo bench --bench video`: decoding a 1920x1080 YUV4MPEG2 clip (generated at bench time)
//! through a threaded video node and its queue, against `raw_read`: the same frames read into
//! one reused buffer with plain `std::io::Read`, the memory-bandwidth limit here. Also prints
//! the allocations per steady-state frame, counted by a global allocator.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::io::{BufRead, BufReader, Read};

#[path = "../tests/common/counting.rs"]
mod counting;

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

const W: u32 = 1920;
const H: u32 = 1080;
const FRAMES: u32 = 30;

fn video(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("clip.y4m");
    texcache::testing::samples::write_y4m(&path, W, H, FRAMES).unwrap();
    let fb = (W * H + 2 * (W / 2) * (H / 2)) as usize;
    let mut cfg = texcache::Config::default();
    cfg.mediadir = tmp.path().into();
    let cache = texcache::Cache::new(cfg).unwrap();

    // Allocations per steady-state frame: after the pool is warm, take and drop frames.
    {
        let mut node = cache.video("clip.y4m").unwrap();
        node.play().unwrap();
        for _ in 0..12 {
            drop(node.next_frame().unwrap().unwrap());
        }
        let before = counting::allocations();
        let n = 15;
        for _ in 0..n {
            drop(node.next_frame().unwrap().unwrap());
        }
        let per = (counting::allocations() - before) as f64 / n as f64;
        println!("video: {per} allocations per steady-state frame ({W}x{H}, queue 8)");
    }

    let mut g = c.benchmark_group("video");
    g.throughput(Throughput::Elements(FRAMES as u64));
    g.sample_size(20);
    // Steady playback: one node, looping, decoding ahead into its queue of 8 while this thread
    // takes and drops frames (the buffers cycle through the pool).
    let mut node = cache.video("clip.y4m").unwrap();
    node.set_looping(true);
    node.play().unwrap();
    g.bench_function("texcache", |b| {
        b.iter(|| {
            for _ in 0..FRAMES {
                let f = node.next_frame().unwrap().unwrap();
                std::hint::black_box(f.data()[0]);
            }
        })
    });
    g.bench_function("raw_read", |b| {
        let mut buf = vec![0u8; fb];
        let mut line = Vec::new();
        b.iter(|| {
            let mut r = BufReader::with_capacity(1 << 16, std::fs::File::open(&path).unwrap());
            line.clear();
            r.read_until(b'\n', &mut line).unwrap();
            for _ in 0..FRAMES {
                line.clear();
                r.read_until(b'\n', &mut line).unwrap();
                r.read_exact(&mut buf).unwrap();
                std::hint::black_box(buf[0]);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, video);
criterion_main!(benches);
