//! Typed errors.
//!
//! Every failure names what it is about (an href, a file, a trace line) and why. Errors are
//! `Clone` because one failed load is handed to its caller *and* to every caller that waited
//! for the same key (§3.2); I/O errors are kept behind an `Arc` for that reason.

use std::path::PathBuf;
use std::sync::Arc;

/// Result alias used throughout texcache.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in texcache.
///
/// ```
/// let err = texcache::Error::NotFound { href: "cat.png".into(), path: "/media/cat.png".into() };
/// assert_eq!(err.to_string(), "cat.png: not found (/media/cat.png)");
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file behind an href does not exist.
    #[error("{href}: not found ({})", path.display())]
    NotFound {
        /// The href as the caller gave it (or the file named).
        href: String,
        /// The file or socket path it is about.
        path: PathBuf,
    },
    /// The file exists but may not be read.
    #[error("{href}: permission denied ({})", path.display())]
    Permission {
        /// The href as the caller gave it (or the file named).
        href: String,
        /// The file or socket path it is about.
        path: PathBuf,
    },
    /// The href names a directory or another non-regular file.
    #[error("{href}: not a regular file ({})", path.display())]
    NotAFile {
        /// The href as the caller gave it (or the file named).
        href: String,
        /// The file or socket path it is about.
        path: PathBuf,
    },
    /// Any other I/O failure while reading the file.
    #[error("{href}: cannot read {}: {source}", path.display())]
    Io {
        /// The href as the caller gave it (or the file named).
        href: String,
        /// The file or socket path it is about.
        path: PathBuf,
        /// The operating system's error.
        source: Arc<std::io::Error>,
    },
    /// The data is not in a format texcache decodes.
    #[error("{href}: unsupported format: {detail}")]
    Unsupported {
        /// The href as the caller gave it (or the file named).
        href: String,
        /// What went wrong, in words (the decoder's or driver's message where there is one).
        detail: String,
    },
    /// The decoder rejected the data.
    #[error("{href}: corrupt data: {detail}")]
    Corrupt {
        /// The href as the caller gave it (or the file named).
        href: String,
        /// What went wrong, in words (the decoder's or driver's message where there is one).
        detail: String,
    },
    /// The image header announces more pixels than `loader.max_pixels`; nothing was decoded.
    #[error("{href}: too many pixels: {width}x{height} exceeds loader.max_pixels = {max}")]
    TooManyPixels {
        /// The href as the caller gave it (or the file named).
        href: String,
        /// Width the header announces.
        width: u32,
        /// Height the header announces.
        height: u32,
        /// The `loader.max_pixels` in force.
        max: u64,
    },
    /// `confine = true` and the href resolves outside `mediadir` (lexically or via a symlink).
    #[error("{href}: outside mediadir ({})", path.display())]
    OutsideMediadir {
        /// The href as the caller gave it (or the file named).
        href: String,
        /// The file or socket path it is about.
        path: PathBuf,
    },
    /// The GPU refused: no adapter, device lost, out of memory, validation.
    #[error("{href}: GPU error: {detail}")]
    Gpu {
        /// The href as the caller gave it (or the file named).
        href: String,
        /// What went wrong, in words (the decoder's or driver's message where there is one).
        detail: String,
    },
    /// The GPU had no memory for a texture (after `pressure.gpu_retry` evicted what it could).
    #[error("{href}: GPU out of memory: {detail}")]
    GpuOutOfMemory {
        /// The href as the caller gave it (or the file named).
        href: String,
        /// The driver's message.
        detail: String,
    },
    /// The loader panicked; the panic was caught and turned into this error.
    #[error("{href}: load panicked: {message}")]
    LoadPanicked {
        /// The href as the caller gave it (or the file named).
        href: String,
        /// What went wrong, in words.
        message: String,
    },
    /// A configuration file is invalid.
    #[error("{}{}: {message}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Config {
        /// The file.
        file: PathBuf,
        /// The line (1-based; 0 or none when the whole file is meant).
        line: Option<usize>,
        /// What went wrong, in words.
        message: String,
    },
    /// A trace file is invalid.
    #[error("{}:{line}: {message}", file.display())]
    Trace {
        /// The file.
        file: PathBuf,
        /// The line (1-based; 0 or none when the whole file is meant).
        line: usize,
        /// What went wrong, in words.
        message: String,
    },
    /// The control socket cannot be served (§9).
    #[error("control socket {path}: {detail}")]
    Socket {
        /// The file or socket path it is about.
        path: PathBuf,
        /// What went wrong, in words (the decoder's or driver's message where there is one).
        detail: String,
    },
    /// A graph could not be drawn or written.
    #[error("{}: cannot write the graph: {detail}", path.display())]
    Plot {
        /// The file or socket path it is about.
        path: PathBuf,
        /// What went wrong, in words (the decoder's or driver's message where there is one).
        detail: String,
    },
    /// A thread texcache needs could not be started (the system's limit on threads or memory).
    #[error("cannot start {what}: {source}")]
    Thread {
        /// Which thread, in words (`prefetch thread 3 of 8`).
        what: String,
        /// The operating system's error.
        source: Arc<std::io::Error>,
    },
    /// A non-blocking request ([`crate::request::Request`]) whose load never ran: the cache
    /// shut down (its last clone dropped) before a loader thread took it up.
    #[error("{href}: the request was dropped before it loaded (the cache shut down)")]
    Cancelled {
        /// The href as the caller gave it.
        href: String,
    },
    /// A video source problem (bad header, unsupported chroma format, truncated frame).
    #[error("{href}: {detail}")]
    Video {
        /// The href as the caller gave it (or the file named).
        href: String,
        /// What went wrong, in words (the decoder's or driver's message where there is one).
        detail: String,
    },
}

