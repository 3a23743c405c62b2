//! Trace recording (`stats.trace`): the trace an application's cache writes replays to the same
//! final stats, single-threaded and multi-threaded; clones, failures, remove, trim and budget
//! are written as §7 says; a fast hit loop is written whole and in order; a full disk is a
//! typed error and the cache goes on.
// Recording is checked with textures too: these tests need the GPU tier (the default `gpu`
// feature).
#![cfg(feature = "gpu")]

use crate::common;

use std::path::Path;
use texcache::trace::{Replayer, Trace};
use texcache::ErrorKind;
use texcache::{Cache, Config, TierKind, TierStats};

/// A small deterministic generator (xorshift), so every run does the same workload.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `n` PNGs of different sizes in `dir`: `p0.png` ...
fn pictures(dir: &Path, n: u32) {
    for i in 0..n {
        common::png(dir, &format!("p{i}.png"), 8 + i % 7 * 5, 6 + i % 5 * 3);
    }
}

fn config(dir: &Path, cpu_budget: u64) -> Config {
    let mut cfg = Config::default();
    cfg.mediadir = dir.to_path_buf();
    cfg.cpu.budget.0 = cpu_budget;
    cfg.gpu.budget.0 = cpu_budget / 2;
    // The machine's memory pressure (a loaded CI host) must not trim either cache: a recording
    // and its replay are compared to the eviction.
    cfg.pressure.trim = false;
    cfg
}

/// Replays `trace` on a fresh cache with `cfg` (bound to `gpu` if given); the final stats.
fn replay(
    cfg: Config,
    trace: &Path,
    gpu: Option<std::sync::Arc<texcache::Gpu>>,
) -> (TierStats, TierStats) {
    let cache = Cache::new(cfg).unwrap();
    if let Some(g) = gpu {
        cache.bind_gpu(g);
    }
    let trace = Trace::load(trace).unwrap();
    let mut r = Replayer::new(&cache);
    r.run(&trace, |_, _| {}).unwrap();
    let s = cache.stats();
    (s.cpu, s.gpu)
}

/// One step of a random workload on `held` handles.
fn step(
    cache: &Cache,
    rng: &mut Rng,
    held: &mut Vec<texcache::BitmapHandle>,
    n: u64,
    textures: &mut Vec<texcache::TextureHandle>,
    gpu: bool,
) {
    let href = |i: u64| {
        if i.is_multiple_of(3) {
            format!("./p{i}.png") // needs normalising: recorded as `p{i}.png`
        } else {
            format!("p{i}.png")
        }
    };
    match rng.below(100) {
        0..=39 => held.push(cache.bitmap(&href(rng.below(n))).unwrap()),
        40..=49 if !held.is_empty() => {
            let i = rng.below(held.len() as u64) as usize;
            held.push(held[i].clone());
        }
        50..=79 if !held.is_empty() => {
            let i = rng.below(held.len() as u64) as usize;
            held.swap_remove(i);
        }
        80..=83 => {
            cache.remove(&href(rng.below(n)));
        }
        84..=85 => {
            let used = cache.stats().cpu.used;
            cache.trim(TierKind::Cpu, used / 2);
        }
        86..=87 => {
            cache.set_budget(TierKind::Cpu, 3_000 + rng.below(8_000));
        }
        88..=89 => {
            assert!(cache.bitmap("missing.png").is_err());
        }
        90..=96 if gpu => textures.push(cache.texture(&href(rng.below(n))).unwrap()),
        97..=99 if gpu && !textures.is_empty() => {
            let i = rng.below(textures.len() as u64) as usize;
            textures.swap_remove(i);
        }
        _ => {}
    }
}

