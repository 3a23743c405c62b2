//! Video through FFmpeg (feature `ffmpeg`): every container libavformat opens and every codec
//! libavcodec decodes, behind [`FrameSource`].
//!
//! Why this module is shaped as it is:
//!
//! - **Input is texcache's file.** The file is opened as [`crate::os::file`] opens every file
//!   (regular files only, never blocking on a FIFO, confined to mediadir when asked) and
//!   libavformat reads it through callbacks ([`Io`]); it is never handed a path, and any other
//!   file or URL a demuxer asks for (playlists, `concat` lists, references in MOV files) is
//!   refused, so a video file cannot make texcache open something else.
//! - **One copy a frame.** The decoder's frame is written into the node's buffer once: plane by
//!   plane when it is already 8-bit 4:2:0 (or RGBA), by swscale straight into the buffer when it
//!   is not (10-bit, 4:2:2, 4:4:4, NV12, ... to 4:2:0; formats with alpha to RGBA). Steady
//!   playback allocates nothing on the Rust side; libavcodec recycles its own frames.
//! - **The decoder's memory is seen.** libavcodec asks for its frames through `get_buffer2`;
//!   [`DecoderMemory`] watches that callback and counts every distinct buffer the decoder's
//!   pool has handed out (the reference frames and frames in flight of every decoding thread).
//!   That is exact for the decoders that allocate through it (H.264, HEVC, VP8, VP9, MPEG-4,
//!   ProRes, ...). Decoders wrapping an external library with a pool of its own (libdav1d for
//!   AV1) do not ask, and count 0.
//! - **Damage is counted, not fatal.** A packet the decoder refuses, or a frame it reports as
//!   damaged, is counted in [`FrameSource::corrupt_packets`] and playback goes on, as players
//!   do. A file that ends before the frames its header promised is an error naming the frame.
//!
//! # Safety
//!
//! All FFmpeg objects of a source ([`Ffmpeg`]'s raw pointers and its [`Codec`]) are created in
//! [`Ffmpeg::open`], owned by the source alone, used only through `&mut self` (so by one thread at a time) and
//! freed once, in `Drop`, in dependency order (decoder, scaler, frame and packet, then the
//! demuxer, then its I/O context and the [`Io`] it reads from). The callbacks FFmpeg calls
//! (`read`, `seek`, `io_open`, `get_buffer`) receive pointers that live as long as the objects
//! calling them: the `Io` box and the `DecoderMemory` are freed after the demuxer and decoder.
//! No callback unwinds into C: each catches panics and returns an error code.

use super::source::{FrameSource, FrameTime, Matrix, VideoInfo};
use crate::error::{Error, ErrorKind, Result};
use crate::ffmpeg::{ff_error, quiet_logs, Codec};
use crate::observe::stats::PixelFormat;
use ffmpeg_sys_next as ff;
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Bytes libavformat reads from the file at a time.
const IO_BUFFER: usize = 1 << 16;

/// The file libavformat reads, through [`read`] and [`seek`].
struct Io {
    file: File,
    len: u64,
}

unsafe extern "C" fn read(opaque: *mut c_void, buf: *mut u8, size: c_int) -> c_int {
    // SAFETY: `opaque` is the `Io` box of the source whose I/O context calls this; it outlives
    // that context (see the module's rules). `buf` holds `size` bytes (FFmpeg's contract).
    let io = unsafe { &mut *(opaque as *mut Io) };
    // SAFETY: as above: `buf` holds `size` bytes, writable, for the length of this call.
    let out = unsafe { std::slice::from_raw_parts_mut(buf, size.max(0) as usize) };
    let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| loop {
        match io.file.read(out) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }));
    match got {
        Ok(Ok(0)) => ff::AVERROR_EOF,
        Ok(Ok(n)) => n as c_int,
        Ok(Err(e)) => -e.raw_os_error().unwrap_or(libc::EIO),
        Err(_) => -libc::EIO,
    }
}

