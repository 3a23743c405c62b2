//! Decoding: encoded image bytes into the [`Bitmap`] the CPU tier holds (§2).
//!
//! Decoded bitmaps are RGBA8, or Gray8 for grayscale sources without alpha. JPEG goes to
//! zune-jpeg and PNG of up to 8 bits to the `png` crate, each straight into the bitmap's
//! buffer; everything else through `image`. The header is read first and images with more than
//! `loader.max_pixels` pixels are refused before any pixel memory is allocated; every failure is
//! a typed [`Error`] naming the href: `Unsupported` for formats (and variants) no decoder here
//! reads, `Corrupt` with the decoder's message for damaged data, `TooManyPixels` with the
//! dimensions.

use crate::bitmap::Bitmap;
use crate::error::{Error, Result};
use crate::stats::PixelFormat;
use image::{ColorType, DynamicImage, ImageDecoder, ImageError, ImageReader, Limits};
use std::io::Cursor;

/// Whether `head`, a file's first bytes, starts like a format [`decode`] reads.
pub(crate) fn is_picture(head: &[u8]) -> bool {
    head.starts_with(&[0xFF, 0xD8, 0xFF])
        || head.starts_with(b"\x89PNG\r\n\x1a\n")
        || image::guess_format(head).is_ok_and(|f| f.reading_enabled())
}

/// Decodes encoded image bytes into a bitmap (§2), refusing more than `max_pixels`.
///
/// ```
/// let png = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus/pngsuite/basn0g08.png"));
/// # let Ok(png) = png else { return };
/// let b = texcache::decode::decode("basn0g08.png", &png, 1 << 20).unwrap();
/// assert_eq!((b.width(), b.height(), b.format()), (32, 32, texcache::PixelFormat::Gray8));
/// ```
pub fn decode(href: &str, bytes: &[u8], max_pixels: u64) -> Result<Bitmap> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return decode_jpeg(href, bytes, max_pixels);
    }
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        if let Some(bitmap) = decode_png(href, bytes, max_pixels)? {
            return Ok(bitmap);
        }
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::Corrupt {
            href: href.into(),
            detail: e.to_string(),
        })?;
    if reader.format().is_none() {
        return Err(Error::Unsupported {
            href: href.into(),
            detail: if bytes.is_empty() {
                "empty file".into()
            } else {
                "not a recognised image format".into()
            },
        });
    }
    reader.limits(limits(max_pixels));
    let is_gif = reader.format() == Some(image::ImageFormat::Gif);
    let decoder = reader.into_decoder().map_err(|e| classify(href, e))?;
    let (width, height) = decoder.dimensions();
    check_pixels(href, width, height, max_pixels)?;
    if is_gif {
        check_gif_canvas(href, width, height, bytes.len() as u64)?;
    }
    let gray = matches!(decoder.color_type(), ColorType::L8 | ColorType::L16);
    let img = DynamicImage::from_decoder(decoder).map_err(|e| classify(href, e))?;
    Ok(if gray {
        Bitmap::new(
            width,
            height,
            PixelFormat::Gray8,
            img.into_luma8().into_raw(),
        )
    } else {
        Bitmap::new(
            width,
            height,
            PixelFormat::Rgba8,
            img.into_rgba8().into_raw(),
        )
    })
}