#[test]
fn a_recorded_single_threaded_workload_replays_to_the_same_stats() {
    let tmp = tempfile::tempdir().unwrap();
    pictures(tmp.path(), 24);
    let trace = tmp.path().join("app.trace");
    let mut cfg = config(tmp.path(), 6_000);
    cfg.stats.trace = trace.clone();
    let cache = Cache::new(cfg.clone()).unwrap();
    let (mut rng, mut held, mut tex) = (Rng(0x9e3779b97f4a7c15), Vec::new(), Vec::new());
    for _ in 0..3_000 {
        step(&cache, &mut rng, &mut held, 24, &mut tex, false);
        if held.len() > 12 {
            held.truncate(6);
        }
    }
    let recorded = cache.stats();
    cache.stop_trace().unwrap();
    assert!(
        recorded.cpu.evictions > 100,
        "the workload must evict: {:?}",
        recorded.cpu
    );
    assert!(recorded.cpu.failures > 10);

    let text = std::fs::read_to_string(&trace).unwrap();
    assert!(text.contains("\nbitmap b3 p"), "{}", &text[..200]);
    assert!(!text.contains("./"), "hrefs are written normalised");
    for verb in [
        "release b",
        "remove p",
        "trim cpu ",
        "budget cpu ",
        "bitmap f1 missing.png",
    ] {
        assert!(text.contains(verb), "no `{verb}` line");
    }
    cfg.stats.trace = Default::default();
    let (cpu, gpu) = replay(cfg, &trace, None);
    assert_eq!(cpu, recorded.cpu);
    assert_eq!(gpu, recorded.gpu);
}

/// A hit loop as fast as the cache goes, spanning many of the recorder's batches (and, in an
/// optimised build, its polling: it comes unasked while batches are big): every acquire and
/// release is written, in order, and nothing is lost at a batch's edge.
#[test]
fn a_fast_hit_loop_is_recorded_whole_and_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    pictures(tmp.path(), 40);
    let trace = tmp.path().join("fast.trace");
    let mut cfg = config(tmp.path(), 1 << 20);
    cfg.stats.trace = trace.clone();
    let cache = Cache::new(cfg.clone()).unwrap();
    const HITS: usize = 150_000;
    let mut rng = Rng(42);
    let mut order = Vec::with_capacity(HITS);
    for _ in 0..HITS {
        let i = rng.below(40);
        drop(cache.bitmap(&format!("p{i}.png")).unwrap());
        order.push(i);
    }
    let recorded = cache.stats();
    cache.stop_trace().unwrap();
    assert_eq!(
        (recorded.cpu.hits + recorded.cpu.misses) as usize,
        HITS,
        "{:?}",
        recorded.cpu
    );
    // Each acquire is `bitmap ID pN.png` and is released on the next line.
    let text = std::fs::read_to_string(&trace).unwrap();
    let ops: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(ops.len(), 2 * HITS, "one acquire and one release per hit");
    for (k, pair) in ops.chunks(2).enumerate() {
        let want = format!("p{}.png", order[k]);
        let (acquire, release) = (pair[0], pair[1]);
        let mut words = acquire.split(' ');
        assert_eq!(words.next(), Some("bitmap"), "line {}: {acquire}", 2 * k);
        let id = words.next().unwrap();
        assert_eq!(words.next(), Some(want.as_str()), "hit {k}: {acquire}");
        assert_eq!(release, format!("release {id}"), "hit {k}");
    }
    cfg.stats.trace = Default::default();
    let (cpu, _) = replay(cfg, &trace, None);
    assert_eq!(cpu, recorded.cpu);
}

/// An href no trace line can carry (`#` starts a comment) is written as a comment, and so is
/// nothing of its release, whether the handle was dropped at once or held.
#[test]
fn an_href_a_trace_cannot_carry_is_a_comment_and_its_release_is_not_written() {
    let tmp = tempfile::tempdir().unwrap();
    pictures(tmp.path(), 1);
    std::fs::copy(tmp.path().join("p0.png"), tmp.path().join("a#b.png")).unwrap();
    let trace = tmp.path().join("hash.trace");
    let mut cfg = config(tmp.path(), 1 << 20);
    cfg.stats.trace = trace.clone();
    let cache = Cache::new(cfg).unwrap();
    for _ in 0..3 {
        drop(cache.bitmap("a#b.png").unwrap());
        drop(cache.bitmap("p0.png").unwrap());
    }
    let held = cache.bitmap("a#b.png").unwrap();
    drop(cache.bitmap("p0.png").unwrap());
    drop(held);
    cache.stop_trace().unwrap();
    let text = std::fs::read_to_string(&trace).unwrap();
    let ops: Vec<&str> = text.lines().skip(1).collect();
    let comment = "# an acquire whose href a trace line cannot carry";
    assert_eq!(ops.len(), 12, "{text}");
    for three in ops.chunks(3) {
        assert_eq!(three[0], comment, "{text}");
        let id = three[1]
            .strip_prefix("bitmap ")
            .and_then(|l| l.strip_suffix(" p0.png"))
            .unwrap_or_else(|| panic!("{text}"));
        assert_eq!(three[2], format!("release {id}"), "{text}");
    }
}

