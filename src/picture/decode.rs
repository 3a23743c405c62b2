//! Decoding: encoded image bytes into the [`Bitmap`] the CPU tier holds (§2).
//!
//! Decoded bitmaps are RGBA8, or Gray8 for grayscale sources without alpha. JPEG goes to
//! libjpeg-turbo with the `turbojpeg` feature (`src/picture/turbojpeg.rs`), else to zune-jpeg, and
//! PNG of up to 8 bits to the `png` crate, each straight into the bitmap's buffer; AVIF to
//! FFmpeg (`src/picture/avif.rs`); everything else through `image`. The header is read first and
//! images with more than `loader.max_pixels` pixels are refused before any pixel memory is
//! allocated; every failure is a typed [`Error`] naming the href: `Unsupported` for formats
//! (and variants) no decoder here reads, `Corrupt` with the decoder's message for damaged
//! data, `TooManyPixels` with the dimensions.

use crate::error::{Error, ErrorKind, Result};
use crate::observe::stats::PixelFormat;
use crate::picture::bitmap::{Bitmap, Destination, PixelBuffer};
#[cfg(any(feature = "rust-jpeg", feature = "turbojpeg"))]
use crate::picture::jpeg::jpeg_segments;
use crate::picture::limits::{
    check_canvas, check_pixels, check_riff_chunks, classify, is_rle_bmp,
    is_tiff_the_decoder_panics_on, limits,
};
use image::metadata::Orientation;
use image::{ColorType, DynamicImage, ImageDecoder, ImageReader};
use std::io::Cursor;

/// Whether `head`, a file's first bytes, starts like a format [`decode`] reads (or, for TGA,
/// which has no signature, whether `href` ends in `.tga`).
pub(crate) fn is_picture(href: &str, head: &[u8]) -> bool {
    head.starts_with(&[0xFF, 0xD8, 0xFF])
        || head.starts_with(b"\x89PNG\r\n\x1a\n")
        || sniff(href, head).is_some_and(|f| f.reading_enabled())
        || (cfg!(feature = "ffmpeg") && crate::picture::avif::is_avif(head))
}

/// The format of an encoded picture: from its signature, else (TGA only: it has none) from
/// the href's extension.
pub(crate) fn sniff(href: &str, head: &[u8]) -> Option<image::ImageFormat> {
    image::guess_format(head).ok().or_else(|| {
        let tga = std::path::Path::new(href)
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("tga"));
        tga.then_some(image::ImageFormat::Tga)
    })
}

/// How a picture is decoded: the `[loader]` settings that apply to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Pictures with more pixels are refused from their header (`loader.max_pixels`).
    pub max_pixels: u64,
    /// Apply the EXIF orientation, so the bitmap is the picture upright (`loader.orientation`,
    /// §2a).
    pub orientation: bool,
    /// Fit the picture (upright) into a box of this many pixels (§1): scaled down, never up.
    pub fit: Option<(u32, u32)>,
}

impl DecodeOptions {
    /// At most `max_pixels` pixels, orientation applied, full size (the defaults of `[loader]`
    /// otherwise).
    pub fn new(max_pixels: u64) -> DecodeOptions {
        DecodeOptions {
            max_pixels,
            orientation: true,
            fit: None,
        }
    }
}

/// The size of a `width`x`height` picture fitted into a `box_w`x`box_h` box (§1): scaled by
/// s = min(1, box_w/width, box_h/height) to max(1, round(width·s)) x max(1, round(height·s)).
///
/// ```
/// use texcache::picture::fitted_size;
/// assert_eq!(fitted_size(3072, 2048, 768, 768), (768, 512));
/// assert_eq!(fitted_size(100, 50, 1000, 1000), (100, 50)); // never scaled up
/// assert_eq!(fitted_size(1000, 10, 1, 1), (1, 1));
/// ```
pub fn fitted_size(width: u32, height: u32, box_w: u32, box_h: u32) -> (u32, u32) {
    let (w, h) = (width.max(1) as f64, height.max(1) as f64);
    let s = (box_w as f64 / w).min(box_h as f64 / h).min(1.0);
    if s >= 1.0 {
        return (width, height);
    }
    let side = |v: f64| ((v * s).round() as u32).max(1);
    (side(w), side(h))
}

/// Decodes encoded image bytes into a bitmap (§2), refusing more than `options.max_pixels`,
/// upright unless `options.orientation` is off.
///
/// ```
/// use texcache::picture::{decode, DecodeOptions};
/// let png = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus/pngsuite/basn0g08.png"));
/// # let Ok(png) = png else { return };
/// let b = decode("basn0g08.png", &png, &DecodeOptions::new(1 << 20)).unwrap();
/// assert_eq!((b.width(), b.height(), b.format()), (32, 32, texcache::PixelFormat::Gray8));
/// ```
pub fn decode(href: &str, bytes: &[u8], options: &DecodeOptions) -> Result<Bitmap> {
    decode_telling(href, bytes, options, Destination::Heap).map(|d| d.bitmap)
}

/// A decoded picture, and what decoding it did.
pub(crate) struct Decoded {
    pub bitmap: Bitmap,
    /// The EXIF orientation applied (1: none).
    pub orientation: u8,
    /// Width and height as stored, before the orientation.
    pub stored: (u32, u32),
}

