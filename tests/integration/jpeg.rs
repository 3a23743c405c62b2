//! JPEG pixels against libjpeg-turbo's own: every JPEG of the corpus, and JPEGs written by
//! libjpeg-turbo's `cjpeg` in every chroma subsampling, gray, RGB-coded, progressive,
//! arithmetic-coded and with restart markers, at sizes from 1x1 up, decode to what `djpeg`
//! (libjpeg-turbo's decoder, default settings: accurate integer IDCT, fancy upsampling) writes,
//! within 1 level; DCT-scaled fitted decodes to what `djpeg -scale` writes.
//!
//! With the `turbojpeg` feature (which `cargo test --workspace` has through the command line).
//! `djpeg` and `cjpeg` come with libjpeg-turbo (`libjpeg-turbo-progs`, which
//! `scripts/install-deps` installs); without them these tests fail saying so.
#![cfg(feature = "turbojpeg")]

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use texcache::picture::DecodeOptions;
use texcache::ErrorKind;
use texcache::PixelFormat;

/// A libjpeg-turbo tool's output, failing clearly when the tool is not installed.
fn tool(name: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(name).args(args).output().unwrap_or_else(|e| {
        panic!(
            "`{name}` (libjpeg-turbo's, package libjpeg-turbo-progs) cannot run ({e}): \
             these tests compare with it; `bash scripts/install-deps` installs it"
        )
    });
    assert!(
        out.status.success(),
        "{name} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `djpeg`'s decode of `path` (with `extra` switches): width, height, channels, samples.
fn djpeg(path: &Path, extra: &[&str]) -> (u32, u32, usize, Vec<u8>) {
    let mut args = extra.to_vec();
    args.extend(["-pnm", path.to_str().unwrap()]);
    let pnm = tool("djpeg", &args);
    // P5 or P6, width, height, 255, one whitespace byte, then the samples.
    let mut fields = Vec::new();
    let mut i = 0;
    while fields.len() < 4 {
        while pnm[i].is_ascii_whitespace() {
            i += 1;
        }
        let start = i;
        while !pnm[i].is_ascii_whitespace() {
            i += 1;
        }
        fields.push(String::from_utf8_lossy(&pnm[start..i]).into_owned());
    }
    let channels = match fields[0].as_str() {
        "P5" => 1,
        "P6" => 3,
        other => panic!("djpeg wrote {other}"),
    };
    assert_eq!(fields[3], "255");
    let (w, h) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    let samples = pnm[i + 1..].to_vec();
    assert_eq!(samples.len(), w as usize * h as usize * channels);
    (w, h, channels, samples)
}

/// The largest difference of `bitmap` from djpeg's samples, over every sample (alpha must be
/// opaque), and how many differ at all.
fn compare(
    name: &str,
    bitmap: &texcache::Bitmap,
    reference: &(u32, u32, usize, Vec<u8>),
) -> (u8, usize) {
    let (w, h, channels, samples) = reference;
    assert_eq!((bitmap.width(), bitmap.height()), (*w, *h), "{name}: size");
    let px = bitmap.pixels();
    let (mut max, mut differ) = (0u8, 0);
    match (bitmap.format(), channels) {
        (PixelFormat::Gray8, 1) => {
            for (a, b) in px.iter().zip(samples) {
                max = max.max(a.abs_diff(*b));
                differ += (a != b) as usize;
            }
        }
        (PixelFormat::Rgba8, 3) => {
            for (p, s) in px.chunks_exact(4).zip(samples.chunks_exact(3)) {
                assert_eq!(p[3], 255, "{name}: opaque");
                for c in 0..3 {
                    max = max.max(p[c].abs_diff(s[c]));
                    differ += (p[c] != s[c]) as usize;
                }
            }
        }
        other => panic!("{name}: {other:?}"),
    }
    (max, differ)
}

/// A corpus picture as RGB8.
fn corpus_rgb(sub: &str) -> image::RgbImage {
    image::open(common::corpus().join(sub)).unwrap().to_rgb8()
}

/// `img` as a binary PPM, which `cjpeg` reads.
fn write_ppm(path: &Path, img: &image::RgbImage) {
    let header = format!("P6\n{} {}\n255\n", img.width(), img.height());
    std::fs::write(path, [header.as_bytes(), img.as_raw()].concat()).unwrap();
}

fn decode(path: &Path, options: &DecodeOptions) -> texcache::Bitmap {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    texcache::picture::load_file(&name, path, None, options).unwrap_or_else(|e| panic!("{e}"))
}

/// As stored: djpeg does not apply EXIF orientations.
fn as_stored() -> DecodeOptions {
    DecodeOptions {
        orientation: false,
        ..DecodeOptions::new(1 << 28)
    }
}

fn corpus_jpegs() -> Vec<PathBuf> {
    let mut all = Vec::new();
    for dir in ["photos", "formats", "orientation"] {
        for e in std::fs::read_dir(common::corpus().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "jpg") {
                all.push(p);
            }
        }
    }
    all.sort();
    all
}

#[test]
fn every_corpus_jpeg_decodes_to_libjpeg_turbos_pixels() {
    let files = corpus_jpegs();
    assert!(files.len() >= 15, "{} corpus JPEGs", files.len());
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy();
        let b = decode(path, &as_stored());
        let (max, differ) = compare(&name, &b, &djpeg(path, &[]));
        // The CMYK file's conversion to RGB is Pillow's (djpeg rounds its products otherwise);
        // every other file is libjpeg-turbo's decode itself.
        let bound = if name.contains("cmyk") { 1 } else { 0 };
        assert!(
            max <= bound,
            "{name}: up to {max} levels from djpeg ({differ} samples differ)"
        );
    }
}

