//! The GPU tier (§3.8) on a real wgpu device: lavapipe where there is no GPU.
// These tests need the GPU tier (the default `gpu` feature).
#![cfg(feature = "gpu")]

use crate::common;

use std::sync::{Arc, Barrier};
use texcache::ErrorKind;
use texcache::{gpu::read_back, Handle, PixelFormat, TierKind};

#[test]
fn textures_read_back_equal_to_their_bitmaps() {
    let dir = common::corpus().join("pngsuite");
    let Some(cache) = common::gpu_cache(&dir, 1 << 30, 1 << 30, true) else {
        return;
    };
    eprintln!("adapter: {}", cache.gpu().unwrap().adapter());
    let names = common::pngsuite_valid();
    let (mut gray, mut rgba, mut total) = (0, 0, 0u64);
    for name in &names {
        let tex = cache
            .texture(name)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let bmp = cache.bitmap(name).unwrap();
        assert_eq!(
            (tex.width(), tex.height(), tex.format()),
            (bmp.width(), bmp.height(), bmp.format()),
            "{name}"
        );
        assert_eq!(tex.bytes(), bmp.bytes(), "{name}");
        assert_eq!(
            read_back(&tex).unwrap(),
            bmp.pixels(),
            "{name}: texture differs from bitmap"
        );
        match bmp.format() {
            PixelFormat::Gray8 => gray += 1,
            _ => rgba += 1,
        }
        total += tex.bytes();
    }
    assert!(
        gray > 10 && rgba > 100,
        "both formats covered: {gray} gray, {rgba} rgba"
    );
    let s = cache.stats();
    assert_eq!(
        (s.gpu.used, s.gpu.entries, s.gpu.misses, s.gpu.hits),
        (total, names.len() as u64, names.len() as u64, 0)
    );
    // Each GPU miss missed in the CPU tier; each bitmap() above was a hit.
    assert_eq!(
        (s.cpu.misses, s.cpu.hits, s.cpu.used),
        (names.len() as u64, names.len() as u64, total)
    );
}

#[test]
fn odd_widths_need_no_padding_copy_and_read_back_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    for w in [1u32, 3, 63, 65, 257] {
        common::png(tmp.path(), &format!("w{w}.png"), w, 5);
    }
    let Some(cache) = common::gpu_cache(tmp.path(), 1 << 30, 1 << 30, true) else {
        return;
    };
    for w in [1u32, 3, 63, 65, 257] {
        let name = format!("w{w}.png");
        let tex = cache.texture(&name).unwrap();
        assert_eq!(
            read_back(&tex).unwrap(),
            cache.bitmap(&name).unwrap().pixels(),
            "{name}"
        );
        assert_eq!(tex.bytes(), w as u64 * 5 * 4);
    }
}

#[test]
fn keep_cpu_copy_both_ways() {
    let tmp = tempfile::tempdir().unwrap();
    common::png(tmp.path(), "a.png", 8, 8);
    common::png(tmp.path(), "b.png", 8, 8);
    // keep_cpu_copy = true: the bitmap stays cached, unused, after the upload.
    let Some(cache) = common::gpu_cache(tmp.path(), 1 << 20, 1 << 20, true) else {
        return;
    };
    let t = cache.texture("a.png").unwrap();
    let s = cache.stats();
    assert_eq!(
        (
            s.cpu.used,
            s.cpu.unused,
            s.cpu.misses,
            s.gpu.used,
            s.gpu.in_use
        ),
        (256, 256, 1, 256, 256)
    );
    drop(t);
    assert_eq!(cache.stats().gpu.unused, 256);

    // keep_cpu_copy = false: decoded without inserting (a CPU miss), unless already resident.
    let cache = common::gpu_cache(tmp.path(), 1 << 20, 1 << 20, false).unwrap();
    let _t = cache.texture("a.png").unwrap();
    let s = cache.stats();
    assert_eq!(
        (s.cpu.used, s.cpu.entries, s.cpu.misses, s.gpu.used),
        (0, 0, 1, 256)
    );
    drop(cache.bitmap("b.png").unwrap());
    let _u = cache.texture("b.png").unwrap();
    let s = cache.stats();
    assert_eq!(
        (s.cpu.used, s.cpu.hits, s.cpu.misses, s.gpu.misses),
        (256, 1, 2, 2)
    );
}

