//! The locks texcache is built on, in one place: fork-safe, and checkable by a model checker.
//!
//! [`Mutex`] and [`Condvar`] have `parking_lot`'s API (no poisoning; `wait(&mut guard)`) over
//! the standard library's, which are a futex word each and nothing else. `parking_lot`'s are
//! not fork-safe: they park threads in one table for the whole process, whose bucket locks a
//! thread of the parent may hold at the moment of a `fork`, forever locked in the child then,
//! so that the child's first contended lock or notified condition variable can hang (a child
//! dropping its cache, which wakes its sampler thread, while the parent's sampler was waking).
//! A child forked from a process that uses texcache makes and uses caches of its own (§2b), so
//! every lock texcache takes must be usable after a fork.
//!
//! [`TierMutex`] is the tier lock itself (see [`RawTierLock`] for why that one is different).
//! With the `model-check` feature, the tier core's `Mutex` and `Condvar` ([`checked`]) are
//! thin wrappers over [shuttle](https://docs.rs/shuttle)'s, with the same API, and the tier
//! lock is *the same* [`RawTierLock`] built on shuttle's atomics, with shuttle's yield in place
//! of spinning and napping; so `tests/model.rs` explores thread interleavings of the real tier
//! code and of its real lock (the release/evict race, the coalescing wait, a waiter's bounded
//! wait). The feature is for that test only: with it, the tier works only inside
//! `shuttle::check_*`.

pub(crate) use self::std_locks::{Condvar, Mutex, MutexGuard};

/// The locks of the tier core (its single-flight placeholders): [`Mutex`] and [`Condvar`], or
/// shuttle's under the `model-check` feature.
pub(crate) mod checked {
    #[cfg(feature = "model-check")]
    pub(crate) use super::model::{Condvar, Mutex};
    #[cfg(not(feature = "model-check"))]
    pub(crate) use super::std_locks::{Condvar, Mutex};
}

#[cfg(not(feature = "model-check"))]
use std::sync::atomic::{AtomicBool, AtomicU32};

#[cfg(feature = "model-check")]
use shuttle::sync::atomic::{AtomicBool, AtomicU32};

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

/// The tier lock: a mutex over [`RawTierLock`].
pub(crate) type TierMutex<T> = lock_api::Mutex<RawTierLock, T>;

/// A held [`TierMutex`].
pub(crate) type TierMutexGuard<'a, T> = lock_api::MutexGuard<'a, RawTierLock, T>;

/// The tier lock's raw lock: taken with one compare-and-swap, released with one plain store,
/// and fair to a waiter that has waited long.
///
/// Every cache hit takes the tier lock twice (acquire, then the handle's release), and the lock
/// is what a hit mostly costs: on x86 a locked instruction waits for the store buffer to
/// drain, some 5 ns each here. `parking_lot`'s mutex (like `std`'s) also releases with a
/// read-modify-write, to learn whether a thread is parked and must be woken; this lock parks
/// no thread, so its release is a plain store, and a hit pays two locked instructions instead
/// of four (PERFORMANCE.md, `hit`).
///
/// A waiter spins, then yields (`crossbeam_utils::Backoff`), then naps in growing steps of at
/// most [`MAX_NAP`], polling the lock. Nobody has to wake it, so no wake-up can be lost. A
/// waiter still without the lock after about a millisecond of naps becomes *starving*: it
/// takes a ticket, and while any thread is starving the fast path refuses newcomers (they wait
/// too, and queue behind it), and starving waiters take the lock in ticket order. So a waiter
/// that has waited long is overtaken at most once by each thread that was already past the
/// starving check, then by nobody but the starving waiters ahead of it: its wait is bounded
/// (`sync::model_tests` checks it under the model checker), while ordinary contention, which
/// ends within the spins, yields and first naps, never pays for the queue. What the lock
/// guards is short (a hit or release is tens of nanoseconds, an eviction frees its entries
/// outside the lock), so starving is rare and the fast path is one load of `starving` (on the
/// lock's own cache line) and one CAS.
pub(crate) struct RawTierLock {
    locked: AtomicBool,
    /// Waiters that have waited past their backoff: while there are any, the fast path fails.
    starving: AtomicU32,
    /// The next ticket a waiter becomes starving with.
    next_ticket: AtomicU32,
    /// The ticket whose turn it is to take the lock among the starving.
    serving: AtomicU32,
}

