//! A client of a shared cache (§12): another process's CPU tier, used as one's own.
//!
//! [`connect`] gives a [`Client`] with the calls for pictures a [`crate::Cache`] has: `bitmap`,
//! `bitmap_fit`, `prefetch`, `remove`, `stats`. Each picture arrives as a [`SharedBitmap`]: a
//! read-only view of the owner's pixels (its shared memory, mapped here once and kept while any
//! view of it lives), held in the owner's tier until the last clone of it drops. Decoding
//! happens in the owner, once per key for all processes.
//!
//! When the owner ends, views stay readable (the mappings are this process's), and every call
//! after fails at once with [`ErrorKind::OwnerGone`](crate::ErrorKind::OwnerGone).
//!
//! ```no_run
//! # fn main() -> texcache::Result<()> {
//! let client = texcache::shared::connect("/run/user/1000/app-cache.sock".as_ref())?;
//! let cat = client.bitmap("photos/cat.jpg")?;       // decoded once, by the owner
//! let (w, h) = (cat.width(), cat.height());
//! let pixels: &[u8] = cat.pixels();                  // the owner's pixels, no copy
//! # let _ = (w, h, pixels); Ok(()) }
//! ```

use super::wire::{self, Writer};
use crate::error::{Error, ErrorKind, Result};
use crate::observe::stats::{PixelFormat, Stats};
use crate::os::shm::SharedPixels;
use crate::os::socket;
use crate::picture::bitmap::Bitmap;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

/// The longest reply a client accepts.
const MAX_REPLY: usize = 1 << 20;

/// A connection to a shared cache's owner; cheap to clone, usable from many threads.
#[derive(Clone)]
pub struct Client {
    conn: Arc<Conn>,
}

struct Conn {
    socket: OwnedFd,
    path: PathBuf,
    /// Held for a request and its reply; the reply buffer.
    exchange: Mutex<Vec<u8>>,
    gone: AtomicBool,
    /// The pictures mapped in this process, by the owner's id, while a view of them lives.
    mapped: Mutex<HashMap<u64, Weak<Bitmap>>>,
}

/// A picture held from a shared cache: its pixels are the owner's shared memory, mapped
/// read-only here. Clones share one hold; the hold ends when the last clone drops.
#[derive(Clone)]
pub struct SharedBitmap {
    bitmap: Arc<Bitmap>,
    _hold: Arc<Hold>,
}

/// One hold in the owner's tier, released when dropped.
struct Hold {
    conn: Arc<Conn>,
    id: u64,
}

impl Drop for Hold {
    fn drop(&mut self) {
        if !self.conn.gone.load(Ordering::Relaxed) {
            let _guard = self.conn.exchange.lock();
            let release = Writer::new(wire::RELEASE).u64(self.id);
            let _ = socket::send_packet(self.conn.socket.as_fd(), &release.0, None);
        }
    }
}

impl SharedBitmap {
    /// Clones of this view alive now (they share one hold in the owner's tier).
    pub fn holds(&self) -> usize {
        Arc::strong_count(&self._hold)
    }
}

impl std::ops::Deref for SharedBitmap {
    type Target = Bitmap;
    fn deref(&self) -> &Bitmap {
        &self.bitmap
    }
}

impl std::fmt::Debug for SharedBitmap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedBitmap({:?})", self.bitmap)
    }
}

/// Connects to the shared cache whose owner serves `path` (`[shared] socket` in its config, or
/// `Cache::share`).
pub fn connect(path: &Path) -> Result<Client> {
    let fd = socket::connect_seqpacket(path).map_err(|e| {
        Error::from(ErrorKind::Socket {
            path: path.into(),
            detail: match e.kind() {
                std::io::ErrorKind::NotFound => {
                    "no shared cache there: is its owner running, sharing at this path?".into()
                }
                std::io::ErrorKind::ConnectionRefused => {
                    "nobody is listening: the owner that made this socket has ended".into()
                }
                _ => format!("cannot connect: {e}"),
            },
        })
    })?;
    Ok(Client {
        conn: Arc::new(Conn {
            socket: fd,
            path: path.into(),
            exchange: Mutex::new(Vec::with_capacity(MAX_REPLY)),
            gone: AtomicBool::new(false),
            mapped: Mutex::new(HashMap::new()),
        }),
    })
}

impl Conn {
    fn gone(&self) -> Error {
        self.gone.store(true, Ordering::Relaxed);
        Error::from(ErrorKind::OwnerGone {
            socket: self.path.clone(),
        })
    }

    fn garbled(&self) -> Error {
        Error::from(ErrorKind::Socket {
            path: self.path.clone(),
            detail: "the owner's reply is malformed".into(),
        })
    }

