//! Non-blocking loads: [`Request`], and the promise a loader thread fulfils.

use crate::error::{Error, ErrorKind, Result};
use crate::sync::{Condvar, Mutex};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// A load asked for without blocking: ready now, or pending on a loader thread.
///
/// Non-blocking loads: ask for a picture, get it now if it is resident, or later, without a
/// thread of your own waiting.
///
/// A render loop (an egui pass, a game frame) cannot block on a decode. [`crate::Cache`]'s
/// `request_bitmap` and `request_texture` return a [`Request`] at once: ready with the handle
/// when the picture is resident (a hit, as cheap as [`crate::Cache::bitmap`]'s, allocating
/// nothing), else pending while one of the `loader.threads` background threads (the prefetch
/// pool) loads it. The caller polls it ([`Request::try_get`]), waits for it
/// ([`Request::wait`]), awaits it (it is a [`Future`] that works with any executor), or asks
/// to be called back when it completes ([`Request::on_ready`]); no async runtime is needed.
///
/// A pending request holds the handle from the moment its load finishes until the caller
/// takes it, so the cache cannot evict the picture in between; dropping the request drops
/// the handle. Every waiter learns of the outcome: a failed load is the load's error, a panic
/// inside it [`ErrorKind::LoadPanicked`], and a request the cache shut down before running
/// [`ErrorKind::Cancelled`]: nothing waits for ever.
///
/// ```
/// # fn main() -> texcache::Result<()> {
/// # let dir = std::env::temp_dir().join("texcache-doc-request");
/// # std::fs::create_dir_all(&dir).unwrap();
/// # image::RgbaImage::new(40, 30).save(dir.join("cat.png")).unwrap();
/// let mut config = texcache::Config::default();
/// config.mediadir = dir;
/// let cache = texcache::Cache::new(config)?;
/// let mut request = cache.request_bitmap("cat.png", None);
/// request.on_ready(|| println!("loaded: repaint"));   // on the loader thread
/// // ... draw other things; poll again next frame:
/// let cat = loop {
///     if let Some(result) = request.try_get() {
///         break result?;
///     }
///     cache.wait_prefetch();                          // (a render loop would draw a frame)
/// };
/// assert_eq!((cat.width(), cat.height()), (40, 30));
/// // Now it is resident: the next request is ready at once.
/// assert!(cache.request_bitmap("cat.png", None).is_ready());
/// # Ok(()) }
/// ```
pub struct Request<H> {
    state: State<H>,
}

enum State<H> {
    /// Resolved: the outcome, until taken.
    Ready(Option<Result<H>>),
    /// A loader thread is on it.
    Waiting(Arc<Slot<H>>),
}

/// Where a loader thread leaves the outcome of a pending request.
struct Slot<H> {
    state: Mutex<SlotState<H>>,
    done: Condvar,
    /// The process generation it was made in ([`crate::os::fork`]): in a forked child, the loader
    /// thread that would fill it is the parent's.
    born: u64,
    href: String,
}

struct SlotState<H> {
    outcome: Option<Result<H>>,
    /// The outcome arrived (it may have been taken since).
    finished: bool,
    waker: Option<Waker>,
    callbacks: Vec<Box<dyn FnOnce() + Send>>,
}

impl<H> Request<H> {
    /// In a child forked while this request was pending: its outcome as the parent had it at
    /// the fork if it was there (and its lock free), else `Cancelled`, for no thread here will
    /// ever finish it. Nothing of the parent's is waited for.
    fn settle_if_forked(&mut self) {
        let State::Waiting(slot) = &self.state else {
            return;
        };
        if crate::os::fork::is_ours(slot.born) {
            return;
        }
        let outcome = slot.state.try_lock().and_then(|mut s| s.outcome.take());
        let href = slot.href.clone();
        self.state = State::Ready(Some(
            outcome.unwrap_or(Err(Error::new(href, ErrorKind::Cancelled))),
        ));
    }

    /// A request that is already resolved (a hit, or an error found before any load).
    pub(crate) fn ready(outcome: Result<H>) -> Request<H> {
        Request {
            state: State::Ready(Some(outcome)),
        }
    }

    /// A pending request and the promise its loader fulfils.
    pub(crate) fn pending(href: &str) -> (Request<H>, Promise<H>) {
        let slot = Arc::new(Slot {
            state: Mutex::new(SlotState {
                outcome: None,
                finished: false,
                waker: None,
                callbacks: Vec::new(),
            }),
            done: Condvar::new(),
            born: crate::os::fork::generation(),
            href: href.to_owned(),
        });
        let promise = Promise {
            slot: Some(slot.clone()),
            href: href.to_owned(),
        };
        (
            Request {
                state: State::Waiting(slot),
            },
            promise,
        )
    }

