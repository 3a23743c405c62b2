//! Opening the files that hrefs, configs and traces name: regular files only, never blocking,
//! confined to `mediadir` where asked, and read only as far as their size said.
//!
//! Every file texcache reads goes through [`open_regular`], because a plain `File::open` is not
//! safe on hostile paths: opening a FIFO blocks until a writer comes (for ever, and with it
//! every later acquire of that key), and a device or a file that keeps growing can be read
//! without end. So a file is opened with `O_NONBLOCK` (a FIFO or device then opens at once),
//! checked with `fstat` on the opened descriptor to be a regular file, checked to lie inside
//! `mediadir` through the descriptor itself (a symlink swapped in after the check cannot
//! redirect it), and only then read, never past the length `fstat` gave.
//!
//! [`read_bounded`] reads such a file into memory with no allocation decided by the length the
//! file claims alone: the buffer grows with the bytes really read, up to that length.

use crate::error::{Error, ErrorKind, Result};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// An opened regular file and its length when it was opened.
pub(crate) struct Opened {
    /// The file, in blocking mode again (reads of a regular file never block for long).
    pub file: File,
    /// Its length from `fstat` on the descriptor: reads stop there, however the file grows.
    pub len: u64,
}

/// Opens `path` for reading without blocking, and checks on the descriptor that it is a
/// regular file and, with `confine_to` (a canonical mediadir), that it lies inside it.
///
/// Errors are the typed ones of §10 naming `href`: `NotFound`, `Permission`, `NotAFile`
/// (directories, FIFOs, sockets, devices), `OutsideMediadir`, `Io`.
pub(crate) fn open_regular(href: &str, path: &Path, confine_to: Option<&Path>) -> Result<Opened> {
    let io = |e| Error::io(href, path, e);
    let file = open_nonblocking(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(Error::new(href, ErrorKind::NotAFile { path: path.into() }));
    }
    if let Some(root) = confine_to {
        let real = opened_path(&file, path).map_err(io)?;
        if !real.starts_with(root) {
            return Err(Error::new(href, ErrorKind::OutsideMediadir { path: real }));
        }
    }
    set_blocking(&file).map_err(io)?;
    Ok(Opened {
        file,
        len: meta.len(),
    })
}

/// Reads at most `len` bytes of `file` (its length when opened), refusing files longer than
/// `max_len`: past [`EXACT_READ`] the buffer grows with the bytes read, so a sparse or lying
/// file costs only what it really delivers, and a file being appended to is read only as far
/// as it was long.
pub(crate) fn read_bounded(
    href: &str,
    path: &Path,
    opened: Opened,
    prefix: &[u8],
    max_len: u64,
) -> Result<Vec<u8>> {
    if opened.len > max_len {
        return Err(Error::new(
            href,
            ErrorKind::Unsupported {
                detail: format!(
                    "file of {} bytes is larger than any picture loader.max_pixels allows \
                 ({max_len} bytes)",
                    opened.len
                ),
            },
        ));
    }
    // Sized to the file up to `EXACT_READ`, so an ordinary picture is read with one allocation;
    // past that the buffer grows with what is really read.
    let mut bytes = Vec::with_capacity(opened.len.min(EXACT_READ) as usize);
    bytes.extend_from_slice(prefix);
    let rest = opened.len.saturating_sub(prefix.len() as u64);
    opened
        .file
        .take(rest)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(href, path, e))?;
    Ok(bytes)
}

/// Files up to this length are read into a buffer of their `fstat` length; longer ones into
/// one that grows with the bytes read.
const EXACT_READ: u64 = 64 << 20;

/// Reads up to `buf.len()` bytes (less only at the end of the file).
pub(crate) fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Reads a text file the user named (a config, a trace): a regular file, read without blocking
/// on a FIFO, as far as its length when opened, and UTF-8 (the error names the first line that
/// is not).
pub(crate) fn read_text(path: &Path) -> std::result::Result<String, TextError> {
    let file = open_nonblocking(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(TextError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    set_blocking(&file)?;
    let mut bytes = Vec::new();
    file.take(meta.len()).read_to_end(&mut bytes)?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        TextError::NotUtf8 {
            line: line_at(bytes, at),
        }
    })
}

/// The 1-based line of byte `offset`; a line ends at `\n`, `\r\n` or a lone `\r`.
pub(crate) fn line_at(text: &[u8], offset: usize) -> usize {
    let text = &text[..offset.min(text.len())];
    let lf = text.iter().filter(|&&b| b == b'\n').count();
    let lone_cr = text
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\r' && text.get(i + 1) != Some(&b'\n'))
        .count();
    lf + lone_cr + 1
}