/// [`decode`] into `destination`, telling what it did. Every buffer a stage of the decode makes
/// (the picture as stored, resized, turned upright) is made there, so the bitmap's pixels are
/// written where they stay, with no copy of them elsewhere besides. A decoder that panics on its input (zune-jpeg does on some
/// damaged JPEGs: the fuzzer's find in `tests/fuzz/decode/`) gives a `Corrupt` error: the
/// decoders own no state beyond this call, so nothing is left half-changed.
pub(crate) fn decode_telling(
    href: &str,
    bytes: &[u8],
    options: &DecodeOptions,
    destination: Destination,
) -> Result<Decoded> {
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decode_caught(href, bytes, options, destination)
    }));
    decoded.unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(Error::new(
            href,
            ErrorKind::Corrupt {
                detail: format!("the decoder failed on this data ({message})"),
            },
        ))
    })
}

fn decode_caught(
    href: &str,
    bytes: &[u8],
    options: &DecodeOptions,
    to: Destination,
) -> Result<Decoded> {
    if let Some(fit) = options.fit {
        return decode_fitted(href, bytes, options, fit, to);
    }
    let (bitmap, orientation) = decode_stored(href, bytes, options.max_pixels, to)?;
    let stored = (bitmap.width(), bitmap.height());
    Ok(match orientation {
        Some(o) if options.orientation => Decoded {
            bitmap: upright(href, bitmap, o, to)?,
            orientation: o.to_exif(),
            stored,
        },
        _ => Decoded {
            bitmap,
            orientation: 1,
            stored,
        },
    })
}

/// A fitted decode (§1, §2a): the picture upright, scaled down into the box with a filter.
/// JPEGs decode at 1/2, 1/4 or 1/8 scale (DCT scaling: libjpeg-turbo's with the `turbojpeg`
/// feature, else `jpeg-decoder`'s for baseline and progressive YCbCr or gray ones) to the
/// smallest size at least the fitted one, so the full-size picture never exists; everything
/// else decodes at full size first (dropped as soon as it is resized).
fn decode_fitted(
    href: &str,
    bytes: &[u8],
    options: &DecodeOptions,
    (box_w, box_h): (u32, u32),
    to: Destination,
) -> Result<Decoded> {
    let scaled = if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        jpeg_scaled(href, bytes, options, (box_w, box_h), to)?
    } else {
        None
    };
    let (bitmap, orientation, full) = match scaled {
        Some(s) => s,
        None => {
            let (b, o) = decode_stored(href, bytes, options.max_pixels, to)?;
            let full = (b.width(), b.height());
            (b, o, full)
        }
    };
    let orientation = orientation.filter(|_| options.orientation);
    let (tw, th) = fitted_stored_size(full, orientation, (box_w, box_h));
    let bitmap = resize(href, bitmap, tw, th, to)?;
    Ok(match orientation {
        Some(o) => Decoded {
            bitmap: upright(href, bitmap, o, to)?,
            orientation: o.to_exif(),
            stored: full,
        },
        None => Decoded {
            bitmap,
            orientation: 1,
            stored: full,
        },
    })
}

/// The fitted size in the picture's stored axes: the box is the upright picture's, so it is
/// turned with the picture when the orientation turns it a quarter (EXIF 5 to 8).
fn fitted_stored_size(
    (w, h): (u32, u32),
    orientation: Option<Orientation>,
    (box_w, box_h): (u32, u32),
) -> (u32, u32) {
    if orientation.is_some_and(turns_a_quarter) {
        let (uw, uh) = fitted_size(h, w, box_w, box_h);
        (uh, uw)
    } else {
        fitted_size(w, h, box_w, box_h)
    }
}

/// A picture decoded smaller than stored: the bitmap, its orientation, its full stored size.
type Scaled = (Bitmap, Option<Orientation>, (u32, u32));

/// A JPEG decoded by libjpeg-turbo at the smallest IDCT scale (1/8, 1/4, 1/2, 1) that is at
/// least its fitted size: the bitmap, its orientation and its full stored size.
#[cfg(feature = "turbojpeg")]
fn jpeg_scaled(
    href: &str,
    bytes: &[u8],
    options: &DecodeOptions,
    fit: (u32, u32),
    to: Destination,
) -> Result<Option<Scaled>> {
    jpeg_turbo(
        href,
        bytes,
        options.max_pixels,
        |full, orientation| {
            fitted_stored_size(full, orientation.filter(|_| options.orientation), fit)
        },
        to,
    )
    .map(Some)
}

/// A JPEG through libjpeg-turbo ([`crate::picture::turbojpeg`]), decoded at the smallest IDCT scale at
/// least the size `at_least` asks for (given the full stored size and the orientation): the
/// bitmap, its orientation and its full stored size. Variants libjpeg-turbo does not read
/// (lossless, hierarchical, 12-bit) are `Unsupported`; a file cut short inside its first scan
/// is `Corrupt`.
#[cfg(feature = "turbojpeg")]
fn jpeg_turbo(
    href: &str,
    bytes: &[u8],
    max_pixels: u64,
    at_least: impl FnOnce((u32, u32), Option<Orientation>) -> (u32, u32),
    to: Destination,
) -> Result<Scaled> {
    use crate::picture::turbojpeg::{Colorspace, Decompressor};
    if let Some(variant) = unsupported_jpeg(bytes) {
        return Err(Error::new(
            href,
            ErrorKind::Unsupported {
                detail: format!("{variant} JPEG (libjpeg-turbo does not implement it)"),
            },
        ));
    }
    let mut dec = Decompressor::new(href)?;
    let header = dec.header(bytes)?;
    let full = (header.width, header.height);
    check_pixels(href, full.0, full.1, max_pixels)?;
    if cut_in_first_scan(bytes) {
        return Err(Error::new(
            href,
            ErrorKind::Corrupt {
                detail: "truncated: the file ends inside the first scan".into(),
            },
        ));
    }
    let orientation = exif_orientation(jpeg_exif(bytes));
    let (w, h) = Decompressor::scaled_size(&header, at_least(full, orientation));
    let (format, channels) = match header.colorspace {
        Colorspace::Gray => (PixelFormat::Gray8, 1),
        _ => (PixelFormat::Rgba8, 4),
    };
    let mut pixels = PixelBuffer::new(href, to, w as usize * h as usize * channels)?;
    dec.decode(bytes, &header, (w, h), pixels.as_mut_slice())?;
    Ok((pixels.into_bitmap(w, h, format), orientation, full))
}

