//! Frame sources: where a video node's frames come from.
//!
//! One trait, [`FrameSource`], decodes frame after frame into a buffer the node provides, so a
//! source never decides where frame memory lives (the node's pool does). Three kinds exist:
//! YUV4MPEG2 files ([`Y4m`], 8-bit 4:2:0, read straight into the buffer with no intermediate
//! copy), animations ([`Animation`]: GIF, APNG, WebP through the `image` crate's animation
//! decoders, full-canvas RGBA8 frames), and with the `ffmpeg` feature every other video file
//! FFmpeg decodes (`Ffmpeg`, in `ffmpeg.rs`).

use crate::error::{Error, Result};
use crate::file::read_up_to;
use crate::stats::PixelFormat;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Y'CbCr to RGB conversion parameters of a YUV source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Matrix {
    /// ITU-R BT.601 (standard definition; the Y4M default).
    #[default]
    Bt601,
    /// ITU-R BT.709 (HD).
    Bt709,
}

/// What a source tells about itself before any frame is decoded.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
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
    /// Seconds, where the file tells it.
    pub duration: Option<f64>,
    /// The codec (`rawvideo` for Y4M, `gif`, `apng`, `webp`, or FFmpeg's decoder name:
    /// `h264`, `hevc`, `libdav1d`, ...).
    pub codec: String,
    /// The container (`yuv4mpegpipe`, `gif`, `apng`, `webp`, or FFmpeg's demuxer name).
    pub container: String,
    /// Degrees clockwise (0, 90, 180, 270) the frames are to be turned for display (a display
    /// matrix, as phones write). Frames stay as coded; [`crate::video::VideoTexture::to_rgba`]
    /// applies it.
    pub rotation: u32,
    /// The pixel format the codec decodes to, before texcache's conversion (`yuv420p`,
    /// `yuv420p10le`, `yuv444p`, `rgba`, ...).
    pub decoded_format: String,
}

impl Default for VideoInfo {
    fn default() -> VideoInfo {
        VideoInfo {
            width: 0,
            height: 0,
            format: PixelFormat::Yuv420,
            rate: (30, 1),
            frames: None,
            full_range: false,
            matrix: Matrix::Bt601,
            duration: None,
            codec: String::new(),
            container: String::new(),
            rotation: 0,
            decoded_format: String::new(),
        }
    }
}

/// Where a decoded frame lies in its stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameTime {
    /// 0-based number in presentation order. After a seek in a file, the first frame's number
    /// comes from its time and the frame rate (exact for constant-rate streams).
    pub index: u64,
    /// Presentation time in seconds from the stream's start (§4).
    pub time: f64,
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
    /// Width and height as displayed: swapped for a rotation of 90 or 270 degrees.
    pub fn display_size(&self) -> (u32, u32) {
        match self.rotation {
            90 | 270 => (self.height, self.width),
            _ => (self.width, self.height),
        }
    }
}

/// The first frame at or after `t` seconds of a constant-rate stream.
pub(crate) fn index_at(info: &VideoInfo, t: f64) -> u64 {
    (t.max(0.0) / info.frame_duration() - 1e-9).ceil().max(0.0) as u64
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
    /// Decodes the next frame into `buf` (exactly [`VideoInfo::frame_bytes`] long); its number
    /// and time. `Ok(None)` at the end of the stream.
    fn read_frame(&mut self, buf: &mut [u8]) -> Result<Option<FrameTime>>;
    /// Positions the source so that the next frame read is the first whose time is at least
    /// `seconds` (§4); past the last frame, the next read is the end of the stream.
    fn seek(&mut self, seconds: f64) -> Result<()>;
    /// Bytes of frame memory the decoder keeps itself (reference frames), beyond the node's
    /// buffers: 0 for sources that decode straight into them.
    fn decoder_bytes(&self) -> u64 {
        0
    }
    /// Packets skipped as damaged so far (and frames the decoder reported as damaged).
    fn corrupt_packets(&self) -> u64 {
        0
    }
}

