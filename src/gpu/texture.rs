//! Textures: one uploaded bitmap, counted by §2, destroyed at once when dropped.

use super::mipmap::{self, Mipmapper};
use super::Gpu;
use crate::error::{Error, ErrorKind, Result};
use crate::observe::stats::PixelFormat;
use crate::picture::bitmap::Bitmap;
use crate::tier::Resource;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// A texture in the GPU tier: RGBA8 bitmaps as `Rgba8UnormSrgb`, Gray8 as `R8Unorm`; one mip
/// level, or a full chain generated on the GPU with `gpu.mipmaps`. Dropping it destroys the
/// wgpu texture immediately, so the driver gets the memory back now rather than at a later
/// poll.
pub struct Texture {
    texture: wgpu::Texture,
    view: wgpu::TextureView,
    format: PixelFormat,
    bytes: u64,
    gpu: Arc<Gpu>,
    /// What [`TextureWatch`]es watch: gone when the texture is.
    alive: Arc<()>,
}

/// Tells whether a texture still exists (cached or held), without keeping it: for code that
/// keeps something made from a texture's view (a bind group, a UI toolkit's registration)
/// after letting go of its handle, to learn when the cache has evicted it.
///
/// ```no_run
/// # fn main() -> texcache::Result<()> {
/// let cache = texcache::Cache::with_defaults();
/// let texture = cache.texture("cat.png")?;
/// let watch = texture.watch();
/// drop(texture);                 // unused now: the cache may evict it
/// if !watch.is_alive() {
///     // evicted: free what was made from its view
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct TextureWatch(std::sync::Weak<()>);

impl TextureWatch {
    /// Whether the texture still exists.
    pub fn is_alive(&self) -> bool {
        self.0.strong_count() > 0
    }
    /// Whether this watches `texture` (and not another texture of the same href).
    pub fn watches(&self, texture: &Texture) -> bool {
        std::ptr::eq(self.0.as_ptr(), Arc::as_ptr(&texture.alive))
    }
}

