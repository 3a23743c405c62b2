//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `../shared/corpus` beside the repository.
pub fn corpus() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    assert!(p.is_dir(), "the test corpus is missing: expected {} (../shared beside the repository)", p.display());
    p
}

/// A cache over `mediadir` with the given CPU budget.
pub fn cache(mediadir: &Path, cpu_budget: u64) -> texcache::Cache {
    let mut cfg = texcache::Config::default();
    cfg.mediadir = mediadir.to_path_buf();
    cfg.cpu.budget.0 = cpu_budget;
    texcache::Cache::new(cfg).unwrap()
}

/// Writes an RGBA PNG of `w`x`h` into `dir/name`.
pub fn png(dir: &Path, name: &str, w: u32, h: u32) {
    texcache::samples::picture(w, h, w * 31 + h).save(dir.join(name)).unwrap();
}
