//! The photo browser (examples/photo_browser) drawn headless by egui_kittest's wgpu renderer
//! on a real device (lavapipe on machines without a GPU), with texcache-egui's loader: the
//! grid shows the right thumbnails, scrolling 1,000 of them stays inside the GPU budget with
//! a bounded number of egui textures, and a bad file is egui's error, not a panic.

#[path = "../examples/photo_browser/browser.rs"]
mod browser;

use egui::load::{LoadError, SizeHint, TextureLoader};
use egui::TextureOptions;
use egui_kittest::Harness;
use std::path::Path;
use std::sync::Arc;

/// The render state every test draws with, or `None` where the user opted out of GPU tests.
pub fn render_state() -> Option<egui_wgpu::RenderState> {
    let made = std::panic::catch_unwind(|| {
        egui_kittest::wgpu::create_render_state(
            egui_kittest::wgpu::default_wgpu_setup(),
            egui_wgpu::RendererOptions::PREDICTABLE,
        )
    });
    match made {
        Ok(rs) => Some(rs),
        Err(_) if std::env::var("TEXCACHE_SKIP_GPU_TESTS").as_deref() == Ok("1") => {
            eprintln!("TEXCACHE_SKIP_GPU_TESTS=1: skipping a GPU test");
            None
        }
        Err(_) => panic!(
            "the egui tests need a wgpu adapter (install one, e.g. `apt-get install \
             mesa-vulkan-drivers`, or set TEXCACHE_SKIP_GPU_TESTS=1 to skip GPU tests)"
        ),
    }
}

fn cache(dir: &Path, gpu_budget: u64, cpu_budget: u64) -> texcache::Cache {
    let mut cfg = texcache::Config::default();
    cfg.mediadir = dir.into();
    cfg.gpu.budget.0 = gpu_budget;
    cfg.cpu.budget.0 = cpu_budget;
    cfg.loader.threads = 2;
    texcache::Cache::new(cfg).unwrap()
}

/// A harness drawing the browser over `names` of `cache`, with the loader installed.
fn harness(
    rs: &egui_wgpu::RenderState,
    cache: texcache::Cache,
    names: &[String],
    size: egui::Vec2,
) -> Harness<'static, browser::Browser> {
    let loader = texcache_egui::Loader::bound(cache.clone(), rs);
    let b = browser::Browser::new(cache, loader.clone(), names);
    let harness = Harness::builder()
        .with_size(size)
        .with_pixels_per_point(1.0)
        .allow_missing_glyphs()
        .renderer(egui_kittest::wgpu::WgpuTestRenderer::from_render_state(rs.clone()))
        .build_ui_state(|ui, b: &mut browser::Browser| b.ui(ui), b);
    harness.ctx.add_texture_loader(loader);
    harness
}

/// Passes until every image on screen is loaded: a pass, then waiting for the loader threads
/// (the requests' loads), again, until a pass starts none.
fn settle(h: &mut Harness<'_, browser::Browser>) {
    for _ in 0..50 {
        h.step();
        let cache = h.state().cache.clone();
        cache.wait_prefetch();
        if h.state().loader.stats().pending == 0 {
            h.step();
            return;
        }
    }
    panic!("images still pending after 50 passes: {:?}", h.state().loader.stats());
}

#[test]
fn the_grid_shows_each_pictures_fitted_thumbnail() {
    let Some(rs) = render_state() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let names = texcache::samples::write_pictures(tmp.path(), 12, 320, 240, false).unwrap();
    let cache = cache(tmp.path(), 16 << 20, 32 << 20);
    let mut h = harness(&rs, cache.clone(), &names, egui::vec2(720.0, 560.0));
    settle(&mut h);
    let image = h.render().expect("rendered");
    if let Some(p) = std::env::var_os("TEXCACHE_EGUI_SNAPSHOT") { image.save(p).unwrap(); }
    let drawn = h.state().drawn.clone();
    assert!(drawn.len() >= 8, "thumbnails on screen: {}", drawn.len());
    for &(i, rect) in &drawn {
        assert_eq!((rect.width(), rect.height()), (160.0, 120.0), "thumbnail {i}");
        let thumb = cache.bitmap_fit(&names[i], 160, 120).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (160, 120));
        // The rendered pixels against the fitted bitmap texcache decoded (the texture's
        // source), and against the next picture's, which they must not resemble.
        let other = cache.bitmap_fit(&names[(i + 1) % names.len()], 160, 120).unwrap();
        let (mut diff, mut diff_other, mut n) = (0u64, 0u64, 0u64);
        let (x0, y0) = (rect.min.x.round() as u32, rect.min.y.round() as u32);
        for y in 2..118u32 {
            for x in 2..158u32 {
                let p = image.get_pixel(x0 + x, y0 + y).0;
                let at = ((y * 160 + x) * 4) as usize;
                for c in 0..3 {
                    diff += (p[c] as i32 - thumb.pixels()[at + c] as i32).unsigned_abs() as u64;
                    diff_other += (p[c] as i32 - other.pixels()[at + c] as i32).unsigned_abs() as u64;
                }
                n += 3;
            }
        }
        let (mean, mean_other) = (diff as f64 / n as f64, diff_other as f64 / n as f64);
        assert!(mean < 2.0, "thumbnail {i}: mean difference {mean:.2} from its fitted bitmap");
        assert!(mean_other > 10.0 * mean.max(0.5), "thumbnail {i} looks like {}: {mean_other:.2}", i + 1);
    }
    // Thumbnails cost thumbnail bytes: every texture is 160x120.
    let s = cache.stats();
    assert_eq!(s.gpu.used, drawn.len() as u64 * 160 * 120 * 4, "{:?}", s.gpu);
    assert_eq!(h.state().loader.stats().held, drawn.len());
}

