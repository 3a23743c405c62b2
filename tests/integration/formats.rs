//! Pictures in every format docs/reference.md lists (§2a): the lossless ones decode to exactly
//! the pixels of the PNG they were written from; JPEG variants (progressive, CMYK) to within
//! their loss; EXIF orientation applied for JPEG, PNG and WebP.

use crate::common;

use std::path::{Path, PathBuf};
use texcache::ErrorKind;
use texcache::PixelFormat;

fn corpus(sub: &str) -> PathBuf {
    common::corpus().join(sub)
}

fn decode(path: &Path) -> texcache::Result<texcache::Bitmap> {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    texcache::picture::load_file(
        &name,
        path,
        None,
        &texcache::picture::DecodeOptions::new(1 << 28),
    )
}

/// kodim23 as the PNG it was written from, RGBA8.
fn kodim23() -> Vec<u8> {
    image::open(corpus("photos/kodim23.png"))
        .unwrap()
        .to_rgba8()
        .into_raw()
}

/// Peak signal-to-noise ratio of two RGBA8 images over their colour channels, in dB.
fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let (mut sum, mut n) = (0f64, 0f64);
    for (pa, pb) in a.chunks_exact(4).zip(b.chunks_exact(4)) {
        for c in 0..3 {
            let d = pa[c] as f64 - pb[c] as f64;
            sum += d * d;
            n += 1.0;
        }
    }
    10.0 * (255.0f64 * 255.0 / (sum / n).max(1e-12)).log10()
}

#[test]
fn lossless_formats_decode_to_the_exact_pixels() {
    let want = kodim23();
    for name in [
        "kodim23.bmp",
        "kodim23.ppm",
        "kodim23.qoi",
        "kodim23.tga",
        "kodim23.tiff",
        "kodim23_lossless.webp",
    ] {
        let b = decode(&corpus("formats").join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            (b.width(), b.height(), b.format()),
            (768, 512, PixelFormat::Rgba8),
            "{name}"
        );
        assert!(
            b.pixels() == &want[..],
            "{name}: pixels differ from kodim23.png"
        );
    }
}

#[test]
fn icons_gray_tiffs_and_lossy_jpegs() {
    let ico = decode(&corpus("formats/icon64.ico")).unwrap();
    assert_eq!(
        (ico.width(), ico.height(), ico.format()),
        (64, 64, PixelFormat::Rgba8)
    );
    let gray = decode(&corpus("formats/kodim23_gray16.tiff")).unwrap();
    assert_eq!(
        (gray.width(), gray.height(), gray.format()),
        (768, 512, PixelFormat::Gray8)
    );
    assert_eq!(
        gray.pixels().len(),
        768 * 512,
        "16-bit gray is counted as Gray8 (§2)"
    );
    let want = kodim23();
    for (name, min_db) in [
        ("kodim23_progressive.jpg", 30.0),
        ("kodim23_cmyk.jpg", 30.0),
    ] {
        let b = decode(&corpus("formats").join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            (b.width(), b.height(), b.format()),
            (768, 512, PixelFormat::Rgba8),
            "{name}"
        );
        let db = psnr(b.pixels(), &want);
        assert!(db >= min_db, "{name}: {db:.1} dB from kodim23.png");
        assert!(
            b.pixels().chunks_exact(4).all(|p| p[3] == 255),
            "{name}: opaque"
        );
    }
}

#[cfg(feature = "ffmpeg")]
#[test]
fn avif_decodes_through_ffmpegs_av1_decoder_within_its_loss() {
    let b = decode(&corpus("formats/kodim23.avif")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (b.width(), b.height(), b.format()),
        (768, 512, PixelFormat::Rgba8)
    );
    assert!(b.pixels().chunks_exact(4).all(|p| p[3] == 255), "opaque");
    let db = psnr(b.pixels(), &kodim23());
    assert!(
        db > 30.0,
        "kodim23.avif: {db:.1} dB from the PNG it was written from"
    );
    // Fitted, as any format: decoded, then resized into the box.
    let options = texcache::picture::DecodeOptions {
        fit: Some((200, 200)),
        ..texcache::picture::DecodeOptions::new(1 << 28)
    };
    let path = corpus("formats/kodim23.avif");
    let small = texcache::picture::load_file("kodim23.avif", &path, None, &options).unwrap();
    assert_eq!((small.width(), small.height()), (200, 133));
}

