//! Opening a video file: the source that reads it, chosen by its content.

use super::animation::Animation;
#[cfg(feature = "ffmpeg")]
use super::ffmpeg::Ffmpeg;
use super::source::{is_animation, FrameSource, SourceOptions};
use super::y4m::Y4m;
use crate::error::{Error, Result};
use crate::os::file::read_up_to;
use std::io::{Seek, SeekFrom};
use std::path::Path;

/// Opens the source for `path` by its content: `YUV4MPEG2` files, GIF, PNG and WebP
/// animations, and (with the `ffmpeg` feature) anything else FFmpeg decodes. Frames of more
/// than `max_pixels` pixels (`loader.max_pixels`) are refused from the header, before any frame
/// memory is allocated. With `confine_to` (a canonical mediadir) the opened file must lie
/// inside it; the check is made on every open, reopens for looping and seeking included.
/// The file is opened as `crate::os::file` opens every file: never blocking on a FIFO, regular
/// files only.
pub fn open(
    href: &str,
    path: &Path,
    confine_to: Option<&Path>,
    options: SourceOptions,
) -> Result<Box<dyn FrameSource>> {
    let max_pixels = options.max_pixels;
    let opened = crate::os::file::open_regular(href, path, confine_to)?;
    let (mut file, len) = (opened.file, opened.len);
    let mut magic = [0u8; 16];
    let n = read_up_to(&mut file, &mut magic).map_err(|e| Error::io(href, path, e))?;
    file.seek(SeekFrom::Start(0))
        .map_err(|e| Error::io(href, path, e))?;
    let magic = &magic[..n];
    if magic.starts_with(b"YUV4MPEG2") {
        return Ok(Box::new(Y4m::new(href, path, file, max_pixels)?));
    }
    if is_animation(magic) {
        drop(file);
        return Ok(Box::new(Animation::open(
            href, path, confine_to, max_pixels,
        )?));
    }
    #[cfg(feature = "ffmpeg")]
    {
        Ok(Box::new(Ffmpeg::open(
            href,
            path,
            file,
            len,
            max_pixels,
            options.decoder_threads,
        )?))
    }
    #[cfg(not(feature = "ffmpeg"))]
    {
        let _ = len;
        Err(Error::new(
            href,
            crate::error::ErrorKind::Unsupported {
                detail: "not a video source this build reads (YUV4MPEG2, GIF, APNG, WebP); \
                     MP4, WebM, MKV and the rest need texcache's `ffmpeg` feature"
                    .into(),
            },
        ))
    }
}
