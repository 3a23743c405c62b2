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

use super::placeholder::Placeholder;
use crate::key::Key;
use crate::stats::TierStats;
use lru::LruCache;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

const IN_USE: u8 = 0;
const UNUSED: u8 = 1;
/// Removed from the index while in use: still counted until its last handle drops (§3.5).
const ORPHAN: u8 = 2;
/// Gone from the books.
const DEAD: u8 = 3;

/// One cached item and its bookkeeping. Shared by the index and the handles through an `Arc`.
pub struct Entry<V> {
    pub(crate) key: Key,
    pub(crate) value: V,
    pub(crate) bytes: u64,
    /// Live handles. Raised from 0 only under the tier lock; lowered anywhere.
    pub(crate) refs: AtomicUsize,
    /// `IN_USE`, `UNUSED`, `ORPHAN` or `DEAD`; written only under the tier lock.
    state: AtomicU8,
    /// Coarse milliseconds of the last release (for `idle_ms`).
    released_ms: AtomicU64,
}

impl<V> Entry<V> {
    fn state(&self) -> u8 {
        self.state.load(Ordering::Relaxed)
    }
    fn set_state(&self, s: u8) {
        self.state.store(s, Ordering::Relaxed)
    }
    /// Coarse milliseconds of the last release.
    pub(crate) fn released_ms(&self) -> u64 {
        self.released_ms.load(Ordering::Relaxed)
    }
}

/// What [`TierCore::acquire`] found.
pub enum Lookup<V> {
    /// Resident: a handle's worth of `refs` has been added.
    Hit(Arc<Entry<V>>),
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
    list: LruCache<Key, Arc<Entry<V>>, foldhash::fast::RandomState>,
    loading: HashMap<Key, Arc<Placeholder<V>>, foldhash::fast::RandomState>,
    budget: u64,
    max_entries: u64,
    c: Counters,
}

impl<V> TierCore<V> {
    /// An empty tier with `budget` bytes and at most `max_entries` entries (0 = unlimited).
    pub fn new(budget: u64, max_entries: u64) -> Self {
        TierCore {
            list: LruCache::unbounded_with_hasher(Default::default()),
            loading: HashMap::with_hasher(Default::default()),
            budget,
            max_entries,
            c: Counters::default(),
        }
    }

