//! Pictures: from the bytes of a file to the [`Bitmap`] the CPU tier holds.
//!
//! - `bitmap.rs`: the [`Bitmap`] type (pixels, size, format), and the buffer a decoder writes
//!   one into: on the heap, or in shared memory for a cache that shares its tier (§12).
//! - `load.rs`: reading the file behind an href ([`load_file`]).
//! - `decode.rs`: bytes to bitmaps ([`decode()`]), fitted decoding ([`fitted_size`]), EXIF
//!   orientation, PNG straight into RGBA.
//! - `limits.rs`: what a decoder may be given (pixel limits, canvases larger than their file),
//!   checked before it runs; a leaf that video sources import too.
//! - `jpeg.rs`, `turbojpeg.rs`: JPEG's segments and CMYK; libjpeg-turbo (feature
//!   `turbojpeg`).
//! - `avif.rs`: AVIF's container, its AV1 picture decoded through the FFmpeg layer.

mod avif;
pub(crate) mod bitmap;
pub(crate) mod decode;
#[cfg(any(feature = "rust-jpeg", feature = "turbojpeg"))]
mod jpeg;
pub(crate) mod limits;
pub(crate) mod load;
#[cfg(feature = "turbojpeg")]
mod turbojpeg;

pub use bitmap::{live_bitmaps, Bitmap};
pub use decode::{decode, fitted_size, DecodeOptions};
pub use load::{load_file, max_file_bytes};