/// The EXIF block (TIFF header first) of a JPEG's first `Exif` APP1 segment.
#[cfg(feature = "turbojpeg")]
fn jpeg_exif(b: &[u8]) -> Option<&[u8]> {
    jpeg_segments(b)
        .take_while(|&(m, ..)| m != 0xDA && m != 0)
        .filter(|&(m, ..)| m == 0xE1)
        .find_map(|(_, start, end)| b.get(start + 4..end)?.strip_prefix(b"Exif\0\0"))
}

/// A JPEG decoded by `jpeg-decoder` at the smallest DCT scale (1/8, 1/4, 1/2, 1) that is at
/// least its fitted size: the bitmap, its orientation and its full stored size. `None` for the
/// JPEGs this path leaves to [`decode_jpeg`] (CMYK, YCCK, RGB-coded, damaged headers, the
/// variants no decoder here reads), which then decode at full size.
#[cfg(all(feature = "rust-jpeg", not(feature = "turbojpeg")))]
fn jpeg_scaled(
    href: &str,
    bytes: &[u8],
    options: &DecodeOptions,
    fit: (u32, u32),
    to: Destination,
) -> Result<Option<Scaled>> {
    if unsupported_jpeg(bytes).is_some() || repair_jpeg_header(bytes).is_some() {
        return Ok(None);
    }
    if cut_in_first_scan(bytes) {
        return Err(Error::new(
            href,
            ErrorKind::Corrupt {
                detail: "truncated: the file ends inside the first scan".into(),
            },
        ));
    }
    let mut dec = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    if dec.read_info().is_err() {
        return Ok(None);
    }
    let Some(info) = dec.info() else {
        return Ok(None);
    };
    let full = (info.width as u32, info.height as u32);
    check_pixels(href, full.0, full.1, options.max_pixels)?;
    let format = match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => PixelFormat::Rgba8,
        jpeg_decoder::PixelFormat::L8 => PixelFormat::Gray8,
        _ => return Ok(None),
    };
    if info.coding_process == jpeg_decoder::CodingProcess::Lossless {
        return Ok(None);
    }
    let orientation = exif_orientation(dec.exif_data());
    let (tw, th) = fitted_stored_size(full, orientation.filter(|_| options.orientation), fit);
    let Ok((w, h)) = dec.scale(tw.min(65535) as u16, th.min(65535) as u16) else {
        return Ok(None);
    };
    let (w, h) = (w as u32, h as u32);
    let decoded = match dec.decode() {
        Ok(p) => p,
        // The full-size decoder says what is wrong, in its words.
        Err(_) => return Ok(None),
    };
    let n = w as usize * h as usize;
    let pixels = if format == PixelFormat::Rgba8 {
        if decoded.len() != n * 3 {
            return Ok(None);
        }
        let mut rgba = PixelBuffer::new(href, to, n * 4)?;
        for (s, d) in decoded
            .chunks_exact(3)
            .zip(rgba.as_mut_slice().chunks_exact_mut(4))
        {
            d.copy_from_slice(&[s[0], s[1], s[2], 255]);
        }
        rgba
    } else if decoded.len() != n {
        return Ok(None);
    } else {
        PixelBuffer::from_vec(href, to, decoded)?
    };
    Ok(Some((pixels.into_bitmap(w, h, format), orientation, full)))
}

/// `bitmap` resized to `w`x`h` with a Lanczos-3 filter (alpha premultiplied while filtering),
/// into a new buffer in `to`; the same bitmap when it already has that size.
fn resize(href: &str, bitmap: Bitmap, w: u32, h: u32, to: Destination) -> Result<Bitmap> {
    use fast_image_resize as fr;
    if (bitmap.width(), bitmap.height()) == (w, h) {
        return Ok(bitmap);
    }
    let format = bitmap.format();
    let pixel_type = match format {
        PixelFormat::Gray8 => fr::PixelType::U8,
        _ => fr::PixelType::U8x4,
    };
    let mut pixels = PixelBuffer::new(href, to, w as usize * h as usize * pixel_type.size())?;
    let src =
        fr::images::ImageRef::new(bitmap.width(), bitmap.height(), bitmap.pixels(), pixel_type)
            .expect("a bitmap's buffer fits its size");
    let mut dst = fr::images::Image::from_slice_u8(w, h, pixels.as_mut_slice(), pixel_type)
        .expect("the buffer was made for this size");
    let options =
        fr::ResizeOptions::new().resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Lanczos3));
    fr::Resizer::new()
        .resize(&src, &mut dst, &options)
        .expect("same pixel types, non-empty images");
    drop(dst);
    Ok(pixels.into_bitmap(w, h, format))
}

