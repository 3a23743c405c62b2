//! `texcache replay`: a trace through a real cache.

use crate::error::Result;
use std::path::{Path, PathBuf};
use std::time::Duration;
use texcache::trace::{Op, Replayer};
use texcache::Cache;

pub fn run(
    trace_path: &Path,
    config: Option<&Path>,
    json: bool,
    entries: bool,
    serve: Option<&Path>,
    hold: f64,
    record: Option<&Path>,
) -> Result<()> {
    let mut cfg = super::load_config(config)?;
    // A replay records only when asked with --record (never over the trace it reads: checked
    // with every other input in `main`), whatever the config says: the config of the
    // application that recorded the trace names that very file in stats.trace.
    cfg.stats.trace = PathBuf::new();
    if let Some(out) = record {
        cfg.stats.trace = out.into();
    }
    let trace = super::load_trace(trace_path)?;
    let mediadir = cfg.mediadir.clone();
    let cache = Cache::new(cfg)?;
    // The device is opened here (with the driver's noise filtered), not at the first texture
    // line; a trace with textures and no adapter fails those lines, counted and reported.
    if trace
        .ops
        .iter()
        .any(|(_, op)| matches!(op, Op::Texture { .. } | Op::TextureFit { .. }))
    {
        let _ = crate::driver_noise::quietly(|| cache.gpu());
    }
    let mut replayer = Replayer::new(&cache);
    let bar = super::progress(trace.ops.len() as u64, "replay");
    replayer.run(&trace, |done, _| {
        if done % 256 == 0 {
            bar.set_position(done as u64);
        }
    })?;
    bar.finish_and_clear();
    super::report_failures(trace_path, replayer.failures(), &mediadir);
    // The end state, for the memory history (`texcache stats --plot` against --serve).
    cache.sample_history();
    let stats = if entries {
        cache.stats_with_entries()
    } else {
        cache.stats()
    };
    // Bind before printing, so a reader of the output can connect at once.
    if let Some(path) = serve {
        cache.serve(path)?;
    }
    super::print_stats(&stats, json);
    if let Some(path) = serve {
        use std::io::Write;
        eprintln!("replay: serving {} for {hold} s", path.display());
        let _ = std::io::stdout().flush();
        // `hold` is checked to be finite and not negative; past what a Duration holds, it is
        // for ever.
        let hold = Duration::try_from_secs_f64(hold).unwrap_or(Duration::MAX);
        std::thread::sleep(hold);
    }
    Ok(())
}
