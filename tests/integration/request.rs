//! Non-blocking requests (`Cache::request_bitmap`, `Cache::request_texture`): ready at once on
//! a hit, pending while a loader thread loads, every way of learning the outcome (polling,
//! waiting, a callback, a `Future`), errors, and no waiter left waiting.

use crate::common;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use texcache::ErrorKind;

fn cache(dir: &std::path::Path) -> texcache::Cache {
    let mut cfg = texcache::Config::default();
    cfg.mediadir = dir.into();
    cfg.loader.threads = 2;
    texcache::Cache::new(cfg).unwrap()
}

#[test]
fn a_miss_is_pending_then_ready_once_and_the_next_request_is_a_hit() {
    let tmp = tempfile::tempdir().unwrap();
    common::png(tmp.path(), "a.png", 40, 30);
    let cache = cache(tmp.path());
    let mut request = cache.request_bitmap("a.png", None);
    let called = Arc::new(AtomicUsize::new(0));
    let c = called.clone();
    request.on_ready(move || {
        c.fetch_add(1, Ordering::SeqCst);
    });
    cache.wait_prefetch();
    assert!(request.is_ready());
    assert_eq!(called.load(Ordering::SeqCst), 1, "the callback ran once");
    // The request holds the handle until it is taken: the entry is in use, not evictable.
    assert_eq!(cache.stats().cpu.in_use, 40 * 30 * 4);
    let bm = request.try_get().expect("ready").unwrap();
    assert_eq!((bm.width(), bm.height()), (40, 30));
    assert!(request.try_get().is_none(), "the outcome is given once");
    drop(bm);
    assert_eq!(cache.stats().cpu.in_use, 0);

    // Resident now: ready at once, a counted hit, and a callback runs on this thread.
    let hits = cache.stats().cpu.hits;
    let mut again = cache.request_bitmap("./a.png", None);
    assert!(again.is_ready());
    let here = std::thread::current().id();
    let ran_here = Arc::new(Mutex::new(None));
    let r = ran_here.clone();
    again.on_ready(move || *r.lock().unwrap() = Some(std::thread::current().id()));
    assert_eq!(*ran_here.lock().unwrap(), Some(here));
    assert!(again.try_get().unwrap().is_ok());
    assert_eq!(cache.stats().cpu.hits, hits + 1);
    let s = cache.stats().cpu;
    assert_eq!((s.misses, s.entries), (1, 1), "one load for both requests");
}

#[test]
fn fitted_requests_are_their_own_entries() {
    let tmp = tempfile::tempdir().unwrap();
    common::png(tmp.path(), "wide.png", 300, 200);
    let cache = cache(tmp.path());
    let thumb = cache
        .request_bitmap("wide.png", Some((64, 64)))
        .wait()
        .unwrap();
    assert_eq!((thumb.width(), thumb.height()), (64, 43));
    assert!(cache.request_bitmap("wide.png", Some((64, 64))).is_ready());
    // The full size is not resident: its request is a miss (a loader thread may finish it
    // before `is_ready` could be asked, so the counts tell, not the timing).
    let hits = cache.stats().cpu.hits;
    let full = cache.request_bitmap("wide.png", None).wait().unwrap();
    assert_eq!((full.width(), full.height()), (300, 200));
    let s = cache.stats().cpu;
    assert_eq!((s.hits, s.misses), (hits, 2), "{s:?}");
    assert_eq!(s.used, 64 * 43 * 4 + 300 * 200 * 4);
}

