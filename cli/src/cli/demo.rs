//! `texcache demo`: the main job on built-in defaults.
//!
//! Generates sample media (24 pictures, PNG and JPEG, and a test-pattern clip encoded as H.264
//! in MP4 by FFmpeg, or Y4M when the command line is built without its `ffmpeg` feature), then
//! plays what a photo viewer does, in three phases:
//!
//! 1. **grid**: a thumbnail grid, 12 to a page, fitted to 160x120 (§1: a thumbnail costs
//!    thumbnail bytes); the next page is prefetched, the user scrolls down and back up.
//! 2. **viewer**: the full-size view beside the grid, browsing forward, back, and returning to
//!    favourites, with the next two pictures prefetched in the direction of travel; one
//!    favourite is pinned in a second (compare) view, so two views share one entry.
//! 3. **video**: the clip through a video node with its queue, each frame uploaded to the
//!    node's one texture.
//!
//! Budgets hold a fraction of the pictures, so eviction happens. Every load the viewer waits
//! for is finished before the next step (one loader thread, waited for), so the counters are
//! the same on every run. At the end it prints the statistics, the savings in words (against
//! decoding a picture each time it is shown, and against loading every picture up front), the
//! process's memory explained, and writes the memory graph (SVG) and a contact sheet (PNG) of
//! what was shown, read back from the GPU textures. Without a GPU adapter the demo says so and
//! runs the CPU tier alone.

use crate::error::Result;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use texcache::observe::stats::process_rss;
use texcache::testing::samples;
use texcache::video::VideoNode;
use texcache::{
    BitmapHandle, ByteSize, Cache, Config, Error, ErrorKind, Gpu, TextureHandle, TierKind,
};

/// The pictures, their size, and the thumbnails' box.
const COUNT: usize = 24;
const SIZE: (u32, u32) = (640, 480);
const THUMB: (u32, u32) = (160, 120);
const PAGE: usize = 12;
/// The tiers' budgets, in full-size pictures: the two differ, so their lines do too.
const CPU_PICTURES: u64 = 12;
const GPU_PICTURES: u64 = 6;
/// Frames of the clip played (90 in the file).
const CLIP_FRAMES: usize = 60;

/// What the demo did and what it saved: `"demo"` in `--json`, in words otherwise.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// Pictures the views showed: thumbnails and full size (prefetch is not a view).
    pub shown_thumbnails: u64,
    pub shown_full: u64,
    /// Acquires of each tier, counted here: the views' and prefetch's in the tier they ask
    /// for, and one CPU acquire per GPU miss (§3.8). Equal to hits + misses + coalesced.
    pub cpu_acquires: u64,
    pub gpu_acquires: u64,
    /// Shows that found their picture already on screen in another view.
    pub shared_shows: u64,
    /// Decodes done (CPU misses), against one per picture shown without a cache.
    pub decodes: u64,
    pub decodes_without_cache: u64,
    pub decodes_avoided: u64,
    /// Uploads done (GPU misses), against one per picture shown without a cache.
    pub uploads: u64,
    pub uploads_without_cache: u64,
    pub uploads_avoided: u64,
    /// Bytes of files read (one whole file per decode), against one file per show.
    pub file_bytes_read: u64,
    pub file_bytes_without_cache: u64,
    pub file_bytes_not_read: u64,
    /// The tiers' peaks together, against holding every picture and thumbnail decoded (and
    /// uploaded, with a GPU) from the start.
    pub peak_bytes: u64,
    pub up_front_bytes: u64,
    /// Video frames played.
    pub video_frames: u64,
    /// The process's resident memory at the end, and its parts (below), which add up to it.
    pub rss: u64,
    /// Bytes texcache holds in this process: the CPU tier, video frames and decoders, and the
    /// GPU tier and video texture when the adapter is a software one (they live in RAM).
    pub rss_texcache: u64,
    /// The GPU driver's code and data mapped from its libraries (Mesa, LLVM, the Vulkan
    /// loader), resident: from /proc/self/smaps.
    pub rss_driver_code: u64,
    /// The heap the GPU driver took while the device opened (anonymous RSS before and after).
    pub rss_driver_heap: u64,
    /// Every other library's and the program's resident code and data (smaps).
    pub rss_other_code: u64,
    /// The rest of the heap: decoders' and the driver's working memory after the device
    /// opened (shaders it compiled), thread stacks, the allocator's free lists.
    pub rss_other_heap: u64,
    /// Whether the adapter runs on the CPU (lavapipe, llvmpipe).
    pub software_adapter: bool,
}

