//! Model-checked tier (shuttle): the real `Tier` code, with its locks swapped for shuttle's
//! (src/sync.rs), run under thousands of thread interleavings. Covers the races a stress test
//! only hits by luck: a handle's release against an eviction, a remove against a load in
//! flight, and the coalescing wait on success, failure and panic.
//!
//! Run with `cargo test --features model-check --test model` (`.ci/run` does).
#![cfg(feature = "model-check")]

use shuttle::thread;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use texcache::key::Resolver;
use texcache::observe::stats::PixelFormat;
use texcache::tier::{Resource, Tier};
use texcache::ErrorKind;
use texcache::{Error, TierKind};

const ITERATIONS: usize = 4000;

/// Runs `f` under random schedules and under PCT (which finds bugs of a few ordering
/// constraints with a known probability).
fn explore(f: impl Fn() + Send + Sync + Clone + 'static) {
    shuttle::check_random(f.clone(), ITERATIONS);
    shuttle::check_pct(f, ITERATIONS, 3);
}

/// A resource that counts how many of its kind are alive.
struct Res {
    bytes: u64,
    live: Arc<AtomicUsize>,
}
impl Res {
    fn new(bytes: u64, live: &Arc<AtomicUsize>) -> Res {
        live.fetch_add(1, Ordering::Relaxed);
        Res {
            bytes,
            live: live.clone(),
        }
    }
}
impl Drop for Res {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::Relaxed);
    }
}
impl Resource for Res {
    fn bytes(&self) -> u64 {
        self.bytes
    }
    fn dimensions(&self) -> (u32, u32) {
        (1, 1)
    }
    fn format(&self) -> PixelFormat {
        PixelFormat::Rgba8
    }
}

struct World {
    tier: Tier<Res>,
    keys: Resolver,
    live: Arc<AtomicUsize>,
    loads: AtomicUsize,
}

impl World {
    fn new(budget: u64) -> Arc<World> {
        Arc::new(World {
            tier: Tier::new(TierKind::Cpu, budget, 0),
            keys: Resolver::new("/m"),
            live: Arc::new(AtomicUsize::new(0)),
            loads: AtomicUsize::new(0),
        })
    }
    fn get(&self, k: &str) -> texcache::Result<texcache::Handle<Res>> {
        self.tier.acquire(
            k,
            || self.keys.key(k),
            |_| {
                self.loads.fetch_add(1, Ordering::Relaxed);
                Ok(Res::new(1, &self.live))
            },
        )
    }
    /// With every handle gone: §2–3 invariants, and exactly the indexed entries alive.
    fn check_quiet(&self, acquires: u64) {
        let s = self.tier.stats();
        let listed: u64 = self.tier.entries().iter().map(|e| e.bytes).sum();
        assert_eq!(s.in_use, 0, "{s:?}");
        assert_eq!(s.used, listed, "{s:?}");
        assert!(s.used <= s.budget, "{s:?}");
        assert_eq!(
            s.entries as usize,
            self.live.load(Ordering::Relaxed),
            "{s:?}"
        );
        assert_eq!(s.hits + s.misses + s.coalesced, acquires, "{s:?}");
        assert_eq!(
            s.misses as usize,
            self.loads.load(Ordering::Relaxed),
            "{s:?}"
        );
    }
}

#[test]
fn a_release_racing_an_eviction_frees_each_entry_once() {
    explore(|| {
        let w = World::new(1);
        let a = w.get("a").unwrap();
        let t1 = thread::spawn(move || drop(a));
        let w2 = w.clone();
        let t2 = thread::spawn(move || drop(w2.get("b").unwrap()));
        let w3 = w.clone();
        let t3 = thread::spawn(move || {
            let a = w3.get("a").unwrap();
            assert_eq!(a.bytes, 1);
        });
        for t in [t1, t2, t3] {
            t.join().unwrap();
        }
        w.check_quiet(3);
        let live = w.live.clone();
        drop(w);
        assert_eq!(live.load(Ordering::Relaxed), 0, "all freed with the tier");
    });
}

#[test]
fn a_remove_racing_a_load_leaves_no_orphan_behind() {
    explore(|| {
        let w = World::new(4);
        let w1 = w.clone();
        let t1 = thread::spawn(move || drop(w1.get("a").unwrap()));
        let w2 = w.clone();
        let t2 = thread::spawn(move || {
            w2.tier.remove("a");
        });
        let w3 = w.clone();
        let t3 = thread::spawn(move || {
            let h = w3.get("a").unwrap();
            let again = h.clone();
            drop(h);
            drop(again);
        });
        for t in [t1, t2, t3] {
            t.join().unwrap();
        }
        w.check_quiet(2);
    });
}

/// How the one loader of a key ends.
#[derive(Clone, Copy)]
enum Outcome {
    Ok,
    Fail,
    Panic,
}

fn coalescing(outcome: Outcome) {
    if let Outcome::Panic = outcome {
        // Thousands of schedules panic on purpose: keep their messages out of the log.
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.to_string().contains("decoder bug") {
                default(info)
            }
        }));
    }
    explore(move || {
        let w = World::new(8);
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let w = w.clone();
                thread::spawn(move || {
                    let r = w.tier.acquire(
                        "k",
                        || w.keys.key("k"),
                        |_| {
                            w.loads.fetch_add(1, Ordering::Relaxed);
                            match outcome {
                                Outcome::Ok => Ok(Res::new(1, &w.live)),
                                Outcome::Fail => Err(Error::new(
                                    "k",
                                    ErrorKind::Corrupt {
                                        detail: "bad".into(),
                                    },
                                )),
                                Outcome::Panic => panic!("decoder bug"),
                            }
                        },
                    );
                    r.map(|h| h.bytes)
                })
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let s = w.tier.stats();
        match outcome {
            Outcome::Ok => {
                assert!(results.iter().all(|r| matches!(r, Ok(1))));
                assert_eq!((s.misses, w.loads.load(Ordering::Relaxed)), (1, 1));
            }
            Outcome::Fail | Outcome::Panic => {
                for r in &results {
                    match (outcome, r) {
                        (Outcome::Fail, Err(e))
                            if matches!(e.kind(), ErrorKind::Corrupt { .. }) =>
                        {
                            assert_eq!(e.href(), Some("k"))
                        }
                        (Outcome::Panic, Err(e))
                            if matches!(e.kind(), ErrorKind::LoadPanicked { .. }) =>
                        {
                            assert_eq!(e.href(), Some("/m/k"))
                        }
                        _ => panic!("unexpected {r:?}"),
                    }
                }
                assert_eq!(s.failures, s.misses);
                assert_eq!(s.entries, 0);
            }
        }
        w.check_quiet(3);
    });
}

#[test]
fn coalesced_waiters_get_the_one_result() {
    coalescing(Outcome::Ok);
}

#[test]
fn coalesced_waiters_get_the_one_failure() {
    coalescing(Outcome::Fail);
}

#[test]
fn coalesced_waiters_get_the_one_panic_as_an_error() {
    coalescing(Outcome::Panic);
}
