//! A cache tier for threads: the tier core (`core.rs`) behind a mutex, plus reference-counted
//! [`Handle`]s and single-flight loading.
//!
//! The CPU tier is a `Tier<Bitmap>` and the GPU tier a `Tier<Texture>`: one implementation of
//! §3 serves both. Loads run outside the lock; the lock is held only for bookkeeping.

pub(crate) mod core;
pub(crate) mod log;
pub(crate) mod placeholder;

use self::core::{EntryPtr, Freed, Lookup, Released, TierCore};
use self::log::{Batch, Event, TierLog};
use crate::error::{Error, ErrorKind, Result};
use crate::key::Key;
use crate::observe::stats::{EntryInfo, PixelFormat, TierStats};
use crate::sync::TierMutex;
use std::fmt;
use std::ops::Deref;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// What a tier can hold: something that knows its size in bytes (§2).
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
    /// Decoded bitmaps.
    Cpu,
    /// Textures.
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
    state: TierMutex<Locked<R>>,
    kind: TierKind,
    /// The process generation the tier was made in ([`crate::os::fork`]): in a forked child, the
    /// tier is the parent's, and is never locked (a parent thread may have held its lock).
    born: u64,
}

impl<R: Resource> Shared<R> {
    /// Whether this tier was made in this process, not inherited through `fork` (its
    /// generation is read only in a forked process).
    #[inline]
    fn is_ours(&self) -> bool {
        !crate::os::fork::forked() || crate::os::fork::is_ours(self.born)
    }
}

/// The tier lock, held.
type TierGuard<'a, R> = crate::sync::TierMutexGuard<'a, Locked<R>>;

/// What the tier lock guards: the core, and the trace log while recording.
///
/// Aligned to a cache line, so that the lock's own byte has a line to itself: with the lock
/// sharing its line with the core's fields, a hit in the `hit_mt` bench's one-thread case takes
/// 60 ns instead of 40 (the `hit` bench does not move).
#[repr(align(64))]
struct Locked<R: Resource> {
    core: TierCore<Homed<R>>,
    log: Option<TierLog>,
}

impl<R: Resource> Locked<R> {
    /// Logs the entries about to be freed (their addresses may be reused afterwards).
    fn forget(&mut self, freed: &Freed<Homed<R>>) {
        if let Some(log) = &mut self.log {
            for e in freed {
                log.push(Event::Forget(addr(&**e)));
            }
        }
    }
    /// Logs a tier operation, if recording; its sequence number (0 if not recorded).
    fn record(&mut self, event: impl FnOnce() -> Event) -> u64 {
        match &mut self.log {
            Some(log) => log.push(event()),
            None => 0,
        }
    }
}

fn addr<T>(e: &T) -> usize {
    e as *const T as usize
}

fn entry_addr<R: Resource>(p: EntryPtr<Homed<R>>) -> usize {
    // SAFETY: called under the tier lock on an entry the core has just handed out.
    addr(unsafe { p.get() })
}

/// A resource plus the way home. `home` comes first so that it shares the entry's first cache
/// line with the fields a release touches (see [`core::Entry`]).
#[repr(C)]
pub(crate) struct Homed<R: Resource> {
    home: Arc<Shared<R>>,
    res: R,
}

impl<R: Resource> Homed<R> {
    /// The way home lies in the entry's first cache line (with everything else a hit and a
    /// release touch), whatever the tier holds: checked at compile time for every resource a
    /// tier is made for (in [`Tier::new`]).
    const HOME_IN_FIRST_LINE: () =
        assert!(std::mem::offset_of!(core::Entry<Homed<R>>, value) + 8 <= 64);
}

/// Fails a load for every waiter if its loader unwinds before publishing the outcome (as
/// quick_cache's `PlaceholderGuard` does): the placeholder is detached, the failure counted,
/// and `LoadPanicked` published, so the next acquire loads afresh.
struct LoadGuard<'a, R: Resource> {
    shared: &'a Shared<R>,
    ph: &'a Arc<placeholder::Placeholder<core::EntryPtr<Homed<R>>>>,
    armed: bool,
}