    /// Sends `request` and returns the reply's tag and body (in the buffer, locked), and the
    /// descriptor that came with it.
    fn exchange<T>(
        &self,
        request: &[u8],
        read: impl FnOnce(u8, &[u8], Option<OwnedFd>) -> Result<T>,
    ) -> Result<T> {
        if self.gone.load(Ordering::Relaxed) {
            return Err(self.gone());
        }
        let mut buf = self.exchange.lock();
        if socket::send_packet(self.socket.as_fd(), request, None).is_err() {
            return Err(self.gone());
        }
        let mut fd = None;
        match socket::recv_packet(self.socket.as_fd(), &mut buf, &mut fd) {
            Ok(true) => {}
            Ok(false) => return Err(self.gone()),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => return Err(self.garbled()),
            Err(_) => return Err(self.gone()),
        }
        let (&tag, body) = buf.split_first().ok_or_else(|| self.garbled())?;
        if tag == wire::ERROR {
            return Err(wire::parse_error(body).ok_or_else(|| self.garbled())?);
        }
        read(tag, body, fd)
    }
}

impl Client {
    /// The bitmap of `href`, decoded by the owner (once for every process), as its tier's
    /// `bitmap` (§3.1).
    pub fn bitmap(&self, href: &str) -> Result<SharedBitmap> {
        self.acquire(href, None)
    }

    /// The bitmap of `href` fitted into a `width`x`height` box (§1).
    pub fn bitmap_fit(&self, href: &str, width: u32, height: u32) -> Result<SharedBitmap> {
        self.acquire(href, Some((width, height)))
    }

    fn acquire(&self, href: &str, fit: Option<(u32, u32)>) -> Result<SharedBitmap> {
        let request = Writer::new(wire::ACQUIRE).fit(fit).bytes(href.as_bytes());
        let conn = &self.conn;
        let bitmap = conn.exchange(&request.0, |tag, body, fd| {
            let mut r = wire::Reader(body);
            let parsed = (tag == wire::PICTURE)
                .then(|| {
                    Some((
                        r.u64()?,
                        r.u32()?,
                        r.u32()?,
                        wire::format_of(r.u8()?)?,
                        r.u64()?,
                    ))
                })
                .flatten();
            let (Some((id, w, h, format, len)), Some(fd)) = (parsed, fd) else {
                return Err(conn.garbled());
            };
            let mut mapped = conn.mapped.lock();
            if let Some(b) = mapped.get(&id).and_then(Weak::upgrade) {
                return Ok(b);
            }
            let bpp = if format == PixelFormat::Gray8 { 1 } else { 4 };
            if len != w as u64 * h as u64 * bpp {
                return Err(conn.garbled());
            }
            let region = SharedPixels::map_readonly(fd, len as usize).map_err(|e| {
                Error::new(
                    href,
                    ErrorKind::Socket {
                        path: conn.path.clone(),
                        detail: format!("cannot map the owner's picture: {e}"),
                    },
                )
            })?;
            let b = Arc::new(Bitmap::from_shared(w, h, format, region, id));
            mapped.retain(|_, v| v.strong_count() > 0);
            mapped.insert(id, Arc::downgrade(&b));
            Ok(b)
        })?;
        let id = bitmap.shared().map_or(0, |(_, id)| id);
        Ok(SharedBitmap {
            bitmap,
            _hold: Arc::new(Hold {
                conn: self.conn.clone(),
                id,
            }),
        })
    }

    /// Has the owner decode `hrefs` (fitted into `fit`) ahead, on its loader threads.
    pub fn prefetch<I, S>(&self, hrefs: I, fit: Option<(u32, u32)>) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut request = Writer::new(wire::PREFETCH).fit(fit);
        for h in hrefs {
            request = request.text(h.as_ref());
        }
        if request.0.len() > wire::MAX_MESSAGE {
            return Err(Error::from(ErrorKind::Socket {
                path: self.conn.path.clone(),
                detail: "too many hrefs in one prefetch (at most 1 MiB of them)".into(),
            }));
        }
        let conn = &self.conn;
        conn.exchange(&request.0, |tag, _, _| match tag {
            wire::DONE => Ok(()),
            _ => Err(conn.garbled()),
        })
    }

    /// Removes `href` from the owner's cache (§3.5); whether anything was resident.
    pub fn remove(&self, href: &str) -> Result<bool> {
        let request = Writer::new(wire::REMOVE).bytes(href.as_bytes());
        let conn = &self.conn;
        conn.exchange(&request.0, |tag, body, _| match (tag, body) {
            (wire::BOOL, [b]) => Ok(*b != 0),
            _ => Err(conn.garbled()),
        })
    }

    /// The owner's statistics (§6, with its `"shared"` object).
    pub fn stats(&self) -> Result<Stats> {
        let conn = &self.conn;
        conn.exchange(&[wire::STATS], |tag, body, _| {
            if tag != wire::JSON {
                return Err(conn.garbled());
            }
            serde_json::from_slice(body).map_err(|_| conn.garbled())
        })
    }

    /// The socket of the owner.
    pub fn path(&self) -> &Path {
        &self.conn.path
    }
}
