//! The FFmpeg layer (feature `ffmpeg`): what every use of FFmpeg in texcache shares. AVIF
//! pictures (`picture/avif.rs`) and video sources (`video/ffmpeg.rs`) decode through it, and the
//! sample encoder (`encode.rs`, feature `samples`) encodes through it.
//!
//! - [`ff_error`]: FFmpeg's error codes in words.
//! - [`quiet_logs`]: FFmpeg's logging off unless the application chose a level.
//! - [`Codec`]: the one drop guard of a codec context, its packet, its frame and a scaler.
//!
//! # Safety
//!
//! A [`Codec`]'s pointers are each null or owned by that `Codec` alone; [`Codec::free`] frees
//! each once (FFmpeg's free functions take null, and leave null behind), and `Drop` calls it,
//! on every path out, errors and panics included. Whoever fills a `Codec` (`avcodec_alloc_context3`,
//! `av_packet_alloc`, `av_frame_alloc`, `sws_getContext`) hands it that ownership.

#[cfg(feature = "samples")]
mod encode;

#[cfg(feature = "samples")]
pub(crate) use encode::encode;
use ffmpeg_sys_next as ff;
use std::ffi::{c_char, c_int, CStr};
use std::ptr;
use std::sync::Once;

/// FFmpeg's message for an error code.
pub(crate) fn ff_error(code: c_int) -> String {
    let mut buf = [0 as c_char; 128];
    // SAFETY: `buf` is writable for its length; av_strerror always terminates it.
    unsafe {
        ff::av_strerror(code, buf.as_mut_ptr(), buf.len());
        CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned()
    }
}

/// Sets FFmpeg's log level to quiet once, unless the application chose one: FFmpeg would
/// otherwise print every damaged packet to the process's stderr. Errors reach the caller as
/// typed errors and counts instead. `TEXCACHE_FFMPEG_LOG=1` keeps FFmpeg's messages.
pub(crate) fn quiet_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: plain global getters and setters of libavutil.
        unsafe {
            if std::env::var_os("TEXCACHE_FFMPEG_LOG").is_none()
                && ff::av_log_get_level() == ff::AV_LOG_INFO as c_int
            {
                ff::av_log_set_level(ff::AV_LOG_QUIET);
            }
        }
    });
}

/// A codec context with its packet, frame and scaler: the objects every decode and encode
/// holds, freed in dependency order (scaler, frame, packet, then the context) when dropped.
pub(crate) struct Codec {
    /// The decoder's or encoder's context.
    pub(crate) ctx: *mut ff::AVCodecContext,
    /// The packet sent or received.
    pub(crate) pkt: *mut ff::AVPacket,
    /// The frame received or sent.
    pub(crate) frame: *mut ff::AVFrame,
    /// The scaler that converts the frame, if one is needed.
    pub(crate) sws: *mut ff::SwsContext,
}

impl Default for Codec {
    fn default() -> Codec {
        Codec {
            ctx: ptr::null_mut(),
            pkt: ptr::null_mut(),
            frame: ptr::null_mut(),
            sws: ptr::null_mut(),
        }
    }
}

impl Codec {
    /// Frees every object and leaves null pointers behind, so a second call does nothing.
    pub(crate) fn free(&mut self) {
        // SAFETY: each pointer is null or owned by this `Codec` alone (the module's rules);
        // FFmpeg's free functions take null and set the pointer they free to null.
        unsafe {
            if !self.sws.is_null() {
                ff::sws_freeContext(self.sws);
                self.sws = ptr::null_mut();
            }
            ff::av_frame_free(&mut self.frame);
            ff::av_packet_free(&mut self.pkt);
            ff::avcodec_free_context(&mut self.ctx);
        }
    }
}

impl Drop for Codec {
    fn drop(&mut self) {
        self.free();
    }
}
