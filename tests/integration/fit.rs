//! Fitted requests (§1, §2a, §3.9): sizes and bytes for many boxes, pixels against a full
//! decode resized by hand, orientation, entries of their own, `remove` of every size, traces.

use crate::common;

use std::path::Path;
use texcache::picture::{fitted_size, DecodeOptions};
use texcache::{Cache, PixelFormat};

fn cache(dir: &Path) -> Cache {
    let mut cfg = texcache::Config::default();
    cfg.mediadir = dir.into();
    cfg.stats.history_interval_ms = 0;
    Cache::new(cfg).unwrap()
}

/// The full-size picture resized to `w`x`h` with the same filter, by hand: the reference.
fn reference(full: &texcache::Bitmap, w: u32, h: u32) -> Vec<u8> {
    use fast_image_resize as fr;
    let t = if full.format() == PixelFormat::Gray8 {
        fr::PixelType::U8
    } else {
        fr::PixelType::U8x4
    };
    let src =
        fr::images::Image::from_vec_u8(full.width(), full.height(), full.pixels().to_vec(), t)
            .unwrap();
    let mut dst = fr::images::Image::new(w, h, t);
    let o =
        fr::ResizeOptions::new().resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Lanczos3));
    fr::Resizer::new().resize(&src, &mut dst, &o).unwrap();
    dst.into_vec()
}

fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let sum: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum();
    10.0 * (255.0f64.powi(2) / (sum / a.len() as f64).max(1e-12)).log10()
}

#[test]
fn fitted_sizes_follow_the_rule() {
    assert_eq!(fitted_size(768, 512, 768, 512), (768, 512));
    assert_eq!(fitted_size(768, 512, 100, 100), (100, 67));
    assert_eq!(fitted_size(512, 768, 100, 100), (67, 100));
    assert_eq!(fitted_size(768, 512, 1, 1), (1, 1));
    assert_eq!(fitted_size(768, 512, 0, 0), (1, 1));
    assert_eq!(fitted_size(768, 512, 5000, 5000), (768, 512), "never up");
    assert_eq!(fitted_size(768, 512, 384, 5000), (384, 256));
    assert_eq!(fitted_size(3, 1000, 1000, 10), (1, 10));
}

#[test]
fn every_photo_fits_every_box_with_exact_bytes_and_close_pixels() {
    let photos = common::corpus().join("photos");
    let c = cache(&photos);
    let mut names: Vec<String> = std::fs::read_dir(&photos)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".jpg") || n.ends_with(".png"))
        .collect();
    names.sort();
    assert!(names.len() >= 10);
    let boxes = [(1, 1), (7, 300), (100, 100), (767, 511), (4000, 4000)];
    for name in &names {
        let full = c.bitmap(name).unwrap();
        for (bw, bh) in boxes {
            let (w, h) = fitted_size(full.width(), full.height(), bw, bh);
            let f = c.bitmap_fit(name, bw, bh).unwrap();
            assert_eq!(
                (f.width(), f.height(), f.format()),
                (w, h, full.format()),
                "{name} into {bw}x{bh}"
            );
            assert_eq!(
                f.bytes(),
                w as u64 * h as u64 * full.bytes_per_pixel() as u64
            );
            if w >= 16 && h >= 16 {
                let db = psnr(f.pixels(), &reference(&full, w, h));
                // JPEGs decode at a DCT scale first, so they differ a little from the
                // resized full-size decode; PNGs are resized from the full size, the same way.
                let min = if name.ends_with(".png") { 60.0 } else { 28.0 };
                assert!(db >= min, "{name} into {bw}x{bh}: {db:.1} dB");
            }
        }
    }
}

#[test]
fn fitted_rotated_photos_are_upright_and_fitted_upright() {
    let dir = common::corpus().join("orientation");
    let c = cache(&dir);
    let upright = c.bitmap("upright.png").unwrap();
    let (w, h) = fitted_size(upright.width(), upright.height(), 100, 100);
    let want = reference(&upright, w, h);
    for n in [1, 3, 6, 8] {
        for ext in ["jpg", "png", "webp"] {
            let name = format!("kodim23_orientation{n}.{ext}");
            let f = c.bitmap_fit(&name, 100, 100).unwrap();
            assert_eq!((f.width(), f.height()), (w, h), "{name}");
            let db = psnr(f.pixels(), &want);
            assert!(db >= 25.0, "{name}: {db:.1} dB from upright.png fitted");
        }
    }
}

