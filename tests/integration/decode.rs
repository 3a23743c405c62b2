//! Decoding real files: exact bytes for every PngSuite image (§2) and a typed error for
//! every corrupt, truncated, empty or non-image input (§10), with the cache consistent and
//! usable afterwards.

use crate::common;

use texcache::ErrorKind;
use texcache::{Error, PixelFormat};

/// Reads width, height, colour type from the IHDR, and whether a tRNS chunk is present: the
/// oracle for §2, independent of the decoder.
fn png_header(bytes: &[u8]) -> (u32, u32, u8, bool) {
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    let (w, h, color) = (be(16), be(20), bytes[25]);
    let mut pos = 8;
    let mut trns = false;
    while pos + 8 <= bytes.len() {
        let len = be(pos) as usize;
        if &bytes[pos + 4..pos + 8] == b"tRNS" {
            trns = true;
        }
        pos += 12 + len;
    }
    (w, h, color, trns)
}

#[test]
fn every_pngsuite_image_has_exact_bytes() {
    let dir = common::corpus().join("pngsuite");
    let cache = common::cache(&dir, 1 << 30);
    let names = common::pngsuite_valid();
    assert!(
        names.len() > 150,
        "PngSuite looks incomplete: {} files",
        names.len()
    );
    let mut total = 0u64;
    for name in &names {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let (w, h, color, trns) = png_header(&bytes);
        let gray = color == 0 && !trns;
        let handle = cache.bitmap(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (fmt, bpp) = if gray {
            (PixelFormat::Gray8, 1)
        } else {
            (PixelFormat::Rgba8, 4)
        };
        assert_eq!(
            (handle.width(), handle.height(), handle.format()),
            (w, h, fmt),
            "{name}"
        );
        assert_eq!(handle.bytes(), w as u64 * h as u64 * bpp, "{name}");
        assert_eq!(handle.pixels().len() as u64, handle.bytes(), "{name}");
        total += handle.bytes();
    }
    let s = cache.stats().cpu;
    assert_eq!(
        (s.used, s.unused, s.in_use, s.entries),
        (total, total, 0, names.len() as u64)
    );
    assert_eq!(
        (s.misses, s.failures, s.evictions),
        (names.len() as u64, 0, 0)
    );
}

#[test]
fn pngsuite_pixels_match_reference_decoding() {
    // Every pixel of every valid PngSuite image against `image`'s own decoding and conversion:
    // PNGs of up to 8 bits go straight into the bitmap's buffer through the `png` crate, 16-bit
    // ones through `image`.
    let dir = common::corpus().join("pngsuite");
    let cache = common::cache(&dir, 1 << 30);
    let names = common::pngsuite_valid();
    assert!(names.len() > 150, "{} files", names.len());
    for name in &names {
        let name = name.as_str();
        let h = cache.bitmap(name).unwrap();
        let img = image::open(dir.join(name)).unwrap();
        let want = if h.format() == PixelFormat::Gray8 {
            img.to_luma8().into_raw()
        } else {
            img.to_rgba8().into_raw()
        };
        assert_eq!(h.pixels(), &want[..], "{name}");
    }
}

fn assert_typed(name: &str, err: &Error) {
    assert_eq!(
        err.href(),
        Some(name),
        "{name}: error must name the href: {err}"
    );
    let ok = matches!(
        err.kind(),
        ErrorKind::Corrupt { .. } | ErrorKind::Unsupported { .. } | ErrorKind::TooManyPixels { .. }
    );
    assert!(ok, "{name}: unexpected error kind: {err:?}");
    assert!(err.to_string().starts_with(name), "{err}");
}

#[test]
fn corrupt_files_give_typed_errors_and_leave_the_cache_usable() {
    let corpus = common::corpus();
    // Files a lenient decoder may accept (see corpus/README.md).
    let may_decode = [
        "xcsn0g01.png",
        "x_interlaced_chck.png",
        "invalid_palette_index.png",
    ];
    for sub in ["pngsuite", "png-faults"] {
        let dir = corpus.join(sub);
        let cache = common::cache(&dir, 1 << 30);
        let mut failures = 0;
        let mut tried = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if !(name.starts_with('x') || name == "invalid_palette_index.png") {
                continue;
            }
            tried += 1;
            match cache.bitmap(&name) {
                Ok(_) => assert!(
                    may_decode.contains(&name.as_str()),
                    "{sub}/{name} decoded but is corrupt"
                ),
                Err(e) => {
                    assert_typed(&name, &e);
                    failures += 1;
                    // Not remembered: the next acquire tries again (and fails again).
                    assert!(cache.bitmap(&name).is_err());
                    failures += 1;
                }
            }
        }
        assert!(tried >= 9, "{sub}: only {tried} corrupt files");
        let s = cache.stats().cpu;
        assert_eq!(s.failures, failures, "{sub}");
        assert_eq!(s.in_use, 0);
        // Still usable.
        let good = if sub == "pngsuite" {
            "basn2c08.png"
        } else {
            "../pngsuite/basn2c08.png"
        };
        assert_eq!(cache.bitmap(good).unwrap().bytes(), 32 * 32 * 4);
    }
}

