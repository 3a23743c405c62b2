//! A panic anywhere in a load must not leave its key loading for ever: not in the loader, not
//! in the resource's `bytes()`, not in the destructor of an entry the insertion evicts, not in
//! a texture upload. Every waiter gets an answer and the next acquire loads afresh. Each test
//! runs its threads under a deadline, so a regression fails instead of hanging.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use texcache::key::Resolver;
use texcache::tier::Tier;
use texcache::ErrorKind;
use texcache::{Error, Handle, PixelFormat, TierKind};

/// A resource whose `bytes()` or destructor can be told to panic.
struct Touchy {
    bytes: u64,
    panic_in_bytes: bool,
    panic_on_drop: Arc<AtomicBool>,
}

impl texcache::tier::Resource for Touchy {
    fn bytes(&self) -> u64 {
        if self.panic_in_bytes {
            panic!("bytes() exploded");
        }
        self.bytes
    }
    fn dimensions(&self) -> (u32, u32) {
        (1, 1)
    }
    fn format(&self) -> PixelFormat {
        PixelFormat::Gray8
    }
}

impl Drop for Touchy {
    fn drop(&mut self) {
        if self.panic_on_drop.swap(false, Ordering::Relaxed) {
            panic!("drop exploded");
        }
    }
}

fn touchy(bytes: u64) -> Touchy {
    Touchy {
        bytes,
        panic_in_bytes: false,
        panic_on_drop: Arc::new(AtomicBool::new(false)),
    }
}

/// Acquires key `k` on two threads: a loader that returns `load()` once the other is waiting
/// on it, and that waiter. Returns both results (the loader's as a caught panic or not).
fn loader_and_waiter(
    tier: Arc<Tier<Touchy>>,
    load: impl FnOnce() -> texcache::Result<Touchy> + Send + 'static,
) -> (
    std::thread::Result<texcache::Result<Handle<Touchy>>>,
    texcache::Result<Handle<Touchy>>,
) {
    common::within(20, "a load and its waiter", move || {
        let r = Resolver::new("/m");
        let (misses, coalesced) = (tier.stats().misses, tier.stats().coalesced);
        let loader = {
            let (tier, r) = (tier.clone(), r.clone());
            std::thread::spawn(move || {
                tier.acquire(
                    "k",
                    || r.key("k"),
                    |_| {
                        while tier.stats().coalesced == coalesced {
                            std::thread::yield_now();
                        }
                        load()
                    },
                )
            })
        };
        // The waiter asks once the loader's miss is counted, so it waits on that load.
        while tier.stats().misses == misses {
            std::thread::yield_now();
        }
        let waiter = tier.acquire("k", || r.key("k"), |_| Ok(touchy(1)));
        (loader.join(), waiter)
    })
}

#[test]
fn a_panicking_bytes_fails_the_load_for_every_waiter() {
    let tier = Arc::new(Tier::new(TierKind::Cpu, 1 << 20, 0));
    let (loader, waiter) = loader_and_waiter(tier.clone(), || {
        let mut t = touchy(10);
        t.panic_in_bytes = true;
        Ok(t)
    });
    for r in [
        loader.expect("the loader returns, it does not unwind"),
        waiter,
    ] {
        match r.as_ref().map_err(Error::kind) {
            Err(ErrorKind::LoadPanicked { message }) => assert_eq!(message, "bytes() exploded"),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("served a resource whose size is unknown"),
        }
    }
    let s = tier.stats();
    assert_eq!((s.misses, s.coalesced, s.failures, s.entries), (1, 1, 1, 0));
    // Not remembered: the next acquire loads afresh.
    let r = Resolver::new("/m");
    let h = tier.acquire("k", || r.key("k"), |_| Ok(touchy(7))).unwrap();
    assert_eq!((h.bytes, tier.stats().misses), (7, 2));
}

#[test]
fn a_panicking_drop_of_an_evicted_entry_strands_no_waiter() {
    // Budget 10: inserting "k" (10 bytes) evicts "old" (10 bytes), whose destructor panics.
    let tier = Arc::new(Tier::new(TierKind::Cpu, 10, 0));
    let r = Resolver::new("/m");
    let old = touchy(10);
    let bomb = old.panic_on_drop.clone();
    drop(tier.acquire("old", || r.key("old"), |_| Ok(old)).unwrap());
    bomb.store(true, Ordering::Relaxed);
    let (loader, waiter) = loader_and_waiter(tier.clone(), || Ok(touchy(10)));
    assert!(
        loader.is_err(),
        "the destructor's panic reaches the thread that evicted"
    );
    let waiter = waiter.expect("the waiter gets the entry");
    assert_eq!(waiter.bytes, 10);
    let s = tier.stats();
    // The loader's handle was released as its thread unwound: only the waiter's is left.
    assert_eq!(
        (s.entries, s.in_use_entries, s.used, s.evictions),
        (1, 1, 10, 1)
    );
    assert_eq!(waiter.refs(), 1);
    drop(waiter);
    assert_eq!(tier.stats().unused, 10);
    // "old" loads afresh.
    drop(
        tier.acquire("old", || r.key("old"), |_| Ok(touchy(10)))
            .unwrap(),
    );
    assert_eq!(tier.stats().misses, 3);
}

#[cfg(feature = "gpu")]
#[test]
fn a_panic_inside_a_texture_upload_fails_the_load_and_frees_the_texture() {
    let Some(gpu) = common::gpu() else { return };
    let tmp = tempfile::tempdir().unwrap();
    common::png(tmp.path(), "a.png", 8, 8);
    let cache = common::cache(tmp.path(), 1 << 20);
    cache.bind_gpu(gpu.clone());
    let bitmap = cache.bitmap("a.png").unwrap();
    let textures_before = texcache::gpu::live_textures();
    let tier = cache.gpu_tier();
    let started = AtomicBool::new(false);
    let panicked = std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            while !started.load(Ordering::Acquire) {
                std::thread::yield_now();
            }
            tier.acquire(
                "a.png",
                || cache.key("a.png"),
                |_| unreachable!("coalesced"),
            )
        });
        let loaded = tier.acquire(
            "a.png",
            || cache.key("a.png"),
            |_| {
                started.store(true, Ordering::Release);
                while tier.stats().coalesced == 0 {
                    std::thread::yield_now();
                }
                // A real upload, then a panic inside the upload path (as a driver assertion
                // would): the texture made so far is dropped by the unwind.
                let texture = texcache::Texture::upload(&gpu, "a.png", &bitmap, false)?;
                assert_eq!(texcache::gpu::live_textures().0, textures_before.0 + 1);
                if texcache::tier::Resource::bytes(&texture) > 0 {
                    panic!("upload exploded");
                }
                Ok(texture)
            },
        );
        (loaded, waiter.join().unwrap())
    });
    for r in [panicked.0.map(|_| ()), panicked.1.map(|_| ())] {
        assert!(
            matches!(r.as_ref().map_err(Error::kind), Err(ErrorKind::LoadPanicked { message }) if message == "upload exploded"),
            "{r:?}"
        );
    }
    assert_eq!(texcache::gpu::live_textures(), textures_before);
    let s = cache.stats().gpu;
    assert_eq!((s.misses, s.coalesced, s.failures, s.entries), (1, 1, 1, 0));
    // The next acquire loads afresh, through the cache's own upload.
    let t = cache.texture("a.png").unwrap();
    assert_eq!((t.width(), cache.stats().gpu.misses), (8, 2));
}
