//! What texcache makes of a file, without caching it (`texcache probe`, §8): a picture's
//! format, size and bytes, or a video's container, codec, size, rate, duration, rotation and
//! frame bytes; or the typed error a cache would give for it.
//!
//! ```
//! let dir = std::env::temp_dir().join("texcache-doc-probe");
//! std::fs::create_dir_all(&dir).unwrap();
//! texcache::testing::samples::write_y4m(&dir.join("clip.y4m"), 64, 48, 10).unwrap();
//! match texcache::probe::probe("clip.y4m", &dir.join("clip.y4m"), 1 << 24).unwrap() {
//!     texcache::probe::Probe::Video(v) => {
//!         assert_eq!((v.info.width, v.info.height, v.info.frames), (64, 48, Some(10)));
//!         assert_eq!(v.frame_bytes, 64 * 48 * 3 / 2);
//!     }
//!     other => panic!("{other:?}"),
//! }
//! ```

use crate::error::{Error, Result};
use crate::observe::stats::PixelFormat;
use crate::video::{SourceOptions, VideoInfo};
use serde::Serialize;
use std::path::Path;

/// What a file is.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Probe {
    /// A picture, decoded as the CPU tier would.
    Picture(PictureProbe),
    /// A video, its header read as a video node would.
    Video(VideoProbe),
}

/// A video as a node would play it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VideoProbe {
    /// What its header says.
    #[serde(flatten)]
    pub info: VideoInfo,
    /// §2 bytes of one frame.
    pub frame_bytes: u64,
}

/// A picture as the CPU tier would hold it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PictureProbe {
    /// The encoded format (`png`, `jpeg`, `gif`, `webp`).
    pub format: String,
    /// Width in pixels as stored.
    pub width: u32,
    /// Height in pixels as stored.
    pub height: u32,
    /// Width as shown (EXIF orientation applied, §2a): the bitmap's.
    pub upright_width: u32,
    /// Height as shown.
    pub upright_height: u32,
    /// The EXIF orientation (1 to 8; 1: none).
    pub orientation: u32,
    /// The decoded bitmap's pixel format.
    pub pixel_format: PixelFormat,
    /// §2 bytes of the decoded bitmap.
    pub bytes: u64,
}

/// Probes the file at `path` (named `href` in errors), refusing more than `max_pixels`
/// pixels from the header. Pictures are decoded (as the cache would, to know its exact bytes);
/// videos have only their header read.
pub fn probe(href: &str, path: &Path, max_pixels: u64) -> Result<Probe> {
    let mut opened = crate::os::file::open_regular(href, path, None)?;
    let mut head = [0u8; 32];
    let n = crate::os::file::read_up_to(&mut opened.file, &mut head)
        .map_err(|e| Error::io(href, path, e))?;
    drop(opened);
    let head = &head[..n];
    let video = || {
        let options = SourceOptions {
            max_pixels,
            decoder_threads: 1,
        };
        crate::video::open(href, path, None, options).map(|s| {
            Probe::Video(VideoProbe {
                info: s.info().clone(),
                frame_bytes: s.info().frame_bytes(),
            })
        })
    };
    if !crate::picture::decode::is_picture(href, head) {
        return video();
    }
    // A picture format that animates (GIF, APNG, WebP) is a video when it has frames to play;
    // still ones, and every other picture, are pictures.
    if crate::video::is_animation(head) {
        if let Ok(v) = video() {
            return Ok(v);
        }
    }
    let bytes = crate::picture::load::read_file(href, path, None, max_pixels)?;
    let options = crate::picture::decode::DecodeOptions::new(max_pixels);
    let decoded = crate::picture::decode::decode_telling(
        href,
        &bytes,
        &options,
        crate::picture::bitmap::Destination::Heap,
    )?;
    drop(bytes);
    let bitmap = decoded.bitmap;
    let format = crate::picture::decode::sniff(href, head)
        .and_then(|f| f.extensions_str().first().copied())
        .unwrap_or("unknown");
    let format = if format == "jpg" { "jpeg" } else { format };
    Ok(Probe::Picture(PictureProbe {
        format: format.into(),
        width: decoded.stored.0,
        height: decoded.stored.1,
        upright_width: bitmap.width(),
        upright_height: bitmap.height(),
        orientation: decoded.orientation as u32,
        pixel_format: bitmap.format(),
        bytes: crate::tier::Resource::bytes(&bitmap),
    }))
}
