//! An application with the control socket on: it runs a small slideshow workload over
//! generated pictures for a while, so that `texcache stats` can be tried against it:
//!
//! ```text
//! cargo run --example embed_stats -- /tmp/app.sock 60 &
//! texcache stats --socket /tmp/app.sock            # the table
//! texcache stats --socket /tmp/app.sock --watch 1  # live
//! texcache stats --socket /tmp/app.sock --plot memory.svg
//! ```

use std::path::PathBuf;
use std::time::{Duration, Instant};
use texcache::{Cache, Config};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let socket = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("texcache-embed.sock"));
    let seconds: f64 = args.next().map_or(Ok(60.0), |s| s.parse())?;
    // Generated pictures, beside the socket.
    let media = socket.with_extension("media");
    let names = texcache::testing::samples::write_pictures(&media, 12, 320, 240, true)?;

    // What an application puts in its config file: budgets, and the socket.
    let mut cfg = Config::default();
    cfg.mediadir = media.clone();
    cfg.cpu.budget = "1 MiB".parse()?;
    cfg.stats.socket = socket.clone();
    cfg.stats.history_interval_ms = 100;
    let cache = Cache::new(cfg)?;
    println!(
        "serving {} for {seconds} s (pid {})",
        socket.display(),
        std::process::id()
    );

    // The workload: show a picture, keep the last two on screen, prefetch the next.
    let start = Instant::now();
    let mut on_screen = std::collections::VecDeque::new();
    let mut i = 0;
    while start.elapsed().as_secs_f64() < seconds {
        cache.prefetch([names[(i + 1) % names.len()].as_str()], None)?;
        on_screen.push_back(cache.bitmap(&names[i % names.len()])?);
        if on_screen.len() > 2 {
            on_screen.pop_front();
        }
        i += 1;
        std::thread::sleep(Duration::from_millis(20)); // a frame
    }
    drop(on_screen);
    println!("{}", cache.stats());
    drop(cache); // removes the socket
    let _ = std::fs::remove_dir_all(media);
    Ok(())
}
