//! A property test of the tier (core + handles) against a minimal model of §3.
//!
//! Random sequences of acquire (hit, miss, failed load), clone, release, remove, trim, budget
//! and max_entries changes run against both the real [`Tier`] and a few lines of obviously
//! correct bookkeeping; after every step all §6 counters and the set of resident keys must be
//! equal.

use proptest::prelude::*;
use std::collections::HashMap;
use texcache::key::Resolver;
use texcache::observe::stats::{PixelFormat, TierStats};
use texcache::tier::{Handle, Resource, Tier, TierKind};
use texcache::Error;
use texcache::ErrorKind;

struct Blob(u64);
impl Resource for Blob {
    fn bytes(&self) -> u64 {
        self.0
    }
    fn dimensions(&self) -> (u32, u32) {
        (self.0 as u32, 1)
    }
    fn format(&self) -> PixelFormat {
        PixelFormat::Gray8
    }
}

#[derive(Debug, Clone)]
enum Op {
    Acquire { key: u8, fail: bool },
    Clone(usize),
    Release(usize),
    Remove(u8),
    Trim(u64),
    Budget(u64),
    MaxEntries(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..12, prop::bool::weighted(0.1)).prop_map(|(key, fail)| Op::Acquire { key, fail }),
        1 => any::<usize>().prop_map(Op::Clone),
        5 => any::<usize>().prop_map(Op::Release),
        1 => (0u8..12).prop_map(Op::Remove),
        1 => (0u64..3000).prop_map(Op::Trim),
        1 => (0u64..4000).prop_map(Op::Budget),
        1 => (0u64..8).prop_map(Op::MaxEntries),
    ]
}

fn size_of(key: u8) -> u64 {
    100 + 37 * key as u64
}

/// The model: entries by generation; the unused list as a Vec in release order.
#[derive(Default)]
struct Model {
    s: TierStats,
    max_entries: u64,
    /// generation -> (key, bytes, refs, indexed)
    entries: HashMap<u64, (u8, u64, usize, bool)>,
    index: HashMap<u8, u64>,
    unused: Vec<u64>,
    next_gen: u64,
}

impl Model {
    fn evict(&mut self, limit: u64) {
        while (self.s.used > limit || (self.max_entries > 0 && self.s.entries > self.max_entries))
            && !self.unused.is_empty()
        {
            let g = self.unused.remove(0);
            let (key, bytes, _, _) = self.entries.remove(&g).unwrap();
            self.index.remove(&key);
            self.s.used -= bytes;
            self.s.entries -= 1;
            self.s.evictions += 1;
            self.s.evicted_bytes += bytes;
        }
    }
    fn finish(&mut self) {
        self.s.in_use = self.entries.values().filter(|e| e.2 > 0).map(|e| e.1).sum();
        self.s.in_use_entries = self.entries.values().filter(|e| e.2 > 0).count() as u64;
        self.s.unused = self.s.used - self.s.in_use;
        self.s.over_budget = self.s.used.saturating_sub(self.s.budget);
        self.s.peak_used = self.s.peak_used.max(self.s.used);
    }
    /// Returns the generation acquired, or None for a failed load.
    fn acquire(&mut self, key: u8, fail: bool) -> Option<u64> {
        if let Some(&g) = self.index.get(&key) {
            let e = self.entries.get_mut(&g).unwrap();
            if e.2 == 0 {
                self.unused.retain(|&u| u != g);
            }
            e.2 += 1;
            self.s.hits += 1;
            return Some(g);
        }
        self.s.misses += 1;
        if fail {
            self.s.failures += 1;
            return None;
        }
        let g = self.next_gen;
        self.next_gen += 1;
        self.entries.insert(g, (key, size_of(key), 1, true));
        self.index.insert(key, g);
        self.s.used += size_of(key);
        self.s.entries += 1;
        self.evict(self.s.budget);
        Some(g)
    }
    fn release(&mut self, g: u64) {
        let e = self.entries.get_mut(&g).unwrap();
        e.2 -= 1;
        if e.2 > 0 {
            return;
        }
        if e.3 {
            self.unused.push(g);
            self.evict(self.s.budget);
        } else {
            let (_, bytes, _, _) = self.entries.remove(&g).unwrap();
            self.s.used -= bytes;
            self.s.entries -= 1;
        }
    }
    fn remove(&mut self, key: u8) {
        if let Some(g) = self.index.remove(&key) {
            let e = self.entries.get_mut(&g).unwrap();
            if e.2 == 0 {
                self.unused.retain(|&u| u != g);
                let (_, bytes, _, _) = self.entries.remove(&g).unwrap();
                self.s.used -= bytes;
                self.s.entries -= 1;
            } else {
                e.3 = false;
            }
        }
    }
}

