//! What a decoder may be given, checked before it runs: the pixel limit (`loader.max_pixels`,
//! from a header, before any pixel memory exists), canvases larger than their files can
//! encode, RIFF chunks that claim to run past their file, the TIFFs and BMPs the decoders
//! mishandle; and the decoders' own errors classified into texcache's.
//!
//! A leaf: pictures ([`mod@super::decode`], [`super::avif`]) and video sources import it.

use crate::error::{Error, ErrorKind, Result};
use image::{ImageError, Limits};

/// The allocation limits `image`'s decoders get for images of at most `max_pixels` pixels: room
/// for the largest intermediate, 16-bit RGBA of `max_pixels` (or an animation's RGBA canvas
/// plus one RGBA frame).
pub(crate) fn limits(max_pixels: u64) -> Limits {
    let mut limits = Limits::no_limits();
    limits.max_alloc = Some(max_pixels.saturating_mul(8));
    limits
}

/// Refuses images over `loader.max_pixels`, from their header, before any pixel memory exists.
pub(crate) fn check_pixels(href: &str, width: u32, height: u32, max_pixels: u64) -> Result<()> {
    if width as u64 * height as u64 > max_pixels {
        return Err(Error::new(
            href,
            ErrorKind::TooManyPixels {
                width,
                height,
                max: max_pixels,
            },
        ));
    }
    Ok(())
}

/// Pixels a GIF may claim per byte of file: one LZW code (at least 3 bits, at most 12) stands
/// for at most 4,096 pixels, so no GIF of n bytes holds more than about 11,000·n pixels of
/// image data. A canvas far beyond that is a lie told to make the decoder allocate it.
pub(crate) const GIF_PIXELS_PER_BYTE: u64 = 16_384;

/// Refuses a picture whose canvas is larger than its `file_len` bytes can encode
/// ([`GIF_PIXELS_PER_BYTE`]) as `Corrupt`, before the decoder allocates the canvas: GIFs, and
/// run-length-coded BMPs, whose escape codes end a row or the whole picture in two bytes, so a
/// thousand bytes can claim a gigapixel. `what` names the format in the error. Canvases of up to
/// a megapixel are always accepted.
pub(crate) fn check_canvas(
    href: &str,
    what: &str,
    width: u32,
    height: u32,
    file_len: u64,
) -> Result<()> {
    let pixels = width as u64 * height as u64;
    if pixels > (1 << 20) && pixels > file_len.saturating_mul(GIF_PIXELS_PER_BYTE) {
        return Err(Error::new(
            href,
            ErrorKind::Corrupt {
                detail: format!(
                "{what} claims a {width}x{height} canvas, more than its {file_len} bytes can encode"
            ),
            },
        ));
    }
    Ok(())
}

/// Whether a TIFF's first image is one the `tiff` crate panics on (a failed assertion in its
/// chunk reader): tiled, its samples in separate planes (`PlanarConfiguration` 2), with tiles
/// that reach past the picture's right or bottom edge. (Tiled planar pictures made of whole
/// tiles decode.) Classic TIFF and BigTIFF, either byte order.
pub(crate) fn is_tiff_the_decoder_panics_on(b: &[u8]) -> bool {
    let big_endian = b.starts_with(b"MM");
    let uint = |at: usize, n: usize| -> Option<u64> {
        let s = b.get(at..at.checked_add(n)?)?;
        Some(if big_endian {
            s.iter().fold(0, |v, &x| v << 8 | x as u64)
        } else {
            s.iter().rev().fold(0, |v, &x| v << 8 | x as u64)
        })
    };
    let Some(version) = uint(2, 2) else {
        return false;
    };
    // The first IFD's offset, the size of its entry count and of an entry.
    let (ifd, count_size, entry_size) = match version {
        42 => (uint(4, 4), 2, 12),
        43 => (uint(8, 8), 8, 20),
        _ => return false,
    };
    let Some(ifd) = ifd.and_then(|i| usize::try_from(i).ok()) else {
        return false;
    };
    let Some(count) = uint(ifd, count_size) else {
        return false;
    };
    // ImageWidth, ImageLength, PlanarConfiguration, TileWidth, TileLength.
    let mut tags = [(256, 0u64), (257, 0), (284, 1), (322, 0), (323, 0)];
    for i in 0..count.min(4096) as usize {
        let at = ifd + count_size + i * entry_size;
        let (Some(tag), Some(kind)) = (uint(at, 2), uint(at + 2, 2)) else {
            break;
        };
        // A SHORT (3) or LONG (4) value, stored at the start of the value field.
        let value_at = at + if version == 42 { 8 } else { 12 };
        if let Some(slot) = tags.iter_mut().find(|(t, _)| *t == tag) {
            slot.1 = uint(value_at, if kind == 4 { 4 } else { 2 }).unwrap_or(0);
        }
    }
    let [(_, w), (_, h), (_, planar), (_, tw), (_, th)] = tags;
    planar == 2 && tw > 0 && th > 0 && (w % tw != 0 || h % th != 0)
}

/// Refuses a RIFF file (WebP) one of whose chunks claims to run past the end of the file, as
/// `Corrupt`, before a decoder reads it: `image-webp` allocates a chunk's claimed size before
/// reading it (a 20 KB file claiming a 4 GB `EXIF` chunk asked for 4 GB). Reads only the
/// chunk headers; `r` is left at the start.
pub(crate) fn check_riff_chunks<R: std::io::Read + std::io::Seek>(
    href: &str,
    r: &mut R,
    file_len: u64,
) -> Result<()> {
    use std::io::SeekFrom;
    let corrupt = |detail: String| Error::new(href, ErrorKind::Corrupt { detail });
    let io = |e: std::io::Error| corrupt(format!("cannot read its chunks: {e}"));
    let mut at = 12u64;
    let mut header = [0u8; 8];
    while at + 8 <= file_len {
        r.seek(SeekFrom::Start(at)).map_err(io)?;
        r.read_exact(&mut header).map_err(io)?;
        let size = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as u64;
        let end = at + 8 + size + size % 2;
        // The last chunk may lack its pad byte.
        if at + 8 + size > file_len {
            return Err(corrupt(format!(
                "its {:?} chunk claims {size} bytes, past the end of the {file_len}-byte file",
                String::from_utf8_lossy(&header[..4])
            )));
        }
        at = end;
    }
    r.seek(SeekFrom::Start(0)).map_err(io)?;
    Ok(())
}

/// Whether a BMP's pixels are run-length coded (BI_RLE8 or BI_RLE4 in a header of at least
/// `BITMAPINFOHEADER`'s 40 bytes).
pub(crate) fn is_rle_bmp(b: &[u8]) -> bool {
    let u32_at = |i: usize| {
        b.get(i..i + 4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    };
    b.starts_with(b"BM")
        && u32_at(14).is_some_and(|size| size >= 40)
        && matches!(u32_at(30), Some(1 | 2))
}

pub(crate) fn classify(href: &str, e: ImageError) -> Error {
    let href = href.to_string();
    match e {
        ImageError::Unsupported(u) => Error::new(
            href,
            ErrorKind::Unsupported {
                detail: u.to_string(),
            },
        ),
        ImageError::Limits(l) => Error::new(
            href,
            ErrorKind::Corrupt {
                detail: format!("decoder limit: {l}"),
            },
        ),
        ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => Error::new(
            href,
            ErrorKind::Corrupt {
                detail: "truncated (unexpected end of file)".into(),
            },
        ),
        other => Error::new(
            href,
            ErrorKind::Corrupt {
                detail: other.to_string(),
            },
        ),
    }
}