#[test]
fn a_bad_bitmap_fails_the_texture_in_both_tiers() {
    let dir = common::corpus().join("png-faults");
    let Some(cache) = common::gpu_cache(&dir, 1 << 20, 1 << 20, true) else {
        return;
    };
    let err = cache.texture("x_ihdr_missing.png").unwrap_err();
    assert_eq!(err.href(), Some("x_ihdr_missing.png"), "{err}");
    let s = cache.stats();
    assert_eq!(
        (s.cpu.misses, s.cpu.failures, s.gpu.misses, s.gpu.failures),
        (1, 1, 1, 1)
    );
    assert_eq!((s.cpu.used, s.gpu.used), (0, 0));
}

#[test]
fn gpu_eviction_order_and_budget() {
    let tmp = tempfile::tempdir().unwrap();
    for n in ["a", "b", "c"] {
        common::png(tmp.path(), &format!("{n}.png"), 10, 10);
    }
    let Some(cache) = common::gpu_cache(tmp.path(), 1 << 20, 1000, true) else {
        return;
    };
    let a = cache.texture("a.png").unwrap();
    let b = cache.texture("b.png").unwrap();
    drop(b);
    drop(a);
    drop(cache.texture("c.png").unwrap()); // 1200 > 1000: b (released first) goes
    let keys: Vec<_> = cache
        .gpu_tier()
        .entries()
        .into_iter()
        .map(|e| e.key.rsplit('/').next().unwrap().to_string())
        .collect();
    assert_eq!(keys, ["a.png", "c.png"]);
    let s = cache.stats().gpu;
    assert_eq!(
        (s.used, s.evictions, s.evicted_bytes, s.peak_used),
        (800, 1, 400, 800)
    );
    let s = cache.trim(TierKind::Gpu, 0);
    assert_eq!((s.used, s.evictions), (0, 3));
    assert_eq!(
        cache.stats().cpu.entries,
        3,
        "trimming the GPU tier leaves the CPU tier alone"
    );
}

#[test]
fn concurrent_requests_upload_once_and_handles_outlive_the_cache() {
    let dir = common::corpus().join("photos");
    let Some(cache) = common::gpu_cache(&dir, 1 << 30, 1 << 30, true) else {
        return;
    };
    let barrier = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (cache, barrier) = (cache.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                cache.texture("kodim07.png").unwrap()
            })
        })
        .collect();
    let handles: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(handles.iter().all(|h| Handle::ptr_eq(h, &handles[0])));
    let s = cache.stats();
    assert_eq!(
        (s.gpu.misses, s.gpu.hits + s.gpu.coalesced, s.cpu.misses),
        (1, 7, 1)
    );
    let expected = read_back(&handles[0]).unwrap();
    drop(cache);
    let t = handles[0].clone();
    drop(handles);
    assert_eq!(
        read_back(&t).unwrap(),
        expected,
        "the texture is still valid after the cache is gone"
    );
}

#[test]
fn replay_texture_lines() {
    let tmp = tempfile::tempdir().unwrap();
    common::png(tmp.path(), "a.png", 10, 10);
    if common::gpu().is_none() {
        return;
    }
    std::fs::write(tmp.path().join("cfg.toml"), "[gpu]\nbudget = 1000\n").unwrap();
    std::fs::write(
        tmp.path().join("t.trace"),
        "texture T a.png\nbitmap B a.png\nrelease T\nremove a.png\nrelease B\n",
    )
    .unwrap();
    let out = std::process::Command::new(common::texcache_bin())
        .current_dir(tmp.path())
        .args([
            "replay", "--trace", "t.trace", "--config", "cfg.toml", "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            v["gpu"]["misses"].as_u64(),
            v["gpu"]["peak_used"].as_u64(),
            v["gpu"]["used"].as_u64()
        ),
        (Some(1), Some(400), Some(0))
    );
    assert_eq!(
        (
            v["cpu"]["misses"].as_u64(),
            v["cpu"]["hits"].as_u64(),
            v["cpu"]["used"].as_u64()
        ),
        (Some(1), Some(1), Some(0))
    );
}