#[cfg(feature = "ffmpeg")]
#[test]
fn damaged_avif_files_are_typed_errors() {
    let good = std::fs::read(corpus("formats/kodim23.avif")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cut = tmp.path().join("cut.avif");
    for len in [40, good.len() / 3, good.len() - 100] {
        std::fs::write(&cut, &good[..len]).unwrap();
        match decode(&cut) {
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::Corrupt { .. } | ErrorKind::Unsupported { .. }
                ) =>
            {
                assert!(e.to_string().contains("cut.avif"), "{e}")
            }
            other => panic!("cut at {len}: {:?}", other.map(|b| (b.width(), b.height()))),
        }
    }
    // The picture's bytes overwritten: the decoder's error or a damaged picture, never a panic.
    let mut noisy = good.clone();
    let n = noisy.len();
    for (i, b) in noisy[n / 2..n / 2 + 512].iter_mut().enumerate() {
        *b ^= (i * 37) as u8;
    }
    std::fs::write(&cut, &noisy).unwrap();
    let _ = decode(&cut);
    // Every byte of the container's boxes (the first 400) changed in turn: typed errors or a
    // picture, never a panic or a read past the file.
    for i in 0..400.min(good.len()) {
        let mut bad = good.clone();
        bad[i] ^= 0xA5;
        match texcache::picture::decode(
            "bad.avif",
            &bad,
            &texcache::picture::DecodeOptions::new(1 << 28),
        ) {
            Ok(b) => assert!(b.width() > 0 && b.height() > 0),
            Err(e) => assert!(e.href() == Some("bad.avif"), "{e}"),
        }
    }
}

#[cfg(not(feature = "ffmpeg"))]
#[test]
fn avif_says_what_this_build_lacks() {
    match decode(&corpus("formats/kodim23.avif")) {
        Err(e) if matches!(e.kind(), ErrorKind::Unsupported { .. }) => {
            let m = e.to_string();
            assert!(m.contains("kodim23.avif") && m.contains("ffmpeg"), "{m}")
        }
        other => panic!("{:?}", other.map(|b| (b.width(), b.height()))),
    }
}

/// The offset of the first segment with marker `m` (0xFF, m) of a JPEG, walking the segments
/// from the start (up to the first scan).
fn marker(jpg: &[u8], m: u8) -> usize {
    let mut i = 2;
    loop {
        assert_eq!(jpg[i], 0xFF, "segment at {i}");
        if jpg[i + 1] == m {
            return i;
        }
        assert_ne!(jpg[i + 1], 0xDA, "no marker {m:#x} before the scan");
        i += 2 + u16::from_be_bytes([jpg[i + 2], jpg[i + 3]]) as usize;
    }
}

#[test]
fn jpegs_libjpeg_turbo_tolerates_decode_and_variants_nothing_here_reads_are_unsupported() {
    let jpg = std::fs::read(corpus("photos/kodim23.jpg")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = texcache::Config::default();
    cfg.mediadir = tmp.path().into();
    let cache = texcache::Cache::new(cfg).unwrap();
    let want = decode(&corpus("photos/kodim23.jpg")).unwrap();
    // Junk between two segments (libjpeg-turbo: "extraneous bytes before marker"), a comment
    // of length 0, and trailing garbage after the end of image.
    let dqt = marker(&jpg, 0xDB);
    let junk = [&jpg[..dqt], b"\x00\x12junk\x34", &jpg[dqt..]].concat();
    let com0 = [&jpg[..dqt], &[0xFF, 0xFE, 0x00, 0x00][..], &jpg[dqt..]].concat();
    let trailing = [&jpg[..], &[0x00, 0x55, 0xAA][..]].concat();
    for (name, bytes) in [
        ("junk.jpg", junk),
        ("com0.jpg", com0),
        ("trailing.jpg", trailing),
    ] {
        std::fs::write(tmp.path().join(name), bytes).unwrap();
        let b = cache.bitmap(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            b.pixels() == want.pixels(),
            "{name}: pixels differ from the clean file"
        );
    }
    // Cut short inside the first scan: an error, not a grey picture.
    let sos = marker(&jpg, 0xDA);
    std::fs::write(tmp.path().join("cut.jpg"), &jpg[..sos + 400]).unwrap();
    let e = cache.bitmap("cut.jpg").unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Corrupt { .. }) && e.to_string().contains("cut.jpg"),
        "{e}"
    );
    // Lossless (SOF3), 12-bit (SOF1 with precision 12) and, without the `turbojpeg` feature,
    // arithmetic coding (SOF9): variants no decoder here implements are Unsupported, not
    // Corrupt. (libjpeg-turbo decodes arithmetic-coded files: tests/integration/jpeg.rs.)
    let sof = marker(&jpg, 0xC0);
    let variant = |m: u8, precision: u8| {
        let mut v = jpg.clone();
        v[sof + 1] = m;
        v[sof + 4] = precision;
        v
    };
    let mut variants = vec![
        ("lossless.jpg", variant(0xC3, 8)),
        ("twelve.jpg", variant(0xC1, 12)),
    ];
    if !cfg!(feature = "turbojpeg") {
        variants.push(("arith.jpg", variant(0xC9, 8)));
    }
    for (name, bytes) in variants {
        std::fs::write(tmp.path().join(name), bytes).unwrap();
        match cache.bitmap(name) {
            Err(e) if matches!(e.kind(), ErrorKind::Unsupported { .. }) => {
                assert!(e.to_string().contains(name), "{e}")
            }
            other => panic!("{name}: {:?}", other.map(|b| b.width())),
        }
    }
}