impl<R: Resource> Drop for LoadGuard<'_, R> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.shared.state.lock().core.fail(self.ph);
        self.ph.publish(Err(Error::new(
            self.ph.key.to_string(),
            ErrorKind::LoadPanicked {
                message: "the load unwound before it finished".into(),
            },
        )));
    }
}

/// One byte-budgeted, thread-safe tier. Dropping it frees every unused entry; entries still in
/// use are freed by their last handle.
pub struct Tier<R: Resource> {
    shared: Arc<Shared<R>>,
}

impl<R: Resource> Tier<R> {
    /// An empty tier.
    pub fn new(kind: TierKind, budget: u64, max_entries: u64) -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Homed::<R>::HOME_IN_FIRST_LINE;
        Tier {
            shared: Arc::new(Shared {
                state: TierMutex::new(Locked {
                    core: TierCore::new(budget, max_entries),
                    log: None,
                }),
                kind,
                born: crate::os::fork::generation(),
            }),
        }
    }

    /// Which tier this is.
    pub fn kind(&self) -> TierKind {
        self.shared.kind
    }

    /// Acquires the entry for `lookup`: a hit, a wait for a load in flight, or a load with
    /// `load` (outside the lock). `make_key` builds the key on a miss. A panicking `load` is
    /// turned into `ErrorKind::LoadPanicked` for the caller and every waiter.
    pub fn acquire(
        &self,
        lookup: &str,
        make_key: impl FnOnce() -> Key,
        load: impl FnOnce(&Key) -> Result<R>,
    ) -> Result<Handle<R>> {
        self.acquire_as(lookup, make_key, load, true)
    }

    /// [`Tier::acquire`]; `record` says whether a trace being recorded shows this acquire
    /// (false for the cache's own acquires on behalf of another operation).
    pub(crate) fn acquire_as(
        &self,
        lookup: &str,
        make_key: impl FnOnce() -> Key,
        load: impl FnOnce(&Key) -> Result<R>,
        record: bool,
    ) -> Result<Handle<R>> {
        let (found, id) = {
            let mut state = self.shared.state.lock();
            let found = state.core.acquire(lookup, make_key);
            let id = match (&found, &mut state.log) {
                (Lookup::Hit(p), Some(log)) if record => log.push(Event::Acquire(entry_addr(*p))),
                _ => 0,
            };
            (found, id)
        };
        match found {
            Lookup::Hit(entry) => Ok(Handle { entry, id }),
            Lookup::Wait(ph) => ph.wait().map(|entry| Handle {
                entry,
                id: ph.take_waiter_id(),
            }),
            Lookup::Miss(ph) => {
                // Until the outcome is published, an unwind from here on (whatever panics)
                // fails the load for every waiter instead of leaving the key loading.
                let guard = LoadGuard {
                    shared: &self.shared,
                    ph: &ph,
                    armed: true,
                };
                // The resource's size is asked for here, outside the lock, with the load: a
                // panic in either is the load's.
                let result = catch_unwind(AssertUnwindSafe(|| {
                    load(&ph.key).map(|res| {
                        let bytes = res.bytes();
                        (res, bytes)
                    })
                }))
                .unwrap_or_else(|p| {
                    Err(Error::new(
                        ph.key.to_string(),
                        ErrorKind::LoadPanicked {
                            message: panic_message(&*p),
                        },
                    ))
                });
                let mut freed = Vec::new();
                let mut id = 0;
                let outcome = {
                    let mut state = self.shared.state.lock();
                    match result {
                        Ok((res, bytes)) => {
                            let homed = Homed {
                                res,
                                home: self.shared.clone(),
                            };
                            let p = state.core.complete(&ph, homed, bytes, &mut freed);
                            if let Some(log) = &mut state.log {
                                let entry = entry_addr(p);
                                log.push(Event::Name(Box::new((entry, ph.key.clone()))));
                                if record {
                                    id = log.push(Event::Acquire(entry));
                                }
                                // The waiters' handles were counted just now; log them here
                                // too, in lock order (they replay as hits).
                                let waiters = ph.waiters.load(Ordering::Relaxed);
                                for i in 0..waiters {
                                    let wid = log.push(Event::Acquire(entry));
                                    if i == 0 {
                                        ph.set_waiter_ids(wid);
                                    }
                                }
                            }
                            state.forget(&freed);
                            Ok(p)
                        }
                        Err(e) => {
                            state.core.fail(&ph);
                            if record {
                                state.record(|| Event::Failed(Box::new(ph.key.clone())));
                            }
                            Err(e)
                        }
                    }
                };
                // Published first, and the caller's handle made, before what the insertion
                // evicted is dropped: a panicking destructor then unwinds through the handle
                // (which releases its count) and strands no waiter.
                ph.publish(outcome.clone());
                let mut guard = guard;
                guard.armed = false;
                let handle = outcome.map(|entry| Handle { entry, id });
                drop(freed);
                handle
            }
        }
    }

    /// A handle to `lookup` if it is resident (a hit), without loading anything on a miss.
    /// Misses are not counted.
    pub fn get_resident(&self, lookup: &str) -> Option<Handle<R>> {
        self.get_resident_as(lookup, true)
    }

    /// [`Tier::get_resident`]; `record` as in [`Tier::acquire_as`]. This is also the fast path
    /// of every acquire: one lock round trip, no key, no closure, no unwinding guard.
    #[inline(always)]
    pub(crate) fn get_resident_as(&self, lookup: &str, record: bool) -> Option<Handle<R>> {
        // Hashing needs no lock: done first, it keeps the critical section short.
        let hash = crate::key::KeyStr::hash_of(lookup);
        let mut state = self.shared.state.lock();
        let entry = state.core.hit_hashed(lookup, hash)?;
        let id = match &mut state.log {
            Some(log) if record => log.push(Event::Acquire(entry_addr(entry))),
            _ => 0,
        };
        Some(Handle { entry, id })
    }

    /// Counts a miss served without inserting (the tier core's `count_uninserted_miss`).
    pub fn count_uninserted_miss(&self, failed: bool) {
        self.shared.state.lock().core.count_uninserted_miss(failed);
    }

    /// §3.5. Returns true if an entry was resident. A trace being recorded shows it as
    /// `remove` (which the replay applies to both tiers).
    pub fn remove(&self, lookup: &str) -> bool {
        self.remove_as(lookup, true)
    }

    /// [`Tier::remove`]; `record` as in [`Tier::acquire_as`].
    pub(crate) fn remove_as(&self, lookup: &str, record: bool) -> bool {
        let mut freed = Vec::new();
        let mut state = self.shared.state.lock();
        let removed = state.core.remove(lookup, &mut freed);
        if record {
            state.record(|| Event::Remove(lookup.into()));
        }
        state.forget(&freed);
        drop(state);
        drop(freed);
        removed
    }

    /// §3.5 for every fitted size of the picture whose full-size lookup string is `plain`
    /// (not the full size itself): one pass over the entries. Not recorded (a trace's `remove`
    /// replays to every size). Returns whether any was resident.
    pub(crate) fn remove_fitted(&self, plain: &str) -> bool {
        let mut freed = Vec::new();
        let mut state = self.shared.state.lock();
        let fitted: Vec<String> = state
            .core
            .iter()
            .filter(|e| e.key.fit().is_some() && e.key.plain_lookup() == plain)
            .map(|e| e.key.lookup().to_string())
            .collect();
        let mut removed = false;
        for lookup in &fitted {
            removed |= state.core.remove(lookup, &mut freed);
        }
        state.forget(&freed);
        drop(state);
        drop(freed);
        removed
    }

    /// §3.6.
    pub fn trim(&self, target: u64) -> TierStats {
        self.with_evictions(Some(Event::Trim(target)), |core, ev| core.trim(target, ev))
    }

    /// Trims `num/den` of the unused bytes (§3.6 to `used - unused * num / den`), for memory
    /// pressure; returns the bytes it evicted. Recorded as the `trim` it amounts to.
    pub fn trim_unused_share(&self, num: u64, den: u64) -> u64 {
        let mut freed = Vec::new();
        let mut state = self.shared.state.lock();
        let s = state.core.stats();
        let target = s.used - (s.unused as u128 * num as u128 / den.max(1) as u128) as u64;
        state.core.trim(target, &mut freed);
        state.record(|| Event::Trim(target));
        state.forget(&freed);
        let evicted = state.core.stats().evicted_bytes - s.evicted_bytes;
        drop(state);
        drop(freed);
        evicted
    }

    /// §3.7.
    pub fn set_budget(&self, budget: u64) -> TierStats {
        self.with_evictions(Some(Event::Budget(budget)), |core, ev| {
            core.set_budget(budget, ev)
        })
    }

    /// Changes `max_entries` (0 = unlimited). Not a trace operation, so never recorded.
    pub fn set_max_entries(&self, max_entries: u64) -> TierStats {
        self.with_evictions(None, |core, ev| core.set_max_entries(max_entries, ev))
    }

    /// The §6 counters.
    pub fn stats(&self) -> TierStats {
        self.shared.state.lock().core.stats()
    }

    /// Starts logging events for trace recording, naming the entries already resident so that
    /// hits on them can be written.
    pub(crate) fn start_log(&self, mut log: TierLog) {
        let mut state = self.shared.state.lock();
        for e in state.core.iter() {
            log.push(Event::Name(Box::new((addr(e), e.key.clone()))));
        }
        state.log = Some(log);
    }

    /// The tier's log, for the recorder, which takes it from its own thread.
    pub(crate) fn log_ref(&self) -> LogRef<R> {
        LogRef(self.shared.clone())
    }

    /// One [`EntryInfo`] per entry that counts in the stats: unused ones least recently
    /// released first, then those in use, then those removed while in use.
    pub fn entries(&self) -> Vec<EntryInfo> {
        let now = now_ms();
        let state = self.shared.state.lock();
        state
            .core
            .iter()
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
                    removed: e.is_orphan(),
                    fit: e.key.fit().map(|(w, h)| [w, h]),
                }
            })
            .collect()
    }

    fn with_evictions(
        &self,
        event: Option<Event>,
        f: impl FnOnce(&mut TierCore<Homed<R>>, &mut Freed<Homed<R>>),
    ) -> TierStats {
        let mut freed = Vec::new();
        let mut state = self.shared.state.lock();
        f(&mut state.core, &mut freed);
        if let Some(event) = event {
            state.record(|| event);
        }
        state.forget(&freed);
        let stats = state.core.stats();
        drop(state);
        drop(freed);
        stats
    }
}

