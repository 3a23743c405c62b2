//! `texcache demo`: the main job on built-in defaults.
//!
//! Generates sample pictures, then runs a slideshow over them through a cache whose CPU budget
//! holds only a third of them, prefetching the next pictures ahead, and prints the statistics.

use std::path::PathBuf;
use texcache::{samples, Cache, Config, Result};

pub fn run(dir: Option<PathBuf>, json: bool) -> Result<()> {
    let dir = dir.unwrap_or_else(|| std::env::temp_dir().join("texcache-demo"));
    let media = dir.join("media");
    let (count, w, h) = (24u32, 640u32, 480u32);
    let names = samples::write_pictures(&media, count, w, h, true)?;

    let mut cfg = Config::default();
    cfg.mediadir = media.clone();
    cfg.cpu.budget.0 = (count as u64 / 3) * (w * h * 4) as u64;
    let cache = Cache::new(cfg)?;
    if !json {
        println!(
            "texcache demo: {count} generated {w}x{h} pictures in {}",
            media.display()
        );
        println!(
            "CPU budget {} (a third of them decoded)",
            texcache::ByteSize(cache.stats().cpu.budget)
        );
    }

    // A slideshow, three times round: show one picture, prefetch the next two.
    for round in 0..3 {
        for (i, name) in names.iter().enumerate() {
            cache.prefetch([&names[(i + 1) % names.len()], &names[(i + 2) % names.len()]]);
            let shown = cache.bitmap(name)?;
            debug_assert_eq!(shown.width(), w);
            if round == 2 && i == names.len() - 1 {
                // Keep the last slide on screen while we look at the memory.
                cache.wait_prefetch();
                let stats = cache.stats();
                super::print_stats(&stats, json);
                return Ok(());
            }
        }
    }
    Ok(())
}
