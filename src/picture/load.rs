//! Reading the file behind an href for [`mod@super::decode`] to decode.
//!
//! Files are opened as `crate::os::file` opens every file (never blocking, regular files only,
//! confined on the descriptor), sniffed before they are read, and read no further than their
//! length when opened. Every failure is a typed [`Error`] naming the href.

use super::bitmap::Bitmap;
use super::decode::{decode, is_picture, DecodeOptions};
use crate::error::{Error, ErrorKind, Result};
use crate::os::file::{open_regular, read_bounded, read_up_to};
use std::path::Path;

/// The longest file texcache reads as a picture with `loader.max_pixels = max_pixels`: 8 bytes
/// per pixel (16-bit RGBA stored raw, the most any supported format needs) plus 16 MiB of
/// metadata. Anything longer is refused from its `fstat` length before a byte is read.
pub fn max_file_bytes(max_pixels: u64) -> u64 {
    max_pixels.saturating_mul(8).saturating_add(16 << 20)
}

/// Reads the file of `href` for decoding. `confine_to`: the canonical mediadir the opened file
/// must lie in; checked on the open file itself, so a symlink swapped in after the key was
/// computed is caught too.
///
/// The file is opened without blocking and must be a regular file (a FIFO is `NotAFile`, not a
/// hang); its first bytes are sniffed before the rest is read, so a file in no format texcache
/// decodes costs a few bytes; a file longer than [`max_file_bytes`] is refused from its length;
/// and no more than the length it had when opened is read.
pub(crate) fn read_file(
    href: &str,
    path: &Path,
    confine_to: Option<&Path>,
    max_pixels: u64,
) -> Result<Vec<u8>> {
    let options = DecodeOptions::new(max_pixels);
    let mut opened = open_regular(href, path, confine_to)?;
    let mut head = [0u8; 32];
    let n = read_up_to(&mut opened.file, &mut head).map_err(|e| Error::io(href, path, e))?;
    let head = &head[..n];
    if !is_picture(href, head) {
        // The decoder's own message for data in no format it knows (or an empty file).
        return Err(decode(href, head, &options).err().unwrap_or_else(|| {
            Error::new(
                href,
                ErrorKind::Unsupported {
                    detail: "not a recognised image format".into(),
                },
            )
        }));
    }
    read_bounded(href, path, opened, head, max_file_bytes(max_pixels))
}

/// Reads a file (sniffed first, bounded by [`max_file_bytes`]) and decodes it with [`decode`].
pub fn load_file(
    href: &str,
    path: &Path,
    confine_to: Option<&Path>,
    options: &DecodeOptions,
) -> Result<Bitmap> {
    let bytes = read_file(href, path, confine_to, options.max_pixels)?;
    decode(href, &bytes, options)
}