    /// §3.1: a hit, a wait on a load in flight, or a miss. `make_key` runs only on a miss.
    pub fn acquire(&mut self, lookup: &str, make_key: impl FnOnce() -> Key) -> Lookup<V> {
        if let Some(e) = self.list.peek(lookup) {
            let e = e.clone();
            e.refs.fetch_add(1, Ordering::Relaxed);
            if e.state() == UNUSED {
                e.set_state(IN_USE);
                self.c.in_use += e.bytes;
                self.c.in_use_entries += 1;
            }
            self.c.hits += 1;
            return Lookup::Hit(e);
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
        evicted: &mut Vec<Arc<Entry<V>>>,
    ) -> Arc<Entry<V>> {
        let attached = self.detach(ph);
        let refs = 1 + ph.waiters.load(Ordering::Relaxed);
        let entry = Arc::new(Entry {
            key: ph.key.clone(),
            value,
            bytes,
            refs: AtomicUsize::new(refs),
            state: AtomicU8::new(if attached { IN_USE } else { ORPHAN }),
            released_ms: AtomicU64::new(0),
        });
        if attached {
            if let Some((_, old)) = self.list.push(ph.key.clone(), entry.clone()) {
                // Unreachable: a key is never resident and loading at once. Stay consistent.
                debug_assert!(false, "key {} resident while loading", ph.key);
                self.forget(&old);
                evicted.push(old);
            }
        }
        self.c.used += bytes;
        self.c.in_use += bytes;
        self.c.entries += 1;
        self.c.in_use_entries += 1;
        self.evict_to(self.budget, evicted);
        entry
    }

    /// A load failed (§3.2): count it and forget the placeholder; nothing is inserted.
    pub fn fail(&mut self, ph: &Arc<Placeholder<V>>) {
        self.detach(ph);
        self.c.failures += 1;
    }

    /// §3.3: called after an entry's handle count dropped to zero. Idempotent, and harmless if
    /// the entry was re-acquired in between.
    pub fn release(
        &mut self,
        entry: &Arc<Entry<V>>,
        now_ms: u64,
        evicted: &mut Vec<Arc<Entry<V>>>,
    ) {
        if entry.refs.load(Ordering::Acquire) != 0 {
            return;
        }
        match entry.state() {
            IN_USE => {
                entry.set_state(UNUSED);
                entry.released_ms.store(now_ms, Ordering::Relaxed);
                self.list.promote(&entry.key);
                self.c.in_use -= entry.bytes;
                self.c.in_use_entries -= 1;
                self.evict_to(self.budget, evicted);
            }
            ORPHAN => {
                entry.set_state(DEAD);
                self.c.used -= entry.bytes;
                self.c.in_use -= entry.bytes;
                self.c.entries -= 1;
                self.c.in_use_entries -= 1;
            }
            _ => {}
        }
    }

    /// §3.5: drop `lookup` from the index. Returns the entry if it was resident, so the caller
    /// can free it outside the lock. A load in flight for the key is detached: its result is
    /// still handed to its callers, but the next acquire loads afresh.
    pub fn remove(&mut self, lookup: &str) -> Option<Arc<Entry<V>>> {
        self.loading.remove(lookup);
        let e = self.list.pop(lookup)?;
        match e.state() {
            UNUSED => self.forget(&e),
            _ => e.set_state(ORPHAN),
        }
        Some(e)
    }

    /// §3.6: evict unused entries until `used <= target` or none is left.
    pub fn trim(&mut self, target: u64, evicted: &mut Vec<Arc<Entry<V>>>) {
        self.evict_to(target, evicted);
    }

    /// §3.7: a new budget, enforced at once.
    pub fn set_budget(&mut self, budget: u64, evicted: &mut Vec<Arc<Entry<V>>>) {
        self.budget = budget;
        self.evict_to(budget, evicted);
    }

    /// A new entry-count limit (0 = unlimited), enforced at once.
    pub fn set_max_entries(&mut self, max_entries: u64, evicted: &mut Vec<Arc<Entry<V>>>) {
        self.max_entries = max_entries;
        self.evict_to(self.budget, evicted);
    }

    /// The tier is going away: unused entries are freed, in-use ones become orphans that their
    /// handles free, loads in flight are detached. Returns what to drop outside the lock.
    pub fn close(&mut self) -> Vec<Arc<Entry<V>>> {
        self.loading.clear();
        let mut out = Vec::with_capacity(self.list.len());
        while let Some((_, e)) = self.list.pop_lru() {
            match e.state() {
                UNUSED => self.forget(&e),
                _ => e.set_state(ORPHAN),
            }
            out.push(e);
        }
        out
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
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Entry<V>>> {
        self.list.iter().rev().map(|(_, e)| e)
    }

    /// Whether `lookup` is resident (no counter changes).
    pub fn contains(&self, lookup: &str) -> bool {
        self.list.contains(lookup)
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

    /// Takes an unused entry off the books (it has already left the list).
    fn forget(&mut self, e: &Entry<V>) {
        e.set_state(DEAD);
        self.c.used -= e.bytes;
        self.c.entries -= 1;
    }

    /// §3.4 and §3.6: evict least-recently-released unused entries while over `limit` bytes
    /// (or over `max_entries`) and any unused entry is left.
    fn evict_to(&mut self, limit: u64, evicted: &mut Vec<Arc<Entry<V>>>) {
        loop {
            let over =
                self.c.used > limit || (self.max_entries != 0 && self.c.entries > self.max_entries);
            if !over || self.c.entries == self.c.in_use_entries {
                break;
            }
            let Some((key, e)) = self.list.peek_lru() else {
                break;
            };
            if e.state() != UNUSED {
                let key = key.clone();
                self.list.promote(&key);
                continue;
            }
            let (_, e) = self.list.pop_lru().expect("peeked");
            self.forget(&e);
            self.c.evictions += 1;
            self.c.evicted_bytes += e.bytes;
            evicted.push(e);
        }
        self.end_op();
    }
}
