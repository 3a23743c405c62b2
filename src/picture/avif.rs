//! AVIF pictures: the primary item of the HEIF container, decoded as one AV1 frame by
//! FFmpeg's AV1 decoder (libdav1d, else libaom), converted to RGBA by swscale.
//!
//! Why here and not through `image`: `image` decodes AVIF only with libdav1d bindings of its
//! own, and FFmpeg 5.1's libavformat has no AVIF demuxer; the build already links libavcodec
//! (feature `ffmpeg`), whose AV1 decoders do the work. This module parses what the container
//! says about the primary item (where its bytes are, its AV1 configuration, size, colour
//! description and rotation/mirroring), hands the bytes to the decoder as one packet, and
//! converts the frame with the matrix and range the file declares. Without the `ffmpeg`
//! feature an AVIF file is `Unsupported`, saying so.
//!
//! Not read: grid (tiled) images, alpha auxiliary images (the picture is decoded opaque),
//! image sequences beyond their primary item, and items stored by reference to other items.

// The container parser serves the decoder, which needs FFmpeg: without it only `is_avif` and
// the error saying what is missing are used.
#![cfg_attr(not(feature = "ffmpeg"), allow(dead_code))]

use crate::error::{Error, ErrorKind, Result};

/// Whether `head` starts an AVIF file (an `ftyp` box naming the `avif` or `avis` brand).
pub(crate) fn is_avif(head: &[u8]) -> bool {
    let Some((b"ftyp", body, _)) = next_box(head) else {
        return false;
    };
    body.chunks(4)
        .enumerate()
        .any(|(i, brand)| i != 1 && (brand == b"avif" || brand == b"avis"))
}

/// What the container says about the primary item.
#[derive(Debug, Default)]
pub(crate) struct Primary<'a> {
    /// The item's AV1 data (OBUs), one extent or several joined.
    pub data: Vec<&'a [u8]>,
    /// The `av1C` record (the decoder's extradata).
    pub av1c: &'a [u8],
    /// `ispe`: the size the picture is stored at.
    pub size: Option<(u32, u32)>,
    /// `colr` (`nclx`): matrix coefficients and full range.
    pub matrix: Option<u16>,
    /// `colr` (`nclx`): full-range samples.
    pub full_range: Option<bool>,
    /// `irot`: anticlockwise quarter turns.
    pub rotation: u8,
    /// `imir`: 0 mirrors top to bottom (about the horizontal axis), 1 left to right.
    pub mirror: Option<u8>,
}

fn corrupt(href: &str, detail: impl Into<String>) -> Error {
    Error::new(
        href,
        ErrorKind::Corrupt {
            detail: format!("AVIF: {}", detail.into()),
        },
    )
}

fn unsupported(href: &str, detail: impl Into<String>) -> Error {
    Error::new(
        href,
        ErrorKind::Unsupported {
            detail: format!("AVIF: {}", detail.into()),
        },
    )
}

/// The next box of `data`: its type, its body and what follows it.
fn next_box(data: &[u8]) -> Option<(&[u8; 4], &[u8], &[u8])> {
    let size = u32::from_be_bytes(data.get(..4)?.try_into().ok()?) as u64;
    let kind: &[u8; 4] = data.get(4..8)?.try_into().ok()?;
    let (header, size) = match size {
        0 => (8, data.len() as u64),
        1 => (16, u64::from_be_bytes(data.get(8..16)?.try_into().ok()?)),
        n => (8, n),
    };
    if size < header as u64 || size > data.len() as u64 {
        return None;
    }
    let size = size as usize;
    Some((kind, &data[header..size], &data[size..]))
}

/// The boxes of `data`, in order; `Err` if one is cut short.
fn boxes<'a>(href: &str, mut data: &'a [u8]) -> Result<Vec<(&'a [u8; 4], &'a [u8])>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let (kind, body, rest) =
            next_box(data).ok_or_else(|| corrupt(href, "a box runs past its parent"))?;
        out.push((kind, body));
        data = rest;
    }
    Ok(out)
}