#[test]
fn a_lost_device_gives_errors_and_the_tier_can_be_rebound() {
    if common::gpu().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    common::png(tmp.path(), "a.png", 4, 4);
    common::png(tmp.path(), "b.png", 4, 4);
    // A device of its own, so that destroying it leaves the other tests' device alone.
    let doomed = Arc::new(texcache::Gpu::open(texcache::config::Backend::Auto).unwrap());
    let mut cfg = texcache::Config::default();
    cfg.mediadir = tmp.path().into();
    let cache = texcache::Cache::new(cfg).unwrap();
    cache.bind_gpu(doomed.clone());
    let a = cache.texture("a.png").unwrap();
    doomed.device().destroy();
    doomed.device().poll(wgpu::PollType::Poll).ok();
    assert!(doomed.is_lost(), "the device-lost callback ran");
    let err = cache.texture("b.png").unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Gpu { .. }), "{err:?}");
    assert!(err.to_string().starts_with("b.png: GPU error"), "{err}");
    assert_eq!(cache.stats().gpu.failures, 1);
    // Still held while the cache is rebound: the handle keeps it, the cache forgets it.
    let fresh = Arc::new(texcache::Gpu::open(texcache::config::Backend::Auto).unwrap());
    cache.bind_gpu(fresh.clone());
    let s = cache.stats().gpu;
    assert_eq!(
        (s.entries, s.in_use_entries, s.used),
        (1, 1, 64),
        "held: still counted"
    );
    let a_again = cache.texture("a.png").unwrap();
    assert!(
        !texcache::Handle::ptr_eq(&a, &a_again),
        "a hit must never return the lost device's texture"
    );
    assert!(
        Arc::ptr_eq(a_again.gpu(), &fresh),
        "uploaded anew to the new device"
    );
    assert_eq!(cache.stats().gpu.misses, 3);
    drop(a); // a texture of the lost device is still dropped cleanly
    assert_eq!(cache.stats().gpu.entries, 1, "freed by its last handle");
    drop(a_again);
    // Binding the same device again keeps what is cached.
    cache.bind_gpu(fresh.clone());
    assert_eq!(cache.stats().gpu.entries, 1);
    let b = cache.texture("b.png").unwrap();
    assert_eq!(
        read_back(&b).unwrap(),
        cache.bitmap("b.png").unwrap().pixels()
    );
}

