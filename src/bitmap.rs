//! CPU loading: reading a file and decoding it with `image` into the bitmap the CPU tier holds.
//!
//! Decoded bitmaps are RGBA8, or Gray8 for grayscale sources without alpha (SPEC §2). The
//! header is read first and images with more than `loader.max_pixels` pixels are refused before
//! any pixel memory is allocated. Every failure is a typed [`Error`] naming the href.

use crate::error::{Error, Result};
use crate::stats::PixelFormat;
use crate::tier::Resource;
use image::{ColorType, DynamicImage, ImageDecoder, ImageError, ImageReader, Limits};
use std::io::Cursor;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};

static LIVE_BITMAPS: AtomicI64 = AtomicI64::new(0);
static LIVE_BITMAP_BYTES: AtomicI64 = AtomicI64::new(0);

/// A decoded image: tightly packed rows, RGBA8 (4 bytes per pixel) or Gray8 (1 byte).
///
/// ```
/// use texcache::{Bitmap, PixelFormat};
/// let b = Bitmap::new(3, 2, PixelFormat::Rgba8, vec![0; 24]);
/// assert_eq!(texcache::tier::Resource::bytes(&b), 24);
/// ```
pub struct Bitmap {
    width: u32,
    height: u32,
    format: PixelFormat,
    pixels: Vec<u8>,
}

impl Bitmap {
    /// Wraps pixels. Panics if `pixels.len()` does not match the size and format: that is a
    /// programming error, never a property of input data.
    pub fn new(width: u32, height: u32, format: PixelFormat, pixels: Vec<u8>) -> Bitmap {
        let bpp = match format {
            PixelFormat::Rgba8 => 4,
            PixelFormat::Gray8 => 1,
            PixelFormat::Yuv420 => panic!("bitmaps are rgba8 or gray8"),
        };
        assert_eq!(
            pixels.len() as u64,
            width as u64 * height as u64 * bpp,
            "bitmap size"
        );
        LIVE_BITMAPS.fetch_add(1, Ordering::Relaxed);
        LIVE_BITMAP_BYTES.fetch_add(pixels.len() as i64, Ordering::Relaxed);
        Bitmap {
            width,
            height,
            format,
            pixels,
        }
    }
    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }
    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }
    /// `Rgba8` or `Gray8`.
    pub fn format(&self) -> PixelFormat {
        self.format
    }
    /// Bytes per pixel: 4 or 1.
    pub fn bytes_per_pixel(&self) -> u32 {
        if self.format == PixelFormat::Gray8 {
            1
        } else {
            4
        }
    }
    /// The pixels, rows top to bottom, tightly packed.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }
}

impl Drop for Bitmap {
    fn drop(&mut self) {
        LIVE_BITMAPS.fetch_sub(1, Ordering::Relaxed);
        LIVE_BITMAP_BYTES.fetch_sub(self.pixels.len() as i64, Ordering::Relaxed);
    }
}

impl Resource for Bitmap {
    fn bytes(&self) -> u64 {
        self.pixels.len() as u64
    }
    fn dimensions(&self) -> (u32, u32) {
        (self.width, self.height)
    }
    fn format(&self) -> PixelFormat {
        self.format
    }
}

impl std::fmt::Debug for Bitmap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Bitmap({}x{} {})",
            self.width,
            self.height,
            self.format.name()
        )
    }
}

/// Bitmaps alive in this process and their pixel bytes (for leak checks).
pub fn live_bitmaps() -> (i64, i64) {
    (
        LIVE_BITMAPS.load(Ordering::Relaxed),
        LIVE_BITMAP_BYTES.load(Ordering::Relaxed),
    )
}

/// The longest file texcache reads as a picture with `loader.max_pixels = max_pixels`: 8 bytes
/// per pixel (16-bit RGBA stored raw, the most any supported format needs) plus 16 MiB of
/// metadata. Anything longer is refused from its `fstat` length before a byte is read.
pub fn max_file_bytes(max_pixels: u64) -> u64 {
    max_pixels.saturating_mul(8).saturating_add(16 << 20)
}

/// Reads the file of `href` for decoding. `confine_to`: the canonical mediadir the opened file
/// must lie in; checked on the open file itself, so a symlink swapped in after the key was
/// computed is caught too.
///
/// The file is opened without blocking and must be a regular file (a FIFO is `NotAFile`, not a
/// hang); its first bytes are sniffed before the rest is read, so a file in no format texcache
/// decodes costs a few bytes; a file longer than [`max_file_bytes`] is refused from its length;
/// and no more than the length it had when opened is read.
pub fn read_file(
    href: &str,
    path: &Path,
    confine_to: Option<&Path>,
    max_pixels: u64,
) -> Result<Vec<u8>> {
    let mut opened = crate::file::open_regular(href, path, confine_to)?;
    let mut head = [0u8; 32];
    let n = crate::file::read_up_to(&mut opened.file, &mut head)
        .map_err(|e| Error::io(href, path, e))?;
    let head = &head[..n];
    if !is_picture(head) {
        // The decoder's own message for data in no format it knows (or an empty file).
        return Err(decode(href, head, max_pixels)
            .err()
            .unwrap_or_else(|| Error::Unsupported {
                href: href.into(),
                detail: "not a recognised image format".into(),
            }));
    }
    crate::file::read_bounded(href, path, opened, head, max_file_bytes(max_pixels))
}

/// Whether `head`, a file's first bytes, starts like a format [`decode`] reads.
fn is_picture(head: &[u8]) -> bool {
    head.starts_with(&[0xFF, 0xD8, 0xFF])
        || head.starts_with(b"\x89PNG\r\n\x1a\n")
        || image::guess_format(head).is_ok_and(|f| f.reading_enabled())
}

/// Decodes encoded image bytes into a bitmap (SPEC §2), refusing more than `max_pixels`.
///
/// ```
/// let png = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus/pngsuite/basn0g08.png"));
/// # let Ok(png) = png else { return };
/// let b = texcache::bitmap::decode("basn0g08.png", &png, 1 << 20).unwrap();
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

/// Reads and decodes a file: [`read_file`] then [`decode`].
pub fn load_file(
    href: &str,
    path: &Path,
    confine_to: Option<&Path>,
    max_pixels: u64,
) -> Result<Bitmap> {
    let bytes = read_file(href, path, confine_to, max_pixels)?;
    decode(href, &bytes, max_pixels)
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
