//! The README's embedding example, whole: the code between the markers below is the README's
//! block to the letter (`tests/readme.rs` checks it), around it what an application has
//! anyway: media (generated here), a wgpu device, a renderer and a clock.
//!
//! `cargo run --example embedding` (needs a wgpu adapter: lavapipe on a machine without a GPU).

use std::path::Path;
use std::sync::Arc;
use texcache::wgpu;

fn main() -> texcache::Result<()> {
    let dir = std::env::temp_dir().join(format!("texcache-embedding-{}", std::process::id()));
    let media = dir.as_path();
    std::fs::create_dir_all(media.join("photos")).unwrap();
    std::fs::create_dir_all(media.join("clips")).unwrap();
    for (i, name) in ["cat.jpg", "next.jpg", "after.jpg"].iter().enumerate() {
        let rgb =
            image::DynamicImage::ImageRgba8(texcache::testing::samples::picture(64, 48, i as u32))
                .into_rgb8();
        rgb.save(media.join("photos").join(name)).unwrap();
    }
    texcache::testing::samples::write_y4m(&media.join("clips/intro.y4m"), 32, 24, 6).unwrap();
    let (device, queue) = open_device();
    let clock = Clock(std::time::Instant::now());
    readme(media, device, queue, clock)?;
    std::fs::remove_dir_all(&dir).unwrap();
    Ok(())
}

/// The README's block, to the letter (kept as it is written there, so not reformatted).
#[rustfmt::skip]
fn readme(media: &Path, device: wgpu::Device, queue: wgpu::Queue, clock: Clock) -> texcache::Result<()> {
    // README START
    let mut config = texcache::Config::load("config/texcache.toml")?; // or Config::default()
    config.mediadir = media.into();                      // where relative hrefs resolve
    config.cpu.budget = "64 MiB".parse().unwrap();       // or "25%" of this process's memory
    let cache = texcache::Cache::new(config)?;           // Clone + Send + Sync

    let cat = cache.bitmap("photos/cat.jpg")?;           // miss: read + decode once
    let same = cache.bitmap("./photos//cat.jpg")?;       // hit: same key, same pixels
    assert!(texcache::Handle::ptr_eq(&cat, &same));
    upload(cat.width(), cat.height(), cat.pixels());     // RGBA8 or Gray8, tightly packed

    let gpu = Arc::new(texcache::Gpu::from_device(device, queue, "my adapter"));
    cache.bind_gpu(gpu.clone());                         // the application's own wgpu device
    let tex = cache.texture("photos/cat.jpg")?;          // GPU miss: CPU hit, upload once, shared
    render_with(tex.view());                             // a wgpu::TextureView (Rgba8UnormSrgb or R8Unorm)

    cache.prefetch(["photos/next.jpg", "photos/after.jpg"], None)?; // background decode threads
    cache.prefetch_textures(["photos/next.jpg"], None)?;       // ... that also upload
    drop((cat, same));                                   // unused now; evicted only when space is needed

    let mut node = cache.video("clips/intro.y4m")?;      // stopped: header only
    node.play()?;                                        // a thread decodes ahead into the queue
    while let Some(frame) = node.frame_at(clock.seconds())? {
        let tex = node.upload(&gpu, &frame)?;            // the node's one texture, written in place
        draw_yuv(tex.view());                            // sample with texcache::video::YUV_WGSL
    }                                                    // late frames are dropped and counted
    node.stop();                                         // joins the thread, frees frames and texture
    println!("{}", cache.stats());                       // the table; stats().to_json() for the JSON (docs/reference.md)
    // README END
    Ok(())
}

/// The application's device: here the best adapter wgpu finds.
fn open_device() -> (wgpu::Device, wgpu::Queue) {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapter = pollster::block_on(instance.request_adapter(&Default::default()))
        .expect("a wgpu adapter (on a machine without a GPU: apt-get install mesa-vulkan-drivers)");
    pollster::block_on(adapter.request_device(&Default::default())).expect("a device")
}

/// Where an application would hand pixels to its own renderer.
fn upload(width: u32, height: u32, pixels: &[u8]) {
    assert!(pixels.len() as u32 >= width * height);
}

/// Where an application would bind the view and draw.
fn render_with(view: &wgpu::TextureView) {
    let _ = view;
}

/// Where an application would draw a YUV frame.
fn draw_yuv(view: &wgpu::TextureView) {
    let _ = view;
}

/// The playback clock: runs fast, so the clip plays through at once.
struct Clock(std::time::Instant);

impl Clock {
    fn seconds(&self) -> f64 {
        self.0.elapsed().as_secs_f64() * 100.0
    }
}