/// How sources are opened: `loader.max_pixels` and `video.decoder_threads`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceOptions {
    /// Frames of more pixels are refused from the header.
    pub max_pixels: u64,
    /// Decoder threads for FFmpeg's decoders; 0 for FFmpeg's choice.
    pub decoder_threads: usize,
}

/// Whether a file's first bytes are those of a format that may hold an animation (GIF, PNG,
/// WebP).
pub(crate) fn is_animation(magic: &[u8]) -> bool {
    magic.starts_with(b"GIF8")
        || magic.starts_with(b"\x89PNG\r\n\x1a\n")
        || (magic.starts_with(b"RIFF") && magic.get(8..12) == Some(b"WEBP"))
}

/// Opens the source for `path` by its content: `YUV4MPEG2` files, GIF, PNG and WebP
/// animations, and (with the `ffmpeg` feature) anything else FFmpeg decodes. Frames of more
/// than `max_pixels` pixels (`loader.max_pixels`) are refused from the header, before any frame
/// memory is allocated. With `confine_to` (a canonical mediadir) the opened file must lie
/// inside it; the check is made on every open, reopens for looping and seeking included.
/// The file is opened as `crate::file` opens every file: never blocking on a FIFO, regular
/// files only.
pub fn open(
    href: &str,
    path: &Path,
    confine_to: Option<&Path>,
    options: SourceOptions,
) -> Result<Box<dyn FrameSource>> {
    let max_pixels = options.max_pixels;
    let opened = crate::file::open_regular(href, path, confine_to)?;
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
        Ok(Box::new(super::ffmpeg::Ffmpeg::open(
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
        Err(Error::Unsupported {
            href: href.into(),
            detail: "not a video source this build reads (YUV4MPEG2, GIF, APNG, WebP); \
                     MP4, WebM, MKV and the rest need texcache's `ffmpeg` feature"
                .into(),
        })
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
            codec: "rawvideo".into(),
            container: "yuv4mpegpipe".into(),
            decoded_format: "yuv420p".into(),
            ..VideoInfo::default()
        };
        let per_frame = info.frame_bytes() + 6; // "FRAME\n" + planes
        let body = len - data_start;
        if body % per_frame == 0 {
            info.frames = Some(body / per_frame);
            info.duration = Some((body / per_frame) as f64 * info.frame_duration());
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

    fn read_frame(&mut self, buf: &mut [u8]) -> Result<Option<FrameTime>> {
        if !self.frame_header()? {
            return Ok(None);
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
        let index = self.next;
        self.next += 1;
        Ok(Some(FrameTime {
            index,
            time: index as f64 * self.info.frame_duration(),
        }))
    }

    fn seek(&mut self, seconds: f64) -> Result<()> {
        let index = index_at(&self.info, seconds);
        let io = |e: std::io::Error| e.to_string();
        self.reader
            .seek(SeekFrom::Start(self.data_start))
            .map_err(|e| self.err(io(e)))?;
        self.next = 0;
        let skip = self.info.frame_bytes() as i64;
        while self.next < index {
            if !self.frame_header()? {
                // Past the last frame: the next read is the end.
                return Ok(());
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
        let codec = match fmt {
            Some(image::ImageFormat::Gif) => "gif",
            Some(image::ImageFormat::Png) => "apng",
            _ => "webp",
        };
        let frames = SendFrames(match fmt {
            Some(image::ImageFormat::Gif) => {
                let mut d = image::codecs::gif::GifDecoder::new(r).map_err(classify)?;
                let (w, h) = image::ImageDecoder::dimensions(&d);
                crate::decode::check_canvas(href, "GIF", w, h, file_len)?;
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
                crate::decode::check_riff_chunks(href, &mut r, file_len)?;
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
                .map_err(|e| crate::decode::classify(&self.href, e)),
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
            return Err(Error::Video {
                href: self.href.clone(),
                detail: format!("frame {} changes the canvas size", self.next),
            });
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
