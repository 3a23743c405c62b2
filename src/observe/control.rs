//! The control socket (§9): a running application's memory statistics, on request.
//!
//! When `stats.socket` is set, the cache serves a Unix-domain socket from one small thread.
//! The server knows nothing of the cache: it hands each request line to a handler (the
//! cache's `answer`) and writes back what that returns.
//! A request is one line, the answer one line of JSON: `stats`, `stats entries`,
//! `trim cpu|gpu SIZE`; anything else gets `{"error": "..."}`. The server can neither block
//! the application nor grow its memory, whatever clients do:
//!
//! - it runs on its own thread and takes the cache's locks only as long as a stats snapshot;
//! - clients are served one at a time, each with a budget of 500 ms for its request and
//!   answer (a client that connects and never writes is dropped when it runs out);
//! - a request is read into one fixed 4 KiB buffer; a longer line is answered with an error
//!   and the connection closed; waiting clients wait in the kernel's listen backlog.
//!
//! The socket is created with mode 0600 inside a private 0700 directory (with a random name, so
//! nobody can make it fail or take it over in a shared folder) and then renamed into place, so
//! nobody else can connect even for an instant. The server thread waits in `poll` on the
//! listener and a pipe; dropping the server closes the pipe's other end, which wakes it
//! whatever became of the socket file meanwhile. A stale socket at the path (nobody
//! accepting) is replaced; any other existing file is left untouched and reported. The socket
//! is removed when the cache is dropped.

use crate::error::{Error, Result};
use crate::os::socket::{pipe, SocketFile};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest request line, newline included.
pub(crate) const MAX_REQUEST: usize = 4096;
/// How long one client may take to send its request.
pub(crate) const CLIENT_TIME: Duration = Duration::from_millis(500);

/// What answers the server's requests: the answer line to a request line, or `None` when there
/// is nothing left to serve.
pub(crate) type Handler = Box<dyn Fn(&str) -> Option<String> + Send>;

/// A running control socket; dropping it stops the thread and removes the socket.
pub(crate) struct Server {
    /// Declared before the thread so that the socket file goes after the thread has stopped.
    _file: SocketFile,
    /// The write end of the server thread's wake-up pipe: dropping it wakes the thread's
    /// `poll`, whatever happened to the socket's path meanwhile.
    wake: Option<OwnedFd>,
    thread: Option<JoinHandle<()>>,
}

fn socket_err(path: &Path, detail: impl Into<String>) -> Error {
    Error::from(crate::error::ErrorKind::Socket {
        path: path.into(),
        detail: detail.into(),
    })
}

