//! `texcache replay`: a trace through a real cache.

use std::path::Path;
use texcache::trace::{Replayer, Trace};
use texcache::{Cache, Result};

pub fn run(
    trace: &Path,
    config: Option<&Path>,
    json: bool,
    entries: bool,
    serve: Option<&Path>,
    hold: f64,
) -> Result<()> {
    let cfg = super::load_config(config)?;
    let trace = Trace::load(trace)?;
    let cache = Cache::new(cfg)?;
    let mut replayer = Replayer::new(&cache);
    let bar = super::progress(trace.ops.len() as u64, "replay");
    replayer.run(&trace, |done, _| {
        if done % 256 == 0 {
            bar.set_position(done as u64);
        }
    })?;
    bar.finish_and_clear();
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
        std::thread::sleep(std::time::Duration::from_secs_f64(hold.max(0.0)));
    }
    Ok(())
}