/// The longest a napping waiter sleeps between two looks at the lock.
#[cfg(not(feature = "model-check"))]
const MAX_NAP: std::time::Duration = std::time::Duration::from_micros(200);

/// Naps a waiter takes, looking at the lock after each as newcomers do, before it starves:
/// about a millisecond of waiting (2 + 4 + … + 128 + 200 + 200 µs).
#[cfg(not(feature = "model-check"))]
const NAPS_BEFORE_STARVING: u32 = 9;

/// Under the model checker, a nap is a yield: starve soon, so that schedules reach it.
#[cfg(feature = "model-check")]
const NAPS_BEFORE_STARVING: u32 = 1;

impl RawTierLock {
    /// Takes the lock if it is free and nobody is starving for it.
    #[inline]
    fn try_lock_fast(&self) -> bool {
        self.starving.load(Relaxed) == 0
            && self
                .locked
                .compare_exchange(false, true, Acquire, Relaxed)
                .is_ok()
    }

    /// [`RawTierLock::try_lock_fast`] for a waiter: reads first and tries the CAS only when
    /// the lock looks free, so waiting does not pull the lock's line away from its holder.
    #[inline]
    fn try_lock_waiting(&self) -> bool {
        !self.locked.load(Relaxed) && self.try_lock_fast()
    }

    /// Takes the lock if it is free, starving or not.
    #[inline]
    fn try_lock_any(&self) -> bool {
        !self.locked.load(Relaxed)
            && self
                .locked
                .compare_exchange(false, true, Acquire, Relaxed)
                .is_ok()
    }

    #[cold]
    fn lock_contended(&self) {
        if self.backoff() {
            return;
        }
        // Napping: the lock is held longer than a hit (a sweep, a stats listing), or contention
        // is heavy. Look again after each nap, as any newcomer may.
        for naps in 0..NAPS_BEFORE_STARVING {
            Self::nap(naps);
            if self.try_lock_waiting() {
                return;
            }
        }
        // Starving: queue by ticket, newcomers held back until the queue is empty.
        self.starving.fetch_add(1, Relaxed);
        let ticket = self.next_ticket.fetch_add(1, Relaxed);
        #[cfg(all(test, feature = "model-check"))]
        model_tests::on_starving();
        let mut waits = 0u32;
        loop {
            if self.serving.load(Acquire) == ticket && self.try_lock_any() {
                break;
            }
            Self::wait_turn(&mut waits);
        }
        self.serving.store(ticket.wrapping_add(1), Release);
        self.starving.fetch_sub(1, Relaxed);
    }

    /// Spins and yields for the lock; whether it got it.
    #[cfg(not(feature = "model-check"))]
    fn backoff(&self) -> bool {
        let backoff = crossbeam_utils::Backoff::new();
        while !backoff.is_completed() {
            if self.try_lock_waiting() {
                return true;
            }
            backoff.snooze();
        }
        self.try_lock_waiting()
    }

    /// Under the model checker: a few looks, each a scheduling point.
    #[cfg(feature = "model-check")]
    fn backoff(&self) -> bool {
        for _ in 0..2 {
            if self.try_lock_waiting() {
                return true;
            }
            shuttle::thread::yield_now();
        }
        self.try_lock_waiting()
    }

    /// The `n`th nap of a waiter past its backoff: 2 µs, doubling, at most [`MAX_NAP`].
    #[cfg(not(feature = "model-check"))]
    fn nap(n: u32) {
        let nap = std::time::Duration::from_micros(2 << n.min(16));
        std::thread::sleep(nap.min(MAX_NAP));
    }

    #[cfg(feature = "model-check")]
    fn nap(_: u32) {
        shuttle::thread::yield_now();
    }

    /// A starving waiter's wait for its turn and for the lock: yields, then short naps.
    #[cfg(not(feature = "model-check"))]
    fn wait_turn(waits: &mut u32) {
        *waits += 1;
        if *waits < 64 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(std::time::Duration::from_micros(10));
        }
    }

    #[cfg(feature = "model-check")]
    fn wait_turn(_: &mut u32) {
        shuttle::thread::yield_now();
    }
}

// SAFETY: `locked` is set only by a successful compare-and-swap from false (with Acquire) and
// cleared only by `unlock`, which its holder calls once (with Release), so at most one thread
// holds the lock, and what it wrote under the lock happens-before the next holder's section.
// The starving count and tickets only decide who may try the CAS, never who holds the lock.
unsafe impl lock_api::RawMutex for RawTierLock {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = RawTierLock {
        locked: AtomicBool::new(false),
        starving: AtomicU32::new(0),
        next_ticket: AtomicU32::new(0),
        serving: AtomicU32::new(0),
    };
    type Guard = lock_api::GuardSend;