unsafe extern "C" fn seek(opaque: *mut c_void, offset: i64, whence: c_int) -> i64 {
    // SAFETY: as in `read`.
    let io = unsafe { &mut *(opaque as *mut Io) };
    let whence = whence & !(ff::AVSEEK_FORCE as c_int);
    if whence == ff::AVSEEK_SIZE as c_int {
        return io.len as i64;
    }
    let to = match whence {
        libc::SEEK_SET if offset >= 0 => SeekFrom::Start(offset as u64),
        libc::SEEK_CUR => SeekFrom::Current(offset),
        libc::SEEK_END => SeekFrom::End(offset),
        _ => return -(libc::EINVAL as i64),
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| io.file.seek(to))) {
        Ok(Ok(at)) => at as i64,
        Ok(Err(e)) => -(e.raw_os_error().unwrap_or(libc::EIO) as i64),
        Err(_) => -(libc::EIO as i64),
    }
}

/// Refuses every other file or URL a demuxer asks to open.
unsafe extern "C" fn io_open(
    _s: *mut ff::AVFormatContext,
    _pb: *mut *mut ff::AVIOContext,
    _url: *const c_char,
    _flags: c_int,
    _options: *mut *mut ff::AVDictionary,
) -> c_int {
    -libc::EPERM
}

/// The frame memory a decoder holds: every distinct buffer its pool has handed out through
/// `get_buffer2`, by address, with its size. A pool keeps its buffers until the decoder closes
/// or the frame size changes (then it starts a new pool, and the count starts again).
struct DecoderMemory {
    seen: Mutex<Seen>,
    bytes: AtomicU64,
}

impl Default for DecoderMemory {
    /// Room for the buffers of any pool up front (a codec keeps at most 16 reference frames,
    /// each thread a few more), so noting a new one allocates nothing during playback.
    fn default() -> DecoderMemory {
        DecoderMemory {
            seen: Mutex::new(Seen {
                shape: (0, 0, 0),
                buffers: HashMap::with_capacity(256),
            }),
            bytes: AtomicU64::new(0),
        }
    }
}

struct Seen {
    /// Width, height and format of the frames the buffers are for.
    shape: (c_int, c_int, c_int),
    buffers: HashMap<usize, usize>,
}

impl DecoderMemory {
    /// Notes the buffers of a frame the decoder just got.
    ///
    /// # Safety
    ///
    /// `frame` is a frame `avcodec_default_get_buffer2` has just filled.
    unsafe fn saw(&self, frame: *const ff::AVFrame) {
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        // SAFETY: the caller's contract.
        let f = unsafe { &*frame };
        let shape = (f.width, f.height, f.format);
        if seen.shape != shape {
            seen.shape = shape;
            seen.buffers.clear();
        }
        for &b in f.buf.iter().take_while(|b| !b.is_null()) {
            // SAFETY: a non-null `buf` entry of a filled frame is a valid buffer reference.
            let (data, size) = unsafe { ((*b).data as usize, (*b).size) };
            seen.buffers.insert(data, size);
        }
        let total: usize = seen.buffers.values().sum();
        self.bytes.store(total as u64, Ordering::Relaxed);
    }
}

unsafe extern "C" fn get_buffer(
    ctx: *mut ff::AVCodecContext,
    frame: *mut ff::AVFrame,
    flags: c_int,
) -> c_int {
    // SAFETY: FFmpeg calls this with its own valid context and frame; the default allocator
    // is what it would have called without us.
    let r = unsafe { ff::avcodec_default_get_buffer2(ctx, frame, flags) };
    if r >= 0 {
        // SAFETY: `opaque` is the source's `DecoderMemory`, which outlives the decoder (and
        // its thread contexts, which copy `opaque`): see the module's rules.
        let memory = unsafe { &*((*ctx).opaque as *const DecoderMemory) };
        // SAFETY: `frame` was just filled by `avcodec_default_get_buffer2` (`saw`'s contract).
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe {
            memory.saw(frame)
        }));
    }
    r
}

/// A video file decoded by FFmpeg.
pub struct Ffmpeg {
    href: String,
    info: VideoInfo,
    fmt: *mut ff::AVFormatContext,
    avio: *mut ff::AVIOContext,
    io: *mut Io,
    /// The decoder, its packet and frame, and the scaler.
    codec: Codec,
    stream: c_int,
    time_base: ff::AVRational,
    /// The stream's first timestamp: times count from it.
    start: i64,
    memory: Arc<DecoderMemory>,
    /// End of input reached and the decoder told so (it is being drained).
    draining: bool,
    /// Frames before this time are decoded and dropped (after a seek).
    drop_before: Option<f64>,
    /// The next frame's number, once known (after a seek: from the first frame's time).
    next_index: Option<u64>,
    /// Frames produced since the start of the stream, when no seek happened since.
    from_start: bool,
    corrupt: u64,
    /// The last frame's time, for frames without a timestamp.
    last_time: Option<f64>,
}

