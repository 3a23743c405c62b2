//! Memory over time: a ring buffer of small samples (used vs budget per tier, video, RSS), so
//! an application can draw its own memory graph (libavg shows one on a key press) and a stats
//! dump can show the recent past, not just the present.
//!
//! The cache samples every `stats.history_interval_ms` from one thread that sleeps in between
//! (no busy loop; it wakes at once when the cache is dropped). An application can also take a
//! sample at moments of its own choosing with [`crate::Cache::sample_history`] (once a frame,
//! after a scene change); with the interval at 0 those are the only samples. The buffer holds
//! the last `stats.history_length` samples and never grows past them.

use crate::sync::{Condvar, Mutex};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// One point of the memory graph. Bytes are exact (§2), as in the stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// Milliseconds since the cache was created.
    pub t_ms: u64,
    /// CPU tier bytes used.
    pub cpu_used: u64,
    /// CPU tier budget.
    pub cpu_budget: u64,
    /// GPU tier bytes used.
    pub gpu_used: u64,
    /// GPU tier budget.
    pub gpu_budget: u64,
    /// Video nodes' frames and textures (CPU and GPU bytes together).
    pub video_bytes: u64,
    /// The process's resident set size.
    pub rss: u64,
}

/// The ring buffer, and the sleeping sampler's stop signal.
pub(crate) struct History {
    samples: Mutex<VecDeque<Sample>>,
    length: usize,
    start: Instant,
    stop: Mutex<bool>,
    wake: Condvar,
}

impl History {
    pub fn new(length: usize) -> History {
        History {
            samples: Mutex::new(VecDeque::with_capacity(length)),
            length,
            start: Instant::now(),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        }
    }

    /// Milliseconds since the cache was created.
    pub fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Appends a sample, dropping the oldest when full.
    pub fn push(&self, sample: Sample) {
        if self.length == 0 {
            return;
        }
        let mut s = self.samples.lock();
        if s.len() == self.length {
            s.pop_front();
        }
        s.push_back(sample);
    }

    /// The samples, oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().iter().copied().collect()
    }

    /// Sleeps for `period` or until [`History::stop`]; false once stopped.
    pub fn sleep(&self, period: Duration) -> bool {
        let mut stop = self.stop.lock();
        if !*stop {
            self.wake.wait_for(&mut stop, period);
        }
        !*stop
    }

    /// Ends the sampler thread's sleep for good.
    pub fn stop(&self) {
        *self.stop.lock() = true;
        self.wake.notify_all();
    }
}