/// What a view shows: a texture, or a bitmap without a GPU.
#[allow(dead_code)]
enum Shown {
    Texture(TextureHandle),
    Bitmap(BitmapHandle),
}

impl Shown {
    fn texture(&self) -> Option<&TextureHandle> {
        match self {
            Shown::Texture(t) => Some(t),
            Shown::Bitmap(_) => None,
        }
    }
}

/// The running demo: the cache, what each file weighs, and the counts of [`Report`].
struct Demo<'a> {
    cache: &'a Cache,
    gpu: bool,
    file_bytes: HashMap<String, u64>,
    report: Report,
    phases: Vec<(u64, &'static str)>,
}

impl Demo<'_> {
    fn misses(&self) -> (u64, u64) {
        let cpu = self.cache.tier_stats(TierKind::Cpu).misses;
        let gpu = self.cache.tier_stats(TierKind::Gpu).misses;
        (cpu, gpu)
    }

    /// Counts what one acquire of `href` in the tier asked for cost: `before` is
    /// [`Demo::misses`] before it.
    fn count(&mut self, href: &str, before: (u64, u64)) {
        let after = self.misses();
        let (decodes, uploads) = (after.0 - before.0, after.1 - before.1);
        if self.gpu {
            self.report.gpu_acquires += 1;
            // Each GPU miss acquires its bitmap through the CPU tier (§3.8).
            self.report.cpu_acquires += uploads;
        } else {
            self.report.cpu_acquires += 1;
        }
        self.report.file_bytes_read += decodes * self.file_bytes[href];
        self.cache.sample_history();
    }

    /// A view shows `href`, full size or fitted.
    fn show(&mut self, href: &str, fit: Option<(u32, u32)>) -> Result<Shown> {
        let before = self.misses();
        let shown = match (self.gpu, fit) {
            (true, None) => Shown::Texture(self.cache.texture(href)?),
            (true, Some((w, h))) => Shown::Texture(self.cache.texture_fit(href, w, h)?),
            (false, None) => Shown::Bitmap(self.cache.bitmap(href)?),
            (false, Some((w, h))) => Shown::Bitmap(self.cache.bitmap_fit(href, w, h)?),
        };
        if fit.is_some() {
            self.report.shown_thumbnails += 1;
        } else {
            self.report.shown_full += 1;
        }
        self.report.file_bytes_without_cache += self.file_bytes[href];
        self.count(href, before);
        Ok(shown)
    }

    /// Prefetches `hrefs`, one at a time and waited for, so the counts are the same on every
    /// run (with the viewer lingering on a picture, prefetch is done before the next step).
    fn prefetch(&mut self, hrefs: &[&str], fit: Option<(u32, u32)>) -> Result<()> {
        for &href in hrefs {
            let before = self.misses();
            match (self.gpu, fit) {
                (true, fit) => self.cache.prefetch_textures([href], fit)?,
                (false, fit) => self.cache.prefetch([href], fit)?,
            }
            self.cache.wait_prefetch();
            self.count(href, before);
        }
        Ok(())
    }

    fn phase(&mut self, name: &'static str) {
        let t = self.cache.sample_history().t_ms;
        self.phases.push((t, name));
    }
}

