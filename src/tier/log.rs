//! What happened in a tier, in the order the tier lock saw it: the raw material of trace
//! recording (`stats.trace`, §7).
//!
//! Recording must not slow the hit path down, so a tier only appends a small fixed-size
//! [`Event`] to a buffer that lives under the tier lock it already holds: no extra lock, no
//! string formatting, no allocation (the buffer is reused). An entry is named by its address,
//! and its key travels once, when it is inserted ([`Event::Name`]). The recorder
//! (`cache/record.rs`) takes the buffer away on its own thread, turns the events into §7 lines and
//! writes them: this module is the tiers' half (what is written under the lock, and its
//! encoding), `cache/record.rs` the recorder's. The buffer's memory goes back and forth between two cores, so it is written in
//! a way that never waits for the other core (see [`Words`]), and the recorder comes for it
//! unasked while events come fast (asking it is a system call).
//!
//! Events carry a *stamp* that orders the two tiers' streams against each other: the CPU tier
//! counts its events on a shared clock, and a GPU event is stamped with the clock as it reads
//! then, so it goes after the CPU event with that number.

use crate::key::Key;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Events a tier buffers before it asks the recorder to come and take them.
pub(crate) const WAKE_AT: usize = 4096;
/// Events a tier buffers at most; past this the recorder is too slow (a stuck disk) and the
/// recording stops rather than growing memory without bound.
pub(crate) const MAX_EVENTS: usize = 1 << 20;

/// One thing that happened in a tier. Every event has a sequence number in its tier (its
/// place in the tier's stream, from 1); an event that creates a handle names it by that number,
/// so handle ids cost nothing to store.
#[derive(Debug)]
pub(crate) enum Event {
    /// A handle (id: this event's number) was acquired on the entry at this address.
    Acquire(usize),
    /// [`Event::Acquire`], then [`Event::Release`] of that handle as the next event: two
    /// sequence numbers in one word (the CPU tier's hit-and-drop).
    AcquireReleased(usize),
    /// An entry was inserted: its address and key.
    Name(Box<(usize, Key)>),
    /// The entry at this address was freed.
    Forget(usize),
    /// An acquire of this key failed; it holds no handle.
    Failed(Box<Key>),
    /// A handle (id: this event's number) was cloned from the handle with this id.
    Clone(u64),
    /// The handle with this id was dropped.
    Release(u64),
    /// §3.5 on both tiers, with this lookup string.
    Remove(Box<str>),
    /// §3.6 with this target.
    Trim(u64),
    /// §3.7 with this budget.
    Budget(u64),
    /// The buffer overflowed and recording stopped here.
    Overflow,
}

/// A batch of one tier's events, taken by the recorder.
///
/// The frequent events (acquire, release, clone, forget) are packed into one word each, tagged
/// in the low three bits (entries are 8-byte aligned, ids are shifted); the rest go to `side`,
/// in order, with a [`SIDE`] word marking their place. So a hit costs the recorder 8 bytes (an
/// acquire and its release folded into one [`Event::AcquireReleased`] word).
#[derive(Debug, Default)]
pub(crate) struct Batch {
    words: Words,
    side: Vec<Event>,
    /// For the tier that does not tick the clock: each event's stamp. Empty for the one that
    /// does, whose events are stamped with their sequence numbers.
    pub stamps: Vec<u64>,
    /// The sequence number of the first event. The CPU tier's events are numbered on from it,
    /// one number per event, two for an [`Event::AcquireReleased`].
    pub first: u64,
}

const ACQUIRE: u64 = 0;
const FORGET: u64 = 1;
const RELEASE: u64 = 2;
const CLONE: u64 = 3;
const SIDE: u64 = 4;
const ACQUIRE_RELEASED: u64 = 5;

