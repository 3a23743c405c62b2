//! Memory sized to the machine, and given back under pressure.
//!
//! A budget written as `"256 MiB"` is right on one machine and wrong on the next, so
//! `cpu.budget` may be a percentage of the memory this process may use ([`memory_limit`]: the
//! tightest `memory.max` of its cgroup and the cgroup's ancestors, cgroup v2 or v1's
//! `memory.limit_in_bytes`, else the machine's `MemTotal`). And a cache that keeps its whole
//! budget while the system swaps is the leak people complain about, so on Linux one sleeping
//! thread per process (`watch`) waits on kernel PSI triggers (the cgroup's `memory.pressure`,
//! else `/proc/pressure/memory`) and, when one fires, trims every live cache that asked for it:
//! half of the unused CPU bytes on "some" pressure, all of them on "full". The thread sleeps in
//! `poll(2)` with no timeout: no busy loop and no timer while there is no pressure. An
//! application with a signal of its own (a UI toolkit's low-memory callback) calls
//! [`crate::Cache::on_memory_pressure`], which does the same.
//!
//! The reading code takes the file-system root as a parameter, so tests point it at a fake
//! `/proc` and `/sys/fs/cgroup` tree.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// How hard the system is pressed for memory (the PSI trigger that fired).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PressureLevel {
    /// Some tasks stall on memory ("some"): trim half of the unused CPU bytes.
    Some,
    /// Every task stalls on memory ("full"): trim all unused CPU entries.
    Full,
}

impl PressureLevel {
    /// The share of the unused bytes this level trims, as a fraction (numerator, denominator).
    pub fn share(self) -> (u64, u64) {
        match self {
            PressureLevel::Some => (1, 2),
            PressureLevel::Full => (1, 1),
        }
    }
}

/// The memory this process may use: the limit and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryLimit {
    /// Bytes.
    pub bytes: u64,
    /// `"MemTotal"`, or the cgroup file the limit was read from.
    pub source: String,
}

/// The memory this process may use, read under `root` (`/` for the real system): the lowest
/// cgroup limit on the way from the process's cgroup up to the root (cgroup v2 `memory.max`, or
/// v1 `memory.limit_in_bytes`), if any is set and lower than the machine's `MemTotal`, else
/// `MemTotal`.
///
/// ```
/// let limit = texcache::observe::pressure::memory_limit(std::path::Path::new("/")).unwrap();
/// assert!(limit.bytes > 0);
/// ```
pub fn memory_limit(root: &Path) -> std::io::Result<MemoryLimit> {
    let meminfo = std::fs::read_to_string(root.join("proc/meminfo"))?;
    let total = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| std::io::Error::other("no MemTotal in /proc/meminfo"))?;
    let mut best = MemoryLimit {
        bytes: total,
        source: "MemTotal".into(),
    };
    for (file, value) in cgroup_limits(root) {
        if value < best.bytes {
            best = MemoryLimit {
                bytes: value,
                source: file.display().to_string(),
            };
        }
    }
    Ok(best)
}

/// The cgroup directories of this process, with the file names their memory limit and PSI
/// live in: v2 (`0::/path`, mounted at `sys/fs/cgroup` or `sys/fs/cgroup/unified`) first, then
/// v1's memory controller.
fn cgroup_dirs(root: &Path) -> Vec<(PathBuf, &'static str)> {
    let Ok(text) = std::fs::read_to_string(root.join("proc/self/cgroup")) else {
        return Vec::new();
    };
    let mut dirs = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let path = path.trim_start_matches('/');
        if controllers.is_empty() {
            for mount in ["sys/fs/cgroup", "sys/fs/cgroup/unified"] {
                dirs.push((root.join(mount).join(path), "memory.max"));
            }
        } else if controllers.split(',').any(|c| c == "memory") {
            dirs.push((
                root.join("sys/fs/cgroup/memory").join(path),
                "memory.limit_in_bytes",
            ));
        }
    }
    dirs
}

