//! The byte-budgeted tier core: the whole of SPEC §3's bookkeeping and eviction, for one tier,
//! single-threaded and without locks.
//!
//! Both tiers (decoded bitmaps and GPU textures) use this one implementation; it is generic over
//! what an entry holds and never looks inside it. [`super::Tier`] wraps it in a mutex for
//! threads, and `placeholder.rs` holds the single-flight loading handshake. Keeping the algorithm
//! here, free of threads, is what lets `tests/tier_model.rs` check it against a tiny model.
//!
//! # One list, in release order
//!
//! Every indexed entry, in use or not, lives in one [`lru::LruCache`]. An entry moves to the
//! most-recently-used end when it is inserted and when its last handle is released, and at no
//! other time (a hit only looks it up). So among *unused* entries the list order is exactly the
//! order of their last release, which is the eviction order §3.4 asks for. Eviction takes the
//! least-recently-used end; an in-use entry found there is moved to the other end, which does not
//! change the relative order of the unused ones. A hit and a release therefore cost one hash
//! lookup each and never allocate.
//!
//! # Who frees an entry
//!
//! Entries are boxed and referred to by [`EntryPtr`]. The handle count (`refs`) is changed only
//! by this core, that is under the tier lock, so it needs no atomic read-modify-write: a hit is a
//! lock round trip and nothing else, the cheapest a shared cache can be. An entry is freed
//! exactly once, here, when it is neither indexed nor referenced (evicted, trimmed or removed
//! while unused, or the last handle of a removed entry dropped); the box is handed to the caller
//! in a [`Freed`] list so that the memory (pixels, textures) is released outside the lock.

use super::placeholder::Placeholder;
use crate::key::{Key, KeyHash, KeyStr};
use crate::stats::TierStats;
use lru::LruCache;
use std::collections::HashMap;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

const IN_USE: u8 = 0;
const UNUSED: u8 = 1;
/// Removed from the index while in use: still counted until its last handle drops (§3.5).
const ORPHAN: u8 = 2;

/// One cached item and its bookkeeping.
///
/// `refs`, `state` and `released_ms` are atomics only so that the entry may be shared between
/// threads in safe code; they are written only by the core (under the tier lock) with plain
/// relaxed loads and stores.
///
/// The layout is part of the hit path's cost: everything a hit and a release read or write
/// (the count, state, bytes, release time, the key's hash and pointer, and the first 8 bytes of
/// the value, where the tier keeps its way home) lies in the first 64 bytes. (Aligning entries
/// to cache lines was measured too: it made hits slower on a heap that decoding has fragmented.)
#[repr(C)]
pub struct Entry<V> {
    refs: AtomicU32,
    state: AtomicU8,
    pub(crate) bytes: u64,
    released_ms: AtomicU64,
    pub(crate) key: Key,
    pub(crate) value: V,
}

impl<V> Entry<V> {
    fn state(&self) -> u8 {
        self.state.load(Ordering::Relaxed)
    }
    fn set_state(&self, s: u8) {
        self.state.store(s, Ordering::Relaxed)
    }
    #[inline]
    fn refs(&self) -> usize {
        self.refs.load(Ordering::Relaxed) as usize
    }
    #[inline]
    fn set_refs(&self, n: usize) {
        // 2^32 live handles would take 64 GiB of handles alone; refuse rather than wrap.
        let n = u32::try_from(n).expect("more than 2^32 handles to one entry");
        self.refs.store(n, Ordering::Relaxed)
    }
    /// Live handles (exact when read under the tier lock).
    pub(crate) fn ref_count(&self) -> usize {
        self.refs()
    }
    /// Coarse milliseconds of the last release.
    pub(crate) fn released_ms(&self) -> u64 {
        self.released_ms.load(Ordering::Relaxed)
    }
}

/// A pointer to a boxed entry. Dereferencing it is valid while the entry is indexed (under the
/// tier lock) or while the holder owns one of its counted handles: the core frees an entry only
/// when it is neither.
pub struct EntryPtr<V>(NonNull<Entry<V>>);