impl Server {
    /// Serves `handler` at `path`: it answers each request line, or says with `None` that
    /// there is nothing left to serve (the cache it asks is gone), which ends the server.
    pub(crate) fn start(path: &Path, handler: Handler) -> Result<Server> {
        let err = |d: String| socket_err(path, d);
        let (listener, file) =
            SocketFile::bind(path, |p: &Path| UnixListener::bind(p)).map_err(err)?;
        let (wake_read, wake) = pipe().map_err(|e| err(format!("cannot make a pipe: {e}")))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| err(e.to_string()))?;
        let thread = std::thread::Builder::new()
            .name("texcache-control".into())
            .spawn(move || serve(listener, handler, wake_read))
            .map_err(|e| err(format!("cannot start the server thread: {e}")))?;
        Ok(Server {
            _file: file,
            wake: Some(wake),
            thread: Some(thread),
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Closing the pipe's write end wakes the thread's poll; it sees the hang-up and
        // returns. (Not a connection to the path: the file there may be gone or another's.)
        drop(self.wake.take());
        if let Some(t) = self.thread.take() {
            // The server thread itself may drop the last reference to the cache (it holds one
            // while answering); it must not wait for itself.
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
        // The socket file is removed (if still ours) when `_file` drops, after this.
    }
}

fn serve(listener: UnixListener, handler: Handler, wake: OwnedFd) {
    let mut buf = [0u8; MAX_REQUEST];
    loop {
        if !crate::os::socket::wait_for_connection(listener.as_fd(), wake.as_fd()) {
            return; // the Server was dropped
        }
        let mut conn = match listener.accept() {
            Ok((conn, _)) => conn,
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                continue
            }
            // Out of descriptors or memory: wait for the next wake-up rather than spin.
            Err(_) => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if conn.set_nonblocking(false).is_err() {
            continue;
        }
        let Some(request) = read_request(&mut conn, &mut buf) else {
            continue;
        };
        let answer = match request {
            Ok(line) => match handler(line) {
                Some(answer) => answer,
                None => return,
            },
            Err(e) => error_json(&e),
        };
        let _ = conn.set_write_timeout(Some(CLIENT_TIME));
        let _ = conn.write_all(answer.as_bytes());
        let _ = conn.write_all(b"\n");
    }
}

/// Reads one request line within [`CLIENT_TIME`]: `None` if the client gave up or ran out of
/// time, `Some(Err)` for a line that is too long or not UTF-8.
fn read_request<'b>(
    conn: &mut UnixStream,
    buf: &'b mut [u8; MAX_REQUEST],
) -> Option<std::result::Result<&'b str, String>> {
    let deadline = Instant::now() + CLIENT_TIME;
    let mut n = 0;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        conn.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok()?;
        if n == buf.len() {
            return Some(Err(format!("request longer than {MAX_REQUEST} bytes")));
        }
        match conn.read(&mut buf[n..]) {
            Ok(0) if n == 0 => return None,
            Ok(0) => break,
            Ok(k) => {
                n += k;
                if buf[..n].contains(&b'\n') {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    let line = buf[..n].split(|&b| b == b'\n').next().unwrap_or_default();
    Some(
        std::str::from_utf8(line)
            .map(str::trim)
            .map_err(|_| "request is not UTF-8".to_string()),
    )
}

/// An error answer: `{"error": message}`.
pub(crate) fn error_json(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}

/// The error of a failed connect, in words that say what to do: nothing at the path (the
/// application is not running, or has no `stats.socket`), something there that is not a
/// socket, or a socket nobody listens on (left by an application that ended without dropping
/// its cache).
fn connect_err(path: &Path, e: std::io::Error) -> Error {
    use std::io::ErrorKind;
    use std::os::unix::fs::FileTypeExt;
    let detail = match (e.kind(), std::fs::symlink_metadata(path)) {
        (ErrorKind::NotFound, _) => "no socket there: is the application running, with \
             `stats.socket` set to this path in its config ([stats] socket = \"...\")?"
            .to_string(),
        (_, Ok(m)) if !m.file_type().is_socket() => {
            "this is not a socket (a regular file or folder is in its place)".to_string()
        }
        (ErrorKind::ConnectionRefused, _) => "nobody is listening: the application that made \
             this socket has ended (a stale socket file), or is not serving"
            .to_string(),
        (ErrorKind::PermissionDenied, _) => format!(
            "permission denied ({e}): the socket is the application owner's alone (mode 0600)"
        ),
        _ => format!("cannot connect: {e}"),
    };
    socket_err(path, detail)
}

/// Sends one request to the socket at `path` and returns the answer line (the client side of
/// `texcache stats`).
pub fn request(path: &Path, line: &str) -> Result<String> {
    let err = |e: std::io::Error| socket_err(path, e.to_string());
    let mut conn = UnixStream::connect(path).map_err(|e| connect_err(path, e))?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(err)?;
    conn.write_all(line.as_bytes()).map_err(err)?;
    conn.write_all(b"\n").map_err(err)?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer).map_err(err)?;
    let answer = answer.trim_end().to_string();
    if answer.is_empty() {
        return Err(socket_err(
            path,
            "the server closed the connection without answering",
        ));
    }
    Ok(answer)
}