#[test]
fn a_device_lost_in_the_middle_of_uploads_gives_typed_errors() {
    if common::gpu().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    const N: usize = 60;
    for i in 0..N {
        common::png(tmp.path(), &format!("p{i}.png"), 64, 48);
    }
    let doomed = Arc::new(texcache::Gpu::open(texcache::config::Backend::Auto).unwrap());
    let mut cfg = texcache::Config::default();
    cfg.mediadir = tmp.path().into();
    let cache = Arc::new(texcache::Cache::new(cfg).unwrap());
    cache.bind_gpu(doomed.clone());
    let (first, uploaded) = std::sync::mpsc::channel();
    let (lost, destroyed) = std::sync::mpsc::channel();
    let uploader = {
        let cache = cache.clone();
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0u64, 0u64);
            for i in 0..N {
                if i == N - 1 {
                    // The uploads in between race the loss; this last one comes after it.
                    destroyed.recv().unwrap();
                }
                match cache.texture(&format!("p{i}.png")) {
                    Ok(_) => ok += 1,
                    Err(e) if matches!(e.kind(), ErrorKind::Gpu { .. }) => {
                        assert!(e.to_string().starts_with(&format!("p{i}.png")), "{e}");
                        failed += 1;
                    }
                    Err(e) => panic!("{e}"),
                }
                if i == 0 {
                    first.send(()).unwrap();
                }
            }
            (ok, failed)
        })
    };
    // Lose the device while the other thread is uploading.
    uploaded.recv().unwrap();
    doomed.device().destroy();
    lost.send(()).unwrap();
    let (ok, failed) = uploader.join().expect("no upload panicked");
    assert!(ok >= 1 && failed >= 1, "ok {ok}, failed {failed}");
    assert_eq!(ok + failed, N as u64);
    let s = cache.stats().gpu;
    assert_eq!(
        (s.misses, s.failures, s.entries),
        (N as u64, failed, ok),
        "{s:?}"
    );
    // Bound to a new device, the cache goes on.
    cache.bind_gpu(Arc::new(
        texcache::Gpu::open(texcache::config::Backend::Auto).unwrap(),
    ));
    let last = format!("p{}.png", N - 1);
    cache.remove(&last);
    let t = cache.texture(&last).unwrap();
    assert_eq!(
        read_back(&t).unwrap(),
        cache.bitmap(&last).unwrap().pixels()
    );
}

fn mip_cache(dir: &std::path::Path) -> Option<texcache::Cache> {
    let mut cfg = texcache::Config::default();
    cfg.mediadir = dir.to_path_buf();
    cfg.gpu.mipmaps = true;
    common::gpu_cache_with(cfg)
}

fn srgb_to_linear(c: u8) -> f64 {
    let c = c as f64 / 255.0;
    if c <= 0.04045 {
        c / 12.92
    } else {
        ((c + 0.055) / 1.055).powf(2.4)
    }
}

fn linear_to_srgb(l: f64) -> f64 {
    let c = if l <= 0.003_130_8 {
        l * 12.92
    } else {
        1.055 * l.powf(1.0 / 2.4) - 0.055
    };
    c * 255.0
}

/// A 2x2 box filter of one level (even sizes), colour in linear light for sRGB textures.
fn box_filter(src: &[u8], w: usize, h: usize, bpp: usize, srgb: bool) -> Vec<f64> {
    let (dw, dh) = ((w / 2).max(1), (h / 2).max(1));
    let mut out = Vec::with_capacity(dw * dh * bpp);
    for y in 0..dh {
        for x in 0..dw {
            for c in 0..bpp {
                let mut sum = 0.0;
                for (sx, sy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    let (px, py) = ((2 * x + sx).min(w - 1), (2 * y + sy).min(h - 1));
                    let v = src[(py * w + px) * bpp + c];
                    sum += if srgb && c < 3 {
                        srgb_to_linear(v)
                    } else {
                        v as f64 / 255.0
                    };
                }
                let avg = sum / 4.0;
                out.push(if srgb && c < 3 {
                    linear_to_srgb(avg)
                } else {
                    avg * 255.0
                });
            }
        }
    }
    out
}

#[test]
fn mip_levels_match_a_cpu_box_filter() {
    let tmp = tempfile::tempdir().unwrap();
    common::png(tmp.path(), "rgba.png", 64, 32);
    image::DynamicImage::ImageRgba8(texcache::testing::samples::picture(32, 64, 7))
        .to_luma8()
        .save(tmp.path().join("gray.png"))
        .unwrap();
    let Some(cache) = mip_cache(tmp.path()) else {
        return;
    };
    for (name, w, h, bpp) in [
        ("rgba.png", 64usize, 32usize, 4usize),
        ("gray.png", 32, 64, 1),
    ] {
        let tex = cache.texture(name).unwrap();
        assert_eq!(tex.mip_levels(), 7, "{name}: 64 down to 1 is 7 levels");
        let srgb = bpp == 4;
        let mut above = read_back(&tex).unwrap();
        assert_eq!(
            above,
            cache.bitmap(name).unwrap().pixels(),
            "{name} level 0"
        );
        let (mut lw, mut lh) = (w, h);
        let mut worst = 0.0f64;
        for level in 1..tex.mip_levels() {
            let want = box_filter(&above, lw, lh, bpp, srgb);
            (lw, lh) = ((lw / 2).max(1), (lh / 2).max(1));
            let got = texcache::gpu::read_back_level(&tex, level).unwrap();
            assert_eq!(got.len(), lw * lh * bpp, "{name} level {level} size");
            for (g, w) in got.iter().zip(&want) {
                worst = worst.max((*g as f64 - w).abs());
            }
            above = got;
        }
        assert!(
            worst <= 1.5,
            "{name}: a mip texel is {worst} away from the box filter"
        );
    }
}