pub fn run(dir: Option<PathBuf>, json: bool, plot: &Path, sheet: &Path) -> Result<()> {
    let dir = dir.unwrap_or_else(|| std::env::temp_dir().join("texcache-demo"));
    let media = dir.join("media");
    let names = samples::write_pictures(&media, COUNT as u32, SIZE.0, SIZE.1, true)?;
    let clip_name = write_clip(&media)?;
    let mut file_bytes = HashMap::new();
    for n in &names {
        let path = media.join(n);
        let len = std::fs::metadata(&path)
            .map_err(|e| io_err(&path, &e))?
            .len();
        file_bytes.insert(n.clone(), len);
    }
    let cache = Cache::new(config(&media))?;
    let say = |s: String| {
        if !json {
            println!("{s}");
        }
    };
    say(format!(
        "texcache demo: {COUNT} generated {}x{} pictures and a 320x240 clip ({clip_name}) in {}",
        SIZE.0,
        SIZE.1,
        media.display()
    ));
    say(format!(
        "budgets: CPU {} ({CPU_PICTURES} pictures), GPU {} ({GPU_PICTURES} pictures)",
        ByteSize(cache.stats().cpu.budget),
        ByteSize(cache.stats().gpu.budget)
    ));
    let before_gpu = Resident::now();
    let gpu: Option<Arc<Gpu>> = match crate::driver_noise::quietly(|| cache.gpu()) {
        Ok(g) => {
            say(format!("GPU adapter: {}", g.adapter()));
            Some(g)
        }
        Err(e) => {
            say(format!("no GPU adapter ({e}); showing the CPU tier only"));
            None
        }
    };
    let rss_driver_heap = Resident::now().heap.saturating_sub(before_gpu.heap);
    let mut demo = Demo {
        cache: &cache,
        gpu: gpu.is_some(),
        file_bytes,
        report: Report::default(),
        phases: Vec::new(),
    };
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let bar = super::progress(3, "demo");
    let grid = demo.grid(&names)?;
    bar.inc(1);
    let viewer = demo.viewer(&names)?;
    bar.inc(1);
    let (clip, codec) = demo.video(clip_name, gpu.as_ref())?;
    demo.phase("end");
    bar.finish_and_clear();

    // The grid and the last picture are still on screen while we look at the memory.
    let stats = cache.stats();
    demo.account(&stats, gpu.as_ref(), rss_driver_heap);
    if json {
        let mut v = serde_json::to_value(&stats).expect("stats serialise");
        v["demo"] = serde_json::to_value(&demo.report).expect("report serialises");
        println!("{v}");
    } else {
        let frames = demo.report.video_frames;
        say(format!("video: {clip_name} ({codec}), {frames} frames played; the node stays open with its queue full"));
        println!("{stats}");
        print!("{}", savings(&demo.report, &stats, gpu.is_some()));
    }
    super::write_memory_plot(
        plot,
        &cache.history(),
        "texcache demo: memory over time",
        &demo.phases,
    )?;
    if let Some(gpu) = &gpu {
        contact_sheet(gpu, sheet, &grid, viewer.as_ref(), &clip)?;
    }
    drop((grid, viewer, clip));
    Ok(())
}

/// The demo's config: budgets of [`CPU_PICTURES`] and [`GPU_PICTURES`] pictures, one loader
/// thread waited for at each step (the same counts on every run), a history sampled by hand.
fn config(media: &Path) -> Config {
    let picture = SIZE.0 as u64 * SIZE.1 as u64 * 4;
    let mut cfg = Config::default();
    cfg.mediadir = media.to_path_buf();
    cfg.cpu.budget.0 = CPU_PICTURES * picture;
    cfg.gpu.budget.0 = GPU_PICTURES * picture;
    cfg.video.queue_length = 4;
    cfg.loader.threads = 1;
    // The demo samples its memory history itself, at every step and every frame.
    cfg.stats.history_interval_ms = 0;
    cfg.stats.history_length = 10_000;
    cfg
}

