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
//!   process or through the [`observe::control`] socket (`texcache stats`).
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
//! `docs/reference.md`, whose numbered sections the docs here cite as `§N`.
//!
//! Where things live: [`config`] (the TOML file), [`key`] (hrefs to keys), [`tier`] (the one
//! byte-budgeted tier, generic over what it holds, with single-flight loading), [`picture`]
//! (files to bitmaps), [`gpu`] (the device, texture upload, mipmaps), [`video`] (sources,
//! nodes, the node texture), [`observe`] (stats, history, the control socket, memory
//! pressure), [`shared`] (the CPU tier shared between processes), [`trace`] (trace files,
//! replay and recording), [`probe`] (what a file is); the facade, [`Cache`], ties them
//! together.
//!
//! Cargo features: `gpu` (on by default) is the GPU tier, texture upload and video textures,
//! and the only part that needs wgpu; without it the GPU tier stays empty (its stats show its
//! budget and zeros). `ffmpeg`: video files and AVIF through the system's FFmpeg. `turbojpeg`:
//! JPEG through the system's libjpeg-turbo instead of the pure-Rust decoders (`rust-jpeg`, on
//! by default). `samples`: sample media writers for demos and tests.

#![warn(missing_docs)]

mod cache;
pub mod config;
mod error;
#[cfg(feature = "ffmpeg")]
mod ffmpeg;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod key;
pub mod observe;
mod os;
pub mod picture;
pub mod probe;
pub mod shared;
mod sync;
#[cfg(feature = "samples")]
pub mod testing;
pub mod tier;
pub mod trace;
mod units;
pub mod video;

#[cfg(feature = "gpu")]
pub use cache::TextureHandle;
pub use cache::{BitmapHandle, Cache, Request};
pub use config::Config;
pub use error::{Error, ErrorKind, Result};
#[cfg(feature = "gpu")]
pub use gpu::{Gpu, Texture};
pub use key::Key;
pub use observe::history::Sample;
pub use observe::stats::{PixelFormat, Stats, TierStats};
pub use picture::Bitmap;
pub use tier::{Handle, TierKind};
pub use units::{Budget, ByteSize};
/// The wgpu texcache's textures are made with (the same version an application must use to
/// draw them).
#[cfg(feature = "gpu")]
pub use wgpu;
