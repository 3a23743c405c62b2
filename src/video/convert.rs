//! YUV to RGB on the CPU: [`Frame::to_rgb`](crate::video::Frame::to_rgb) and the Python
//! package's `Frame.to_rgb()`. The same conversion as the GPU's (`YUV_WGSL` in `texture.rs`):
//! the stream's matrix (BT.601 or BT.709) and range (limited or full), the chroma sample of
//! each 2x2 block, and the frame turned upright by the stream's rotation. The coefficients are
//! these constants; a test checks that the WGSL spells the same ones.

use super::source::{Matrix, VideoInfo};
use crate::observe::stats::PixelFormat;

/// `(r from v, g from u, g from v, b from u)` for BT.601 (Kr 0.299, Kb 0.114).
pub(crate) const BT601: [f32; 4] = [1.402, 0.344136, 0.714136, 1.772];
/// The same for BT.709 (Kr 0.2126, Kb 0.0722).
pub(crate) const BT709: [f32; 4] = [1.5748, 0.187324, 0.468124, 1.8556];

/// A YUV 4:2:0 frame (`data`: Y, then U, then V) or an RGBA one, as packed 8-bit RGB, turned
/// by `info.rotation` (so `info.display_size()` pixels).
pub(crate) fn to_rgb(info: &VideoInfo, data: &[u8]) -> Vec<u8> {
    let (w, h) = (info.width as usize, info.height as usize);
    let (dw, dh) = info.display_size();
    let (dw, dh) = (dw as usize, dh as usize);
    let mut out = vec![0u8; w * h * 3];
    // The coded pixel shown at display pixel (x, y), as the GPU's `source_pixel`.
    let source = |x: usize, y: usize| match info.rotation {
        90 => (y, h - 1 - x),
        180 => (w - 1 - x, h - 1 - y),
        270 => (w - 1 - y, x),
        _ => (x, y),
    };
    if info.format != PixelFormat::Yuv420 {
        for y in 0..dh {
            for x in 0..dw {
                let (sx, sy) = source(x, y);
                let at = (sy * w + sx) * 4;
                out[(y * dw + x) * 3..][..3].copy_from_slice(&data[at..at + 3]);
            }
        }
        return out;
    }
    let [rv, gu, gv, bu] = match info.matrix {
        Matrix::Bt709 => BT709,
        Matrix::Bt601 => BT601,
    };
    let (ys, cs, offset) = if info.full_range {
        (1.0, 1.0, 0.0)
    } else {
        (255.0 / 219.0, 255.0 / 224.0, 16.0)
    };
    let cw = w.div_ceil(2);
    let c_plane = cw * h.div_ceil(2);
    let (yp, uv) = data.split_at(w * h);
    let (up, vp) = uv.split_at(c_plane);
    let byte = |v: f32| v.round().clamp(0.0, 255.0) as u8;
    for y in 0..dh {
        for x in 0..dw {
            let (sx, sy) = source(x, y);
            let c = (sy / 2) * cw + sx / 2;
            let luma = (yp[sy * w + sx] as f32 - offset) * ys;
            let u = (up[c] as f32 - 128.0) * cs;
            let v = (vp[c] as f32 - 128.0) * cs;
            let px = &mut out[(y * dw + x) * 3..][..3];
            px[0] = byte(luma + rv * v);
            px[1] = byte(luma - gu * u - gv * v);
            px[2] = byte(luma + bu * u);
        }
    }
    out
}

#[cfg(all(test, feature = "gpu"))]
mod tests {
    #[test]
    fn the_gpu_converts_with_the_same_coefficients() {
        let wgsl = super::super::YUV_WGSL;
        for [rv, gu, gv, bu] in [super::BT601, super::BT709] {
            let line = format!("y + {rv} * v, y - {gu} * u - {gv} * v, y + {bu} * u");
            assert!(wgsl.contains(&line), "YUV_WGSL does not say {line}");
        }
    }
}