fn run(ops: Vec<Op>, budget: u64) {
    let resolver = Resolver::new("/media");
    let tier: Tier<Blob> = Tier::new(TierKind::Cpu, budget, 0);
    let mut model = Model::default();
    model.s.budget = budget;
    let mut held: Vec<(u64, Handle<Blob>)> = Vec::new();
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Acquire { key, fail } => {
                let lookup = format!("k{key}.png");
                let got = tier.acquire(
                    &lookup,
                    || resolver.key(&lookup),
                    |_| {
                        if *fail {
                            Err(Error::new(
                                lookup.clone(),
                                ErrorKind::Corrupt {
                                    detail: "injected".into(),
                                },
                            ))
                        } else {
                            Ok(Blob(size_of(*key)))
                        }
                    },
                );
                let want = model.acquire(*key, *fail);
                match (got, want) {
                    (Ok(h), Some(g)) => held.push((g, h)),
                    (Err(_), None) => {}
                    (got, want) => panic!(
                        "step {step} {op:?}: tier {:?}, model {want:?}",
                        got.map(|h| h.bytes())
                    ),
                }
            }
            Op::Clone(i) if !held.is_empty() => {
                let (g, h) = &held[i % held.len()];
                let (g, h) = (*g, h.clone());
                model.entries.get_mut(&g).unwrap().2 += 1;
                held.push((g, h));
            }
            Op::Release(i) if !held.is_empty() => {
                let (g, h) = held.swap_remove(i % held.len());
                drop(h);
                model.release(g);
            }
            Op::Remove(key) => {
                tier.remove(&format!("k{key}.png"));
                model.remove(*key);
            }
            Op::Trim(n) => {
                tier.trim(*n);
                model.evict(*n);
            }
            Op::Budget(b) => {
                tier.set_budget(*b);
                model.s.budget = *b;
                model.evict(*b);
            }
            Op::MaxEntries(m) => {
                tier.set_max_entries(*m);
                model.max_entries = *m;
                model.evict(model.s.budget);
            }
            _ => {}
        }
        model.finish();
        assert_eq!(tier.stats(), model.s, "step {step}: {op:?}");
        // Indexed entries; those removed while held are listed too, marked, and count.
        let listed = tier.entries();
        assert_eq!(listed.len() as u64, model.s.entries, "step {step}: {op:?}");
        let mut resident: Vec<String> = listed
            .into_iter()
            .filter(|e| !e.removed)
            .map(|e| e.key)
            .collect();
        let mut want: Vec<String> = model
            .index
            .keys()
            .map(|k| format!("/media/k{k}.png"))
            .collect();
        resident.sort();
        want.sort();
        assert_eq!(resident, want, "step {step}: {op:?}");
    }
    drop(held);
    model.finish();
    let s = tier.stats();
    assert_eq!((s.in_use, s.in_use_entries), (0, 0));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
    #[test]
    fn tier_matches_model(ops in prop::collection::vec(op(), 1..120), budget in 0u64..3000) {
        run(ops, budget);
    }
}

#[test]
fn eviction_is_least_recently_released_first() {
    // Acquire a, b, c; release b, then a, then c; shrink: b goes first, then a.
    let resolver = Resolver::new("/m");
    let tier: Tier<Blob> = Tier::new(TierKind::Cpu, 1000, 0);
    let get = |k: &str| {
        tier.acquire(k, || resolver.key(k), |_| Ok(Blob(100)))
            .unwrap()
    };
    let (a, b, c) = (get("a"), get("b"), get("c"));
    drop(b);
    drop(a);
    drop(c);
    tier.set_budget(250);
    let keys: Vec<String> = tier.entries().into_iter().map(|e| e.key).collect();
    assert_eq!(keys, ["/m/a", "/m/c"]);
    tier.set_budget(150);
    let keys: Vec<String> = tier.entries().into_iter().map(|e| e.key).collect();
    assert_eq!(keys, ["/m/c"]);
    let s = tier.stats();
    assert_eq!(
        (s.evictions, s.evicted_bytes, s.used, s.peak_used),
        (2, 200, 100, 300)
    );
}
