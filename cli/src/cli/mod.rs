//! The `texcache` subcommands.

pub mod demo;
pub mod probe;
pub mod replay;
pub mod stats;
pub mod tune;

use std::path::Path;
use texcache::{Config, Result};

/// Loads `--config FILE`, else `TEXCACHE_CONFIG`, else the defaults.
pub fn load_config(file: Option<&Path>) -> Result<Config> {
    match file {
        Some(f) => Config::load(f),
        None => Config::from_env_or_default(),
    }
}

/// Reads a trace and says on stderr what of it was read past (a torn last line).
pub fn load_trace(file: &Path) -> Result<texcache::trace::Trace> {
    let trace = texcache::trace::Trace::load(file)?;
    for (line, warning) in &trace.warnings {
        eprintln!("texcache: warning: {}:{line}: {warning}", file.display());
    }
    Ok(trace)
}

/// `texcache check-config FILE`.
pub fn check_config(file: &Path) -> Result<()> {
    let cfg = Config::load(file)?;
    println!("# {}: valid. Effective settings:", file.display());
    if let Some(p) = cfg.cpu.budget.1 {
        if let Ok(limit) = texcache::pressure::memory_limit(Path::new("/")) {
            println!(
                "# cpu.budget = {p}% of {} ({}) = {} bytes ({})",
                texcache::ByteSize(limit.bytes),
                limit.source,
                cfg.cpu.budget.0,
                texcache::ByteSize(cfg.cpu.budget.0)
            );
        }
    }
    print!("{}", cfg.to_toml());
    Ok(())
}

/// Prints stats as JSON or as the table.
pub fn print_stats(stats: &texcache::Stats, json: bool) {
    if json {
        println!("{}", stats.to_json());
    } else {
        println!("{stats}");
    }
}

/// A progress bar on stderr when it is a terminal; hidden otherwise (§8: long runs show
/// progress on a terminal, and only there).
pub fn progress(len: u64, what: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    let style = indicatif::ProgressStyle::with_template(
        "{prefix} [{bar:40}] {pos}/{len} {msg} ({elapsed})",
    )
    .expect("valid template")
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(what.to_string());
    bar
}

/// Writes the memory graph of `samples` to `path` and says where it is (on stderr when the
/// statistics go to stdout as JSON).
pub fn write_memory_plot(
    path: &Path,
    samples: &[texcache::history::Sample],
    title: &str,
) -> Result<()> {
    crate::plot::memory_svg(path, samples, title)?;
    let shown = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    eprintln!(
        "memory graph ({} samples): {}",
        samples.len(),
        shown.display()
    );
    Ok(())
}