impl Texture {
    /// The wgpu texture.
    pub fn texture(&self) -> &wgpu::Texture {
        &self.texture
    }
    /// A default view of all of it.
    ///
    /// A bind group made from this view keeps the view alive, but not the texture's memory:
    /// once the cache evicts or removes the entry (which only happens when no handle holds it)
    /// the texture is destroyed, and drawing with such a bind group is a wgpu validation
    /// error. Hold the [`crate::TextureHandle`] for as long as a bind group made from its view
    /// is used, and make bind groups again after acquiring anew.
    pub fn view(&self) -> &wgpu::TextureView {
        &self.view
    }
    /// A view that samples the stored bytes as they are (`Rgba8Unorm`, no sRGB decoding), for
    /// renderers that blend in gamma space and expect their textures so (egui's); `None` for a
    /// gray texture, or where the device cannot reinterpret formats (wgpu's GL backend, or a
    /// [`Gpu::from_device`] that was not told: use [`Gpu::from_adapter_device`]). The rules of
    /// [`Texture::view`] hold for it too.
    pub fn gamma_view(&self) -> Option<wgpu::TextureView> {
        let reinterpretable =
            self.gpu.gamma_views && self.texture.format() == wgpu::TextureFormat::Rgba8UnormSrgb;
        reinterpretable.then(|| {
            self.texture.create_view(&wgpu::TextureViewDescriptor {
                label: Some("texcache gamma view"),
                format: Some(wgpu::TextureFormat::Rgba8Unorm),
                ..Default::default()
            })
        })
    }
    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.texture.width()
    }
    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.texture.height()
    }
    /// `Rgba8` (as `Rgba8UnormSrgb`) or `Gray8` (as `R8Unorm`).
    pub fn format(&self) -> PixelFormat {
        self.format
    }
    /// The device it lives on.
    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }
    /// A [`TextureWatch`] on this texture.
    pub fn watch(&self) -> TextureWatch {
        TextureWatch(Arc::downgrade(&self.alive))
    }

    /// Mip levels (1 without mipmaps).
    pub fn mip_levels(&self) -> u32 {
        self.texture.mip_level_count()
    }

    /// Uploads `bitmap` through the queue. `write_texture` takes tightly packed rows (the
    /// 256-byte row alignment applies to buffer copies only), so the pixels are not copied into
    /// a padded buffer first. With `mipmaps`, the levels below are rendered on the GPU (see
    /// `mipmap.rs`) in the same submission.
    ///
    /// ```no_run
    /// # fn main() -> texcache::Result<()> {
    /// use std::sync::Arc;
    /// let gpu = Arc::new(texcache::Gpu::open(texcache::config::Backend::Auto)?);
    /// let options = texcache::picture::DecodeOptions::new(1 << 28);
    /// let bitmap = texcache::picture::decode("a.png", &std::fs::read("a.png").unwrap(), &options)?;
    /// let texture = texcache::Texture::upload(&gpu, "a.png", &bitmap, true)?;
    /// assert_eq!(texture.mip_levels(), texcache::gpu::level_count(bitmap.width(), bitmap.height()));
    /// # Ok(()) }
    /// ```
    pub fn upload(gpu: &Arc<Gpu>, href: &str, bitmap: &Bitmap, mipmaps: bool) -> Result<Texture> {
        let gpu_err = |detail: String| Error::new(href, ErrorKind::Gpu { detail });
        if gpu.is_lost() {
            return Err(gpu_err(
                "the device was lost; bind the cache to a new device".into(),
            ));
        }
        let expand = gpu.gray_as_rgba && bitmap.format() == PixelFormat::Gray8;
        let (format, bpp, pixel_format) = match bitmap.format() {
            PixelFormat::Gray8 if !expand => (wgpu::TextureFormat::R8Unorm, 1, PixelFormat::Gray8),
            _ => (wgpu::TextureFormat::Rgba8UnormSrgb, 4, PixelFormat::Rgba8),
        };
        // Gray expanded for `Gpu::with_gray_as_rgba`: one buffer for this upload.
        let expanded: Vec<u8>;
        let pixels = if expand {
            expanded = bitmap
                .pixels()
                .iter()
                .flat_map(|&g| [g, g, g, 255])
                .collect();
            &expanded[..]
        } else {
            bitmap.pixels()
        };
        let size = wgpu::Extent3d {
            width: bitmap.width(),
            height: bitmap.height(),
            depth_or_array_layers: 1,
        };
        let max = gpu.device.limits().max_texture_dimension_2d;
        if size.width > max || size.height > max {
            return Err(gpu_err(format!(
                "{}x{} exceeds the device's texture limit of {max}",
                size.width, size.height
            )));
        }
        let levels = if mipmaps {
            mipmap::level_count(size.width, size.height)
        } else {
            1
        };
        let mut usage = wgpu::TextureUsages::TEXTURE_BINDING
            | wgpu::TextureUsages::COPY_DST
            | wgpu::TextureUsages::COPY_SRC;
        if levels > 1 {
            usage |= wgpu::TextureUsages::RENDER_ATTACHMENT;
        }
        let scope = gpu.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let texture = gpu.device.create_texture(&wgpu::TextureDescriptor {
            label: Some(href),
            size,
            mip_level_count: levels,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format,
            usage,
            view_formats: if gpu.gamma_views && format == wgpu::TextureFormat::Rgba8UnormSrgb {
                &[wgpu::TextureFormat::Rgba8Unorm]
            } else {
                &[]
            },
        });
        gpu.queue.write_texture(
            wgpu::TexelCopyTextureInfo {
                texture: &texture,
                mip_level: 0,
                origin: wgpu::Origin3d::ZERO,
                aspect: wgpu::TextureAspect::All,
            },
            pixels,
            wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(size.width * bpp),
                rows_per_image: Some(size.height),
            },
            size,
        );
        if levels > 1 {
            let mut encoder = gpu
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("texcache mipmaps"),
                });
            Mipmapper::get(&gpu.mipmapper, &gpu.device).record(&gpu.device, &mut encoder, &texture);
            gpu.queue.submit([encoder.finish()]);
        }
        let invalid = pollster::block_on(validation.pop());
        let oom = pollster::block_on(scope.pop());
        if let Some(e) = oom {
            texture.destroy();
            return Err(Error::new(
                href,
                ErrorKind::GpuOutOfMemory {
                    detail: e.to_string(),
                },
            ));
        }
        if let Some(e) = invalid {
            texture.destroy();
            return Err(gpu_err(e.to_string()));
        }
        // A device lost while this upload ran reports no error above; polling runs its
        // device-lost callback, and the texture, which nothing could draw, is refused.
        let _ = gpu.device.poll(wgpu::PollType::Poll);
        if gpu.is_lost() {
            texture.destroy();
            return Err(gpu_err(
                "the device was lost during the upload; bind the cache to a new device".into(),
            ));
        }
        let view = texture.create_view(&wgpu::TextureViewDescriptor {
            label: Some(href),
            ..Default::default()
        });
        let bytes = mipmap::texture_bytes(size.width, size.height, bpp as u64, levels);
        LIVE_TEXTURES.fetch_add(1, Ordering::Relaxed);
        LIVE_TEXTURE_BYTES.fetch_add(bytes as i64, Ordering::Relaxed);
        Ok(Texture {
            texture,
            view,
            format: pixel_format,
            bytes,
            gpu: gpu.clone(),
            alive: Arc::new(()),
        })
    }
}

