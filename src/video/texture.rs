//! A video node's one texture, and the WGSL that turns its YUV planes into RGB.
//!
//! A YUV 4:2:0 frame lives in one `R8Unorm` texture as three planes: Y at the top
//! (w×h), U below it on the left and V beside U (⌈w/2⌉×⌈h/2⌉ each), so the texture is
//! 2⌈w/2⌉ × (h + ⌈h/2⌉) texels. For even widths that is exactly the §2 frame size; for odd
//! widths one texel column is padding (the stats count §2 bytes). Each new frame is written
//! into the same texture with three `write_texture` calls straight from the frame buffer: no
//! per-frame allocation, no extra copy. RGBA frames (animations) use one `Rgba8UnormSrgb`
//! texture.
//!
//! [`YUV_WGSL`] is a shader module an application includes to sample the planes as RGB (BT.601
//! or BT.709, limited or full range); [`VideoTexture::to_rgba`] uses it to render an RGBA
//! texture for applications that just want one, turned upright by the source's rotation
//! ([`VideoInfo::rotation`]; the planes themselves stay as coded).

use super::source::{Matrix, VideoInfo};
use super::Frame;
use crate::error::{Error, ErrorKind, Result};
use crate::gpu::Gpu;
use crate::observe::stats::PixelFormat;
use std::sync::{Arc, OnceLock};

/// WGSL: `yuv_to_rgb(tex, params, pixel)` reads the three planes of a node texture at one
/// pixel and converts to non-linear R'G'B' in 0..1. `params` is the WGSL struct `YuvParams`, filled from the stream's matrix and range as a uniform.
pub const YUV_WGSL: &str = r#"
struct YuvParams {
    // Frame width and height in pixels.
    size: vec2<u32>,
    // 1: full range (0-255); 0: limited (16-235 luma, 16-240 chroma).
    full_range: u32,
    // 0: BT.601; 1: BT.709.
    matrix: u32,
};

fn yuv_to_rgb(tex: texture_2d<f32>, p: YuvParams, px: vec2<u32>) -> vec3<f32> {
    let cw = (p.size.x + 1u) / 2u;
    let c = vec2<u32>(px.x / 2u, p.size.y + px.y / 2u);
    var y = textureLoad(tex, px, 0).r;
    var u = textureLoad(tex, c, 0).r - 128.0 / 255.0;
    var v = textureLoad(tex, c + vec2<u32>(cw, 0u), 0).r - 128.0 / 255.0;
    if p.full_range == 0u {
        y = (y - 16.0 / 255.0) * (255.0 / 219.0);
        u = u * (255.0 / 224.0);
        v = v * (255.0 / 224.0);
    }
    var rgb: vec3<f32>;
    if p.matrix == 1u {
        rgb = vec3<f32>(y + 1.5748 * v, y - 0.187324 * u - 0.468124 * v, y + 1.8556 * u);
    } else {
        rgb = vec3<f32>(y + 1.402 * v, y - 0.344136 * u - 0.714136 * v, y + 1.772 * u);
    }
    return clamp(rgb, vec3<f32>(0.0), vec3<f32>(1.0));
}
"#;

const CONVERT_WGSL: &str = r#"
@group(0) @binding(0) var planes: texture_2d<f32>;
@group(0) @binding(1) var<uniform> params: YuvParams;
// x: quarter turns clockwise (0-3) from the coded frame to the target; y: 1 if `planes` is
// an RGBA texture rather than YUV planes.
@group(0) @binding(2) var<uniform> turn: vec4<u32>;

// The coded pixel shown at target pixel `d`.
fn source_pixel(d: vec2<u32>) -> vec2<u32> {
    let w = params.size.x;
    let h = params.size.y;
    switch turn.x {
        case 1u: { return vec2<u32>(d.y, h - 1u - d.x); }
        case 2u: { return vec2<u32>(w - 1u - d.x, h - 1u - d.y); }
        case 3u: { return vec2<u32>(w - 1u - d.y, d.x); }
        default: { return d; }
    }
}

@vertex
fn vs(@builtin(vertex_index) i: u32) -> @builtin(position) vec4<f32> {
    let xy = vec2<f32>(f32((i << 1u) & 2u), f32(i & 2u));
    return vec4<f32>(xy * 2.0 - 1.0, 0.0, 1.0);
}