    #[inline]
    fn lock(&self) -> Self::Guard {
        if !self.try_lock_fast() {
            self.lock_contended();
        }
        lock_api::GuardSend::new()
    }

    #[inline]
    fn try_lock(&self) -> Option<Self::Guard> {
        self.try_lock_fast().then(lock_api::GuardSend::new)
    }

    #[inline]
    unsafe fn unlock(&self, _: Self::Guard) {
        self.locked.store(false, Release);
    }

    #[inline]
    fn is_locked(&self) -> bool {
        self.locked.load(Relaxed)
    }
}

/// `parking_lot`'s API over the standard library's locks (the module doc says why).
mod std_locks {
    use std::ops::{Deref, DerefMut};
    use std::sync::PoisonError;
    use std::time::Duration;

    /// A mutex whose `lock` returns the guard itself: a panic under the lock does not poison
    /// it (what the lock guards is left consistent by every path that can panic, or is
    /// rebuilt by the next user, as `parking_lot`'s users assume).
    #[derive(Default)]
    pub(crate) struct Mutex<T: ?Sized>(std::sync::Mutex<T>);

    /// The guard of a [`Mutex`]. The `Option` is `None` only inside [`Condvar::wait`] and
    /// [`MutexGuard::unlocked`], which hand the standard guard over and take it back.
    pub(crate) struct MutexGuard<'a, T: ?Sized> {
        mutex: &'a std::sync::Mutex<T>,
        guard: Option<std::sync::MutexGuard<'a, T>>,
    }

    impl<T> Mutex<T> {
        pub(crate) const fn new(value: T) -> Self {
            Mutex(std::sync::Mutex::new(value))
        }
    }

    impl<T: ?Sized> Mutex<T> {
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            MutexGuard {
                mutex: &self.0,
                guard: Some(self.0.lock().unwrap_or_else(PoisonError::into_inner)),
            }
        }

        /// The guard, if nobody holds the lock now.
        pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
            let guard = match self.0.try_lock() {
                Ok(g) => g,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return None,
            };
            Some(MutexGuard {
                mutex: &self.0,
                guard: Some(guard),
            })
        }

        pub(crate) fn get_mut(&mut self) -> &mut T {
            self.0.get_mut().unwrap_or_else(PoisonError::into_inner)
        }
    }

    impl<T: ?Sized + std::fmt::Debug> std::fmt::Debug for Mutex<T> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            self.0.fmt(f)
        }
    }

    impl<'a, T: ?Sized> MutexGuard<'a, T> {
        /// Runs `f` with the lock released, and takes it again.
        pub(crate) fn unlocked<R>(guard: &mut Self, f: impl FnOnce() -> R) -> R {
            drop(guard.guard.take());
            let r = f();
            guard.guard = Some(guard.mutex.lock().unwrap_or_else(PoisonError::into_inner));
            r
        }
    }

    impl<T: ?Sized> Deref for MutexGuard<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            self.guard.as_deref().expect("a guard holds its lock")
        }
    }

    impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            self.guard.as_deref_mut().expect("a guard holds its lock")
        }
    }

    /// A condition variable whose waits take the guard by reference.
    #[derive(Default)]
    pub(crate) struct Condvar(std::sync::Condvar);

    impl Condvar {
        pub(crate) const fn new() -> Self {
            Condvar(std::sync::Condvar::new())
        }

        pub(crate) fn wait<T>(&self, guard: &mut MutexGuard<'_, T>) {
            let g = guard.guard.take().expect("a guard holds its lock");
            guard.guard = Some(self.0.wait(g).unwrap_or_else(PoisonError::into_inner));
        }

        /// Waits for a notification or `timeout`; whether the time ran out.
        pub(crate) fn wait_for<T>(
            &self,
            guard: &mut MutexGuard<'_, T>,
            timeout: Duration,
        ) -> std::sync::WaitTimeoutResult {
            let g = guard.guard.take().expect("a guard holds its lock");
            let (g, result) = self
                .0
                .wait_timeout(g, timeout)
                .unwrap_or_else(PoisonError::into_inner);
            guard.guard = Some(g);
            result
        }

        pub(crate) fn notify_one(&self) {
            self.0.notify_one();
        }

        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }
}

