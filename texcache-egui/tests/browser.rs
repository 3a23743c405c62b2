//! The photo browser (examples/photo_browser) drawn headless by egui_kittest's wgpu renderer
//! on a real device (lavapipe on machines without a GPU), with texcache-egui's loader: the
//! grid shows the right thumbnails, scrolling 1,000 of them stays inside the GPU budget with
//! a bounded number of egui textures, and a bad file is egui's error, not a panic.

mod common;

use common::{browser, cache, harness, render_state, settle};
use egui::load::{LoadError, SizeHint, TextureLoader};
use egui::TextureOptions;
use std::sync::Arc;

#[test]
fn the_grid_shows_each_pictures_fitted_thumbnail() {
    let Some(rs) = render_state() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let names =
        texcache::testing::samples::write_pictures(tmp.path(), 12, 320, 240, false).unwrap();
    let cache = cache(tmp.path(), 16 << 20, 32 << 20);
    let mut h = harness(&rs, cache.clone(), &names, egui::vec2(720.0, 560.0));
    settle(&mut h);
    let image = h.render().expect("rendered");
    if let Some(p) = std::env::var_os("TEXCACHE_EGUI_SNAPSHOT") {
        image.save(p).unwrap();
    }
    let drawn = h.state().drawn.clone();
    assert!(drawn.len() >= 8, "thumbnails on screen: {}", drawn.len());
    for &(i, rect) in &drawn {
        assert_eq!(
            (rect.width(), rect.height()),
            (160.0, 120.0),
            "thumbnail {i}"
        );
        let thumb = cache.bitmap_fit(&names[i], 160, 120).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (160, 120));
        // The rendered pixels against the fitted bitmap texcache decoded (the texture's
        // source), and against the next picture's, which they must not resemble.
        let other = cache
            .bitmap_fit(&names[(i + 1) % names.len()], 160, 120)
            .unwrap();
        let (mut diff, mut diff_other, mut n) = (0u64, 0u64, 0u64);
        let (x0, y0) = (rect.min.x.round() as u32, rect.min.y.round() as u32);
        for y in 2..118u32 {
            for x in 2..158u32 {
                let p = image.get_pixel(x0 + x, y0 + y).0;
                let at = ((y * 160 + x) * 4) as usize;
                let (want, other) = (&thumb.pixels()[at..at + 3], &other.pixels()[at..at + 3]);
                for ((&p, &w), &o) in p[..3].iter().zip(want).zip(other) {
                    diff += (p as i32 - w as i32).unsigned_abs() as u64;
                    diff_other += (p as i32 - o as i32).unsigned_abs() as u64;
                }
                n += 3;
            }
        }
        let (mean, mean_other) = (diff as f64 / n as f64, diff_other as f64 / n as f64);
        assert!(
            mean < 2.0,
            "thumbnail {i}: mean difference {mean:.2} from its fitted bitmap"
        );
        assert!(
            mean_other > 10.0 * mean.max(0.5),
            "thumbnail {i} looks like {}: {mean_other:.2}",
            i + 1
        );
    }
    // Thumbnails cost thumbnail bytes: every texture is 160x120.
    let s = cache.stats();
    assert_eq!(
        s.gpu.used,
        drawn.len() as u64 * 160 * 120 * 4,
        "{:?}",
        s.gpu
    );
    assert_eq!(h.state().loader.stats().held, drawn.len());
}

