//! Fuzz entry points: each takes arbitrary bytes, drives one of texcache's parsers or decoders
//! with them, and panics only if texcache broke a promise (a panic inside texcache, an error
//! that does not name its input, a cache left inconsistent).
//!
//! They live in the library, not in `fuzz/`, so that the `cargo fuzz` targets (`fuzz/`, a crate
//! of its own outside the main build) and the regression test over the inputs the fuzzers
//! found (`tests/integration/fuzz_regressions.rs`, run by `cargo test`) run the very same code.
//!
//! ```
//! texcache::testing::fuzzing::trace(b"bitmap a cat.png\nrelease a\n");
//! texcache::testing::fuzzing::config(b"[cpu]\nbudget = \"1 KiB\"\n");
//! texcache::testing::fuzzing::avif(&[0; 16]);
//! ```

use crate::key::Resolver;
use crate::picture::bitmap::Bitmap;
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
    ("formats", formats),
    ("exif", exif),
    ("avif", avif),
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
    let mut src = match crate::video::open("fuzz.video", &path, None, options) {
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
    let answer = cache.answer(&request);
    assert!(!answer.contains('\n'), "{answer}");
    let v: serde_json::Value =
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("not JSON ({e}): {answer}"));
    assert!(v.is_object(), "{answer}");
}

/// An image file, decoded through a tier (§3): a hit after a successful load, or a typed
/// error naming the href, one failure, and nothing left in the tier.
pub fn decode(data: &[u8]) {
    decode_as("img.bin", data)
}

/// An image file named by its first byte's pick of extension (TGA, which has no signature, is
/// only tried by its name; the others' decoders are reached from their signatures too): what
/// [`decode`] checks, for every format's path.
pub fn formats(data: &[u8]) {
    const NAMES: [&str; 8] = [
        "img.tga", "img.bmp", "img.tif", "img.ico", "img.ppm", "img.qoi", "img.gif", "img.webp",
    ];
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    decode_as(NAMES[pick as usize % NAMES.len()], rest)
}

