//! `texcache replay`: a trace through a real cache.

use std::io::IsTerminal;
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
    let tty = std::io::stderr().is_terminal();
    replayer.run(&trace, |done, total| {
        if tty && (done % 256 == 0 || done == total) {
            eprint!("\rreplay: {done}/{total} operations");
            if done == total {
                eprintln!();
            }
        }
    })?;
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
