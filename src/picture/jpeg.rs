//! JPEG's byte-level structure, for the decoders (`decode.rs` with zune-jpeg, `turbojpeg.rs`
//! with libjpeg-turbo) and the checks made before them: the header's segments as libjpeg-turbo
//! reads them, and libjpeg-turbo's CMYK output turned into RGBA. A leaf: it imports nothing of
//! texcache's.

/// The segments of a JPEG's header, from after SOI up to and including its first
/// start-of-scan: `(marker, start, end)` with `b[start..end]` the whole segment (marker and
/// length included). Junk between segments is skipped as libjpeg-turbo skips it (to the next
/// `0xFF`), and so are fill bytes. A last item with marker 0 means the data ended inside the
/// header.
pub(crate) fn jpeg_segments(b: &[u8]) -> impl Iterator<Item = (u8, usize, usize)> + '_ {
    let mut i = 2;
    let mut done = false;
    std::iter::from_fn(move || loop {
        if done {
            return None;
        }
        while i < b.len() && b[i] != 0xFF {
            i += 1;
        }
        let at = i;
        while i < b.len() && b[i] == 0xFF {
            i += 1;
        }
        let Some(&m) = b.get(i) else {
            done = true;
            return Some((0, at, b.len()));
        };
        i += 1;
        if matches!(m, 0x00 | 0x01 | 0xD0..=0xD8) {
            continue;
        }
        if m == 0xD9 {
            done = true;
            return Some((0, at, i));
        }
        let Some(len) = b
            .get(i..i + 2)
            .map(|l| u16::from_be_bytes([l[0], l[1]]) as usize)
        else {
            done = true;
            return Some((0, at, b.len()));
        };
        i = (i + len.max(2)).min(b.len());
        done = m == 0xDA;
        return Some((m, at, i));
    })
}

/// Converts Adobe-inverted CMYK pixels (as libjpeg-turbo gives them) to opaque RGBA in place,
/// with Pillow's arithmetic (`CMYK;I` read, then `convert("RGB")`): with `k` the stored black,
/// each channel is `k - k (255 - c) / 255`, divided by 255 with rounding.
pub(crate) fn inverted_cmyk_to_rgba(pixels: &mut [u8]) {
    let muldiv255 = |a: u32, b: u32| {
        let t = a * b + 128;
        ((t >> 8) + t) >> 8
    };
    for px in pixels.chunks_exact_mut(4) {
        let k = px[3] as u32;
        for c in &mut px[..3] {
            *c = (k - muldiv255(255 - *c as u32, k)) as u8;
        }
        px[3] = 255;
    }
}
