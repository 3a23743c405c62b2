//! `texcache`: the command line (SPEC §8). Each command lives in `src/cli/`.

mod cli;

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
    /// Run the main job on built-in defaults: a slideshow workload over generated media, then
    /// print the memory statistics.
    Demo {
        /// Where to write generated media and the report (default: a folder under the system
        /// temp dir).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Print the statistics as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Play a trace (SPEC §7) through a real cache and print the final statistics.
    Replay {
        /// The trace file.
        #[arg(long)]
        trace: PathBuf,
        /// Config file (default: $TEXCACHE_CONFIG, else built-in defaults).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print the SPEC §6 JSON object instead of the table.
        #[arg(long)]
        json: bool,
        /// Include one object per entry.
        #[arg(long)]
        entries: bool,
    },
    /// Validate a config file and print the effective settings.
    CheckConfig {
        /// The config file.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Command::Demo { dir, json } => cli::demo::run(dir, json),
        Command::Replay {
            trace,
            config,
            json,
            entries,
        } => cli::replay::run(&trace, config.as_deref(), json, entries),
        Command::CheckConfig { file } => cli::check_config(&file),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("texcache: {e}");
            ExitCode::FAILURE
        }
    }
}
