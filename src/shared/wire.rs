//! The messages between the owner of a shared cache and its clients (§12), one per
//! `SOCK_SEQPACKET` packet, little-endian; a picture's descriptor travels with the reply that
//! names it (`SCM_RIGHTS`).
//!
//! Client to owner:
//!
//! | tag | message | body |
//! | --- | --- | --- |
//! | 1 | acquire | fit width u32, fit height u32 (0, 0: no fit), the href |
//! | 3 | prefetch | fit width u32, fit height u32, then hrefs, each a u32 length and its bytes |
//! | 4 | remove | the href |
//! | 5 | stats | nothing |
//!
//! Owner to client: first, on connecting, 6 the client's hold table (with its descriptor); then
//! one reply per request: 1 a picture (id u64, width u32, height u32, format u8, bytes u64, the
//! hold's slot u32 and its generation u32, with the picture's descriptor), 2 an error (kind u8,
//! width u32, height u32, max u64, then the href and a text, each a u32 length and its bytes),
//! 3 done, 4 a bool (u8), 5 a JSON text.
//!
//! # The hold table
//!
//! Each client has a table of 64-bit words in shared memory that it and the owner both write,
//! always as atomics. Word 0 counts the hits the client served itself; word `1 + s` is hold
//! slot `s`: a generation (high 32 bits) and a count of holds (low 32 bits). The owner gives a
//! client a slot for each picture it holds (a handle in the owner's tier) and counts one hold
//! per picture it sends; the client adds a hold for a picture it already knows with a
//! compare-and-swap that keeps the generation (a hit with no message at all) and drops a hold
//! by decrementing. The owner takes a slot back only from zero holds, with a compare-and-swap
//! that bumps the generation (then lets go of its handle): so either the client's increment
//! lands first, and the owner sees a hold and keeps the picture, or the owner's lands first,
//! and the client sees a new generation and asks the owner instead. The top bit of a slot word
//! ([`STALE`]) tells the client to ask the owner (after a `remove`) without taking the slot
//! from the views that still hold it.

use crate::error::{Error, ErrorKind};
use crate::observe::stats::PixelFormat;
use std::path::PathBuf;
use std::sync::Arc;

/// The longest message either side sends or accepts: a prefetch of many hrefs.
pub(crate) const MAX_MESSAGE: usize = 1 << 20;

pub(crate) const ACQUIRE: u8 = 1;
pub(crate) const PREFETCH: u8 = 3;
pub(crate) const REMOVE: u8 = 4;
pub(crate) const STATS: u8 = 5;

pub(crate) const PICTURE: u8 = 1;
pub(crate) const ERROR: u8 = 2;
pub(crate) const DONE: u8 = 3;
pub(crate) const BOOL: u8 = 4;
pub(crate) const JSON: u8 = 5;
pub(crate) const TABLE: u8 = 6;

/// Hold slots in a client's table: the pictures one client may hold at once.
pub(crate) const SLOTS: usize = 1 << 14;
/// Words in a client's table: its hit count, then the slots.
pub(crate) const TABLE_WORDS: usize = 1 + SLOTS;
/// The holds in a slot's word.
pub(crate) const COUNT: u64 = 0xffff_ffff;
/// A slot's flag: the picture may no longer be what its href names (a `remove`), so a hit
/// asks the owner.
pub(crate) const STALE: u64 = 1 << 63;

/// A slot word's generation (without the flag).
pub(crate) fn generation(word: u64) -> u32 {
    ((word >> 32) & 0x7fff_ffff) as u32
}

/// A pixel format's code in a picture message.
pub(crate) fn format_code(f: PixelFormat) -> u8 {
    match f {
        PixelFormat::Rgba8 => 1,
        PixelFormat::Gray8 => 2,
        PixelFormat::Yuv420 => 3,
    }
}

/// The pixel format of a bitmap's code; `None` for any other.
pub(crate) fn format_of(code: u8) -> Option<PixelFormat> {
    match code {
        1 => Some(PixelFormat::Rgba8),
        2 => Some(PixelFormat::Gray8),
        _ => None,
    }
}

/// A request, as the owner reads it.
#[derive(Debug, PartialEq)]
pub(crate) enum Request {
    Acquire(String, Option<(u32, u32)>),
    Prefetch(Vec<String>, Option<(u32, u32)>),
    Remove(String),
    Stats,
}

/// A message being written.
pub(crate) struct Writer(pub(crate) Vec<u8>);

