//! The inputs the fuzzers found (`tests/fuzz/TARGET/*`, kept from `fuzz/artifacts` after the
//! bug each showed was fixed), replayed through the same entry points the `cargo fuzz` targets
//! call (`texcache::testing::fuzzing`), plus every file of the shared corpus through every target.

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
    for (name, target) in texcache::testing::fuzzing::TARGETS {
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
        // One level further (video/encoded).
        for nested in std::fs::read_dir(sub.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            inputs.extend(files(&nested.path()));
        }
    }
    inputs.retain(|p| std::fs::metadata(p).is_ok_and(|m| m.len() <= 4 << 20));
    assert!(inputs.len() > 100, "{} files", inputs.len());
    for f in &inputs {
        let data = std::fs::read(f).unwrap();
        for (name, target) in texcache::testing::fuzzing::TARGETS {
            let caught = std::panic::catch_unwind(|| target(&data));
            assert!(caught.is_ok(), "{name}: {}", f.display());
        }
    }
}

/// The video target on damaged copies of the corpus's encoded clips (and its Y4M and
/// animations): bytes flipped, runs overwritten, cut short, at deterministic places. Every one
/// must come back as frames or a typed error naming the href, never a panic or a hang. This is
/// the stable-toolchain complement of `cargo fuzz run video`, which mutates without end.
#[test]
fn damaged_videos_pass_the_video_target() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/video");
    let mut clips = files(&corpus.join("encoded"));
    clips.extend(files(&corpus));
    clips.retain(|p| {
        let name = p.file_name().unwrap().to_string_lossy();
        !name.ends_with(".framemd5") && !name.contains("1920x1080") && !name.ends_with(".y4m")
    });
    assert!(clips.len() >= 8, "{clips:?}");
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut ran = 0;
    for clip in &clips {
        let good = std::fs::read(clip).unwrap();
        for round in 0..24 {
            let mut bad = good.clone();
            let at = (next() % bad.len() as u64) as usize;
            match round % 4 {
                // A few flipped bits anywhere (headers included).
                0 => {
                    for _ in 0..4 {
                        let i = (next() % bad.len() as u64) as usize;
                        bad[i] ^= 1 << (next() % 8);
                    }
                }
                // A run of garbage.
                1 => {
                    let end = (at + 1 + (next() % 4096) as usize).min(bad.len());
                    for b in &mut bad[at..end] {
                        *b = next() as u8;
                    }
                }
                // Cut short.
                2 => bad.truncate(at),
                // A run of 0xFF (size fields that claim the most).
                _ => {
                    let end = (at + 16).min(bad.len());
                    bad[at..end].fill(0xFF);
                }
            }
            let caught = std::panic::catch_unwind(|| texcache::testing::fuzzing::video(&bad));
            assert!(caught.is_ok(), "{} round {round}", clip.display());
            ran += 1;
        }
    }
    assert!(ran >= 8 * 24);
}
