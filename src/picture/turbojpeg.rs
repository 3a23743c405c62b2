//! JPEG through libjpeg-turbo (feature `turbojpeg`): the pixels libjpeg-turbo, and so Pillow,
//! browsers and most image tools, give for a JPEG.
//!
//! Why a system library: zune-jpeg (the pure-Rust default) rounds its chroma upsampling and
//! colour conversion differently from libjpeg-turbo, and on 4:2:0 photos its pixels differ by
//! up to 4 levels. With this feature every JPEG goes through libjpeg-turbo's TurboJPEG API
//! (`libturbojpeg`, 2.0 or newer): its accurate integer IDCT, its fancy (triangle) upsampling
//! and its colour conversion, SIMD where the CPU has it, scaled by 1/2, 1/4 or 1/8 in the IDCT
//! for fitted decodes, and arithmetic-coded files too. What libjpeg-turbo tolerates with a
//! warning (junk between segments, odd segment lengths, data cut short after the first scan)
//! decodes; its fatal errors are `Corrupt` with its message.
//!
//! CMYK and YCCK files come out of libjpeg-turbo as CMYK (Adobe's inverted convention, as
//! every CMYK JPEG in practice stores them) and are converted to RGB here the way Pillow
//! converts them.
//!
//! # Soundness
//!
//! Every `unsafe` block in this module is a call into `libturbojpeg` (or a read of what it
//! returns). They are sound because:
//!
//! 1. A [`Decompressor`] owns its `tjhandle` alone (it is neither `Send` nor `Sync`, made in
//!    [`Decompressor::new`] and destroyed once in `Drop`); TurboJPEG handles are used by one
//!    thread at a time, which ownership gives.
//! 2. Every input pointer is a live slice's, with that slice's length; TurboJPEG reads no
//!    further than the length it is given and keeps no pointer past the call.
//! 3. The output buffer is a `&mut [u8]` of at least `pitch * height` bytes for the size that
//!    TurboJPEG will write: the size asked for is checked before the call to be the one
//!    TurboJPEG picks for it by its own rule (the first of its scaling factors whose scaled
//!    size fits), so it writes exactly that size.
//! 4. Errors are TurboJPEG's own: it catches libjpeg's `longjmp` inside the library, so no
//!    jump or unwind ever crosses a Rust frame.
//! 5. What TurboJPEG returns by pointer is read as it documents it: the error string (owned by
//!    the handle) is copied before the handle is used again, and the scaling-factor table is a
//!    static array of the length it reports.

use crate::error::{Error, ErrorKind, Result};
use std::ffi::{c_char, c_int, c_uchar, c_ulong, c_void, CStr};

mod ffi {
    use super::*;

    pub type Handle = *mut c_void;

    #[repr(C)]
    #[derive(Clone, Copy)]
    pub struct ScalingFactor {
        pub num: c_int,
        pub denom: c_int,
    }

    pub const TJPF_RGBA: c_int = 7;
    pub const TJPF_GRAY: c_int = 6;
    pub const TJPF_CMYK: c_int = 11;
    pub const TJCS_RGB: c_int = 0;
    pub const TJCS_YCBCR: c_int = 1;
    pub const TJCS_GRAY: c_int = 2;
    pub const TJCS_CMYK: c_int = 3;
    pub const TJCS_YCCK: c_int = 4;
    pub const TJFLAG_ACCURATEDCT: c_int = 4096;
    pub const TJFLAG_LIMITSCANS: c_int = 32768;
    pub const TJERR_WARNING: c_int = 0;

    #[link(name = "turbojpeg")]
    extern "C" {
        pub fn tjInitDecompress() -> Handle;
        pub fn tjDestroy(handle: Handle) -> c_int;
        pub fn tjDecompressHeader3(
            handle: Handle,
            jpeg: *const c_uchar,
            len: c_ulong,
            width: *mut c_int,
            height: *mut c_int,
            subsamp: *mut c_int,
            colorspace: *mut c_int,
        ) -> c_int;
        pub fn tjGetScalingFactors(count: *mut c_int) -> *mut ScalingFactor;
        #[allow(clippy::too_many_arguments)]
        pub fn tjDecompress2(
            handle: Handle,
            jpeg: *const c_uchar,
            len: c_ulong,
            dst: *mut c_uchar,
            width: c_int,
            pitch: c_int,
            height: c_int,
            pixel_format: c_int,
            flags: c_int,
        ) -> c_int;
        pub fn tjGetErrorStr2(handle: Handle) -> *mut c_char;
        pub fn tjGetErrorCode(handle: Handle) -> c_int;
    }
}

