//! A cache tier for threads: [`core::TierCore`] behind a mutex, plus reference-counted
//! [`Handle`]s and single-flight loading.
//!
//! The CPU tier is a `Tier<Bitmap>` and the GPU tier a `Tier<Texture>`: one implementation of
//! SPEC §3 serves both. Loads run outside the lock; the lock is held only for bookkeeping.

pub mod core;
pub mod placeholder;

use self::core::{EntryPtr, Freed, Lookup, TierCore};
use crate::error::{Error, Result};
use crate::key::Key;
use crate::stats::{EntryInfo, PixelFormat, TierStats};
use parking_lot::Mutex;
use std::fmt;
use std::ops::Deref;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// What a tier can hold: something that knows its size in bytes (SPEC §2).
pub trait Resource: Send + Sync + 'static {
    /// Bytes counted against the tier's budget.
    fn bytes(&self) -> u64;
    /// Width and height in pixels.
    fn dimensions(&self) -> (u32, u32);
    /// Pixel format, as the stats report it.
    fn format(&self) -> PixelFormat;
}

/// Which tier, for stats and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TierKind {
    Cpu,
    Gpu,
}

impl TierKind {
    /// `"cpu"` or `"gpu"`.
    pub fn name(self) -> &'static str {
        match self {
            TierKind::Cpu => "cpu",
            TierKind::Gpu => "gpu",
        }
    }
}

/// The tier's shared state; every entry points back here so its last handle can release it.
pub(crate) struct Shared<R: Resource> {
    core: Mutex<TierCore<Homed<R>>>,
    kind: TierKind,
}

/// A resource plus the way home.
pub(crate) struct Homed<R: Resource> {
    res: R,
    home: Arc<Shared<R>>,
}

/// One byte-budgeted, thread-safe tier. Dropping it frees every unused entry; entries still in
/// use are freed by their last handle.
pub struct Tier<R: Resource> {
    shared: Arc<Shared<R>>,
}

impl<R: Resource> Tier<R> {
    /// An empty tier.
    pub fn new(kind: TierKind, budget: u64, max_entries: u64) -> Self {
        Tier {
            shared: Arc::new(Shared {
                core: Mutex::new(TierCore::new(budget, max_entries)),
                kind,
            }),
        }
    }

    /// Which tier this is.
    pub fn kind(&self) -> TierKind {
        self.shared.kind
    }

    /// Acquires the entry for `lookup`: a hit, a wait for a load in flight, or a load with
    /// `load` (outside the lock). `make_key` builds the key on a miss. A panicking `load` is
    /// turned into [`Error::LoadPanicked`] for the caller and every waiter.
    pub fn acquire(
        &self,
        lookup: &str,
        make_key: impl FnOnce() -> Key,
        load: impl FnOnce(&Key) -> Result<R>,
    ) -> Result<Handle<R>> {
        let found = self.shared.core.lock().acquire(lookup, make_key);
        match found {
            Lookup::Hit(entry) => Ok(Handle { entry }),
            Lookup::Wait(ph) => ph.wait().map(|entry| Handle { entry }),
            Lookup::Miss(ph) => {
                let result = catch_unwind(AssertUnwindSafe(|| load(&ph.key))).unwrap_or_else(|p| {
                    Err(Error::LoadPanicked {
                        href: ph.key.to_string(),
                        message: panic_message(&*p),
                    })
                });
                let mut freed = Vec::new();
                let outcome = {
                    let mut core = self.shared.core.lock();
                    match result {
                        Ok(res) => {
                            let bytes = res.bytes();
                            let homed = Homed {
                                res,
                                home: self.shared.clone(),
                            };
                            Ok(core.complete(&ph, homed, bytes, &mut freed))
                        }
                        Err(e) => {
                            core.fail(&ph);
                            Err(e)
                        }
                    }
                };
                drop(freed);
                ph.publish(outcome.clone());
                outcome.map(|entry| Handle { entry })
            }
        }
    }

    /// A handle to `lookup` if it is resident (a hit), without loading anything on a miss.
    /// Misses are not counted.
    pub fn get_resident(&self, lookup: &str) -> Option<Handle<R>> {
        let mut core = self.shared.core.lock();
        if !core.contains(lookup) {
            return None;
        }
        match core.acquire(lookup, || unreachable!("resident")) {
            Lookup::Hit(entry) => Some(Handle { entry }),
            _ => None,
        }
    }

    /// Counts a miss served without inserting (see [`core::TierCore::count_uninserted_miss`]).
    pub fn count_uninserted_miss(&self, failed: bool) {
        self.shared.core.lock().count_uninserted_miss(failed);
    }

    /// §3.5. Returns true if an entry was resident.
    pub fn remove(&self, lookup: &str) -> bool {
        let mut freed = Vec::new();
        let removed = self.shared.core.lock().remove(lookup, &mut freed);
        drop(freed);
        removed
    }