/// Why a text file could not be read.
#[derive(Debug)]
pub(crate) enum TextError {
    /// The system refused, or the path is not a regular file.
    Io(std::io::Error),
    /// The bytes are not UTF-8, first at this line.
    NotUtf8 {
        /// 1-based.
        line: usize,
    },
}

impl TextError {
    /// The line the error is at, if it is about one.
    pub(crate) fn line(&self) -> Option<usize> {
        match self {
            TextError::Io(_) => None,
            TextError::NotUtf8 { line } => Some(*line),
        }
    }
}

impl From<std::io::Error> for TextError {
    fn from(e: std::io::Error) -> Self {
        TextError::Io(e)
    }
}

impl std::fmt::Display for TextError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TextError::Io(e) => e.fmt(f),
            TextError::NotUtf8 { .. } => f.write_str("not UTF-8 text"),
        }
    }
}

/// Creates (or truncates) `path` for writing, without blocking: a FIFO nobody reads is refused
/// at once (opening it would wait for a reader for ever); a device (`/dev/null`, a terminal)
/// or a FIFO with a reader is written as it is.
pub(crate) fn create_for_writing(path: &Path) -> std::io::Result<File> {
    #[cfg(unix)]
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
    };
    #[cfg(not(unix))]
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .open(path);
    let file = match file {
        Ok(f) => f,
        #[cfg(unix)]
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a FIFO that nobody reads",
            ))
        }
        Err(e) => return Err(e),
    };
    if file.metadata()?.is_file() {
        file.set_len(0)?;
    }
    set_blocking(&file)?;
    Ok(file)
}

/// Waits without a timeout until `fds[0]` or `fds[1]` has one of `events`, retrying when a
/// signal interrupts; the `revents` of each.
#[cfg(unix)]
pub(crate) fn poll_two(fds: [std::os::fd::RawFd; 2], events: i16) -> std::io::Result<[i16; 2]> {
    let mut p = fds.map(|fd| libc::pollfd {
        fd,
        events,
        revents: 0,
    });
    loop {
        // SAFETY: `p` is a valid array of two pollfd for the whole call; the descriptors are
        // the caller's, open for the call (poll only reports on them).
        let n = unsafe { libc::poll(p.as_mut_ptr(), 2, -1) };
        if n >= 0 {
            return Ok([p[0].revents, p[1].revents]);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
    }
    #[cfg(not(unix))]
    {
        File::open(path)
    }
}

fn set_blocking(file: &File) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        let fd = file.as_raw_fd();
        // SAFETY: `fd` is the open descriptor `file` owns for the duration of both calls;
        // F_GETFL and F_SETFL read and set its status flags and touch no memory.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    #[cfg(not(unix))]
    let _ = file;
    Ok(())
}

/// The real path of an open file (symlinks resolved on the descriptor where the system can).
fn opened_path(file: &File, path: &Path) -> std::io::Result<PathBuf> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let _ = path;
        std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        std::fs::canonicalize(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_file_that_grows_while_read_is_read_as_long_as_it_was() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("growing.png");
        std::fs::write(&path, b"\x89PNG\r\n\x1a\nfirst part").unwrap();
        let mut opened = open_regular("growing.png", &path, None).unwrap();
        assert_eq!(opened.len, 18);
        let mut head = [0u8; 8];
        assert_eq!(read_up_to(&mut opened.file, &mut head).unwrap(), 8);
        // A writer appends while the file is being read.
        let mut writer = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        writer.write_all(&[7u8; 1 << 20]).unwrap();
        let bytes = read_bounded("growing.png", &path, opened, &head, 1 << 30).unwrap();
        assert_eq!(bytes, b"\x89PNG\r\n\x1a\nfirst part");
    }

    #[test]
    fn files_longer_than_the_bound_are_refused_before_reading() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("long.png");
        std::fs::write(&path, [1u8; 100]).unwrap();
        let opened = open_regular("long.png", &path, None).unwrap();
        match read_bounded("long.png", &path, opened, &[], 99).map_err(|e| e.kind().clone()) {
            Err(ErrorKind::Unsupported { detail, .. }) => {
                assert!(detail.contains("100 bytes"), "{detail}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lines_end_at_lf_crlf_and_lone_cr() {
        assert_eq!(line_at(b"a\nb\r\nc\rd", 0), 1);
        assert_eq!(line_at(b"a\nb\r\nc\rd", 2), 2);
        assert_eq!(line_at(b"a\nb\r\nc\rd", 5), 3);
        assert_eq!(line_at(b"a\nb\r\nc\rd", 7), 4);
    }
}
