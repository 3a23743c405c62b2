//! `cargo bench --features ffmpeg --bench video_ffmpeg`: playing the corpus's 1920x1080 H.264
//! clip (120 frames) through a threaded video node, decoding ahead into its queue of 8 while
//! this thread takes and drops frames, against `ffmpeg_loop`: the same FFmpeg decoder called on
//! this thread into one reused buffer (what an application writes without texcache). Both use
//! FFmpeg's own choice of decoder threads. Also prints the allocations per steady-state frame
//! on the Rust side, counted by a global allocator.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::path::PathBuf;

#[path = "../tests/common/counting.rs"]
mod counting;

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

const CLIP: &str = "testsrc2_1920x1080_h264.mp4";
const FRAMES: u64 = 30;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/video/encoded")
}

fn video_ffmpeg(c: &mut Criterion) {
    let mut cfg = texcache::Config::default();
    cfg.mediadir = dir();
    let cache = texcache::Cache::new(cfg).unwrap();
    {
        let mut node = cache.video(CLIP).unwrap();
        node.set_looping(true);
        node.play().unwrap();
        for _ in 0..20 {
            drop(node.next_frame().unwrap().unwrap());
        }
        let before = counting::allocations();
        let n = 60;
        for _ in 0..n {
            drop(node.next_frame().unwrap().unwrap());
        }
        let per = (counting::allocations() - before) as f64 / n as f64;
        println!(
            "video_ffmpeg: {per} Rust allocations per steady-state frame (1920x1080 H.264, queue 8; \
             decoder bytes {})",
            node.stats().decoder_bytes
        );
    }

    let mut g = c.benchmark_group("video_ffmpeg");
    g.throughput(Throughput::Elements(FRAMES));
    g.sample_size(10);
    let mut node = cache.video(CLIP).unwrap();
    node.set_looping(true);
    node.play().unwrap();
    g.bench_function("texcache_node", |b| {
        b.iter(|| {
            for _ in 0..FRAMES {
                let f = node.next_frame().unwrap().unwrap();
                std::hint::black_box(f.data()[0]);
            }
        })
    });
    drop(node);
    let options = texcache::video::SourceOptions {
        max_pixels: 1 << 28,
        decoder_threads: 0,
    };
    let mut src = texcache::video::open(CLIP, &dir().join(CLIP), None, options).unwrap();
    let mut buf = vec![0u8; src.info().frame_bytes() as usize];
    g.bench_function("ffmpeg_loop", |b| {
        b.iter(|| {
            for _ in 0..FRAMES {
                if src.read_frame(&mut buf).unwrap().is_none() {
                    src.seek(0.0).unwrap();
                    src.read_frame(&mut buf).unwrap().unwrap();
                }
                std::hint::black_box(buf[0]);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, video_ffmpeg);
criterion_main!(benches);
