//! Budgets sized to the machine and memory given back under pressure (§5 `cpu.budget`
//! percentages and `[pressure]`, §6 `pressure`). The PSI watcher's real trigger is in
//! `tests/integration/pressure_psi.rs`, the GPU retry in `tests/integration/gpu_pressure.rs`.

use crate::common;

use std::path::Path;
use texcache::observe::pressure::{memory_limit, PressureLevel};
use texcache::{Cache, Config};

fn fake_tree(limit: &str) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let files = [
        ("proc/meminfo", "MemTotal:       8388608 kB\n".to_string()),
        ("proc/self/cgroup", "0::/app.slice\n".to_string()),
        ("sys/fs/cgroup/app.slice/memory.max", format!("{limit}\n")),
    ];
    for (path, text) in files {
        let p = root.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    root
}

#[test]
fn a_percent_budget_is_a_share_of_the_cgroup_limit_else_of_memtotal() {
    let mut cfg = Config::parse("[cpu]\nbudget = \"25%\"\n", "x.toml").unwrap();
    let limited = fake_tree("1073741824");
    cfg.resolve_budget(limited.path(), "x.toml").unwrap();
    assert_eq!(
        (cfg.cpu.budget.0, cfg.cpu.budget.1),
        (256 << 20, Some(25.0))
    );
    let unlimited = fake_tree("max");
    cfg.resolve_budget(unlimited.path(), "x.toml").unwrap();
    assert_eq!(cfg.cpu.budget.0, 2 << 30, "25% of 8 GiB MemTotal");
    // The same file read on this machine: bytes from its real limit, percentage kept.
    let real = memory_limit(Path::new("/")).unwrap();
    let cfg = Config::parse("[cpu]\nbudget = \"12.5%\"\n", "x.toml").unwrap();
    assert_eq!(cfg.cpu.budget.0, (real.bytes as f64 * 0.125).round() as u64);
    assert!(
        cfg.to_toml().contains("budget = \"12.5%\""),
        "{}",
        cfg.to_toml()
    );
}

#[test]
fn percentages_out_of_range_or_on_the_gpu_are_errors_that_say_why() {
    for bad in ["0%", "101%", "-5%", "lots%"] {
        let err = Config::parse(&format!("[cpu]\nbudget = \"{bad}\"\n"), "x.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("x.toml:2: cpu.budget") && err.contains("100%"),
            "{err}"
        );
    }
    let err = Config::parse("[gpu]\nbudget = \"25%\"\n", "x.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("gpu.budget") && err.contains("wgpu does not tell"),
        "{err}"
    );
}

#[test]
fn stats_and_check_config_show_the_percentage_and_the_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = Config::default();
    cfg.mediadir = tmp.path().into();
    cfg.cpu.budget = "10%".parse().unwrap();
    let cache = Cache::new(cfg).unwrap();
    let real = memory_limit(Path::new("/")).unwrap();
    let s = cache.stats();
    assert_eq!(s.cpu.budget, (real.bytes as f64 * 0.1).round() as u64);
    assert_eq!(s.cpu.budget_percent, Some(10.0));
    let json: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
    assert_eq!(json["cpu"]["budget_percent"], 10.0);
    assert!(json["gpu"].get("budget_percent").is_none());
    assert!(
        s.to_string().contains("cpu budget is 10% of the memory"),
        "{s}"
    );

    let file = tmp.path().join("c.toml");
    std::fs::write(&file, "[cpu]\nbudget = \"10%\"\n").unwrap();
    let out = std::process::Command::new(common::texcache_bin())
        .arg("check-config")
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("= {} bytes", s.cpu.budget)) && text.contains(&real.source),
        "{text}"
    );
    // reload_config resolves it again.
    std::fs::write(&file, "[cpu]\nbudget = \"20%\"\n").unwrap();
    cache.reload_config(&file).unwrap();
    assert_eq!(
        cache.stats().cpu.budget,
        (real.bytes as f64 * 0.2).round() as u64
    );
}

#[test]
fn memory_pressure_trims_half_then_all_of_the_unused_bytes_never_what_is_in_use() {
    let tmp = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..8).map(|i| format!("p{i}.png")).collect();
    for n in &names {
        common::png(tmp.path(), n, 16, 16); // 1 KiB each
    }
    let cache = common::cache(tmp.path(), 1 << 20);
    let held = cache.bitmap(&names[0]).unwrap();
    for n in &names[1..] {
        drop(cache.bitmap(n).unwrap());
    }
    let before = cache.stats();
    assert_eq!((before.cpu.used, before.cpu.unused), (8 * 1024, 7 * 1024));

    // "some": half of the 7 KiB unused, least recently released first: 4 entries (3.5 KiB
    // rounds up to whole entries).
    assert_eq!(cache.on_memory_pressure(PressureLevel::Some), 4 * 1024);
    let s = cache.stats();
    assert_eq!(
        (s.cpu.used, s.cpu.unused, s.cpu.evictions),
        (4 * 1024, 3 * 1024, 4)
    );
    assert!(
        cache.bitmap_if_resident(&names[1]).is_none(),
        "the oldest release went first"
    );
    assert!(cache.bitmap_if_resident(&names[7]).is_some());
    // "full": everything unused; the held entry stays.
    assert_eq!(cache.on_memory_pressure(PressureLevel::Full), 3 * 1024);
    let s = cache.stats();
    assert_eq!((s.cpu.used, s.cpu.in_use, s.cpu.unused), (1024, 1024, 0));
    assert_eq!(s.cpu.evictions, 7);
    assert_eq!(s.cpu.evicted_bytes, 7 * 1024);
    assert_eq!((s.pressure.events, s.pressure.trimmed_bytes), (2, 7 * 1024));
    assert!(texcache::Handle::ptr_eq(
        &held,
        &cache.bitmap(&names[0]).unwrap()
    ));
    assert_eq!(cache.on_memory_pressure(PressureLevel::Full), 0);
    assert_eq!(cache.stats().pressure.events, 3);
    assert_eq!(cache.stats().cpu.budget, 1 << 20, "the budget is unchanged");
}

#[test]
fn the_watcher_says_what_it_watches_or_why_not() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = common::cache(tmp.path(), 1 << 20);
    let w = cache.stats().pressure.watcher;
    assert!(
        w.starts_with("watching ") || w.starts_with("not watching: "),
        "{w}"
    );
    println!("PSI watcher on this machine: {w}");
    let mut cfg = Config::default();
    cfg.mediadir = tmp.path().into();
    cfg.pressure.trim = false;
    let off = Cache::new(cfg).unwrap();
    assert!(off.stats().pressure.watcher.starts_with("off"));
    let err = Config::parse("[pressure]\nwindow_ms = 100\n", "x.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("pressure.window_ms") && err.contains("500"),
        "{err}"
    );
}
