//! Frame sources: what a video node's frames come from.
//!
//! One trait, [`FrameSource`], decodes frame after frame into a buffer the node provides, so a
//! source never decides where frame memory lives (the node's pool does), and the types every
//! source describes itself with. The sources themselves: YUV4MPEG2 files (`y4m.rs`),
//! animations (`animation.rs`), every other video file through FFmpeg (`ffmpeg.rs`, feature
//! `ffmpeg`); `open.rs` picks one by a file's content.

use crate::error::Result;
use crate::observe::stats::PixelFormat;
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
