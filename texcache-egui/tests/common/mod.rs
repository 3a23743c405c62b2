//! What the egui tests share: the render state (a real wgpu device: lavapipe on machines
//! without a GPU), a cache, and a harness drawing the photo browser with the loader installed.
#![allow(dead_code)]

#[path = "../../examples/photo_browser/browser.rs"]
pub mod browser;

use egui_kittest::Harness;
use std::path::Path;

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

pub fn cache(dir: &Path, gpu_budget: u64, cpu_budget: u64) -> texcache::Cache {
    let mut cfg = texcache::Config::default();
    cfg.mediadir = dir.into();
    cfg.gpu.budget.0 = gpu_budget;
    cfg.cpu.budget.0 = cpu_budget;
    cfg.loader.threads = 2;
    texcache::Cache::new(cfg).unwrap()
}

/// A harness drawing the browser over `names` of `cache`, with the loader installed.
pub fn harness(
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
        .renderer(egui_kittest::wgpu::WgpuTestRenderer::from_render_state(
            rs.clone(),
        ))
        .build_ui_state(|ui, b: &mut browser::Browser| b.ui(ui), b);
    harness.ctx.add_texture_loader(loader);
    harness
}

/// Passes until every image on screen is loaded: a pass, and while it left loads pending,
/// waiting for the loader threads and another pass.
pub fn settle(h: &mut Harness<'_, browser::Browser>) {
    for _ in 0..50 {
        h.step();
        if h.state().loader.stats().pending == 0 {
            return;
        }
        let cache = h.state().cache.clone();
        cache.wait_prefetch();
    }
    panic!(
        "images still pending after 50 passes: {:?}",
        h.state().loader.stats()
    );
}