#[test]
fn every_exif_orientation_comes_out_upright() {
    let dir = corpus("orientation");
    let want = image::open(dir.join("upright.png")).unwrap().to_rgba8();
    let (w, h) = want.dimensions();
    for n in 1..=8 {
        for (ext, min_db) in [("png", f64::INFINITY), ("jpg", 30.0), ("webp", 30.0)] {
            let name = format!("kodim23_orientation{n}.{ext}");
            let b = decode(&dir.join(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!((b.width(), b.height()), (w, h), "{name}: the upright size");
            if min_db.is_infinite() {
                assert!(
                    b.pixels() == &want.as_raw()[..],
                    "{name}: not exactly upright.png"
                );
            } else {
                let db = psnr(b.pixels(), want.as_raw());
                assert!(db >= min_db, "{name}: {db:.1} dB from upright.png");
            }
            let info = texcache::probe::probe(&name, &dir.join(&name), 1 << 28).unwrap();
            let texcache::probe::Probe::Picture(p) = info else {
                panic!("{name}: {info:?}")
            };
            let stored = if n >= 5 { (h, w) } else { (w, h) };
            assert_eq!(
                (
                    p.orientation,
                    (p.width, p.height),
                    (p.upright_width, p.upright_height)
                ),
                (n, stored, (w, h)),
                "{name}"
            );
        }
    }
    // With loader.orientation = false, as stored.
    let mut cfg = texcache::Config::default();
    cfg.mediadir = dir.clone();
    cfg.loader.orientation = false;
    let cache = texcache::Cache::new(cfg).unwrap();
    let b = cache.bitmap("kodim23_orientation6.jpg").unwrap();
    assert_eq!((b.width(), b.height()), (h, w));
    let mut cfg = texcache::Config::default();
    cfg.mediadir = dir;
    let cache = texcache::Cache::new(cfg).unwrap();
    let b = cache.bitmap("kodim23_orientation6.jpg").unwrap();
    assert_eq!((b.width(), b.height()), (w, h));
    let entries = cache.stats_with_entries().entries.unwrap();
    let texcache::observe::stats::Entry::Cached(e) = &entries[0] else {
        panic!("{entries:?}")
    };
    assert_eq!(
        (e.width, e.height, e.bytes),
        (w, h, w as u64 * h as u64 * 4),
        "upright in the stats"
    );
}

/// A `w`x`h` RGB TIFF, 8 bits a sample, uncompressed, in 16x16 tiles (the last column and row
/// of tiles partly outside the picture, as the format has them) with its samples in separate
/// planes (PlanarConfiguration 2), as libtiff writes with `tiffcp -t -p separate`.
fn tiled_planar_tiff(w: u32, h: u32) -> Vec<u8> {
    let tiles_per_plane = w.div_ceil(16) * h.div_ceil(16);
    let tiles = tiles_per_plane * 3;
    let entries: u32 = 11;
    let ifd_len = 2 + entries * 12 + 4;
    let bits_at = 8 + ifd_len;
    let offsets_at = bits_at + 6;
    let counts_at = offsets_at + 4 * tiles;
    let data_at = counts_at + 4 * tiles;
    let mut t = b"II*\0".to_vec();
    t.extend(8u32.to_le_bytes());
    t.extend((entries as u16).to_le_bytes());
    let mut entry = |tag: u16, kind: u16, count: u32, value: u32| {
        t.extend(tag.to_le_bytes());
        t.extend(kind.to_le_bytes());
        t.extend(count.to_le_bytes());
        t.extend(value.to_le_bytes());
    };
    entry(256, 3, 1, w);
    entry(257, 3, 1, h);
    entry(258, 3, 3, bits_at);
    entry(259, 3, 1, 1);
    entry(262, 3, 1, 2);
    entry(277, 3, 1, 3);
    entry(284, 3, 1, 2);
    entry(322, 3, 1, 16);
    entry(323, 3, 1, 16);
    entry(324, 4, tiles, offsets_at);
    entry(325, 4, tiles, counts_at);
    t.extend(0u32.to_le_bytes());
    for _ in 0..3 {
        t.extend(8u16.to_le_bytes());
    }
    for i in 0..tiles {
        t.extend((data_at + i * 256).to_le_bytes());
    }
    for _ in 0..tiles {
        t.extend(256u32.to_le_bytes());
    }
    for i in 0..tiles {
        t.extend((0..256).map(|p| (p as u32 * 3 + i * 40) as u8));
    }
    t
}

/// Valid TIFFs the `tiff` crate panics on (tiled, separate planes, tiles past the edges:
/// Pillow's `tiff_tiled_planar_*` kind) are `Unsupported`, saying why, without calling it; a
/// panic is never what the user sees. Tiled planar pictures of whole tiles decode, exactly.
#[test]
fn tiled_planar_tiffs_decode_or_are_unsupported_without_a_panic() {
    let panics = panic_counter();
    let tmp = tempfile::tempdir().unwrap();
    let before = panics.load(std::sync::atomic::Ordering::SeqCst);
    for (w, h) in [(40, 24), (17, 17), (16, 40), (100, 3)] {
        let name = format!("tiled_planar_{w}x{h}.tif");
        let path = tmp.path().join(&name);
        std::fs::write(&path, tiled_planar_tiff(w, h)).unwrap();
        match decode(&path) {
            Err(e) if matches!(e.kind(), ErrorKind::Unsupported { .. }) => {
                let m = e.to_string();
                assert!(m.contains(&name) && m.contains("separate"), "{m}")
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    let path = tmp.path().join("whole_tiles.tif");
    std::fs::write(&path, tiled_planar_tiff(32, 32)).unwrap();
    let b = decode(&path).unwrap();
    // Plane p's tile t (row-major, 2x2 tiles) holds sample i as (3 i + 40 (4 p + t)) mod 256.
    for (x, y) in [(0, 0), (31, 0), (5, 17), (31, 31)] {
        let (t, i) = ((y / 16) * 2 + x / 16, (y % 16) * 16 + x % 16);
        let want: Vec<u8> = (0..3)
            .map(|p| (i * 3 + 40 * (4 * p + t)) as u8)
            .chain([255])
            .collect();
        let at = (y * 32 + x) as usize * 4;
        assert_eq!(&b.pixels()[at..at + 4], &want[..], "pixel {x},{y}");
    }
    assert_eq!(
        panics.load(std::sync::atomic::Ordering::SeqCst),
        before,
        "a decoder panicked"
    );
}

/// Counts the panics of this process from now on (the hook is installed once).
fn panic_counter() -> &'static std::sync::atomic::AtomicUsize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static PANICS: AtomicUsize = AtomicUsize::new(0);
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            previous(info)
        }));
    });
    &PANICS
}