#[test]
fn a_recorded_workload_with_textures_replays_to_the_same_stats() {
    let Some(gpu) = common::gpu() else { return };
    let tmp = tempfile::tempdir().unwrap();
    pictures(tmp.path(), 16);
    let trace = tmp.path().join("app.trace");
    let mut cfg = config(tmp.path(), 8_000);
    cfg.stats.trace = trace.clone();
    let cache = Cache::new(cfg.clone()).unwrap();
    cache.bind_gpu(gpu.clone());
    let (mut rng, mut held, mut tex) = (Rng(7), Vec::new(), Vec::new());
    for _ in 0..1_500 {
        step(&cache, &mut rng, &mut held, 16, &mut tex, true);
        if held.len() > 10 {
            held.truncate(5);
        }
        if tex.len() > 6 {
            tex.truncate(3);
        }
    }
    let recorded = cache.stats();
    drop(cache);
    assert!(recorded.gpu.evictions > 10, "{:?}", recorded.gpu);
    let text = std::fs::read_to_string(&trace).unwrap();
    assert!(text.contains("\ntexture t") && text.contains("release t"));
    cfg.stats.trace = Default::default();
    let (cpu, g) = replay(cfg, &trace, Some(gpu));
    assert_eq!(cpu, recorded.cpu);
    assert_eq!(g, recorded.gpu);
}

/// A hit dropped at once is logged as one packed event; a texture made while a bitmap is held
/// is still written between that bitmap's acquire and its release, and a plain hit and drop
/// still writes both lines.
#[test]
fn a_texture_between_an_acquire_and_its_release_is_written_between_them() {
    let Some(gpu) = common::gpu() else { return };
    let tmp = tempfile::tempdir().unwrap();
    pictures(tmp.path(), 2);
    let trace = tmp.path().join("app.trace");
    let mut cfg = config(tmp.path(), 1 << 20);
    cfg.stats.trace = trace.clone();
    let cache = Cache::new(cfg).unwrap();
    cache.bind_gpu(gpu);
    drop(cache.bitmap("p0.png").unwrap());
    let held = cache.bitmap("p0.png").unwrap();
    let tex = cache.texture("p1.png").unwrap();
    drop(held);
    drop(tex);
    drop(cache.bitmap("p1.png").unwrap());
    drop(cache);
    let text = std::fs::read_to_string(&trace).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    let words = |l: &str| l.split_whitespace().map(String::from).collect::<Vec<_>>();
    let ops: Vec<Vec<String>> = lines.iter().map(|l| words(l)).collect();
    let names: Vec<&str> = ops.iter().map(|o| o[0].as_str()).collect();
    assert_eq!(
        names,
        ["bitmap", "release", "bitmap", "texture", "release", "release", "bitmap", "release"],
        "{text}"
    );
    // Each release names the handle acquired just before it, except the held bitmap's, which
    // comes after the texture's acquire and names that bitmap.
    assert_eq!(ops[1][1], ops[0][1]);
    assert_eq!(ops[4][1], ops[2][1], "{text}");
    assert_eq!(ops[5][1], ops[3][1], "{text}");
    assert_eq!(ops[7][1], ops[6][1]);
}