    /// Whether the outcome is there (taken or not): [`Request::try_get`] would not be `None`
    /// for a request not yet taken.
    pub fn is_ready(&self) -> bool {
        match &self.state {
            State::Ready(_) => true,
            State::Waiting(slot) if !crate::os::fork::is_ours(slot.born) => true,
            State::Waiting(slot) => slot.state.lock().finished,
        }
    }

    /// The outcome, once: `Some` when the load has finished (the handle, or why not), `None`
    /// while it is pending, and `None` again after the outcome was taken.
    pub fn try_get(&mut self) -> Option<Result<H>> {
        self.settle_if_forked();
        match &mut self.state {
            State::Ready(outcome) => outcome.take(),
            State::Waiting(slot) => {
                let outcome = slot.state.lock().outcome.take()?;
                self.state = State::Ready(None);
                Some(outcome)
            }
        }
    }

    /// Blocks until the outcome is there and returns it. A request whose outcome was already
    /// taken has nothing more to give: it panics.
    pub fn wait(mut self) -> Result<H> {
        self.settle_if_forked();
        if let State::Waiting(slot) = &self.state {
            let mut state = slot.state.lock();
            while !state.finished {
                slot.done.wait(&mut state);
            }
        }
        self.try_get()
            .expect("Request::wait on a request whose outcome was already taken")
    }

    /// Calls `f` when the outcome is there: on the loader thread that finished the load, or
    /// at once, on this thread, if it is there already. Meant for a wake-up (egui's
    /// `request_repaint`), so it should be short.
    pub fn on_ready(&self, f: impl FnOnce() + Send + 'static) {
        if let State::Waiting(slot) = &self.state {
            if !crate::os::fork::is_ours(slot.born) {
                return f(); // settled as soon as it is asked (see `settle_if_forked`)
            }
            let mut state = slot.state.lock();
            if !state.finished {
                state.callbacks.push(Box::new(f));
                return;
            }
        }
        f();
    }
}

impl<H> Future for Request<H> {
    type Output = Result<H>;

    /// Ready with the outcome once the load finishes (polling again after that panics, as
    /// [`Request::wait`] does).
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<H>> {
        let this = self.get_mut();
        this.settle_if_forked();
        if let State::Waiting(slot) = &this.state {
            let mut state = slot.state.lock();
            if !state.finished {
                match &mut state.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    w => *w = Some(cx.waker().clone()),
                }
                return Poll::Pending;
            }
        }
        Poll::Ready(
            this.try_get()
                .expect("Request polled after it returned its outcome"),
        )
    }
}

// A `Request` is only a handle on its outcome: moving it is always fine.
impl<H> Unpin for Request<H> {}

impl<H> std::fmt::Debug for Request<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_ready() {
            "Request(ready)"
        } else {
            "Request(pending)"
        })
    }
}

/// The loader's side of a pending [`Request`]: fulfilled once, or, if dropped without that
/// (the job never ran, or its load panicked), the request gets an error: never a waiter left
/// waiting.
pub(crate) struct Promise<H> {
    slot: Option<Arc<Slot<H>>>,
    href: String,
}

impl<H> Promise<H> {
    /// The href the request is for.
    pub(crate) fn href(&self) -> &str {
        &self.href
    }

    /// Hands `outcome` to the request and calls whoever asked to be told.
    pub(crate) fn fulfil(mut self, outcome: Result<H>) {
        if let Some(slot) = self.slot.take() {
            Self::deliver(&slot, outcome);
        }
    }

    fn deliver(slot: &Slot<H>, outcome: Result<H>) {
        let (waker, callbacks) = {
            let mut state = slot.state.lock();
            state.outcome = Some(outcome);
            state.finished = true;
            (state.waker.take(), std::mem::take(&mut state.callbacks))
        };
        slot.done.notify_all();
        // Outside the lock: a callback may poll the request.
        if let Some(w) = waker {
            w.wake();
        }
        for f in callbacks {
            f();
        }
    }
}

impl<H> Drop for Promise<H> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            let href = std::mem::take(&mut self.href);
            let error = if std::thread::panicking() {
                Error::new(
                    href,
                    ErrorKind::LoadPanicked {
                        message: "the loader thread panicked".into(),
                    },
                )
            } else {
                Error::new(href, ErrorKind::Cancelled)
            };
            Self::deliver(&slot, Err(error));
        }
    }
}