impl Demo<'_> {
    /// Phase 1, the grid: page 1, page 2 (prefetched while page 1 is on screen), back to page 1;
    /// what is left on screen.
    fn grid(&mut self, names: &[&str]) -> Result<Vec<Shown>> {
        self.phase("grid");
        let page = |demo: &mut Demo, p: usize| -> Result<Vec<Shown>> {
            names[p * PAGE..(p + 1) * PAGE]
                .iter()
                .map(|n| demo.show(n, Some(THUMB)))
                .collect()
        };
        let mut grid = page(self, 0)?;
        self.prefetch(&names[PAGE..2 * PAGE], Some(THUMB))?;
        for p in [1, 0, 1, 0] {
            let next = page(self, p)?;
            drop(grid);
            grid = next;
        }
        Ok(grid)
    }

    /// Phase 2, the viewer beside the grid: forward, back, favourites, forward, favourites; the
    /// picture left on screen.
    fn viewer(&mut self, names: &[&str]) -> Result<Option<(usize, Shown)>> {
        self.phase("viewer");
        let mut path: Vec<usize> = (0..12).collect();
        path.extend((4..11).rev());
        path.extend([2, 17, 2, 5, 17, 2]);
        path.extend(12..20);
        path.extend((14..19).rev());
        path.extend([2, 17, 5, 2]);
        let mut viewer: Option<(usize, Shown)> = None;
        let mut compare: Option<(usize, Shown)> = None;
        for (step, &i) in path.iter().enumerate() {
            let on_screen = compare.as_ref().is_some_and(|(c, _)| *c == i);
            let shown = self.show(names[i], None)?;
            if on_screen {
                self.report.shared_shows += 1;
            }
            // The old picture goes once the new one is there (a cross-fade holds both).
            viewer = Some((i, shown));
            if i == 2 && compare.is_none() {
                compare = Some((i, self.show(names[i], None)?));
                self.report.shared_shows += 1;
            }
            // Prefetch ahead in the direction of travel.
            if let Some(&next) = path.get(step + 1) {
                let ahead: Vec<&str> = if next == i + 1 {
                    [i + 1, i + 2]
                        .iter()
                        .filter(|&&j| j < COUNT)
                        .map(|&j| names[j])
                        .collect()
                } else if next + 1 == i {
                    [i.checked_sub(1), i.checked_sub(2)]
                        .into_iter()
                        .flatten()
                        .map(|j| names[j])
                        .collect()
                } else {
                    Vec::new()
                };
                self.prefetch(&ahead, None)?;
            }
        }
        Ok(viewer)
    }

    /// Phase 3, the clip through a video node, its frames uploaded to the node's texture; the node
    /// stays open, paused on a full queue. The node and its codec in words.
    fn video(&mut self, clip_name: &str, gpu: Option<&Arc<Gpu>>) -> Result<(VideoNode, String)> {
        self.phase("video");
        let mut clip = self.cache.video(clip_name)?;
        let codec = format!("{} in {}", clip.info().codec, clip.info().container);
        clip.play()?;
        for _ in 0..CLIP_FRAMES {
            let Some(f) = clip.next_frame()? else {
                break;
            };
            if let Some(gpu) = gpu {
                clip.upload(gpu, &f)?;
            }
            self.report.video_frames += 1;
            self.cache.sample_history();
        }
        clip.wait_full();
        Ok((clip, codec))
    }

    /// Fills the report's totals from the final `stats` and the process's memory now.
    fn account(&mut self, stats: &texcache::Stats, gpu: Option<&Arc<Gpu>>, rss_driver_heap: u64) {
        let picture = SIZE.0 as u64 * SIZE.1 as u64 * 4;
        let thumb = THUMB.0 as u64 * THUMB.1 as u64 * 4;
        let software = gpu.is_some_and(|g| g.adapter().contains("Cpu)"));
        let r = &mut self.report;
        r.decodes = stats.cpu.misses;
        r.decodes_without_cache = r.shown_thumbnails + r.shown_full;
        r.decodes_avoided = r.decodes_without_cache.saturating_sub(r.decodes);
        if gpu.is_some() {
            r.uploads = stats.gpu.misses;
            r.uploads_without_cache = r.decodes_without_cache;
            r.uploads_avoided = r.uploads_without_cache.saturating_sub(r.uploads);
        }
        r.file_bytes_not_read = r.file_bytes_without_cache.saturating_sub(r.file_bytes_read);
        let tiers = if gpu.is_some() { 2 } else { 1 };
        r.peak_bytes = stats.cpu.peak_used + stats.gpu.peak_used;
        r.up_front_bytes = tiers * COUNT as u64 * (picture + thumb);
        r.software_adapter = software;
        let now = Resident::now();
        r.rss = now.driver_code + now.other_code + now.heap;
        r.rss_driver_code = now.driver_code;
        r.rss_other_code = now.other_code;
        r.rss_texcache = stats.cpu.used
            + stats.video.cpu_bytes
            + stats.video.decoder_bytes
            + if software {
                stats.gpu.used + stats.video.gpu_bytes
            } else {
                0
            };
        // The heap is texcache's, the driver's from the opening, and the rest (never below 0:
        // what the allocator handed back to the system is no longer resident).
        r.rss_driver_heap = rss_driver_heap.min(now.heap.saturating_sub(r.rss_texcache));
        r.rss_other_heap = now.heap.saturating_sub(r.rss_texcache + r.rss_driver_heap);
        r.rss_texcache = r.rss_texcache.min(now.heap);
    }
}