impl Batch {
    /// Events in the batch (an [`Event::AcquireReleased`] counts one).
    pub fn len(&self) -> usize {
        self.words.len()
    }
    fn clear(&mut self) {
        self.words.clear();
        self.side.clear();
        self.stamps.clear();
    }
    /// The events, in order (the batch is left empty, its buffers kept).
    pub fn drain(&mut self) -> impl Iterator<Item = Event> + '_ {
        let mut side = self.side.drain(..);
        self.words.drain().map(move |w| match w & 7 {
            ACQUIRE => Event::Acquire((w & !7) as usize),
            FORGET => Event::Forget((w & !7) as usize),
            RELEASE => Event::Release(w >> 3),
            CLONE => Event::Clone(w >> 3),
            ACQUIRE_RELEASED => Event::AcquireReleased((w & !7) as usize),
            _ => side.next().unwrap_or(Event::Overflow),
        })
    }
}

/// One cache line of event words.
#[derive(Debug, Default, Clone, Copy)]
#[repr(C, align(64))]
struct Line([u64; 8]);

/// How many lines ahead of the one it writes [`Words`] asks for ownership (2 KiB, some 250
/// hits: far more than a line takes to come from the other core).
const AHEAD: usize = 32;

/// The event words of a batch: written by the thread that holds the tier lock, read later by
/// the recorder's thread on the other core.
///
/// Why not a plain `Vec<u64>`: a batch's memory goes back and forth between the two threads
/// (the recorder hands each emptied batch back as the next one to fill), so every line the tier
/// writes was last read on the recorder's core, and a store to it must first take the line
/// back from that core. Such stores wait in the store buffer, and the tier lock's next locked
/// instruction waits for them: that cost a recorded hit 35-50 ns on the development VM, more
/// than the hit itself. So the words gather in `tail`, a line that stays in the writing core's
/// cache, and go out a whole line at a time; and each time a line goes out, the line
/// [`AHEAD`] lines further on is asked for with `prefetchw`, which takes ownership without
/// making anything wait. (Streaming stores, which need no ownership, were tried: the locked
/// instruction then waits for them to reach memory, 72 ns against 47 ns a recorded hit.)
#[derive(Debug, Default)]
struct Words {
    /// Full lines.
    lines: Vec<Line>,
    /// The last line, holding `tail_len` words.
    tail: Line,
    tail_len: usize,
}

impl Words {
    fn with_capacity(words: usize) -> Words {
        Words {
            lines: Vec::with_capacity(words.div_ceil(8)),
            ..Words::default()
        }
    }
    #[inline]
    fn len(&self) -> usize {
        self.lines.len() * 8 + self.tail_len
    }
    #[inline(always)]
    fn push(&mut self, word: u64) {
        if self.tail_len == 8 {
            self.flush();
        }
        self.tail.0[self.tail_len] = word;
        self.tail_len += 1;
    }
    /// The last word pushed.
    #[inline]
    fn last_mut(&mut self) -> Option<&mut u64> {
        let i = self.tail_len.checked_sub(1)?;
        Some(&mut self.tail.0[i])
    }
    /// Moves the full tail line to `lines`.
    #[inline(never)]
    fn flush(&mut self) {
        let n = self.lines.len();
        self.lines.push(self.tail);
        if n == 0 {
            // A fresh batch: the lines the ones below would have asked for.
            let start = self.lines.as_ptr();
            for k in 1..AHEAD.min(self.lines.capacity()) {
                crate::sync::prefetch_write(start.wrapping_add(k));
            }
        }
        if n + AHEAD < self.lines.capacity() {
            // In the vector's allocation (a prefetch elsewhere would do no harm either, but
            // could take a line from another core for nothing).
            crate::sync::prefetch_write(self.lines.as_ptr().wrapping_add(n + AHEAD));
        }
        self.tail_len = 0;
    }
    fn clear(&mut self) {
        self.lines.clear();
        self.tail_len = 0;
    }
    /// The words in order; leaves the buffer empty, its memory kept.
    fn drain(&mut self) -> impl Iterator<Item = u64> + '_ {
        let tail = self.tail;
        let n = std::mem::take(&mut self.tail_len);
        let lines = self.lines.drain(..).flat_map(|l| l.0);
        lines.chain(tail.0.into_iter().take(n))
    }
}

// Entry addresses leave the low three bits for the tag.
const _: () = assert!(std::mem::align_of::<crate::tier::core::Entry<()>>() >= 8);

