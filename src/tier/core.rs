//! The byte-budgeted tier core: the whole of §3's bookkeeping and eviction, for one tier,
//! single-threaded and without locks.
//!
//! Both tiers (decoded bitmaps and GPU textures) use this one implementation; it is generic over
//! what an entry holds and never looks inside it. [`super::Tier`] wraps it in a mutex for
//! threads, and `placeholder.rs` holds the single-flight loading handshake. Keeping the algorithm
//! here, free of threads, is what lets `tests/integration/tier_model.rs` check it against a tiny model.
//!
//! # The unused list: releases in order, deleted lazily
//!
//! §3.4 evicts the least-recently-*released* unused entry. The unused list is a queue of
//! release records, `(slot, seq)` in 8 bytes, in release order: a release appends one record
//! (the queue's hot tail) and notes `seq` in a dense table of 4-byte numbers, one per slot, and
//! a hit touches no list at all. A record is *live* while its entry is still in that slot, has
//! not been released again since (the slot's `seq` is the entry's last release) and is unused;
//! eviction pops records from the front and skips the dead ones. So the live records are
//! exactly the unused entries, in the order of their last release, which is the eviction
//! order; and neither a hit nor a release touches any other entry's memory (a linked LRU list
//! writes both neighbours of the entry on every release: two cache misses). Records that are no entry's last release are swept out, reading
//! only the table of sequence numbers, whenever the queue holds more than four times the
//! entries (plus a constant); a sweep leaves at most one record per entry, so each release
//! pays O(1) amortised (4/3 of a record read, branch-free) and the queue holds at most 4
//! records (32 bytes) per entry.
//!
//! Entries are found by key through a [`hashbrown::HashTable`] of entry pointers: the key's
//! bytes and hash live in the entry (one allocation away from the table, and nothing else),
//! and a release needs no lookup at all, since the handle already points at its entry.
//!
//! # Soundness: the rules
//!
//! Entries are boxed and referred to by [`EntryPtr`], a `Copy` raw pointer, so that a hit and a
//! release cost no atomic read-modify-write. Every safe method of [`TierCore`] that takes an
//! `EntryPtr` dereferences it, which is sound only because this module and its one user,
//! [`super::Tier`], are private to the crate (no code outside it can make, copy or keep an
//! `EntryPtr`) and keep these rules:
//!
//! 1. **Counts change only under the tier lock.** `refs` is changed only by this core, that
//!    is through `&mut TierCore`, which [`super::Tier`] hands out only while holding its lock.
//!    Entry fields are atomics only so that `Entry` may be shared between threads in safe
//!    code; they are read and written with relaxed plain loads and stores.
//! 2. **An `EntryPtr` is dereferenced only while its entry is alive:** under the tier lock
//!    while the entry is indexed or an orphan ([`TierCore::iter`]), or by the owner of one of
//!    its counted handles (a [`super::Handle`], which counted itself in `refs` under the lock
//!    and uncounts itself under the lock when it drops).
//! 3. **An entry is freed exactly once, here, when it is neither indexed nor counted:**
//!    evicted, trimmed or removed while unused, or the last handle of an orphan dropped
//!    ([`TierCore::free`] is the only `Box::from_raw`). A pointer to it may still exist in a
//!    release record or the slot table, but those are checked against the slot's sequence
//!    number and the slot's occupant before any dereference.
//! 4. **Entries are dropped outside the lock.** The core hands freed boxes to its caller in a
//!    [`Freed`] list; [`super::Tier`] drops it after releasing the lock and after publishing a
//!    load's outcome, so a panicking or slow destructor (pixels, GPU textures) can neither run
//!    under the lock nor strand a waiter.
//! 5. **The critical sections do not unwind.** What could fail inside them (2^32 handles to
//!    one entry, 2^28 entries in one tier) aborts the process instead of panicking, so a panic
//!    never leaves the core half-updated; the only caller-supplied code that runs under the
//!    lock is [`super::Resource::dimensions`] and `format` while listing entries, which change
//!    nothing.

use super::placeholder::Placeholder;
use crate::key::{Key, KeyHash, KeyStr};
use crate::observe::stats::TierStats;
use hashbrown::HashTable;
use std::collections::{HashMap, VecDeque};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