/// A big-endian reader over a box body.
struct Reader<'a> {
    data: &'a [u8],
    href: &'a str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.data.len() < n {
            return Err(corrupt(self.href, "a box is shorter than its fields"));
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }
    /// An unsigned integer of `n` bytes (0 to 8).
    fn uint(&mut self, n: usize) -> Result<u64> {
        Ok(self.take(n)?.iter().fold(0u64, |v, &b| v << 8 | b as u64))
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.uint(1)? as u8)
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(self.uint(2)? as u16)
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(self.uint(4)? as u32)
    }
    /// A full box's version and flags.
    fn full(&mut self) -> Result<(u8, u32)> {
        let v = self.u32()?;
        Ok(((v >> 24) as u8, v & 0xFF_FFFF))
    }
}

/// The primary item of the AVIF file `bytes`.
pub(crate) fn primary<'a>(href: &'a str, bytes: &'a [u8]) -> Result<Primary<'a>> {
    let top = boxes(href, bytes)?;
    let meta = top
        .iter()
        .find(|(k, _)| *k == b"meta")
        .ok_or_else(|| corrupt(href, "no meta box"))?
        .1;
    let mut r = Reader { data: meta, href };
    r.full()?;
    let children = boxes(href, r.data)?;
    let child = |kind: &[u8; 4]| children.iter().find(|(k, _)| *k == kind).map(|(_, b)| *b);

    let mut r = Reader {
        data: child(b"pitm").ok_or_else(|| corrupt(href, "no primary item (pitm)"))?,
        href,
    };
    let primary_id = match r.full()?.0 {
        0 => r.u16()? as u32,
        _ => r.u32()?,
    };

    // The item's type: only single coded AV1 images.
    if let Some(iinf) = child(b"iinf") {
        let mut r = Reader { data: iinf, href };
        let (v, _) = r.full()?;
        let _count = if v == 0 { r.u16()? as u32 } else { r.u32()? };
        for (kind, body) in boxes(href, r.data)? {
            if kind != b"infe" {
                continue;
            }
            let mut e = Reader { data: body, href };
            let (v, _) = e.full()?;
            if v < 2 {
                continue;
            }
            let id = if v == 2 { e.u16()? as u32 } else { e.u32()? };
            e.u16()?; // protection index
            let item_type = e.take(4)?;
            if id == primary_id && item_type != b"av01" {
                return Err(unsupported(
                    href,
                    format!(
                        "the primary item is a {:?} item (only single AV1 images are read, not grids)",
                        String::from_utf8_lossy(item_type)
                    ),
                ));
            }
        }
    }

    let mut primary = Primary::default();
    let iloc = child(b"iloc").ok_or_else(|| corrupt(href, "no item locations (iloc)"))?;
    primary.data = locate(href, bytes, child(b"idat"), iloc, primary_id)?;

    // Properties: the ones associated with the primary item, by their index in ipco.
    let iprp = boxes(
        href,
        child(b"iprp").ok_or_else(|| corrupt(href, "no item properties"))?,
    )?;
    let ipco = iprp
        .iter()
        .find(|(k, _)| *k == b"ipco")
        .map(|(_, b)| boxes(href, b))
        .transpose()?
        .ok_or_else(|| corrupt(href, "no property container (ipco)"))?;
    for (_, ipma) in iprp.iter().filter(|(k, _)| *k == b"ipma") {
        let mut r = Reader { data: ipma, href };
        let (v, flags) = r.full()?;
        for _ in 0..r.u32()? {
            let id = if v < 1 { r.u16()? as u32 } else { r.u32()? };
            let n = r.u8()?;
            for _ in 0..n {
                let index = if flags & 1 == 1 {
                    (r.u16()? & 0x7FFF) as usize
                } else {
                    (r.u8()? & 0x7F) as usize
                };
                if id != primary_id || index == 0 {
                    continue;
                }
                let Some(&(kind, body)) = ipco.get(index - 1) else {
                    return Err(corrupt(href, "a property index past the properties"));
                };
                property(href, &mut primary, kind, body)?;
            }
        }
    }
    if primary.av1c.is_empty() {
        return Err(corrupt(
            href,
            "the primary item has no AV1 configuration (av1C)",
        ));
    }
    Ok(primary)
}

