//! Pictures in every format docs/formats.md lists (§2a): the lossless ones decode to exactly
//! the pixels of the PNG they were written from; JPEG variants (progressive, CMYK) to within
//! their loss; EXIF orientation applied for JPEG, PNG and WebP.

mod common;

use std::path::{Path, PathBuf};
use texcache::{Error, PixelFormat};

fn corpus(sub: &str) -> PathBuf {
    common::corpus().join(sub)
}

fn decode(path: &Path) -> texcache::Result<texcache::Bitmap> {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    texcache::bitmap::load_file(
        &name,
        path,
        None,
        &texcache::decode::DecodeOptions::new(1 << 28),
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
    let options = texcache::decode::DecodeOptions {
        fit: Some((200, 200)),
        ..texcache::decode::DecodeOptions::new(1 << 28)
    };
    let path = corpus("formats/kodim23.avif");
    let small = texcache::bitmap::load_file("kodim23.avif", &path, None, &options).unwrap();
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
            Err(e @ (Error::Corrupt { .. } | Error::Unsupported { .. })) => {
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
        match texcache::decode::decode(
            "bad.avif",
            &bad,
            &texcache::decode::DecodeOptions::new(1 << 28),
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
        Err(e @ Error::Unsupported { .. }) => {
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
        matches!(e, Error::Corrupt { .. }) && e.to_string().contains("cut.jpg"),
        "{e}"
    );
    // Lossless (SOF3), 12-bit (SOF1 with precision 12) and, without the `turbojpeg` feature,
    // arithmetic coding (SOF9): variants no decoder here implements are Unsupported, not
    // Corrupt. (libjpeg-turbo decodes arithmetic-coded files: tests/jpeg.rs.)
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
            Err(e @ Error::Unsupported { .. }) => assert!(e.to_string().contains(name), "{e}"),
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
    let texcache::stats::Entry::Cached(e) = &entries[0] else {
        panic!("{entries:?}")
    };
    assert_eq!(
        (e.width, e.height, e.bytes),
        (w, h, w as u64 * h as u64 * 4),
        "upright in the stats"
    );
}