// SAFETY: a source owns all its FFmpeg objects alone and uses them only through `&mut self`
// (see the module's rules); FFmpeg's contexts may be used from any one thread at a time.
unsafe impl Send for Ffmpeg {}

impl Ffmpeg {
    /// Opens `file` (already opened and checked by [`crate::os::file`]) and its best video stream,
    /// refusing frames of more than `max_pixels` pixels from the header. `threads`: decoder
    /// threads, 0 for FFmpeg's choice.
    pub fn open(
        href: &str,
        path: &Path,
        file: File,
        len: u64,
        max_pixels: u64,
        threads: usize,
    ) -> Result<Ffmpeg> {
        quiet_logs();
        let mut src = Ffmpeg {
            href: href.into(),
            info: VideoInfo::default(),
            fmt: ptr::null_mut(),
            avio: ptr::null_mut(),
            io: Box::into_raw(Box::new(Io { file, len })),
            codec: Codec::default(),
            stream: -1,
            time_base: ff::AVRational { num: 1, den: 1 },
            start: 0,
            memory: Arc::default(),
            draining: false,
            drop_before: None,
            next_index: Some(0),
            from_start: true,
            corrupt: 0,
            last_time: None,
        };
        // On error `src` drops, freeing what was made so far.
        src.open_input(path)?;
        src.open_decoder(max_pixels, threads)?;
        Ok(src)
    }

    fn err(&self, detail: String) -> Error {
        Error::new(self.href.clone(), ErrorKind::Video { detail })
    }

    fn open_input(&mut self, path: &Path) -> Result<()> {
        let href = self.href.clone();
        let oom = || {
            Error::new(
                href.clone(),
                ErrorKind::Video {
                    detail: "out of memory opening the demuxer".into(),
                },
            )
        };
        // SAFETY: each object is checked for null before use and stored in `self` at once, so
        // `Drop` frees it whatever fails later (the module's rules).
        unsafe {
            let buf = ff::av_malloc(IO_BUFFER) as *mut u8;
            if buf.is_null() {
                return Err(oom());
            }
            self.avio = ff::avio_alloc_context(
                buf,
                IO_BUFFER as c_int,
                0,
                self.io as *mut c_void,
                Some(read),
                None,
                Some(seek),
            );
            if self.avio.is_null() {
                ff::av_free(buf as *mut c_void);
                return Err(oom());
            }
            let mut fmt = ff::avformat_alloc_context();
            if fmt.is_null() {
                return Err(oom());
            }
            (*fmt).pb = self.avio;
            (*fmt).flags |= ff::AVFMT_FLAG_CUSTOM_IO as c_int;
            (*fmt).io_open = Some(io_open);
            let url =
                std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap_or_default();
            // On failure this frees `fmt` (not the custom I/O context) and nulls it.
            let r = ff::avformat_open_input(&mut fmt, url.as_ptr(), ptr::null(), ptr::null_mut());
            if r < 0 {
                return Err(self.open_error(r, "cannot open the container"));
            }
            self.fmt = fmt;
            let r = ff::avformat_find_stream_info(fmt, ptr::null_mut());
            if r < 0 {
                return Err(self.open_error(r, "cannot read the streams"));
            }
        }
        Ok(())
    }

    /// An error of opening: data FFmpeg does not recognise is an unsupported format.
    fn open_error(&self, code: c_int, what: &str) -> Error {
        let detail = format!("{what}: {}", ff_error(code));
        if code == ff::AVERROR_INVALIDDATA {
            Error::new(
                self.href.clone(),
                ErrorKind::Unsupported {
                    detail: format!("{detail} (not a video file FFmpeg knows)"),
                },
            )
        } else {
            self.err(detail)
        }
    }

