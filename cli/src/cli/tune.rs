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
use texcache::trace::{Op, ReplayFailure, Replayer, Trace};
use texcache::{ByteSize, Cache, Config, Gpu, Result, TierKind};

pub fn run(
    trace: &Path,
    config: Option<&Path>,
    cpu_budgets: &[ByteSize],
    gpu_budgets: &[ByteSize],
    json: bool,
    plot: Option<&Path>,
) -> crate::error::Result<()> {
    let mut base = super::load_config(config)?;
    // Every replay is its own cache: no socket, no recording, no sampler thread.
    base.stats = Default::default();
    base.stats.history_interval_ms = 0;
    let trace_path = trace;
    let trace = super::load_trace(trace)?;
    // A `budget` line sets the budget the sweep is about: say so, once per tier.
    for tier in [TierKind::Cpu, TierKind::Gpu] {
        let swept = match tier {
            TierKind::Cpu => !cpu_budgets.is_empty(),
            TierKind::Gpu => !gpu_budgets.is_empty(),
        };
        let first = trace
            .ops
            .iter()
            .find(|(_, op)| matches!(op, Op::Budget { tier: t, .. } if *t == tier));
        if let (true, Some((line, op))) = (swept, first) {
            eprintln!(
                "texcache: warning: {}:{line}: `{op}` overrides the swept {} budget from that \
                 line on",
                trace_path.display(),
                tier.name()
            );
        }
    }
    let mediadir = base.mediadir.clone();
    let gpu = if trace
        .ops
        .iter()
        .any(|(_, op)| matches!(op, Op::Texture { .. } | Op::TextureFit { .. }))
    {
        let backend = base.gpu.backend;
        Some(Arc::new(crate::driver_noise::quietly(|| {
            Gpu::open(backend)
        })?))
    } else {
        None
    };
    let jobs: Vec<(TierKind, u64)> = cpu_budgets
        .iter()
        .map(|b| (TierKind::Cpu, b.0))
        .chain(gpu_budgets.iter().map(|b| (TierKind::Gpu, b.0)))
        .collect();
    let (points, failures) = sweep(&trace, &base, gpu.as_ref(), &jobs)?;
    // Every replay fails the same loads; those of the first are reported.
    super::report_failures(trace_path, &failures, &mediadir);
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

/// What one replay gives: its point, and the loads that failed.
type Job = (TunePoint, Vec<ReplayFailure>);

/// Replays `trace` once per job, in parallel; the points in job order, and the first job's
/// failed loads.
fn sweep(
    trace: &Trace,
    base: &Config,
    gpu: Option<&Arc<Gpu>>,
    jobs: &[(TierKind, u64)],
) -> Result<(Vec<TunePoint>, Vec<ReplayFailure>)> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(jobs.len().max(1));
    let next = AtomicUsize::new(0);
    let bar = super::progress(jobs.len() as u64, "tune");
    let results: Vec<(usize, Result<Job>)> = std::thread::scope(|s| {
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
    let mut failures = Vec::new();
    for (i, r) in results {
        let (point, failed) = r?;
        points[i] = Some(point);
        if i == 0 {
            failures = failed;
        }
    }
    let points = points
        .into_iter()
        .map(|p| p.expect("every job ran"))
        .collect();
    Ok((points, failures))
}

/// One replay at one budget.
fn one(
    trace: &Trace,
    base: &Config,
    gpu: Option<&Arc<Gpu>>,
    tier: TierKind,
    budget: u64,
) -> Result<Job> {
    let mut cfg = base.clone();
    match tier {
        TierKind::Cpu => cfg.cpu.budget.0 = budget,
        TierKind::Gpu => cfg.gpu.budget.0 = budget,
    }
    let cache = Cache::new(cfg)?;
    if let Some(g) = gpu {
        cache.bind_gpu(g.clone());
    }
    let of_tier = |cache: &Cache| match tier {
        TierKind::Cpu => cache.tier_stats(TierKind::Cpu),
        TierKind::Gpu => cache.tier_stats(TierKind::Gpu),
    };
    let mut replayer = Replayer::new(&cache);
    // The most bytes held by live handles at once: what a tier cannot evict, and so the reason
    // a peak above the budget.
    let mut peak_in_use = 0;
    replayer.run(trace, |_, _| {
        peak_in_use = peak_in_use.max(of_tier(&cache).in_use);
    })?;
    let t = of_tier(&cache);
    let point = TunePoint {
        tier: tier.name(),
        budget,
        hit_ratio: t.hit_ratio(),
        misses: t.misses,
        evictions: t.evictions,
        peak_used: t.peak_used,
        peak_in_use,
    };
    Ok((point, replayer.failures().to_vec()))
}

/// The readable table; a peak above its budget is starred and explained below it.
fn table(points: &[TunePoint]) -> String {
    let mut s = format!(
        "{:<5} {:>12} {:>10} {:>10} {:>10} {:>13} {:>12}\n",
        "tier", "budget", "hit ratio", "misses", "evictions", "peak used", "peak in use"
    );
    let mut over = false;
    for p in points {
        let star = if p.peak_used > p.budget {
            over = true;
            "*"
        } else {
            " "
        };
        s += &format!(
            "{:<5} {:>12} {:>9.1}% {:>10} {:>10} {:>12}{star} {:>12}\n",
            p.tier,
            ByteSize(p.budget).to_string(),
            p.hit_ratio * 100.0,
            p.misses,
            p.evictions,
            ByteSize(p.peak_used).to_string(),
            ByteSize(p.peak_in_use).to_string()
        );
    }
    if over {
        s += "* above the budget: entries in use (held by the trace's live handles) are never \
              evicted,\n  so a tier holds at least its peak in use whatever its budget (§3.4 of docs/reference.md)\n";
    }
    s
}
