//! The GPU tier (SPEC §3.8) on a real wgpu device: lavapipe where there is no GPU.

mod common;

use std::sync::{Arc, Barrier};
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
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_texcache"))
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
    assert!(matches!(err, texcache::Error::Gpu { .. }), "{err:?}");
    assert!(err.to_string().starts_with("b.png: GPU error"), "{err}");
    assert_eq!(cache.stats().gpu.failures, 1);
    drop(a); // a texture of the lost device is still dropped cleanly
    cache.bind_gpu(Arc::new(
        texcache::Gpu::open(texcache::config::Backend::Auto).unwrap(),
    ));
    let b = cache.texture("b.png").unwrap();
    assert_eq!(
        read_back(&b).unwrap(),
        cache.bitmap("b.png").unwrap().pixels()
    );
}
