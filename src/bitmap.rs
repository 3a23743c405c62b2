//! CPU loading: the [`Bitmap`] the CPU tier holds, and reading the file behind an href for
//! [`crate::decode`] to decode.
//!
//! Decoded bitmaps are RGBA8, or Gray8 for grayscale sources without alpha (§2). Files are
//! opened as `crate::file` opens every file (never blocking, regular files only, confined on
//! the descriptor), sniffed before they are read, and read no further than their length when
//! opened. Every failure is a typed [`Error`] naming the href.

pub use crate::decode::{decode, GIF_PIXELS_PER_BYTE};
use crate::error::{Error, Result};
use crate::stats::PixelFormat;
use crate::tier::Resource;
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
    /// The pixels, taken out (the bitmap is gone; the live counts follow).
    pub(crate) fn into_pixels(mut self) -> Vec<u8> {
        let pixels = std::mem::take(&mut self.pixels);
        LIVE_BITMAP_BYTES.fetch_sub(pixels.len() as i64, Ordering::Relaxed);
        pixels
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
    let options = crate::decode::DecodeOptions::new(max_pixels);
    let mut opened = crate::file::open_regular(href, path, confine_to)?;
    let mut head = [0u8; 32];
    let n = crate::file::read_up_to(&mut opened.file, &mut head)
        .map_err(|e| Error::io(href, path, e))?;
    let head = &head[..n];
    if !crate::decode::is_picture(href, head) {
        // The decoder's own message for data in no format it knows (or an empty file).
        return Err(decode(href, head, &options)
            .err()
            .unwrap_or_else(|| Error::Unsupported {
                href: href.into(),
                detail: "not a recognised image format".into(),
            }));
    }
    crate::file::read_bounded(href, path, opened, head, max_file_bytes(max_pixels))
}

/// Reads and decodes a file: [`read_file`] then [`decode`].
pub fn load_file(
    href: &str,
    path: &Path,
    confine_to: Option<&Path>,
    options: &crate::decode::DecodeOptions,
) -> Result<Bitmap> {
    let bytes = read_file(href, path, confine_to, options.max_pixels)?;
    decode(href, &bytes, options)
}
