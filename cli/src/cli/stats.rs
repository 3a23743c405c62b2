//! `texcache stats`: the memory statistics of a running application, through its control
//! socket (§8–9).

use crate::error::Result;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;
use texcache::observe::history::Sample;
use texcache::{Error, ErrorKind, Stats};

/// Where the socket is: `--socket`, else `stats.socket` of `--config` (or `TEXCACHE_CONFIG`).
fn socket_path(socket: Option<PathBuf>, config: Option<&Path>) -> texcache::Result<PathBuf> {
    if let Some(s) = socket {
        return Ok(s);
    }
    let cfg = super::load_config(config)?;
    if cfg.stats.socket.as_os_str().is_empty() {
        return Err(Error::from(ErrorKind::Socket {
            path: PathBuf::new(),
            detail: "no socket given. The application serves its statistics only when its \
                     config sets `stats.socket` ([stats] socket = \"/run/user/.../app.sock\"); \
                     then pass --socket PATH, or --config FILE (its config), or set \
                     TEXCACHE_CONFIG"
                .into(),
        }));
    }
    Ok(cfg.stats.socket)
}

/// One snapshot over the socket: `stats`, `stats entries` or `stats history`.
pub fn fetch(path: &Path, request: &str) -> texcache::Result<(Stats, String)> {
    let line = texcache::observe::control::request(path, request)?;
    let bad = |detail: String| {
        Error::from(ErrorKind::Socket {
            path: path.into(),
            detail,
        })
    };
    let value: serde_json::Value =
        serde_json::from_str(&line).map_err(|e| bad(format!("answer is not JSON: {e}")))?;
    if let Some(e) = value.get("error") {
        return Err(bad(format!("the server says: {e}")));
    }
    let stats =
        serde_json::from_value(value).map_err(|e| bad(format!("answer is not stats: {e}")))?;
    Ok((stats, line))
}

pub fn run(
    socket: Option<PathBuf>,
    config: Option<&Path>,
    json: bool,
    entries: bool,
    watch: Option<f64>,
    plot: Option<&Path>,
) -> Result<()> {
    let path = socket_path(socket, config)?;
    let request = if entries { "stats entries" } else { "stats" };
    let started = std::time::Instant::now();
    // Samples of our own, for an application that keeps no history.
    let mut own: Vec<Sample> = Vec::new();
    // The application's own history, or (if it keeps none) our samples so far.
    let mut samples = || -> Result<Vec<Sample>> {
        let (stats, _) = fetch(&path, "stats history")?;
        let history = stats.history.clone().unwrap_or_default();
        if !history.is_empty() {
            return Ok(history);
        }
        own.push(stats.sample(started.elapsed().as_millis() as u64));
        Ok(own.clone())
    };
    let title = format!("texcache: {}", path.display());
    let Some(secs) = watch else {
        let (stats, line) = fetch(&path, request)?;
        if json {
            println!("{line}");
        } else {
            println!("{stats}");
        }
        if let Some(plot) = plot {
            super::write_memory_plot(plot, &samples()?, &title, &[])?;
        }
        return Ok(());
    };
    // --watch: a live view on a terminal (redrawn in place), plain lines when piped.
    let tty = std::io::stdout().is_terminal();
    let period = Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX);
    loop {
        let (stats, line) = fetch(&path, request)?;
        if json {
            println!("{line}");
        } else if tty {
            print!("\x1b[H\x1b[2J{stats}\n(every {secs} s; Ctrl-C to stop)\n");
        } else {
            println!("{stats}\n");
        }
        if let Some(plot) = plot {
            crate::plot::memory_svg(plot, &samples()?, &title, &[])?;
        }
        std::thread::sleep(period);
    }
}