/// One property of the primary item, recorded.
fn property<'a>(href: &'a str, p: &mut Primary<'a>, kind: &[u8; 4], body: &'a [u8]) -> Result<()> {
    let mut r = Reader { data: body, href };
    match kind {
        b"av1C" => p.av1c = body,
        b"ispe" => {
            r.full()?;
            p.size = Some((r.u32()?, r.u32()?));
        }
        b"colr" if body.starts_with(b"nclx") => {
            r.take(4)?;
            let (_primaries, _transfer) = (r.u16()?, r.u16()?);
            p.matrix = Some(r.u16()?);
            p.full_range = Some(r.u8()? & 0x80 != 0);
        }
        b"irot" => p.rotation = r.u8()? & 3,
        b"imir" => p.mirror = Some(r.u8()? & 1),
        _ => {}
    }
    Ok(())
}

/// Where the bytes of item `id` are (`iloc`): in the file, or in the meta box's `idat`.
///
/// Every offset and length is checked arithmetic: the item's extents must lie inside their
/// source and add up to at most its length, so what the decoder is handed is never more than
/// the file holds. The other items' extents are stepped over whole, without reading them.
fn locate<'a>(
    href: &'a str,
    file: &'a [u8],
    idat: Option<&'a [u8]>,
    iloc: &'a [u8],
    id: u32,
) -> Result<Vec<&'a [u8]>> {
    let mut r = Reader { data: iloc, href };
    let (v, _) = r.full()?;
    let sizes = r.u16()?;
    let (offset_size, length_size) = ((sizes >> 12) as usize, (sizes >> 8 & 15) as usize);
    let (base_size, index_size) = ((sizes >> 4 & 15) as usize, (sizes & 15) as usize);
    if [offset_size, length_size, base_size, index_size]
        .iter()
        .any(|&s| s > 8)
    {
        return Err(corrupt(
            href,
            "an item location field wider than 8 bytes (iloc)",
        ));
    }
    let index_size = if v == 1 || v == 2 { index_size } else { 0 };
    let extent_size = index_size + offset_size + length_size;
    let count = if v < 2 { r.u16()? as u32 } else { r.u32()? };
    for _ in 0..count {
        let item = if v < 2 { r.u16()? as u32 } else { r.u32()? };
        let method = if v == 1 || v == 2 { r.u16()? & 15 } else { 0 };
        r.u16()?; // data reference index
        let base = r.uint(base_size)?;
        let extents = r.u16()? as usize;
        if item != id {
            r.take(extents * extent_size)?;
            continue;
        }
        let source: &'a [u8] = match method {
            0 => file,
            1 => idat.ok_or_else(|| corrupt(href, "an item in idat, and no idat"))?,
            _ => {
                return Err(unsupported(
                    href,
                    "an item made from other items (iloc method 2)",
                ))
            }
        };
        let outside = || corrupt(href, "the picture's data runs past the end of the file");
        let mut out = Vec::new();
        let mut total = 0usize;
        for _ in 0..extents {
            r.uint(index_size)?;
            let offset = base.checked_add(r.uint(offset_size)?).ok_or_else(outside)?;
            let length = r.uint(length_size)?;
            let start = usize::try_from(offset)
                .ok()
                .filter(|&s| s <= source.len())
                .ok_or_else(outside)?;
            // A length of 0 is "to the end".
            let end = match length {
                0 => source.len(),
                n => usize::try_from(n)
                    .ok()
                    .and_then(|n| start.checked_add(n))
                    .filter(|&e| e <= source.len())
                    .ok_or_else(outside)?,
            };
            total = total
                .checked_add(end - start)
                .filter(|&t| t <= source.len())
                .ok_or_else(|| {
                    corrupt(
                        href,
                        "the picture's extents add up to more than the file holds",
                    )
                })?;
            out.push(&source[start..end]);
        }
        return Ok(out);
    }
    Err(corrupt(href, "the primary item has no location"))
}