/// YCCK JPEGs (as TurboJPEG's compressor writes CMYK; kept in `tests/data/`): zune-jpeg
/// panicked converting them ("Slice to small cannot write"). They decode to what `djpeg`
/// gives: exactly with libjpeg-turbo, within zune-jpeg's different chroma upsampling without.
#[test]
fn ycck_jpegs_decode_like_djpeg_without_a_panic() {
    let panics = panic_counter();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut checked = 0;
    for name in [
        "ycck_420_67x45.jpg",
        "ycck_444_67x45.jpg",
        "ycck_420_progressive_300x201.jpg",
    ] {
        let path = data.join(name);
        let before = panics.load(std::sync::atomic::Ordering::SeqCst);
        let b = decode(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            panics.load(std::sync::atomic::Ordering::SeqCst),
            before,
            "{name}: a decoder panicked"
        );
        let out = std::process::Command::new("djpeg")
            .arg(&path)
            .output()
            .expect("djpeg (libjpeg-turbo-progs; scripts/install-deps installs it)");
        let want = image::load_from_memory(&out.stdout).unwrap().to_rgba8();
        assert_eq!((b.width(), b.height()), want.dimensions(), "{name}");
        let diffs: Vec<i32> = b
            .pixels()
            .iter()
            .zip(want.as_raw())
            .map(|(a, b)| (*a as i32 - *b as i32).abs())
            .collect();
        let max = *diffs.iter().max().unwrap();
        let mean = diffs.iter().sum::<i32>() as f64 / diffs.len() as f64;
        let (max_ok, mean_ok) = if cfg!(feature = "turbojpeg") {
            (1, 0.01)
        } else {
            (16, 0.25)
        };
        assert!(
            max <= max_ok && mean <= mean_ok,
            "{name}: up to {max} levels from djpeg, {mean:.3} on average"
        );
        checked += 1;
    }
    assert_eq!(checked, 3);
}