impl Error {
    /// The href (or file) this error is about.
    pub fn href(&self) -> Option<&str> {
        match self {
            Error::NotFound { href, .. }
            | Error::Permission { href, .. }
            | Error::NotAFile { href, .. }
            | Error::Io { href, .. }
            | Error::Unsupported { href, .. }
            | Error::Corrupt { href, .. }
            | Error::TooManyPixels { href, .. }
            | Error::OutsideMediadir { href, .. }
            | Error::Gpu { href, .. }
            | Error::GpuOutOfMemory { href, .. }
            | Error::LoadPanicked { href, .. }
            | Error::Cancelled { href }
            | Error::Video { href, .. } => Some(href),
            Error::Config { .. }
            | Error::Trace { .. }
            | Error::Socket { .. }
            | Error::Plot { .. }
            | Error::Thread { .. } => None,
        }
    }

    /// Classifies an I/O error on `path` into the typed variants of §10.
    pub(crate) fn io(href: &str, path: &std::path::Path, e: std::io::Error) -> Error {
        let (href, path) = (href.to_owned(), path.to_owned());
        match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound { href, path },
            std::io::ErrorKind::PermissionDenied => Error::Permission { href, path },
            std::io::ErrorKind::IsADirectory => Error::NotAFile { href, path },
            _ => Error::Io {
                href,
                path,
                source: Arc::new(e),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Error as IoError, ErrorKind};

    #[test]
    fn io_errors_are_classified() {
        let p = std::path::Path::new("/m/a.png");
        assert!(matches!(
            Error::io("a.png", p, IoError::from(ErrorKind::NotFound)),
            Error::NotFound { .. }
        ));
        assert!(matches!(
            Error::io("a.png", p, IoError::from(ErrorKind::PermissionDenied)),
            Error::Permission { .. }
        ));
        assert!(matches!(
            Error::io("a.png", p, IoError::from(ErrorKind::IsADirectory)),
            Error::NotAFile { .. }
        ));
        let e = Error::io("a.png", p, IoError::from(ErrorKind::PermissionDenied));
        assert_eq!(e.to_string(), "a.png: permission denied (/m/a.png)");
    }
}
