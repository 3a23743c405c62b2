//! Animations: GIF, APNG and WebP through the `image` crate's animation decoders, as
//! full-canvas RGBA8 frames.

use super::source::{FrameSource, FrameTime, Matrix, VideoInfo};
use crate::error::{Error, ErrorKind, Result};
use crate::observe::stats::PixelFormat;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// An animated GIF, APNG or WebP, decoded by `image` into full-canvas RGBA8 frames.
///
/// `image`'s animation decoders return each frame in a buffer of their own; it is copied into
/// the node's buffer (one copy per frame; the decoder's own allocations are `image`'s).
pub struct Animation {
    href: String,
    path: PathBuf,
    confine: Option<PathBuf>,
    info: VideoInfo,
    max_pixels: u64,
    frames: Option<SendFrames>,
    /// A frame decoded by a seek, for the next read.
    pending: Option<image::Frame>,
    next: u64,
    /// The time of frame `next`: the sum of the delays before it.
    clock: f64,
}

/// `image::Frames` erases its decoder's type, and with it `Send`.
struct SendFrames(image::Frames<'static>);

// SAFETY: a `SendFrames` is only made by `Animation::frames` from a GIF, PNG or WebP decoder
// over a `BufReader<File>`; `send` below proves at compile time that each of those decoders is
// `Send`, and `into_frames` only moves the decoder into the iterator.
unsafe impl Send for SendFrames {}

fn send<T: Send>(t: T) -> T {
    t
}

impl Animation {
    /// Opens an animation and reads its first frame's size and delay, refusing canvases of more
    /// than `max_pixels` pixels from the header.
    pub fn open(
        href: &str,
        path: &Path,
        confine_to: Option<&Path>,
        max_pixels: u64,
    ) -> Result<Animation> {
        let (mut frames, codec) = Self::frames(href, path, confine_to, max_pixels)?;
        let first = frames
            .0
            .next()
            .ok_or_else(|| {
                Error::new(
                    href,
                    ErrorKind::Video {
                        detail: "the animation has no frames".into(),
                    },
                )
            })?
            .map_err(|e| crate::picture::limits::classify(href, e))?;
        let (n, d) = first.delay().numer_denom_ms();
        let (w, h) = first.buffer().dimensions();
        crate::picture::limits::check_pixels(href, w, h, max_pixels)?;
        let rate = if n == 0 { (10, 1) } else { (1000 * d, n) };
        Ok(Animation {
            href: href.into(),
            path: path.into(),
            confine: confine_to.map(Path::to_path_buf),
            info: VideoInfo {
                width: w,
                height: h,
                format: PixelFormat::Rgba8,
                rate,
                frames: None,
                full_range: true,
                matrix: Matrix::Bt601,
                codec: codec.into(),
                container: codec.into(),
                decoded_format: "rgba".into(),
                ..VideoInfo::default()
            },
            max_pixels,
            frames: None,
            pending: None,
            next: 0,
            clock: 0.0,
        })
    }

    /// A frame iterator from the start of the file. The canvas size is checked against
    /// `max_pixels` from the header first, and the decoder gets allocation limits: `image`'s
    /// animation decoders come with none, so a GIF whose logical screen or frame claims
    /// 65535x65535 asked for 16 GiB (the fuzzer found both; `tests/fuzz/video/`).
    fn frames(
        href: &str,
        path: &Path,
        confine_to: Option<&Path>,
        max_pixels: u64,
    ) -> Result<(SendFrames, &'static str)> {
        use image::AnimationDecoder;
        let opened = crate::os::file::open_regular(href, path, confine_to)?;
        let (file, file_len) = (opened.file, opened.len);
        let mut r = BufReader::new(file);
        let fmt = image::ImageReader::new(&mut r)
            .with_guessed_format()
            .map_err(|e| Error::io(href, path, e))?
            .format();
        r.seek(SeekFrom::Start(0))
            .map_err(|e| Error::io(href, path, e))?;
        let classify = |e| crate::picture::limits::classify(href, e);
        // `image`'s animation decoders come without limits: bound both the canvas (from the
        // header) and every allocation they make while decoding frames.
        let check = |d: &mut dyn image::ImageDecoder| {
            let (w, h) = d.dimensions();
            crate::picture::limits::check_pixels(href, w, h, max_pixels)?;
            d.set_limits(crate::picture::limits::limits(max_pixels))
                .map_err(classify)
        };
        let unsupported = |what: &str| {
            Error::new(
                href,
                ErrorKind::Unsupported {
                    detail: format!("{what} is not a video source (YUV4MPEG2, GIF, APNG, WebP)"),
                },
            )
        };
        let codec = match fmt {
            Some(image::ImageFormat::Gif) => "gif",
            Some(image::ImageFormat::Png) => "apng",
            _ => "webp",
        };
        let frames = SendFrames(match fmt {
            Some(image::ImageFormat::Gif) => {
                let mut d = image::codecs::gif::GifDecoder::new(r).map_err(classify)?;
                let (w, h) = image::ImageDecoder::dimensions(&d);
                crate::picture::limits::check_canvas(href, "GIF", w, h, file_len)?;
                check(&mut d)?;
                send(d).into_frames()
            }
            Some(image::ImageFormat::Png) => {
                let mut d = image::codecs::png::PngDecoder::new(r).map_err(classify)?;
                if !d.is_apng().map_err(classify)? {
                    return Err(unsupported("a still PNG"));
                }
                check(&mut d)?;
                send(d.apng().map_err(classify)?).into_frames()
            }
            Some(image::ImageFormat::WebP) => {
                crate::picture::limits::check_riff_chunks(href, &mut r, file_len)?;
                let mut d = image::codecs::webp::WebPDecoder::new(r).map_err(classify)?;
                if !d.has_animation() {
                    return Err(unsupported("a still WebP"));
                }
                check(&mut d)?;
                send(d).into_frames()
            }
            _ => return Err(unsupported("this file")),
        });
        Ok((frames, codec))
    }
}

impl Animation {
    /// Opens the file again (checked as on the first open) and starts from its first frame.
    fn restart(&mut self) -> Result<()> {
        let frames = Self::frames(
            &self.href,
            &self.path,
            self.confine.as_deref(),
            self.max_pixels,
        )?
        .0;
        self.frames = Some(frames);
        self.pending = None;
        self.next = 0;
        self.clock = 0.0;
        Ok(())
    }

    /// The next composited frame (the one a seek stopped at first), opening the file if needed.
    fn next_frame(&mut self) -> Result<Option<image::Frame>> {
        if let Some(f) = self.pending.take() {
            return Ok(Some(f));
        }
        if self.frames.is_none() {
            self.restart()?;
        }
        match self.frames.as_mut().and_then(|f| f.0.next()) {
            None => Ok(None),
            Some(f) => f
                .map(Some)
                .map_err(|e| crate::picture::limits::classify(&self.href, e)),
        }
    }
}

impl FrameSource for Animation {
    fn info(&self) -> &VideoInfo {
        &self.info
    }

    fn read_frame(&mut self, buf: &mut [u8]) -> Result<Option<FrameTime>> {
        let Some(frame) = self.next_frame()? else {
            return Ok(None);
        };
        let pixels = frame.buffer().as_raw();
        if pixels.len() != buf.len() {
            return Err(Error::new(
                self.href.clone(),
                ErrorKind::Video {
                    detail: format!("frame {} changes the canvas size", self.next),
                },
            ));
        }
        buf.copy_from_slice(pixels);
        let at = FrameTime {
            index: self.next,
            time: self.clock,
        };
        self.next += 1;
        self.clock += delay_seconds(&frame);
        Ok(Some(at))
    }

    fn seek(&mut self, seconds: f64) -> Result<()> {
        self.restart()?;
        while let Some(frame) = self.next_frame()? {
            if self.clock >= seconds - 1e-9 {
                self.pending = Some(frame);
                return Ok(());
            }
            self.next += 1;
            self.clock += delay_seconds(&frame);
        }
        Ok(())
    }
}

/// A frame's delay; 0 (which browsers show as 100 ms) counts 100 ms, as the rate does.
fn delay_seconds(frame: &image::Frame) -> f64 {
    let (n, d) = frame.delay().numer_denom_ms();
    if n == 0 {
        0.1
    } else {
        n as f64 / d.max(1) as f64 / 1000.0
    }
}