impl Primary<'_> {
    /// The EXIF orientation (1 to 8) that turns the stored picture upright: `irot` first, then
    /// `imir`, as HEIF applies them.
    pub(crate) fn exif_orientation(&self) -> u8 {
        let a = self.rotation as usize;
        match self.mirror {
            None => [1, 8, 3, 6][a],
            Some(1) => [2, 7, 4, 5][a],
            Some(_) => [4, 5, 2, 7][a],
        }
    }
}

/// The largest frame an AV1 stream's sequence header allows (`max_frame_width_minus_1 + 1`,
/// `max_frame_height_minus_1 + 1`), from the first sequence header OBU in `obus` (the `av1C`
/// record's configuration OBUs, or the item's data). Read before decoding so that a picture
/// whose `ispe` understates it is refused before the decoder allocates a frame. `None` when no
/// complete sequence header is found (the decoder then reports what is wrong).
pub(crate) fn max_frame_size(obus: &[u8]) -> Option<(u32, u32)> {
    let mut data = obus;
    while !data.is_empty() {
        let header = *data.first()?;
        let kind = (header >> 3) & 15;
        let extension = header & 4 != 0;
        let has_size = header & 2 != 0;
        let mut at = 1 + extension as usize;
        let size = if has_size {
            let (size, n) = leb128(data.get(at..)?)?;
            at += n;
            usize::try_from(size).ok()?
        } else {
            data.len().checked_sub(at)?
        };
        let body = data.get(at..at.checked_add(size)?)?;
        if kind == 1 {
            return sequence_header_size(body);
        }
        data = &data[at + size..];
    }
    None
}

/// An AV1 `leb128()`: the value and the bytes it took.
fn leb128(data: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in data.iter().take(8).enumerate() {
        value |= ((b & 0x7F) as u64) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// A most-significant-bit-first reader of an OBU's payload.
struct Bits<'a> {
    data: &'a [u8],
    at: usize,
}

impl Bits<'_> {
    /// `f(n)`: `n` bits (at most 32).
    fn f(&mut self, n: u32) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = *self.data.get(self.at / 8)?;
            v = v << 1 | ((byte >> (7 - self.at % 8)) & 1) as u32;
            self.at += 1;
        }
        Some(v)
    }
    /// `uvlc()`, skipped.
    fn skip_uvlc(&mut self) -> Option<()> {
        let mut zeros = 0;
        while self.f(1)? == 0 {
            zeros += 1;
        }
        if zeros < 32 {
            self.f(zeros)?;
        }
        Some(())
    }
}

/// `sequence_header_obu()` (AV1 §5.5) read up to the maximum frame size.
fn sequence_header_size(body: &[u8]) -> Option<(u32, u32)> {
    let mut b = Bits { data: body, at: 0 };
    let _profile = b.f(3)?;
    let _still = b.f(1)?;
    let reduced = b.f(1)? == 1;
    if reduced {
        b.f(5)?; // seq_level_idx[0]
    } else {
        let mut decoder_model = false;
        let mut buffer_delay_bits = 0;
        if b.f(1)? == 1 {
            // timing_info()
            b.f(32)?;
            b.f(32)?;
            if b.f(1)? == 1 {
                b.skip_uvlc()?;
            }
            decoder_model = b.f(1)? == 1;
            if decoder_model {
                buffer_delay_bits = b.f(5)? + 1;
                b.f(32)?;
                b.f(5)?;
                b.f(5)?;
            }
        }
        let initial_display_delay = b.f(1)? == 1;
        let operating_points = b.f(5)? + 1;
        for _ in 0..operating_points {
            b.f(12)?; // operating_point_idc
            if b.f(5)? > 7 {
                b.f(1)?; // seq_tier
            }
            if decoder_model && b.f(1)? == 1 {
                b.f(buffer_delay_bits)?;
                b.f(buffer_delay_bits)?;
                b.f(1)?;
            }
            if initial_display_delay && b.f(1)? == 1 {
                b.f(4)?;
            }
        }
    }
    let width_bits = b.f(4)? + 1;
    let height_bits = b.f(4)? + 1;
    let w = b.f(width_bits)? as u64 + 1;
    let h = b.f(height_bits)? as u64 + 1;
    Some((u32::try_from(w).ok()?, u32::try_from(h).ok()?))
}