/// The EXIF orientation of an EXIF block (TIFF header first, or after an `Exif\0\0` header),
/// where it says one.
fn exif_orientation(exif: Option<&[u8]>) -> Option<Orientation> {
    exif.map(|e| e.strip_prefix(b"Exif\0\0").unwrap_or(e))
        .and_then(Orientation::from_exif_chunk)
        .filter(|&o| o != Orientation::NoTransforms)
}

/// Turns a bitmap as stored into the picture upright, in a new buffer in `to`.
fn upright(href: &str, bitmap: Bitmap, o: Orientation, to: Destination) -> Result<Bitmap> {
    let (w, h, format) = (bitmap.width(), bitmap.height(), bitmap.format());
    let mut pixels = PixelBuffer::new(href, to, bitmap.pixels().len())?;
    let upright = if turns_a_quarter(o) { (h, w) } else { (w, h) };
    let (src, dst) = (bitmap.pixels(), pixels.as_mut_slice());
    match format {
        PixelFormat::Gray8 => orient::<image::Luma<u8>>(src, (w, h), dst, upright, o),
        _ => orient::<image::Rgba<u8>>(src, (w, h), dst, upright, o),
    }
    Ok(pixels.into_bitmap(upright.0, upright.1, format))
}

/// Whether `o` turns the picture a quarter (EXIF 5 to 8), swapping its width and height.
fn turns_a_quarter(o: Orientation) -> bool {
    o.to_exif() >= 5
}

/// Writes the `w`x`h` picture `src` into `dst`, `dw`x`dh`, turned by `o` (as `image`'s
/// `DynamicImage::apply_orientation` turns it).
fn orient<P: image::Pixel<Subpixel = u8> + 'static>(
    src: &[u8],
    (w, h): (u32, u32),
    dst: &mut [u8],
    (dw, dh): (u32, u32),
    o: Orientation,
) {
    use image::imageops;
    let src = image::ImageBuffer::<P, &[u8]>::from_raw(w, h, src).expect("a bitmap's size");
    let mut dst =
        image::ImageBuffer::<P, &mut [u8]>::from_raw(dw, dh, dst).expect("a bitmap's size");
    let done = match o {
        Orientation::NoTransforms => {
            dst.copy_from_slice(&src);
            Ok(())
        }
        Orientation::Rotate90 => imageops::rotate90_in(&src, &mut dst),
        Orientation::Rotate180 => imageops::rotate180_in(&src, &mut dst),
        Orientation::Rotate270 => imageops::rotate270_in(&src, &mut dst),
        Orientation::FlipHorizontal => imageops::flip_horizontal_in(&src, &mut dst),
        Orientation::FlipVertical => imageops::flip_vertical_in(&src, &mut dst),
        Orientation::Rotate90FlipH => imageops::rotate90_in(&src, &mut dst)
            .map(|()| imageops::flip_horizontal_in_place(&mut dst)),
        Orientation::Rotate270FlipH => imageops::rotate270_in(&src, &mut dst)
            .map(|()| imageops::flip_horizontal_in_place(&mut dst)),
    };
    done.expect("the destination has the turned size");
}