    fn open_decoder(&mut self, max_pixels: u64, threads: usize) -> Result<()> {
        // SAFETY: `self.fmt` is an open demuxer; the stream and its parameters belong to it.
        // The decoder context is stored in `self` at once (freed by `Drop`).
        unsafe {
            let mut codec: *const ff::AVCodec = ptr::null();
            let s = ff::av_find_best_stream(
                self.fmt,
                ff::AVMediaType::AVMEDIA_TYPE_VIDEO,
                -1,
                -1,
                &mut codec,
                0,
            );
            if s == ff::AVERROR_STREAM_NOT_FOUND {
                return Err(Error::new(
                    self.href.clone(),
                    ErrorKind::Unsupported {
                        detail: "the file has no video stream".into(),
                    },
                ));
            }
            if s < 0 || codec.is_null() {
                let id = if s >= 0 {
                    let st = *(*self.fmt).streams.add(s as usize);
                    CStr::from_ptr(ff::avcodec_get_name((*(*st).codecpar).codec_id))
                        .to_string_lossy()
                        .into_owned()
                } else {
                    ff_error(s)
                };
                return Err(Error::new(
                    self.href.clone(),
                    ErrorKind::Unsupported {
                        detail: format!("no decoder for its video stream ({id})"),
                    },
                ));
            }
            self.stream = s;
            let st = *(*self.fmt).streams.add(s as usize);
            let par = (*st).codecpar;
            let (w, h) = ((*par).width, (*par).height);
            if w <= 0 || h <= 0 {
                return Err(self.err(format!("the video stream has no frame size ({w}x{h})")));
            }
            crate::picture::limits::check_pixels(&self.href, w as u32, h as u32, max_pixels)?;
            self.codec.ctx = ff::avcodec_alloc_context3(codec);
            if self.codec.ctx.is_null() {
                return Err(self.err("out of memory opening the decoder".into()));
            }
            let r = ff::avcodec_parameters_to_context(self.codec.ctx, par);
            if r < 0 {
                return Err(self.err(format!("decoder parameters: {}", ff_error(r))));
            }
            (*self.codec.ctx).thread_count = threads.min(64) as c_int;
            (*self.codec.ctx).opaque = Arc::as_ptr(&self.memory) as *mut c_void;
            (*self.codec.ctx).get_buffer2 = Some(get_buffer);
            (*self.codec.ctx).pkt_timebase = (*st).time_base;
            let r = ff::avcodec_open2(self.codec.ctx, codec, ptr::null_mut());
            if r < 0 {
                return Err(self.err(format!("cannot open the decoder: {}", ff_error(r))));
            }
            self.codec.pkt = ff::av_packet_alloc();
            self.codec.frame = ff::av_frame_alloc();
            if self.codec.pkt.is_null() || self.codec.frame.is_null() {
                return Err(self.err("out of memory".into()));
            }
            self.time_base = (*st).time_base;
            self.start = if (*st).start_time == ff::AV_NOPTS_VALUE {
                0
            } else {
                (*st).start_time
            };
            self.info = self.describe(st, codec, w as u32, h as u32);
        }
        Ok(())
    }