#[cfg(feature = "ffmpeg")]
pub(crate) use self::ffmpeg::decode;

/// Without FFmpeg there is no AV1 decoder in the build.
#[cfg(not(feature = "ffmpeg"))]
pub(crate) fn decode(
    href: &str,
    _bytes: &[u8],
    _max_pixels: u64,
    _to: super::bitmap::Destination,
) -> Result<(super::bitmap::Bitmap, u8)> {
    Err(unsupported(
        href,
        "decoding AV1 needs texcache's `ffmpeg` feature (FFmpeg's libdav1d or libaom decoder)",
    ))
}

/// The AV1 frame through FFmpeg.
///
/// # Safety
///
/// Every FFmpeg object is made and freed inside [`decode`], owned by one [`Codec`] (the
/// FFmpeg layer's drop guard), which frees each exactly once on every path out, errors and
/// panics included. Buffers handed to FFmpeg are its own (`av_mallocz`, `av_new_packet`),
/// written within their lengths; the frame's planes are read only through swscale, with the
/// frame's own pointers, strides and size.
#[cfg(feature = "ffmpeg")]
mod ffmpeg {
    use super::{corrupt, primary, unsupported};
    use crate::error::Result;
    use crate::ffmpeg::{ff_error, quiet_logs, Codec};
    use crate::observe::stats::PixelFormat;
    use crate::picture::bitmap::{Bitmap, Destination, PixelBuffer};
    use ffmpeg_sys_next as ff;
    use std::ffi::c_int;
    use std::ptr;