/// The picture as stored, and the EXIF orientation its file says to show it in.
fn decode_stored(
    href: &str,
    bytes: &[u8],
    max_pixels: u64,
    to: Destination,
) -> Result<(Bitmap, Option<Orientation>)> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return decode_jpeg(href, bytes, max_pixels, to);
    }
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        if let Some(decoded) = decode_png(href, bytes, max_pixels, to)? {
            return Ok(decoded);
        }
    }
    if crate::picture::avif::is_avif(bytes) {
        let (bitmap, exif) = crate::picture::avif::decode(href, bytes, max_pixels, to)?;
        let orientation = Orientation::from_exif(exif).filter(|&o| o != Orientation::NoTransforms);
        return Ok((bitmap, orientation));
    }
    let mut reader = ImageReader::new(Cursor::new(bytes));
    if let Some(format) = sniff(href, bytes) {
        reader.set_format(format);
    }
    if reader.format().is_none() {
        return Err(Error::new(
            href,
            ErrorKind::Unsupported {
                detail: if bytes.is_empty() {
                    "empty file".into()
                } else {
                    "not a recognised image format".into()
                },
            },
        ));
    }
    if reader.format() == Some(image::ImageFormat::WebP) {
        check_riff_chunks(href, &mut Cursor::new(bytes), bytes.len() as u64)?;
    }
    if reader.format() == Some(image::ImageFormat::Tiff) && is_tiff_the_decoder_panics_on(bytes) {
        return Err(Error::new(
            href,
            ErrorKind::Unsupported {
                detail: "a tiled TIFF with separate colour planes (PlanarConfiguration 2) and \
                     tiles past its edges"
                    .into(),
            },
        ));
    }
    reader.limits(limits(max_pixels));
    let format = reader.format();
    let canvas = match format {
        Some(image::ImageFormat::Gif) => Some("GIF"),
        Some(image::ImageFormat::Bmp) if is_rle_bmp(bytes) => Some("run-length coded BMP"),
        _ => None,
    };
    let mut decoder = reader.into_decoder().map_err(|e| classify(href, e))?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(Error::new(
            href,
            ErrorKind::Corrupt {
                detail: format!("the header says {width}x{height}: no picture"),
            },
        ));
    }
    check_pixels(href, width, height, max_pixels)?;
    if let Some(what) = canvas {
        check_canvas(href, what, width, height, bytes.len() as u64)?;
    }
    let gray = matches!(decoder.color_type(), ColorType::L8 | ColorType::L16);
    // A file whose EXIF cannot be read is shown as stored. TIFF's orientation is a tag of its
    // own; the others' is read from their EXIF block, once, which may start with the `Exif\0\0`
    // header of JPEG's APP1 (as Pillow and other tools write WebP's `EXIF` chunk and PNG's
    // `eXIf`), which `image` does not look past.
    let orientation = if format == Some(image::ImageFormat::Tiff) {
        decoder
            .orientation()
            .ok()
            .filter(|&o| o != Orientation::NoTransforms)
    } else {
        exif_orientation(decoder.exif_metadata().ok().flatten().as_deref())
    };
    let format = if gray {
        PixelFormat::Gray8
    } else {
        PixelFormat::Rgba8
    };
    // A decoder whose samples are already the bitmap's writes them straight into its buffer;
    // the others' pixels are converted by `image` and copied there (for the heap: kept).
    let native = match decoder.color_type() {
        ColorType::L8 => gray,
        ColorType::Rgba8 => !gray,
        _ => false,
    };
    let pixels = if native {
        let mut pixels = PixelBuffer::new(href, to, decoder.total_bytes() as usize)?;
        decoder
            .read_image(pixels.as_mut_slice())
            .map_err(|e| classify(href, e))?;
        pixels
    } else {
        let img = DynamicImage::from_decoder(decoder).map_err(|e| classify(href, e))?;
        let converted = if gray {
            img.into_luma8().into_raw()
        } else {
            img.into_rgba8().into_raw()
        };
        PixelBuffer::from_vec(href, to, converted)?
    };
    Ok((pixels.into_bitmap(width, height, format), orientation))
}

/// JPEG through libjpeg-turbo at full size ([`jpeg_turbo`]).
#[cfg(feature = "turbojpeg")]
fn decode_jpeg(
    href: &str,
    bytes: &[u8],
    max_pixels: u64,
    to: Destination,
) -> Result<(Bitmap, Option<Orientation>)> {
    let (bitmap, orientation, _) = jpeg_turbo(href, bytes, max_pixels, |full, _| full, to)?;
    Ok((bitmap, orientation))
}

/// JPEG goes straight to zune-jpeg (the decoder `image` uses too), writing RGBA (or gray)
/// straight into the bitmap's buffer with no conversion copy. It runs in its lenient mode, so
/// that what libjpeg-turbo tolerates (junk between segments, odd segment lengths) decodes, with
/// one check of its own first: a file cut short inside its first scan is `Corrupt`, not a
/// silently grey picture ([`cut_in_first_scan`]).
#[cfg(all(feature = "rust-jpeg", not(feature = "turbojpeg")))]
fn decode_jpeg(
    href: &str,
    bytes: &[u8],
    max_pixels: u64,
    to: Destination,
) -> Result<(Bitmap, Option<Orientation>)> {
    // Segments zune-jpeg refuses and libjpeg-turbo skips: a copy without them (rare).
    if let Some(variant) = unsupported_jpeg(bytes) {
        return Err(Error::new(
            href,
            ErrorKind::Unsupported {
                detail: format!("{variant} JPEG (no decoder here implements it)"),
            },
        ));
    }
    let repaired = repair_jpeg_header(bytes);
    let bytes = repaired.as_deref().unwrap_or(bytes);
    use zune_core::{bytestream::ZCursor, colorspace::ColorSpace, options::DecoderOptions};
    use zune_jpeg::errors::DecodeErrors;
    let corrupt = |e: DecodeErrors| match e {
        DecodeErrors::Unsupported(s) => Error::new(
            href,
            ErrorKind::Unsupported {
                detail: format!("JPEG {s:?}"),
            },
        ),
        DecodeErrors::ExhaustedData => Error::new(
            href,
            ErrorKind::Corrupt {
                detail: "truncated (unexpected end of data)".into(),
            },
        ),
        other => Error::new(
            href,
            ErrorKind::Corrupt {
                detail: other.to_string(),
            },
        ),
    };
    let options = DecoderOptions::default()
        .set_strict_mode(false)
        .set_max_width(u32::MAX as usize)
        .set_max_height(u32::MAX as usize)
        .jpeg_set_out_colorspace(ColorSpace::RGBA);
    let mut dec = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    dec.decode_headers().map_err(corrupt)?;
    if cut_in_first_scan(bytes) {
        return Err(Error::new(
            href,
            ErrorKind::Corrupt {
                detail: "truncated: the file ends inside the first scan".into(),
            },
        ));
    }
    let info = dec.info().expect("headers decoded");
    let (width, height) = (info.width as u32, info.height as u32);
    check_pixels(href, width, height, max_pixels)?;
    let orientation = exif_orientation(dec.exif().map(Vec::as_slice));
    let input = dec.input_colorspace();
    if matches!(input, Some(ColorSpace::CMYK | ColorSpace::YCCK)) {
        // zune-jpeg panics writing some of these ("Slice to small cannot write").
        let input = input.expect("matched");
        return Ok((
            decode_cmyk_jpeg(href, bytes, input, (width, height), to)?,
            orientation,
        ));
    }
    let gray = input == Some(ColorSpace::Luma);
    // zune-jpeg's RGBA output is right for YCbCr and gray; for RGB-coded files (Adobe
    // transform 0) it is not (it has no mapping), so those decode to RGB, expanded to RGBA in
    // place below.
    let via_rgb = !gray && input != Some(ColorSpace::YCbCr);
    let out = match (gray, via_rgb) {
        (true, _) => ColorSpace::Luma,
        (false, true) => ColorSpace::RGB,
        (false, false) => ColorSpace::RGBA,
    };
    dec.set_options(options.jpeg_set_out_colorspace(out));
    let format = if gray {
        PixelFormat::Gray8
    } else {
        PixelFormat::Rgba8
    };
    let len = dec
        .output_buffer_size()
        .ok_or_else(|| corrupt(DecodeErrors::FormatStatic("image too large")))?;
    let pixel_count = width as usize * height as usize;
    let want = pixel_count * out.num_components();
    if len != want {
        return Err(Error::new(
            href,
            ErrorKind::Unsupported {
                detail: format!("JPEG output of {len} bytes for {width}x{height}"),
            },
        ));
    }
    let final_len = pixel_count * if gray { 1 } else { 4 };
    let mut pixels = PixelBuffer::new(href, to, final_len)?;
    dec.decode_into(&mut pixels.as_mut_slice()[..len])
        .map_err(corrupt)?;
    if via_rgb {
        rgb_to_rgba_in_place(pixels.as_mut_slice(), pixel_count);
    }
    Ok((pixels.into_bitmap(width, height, format), orientation))
}