/// The `slot` of an entry that has left the index while in use (§3.5): still counted until its
/// last handle drops.
const ORPHAN: u32 = u32::MAX;

/// One cached item and its bookkeeping.
///
/// `refs`, `slot` and `released_ms` are atomics only so that the entry may be
/// shared between threads in safe code; they are written only by the core (under the tier
/// lock) with plain relaxed loads and stores.
///
/// The layout is part of the hit path's cost: everything a hit and a release read or write
/// (the count, the slot, the bytes, a short key's bytes and the value's first 8 bytes, where
/// the tier keeps its way home) lies in the first 64 bytes; the key itself comes last.
#[repr(C)]
pub struct Entry<V> {
    refs: AtomicU32,
    /// Its place in the core's slot table, or [`ORPHAN`].
    slot: AtomicU32,
    pub(crate) bytes: u64,
    released_ms: AtomicU64,
    short: ShortKey,
    pub(crate) value: V,
    pub(crate) key: Key,
}

/// A lookup string of up to [`ShortKey::MAX`] bytes, kept inside the entry: a hit compares it
/// without following the key's pointer to its bytes, which would be a second cache miss after
/// the entry's own (hrefs like `photos/img_0042.jpg` fit). Longer strings compare the key's
/// hash, then its bytes.
#[derive(Clone, Copy)]
struct ShortKey {
    /// The string's length, or [`ShortKey::LONG`].
    len: u8,
    bytes: [u8; ShortKey::MAX],
}

impl ShortKey {
    const MAX: usize = 23;
    const LONG: u8 = u8::MAX;

    /// Whether the string is `b`, which is as long as it (at most [`ShortKey::MAX`] bytes).
    ///
    /// Compared a few words at a time, overlapping, inline: a call to `memcmp` costs more than
    /// the comparison.
    #[inline]
    fn holds(&self, b: &[u8]) -> bool {
        let (a, n) = (&self.bytes[..], b.len());
        debug_assert!(n <= ShortKey::MAX && n == self.len as usize);
        let word = |s: &[u8], i: usize| u64::from_ne_bytes(s[i..i + 8].try_into().unwrap());
        let half = |s: &[u8], i: usize| u32::from_ne_bytes(s[i..i + 4].try_into().unwrap());
        match n {
            17.. => {
                word(a, 0) == word(b, 0)
                    && word(a, 8) == word(b, 8)
                    && word(a, n - 8) == word(b, n - 8)
            }
            8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
            4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
            _ => a[..n] == *b,
        }
    }

    fn new(lookup: &str) -> ShortKey {
        let mut short = ShortKey {
            len: ShortKey::LONG,
            bytes: [0; ShortKey::MAX],
        };
        if let Some(dst) = short.bytes.get_mut(..lookup.len()) {
            dst.copy_from_slice(lookup.as_bytes());
            short.len = lookup.len() as u8;
        }
        short
    }
}