#[test]
fn scrolling_a_thousand_thumbnails_stays_inside_the_gpu_budget() {
    let Some(rs) = render_state() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let names = texcache::samples::write_pictures(tmp.path(), 1000, 64, 48, false).unwrap();
    // Pictures smaller than the 160x120 box are not scaled up: a texture is 64x48.
    let thumb_bytes = 64 * 48 * 4;
    let budget = 40 * thumb_bytes;
    let cache = cache(tmp.path(), budget, 8 << 20);
    let mut h = harness(&rs, cache.clone(), &names, egui::vec2(720.0, 560.0));
    h.state_mut().thumb = egui::vec2(160.0, 120.0);
    settle(&mut h);
    let on_screen = h.state().drawn.len();
    let (mut max_registered, mut max_used, mut y, mut seen) = (0, 0, 0.0, std::collections::HashSet::new());
    while !seen.contains(&(names.len() - 1)) {
        assert!(y < 1e6, "the grid never reached its last thumbnail");
        h.state_mut().scroll_to = Some(y);
        settle(&mut h);
        let s = cache.stats();
        let l = h.state().loader.stats();
        assert!(s.gpu.used <= budget, "GPU tier over budget at y={y}: {:?}", s.gpu);
        assert_eq!(l.held, h.state().drawn.len(), "held = drawn at y={y}");
        max_registered = max_registered.max(l.registered);
        max_used = max_used.max(s.gpu.used);
        seen.extend(h.state().drawn.iter().map(|d| d.0));
        y += 2.0 * (120.0 + browser::GAP);
    }
    assert_eq!(seen.len(), names.len(), "every thumbnail was drawn once");
    let s = cache.stats();
    assert!(s.gpu.evictions > 900, "{:?}", s.gpu);
    // Registered egui textures: those resident in the cache (at most the budget's worth),
    // plus at most one pass of evicted ones not yet noticed.
    let bound = (budget / thumb_bytes) as usize + on_screen;
    assert!(max_registered <= bound, "registered {max_registered} > {bound}");
    assert!(h.state().loader.stats().freed_after_eviction > 800);
    eprintln!("1,000 thumbnails: GPU peak {max_used} of {budget} bytes, at most {max_registered} egui textures");
}

#[test]
fn a_bad_file_is_eguis_error_not_a_panic() {
    let Some(rs) = render_state() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut names = texcache::samples::write_pictures(tmp.path(), 3, 64, 48, false).unwrap();
    std::fs::write(tmp.path().join("bad.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    names.insert(1, "bad.png".into());
    names.push("missing.jpg".into());
    let cache = cache(tmp.path(), 8 << 20, 8 << 20);
    let mut h = harness(&rs, cache.clone(), &names, egui::vec2(720.0, 400.0));
    settle(&mut h);
    h.render().expect("a frame with a broken image still renders");
    let l = h.state().loader.stats();
    assert_eq!((l.failed, l.held), (2, 3), "{l:?}");
    let hint = SizeHint::Size { width: 160, height: 120, maintain_aspect_ratio: true };
    match h.state().loader.load(&h.ctx, "texcache://bad.png", TextureOptions::default(), hint) {
        Err(LoadError::Loading(m)) => assert!(m.contains("bad.png") && m.contains("corrupt"), "{m}"),
        other => panic!("expected egui's loading error, got {:?}", other.map(|_| ())),
    }
    match h.ctx.try_load_texture("texcache://missing.jpg", TextureOptions::default(), hint) {
        Err(LoadError::Loading(m)) => assert!(m.contains("missing.jpg") && m.contains("not found"), "{m}"),
        other => panic!("expected egui's loading error, got {:?}", other.map(|_| ())),
    }
    // Another scheme is left to egui's other loaders.
    assert!(matches!(
        h.state().loader.load(&h.ctx, "bytes://logo.png", TextureOptions::default(), hint),
        Err(LoadError::NotSupported)
    ));
    // forget: the entry goes, and the next pass loads from the file again.
    std::fs::copy(tmp.path().join(&names[0]), tmp.path().join("bad.png")).unwrap();
    h.ctx.forget_image("texcache://bad.png");
    settle(&mut h);
    assert_eq!(h.state().loader.stats().failed, 1, "bad.png loads once fixed and forgotten");
    let _ = Arc::strong_count(&h.state().loader);
}
