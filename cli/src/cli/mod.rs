//! The `texcache` subcommands.

pub mod demo;
pub mod probe;
pub mod replay;
pub mod stats;
pub mod tune;

use crate::error::Result;
use std::path::Path;
use texcache::Config;

/// Loads `--config FILE`, else `TEXCACHE_CONFIG`, else the defaults; what in the file is
/// probably a mistake is said on stderr ([`Config::load_checked`]).
pub fn load_config(file: Option<&Path>) -> texcache::Result<Config> {
    let file = file.map(Path::to_path_buf).or_else(Config::env_file);
    let Some(file) = file else {
        return Ok(Config::default());
    };
    let (cfg, warnings) = Config::load_checked(&file)?;
    for w in warnings {
        eprintln!("texcache: warning: {}: {w}", file.display());
    }
    Ok(cfg)
}

/// Reads a trace and says on stderr what of it was read past (a torn last line).
pub fn load_trace(file: &Path) -> Result<texcache::trace::Trace> {
    let trace = texcache::trace::Trace::load(file)?;
    for (line, warning) in &trace.warnings {
        eprintln!("texcache: warning: {}:{line}: {warning}", file.display());
    }
    Ok(trace)
}

/// Says on stderr why loads of a replay failed: each distinct failure (its first line, the
/// operation and the error, which names the href and the cause), the first `MAX_SHOWN` of
/// them and then how many more; and when every one is a missing file, where hrefs were looked
/// for.
pub fn report_failures(trace: &Path, failures: &[texcache::trace::ReplayFailure], mediadir: &Path) {
    const MAX_SHOWN: usize = 10;
    if failures.is_empty() {
        return;
    }
    let total: u64 = failures.iter().map(|f| f.count).sum();
    eprintln!(
        "texcache: {total} load(s) of {} failed ({} distinct):",
        trace.display(),
        failures.len()
    );
    for f in failures.iter().take(MAX_SHOWN) {
        let times = if f.count > 1 {
            format!(" ({} times)", f.count)
        } else {
            String::new()
        };
        eprintln!("  line {}: {}: {}{times}", f.line, f.op, f.error);
    }
    if failures.len() > MAX_SHOWN {
        let rest = &failures[MAX_SHOWN..];
        eprintln!(
            "  ... and {} more distinct failure(s), {} load(s)",
            rest.len(),
            rest.iter().map(|f| f.count).sum::<u64>()
        );
    }
    if failures.iter().all(|f| f.not_found) {
        eprintln!(
            "  every failure is a missing file: relative hrefs are looked for in mediadir = {}; \
             give --config FILE with the mediadir the trace was recorded under",
            shown_path(mediadir).display()
        );
    }
}

/// `path` made absolute and without `.` components, for showing.
pub fn shown_path(path: &Path) -> std::path::PathBuf {
    std::path::absolute(path)
        .map(|p| p.components().collect())
        .unwrap_or_else(|_| path.to_path_buf())
}

/// `texcache check-config FILE`: the warnings, then the effective settings with paths
/// resolved and sizes as people write them.
pub fn check_config(file: &Path) -> Result<()> {
    let (mut cfg, warnings) = Config::load_checked(file)?;
    for w in &warnings {
        eprintln!("texcache: warning: {}: {w}", file.display());
    }
    let verdict = match warnings.len() {
        0 => "valid".to_string(),
        1 => "valid, with 1 warning (above)".to_string(),
        n => format!("valid, with {n} warnings (above)"),
    };
    println!("# {}: {verdict}. Effective settings:", file.display());
    if let Some(p) = cfg.cpu.budget.1 {
        if let Ok(limit) = texcache::observe::pressure::memory_limit(Path::new("/")) {
            println!(
                "# cpu.budget = {p}% of {} ({}) = {} bytes ({})",
                texcache::ByteSize(limit.bytes),
                limit.source,
                cfg.cpu.budget.0,
                texcache::ByteSize(cfg.cpu.budget.0)
            );
        }
    }
    cfg.mediadir = shown_path(&cfg.mediadir);
    for p in [&mut cfg.stats.socket, &mut cfg.stats.trace] {
        if !p.as_os_str().is_empty() {
            *p = shown_path(p);
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
    samples: &[texcache::observe::history::Sample],
    title: &str,
    phases: &[crate::plot::Phase],
) -> Result<()> {
    crate::plot::memory_svg(path, samples, title, phases)?;
    let shown = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    eprintln!(
        "memory graph ({} samples): {}",
        samples.len(),
        shown.display()
    );
    Ok(())
}

/// Refuses a command whose output files name one of its input files, or each other, as
/// `OPTION names the file OTHER reads/writes`: the command line never overwrites what it reads
/// (`tune --plot` over the trace, `replay --record` over the config). Files are compared by
/// inode, so links and other spellings of a path are caught; an output that does not exist yet
/// is compared by its absolute path.
pub fn refuse_overwrite(
    outputs: &[(&str, &Path)],
    inputs: &[(&str, &Path)],
) -> std::result::Result<(), String> {
    for (i, (option, out)) in outputs.iter().enumerate() {
        if let Some((what, _)) = inputs.iter().find(|(_, input)| same_file(out, input)) {
            return Err(format!(
                "{option} {} names the file that {what} reads; write to another file",
                out.display()
            ));
        }
        if let Some((other, _)) = outputs[..i].iter().find(|(_, o)| same_file(out, o)) {
            return Err(format!(
                "{option} {} names the file that {other} writes; give each its own file",
                out.display()
            ));
        }
    }
    Ok(())
}

/// Whether `a` and `b` name one file: the same inode (links included), or, where either does
/// not exist yet, the same absolute path once its folder is resolved.
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => (x.dev(), x.ino()) == (y.dev(), y.ino()),
        _ => resolved(a) == resolved(b),
    }
}

/// `p` absolute, its folder's links resolved where the folder exists.
fn resolved(p: &Path) -> std::path::PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    match (abs.parent(), abs.file_name()) {
        (Some(dir), Some(name)) => std::fs::canonicalize(dir)
            .map(|d| d.join(name))
            .unwrap_or(abs),
        _ => abs,
    }
}