#[cfg(feature = "model-check")]
mod model {
    use std::ops::{Deref, DerefMut};

    /// `parking_lot::Mutex`'s API over shuttle's mutex (no poisoning: a panic under the lock
    /// is a bug the model check reports anyway).
    pub(crate) struct Mutex<T>(shuttle::sync::Mutex<T>);

    /// The guard of [`Mutex`]; `Option` only so that [`Condvar::wait`] can hand it to shuttle.
    pub(crate) struct MutexGuard<'a, T>(Option<shuttle::sync::MutexGuard<'a, T>>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex(shuttle::sync::Mutex::new(value))
        }
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            MutexGuard(Some(self.0.lock().unwrap_or_else(|e| e.into_inner())))
        }
    }

    impl<T> Deref for MutexGuard<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            self.0.as_ref().expect("guard present")
        }
    }
    impl<T> DerefMut for MutexGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            self.0.as_mut().expect("guard present")
        }
    }

    /// `parking_lot::Condvar`'s API over shuttle's.
    pub(crate) struct Condvar(shuttle::sync::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Self {
            Condvar(shuttle::sync::Condvar::new())
        }
        pub(crate) fn wait<T>(&self, guard: &mut MutexGuard<'_, T>) {
            let g = guard.0.take().expect("guard present");
            guard.0 = Some(self.0.wait(g).unwrap_or_else(|e| e.into_inner()));
        }
        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }
}

#[cfg(all(test, not(feature = "model-check")))]
mod tests {
    use super::TierMutex;
    use std::sync::Barrier;

    /// Four threads add to one counter under the lock, while a fifth holds it for long
    /// stretches (so that waiters get past spinning and yielding into napping): no increment
    /// is lost and every thread finishes.
    #[test]
    fn the_tier_lock_excludes_and_every_waiter_gets_it() {
        const THREADS: usize = 4;
        const ADDS: usize = 100_000;
        let m = TierMutex::new(0usize);
        let start = Barrier::new(THREADS + 1);
        std::thread::scope(|s| {
            for _ in 0..THREADS {
                s.spawn(|| {
                    start.wait();
                    for _ in 0..ADDS {
                        let mut g = m.lock();
                        // A read and a write apart: a second holder would lose increments.
                        let v = *g;
                        std::hint::black_box(&v);
                        *g = v + 1;
                    }
                });
            }
            s.spawn(|| {
                start.wait();
                for _ in 0..20 {
                    let g = m.lock();
                    // Holding the lock, not synchronising: waiters must nap and come back.
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    drop(g);
                }
            });
        });
        assert_eq!(m.into_inner(), THREADS * ADDS);
    }

    /// Forked while four threads of the parent wait on and notify condition variables without
    /// pause, a child makes 256 locks and condition variables of its own and waits on each:
    /// every child ends. (With `parking_lot`'s locks in their place, a bucket of its table of
    /// parked threads locked by a parent's thread at the fork stays locked in the child, and
    /// the child hangs.)
    #[test]
    fn a_child_forked_while_threads_wait_and_notify_can_wait_and_notify() {
        use super::{Condvar, Mutex};
        use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
        use std::time::Duration;
        let stop = AtomicBool::new(false);
        let pairs: Vec<(Mutex<u64>, Condvar)> =
            (0..4).map(|_| (Mutex::new(0), Condvar::new())).collect();
        std::thread::scope(|s| {
            for i in 0..pairs.len() {
                let (pairs, stop) = (&pairs, &stop);
                s.spawn(move || {
                    while !stop.load(Relaxed) {
                        let (m, c) = &pairs[i];
                        let mut g = m.lock();
                        *g += 1;
                        c.wait_for(&mut g, Duration::from_micros(1));
                        drop(g);
                        pairs[(i + 1) % pairs.len()].1.notify_all();
                    }
                });
            }
            let hung = (0..40).find(|_| {
                !child_ends(|| {
                    let pairs: Vec<Box<(Mutex<()>, Condvar)>> = (0..256)
                        .map(|_| Box::new((Mutex::new(()), Condvar::new())))
                        .collect();
                    for p in &pairs {
                        let mut g = p.0.lock();
                        p.1.wait_for(&mut g, Duration::from_micros(1));
                        drop(g);
                        p.1.notify_all();
                    }
                })
            });
            stop.store(true, Relaxed);
            assert_eq!(hung, None, "a forked child hung");
        });
    }

