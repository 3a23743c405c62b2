//! `texcache stats`: the memory statistics of a running application, through its control
//! socket (SPEC §8–9).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;
use texcache::{Error, Result, Stats};

/// Where the socket is: `--socket`, else `stats.socket` of `--config` (or `TEXCACHE_CONFIG`).
fn socket_path(socket: Option<PathBuf>, config: Option<&Path>) -> Result<PathBuf> {
    if let Some(s) = socket {
        return Ok(s);
    }
    let cfg = super::load_config(config)?;
    if cfg.stats.socket.as_os_str().is_empty() {
        return Err(Error::Socket {
            path: PathBuf::new(),
            detail: "no socket given: pass --socket PATH, or --config FILE with stats.socket set"
                .into(),
        });
    }
    Ok(cfg.stats.socket)
}

/// One snapshot over the socket.
pub fn fetch(path: &Path, entries: bool) -> Result<(Stats, String)> {
    let line = texcache::control::request(path, if entries { "stats entries" } else { "stats" })?;
    let bad = |detail: String| Error::Socket {
        path: path.into(),
        detail,
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
) -> Result<()> {
    let path = socket_path(socket, config)?;
    let Some(secs) = watch else {
        let (stats, line) = fetch(&path, entries)?;
        if json {
            println!("{line}");
        } else {
            println!("{stats}");
        }
        return Ok(());
    };
    // --watch: a live view on a terminal (redrawn in place), plain lines when piped.
    let tty = std::io::stdout().is_terminal();
    let period = Duration::from_secs_f64(secs.max(0.05));
    loop {
        let (stats, line) = fetch(&path, entries)?;
        if json {
            println!("{line}");
        } else if tty {
            print!("\x1b[H\x1b[2J{stats}\n(every {secs} s; Ctrl-C to stop)\n");
        } else {
            println!("{stats}\n");
        }
        std::thread::sleep(period);
    }
}