/// JPEG goes straight to zune-jpeg (the decoder `image` uses too) so that it can run in strict
/// mode, where a truncated or damaged stream is an error instead of a silently grey picture, and
/// write RGBA (or gray) straight into the bitmap's buffer with no conversion copy.
fn decode_jpeg(href: &str, bytes: &[u8], max_pixels: u64) -> Result<Bitmap> {
    use zune_core::{bytestream::ZCursor, colorspace::ColorSpace, options::DecoderOptions};
    use zune_jpeg::errors::DecodeErrors;
    let corrupt = |e: DecodeErrors| match e {
        DecodeErrors::Unsupported(s) => Error::Unsupported {
            href: href.into(),
            detail: format!("JPEG {s:?}"),
        },
        DecodeErrors::ExhaustedData => Error::Corrupt {
            href: href.into(),
            detail: "truncated (unexpected end of data)".into(),
        },
        other => Error::Corrupt {
            href: href.into(),
            detail: other.to_string(),
        },
    };
    let options = DecoderOptions::default()
        .set_strict_mode(true)
        .set_max_width(u32::MAX as usize)
        .set_max_height(u32::MAX as usize)
        .jpeg_set_out_colorspace(ColorSpace::RGBA);
    let mut dec = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    dec.decode_headers().map_err(corrupt)?;
    let info = dec.info().expect("headers decoded");
    let (width, height) = (info.width as u32, info.height as u32);
    check_pixels(href, width, height, max_pixels)?;
    let gray = dec.input_colorspace() == Some(ColorSpace::Luma);
    if gray {
        dec.set_options(options.jpeg_set_out_colorspace(ColorSpace::Luma));
    }
    let format = if gray {
        PixelFormat::Gray8
    } else {
        PixelFormat::Rgba8
    };
    let len = dec
        .output_buffer_size()
        .ok_or_else(|| corrupt(DecodeErrors::FormatStatic("image too large")))?;
    let want = width as usize * height as usize * if gray { 1 } else { 4 };
    if len != want {
        return Err(Error::Unsupported {
            href: href.into(),
            detail: format!("JPEG output of {len} bytes for {width}x{height}"),
        });
    }
    let mut pixels = vec![0u8; len];
    dec.decode_into(&mut pixels).map_err(corrupt)?;
    Ok(Bitmap::new(width, height, format, pixels))
}

/// Decodes a PNG of up to 8 bits per sample with the `png` crate straight into the bitmap's
/// buffer, with no full-image intermediate: RGBA and grayscale images are decoded into it
/// directly; RGB, palette and gray+alpha images row by row, each row expanded to RGBA8 from a
/// small reused row buffer. (Interlaced RGB and palette images, whose rows come in passes, are
/// expanded to RGBA8 by the decoder itself.) `None` for 16-bit images, which go through `image`,
/// whose rounding to 8 bits is the reference.
fn decode_png(href: &str, bytes: &[u8], max_pixels: u64) -> Result<Option<Bitmap>> {
    use png::{BitDepth, ColorType, Transformations};
    let corrupt = |e: png::DecodingError| match e {
        png::DecodingError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            Error::Corrupt {
                href: href.into(),
                detail: "truncated (unexpected end of file)".into(),
            }
        }
        png::DecodingError::LimitsExceeded => Error::Corrupt {
            href: href.into(),
            detail: "decoder limit: the image needs more memory than its pixels".into(),
        },
        other => Error::Corrupt {
            href: href.into(),
            detail: other.to_string(),
        },
    };
    let limit = usize::try_from(max_pixels.saturating_mul(8)).unwrap_or(usize::MAX);
    let mut decoder =
        png::Decoder::new_with_limits(Cursor::new(bytes), png::Limits { bytes: limit });
    let header = decoder.read_header_info().map_err(corrupt)?;
    let (width, height, interlaced) = (header.width, header.height, header.interlaced);
    check_pixels(href, width, height, max_pixels)?;
    if header.bit_depth == BitDepth::Sixteen {
        return Ok(None);
    }
    let colour = matches!(header.color_type, ColorType::Rgb | ColorType::Indexed);
    decoder.set_transformations(if interlaced && colour {
        Transformations::ALPHA
    } else {
        Transformations::EXPAND
    });
    let mut reader = decoder.read_info().map_err(corrupt)?;
    let pixel_count = width as usize * height as usize;
    let (format, pixels) = match reader.output_color_type() {
        (ColorType::Rgba, BitDepth::Eight) => {
            let mut pixels = vec![0u8; pixel_count * 4];
            reader.next_frame(&mut pixels).map_err(corrupt)?;
            (PixelFormat::Rgba8, pixels)
        }
        (ColorType::Grayscale, BitDepth::Eight) => {
            let mut pixels = vec![0u8; pixel_count];
            reader.next_frame(&mut pixels).map_err(corrupt)?;
            (PixelFormat::Gray8, pixels)
        }
        (ColorType::Rgb, BitDepth::Eight) if !interlaced => {
            let rgba = expand_rows(&mut reader, width, height, 3, |s, d| {
                d[..3].copy_from_slice(s);
                d[3] = 255;
            })
            .map_err(corrupt)?;
            (PixelFormat::Rgba8, rgba)
        }
        (ColorType::GrayscaleAlpha, BitDepth::Eight) if !interlaced => {
            let rgba = expand_rows(&mut reader, width, height, 2, |s, d| {
                d.copy_from_slice(&[s[0], s[0], s[0], s[1]]);
            })
            .map_err(corrupt)?;
            (PixelFormat::Rgba8, rgba)
        }
        (ColorType::GrayscaleAlpha, BitDepth::Eight) => {
            // Interlaced gray+alpha (rare): the whole image, then one expanding copy.
            let mut ga = vec![0u8; pixel_count * 2];
            reader.next_frame(&mut ga).map_err(corrupt)?;
            let rgba = ga
                .chunks_exact(2)
                .flat_map(|p| [p[0], p[0], p[0], p[1]])
                .collect();
            (PixelFormat::Rgba8, rgba)
        }
        other => {
            return Err(Error::Unsupported {
                href: href.into(),
                detail: format!("PNG decoded as {other:?}"),
            })
        }
    };
    Ok(Some(Bitmap::new(width, height, format, pixels)))
}

