//! Typed errors.
//!
//! Every failure names what it is about and why: an [`Error`] carries the href it is about (when
//! it is about one) once, and an [`ErrorKind`] that says what went wrong, with the file, the
//! sizes or the decoder's words that kind needs. Errors are `Clone` because one failed load is
//! handed to its caller *and* to every caller that waited for the same key (§3.2); I/O errors
//! are kept behind an `Arc` for that reason. An `Error` is one pointer wide, so a `Result`
//! of a handle stays small.

use std::path::PathBuf;
use std::sync::Arc;

/// Result alias used throughout texcache.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in texcache: the href it is about, if any, and what went
/// wrong ([`Error::kind`]). Its message is the href, a colon, and the kind's message.
///
/// ```
/// use texcache::{Error, ErrorKind};
/// let err = Error::new("cat.png", ErrorKind::NotFound { path: "/media/cat.png".into() });
/// assert_eq!(err.to_string(), "cat.png: not found (/media/cat.png)");
/// assert!(matches!(err.kind(), ErrorKind::NotFound { .. }));
/// assert_eq!(err.href(), Some("cat.png"));
/// ```
#[derive(Clone)]
pub struct Error(Box<Inner>);

#[derive(Clone)]
struct Inner {
    href: Option<String>,
    kind: ErrorKind,
}

impl Error {
    /// An error about `href` (or the file named, for files texcache was given by path).
    pub fn new(href: impl Into<String>, kind: ErrorKind) -> Error {
        Error(Box::new(Inner {
            href: Some(href.into()),
            kind,
        }))
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.0.kind
    }

    /// The href (or file) this error is about; `None` for errors about no picture (a config
    /// file, a trace line, the control socket, a thread).
    pub fn href(&self) -> Option<&str> {
        self.0.href.as_deref()
    }

    /// Classifies an I/O error on `path` into the typed variants of §10.
    pub(crate) fn io(href: &str, path: &std::path::Path, e: std::io::Error) -> Error {
        let path = path.to_owned();
        let kind = match e.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound { path },
            std::io::ErrorKind::PermissionDenied => ErrorKind::Permission { path },
            std::io::ErrorKind::IsADirectory => ErrorKind::NotAFile { path },
            _ => ErrorKind::Io {
                path,
                source: Arc::new(e),
            },
        };
        Error::new(href, kind)
    }
}

impl From<ErrorKind> for Error {
    /// An error about no href.
    fn from(kind: ErrorKind) -> Error {
        Error(Box::new(Inner { href: None, kind }))
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0.href {
            Some(href) => write!(f, "{href}: {}", self.0.kind),
            None => write!(f, "{}", self.0.kind),
        }
    }
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Error")
            .field("href", &self.0.href)
            .field("kind", &self.0.kind)
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.0.kind)
    }
}

/// What went wrong: the kind of an [`Error`], with what the kind needs to be told apart
/// (the file, the sizes, the decoder's words).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file behind an href does not exist.
    #[error("not found ({})", path.display())]
    NotFound {
        /// The file or socket path it is about.
        path: PathBuf,
    },
    /// The file exists but may not be read.
    #[error("permission denied ({})", path.display())]
    Permission {
        /// The file or socket path it is about.
        path: PathBuf,
    },
    /// The href names a directory or another non-regular file.
    #[error("not a regular file ({})", path.display())]
    NotAFile {
        /// The file or socket path it is about.
        path: PathBuf,
    },
    /// Any other I/O failure while reading the file.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file or socket path it is about.
        path: PathBuf,
        /// The operating system's error.
        source: Arc<std::io::Error>,
    },
    /// The data is not in a format texcache decodes.
    #[error("unsupported format: {detail}")]
    Unsupported {
        /// What went wrong, in words (the decoder's or driver's message where there is one).
        detail: String,
    },
    /// The decoder rejected the data.
    #[error("corrupt data: {detail}")]
    Corrupt {
        /// What went wrong, in words (the decoder's or driver's message where there is one).
        detail: String,
    },
    /// The image header announces more pixels than `loader.max_pixels`; nothing was decoded.
    #[error("too many pixels: {width}x{height} exceeds loader.max_pixels = {max}")]
    TooManyPixels {
        /// Width the header announces.
        width: u32,
        /// Height the header announces.
        height: u32,
        /// The `loader.max_pixels` in force.
        max: u64,
    },
    /// `confine = true` and the href resolves outside `mediadir` (lexically or via a symlink).
    #[error("outside mediadir ({})", path.display())]
    OutsideMediadir {
        /// The file or socket path it is about.
        path: PathBuf,
    },
    /// The GPU refused: no adapter, device lost, out of memory, validation.
    #[error("GPU error: {detail}")]
    Gpu {
        /// What went wrong, in words (the decoder's or driver's message where there is one).
        detail: String,
    },
    /// The GPU had no memory for a texture (after `pressure.gpu_retry` evicted what it could).
    #[error("GPU out of memory: {detail}")]
    GpuOutOfMemory {
        /// The driver's message.
        detail: String,
    },
    /// The loader panicked; the panic was caught and turned into this error.
    #[error("load panicked: {message}")]
    LoadPanicked {
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
    /// A thread texcache needs could not be started (the system's limit on threads or memory).
    #[error("cannot start {what}: {source}")]
    Thread {
        /// Which thread, in words (`prefetch thread 3 of 8`).
        what: String,
        /// The operating system's error.
        source: Arc<std::io::Error>,
    },
    /// A non-blocking request ([`crate::Request`]) whose load never ran: the cache
    /// shut down (its last clone dropped) before a loader thread took it up.
    #[error("the request was dropped before it loaded (the cache shut down)")]
    Cancelled,
    /// A video source problem (bad header, unsupported chroma format, truncated frame).
    #[error("{detail}")]
    Video {
        /// What went wrong, in words (the decoder's or driver's message where there is one).
        detail: String,
    },
    /// The owner of a shared cache (§12) has ended: a client's calls fail with this at once
    /// (the views it holds stay readable).
    #[error("the owner of the shared cache at {} has ended", socket.display())]
    OwnerGone {
        /// The socket the client connected to.
        socket: PathBuf,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Error as IoError, ErrorKind as IoKind};

    #[test]
    fn io_errors_are_classified() {
        let p = std::path::Path::new("/m/a.png");
        assert!(matches!(
            *Error::io("a.png", p, IoError::from(IoKind::NotFound)).kind(),
            ErrorKind::NotFound { .. }
        ));
        assert!(matches!(
            *Error::io("a.png", p, IoError::from(IoKind::PermissionDenied)).kind(),
            ErrorKind::Permission { .. }
        ));
        assert!(matches!(
            *Error::io("a.png", p, IoError::from(IoKind::IsADirectory)).kind(),
            ErrorKind::NotAFile { .. }
        ));
        let e = Error::io("a.png", p, IoError::from(IoKind::PermissionDenied));
        assert_eq!(e.to_string(), "a.png: permission denied (/m/a.png)");
    }
}