/// A CMYK or YCCK JPEG (`width`x`height`, checked against `loader.max_pixels`) through
/// zune-jpeg, its four channels as stored (no conversion of zune-jpeg's: its YCCK-to-RGB path
/// panics on some files, "Slice to small cannot write"), converted to RGBA here as
/// libjpeg-turbo does: YCC to RGB with libjpeg's fixed-point arithmetic for YCCK (giving
/// Adobe-inverted CMYK), then [`crate::picture::jpeg::inverted_cmyk_to_rgba`].
#[cfg(all(feature = "rust-jpeg", not(feature = "turbojpeg")))]
fn decode_cmyk_jpeg(
    href: &str,
    bytes: &[u8],
    input: zune_core::colorspace::ColorSpace,
    (width, height): (u32, u32),
    to: Destination,
) -> Result<Bitmap> {
    use zune_core::{bytestream::ZCursor, colorspace::ColorSpace, options::DecoderOptions};
    let corrupt = |detail: String| Error::new(href, ErrorKind::Corrupt { detail });
    let options = DecoderOptions::default()
        .set_strict_mode(false)
        .set_max_width(u32::MAX as usize)
        .set_max_height(u32::MAX as usize)
        .jpeg_set_out_colorspace(input);
    let mut dec = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    let n = width as usize * height as usize;
    let mut buffer = PixelBuffer::new(href, to, n * 4)?;
    let pixels = buffer.as_mut_slice();
    dec.decode_into(pixels)
        .map_err(|e| corrupt(e.to_string()))?;
    if dec.output_colorspace() != Some(input) {
        return Err(corrupt(format!(
            "four channels decoded as {:?}",
            dec.output_colorspace()
        )));
    }
    if input == ColorSpace::YCCK {
        ycck_to_inverted_cmyk(pixels);
    }
    crate::picture::jpeg::inverted_cmyk_to_rgba(pixels);
    Ok(buffer.into_bitmap(width, height, PixelFormat::Rgba8))
}

/// YCCK samples to Adobe-inverted CMYK in place, as libjpeg's `ycck_cmyk_convert`: R, G and B
/// from Y, Cb and Cr with its 16-bit fixed-point coefficients, each stored as 255 minus it;
/// K as it is.
#[cfg(all(feature = "rust-jpeg", not(feature = "turbojpeg")))]
fn ycck_to_inverted_cmyk(pixels: &mut [u8]) {
    const ONE_HALF: i32 = 1 << 15;
    let fix = |x: f64| (x * 65536.0 + 0.5) as i32;
    let (cr_r, cb_b, cr_g, cb_g) = (fix(1.40200), fix(1.77200), fix(0.71414), fix(0.34414));
    for px in pixels.chunks_exact_mut(4) {
        let (y, cb, cr) = (px[0] as i32, px[1] as i32 - 128, px[2] as i32 - 128);
        let r = y + ((cr_r * cr + ONE_HALF) >> 16);
        let g = y + ((-cb_g * cb - cr_g * cr + ONE_HALF) >> 16);
        let b = y + ((cb_b * cb + ONE_HALF) >> 16);
        for (out, v) in px[..3].iter_mut().zip([r, g, b]) {
            *out = 255 - v.clamp(0, 255) as u8;
        }
    }
}

