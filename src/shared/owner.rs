//! The owner's side of a shared cache (§12): the socket its clients connect to, and one thread
//! per client that serves its requests from the owner's CPU tier.
//!
//! The server knows nothing of the cache: it asks a [`Backend`] (the cache's, holding it
//! weakly) for pictures, prefetches, removals and statistics. What a client holds is a real
//! handle in the owner's tier, with a slot in that client's hold table (`wire.rs` says how the
//! two share it): in use (§3, never evicted) while the client holds any view of it. A client
//! hits a picture it knows by counting a hold in its table, without a message; the owner sees
//! the holds it dropped when it reconciles ([`Owner::reconcile`], which the cache does before
//! every load, statistics and trim) and lets go of those pictures then. A client that
//! disconnects or is killed (`kill -9`) has its connection closed by the kernel; its thread sees
//! the end at once and drops the client's handles, releasing everything it held.
//!
//! A client that sends anything malformed is dropped; one that stops reading is dropped when a
//! reply has waited [`SEND_TIME`] to be sent; each client has its own thread, so none holds up
//! another, and at most [`MAX_CLIENTS`] are served at once.

use super::wire::{self, Request, Writer};
use crate::error::{Error, ErrorKind, Result};
use crate::observe::stats::{ClientStats, SharedStats};
use crate::os::shm::SharedWords;
use crate::os::socket::{self, SocketFile};
use crate::picture::bitmap::Bitmap;
use crate::sync::Mutex;
use crate::tier::Handle;
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
    /// Its hold table (see `wire.rs`), shared with it.
    table: SharedWords,
    /// What it holds, under the lock that also orders the owner's writes to the table.
    holds: Mutex<Holds>,
    requests: AtomicU64,
}

/// The pictures a client holds: picture id → the owner's handle for it and the client's slot.
#[derive(Default)]
struct Holds {
    by_id: HashMap<u64, (Handle<Bitmap>, u32)>,
    free: Vec<u32>,
    next: u32,
}

impl Client {
    /// [`Client::hold`] of a shared picture's handle; `None` for a picture outside shared
    /// memory or when every slot is taken.
    fn hold_for(&self, handle: &Handle<Bitmap>) -> Option<(u32, u32)> {
        let (_, id) = handle.shared()?;
        self.hold(id, handle)
    }

    /// Counts one hold of `handle`'s picture (`id`) for this client: its slot and generation;
    /// `None` when every slot is taken.
    fn hold(&self, id: u64, handle: &Handle<Bitmap>) -> Option<(u32, u32)> {
        let mut holds = self.holds.lock();
        let slot = match holds.by_id.get(&id) {
            Some(&(_, slot)) => slot,
            None => {
                let slot = match holds.free.pop() {
                    Some(s) => s,
                    None if (holds.next as usize) < wire::SLOTS => {
                        holds.next += 1;
                        holds.next - 1
                    }
                    None => return None,
                };
                holds.by_id.insert(id, (handle.clone(), slot));
                slot
            }
        };
        let word = self.table.word(1 + slot as usize);
        // This is the picture the href names now: not stale.
        word.fetch_and(!wire::STALE, Ordering::SeqCst);
        let was = word.fetch_add(1, Ordering::SeqCst);
        Some((slot, wire::generation(was)))
    }

    /// Lets go of every picture the client holds no more: each slot at zero holds is taken
    /// back (its generation bumped, so the client's next hit of it asks the owner) and the
    /// owner's handle dropped.
    fn reconcile(&self) {
        let mut holds = self.holds.lock();
        let Holds { by_id, free, .. } = &mut *holds;
        by_id.retain(|_, (_, slot)| {
            let word = self.table.word(1 + *slot as usize);
            let cur = word.load(Ordering::SeqCst);
            let idle = cur & wire::COUNT == 0
                && word
                    .compare_exchange(
                        cur,
                        ((wire::generation(cur) as u64 + 1) & 0x7fff_ffff) << 32,
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    )
                    .is_ok();
            if idle {
                free.push(*slot);
            }
            !idle
        });
    }

    /// Makes every hit of a picture the client knows ask the owner (after a `remove`).
    fn invalidate(&self) {
        let holds = self.holds.lock();
        for &(_, slot) in holds.by_id.values() {
            self.table
                .word(1 + slot as usize)
                .fetch_or(wire::STALE, Ordering::SeqCst);
        }
    }