/// How a JPEG's samples are coded, from its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Colorspace {
    Gray,
    Rgb,
    YCbCr,
    /// CMYK or YCCK: decoded to CMYK, then converted to RGB.
    Cmyk,
}

/// What a JPEG's header says.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Header {
    pub width: u32,
    pub height: u32,
    pub colorspace: Colorspace,
}

/// One TurboJPEG decompressor (see the module's soundness rules).
pub(crate) struct Decompressor {
    handle: ffi::Handle,
    href: String,
}

impl Drop for Decompressor {
    fn drop(&mut self) {
        // SAFETY: rule 1: the handle is ours, made non-null in `new`, destroyed only here.
        unsafe { ffi::tjDestroy(self.handle) };
    }
}

impl Decompressor {
    /// A decompressor for the JPEG at `href` (named in its errors).
    pub(crate) fn new(href: &str) -> Result<Decompressor> {
        // SAFETY: no arguments; a null result is handled below.
        let handle = unsafe { ffi::tjInitDecompress() };
        if handle.is_null() {
            return Err(Error::new(
                href,
                ErrorKind::Corrupt {
                    detail: "libjpeg-turbo could not make a decompressor (out of memory)".into(),
                },
            ));
        }
        Ok(Decompressor {
            handle,
            href: href.into(),
        })
    }

    /// libjpeg-turbo's message for the last failure, as a `Corrupt` error naming the href.
    fn error(&self) -> Error {
        // SAFETY: rules 1 and 5.
        let message = unsafe { CStr::from_ptr(ffi::tjGetErrorStr2(self.handle)) };
        Error::new(
            self.href.clone(),
            ErrorKind::Corrupt {
                detail: format!("libjpeg-turbo: {}", message.to_string_lossy()),
            },
        )
    }

    /// Whether the last call's failure was only warnings (libjpeg-turbo went on).
    fn warned(&self) -> bool {
        // SAFETY: rule 1.
        unsafe { ffi::tjGetErrorCode(self.handle) == ffi::TJERR_WARNING }
    }

    /// The JPEG's size and colour coding.
    pub(crate) fn header(&mut self, jpeg: &[u8]) -> Result<Header> {
        let (mut w, mut h, mut subsamp, mut cs) = (0, 0, 0, 0);
        // SAFETY: rules 1 and 2; the four outputs are live locals.
        let rc = unsafe {
            ffi::tjDecompressHeader3(
                self.handle,
                jpeg.as_ptr(),
                jpeg.len() as c_ulong,
                &mut w,
                &mut h,
                &mut subsamp,
                &mut cs,
            )
        };
        // What libjpeg-turbo only warns about (junk between segments, say) is read past.
        if rc != 0 && !self.warned() {
            let error = self.error();
            // TurboJPEG 2.x refuses, in this call only, files whose chroma subsampling it has
            // no name for (1x3, 3x1, ...), which libjpeg-turbo itself decodes: their header
            // is read from the frame header instead, and `tjDecompress2` decodes them.
            if error.to_string().contains("subsampling") {
                if let Some(header) = frame_header(jpeg) {
                    return Ok(header);
                }
            }
            return Err(error);
        }
        if w <= 0 || h <= 0 {
            return Err(Error::new(
                self.href.clone(),
                ErrorKind::Corrupt {
                    detail: format!("libjpeg-turbo: the header says {w}x{h}"),
                },
            ));
        }
        let colorspace = match cs {
            ffi::TJCS_GRAY => Colorspace::Gray,
            ffi::TJCS_RGB => Colorspace::Rgb,
            ffi::TJCS_YCBCR => Colorspace::YCbCr,
            ffi::TJCS_CMYK | ffi::TJCS_YCCK => Colorspace::Cmyk,
            other => {
                return Err(Error::new(
                    self.href.clone(),
                    ErrorKind::Unsupported {
                        detail: format!("JPEG colour space {other} (libjpeg-turbo)"),
                    },
                ))
            }
        };
        Ok(Header {
            width: w as u32,
            height: h as u32,
            colorspace,
        })
    }

    /// The smallest size at least `at_least` that libjpeg-turbo's IDCT scales `header`'s
    /// picture to, among 1/8, 1/4, 1/2 and 1 (the scales whose IDCTs libjpeg-turbo has in
    /// SIMD); the full size when no smaller scale is large enough.
    pub(crate) fn scaled_size(header: &Header, at_least: (u32, u32)) -> (u32, u32) {
        [8, 4, 2]
            .into_iter()
            .map(|denom| {
                let f = ffi::ScalingFactor { num: 1, denom };
                (scaled(header.width, f), scaled(header.height, f))
            })
            .find(|&(w, h)| w >= at_least.0 && h >= at_least.1)
            .unwrap_or((header.width, header.height))
    }