#[test]
fn a_bad_file_is_the_loads_typed_error_naming_the_href() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("bad.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let cache = cache(tmp.path());
    match cache.request_bitmap("bad.png", None).wait() {
        Err(e) if matches!(e.kind(), ErrorKind::Corrupt { .. }) => {
            assert!(e.to_string().contains("bad.png"), "{e}")
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    match cache.request_bitmap("missing.png", Some((8, 8))).wait() {
        Err(e) if matches!(e.kind(), ErrorKind::NotFound { .. }) => {
            assert_eq!(e.href(), Some("missing.png"))
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(cache.stats().cpu.failures, 2);
}

/// A waker that counts its wakes and unparks the thread that polls.
struct Unpark(std::thread::Thread, AtomicUsize);
impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.unpark();
    }
}

#[test]
fn a_request_is_a_future_any_executor_can_drive() {
    let tmp = tempfile::tempdir().unwrap();
    common::png(tmp.path(), "a.png", 10, 10);
    let cache = cache(tmp.path());
    let unpark = Arc::new(Unpark(std::thread::current(), AtomicUsize::new(0)));
    let waker = Waker::from(unpark.clone());
    let mut cx = Context::from_waker(&waker);
    let mut request = std::pin::pin!(cache.request_bitmap("a.png", None));
    // A minimal block_on: poll, park until woken (spurious unparks just poll again).
    let bm = loop {
        match request.as_mut().poll(&mut cx) {
            Poll::Ready(r) => break r.unwrap(),
            Poll::Pending => std::thread::park(),
        }
    };
    assert_eq!(bm.width(), 10);
    assert!(unpark.1.load(Ordering::SeqCst) <= 1, "woken at most once");
}

#[test]
fn many_threads_requesting_one_picture_load_it_once() {
    let tmp = tempfile::tempdir().unwrap();
    common::png(tmp.path(), "a.png", 64, 64);
    let cache = cache(tmp.path());
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..50 {
                    let bm = cache.request_bitmap("a.png", None).wait().unwrap();
                    assert_eq!(bm.width(), 64);
                }
            });
        }
    });
    let s = cache.stats().cpu;
    assert_eq!((s.misses, s.entries, s.in_use), (1, 1, 0), "{s:?}");
}

#[test]
fn dropping_the_cache_with_requests_queued_leaves_no_waiter_waiting() {
    let tmp = tempfile::tempdir().unwrap();
    for i in 0..40 {
        common::png(tmp.path(), &format!("p{i}.png"), 256, 256);
    }
    let mut cfg = texcache::Config::default();
    cfg.mediadir = tmp.path().into();
    cfg.loader.threads = 1;
    let cache = texcache::Cache::new(cfg).unwrap();
    let requests: Vec<_> = (0..40)
        .map(|i| cache.request_bitmap(&format!("p{i}.png"), None))
        .collect();
    drop(cache);
    let outcomes = common::within(20, "requests after the cache shut down", move || {
        requests.into_iter().map(|r| r.wait()).collect::<Vec<_>>()
    });
    for (i, o) in outcomes.iter().enumerate() {
        match o {
            Ok(bm) => assert_eq!(bm.width(), 256),
            Err(e) if matches!(e.kind(), ErrorKind::Cancelled) => {
                assert_eq!(e.href(), Some(format!("p{i}.png").as_str()))
            }
            Err(e) => panic!("p{i}.png: {e}"),
        }
    }
}

#[cfg(feature = "gpu")]
#[test]
fn texture_requests_upload_on_a_loader_thread() {
    let tmp = tempfile::tempdir().unwrap();
    common::png(tmp.path(), "a.png", 300, 200);
    let Some(cache) = common::gpu_cache(tmp.path(), 64 << 20, 64 << 20, false) else {
        return;
    };
    let mut request = cache.request_texture("a.png", Some((100, 100)));
    cache.wait_prefetch();
    let t = request.try_get().expect("loaded").unwrap();
    assert_eq!((t.width(), t.height()), (100, 67));
    let hits = cache.stats().gpu.hits;
    let again = cache.request_texture("a.png", Some((100, 100)));
    assert!(again.is_ready());
    assert_eq!(cache.stats().gpu.hits, hits + 1);
    let misses = cache.stats().gpu.misses;
    let full = cache.request_texture("a.png", None).wait().unwrap();
    assert_eq!((full.width(), full.height()), (300, 200));
    assert_eq!(
        cache.stats().gpu.misses,
        misses + 1,
        "the full size was not resident"
    );
    match cache.request_texture("nope.png", None).wait() {
        Err(e) if matches!(e.kind(), ErrorKind::NotFound { .. }) => {
            assert_eq!(e.href(), Some("nope.png"))
        }
        other => panic!("{other:?}"),
    }
}
