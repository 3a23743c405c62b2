//! `cargo bench --bench upload`: a GPU miss whose bitmap is already in the CPU tier
//! (`texcache_texture_miss`) against creating a texture and `write_texture`-ing the same pixels
//! by hand (`raw_write_texture`). Both wait for the queue after each upload, so the figure is
//! upload throughput on the adapter in use (lavapipe on machines without a GPU).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::path::Path;
use std::sync::Arc;

const FILES: &[&str] = &["kodim23.png", "Fantasy_Digital_Painting.png"];

fn upload(c: &mut Criterion) {
    let gpu = Arc::new(
        texcache::Gpu::open(texcache::config::Backend::Auto)
            .expect("a wgpu adapter (e.g. lavapipe)"),
    );
    eprintln!("adapter: {}", gpu.adapter());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/photos");
    let mut cfg = texcache::Config::default();
    cfg.mediadir = dir;
    let cache = texcache::Cache::new(cfg).unwrap();
    cache.bind_gpu(gpu.clone());
    let wait = || {
        gpu.queue().submit([]);
        gpu.device()
            .poll(wgpu::PollType::wait_indefinitely())
            .unwrap();
    };
    let mut g = c.benchmark_group("upload");
    g.sample_size(20);
    for f in FILES {
        let bitmap = cache.bitmap(f).unwrap();
        g.throughput(Throughput::Bytes(bitmap.pixels().len() as u64));
        g.bench_with_input(
            BenchmarkId::new("raw_write_texture", f),
            &bitmap,
            |b, bitmap| {
                b.iter(|| {
                    let size = wgpu::Extent3d {
                        width: bitmap.width(),
                        height: bitmap.height(),
                        depth_or_array_layers: 1,
                    };
                    let t = gpu.device().create_texture(&wgpu::TextureDescriptor {
                        label: Some("raw"),
                        size,
                        mip_level_count: 1,
                        sample_count: 1,
                        dimension: wgpu::TextureDimension::D2,
                        format: wgpu::TextureFormat::Rgba8UnormSrgb,
                        usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
                        view_formats: &[],
                    });
                    gpu.queue().write_texture(
                        t.as_image_copy(),
                        bitmap.pixels(),
                        wgpu::TexelCopyBufferLayout {
                            offset: 0,
                            bytes_per_row: Some(size.width * 4),
                            rows_per_image: None,
                        },
                        size,
                    );
                    wait();
                    t.destroy();
                })
            },
        );
        g.bench_with_input(BenchmarkId::new("texcache_texture_miss", f), f, |b, f| {
            b.iter(|| {
                let t = cache.texture(f).unwrap();
                wait();
                drop(t);
                cache.gpu_tier().remove(cache.key(f).lookup());
            })
        });
        drop(bitmap);
    }
    g.finish();
    let s = cache.stats();
    assert_eq!(
        (s.gpu.hits, s.gpu.entries, s.cpu.misses),
        (0, 0, FILES.len() as u64),
        "GPU misses, CPU hits"
    );
}

criterion_group!(benches, upload);
criterion_main!(benches);