impl Writer {
    pub(crate) fn new(tag: u8) -> Writer {
        Writer(vec![tag])
    }
    pub(crate) fn u8(mut self, v: u8) -> Writer {
        self.0.push(v);
        self
    }
    pub(crate) fn u32(mut self, v: u32) -> Writer {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub(crate) fn u64(mut self, v: u64) -> Writer {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub(crate) fn bytes(mut self, v: &[u8]) -> Writer {
        self.0.extend_from_slice(v);
        self
    }
    /// A u32 length and the bytes.
    pub(crate) fn text(self, v: &str) -> Writer {
        self.u32(v.len() as u32).bytes(v.as_bytes())
    }
    pub(crate) fn fit(self, fit: Option<(u32, u32)>) -> Writer {
        let (w, h) = fit.unwrap_or((0, 0));
        self.u32(w).u32(h)
    }
}

/// A message being read: each read fails (`None`) past its end.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }
    pub(crate) fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    pub(crate) fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    pub(crate) fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    /// A u32 length and that many bytes of UTF-8.
    pub(crate) fn text(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    /// The rest, as UTF-8.
    pub(crate) fn rest_text(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.0);
        String::from_utf8(rest.to_vec()).ok()
    }
    pub(crate) fn fit(&mut self) -> Option<Option<(u32, u32)>> {
        let (w, h) = (self.u32()?, self.u32()?);
        Some((w > 0 && h > 0).then_some((w, h)))
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Parses a request; `None` for anything malformed (an unknown tag, a short or long body,
/// text that is not UTF-8), which ends the client's connection.
pub(crate) fn parse_request(message: &[u8]) -> Option<Request> {
    let (&tag, body) = message.split_first()?;
    let mut r = Reader(body);
    let request = match tag {
        ACQUIRE => {
            let fit = r.fit()?;
            Request::Acquire(r.rest_text()?, fit)
        }
        PREFETCH => {
            let fit = r.fit()?;
            let mut hrefs = Vec::new();
            while !r.is_empty() {
                hrefs.push(r.text()?);
            }
            Request::Prefetch(hrefs, fit)
        }
        REMOVE => Request::Remove(r.rest_text()?),
        STATS => Request::Stats,
        _ => return None,
    };
    r.is_empty().then_some(request)
}

/// An error as a message: its kind, and what the client needs to make the same error.
pub(crate) fn error_message(e: &Error) -> Writer {
    let href = e.href().unwrap_or("");
    let (code, w, h, max, text) = match e.kind() {
        ErrorKind::NotFound { path } => (1, 0, 0, 0, path.display().to_string()),
        ErrorKind::Permission { path } => (2, 0, 0, 0, path.display().to_string()),
        ErrorKind::NotAFile { path } => (3, 0, 0, 0, path.display().to_string()),
        ErrorKind::Io { path, source } => (4, 0, 0, 0, format!("{}\0{source}", path.display())),
        ErrorKind::Unsupported { detail } => (5, 0, 0, 0, detail.clone()),
        ErrorKind::Corrupt { detail } => (6, 0, 0, 0, detail.clone()),
        ErrorKind::TooManyPixels { width, height, max } => {
            (7, *width, *height, *max, String::new())
        }
        ErrorKind::OutsideMediadir { path } => (8, 0, 0, 0, path.display().to_string()),
        ErrorKind::LoadPanicked { message } => (9, 0, 0, 0, message.clone()),
        ErrorKind::Cancelled => (10, 0, 0, 0, String::new()),
        other => (0, 0, 0, 0, other.to_string()),
    };
    Writer::new(ERROR)
        .u8(code)
        .u32(w)
        .u32(h)
        .u64(max)
        .text(href)
        .text(&text)
}

/// The error an error message stands for; `None` if it is malformed.
pub(crate) fn parse_error(body: &[u8]) -> Option<Error> {
    let mut r = Reader(body);
    let (code, width, height, max) = (r.u8()?, r.u32()?, r.u32()?, r.u64()?);
    let (href, text) = (r.text()?, r.text()?);
    let path = || PathBuf::from(&text);
    let kind = match code {
        1 => ErrorKind::NotFound { path: path() },
        2 => ErrorKind::Permission { path: path() },
        3 => ErrorKind::NotAFile { path: path() },
        4 => {
            let (p, source) = text.split_once('\0').unwrap_or((&text, ""));
            ErrorKind::Io {
                path: p.into(),
                source: Arc::new(std::io::Error::other(source.to_string())),
            }
        }
        5 => ErrorKind::Unsupported { detail: text },
        6 => ErrorKind::Corrupt { detail: text },
        7 => ErrorKind::TooManyPixels { width, height, max },
        8 => ErrorKind::OutsideMediadir { path: path() },
        9 => ErrorKind::LoadPanicked { message: text },
        10 => ErrorKind::Cancelled,
        _ => ErrorKind::Video { detail: text },
    };
    Some(Error::new(href, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_back_and_malformed_ones_are_refused() {
        let m = Writer::new(ACQUIRE).fit(Some((4, 3))).bytes(b"a.png").0;
        assert_eq!(
            parse_request(&m),
            Some(Request::Acquire("a.png".into(), Some((4, 3))))
        );
        let m = Writer::new(PREFETCH).fit(None).text("a").text("b").0;
        assert_eq!(
            parse_request(&m),
            Some(Request::Prefetch(vec!["a".into(), "b".into()], None))
        );
        for bad in [
            &b""[..],
            b"\x09",
            b"\x02\x01",
            b"\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00",
            b"\x01\x00",
            b"\x03\x00\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00ab",
            b"\x04\xff",
        ] {
            assert_eq!(parse_request(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn errors_cross_with_their_kind_and_message() {
        let e = Error::new(
            "big.png",
            ErrorKind::TooManyPixels {
                width: 9,
                height: 8,
                max: 7,
            },
        );
        let back = parse_error(&error_message(&e).0[1..]).unwrap();
        assert_eq!(back.to_string(), e.to_string());
        assert!(matches!(
            back.kind(),
            ErrorKind::TooManyPixels {
                width: 9,
                height: 8,
                max: 7
            }
        ));
        let e = Error::new(
            "a.png",
            ErrorKind::NotFound {
                path: "/m/a.png".into(),
            },
        );
        assert_eq!(
            parse_error(&error_message(&e).0[1..]).unwrap().to_string(),
            e.to_string()
        );
    }
}
