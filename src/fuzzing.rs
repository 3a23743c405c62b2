//! Fuzz entry points: each takes arbitrary bytes, drives one of texcache's parsers or decoders
//! with them, and panics only if texcache broke a promise (a panic inside texcache, an error
//! that does not name its input, a cache left inconsistent).
//!
//! They live in the library, not in `fuzz/`, so that the `cargo fuzz` targets (`fuzz/`, a crate
//! of its own outside the main build) and the regression test over the inputs the fuzzers
//! found (`tests/fuzz_regressions.rs`, run by `cargo test`) run the very same code.
//!
//! ```
//! texcache::fuzzing::trace(b"bitmap a cat.png\nrelease a\n");
//! texcache::fuzzing::config(b"[cpu]\nbudget = \"1 KiB\"\n");
//! ```

use crate::bitmap::{self, Bitmap};
use crate::key::Resolver;
use crate::tier::{Tier, TierKind};
use crate::{Cache, Config, Error};
use std::io::Write;
use std::os::fd::FromRawFd;
use std::path::PathBuf;
use std::sync::OnceLock;

/// Pixels a fuzzed image or video frame may have: big enough for every interesting header,
/// small enough that a fuzzer's iteration stays fast and its memory bounded.
pub const MAX_PIXELS: u64 = 1 << 22;

/// A fuzz target's entry point.
pub type Target = fn(&[u8]);

/// The fuzz targets, by name: what `fuzz/` builds and what the regression test replays
/// (inputs under `tests/fuzz/NAME/`).
pub const TARGETS: &[(&str, Target)] = &[
    ("config", config),
    ("trace", trace),
    ("video", video),
    ("control", control),
    ("decode", decode),
];

/// A config file (§5): parsed, or an error naming the file.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, "fuzz.toml") {
        Ok(cfg) => {
            // What parses must print and parse back to the same settings.
            let again = Config::parse(&cfg.to_toml(), "again.toml")
                .unwrap_or_else(|e| panic!("the effective settings do not parse back: {e}"));
            assert_eq!(cfg.to_toml(), again.to_toml());
        }
        Err(e) => assert!(e.to_string().starts_with("fuzz.toml"), "{e}"),
    }
}

/// A trace (§7): parsed, or an error naming the file and line.
pub fn trace(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = crate::trace::Trace::parse(text, "fuzz.trace") {
        assert!(e.to_string().starts_with("fuzz.trace:"), "{e}");
    }
}

/// A video file (YUV4MPEG2, GIF, APNG, WebP, and with the `ffmpeg` feature whatever FFmpeg
/// opens): opened, its first frames decoded into one buffer of the frame size the header
/// promised, then a seek and a frame more; or a typed error naming the href.
pub fn video(data: &[u8]) {
    let Some(path) = memory_file(data) else {
        return;
    };
    let named = |e: &Error| assert!(e.to_string().starts_with("fuzz.video"), "{e}");
    let options = crate::video::SourceOptions {
        max_pixels: MAX_PIXELS,
        decoder_threads: 1,
    };
    let mut src = match crate::video::source::open("fuzz.video", &path, None, options) {
        Ok(src) => src,
        Err(e) => return named(&e),
    };
    let info = src.info().clone();
    assert!(info.width as u64 * info.height as u64 <= MAX_PIXELS);
    let mut buf = vec![0u8; info.frame_bytes() as usize];
    for _ in 0..8 {
        match src.read_frame(&mut buf) {
            Ok(Some(at)) => assert!(at.time.is_finite(), "{at:?}"),
            Ok(None) => break,
            Err(e) => return named(&e),
        }
    }
    match src.seek(0.05).and_then(|_| src.read_frame(&mut buf)) {
        Ok(_) => {}
        Err(e) => named(&e),
    }
}

/// A control-socket request line (§9): always one line of JSON.
pub fn control(data: &[u8]) {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| {
        let mut cfg = Config::default();
        cfg.stats.history_interval_ms = 0;
        Cache::new(cfg).expect("a default cache")
    });
    let request = String::from_utf8_lossy(data);
    let answer = crate::control::answer(cache, &request);
    assert!(!answer.contains('\n'), "{answer}");
    let v: serde_json::Value =
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("not JSON ({e}): {answer}"));
    assert!(v.is_object(), "{answer}");
}

/// An image file, decoded through a tier (§3): a hit after a successful load, or a typed
/// error naming the href, one failure, and nothing left in the tier.
pub fn decode(data: &[u8]) {
    let resolver = Resolver::new("/fuzz");
    let tier: Tier<Bitmap> = Tier::new(TierKind::Cpu, 1 << 30, 0);
    let href = "img.bin";
    let load = || {
        tier.acquire(
            href,
            || resolver.key(&resolver.lookup(href)),
            |_| bitmap::decode(href, data, &crate::decode::DecodeOptions::new(MAX_PIXELS)),
        )
    };
    match load() {
        Ok(b) => {
            let bytes = b.width() as u64 * b.height() as u64 * b.bytes_per_pixel() as u64;
            assert_eq!((b.bytes(), b.pixels().len() as u64), (bytes, bytes));
            drop(b);
            let again = load().expect("a hit");
            let s = tier.stats();
            assert_eq!((s.hits, s.misses, s.used), (1, 1, bytes), "{s:?}");
            drop(again);
        }
        Err(e) => {
            assert!(e.to_string().starts_with(href), "{e}");
            let s = tier.stats();
            assert_eq!((s.failures, s.entries, s.used), (1, 0, 0), "{s:?}");
        }
    }
    // Fitted (§1): inside the box, or a typed error.
    let mut options = crate::decode::DecodeOptions::new(MAX_PIXELS);
    options.fit = Some((7, 5));
    match bitmap::decode(href, data, &options) {
        Ok(b) => assert!(b.width() <= 7 && b.height() <= 5 && b.width() * b.height() > 0),
        Err(e) => assert!(e.to_string().starts_with(href), "{e}"),
    }
}

/// `data` as a file that lives in memory only (a memfd), named by its `/proc/self/fd` path.
/// The file stays open (one descriptor per process, reused by the next input).
fn memory_file(data: &[u8]) -> Option<PathBuf> {
    static FILE: OnceLock<std::sync::Mutex<std::fs::File>> = OnceLock::new();
    let file = FILE.get_or_init(|| {
        // SAFETY: a valid C string; memfd_create returns a new descriptor we own, or -1.
        let fd = unsafe { libc::memfd_create(c"texcache-fuzz".as_ptr(), 0) };
        assert!(fd >= 0, "memfd_create failed");
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        std::sync::Mutex::new(unsafe { std::fs::File::from_raw_fd(fd) })
    });
    let mut f = file.lock().ok()?;
    f.set_len(0).ok()?;
    use std::io::Seek;
    f.seek(std::io::SeekFrom::Start(0)).ok()?;
    f.write_all(data).ok()?;
    use std::os::fd::AsRawFd;
    Some(PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd())))
}