impl<V> Clone for EntryPtr<V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<V> Copy for EntryPtr<V> {}

// SAFETY: an `EntryPtr` is a shared reference to an `Entry` whose mutable parts are atomics;
// it is as thread-safe as `&Entry<V>`, which needs `V: Sync` (and `Send`, since the entry may be
// freed on another thread).
unsafe impl<V: Send + Sync> Send for EntryPtr<V> {}
// SAFETY: as above.
unsafe impl<V: Send + Sync> Sync for EntryPtr<V> {}

impl<V> EntryPtr<V> {
    /// The entry.
    ///
    /// # Safety
    /// The entry must not have been freed: the caller holds a counted handle, or the tier lock
    /// with the entry indexed.
    pub unsafe fn get<'a>(self) -> &'a Entry<V> {
        // SAFETY: upheld by the caller, see above.
        unsafe { self.0.as_ref() }
    }
    /// Whether two pointers name the same entry.
    pub fn same(self, other: Self) -> bool {
        self.0 == other.0
    }
    fn entry(&self) -> &Entry<V> {
        // SAFETY: used only inside the core on entries it has not freed (indexed, orphaned
        // with live handles, or being freed right now by the caller of this method).
        unsafe { self.0.as_ref() }
    }
}

/// Entries the core has let go of, to be dropped by the caller once the lock is released.
pub type Freed<V> = Vec<Box<Entry<V>>>;

/// What [`TierCore::acquire`] found.
pub enum Lookup<V> {
    /// Resident: one handle has been counted for the caller.
    Hit(EntryPtr<V>),
    /// Another caller is loading this key: wait on the placeholder (counted as coalesced).
    Wait(Arc<Placeholder<V>>),
    /// Nobody has it: the caller must load it and then call [`TierCore::complete`] or
    /// [`TierCore::fail`] with this placeholder (counted as a miss).
    Miss(Arc<Placeholder<V>>),
}

/// Counters of SPEC §6, kept exactly.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counters {
    used: u64,
    in_use: u64,
    peak_used: u64,
    entries: u64,
    in_use_entries: u64,
    hits: u64,
    misses: u64,
    coalesced: u64,
    evictions: u64,
    evicted_bytes: u64,
    failures: u64,
}

/// The single-threaded tier: index, release-ordered list, loads in flight, counters.
pub struct TierCore<V> {
    list: LruCache<Key, EntryPtr<V>, KeyHash>,
    loading: HashMap<Key, Arc<Placeholder<V>>, KeyHash>,
    budget: u64,
    max_entries: u64,
    c: Counters,
}

impl<V> TierCore<V> {
    /// An empty tier with `budget` bytes and at most `max_entries` entries (0 = unlimited).
    pub fn new(budget: u64, max_entries: u64) -> Self {
        TierCore {
            list: LruCache::unbounded_with_hasher(KeyHash),
            loading: HashMap::with_hasher(KeyHash),
            budget,
            max_entries,
            c: Counters::default(),
        }
    }

    /// §3.1: a hit, a wait on a load in flight, or a miss. `make_key` runs only on a miss.
    pub fn acquire(&mut self, lookup: &str, make_key: impl FnOnce() -> Key) -> Lookup<V> {
        let lookup = KeyStr::new(lookup);
        if let Some(&p) = self.list.peek(lookup) {
            let e = p.entry();
            let refs = e.refs();
            e.set_refs(refs + 1);
            if refs == 0 {
                e.set_state(IN_USE);
                self.c.in_use += e.bytes;
                self.c.in_use_entries += 1;
            }
            self.c.hits += 1;
            return Lookup::Hit(p);
        }
        if let Some(ph) = self.loading.get(lookup) {
            ph.waiters.fetch_add(1, Ordering::Relaxed);
            self.c.coalesced += 1;
            return Lookup::Wait(ph.clone());
        }
        self.c.misses += 1;
        let key = make_key();
        let ph = Arc::new(Placeholder::new(key.clone()));
        self.loading.insert(key, ph.clone());
        Lookup::Miss(ph)
    }

