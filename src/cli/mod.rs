//! The `texcache` subcommands.

pub mod demo;
pub mod replay;
pub mod stats;

use std::path::Path;
use texcache::{Config, Result};

/// Loads `--config FILE`, else `TEXCACHE_CONFIG`, else the defaults.
pub fn load_config(file: Option<&Path>) -> Result<Config> {
    match file {
        Some(f) => Config::load(f),
        None => Config::from_env_or_default(),
    }
}

/// `texcache check-config FILE`.
pub fn check_config(file: &Path) -> Result<()> {
    let cfg = Config::load(file)?;
    println!("# {}: valid. Effective settings:", file.display());
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
