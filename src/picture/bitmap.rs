//! The [`Bitmap`] the CPU tier holds: a decoded picture's pixels, RGBA8, or Gray8 for
//! grayscale sources without alpha (§2), counted while alive for leak checks.

use crate::observe::stats::PixelFormat;
use crate::os::shm::SharedPixels;
use crate::tier::Resource;
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
    pixels: Pixels,
}

/// Where a bitmap's pixels are: this process's heap, or shared memory (§12) that other
/// processes map too, with the id the owner gives it.
enum Pixels {
    Heap(Vec<u8>),
    Shared(SharedPixels, u64),
}

impl Pixels {
    fn as_slice(&self) -> &[u8] {
        match self {
            Pixels::Heap(v) => v,
            Pixels::Shared(s, _) => s.as_slice(),
        }
    }
}

/// The next id of a shared bitmap in this process.
static NEXT_SHARED_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

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
            pixels: Pixels::Heap(pixels),
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
        self.pixels.as_slice()
    }
    /// The pixels, taken out (the bitmap is gone; the live counts follow); a copy of shared
    /// ones.
    pub(crate) fn into_pixels(mut self) -> Vec<u8> {
        let pixels = match std::mem::replace(&mut self.pixels, Pixels::Heap(Vec::new())) {
            Pixels::Heap(v) => v,
            Pixels::Shared(s, _) => s.as_slice().to_vec(),
        };
        LIVE_BITMAP_BYTES.fetch_sub(pixels.len() as i64, Ordering::Relaxed);
        pixels
    }

    /// The same picture with its pixels in a new sealed shared-memory region (§12), with a
    /// new id; one copy. A shared bitmap is returned as it is.
    pub(crate) fn into_shared(self) -> std::io::Result<Bitmap> {
        if matches!(self.pixels, Pixels::Shared(..)) {
            return Ok(self);
        }
        let region = SharedPixels::from_bytes(c"texcache", self.pixels())?;
        let id = NEXT_SHARED_ID.fetch_add(1, Ordering::Relaxed);
        Ok(Bitmap::from_shared(
            self.width,
            self.height,
            self.format,
            region,
            id,
        ))
    }

    /// A bitmap over a shared region (of this process or mapped from the owner's), its id the
    /// owner's.
    pub(crate) fn from_shared(
        width: u32,
        height: u32,
        format: PixelFormat,
        region: SharedPixels,
        id: u64,
    ) -> Bitmap {
        let bytes = region.len() as i64;
        LIVE_BITMAPS.fetch_add(1, Ordering::Relaxed);
        LIVE_BITMAP_BYTES.fetch_add(bytes, Ordering::Relaxed);
        Bitmap {
            width,
            height,
            format,
            pixels: Pixels::Shared(region, id),
        }
    }

    /// The shared region and its id, for a bitmap in shared memory.
    pub(crate) fn shared(&self) -> Option<(&SharedPixels, u64)> {
        match &self.pixels {
            Pixels::Shared(s, id) => Some((s, *id)),
            Pixels::Heap(_) => None,
        }
    }
}

impl Drop for Bitmap {
    fn drop(&mut self) {
        LIVE_BITMAPS.fetch_sub(1, Ordering::Relaxed);
        LIVE_BITMAP_BYTES.fetch_sub(self.pixels.as_slice().len() as i64, Ordering::Relaxed);
    }
}

impl Resource for Bitmap {
    fn bytes(&self) -> u64 {
        self.pixels.as_slice().len() as u64
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
