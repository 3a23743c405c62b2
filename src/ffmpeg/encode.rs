//! A sample encoder (feature `samples`): real H.264 or MPEG-4 files for the demo, the benches
//! and the tests, written by FFmpeg's encoders.

use super::{ff_error, quiet_logs, Codec};
use crate::error::{Error, ErrorKind, Result};
use ffmpeg_sys_next as ff;
use std::ffi::c_int;
use std::path::Path;
use std::ptr;

/// Encodes `frames` frames of 8-bit 4:2:0 at 30 fps into the file at `path` (its container
/// from the extension: `.mp4`, `.mkv`, `.webm`, ...) with H.264 (libx264) where this FFmpeg has
/// it, else MPEG-4 part 2 (FFmpeg's own encoder, always present): sample media for the demo
/// and the benches, made by a real encoder. Width and height must be even. `fill(frame_index,
/// y, u, v)` draws each frame into tightly packed planes.
pub(crate) fn encode(
    path: &Path,
    width: u32,
    height: u32,
    frames: u32,
    mut fill: impl FnMut(u32, &mut [u8], &mut [u8], &mut [u8]),
) -> Result<()> {
    let href = path.display().to_string();
    let fail = |what: &str, code: c_int| {
        Error::new(
            href.clone(),
            ErrorKind::Video {
                detail: format!("cannot encode the sample: {what}: {}", ff_error(code)),
            },
        )
    };
    if !width.is_multiple_of(2) || !height.is_multiple_of(2) || width == 0 || height == 0 {
        return Err(Error::new(
            href,
            ErrorKind::Video {
                detail: format!("cannot encode {width}x{height}: 4:2:0 encoders need even sizes"),
            },
        ));
    }
    let (w, h) = (width as usize, height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let mut planes = (vec![0u8; w * h], vec![0u8; cw * ch], vec![0u8; cw * ch]);
    let url = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| fail("a path with a NUL byte", -libc::EINVAL))?;
    quiet_logs();
    // SAFETY: every object is checked before use and freed below on every path (`Encoder`'s
    // drop); FFmpeg's encode API is used as its documentation says (send a frame, receive
    // packets until EAGAIN, rescale, interleave; flush with a null frame).
    unsafe {
        let mut e = Encoder {
            oc: ptr::null_mut(),
            codec: Codec::default(),
        };
        let r =
            ff::avformat_alloc_output_context2(&mut e.oc, ptr::null(), ptr::null(), url.as_ptr());
        if r < 0 || e.oc.is_null() {
            return Err(fail("no container for this file name", r));
        }
        let x264 = c"libx264";
        let mut codec = ff::avcodec_find_encoder_by_name(x264.as_ptr());
        if codec.is_null() {
            codec = ff::avcodec_find_encoder(ff::AVCodecID::AV_CODEC_ID_MPEG4);
        }
        if codec.is_null() {
            return Err(fail("no H.264 or MPEG-4 encoder", -libc::ENOSYS));
        }
        let st = ff::avformat_new_stream(e.oc, ptr::null());
        e.codec.ctx = ff::avcodec_alloc_context3(codec);
        e.codec.frame = ff::av_frame_alloc();
        e.codec.pkt = ff::av_packet_alloc();
        if st.is_null() || e.codec.ctx.is_null() || e.codec.frame.is_null() || e.codec.pkt.is_null()
        {
            return Err(fail("out of memory", -libc::ENOMEM));
        }
        let enc = &mut *e.codec.ctx;
        enc.width = width as c_int;
        enc.height = height as c_int;
        enc.time_base = ff::AVRational { num: 1, den: 30 };
        enc.framerate = ff::AVRational { num: 30, den: 1 };
        enc.pix_fmt = ff::AVPixelFormat::AV_PIX_FMT_YUV420P;
        enc.gop_size = 30;
        enc.max_b_frames = 2;
        enc.bit_rate = 2_000_000;
        enc.thread_count = 1;
        if (*(*e.oc).oformat).flags & ff::AVFMT_GLOBALHEADER as c_int != 0 {
            enc.flags |= ff::AV_CODEC_FLAG_GLOBAL_HEADER as c_int;
        }
        if !enc.priv_data.is_null() {
            ff::av_opt_set(enc.priv_data, c"preset".as_ptr(), c"veryfast".as_ptr(), 0);
        }
        let r = ff::avcodec_open2(e.codec.ctx, codec, ptr::null_mut());
        if r < 0 {
            return Err(fail("cannot open the encoder", r));
        }
        let r = ff::avcodec_parameters_from_context((*st).codecpar, e.codec.ctx);
        if r < 0 {
            return Err(fail("stream parameters", r));
        }
        (*st).time_base = (*e.codec.ctx).time_base;
        let r = ff::avio_open(&mut (*e.oc).pb, url.as_ptr(), ff::AVIO_FLAG_WRITE as c_int);
        if r < 0 {
            return Err(fail("cannot create the file", r));
        }
        let r = ff::avformat_write_header(e.oc, ptr::null_mut());
        if r < 0 {
            return Err(fail("cannot write the header", r));
        }
        let f = &mut *e.codec.frame;
        f.format = ff::AVPixelFormat::AV_PIX_FMT_YUV420P as c_int;
        f.width = width as c_int;
        f.height = height as c_int;
        let r = ff::av_frame_get_buffer(e.codec.frame, 0);
        if r < 0 {
            return Err(fail("frame buffer", r));
        }
        for i in 0..=frames {
            let send = if i < frames {
                let r = ff::av_frame_make_writable(e.codec.frame);
                if r < 0 {
                    return Err(fail("frame buffer", r));
                }
                fill(i, &mut planes.0, &mut planes.1, &mut planes.2);
                let f = &mut *e.codec.frame;
                for (p, (src, row, rows)) in
                    [(&planes.0, w, h), (&planes.1, cw, ch), (&planes.2, cw, ch)]
                        .into_iter()
                        .enumerate()
                {
                    for y in 0..rows {
                        let dst = f.data[p].offset(y as isize * f.linesize[p] as isize);
                        ptr::copy_nonoverlapping(src[y * row..].as_ptr(), dst, row);
                    }
                }
                f.pts = i as i64;
                e.codec.frame as *const ff::AVFrame
            } else {
                ptr::null()
            };
            let r = ff::avcodec_send_frame(e.codec.ctx, send);
            if r < 0 {
                return Err(fail("cannot encode a frame", r));
            }
            loop {
                let r = ff::avcodec_receive_packet(e.codec.ctx, e.codec.pkt);
                if r == -libc::EAGAIN || r == ff::AVERROR_EOF {
                    break;
                }
                if r < 0 {
                    return Err(fail("cannot encode a frame", r));
                }
                ff::av_packet_rescale_ts(e.codec.pkt, (*e.codec.ctx).time_base, (*st).time_base);
                (*e.codec.pkt).stream_index = (*st).index;
                let r = ff::av_interleaved_write_frame(e.oc, e.codec.pkt);
                if r < 0 {
                    return Err(fail("cannot write a packet", r));
                }
            }
        }
        let r = ff::av_write_trailer(e.oc);
        if r < 0 {
            return Err(fail("cannot finish the file", r));
        }
    }
    Ok(())
}

/// The objects of [`encode`], freed whatever happens: the codec's first, then the container.
struct Encoder {
    oc: *mut ff::AVFormatContext,
    codec: Codec,
}

impl Drop for Encoder {
    fn drop(&mut self) {
        self.codec.free();
        // SAFETY: `oc` is null or owned here alone, freed once.
        unsafe {
            if !self.oc.is_null() {
                if !(*self.oc).pb.is_null() {
                    ff::avio_closep(&mut (*self.oc).pb);
                }
                ff::avformat_free_context(self.oc);
            }
        }
    }
}