#[test]
fn a_fitted_request_is_its_own_entry_and_remove_drops_every_size() {
    let photos = common::corpus().join("photos");
    let c = cache(&photos);
    let full = c.bitmap("kodim23.jpg").unwrap();
    let a = c.bitmap_fit("kodim23.jpg", 100, 100).unwrap();
    let b = c.bitmap_fit("./kodim23.jpg", 100, 100).unwrap();
    assert!(
        texcache::Handle::ptr_eq(&a, &b),
        "one fitted entry for one key and box"
    );
    let small = c.bitmap_fit("kodim23.jpg", 10, 10).unwrap();
    let s = c.stats().cpu;
    assert_eq!((s.entries, s.misses, s.hits), (3, 3, 1));
    assert_eq!(s.used, 768 * 512 * 4 + 100 * 67 * 4 + 10 * 7 * 4);
    let entries = c.stats_with_entries().entries.unwrap();
    let fits: Vec<_> = entries
        .iter()
        .filter_map(|e| match e {
            texcache::observe::stats::Entry::Cached(e) => {
                Some((e.key.ends_with("kodim23.jpg"), e.fit))
            }
            _ => None,
        })
        .collect();
    assert_eq!(fits.len(), 3);
    assert!(
        fits.iter().all(|f| f.0),
        "the key is the picture's path: {fits:?}"
    );
    assert!(fits.contains(&(true, Some([100, 100]))) && fits.contains(&(true, None)));
    drop((full, a, b, small));
    assert!(c.remove("kodim23.jpg"));
    let s = c.stats().cpu;
    assert_eq!((s.entries, s.used), (0, 0), "remove drops every size");
    // Fitted entries are evicted like any other.
    c.set_budget(texcache::TierKind::Cpu, 100 * 67 * 4);
    drop(c.bitmap_fit("kodim23.jpg", 100, 100).unwrap());
    drop(c.bitmap_fit("kodim02.jpg", 100, 100).unwrap());
    let s = c.stats().cpu;
    assert_eq!((s.entries, s.evictions, s.used), (1, 1, 100 * 67 * 4));
}

#[test]
fn traces_carry_fitted_requests_both_ways() {
    use texcache::trace::{Replayer, Trace};
    let photos = common::corpus().join("photos");
    let tmp = tempfile::tempdir().unwrap();
    let c = cache(&photos);
    let rec = tmp.path().join("fit.trace");
    c.record_trace(&rec).unwrap();
    drop(c.bitmap_fit("kodim23.jpg", 64, 48).unwrap());
    let kept = c.bitmap_fit("kodim02.jpg", 32, 32).unwrap();
    drop(kept);
    c.stop_trace().unwrap();
    assert_eq!(
        c.stats().cpu.entries,
        2,
        "ending a recording leaves the cache as it is"
    );
    let text = std::fs::read_to_string(&rec).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(lines.len(), 4, "{text}");
    let (verb, rest) = lines[0].split_once(' ').unwrap();
    let (id, what) = rest.split_once(' ').unwrap();
    assert_eq!(
        (verb, what, lines[1]),
        ("bitmap_fit", "64x48 kodim23.jpg", &*format!("release {id}"))
    );
    assert!(
        lines[2].starts_with("bitmap_fit b") && lines[2].ends_with(" 32x32 kodim02.jpg"),
        "{text}"
    );
    let replay = cache(&photos);
    let trace = Trace::load(&rec).unwrap();
    Replayer::new(&replay).run(&trace, |_, _| {}).unwrap();
    assert_eq!(replay.stats().cpu.used, c.stats().cpu.used);
    assert_eq!(replay.stats().cpu.misses, 2);
    for bad in [
        "bitmap_fit b1 kodim23.jpg",
        "bitmap_fit b1 64x kodim23.jpg",
        "texture_fit t1 1x1",
    ] {
        let e = Trace::parse(&format!("{bad}\n"), "bad.trace").unwrap_err();
        assert!(e.to_string().starts_with("bad.trace:1"), "{bad}: {e}");
    }
}

#[cfg(feature = "gpu")]
#[test]
fn a_fitted_texture_comes_from_the_fitted_bitmap() {
    let Some(gpu) = common::gpu() else { return };
    let photos = common::corpus().join("photos");
    let c = cache(&photos);
    c.bind_gpu(gpu.clone());
    let t = c.texture_fit("kodim23.jpg", 100, 100).unwrap();
    assert_eq!((t.width(), t.height()), (100, 67));
    let s = c.stats();
    assert_eq!(
        (s.gpu.used, s.cpu.used),
        (100 * 67 * 4, 100 * 67 * 4),
        "the fitted bitmap stays cached"
    );
    let back = texcache::gpu::read_back(&t).unwrap();
    let b = c.bitmap_fit("kodim23.jpg", 100, 100).unwrap();
    assert_eq!(c.stats().cpu.hits, 1);
    assert_eq!(back, b.pixels(), "the texture holds the fitted pixels");
    c.prefetch_textures(["kodim02.jpg"], Some((50, 50)))
        .unwrap();
    c.wait_prefetch();
    assert_eq!(c.stats().gpu.entries, 2);
}

#[test]
fn decode_options_fit_directly() {
    let bytes = std::fs::read(common::corpus().join("photos/kodim23_3072x2048.jpg")).unwrap();
    let mut o = DecodeOptions::new(1 << 28);
    o.fit = Some((768, 512));
    let b = texcache::picture::decode("big.jpg", &bytes, &o).unwrap();
    assert_eq!((b.width(), b.height()), (768, 512));
}

#[test]
fn an_href_with_a_nul_names_no_file() {
    let photos = common::corpus().join("photos");
    let c = cache(&photos);
    let href = format!("kodim23.jpg{}64x64", '\0');
    assert!(c.bitmap(&href).is_err(), "no file has a NUL in its path");
    assert_eq!((c.stats().cpu.entries, c.stats().cpu.failures), (0, 1));
    assert_eq!(c.bitmap_fit("kodim23.jpg", 64, 64).unwrap().width(), 64);
}