/// The CPU tier's event count, which stamps the GPU tier's events. The CPU tier stores it on
/// every event, so it gets a cache line of its own: sharing one with anything the recorder
/// thread writes made every store fetch the line back from the other core (10 ns a hit).
#[derive(Default)]
#[repr(align(128))]
pub(crate) struct Clock(AtomicU64);

impl std::ops::Deref for Clock {
    type Target = AtomicU64;
    fn deref(&self) -> &AtomicU64 {
        &self.0
    }
}

/// Something the tier calls when its buffer wants taking.
pub(crate) trait Wake: Send + Sync {
    /// Asks the recorder to come; false if it needs no asking, since it is polling anyway
    /// (the tier then asks again after [`WAKE_AT`] more events, in case it stopped polling).
    fn wake(&self) -> bool;
}

/// A tier's event buffer, kept under the tier lock while recording is on.
pub(crate) struct TierLog {
    batch: Batch,
    /// The CPU tier's event count, shared by both tiers.
    clock: Arc<Clock>,
    /// True for the tier that advances the clock (the CPU tier).
    ticks: bool,
    /// The last event's sequence number, on the tier that does not tick the clock (on the one
    /// that does, the clock is its sequence number: one store an event, not two).
    seq: u64,
    wake: Arc<dyn Wake>,
    /// The batch length at which `push` leaves its fast path: to wake the recorder, to stop
    /// at the cap, or (0) because recording has stopped.
    check_at: usize,
}

impl TierLog {
    pub fn new(clock: Arc<Clock>, ticks: bool, wake: Arc<dyn Wake>) -> TierLog {
        TierLog {
            batch: Batch {
                words: Words::with_capacity(WAKE_AT),
                first: 1,
                ..Batch::default()
            },
            clock,
            ticks,
            seq: 0,
            wake,
            check_at: WAKE_AT,
        }
    }

    /// Appends `event` (under the tier lock); returns its sequence number, or 0 once the
    /// recording has stopped. The frequent events take a short inlined path: one compare, the
    /// clock, one word pushed.
    #[inline(always)]
    pub fn push(&mut self, event: Event) -> u64 {
        let word = match event {
            Event::Acquire(entry) => entry as u64 | ACQUIRE,
            Event::Forget(entry) => entry as u64 | FORGET,
            Event::Release(id) => id << 3 | RELEASE,
            Event::Clone(of) => of << 3 | CLONE,
            other => return self.push_slow(SIDE, Some(other)),
        };
        if self.batch.words.len() >= self.check_at {
            return self.push_slow(word, None);
        }
        self.append(word)
    }

    /// Logs the release of handle `id` as an [`Event::Release`]. On the tier that ticks the
    /// clock, when the handle's acquire is the last event in the buffer (an acquire and drop
    /// with nothing in between, as in most hits), the release still takes its own sequence
    /// number but no word: the acquire's word is marked instead. That halves what a hit hands
    /// to the recorder's core; the recorder gives the two events their numbers back in order.
    #[inline(always)]
    pub fn release(&mut self, id: u64) {
        if self.ticks && id == self.seq() {
            if let Some(last) = self.batch.words.last_mut() {
                if *last & 7 == ACQUIRE {
                    *last |= ACQUIRE_RELEASED;
                    self.next_seq();
                    return;
                }
            }
        }
        self.push(Event::Release(id));
    }

    /// The last event's sequence number.
    #[inline]
    fn seq(&self) -> u64 {
        if self.ticks {
            self.clock.load(Ordering::Relaxed)
        } else {
            self.seq
        }
    }

    /// Numbers a new event.
    #[inline]
    fn next_seq(&mut self) -> u64 {
        if self.ticks {
            // Only this tier writes the clock, always under its lock: a plain load and store.
            let seq = self.clock.load(Ordering::Relaxed) + 1;
            self.clock.store(seq, Ordering::Relaxed);
            seq
        } else {
            self.seq += 1;
            self.seq
        }
    }

    #[inline]
    fn append(&mut self, word: u64) -> u64 {
        let seq = self.next_seq();
        if !self.ticks {
            self.batch.stamps.push(self.clock.load(Ordering::Relaxed));
        }
        self.batch.words.push(word);
        seq
    }