/// The JPEG variant no decoder here implements, from the frame header: arithmetic-coded,
/// lossless, hierarchical, or more than 8 bits per sample. `None` for baseline, extended
/// sequential and progressive 8-bit files (and for headers too broken to tell, which the
/// decoder reports).
#[cfg(any(feature = "rust-jpeg", feature = "turbojpeg"))]
fn unsupported_jpeg(b: &[u8]) -> Option<&'static str> {
    let (m, at, _) = jpeg_segments(b)
        .find(|&(m, ..)| matches!(m, 0xC0..=0xCF) && !matches!(m, 0xC4 | 0xC8 | 0xCC))?;
    match m {
        0xC9..=0xCB | 0xCD..=0xCF if !cfg!(feature = "turbojpeg") => Some("an arithmetic-coded"),
        0xC3 => Some("a lossless"),
        0xC5..=0xC7 => Some("a hierarchical"),
        _ if b.get(at + 4).is_some_and(|&p| p != 8) => Some("a 12-bit (or 16-bit)"),
        _ => None,
    }
}

/// A copy of a JPEG without the application and comment segments before its first scan that
/// are too short to hold what they are (a length under 2; an Adobe APP14 under its 12 bytes),
/// which libjpeg-turbo skips and zune-jpeg refuses; `None` when there are none (the usual case:
/// nothing is copied).
#[cfg(all(feature = "rust-jpeg", not(feature = "turbojpeg")))]
fn repair_jpeg_header(b: &[u8]) -> Option<Vec<u8>> {
    let short = |m: u8, start: usize, end: usize| match m {
        0xEE => end - start < 2 + 2 + 12,
        0xE0..=0xEF | 0xFE => b
            .get(start + 2..start + 4)
            .is_some_and(|l| l[0] == 0 && l[1] < 2),
        _ => false,
    };
    let bad: Vec<_> = jpeg_segments(b)
        .filter(|&(m, s, e)| short(m, s, e))
        .map(|(_, s, e)| s..e)
        .collect();
    if bad.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(b.len());
    let mut at = 0;
    for r in bad {
        out.extend_from_slice(&b[at..r.start]);
        at = r.end;
    }
    out.extend_from_slice(&b[at..]);
    Some(out)
}

/// Whether a JPEG's data ends before its first scan does: no marker (other than restart
/// markers and stuffed bytes) follows the first start-of-scan.
#[cfg(any(feature = "rust-jpeg", feature = "turbojpeg"))]
fn cut_in_first_scan(b: &[u8]) -> bool {
    let Some((0xDA, _, start)) = jpeg_segments(b).last() else {
        return true;
    };
    // The first scan's entropy-coded data runs to the next real marker; whether one follows
    // it at all is found fastest from the end, where a whole file has its EOI.
    (start..b.len().saturating_sub(1))
        .rev()
        .all(|i| b[i] != 0xFF || matches!(b[i + 1], 0x00 | 0xFF | 0xD0..=0xD7))
}

/// Expands `n` RGB pixels at the start of `buf` (which holds `4 n` bytes) to RGBA, opaque, in
/// place: from the last pixel back, so no pixel is overwritten before it is read.
#[cfg(all(feature = "rust-jpeg", not(feature = "turbojpeg")))]
fn rgb_to_rgba_in_place(buf: &mut [u8], n: usize) {
    for i in (0..n).rev() {
        let (s, d) = (3 * i, 4 * i);
        let (r, g, b) = (buf[s], buf[s + 1], buf[s + 2]);
        buf[d..d + 4].copy_from_slice(&[r, g, b, 255]);
    }
}

/// A build with neither JPEG decoder (features `turbojpeg` and `rust-jpeg` both off) reads no
/// JPEG: fitted requests of JPEGs are refused as [`decode_jpeg`] refuses them.
#[cfg(not(any(feature = "rust-jpeg", feature = "turbojpeg")))]
fn jpeg_scaled(
    _href: &str,
    _bytes: &[u8],
    _options: &DecodeOptions,
    _fit: (u32, u32),
    _to: Destination,
) -> Result<Option<Scaled>> {
    Ok(None)
}

/// A build with neither JPEG decoder: JPEG is `Unsupported`, saying which features read it.
#[cfg(not(any(feature = "rust-jpeg", feature = "turbojpeg")))]
fn decode_jpeg(
    href: &str,
    _bytes: &[u8],
    _max_pixels: u64,
    _to: Destination,
) -> Result<(Bitmap, Option<Orientation>)> {
    Err(Error::new(
        href,
        ErrorKind::Unsupported {
            detail: "this build decodes no JPEG (texcache's features `turbojpeg` or `rust-jpeg`)"
                .into(),
        },
    ))
}

