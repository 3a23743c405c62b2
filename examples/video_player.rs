//! A video player: a node decodes ahead on its thread, the display loop takes the frame due
//! on the playback clock, uploads its planes into the node's one texture, converts YUV to RGB on
//! the GPU, and saves the result as PNG. Stopping frees the queue, the buffers and the texture.
//!
//! ```text
//! cargo run --example video_player -- [OUT_DIR] [FRAMES]
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use texcache::{Cache, Config, Gpu};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("texcache-video-player"));
    let frames: u64 = args.next().map_or(Ok(10), |s| s.parse())?;
    std::fs::create_dir_all(&out)?;
    // A generated test-pattern clip: 30 frames at 25 fps.
    texcache::testing::samples::write_y4m(&out.join("clip.y4m"), 160, 120, 30)?;

    let mut cfg = Config::default();
    cfg.mediadir = out.clone();
    cfg.video.queue_length = 4;
    let cache = Cache::new(cfg)?;
    let gpu = Arc::new(Gpu::open(texcache::config::Backend::Auto)?);
    println!("adapter: {}", gpu.adapter());

    let mut node = cache.video("clip.y4m")?;
    let (num, den) = node.info().rate;
    let fps = num as f64 / den as f64;
    node.play()?;
    let mut shown = 0;
    // The display loop, driven by a clock: one tick every second frame, so every other
    // frame is late and dropped, as on a display slower than the video.
    for tick in 0..frames {
        let t = tick as f64 * 2.0 / fps;
        let Some(frame) = node.frame_at(t)? else {
            break;
        };
        let texture = node.upload(&gpu, &frame)?;
        let rgba = texture.to_rgba()?;
        let pixels = texcache::gpu::read_back_raw(&gpu, &rgba, 0)?;
        let path = out.join(format!("frame{:03}.png", frame.index()));
        image::RgbaImage::from_raw(frame.width(), frame.height(), pixels)
            .expect("frame size")
            .save(&path)?;
        println!("t={t:.2}s frame {} -> {}", frame.index(), path.display());
        shown += 1;
    }
    let s = node.stats();
    println!(
        "shown {shown}, dropped {}; queued {} frames, {} CPU bytes, {} GPU bytes",
        s.dropped_frames, s.queued_frames, s.cpu_bytes, s.gpu_bytes
    );
    node.stop();
    println!("after stop: {:?}", cache.stats().video);
    Ok(())
}