    /// What the header says.
    ///
    /// # Safety
    ///
    /// `st` is a stream of the open demuxer, `codec` its decoder, `self.codec.ctx` open.
    unsafe fn describe(
        &self,
        st: *const ff::AVStream,
        codec: *const ff::AVCodec,
        w: u32,
        h: u32,
    ) -> VideoInfo {
        // SAFETY: the caller's contract; FFmpeg's descriptors and names are static.
        unsafe {
            let dec = &*self.codec.ctx;
            let desc = ff::av_pix_fmt_desc_get(dec.pix_fmt);
            let alpha = !desc.is_null() && (*desc).flags & ff::AV_PIX_FMT_FLAG_ALPHA as u64 != 0;
            // The stream's base rate (what a constant-rate file is coded at); the average
            // over the file (frames / duration) can be off by the last frame's duration.
            let q = |r: ff::AVRational| {
                (r.num > 0 && r.den > 0 && r.num as f64 / r.den as f64 <= 1000.0).then_some(r)
            };
            let rate = q((*st).r_frame_rate)
                .or(q((*st).avg_frame_rate))
                .map_or((30, 1), |r| (r.num as u32, r.den as u32));
            let tb = (*st).time_base;
            let duration = if (*st).duration > 0 && tb.den > 0 {
                Some((*st).duration as f64 * tb.num as f64 / tb.den as f64)
            } else if (*self.fmt).duration > 0 {
                Some((*self.fmt).duration as f64 / ff::AV_TIME_BASE as f64)
            } else {
                None
            };
            let frames = ((*st).nb_frames > 0).then_some((*st).nb_frames as u64);
            let full_range = dec.color_range == ff::AVColorRange::AVCOL_RANGE_JPEG
                || matches!(
                    dec.pix_fmt,
                    ff::AVPixelFormat::AV_PIX_FMT_YUVJ420P
                        | ff::AVPixelFormat::AV_PIX_FMT_YUVJ422P
                        | ff::AVPixelFormat::AV_PIX_FMT_YUVJ444P
                );
            let matrix = match dec.colorspace {
                ff::AVColorSpace::AVCOL_SPC_BT709 => Matrix::Bt709,
                ff::AVColorSpace::AVCOL_SPC_UNSPECIFIED if h >= 720 => Matrix::Bt709,
                _ => Matrix::Bt601,
            };
            let name = |p: *const c_char| {
                if p.is_null() {
                    String::new()
                } else {
                    CStr::from_ptr(p).to_string_lossy().into_owned()
                }
            };
            VideoInfo {
                width: w,
                height: h,
                format: if alpha {
                    PixelFormat::Rgba8
                } else {
                    PixelFormat::Yuv420
                },
                rate,
                frames,
                full_range,
                matrix,
                duration,
                codec: name((*codec).name),
                container: name((*(*self.fmt).iformat).name),
                rotation: rotation(st),
                decoded_format: name(ff::av_get_pix_fmt_name(dec.pix_fmt)),
            }
        }
    }

    /// Sends the next packet of the video stream to the decoder; false at the end of input
    /// (the decoder is then told to drain).
    fn feed(&mut self) -> bool {
        // SAFETY: `fmt`, `pkt` and `dec` are open (the module's rules).
        unsafe {
            loop {
                let r = ff::av_read_frame(self.fmt, self.codec.pkt);
                if r < 0 {
                    // End of file, or input that cannot be read any further: what was read is
                    // decoded to its end; `read_frame` tells a short stream from a whole one.
                    ff::avcodec_send_packet(self.codec.ctx, ptr::null());
                    self.draining = true;
                    return false;
                }
                if (*self.codec.pkt).stream_index != self.stream {
                    ff::av_packet_unref(self.codec.pkt);
                    continue;
                }
                let r = ff::avcodec_send_packet(self.codec.ctx, self.codec.pkt);
                ff::av_packet_unref(self.codec.pkt);
                if r < 0 && r != -libc::EAGAIN {
                    self.corrupt += 1;
                    continue;
                }
                return true;
            }
        }
    }

    /// Writes the decoded frame into `buf` in the node's format and size.
    fn convert(&mut self, buf: &mut [u8]) -> Result<()> {
        let (w, h) = (self.info.width as usize, self.info.height as usize);
        // SAFETY: `frame` holds a decoded frame (its planes valid for its size and strides);
        // `buf` is exactly the node's frame size, which the destination planes below split.
        unsafe {
            let f = &*self.codec.frame;
            let same_size = f.width as usize == w && f.height as usize == h;
            let (dst_fmt, planes): (ff::AVPixelFormat, &[(usize, usize, usize)]) =
                match self.info.format {
                    PixelFormat::Rgba8 => (ff::AVPixelFormat::AV_PIX_FMT_RGBA, &[(w * 4, h, 0)]),
                    _ => {
                        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
                        (
                            ff::AVPixelFormat::AV_PIX_FMT_YUV420P,
                            &[(w, h, 0), (cw, ch, w * h), (cw, ch, w * h + cw * ch)],
                        )
                    }
                };
            let native = f.format == dst_fmt as c_int
                || (dst_fmt == ff::AVPixelFormat::AV_PIX_FMT_YUV420P
                    && f.format == ff::AVPixelFormat::AV_PIX_FMT_YUVJ420P as c_int);
            if native && same_size {
                for (i, &(row, rows, at)) in planes.iter().enumerate() {
                    let stride = f.linesize[i] as isize;
                    for y in 0..rows {
                        let src = f.data[i].offset(y as isize * stride);
                        let dst = buf.as_mut_ptr().add(at + y * row);
                        ptr::copy_nonoverlapping(src, dst, row);
                    }
                }
                return Ok(());
            }
            self.codec.sws = ff::sws_getCachedContext(
                self.codec.sws,
                f.width,
                f.height,
                std::mem::transmute::<c_int, ff::AVPixelFormat>(f.format),
                w as c_int,
                h as c_int,
                dst_fmt,
                ff::SWS_BICUBIC as c_int,
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null(),
            );
            if self.codec.sws.is_null() {
                return Err(self.err(format!(
                    "cannot convert frames of {}x{} {} to {}",
                    f.width,
                    f.height,
                    self.info.decoded_format,
                    self.info.format.name()
                )));
            }
            let mut dst = [ptr::null_mut::<u8>(); 4];
            let mut stride = [0 as c_int; 4];
            for (i, &(row, _, at)) in planes.iter().enumerate() {
                dst[i] = buf.as_mut_ptr().add(at);
                stride[i] = row as c_int;
            }
            let src: [*const u8; 4] = [f.data[0], f.data[1], f.data[2], f.data[3]];
            ff::sws_scale(
                self.codec.sws,
                src.as_ptr(),
                f.linesize.as_ptr(),
                0,
                f.height,
                dst.as_ptr(),
                stride.as_ptr(),
            );
        }
        Ok(())
    }

