//! Sample media generated on the fly, so the demo, examples and benchmarks need no files from
//! anywhere: gradients and photo-like noise as PNG and JPEG.

use crate::error::{Error, ErrorKind, Result};
use image::{ImageFormat, Rgba, RgbaImage};
use std::path::{Path, PathBuf};

/// A deterministic test picture: a gradient with a seed-dependent hue and soft noise, so that
/// it compresses like a photo rather than like a flat colour.
pub fn picture(width: u32, height: u32, seed: u32) -> RgbaImage {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    let (r0, g0, b0) = ((seed * 67) % 256, (seed * 131) % 256, (seed * 29) % 256);
    RgbaImage::from_fn(width, height, |x, y| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (state % 24) as i32 - 12;
        let fx = x * 255 / width.max(1);
        let fy = y * 255 / height.max(1);
        let c = |base: u32, f: u32| ((base + f) % 256) as i32 + n;
        Rgba([
            c(r0, fx).clamp(0, 255) as u8,
            c(g0, fy).clamp(0, 255) as u8,
            c(b0, (fx + fy) / 2).clamp(0, 255) as u8,
            255,
        ])
    })
}

/// Writes `count` pictures of `width`x`height` into `dir` as `img_NNN.png` (or `.jpg` every
/// third one when `mixed`), returning their file names (hrefs relative to `dir`).
pub fn write_pictures(
    dir: &Path,
    count: u32,
    width: u32,
    height: u32,
    mixed: bool,
) -> Result<Vec<String>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(&dir.display().to_string(), dir, e))?;
    let mut names = Vec::with_capacity(count as usize);
    for i in 0..count {
        let jpeg = mixed && i % 3 == 2;
        let name = format!("img_{i:03}.{}", if jpeg { "jpg" } else { "png" });
        let path: PathBuf = dir.join(&name);
        if !path.exists() {
            let img = picture(width, height, i);
            let res = if jpeg {
                image::DynamicImage::ImageRgba8(img)
                    .to_rgb8()
                    .save_with_format(&path, ImageFormat::Jpeg)
            } else {
                img.save_with_format(&path, ImageFormat::Png)
            };
            res.map_err(|e| {
                Error::new(
                    name.clone(),
                    ErrorKind::Io {
                        path: path.clone(),
                        source: std::sync::Arc::new(std::io::Error::other(e.to_string())),
                    },
                )
            })?;
        }
        names.push(name);
    }
    Ok(names)
}

/// Writes a YUV4MPEG2 test pattern of `frames` frames (4:2:0, 30 fps): moving bars in luma,
/// slowly changing chroma, and the frame number in the first luma bytes, so every frame differs.
pub fn write_y4m(path: &Path, width: u32, height: u32, frames: u32) -> std::io::Result<()> {
    use std::io::Write;
    let (w, h) = (width as usize, height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg")?;
    let mut frame = vec![0u8; w * h + 2 * cw * ch];
    for f in 0..frames {
        let (y, uv) = frame.split_at_mut(w * h);
        let (u, v) = uv.split_at_mut(cw * ch);
        pattern(f, width, y, u, v);
        out.write_all(b"FRAME\n")?;
        out.write_all(&frame)?;
    }
    out.flush()
}

/// Frame `f` of the test pattern, into tightly packed Y, U and V planes of a frame `width`
/// wide: moving bars in luma, slowly changing chroma, and the frame number in the first luma
/// bytes, so every frame differs.
fn pattern(f: u32, width: u32, y: &mut [u8], u: &mut [u8], v: &mut [u8]) {
    let (w, f) = (width as usize, f as usize);
    let cw = w.div_ceil(2);
    for (i, px) in y.iter_mut().enumerate() {
        let (x, yy) = (i % w, i / w);
        *px = (16 + ((x + 3 * f) * 219 / w.max(1) + yy) % 220) as u8;
    }
    for (i, px) in u.iter_mut().chain(v.iter_mut()).enumerate() {
        *px = (64 + (i / cw + f * 5) % 128) as u8;
    }
    let n = 8.min(y.len());
    y[..n].copy_from_slice(&(f as u64).to_le_bytes()[..n]);
}

/// Writes the test pattern of [`write_y4m`] encoded by a real encoder (H.264 where FFmpeg has
/// libx264, else MPEG-4 part 2) into a file whose container its extension names (`.mp4`,
/// `.mkv`, ...), 30 fps; width and height even. Needs the `ffmpeg` feature.
#[cfg(feature = "ffmpeg")]
pub fn write_encoded(path: &Path, width: u32, height: u32, frames: u32) -> Result<()> {
    crate::ffmpeg::encode(path, width, height, frames, |f, y, u, v| {
        pattern(f, width, y, u, v)
    })
}

/// Writes an animated GIF of `frames` frames of `width`x`height` (10 fps).
pub fn write_gif(path: &Path, width: u32, height: u32, frames: u32) -> Result<()> {
    let err = |detail: String| Error::new(path.display().to_string(), ErrorKind::Video { detail });
    let file = std::fs::File::create(path).map_err(|e| Error::io("<sample>", path, e))?;
    let mut enc = image::codecs::gif::GifEncoder::new(std::io::BufWriter::new(file));
    enc.set_repeat(image::codecs::gif::Repeat::Infinite)
        .map_err(|e| err(e.to_string()))?;
    for f in 0..frames {
        let frame = image::Frame::from_parts(
            picture(width, height, f * 7 + 1),
            0,
            0,
            image::Delay::from_numer_denom_ms(100, 1),
        );
        enc.encode_frame(frame).map_err(|e| err(e.to_string()))?;
    }
    Ok(())
}
