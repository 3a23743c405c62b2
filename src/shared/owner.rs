//! The owner's side of a shared cache (§12): the socket its clients connect to, and one thread
//! per client that serves its requests from the owner's CPU tier.
//!
//! The server knows nothing of the cache: it asks a [`Backend`] (the cache's, holding it
//! weakly) for pictures, prefetches, removals and statistics. What a client holds is a real
//! handle in the owner's tier, kept in that client's table here: in use (§3, never evicted)
//! until the client releases it or its connection ends, however it ends. A client that
//! disconnects or is killed (`kill -9`) has its connection closed by the kernel; its thread sees
//! the end at once and drops the client's table, releasing everything it held.
//!
//! A client that sends anything malformed is dropped; one that stops reading is dropped when a
//! reply has waited [`SEND_TIME`] to be sent; each client has its own thread, so none holds up
//! another, and at most [`MAX_CLIENTS`] are served at once.

use super::wire::{self, Request, Writer};
use crate::error::{Error, ErrorKind, Result};
use crate::observe::stats::{ClientStats, SharedStats};
use crate::os::socket::{self, SocketFile};
use crate::picture::bitmap::Bitmap;
use crate::tier::Handle;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Clients served at once; more are refused (their connection closed).
pub(crate) const MAX_CLIENTS: usize = 256;
/// How long a reply may wait to be sent before its client is dropped.
pub(crate) const SEND_TIME: Duration = Duration::from_secs(2);

/// What the server asks of the cache. Each call answers `None` once the cache is gone.
pub(crate) trait Backend: Send + Sync + 'static {
    /// The bitmap of `href` (fitted into `fit`), in shared memory.
    fn bitmap(&self, href: &str, fit: Option<(u32, u32)>) -> Option<Result<Handle<Bitmap>>>;
    /// Prefetches `hrefs` (fitted into `fit`).
    fn prefetch(&self, hrefs: Vec<String>, fit: Option<(u32, u32)>) -> Option<Result<()>>;
    /// Removes `href` (§3.5).
    fn remove(&self, href: &str) -> Option<bool>;
    /// The §6 statistics as JSON.
    fn stats_json(&self) -> Option<String>;
}

/// One connected client.
struct Client {
    pid: u32,
    /// A copy of the connection, to shut it down when the owner stops.
    socket: OwnedFd,
    /// What it holds: picture id → the handle and how many holds.
    holds: Mutex<HashMap<u64, (Handle<Bitmap>, u32)>>,
    requests: AtomicU64,
}

#[derive(Default)]
struct Clients {
    list: Mutex<HashMap<u64, Arc<Client>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    next: AtomicU64,
}

/// A shared cache's server; dropping it disconnects every client (releasing what they held)
/// and removes the socket.
pub(crate) struct Owner {
    path: PathBuf,
    clients: Arc<Clients>,
    wake: Option<OwnedFd>,
    thread: Option<JoinHandle<()>>,
    /// Dropped last: the socket file goes once no thread serves it.
    _file: SocketFile,
}

fn socket_err(path: &Path, detail: impl Into<String>) -> Error {
    Error::from(ErrorKind::Socket {
        path: path.into(),
        detail: detail.into(),
    })
}

impl Owner {
    /// Serves `backend` at `path` (mode 0600; a stale socket replaced, anything else left alone
    /// and reported, as the control socket's, §9).
    pub(crate) fn start(path: &Path, backend: Arc<dyn Backend>) -> Result<Owner> {
        let err = |d: String| socket_err(path, d);
        let (listener, file) = SocketFile::bind(path, socket::listen_seqpacket).map_err(err)?;
        let (wake_read, wake) =
            socket::pipe().map_err(|e| err(format!("cannot make a pipe: {e}")))?;
        let clients = Arc::new(Clients::default());
        let c = clients.clone();
        let thread = std::thread::Builder::new()
            .name("texcache-shared".into())
            .spawn(move || accept(listener, wake_read, c, backend))
            .map_err(|e| err(format!("cannot start the server thread: {e}")))?;
        Ok(Owner {
            path: path.into(),
            clients,
            wake: Some(wake),
            thread: Some(thread),
            _file: file,
        })
    }

    /// The `"shared"` object of the statistics (§12).
    pub(crate) fn stats(&self) -> SharedStats {
        let list = self.clients.list.lock();
        let mut clients: Vec<ClientStats> = list
            .values()
            .map(|c| {
                let holds = c.holds.lock();
                ClientStats {
                    pid: c.pid,
                    held_entries: holds.len() as u64,
                    held_bytes: holds.values().map(|(h, _)| h.pixels().len() as u64).sum(),
                    requests: c.requests.load(Ordering::Relaxed),
                }
            })
            .collect();
        clients.sort_by_key(|c| c.pid);
        SharedStats {
            socket: self.path.display().to_string(),
            clients,
            mapped_bytes: crate::os::shm::mapped_bytes(),
        }
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        // Wake the accepting thread (it sees the pipe's hang-up), then end every client's
        // connection, which ends its thread.
        drop(self.wake.take());
        let me = std::thread::current().id();
        if let Some(t) = self.thread.take() {
            if t.thread().id() != me {
                let _ = t.join();
            }
        }
        for c in self.clients.list.lock().values() {
            // SAFETY: a plain shutdown of a descriptor the client's entry owns.
            unsafe { libc::shutdown(c.socket.as_raw_fd(), libc::SHUT_RDWR) };
        }
        // A client thread may be the one dropping the cache (it held it for a request): it
        // must not wait for itself.
        for t in std::mem::take(&mut *self.clients.threads.lock()) {
            if t.thread().id() != me {
                let _ = t.join();
            }
        }
    }
}

