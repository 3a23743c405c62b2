//! # texcache
//!
//! A two-level image and texture cache for media applications.
//!
//! Media applications load the same pictures again and again. texcache makes that memory
//! bounded, shared and visible:
//!
//! - the **CPU tier** holds decoded bitmaps, the **GPU tier** wgpu textures; each is bounded by
//!   a byte budget and evicts unused images least-recently-released first;
//! - [`Handle`]s are reference counted: everyone asking for one href shares one bitmap and one
//!   texture; images in use are never evicted; released ones stay cached until space is needed;
//! - [`video`] nodes decode frames ahead into a bounded queue of recycled buffers, with one
//!   texture per node, and free all of it on stop;
//! - budgets and limits come from a TOML file ([`Config`]); [`Stats`] shows what is held, in
//!   process or through the [`control`] socket (`texcache stats`).
//!
//! ```
//! # fn main() -> texcache::Result<()> {
//! # let dir = std::env::temp_dir().join("texcache-doc-lib");
//! # std::fs::create_dir_all(&dir).unwrap();
//! # image::RgbaImage::new(8, 8).save(dir.join("cat.png")).unwrap();
//! let mut config = texcache::Config::default();
//! config.mediadir = dir;                     // relative hrefs resolve here
//! config.cpu.budget = "64 MiB".parse().unwrap();
//! let cache = texcache::Cache::new(config)?;
//!
//! let cat = cache.bitmap("cat.png")?;        // decoded once, shared by every caller
//! assert_eq!((cat.width(), cat.height()), (8, 8));
//! println!("{}", cache.stats());             // the memory table
//! # Ok(()) }
//! ```
//!
//! The rules the tiers keep and the formats texcache reads and writes are in the repository's
//! `docs/formats.md`, whose numbered sections the docs here cite as `§N`.
//!
//! Where things live: [`config`] (the TOML file), [`key`] (hrefs to keys), [`tier`] (the one
//! byte-budgeted tier, thread-safe, with single-flight loading), [`bitmap`] (CPU loading),
//! [`decode`] (image bytes to bitmaps),
//! [`gpu`] (the device, texture upload, mipmaps), [`video`] (sources, nodes, the node
//! texture), [`cache`] (the facade), [`stats`] (the §6 snapshot), [`history`] (memory over
//! time), [`pressure`] (budgets sized to the machine, memory given back under pressure),
//! [`control`] (the control socket), [`request`] (non-blocking loads),
//! [`trace`] (trace files, replay and recording).
//!
//! Cargo features: `gpu` (on by default) is the GPU tier, texture upload and video textures,
//! and the only part that needs wgpu. Without it texcache builds no wgpu at all, and the GPU
//! tier stays empty: its stats show its budget and zeros, and a trace's `texture` lines fail.

#![warn(missing_docs)]

mod avif;
pub mod bitmap;
pub mod cache;
pub mod config;
pub mod control;
pub mod decode;
pub mod error;
mod file;
mod fork;
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod history;
mod jpeg;
pub mod key;
mod prefetch;
pub mod pressure;
pub mod probe;
pub mod request;
#[doc(hidden)]
pub mod samples;
pub mod stats;
mod sync;
pub mod tier;
pub mod trace;
#[cfg(feature = "turbojpeg")]
mod turbojpeg;
pub mod units;
pub mod video;

pub use bitmap::Bitmap;
#[cfg(feature = "gpu")]
pub use cache::TextureHandle;
pub use cache::{BitmapHandle, Cache};
pub use config::Config;
pub use error::{Error, Result};
#[cfg(feature = "gpu")]
pub use gpu::{Gpu, Texture};
pub use key::Key;
pub use request::Request;
pub use stats::{PixelFormat, Stats, TierStats};
pub use tier::{Handle, TierKind};
pub use units::ByteSize;
/// The wgpu texcache's textures are made with (the same version an application must use to
/// draw them).
#[cfg(feature = "gpu")]
pub use wgpu;