#[test]
fn truncated_empty_and_non_image_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let src = std::fs::read(common::corpus().join("photos/kodim23.png")).unwrap();
    let jpg = std::fs::read(common::corpus().join("photos/kodim23.jpg")).unwrap();
    std::fs::write(tmp.path().join("half.png"), &src[..src.len() / 2]).unwrap();
    std::fs::write(tmp.path().join("head.png"), &src[..40]).unwrap();
    std::fs::write(tmp.path().join("half.jpg"), &jpg[..jpg.len() / 3]).unwrap();
    std::fs::write(tmp.path().join("empty.png"), b"").unwrap();
    std::fs::write(tmp.path().join("text.png"), b"hello, I am not a picture\n").unwrap();
    std::fs::create_dir(tmp.path().join("folder.png")).unwrap();
    let cache = common::cache(tmp.path(), 1 << 30);

    for name in ["half.png", "head.png", "half.jpg"] {
        let err = cache.bitmap(name).unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::Corrupt { .. }),
            "{name}: {err:?}"
        );
        assert!(err.to_string().starts_with(name), "{err}");
    }
    for name in ["empty.png", "text.png"] {
        let err = cache.bitmap(name).unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::Unsupported { .. }),
            "{name}: {err:?}"
        );
    }
    assert!(matches!(
        cache.bitmap("folder.png").unwrap_err().kind(),
        ErrorKind::NotAFile { .. }
    ));
    let err = cache.bitmap("missing.png").unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::NotFound { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "missing.png: not found ({})",
            tmp.path().join("missing.png").display()
        )
    );

    let s = cache.stats().cpu;
    assert_eq!((s.failures, s.misses, s.entries, s.used), (7, 7, 0, 0));
}

#[test]
fn too_many_pixels_is_refused_from_the_header() {
    let dir = common::corpus().join("photos");
    let mut cfg = texcache::Config::default();
    cfg.mediadir = dir;
    cfg.loader.max_pixels = 1_000_000;
    let cache = texcache::Cache::new(cfg).unwrap();
    let err = cache.bitmap("kodim23_3072x2048.jpg").unwrap_err();
    match err.kind() {
        ErrorKind::TooManyPixels {
            width, height, max, ..
        } => assert_eq!((*width, *height, *max), (3072, 2048, 1_000_000)),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("3072x2048"), "{err}");
    assert_eq!(cache.bitmap("kodim23.jpg").unwrap().bytes(), 768 * 512 * 4);
}

#[cfg(unix)]
#[test]
fn permission_denied_is_typed() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    common::png(tmp.path(), "locked.png", 4, 4);
    let p = tmp.path().join("locked.png");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::read(&p).is_ok() {
        eprintln!("running as root: permission bits do not apply, skipping the check");
        return;
    }
    let cache = common::cache(tmp.path(), 1 << 20);
    assert!(matches!(
        cache.bitmap("locked.png").unwrap_err().kind(),
        ErrorKind::Permission { .. }
    ));
}

#[test]
fn photos_decode_like_image_does() {
    // PNGs go through the png crate straight to RGBA, and without the `turbojpeg` feature
    // JPEGs through zune-jpeg: the same pixels as `image`. (With it, JPEGs are libjpeg-turbo's
    // pixels: tests/integration/jpeg.rs.)
    let dir = common::corpus().join("photos");
    let cache = common::cache(&dir, 1 << 30);
    let mut names = vec!["kodim07.png", "Transparency.png"];
    if !cfg!(feature = "turbojpeg") {
        names.extend(["kodim02.jpg", "Fantasy_Digital_Painting.jpg"]);
    }
    for name in names {
        let h = cache.bitmap(name).unwrap();
        let img = image::open(dir.join(name)).unwrap();
        assert_eq!(
            (h.width(), h.height()),
            (img.width(), img.height()),
            "{name}"
        );
        assert_eq!(h.pixels(), &img.to_rgba8().into_raw()[..], "{name}");
    }
}