/// Reads a non-interlaced image row by row into a reused row buffer of `channels` bytes per
/// pixel and expands each pixel into 4 bytes of the RGBA8 result with `expand`.
fn expand_rows<R: std::io::BufRead + std::io::Seek>(
    reader: &mut png::Reader<R>,
    width: u32,
    height: u32,
    channels: usize,
    expand: impl Fn(&[u8], &mut [u8]),
) -> std::result::Result<Vec<u8>, png::DecodingError> {
    let w = width as usize;
    let mut rgba = vec![0u8; w * height as usize * 4];
    let mut row = vec![0u8; w * channels];
    for dst in rgba.chunks_exact_mut(w * 4) {
        if reader.read_row(&mut row)?.is_none() {
            return Err(png::DecodingError::IoError(
                std::io::ErrorKind::UnexpectedEof.into(),
            ));
        }
        for (s, d) in row.chunks_exact(channels).zip(dst.chunks_exact_mut(4)) {
            expand(s, d);
        }
    }
    // Past the last row: the decoder checks the rest of the image data, as a whole-frame read
    // does.
    reader.read_row(&mut row)?;
    Ok(rgba)
}

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
        return Err(Error::TooManyPixels {
            href: href.into(),
            width,
            height,
            max: max_pixels,
        });
    }
    Ok(())
}

/// Pixels a GIF may claim per byte of file: one LZW code (at least 3 bits, at most 12) stands
/// for at most 4,096 pixels, so no GIF of n bytes holds more than about 11,000·n pixels of
/// image data. A canvas far beyond that is a lie told to make the decoder allocate it.
pub const GIF_PIXELS_PER_BYTE: u64 = 16_384;

/// Refuses a GIF whose canvas is larger than its `file_len` bytes can encode
/// ([`GIF_PIXELS_PER_BYTE`]) as `Corrupt`, before the decoder allocates the canvas. Canvases of
/// up to a megapixel are always accepted.
pub(crate) fn check_gif_canvas(href: &str, width: u32, height: u32, file_len: u64) -> Result<()> {
    let pixels = width as u64 * height as u64;
    if pixels > (1 << 20) && pixels > file_len.saturating_mul(GIF_PIXELS_PER_BYTE) {
        return Err(Error::Corrupt {
            href: href.into(),
            detail: format!(
                "GIF claims a {width}x{height} canvas, more than its {file_len} bytes can encode"
            ),
        });
    }
    Ok(())
}

pub(crate) fn classify(href: &str, e: ImageError) -> Error {
    let href = href.to_string();
    match e {
        ImageError::Unsupported(u) => Error::Unsupported {
            href,
            detail: u.to_string(),
        },
        ImageError::Limits(l) => Error::Corrupt {
            href,
            detail: format!("decoder limit: {l}"),
        },
        ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            Error::Corrupt {
                href,
                detail: "truncated (unexpected end of file)".into(),
            }
        }
        other => Error::Corrupt {
            href,
            detail: other.to_string(),
        },
    }
}