/// A WebP whose `EXIF` chunk starts with JPEG's `Exif\0\0` header before the TIFF header (as
/// Pillow writes it) is turned upright as well as one without.
#[test]
fn webp_exif_after_an_exif_header_is_read_too() {
    let dir = corpus("orientation");
    let want = image::open(dir.join("upright.png")).unwrap().to_rgba8();
    let tmp = tempfile::tempdir().unwrap();
    for n in 1..=8 {
        let name = format!("kodim23_orientation{n}.webp");
        let webp = std::fs::read(dir.join(&name)).unwrap();
        // Rebuild the RIFF with "Exif\0\0" in front of the EXIF chunk's data.
        let mut out = Vec::new();
        let mut at = 12;
        while at + 8 <= webp.len() {
            let kind = &webp[at..at + 4];
            let len = u32::from_le_bytes(webp[at + 4..at + 8].try_into().unwrap()) as usize;
            let mut body = webp[at + 8..at + 8 + len].to_vec();
            if kind == b"EXIF" {
                assert!(body.starts_with(b"MM") || body.starts_with(b"II"), "{name}");
                body.splice(0..0, *b"Exif\0\0");
            }
            out.extend_from_slice(kind);
            out.extend((body.len() as u32).to_le_bytes());
            out.extend_from_slice(&body);
            if body.len() % 2 == 1 {
                out.push(0);
            }
            at += 8 + len + len % 2;
        }
        let mut riff = b"RIFF".to_vec();
        riff.extend((out.len() as u32 + 4).to_le_bytes());
        riff.extend_from_slice(b"WEBP");
        riff.extend(out);
        let path = tmp.path().join(&name);
        std::fs::write(&path, &riff).unwrap();
        let b = decode(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            (b.width(), b.height()),
            want.dimensions(),
            "{name}: upright size"
        );
        let db = psnr(b.pixels(), want.as_raw());
        assert!(db >= 30.0, "{name}: {db:.1} dB from upright.png");
        let info = texcache::probe::probe(&name, &path, 1 << 28).unwrap();
        let texcache::probe::Probe::Picture(p) = info else {
            panic!("{name}: {info:?}")
        };
        assert_eq!(p.orientation, n, "{name}");
    }
}

/// A picture whose header says 0x0 (here a PNM) is `Corrupt`, not a picture of 0 bytes.
#[test]
fn a_zero_by_zero_picture_is_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        ("empty.ppm", &b"P6\n0 0\n255\n"[..]),
        ("wide.pgm", &b"P5\n7 0\n255\n"[..]),
    ] {
        let path = tmp.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        match decode(&path) {
            Err(e) if matches!(e.kind(), ErrorKind::Corrupt { .. }) => {
                assert!(e.to_string().contains(name), "{e}")
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}
