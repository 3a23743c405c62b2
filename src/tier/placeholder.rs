//! Single-flight loading: while one caller loads a key, later callers for the same key wait for
//! that one result instead of decoding again (SPEC §3.1, "coalesced").
//!
//! The placeholder is created by [`super::core::TierCore::acquire`] on a miss and registered
//! in the core's loading map. Waiters count themselves under the tier lock, so when the load
//! completes the core creates the entry with one handle per waiter already counted; the waiters
//! then only pick up the pointer. Success or failure is published exactly once, and
//! [`super::Tier`] catches panicking loaders, so no waiter can block forever.

use super::core::EntryPtr;
use crate::error::Result;
use crate::key::Key;
use parking_lot::{Condvar, Mutex};
use std::sync::atomic::AtomicUsize;

/// A load in flight for one key.
pub struct Placeholder<V> {
    pub(crate) key: Key,
    /// Callers waiting on this load; changed only under the tier lock.
    pub(crate) waiters: AtomicUsize,
    result: Mutex<Option<Result<EntryPtr<V>>>>,
    ready: Condvar,
}

impl<V> Placeholder<V> {
    pub(crate) fn new(key: Key) -> Self {
        Placeholder {
            key,
            waiters: AtomicUsize::new(0),
            result: Mutex::new(None),
            ready: Condvar::new(),
        }
    }

    /// Hands the outcome to every waiter.
    pub(crate) fn publish(&self, outcome: Result<EntryPtr<V>>) {
        *self.result.lock() = Some(outcome);
        self.ready.notify_all();
    }

    /// Blocks until the outcome is published.
    pub(crate) fn wait(&self) -> Result<EntryPtr<V>> {
        let mut slot = self.result.lock();
        loop {
            if let Some(r) = slot.as_ref() {
                return r.clone();
            }
            self.ready.wait(&mut slot);
        }
    }
}
