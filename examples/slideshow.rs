//! A slideshow application with its own wgpu device: texcache decodes and uploads the pictures
//! (prefetching the next ones), the application draws each cached texture into an offscreen
//! target with its own pipeline, and saves what it drew as PNG — proof that the textures are
//! real and drawable.
//!
//! ```text
//! cargo run --example slideshow -- [OUT_DIR] [SLIDES]
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use texcache::{Cache, Config, Gpu};

const W: u32 = 160;
const H: u32 = 120;

const SHADER: &str = r#"
@group(0) @binding(0) var picture: texture_2d<f32>;
@group(0) @binding(1) var pick: sampler;
struct V { @builtin(position) pos: vec4<f32>, @location(0) uv: vec2<f32> };
@vertex fn vs(@builtin(vertex_index) i: u32) -> V {
    let uv = vec2<f32>(f32((i << 1u) & 2u), f32(i & 2u));
    return V(vec4<f32>(uv * vec2<f32>(2.0, -2.0) + vec2<f32>(-1.0, 1.0), 0.0, 1.0), uv);
}
@fragment fn fs(v: V) -> @location(0) vec4<f32> { return textureSample(picture, pick, v.uv); }
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("texcache-slideshow"));
    let slides: usize = args.next().map_or(Ok(12), |s| s.parse())?;
    let media = out.join("media");
    let names = texcache::testing::samples::write_pictures(&media, 8, W, H, false)?;

    // The application's own device; texcache uploads with it.
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: wgpu::Backends::PRIMARY | wgpu::Backends::GL,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let adapter = pollster::block_on(instance.request_adapter(&Default::default()))?;
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("slideshow device"),
        ..Default::default()
    }))?;
    let gpu = Arc::new(Gpu::from_device(device, queue, adapter.get_info().name));
    println!("adapter: {}", gpu.adapter());

    // Budgets for three pictures per tier: the slideshow evicts as it goes.
    let mut cfg = Config::default();
    cfg.mediadir = media;
    cfg.cpu.budget.0 = 3 * (W * H * 4) as u64;
    cfg.gpu.budget.0 = 3 * (W * H * 4) as u64;
    let cache = Cache::new(cfg)?;
    cache.bind_gpu(gpu.clone());

    let d = gpu.device();
    let shader = d.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("slideshow shader"),
        source: wgpu::ShaderSource::Wgsl(SHADER.into()),
    });
    let format = wgpu::TextureFormat::Rgba8UnormSrgb;
    let pipeline = d.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
        label: Some("slideshow pipeline"),
        layout: None,
        vertex: wgpu::VertexState {
            module: &shader,
            entry_point: Some("vs"),
            compilation_options: Default::default(),
            buffers: &[],
        },
        fragment: Some(wgpu::FragmentState {
            module: &shader,
            entry_point: Some("fs"),
            compilation_options: Default::default(),
            targets: &[Some(format.into())],
        }),
        primitive: Default::default(),
        depth_stencil: None,
        multisample: Default::default(),
        multiview_mask: None,
        cache: None,
    });
    let sampler = d.create_sampler(&wgpu::SamplerDescriptor {
        label: Some("slideshow sampler"),
        ..Default::default()
    });
    let target = d.create_texture(&wgpu::TextureDescriptor {
        label: Some("slideshow frame"),
        size: wgpu::Extent3d {
            width: W,
            height: H,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
        view_formats: &[],
    });
    let target_view = target.create_view(&Default::default());

    for i in 0..slides {
        let name = &names[i % names.len()];
        cache.prefetch_textures([&names[(i + 1) % names.len()]], None)?;
        let texture = cache.texture(name)?; // a hit once prefetched
        let bind = d.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("slideshow picture"),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::TextureView(texture.view()),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: wgpu::BindingResource::Sampler(&sampler),
                },
            ],
        });
        let mut enc = d.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_render_pass(&wgpu::RenderPassDescriptor {
                label: Some("slideshow pass"),
                color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                    view: &target_view,
                    depth_slice: None,
                    resolve_target: None,
                    ops: wgpu::Operations {
                        load: wgpu::LoadOp::Clear(wgpu::Color::BLACK),
                        store: wgpu::StoreOp::Store,
                    },
                })],
                depth_stencil_attachment: None,
                timestamp_writes: None,
                occlusion_query_set: None,
                multiview_mask: None,
            });
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind, &[]);
            pass.draw(0..3, 0..1);
        }
        gpu.queue().submit([enc.finish()]);
        let pixels = texcache::gpu::read_back_raw(&gpu, &target, 0)?;
        let frame = out.join(format!("frame{i:03}.png"));
        image::RgbaImage::from_raw(W, H, pixels)
            .expect("frame size")
            .save(&frame)?;
        println!("slide {i}: {name} -> {}", frame.display());
    }
    cache.wait_prefetch();
    println!("{}", cache.stats());
    Ok(())
}
