//! The command line's errors: the library's, and the graphs it could not write.

use std::path::PathBuf;

/// What a command can fail with.
#[derive(Debug)]
pub enum Error {
    /// The cache, a config, a trace, the socket: the library's error.
    Cache(texcache::Error),
    /// A graph could not be drawn or written.
    Plot {
        /// The SVG file.
        path: PathBuf,
        /// What went wrong, in words.
        detail: String,
    },
}

/// Result of a command.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<texcache::Error> for Error {
    fn from(e: texcache::Error) -> Error {
        Error::Cache(e)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Cache(e) => e.fmt(f),
            Error::Plot { path, detail } => {
                write!(f, "{}: cannot write the graph: {detail}", path.display())
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Cache(e) => Some(e),
            Error::Plot { .. } => None,
        }
    }
}