fn to_linear(c: vec3<f32>) -> vec3<f32> {
    let lo = c / 12.92;
    let hi = pow((c + 0.055) / 1.055, vec3<f32>(2.4));
    return select(hi, lo, c <= vec3<f32>(0.04045));
}

@fragment
fn fs(@builtin(position) pos: vec4<f32>) -> @location(0) vec4<f32> {
    let s = source_pixel(vec2<u32>(pos.xy));
    if turn.y == 1u {
        // An sRGB texture: loads decode to linear light, the sRGB target encodes it back.
        return textureLoad(planes, s, 0);
    }
    // The target is sRGB: hand it linear light, it encodes on write.
    let rgb = yuv_to_rgb(planes, params, s);
    return vec4<f32>(to_linear(rgb), 1.0);
}
"#;

/// The uniform block of [`YUV_WGSL`], as bytes for a buffer: four `u32`s.
pub(crate) fn yuv_params(info: &VideoInfo) -> [u8; 16] {
    let words = [
        info.width,
        info.height,
        info.full_range as u32,
        (info.matrix == Matrix::Bt709) as u32,
    ];
    let mut out = [0u8; 16];
    for (o, w) in out.chunks_exact_mut(4).zip(words) {
        o.copy_from_slice(&w.to_le_bytes());
    }
    out
}

/// A node's texture: YUV planes in one `R8Unorm` texture, or an `Rgba8UnormSrgb` one.
pub struct VideoTexture {
    texture: wgpu::Texture,
    view: wgpu::TextureView,
    info: VideoInfo,
    gpu: Arc<Gpu>,
    /// The YUV-to-RGB pipeline and its bindings, built by the first `to_rgba`.
    convert: OnceLock<(wgpu::RenderPipeline, wgpu::BindGroup)>,
}