    /// The hits the client served from its table.
    fn hits(&self) -> u64 {
        self.table.word(0).load(Ordering::Relaxed)
    }
}

#[derive(Default)]
struct Clients {
    list: Mutex<HashMap<u64, Arc<Client>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    next: AtomicU64,
    /// The hits served by clients gone since.
    gone_hits: AtomicU64,
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

    /// Lets go of what clients hold no more (§12): the owner's tier sees their releases here.
    pub(crate) fn reconcile(&self) {
        let clients: Vec<Arc<Client>> = self.clients.list.lock().values().cloned().collect();
        for c in clients {
            c.reconcile();
        }
    }

    /// Makes the clients ask the owner for every picture they know, next time (§3.5: after a
    /// `remove`, the href loads afresh, for them too), and lets go of what they hold no more.
    pub(crate) fn invalidate(&self) {
        let clients: Vec<Arc<Client>> = self.clients.list.lock().values().cloned().collect();
        for c in clients {
            c.invalidate();
            c.reconcile();
        }
    }

    /// Hits the clients served themselves, from their tables (every client's, gone ones too).
    pub(crate) fn client_hits(&self) -> u64 {
        let list = self.clients.list.lock();
        self.clients.gone_hits.load(Ordering::Relaxed)
            + list.values().map(|c| c.hits()).sum::<u64>()
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
                    held_entries: holds.by_id.len() as u64,
                    held_bytes: holds
                        .by_id
                        .values()
                        .map(|(h, _)| h.pixels().len() as u64)
                        .sum(),
                    requests: c.requests.load(Ordering::Relaxed),
                    hits: c.hits(),
                }
            })
            .collect();
        clients.sort_by_key(|c| c.pid);
        drop(list);
        SharedStats {
            socket: self.path.display().to_string(),
            clients,
            mapped_bytes: crate::os::shm::mapped_bytes(),
            client_hits: self.client_hits(),
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
        if !socket::wait_for_connection(listener.as_fd(), wake.as_fd()) {
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
        // The client's hold table, sent before anything else.
        let Ok(table) = SharedWords::new(c"texcache-holds", wire::TABLE_WORDS) else {
            continue;
        };
        if socket::send_packet(conn.as_fd(), &[wire::TABLE], Some(table.fd())).is_err() {
            continue;
        }
        let client = Arc::new(Client {
            pid: socket::peer_pid(conn.as_fd()).unwrap_or(0),
            socket: copy,
            table,
            holds: Mutex::new(Holds::default()),
            requests: AtomicU64::new(0),
        });
        let id = clients.next.fetch_add(1, Ordering::Relaxed);
        clients.list.lock().insert(id, client.clone());
        let (c, b) = (clients.clone(), backend.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("texcache-shared-{}", client.pid))
            .spawn(move || {
                serve(&conn, &client, &*b);
                // Releases everything the client held, before it leaves the list (so that no
                // statistics see it gone with its pictures still in use).
                client.holds.lock().by_id.clear();
                let mut list = c.list.lock();
                c.gone_hits.fetch_add(client.hits(), Ordering::Relaxed);
                list.remove(&id);
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
                Some(Ok(handle)) => match (handle.shared(), client.hold_for(&handle)) {
                    (Some((region, id)), Some((slot, generation))) => {
                        let reply = Writer::new(wire::PICTURE)
                            .u64(id)
                            .u32(handle.width())
                            .u32(handle.height())
                            .u8(wire::format_code(handle.format()))
                            .u64(region.len() as u64)
                            .u32(slot)
                            .u32(generation);
                        // The client's hold is counted: this handle goes before the reply, so
                        // that the client never sees the owner holding more than it does.
                        let Ok(fd) = region.fd().try_clone_to_owned() else {
                            return;
                        };
                        drop(handle);
                        socket::send_packet(conn.as_fd(), &reply.0, Some(fd.as_fd()))
                    }
                    (shared, _) => {
                        let detail = if shared.is_none() {
                            "the owner holds this picture outside shared memory"
                        } else {
                            "this client holds as many pictures as it may at once"
                        };
                        let e = Error::new(
                            href,
                            ErrorKind::Unsupported {
                                detail: detail.into(),
                            },
                        );
                        socket::send_packet(conn.as_fd(), &wire::error_message(&e).0, None)
                    }
                },
                Some(Err(e)) => socket::send_packet(conn.as_fd(), &wire::error_message(&e).0, None),
            },
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