#[test]
fn a_recorded_multi_threaded_workload_replays_to_the_same_stats() {
    let tmp = tempfile::tempdir().unwrap();
    pictures(tmp.path(), 30);
    let trace = tmp.path().join("mt.trace");
    let mut cfg = config(tmp.path(), 9_000);
    cfg.stats.trace = trace.clone();
    let cache = Cache::new(cfg.clone()).unwrap();
    let barrier = std::sync::Barrier::new(4);
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (cache, barrier) = (&cache, &barrier);
            s.spawn(move || {
                let mut rng = Rng(t * 7919 + 1);
                let mut held: Vec<texcache::BitmapHandle> = Vec::new();
                barrier.wait();
                for _ in 0..1_500 {
                    match rng.below(10) {
                        0..=4 => {
                            held.push(cache.bitmap(&format!("p{}.png", rng.below(30))).unwrap())
                        }
                        5 if !held.is_empty() => held.push(held[0].clone()),
                        9 => {
                            cache.trim(TierKind::Cpu, 4_000);
                        }
                        _ if !held.is_empty() => {
                            let i = rng.below(held.len() as u64) as usize;
                            held.swap_remove(i);
                        }
                        _ => {}
                    }
                    if held.len() > 4 {
                        held.truncate(1);
                    }
                }
            });
        }
    });
    let recorded = cache.stats().cpu;
    cache.stop_trace().unwrap();
    eprintln!("recorded: {recorded:?}");
    assert!(
        recorded.evictions > 100 && recorded.misses > 100,
        "{recorded:?}"
    );
    cfg.stats.trace = Default::default();
    let (cpu, _) = replay(cfg, &trace, None);
    // A caller that waited on another's load is `coalesced`; a sequential replay makes it a
    // hit. Everything else is exact.
    assert_eq!(cpu.hits + cpu.coalesced, recorded.hits + recorded.coalesced);
    let same = |s: TierStats| TierStats {
        hits: 0,
        coalesced: 0,
        ..s
    };
    assert_eq!(same(cpu), same(recorded));
}

#[test]
fn clones_share_one_id_and_release_once() {
    let tmp = tempfile::tempdir().unwrap();
    pictures(tmp.path(), 2);
    let cache = Cache::new(config(tmp.path(), 1 << 20)).unwrap();
    let trace = tmp.path().join("t.trace");
    let early = cache.bitmap("p1.png").unwrap(); // before recording: not in the trace
    cache.record_trace(&trace).unwrap();
    let a = cache.bitmap("p0.png").unwrap();
    let (b, c) = (a.clone(), a.clone());
    drop(a);
    drop(b);
    let hit = cache.bitmap("p1.png").unwrap(); // resident before recording: still named
    drop(c); // the last of b1's clones
    drop((hit, early));
    cache.set_budget(TierKind::Cpu, 5000);
    cache.flush_trace().unwrap();
    let text = std::fs::read_to_string(&trace).unwrap();
    let ops: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        ops,
        [
            // Ids are the acquire's number in its tier's event stream: 1 names the
            // resident p1.png, 2 the insertion of p0.png.
            "bitmap b3 p0.png",
            "bitmap b8 p1.png",
            "release b3",
            "release b8",
            "budget cpu 5000",
        ]
    );
}

#[test]
fn a_full_disk_stops_the_recording_with_a_typed_error_and_the_cache_goes_on() {
    let dev_full = Path::new("/dev/full");
    if !dev_full.exists() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    pictures(tmp.path(), 3);
    let mut cfg = config(tmp.path(), 1 << 20);
    cfg.stats.trace = dev_full.into();
    let cache = Cache::new(cfg).unwrap();
    for i in 0..3 {
        drop(cache.bitmap(&format!("p{i}.png")).unwrap());
    }
    let err = cache.flush_trace().unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Trace { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("/dev/full") && msg.contains("cannot record"),
        "{msg}"
    );
    // The cache is unaffected.
    assert!(cache.bitmap("p0.png").is_ok());
    assert_eq!(cache.stats().cpu.hits, 1);
}

#[test]
fn an_unwritable_trace_path_fails_cache_creation_naming_it() {
    let mut cfg = Config::default();
    cfg.stats.trace = "/nonexistent-dir/app.trace".into();
    let err = Cache::new(cfg).err().expect("must fail");
    assert!(
        err.to_string().contains("/nonexistent-dir/app.trace"),
        "{err}"
    );
}