/// Every memory limit set on the way from the process's cgroups up to their roots.
fn cgroup_limits(root: &Path) -> Vec<(PathBuf, u64)> {
    let mut limits = Vec::new();
    for (dir, name) in cgroup_dirs(root) {
        let mut at = Some(dir.as_path());
        while let Some(d) = at.filter(|d| d.starts_with(root.join("sys/fs/cgroup"))) {
            let file = d.join(name);
            if let Ok(v) = std::fs::read_to_string(&file) {
                // "max" (v2) or a number near 2^63 (v1) means no limit.
                if let Ok(n) = v.trim().parse::<u64>() {
                    if n < 1 << 62 {
                        limits.push((file, n));
                    }
                }
            }
            at = d.parent();
        }
    }
    limits
}

/// The PSI files to arm triggers on, best first: the process's cgroup v2 `memory.pressure`,
/// then the system's `/proc/pressure/memory`.
pub(crate) fn psi_files(root: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = cgroup_dirs(root)
        .into_iter()
        .filter(|(_, name)| *name == "memory.max")
        .map(|(dir, _)| dir.join("memory.pressure"))
        .filter(|f| f.exists())
        .collect();
    files.push(root.join("proc/pressure/memory"));
    files
}

/// What a cache does when pressure is reported; the watcher holds caches only weakly.
pub(crate) trait Trimmable: Send + Sync {
    fn on_pressure(&self, level: PressureLevel);
}

/// The PSI trigger thresholds (`[pressure]`): a stall of `some_ms` (or `full_ms`) within
/// `window_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Thresholds {
    pub some_ms: u64,
    pub full_ms: u64,
    pub window_ms: u64,
}

struct Watcher {
    /// The process generation whose thread this is ([`crate::os::fork`]).
    born: u64,
    caches: Mutex<Vec<Weak<dyn Trimmable>>>,
    /// What the watcher thread is doing, for the stats: `watching FILE` or why it is not.
    status: String,
}

static WATCHER: OnceLock<Watcher> = OnceLock::new();

/// Registers `cache` with this process's pressure watcher, starting the watcher's thread on
/// the first call (with the first caller's thresholds). Returns the watcher's status:
/// `"watching FILE"`, or why no thread runs (no PSI on this system, triggers refused, not
/// Linux).
pub(crate) fn watch(cache: Weak<dyn Trimmable>, thresholds: Thresholds) -> String {
    let watcher = WATCHER.get_or_init(|| Watcher {
        born: crate::os::fork::generation(),
        caches: Mutex::new(Vec::new()),
        status: start(thresholds),
    });
    if !crate::os::fork::is_ours(watcher.born) {
        // In a forked child the watcher (and the lock of its list) is the parent's.
        return "not watching: a child forked from the process whose watcher thread it is".into();
    }
    if watcher.status.starts_with("watching") {
        let mut caches = watcher.caches.lock().unwrap_or_else(|e| e.into_inner());
        caches.retain(|c| c.strong_count() > 0);
        caches.push(cache);
    }
    watcher.status.clone()
}

/// Trims every registered cache for `level` (what the watcher thread does when a trigger
/// fires).
fn fire(level: PressureLevel) {
    let Some(watcher) = WATCHER.get() else { return };
    let caches: Vec<Arc<dyn Trimmable>> = {
        let mut caches = watcher.caches.lock().unwrap_or_else(|e| e.into_inner());
        caches.retain(|c| c.strong_count() > 0);
        caches.iter().filter_map(Weak::upgrade).collect()
    };
    for cache in caches {
        cache.on_pressure(level);
    }
}

