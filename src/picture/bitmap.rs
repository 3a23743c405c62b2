//! The [`Bitmap`] the CPU tier holds: a decoded picture's pixels, RGBA8, or Gray8 for
//! grayscale sources without alpha (§2), counted while alive for leak checks. Its pixels are on
//! this process's heap or in a sealed shared-memory region (§12); decoders write them into a
//! [`PixelBuffer`] made where the cache wants them, so a sharing cache's pictures are written
//! once, where its clients read them.

use crate::error::{Error, ErrorKind, Result};
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

/// Where a decoder puts the pixels of the bitmap it makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Destination {
    /// This process's heap.
    Heap,
    /// A new sealed shared-memory region (§12): a sharing cache's pictures are decoded
    /// straight into the memory its clients map, with no private copy besides.
    Shared,
}

/// Zeroed memory for one bitmap's pixels, which a decoder writes and then turns into the
/// [`Bitmap`] with [`PixelBuffer::into_bitmap`].
pub(crate) struct PixelBuffer(Pixels);

impl PixelBuffer {
    /// `len` zero bytes where `destination` says. A shared region that cannot be made (no
    /// memory, no descriptors left) is an `Io` error of `href`'s on `memfd:texcache`.
    pub(crate) fn new(href: &str, destination: Destination, len: usize) -> Result<PixelBuffer> {
        Ok(PixelBuffer(match destination {
            Destination::Heap => Pixels::Heap(vec![0; len]),
            Destination::Shared => Pixels::Shared(
                SharedPixels::new(SHARED_NAME, len).map_err(|e| shared_error(href, e))?,
                NEXT_SHARED_ID.fetch_add(1, Ordering::Relaxed),
            ),
        }))
    }

    /// Pixels a library decoded into a `Vec` of its own: kept as they are for the heap, copied
    /// once into a new region for shared memory.
    pub(crate) fn from_vec(
        href: &str,
        destination: Destination,
        v: Vec<u8>,
    ) -> Result<PixelBuffer> {
        if destination == Destination::Heap {
            return Ok(PixelBuffer(Pixels::Heap(v)));
        }
        let mut buffer = PixelBuffer::new(href, destination, v.len())?;
        buffer.as_mut_slice().copy_from_slice(&v);
        Ok(buffer)
    }

    /// The bytes, to write.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        match &mut self.0 {
            Pixels::Heap(v) => v,
            Pixels::Shared(s, _) => s
                .as_mut_slice()
                .expect("a region made in this process is writable"),
        }
    }

    /// The bitmap these pixels are. Panics if the length does not match the size and format,
    /// as [`Bitmap::new`] does.
    pub(crate) fn into_bitmap(self, width: u32, height: u32, format: PixelFormat) -> Bitmap {
        match self.0 {
            Pixels::Heap(v) => Bitmap::new(width, height, format, v),
            Pixels::Shared(region, id) => {
                assert_eq!(
                    region.len() as u64,
                    width as u64 * height as u64 * bytes_per_pixel(format),
                    "bitmap size"
                );
                Bitmap::from_shared(width, height, format, region, id)
            }
        }
    }
}

/// What shared pixels are called in `/proc/PID/maps` (`/memfd:texcache`).
const SHARED_NAME: &std::ffi::CStr = c"texcache";

fn shared_error(href: &str, e: std::io::Error) -> Error {
    Error::new(
        href,
        ErrorKind::Io {
            path: "memfd:texcache".into(),
            source: std::sync::Arc::new(e),
        },
    )
}

/// Bytes per pixel of a bitmap's format. Panics for formats no bitmap has.
fn bytes_per_pixel(format: PixelFormat) -> u64 {
    match format {
        PixelFormat::Rgba8 => 4,
        PixelFormat::Gray8 => 1,
        PixelFormat::Yuv420 => panic!("bitmaps are rgba8 or gray8"),
    }
}

impl Bitmap {
    /// Wraps pixels. Panics if `pixels.len()` does not match the size and format: that is a
    /// programming error, never a property of input data.
    pub fn new(width: u32, height: u32, format: PixelFormat, pixels: Vec<u8>) -> Bitmap {
        assert_eq!(
            pixels.len() as u64,
            width as u64 * height as u64 * bytes_per_pixel(format),
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