impl<V> Entry<V> {
    #[inline]
    fn refs(&self) -> usize {
        self.refs.load(Ordering::Relaxed) as usize
    }
    #[inline]
    fn set_refs(&self, n: usize) {
        // 2^32 live handles would take 64 GiB of handles alone; refuse rather than wrap, and
        // abort rather than unwind out of the critical section (rule 5).
        let Ok(n) = u32::try_from(n) else {
            fatal("more than 2^32 handles to one entry")
        };
        self.refs.store(n, Ordering::Relaxed)
    }
    #[inline]
    fn slot(&self) -> u32 {
        self.slot.load(Ordering::Relaxed)
    }
    /// Live handles (exact when read under the tier lock).
    pub(crate) fn ref_count(&self) -> usize {
        self.refs()
    }
    /// Whether the entry was removed from the index while in use (§3.5): it counts until its
    /// last handle drops.
    pub(crate) fn is_orphan(&self) -> bool {
        self.slot() == ORPHAN
    }
    /// Coarse milliseconds of the last release.
    pub(crate) fn released_ms(&self) -> u64 {
        self.released_ms.load(Ordering::Relaxed)
    }
    /// Whether this entry's key has the lookup string `lookup`, whose hash is `hash`.
    #[inline]
    fn is(&self, lookup: &str, hash: u64) -> bool {
        let n = lookup.len();
        if n <= ShortKey::MAX {
            self.short.len as usize == n && self.short.holds(lookup.as_bytes())
        } else {
            self.key.hash_value() == hash && self.key.lookup() == lookup
        }
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
    /// The entry's address, as the key of the orphan set.
    fn addr(self) -> usize {
        self.0.as_ptr() as usize
    }
    fn entry(&self) -> &Entry<V> {
        // SAFETY: used only inside the core on entries it has not freed (indexed, orphaned
        // with live handles, or being freed right now by the caller of this method).
        unsafe { self.0.as_ref() }
    }
}

/// Ends the process for a limit no program reaches in practice, from inside a critical section
/// that must not unwind (see the module docs, rule 5).
#[cold]
fn fatal(what: &str) -> ! {
    eprintln!("texcache: fatal: {what}");
    std::process::abort()
}

/// Entries the core has let go of, to be dropped by the caller once the lock is released.
pub type Freed<V> = Vec<Box<Entry<V>>>;

/// What [`TierCore::acquire`] found.
pub enum Lookup<V> {
    /// Resident: one handle has been counted for the caller.
    Hit(EntryPtr<V>),
    /// Another caller is loading this key: wait on the placeholder (counted as coalesced).
    Wait(Arc<Placeholder<EntryPtr<V>>>),
    /// Nobody has it: the caller must load it and then call [`TierCore::complete`] or
    /// [`TierCore::fail`] with this placeholder (counted as a miss).
    Miss(Arc<Placeholder<EntryPtr<V>>>),
}

/// What is left of a release after [`TierCore::release`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Released {
    /// Nothing: the release is complete.
    Done,
    /// The entry was removed while in use and this was its last handle: it must be freed.
    Orphan,
    /// The tier is over its budget (or entry limit) and must evict.
    Evict,
}

/// Counters of §6, kept exactly.
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

/// The single-threaded tier: index, release queue, loads in flight, counters.
pub struct TierCore<V> {
    /// Indexed entries, by their key's hash.
    index: HashTable<EntryPtr<V>>,
    /// Indexed entries by slot (`None`: a free slot); a release record names its entry by
    /// slot.
    slots: Vec<Option<EntryPtr<V>>>,
    /// Per slot, the sequence number of its entry's last release (0: none, or a free slot).
    /// Kept apart from the entries, 4 bytes a slot, so that a release writes to a small dense
    /// table and a sweep reads nothing else.
    slot_seqs: Vec<u32>,
    free_slots: Vec<u32>,
    /// Release records in release order; see the module docs.
    releases: VecDeque<Record>,
    /// The last release's sequence number (wrapping, never 0; see [`Record`]).
    seq: u32,
    /// Sweeps so far (for tests).
    #[cfg(test)]
    sweeps: u64,
    loading: HashMap<Key, Arc<Placeholder<EntryPtr<V>>>, KeyHash>,
    /// Entries out of the index while still in use (§3.5), by address: they still count, so
    /// the entries listing shows them too. Touched only on the cold paths that make and free
    /// orphans.
    orphans: HashMap<usize, EntryPtr<V>>,
    budget: u64,
    max_entries: u64,
    c: Counters,
}

/// A release record: the entry in `slot` was released as the `seq`th release.
///
/// Sequence numbers are 32 bits and wrap (skipping 0), so that a record takes 8 bytes. That is
/// sound because a record is only ever compared with its slot's latest number, and a dead
/// record (its slot released again since) is swept out within `4 * entries + SWEEP_SLACK`
/// releases, far fewer than the 2^32 it would take its number to come round again while
/// there are fewer than [`MAX_SLOTS`] entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Record {
    slot: u32,
    seq: u32,
}

impl Record {
    /// Whether this record is still its slot's last release, by the table of sequence numbers.
    #[inline]
    fn is_latest(self, slot_seqs: &[u32]) -> bool {
        slot_seqs[self.slot as usize] == self.seq
    }
}

/// At most this many entries per tier (2^28, some 268 million): keeps release sequence
/// numbers from wrapping onto a dead record (see [`Record`]).
const MAX_SLOTS: usize = 1 << 28;

/// Release records allowed beyond four per entry before a sweep, so that a small tier does not
/// sweep on every release.
const SWEEP_SLACK: usize = 1024;