#[cfg(target_os = "linux")]
fn start(t: Thresholds) -> String {
    use std::os::fd::{AsRawFd, OwnedFd};
    let mut why = Vec::new();
    for file in psi_files(Path::new("/")) {
        let arm = |kind: &str, ms: u64| -> std::io::Result<OwnedFd> {
            arm_trigger(
                &file,
                &format!("{kind} {} {}", ms * 1000, t.window_ms * 1000),
            )
        };
        match (arm("some", t.some_ms), arm("full", t.full_ms)) {
            (Ok(some), Ok(full)) => {
                let spawned = std::thread::Builder::new()
                    .name("texcache-pressure".into())
                    .spawn(move || loop {
                        let Ok([some_ev, full_ev]) = crate::os::file::poll_two(
                            [some.as_raw_fd(), full.as_raw_fd()],
                            libc::POLLPRI,
                        ) else {
                            return;
                        };
                        if (some_ev | full_ev) & libc::POLLERR != 0 {
                            return; // the trigger's file went away (its cgroup was removed)
                        }
                        if full_ev & libc::POLLPRI != 0 {
                            fire(PressureLevel::Full);
                        } else if some_ev & libc::POLLPRI != 0 {
                            fire(PressureLevel::Some);
                        }
                    });
                return match spawned {
                    Ok(_) => format!("watching {}", file.display()),
                    Err(e) => format!("not watching: cannot start the thread: {e}"),
                };
            }
            (Err(e), _) | (_, Err(e)) => why.push(format!("{}: {e}", file.display())),
        }
    }
    format!(
        "not watching: no PSI trigger could be armed ({})",
        why.join("; ")
    )
}

#[cfg(not(target_os = "linux"))]
fn start(_: Thresholds) -> String {
    "not watching: memory-pressure triggers (PSI) exist on Linux only".into()
}

/// Opens a PSI file and writes one trigger (`some|full STALL_US WINDOW_US`) to it.
#[cfg(target_os = "linux")]
fn arm_trigger(file: &Path, trigger: &str) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(file)?;
    f.write_all(trigger.as_bytes())?;
    Ok(f.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let p = root.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        root
    }

    const MEMINFO: &str = "MemTotal:       16384000 kB\nMemFree:         1000 kB\n";

    #[test]
    fn memtotal_without_a_cgroup_limit() {
        let root = tree(&[
            ("proc/meminfo", MEMINFO),
            ("proc/self/cgroup", "0::/user.slice/app\n"),
            ("sys/fs/cgroup/user.slice/app/memory.max", "max\n"),
        ]);
        let l = memory_limit(root.path()).unwrap();
        assert_eq!((l.bytes, l.source.as_str()), (16384000 * 1024, "MemTotal"));
    }

    #[test]
    fn the_tightest_cgroup_v2_limit_on_the_way_up() {
        let root = tree(&[
            ("proc/meminfo", MEMINFO),
            ("proc/self/cgroup", "0::/system.slice/app.service\n"),
            (
                "sys/fs/cgroup/system.slice/app.service/memory.max",
                "2147483648\n",
            ),
            ("sys/fs/cgroup/system.slice/memory.max", "1073741824\n"),
            ("sys/fs/cgroup/memory.max", "max\n"),
        ]);
        let l = memory_limit(root.path()).unwrap();
        assert_eq!(l.bytes, 1 << 30);
        assert!(
            l.source.ends_with("system.slice/memory.max"),
            "{}",
            l.source
        );
    }

    #[test]
    fn cgroup_v1_memory_controller_and_the_unified_mount() {
        let root = tree(&[
            ("proc/meminfo", MEMINFO),
            ("proc/self/cgroup", "4:memory:/docker/abc\n0::/\n"),
            (
                "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes",
                "536870912\n",
            ),
            (
                "sys/fs/cgroup/memory/memory.limit_in_bytes",
                "9223372036854771712\n",
            ),
            ("sys/fs/cgroup/unified/memory.pressure", "some avg10=0.00\n"),
        ]);
        let l = memory_limit(root.path()).unwrap();
        assert_eq!(l.bytes, 512 << 20);
        let psi = psi_files(root.path());
        assert_eq!(
            psi[0],
            root.path().join("sys/fs/cgroup/unified/memory.pressure")
        );
        assert_eq!(
            psi.last().unwrap(),
            &root.path().join("proc/pressure/memory")
        );
    }

    #[test]
    fn a_limit_above_memtotal_is_not_the_limit() {
        let root = tree(&[
            ("proc/meminfo", MEMINFO),
            ("proc/self/cgroup", "0::/a\n"),
            ("sys/fs/cgroup/a/memory.max", "99999999999999\n"),
        ]);
        assert_eq!(memory_limit(root.path()).unwrap().source, "MemTotal");
        let bare = tree(&[]);
        assert!(memory_limit(bare.path()).is_err());
    }
}
