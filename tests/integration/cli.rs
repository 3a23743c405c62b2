//! The `texcache` command line: replay of hand-written traces with exact counters, errors that
//! name the line, check-config, demo.

use crate::common;

use std::path::Path;
use std::process::Command;

fn texcache(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(common::texcache_bin())
        .args(args)
        .env_remove("TEXCACHE_CONFIG")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// Three 10x10 RGBA pictures (400 bytes each) and a gray one, with a config of `budget` bytes.
fn setup(budget: u64) -> (tempfile::TempDir, String) {
    let tmp = tempfile::tempdir().unwrap();
    for n in ["a", "b", "c"] {
        common::png(tmp.path(), &format!("{n}.png"), 10, 10);
    }
    image::GrayImage::new(10, 10)
        .save(tmp.path().join("g.png"))
        .unwrap();
    let cfg = tmp.path().join("cfg.toml");
    std::fs::write(
        &cfg,
        format!("mediadir = \".\"\n[cpu]\nbudget = {budget}\n"),
    )
    .unwrap();
    let cfg = cfg.display().to_string();
    (tmp, cfg)
}

fn replay(dir: &Path, cfg: &str, trace: &str, extra: &[&str]) -> serde_json::Value {
    let file = dir.join("t.trace");
    std::fs::write(&file, trace).unwrap();
    let mut args = vec![
        "replay",
        "--trace",
        file.to_str().unwrap(),
        "--config",
        cfg,
        "--json",
    ];
    args.extend_from_slice(extra);
    let (ok, out, err) = texcache(&args);
    assert!(ok, "replay failed: {err}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn replay_counts_exactly_and_evicts_least_recently_released() {
    let (tmp, cfg) = setup(850);
    let trace = "\
# two fit in 850 bytes, the third forces an eviction
bitmap A a.png
bitmap B b.png
release B          # released first
release A
bitmap C c.png     # used 1200 > 850: evict b (released before a)
bitmap A2 a.png    # hit
bitmap G g.png     # gray: 100 bytes; 900 with all in use: over budget, nothing to evict
release C
release A2
release G          # (c was evicted on its release: 900 > 850)
bitmap X missing.png
release X
";
    let v = replay(tmp.path(), &cfg, trace, &["--entries"]);
    let cpu = &v["cpu"];
    let want = serde_json::json!({
        "budget": 850, "used": 500, "in_use": 0, "unused": 500, "over_budget": 0, "peak_used": 900,
        "entries": 2, "in_use_entries": 0, "hits": 1, "misses": 5, "coalesced": 0,
        "evictions": 2, "evicted_bytes": 800, "failures": 1
    });
    assert_eq!(cpu, &want);
    assert_eq!(v["gpu"]["used"], 0);
    assert_eq!(v["video"]["nodes"], 0);
    assert!(v["process"]["rss"].as_u64().unwrap() > 0);
    let entries = v["entries"].as_array().unwrap();
    let keys: Vec<_> = entries
        .iter()
        .map(|e| e["key"].as_str().unwrap().rsplit('/').next().unwrap())
        .collect();
    assert_eq!(keys, ["a.png", "g.png"]);
    assert_eq!(entries[1]["format"], "gray8");
    assert_eq!(entries[1]["bytes"], 100);
    assert_eq!(entries[0]["refs"], 0);
}

#[test]
fn replay_remove_trim_budget() {
    let (tmp, cfg) = setup(1 << 20);
    let trace = "\
bitmap A a.png
bitmap B b.png
release B
bitmap C c.png
release C
remove ./b.png     # unused: freed, not an eviction
remove a.png       # in use: leaves the index, still counted
trim cpu 500       # 800 used: evicts c (a is in use)
budget cpu 1 KiB
";
    let v = replay(tmp.path(), &cfg, trace, &[]);
    let cpu = &v["cpu"];
    assert_eq!(
        (
            cpu["used"].as_u64(),
            cpu["in_use"].as_u64(),
            cpu["entries"].as_u64(),
            cpu["evictions"].as_u64(),
            cpu["budget"].as_u64()
        ),
        (Some(400), Some(400), Some(1), Some(1), Some(1024))
    );
}

#[test]
fn replay_errors_name_the_line() {
    let (tmp, cfg) = setup(1000);
    let file = tmp.path().join("bad.trace");
    for (trace, want) in [
        (
            "bitmap A a.png\nbitmap A b.png\n",
            "bad.trace:2: ID `A` is still held",
        ),
        (
            "bitmap A a.png\n\n# c\nrelease Z\n",
            "bad.trace:4: `release`: unknown ID `Z`",
        ),
        (
            "frobnicate x\n",
            "bad.trace:1: unknown operation `frobnicate`",
        ),
        ("trim cpu lots\n", "bad.trace:1: `trim`"),
    ] {
        std::fs::write(&file, trace).unwrap();
        let (ok, _, err) = texcache(&[
            "replay",
            "--trace",
            file.to_str().unwrap(),
            "--config",
            &cfg,
        ]);
        assert!(!ok);
        assert!(err.contains(want), "{trace:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one clear line: {err}");
    }
}

#[test]
fn replay_prints_a_table_by_default() {
    let (tmp, cfg) = setup(1000);
    let file = tmp.path().join("t.trace");
    std::fs::write(&file, "bitmap A a.png\n").unwrap();
    let (ok, out, _) = texcache(&[
        "replay",
        "--trace",
        file.to_str().unwrap(),
        "--config",
        &cfg,
    ]);
    assert!(ok);
    assert!(
        out.lines()
            .any(|l| l.starts_with("cpu") && l.contains("400 B")),
        "{out}"
    );
}

#[test]
fn check_config() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good.toml");
    std::fs::write(&good, "[cpu]\nbudget = \"64 MiB\"\n").unwrap();
    let (ok, out, _) = texcache(&["check-config", good.to_str().unwrap()]);
    assert!(ok);
    assert!(out.contains("budget = \"64 MiB\""), "{out}");
    assert!(out.contains("queue_length = 8"), "{out}");

    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "[gpu]\nbudget = \"1 GiB\"\nmipmap = true\n").unwrap();
    let (ok, _, err) = texcache(&["check-config", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("bad.toml:3: gpu.mipmap"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let default = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/texcache.toml");
    assert!(texcache(&["check-config", default.to_str().unwrap()]).0);
    let (ok, _, err) = texcache(&["check-config", "/nonexistent.toml"]);
    assert!(!ok && err.contains("/nonexistent.toml"), "{err}");
}

/// Runs `texcache demo` into `dir` (headless: no XDG_RUNTIME_DIR, as on a server) and returns
/// its JSON and stderr.
fn demo(dir: &Path) -> (serde_json::Value, String) {
    let out = Command::new(common::texcache_bin())
        .args(["demo", "--dir", dir.to_str().unwrap(), "--json", "--plot"])
        .arg(dir.join("memory.svg"))
        .arg("--sheet")
        .arg(dir.join("shown.png"))
        .env_remove("TEXCACHE_CONFIG")
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    let out = String::from_utf8_lossy(&out.stdout);
    let v = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    (v, err)
}

#[test]
fn the_demo_adds_up_hits_and_is_the_same_every_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (v, err) = demo(tmp.path());
    // The command line always has the GPU tier; whether the machine has an adapter is
    // common::gpu's to say (a build of these tests without `gpu` checks the CPU side only).
    #[cfg(feature = "gpu")]
    let gpu = common::gpu().is_some();
    #[cfg(not(feature = "gpu"))]
    let gpu = false;
    let (d, cpu, g) = (&v["demo"], &v["cpu"], &v["gpu"]);
    let n = |x: &serde_json::Value, k: &str| x[k].as_u64().unwrap_or_else(|| panic!("{k}: {v}"));

    // Every acquire is a hit, a miss or a wait on a load under way (§3.1).
    for (tier, acquires) in [(cpu, "cpu_acquires"), (g, "gpu_acquires")] {
        assert_eq!(
            n(tier, "hits") + n(tier, "misses") + n(tier, "coalesced"),
            n(d, acquires),
            "{v}"
        );
        assert_eq!(n(tier, "coalesced"), 0, "every load is waited for: {v}");
        assert_eq!(n(tier, "failures"), 0);
    }
    // The savings are the counters: one decode per CPU miss, one upload per GPU miss.
    let shown = n(d, "shown_thumbnails") + n(d, "shown_full");
    assert_eq!(n(d, "decodes"), n(cpu, "misses"));
    assert_eq!(n(d, "decodes_without_cache"), shown);
    assert_eq!(n(d, "decodes_avoided"), shown - n(cpu, "misses"));
    assert_eq!(
        n(d, "file_bytes_not_read"),
        n(d, "file_bytes_without_cache") - n(d, "file_bytes_read")
    );
    assert_eq!(n(d, "peak_bytes"), n(cpu, "peak_used") + n(g, "peak_used"));
    assert!(n(d, "up_front_bytes") > 2 * n(d, "peak_bytes"), "{v}");
    // The process's memory is split into parts that add up to it.
    assert_eq!(
        n(d, "rss"),
        n(d, "rss_texcache")
            + n(d, "rss_driver_code")
            + n(d, "rss_driver_heap")
            + n(d, "rss_other_code")
            + n(d, "rss_other_heap"),
        "{v}"
    );
    // Hits well above zero: at least half the decodes avoided; both tiers evict.
    assert!(2 * n(d, "decodes_avoided") >= shown, "{v}");
    assert!(
        n(cpu, "evictions") > 0 && n(cpu, "used") <= n(cpu, "budget"),
        "{v}"
    );
    assert!(n(d, "shared_shows") > 0);
    assert_eq!(n(d, "video_frames"), 60);
    common::assert_svg(
        &tmp.path().join("memory.svg"),
        &[
            "cpu used",
            "cpu budget",
            "gpu used",
            "gpu budget",
            "video",
            "process RSS",
            "grid",
            "viewer",
        ],
    );
    assert!(
        err.contains("memory graph") && err.contains("memory.svg"),
        "{err}"
    );
    assert!(
        !err.contains("XDG_RUNTIME_DIR"),
        "the driver's noise is filtered: {err}"
    );
    if gpu {
        assert!(
            n(g, "hits") * 2 > n(d, "gpu_acquires"),
            "GPU hit ratio above 50%: {v}"
        );
        assert!(n(g, "evictions") > 0, "{v}");
        assert_eq!(n(d, "uploads"), n(g, "misses"));
        assert_eq!(n(d, "uploads_avoided"), shown - n(g, "misses"));
        // On screen at the end: a page of 12 thumbnails and the viewer's picture.
        assert_eq!(n(g, "in_use_entries"), 13, "{v}");
        // The contact sheet: the 12 thumbnails, the picture and a video frame, as a PNG.
        let sheet = tmp.path().join("shown.png");
        let decoder = png::Decoder::new(std::io::BufReader::new(
            std::fs::File::open(&sheet).unwrap(),
        ));
        let reader = decoder.read_info().unwrap();
        let info = reader.info();
        assert_eq!(info.width, 8 * (160 + 8) + 8);
        assert!(info.height > 2 * 120 + 480, "{}", info.height);
        assert!(err.contains("contact sheet (14 pictures"), "{err}");
    }
    let fb = 320 * 240 + 2 * 160 * 120;
    assert_eq!(
        (
            &v["video"]["nodes"],
            &v["video"]["queued_frames"],
            &v["video"]["cpu_bytes"]
        ),
        (&1.into(), &4.into(), &(4 * fb).into()),
        "{v}"
    );

    // The same headline numbers on a second run (the media is already there).
    let (again, _) = demo(tmp.path());
    for tier in ["cpu", "gpu"] {
        for k in [
            "hits",
            "misses",
            "coalesced",
            "evictions",
            "evicted_bytes",
            "peak_used",
            "used",
        ] {
            assert_eq!(again[tier][k], v[tier][k], "{tier}.{k}");
        }
    }
    for k in [
        "decodes",
        "uploads",
        "file_bytes_read",
        "shared_shows",
        "gpu_acquires",
    ] {
        assert_eq!(again["demo"][k], v["demo"][k], "demo.{k}");
    }
}

#[test]
fn replay_says_why_loads_failed() {
    let (tmp, cfg) = setup(1 << 20);
    let file = tmp.path().join("t.trace");
    let mut trace = String::from("bitmap A a.png\nrelease A\nvideo V nothing.mp4\n");
    for i in 0..12 {
        trace += &format!("bitmap m{i} missing{i}.png\nrelease m{i}\nbitmap n{i} missing0.png\n");
    }
    std::fs::write(&file, &trace).unwrap();
    // Without --config, mediadir is the working folder: everything is missing.
    let (ok, out, err) = texcache(&["replay", "--trace", file.to_str().unwrap()]);
    assert!(ok, "bad media is not fatal: {err}");
    assert!(out.contains("cpu"), "{out}");
    assert!(
        err.contains("26 load(s) of") && err.contains("(14 distinct)"),
        "{err}"
    );
    assert!(err.contains("line 1: bitmap: a.png: not found"), "{err}");
    assert!(
        err.contains("line 3: video: nothing.mp4"),
        "a failed video line is reported: {err}"
    );
    assert!(
        err.contains("missing0.png: not found") && err.contains("(13 times)"),
        "{err}"
    );
    assert!(
        err.contains("... and 4 more distinct failure(s), 4 load(s)"),
        "{err}"
    );
    assert!(
        err.contains("every failure is a missing file") && err.contains("--config"),
        "{err}"
    );
    // With the config, only the missing files fail.
    let (ok, _, err) = texcache(&[
        "replay",
        "--trace",
        file.to_str().unwrap(),
        "--config",
        &cfg,
    ]);
    assert!(ok);
    assert!(
        err.contains("25 load(s) of") && !err.contains(" a.png"),
        "{err}"
    );
}

#[test]
fn check_config_warns_and_prints_what_people_write() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("odd.toml");
    std::fs::write(
        &file,
        "mediadir = \"photos\"\n[cpu]\nbudget = \"64 Mib\"\n[gpu]\nbudget = \"1 GiB\"\n",
    )
    .unwrap();
    let (ok, out, err) = texcache(&["check-config", file.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(
        err.contains("cpu.budget: `64 Mib` is read as 64 MiB"),
        "{err}"
    );
    assert!(err.contains("mediadir:") && err.contains("photos"), "{err}");
    assert!(out.contains("valid, with 2 warnings"), "{out}");
    assert!(
        out.contains("budget = \"64 MiB\"") && out.contains("budget = \"1 GiB\""),
        "{out}"
    );
    let resolved = tmp.path().canonicalize().unwrap().join("photos");
    assert!(
        out.contains(&format!("mediadir = \"{}\"", resolved.display()))
            || out.contains(&format!(
                "mediadir = \"{}\"",
                tmp.path().join("photos").display()
            )),
        "mediadir resolved: {out}"
    );
    std::fs::create_dir(tmp.path().join("photos")).unwrap();
    std::fs::write(&file, "mediadir = \"photos\"\n").unwrap();
    let (ok, out, err) = texcache(&["check-config", file.to_str().unwrap()]);
    assert!(
        ok && err.is_empty() && out.contains(": valid."),
        "{out}{err}"
    );
}

#[test]
fn stats_says_what_to_set_and_what_failed() {
    let tmp = tempfile::tempdir().unwrap();
    let (ok, _, err) = texcache(&["stats"]);
    assert!(!ok && err.contains("stats.socket"), "{err}");
    let missing = tmp.path().join("app.sock");
    let (ok, _, err) = texcache(&["stats", "--socket", missing.to_str().unwrap()]);
    assert!(
        !ok && err.contains("no socket there") && err.contains("stats.socket"),
        "{err}"
    );
    let file = tmp.path().join("plain");
    std::fs::write(&file, "x").unwrap();
    let (ok, _, err) = texcache(&["stats", "--socket", file.to_str().unwrap()]);
    assert!(!ok && err.contains("not a socket"), "{err}");
    // A socket whose listener is gone.
    let stale = tmp.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let (ok, _, err) = texcache(&["stats", "--socket", stale.to_str().unwrap()]);
    assert!(!ok && err.contains("nobody is listening"), "{err}");
    let (ok, _, err) = texcache(&["stats", "--socket", stale.to_str().unwrap(), "--watch", "0"]);
    assert!(!ok && err.contains("too short"), "{err}");
}

#[test]
fn tune_sweeps_the_gpu_alone_warns_of_budget_lines_and_explains_peaks() {
    let tmp = tempfile::tempdir().unwrap();
    for i in 0..3 {
        common::png(tmp.path(), &format!("p{i}.png"), 10, 10);
    }
    // Three 400-byte pictures held at once: 1200 bytes in use, whatever the budget.
    let file = tmp.path().join("t.trace");
    std::fs::write(
        &file,
        "bitmap a p0.png\nbitmap b p1.png\nbitmap c p2.png\nrelease a\nrelease b\nrelease c\nbudget cpu 1MiB\n",
    )
    .unwrap();
    let cfg = tmp.path().join("cfg.toml");
    std::fs::write(&cfg, "mediadir = \".\"\n").unwrap();
    let (file, cfg) = (file.to_str().unwrap(), cfg.to_str().unwrap());
    let (ok, out, err) = texcache(&[
        "tune",
        "--trace",
        file,
        "--config",
        cfg,
        "--gpu-budgets",
        "1KiB",
    ]);
    assert!(ok, "--gpu-budgets alone: {err}");
    assert!(out.starts_with("tier") && out.contains("gpu"), "{out}");
    assert!(
        !err.contains("overrides"),
        "the CPU budget is not swept: {err}"
    );
    let (ok, out, err) = texcache(&[
        "tune",
        "--trace",
        file,
        "--config",
        cfg,
        "--cpu-budgets",
        "800",
    ]);
    assert!(ok, "{err}");
    assert!(
        err.contains("t.trace:7") && err.contains("overrides the swept cpu budget"),
        "{err}"
    );
    assert!(
        out.contains("1.2 KiB*") && out.contains("never evicted"),
        "{out}"
    );
    let (ok, _, err) = texcache(&["tune", "--trace", file]);
    assert!(!ok && err.contains("--cpu-budgets"), "{err}");
}

#[test]
fn replay_plays_video_nodes() {
    let (tmp, _) = setup(1 << 20);
    let clip = common::corpus().join("video/testsrc2_320x240_60f.y4m");
    let cfg = tmp.path().join("video.toml");
    std::fs::write(&cfg, "[video]\nqueue_length = 5\n").unwrap();
    let cfg = cfg.display().to_string();
    let fb = 320 * 240 + 2 * 160 * 120;
    let trace = format!(
        "video v {clip}\nvideo w {clip}\nvideo bad {bad}\nplay v\nwait v\nnext v 7\nwait v\nplay bad\nnext bad\n",
        clip = clip.display(),
        bad = tmp.path().join("a.png").display(),
    );
    let j = replay(tmp.path(), &cfg, &trace, &["--entries"]);
    let v = &j["video"];
    assert_eq!(
        (
            &v["nodes"],
            &v["playing"],
            &v["queued_frames"],
            &v["cpu_bytes"],
            &v["gpu_bytes"]
        ),
        (&2.into(), &1.into(), &5.into(), &(5 * fb).into(), &0.into()),
        "{j}"
    );
    let nodes: Vec<_> = j["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["tier"] == "video")
        .collect();
    assert_eq!(nodes.len(), 2);
    assert!(nodes
        .iter()
        .any(|n| n["next_frame"] == 7 && n["state"] == "playing"));
    assert!(nodes
        .iter()
        .any(|n| n["state"] == "stopped" && n["bytes"] == 0));

    let j = replay(tmp.path(), &cfg, &format!("{trace}stop v\n"), &[]);
    assert_eq!(j["video"]["cpu_bytes"], 0);
    assert_eq!(j["video"]["nodes"], 2);

    let file = tmp.path().join("u.trace");
    std::fs::write(&file, "next nobody\n").unwrap();
    let (ok, _, err) = texcache(&["replay", "--trace", file.to_str().unwrap()]);
    assert!(
        !ok && err.contains("u.trace:1") && err.contains("nobody"),
        "{err}"
    );
}

#[test]
fn tune_sweeps_budgets_and_plots_the_miss_ratio_curve() {
    // Ten 10x10 pictures (400 bytes each) visited round-robin three times: with room for all
    // ten only the first visit misses; with less, LRU misses on every visit.
    let tmp = tempfile::tempdir().unwrap();
    let mut trace = String::new();
    for i in 0..10 {
        common::png(tmp.path(), &format!("p{i}.png"), 10, 10);
    }
    for round in 0..3 {
        for i in 0..10 {
            trace += &format!("bitmap r{round}p{i} p{i}.png\nrelease r{round}p{i}\n");
        }
    }
    let file = tmp.path().join("t.trace");
    std::fs::write(&file, trace).unwrap();
    let cfg = tmp.path().join("cfg.toml");
    std::fs::write(&cfg, "mediadir = \".\"\n").unwrap();
    let svg = tmp.path().join("tune.svg");
    let tune = |extra: &[&str]| {
        let (file, cfg) = (file.to_str().unwrap(), cfg.to_str().unwrap());
        let mut args = vec!["tune", "--trace", file, "--config", cfg, "--cpu-budgets"];
        args.extend_from_slice(extra);
        texcache(&args)
    };
    let (ok, out, err) = tune(&["2000,4000,4KiB", "--json", "--plot", svg.to_str().unwrap()]);
    assert!(ok, "{err}");
    let rows: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let rows = rows.as_array().unwrap();
    let get = |i: usize, k: &str| rows[i][k].as_f64().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(
        (get(0, "budget"), get(0, "misses"), get(0, "evictions")),
        (2000.0, 30.0, 25.0)
    );
    assert_eq!(
        (get(1, "budget"), get(1, "misses"), get(1, "evictions")),
        (4000.0, 10.0, 0.0)
    );
    assert_eq!((get(2, "budget"), get(2, "peak_used")), (4096.0, 4000.0));
    assert!((get(1, "hit_ratio") - 20.0 / 30.0).abs() < 1e-9);
    common::assert_svg(&svg, &["cpu miss ratio"]);

    let (ok, table, _) = tune(&["2000,4000"]);
    assert!(ok);
    assert!(
        table.contains("hit ratio") && table.contains("66.7%"),
        "{table}"
    );
    let (ok, _, err) = texcache(&[
        "tune",
        "--trace",
        "/nonexistent.trace",
        "--cpu-budgets",
        "1MiB",
    ]);
    assert!(!ok && err.contains("/nonexistent.trace"), "{err}");
}

#[test]
fn probe_tells_pictures_videos_and_errors_apart() {
    let corpus = common::corpus();
    let png = corpus.join("pngsuite/basn0g08.png");
    let y4m = corpus.join("video/testsrc2_320x240_60f.y4m");
    let mp4 = corpus.join("video/encoded/testsrc2_640x360_h264_rot90.mp4");
    let bad = corpus.join("video/encoded/x_not_a_video.mp4");
    let args = [&png, &y4m, &mp4, &bad].map(|p| p.to_str().unwrap().to_string());
    let mut argv = vec!["probe", "--json"];
    argv.extend(args.iter().map(String::as_str));
    let (ok, out, err) = texcache(&argv);
    assert!(
        !ok,
        "a file that cannot be read fails the command, after the others"
    );
    assert!(err.contains("1 of 4"), "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v[0]["kind"], "picture");
    assert_eq!(
        (&v[0]["width"], &v[0]["pixel_format"], &v[0]["bytes"]),
        (&32.into(), &"gray8".into(), &(32 * 32).into())
    );
    assert_eq!(v[1]["kind"], "video");
    assert_eq!(
        (&v[1]["codec"], &v[1]["frames"]),
        (&"rawvideo".into(), &60.into())
    );
    assert_eq!(v[1]["frame_bytes"], 320 * 240 * 3 / 2);
    // The command line is built with FFmpeg (its default feature).
    assert_eq!(
        (&v[2]["codec"], &v[2]["rotation"]),
        (&"h264".into(), &270.into())
    );
    assert_eq!(
        (&v[2]["duration"], &v[2]["width"]),
        (&2.0.into(), &640.into())
    );
    assert_eq!(v[3]["kind"], "error");
    assert!(v[3]["error"]
        .as_str()
        .unwrap()
        .contains("x_not_a_video.mp4"));
    let (ok, out, _) = texcache(&["probe", args[2].as_str()]);
    assert!(ok);
    assert!(
        out.contains("h264") && out.contains("rotation 270"),
        "{out}"
    );
}

/// No command writes over what it reads: `tune --plot` naming the trace (directly, by another
/// spelling, or through a link), `replay --record` or `tune --plot` naming the config (given,
/// or from `TEXCACHE_CONFIG`), `stats --plot` naming the config, `demo` with one file for both
/// outputs. Each is refused before anything runs, saying which option names which file, and
/// every input is byte for byte as it was.
#[test]
fn no_command_writes_over_its_inputs() {
    let (tmp, cfg) = setup(4000);
    let dir = tmp.path();
    let trace = dir.join("t.trace");
    std::fs::write(&trace, "bitmap a a.png\nrelease a\n").unwrap();
    std::os::unix::fs::symlink(&trace, dir.join("link.svg")).unwrap();
    let t = trace.to_str().unwrap().to_string();
    let respelled = format!("{}/./t.trace", dir.display());
    let link = dir.join("link.svg").display().to_string();
    let plot = dir.join("plot.svg").display().to_string();
    let tune_plot = |plot: &str| -> Vec<String> {
        [
            "tune",
            "--trace",
            &t,
            "--config",
            &cfg,
            "--cpu-budgets",
            "1KiB",
            "--plot",
            plot,
        ]
        .map(String::from)
        .to_vec()
    };
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // (arguments, the option named in the refusal, TEXCACHE_CONFIG)
    let cases: Vec<(Vec<String>, &str, Option<&str>)> = vec![
        (tune_plot(&t), "--plot", None),
        (tune_plot(&respelled), "--plot", None),
        (tune_plot(&link), "--plot", None),
        (tune_plot(&cfg), "--plot", None),
        (
            args(&["replay", "--trace", &t, "--config", &cfg, "--record", &cfg]),
            "--record",
            None,
        ),
        (
            args(&["replay", "--trace", &t, "--record", &cfg]),
            "--record",
            Some(&cfg),
        ),
        (
            args(&[
                "tune",
                "--trace",
                &t,
                "--cpu-budgets",
                "1KiB",
                "--plot",
                &cfg,
            ]),
            "--plot",
            Some(&cfg),
        ),
        (
            args(&["stats", "--config", &cfg, "--plot", &cfg]),
            "--plot",
            None,
        ),
        (
            args(&[
                "demo",
                "--dir",
                dir.to_str().unwrap(),
                "--plot",
                &plot,
                "--sheet",
                &plot,
            ]),
            "--sheet",
            None,
        ),
    ];
    let before: Vec<Vec<u8>> = [&trace, Path::new(&cfg)]
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    for (args, option, env_config) in &cases {
        let mut cmd = Command::new(common::texcache_bin());
        cmd.args(args).env_remove("TEXCACHE_CONFIG");
        if let Some(c) = env_config {
            cmd.env("TEXCACHE_CONFIG", c);
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} ran: {err}");
        assert!(
            err.contains(option) && err.contains("names the file"),
            "{args:?}: {err}"
        );
        let after: Vec<Vec<u8>> = [&trace, Path::new(&cfg)]
            .iter()
            .map(|p| std::fs::read(p).unwrap())
            .collect();
        assert_eq!(after, before, "{args:?} changed an input");
        assert!(!Path::new(&plot).exists(), "{args:?} wrote {plot}");
    }
    // Other files are written as before.
    let fine = tune_plot(&plot);
    let (ok, _, err) = texcache(&fine.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok && Path::new(&plot).exists(), "{err}");
}
