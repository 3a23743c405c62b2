//! The examples run as a new user would run them (headless, on the software adapter where
//! there is no GPU), and do what they say: the slideshow draws the cached textures, the video
//! player converts frames on the GPU and frees everything on stop, and the embedded
//! application answers `texcache stats`.
// These tests need the GPU tier (the default `gpu` feature).
#![cfg(feature = "gpu")]

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The built example `name` (cargo test builds the examples; built here if missing).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    let path = dir.join(name);
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = Command::new(cargo)
            .args(["build", "--examples"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(ok.success(), "cannot build the examples");
    }
    path
}

fn run(name: &str, args: &[&Path]) -> Output {
    let out = Command::new(example(name)).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{name} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn slideshow_draws_every_cached_texture() {
    if common::gpu().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = run("slideshow", &[tmp.path(), Path::new("10")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut slides = 0;
    for line in stdout.lines().filter(|l| l.starts_with("slide ")) {
        // "slide 3: img_003.png -> /tmp/.../frame003.png"
        let (name, frame) = line.split_once(": ").unwrap().1.split_once(" -> ").unwrap();
        let drawn = image::open(frame).unwrap().to_rgba8();
        let source = image::open(tmp.path().join("media").join(name))
            .unwrap()
            .to_rgba8();
        assert_eq!(drawn.dimensions(), source.dimensions());
        let worst = drawn
            .as_raw()
            .iter()
            .zip(source.as_raw())
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert!(worst <= 1, "{frame} differs from {name} by {worst}");
        slides += 1;
    }
    assert_eq!(slides, 10, "{stdout}");
    assert!(stdout.contains("gpu"), "the stats table is printed");
}

#[test]
fn video_player_converts_frames_and_frees_everything_on_stop() {
    if common::gpu().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = run("video_player", &[tmp.path(), Path::new("6")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("shown 6, dropped 5"), "{stdout}");
    assert!(
        stdout.contains("queued_frames: 0, cpu_bytes: 0, gpu_bytes: 0"),
        "{stdout}"
    );
    let frames: Vec<image::RgbaImage> = (0..6)
        .map(|i| {
            image::open(tmp.path().join(format!("frame{:03}.png", 2 * i)))
                .unwrap()
                .to_rgba8()
        })
        .collect();
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f.dimensions(), (160, 120));
        let first = f.get_pixel(0, 0);
        assert!(f.pixels().any(|p| p != first), "frame {i} is blank");
    }
    assert!(frames.windows(2).all(|w| w[0] != w[1]), "the pattern moves");
}

#[test]
fn embed_stats_answers_texcache_stats() {
    let tmp = tempfile::tempdir().unwrap();
    let sock = tmp.path().join("app.sock");
    let mut cmd = Command::new(example("embed_stats"));
    cmd.arg(&sock).arg("30");
    let (mut app, line) = common::spawn_until_line(cmd);
    assert!(line.starts_with("serving"), "{line}");
    let svg = tmp.path().join("memory.svg");
    let json = common::stats_over(&sock, &["--json"]);
    let plot = common::stats_over(&sock, &["--plot", svg.to_str().unwrap()]);
    app.kill().unwrap();
    app.wait().unwrap();
    assert!(
        json.status.success(),
        "{}",
        String::from_utf8_lossy(&json.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["cpu"]["budget"], 1 << 20);
    assert!(
        plot.status.success(),
        "{}",
        String::from_utf8_lossy(&plot.stderr)
    );
    common::assert_svg(&svg, &common::MEMORY_SERIES);
}

#[test]
fn the_readme_embedding_example_runs() {
    if common::gpu().is_none() {
        return;
    }
    let out = run("embedding", &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    // The cat was decoded once and hit once, and uploaded; the node played and stopped.
    assert!(text.lines().any(|l| l.starts_with("cpu ")), "{text}");
    assert!(text.contains("video 1 node(s), 0 playing"), "{text}");
}

#[test]
fn the_shared_example_decodes_each_picture_once_for_three_clients() {
    let out = run("shared", &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    let sums: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("client "))
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    assert_eq!(sums.len(), 3, "{text}");
    assert!(
        sums.iter().all(|s| *s == sums[0]),
        "every client saw the same pixels: {text}"
    );
    // The table's cpu row: 8 misses (one decode each), 16 hits or waits.
    let cpu: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with("cpu"))
        .unwrap()
        .split_whitespace()
        .collect();
    // (Sizes are two words: count the columns from the end.)
    let n = cpu.len();
    let (hits, misses, coalesced) = (cpu[n - 5], cpu[n - 4], cpu[n - 3]);
    assert_eq!(misses, "8", "{text}");
    assert_eq!(
        hits.parse::<u32>().unwrap() + coalesced.parse::<u32>().unwrap(),
        16,
        "{text}"
    );
}
