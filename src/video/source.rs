//! Frame sources: where a video node's frames come from.
//!
//! One trait, [`FrameSource`], decodes frame after frame into a buffer the node provides, so a
//! source never decides where frame memory lives (the node's pool does). Two kinds exist:
//! YUV4MPEG2 files ([`Y4m`], 8-bit 4:2:0, read straight into the buffer with no intermediate
//! copy) and animations ([`Animation`]: GIF, APNG, WebP through the `image` crate's animation
//! decoders, full-canvas RGBA8 frames).

use crate::error::{Error, Result};
use crate::file::read_up_to;
use crate::stats::PixelFormat;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Y'CbCr to RGB conversion parameters of a YUV source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matrix {
    /// ITU-R BT.601 (standard definition; the Y4M default).
    Bt601,
    /// ITU-R BT.709 (HD).
    Bt709,
}

/// What a source tells about itself before any frame is decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `Yuv420` or `Rgba8`.
    pub format: PixelFormat,
    /// Frames per second as a fraction (numerator, denominator).
    pub rate: (u32, u32),
    /// The number of frames, where the file tells it.
    pub frames: Option<u64>,
    /// Full-range (0–255) rather than limited-range (16–235) luma; Y4M's `XCOLORRANGE`.
    pub full_range: bool,
    /// YUV matrix.
    pub matrix: Matrix,
}

impl VideoInfo {
    /// §2 bytes of one frame.
    pub fn frame_bytes(&self) -> u64 {
        frame_bytes(self.format, self.width, self.height)
    }
    /// Seconds per frame.
    pub fn frame_duration(&self) -> f64 {
        self.rate.1 as f64 / self.rate.0.max(1) as f64
    }
}

/// §2 bytes of one frame of `format`.
pub fn frame_bytes(format: PixelFormat, w: u32, h: u32) -> u64 {
    let (w, h) = (w as u64, h as u64);
    match format {
        PixelFormat::Yuv420 => w * h + 2 * w.div_ceil(2) * h.div_ceil(2),
        PixelFormat::Gray8 => w * h,
        PixelFormat::Rgba8 => w * h * 4,
    }
}

/// A decoder of frames, used by one thread at a time.
pub trait FrameSource: Send {
    /// Size, format and rate.
    fn info(&self) -> &VideoInfo;
    /// Decodes the next frame into `buf` (exactly [`VideoInfo::frame_bytes`] long). `Ok(false)`
    /// at the end of the stream.
    fn read_frame(&mut self, buf: &mut [u8]) -> Result<bool>;
    /// Positions the source so that the next frame read is frame `index` (0-based).
    fn seek(&mut self, index: u64) -> Result<()>;
}

/// Opens the source for `path` by its content: `YUV4MPEG2` files, else an animation. Frames of
/// more than `max_pixels` pixels (`loader.max_pixels`) are refused from the header, before any
/// frame memory is allocated. With `confine_to` (a canonical mediadir) the opened file must lie
/// inside it; the check is made on every open, reopens for looping and seeking included.
/// The file is opened as [`crate::file`] opens every file: never blocking on a FIFO, regular
/// files only.
pub fn open(
    href: &str,
    path: &Path,
    confine_to: Option<&Path>,
    max_pixels: u64,
) -> Result<Box<dyn FrameSource>> {
    let mut file = crate::file::open_regular(href, path, confine_to)?.file;
    let mut magic = [0u8; 9];
    let n = read_up_to(&mut file, &mut magic).map_err(|e| Error::io(href, path, e))?;
    file.seek(SeekFrom::Start(0))
        .map_err(|e| Error::io(href, path, e))?;
    if &magic[..n] == b"YUV4MPEG2" {
        Ok(Box::new(Y4m::new(href, path, file, max_pixels)?))
    } else {
        Ok(Box::new(Animation::open(
            href, path, confine_to, max_pixels,
        )?))
    }
}

/// A YUV4MPEG2 file: a header line, then `FRAME` lines each followed by the Y, U and V planes.
pub struct Y4m {
    href: String,
    reader: BufReader<File>,
    info: VideoInfo,
    /// Byte offset of the first `FRAME`.
    data_start: u64,
    next: u64,
    /// Reused for each `FRAME` line, so reading a frame allocates nothing.
    line: Vec<u8>,
}

const MAX_HEADER: usize = 4096;

