//! A client of a shared cache (§12): another process's CPU tier, used as one's own.
//!
//! [`connect`] gives a [`Client`] with the calls for pictures a [`crate::Cache`] has: `bitmap`,
//! `bitmap_fit`, `prefetch`, `remove`, `stats`. Each picture arrives as a [`SharedBitmap`]: a
//! read-only view of the owner's pixels (its shared memory, mapped here once), held in the
//! owner's tier while any view of it lives. Decoding happens in the owner, once per key for
//! all processes. The first time a client asks for a picture it asks the owner; after that, as
//! long as the owner keeps the picture, the client counts a hold in its table and serves the
//! hit itself, with no message and no allocation (`wire.rs` says how the two share the table).
//!
//! When the owner ends, views stay readable (the mappings are this process's), and every call
//! after fails at once with [`ErrorKind::OwnerGone`].
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
use crate::os::shm::{SharedPixels, SharedWords};
use crate::os::socket;
use crate::picture::bitmap::Bitmap;
use crate::sync::Mutex;
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
    /// The hold table this client shares with the owner (see `wire.rs`).
    table: SharedWords,
    /// The pictures this client has had, by href: with each fit, the owner's slot for it and
    /// its generation, and the mapping. A hit of one of these is served here, from the table.
    known: Mutex<HashMap<String, Vec<Known>>>,
    /// The pictures mapped in this process, by the owner's id, while a view of them lives.
    mapped: Mutex<HashMap<u64, Weak<Bitmap>>>,
}

/// A picture this client has had: what it needs to hit it again without the owner.
struct Known {
    fit: Option<(u32, u32)>,
    slot: u32,
    generation: u32,
    bitmap: Arc<Bitmap>,
}

/// A picture held from a shared cache: its pixels are the owner's shared memory, mapped
/// read-only here. Each `SharedBitmap` (each clone too) is one hold in the client's table,
/// dropped with it, so the picture is in use in the owner's tier while any of them lives.
pub struct SharedBitmap {
    bitmap: Arc<Bitmap>,
    conn: Arc<Conn>,
    slot: u32,
}

impl Clone for SharedBitmap {
    fn clone(&self) -> SharedBitmap {
        // A hold is already counted: the slot cannot be taken back meanwhile (the owner takes
        // back only slots at zero), so a plain increment keeps the generation.
        self.conn.slot(self.slot).fetch_add(1, Ordering::SeqCst);
        SharedBitmap {
            bitmap: self.bitmap.clone(),
            conn: self.conn.clone(),
            slot: self.slot,
        }
    }
}

impl Drop for SharedBitmap {
    fn drop(&mut self) {
        self.conn.slot(self.slot).fetch_sub(1, Ordering::SeqCst);
    }
}

impl SharedBitmap {
    /// This client's holds of the picture now (this view, its clones and the other views of
    /// it).
    pub fn holds(&self) -> usize {
        (self.conn.slot(self.slot).load(Ordering::Relaxed) & wire::COUNT) as usize
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
    // The owner sends this client's hold table first.
    let gone = || {
        Error::from(ErrorKind::OwnerGone {
            socket: path.into(),
        })
    };
    let mut buf = Vec::with_capacity(16);
    let mut table = None;
    match socket::recv_packet(fd.as_fd(), &mut buf, &mut table) {
        Ok(true) if buf == [wire::TABLE] => {}
        _ => return Err(gone()),
    }
    let table = table
        .and_then(|t| SharedWords::map(t, wire::TABLE_WORDS).ok())
        .ok_or_else(gone)?;
    Ok(Client {
        conn: Arc::new(Conn {
            socket: fd,
            path: path.into(),
            exchange: Mutex::new(Vec::with_capacity(MAX_REPLY)),
            gone: AtomicBool::new(false),
            table,
            known: Mutex::new(HashMap::new()),
            mapped: Mutex::new(HashMap::new()),
        }),
    })
}

impl Conn {
    /// Hold slot `slot` of the table.
    fn slot(&self, slot: u32) -> &std::sync::atomic::AtomicU64 {
        self.table.word(1 + slot as usize)
    }

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
        if let Some(hit) = self.hit(href, fit) {
            return Ok(hit);
        }
        let request = Writer::new(wire::ACQUIRE).fit(fit).bytes(href.as_bytes());
        let conn = &self.conn;
        let (bitmap, slot, generation) = conn.exchange(&request.0, |tag, body, fd| {
            let mut r = wire::Reader(body);
            let parsed = (tag == wire::PICTURE)
                .then(|| {
                    let picture = (r.u64()?, r.u32()?, r.u32()?, wire::format_of(r.u8()?)?);
                    Some((picture, r.u64()?, r.u32()?, r.u32()?))
                })
                .flatten();
            let (Some(((id, w, h, format), len, slot, generation)), Some(fd)) = (parsed, fd) else {
                return Err(conn.garbled());
            };
            if slot as usize >= wire::SLOTS {
                return Err(conn.garbled());
            }
            let mut mapped = conn.mapped.lock();
            if let Some(b) = mapped.get(&id).and_then(Weak::upgrade) {
                return Ok((b, slot, generation));
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
            Ok((b, slot, generation))
        })?;
        // The owner counted this hold. Remember the picture, for hits without the owner, and
        // forget those whose slots the owner took back (so their mappings go).
        let mut known = conn.known.lock();
        known.retain(|_, pictures| {
            pictures.retain(|k| {
                wire::generation(conn.slot(k.slot).load(Ordering::Relaxed)) == k.generation
            });
            !pictures.is_empty()
        });
        let pictures = known.entry(href.to_string()).or_default();
        pictures.retain(|k| k.fit != fit);
        pictures.push(Known {
            fit,
            slot,
            generation,
            bitmap: bitmap.clone(),
        });
        Ok(SharedBitmap {
            bitmap,
            conn: conn.clone(),
            slot,
        })
    }

    /// A hit served here: a picture this client has had, whose slot the owner has not taken
    /// back, held by counting a hold in the table (no message, no allocation).
    fn hit(&self, href: &str, fit: Option<(u32, u32)>) -> Option<SharedBitmap> {
        let conn = &self.conn;
        let known = conn.known.lock();
        let k = known.get(href)?.iter().find(|k| k.fit == fit)?;
        let word = conn.slot(k.slot);
        let mut cur = word.load(Ordering::SeqCst);
        loop {
            if wire::generation(cur) != k.generation || cur & wire::STALE != 0 {
                return None; // taken back, or removed: ask the owner
            }
            match word.compare_exchange_weak(cur, cur + 1, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        conn.table.word(0).fetch_add(1, Ordering::Relaxed);
        Some(SharedBitmap {
            bitmap: k.bitmap.clone(),
            conn: conn.clone(),
            slot: k.slot,
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