/// A tier's log as the recorder reaches it: a reference to the tier's shared state that, unlike
/// a [`Tier`], does not close the tier when it drops.
pub(crate) struct LogRef<R: Resource>(Arc<Shared<R>>);

impl<R: Resource> LogRef<R> {
    /// Swaps the log's buffer for `spare`; returns the events so far and the clock, read under
    /// the lock (empty when nothing is logging).
    pub(crate) fn take_log(&self, spare: Batch) -> (Batch, u64) {
        let mut state = self.0.state.lock();
        match &mut state.log {
            Some(log) => (log.take(spare), log.now()),
            None => (spare, 0),
        }
    }

    /// Stops logging; returns the last events.
    pub(crate) fn stop_log(&self) -> Batch {
        let log = self.0.state.lock().log.take();
        log.map(|mut l| l.take(Batch::default()))
            .unwrap_or_default()
    }
}

impl<R: Resource> Tier<R> {
    /// Removes every entry (§3.5 for all keys at once): unused ones are freed now, those in use
    /// when their last handle drops, and loads in flight are served but not indexed. Returns
    /// the number of entries that were indexed.
    pub fn remove_all(&self) -> u64 {
        let mut freed = Vec::new();
        let mut state = self.shared.state.lock();
        let entries = state.core.stats().entries;
        state.core.close(&mut freed);
        state.forget(&freed);
        drop(state);
        drop(freed);
        entries
    }
}