#[test]
fn mipmapped_textures_count_every_level() {
    let tmp = tempfile::tempdir().unwrap();
    common::png(tmp.path(), "odd.png", 5, 3);
    image::GrayImage::new(5, 3)
        .save(tmp.path().join("gray.png"))
        .unwrap();
    let Some(cache) = mip_cache(tmp.path()) else {
        return;
    };
    // 5x3, 2x1, 1x1.
    let texel_sum = 5 * 3 + 2 + 1;
    let a = cache.texture("odd.png").unwrap();
    let g = cache.texture("gray.png").unwrap();
    assert_eq!((a.mip_levels(), a.bytes()), (3, texel_sum * 4));
    assert_eq!((g.mip_levels(), g.bytes()), (3, texel_sum));
    let s = cache.stats();
    assert_eq!((s.gpu.used, s.gpu.in_use), (texel_sum * 5, texel_sum * 5));
    // The bitmaps stay one level.
    assert_eq!(s.cpu.used, 5 * 3 * 4 + 5 * 3);
    assert_eq!(
        texcache::gpu::texture_bytes(1920, 1080, 4, texcache::gpu::level_count(1920, 1080)),
        (0..11)
            .map(|i| (1920u64 >> i).max(1) * (1080u64 >> i).max(1) * 4)
            .sum::<u64>()
    );
}

#[test]
fn textures_prefetch_on_background_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..6).map(|i| format!("p{i}.png")).collect();
    for n in &names {
        common::png(tmp.path(), n, 40, 30);
    }
    let Some(cache) = common::gpu_cache(tmp.path(), 1 << 30, 1 << 30, true) else {
        return;
    };
    cache
        .prefetch_textures(
            names.iter().cloned().chain(["missing.png".to_string()]),
            None,
        )
        .unwrap();
    cache.wait_prefetch();
    let s = cache.stats();
    assert_eq!(
        (
            s.gpu.entries,
            s.gpu.in_use,
            s.gpu.used,
            s.gpu.misses,
            s.gpu.failures
        ),
        (6, 0, 6 * 40 * 30 * 4, 7, 1)
    );
    for n in &names {
        let t = cache.texture(n).unwrap();
        assert_eq!(read_back(&t).unwrap(), cache.bitmap(n).unwrap().pixels());
    }
    assert_eq!(cache.stats().gpu.hits, 6, "the render thread only hits");
}