impl<V> TierCore<V> {
    /// An empty tier with `budget` bytes and at most `max_entries` entries (0 = unlimited).
    pub fn new(budget: u64, max_entries: u64) -> Self {
        TierCore {
            index: HashTable::new(),
            slots: Vec::new(),
            slot_seqs: Vec::new(),
            free_slots: Vec::new(),
            releases: VecDeque::new(),
            seq: 0,
            #[cfg(test)]
            sweeps: 0,
            loading: HashMap::with_hasher(KeyHash),
            orphans: HashMap::new(),
            budget,
            max_entries,
            c: Counters::default(),
        }
    }

    #[inline]
    fn find(&self, lookup: &str) -> Option<EntryPtr<V>> {
        self.find_hashed(lookup, KeyStr::hash_of(lookup))
    }

    /// [`TierCore::find`] with `hash` = [`KeyStr::hash_of`] `lookup`.
    #[inline]
    fn find_hashed(&self, lookup: &str, hash: u64) -> Option<EntryPtr<V>> {
        self.index
            .find(hash, |p| p.entry().is(lookup, hash))
            .copied()
    }

    /// §3.1's hit: if `lookup` is resident, one handle is counted for the caller and its entry
    /// returned. Nothing is counted otherwise.
    #[inline]
    pub fn hit(&mut self, lookup: &str) -> Option<EntryPtr<V>> {
        self.hit_hashed(lookup, KeyStr::hash_of(lookup))
    }

    /// [`TierCore::hit`] with `hash` = [`KeyStr::hash_of`] `lookup`, which the caller can
    /// compute before it takes the tier lock.
    #[inline]
    pub fn hit_hashed(&mut self, lookup: &str, hash: u64) -> Option<EntryPtr<V>> {
        debug_assert_eq!(hash, KeyStr::hash_of(lookup));
        let p = self.find_hashed(lookup, hash)?;
        let e = p.entry();
        let refs = e.refs();
        e.set_refs(refs + 1);
        if refs == 0 {
            self.c.in_use += e.bytes;
            self.c.in_use_entries += 1;
        }
        self.c.hits += 1;
        Some(p)
    }

    /// §3.1: a hit, a wait on a load in flight, or a miss. `make_key` runs only on a miss.
    #[inline]
    pub fn acquire(&mut self, lookup: &str, make_key: impl FnOnce() -> Key) -> Lookup<V> {
        match self.hit(lookup) {
            Some(p) => Lookup::Hit(p),
            None => self.acquire_cold(KeyStr::new(lookup), make_key),
        }
    }

    #[inline(never)]
    fn acquire_cold(&mut self, lookup: &KeyStr, make_key: impl FnOnce() -> Key) -> Lookup<V> {
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
        ph: &Arc<Placeholder<EntryPtr<V>>>,
        value: V,
        bytes: u64,
        freed: &mut Freed<V>,
    ) -> EntryPtr<V> {
        let attached = self.detach(ph);
        if attached {
            // Unreachable: a key is never resident and loading at once. Stay consistent.
            if let Some(old) = self.find(ph.key.lookup()) {
                debug_assert!(false, "key {} resident while loading", ph.key);
                self.unindex(old, freed);
            }
        }
        let refs = 1 + ph.waiters.load(Ordering::Relaxed);
        let entry = Box::new(Entry {
            refs: AtomicU32::new(0),
            slot: AtomicU32::new(ORPHAN),
            bytes,
            released_ms: AtomicU64::new(0),
            short: ShortKey::new(ph.key.lookup()),
            value,
            key: ph.key.fresh(),
        });
        entry.set_refs(refs);
        let p = EntryPtr(NonNull::from(Box::leak(entry)));
        if attached {
            self.insert(p);
        } else {
            self.orphans.insert(p.addr(), p);
        }
        self.c.used += bytes;
        self.c.in_use += bytes;
        self.c.entries += 1;
        self.c.in_use_entries += 1;
        self.evict_to(self.budget, freed);
        p
    }