impl Y4m {
    /// Parses the header of an open file, refusing frames of more than `max_pixels` pixels.
    pub fn new(href: &str, path: &Path, file: File, max_pixels: u64) -> Result<Y4m> {
        let bad = |detail: String| Error::Video {
            href: href.into(),
            detail,
        };
        let len = file.metadata().map_err(|e| Error::io(href, path, e))?.len();
        let mut reader = BufReader::with_capacity(1 << 16, file);
        let header = read_line(&mut reader, MAX_HEADER)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::InvalidData => bad(format!("YUV4MPEG2 {e}")),
                _ => Error::io(href, path, e),
            })?
            .ok_or_else(|| bad("not a YUV4MPEG2 file: no header line".into()))?;
        let header =
            std::str::from_utf8(&header).map_err(|_| bad("YUV4MPEG2 header is not text".into()))?;
        let mut fields = header.split(' ');
        if fields.next() != Some("YUV4MPEG2") {
            return Err(bad("not a YUV4MPEG2 file".into()));
        }
        let (mut w, mut h, mut rate, mut full_range) = (0u32, 0u32, (25u32, 1u32), false);
        let mut matrix = Matrix::Bt601;
        for f in fields.filter(|f| !f.is_empty()) {
            let (tag, val) = f.split_at(1);
            match tag {
                "W" => w = val.parse().map_err(|_| bad(format!("bad width {val:?}")))?,
                "H" => {
                    h = val
                        .parse()
                        .map_err(|_| bad(format!("bad height {val:?}")))?
                }
                "F" => {
                    let (n, d) = val
                        .split_once(':')
                        .and_then(|(n, d)| Some((n.parse().ok()?, d.parse().ok()?)))
                        .filter(|&(n, d): &(u32, u32)| n > 0 && d > 0)
                        .ok_or_else(|| bad(format!("bad frame rate {val:?}")))?;
                    rate = (n, d);
                }
                "C" => {
                    if !matches!(val, "420jpeg" | "420paldv" | "420mpeg2" | "420") {
                        return Err(Error::Unsupported {
                            href: href.into(),
                            detail: format!(
                                "YUV4MPEG2 colour space C{val}: only 8-bit 4:2:0 is supported"
                            ),
                        });
                    }
                }
                "X" => match val {
                    "COLORRANGE=FULL" => full_range = true,
                    "COLORRANGE=LIMITED" => full_range = false,
                    "COLORMATRIX=BT709" | "COLORSPACE=BT709" => matrix = Matrix::Bt709,
                    _ => {}
                },
                "I" | "A" => {}
                _ => return Err(bad(format!("unknown YUV4MPEG2 header field {f:?}"))),
            }
        }
        if w == 0 || h == 0 {
            return Err(bad(format!("missing or zero frame size ({w}x{h})")));
        }
        crate::decode::check_pixels(href, w, h, max_pixels)?;
        let data_start = header.len() as u64 + 1;
        let mut info = VideoInfo {
            width: w,
            height: h,
            format: PixelFormat::Yuv420,
            rate,
            frames: None,
            full_range,
            matrix,
        };
        let per_frame = info.frame_bytes() + 6; // "FRAME\n" + planes
        let body = len - data_start;
        if body % per_frame == 0 {
            info.frames = Some(body / per_frame);
        }
        Ok(Y4m {
            href: href.into(),
            reader,
            info,
            data_start,
            next: 0,
            line: Vec::with_capacity(64),
        })
    }

    fn err(&self, detail: String) -> Error {
        Error::Video {
            href: self.href.clone(),
            detail,
        }
    }

    /// Reads a `FRAME` line; false at a clean end of file.
    fn frame_header(&mut self) -> Result<bool> {
        let mut line = std::mem::take(&mut self.line);
        let got = read_line_into(&mut self.reader, MAX_HEADER, &mut line);
        let found = line.starts_with(b"FRAME");
        self.line = line;
        match got.map_err(|e| self.err(format!("frame {}: {e}", self.next)))? {
            false => Ok(false),
            true if found => Ok(true),
            true => Err(self.err(format!("frame {}: expected a FRAME line", self.next))),
        }
    }
}

impl FrameSource for Y4m {
    fn info(&self) -> &VideoInfo {
        &self.info
    }

    fn read_frame(&mut self, buf: &mut [u8]) -> Result<bool> {
        if !self.frame_header()? {
            return Ok(false);
        }
        let n = read_up_to(&mut self.reader, buf)
            .map_err(|e| self.err(format!("frame {}: {e}", self.next)))?;
        if n < buf.len() {
            return Err(self.err(format!(
                "frame {} is truncated: {n} of {} bytes",
                self.next,
                buf.len()
            )));
        }
        self.next += 1;
        Ok(true)
    }

    fn seek(&mut self, index: u64) -> Result<()> {
        let io = |e: std::io::Error| e.to_string();
        self.reader
            .seek(SeekFrom::Start(self.data_start))
            .map_err(|e| self.err(io(e)))?;
        self.next = 0;
        let skip = self.info.frame_bytes() as i64;
        while self.next < index {
            if !self.frame_header()? {
                return Err(self.err(format!("cannot seek to frame {index}: the stream ends")));
            }
            self.reader
                .seek_relative(skip)
                .map_err(|e| self.err(io(e)))?;
            self.next += 1;
        }
        Ok(())
    }
}