impl Resource for Texture {
    fn bytes(&self) -> u64 {
        self.bytes
    }
    fn dimensions(&self) -> (u32, u32) {
        (self.width(), self.height())
    }
    fn format(&self) -> PixelFormat {
        self.format
    }
}

impl Drop for Texture {
    fn drop(&mut self) {
        self.texture.destroy();
        LIVE_TEXTURES.fetch_sub(1, Ordering::Relaxed);
        LIVE_TEXTURE_BYTES.fetch_sub(self.bytes as i64, Ordering::Relaxed);
    }
}

static LIVE_TEXTURES: AtomicI64 = AtomicI64::new(0);
static LIVE_TEXTURE_BYTES: AtomicI64 = AtomicI64::new(0);

/// Cached textures alive in this process and their bytes (for leak checks), like
/// [`crate::picture::bitmap::live_bitmaps`]. Video textures are not counted here (the video stats show
/// them).
///
/// ```
/// let (textures, bytes) = texcache::gpu::live_textures();
/// assert!(textures >= 0 && bytes >= 0);
/// ```
pub fn live_textures() -> (i64, i64) {
    (
        LIVE_TEXTURES.load(Ordering::Relaxed),
        LIVE_TEXTURE_BYTES.load(Ordering::Relaxed),
    )
}

impl std::fmt::Debug for Texture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Texture({}x{} {})",
            self.width(),
            self.height(),
            self.format.name()
        )
    }
}

/// Reads a texture's pixels back to the CPU, tightly packed (for tests and tools): copies it
/// into a buffer with rows padded to wgpu's 256-byte alignment, waits, and unpads.
pub fn read_back(texture: &Texture) -> Result<Vec<u8>> {
    read_back_level(texture, 0)
}

/// [`read_back`] of one mip level.
pub fn read_back_level(texture: &Texture, level: u32) -> Result<Vec<u8>> {
    read_back_raw(&texture.gpu, &texture.texture, level)
}

/// [`read_back`] of any wgpu texture in an 8-bit format (`R8Unorm`: 1 byte per texel, else 4)
/// made with `COPY_SRC`, such as a video node's.
pub fn read_back_raw(gpu: &Gpu, texture: &wgpu::Texture, level: u32) -> Result<Vec<u8>> {
    let bpp = if texture.format() == wgpu::TextureFormat::R8Unorm {
        1
    } else {
        4
    };
    let (w, h) = (
        (texture.width() >> level).max(1),
        (texture.height() >> level).max(1),
    );
    let row = w * bpp;
    let padded =
        row.div_ceil(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT) * wgpu::COPY_BYTES_PER_ROW_ALIGNMENT;
    let buffer = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("texcache readback"),
        size: padded as u64 * h as u64,
        usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ,
        mapped_at_creation: false,
    });
    let mut enc = gpu
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("texcache readback"),
        });
    enc.copy_texture_to_buffer(
        wgpu::TexelCopyTextureInfo {
            mip_level: level,
            ..texture.as_image_copy()
        },
        wgpu::TexelCopyBufferInfo {
            buffer: &buffer,
            layout: wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(padded),
                rows_per_image: Some(h),
            },
        },
        wgpu::Extent3d {
            width: w,
            height: h,
            depth_or_array_layers: 1,
        },
    );
    gpu.queue.submit([enc.finish()]);
    let (tx, rx) = std::sync::mpsc::channel();
    buffer.slice(..).map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    let err = |detail: String| Error::new("<readback>", ErrorKind::Gpu { detail });
    gpu.device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| err(e.to_string()))?;
    rx.recv()
        .map_err(|e| err(e.to_string()))?
        .map_err(|e| err(e.to_string()))?;
    let data = buffer
        .slice(..)
        .get_mapped_range()
        .map_err(|e| err(e.to_string()))?;
    let mut out = Vec::with_capacity((row * h) as usize);
    for y in 0..h as usize {
        out.extend_from_slice(&data[y * padded as usize..][..row as usize]);
    }
    drop(data);
    buffer.destroy();
    Ok(out)
}
