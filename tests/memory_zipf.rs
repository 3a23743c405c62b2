//! Memory under a long Zipf-distributed workload over a few hundred pictures whose decoded
//! bytes are four times the CPU budget: the process's peak resident set stays within
//! 16 MiB of the budget plus the bytes in use, and four times the work does not grow it. Also
//! the bookkeeping memory per entry. Its
//! own test binary with one test, so that the process's figures (VmHWM, VmRSS) measure it alone.

mod common;

use std::collections::VecDeque;

const PICTURES: usize = 300;
const SIDE: u32 = 128;
const HELD: usize = 4;

/// Picture numbers drawn with probability proportional to 1/rank (a Zipf law), from a
/// reproducible stream: nothing is allocated per draw, so the process's memory is the cache's.
struct Zipf {
    cumulative: Vec<f64>,
    x: u64,
}

impl Zipf {
    fn new(seed: u64) -> Zipf {
        let total: f64 = (1..=PICTURES).map(|k| 1.0 / k as f64).sum();
        let mut acc = 0.0;
        let cumulative = (1..=PICTURES)
            .map(|k| {
                acc += 1.0 / k as f64 / total;
                acc
            })
            .collect();
        Zipf {
            cumulative,
            x: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        }
    }
    fn next(&mut self) -> usize {
        self.x ^= self.x << 13;
        self.x ^= self.x >> 7;
        self.x ^= self.x << 17;
        let u = (self.x >> 11) as f64 / (1u64 << 53) as f64;
        self.cumulative
            .partition_point(|&c| c < u)
            .min(PICTURES - 1)
    }
}

#[test]
fn a_long_zipf_replay_keeps_memory_flat_at_the_budget() {
    let start = common::status("VmHWM:");
    let tmp = tempfile::tempdir().unwrap();
    for i in 0..PICTURES {
        common::png(tmp.path(), &format!("p{i}.png"), SIDE, SIDE);
    }
    let picture = SIDE as u64 * SIDE as u64 * 4;
    let budget = PICTURES as u64 * picture / 4;
    let mut cfg = texcache::Config::default();
    cfg.mediadir = tmp.path().into();
    cfg.cpu.budget.0 = budget;
    cfg.stats.history_interval_ms = 0;
    let cache = texcache::Cache::new(cfg).unwrap();

    let hrefs: Vec<String> = (0..PICTURES).map(|i| format!("p{i}.png")).collect();
    let mut held = VecDeque::with_capacity(HELD + 1);
    // A slideshow with a few pictures on screen: each acquired picture is released after the
    // next `HELD` acquires.
    let mut replay = |ops: usize, seed: u64| {
        let mut zipf = Zipf::new(seed);
        for _ in 0..ops {
            held.push_back(cache.bitmap(&hrefs[zipf.next()]).unwrap());
            if held.len() > HELD {
                held.pop_front();
            }
        }
        held.clear();
    };
    // One pass to warm up (the allocator settles into the workload's sizes: its first passes
    // grow the heap by about 1 MiB, measured), then four times the work.
    replay(40_000, 1);
    let once = common::status("VmHWM:");
    for seed in 2..6 {
        replay(40_000, seed);
        eprintln!(
            "pass {seed}: VmHWM {} VmRSS {}",
            common::status("VmHWM:"),
            common::status("VmRSS:")
        );
    }
    let five_times = common::status("VmHWM:");

    let s = cache.stats().cpu;
    eprintln!(
        "budget {budget}, peak used {}, evictions {}, hit ratio {:.2}; VmHWM: at start {start}, \
         after one pass {once}, after five {five_times}",
        s.peak_used,
        s.evictions,
        s.hits as f64 / (s.hits + s.misses) as f64
    );
    assert!(s.peak_used <= budget + HELD as u64 * picture, "{s:?}");
    assert!(s.evictions > 1000 && s.hits > s.misses, "{s:?}");
    let in_use = (HELD as u64 + 1) * picture;
    assert!(
        once - start <= budget + in_use + (16 << 20),
        "peak RSS grew {} bytes for a budget of {budget}",
        once - start
    );
    // Measured: 0 bytes, in debug and release builds; a little room for another allocator.
    assert!(
        five_times - once <= 64 << 10,
        "four more passes grew the peak RSS by {} bytes",
        five_times - once
    );

    // The bookkeeping per entry, pixels aside: 100,000 entries of one pixel each.
    cache.set_budget(texcache::TierKind::Cpu, u64::MAX);
    let before = common::status("VmRSS:");
    const ENTRIES: u64 = 100_000;
    for i in 0..ENTRIES {
        let href = format!("entries/{i:07}.png");
        let one = || {
            Ok(texcache::Bitmap::new(
                1,
                1,
                texcache::PixelFormat::Rgba8,
                vec![0; 4],
            ))
        };
        drop(
            cache
                .cpu_tier()
                .acquire(&href, || cache.key(&href), |_| one())
                .unwrap(),
        );
    }
    let per_entry = (common::status("VmRSS:") - before) / ENTRIES;
    let key_len = cache.key("entries/0000000.png").path().as_os_str().len();
    eprintln!("{per_entry} bytes of memory per entry (4 of them pixels, a {key_len}-byte key)");
    assert!(per_entry < 512, "{per_entry} bytes per entry");
}