    #[cold]
    fn push_slow(&mut self, word: u64, side: Option<Event>) -> u64 {
        let len = self.batch.words.len();
        if self.check_at == 0 {
            return 0;
        }
        if len + 1 >= MAX_EVENTS {
            self.check_at = 0;
            self.batch.side.push(Event::Overflow);
            self.append(SIDE);
            return 0;
        }
        if len >= self.check_at {
            self.check_at = if self.wake.wake() {
                MAX_EVENTS - 1
            } else {
                (len + WAKE_AT).min(MAX_EVENTS - 1)
            };
        }
        if let Some(e) = side {
            self.batch.side.push(e);
        }
        self.append(word)
    }

    /// Swaps the buffer for `spare` (emptied) and returns the events so far.
    pub fn take(&mut self, mut spare: Batch) -> Batch {
        spare.clear();
        spare.first = self.seq() + 1;
        if self.check_at != 0 {
            self.check_at = WAKE_AT;
        }
        std::mem::replace(&mut self.batch, spare)
    }

    /// The clock as this tier sees it now.
    pub fn now(&self) -> u64 {
        self.clock.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn words_come_out_in_order_across_lines_and_batches() {
        let mut w = Words::with_capacity(16);
        for round in 0..3u64 {
            // Lengths around the line size, and the `AHEAD` prefetch past the capacity.
            for n in [0u64, 1, 7, 8, 9, 16, 17, 8 * AHEAD as u64 + 3, 1000] {
                for i in 0..n {
                    w.push(round << 32 | n << 16 | i);
                }
                assert_eq!(w.len(), n as usize);
                if n > 0 {
                    *w.last_mut().unwrap() |= 1 << 63;
                }
                let got: Vec<u64> = w.drain().collect();
                let mut want: Vec<u64> = (0..n).map(|i| round << 32 | n << 16 | i).collect();
                if let Some(last) = want.last_mut() {
                    *last |= 1 << 63;
                }
                assert_eq!(got, want, "{n} words in round {round}");
                assert_eq!(w.len(), 0);
                assert!(w.last_mut().is_none());
            }
            w.push(5);
            w.clear();
            assert_eq!((w.len(), w.drain().count()), (0, 0));
        }
    }

    /// A recorder that counts the asks and answers as `polling` says.
    struct Asked {
        asks: AtomicUsize,
        polling: std::sync::atomic::AtomicBool,
    }
    impl Wake for Asked {
        fn wake(&self) -> bool {
            self.asks.fetch_add(1, Ordering::Relaxed);
            !self.polling.load(Ordering::Relaxed)
        }
    }

    #[test]
    fn a_polling_recorder_is_asked_again_every_wake_at_events() {
        let asked = Arc::new(Asked {
            asks: AtomicUsize::new(0),
            polling: true.into(),
        });
        let mut log = TierLog::new(Arc::default(), true, asked.clone());
        let asks = || asked.asks.load(Ordering::Relaxed);
        for _ in 0..WAKE_AT {
            log.push(Event::Acquire(8));
        }
        assert_eq!(asks(), 0, "no ask below WAKE_AT");
        log.push(Event::Acquire(8));
        assert_eq!(asks(), 1, "asked at WAKE_AT");
        for _ in 0..WAKE_AT - 1 {
            log.push(Event::Acquire(8));
        }
        assert_eq!(asks(), 1, "a polling recorder is not asked again at once");
        // It stops polling (it took too little last time): the next ask goes through, and
        // then no more until it has taken the batch.
        asked.polling.store(false, Ordering::Relaxed);
        log.push(Event::Acquire(8));
        assert_eq!(asks(), 2, "asked again WAKE_AT events later");
        for _ in 0..3 * WAKE_AT {
            log.push(Event::Acquire(8));
        }
        assert_eq!(asks(), 2, "a recorder that was woken is not asked again");
        let batch = log.take(Batch::default());
        assert_eq!(batch.len(), 5 * WAKE_AT + 1);
        for _ in 0..=WAKE_AT {
            log.push(Event::Acquire(8));
        }
        assert_eq!(asks(), 3, "a fresh batch asks again at WAKE_AT");
    }
}