/// Reads one `\n`-terminated line without the `\n`, refusing lines over `max` bytes. `None` at
/// end of file; an unterminated last line is an error.
fn read_line(r: &mut impl BufRead, max: usize) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    Ok(read_line_into(r, max, &mut line)?.then_some(line))
}

/// [`read_line`] into a reused buffer; false at end of file.
fn read_line_into(r: &mut impl BufRead, max: usize, line: &mut Vec<u8>) -> std::io::Result<bool> {
    line.clear();
    let n = r.take(max as u64 + 1).read_until(b'\n', line)?;
    if n == 0 {
        return Ok(false);
    }
    if line.last() != Some(&b'\n') {
        let what = if n > max { "too long" } else { "truncated" };
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("header line {what}"),
        ));
    }
    line.pop();
    Ok(true)
}

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
    next: u64,
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
        let mut frames = Self::frames(href, path, confine_to, max_pixels)?;
        let first = frames
            .0
            .next()
            .ok_or_else(|| Error::Video {
                href: href.into(),
                detail: "the animation has no frames".into(),
            })?
            .map_err(|e| crate::decode::classify(href, e))?;
        let (n, d) = first.delay().numer_denom_ms();
        let (w, h) = first.buffer().dimensions();
        crate::decode::check_pixels(href, w, h, max_pixels)?;
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
            },
            max_pixels,
            frames: None,
            next: 0,
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
    ) -> Result<SendFrames> {
        use image::AnimationDecoder;
        let opened = crate::file::open_regular(href, path, confine_to)?;
        let (file, file_len) = (opened.file, opened.len);
        let mut r = BufReader::new(file);
        let fmt = image::ImageReader::new(&mut r)
            .with_guessed_format()
            .map_err(|e| Error::io(href, path, e))?
            .format();
        r.seek(SeekFrom::Start(0))
            .map_err(|e| Error::io(href, path, e))?;
        let classify = |e| crate::decode::classify(href, e);
        // `image`'s animation decoders come without limits: bound both the canvas (from the
        // header) and every allocation they make while decoding frames.
        let check = |d: &mut dyn image::ImageDecoder| {
            let (w, h) = d.dimensions();
            crate::decode::check_pixels(href, w, h, max_pixels)?;
            d.set_limits(crate::decode::limits(max_pixels))
                .map_err(classify)
        };
        let unsupported = |what: &str| Error::Unsupported {
            href: href.into(),
            detail: format!("{what} is not a video source (YUV4MPEG2, GIF, APNG, WebP)"),
        };
        Ok(SendFrames(match fmt {
            Some(image::ImageFormat::Gif) => {
                let mut d = image::codecs::gif::GifDecoder::new(r).map_err(classify)?;
                let (w, h) = image::ImageDecoder::dimensions(&d);
                crate::decode::check_gif_canvas(href, w, h, file_len)?;
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
                let mut d = image::codecs::webp::WebPDecoder::new(r).map_err(classify)?;
                if !d.has_animation() {
                    return Err(unsupported("a still WebP"));
                }
                check(&mut d)?;
                send(d).into_frames()
            }
            _ => return Err(unsupported("this file")),
        }))
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
        )?;
        self.frames = Some(frames);
        self.next = 0;
        Ok(())
    }
}

impl FrameSource for Animation {
    fn info(&self) -> &VideoInfo {
        &self.info
    }

    fn read_frame(&mut self, buf: &mut [u8]) -> Result<bool> {
        if self.frames.is_none() {
            self.restart()?;
        }
        let Some(frame) = self.frames.as_mut().and_then(|f| f.0.next()) else {
            return Ok(false);
        };
        let frame = frame.map_err(|e| crate::decode::classify(&self.href, e))?;
        let pixels = frame.buffer().as_raw();
        if pixels.len() != buf.len() {
            return Err(Error::Video {
                href: self.href.clone(),
                detail: format!("frame {} changes the canvas size", self.next),
            });
        }
        buf.copy_from_slice(pixels);
        self.next += 1;
        Ok(true)
    }

    fn seek(&mut self, index: u64) -> Result<()> {
        self.restart()?;
        let frames = self.frames.as_mut().expect("just set");
        while self.next < index {
            match frames.0.next() {
                Some(Ok(_)) => self.next += 1,
                Some(Err(e)) => return Err(crate::decode::classify(&self.href, e)),
                None => {
                    return Err(Error::Video {
                        href: self.href.clone(),
                        detail: format!("cannot seek to frame {index}: the animation ends"),
                    })
                }
            }
        }
        Ok(())
    }
}
