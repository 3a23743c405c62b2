//! The PSI watcher with a real trigger and real memory pressure: a child process in a memory
//! cgroup of 16 MiB writes and reads 256 MiB, so the kernel stalls it in reclaim, the trigger
//! fires, and the watcher trims this process's cache. It needs a kernel with PSI triggers and
//! a memory cgroup it may create (root, with cgroup v1's memory controller or v2's); where it
//! has neither it says why and passes. Its own binary: the watcher is one per process, armed
//! with the first cache's thresholds.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use texcache::{Cache, Config};

/// A memory cgroup limited to `bytes`, and the file that moves a process into it.
fn memory_cgroup(bytes: u64) -> Result<(PathBuf, PathBuf), String> {
    let name = format!("texcache-psi-test-{}", std::process::id());
    let tries = [
        (Path::new("/sys/fs/cgroup/memory"), "memory.limit_in_bytes"),
        (Path::new("/sys/fs/cgroup"), "memory.max"),
    ];
    let mut why = Vec::new();
    for (parent, limit) in tries {
        if !parent.join("cgroup.procs").exists() {
            continue;
        }
        let dir = parent.join(&name);
        match std::fs::create_dir(&dir)
            .and_then(|()| std::fs::write(dir.join(limit), bytes.to_string()))
        {
            Ok(()) => return Ok((dir.clone(), dir.join("cgroup.procs"))),
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                why.push(format!("{}: {e}", dir.display()));
            }
        }
    }
    Err(format!(
        "no memory cgroup could be made ({})",
        why.join("; ")
    ))
}

/// Waits (at most 30 s) until the watched PSI file's stall total has not grown for a whole
/// window and a half, so that the pressure this test made does not reach the caches of the
/// test binaries that run after it (their watchers would trim them and spoil exact counts).
fn calm_down(watcher: &str) {
    let Some(file) = watcher.strip_prefix("watching ") else {
        return;
    };
    let total = || {
        std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.rsplit("total=").next()?.trim().parse::<u64>().ok())
            .sum::<u64>()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = (total(), Instant::now());
    while Instant::now() < deadline && last.1.elapsed() < Duration::from_millis(3000) {
        std::thread::sleep(Duration::from_millis(100));
        let now = total();
        if now != last.0 {
            last = (now, Instant::now());
        }
    }
}

#[test]
fn a_real_psi_trigger_trims_the_unused_cpu_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..8).map(|i| format!("p{i}.png")).collect();
    for n in &names {
        common::png(tmp.path(), n, 64, 64); // 16 KiB each
    }
    let mut cfg = Config::default();
    cfg.mediadir = tmp.path().into();
    cfg.stats.history_interval_ms = 0;
    cfg.pressure.some_ms = 10;
    cfg.pressure.full_ms = 10;
    let cache = Cache::new(cfg).unwrap();
    let watcher = cache.stats().pressure.watcher;
    if !watcher.starts_with("watching") {
        println!("skipped: the PSI watcher is {watcher:?}");
        return;
    }
    let held = cache.bitmap(&names[0]).unwrap();
    for n in &names[1..] {
        drop(cache.bitmap(n).unwrap());
    }
    let (cgroup, procs) = match memory_cgroup(16 << 20) {
        Ok(c) => c,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let big = tmp.path().join("big.bin");
    let script = format!(
        "echo $$ > {procs} && dd if=/dev/zero of={big} bs=1M count=256 status=none && \
         cat {big} > /dev/null && cat {big} > /dev/null",
        procs = procs.display(),
        big = big.display()
    );
    let status = std::process::Command::new("sh")
        .args(["-c", &script])
        .status()
        .unwrap();
    // The trigger fires within its window of the stall; the watcher thread trims then. This
    // waits for that event from the kernel, with a deadline.
    let deadline = Instant::now() + Duration::from_secs(20);
    while cache.stats().pressure.events == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_file(&big);
    let _ = std::fs::remove_dir(&cgroup);
    calm_down(&watcher);
    assert!(status.success(), "the stress child failed: {status}");
    let s = cache.stats();
    println!("{s}");
    assert!(
        s.pressure.events > 0,
        "256 MiB through a 16 MiB cgroup stalled in reclaim, yet no trigger fired ({watcher})"
    );
    assert!(s.pressure.trimmed_bytes >= 4 * 64 * 64 * 4, "{s}");
    assert_eq!(s.cpu.evicted_bytes, s.pressure.trimmed_bytes);
    assert_eq!(s.cpu.in_use, 64 * 64 * 4, "the held entry is never trimmed");
    assert!(texcache::Handle::ptr_eq(
        &held,
        &cache.bitmap(&names[0]).unwrap()
    ));
}
