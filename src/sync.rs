//! The locks the tier core is built on, in one place so that a model checker can replace them.
//!
//! Normally these are `parking_lot`'s `Mutex` and `Condvar`. With the `model-check` feature they
//! are thin wrappers over [shuttle](https://docs.rs/shuttle)'s, with the same API, so that
//! `tests/model.rs` can explore thread interleavings of the real tier code (the release/evict
//! race, the coalescing wait) rather than of a copy of it. The feature is for that test only:
//! with it, the tier works only inside `shuttle::check_*`.

#[cfg(not(feature = "model-check"))]
pub(crate) use parking_lot::{Condvar, Mutex};

#[cfg(feature = "model-check")]
pub(crate) use self::model::{Condvar, Mutex};

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