/// Decodes a PNG of up to 8 bits per sample with the `png` crate straight into the bitmap's
/// buffer, with no full-image intermediate: RGBA and grayscale images are decoded into it
/// directly; RGB, palette and gray+alpha images row by row, each row expanded to RGBA8 from a
/// small reused row buffer. (Interlaced RGB and palette images, whose rows come in passes, are
/// expanded to RGBA8 by the decoder itself.) `None` for 16-bit images, which go through `image`,
/// whose rounding to 8 bits is the reference.
fn decode_png(
    href: &str,
    bytes: &[u8],
    max_pixels: u64,
    to: Destination,
) -> Result<Option<(Bitmap, Option<Orientation>)>> {
    use png::{BitDepth, ColorType, Transformations};
    let corrupt = |e: png::DecodingError| match e {
        png::DecodingError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            Error::new(
                href,
                ErrorKind::Corrupt {
                    detail: "truncated (unexpected end of file)".into(),
                },
            )
        }
        png::DecodingError::LimitsExceeded => Error::new(
            href,
            ErrorKind::Corrupt {
                detail: "decoder limit: the image needs more memory than its pixels".into(),
            },
        ),
        other => Error::new(
            href,
            ErrorKind::Corrupt {
                detail: other.to_string(),
            },
        ),
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
    // An eXIf chunk after the image data is seen only once it is read: looked at again below.
    let exif_before = exif_orientation(reader.info().exif_metadata.as_deref());
    let (format, pixels) = match reader.output_color_type() {
        (ColorType::Rgba, BitDepth::Eight) => {
            let mut pixels = PixelBuffer::new(href, to, pixel_count * 4)?;
            reader.next_frame(pixels.as_mut_slice()).map_err(corrupt)?;
            (PixelFormat::Rgba8, pixels)
        }
        (ColorType::Grayscale, BitDepth::Eight) => {
            let mut pixels = PixelBuffer::new(href, to, pixel_count)?;
            reader.next_frame(pixels.as_mut_slice()).map_err(corrupt)?;
            (PixelFormat::Gray8, pixels)
        }
        (ColorType::Rgb, BitDepth::Eight) if !interlaced => {
            let mut rgba = PixelBuffer::new(href, to, pixel_count * 4)?;
            expand_rows(&mut reader, width, rgba.as_mut_slice(), 3, |s, d| {
                d[..3].copy_from_slice(s);
                d[3] = 255;
            })
            .map_err(corrupt)?;
            (PixelFormat::Rgba8, rgba)
        }
        (ColorType::GrayscaleAlpha, BitDepth::Eight) if !interlaced => {
            let mut rgba = PixelBuffer::new(href, to, pixel_count * 4)?;
            expand_rows(&mut reader, width, rgba.as_mut_slice(), 2, |s, d| {
                d.copy_from_slice(&[s[0], s[0], s[0], s[1]]);
            })
            .map_err(corrupt)?;
            (PixelFormat::Rgba8, rgba)
        }
        (ColorType::GrayscaleAlpha, BitDepth::Eight) => {
            // Interlaced gray+alpha (rare): the whole image, then one expanding copy.
            let mut ga = vec![0u8; pixel_count * 2];
            reader.next_frame(&mut ga).map_err(corrupt)?;
            let mut rgba = PixelBuffer::new(href, to, pixel_count * 4)?;
            for (s, d) in ga
                .chunks_exact(2)
                .zip(rgba.as_mut_slice().chunks_exact_mut(4))
            {
                d.copy_from_slice(&[s[0], s[0], s[0], s[1]]);
            }
            (PixelFormat::Rgba8, rgba)
        }
        other => {
            return Err(Error::new(
                href,
                ErrorKind::Unsupported {
                    detail: format!("PNG decoded as {other:?}"),
                },
            ))
        }
    };
    let orientation =
        exif_before.or_else(|| exif_orientation(reader.info().exif_metadata.as_deref()));
    Ok(Some((
        pixels.into_bitmap(width, height, format),
        orientation,
    )))
}

/// Reads a non-interlaced image row by row into a reused row buffer of `channels` bytes per
/// pixel and expands each pixel into 4 bytes of `rgba` with `expand`.
fn expand_rows<R: std::io::BufRead + std::io::Seek>(
    reader: &mut png::Reader<R>,
    width: u32,
    rgba: &mut [u8],
    channels: usize,
    expand: impl Fn(&[u8], &mut [u8]),
) -> std::result::Result<(), png::DecodingError> {
    let w = width as usize;
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file of the corpus's picture folders decodes into shared memory (§12) exactly as
    /// into the heap, plain and fitted, upright: the same bitmap, or the same error.
    #[test]
    fn shared_memory_gets_the_same_pixels_as_the_heap() {
        let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
        let mut decoded = 0;
        for dir in ["formats", "orientation", "photos", "pngsuite", "png-faults"] {
            let entries = std::fs::read_dir(corpus.join(dir)).expect("../shared/corpus");
            for entry in entries {
                let path = entry.unwrap().path();
                let href = path.display().to_string();
                let bytes = std::fs::read(&path).unwrap();
                for fit in [None, Some((64, 48))] {
                    let options = DecodeOptions {
                        fit,
                        ..DecodeOptions::new(1 << 26)
                    };
                    let heap = decode_telling(&href, &bytes, &options, Destination::Heap);
                    let shared = decode_telling(&href, &bytes, &options, Destination::Shared);
                    match (heap, shared) {
                        (Ok(h), Ok(s)) => {
                            let (hb, sb) = (&h.bitmap, &s.bitmap);
                            assert!(hb.shared().is_none() && sb.shared().is_some(), "{href}");
                            assert_eq!(
                                (
                                    hb.width(),
                                    hb.height(),
                                    hb.format(),
                                    h.orientation,
                                    h.stored
                                ),
                                (
                                    sb.width(),
                                    sb.height(),
                                    sb.format(),
                                    s.orientation,
                                    s.stored
                                ),
                                "{href} {fit:?}"
                            );
                            assert!(hb.pixels() == sb.pixels(), "{href} {fit:?}: pixels differ");
                            decoded += 1;
                        }
                        (Err(h), Err(s)) => assert_eq!(h.to_string(), s.to_string()),
                        (h, s) => panic!(
                            "{href} {fit:?}: {:?} on the heap, {:?} shared",
                            h.err(),
                            s.err()
                        ),
                    }
                }
            }
        }
        assert!(decoded > 200, "only {decoded} pictures decoded");
    }
}