impl<R: Resource> Drop for Tier<R> {
    fn drop(&mut self) {
        if !self.shared.is_ours() {
            // The parent's tier, in a forked child: left as it is (its entries may still be
            // read through the parent's handles, which never free them here).
            std::mem::forget(self.shared.clone());
            return;
        }
        let mut freed = Vec::new();
        let mut state = self.shared.state.lock();
        state.log = None;
        state.core.close(&mut freed);
        drop(state);
        drop(freed);
    }
}

/// A shared, reference-counted handle to one cached resource (§3.10).
///
/// Cloning is cheap (one uncontended lock round trip); all clones point at the same pixels.
/// The handle may outlive the cache. When the last handle of an entry drops, the entry becomes
/// unused and may be evicted.
pub struct Handle<R: Resource> {
    /// Counted in the entry's `refs`, so the entry outlives this handle.
    entry: EntryPtr<Homed<R>>,
    /// This handle's name in a trace being recorded; 0 when not recorded.
    id: u64,
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
    /// The bytes this entry counts (§2).
    pub fn bytes(&self) -> u64 {
        self.entry().bytes
    }
    /// Live handles to this entry, this one included. (In a forked child, for a handle made
    /// in the parent: the count the parent had when it forked, at least 1.)
    pub fn refs(&self) -> usize {
        if !self.home().is_ours() {
            return self
                .home()
                .state
                .try_lock()
                .map_or(1, |s| s.core.refs(self.entry));
        }
        self.home().state.lock().core.refs(self.entry)
    }
    /// In a forked child: whether this handle's tier is the parent's (out of line: the hot
    /// paths ask only once [`crate::os::fork::forked`] says this process was forked).
    #[cold]
    #[inline(never)]
    fn inherited(&self) -> bool {
        !self.home().is_ours()
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
        if crate::os::fork::forked() && self.inherited() {
            // The parent's entry, in a forked child: never freed here, so the clone needs no
            // count (see `Drop`).
            return Handle {
                entry: self.entry,
                id: 0,
            };
        }
        let mut state = self.home().state.lock();
        state.core.add_ref(self.entry);
        let mut id = 0;
        if self.id != 0 {
            let of = self.id;
            id = state.record(|| Event::Clone(of));
        }
        Handle {
            entry: self.entry,
            id,
        }
    }
}

impl<R: Resource> Drop for Handle<R> {
    #[inline]
    fn drop(&mut self) {
        // A handle made in the parent, dropped in a forked child: the parent's tier is never
        // locked nor freed here (`crate::os::fork`), so its entries stay readable.
        if crate::os::fork::forked() && self.inherited() {
            return;
        }
        let now = now_ms();
        let mut state = self.home().state.lock();
        let rest = state.core.release(self.entry, now);
        if self.id != 0 {
            if let Some(log) = &mut state.log {
                log.release(self.id);
            }
        }
        if rest != Released::Done {
            self.drop_slow(state, rest);
        }
    }
}

impl<R: Resource> Handle<R> {
    /// The rest of [`Handle::drop`] when it frees or evicts.
    #[cold]
    #[inline(never)]
    fn drop_slow(&self, mut state: TierGuard<'_, R>, rest: Released) {
        let mut freed = Vec::new();
        state.core.finish_release(self.entry, rest, &mut freed);
        if !freed.is_empty() {
            state.forget(&freed);
        }
        drop(state);
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
#[inline]
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
