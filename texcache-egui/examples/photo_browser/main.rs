//! A photo browser on egui and texcache: a scrolling grid of thumbnails of a folder, a click
//! opens a picture at window size, and `M` shows the cache's memory over time and its stats
//! table, inside the app.
//!
//! ```sh
//! cargo run --release -p texcache-egui --example photo_browser               # pictures it makes
//! cargo run --release -p texcache-egui --example photo_browser -- --dir ~/Pictures
//! ```
//!
//! Budgets come from `TEXCACHE_CONFIG` if set, else 64 MiB of GPU and 128 MiB of CPU memory,
//! whatever the size of the folder: scrolling through thousands of photos keeps the GPU tier
//! within its budget.

mod browser;

use std::path::PathBuf;

/// What texcache decodes (AVIF with its `ffmpeg` feature; without it, its error is shown).
const EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "tga", "qoi", "ico", "ppm", "pgm",
    "pbm", "pam", "pnm", "avif",
];

fn main() -> eframe::Result {
    let runtime_dir = quiet_wayland_probe();
    let mut args = std::env::args().skip(1);
    let (mut dir, mut frames) = (None, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--dir" => dir = args.next().map(PathBuf::from),
            "--frames" => {
                frames = args.next().and_then(|n| n.parse::<u64>().ok());
                if frames.is_none() {
                    fail("--frames takes a number of frames");
                }
            }
            "-h" | "--help" => {
                println!(
                    "photo_browser [--dir FOLDER] [--frames N]   (default: 600 pictures it \
                     generates; --frames: close after N frames, for smoke tests)"
                );
                return Ok(());
            }
            other => {
                eprintln!("photo_browser: unknown argument {other:?} (try --help)");
                std::process::exit(2);
            }
        }
    }
    let (dir, names) = match dir {
        Some(d) => {
            let names = pictures_in(&d);
            (d, names)
        }
        None => {
            let d = std::env::temp_dir().join("texcache-photo-browser");
            eprintln!(
                "photo_browser: making 600 pictures in {} (once)",
                d.display()
            );
            let names = texcache::testing::samples::write_pictures(&d, 600, 640, 480, true)
                .unwrap_or_else(|e| fail(&e.to_string()));
            (d, names)
        }
    };
    if names.is_empty() {
        fail(&format!("no pictures in {}", dir.display()));
    }
    let mut config = match texcache::Config::env_file() {
        Some(file) => texcache::Config::load(file).unwrap_or_else(|e| fail(&e.to_string())),
        None => {
            let mut c = texcache::Config::default();
            c.gpu.budget = "64 MiB".parse().expect("a size");
            c.cpu.budget = "128 MiB".parse().expect("a size");
            c
        }
    };
    config.mediadir = dir;
    config.stats.history_interval_ms = 250;
    let cache = texcache::Cache::new(config).unwrap_or_else(|e| fail(&e.to_string()));
    let options = eframe::NativeOptions {
        renderer: eframe::Renderer::Wgpu,
        viewport: egui::ViewportBuilder::default().with_inner_size([1280.0, 800.0]),
        ..Default::default()
    };
    let ran = eframe::run_native(
        "texcache photo browser",
        options,
        Box::new(move |cc| {
            let render_state = cc
                .wgpu_render_state
                .as_ref()
                .ok_or("the photo browser needs eframe's wgpu renderer")?;
            let loader = texcache_egui::install(&cc.egui_ctx, render_state, cache.clone());
            Ok(Box::new(App {
                browser: browser::Browser::new(cache, loader, &names),
                frames_left: frames,
            }))
        }),
    );
    if let Some(dir) = runtime_dir {
        let _ = std::fs::remove_dir(dir);
    }
    ran
}

struct App {
    browser: browser::Browser,
    /// With `--frames N`: frames still to draw before closing.
    frames_left: Option<u64>,
}

impl eframe::App for App {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.browser.ui(ui);
        if self.browser.show_memory {
            // The graph moves while it is shown.
            ui.ctx()
                .request_repaint_after(std::time::Duration::from_millis(250));
        }
        if let Some(left) = &mut self.frames_left {
            *left = left.saturating_sub(1);
            let close = *left == 0;
            ui.ctx().send_viewport_cmd(if close {
                egui::ViewportCommand::Close
            } else {
                egui::ViewportCommand::Focus // a no-op that asks for the next frame
            });
            ui.ctx().request_repaint();
        }
    }
}

/// On X11 and headless machines without `XDG_RUNTIME_DIR`, the windowing library's probe for
/// a Wayland display makes libwayland print `error: XDG_RUNTIME_DIR is invalid or not set in
/// the environment.` (harmless, and not the browser's). With a private, empty runtime
/// directory the probe finds no display, quietly. Called first in `main`, before any thread;
/// returns the directory made, removed when the browser closes.
fn quiet_wayland_probe() -> Option<PathBuf> {
    if std::env::var_os("XDG_RUNTIME_DIR").is_some()
        || std::env::var_os("WAYLAND_DISPLAY").is_some()
    {
        return None;
    }
    let dir =
        std::env::temp_dir().join(format!("texcache-photo-browser-run-{}", std::process::id()));
    use std::os::unix::fs::DirBuilderExt;
    if std::fs::DirBuilder::new().mode(0o700).create(&dir).is_ok() {
        // SAFETY: no other thread exists yet (this runs first in `main`), so nothing reads
        // the environment concurrently.
        unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
        return Some(dir);
    }
    None
}

fn pictures_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| fail(&format!("{}: {e}", dir.display())))
        .filter_map(|e| e.ok())
        // Files, and links to files.
        .filter(|e| std::fs::metadata(e.path()).is_ok_and(|m| m.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| {
            n.rsplit_once('.')
                .is_some_and(|(_, ext)| EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()))
        })
        .collect();
    names.sort();
    names
}

fn fail(message: &str) -> ! {
    eprintln!("photo_browser: {message}");
    std::process::exit(1)
}