    /// Runs `f` in a forked child (which leaves with `_exit`); whether the child ended within
    /// 10 s (it is killed if not).
    fn child_ends(f: impl FnOnce()) -> bool {
        // SAFETY: the child runs `f` (these locks, the allocator, whose locks glibc resets at
        // a fork, and system calls) and leaves with `_exit`, never returning into the harness.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            f();
            // SAFETY: ends the child at once.
            unsafe { libc::_exit(0) };
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let mut status = 0;
            // SAFETY: `pid` is our child; `status` a live local.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            let _ = tx.send(status);
        });
        let ended = rx.recv_timeout(std::time::Duration::from_secs(10)).is_ok();
        if !ended {
            // SAFETY: a signal to our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        waiter.join().unwrap();
        ended
    }
}

/// Asks for the cache line at `p` in a state this core can write (x86's `prefetchw`), without
/// waiting for it. A store to a line that is not in this core's cache waits in the store
/// buffer, and the tier lock's next locked instruction waits for every such store: asking for
/// the line before the store keeps that wait off the hit path. A hint only: it reads and writes
/// nothing, cannot fault, and is a no-op elsewhere.
#[inline(always)]
pub(crate) fn prefetch_write<T>(p: *const T) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    // SAFETY: `prefetchw` accesses no memory architecturally and cannot fault, whatever `p`.
    unsafe {
        std::arch::asm!(
            "prefetchw [{}]",
            in(reg) p,
            options(nostack, preserves_flags, readonly)
        );
    }
    #[cfg(any(not(target_arch = "x86_64"), miri))]
    let _ = p;
}

/// The tier lock under the model checker: mutual exclusion, and a starving waiter's bounded
/// wait, under every schedule shuttle tries. Run with
/// `cargo test --features model-check --lib sync::model_tests` (`.ci/run` does).
#[cfg(all(test, feature = "model-check"))]
mod model_tests {
    use super::TierMutex;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;

    /// Acquisitions so far in this execution (written under the lock).
    static HELD: AtomicUsize = AtomicUsize::new(0);
    /// `HELD` when the watched thread became starving (`usize::MAX`: it did not).
    static AT_STARVING: AtomicUsize = AtomicUsize::new(usize::MAX);
    /// Executions in which the watched thread became starving.
    static STARVED: AtomicUsize = AtomicUsize::new(0);
    // Shuttle runs every task of an execution on one OS thread, so this must be shuttle's
    // task-local, not `std::thread_local!` (which every task would share).
    shuttle::thread_local! {
        static WATCHED: std::cell::Cell<bool> = std::cell::Cell::new(false);
    }

    pub(super) fn on_starving() {
        if WATCHED.with(|w| w.get()) {
            AT_STARVING.store(HELD.load(SeqCst), SeqCst);
        }
    }

    #[test]
    fn a_starving_waiter_is_overtaken_at_most_once_by_each_other_thread() {
        const OTHERS: usize = 2;
        let check = || {
            HELD.store(0, SeqCst);
            AT_STARVING.store(usize::MAX, SeqCst);
            let m = Arc::new(TierMutex::new(0usize));
            let others: Vec<_> = (0..OTHERS)
                .map(|_| {
                    let m = m.clone();
                    shuttle::thread::spawn(move || {
                        for _ in 0..4 {
                            let mut g = m.lock();
                            let v = *g;
                            shuttle::thread::yield_now();
                            *g = v + 1;
                            HELD.fetch_add(1, SeqCst);
                        }
                    })
                })
                .collect();
            let watched = {
                let m = m.clone();
                shuttle::thread::spawn(move || {
                    WATCHED.with(|w| w.set(true));
                    let mut g = m.lock();
                    *g += 1;
                    let at = AT_STARVING.load(SeqCst);
                    let now = HELD.fetch_add(1, SeqCst);
                    if at != usize::MAX {
                        STARVED.fetch_add(1, SeqCst);
                        assert!(
                            now - at <= OTHERS,
                            "overtaken {} times after it became starving",
                            now - at
                        );
                    }
                })
            };
            for t in others {
                t.join().unwrap();
            }
            watched.join().unwrap();
            assert_eq!(*m.lock(), OTHERS * 4 + 1, "no increment lost");
        };
        shuttle::check_random(check, 2000);
        shuttle::check_pct(check, 2000, 3);
        assert!(
            STARVED.load(SeqCst) > 100,
            "the watched thread starved in only {} executions: the bound went unchecked",
            STARVED.load(SeqCst)
        );
    }
}