    /// The decoded frame's time in seconds from the stream's start.
    fn frame_time(&self) -> Option<f64> {
        // SAFETY: `frame` holds a decoded frame.
        let f = unsafe { &*self.codec.frame };
        let ts = if f.best_effort_timestamp != ff::AV_NOPTS_VALUE {
            f.best_effort_timestamp
        } else {
            f.pts
        };
        let tb = self.time_base;
        (ts != ff::AV_NOPTS_VALUE && tb.den > 0)
            .then(|| (ts - self.start) as f64 * tb.num as f64 / tb.den as f64)
    }

    fn frames_so_far(&self) -> u64 {
        self.next_index.unwrap_or(0)
    }
}

/// Rotation in degrees clockwise (0, 90, 180, 270) from the stream's display matrix.
///
/// # Safety
///
/// `st` is a stream of an open demuxer.
unsafe fn rotation(st: *const ff::AVStream) -> u32 {
    let mut size = 0usize;
    // SAFETY: the caller's contract; the side data, when present, is a 3x3 matrix of i32.
    let m = unsafe {
        ff::av_stream_get_side_data(
            st,
            ff::AVPacketSideDataType::AV_PKT_DATA_DISPLAYMATRIX,
            &mut size,
        )
    };
    if m.is_null() || size < 36 {
        return 0;
    }
    // av_display_rotation_get gives degrees counterclockwise.
    // SAFETY: `m` is the stream's display matrix (a 3x3 matrix of `i32`, as above), non-null.
    let ccw = unsafe { ff::av_display_rotation_get(m as *const i32) };
    if ccw.is_nan() {
        return 0;
    }
    let cw = (-ccw / 90.0).round() as i64 * 90;
    cw.rem_euclid(360) as u32
}

impl FrameSource for Ffmpeg {
    fn info(&self) -> &VideoInfo {
        &self.info
    }

