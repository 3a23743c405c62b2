//! GPU upload: the wgpu device texcache uploads with, and the textures the GPU tier holds.
//!
//! An application that renders with wgpu passes its own `Device` and `Queue`
//! ([`Gpu::from_device`]); the CLI and tests let texcache open one from `gpu.backend`
//! ([`Gpu::open`]), lazily, on the first texture request. Validation and out-of-memory errors are
//! captured with error scopes and returned as `ErrorKind::Gpu` naming the href; a lost device is
//! remembered, so later uploads fail with a clear error instead of panicking, until the cache is
//! bound to a new device.

pub(crate) mod draw;
mod mipmap;
mod texture;

pub use mipmap::{level_count, texture_bytes};
pub use texture::{
    live_textures, read_back, read_back_level, read_back_raw, Texture, TextureWatch,
};

use crate::config::Backend;
use crate::error::{Error, ErrorKind, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// A wgpu device and queue, with what texcache needs to know about them.
pub struct Gpu {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    adapter: String,
    lost: Arc<AtomicBool>,
    /// Built on the first mipmapped upload.
    mipmapper: OnceLock<mipmap::Mipmapper>,
    /// RGBA textures are made viewable as `Rgba8Unorm` too (the adapter can reinterpret
    /// formats: `DownlevelFlags::VIEW_FORMATS`); see [`Texture::gamma_view`].
    pub(crate) gamma_views: bool,
    /// Gray8 bitmaps upload as RGBA textures (see [`Gpu::with_gray_as_rgba`]).
    pub(crate) gray_as_rgba: bool,
}

impl Gpu {
    /// Wraps an application's own device and queue (the normal way to embed texcache).
    pub fn from_device(
        device: wgpu::Device,
        queue: wgpu::Queue,
        adapter: impl Into<String>,
    ) -> Gpu {
        let lost = Arc::new(AtomicBool::new(false));
        let flag = lost.clone();
        device.set_device_lost_callback(move |_reason, _msg| flag.store(true, Ordering::Release));
        // The default handler panics; errors are captured per upload with error scopes instead.
        device.on_uncaptured_error(Arc::new(|e| {
            eprintln!("texcache: uncaptured wgpu error: {e}")
        }));
        Gpu {
            device,
            queue,
            adapter: adapter.into(),
            lost,
            mipmapper: OnceLock::new(),
            gamma_views: false,
            gray_as_rgba: false,
        }
    }

    /// Uploads Gray8 bitmaps as RGBA textures (gray in R, G and B, opaque; counted at 4 bytes
    /// a pixel), for renderers that sample every texture as RGBA (egui), where an `R8Unorm`
    /// texture would draw red. Without it they are `R8Unorm` (1 byte a pixel).
    pub fn with_gray_as_rgba(mut self) -> Gpu {
        self.gray_as_rgba = true;
        self
    }

    /// [`Gpu::from_device`] for a device of `adapter`, which says what the device can do:
    /// where the adapter can reinterpret texture formats, RGBA textures can then also be
    /// sampled as stored bytes ([`Texture::gamma_view`]), as renderers that blend in gamma
    /// space (egui) need.
    pub fn from_adapter_device(
        adapter: &wgpu::Adapter,
        device: wgpu::Device,
        queue: wgpu::Queue,
    ) -> Gpu {
        let info = adapter.get_info();
        let mut gpu = Gpu::from_device(
            device,
            queue,
            format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type),
        );
        gpu.gamma_views = adapter
            .get_downlevel_capabilities()
            .flags
            .contains(wgpu::DownlevelFlags::VIEW_FORMATS);
        gpu
    }

    /// Opens the best adapter of `backend` and creates a device on it.
    pub fn open(backend: Backend) -> Result<Gpu> {
        let backends = match backend {
            Backend::Auto => wgpu::Backends::PRIMARY | wgpu::Backends::GL,
            Backend::Vulkan => wgpu::Backends::VULKAN,
            Backend::Gl => wgpu::Backends::GL,
            Backend::Metal => wgpu::Backends::METAL,
            Backend::Dx12 => wgpu::Backends::DX12,
        };
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends,
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        let err = |detail: String| Error::new("<device>", ErrorKind::Gpu { detail });
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        }))
        .map_err(|e| {
            err(format!(
                "no {backend:?} GPU adapter found ({e}); on a machine without a GPU install a software \
                 driver, e.g. `apt-get install mesa-vulkan-drivers` (lavapipe)"
            ))
        })?;
        let info = adapter.get_info();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("texcache device"),
            required_limits: adapter.limits(),
            ..Default::default()
        }))
        .map_err(|e| err(format!("cannot create a device on {}: {e}", info.name)))?;
        Ok(Gpu::from_adapter_device(&adapter, device, queue))
    }

    /// A description of the adapter.
    pub fn adapter(&self) -> &str {
        &self.adapter
    }

    /// The device.
    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    /// The queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    /// Whether the device has been lost.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
    }
}
