//! `texcache demo`: the main job on built-in defaults.
//!
//! Generates sample media (pictures, a test-pattern clip encoded as H.264 in MP4 by FFmpeg, or
//! a Y4M clip when the command line is built without its `ffmpeg` feature, and an animated
//! GIF), then runs
//! a slideshow through both tiers with budgets that hold only a third of the pictures
//! (prefetching ahead, so eviction happens), plays the clip and the GIF through video nodes,
//! and prints the statistics and writes a memory-over-time graph (SVG, in the working
//! directory unless `--plot` says where). Textures go to the best GPU adapter wgpu finds; without one the
//! demo says so and runs the CPU side only.

use std::path::{Path, PathBuf};
use texcache::{samples, Cache, Config, Result};

pub fn run(dir: Option<PathBuf>, json: bool, plot: &Path) -> Result<()> {
    let dir = dir.unwrap_or_else(|| std::env::temp_dir().join("texcache-demo"));
    let media = dir.join("media");
    let (count, w, h) = (24u32, 640u32, 480u32);
    let names = samples::write_pictures(&media, count, w, h, true)?;
    let clip_name = write_clip(&media)?;
    let gif = media.join("anim.gif");
    if !gif.exists() {
        samples::write_gif(&gif, 160, 120, 12)?;
    }

    let picture = (w * h * 4) as u64;
    let mut cfg = Config::default();
    cfg.mediadir = media.clone();
    cfg.cpu.budget.0 = (count as u64 / 3) * picture;
    cfg.gpu.budget.0 = (count as u64 / 3) * picture;
    cfg.video.queue_length = 4;
    // The demo samples its memory history itself, once a slide and once a frame.
    cfg.stats.history_interval_ms = 0;
    cfg.stats.history_length = 10_000;
    let cache = Cache::new(cfg)?;
    let say = |s: String| {
        if !json {
            println!("{s}");
        }
    };
    say(format!(
        "texcache demo: {count} generated {w}x{h} pictures, a 320x240 clip ({clip_name}) and a GIF in {}",
        media.display()
    ));
    say(format!(
        "budgets: CPU {}, GPU {} (a third of the pictures each)",
        texcache::ByteSize(cache.stats().cpu.budget),
        texcache::ByteSize(cache.stats().gpu.budget)
    ));
    let gpu = match cache.gpu() {
        Ok(g) => {
            say(format!("GPU adapter: {}", g.adapter()));
            Some(g)
        }
        Err(e) => {
            say(format!("no GPU adapter ({e}); showing the CPU tier only"));
            None
        }
    };

    // A slideshow, three times round: show one picture, prefetch the next two.
    let mut shown = None;
    let bar = super::progress(3 * names.len() as u64, "slideshow");
    cache.sample_history();
    for _round in 0..3 {
        for (i, name) in names.iter().enumerate() {
            bar.inc(1);
            let ahead = [&names[(i + 1) % names.len()], &names[(i + 2) % names.len()]];
            if gpu.is_some() {
                cache.prefetch_textures(ahead)?;
                shown = Some(Shown::Texture(cache.texture(name)?));
            } else {
                cache.prefetch(ahead)?;
                shown = Some(Shown::Bitmap(cache.bitmap(name)?));
            }
            cache.sample_history();
        }
    }
    cache.wait_prefetch();
    bar.finish_and_clear();
    cache.sample_history();

    // The clip and the GIF through video nodes; the clip keeps playing (paused on its queue).
    let mut clip_node = cache.video(clip_name)?;
    say(format!(
        "video: {clip_name}, {} in {}",
        clip_node.info().codec,
        clip_node.info().container
    ));
    clip_node.play()?;
    let mut frames = 0;
    for _ in 0..30 {
        let Some(f) = clip_node.next_frame()? else {
            break;
        };
        if let Some(gpu) = &gpu {
            clip_node.upload(gpu, &f)?;
        }
        frames += 1;
        cache.sample_history();
    }
    clip_node.wait_full();
    cache.sample_history();
    let mut gif_node = cache.video("anim.gif")?;
    gif_node.play()?;
    while gif_node.next_frame()?.is_some() {
        frames += 1;
        cache.sample_history();
    }
    gif_node.stop();
    cache.sample_history();
    say(format!(
        "played {frames} video frames; the clip's node stays open with its queue full"
    ));

    // The last slide is still on screen while we look at the memory.
    let stats = cache.stats();
    super::print_stats(&stats, json);
    super::write_memory_plot(plot, &cache.history(), "texcache demo: memory over time")?;
    drop(shown);
    Ok(())
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
            samples::write_y4m(&clip, 320, 240, 90).map_err(|e| texcache::Error::Video {
                href: clip.display().to_string(),
                detail: format!("cannot write the sample clip: {e}"),
            })?;
        }
        Ok("clip.y4m")
    }
}

/// What the slideshow shows: a texture, or a bitmap without a GPU.
#[allow(dead_code)]
enum Shown {
    Texture(texcache::TextureHandle),
    Bitmap(texcache::BitmapHandle),
}