    fn read_frame(&mut self, buf: &mut [u8]) -> Result<Option<FrameTime>> {
        let mut failures = 0u32;
        loop {
            // SAFETY: `dec` and `frame` are open (the module's rules).
            let r = unsafe { ff::avcodec_receive_frame(self.codec.ctx, self.codec.frame) };
            if r == ff::AVERROR_EOF {
                return self.ended();
            }
            if r == -libc::EAGAIN {
                if !self.draining {
                    self.feed();
                    continue;
                }
                return self.ended();
            }
            if r < 0 {
                // A frame the decoder could not finish: counted, and decoding goes on, unless
                // the decoder fails again and again without taking input.
                self.corrupt += 1;
                failures += 1;
                if failures > 64 {
                    return Err(Error::new(
                        self.href.clone(),
                        ErrorKind::Corrupt {
                            detail: format!(
                                "the decoder fails at frame {}: {}",
                                self.frames_so_far(),
                                ff_error(r)
                            ),
                        },
                    ));
                }
                continue;
            }
            // SAFETY: a frame was just received.
            let damaged = unsafe {
                let f = &*self.codec.frame;
                f.decode_error_flags != 0 || f.flags & ff::AV_FRAME_FLAG_CORRUPT as c_int != 0
            };
            self.corrupt += damaged as u64;
            let time = self
                .frame_time()
                .or_else(|| self.last_time.map(|t| t + self.info.frame_duration()))
                .unwrap_or(0.0);
            if self.drop_before.is_some_and(|t| time < t - 1e-6) {
                // SAFETY: as above.
                unsafe { ff::av_frame_unref(self.codec.frame) };
                continue;
            }
            self.drop_before = None;
            let converted = self.convert(buf);
            // SAFETY: as above; the frame's buffers go back to the decoder's pool.
            unsafe { ff::av_frame_unref(self.codec.frame) };
            converted?;
            let index = match self.next_index {
                Some(i) => i,
                None => {
                    let (n, d) = self.info.rate;
                    (time * n as f64 / d.max(1) as f64).round() as u64
                }
            };
            self.next_index = Some(index + 1);
            self.last_time = Some(time);
            return Ok(Some(FrameTime { index, time }));
        }
    }

    fn seek(&mut self, seconds: f64) -> Result<()> {
        let seconds = seconds.max(0.0);
        let tb = self.time_base;
        let ts = self.start + (seconds * tb.den as f64 / tb.num.max(1) as f64) as i64;
        // SAFETY: `fmt` and `dec` are open (the module's rules).
        let r = unsafe {
            ff::av_seek_frame(self.fmt, self.stream, ts, ff::AVSEEK_FLAG_BACKWARD as c_int)
        };
        if r < 0 {
            // Some inputs cannot seek by time; byte 0 is always the start.
            // SAFETY: the demuxer is this source's own, open (the module's rules).
            let r0 = unsafe {
                ff::av_seek_frame(
                    self.fmt,
                    self.stream,
                    self.start,
                    (ff::AVSEEK_FLAG_BACKWARD | ff::AVSEEK_FLAG_ANY) as c_int,
                )
            };
            if r0 < 0 {
                return Err(self.err(format!("cannot seek to {seconds:.3} s: {}", ff_error(r))));
            }
        }
        // SAFETY: the decoder is this source's own, open (the module's rules).
        unsafe { ff::avcodec_flush_buffers(self.codec.ctx) };
        self.draining = false;
        self.last_time = None;
        self.drop_before = (seconds > 0.0).then_some(seconds);
        self.from_start = seconds == 0.0;
        self.next_index = self.from_start.then_some(0);
        Ok(())
    }

    fn decoder_bytes(&self) -> u64 {
        self.memory.bytes.load(Ordering::Relaxed)
    }

    fn corrupt_packets(&self) -> u64 {
        self.corrupt
    }
}

impl Ffmpeg {
    /// The end of the stream: short of the frames the header promised by more than the
    /// damaged packets skipped, an error naming the frame where it stopped; else the end.
    fn ended(&mut self) -> Result<Option<FrameTime>> {
        let got = self.frames_so_far();
        match self.info.frames {
            Some(want) if self.from_start && got + self.corrupt < want => {
                // Report once: the next read is a plain end.
                self.from_start = false;
                Err(Error::new(
                    self.href.clone(),
                    ErrorKind::Corrupt {
                        detail: format!(
                        "the video stream ends at frame {got} of the {want} its header promised \
                         (the file is cut short or damaged there)"
                    ),
                    },
                ))
            }
            _ => Ok(None),
        }
    }
}

impl Drop for Ffmpeg {
    fn drop(&mut self) {
        // SAFETY: each pointer is null or owned by this source alone, freed once here in
        // dependency order (the module's rules). FFmpeg's free functions take null.
        unsafe {
            self.codec.free();
            if !self.fmt.is_null() {
                ff::avformat_close_input(&mut self.fmt);
            }
            if !self.avio.is_null() {
                // The buffer may have been replaced by FFmpeg: free the current one.
                ff::av_freep(&mut (*self.avio).buffer as *mut *mut u8 as *mut c_void);
                ff::avio_context_free(&mut self.avio);
            }
            drop(Box::from_raw(self.io));
        }
    }
}
