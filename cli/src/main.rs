//! `texcache`: the command line. Each command lives in `src/cli/`; the formats it reads and
//! prints are in `docs/reference.md`.

mod cli;
mod driver_noise;
mod error;
mod plot;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// A two-level image and texture cache for media applications: demo, replay, inspect.
#[derive(Parser)]
#[command(name = "texcache", version, about)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the main job on built-in defaults: a photo viewer's workload (a thumbnail grid, a
    /// full-size view, a video) over generated media, then print the statistics and what the
    /// cache saved, and write a memory graph and a contact sheet.
    Demo {
        /// Where to write generated media and the report (default: a folder under the system
        /// temp dir).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Print the statistics as JSON.
        #[arg(long)]
        json: bool,
        /// Where to write the memory-over-time graph.
        #[arg(
            long,
            value_name = "FILE.svg",
            default_value = "texcache-demo-memory.svg"
        )]
        plot: PathBuf,
        /// Where to write the contact sheet of what was shown (thumbnails, a full-size
        /// picture and a video frame, read back from the GPU).
        #[arg(
            long,
            value_name = "FILE.png",
            default_value = "texcache-demo-shown.png"
        )]
        sheet: PathBuf,
    },
    /// Play a trace (format: docs/reference.md) through a real cache and print the final
    /// statistics.
    Replay {
        /// The trace file.
        #[arg(long)]
        trace: PathBuf,
        /// Config file (default: $TEXCACHE_CONFIG, else built-in defaults).
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        out: Output,
        /// Afterwards, serve the control socket at PATH (so `texcache stats` can be tried).
        #[arg(long, value_name = "PATH")]
        serve: Option<PathBuf>,
        /// With --serve: how long to keep serving, in seconds.
        #[arg(long, value_name = "SECS", default_value_t = 60.0, requires = "serve", value_parser = seconds)]
        hold: f64,
        /// Record this replay as a trace to FILE (never the trace being replayed; a replay
        /// records nothing otherwise, whatever the config's stats.trace says).
        #[arg(long, value_name = "FILE")]
        record: Option<PathBuf>,
    },
    /// Dump the memory statistics of a running application through its control socket.
    Stats {
        /// The socket (default: stats.socket of --config or $TEXCACHE_CONFIG).
        #[arg(long, conflicts_with = "config")]
        socket: Option<PathBuf>,
        /// Config file whose stats.socket to use.
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        out: Output,
        /// Sample every SECS seconds (0.1 or more) until interrupted.
        #[arg(long, value_name = "SECS", value_parser = watch_period)]
        watch: Option<f64>,
        /// Draw used vs budget per tier and video over time (the application's recent
        /// history; with --watch, redrawn at every sample).
        #[arg(long, value_name = "FILE.svg")]
        plot: Option<PathBuf>,
    },
    /// For each budget, replay a trace and report hit ratio, evictions and peak bytes.
    #[command(group(clap::ArgGroup::new("budgets").required(true).multiple(true).args(["cpu_budgets", "gpu_budgets"])))]
    Tune {
        /// The trace file.
        #[arg(long)]
        trace: PathBuf,
        /// Config file (default: $TEXCACHE_CONFIG, else built-in defaults).
        #[arg(long)]
        config: Option<PathBuf>,
        /// CPU budgets to try, comma-separated (e.g. `16MiB,64MiB,256MiB`), with the GPU
        /// budget of the config.
        #[arg(long, value_name = "LIST", value_delimiter = ',')]
        cpu_budgets: Vec<texcache::ByteSize>,
        /// GPU budgets to try, with the CPU budget of the config (either list, or both).
        #[arg(long, value_name = "LIST", value_delimiter = ',')]
        gpu_budgets: Vec<texcache::ByteSize>,
        /// Print the table as JSON.
        #[arg(long)]
        json: bool,
        /// Write the miss-ratio curve.
        #[arg(long, value_name = "FILE.svg")]
        plot: Option<PathBuf>,
    },
    /// What texcache makes of each file, without caching it: a picture's format, size and
    /// decoded bytes, or a video's container, codec, size, frame rate, duration, frame count,
    /// rotation and frame bytes; or the error a cache would give.
    Probe {
        /// The files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Config file whose loader.max_pixels applies (default: $TEXCACHE_CONFIG, else
        /// built-in defaults).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print one JSON array (an object per file) instead of a line per file.
        #[arg(long)]
        json: bool,
    },
    /// Validate a config file and print the effective settings.
    CheckConfig {
        /// The config file.
        file: PathBuf,
    },
}

