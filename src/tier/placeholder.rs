//! Single-flight loading: while one caller loads a key, later callers for the same key wait for
//! that one result instead of decoding again (§3.1, "coalesced").
//!
//! Generic over its outcome, it imports nothing of the core that uses it. The placeholder is
//! created by the core's `acquire` on a miss and registered
//! in the core's loading map. Waiters count themselves under the tier lock, so when the load
//! completes the core creates the entry with one handle per waiter already counted; the waiters
//! then only pick up the pointer. Success or failure is published exactly once, and
//! [`super::Tier`] catches panicking loaders, so no waiter can block forever.

use crate::error::Result;
use crate::key::Key;
use crate::sync::checked::{Condvar, Mutex};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// A load in flight for one key, and its outcome `T` once published (the core's entry
/// pointer: the placeholder knows nothing of entries).
pub struct Placeholder<T> {
    pub(crate) key: Key,
    /// Callers waiting on this load; changed only under the tier lock.
    pub(crate) waiters: AtomicUsize,
    /// While a trace is recorded: the next of the handle ids logged for the waiters when the
    /// load completed (0: none were).
    waiter_ids: AtomicU64,
    result: Mutex<Option<Result<T>>>,
    ready: Condvar,
}

impl<T: Clone> Placeholder<T> {
    pub(crate) fn new(key: Key) -> Self {
        Placeholder {
            key,
            waiters: AtomicUsize::new(0),
            waiter_ids: AtomicU64::new(0),
            result: Mutex::new(None),
            ready: Condvar::new(),
        }
    }

    /// Sets the first of the waiters' trace ids (before [`Placeholder::publish`]).
    pub(crate) fn set_waiter_ids(&self, first: u64) {
        self.waiter_ids.store(first, Ordering::Relaxed);
    }

    /// A waiter's trace id: one of those logged at completion, or 0.
    pub(crate) fn take_waiter_id(&self) -> u64 {
        self.waiter_ids
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                (v != 0).then_some(v + 1)
            })
            .unwrap_or(0)
    }

    /// Hands the outcome to every waiter.
    pub(crate) fn publish(&self, outcome: Result<T>) {
        *self.result.lock() = Some(outcome);
        self.ready.notify_all();
    }

    /// Blocks until the outcome is published.
    pub(crate) fn wait(&self) -> Result<T> {
        let mut slot = self.result.lock();
        loop {
            if let Some(r) = slot.as_ref() {
                return r.clone();
            }
            self.ready.wait(&mut slot);
        }
    }
}
