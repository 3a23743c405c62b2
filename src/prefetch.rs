//! The prefetch pool: `loader.threads` background threads that decode (and, for textures,
//! upload) what the application will ask for next, so that its own thread finds a hit.
//!
//! The threads start on the first job, share one queue, and hold the cache only weakly (a
//! [`WeakCache`] upgraded for the length of one job), so they never keep it alive; closing the
//! queue, which the cache does when it shuts down, ends them once they finish their current
//! image. A prefetch job acquires through the cache's public API and drops the handle at once,
//! so the entry stays cached as unused, ready for a hit; failures are counted there, not
//! reported. A request job (a [`crate::request::Request`] that was not a hit) acquires the same
//! way and hands the outcome, handle or error, to its request.

use crate::cache::{Cache, WeakCache};
use crate::error::{Error, Result};
use crate::tier::TierKind;
use parking_lot::{Condvar, Mutex};
use std::sync::mpsc;
use std::sync::Arc;

/// What a loader thread does.
pub(crate) enum Job {
    /// Acquire an href ahead, in one tier (fitted into a box), and let go of it.
    Prefetch(TierKind, String, Option<(u32, u32)>),
    /// Acquire for a pending request and hand it the outcome (the closure owns the request's
    /// promise; dropped unrun, the promise tells the request it was cancelled).
    Request(Box<dyn FnOnce(&Cache) + Send>),
}

/// The queue and the count of jobs not finished yet.
pub(crate) struct Prefetch {
    queue: Mutex<Option<mpsc::Sender<Job>>>,
    pending: Arc<Pending>,
}

#[derive(Default)]
struct Pending {
    count: Mutex<u64>,
    idle: Condvar,
}

impl Pending {
    fn done(&self) {
        let mut p = self.count.lock();
        *p = p.saturating_sub(1);
        if *p == 0 {
            self.idle.notify_all();
        }
    }
}

impl Prefetch {
    pub(crate) fn new() -> Prefetch {
        Prefetch {
            queue: Mutex::new(None),
            pending: Arc::default(),
        }
    }

    /// Queues `jobs`, starting `threads` threads for `cache` first if none run. If the system
    /// refuses some threads ([`Error::Thread`]), the pool goes on with those that started and
    /// this returns the error after queuing the jobs to them; if it refuses all, nothing is
    /// queued and the next call tries again.
    pub(crate) fn queue(
        &self,
        cache: &WeakCache,
        threads: usize,
        jobs: impl Iterator<Item = Job>,
    ) -> Result<()> {
        let mut queue = self.queue.lock();
        let mut refused = None;
        if queue.is_none() {
            let (tx, e) = self.start(cache, threads.max(1));
            *queue = tx;
            refused = e;
        }
        let Some(tx) = queue.as_ref() else {
            return Err(refused.expect("no thread started: an error says why"));
        };
        for job in jobs {
            *self.pending.count.lock() += 1;
            if tx.send(job).is_err() {
                self.pending.done();
            }
        }
        refused.map_or(Ok(()), Err)
    }

    /// Blocks until every job queued so far has finished.
    pub(crate) fn wait(&self) {
        let mut pending = self.pending.count.lock();
        while *pending > 0 {
            self.pending.idle.wait(&mut pending);
        }
    }

    /// Closes the queue: the threads end once they finish their current job.
    pub(crate) fn close(&self) {
        drop(self.queue.lock().take());
    }

    /// Starts the threads: the queue they share (none if no thread started) and the error of
    /// the first thread the system refused, if any.
    fn start(
        &self,
        cache: &WeakCache,
        threads: usize,
    ) -> (Option<mpsc::Sender<Job>>, Option<Error>) {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let (rx, cache, pending) = (rx.clone(), cache.clone(), self.pending.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("texcache-prefetch-{i}"))
                .spawn(move || worker(&rx, &cache, &pending));
            if let Err(e) = spawned {
                let error = Error::Thread {
                    what: format!("prefetch thread {} of {threads}", i + 1),
                    source: Arc::new(e),
                };
                return ((i > 0).then_some(tx), Some(error));
            }
        }
        (Some(tx), None)
    }
}

fn worker(rx: &Mutex<mpsc::Receiver<Job>>, cache: &WeakCache, pending: &Pending) {
    loop {
        let job = rx.lock().recv();
        let Ok(job) = job else { return };
        let Some(cache) = cache.upgrade() else { return };
        let (tier, href, fit) = match job {
            Job::Prefetch(tier, href, fit) => (tier, href, fit),
            Job::Request(run) => {
                run(&cache);
                pending.done();
                continue;
            }
        };
        // Handles are dropped at once: the entries stay cached as unused.
        let _ = match (tier, fit) {
            (TierKind::Cpu, None) => cache.bitmap(&href).map(drop),
            (TierKind::Cpu, Some((w, h))) => cache.bitmap_fit(&href, w, h).map(drop),
            #[cfg(feature = "gpu")]
            (TierKind::Gpu, None) => cache.texture(&href).map(drop),
            #[cfg(feature = "gpu")]
            (TierKind::Gpu, Some((w, h))) => cache.texture_fit(&href, w, h).map(drop),
            // Only `Cache::prefetch_textures` queues these, and it needs the `gpu` feature.
            #[cfg(not(feature = "gpu"))]
            (TierKind::Gpu, _) => Ok(()),
        };
        pending.done();
    }
}