/// An EXIF block (as a JPEG's APP1 segment, WebP's `EXIF` chunk and PNG's `eXIf` carry it),
/// put into a small valid picture of each of the three formats: each decodes, upright by
/// whatever orientation the block says (1 to 8), or is a typed error naming the href.
pub fn exif(data: &[u8]) {
    use image::ImageEncoder;
    /// The pixels, and a WebP and a JPEG of them, by name.
    type Pictures = (Vec<u8>, [(&'static str, Vec<u8>); 2]);
    static PICTURES: OnceLock<Pictures> = OnceLock::new();
    let (pixels, pictures) = PICTURES.get_or_init(|| {
        let px = crate::testing::samples::picture(3, 2, 7).into_raw();
        let mut webp = Vec::new();
        image::codecs::webp::WebPEncoder::new_lossless(&mut webp)
            .write_image(&px, 3, 2, image::ExtendedColorType::Rgba8)
            .expect("a WebP");
        // A 3x2 baseline JPEG, gray, as `cjpeg -grayscale` writes it.
        let jpeg = include_bytes!("../../tests/fuzz/exif-base.jpg").to_vec();
        (px, [("exif.webp", webp), ("exif.jpg", jpeg)])
    });
    let block = data.get(..data.len().min(65_000)).unwrap_or(data);
    let files = pictures
        .iter()
        .map(|(href, base)| (*href, with_exif(href, base, block)))
        .chain([("exif.png", png_with_exif(pixels, block))]);
    for (href, file) in files {
        match crate::picture::decode::decode(
            href,
            &file,
            &crate::picture::decode::DecodeOptions::new(MAX_PIXELS),
        ) {
            Ok(b) => {
                let (w, h) = (b.width(), b.height());
                assert!((w, h) == (3, 2) || (w, h) == (2, 3), "{href}: {w}x{h}");
            }
            Err(e) => assert!(e.to_string().starts_with(href), "{e}"),
        }
    }
}

/// `base` (a WebP or JPEG) with `block` as its EXIF: an `EXIF` chunk (with a VP8X header
/// saying so) or an APP1 segment after SOI.
fn with_exif(href: &str, base: &[u8], block: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(base.len() + block.len() + 32);
    if href.ends_with(".webp") {
        // RIFF header, VP8X (EXIF flag), the image's own chunks, then EXIF.
        let body = &base[12..];
        let mut chunks = b"VP8X".to_vec();
        chunks.extend(10u32.to_le_bytes());
        chunks.extend([0x08 | 0x10, 0, 0, 0]); // EXIF and alpha
        chunks.extend([2, 0, 0, 1, 0, 0]); // width - 1, height - 1 (24 bits each)
        chunks.extend_from_slice(body);
        chunks.extend_from_slice(b"EXIF");
        chunks.extend((block.len() as u32).to_le_bytes());
        chunks.extend_from_slice(block);
        if block.len() % 2 == 1 {
            chunks.push(0);
        }
        out.extend_from_slice(b"RIFF");
        out.extend((chunks.len() as u32 + 4).to_le_bytes());
        out.extend_from_slice(b"WEBP");
        out.extend(chunks);
    } else {
        out.extend_from_slice(&base[..2]);
        out.extend([0xFF, 0xE1]);
        out.extend(((block.len() + 8) as u16).to_be_bytes());
        out.extend_from_slice(b"Exif\0\0");
        out.extend_from_slice(block);
        out.extend_from_slice(&base[2..]);
    }
    out
}

/// A 3x2 RGBA PNG of `pixels` with `block` as its `eXIf` chunk.
fn png_with_exif(pixels: &[u8], block: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, 3, 2);
    encoder.set_color(png::ColorType::Rgba);
    let mut writer = encoder.write_header().expect("a PNG header");
    writer
        .write_chunk(png::chunk::ChunkType(*b"eXIf"), block)
        .expect("a chunk");
    writer.write_image_data(pixels).expect("3x2 pixels");
    writer.finish().expect("a PNG");
    out
}

/// An AVIF container built from the input, so that the fuzzer explores the item locations and
/// properties rather than box sizes: the first bytes say how much padding (`free` box) makes
/// the file long, the `iloc` version and field sizes, and the item and extent counts; the rest
/// is the `iloc` body's items, then the AV1 configuration. Decoded as [`decode`] decodes (with
/// the `ffmpeg` feature, through FFmpeg's AV1 decoder), it must be a picture or a typed error.
pub fn avif(data: &[u8]) {
    let mut r = data;
    let mut take = |n: usize| -> &[u8] {
        let (head, rest) = r.split_at(n.min(r.len()));
        r = rest;
        head
    };
    let byte = |b: &[u8], i: usize| b.get(i).copied().unwrap_or(0);
    let head = take(6);
    let padding = u16::from_le_bytes([byte(head, 0), byte(head, 1)]) as usize * 2;
    let version = byte(head, 2) % 3;
    let sizes = [byte(head, 3), byte(head, 4)];
    let items_len = byte(head, 5) as usize * 4;
    let items = take(items_len).to_vec();
    let av1c = take(64).to_vec();
    let full = |kind: &[u8; 4], version: u8, body: &[u8]| {
        let mut b = vec![version, 0, 0, 0];
        b.extend_from_slice(body);
        iso_box(kind, &b)
    };
    let mut iloc = sizes.to_vec();
    iloc.extend_from_slice(&items);
    let ispe = full(b"ispe", 0, &[0, 0, 0, 16, 0, 0, 0, 16]);
    let ipco = iso_box(b"ipco", &[iso_box(b"av1C", &av1c), ispe].concat());
    let ipma = full(b"ipma", 0, &[0, 0, 0, 1, 0, 1, 2, 0x81, 0x82]);
    let meta = full(
        b"meta",
        0,
        &[
            full(b"pitm", 0, &[0, 1]),
            full(b"iloc", version, &iloc),
            iso_box(b"iprp", &[ipco, ipma].concat()),
        ]
        .concat(),
    );
    let mut file = [
        iso_box(b"ftyp", b"avif\0\0\0\0avifmif1"),
        meta,
        iso_box(b"mdat", r),
    ]
    .concat();
    file.extend(iso_box(b"free", &vec![0; padding]));
    decode_as("img.avif", &file)
}

/// An ISO base media box: size, type, body.
fn iso_box(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut b = ((8 + body.len()) as u32).to_be_bytes().to_vec();
    b.extend_from_slice(kind);
    b.extend_from_slice(body);
    b
}

/// [`decode`] of `data` named `href`.
fn decode_as(href: &str, data: &[u8]) {
    let resolver = Resolver::new("/fuzz");
    let tier: Tier<Bitmap> = Tier::new(TierKind::Cpu, 1 << 30, 0);
    let load = || {
        tier.acquire(
            href,
            || resolver.key(&resolver.lookup(href)),
            |_| {
                crate::picture::decode::decode(
                    href,
                    data,
                    &crate::picture::decode::DecodeOptions::new(MAX_PIXELS),
                )
            },
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
    let mut options = crate::picture::decode::DecodeOptions::new(MAX_PIXELS);
    options.fit = Some((7, 5));
    match crate::picture::decode::decode(href, data, &options) {
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
