//! Mip-chain generation on the GPU (`gpu.mipmaps = true`).
//!
//! Each level is rendered from the one above it with a full-screen triangle that samples the
//! source level through a linear-filtering sampler at the centre of each destination texel. For
//! even sizes that is exactly a 2×2 box filter; for odd sizes it is the bilinear approximation
//! every engine uses. Sampling an `Rgba8UnormSrgb` view decodes to linear light and rendering
//! into one encodes again, so colour levels are averaged in linear light, as they should be.
//!
//! One [`Mipmapper`] is built per device, on first use, and holds one pipeline per texture
//! format texcache uploads.

use std::sync::OnceLock;

const SHADER: &str = r#"
struct VsOut {
    @builtin(position) pos: vec4<f32>,
    @location(0) uv: vec2<f32>,
};

@vertex
fn vs(@builtin(vertex_index) i: u32) -> VsOut {
    // One triangle that covers the viewport: (-1,-1), (3,-1), (-1,3).
    let xy = vec2<f32>(f32((i << 1u) & 2u), f32(i & 2u));
    var out: VsOut;
    out.pos = vec4<f32>(xy * 2.0 - 1.0, 0.0, 1.0);
    out.uv = vec2<f32>(xy.x, 1.0 - xy.y);
    return out;
}

@group(0) @binding(0) var src: texture_2d<f32>;
@group(0) @binding(1) var samp: sampler;

@fragment
fn fs(v: VsOut) -> @location(0) vec4<f32> {
    return textureSampleLevel(src, samp, v.uv, 0.0);
}
"#;

/// The pipelines and sampler that build mip chains on one device.
pub(crate) struct Mipmapper {
    layout: wgpu::BindGroupLayout,
    sampler: wgpu::Sampler,
    rgba: wgpu::RenderPipeline,
    r8: wgpu::RenderPipeline,
}

impl Mipmapper {
    /// The device's mipmapper, built on first use.
    pub(crate) fn get<'a>(cell: &'a OnceLock<Mipmapper>, device: &wgpu::Device) -> &'a Mipmapper {
        cell.get_or_init(|| Mipmapper::new(device))
    }

    fn new(device: &wgpu::Device) -> Mipmapper {
        let shader = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("texcache mipmap shader"),
            source: wgpu::ShaderSource::Wgsl(SHADER.into()),
        });
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("texcache mipmap bind group layout"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Texture {
                        sample_type: wgpu::TextureSampleType::Float { filterable: true },
                        view_dimension: wgpu::TextureViewDimension::D2,
                        multisampled: false,
                    },
                    count: None,
                },
                wgpu::BindGroupLayoutEntry {
                    binding: 1,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Sampler(wgpu::SamplerBindingType::Filtering),
                    count: None,
                },
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("texcache mipmap pipeline layout"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = |format: wgpu::TextureFormat, label: &str| {
            super::draw::pipeline(device, label, &shader, Some(&pipeline_layout), format)
        };
        let sampler = device.create_sampler(&wgpu::SamplerDescriptor {
            label: Some("texcache mipmap sampler"),
            address_mode_u: wgpu::AddressMode::ClampToEdge,
            address_mode_v: wgpu::AddressMode::ClampToEdge,
            mag_filter: wgpu::FilterMode::Linear,
            min_filter: wgpu::FilterMode::Linear,
            ..Default::default()
        });
        Mipmapper {
            rgba: pipeline(
                wgpu::TextureFormat::Rgba8UnormSrgb,
                "texcache mipmap pipeline rgba8",
            ),
            r8: pipeline(wgpu::TextureFormat::R8Unorm, "texcache mipmap pipeline r8"),
            layout,
            sampler,
        }
    }

    /// Records the passes that fill levels 1.. of `texture` from level 0.
    pub(crate) fn record(
        &self,
        device: &wgpu::Device,
        encoder: &mut wgpu::CommandEncoder,
        texture: &wgpu::Texture,
    ) {
        let pipeline = match texture.format() {
            wgpu::TextureFormat::R8Unorm => &self.r8,
            _ => &self.rgba,
        };
        let level_view = |level: u32| {
            texture.create_view(&wgpu::TextureViewDescriptor {
                label: Some("texcache mip level"),
                base_mip_level: level,
                mip_level_count: Some(1),
                ..Default::default()
            })
        };
        for level in 1..texture.mip_level_count() {
            let src = level_view(level - 1);
            let dst = level_view(level);
            let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("texcache mipmap bind group"),
                layout: &self.layout,
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: wgpu::BindingResource::TextureView(&src),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: wgpu::BindingResource::Sampler(&self.sampler),
                    },
                ],
            });
            super::draw::pass(encoder, "texcache mipmap pass", &dst, pipeline, &bind);
        }
    }
}

/// Mip levels of a full chain for a `width`×`height` image: down to 1×1.
pub fn level_count(width: u32, height: u32) -> u32 {
    32 - width.max(height).max(1).leading_zeros()
}

/// §2: the bytes of a texture with `levels` mip levels and `bytes_per_texel`.
pub fn texture_bytes(width: u32, height: u32, bytes_per_texel: u64, levels: u32) -> u64 {
    (0..levels)
        .map(|i| (width >> i).max(1) as u64 * (height >> i).max(1) as u64 * bytes_per_texel)
        .sum()
}