    /// A load finished: insert `value` in use, with one handle for the loader and one for each
    /// waiter, then evict. If the key was removed while loading, the entry is served but not
    /// indexed (an orphan from birth).
    pub fn complete(
        &mut self,
        ph: &Arc<Placeholder<V>>,
        value: V,
        bytes: u64,
        freed: &mut Freed<V>,
    ) -> EntryPtr<V> {
        let attached = self.detach(ph);
        let refs = 1 + ph.waiters.load(Ordering::Relaxed);
        let key = ph.key.fresh();
        let entry = Box::new(Entry {
            refs: AtomicU32::new(0),
            state: AtomicU8::new(if attached { IN_USE } else { ORPHAN }),
            bytes,
            key: key.clone(),
            released_ms: AtomicU64::new(0),
            value,
        });
        entry.set_refs(refs);
        let p = EntryPtr(NonNull::from(Box::leak(entry)));
        if attached {
            if let Some((_, old)) = self.list.push(key, p) {
                // Unreachable: a key is never resident and loading at once. Stay consistent.
                debug_assert!(false, "key {} resident while loading", ph.key);
                self.unindex(old, freed);
            }
        }
        self.c.used += bytes;
        self.c.in_use += bytes;
        self.c.entries += 1;
        self.c.in_use_entries += 1;
        self.evict_to(self.budget, freed);
        p
    }

    /// A load failed (§3.2): count it and forget the placeholder; nothing is inserted.
    pub fn fail(&mut self, ph: &Arc<Placeholder<V>>) {
        self.detach(ph);
        self.c.failures += 1;
    }

    /// A handle was cloned.
    pub fn add_ref(&mut self, p: EntryPtr<V>) {
        let e = p.entry();
        e.set_refs(e.refs() + 1);
    }

    /// A handle was dropped. On the last one, §3.3: the entry becomes unused at the
    /// most-recently-released end (and the tier may evict), or, if it was removed while in use,
    /// it is freed.
    pub fn drop_ref(&mut self, p: EntryPtr<V>, now_ms: u64, freed: &mut Freed<V>) {
        let e = p.entry();
        let refs = e.refs() - 1;
        e.set_refs(refs);
        if refs != 0 {
            return;
        }
        self.c.in_use -= e.bytes;
        self.c.in_use_entries -= 1;
        if e.state() == ORPHAN {
            self.c.used -= e.bytes;
            self.c.entries -= 1;
            freed.push(Self::free(p));
            return;
        }
        e.set_state(UNUSED);
        e.released_ms.store(now_ms, Ordering::Relaxed);
        self.list.promote(&e.key);
        self.evict_to(self.budget, freed);
    }

    /// Live handles of an entry.
    pub fn refs(&self, p: EntryPtr<V>) -> usize {
        p.entry().refs()
    }

    /// §3.5: drop `lookup` from the index. Returns whether an entry was resident. An unused
    /// entry is freed; an in-use one is freed by its last handle. A load in flight for the key
    /// is detached: its result is still handed to its callers, but the next acquire loads
    /// afresh.
    pub fn remove(&mut self, lookup: &str, freed: &mut Freed<V>) -> bool {
        let lookup = KeyStr::new(lookup);
        self.loading.remove(lookup);
        match self.list.pop(lookup) {
            Some(p) => {
                self.unindex(p, freed);
                true
            }
            None => false,
        }
    }

    /// §3.6: evict unused entries until `used <= target` or none is left.
    pub fn trim(&mut self, target: u64, freed: &mut Freed<V>) {
        self.evict_to(target, freed);
    }

    /// §3.7: a new budget, enforced at once.
    pub fn set_budget(&mut self, budget: u64, freed: &mut Freed<V>) {
        self.budget = budget;
        self.evict_to(budget, freed);
    }

    /// A new entry-count limit (0 = unlimited), enforced at once.
    pub fn set_max_entries(&mut self, max_entries: u64, freed: &mut Freed<V>) {
        self.max_entries = max_entries;
        self.evict_to(self.budget, freed);
    }