    /// The AVIF file `bytes` decoded into `to`: the picture as stored (RGBA8), and the EXIF
    /// orientation that turns it upright.
    pub(crate) fn decode(
        href: &str,
        bytes: &[u8],
        max_pixels: u64,
        to: Destination,
    ) -> Result<(Bitmap, u8)> {
        quiet_logs();
        let item = primary(href, bytes)?;
        if let Some((w, h)) = item.size {
            crate::picture::limits::check_pixels(href, w, h, max_pixels)?;
        }
        // The stream's own limit, which `ispe` may understate: from the configuration OBUs,
        // else from the item's first bytes.
        let first = item
            .data
            .iter()
            .find(|d| !d.is_empty())
            .copied()
            .unwrap_or(&[]);
        let stream = super::max_frame_size(item.av1c.get(4..).unwrap_or(&[]))
            .or_else(|| super::max_frame_size(first));
        if let Some((w, h)) = stream {
            crate::picture::limits::check_pixels(href, w, h, max_pixels)?;
        }
        // `locate` checked that the extents add up to at most the file's length.
        let data_len: usize = item.data.iter().map(|d| d.len()).sum();
        let too_big = || corrupt(href, "the picture's data is larger than FFmpeg takes");
        let data_len = c_int::try_from(data_len).map_err(|_| too_big())?;
        let extradata_len = c_int::try_from(item.av1c.len()).map_err(|_| too_big())?;
        let failed = |what: &str, code: c_int| corrupt(href, format!("{what}: {}", ff_error(code)));
        let mut o = Codec::default();
        // SAFETY: the module's rules; every call is checked before its result is used.
        unsafe {
            let codec = ["libdav1d", "libaom-av1"]
                .iter()
                .map(|n| {
                    let name = std::ffi::CString::new(*n).expect("no NUL");
                    ff::avcodec_find_decoder_by_name(name.as_ptr())
                })
                .find(|c| !c.is_null())
                .unwrap_or_else(|| ff::avcodec_find_decoder(ff::AVCodecID::AV_CODEC_ID_AV1));
            if codec.is_null() {
                return Err(unsupported(
                    href,
                    "this FFmpeg has no AV1 decoder (libdav1d or libaom)",
                ));
            }
            o.ctx = ff::avcodec_alloc_context3(codec);
            o.pkt = ff::av_packet_alloc();
            o.frame = ff::av_frame_alloc();
            if o.ctx.is_null() || o.pkt.is_null() || o.frame.is_null() {
                return Err(corrupt(href, "out of memory for the decoder"));
            }
            let pad = ff::AV_INPUT_BUFFER_PADDING_SIZE as usize;
            let extradata = ff::av_mallocz(item.av1c.len() + pad) as *mut u8;
            if extradata.is_null() {
                return Err(corrupt(href, "out of memory for the decoder"));
            }
            ptr::copy_nonoverlapping(item.av1c.as_ptr(), extradata, item.av1c.len());
            (*o.ctx).extradata = extradata;
            (*o.ctx).extradata_size = extradata_len;
            // The decoder's own limit too (libdav1d's frame size limit; every decoder's
            // buffer allocation), for streams whose later frames grow past the header.
            (*o.ctx).max_pixels = i64::try_from(max_pixels).unwrap_or(i64::MAX);
            let r = ff::avcodec_open2(o.ctx, codec, ptr::null_mut());
            if r < 0 {
                return Err(failed("cannot open the AV1 decoder", r));
            }
            let r = ff::av_new_packet(o.pkt, data_len);
            if r < 0 {
                return Err(failed("cannot hold the picture's data", r));
            }
            let mut at = (*o.pkt).data;
            for part in &item.data {
                ptr::copy_nonoverlapping(part.as_ptr(), at, part.len());
                at = at.add(part.len());
            }
            let r = ff::avcodec_send_packet(o.ctx, o.pkt);
            if r < 0 {
                return Err(failed("the AV1 decoder refused the picture", r));
            }
            ff::avcodec_send_packet(o.ctx, ptr::null());
            let r = ff::avcodec_receive_frame(o.ctx, o.frame);
            if r < 0 {
                return Err(failed("no picture decoded", r));
            }
            let f = &*o.frame;
            let (w, h) = (f.width, f.height);
            if w <= 0 || h <= 0 {
                return Err(corrupt(href, "the decoded picture is empty"));
            }
            crate::picture::limits::check_pixels(href, w as u32, h as u32, max_pixels)?;
            // The container's colour description first, then the bitstream's.
            let matrix = item.matrix.map_or(f.colorspace as c_int, |m| m as c_int);
            let full = item
                .full_range
                .unwrap_or(f.color_range == ff::AVColorRange::AVCOL_RANGE_JPEG);
            let src: ff::AVPixelFormat = std::mem::transmute(f.format);
            o.sws = ff::sws_getContext(
                w,
                h,
                src,
                w,
                h,
                ff::AVPixelFormat::AV_PIX_FMT_RGBA,
                (ff::SWS_BICUBIC | ff::SWS_ACCURATE_RND | ff::SWS_FULL_CHR_H_INT) as c_int,
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null(),
            );
            if o.sws.is_null() {
                return Err(unsupported(href, format!("cannot convert {src:?} to RGBA")));
            }
            ff::sws_setColorspaceDetails(
                o.sws,
                ff::sws_getCoefficients(matrix),
                full as c_int,
                ff::sws_getCoefficients(ff::SWS_CS_DEFAULT as c_int),
                1,
                0,
                1 << 16,
                1 << 16,
            );
            let mut rgba = PixelBuffer::new(href, to, w as usize * h as usize * 4)?;
            let dst = [
                rgba.as_mut_slice().as_mut_ptr(),
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
            ];
            let dst_stride = [w * 4, 0, 0, 0];
            let rows = ff::sws_scale(
                o.sws,
                f.data.as_ptr() as *const *const u8,
                f.linesize.as_ptr(),
                0,
                h,
                dst.as_ptr(),
                dst_stride.as_ptr(),
            );
            if rows != h {
                return Err(corrupt(href, "the picture could not be converted to RGBA"));
            }
            Ok((
                rgba.into_bitmap(w as u32, h as u32, PixelFormat::Rgba8),
                item.exif_orientation(),
            ))
        }
    }
}
