//! The GPU driver's noise, kept out of what a user of the command line reads.
//!
//! On a headless Linux machine, creating a wgpu instance makes libwayland (which wgpu's Vulkan
//! and GL backends ask for a display) print `error: XDG_RUNTIME_DIR is invalid or not set in
//! the environment.` on stderr. It is harmless (there is no display to find, and texcache
//! needs none), but it reads like texcache's own error. [`quietly`] runs the device's opening
//! with stderr sent to a scratch file, then passes on every line but that one.
//! `TEXCACHE_DRIVER_LOG=1` passes everything on.

use std::io::{Read, Seek, Write};

/// Whether a line the driver printed is the known, harmless noise.
fn is_noise(line: &str) -> bool {
    line.contains("XDG_RUNTIME_DIR")
}

/// Runs `f` (which opens a GPU device) with the driver's known noise on stderr filtered out.
/// What else was written to stderr meanwhile is passed on after `f` returns.
pub fn quietly<T>(f: impl FnOnce() -> T) -> T {
    if std::env::var_os("TEXCACHE_DRIVER_LOG").is_some_and(|v| v == "1") {
        return f();
    }
    let scratch = std::env::temp_dir().join(format!("texcache-stderr-{}", std::process::id()));
    let Ok(mut file) = std::fs::File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&scratch)
    else {
        return f();
    };
    let _ = std::fs::remove_file(&scratch);
    use std::os::fd::AsRawFd;
    let _ = std::io::stderr().flush();
    // SAFETY: dup and dup2 take plain descriptors: 2 (stderr, open for the whole process) and
    // the scratch file's, which `file` keeps open until after the second dup2 below. The saved
    // copy is closed exactly once, after stderr is restored from it.
    let saved = unsafe { libc::dup(2) };
    // SAFETY: as above.
    if saved < 0 || unsafe { libc::dup2(file.as_raw_fd(), 2) } < 0 {
        if saved >= 0 {
            // SAFETY: `saved` is ours and still open.
            unsafe { libc::close(saved) };
        }
        return f();
    }
    let out = f();
    // SAFETY: as above; `saved` is a valid descriptor we own.
    unsafe {
        libc::dup2(saved, 2);
        libc::close(saved);
    }
    let mut text = String::new();
    if file.rewind().is_ok() && file.read_to_string(&mut text).is_ok() {
        let mut err = std::io::stderr().lock();
        for line in text.lines().filter(|l| !is_noise(l)) {
            let _ = writeln!(err, "{line}");
        }
    }
    out
}