/// The contact sheet: the grid's thumbnails, the picture in the viewer and the clip's frame,
/// read back from their GPU textures.
fn contact_sheet(
    gpu: &Gpu,
    sheet: &Path,
    grid: &[Shown],
    viewer: Option<&(usize, Shown)>,
    clip: &VideoNode,
) -> Result<()> {
    let mut tiles: Vec<Tile> = grid
        .iter()
        .filter_map(Shown::texture)
        .map(tile_of)
        .collect::<Result<_>>()?;
    if let Some(t) = viewer.and_then(|(_, s)| s.texture()) {
        tiles.push(tile_of(t)?);
    }
    if let Some(vt) = clip.texture() {
        let rgba = vt.to_rgba()?;
        let pixels = texcache::gpu::read_back_raw(gpu, &rgba, 0)?;
        tiles.push((rgba.width(), rgba.height(), pixels));
    }
    write_sheet(sheet, &tiles)?;
    eprintln!(
        "contact sheet ({} pictures read back from the GPU): {}",
        tiles.len(),
        super::shown_path(sheet).display()
    );
    Ok(())
}

/// The savings and the process's memory, in words.
fn savings(r: &Report, s: &texcache::Stats, gpu: bool) -> String {
    let b = |n: u64| ByteSize(n).to_string();
    let mut out = String::from(
        "\nwhat texcache saved, against decoding every picture each time it is shown:\n",
    );
    out += &format!(
        "  shown        {} pictures ({} thumbnails, {} full size); {} shows shared a picture already on screen\n",
        r.shown_thumbnails + r.shown_full,
        r.shown_thumbnails,
        r.shown_full,
        r.shared_shows
    );
    out += &format!(
        "  decodes      {} instead of {}: {} avoided (prefetch included in the {})\n",
        r.decodes, r.decodes_without_cache, r.decodes_avoided, r.decodes
    );
    if gpu {
        out += &format!(
            "  uploads      {} instead of {}: {} avoided\n",
            r.uploads, r.uploads_without_cache, r.uploads_avoided
        );
    }
    out += &format!(
        "  files read   {} instead of {}: {} not read again\n",
        b(r.file_bytes_read),
        b(r.file_bytes_without_cache),
        b(r.file_bytes_not_read)
    );
    let ratio = r.up_front_bytes as f64 / r.peak_bytes.max(1) as f64;
    out += &format!(
        "  peak memory  {} (CPU {} + GPU {}), against {} to load every picture and thumbnail up front: {ratio:.1}x less\n",
        b(r.peak_bytes),
        b(s.cpu.peak_used),
        b(s.gpu.peak_used),
        b(r.up_front_bytes)
    );
    out += &format!(
        "  evicted      CPU {} entries ({}), GPU {} ({}): unused pictures, least recently released first, each time a tier went over its budget; nothing in use is evicted\n",
        s.cpu.evictions,
        b(s.cpu.evicted_bytes),
        s.gpu.evictions,
        b(s.gpu.evicted_bytes)
    );
    let where_gpu = if r.software_adapter {
        "with the GPU textures, which a software adapter keeps in this process's memory"
    } else {
        "GPU textures are in the GPU's memory, not here"
    };
    out += &format!(
        "  process RSS  {}, from /proc/self/smaps:\n\
         {:>14} held by texcache ({where_gpu})\n\
         {:>14} GPU driver: {} of its libraries' code (Mesa, LLVM, the Vulkan loader) + {} of heap taken as the device opened\n\
         {:>14} the program's and other libraries' code\n\
         {:>14} other heap: decoders' and the driver's working memory, shaders, thread stacks, the allocator's free lists\n",
        b(r.rss),
        b(r.rss_texcache),
        b(r.rss_driver_code + r.rss_driver_heap),
        b(r.rss_driver_code),
        b(r.rss_driver_heap),
        b(r.rss_other_code),
        b(r.rss_other_heap)
    );
    out
}

/// The process's resident memory by where it is mapped from (/proc/self/smaps): the GPU
/// driver's libraries, every other file (the program and its libraries), and anonymous memory
/// (the heap, stacks).
#[derive(Default)]
struct Resident {
    driver_code: u64,
    other_code: u64,
    heap: u64,
}

