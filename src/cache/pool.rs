//! The loader pool: `loader.threads` background threads that run the cache's loads off the
//! caller's thread (prefetches, and the loads of pending requests), so that its own thread
//! finds a hit.
//!
//! The pool knows nothing of what it runs: it is generic over the job, and each thread calls the
//! runner it was started with (the cache's, which holds the cache only weakly, so the threads
//! never keep it alive; a runner that returns `false` ends its thread). The threads start on the
//! first job and share one queue; closing the queue, which the cache does when it shuts down,
//! ends them once they finish their current job. [`Pool::wait`] blocks until every job queued
//! so far has finished.

use crate::error::{Error, ErrorKind, Result};
use crate::sync::{Condvar, Mutex};
use std::sync::mpsc;
use std::sync::Arc;

/// What each thread does with a job: `false` when the thread should end (its cache is gone).
pub(crate) type Runner<J> = Arc<dyn Fn(J) -> bool + Send + Sync>;

/// The queue and the count of jobs not finished yet.
pub(crate) struct Pool<J> {
    queue: Mutex<Option<mpsc::Sender<J>>>,
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

impl<J: Send + 'static> Pool<J> {
    pub(crate) fn new() -> Pool<J> {
        Pool {
            queue: Mutex::new(None),
            pending: Arc::default(),
        }
    }

    /// Queues `jobs`, first starting `threads` threads that run them with the runner `run` makes
    /// if none run. If the system
    /// refuses some threads ([`ErrorKind::Thread`]), the pool goes on with those that started and
    /// this returns the error after queuing the jobs to them; if it refuses all, nothing is
    /// queued and the next call tries again.
    pub(crate) fn queue(
        &self,
        run: impl FnOnce() -> Runner<J>,
        threads: usize,
        jobs: impl Iterator<Item = J>,
    ) -> Result<()> {
        let mut queue = self.queue.lock();
        let mut refused = None;
        if queue.is_none() {
            let (tx, e) = self.start(&run(), threads.max(1));
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
    fn start(&self, run: &Runner<J>, threads: usize) -> (Option<mpsc::Sender<J>>, Option<Error>) {
        let (tx, rx) = mpsc::channel::<J>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let (rx, run, pending) = (rx.clone(), run.clone(), self.pending.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("texcache-prefetch-{i}"))
                .spawn(move || worker(&rx, &*run, &pending));
            if let Err(e) = spawned {
                let error = Error::from(ErrorKind::Thread {
                    what: format!("prefetch thread {} of {threads}", i + 1),
                    source: Arc::new(e),
                });
                return ((i > 0).then_some(tx), Some(error));
            }
        }
        (Some(tx), None)
    }
}

fn worker<J>(
    rx: &Mutex<mpsc::Receiver<J>>,
    run: &(dyn Fn(J) -> bool + Send + Sync),
    pending: &Pending,
) {
    loop {
        let job = rx.lock().recv();
        let Ok(job) = job else { return };
        let go_on = run(job);
        pending.done();
        if !go_on {
            return;
        }
    }
}