#[test]
fn scrolling_a_thousand_thumbnails_stays_inside_the_gpu_budget() {
    let Some(rs) = render_state() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let names =
        texcache::testing::samples::write_pictures(tmp.path(), 1000, 64, 48, false).unwrap();
    // Pictures smaller than the 160x120 box are not scaled up: a texture is 64x48.
    let thumb_bytes = 64 * 48 * 4;
    let budget = 40 * thumb_bytes;
    let cache = cache(tmp.path(), budget, 8 << 20);
    let mut h = harness(&rs, cache.clone(), &names, egui::vec2(720.0, 560.0));
    h.state_mut().thumb = egui::vec2(160.0, 120.0);
    settle(&mut h);
    let on_screen = h.state().drawn.len();
    let (mut max_registered, mut max_used, mut y, mut seen) =
        (0, 0, 0.0, std::collections::HashSet::new());
    while !seen.contains(&(names.len() - 1)) {
        assert!(y < 1e6, "the grid never reached its last thumbnail");
        h.state_mut().scroll_to = Some(y);
        settle(&mut h);
        let s = cache.stats();
        let l = h.state().loader.stats();
        assert!(
            s.gpu.used <= budget,
            "GPU tier over budget at y={y}: {:?}",
            s.gpu
        );
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
    assert!(
        max_registered <= bound,
        "registered {max_registered} > {bound}"
    );
    assert!(h.state().loader.stats().freed_after_eviction > 800);
    eprintln!("1,000 thumbnails: GPU peak {max_used} of {budget} bytes, at most {max_registered} egui textures");
}

#[test]
fn a_bad_file_is_eguis_error_not_a_panic() {
    let Some(rs) = render_state() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut names =
        texcache::testing::samples::write_pictures(tmp.path(), 3, 64, 48, false).unwrap();
    std::fs::write(tmp.path().join("bad.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    names.insert(1, "bad.png".into());
    names.push("missing.jpg".into());
    let cache = cache(tmp.path(), 8 << 20, 8 << 20);
    let mut h = harness(&rs, cache.clone(), &names, egui::vec2(720.0, 400.0));
    settle(&mut h);
    h.render()
        .expect("a frame with a broken image still renders");
    let l = h.state().loader.stats();
    assert_eq!((l.failed, l.held), (2, 3), "{l:?}");
    let hint = SizeHint::Size {
        width: 160,
        height: 120,
        maintain_aspect_ratio: true,
    };
    match h.state().loader.load(
        &h.ctx,
        "texcache://bad.png",
        TextureOptions::default(),
        hint,
    ) {
        Err(LoadError::Loading(m)) => {
            assert!(m.contains("bad.png") && m.contains("corrupt"), "{m}")
        }
        other => panic!("expected egui's loading error, got {:?}", other.map(|_| ())),
    }
    match h
        .ctx
        .try_load_texture("texcache://missing.jpg", TextureOptions::default(), hint)
    {
        Err(LoadError::Loading(m)) => {
            assert!(m.contains("missing.jpg") && m.contains("not found"), "{m}")
        }
        other => panic!("expected egui's loading error, got {:?}", other.map(|_| ())),
    }
    // Another scheme is left to egui's other loaders.
    assert!(matches!(
        h.state()
            .loader
            .load(&h.ctx, "bytes://logo.png", TextureOptions::default(), hint),
        Err(LoadError::NotSupported)
    ));
    // forget: the entry goes, and the next pass loads from the file again.
    std::fs::copy(tmp.path().join(&names[0]), tmp.path().join("bad.png")).unwrap();
    h.ctx.forget_image("texcache://bad.png");
    settle(&mut h);
    assert_eq!(
        h.state().loader.stats().failed,
        1,
        "bad.png loads once fixed and forgotten"
    );
    let _ = Arc::strong_count(&h.state().loader);
}

#[test]
fn a_click_opens_the_picture_at_window_size_and_m_shows_the_memory_panel() {
    let Some(rs) = render_state() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let names =
        texcache::testing::samples::write_pictures(tmp.path(), 4, 1600, 1200, false).unwrap();
    let cache = cache(tmp.path(), 64 << 20, 64 << 20);
    let mut h = harness(&rs, cache.clone(), &names, egui::vec2(720.0, 560.0));
    settle(&mut h);
    let (i, rect) = h.state().drawn[1];
    let pos = rect.center();
    h.hover_at(pos);
    for pressed in [true, false] {
        h.event(egui::Event::PointerButton {
            pos,
            button: egui::PointerButton::Primary,
            pressed,
            modifiers: egui::Modifiers::NONE,
        });
    }
    h.step(); // the click: the grid's pass sets `open`, the next one draws the picture
    settle(&mut h);
    assert_eq!(h.state().open, Some(i), "the click opened picture {i}");
    // The picture at the size of the window: its texture fitted into the central panel, far
    // smaller than the 1600x1200 file, and the thumbnails let go.
    let textures: Vec<(u32, u32, u64)> = cache
        .stats_with_entries()
        .entries
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            texcache::observe::stats::Entry::Cached(e) if e.tier == "gpu" => {
                Some((e.width, e.height, e.refs))
            }
            _ => None,
        })
        .collect();
    let (w, ht, _) = *textures.iter().find(|t| t.2 > 0).unwrap_or_else(|| {
        panic!(
            "one texture held: {textures:?} {:?}",
            h.state().loader.stats()
        )
    });
    assert!(
        (640..=720).contains(&w) && ht == w * 3 / 4,
        "{w}x{ht}: {textures:?}"
    );
    assert_eq!(
        textures.iter().filter(|t| t.2 > 0).count(),
        1,
        "{textures:?}"
    );
    h.render().expect("the viewer renders");

    h.key_press(egui::Key::M);
    h.step();
    settle(&mut h);
    assert!(h.state().show_memory);
    cache.sample_history();
    settle(&mut h);
    let (table, panel) = h.state().stats_table.expect("the stats table was drawn");
    assert!(
        table.max.x <= panel.max.x + 0.5 && table.min.x >= panel.min.x - 0.5,
        "the stats table ({table:?}) is cut off by its panel ({panel:?})"
    );
    let image = h.render().expect("the memory panel renders");
    if let Some(p) = std::env::var_os("TEXCACHE_EGUI_SNAPSHOT") {
        image.save(p).unwrap();
    }
    h.key_press(egui::Key::Escape);
    h.step();
    settle(&mut h);
    assert_eq!(h.state().open, None, "Escape closes the picture");
}

#[test]
fn a_gray_picture_is_drawn_gray() {
    let Some(rs) = render_state() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let gray = image::GrayImage::from_fn(320, 240, |x, y| image::Luma([((x + y) / 3) as u8]));
    gray.save(tmp.path().join("gray.png")).unwrap();
    let cache = cache(tmp.path(), 8 << 20, 8 << 20);
    let mut h = harness(
        &rs,
        cache.clone(),
        &["gray.png".to_string()],
        egui::vec2(400.0, 300.0),
    );
    settle(&mut h);
    let image = h.render().expect("rendered");
    let (_, rect) = h.state().drawn[0];
    let thumb = cache.bitmap_fit("gray.png", 160, 120).unwrap();
    assert_eq!(thumb.format(), texcache::PixelFormat::Gray8);
    let (x0, y0) = (rect.min.x.round() as u32, rect.min.y.round() as u32);
    let mut diff = 0u64;
    for y in 2..118u32 {
        for x in 2..158u32 {
            let [r, g, b, _] = image.get_pixel(x0 + x, y0 + y).0;
            assert!(
                r.abs_diff(g) <= 1 && g.abs_diff(b) <= 1,
                "({x}, {y}) is {r},{g},{b}: not gray"
            );
            diff += g.abs_diff(thumb.pixels()[(y * 160 + x) as usize]) as u64;
        }
    }
    let mean = diff as f64 / (116.0 * 156.0);
    assert!(
        mean < 2.0,
        "mean difference {mean:.2} from the fitted gray bitmap"
    );
    assert_eq!(cache.stats().gpu.used, 160 * 120 * 4, "uploaded as RGBA");
}

/// The browser over a folder of every format of the corpus and the EXIF orientation set:
/// every picture texcache decodes is drawn (WebP and GIF too, which egui asks for as
/// `URI#0`), and only those it cannot decode are errors, with its message.
#[test]
fn every_format_and_orientation_is_drawn() {
    let Some(rs) = render_state() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
    let mut names = Vec::new();
    for sub in ["formats", "orientation"] {
        for e in std::fs::read_dir(corpus.join(sub)).unwrap().flatten() {
            let name = e.file_name().into_string().unwrap();
            std::os::unix::fs::symlink(e.path(), tmp.path().join(&name)).unwrap();
            names.push(name);
        }
    }
    names.sort();
    assert!(
        names.iter().filter(|n| n.ends_with(".webp")).count() >= 9,
        "{names:?}"
    );
    let cache = cache(tmp.path(), 256 << 20, 256 << 20);
    // What texcache itself makes of each (AVIF needs its `ffmpeg` feature).
    let failing: Vec<&String> = names.iter().filter(|n| cache.bitmap(n).is_err()).collect();
    assert!(
        failing.iter().all(|n| n.ends_with(".avif")),
        "texcache cannot decode {failing:?}"
    );
    let mut h = harness(&rs, cache.clone(), &names, egui::vec2(1400.0, 2400.0));
    settle(&mut h);
    h.render().expect("rendered");
    let l = h.state().loader.stats();
    assert_eq!(
        (l.failed, l.held),
        (failing.len(), names.len() - failing.len()),
        "{l:?}"
    );
    let hint = SizeHint::Size {
        width: 160,
        height: 120,
        maintain_aspect_ratio: true,
    };
    for uri in [
        "texcache://kodim23_orientation6.webp#0",
        "texcache://kodim23_lossless.webp#0",
    ] {
        match h.ctx.try_load_texture(uri, TextureOptions::default(), hint) {
            Ok(egui::load::TexturePoll::Ready { texture }) => {
                let ratio = texture.size.x / texture.size.y;
                assert!(
                    (ratio - 1.5).abs() < 0.02,
                    "{uri}: {:?} is not upright",
                    texture.size
                )
            }
            other => panic!("{uri}: {:?}", other.map(|_| ())),
        }
    }
}

/// The photo browser as a person runs it: a real window on a real X server (Xvfb), over a
/// folder of every corpus format and the orientation set, for 30 frames, then closed. Its
/// stderr has none of the driver's `XDG_RUNTIME_DIR` noise (the command line filters it too)
/// and no error.
#[test]
fn the_photo_browser_runs_on_an_x_server_without_noise() {
    if render_state().is_none() {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let browser = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join("examples/photo_browser");
    assert!(
        browser.exists(),
        "{} (built by cargo test)",
        browser.display()
    );
    // Xvfb writes its display number once it accepts connections (no sleep needed).
    let mut server = std::process::Command::new("Xvfb")
        .args([
            "-displayfd",
            "1",
            "-screen",
            "0",
            "1280x800x24",
            "-nolisten",
            "tcp",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("this test needs Xvfb ({e}; apt-get install xvfb: scripts/install-deps does)")
        });
    let mut display = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().unwrap()),
        &mut display,
    )
    .unwrap();
    assert!(!display.trim().is_empty(), "Xvfb did not start");
    let tmp = tempfile::tempdir().unwrap();
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
    for sub in ["formats", "orientation"] {
        for e in std::fs::read_dir(corpus.join(sub)).unwrap().flatten() {
            std::os::unix::fs::symlink(e.path(), tmp.path().join(e.file_name())).unwrap();
        }
    }
    let out = std::process::Command::new(&browser)
        .args(["--dir", tmp.path().to_str().unwrap(), "--frames", "30"])
        .env("DISPLAY", format!(":{}", display.trim()))
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("TEXCACHE_CONFIG")
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}\n{stderr}", out.status);
    assert!(!stderr.contains("XDG_RUNTIME_DIR"), "{stderr}");
    assert!(!stderr.to_lowercase().contains("error"), "{stderr}");
}
