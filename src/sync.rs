//! The locks the tier core is built on, in one place so that a model checker can replace them.
//!
//! Normally these are `parking_lot`'s `Mutex` and `Condvar`, and [`TierMutex`] for the tier
//! lock itself (see [`RawTierLock`] for why that one is different). With the `model-check`
//! feature they are thin wrappers over [shuttle](https://docs.rs/shuttle)'s, with the same API,
//! so that `tests/model.rs` can explore thread interleavings of the real tier code (the
//! release/evict race, the coalescing wait) rather than of a copy of it. The feature is for that
//! test only: with it, the tier works only inside `shuttle::check_*`.

#[cfg(not(feature = "model-check"))]
pub(crate) use parking_lot::{Condvar, Mutex};

#[cfg(feature = "model-check")]
pub(crate) use self::model::{Condvar, Mutex};

/// The tier lock: a mutex over [`RawTierLock`].
#[cfg(not(feature = "model-check"))]
pub(crate) type TierMutex<T> = lock_api::Mutex<RawTierLock, T>;

/// The tier lock under the model checker: shuttle's mutex, like every other lock there.
#[cfg(feature = "model-check")]
pub(crate) type TierMutex<T> = self::model::Mutex<T>;

/// A held [`TierMutex`].
#[cfg(not(feature = "model-check"))]
pub(crate) type TierMutexGuard<'a, T> = lock_api::MutexGuard<'a, RawTierLock, T>;

/// A held [`TierMutex`] under the model checker.
#[cfg(feature = "model-check")]
pub(crate) type TierMutexGuard<'a, T> = self::model::MutexGuard<'a, T>;

/// The tier lock's raw lock: taken with one compare-and-swap, released with one plain store.
///
/// Every cache hit takes the tier lock twice (acquire, then the handle's release), and the lock
/// is what a hit mostly costs: on x86 a locked instruction waits for the store buffer to
/// drain, some 5 ns each here. `parking_lot`'s mutex (like `std`'s) also releases with a
/// read-modify-write, to learn whether a thread is parked and must be woken; this lock parks
/// no thread, so its release is a plain store, and a hit pays two locked instructions instead
/// of four: 37 ns became 30.5 on the `hit` bench (PERFORMANCE.md).
///
/// A waiter spins, then yields (`crossbeam_utils::Backoff`), then sleeps in growing steps of
/// at most [`MAX_NAP`], polling the lock. Nobody has to wake it, so no wake-up can be lost.
/// That suits this lock because what it guards is short: a hit or release is tens of
/// nanoseconds, an eviction frees its entries outside the lock, and the longest holds (a
/// release-queue sweep, a stats listing) are O(entries) and rare. An uncontended lock costs
/// what any lock costs (one CAS); a contended one costs a waiter at most one nap of latency.
#[cfg(not(feature = "model-check"))]
pub(crate) struct RawTierLock {
    locked: std::sync::atomic::AtomicBool,
}

/// The longest a waiter for the tier lock sleeps between two looks at it.
#[cfg(not(feature = "model-check"))]
const MAX_NAP: std::time::Duration = std::time::Duration::from_micros(200);

#[cfg(not(feature = "model-check"))]
impl RawTierLock {
    #[cold]
    fn lock_contended(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let backoff = crossbeam_utils::Backoff::new();
        let mut nap = std::time::Duration::from_micros(2);
        loop {
            while self.locked.load(Relaxed) {
                if backoff.is_completed() {
                    std::thread::sleep(nap);
                    nap = (nap * 2).min(MAX_NAP);
                } else {
                    backoff.snooze();
                }
            }
            if lock_api::RawMutex::try_lock(self).is_some() {
                return;
            }
        }
    }
}

// SAFETY: `locked` is set by exactly one successful compare-and-swap from false (with Acquire)
// and cleared only by `unlock`, which its holder calls once (with Release), so at most one
// thread holds the lock, and what it wrote under the lock happens-before the next holder's
// section.
#[cfg(not(feature = "model-check"))]
unsafe impl lock_api::RawMutex for RawTierLock {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = RawTierLock {
        locked: std::sync::atomic::AtomicBool::new(false),
    };
    type Guard = lock_api::GuardSend;

    #[inline]
    fn lock(&self) -> Self::Guard {
        if self.try_lock().is_none() {
            self.lock_contended();
        }
        lock_api::GuardSend::new()
    }

    #[inline]
    fn try_lock(&self) -> Option<Self::Guard> {
        use std::sync::atomic::Ordering::{Acquire, Relaxed};
        self.locked
            .compare_exchange(false, true, Acquire, Relaxed)
            .ok()
            .map(|_| lock_api::GuardSend::new())
    }

    #[inline]
    unsafe fn unlock(&self, _: Self::Guard) {
        self.locked
            .store(false, std::sync::atomic::Ordering::Release);
    }

    #[inline]
    fn is_locked(&self) -> bool {
        self.locked.load(std::sync::atomic::Ordering::Relaxed)
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