    /// The tier is going away: unused entries are freed, in-use ones become orphans that their
    /// handles free, loads in flight are detached.
    pub fn close(&mut self, freed: &mut Freed<V>) {
        self.loading.clear();
        while let Some((_, p)) = self.list.pop_lru() {
            self.unindex(p, freed);
        }
    }

    /// Counts a miss that was served without inserting anything (SPEC §3.8 with
    /// `gpu.keep_cpu_copy = false`), and its failure if the load failed.
    pub fn count_uninserted_miss(&mut self, failed: bool) {
        self.c.misses += 1;
        self.c.failures += failed as u64;
    }

    /// The §6 counters for this tier.
    pub fn stats(&self) -> TierStats {
        let c = &self.c;
        TierStats {
            budget: self.budget,
            used: c.used,
            in_use: c.in_use,
            unused: c.used - c.in_use,
            over_budget: c.used.saturating_sub(self.budget),
            peak_used: c.peak_used.max(c.used),
            entries: c.entries,
            in_use_entries: c.in_use_entries,
            hits: c.hits,
            misses: c.misses,
            coalesced: c.coalesced,
            evictions: c.evictions,
            evicted_bytes: c.evicted_bytes,
            failures: c.failures,
        }
    }

    /// Records the end of an operation for `peak_used`.
    pub fn end_op(&mut self) {
        self.c.peak_used = self.c.peak_used.max(self.c.used);
    }

    /// Indexed entries, least recently touched first.
    pub fn iter(&self) -> impl Iterator<Item = &Entry<V>> {
        self.list.iter().rev().map(|(_, p)| p.entry())
    }

    /// Whether `lookup` is resident (no counter changes).
    pub fn contains(&self, lookup: &str) -> bool {
        self.list.contains(KeyStr::new(lookup))
    }

    /// Removes `ph` from the loading map if it is still the one there; true if it was.
    fn detach(&mut self, ph: &Arc<Placeholder<V>>) -> bool {
        match self.loading.get(&ph.key) {
            Some(cur) if Arc::ptr_eq(cur, ph) => {
                self.loading.remove(&ph.key);
                true
            }
            _ => false,
        }
    }

    /// `p` has just left the index: free it if unused, else orphan it.
    fn unindex(&mut self, p: EntryPtr<V>, freed: &mut Freed<V>) {
        let e = p.entry();
        if e.state() == UNUSED {
            self.c.used -= e.bytes;
            self.c.entries -= 1;
            freed.push(Self::free(p));
        } else {
            e.set_state(ORPHAN);
        }
    }

    /// Takes back ownership of an entry that is neither indexed nor referenced.
    fn free(p: EntryPtr<V>) -> Box<Entry<V>> {
        debug_assert_eq!(p.entry().refs(), 0);
        // SAFETY: every entry is created by `Box::leak` in `complete`, and freed once: the
        // callers reach here only after the entry left the index (or was never in it) and its
        // last handle is gone, so no other `EntryPtr` to it will be dereferenced again.
        unsafe { Box::from_raw(p.0.as_ptr()) }
    }

    /// §3.4 and §3.6: evict least-recently-released unused entries while over `limit` bytes
    /// (or over `max_entries`) and any unused entry is left.
    fn evict_to(&mut self, limit: u64, freed: &mut Freed<V>) {
        loop {
            let over =
                self.c.used > limit || (self.max_entries != 0 && self.c.entries > self.max_entries);
            if !over || self.c.entries == self.c.in_use_entries {
                break;
            }
            let Some((_, &p)) = self.list.peek_lru() else {
                break;
            };
            let e = p.entry();
            if e.state() != UNUSED {
                self.list.promote(&e.key);
                continue;
            }
            self.list.pop_lru();
            self.c.evictions += 1;
            self.c.evicted_bytes += e.bytes;
            self.unindex(p, freed);
        }
        self.end_op();
    }
}

impl<V> Drop for TierCore<V> {
    fn drop(&mut self) {
        // A tier is closed before it is dropped, and handles keep it alive, so only unused
        // entries can be left here; free them rather than leak.
        let mut freed = Vec::new();
        self.close(&mut freed);
    }
}