/// A load in flight holds no lock: while one texture's load is stuck, another thread still
/// gets a resident texture. (The loader is gated by a channel, so this is deterministic.)
#[test]
fn a_resident_texture_never_waits_for_another_upload() {
    use texcache::tier::Tier;
    let tmp = tempfile::tempdir().unwrap();
    common::png(tmp.path(), "a.png", 8, 8);
    common::png(tmp.path(), "b.png", 8, 8);
    let Some(cache) = common::gpu_cache(tmp.path(), 1 << 30, 1 << 30, true) else {
        return;
    };
    let gpu = cache.gpu().unwrap();
    let bitmap = cache.bitmap("a.png").unwrap();
    let tier: Arc<Tier<texcache::Texture>> = Arc::new(Tier::new(TierKind::Gpu, 1 << 30, 0));
    let resolver = texcache::key::Resolver::new(tmp.path());
    // "a" is resident (released, unused).
    drop(
        tier.acquire(
            "a.png",
            || resolver.key("a.png"),
            |_| texcache::Texture::upload(&gpu, "a.png", &bitmap, false),
        )
        .unwrap(),
    );
    let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    let loader = {
        let (tier, resolver, gpu, bitmap) =
            (tier.clone(), resolver.clone(), gpu.clone(), bitmap.clone());
        std::thread::spawn(move || {
            tier.acquire(
                "b.png",
                || resolver.key("b.png"),
                |_| {
                    started_tx.send(()).unwrap();
                    gate_rx.recv().unwrap();
                    texcache::Texture::upload(&gpu, "b.png", &bitmap, false)
                },
            )
            .map(|h| h.bytes())
        })
    };
    started_rx.recv().unwrap();
    // The upload of b is stuck in its loader; a is still served at once.
    let a = tier
        .acquire("a.png", || unreachable!(), |_| unreachable!())
        .unwrap();
    assert_eq!(read_back(&a).unwrap(), bitmap.pixels());
    gate_tx.send(()).unwrap();
    assert_eq!(loader.join().unwrap().unwrap(), 8 * 8 * 4);
    let s = tier.stats();
    assert_eq!((s.hits, s.misses, s.entries), (1, 2, 2));
}

#[test]
fn a_watch_sees_its_texture_evicted_and_vulkan_gives_a_gamma_view() {
    let tmp = tempfile::tempdir().unwrap();
    common::png(tmp.path(), "a.png", 16, 8);
    let Some(cache) = common::gpu_cache(tmp.path(), 1 << 20, 1 << 20, false) else {
        return;
    };
    let t = cache.texture("a.png").unwrap();
    let watch = t.watch();
    assert!(watch.is_alive() && watch.watches(&t));
    drop(t);
    assert!(watch.is_alive(), "unused but resident");
    let again = cache.texture("a.png").unwrap();
    assert!(watch.watches(&again), "a hit is the very texture");
    drop(again);
    assert!(cache.remove("a.png"));
    assert!(!watch.is_alive(), "removed: the texture is gone");
    let reloaded = cache.texture("a.png").unwrap();
    assert!(!watch.watches(&reloaded), "a new upload is another texture");
    // Vulkan (lavapipe here) can view the sRGB texture as its stored bytes.
    let view = reloaded.gamma_view();
    if cache.gpu().unwrap().adapter().contains("Vulkan") {
        assert!(view.is_some(), "{}", cache.gpu().unwrap().adapter());
    }
}

#[test]
fn gray_pictures_upload_as_rgba_when_the_gpu_asks() {
    let tmp = tempfile::tempdir().unwrap();
    let gray = image::GrayImage::from_fn(20, 10, |x, y| image::Luma([(x * 12 + y) as u8]));
    gray.save(tmp.path().join("g.png")).unwrap();
    if common::gpu().is_none() {
        return;
    }
    let mut cfg = texcache::Config::default();
    cfg.mediadir = tmp.path().into();
    let cache = texcache::Cache::new(cfg).unwrap();
    let gpu = texcache::Gpu::open(texcache::config::Backend::Auto)
        .unwrap()
        .with_gray_as_rgba();
    cache.bind_gpu(Arc::new(gpu));
    let t = cache.texture("g.png").unwrap();
    assert_eq!(cache.bitmap("g.png").unwrap().format(), PixelFormat::Gray8);
    assert_eq!(
        (t.format(), t.texture().format()),
        (
            PixelFormat::Rgba8,
            texcache::wgpu::TextureFormat::Rgba8UnormSrgb
        )
    );
    assert_eq!(cache.stats().gpu.used, 20 * 10 * 4);
    let expected: Vec<u8> = gray.as_raw().iter().flat_map(|&g| [g, g, g, 255]).collect();
    assert_eq!(read_back(&t).unwrap(), expected);
}