#[test]
fn jpegs_of_every_kind_libjpeg_turbo_writes_decode_to_its_pixels() {
    let tmp = tempfile::tempdir().unwrap();
    let src = corpus_rgb("photos/kodim23.png");
    let kinds: &[(&str, &[&str])] = &[
        ("420", &["-sample", "2x2"]),
        ("422", &["-sample", "2x1"]),
        ("440", &["-sample", "1x2"]),
        ("411", &["-sample", "4x1"]),
        ("444", &["-sample", "1x1"]),
        // Sampling factors TurboJPEG 2.x has no name for (its header call refuses them;
        // libjpeg-turbo decodes them).
        ("1x3", &["-sample", "1x3"]),
        ("3x1", &["-sample", "3x1"]),
        ("2x3", &["-sample", "2x3"]),
        ("1x4", &["-sample", "1x4"]),
        ("gray", &["-grayscale"]),
        ("rgb", &["-rgb"]),
        ("progressive", &["-progressive"]),
        ("arithmetic", &["-arithmetic"]),
        ("arithmetic_progressive", &["-arithmetic", "-progressive"]),
        ("restart", &["-restart", "1", "-sample", "2x2"]),
        ("optimized", &["-optimize", "-sample", "2x1"]),
    ];
    let sizes = [
        (1, 1),
        (2, 2),
        (3, 3),
        (4, 4),
        (7, 5),
        (17, 13),
        (33, 65),
        (768, 512),
    ];
    let mut checked = 0;
    for &(w, h) in &sizes {
        let crop = image::imageops::crop_imm(&src, 300, 200, w.min(768), h.min(512)).to_image();
        let ppm = tmp.path().join(format!("{w}x{h}.ppm"));
        write_ppm(&ppm, &crop);
        for (kind, args) in kinds {
            let jpg = tmp.path().join(format!("{kind}_{w}x{h}.jpg"));
            let mut a = args.to_vec();
            a.extend([
                "-quality",
                "85",
                "-outfile",
                jpg.to_str().unwrap(),
                ppm.to_str().unwrap(),
            ]);
            tool("cjpeg", &a);
            let name = jpg.file_name().unwrap().to_string_lossy().into_owned();
            let b = decode(&jpg, &as_stored());
            let (max, differ) = compare(&name, &b, &djpeg(&jpg, &[]));
            assert!(
                max == 0,
                "{name}: up to {max} levels from djpeg ({differ} samples differ)"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, sizes.len() * kinds.len());
}

#[test]
fn dct_scaled_fits_are_libjpeg_turbos_scaled_decodes() {
    // A fit whose size is exactly a DCT scale of the picture needs no resize: the bitmap is
    // libjpeg-turbo's scaled decode itself.
    let path = common::corpus().join("photos/kodim23_3072x2048.jpg");
    for (denom, fit) in [(2, (1536, 1024)), (4, (768, 512)), (8, (384, 256))] {
        let options = DecodeOptions {
            fit: Some(fit),
            ..as_stored()
        };
        let b = decode(&path, &options);
        let scale = format!("1/{denom}");
        let (max, differ) = compare(&scale, &b, &djpeg(&path, &["-scale", &scale]));
        assert!(
            max == 0,
            "1/{denom}: up to {max} levels from djpeg -scale ({differ} differ)"
        );
    }
}

/// TurboJPEG's compressor, which writes CMYK pixels as a YCCK JPEG (Adobe APP14, transform 2):
/// neither `cjpeg` nor the corpus has one.
fn ycck_jpeg(cmyk: &[u8], w: u32, h: u32) -> Vec<u8> {
    use std::ffi::{c_int, c_ulong, c_void};
    #[link(name = "turbojpeg")]
    extern "C" {
        fn tjInitCompress() -> *mut c_void;
        #[allow(clippy::too_many_arguments)]
        fn tjCompress2(
            handle: *mut c_void,
            src: *const u8,
            width: c_int,
            pitch: c_int,
            height: c_int,
            pixel_format: c_int,
            jpeg: *mut *mut u8,
            len: *mut c_ulong,
            subsamp: c_int,
            quality: c_int,
            flags: c_int,
        ) -> c_int;
        fn tjFree(buf: *mut u8);
        fn tjDestroy(handle: *mut c_void) -> c_int;
    }
    const TJPF_CMYK: c_int = 11;
    const TJSAMP_420: c_int = 2;
    assert_eq!(cmyk.len(), (w * h * 4) as usize);
    // SAFETY: `cmyk` holds `h` rows of `4 w` bytes; TurboJPEG allocates the output, which is
    // copied out and freed with its own `tjFree`; the handle is destroyed once.
    unsafe {
        let handle = tjInitCompress();
        assert!(!handle.is_null());
        let (mut out, mut len) = (std::ptr::null_mut(), 0);
        let rc = tjCompress2(
            handle,
            cmyk.as_ptr(),
            w as c_int,
            (w * 4) as c_int,
            h as c_int,
            TJPF_CMYK,
            &mut out,
            &mut len,
            TJSAMP_420,
            90,
            0,
        );
        assert_eq!(rc, 0, "tjCompress2");
        let jpeg = std::slice::from_raw_parts(out, len as usize).to_vec();
        tjFree(out);
        tjDestroy(handle);
        jpeg
    }
}

#[test]
fn ycck_and_cmyk_without_an_adobe_marker_decode_to_libjpeg_turbos_pixels() {
    let tmp = tempfile::tempdir().unwrap();
    let src = corpus_rgb("photos/kodim23.png");
    let (w, h) = src.dimensions();
    // Inverted CMYK samples (Adobe's convention) varying in all four channels (the corpus's
    // CMYK file has no black: Pillow's RGB-to-CMYK conversion leaves K at 0).
    let cmyk: Vec<u8> = src
        .enumerate_pixels()
        .flat_map(|(x, _, p)| [p[0], p[1], p[2], 160 + (x % 96) as u8])
        .collect();
    let ycck = ycck_jpeg(&cmyk, w, h);
    let adobe = ycck
        .windows(7)
        .position(|s| s == b"\xFF\xEE\x00\x0EAdo")
        .expect("APP14");
    assert_eq!(ycck[adobe + 15], 2, "transform 2: YCCK");
    // The corpus's CMYK file (APP14 transform 0) with its APP14 taken out: four components
    // and no Adobe marker, which libjpeg-turbo reads as CMYK.
    let cmyk_jpg = std::fs::read(common::corpus().join("formats/kodim23_cmyk.jpg")).unwrap();
    let at = cmyk_jpg
        .windows(4)
        .position(|s| s == b"\xFF\xEE\x00\x0E")
        .expect("APP14");
    assert_eq!(cmyk_jpg[at + 15], 0, "transform 0: CMYK");
    let bare = [&cmyk_jpg[..at], &cmyk_jpg[at + 16..]].concat();
    for (name, bytes) in [("ycck.jpg", ycck), ("cmyk_no_adobe.jpg", bare)] {
        let path = tmp.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let b = decode(&path, &as_stored());
        let (max, differ) = compare(name, &b, &djpeg(&path, &[]));
        // djpeg rounds the CMYK-to-RGB products once, Pillow's arithmetic (used here) twice.
        assert!(
            max <= 1,
            "{name}: up to {max} levels from djpeg ({differ} samples differ)"
        );
    }
}

#[test]
fn damaged_jpegs_are_pictures_or_typed_errors() {
    // Every byte of the header and the start of the first scan flipped, and the file cut at
    // many lengths: libjpeg-turbo either reads past the damage (a picture of the right size)
    // or texcache returns a typed error naming the file; nothing panics or hangs.
    let jpg = std::fs::read(common::corpus().join("photos/kodim23.jpg")).unwrap();
    let options = DecodeOptions::new(1 << 28);
    let check =
        |bytes: &[u8], what: &str| match texcache::picture::decode("bad.jpg", bytes, &options) {
            Ok(b) => assert!(b.width() > 0 && b.height() > 0, "{what}"),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::Corrupt { .. } | ErrorKind::Unsupported { .. }
                ) =>
            {
                assert!(e.to_string().contains("bad.jpg"), "{what}: {e}")
            }
            Err(e) if matches!(e.kind(), ErrorKind::TooManyPixels { .. }) => {
                assert!(e.to_string().contains("bad.jpg"), "{what}: {e}")
            }
            Err(e) => panic!("{what}: {e}"),
        };
    let (mut pictures, mut errors) = (0, 0);
    for i in 0..900.min(jpg.len()) {
        let mut v = jpg.clone();
        v[i] ^= 0xA5;
        check(&v, &format!("byte {i} flipped"));
        match texcache::picture::decode("bad.jpg", &v, &options) {
            Ok(_) => pictures += 1,
            Err(_) => errors += 1,
        }
    }
    for len in (0..jpg.len()).step_by(797) {
        check(&jpg[..len], &format!("cut at {len}"));
    }
    // Both outcomes happen: damage libjpeg-turbo reads past, and damage it refuses.
    assert!(
        pictures > 100 && errors > 10,
        "{pictures} pictures, {errors} errors"
    );
}

#[test]
fn a_progressive_jpeg_of_more_than_500_scans_is_refused() {
    // Each scan of a progressive JPEG can make a decoder go over the whole picture again;
    // libjpeg-turbo's guard (TurboJPEG's `TJFLAG_LIMITSCANS`, `djpeg -maxscans`) stops at 500.
    // A progressive file with its last scan (an AC refinement) repeated up to 600 scans is
    // refused; repeated up to 400, it decodes (libjpeg-turbo warns of the odd progression).
    let tmp = tempfile::tempdir().unwrap();
    let ppm = tmp.path().join("upright.ppm");
    write_ppm(&ppm, &corpus_rgb("orientation/upright.png"));
    let jpg = tool("cjpeg", &["-progressive", ppm.to_str().unwrap()]);
    let sos: Vec<usize> = (0..jpg.len() - 1)
        .filter(|&i| jpg[i] == 0xFF && jpg[i + 1] == 0xDA)
        .collect();
    assert!(
        jpg.ends_with(&[0xFF, 0xD9]) && sos.len() > 5,
        "{} scans",
        sos.len()
    );
    let last = &jpg[*sos.last().unwrap()..jpg.len() - 2];
    for (name, scans) in [("many.jpg", 600), ("fewer.jpg", 400)] {
        let mut v = jpg[..jpg.len() - 2].to_vec();
        for _ in sos.len()..scans {
            v.extend_from_slice(last);
        }
        v.extend_from_slice(&[0xFF, 0xD9]);
        let decoded = texcache::picture::decode(name, &v, &as_stored());
        if scans > 500 {
            match decoded {
                Err(e) if matches!(e.kind(), ErrorKind::Corrupt { .. }) => {
                    let m = e.to_string();
                    assert!(m.contains(name) && m.contains("500"), "{m}")
                }
                other => panic!("{name}: {:?}", other.map(|b| b.width())),
            }
        } else {
            let b = decoded.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!((b.width(), b.height()), (384, 256), "{name}");
        }
    }
}
