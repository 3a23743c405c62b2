//! `texcache tune`: replays one trace at each budget and reports what each would cost and
//! save, so that budgets can be chosen from data (§8).
//!
//! Each budget gets its own real cache (real files, real decoding, the GPU for `texture`
//! lines); the replays run in parallel, one per core. `--cpu-budgets` sweeps the CPU tier with
//! the GPU budget of the config; `--gpu-budgets` sweeps the GPU tier with the config's CPU
//! budget.

use crate::plot::TunePoint;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use texcache::trace::{Op, Replayer, Trace};
use texcache::{ByteSize, Cache, Config, Gpu, Result, TierKind};

pub fn run(
    trace: &Path,
    config: Option<&Path>,
    cpu_budgets: &[ByteSize],
    gpu_budgets: &[ByteSize],
    json: bool,
    plot: Option<&Path>,
) -> Result<()> {
    let mut base = super::load_config(config)?;
    // Every replay is its own cache: no socket, no recording, no sampler thread.
    base.stats = Default::default();
    base.stats.history_interval_ms = 0;
    let trace = super::load_trace(trace)?;
    let gpu = if trace
        .ops
        .iter()
        .any(|(_, op)| matches!(op, Op::Texture { .. }))
    {
        Some(Arc::new(Gpu::open(base.gpu.backend)?))
    } else {
        None
    };
    let jobs: Vec<(TierKind, u64)> = cpu_budgets
        .iter()
        .map(|b| (TierKind::Cpu, b.0))
        .chain(gpu_budgets.iter().map(|b| (TierKind::Gpu, b.0)))
        .collect();
    let points = sweep(&trace, &base, gpu.as_ref(), &jobs)?;
    if json {
        println!("{}", serde_json::to_string(&points).expect("serialise"));
    } else {
        print!("{}", table(&points));
    }
    if let Some(plot) = plot {
        let title = format!("texcache tune: {}", trace.file.display());
        crate::plot::miss_ratio_svg(plot, &points, &title)?;
        eprintln!("miss-ratio curve: {}", plot.display());
    }
    Ok(())
}

/// Replays `trace` once per job, in parallel; the points in job order.
fn sweep(
    trace: &Trace,
    base: &Config,
    gpu: Option<&Arc<Gpu>>,
    jobs: &[(TierKind, u64)],
) -> Result<Vec<TunePoint>> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(jobs.len().max(1));
    let next = AtomicUsize::new(0);
    let bar = super::progress(jobs.len() as u64, "tune");
    let results: Vec<(usize, Result<TunePoint>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&(tier, budget)) = jobs.get(i) else {
                            return out;
                        };
                        out.push((i, one(trace, base, gpu, tier, budget)));
                        bar.inc(1);
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a tune worker panicked"))
            .collect()
    });
    bar.finish_and_clear();
    let mut points: Vec<Option<TunePoint>> = vec![None; jobs.len()];
    for (i, r) in results {
        points[i] = Some(r?);
    }
    Ok(points
        .into_iter()
        .map(|p| p.expect("every job ran"))
        .collect())
}

/// One replay at one budget.
fn one(
    trace: &Trace,
    base: &Config,
    gpu: Option<&Arc<Gpu>>,
    tier: TierKind,
    budget: u64,
) -> Result<TunePoint> {
    let mut cfg = base.clone();
    match tier {
        TierKind::Cpu => cfg.cpu.budget.0 = budget,
        TierKind::Gpu => cfg.gpu.budget.0 = budget,
    }
    let cache = Cache::new(cfg)?;
    if let Some(g) = gpu {
        cache.bind_gpu(g.clone());
    }
    let mut replayer = Replayer::new(&cache);
    replayer.run(trace, |_, _| {})?;
    let stats = cache.stats();
    let t = match tier {
        TierKind::Cpu => stats.cpu,
        TierKind::Gpu => stats.gpu,
    };
    Ok(TunePoint {
        tier: tier.name(),
        budget,
        hit_ratio: t.hit_ratio(),
        misses: t.misses,
        evictions: t.evictions,
        peak_used: t.peak_used,
    })
}

/// The readable table.
fn table(points: &[TunePoint]) -> String {
    let mut s = format!(
        "{:<5} {:>12} {:>10} {:>10} {:>10} {:>12}\n",
        "tier", "budget", "hit ratio", "misses", "evictions", "peak used"
    );
    for p in points {
        s += &format!(
            "{:<5} {:>12} {:>9.1}% {:>10} {:>10} {:>12}\n",
            p.tier,
            ByteSize(p.budget).to_string(),
            p.hit_ratio * 100.0,
            p.misses,
            p.evictions,
            ByteSize(p.peak_used).to_string()
        );
    }
    s
}
