//! `cargo bench --bench fit`: a picture decoded fitted into 768x512 (cold: decoded from its
//! bytes each time), `texcache_fit`, against `decode_then_resize`: what an application does
//! without texcache, a full decode with `image` and then `fast_image_resize` by hand (the same
//! Lanczos-3 filter). On the corpus's 3072x2048 JPEG (texcache decodes it at 1/4 scale first)
//! and the 1488x1486 PNG (no scaled decode exists for PNG: both decode it whole).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use fast_image_resize as fr;

fn corpus(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/corpus/photos")
        .join(name);
    std::fs::read(path).unwrap()
}

fn decode_then_resize(bytes: &[u8], box_w: u32, box_h: u32) -> Vec<u8> {
    let img = image::load_from_memory(bytes).unwrap().into_rgba8();
    let (w, h) = texcache::picture::fitted_size(img.width(), img.height(), box_w, box_h);
    let src = fr::images::Image::from_vec_u8(
        img.width(),
        img.height(),
        img.into_raw(),
        fr::PixelType::U8x4,
    )
    .unwrap();
    let mut dst = fr::images::Image::new(w, h, fr::PixelType::U8x4);
    let o =
        fr::ResizeOptions::new().resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Lanczos3));
    fr::Resizer::new().resize(&src, &mut dst, &o).unwrap();
    dst.into_vec()
}

fn fit(c: &mut Criterion) {
    let mut g = c.benchmark_group("fit");
    g.sample_size(20);
    for name in ["kodim23_3072x2048.jpg", "Fantasy_Digital_Painting.png"] {
        let bytes = corpus(name);
        let mut options = texcache::picture::DecodeOptions::new(1 << 28);
        options.fit = Some((768, 512));
        g.bench_function(BenchmarkId::new("texcache_fit", name), |b| {
            b.iter(|| texcache::picture::decode(name, &bytes, &options).unwrap())
        });
        g.bench_function(BenchmarkId::new("decode_then_resize", name), |b| {
            b.iter(|| decode_then_resize(&bytes, 768, 512))
        });
    }
    g.finish();
}

criterion_group!(benches, fit);
criterion_main!(benches);
