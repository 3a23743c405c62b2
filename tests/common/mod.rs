//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `../shared/corpus` beside the repository.
pub fn corpus() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    assert!(
        p.is_dir(),
        "the test corpus is missing: expected {} (../shared beside the repository)",
        p.display()
    );
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
    texcache::testing::samples::picture(w, h, w * 31 + h)
        .save(dir.join(name))
        .unwrap();
}

#[cfg(feature = "gpu")]
/// The GPU every GPU test uses: a real wgpu device (lavapipe on machines without a GPU). With no
/// adapter the test fails with a clear message, unless `TEXCACHE_SKIP_GPU_TESTS=1` opts out
/// (then `None`).
pub fn gpu() -> Option<std::sync::Arc<texcache::Gpu>> {
    static GPU: std::sync::OnceLock<Result<std::sync::Arc<texcache::Gpu>, String>> =
        std::sync::OnceLock::new();
    let got = GPU.get_or_init(|| {
        texcache::Gpu::open(texcache::config::Backend::Auto)
            .map(std::sync::Arc::new)
            .map_err(|e| e.to_string())
    });
    match got {
        Ok(g) => Some(g.clone()),
        Err(_) if std::env::var("TEXCACHE_SKIP_GPU_TESTS").as_deref() == Ok("1") => {
            eprintln!("TEXCACHE_SKIP_GPU_TESTS=1: skipping a GPU test");
            None
        }
        Err(e) => panic!(
            "GPU tests need a wgpu adapter: {e}\n(install one, e.g. `apt-get install mesa-vulkan-drivers`, \
             or set TEXCACHE_SKIP_GPU_TESTS=1 to skip GPU tests explicitly)"
        ),
    }
}

#[cfg(feature = "gpu")]
/// A cache over `mediadir` bound to the test GPU.
pub fn gpu_cache(
    mediadir: &Path,
    cpu_budget: u64,
    gpu_budget: u64,
    keep_cpu_copy: bool,
) -> Option<texcache::Cache> {
    let mut cfg = texcache::Config::default();
    cfg.mediadir = mediadir.to_path_buf();
    cfg.cpu.budget.0 = cpu_budget;
    cfg.gpu.budget.0 = gpu_budget;
    cfg.gpu.keep_cpu_copy = keep_cpu_copy;
    gpu_cache_with(cfg)
}

#[cfg(feature = "gpu")]
/// A cache with `cfg`, bound to the test GPU.
pub fn gpu_cache_with(cfg: texcache::Config) -> Option<texcache::Cache> {
    let gpu = gpu()?;
    let cache = texcache::Cache::new(cfg).unwrap();
    cache.bind_gpu(gpu);
    Some(cache)
}

/// The file names of the valid PngSuite images (those not starting with `x`), sorted.
pub fn pngsuite_valid() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(corpus().join("pngsuite"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".png") && !n.starts_with('x'))
        .collect();
    names.sort();
    names
}

/// Checks that `path` is well-formed SVG (parsed as XML) with a legend naming every one of
/// `series`, and at least one line drawn per series.
pub fn assert_svg(path: &Path, series: &[&str]) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc = roxmltree::Document::parse(&text)
        .unwrap_or_else(|e| panic!("{} is not XML: {e}", path.display()));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let texts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    for s in series {
        assert!(
            texts.contains(s),
            "no series {s:?} in {}: {texts:?}",
            path.display()
        );
    }
    let lines = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline") || n.has_tag_name("path"))
        .count();
    assert!(
        lines >= series.len(),
        "{lines} lines drawn for {} series",
        series.len()
    );
}

/// The series names of the memory graph.
pub const MEMORY_SERIES: [&str; 5] = ["cpu used", "cpu budget", "gpu used", "gpu budget", "video"];

/// The `texcache` command line (the workspace member `cli/`, package `texcache-cli`), as
/// `cargo test --workspace` builds it beside the test binaries (`cli/tests/` makes it build
/// the binary itself); built here if missing, as when only this package's tests were built.
pub fn texcache_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let path = exe.parent().unwrap().parent().unwrap().join("texcache");
        if !path.exists() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let ok = std::process::Command::new(cargo)
                .args(["build", "-p", "texcache-cli", "--bin", "texcache"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .unwrap();
            assert!(ok.success(), "cannot build the texcache command line");
        }
        path
    })
    .clone()
}

/// Runs `f` on its own thread and fails the test if it has not returned in `secs` seconds: for
/// tests of things that must not hang, so that a regression fails instead of blocking CI.
pub fn within<T: Send + 'static>(
    secs: u64,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    use std::sync::mpsc;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(std::time::Duration::from_secs(secs)) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: still blocked after {secs} s"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: panicked"),
    }
}

/// `texcache stats --socket SOCK ARGS...`, run to completion.
pub fn stats_over(sock: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(texcache_bin())
        .arg("stats")
        .arg("--socket")
        .arg(sock)
        .args(args)
        .output()
        .unwrap()
}

/// Spawns `cmd` with its stdout piped and returns it with its first line of output (a
/// server's "ready" line), read without any sleep.
pub fn spawn_until_line(mut cmd: std::process::Command) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line)
}

/// A field of `/proc/self/status` (`VmRSS:`, `VmHWM:`), in bytes.
pub fn status(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// The MD5 of `data` in lowercase hex, as ffmpeg's `framemd5` writes it.
pub fn md5_hex(data: &[u8]) -> String {
    use md5::{Digest, Md5};
    Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