    /// §3.6.
    pub fn trim(&self, target: u64) -> TierStats {
        self.with_evictions(|core, ev| core.trim(target, ev))
    }

    /// §3.7.
    pub fn set_budget(&self, budget: u64) -> TierStats {
        self.with_evictions(|core, ev| core.set_budget(budget, ev))
    }

    /// Changes `max_entries` (0 = unlimited).
    pub fn set_max_entries(&self, max_entries: u64) -> TierStats {
        self.with_evictions(|core, ev| core.set_max_entries(max_entries, ev))
    }

    /// The §6 counters.
    pub fn stats(&self) -> TierStats {
        self.shared.core.lock().stats()
    }

    /// One [`EntryInfo`] per indexed entry, least recently released first.
    pub fn entries(&self) -> Vec<EntryInfo> {
        let now = now_ms();
        let core = self.shared.core.lock();
        core.iter()
            .map(|e| {
                let refs = e.ref_count();
                let (width, height) = e.value.res.dimensions();
                EntryInfo {
                    tier: self.shared.kind.name().into(),
                    key: e.key.to_string(),
                    bytes: e.bytes,
                    width,
                    height,
                    format: e.value.res.format(),
                    refs: refs as u64,
                    idle_ms: if refs == 0 {
                        now.saturating_sub(e.released_ms())
                    } else {
                        0
                    },
                }
            })
            .collect()
    }

    fn with_evictions(
        &self,
        f: impl FnOnce(&mut TierCore<Homed<R>>, &mut Freed<Homed<R>>),
    ) -> TierStats {
        let mut freed = Vec::new();
        let mut core = self.shared.core.lock();
        f(&mut core, &mut freed);
        let stats = core.stats();
        drop(core);
        drop(freed);
        stats
    }
}

impl<R: Resource> Drop for Tier<R> {
    fn drop(&mut self) {
        let mut freed = Vec::new();
        self.shared.core.lock().close(&mut freed);
        drop(freed);
    }
}

/// A shared, reference-counted handle to one cached resource (SPEC §3.9).
///
/// Cloning is cheap (one uncontended lock round trip); all clones point at the same pixels.
/// The handle may outlive the cache. When the last handle of an entry drops, the entry becomes
/// unused and may be evicted.
pub struct Handle<R: Resource> {
    /// Counted in the entry's `refs`, so the entry outlives this handle.
    entry: EntryPtr<Homed<R>>,
}

impl<R: Resource> Handle<R> {
    fn entry(&self) -> &core::Entry<Homed<R>> {
        // SAFETY: this handle is counted in the entry's `refs`, and the core frees an entry
        // only once no handle counts in it.
        unsafe { self.entry.get() }
    }
    fn home(&self) -> &Shared<R> {
        &self.entry().value.home
    }
    /// The entry's key.
    pub fn key(&self) -> &Key {
        &self.entry().key
    }
    /// The bytes this entry counts (SPEC §2).
    pub fn bytes(&self) -> u64 {
        self.entry().bytes
    }
    /// Live handles to this entry, this one included.
    pub fn refs(&self) -> usize {
        self.home().core.lock().refs(self.entry)
    }
    /// Whether two handles point at the same entry.
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        a.entry.same(b.entry)
    }
}

impl<R: Resource> Deref for Handle<R> {
    type Target = R;
    fn deref(&self) -> &R {
        &self.entry().value.res
    }
}

impl<R: Resource> Clone for Handle<R> {
    fn clone(&self) -> Self {
        self.home().core.lock().add_ref(self.entry);
        Handle { entry: self.entry }
    }
}

impl<R: Resource> Drop for Handle<R> {
    fn drop(&mut self) {
        let mut freed = Vec::new();
        let mut core = self.home().core.lock();
        core.drop_ref(self.entry, now_ms(), &mut freed);
        drop(core);
        // May free this very entry (and with it the last reference to the tier).
        drop(freed);
    }
}

impl<R: Resource> fmt::Debug for Handle<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("tier", &self.home().kind.name())
            .field("key", self.key())
            .field("bytes", &self.bytes())
            .field("refs", &self.refs())
            .finish()
    }
}

/// A coarse monotonic clock in milliseconds: cheap enough for the release path.
pub(crate) fn now_ms() -> u64 {
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC_COARSE always exists on Linux.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
        ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
    }
    #[cfg(not(target_os = "linux"))]
    {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_millis() as u64
    }
}

pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".into()
    }
}

// Handles cross threads (SPEC §3.9); keep that a compile-time fact.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Handle<crate::bitmap::Bitmap>>();
    send_sync::<Handle<crate::gpu::Texture>>();
    send_sync::<Tier<crate::bitmap::Bitmap>>();
};