/// The accepting thread: a new thread for each client, until the pipe hangs up.
fn accept(listener: OwnedFd, wake: OwnedFd, clients: Arc<Clients>, backend: Arc<dyn Backend>) {
    loop {
        let Ok(revents) =
            crate::os::file::poll_two([listener.as_raw_fd(), wake.as_raw_fd()], libc::POLLIN)
        else {
            return;
        };
        if revents[1] != 0 {
            return;
        }
        // SAFETY: accept4 on our listening socket, no address wanted; the result is checked.
        let fd = unsafe {
            libc::accept4(
                listener.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC,
            )
        };
        if fd < 0 {
            // Out of descriptors or memory: wait for the next wake-up rather than spin.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        // SAFETY: a new descriptor nothing else owns.
        let conn = unsafe { OwnedFd::from_raw_fd(fd) };
        if clients.list.lock().len() >= MAX_CLIENTS {
            continue; // dropped: the client sees its connection end
        }
        let (Ok(copy), Ok(())) = (
            conn.try_clone(),
            socket::set_send_timeout(conn.as_fd(), SEND_TIME),
        ) else {
            continue;
        };
        let client = Arc::new(Client {
            pid: socket::peer_pid(conn.as_fd()).unwrap_or(0),
            socket: copy,
            holds: Mutex::new(HashMap::new()),
            requests: AtomicU64::new(0),
        });
        let id = clients.next.fetch_add(1, Ordering::Relaxed);
        clients.list.lock().insert(id, client.clone());
        let (c, b) = (clients.clone(), backend.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("texcache-shared-{}", client.pid))
            .spawn(move || {
                serve(&conn, &client, &*b);
                // Releases everything the client held.
                c.list.lock().remove(&id);
            });
        match spawned {
            Ok(t) => {
                let mut threads = clients.threads.lock();
                threads.retain(|t| !t.is_finished());
                threads.push(t);
            }
            Err(_) => {
                clients.list.lock().remove(&id);
            }
        }
    }
}

/// Serves one client until its connection ends, it sends something malformed, it stops
/// reading, or the cache is gone.
fn serve(conn: &OwnedFd, client: &Client, backend: &dyn Backend) {
    let mut buf = Vec::with_capacity(wire::MAX_MESSAGE);
    let mut fd = None;
    loop {
        match socket::recv_packet(conn.as_fd(), &mut buf, &mut fd) {
            Ok(true) => {}
            Ok(false) | Err(_) => return,
        }
        // Clients send no descriptors: one that does is dropped with it.
        if fd.is_some() {
            return;
        }
        let Some(request) = wire::parse_request(&buf) else {
            return;
        };
        client.requests.fetch_add(1, Ordering::Relaxed);
        let sent = match request {
            Request::Acquire(href, fit) => match backend.bitmap(&href, fit) {
                None => return,
                Some(Ok(handle)) => {
                    let sent = match handle.shared() {
                        Some((region, id)) => {
                            let reply = Writer::new(wire::PICTURE)
                                .u64(id)
                                .u32(handle.width())
                                .u32(handle.height())
                                .u8(wire::format_code(handle.format()))
                                .u64(region.len() as u64);
                            // Held before the client can know it is: its stats never lag.
                            let mut holds = client.holds.lock();
                            holds.entry(id).or_insert_with(|| (handle.clone(), 0)).1 += 1;
                            drop(holds);
                            socket::send_packet(conn.as_fd(), &reply.0, Some(region.fd()))
                        }
                        None => {
                            let e = Error::new(
                                href,
                                ErrorKind::Unsupported {
                                    detail: "the owner holds this picture outside shared memory"
                                        .into(),
                                },
                            );
                            socket::send_packet(conn.as_fd(), &wire::error_message(&e).0, None)
                        }
                    };
                    sent
                }
                Some(Err(e)) => socket::send_packet(conn.as_fd(), &wire::error_message(&e).0, None),
            },
            Request::Release(id) => {
                let mut holds = client.holds.lock();
                if let Some(slot) = holds.get_mut(&id) {
                    slot.1 -= 1;
                    if slot.1 == 0 {
                        holds.remove(&id);
                    }
                }
                Ok(())
            }
            Request::Prefetch(hrefs, fit) => match backend.prefetch(hrefs, fit) {
                None => return,
                Some(Ok(())) => socket::send_packet(conn.as_fd(), &[wire::DONE], None),
                Some(Err(e)) => socket::send_packet(conn.as_fd(), &wire::error_message(&e).0, None),
            },
            Request::Remove(href) => match backend.remove(&href) {
                None => return,
                Some(b) => socket::send_packet(conn.as_fd(), &[wire::BOOL, b as u8], None),
            },
            Request::Stats => match backend.stats_json() {
                None => return,
                Some(json) => {
                    let reply = Writer::new(wire::JSON).bytes(json.as_bytes());
                    socket::send_packet(conn.as_fd(), &reply.0, None)
                }
            },
        };
        if sent.is_err() {
            return;
        }
    }
}