/// How statistics are printed.
#[derive(clap::Args)]
struct Output {
    /// Print the statistics as JSON (docs/reference.md) instead of the table.
    #[arg(long)]
    json: bool,
    /// Include one object per entry.
    #[arg(long)]
    entries: bool,
}

/// A number of seconds: finite and not negative.
fn seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        Ok(_) => Err("must be a finite number of seconds, 0 or more".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// A `--watch` period: at least 0.1 s, so that a watcher cannot poll an application's socket
/// in a busy loop.
fn watch_period(s: &str) -> Result<f64, String> {
    let v = seconds(s)?;
    if v < 0.1 {
        return Err(format!(
            "{v} s is too short: sample at most 10 times a second (0.1 or more)"
        ));
    }
    Ok(v)
}

impl Command {
    /// Refuses outputs that name an input (or another output): see [`cli::refuse_overwrite`].
    fn refuse_overwrite(&self) -> Result<(), String> {
        use std::path::Path;
        // The config in force: --config, else the file TEXCACHE_CONFIG names.
        let env_config = texcache::Config::env_file();
        let config = |c: &Option<PathBuf>| c.clone().or_else(|| env_config.clone());
        let named = |pairs: &[(&'static str, Option<&PathBuf>)]| -> Vec<(&'static str, PathBuf)> {
            pairs
                .iter()
                .filter_map(|(o, p)| Some((*o, (*p)?.clone())))
                .collect()
        };
        let (outputs, inputs) = match self {
            Command::Demo { plot, sheet, .. } => (
                named(&[("--plot", Some(plot)), ("--sheet", Some(sheet))]),
                vec![],
            ),
            Command::Replay {
                trace,
                config: c,
                record,
                ..
            } => (
                named(&[("--record", record.as_ref())]),
                named(&[("--trace", Some(trace)), ("--config", config(c).as_ref())]),
            ),
            Command::Stats {
                config: c, plot, ..
            } => (
                named(&[("--plot", plot.as_ref())]),
                named(&[("--config", config(c).as_ref())]),
            ),
            Command::Tune {
                trace,
                config: c,
                plot,
                ..
            } => (
                named(&[("--plot", plot.as_ref())]),
                named(&[("--trace", Some(trace)), ("--config", config(c).as_ref())]),
            ),
            Command::Probe { .. } | Command::CheckConfig { .. } => return Ok(()),
        };
        fn view<'a>(v: &'a [(&'a str, PathBuf)]) -> Vec<(&'a str, &'a Path)> {
            v.iter().map(|(o, p)| (*o, p.as_path())).collect()
        }
        cli::refuse_overwrite(&view(&outputs), &view(&inputs))
    }
}

fn main() -> ExitCode {
    // Output into a closed pipe (`texcache stats | head`) ends the process quietly, as Unix
    // tools do, instead of panicking in `println!`.
    // SAFETY: called first in main, before any thread exists; SIG_DFL is a valid disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let args = Args::parse();
    if let Err(message) = args.command.refuse_overwrite() {
        eprintln!("texcache: {message}");
        return ExitCode::FAILURE;
    }
    let result = match args.command {
        Command::Demo {
            dir,
            json,
            plot,
            sheet,
        } => cli::demo::run(dir, json, &plot, &sheet),
        Command::Replay {
            trace,
            config,
            out,
            serve,
            hold,
            record,
        } => cli::replay::run(
            &trace,
            config.as_deref(),
            out.json,
            out.entries,
            serve.as_deref(),
            hold,
            record.as_deref(),
        ),
        Command::Stats {
            socket,
            config,
            out,
            watch,
            plot,
        } => cli::stats::run(
            socket,
            config.as_deref(),
            out.json,
            out.entries,
            watch,
            plot.as_deref(),
        ),
        Command::Tune {
            trace,
            config,
            cpu_budgets,
            gpu_budgets,
            json,
            plot,
        } => cli::tune::run(
            &trace,
            config.as_deref(),
            &cpu_budgets,
            &gpu_budgets,
            json,
            plot.as_deref(),
        ),
        Command::CheckConfig { file } => cli::check_config(&file),
        Command::Probe {
            files,
            config,
            json,
        } => cli::probe::run(&files, config.as_deref(), json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("texcache: {e}");
            ExitCode::FAILURE
        }
    }
}