    /// The size TurboJPEG decodes `header`'s picture at when asked for `bounds`: its own rule,
    /// the first of its scaling factors (largest first) whose scaled size fits.
    fn size_decoded(header: &Header, bounds: (u32, u32)) -> (u32, u32) {
        let mut count = 0;
        // SAFETY: rule 5.
        let factors = unsafe {
            let p = ffi::tjGetScalingFactors(&mut count);
            if p.is_null() {
                &[][..]
            } else {
                std::slice::from_raw_parts(p, count.max(0) as usize)
            }
        };
        factors
            .iter()
            .map(|&f| (scaled(header.width, f), scaled(header.height, f)))
            .find(|&(w, h)| w <= bounds.0 && h <= bounds.1)
            .unwrap_or((0, 0))
    }

    /// Decodes the JPEG at `size` (one of [`scaled_size`](Self::scaled_size)'s answers, or the
    /// full size) into `out`: RGBA for colour pictures (CMYK converted), one byte a pixel for
    /// gray ones. `out` must hold exactly that many bytes.
    pub(crate) fn decode(
        &mut self,
        jpeg: &[u8],
        header: &Header,
        size: (u32, u32),
        out: &mut [u8],
    ) -> Result<()> {
        let (format, channels) = match header.colorspace {
            Colorspace::Gray => (ffi::TJPF_GRAY, 1),
            Colorspace::Rgb | Colorspace::YCbCr => (ffi::TJPF_RGBA, 4),
            Colorspace::Cmyk => (ffi::TJPF_CMYK, 4),
        };
        // Rule 3: the size is one TurboJPEG picks itself for these bounds (so at most twice the
        // header's, whose dimensions are 16-bit: every product below fits a `c_int`), and the
        // buffer holds what TurboJPEG writes at it.
        assert_eq!(
            Self::size_decoded(header, size),
            size,
            "not a size TurboJPEG decodes {}x{} at",
            header.width,
            header.height
        );
        let (w, h, pitch) = (
            size.0 as c_int,
            size.1 as c_int,
            (size.0 * channels) as c_int,
        );
        assert_eq!(
            out.len(),
            pitch as usize * h as usize,
            "output buffer for {}x{}",
            size.0,
            size.1
        );
        // SAFETY: rules 1 to 4: `out` holds `pitch * h` bytes, checked above.
        let rc = unsafe {
            ffi::tjDecompress2(
                self.handle,
                jpeg.as_ptr(),
                jpeg.len() as c_ulong,
                out.as_mut_ptr(),
                w,
                pitch,
                h,
                format,
                ffi::TJFLAG_ACCURATEDCT | ffi::TJFLAG_LIMITSCANS,
            )
        };
        if rc != 0 && !self.warned() {
            return Err(self.error());
        }
        if header.colorspace == Colorspace::Cmyk {
            crate::picture::jpeg::inverted_cmyk_to_rgba(out);
        }
        Ok(())
    }
}

/// TurboJPEG's `TJSCALED`: a dimension scaled by a factor, rounded up.
fn scaled(d: u32, f: ffi::ScalingFactor) -> u32 {
    (d as u64 * f.num as u64).div_ceil(f.denom as u64) as u32
}

/// A JPEG's size and colour coding read from its frame header (`SOFn`) and, for four
/// components, its Adobe marker, as libjpeg decides them: one component is gray, three are
/// decoded to RGB (whether coded as YCbCr or RGB), four are CMYK or YCCK (decoded to CMYK).
/// `None` when there is no frame header, or it is too short.
fn frame_header(jpeg: &[u8]) -> Option<Header> {
    let (_, start, end) = crate::picture::jpeg::jpeg_segments(jpeg)
        .find(|&(m, ..)| matches!(m, 0xC0..=0xCF) && !matches!(m, 0xC4 | 0xC8 | 0xCC))?;
    let sof = jpeg.get(start..end)?;
    // FF Cn, length (2), precision (1), height (2), width (2), components (1)
    let height = u16::from_be_bytes([*sof.get(5)?, *sof.get(6)?]) as u32;
    let width = u16::from_be_bytes([*sof.get(7)?, *sof.get(8)?]) as u32;
    let colorspace = match sof.get(9)? {
        1 => Colorspace::Gray,
        3 => Colorspace::YCbCr,
        4 => Colorspace::Cmyk,
        _ => return None,
    };
    (width > 0 && height > 0).then_some(Header {
        width,
        height,
        colorspace,
    })
}