impl Resident {
    fn now() -> Resident {
        let mut r = Resident::default();
        let Ok(text) = std::fs::read_to_string("/proc/self/smaps") else {
            r.heap = process_rss();
            return r;
        };
        // Libraries of GPU drivers and what they load (lavapipe, llvmpipe, radv, ... and LLVM).
        const DRIVER: &[&str] = &[
            "libvulkan",
            "LLVM",
            "gallium",
            "mesa",
            "_lvp",
            "_radeon",
            "_intel",
            "nvidia",
            "libGL",
            "libEGL",
            "libdrm",
            "/dri/",
        ];
        let mut kind = 0; // 0 heap, 1 driver, 2 other file
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let first = words.next().unwrap_or("");
            if let Some(kb) = line.strip_prefix("Rss:") {
                let bytes = kb
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .unwrap_or(0)
                    * 1024;
                match kind {
                    1 => r.driver_code += bytes,
                    2 => r.other_code += bytes,
                    _ => r.heap += bytes,
                }
            } else if first.contains('-')
                && first.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
            {
                // A mapping's header: address perms offset dev inode [path].
                let path = words.nth(4).unwrap_or("");
                kind = if !path.starts_with('/') {
                    0
                } else if DRIVER.iter().any(|d| path.contains(d)) {
                    1
                } else {
                    2
                };
            }
        }
        r
    }
}

/// A picture for the contact sheet: width, height, RGBA8 pixels.
type Tile = (u32, u32, Vec<u8>);

fn tile_of(t: &TextureHandle) -> Result<Tile> {
    Ok((t.width(), t.height(), texcache::gpu::read_back(t)?))
}

/// Writes `tiles` left to right, 8 pixels apart on dark gray, wrapping at a row of eight
/// thumbnails, as a PNG.
fn write_sheet(path: &Path, tiles: &[Tile]) -> Result<()> {
    const GAP: u32 = 8;
    const WIDTH: u32 = 8 * (THUMB.0 + GAP) + GAP;
    // Place the tiles in rows.
    let (mut x, mut y, mut row_h) = (GAP, GAP, 0);
    let mut at = Vec::with_capacity(tiles.len());
    for (w, h, _) in tiles {
        if x + w + GAP > WIDTH && x > GAP {
            (x, y) = (GAP, y + row_h + GAP);
            row_h = 0;
        }
        at.push((x, y));
        x += w + GAP;
        row_h = row_h.max(*h);
    }
    let height = y + row_h + GAP;
    let mut img = vec![0u8; WIDTH as usize * height as usize * 4];
    for px in img.chunks_exact_mut(4) {
        px.copy_from_slice(&[40, 40, 40, 255]);
    }
    for ((tw, h, pixels), (x, y)) in tiles.iter().zip(at) {
        let (stride, w) = (*tw as usize * 4, (*tw).min(WIDTH - x) as usize);
        for row in 0..*h as usize {
            let src = &pixels[row * stride..][..w * 4];
            let dst = ((y as usize + row) * WIDTH as usize + x as usize) * 4;
            img[dst..dst + w * 4].copy_from_slice(src);
        }
    }
    let err = |e: &dyn std::fmt::Display| io_err(path, e);
    let file = std::fs::File::create(path).map_err(|e| err(&e))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), WIDTH, height);
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header().map_err(|e| err(&e))?;
    w.write_image_data(&img).map_err(|e| err(&e))?;
    w.finish().map_err(|e| err(&e))?;
    Ok(())
}

/// An I/O error on a file the demo writes or reads.
fn io_err(path: &Path, e: &dyn std::fmt::Display) -> texcache::Error {
    Error::new(
        path.display().to_string(),
        ErrorKind::Io {
            path: path.into(),
            source: Arc::new(std::io::Error::other(e.to_string())),
        },
    )
}

/// Writes the demo's clip (90 frames of 320x240 at 30 fps) unless it is there; its file name.
/// A real encoded clip (H.264 in MP4) with FFmpeg, else YUV4MPEG2.
fn write_clip(media: &Path) -> Result<&'static str> {
    #[cfg(feature = "ffmpeg")]
    {
        let clip = media.join("clip.mp4");
        if !clip.exists() {
            samples::write_encoded(&clip, 320, 240, 90)?;
        }
        Ok("clip.mp4")
    }
    #[cfg(not(feature = "ffmpeg"))]
    {
        let clip = media.join("clip.y4m");
        if !clip.exists() {
            samples::write_y4m(&clip, 320, 240, 90).map_err(|e| {
                Error::new(
                    clip.display().to_string(),
                    ErrorKind::Video {
                        detail: format!("cannot write the sample clip: {e}"),
                    },
                )
            })?;
        }
        Ok("clip.y4m")
    }
}
