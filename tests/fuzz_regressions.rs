//! The inputs the fuzzers found (`tests/fuzz/TARGET/*`, kept from `fuzz/artifacts` after the
//! bug each showed was fixed), replayed through the same entry points the `cargo fuzz` targets
//! call (`texcache::fuzzing`), plus every file of the shared corpus through every target.

use std::path::{Path, PathBuf};

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.is_file());
    v.sort();
    v
}

#[test]
fn every_kept_fuzz_input_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz");
    let mut ran = 0;
    for (name, target) in texcache::fuzzing::TARGETS {
        for f in files(&root.join(name)) {
            let data = std::fs::read(&f).unwrap();
            let caught = std::panic::catch_unwind(|| target(&data));
            assert!(caught.is_ok(), "{name}: {} fails again", f.display());
            ran += 1;
        }
    }
    assert!(ran > 0, "no inputs under {}", root.display());
}

#[test]
fn every_corpus_file_passes_every_target() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    let mut inputs = Vec::new();
    for sub in std::fs::read_dir(&corpus).unwrap().flatten() {
        inputs.extend(files(&sub.path()));
    }
    inputs.retain(|p| std::fs::metadata(p).is_ok_and(|m| m.len() <= 4 << 20));
    assert!(inputs.len() > 100, "{} files", inputs.len());
    for f in &inputs {
        let data = std::fs::read(f).unwrap();
        for (name, target) in texcache::fuzzing::TARGETS {
            let caught = std::panic::catch_unwind(|| target(&data));
            assert!(caught.is_ok(), "{name}: {}", f.display());
        }
    }
}