    /// Puts a new entry in the index and a slot.
    fn insert(&mut self, p: EntryPtr<V>) {
        let slot = match self.free_slots.pop() {
            Some(s) => {
                self.slots[s as usize] = Some(p);
                self.slot_seqs[s as usize] = 0;
                s
            }
            None => {
                let s = self.slots.len();
                if s >= MAX_SLOTS {
                    fatal("more than 2^28 entries in one tier");
                }
                self.slots.push(Some(p));
                self.slot_seqs.push(0);
                s as u32
            }
        };
        p.entry().slot.store(slot, Ordering::Relaxed);
        let hash = p.entry().key.hash_value();
        self.index
            .insert_unique(hash, p, |q| q.entry().key.hash_value());
    }

    /// A load failed (§3.2): count it and forget the placeholder; nothing is inserted.
    pub fn fail(&mut self, ph: &Arc<Placeholder<EntryPtr<V>>>) {
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
    #[cfg(test)]
    pub fn drop_ref(&mut self, p: EntryPtr<V>, now_ms: u64, freed: &mut Freed<V>) {
        let rest = self.release(p, now_ms);
        if rest != Released::Done {
            self.finish_release(p, rest, freed);
        }
    }

    /// `TierCore::drop_ref` (the tests' whole release) up to what may free memory, which it leaves to
    /// [`TierCore::finish_release`] (unless it returns [`Released::Done`]): so the common release
    /// (no eviction) needs no list of freed entries.
    #[inline]
    pub fn release(&mut self, p: EntryPtr<V>, now_ms: u64) -> Released {
        let e = p.entry();
        let refs = e.refs() - 1;
        e.set_refs(refs);
        if refs != 0 {
            return Released::Done;
        }
        self.c.in_use -= e.bytes;
        self.c.in_use_entries -= 1;
        let slot = e.slot();
        if slot == ORPHAN {
            return Released::Orphan;
        }
        self.seq = self.seq.checked_add(1).unwrap_or(1);
        self.slot_seqs[slot as usize] = self.seq;
        e.released_ms.store(now_ms, Ordering::Relaxed);
        self.releases.push_back(Record {
            slot,
            seq: self.seq,
        });
        if self.releases.len() > 4 * self.c.entries as usize + SWEEP_SLACK {
            self.sweep();
        }
        if self.over(self.budget) {
            Released::Evict
        } else {
            Released::Done
        }
    }

    /// The rest of a release of `p` that [`TierCore::release`] returned `rest` for: frees the
    /// orphan, or evicts.
    #[cold]
    pub fn finish_release(&mut self, p: EntryPtr<V>, rest: Released, freed: &mut Freed<V>) {
        match rest {
            Released::Done => {}
            Released::Orphan => {
                let e = p.entry();
                self.orphans.remove(&p.addr());
                self.c.used -= e.bytes;
                self.c.entries -= 1;
                freed.push(Self::free(p));
            }
            Released::Evict => self.evict_to(self.budget, freed),
        }
    }

    /// Whether a release record is still its entry's last release (reads the slot table only).
    /// The entry may have been acquired since: [`TierCore::live`] checks that too.
    #[inline]
    fn latest(&self, r: Record) -> Option<EntryPtr<V>> {
        if r.is_latest(&self.slot_seqs) {
            self.slots[r.slot as usize]
        } else {
            None
        }
    }

    /// The unused entry a release record names, if the record is live (see the module docs).
    #[inline]
    fn live(&self, record: Record) -> Option<EntryPtr<V>> {
        self.latest(record).filter(|p| p.entry().refs() == 0)
    }

    /// Drops the records that are no entry's last release (without touching any entry: the
    /// few kept for entries acquired since are dropped by eviction or the next sweep).
    #[cold]
    fn sweep(&mut self) {
        // A branch-free compaction: whether a record is live is a coin toss to the branch
        // predictor, and a sweep reads a few records per release.
        let seqs = &self.slot_seqs[..];
        let records = self.releases.make_contiguous();
        let mut kept = 0;
        for i in 0..records.len() {
            let r = records[i];
            records[kept] = r;
            kept += r.is_latest(seqs) as usize;
        }
        self.releases.truncate(kept);
        #[cfg(test)]
        {
            self.sweeps += 1;
        }
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
        self.loading.remove(KeyStr::new(lookup));
        match self.find(lookup) {
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

    /// Every entry leaves the index (the tier is going away, or what it holds is no longer
    /// valid): unused entries are freed, in-use ones become orphans that their handles free,
    /// loads in flight are detached (their results are served, not indexed). The core stays
    /// usable: the next acquire of any key loads afresh. Not evictions: like §3.5's remove.
    pub fn close(&mut self, freed: &mut Freed<V>) {
        self.loading.clear();
        let indexed: Vec<EntryPtr<V>> = self.index.iter().copied().collect();
        debug_assert_eq!(
            indexed.len(),
            self.slots.iter().filter(|s| s.is_some()).count()
        );
        for p in indexed {
            self.unindex(p, freed);
        }
        self.releases.clear();
    }

    /// Counts a miss that was served without inserting anything (§3.8 with
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
            budget_percent: None,
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

    /// Whether eviction has work to do: over `limit` bytes or over `max_entries`, with an
    /// unused entry left to evict.
    #[inline]
    fn over(&self, limit: u64) -> bool {
        let c = &self.c;
        (c.used > limit || (self.max_entries != 0 && c.entries > self.max_entries))
            && c.entries != c.in_use_entries
    }

    /// Records the end of an operation for `peak_used`.
    #[inline]
    pub fn end_op(&mut self) {
        // Stores only when the peak moves: a release (which ends here) should not write a
        // counter it did not change.
        if self.c.used > self.c.peak_used {
            self.c.peak_used = self.c.used;
        }
    }

    /// Every entry that counts: the unused ones least recently released first (eviction
    /// order), then those in use, then those removed while in use ([`Entry::is_orphan`]).
    pub fn iter(&self) -> impl Iterator<Item = &Entry<V>> {
        let unused = self.releases.iter().filter_map(|&r| self.live(r));
        let in_use = self.index.iter().copied().filter(|p| p.entry().refs() != 0);
        let orphans = self.orphans.values().copied();
        // SAFETY: indexed entries and orphans are freed only through `&mut self`, which this
        // borrow excludes.
        unused
            .chain(in_use)
            .chain(orphans)
            .map(|p| unsafe { p.get() })
    }

    /// Whether `lookup` is resident (no counter changes).
    #[cfg(test)]
    pub fn contains(&self, lookup: &str) -> bool {
        self.find(lookup).is_some()
    }

    /// Removes `ph` from the loading map if it is still the one there; true if it was.
    fn detach(&mut self, ph: &Arc<Placeholder<EntryPtr<V>>>) -> bool {
        match self.loading.get(&ph.key) {
            Some(cur) if Arc::ptr_eq(cur, ph) => {
                self.loading.remove(&ph.key);
                true
            }
            _ => false,
        }
    }

    /// Takes `p` out of the index and its slot: freed if unused, else an orphan.
    fn unindex(&mut self, p: EntryPtr<V>, freed: &mut Freed<V>) {
        let e = p.entry();
        let hash = e.key.hash_value();
        if let Ok(found) = self.index.find_entry(hash, |q| q.same(p)) {
            found.remove();
        }
        let slot = e.slot();
        self.slots[slot as usize] = None;
        self.slot_seqs[slot as usize] = 0;
        self.free_slots.push(slot);
        e.slot.store(ORPHAN, Ordering::Relaxed);
        if e.refs() == 0 {
            self.c.used -= e.bytes;
            self.c.entries -= 1;
            freed.push(Self::free(p));
        } else {
            self.orphans.insert(p.addr(), p);
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
    #[inline]
    fn evict_to(&mut self, limit: u64, freed: &mut Freed<V>) {
        while self.over(limit) {
            let Some(record) = self.releases.pop_front() else {
                debug_assert!(false, "unused entries without release records");
                break;
            };
            let Some(p) = self.live(record) else {
                continue;
            };
            self.c.evictions += 1;
            self.c.evicted_bytes += p.entry().bytes;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Resolver;

    const KEYS: usize = 64;

    /// Every length a short key can have, a difference at every position: never equal; the
    /// same bytes: equal.
    #[test]
    fn short_keys_compare_every_byte() {
        for n in 0..=ShortKey::MAX {
            let text: String = (0..n).map(|i| (b'a' + i as u8) as char).collect();
            let short = ShortKey::new(&text);
            assert_eq!(short.len as usize, n);
            assert!(short.holds(text.as_bytes()), "{text:?}");
            for i in 0..n {
                let mut other = text.clone().into_bytes();
                other[i] = b'#';
                assert!(!short.holds(&other), "{text:?} vs {other:?}");
            }
        }
        assert_eq!(
            ShortKey::new(&"x".repeat(ShortKey::MAX + 1)).len,
            ShortKey::LONG
        );
    }

    /// Keys around the inline limit, and long keys that differ only past it, each find their
    /// own entry.
    #[test]
    fn long_and_short_keys_hit_their_own_entries() {
        let r = Resolver::new("/m");
        let base = "d".repeat(ShortKey::MAX - 2);
        let names: Vec<String> = (0..6)
            .flat_map(|extra| ["a", "b"].map(|t| format!("{base}{}{t}", "e".repeat(extra))))
            .collect();
        let mut core: TierCore<usize> = TierCore::new(u64::MAX, 0);
        let mut freed = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let Lookup::Miss(ph) = core.acquire(name, || r.key(name)) else {
                panic!("{name} resident before it was loaded");
            };
            let p = core.complete(&ph, i, 1, &mut freed);
            core.drop_ref(p, 0, &mut freed);
        }
        for (i, name) in names.iter().enumerate() {
            let p = core.hit(name).expect(name);
            // SAFETY: the handle just counted keeps the entry.
            assert_eq!(unsafe { p.get() }.value, i, "{name}");
            core.drop_ref(p, 0, &mut freed);
        }
        assert!(core.hit(&format!("{base}eeeeeec")).is_none());
        assert!(freed.is_empty());
    }

    /// The model of §3.4: evict least recently released first while over budget.
    fn model_evict(resident: &mut [bool; KEYS], unused: &mut Vec<usize>, budget: u64) {
        while resident.iter().filter(|&&r| r).count() as u64 * 10 > budget && !unused.is_empty() {
            resident[unused.remove(0)] = false;
        }
    }

    /// Long random runs on a tier of 64 keys (a hot eight and a cold rest), against a model
    /// of §3.4 (a Vec of unused keys in release order): long stretches under a roomy budget
    /// make the release queue grow and be swept while cold entries sit unused, then a small
    /// budget must evict in the model's order.
    #[test]
    fn eviction_order_survives_many_sweeps() {
        let r = Resolver::new("/m");
        let names: Vec<String> = (0..KEYS).map(|i| format!("k{i}")).collect();
        let mut core: TierCore<u32> = TierCore::new(0, 0);
        let mut held: Vec<(usize, EntryPtr<u32>)> = Vec::new();
        let mut unused: Vec<usize> = Vec::new(); // the model: release order, oldest first
        let mut resident = [false; KEYS];
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut freed = Vec::new();
        let mut budget = 0;
        for step in 0..300_000 {
            if step % 6000 == 0 {
                budget = if budget == 200 { 10_000 } else { 200 };
                core.set_budget(budget, &mut freed);
                model_evict(&mut resident, &mut unused, budget);
            }
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = if (x >> 40).is_multiple_of(8) {
                (x % KEYS as u64) as usize
            } else {
                (x % 8) as usize
            };
            if held.is_empty() || (held.len() < 5 && (x >> 20).is_multiple_of(2)) {
                match core.acquire(&names[k], || r.key(&names[k])) {
                    Lookup::Hit(p) => {
                        assert!(resident[k], "step {step}");
                        unused.retain(|&u| u != k);
                        held.push((k, p));
                    }
                    Lookup::Miss(ph) => {
                        assert!(!resident[k], "step {step}");
                        let p = core.complete(&ph, k as u32, 10, &mut freed);
                        resident[k] = true;
                        held.push((k, p));
                    }
                    Lookup::Wait(_) => unreachable!(),
                }
            } else {
                let (k, p) = held.swap_remove((x >> 8) as usize % held.len());
                core.drop_ref(p, 0, &mut freed);
                if !held.iter().any(|&(h, _)| h == k) {
                    unused.push(k);
                }
            }
            model_evict(&mut resident, &mut unused, budget);
            for (i, name) in names.iter().enumerate() {
                assert_eq!(core.contains(name), resident[i], "step {step}: {name}");
            }
            assert!(core.releases.len() <= 4 * KEYS + SWEEP_SLACK + 1);
            freed.clear();
        }
        let s = core.stats();
        assert!(s.evictions > 1_000 && s.hits > 100_000, "{s:?}");
        assert!(core.sweeps > 20, "{} sweeps", core.sweeps);
    }
}