impl VideoTexture {
    pub(crate) fn new(gpu: &Arc<Gpu>, href: &str, info: &VideoInfo) -> Result<VideoTexture> {
        let (w, h) = (info.width, info.height);
        let (size, format) = match info.format {
            PixelFormat::Yuv420 => (
                (2 * w.div_ceil(2), h + h.div_ceil(2)),
                wgpu::TextureFormat::R8Unorm,
            ),
            _ => ((w, h), wgpu::TextureFormat::Rgba8UnormSrgb),
        };
        let err = |detail: String| Error::new(href, ErrorKind::Gpu { detail });
        if gpu.is_lost() {
            return Err(err("the device was lost".into()));
        }
        let scope = gpu.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let texture = gpu.device.create_texture(&wgpu::TextureDescriptor {
            label: Some(&format!("texcache video {href}")),
            size: wgpu::Extent3d {
                width: size.0,
                height: size.1,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format,
            usage: wgpu::TextureUsages::TEXTURE_BINDING
                | wgpu::TextureUsages::COPY_DST
                | wgpu::TextureUsages::COPY_SRC,
            view_formats: &[],
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            texture.destroy();
            return Err(err(e.to_string()));
        }
        let view = texture.create_view(&wgpu::TextureViewDescriptor {
            label: Some("texcache video view"),
            ..Default::default()
        });
        Ok(VideoTexture {
            texture,
            view,
            info: info.clone(),
            gpu: gpu.clone(),
            convert: OnceLock::new(),
        })
    }

    /// §2 bytes (one frame's worth).
    pub fn bytes(&self) -> u64 {
        self.info.frame_bytes()
    }
    /// The wgpu texture (planes for YUV, see the module docs).
    pub fn texture(&self) -> &wgpu::Texture {
        &self.texture
    }
    /// A view of all of it.
    pub fn view(&self) -> &wgpu::TextureView {
        &self.view
    }
    /// The device it lives on.
    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    /// Writes a frame in place.
    pub(crate) fn write(&self, frame: &Frame) -> Result<()> {
        let q = &self.gpu.queue;
        let put = |data: &[u8], x: u32, y: u32, w: u32, h: u32, bpp: u32| {
            q.write_texture(
                wgpu::TexelCopyTextureInfo {
                    texture: &self.texture,
                    mip_level: 0,
                    origin: wgpu::Origin3d { x, y, z: 0 },
                    aspect: wgpu::TextureAspect::All,
                },
                data,
                wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(w * bpp),
                    rows_per_image: Some(h),
                },
                wgpu::Extent3d {
                    width: w,
                    height: h,
                    depth_or_array_layers: 1,
                },
            )
        };
        let (w, h) = (self.info.width, self.info.height);
        match frame.planes() {
            Some([y, u, v]) => {
                let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
                put(y, 0, 0, w, h, 1);
                put(u, 0, h, cw, ch, 1);
                put(v, cw, h, cw, ch, 1);
            }
            None => put(frame.data(), 0, 0, w, h, 4),
        }
        if self.gpu.is_lost() {
            return Err(Error::new(
                "<video>",
                ErrorKind::Gpu {
                    detail: "the device was lost".into(),
                },
            ));
        }
        Ok(())
    }

    /// Renders the current frame into a new `Rgba8UnormSrgb` texture (for applications that
    /// want RGB rather than planes), upright: of [`VideoInfo::display_size`], turned by
    /// [`VideoInfo::rotation`]. The caller owns the result.
    pub fn to_rgba(&self) -> Result<wgpu::Texture> {
        let (w, h) = self.info.display_size();
        let d = &self.gpu.device;
        let target = d.create_texture(&wgpu::TextureDescriptor {
            label: Some("texcache video rgba"),
            size: wgpu::Extent3d {
                width: w,
                height: h,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba8UnormSrgb,
            usage: wgpu::TextureUsages::TEXTURE_BINDING
                | wgpu::TextureUsages::COPY_SRC
                | wgpu::TextureUsages::COPY_DST
                | wgpu::TextureUsages::RENDER_ATTACHMENT,
            view_formats: &[],
        });
        let mut enc = d.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("texcache video to rgba"),
        });
        if self.info.format != PixelFormat::Yuv420 && self.info.rotation == 0 {
            enc.copy_texture_to_texture(
                self.texture.as_image_copy(),
                target.as_image_copy(),
                self.texture.size(),
            );
            self.gpu.queue.submit([enc.finish()]);
            return Ok(target);
        }
        let (pipeline, bind) = self.convert.get_or_init(|| self.converter());
        let view = target.create_view(&Default::default());
        crate::gpu::draw::pass(&mut enc, "texcache yuv to rgb", &view, pipeline, bind);
        self.gpu.queue.submit([enc.finish()]);
        Ok(target)
    }
}

impl VideoTexture {
    /// The pipeline of `to_rgba` and its bind group (this texture's planes and parameters),
    /// built once per node texture.
    fn converter(&self) -> (wgpu::RenderPipeline, wgpu::BindGroup) {
        let d = &self.gpu.device;
        let shader = d.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("texcache yuv to rgb"),
            source: wgpu::ShaderSource::Wgsl(format!("{YUV_WGSL}{CONVERT_WGSL}").into()),
        });
        let pipeline = crate::gpu::draw::pipeline(
            d,
            "texcache yuv to rgb",
            &shader,
            None,
            wgpu::TextureFormat::Rgba8UnormSrgb,
        );
        let params = d.create_buffer(&wgpu::BufferDescriptor {
            label: Some("texcache yuv params"),
            size: 16,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.gpu
            .queue
            .write_buffer(&params, 0, &yuv_params(&self.info));
        let turn = d.create_buffer(&wgpu::BufferDescriptor {
            label: Some("texcache video rotation"),
            size: 16,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let rgba = (self.info.format != PixelFormat::Yuv420) as u32;
        let mut words = [0u8; 16];
        words[..4].copy_from_slice(&(self.info.rotation / 90 % 4).to_le_bytes());
        words[4..8].copy_from_slice(&rgba.to_le_bytes());
        self.gpu.queue.write_buffer(&turn, 0, &words);
        let bind = d.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("texcache yuv bind group"),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::TextureView(&self.view),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: params.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: turn.as_entire_binding(),
                },
            ],
        });
        (pipeline, bind)
    }
}

impl Drop for VideoTexture {
    fn drop(&mut self) {
        self.texture.destroy();
    }
}
