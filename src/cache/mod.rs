//! The cache an application embeds: hrefs in, shared handles out.
//!
//! [`Cache`] ties the pieces together: the key [`Resolver`], the CPU tier of decoded
//! [`Bitmap`]s, the GPU tier of textures, prefetch threads, and the stats snapshot. It is
//! cheap to clone (one `Arc`) and `Send + Sync`; handles may outlive it.

mod pool;
pub(crate) mod record;
mod request;

pub use request::Request;

use self::pool::{Pool, Runner};
use self::record::Recorder;
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
#[cfg(feature = "gpu")]
use crate::gpu::{Gpu, Texture};
use crate::key::{Key, Resolver};
use crate::observe::control::{error_json, Server};
use crate::observe::history::{History, Sample};
use crate::observe::pressure::PressureLevel;
use crate::observe::stats::{self, ProcessStats, Stats, TierStats};
use crate::picture::bitmap::{Bitmap, Destination};
use crate::sync::Mutex;
use crate::tier::{Handle, Tier, TierKind};
use crate::video::{self, VideoNode};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// A shared handle to a decoded bitmap.
pub type BitmapHandle = Handle<Bitmap>;
/// A shared handle to a texture.
#[cfg(feature = "gpu")]
pub type TextureHandle = Handle<Texture>;

// Handles and tiers cross threads (§3.10); keep that a compile-time fact.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<BitmapHandle>();
    #[cfg(feature = "gpu")]
    send_sync::<TextureHandle>();
    send_sync::<Tier<Bitmap>>();
};

/// What the GPU tier holds: textures.
#[cfg(feature = "gpu")]
type GpuResource = Texture;
/// What the GPU tier holds when texcache is built without the `gpu` feature: nothing, ever.
/// The tier still exists, so its budget, stats, `trim`, `remove` and trace recording behave as
/// for an empty GPU tier.
#[cfg(not(feature = "gpu"))]
type GpuResource = NoTexture;

/// A texture that cannot exist (built without the `gpu` feature).
#[cfg(not(feature = "gpu"))]
pub(crate) enum NoTexture {}

#[cfg(not(feature = "gpu"))]
impl crate::tier::Resource for NoTexture {
    fn bytes(&self) -> u64 {
        match *self {}
    }
    fn dimensions(&self) -> (u32, u32) {
        match *self {}
    }
    fn format(&self) -> stats::PixelFormat {
        match *self {}
    }
}

/// The two-tier image cache.
///
/// ```
/// # fn main() -> texcache::Result<()> {
/// let dir = std::env::temp_dir().join("texcache-doc-cache");
/// std::fs::create_dir_all(&dir).unwrap();
/// image::RgbaImage::new(4, 4).save(dir.join("a.png")).unwrap();
///
/// let mut cfg = texcache::Config::default();
/// cfg.mediadir = dir;
/// let cache = texcache::Cache::new(cfg)?;
/// let a = cache.bitmap("a.png")?;        // miss: read and decode
/// let b = cache.bitmap("./a.png")?;      // hit: the same pixels
/// assert!(texcache::Handle::ptr_eq(&a, &b));
/// assert_eq!(cache.stats().cpu.used, 4 * 4 * 4);
/// drop((a, b));                          // unused now, still cached
/// assert_eq!(cache.stats().cpu.unused, 64);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Cache {
    /// Shared by the application's clones of this cache only (not by texcache's own threads):
    /// the last of them to drop shuts the cache down on the application's thread. Declared
    /// first, so it drops while `inner` is still held.
    _owner: Option<Arc<Owner>>,
    inner: Arc<Inner>,
}

/// The application's hold on a cache. texcache's background threads (history sampler, control
/// socket, prefetch) hold the cache only weakly, upgrading it for a moment of work; if the
/// application let go meanwhile, the last strong reference would be one of theirs and the
/// shutdown (the trace's last lines, the socket file's removal) would run on that thread,
/// where a process that exits right after dropping its cache would cut it off. So the shutdown
/// runs here, when the application's last clone drops, before `drop` returns.
///
/// In a child forked from the process that made the cache, the owner also holds the child's
/// own cache (see [`crate::os::fork`]), made on the first use there.
struct Owner {
    inner: Weak<Inner>,
    /// The cache of a forked child (a leaked `Box<Arc<Inner>>`), or null. Replaced only when
    /// the process generation changes, so a reference to the one before stays valid (that one
    /// is the parent's and is never freed in the child).
    forked: AtomicPtr<Arc<Inner>>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        let forked = *self.forked.get_mut();
        // SAFETY: a non-null `forked` came from `Box::into_raw` in `Cache::forked` and is
        // dropped only here; one made in another generation (an ancestor's) is left alone.
        if !forked.is_null() && unsafe { (*forked).is_ours() } {
            // SAFETY: as above; this is the one place it is freed.
            let child = unsafe { Box::from_raw(forked) };
            child.shut_down();
        }
        if let Some(inner) = self.inner.upgrade() {
            if inner.is_ours() {
                inner.shut_down();
            }
        }
    }
}

pub(crate) struct Inner {
    /// The process generation this cache was made in ([`crate::os::fork`]).
    born: u64,
    config: Mutex<Config>,
    /// The config this cache was made with (for a forked child's cache, see `forked`).
    made_with: Config,
    resolver: Resolver,
    /// Canonical mediadir when `confine` is on.
    confine_root: Option<PathBuf>,
    max_pixels: AtomicU64,
    /// `loader.orientation`.
    orientation: std::sync::atomic::AtomicBool,
    /// A fitted request was made: `remove` looks for fitted sizes too.
    any_fitted: std::sync::atomic::AtomicBool,
    cpu: Tier<Bitmap>,
    gpu: Tier<GpuResource>,
    /// The device textures are uploaded to: the application's, or one opened lazily.
    #[cfg(feature = "gpu")]
    device: Mutex<Option<Arc<Gpu>>>,
    prefetch: Pool<Job>,
    /// Open video nodes, for the stats.
    videos: Mutex<Vec<Weak<video::Shared>>>,
    /// The control socket, when `stats.socket` is set (dropped first, see `Drop`).
    control: Mutex<Option<Server>>,
    /// The shared tier's server, when `shared.socket` is set or [`Cache::share`] was called.
    shared: Mutex<Option<crate::shared::owner::Owner>>,
    /// Whether decoded bitmaps go to shared memory (once this cache shares its tier).
    sharing: std::sync::atomic::AtomicBool,
    /// The trace recording, when `stats.trace` is set or [`Cache::record_trace`] was called.
    recorder: Mutex<Option<Recorder>>,
    /// Memory over time (shared with the sampler thread).
    history: Arc<History>,
    /// Memory-pressure counters and the watcher's status (§6 `pressure`).
    pressure: PressureCounters,
}

#[derive(Default)]
struct PressureCounters {
    events: AtomicU64,
    trimmed_bytes: AtomicU64,
    gpu_retries: AtomicU64,
    gpu_retry_evicted_bytes: AtomicU64,
    watcher: std::sync::OnceLock<String>,
}

/// A job of the loader pool ([`pool`]).
enum Job {
    /// Acquire an href ahead, in one tier (fitted into a box), and let go of it.
    Prefetch(TierKind, String, Option<(u32, u32)>),
    /// Acquire for a pending request and hand it the outcome (the closure owns the request's
    /// promise; dropped unrun, the promise tells the request it was cancelled).
    Request(Box<dyn FnOnce(&Cache) + Send>),
}

/// A weak reference to a cache, for texcache's own threads (control socket, prefetch pool):
/// upgraded for a moment of work, it never keeps the cache alive, and what it upgrades to is
/// not an owner (see [`Owner`]).
#[derive(Clone)]
pub(crate) struct WeakCache(Weak<Inner>);

impl WeakCache {
    /// The cache, if it is still alive.
    pub(crate) fn upgrade(&self) -> Option<Cache> {
        self.0.upgrade().map(Cache::from_inner)
    }
}

impl crate::shared::owner::Backend for WeakCache {
    fn bitmap(&self, href: &str, fit: Option<(u32, u32)>) -> Option<Result<BitmapHandle>> {
        let cache = self.upgrade()?;
        let acquire = |cache: &Cache| match fit {
            None => cache.bitmap(href),
            Some((w, h)) => cache.bitmap_fit(href, w, h),
        };
        Some(match acquire(&cache) {
            // Decoded before this cache shared its tier: loaded again, into shared memory.
            Ok(h) if h.shared().is_none() => {
                drop(h);
                cache.remove(href);
                acquire(&cache)
            }
            other => other,
        })
    }

    fn prefetch(&self, hrefs: Vec<String>, fit: Option<(u32, u32)>) -> Option<Result<()>> {
        Some(self.upgrade()?.prefetch(hrefs, fit))
    }

    fn remove(&self, href: &str) -> Option<bool> {
        Some(self.upgrade()?.remove(href))
    }

    fn stats_json(&self) -> Option<String> {
        Some(self.upgrade()?.stats().to_json())
    }
}

/// The blocking acquire a request's loader thread runs: the cache, the href, the fit.
type BlockingAcquire<R> = fn(&Cache, &str, Option<(u32, u32)>) -> Result<Handle<R>>;

impl Cache {
    /// A cache configured by `config`.
    pub fn new(mut config: Config) -> Result<Cache> {
        config.validate("<config>")?;
        config.resolve_budget(Path::new("/"), "<config>")?;
        let resolver = Resolver::new(&config.mediadir);
        let confine_root = if config.confine {
            Some(std::fs::canonicalize(resolver.mediadir()).map_err(|e| {
                Error::from(ErrorKind::Config {
                    file: PathBuf::from("<config>"),
                    line: None,
                    message: format!("mediadir {}: {e}", resolver.mediadir().display()),
                })
            })?)
        } else {
            None
        };
        let stats = config.stats.clone();
        let shared_socket = config.shared.socket.clone();
        let inner = Inner::start(config, resolver, confine_root);
        let cache = Cache {
            _owner: Some(Arc::new(Owner {
                inner: Arc::downgrade(&inner),
                forked: AtomicPtr::new(std::ptr::null_mut()),
            })),
            inner,
        };
        if !stats.trace.as_os_str().is_empty() {
            cache.record_trace(&stats.trace)?;
        }
        if !stats.socket.as_os_str().is_empty() {
            cache.serve(&stats.socket)?;
        }
        if !shared_socket.as_os_str().is_empty() {
            cache.share(&shared_socket)?;
        }
        Inner::start_sampling(&cache.inner)?;
        Ok(cache)
    }

    /// The cache this handle works on: the one it was made with, or, in a child forked since
    /// (the application's own clones only), the child's own ([`crate::os::fork`]).
    #[inline]
    fn inner(&self) -> &Arc<Inner> {
        if !crate::os::fork::forked() || self.inner.is_ours() {
            return &self.inner;
        }
        self.forked()
    }

    /// The child's own cache, made on first use after a fork (see [`Owner`]).
    #[cold]
    fn forked(&self) -> &Arc<Inner> {
        let Some(owner) = &self._owner else {
            // A clone of texcache's own threads, which do not exist in a child.
            return &self.inner;
        };
        loop {
            let current = owner.forked.load(Ordering::Acquire);
            // SAFETY: a non-null pointer is a leaked `Box<Arc<Inner>>` that is freed only by
            // `Owner::drop` (which `&self` rules out) and never freed while replaced.
            if !current.is_null() && unsafe { (*current).is_ours() } {
                // SAFETY: as above: it lives as long as `owner`, which outlives `&self`.
                return unsafe { &*current };
            }
            let parent: &Inner = if current.is_null() {
                &self.inner
            } else {
                // SAFETY: as above.
                unsafe { &*current }
            };
            let child = Box::into_raw(Box::new(parent.forked()));
            match owner
                .forked
                .compare_exchange(current, child, Ordering::AcqRel, Ordering::Acquire)
            {
                // The pointer replaced (if any) is an ancestor's, never freed here.
                Ok(_) => {
                    // The parent's cache stays alive in the child, so that its `Drop` (which
                    // would join threads the child does not have) never runs here.
                    std::mem::forget(self.inner.clone());
                    // SAFETY: just stored; see above.
                    return unsafe { &*child };
                }
                // Another thread of the child made one first: ours was never shared.
                // SAFETY: `child` came from `Box::into_raw` above and was not stored.
                Err(_) => drop(unsafe { Box::from_raw(child) }),
            }
        }
    }

    /// Takes a memory sample now and appends it to the history (the sampler thread calls this
    /// every `stats.history_interval_ms`; an application may call it whenever it likes, e.g.
    /// once a frame). Returns the sample.
    pub fn sample_history(&self) -> Sample {
        let h = &self.inner().history;
        let sample = self.stats().sample(h.now_ms());
        h.push(sample);
        sample
    }

    /// The memory history, oldest sample first (at most `stats.history_length` samples).
    ///
    /// ```
    /// let cache = texcache::Cache::with_defaults();
    /// let s = cache.sample_history();
    /// assert_eq!(s.cpu_budget, 256 << 20);
    /// assert_eq!(cache.history().last(), Some(&s));
    /// ```
    pub fn history(&self) -> Vec<Sample> {
        self.inner().history.samples()
    }

    /// The §6 snapshot with the `history` array.
    pub fn stats_with_history(&self) -> Stats {
        let mut s = self.stats();
        s.history = Some(self.history());
        s
    }

    /// Records this cache's operations as a §7 trace at `path` (created or truncated),
    /// ending the recording in progress, if any. `Cache::new` does this for `stats.trace`.
    /// Entries already resident are named, so hits on them are written; a replay starts from
    /// an empty cache, though, so a trace recorded from the start replays most faithfully.
    ///
    /// ```
    /// # fn main() -> texcache::Result<()> {
    /// # let dir = std::env::temp_dir().join("texcache-doc-record");
    /// # std::fs::create_dir_all(&dir).unwrap();
    /// # image::RgbaImage::new(2, 2).save(dir.join("a.png")).unwrap();
    /// let mut config = texcache::Config::default();
    /// config.mediadir = dir.clone();
    /// let cache = texcache::Cache::new(config)?;
    /// cache.record_trace(&dir.join("app.trace"))?;
    /// drop(cache.bitmap("a.png")?);
    /// cache.flush_trace()?;
    /// let trace = std::fs::read_to_string(dir.join("app.trace")).unwrap();
    /// assert!(trace.contains("bitmap b2 a.png\nrelease b2\n"));
    /// # Ok(()) }
    /// ```
    pub fn record_trace(&self, path: &Path) -> Result<()> {
        let mut recorder = self.inner().recorder.lock();
        if let Some(old) = recorder.take() {
            old.finish()?;
        }
        let (cpu, gpu) = (&self.inner().cpu, &self.inner().gpu);
        *recorder = Some(Recorder::start(
            path,
            Arc::new(cpu.log_ref()),
            Arc::new(gpu.log_ref()),
            |c, g| {
                cpu.start_log(c);
                gpu.start_log(g);
            },
        )?);
        Ok(())
    }

    /// Writes the trace recorded so far to its file. Errors: the first write error (the
    /// recording stopped there).
    pub fn flush_trace(&self) -> Result<()> {
        match &*self.inner().recorder.lock() {
            Some(r) => r.flush(),
            None => Ok(()),
        }
    }

    /// Ends the trace recording: writes the rest and closes the file.
    pub fn stop_trace(&self) -> Result<()> {
        match self.inner().recorder.lock().take() {
            Some(r) => r.finish(),
            None => Ok(()),
        }
    }

    /// A weak reference for texcache's own threads.
    pub(crate) fn downgrade(&self) -> WeakCache {
        WeakCache(Arc::downgrade(self.inner()))
    }

    /// A cache for texcache's own threads, from a reference they upgraded: not an owner (see
    /// [`Owner`]).
    pub(crate) fn from_inner(inner: Arc<Inner>) -> Cache {
        Cache {
            _owner: None,
            inner,
        }
    }

    /// Serves the control socket (§9) at `path`, replacing the one served before, if any.
    /// `Cache::new` does this for `stats.socket`.
    pub fn serve(&self, path: &Path) -> Result<()> {
        let mut control = self.inner().control.lock();
        *control = None;
        let cache = self.downgrade();
        let handler = Box::new(move |line: &str| cache.upgrade().map(|c| c.answer(line)));
        *control = Some(Server::start(path, handler)?);
        Ok(())
    }

    /// Shares this cache's CPU tier with the other processes of the machine (§12), serving
    /// their [`crate::shared::connect`] at `path` (mode 0600; a stale socket there is replaced,
    /// anything else left alone and reported), instead of the socket shared before, if any.
    /// `Cache::new` does this for `shared.socket`.
    ///
    /// From then on every picture this cache decodes goes to shared memory (a sealed `memfd`
    /// per picture, which clients map read-only). A picture decoded before, still resident when
    /// a client asks for it, is removed and loaded again into shared memory.
    pub fn share(&self, path: &Path) -> Result<()> {
        let inner = self.inner();
        // The server shared before goes first (outside the lock: its client threads may be
        // waiting for it, to reconcile).
        let old = inner.shared.lock().take();
        drop(old);
        inner.sharing.store(true, Ordering::Relaxed);
        let backend: Arc<dyn crate::shared::owner::Backend> = Arc::new(self.downgrade());
        let owner = crate::shared::owner::Owner::start(path, backend)?;
        *inner.shared.lock() = Some(owner);
        Ok(())
    }

    /// The answer to one request line of the control socket (§9).
    pub(crate) fn answer(&self, request: &str) -> String {
        let words: Vec<&str> = request.split_whitespace().collect();
        match words.as_slice() {
            ["stats"] => self.stats().to_json(),
            ["stats", "entries"] => self.stats_with_entries().to_json(),
            ["stats", "history"] => self.stats_with_history().to_json(),
            ["trim", tier, size @ ..] if !size.is_empty() => {
                let tier = match *tier {
                    "cpu" => TierKind::Cpu,
                    "gpu" => TierKind::Gpu,
                    other => return error_json(&format!("unknown tier {other:?} (cpu or gpu)")),
                };
                match size.join(" ").parse::<crate::units::ByteSize>() {
                    Ok(b) => serde_json::to_string(&self.trim(tier, b.0)).expect("serialise"),
                    Err(e) => error_json(&format!("bad size: {e}")),
                }
            }
            [] => error_json("empty request (try `stats`)"),
            _ => error_json(&format!(
                "unknown request {:?} (stats | stats entries | stats history | trim cpu|gpu SIZE)",
                request.chars().take(64).collect::<String>()
            )),
        }
    }

    /// A cache on the built-in defaults (`config/texcache.toml`).
    pub fn with_defaults() -> Cache {
        Cache::new(Config::default()).expect("the defaults are valid")
    }

    /// A cache configured by the file named in `TEXCACHE_CONFIG`, or the defaults.
    pub fn from_env() -> Result<Cache> {
        Cache::new(Config::from_env_or_default()?)
    }

    /// The configuration in force (budgets reflect runtime changes).
    pub fn config(&self) -> Config {
        self.inner().config.lock().clone()
    }

    /// The key `href` maps to (no I/O).
    pub fn key(&self, href: &str) -> Key {
        let r = &self.inner().resolver;
        r.key(&r.lookup(href))
    }

    /// Acquires the decoded bitmap of `href` (§3.1).
    ///
    /// Inlined into the caller (the miss is not): a call would hand the handle back through
    /// memory, as a `Result` with an error is too big for registers, and reading it back
    /// from there waits for every store of the hit to land first.
    #[inline]
    pub fn bitmap(&self, href: &str) -> Result<BitmapHandle> {
        self.inner().bitmap(href, true)
    }

    /// Acquires `href` fitted into a `width`x`height` box (§1): the picture upright, scaled
    /// down (never up) keeping its aspect ratio, with a filter. A fitted request is its own
    /// entry, counted at its fitted size; JPEGs decode at 1/2, 1/4 or 1/8 scale first, so the
    /// full-size picture is never held. A hit is as cheap as [`Cache::bitmap`]'s and allocates
    /// nothing.
    ///
    /// ```
    /// # fn main() -> texcache::Result<()> {
    /// # let dir = std::env::temp_dir().join("texcache-doc-fit");
    /// # std::fs::create_dir_all(&dir).unwrap();
    /// # image::RgbaImage::new(300, 200).save(dir.join("wide.png")).unwrap();
    /// let mut config = texcache::Config::default();
    /// config.mediadir = dir;
    /// let cache = texcache::Cache::new(config)?;
    /// let thumb = cache.bitmap_fit("wide.png", 64, 64)?;
    /// assert_eq!((thumb.width(), thumb.height()), (64, 43));
    /// assert_eq!(cache.stats().cpu.used, 64 * 43 * 4);
    /// # Ok(()) }
    /// ```
    pub fn bitmap_fit(&self, href: &str, width: u32, height: u32) -> Result<BitmapHandle> {
        self.inner().bitmap_fit(href, (width, height), true)
    }

    #[cfg(feature = "gpu")]
    /// Acquires the texture of `href` (§3.8): a GPU hit, or a GPU miss that acquires the
    /// bitmap through the CPU tier, uploads it and drops the bitmap handle. The device is the
    /// one bound with [`Cache::bind_gpu`], else one opened from `gpu.backend` on first use.
    /// Inlined into the caller, as [`Cache::bitmap`] is.
    #[inline]
    pub fn texture(&self, href: &str) -> Result<TextureHandle> {
        self.inner().texture(href)
    }

    #[cfg(feature = "gpu")]
    /// Acquires the texture of `href` fitted into a `width`x`height` box (§1, §3.9): uploaded
    /// from the fitted bitmap of the same box, through the CPU tier as [`Cache::texture`] does.
    pub fn texture_fit(&self, href: &str, width: u32, height: u32) -> Result<TextureHandle> {
        self.inner().texture_fit(href, (width, height))
    }

    /// Opens a video node for `href` (§4), stopped: only the header is read. It decodes
    /// with a thread and a queue of `video.queue_length` frames when `video.threaded`, else on
    /// demand; its memory shows in the `video` section of the stats. Video files are not
    /// cached: every node has its own source, queue and texture.
    pub fn video(&self, href: &str) -> Result<VideoNode> {
        let inner = self.inner();
        let key = self.key(href);
        inner.check_inside(href, &key)?;
        let (threaded, queue_length, decoder_threads) = {
            let cfg = inner.config.lock();
            let v = &cfg.video;
            (v.threaded, v.queue_length, v.decoder_threads)
        };
        let options = video::SourceOptions {
            max_pixels: inner.max_pixels.load(Ordering::Relaxed),
            decoder_threads,
        };
        let node = VideoNode::open(
            href,
            key.path().to_path_buf(),
            inner.confine_root.clone(),
            threaded,
            queue_length,
            options,
        )?;
        let mut videos = inner.videos.lock();
        videos.retain(|w| w.strong_count() > 0);
        videos.push(Arc::downgrade(node.shared()));
        Ok(node)
    }

    #[cfg(feature = "gpu")]
    /// The device texcache has uploaded with, if one is bound or was opened (never opens one).
    pub fn gpu_if_open(&self) -> Option<Arc<Gpu>> {
        self.inner().device.lock().clone()
    }

    #[cfg(feature = "gpu")]
    /// Binds the GPU tier to an application's device (or a new one after a device loss).
    ///
    /// Binding a different device than the one bound before flushes the GPU tier: every
    /// texture of the old device leaves the cache (unused ones are destroyed now; those still
    /// held stay valid, on the old device, until their last handle drops), so no hit ever
    /// returns a texture of a device that is gone. New uploads go to `gpu`. Binding the same
    /// device again changes nothing.
    pub fn bind_gpu(&self, gpu: Arc<Gpu>) {
        let mut device = self.inner().device.lock();
        let same = device.as_ref().is_some_and(|d| Arc::ptr_eq(d, &gpu));
        *device = Some(gpu);
        drop(device);
        if !same {
            self.inner().gpu.remove_all();
        }
    }

    #[cfg(feature = "gpu")]
    /// The device the GPU tier uploads to, opening one from `gpu.backend` if none is bound.
    pub fn gpu(&self) -> Result<Arc<Gpu>> {
        self.inner().gpu_device("<device>")
    }

    /// Acquires `href` only if it is already decoded; never loads, counts a hit when it is.
    pub fn bitmap_if_resident(&self, href: &str) -> Option<BitmapHandle> {
        let lookup = self.inner().resolver.lookup(href);
        self.inner().cpu.get_resident(&lookup)
    }

    /// Queues `hrefs` to be decoded by the `loader.threads` background threads, without holding
    /// handles: they end up cached as unused, ready for a hit. Failures to load are counted,
    /// not reported. See [`Cache::wait_prefetch`].
    ///
    /// The threads start on the first call. If the system refuses some of them
    /// (`ErrorKind::Thread`), the cache goes on with those that started and this call
    /// returns the error after queuing its work to them; if it refuses all of them, nothing is queued and
    /// the next call tries again.
    pub fn prefetch<I, S>(&self, hrefs: I, fit: Option<(u32, u32)>) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.prefetch_in(TierKind::Cpu, hrefs, fit)
    }

    #[cfg(feature = "gpu")]
    /// Like [`Cache::prefetch`], for textures (fitted into `fit`, if given): the background
    /// threads decode (through the CPU tier, §3.8) and upload, so the render thread later finds
    /// them resident. A thread asking for a resident texture never waits for these uploads:
    /// loads run outside the tier lock.
    pub fn prefetch_textures<I, S>(&self, hrefs: I, fit: Option<(u32, u32)>) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.prefetch_in(TierKind::Gpu, hrefs, fit)
    }

    fn prefetch_in<I, S>(&self, tier: TierKind, hrefs: I, fit: Option<(u32, u32)>) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let jobs = hrefs
            .into_iter()
            .map(|h| Job::Prefetch(tier, h.into(), fit));
        self.queue_jobs(jobs)
    }

    /// Asks for the bitmap of `href` (fitted into `fit`, if given) without blocking: a
    /// [`Request`] ready at once with the handle when it is resident (a hit, which allocates
    /// nothing), else pending while a loader thread (`loader.threads`, the prefetch pool)
    /// loads it. See [`Request`].
    pub fn request_bitmap(&self, href: &str, fit: Option<(u32, u32)>) -> Request<BitmapHandle> {
        self.request(&self.inner().cpu, href, fit, |cache, href, fit| match fit {
            None => cache.bitmap(href),
            Some((w, h)) => cache.bitmap_fit(href, w, h),
        })
    }

    #[cfg(feature = "gpu")]
    /// Asks for the texture of `href` (fitted into `fit`, if given) without blocking, as
    /// [`Cache::request_bitmap`] does for bitmaps: ready at once on a GPU hit, else pending
    /// while a loader thread decodes (through the CPU tier, §3.8) and uploads it.
    pub fn request_texture(&self, href: &str, fit: Option<(u32, u32)>) -> Request<TextureHandle> {
        self.request(&self.inner().gpu, href, fit, |cache, href, fit| match fit {
            None => cache.texture(href),
            Some((w, h)) => cache.texture_fit(href, w, h),
        })
    }

    /// A request in `tier`: ready on a hit, else `load` (the blocking acquire) queued for a
    /// loader thread, its outcome handed to the request.
    fn request<R: crate::tier::Resource + Send + Sync + 'static>(
        &self,
        tier: &Tier<R>,
        href: &str,
        fit: Option<(u32, u32)>,
        load: BlockingAcquire<R>,
    ) -> Request<Handle<R>> {
        if let Some(hit) = self.inner().resident(tier, href, fit) {
            return Request::ready(Ok(hit));
        }
        let (request, promise) = Request::pending(href);
        self.queue_request(Box::new(move |cache: &Cache| {
            let outcome = load(cache, promise.href(), fit);
            promise.fulfil(outcome);
        }));
        request
    }

    /// Queues a request's load. If no loader thread can start, the job is dropped unrun and
    /// its promise tells the request ([`ErrorKind::Cancelled`]).
    fn queue_request(&self, run: Box<dyn FnOnce(&Cache) + Send>) {
        let _ = self.queue_jobs(std::iter::once(Job::Request(run)));
    }

    /// Queues jobs to the loader pool, starting its threads first if none run. The threads
    /// hold the cache weakly: each job upgrades it, and a thread ends once the cache is gone.
    fn queue_jobs(&self, jobs: impl Iterator<Item = Job>) -> Result<()> {
        let threads = self.inner().config.lock().loader.threads;
        let runner = || -> Runner<Job> {
            let cache = self.downgrade();
            Arc::new(move |job| match cache.upgrade() {
                Some(cache) => {
                    cache.run(job);
                    true
                }
                None => false,
            })
        };
        self.inner().prefetch.queue(runner, threads, jobs)
    }

    /// Runs one job of the loader pool. A prefetch drops its handle at once: the entry stays
    /// cached as unused, ready for a hit; a failure is counted, not reported.
    fn run(&self, job: Job) {
        let (tier, href, fit) = match job {
            Job::Prefetch(tier, href, fit) => (tier, href, fit),
            Job::Request(run) => return run(self),
        };
        let _ = match (tier, fit) {
            (TierKind::Cpu, None) => self.bitmap(&href).map(drop),
            (TierKind::Cpu, Some((w, h))) => self.bitmap_fit(&href, w, h).map(drop),
            #[cfg(feature = "gpu")]
            (TierKind::Gpu, None) => self.texture(&href).map(drop),
            #[cfg(feature = "gpu")]
            (TierKind::Gpu, Some((w, h))) => self.texture_fit(&href, w, h).map(drop),
            // Only `Cache::prefetch_textures` queues these, and it needs the `gpu` feature.
            #[cfg(not(feature = "gpu"))]
            (TierKind::Gpu, _) => Ok(()),
        };
    }

    /// Blocks until every prefetch queued so far has finished.
    pub fn wait_prefetch(&self) {
        self.inner().prefetch.wait();
    }

    /// §3.5: removes `href` from both tiers. Returns whether anything was resident.
    pub fn remove(&self, href: &str) -> bool {
        let lookup = self.inner().resolver.lookup(href);
        // Recorded once: a trace's `remove` applies to both tiers and every size.
        let mut removed = self.inner().gpu.remove_as(&lookup, false);
        removed |= self.inner().cpu.remove_as(&lookup, true);
        // Every fitted size too (§1): a pass over the entries, once any fitted request was made.
        if self.inner().any_fitted.load(Ordering::Relaxed) {
            removed |= self.inner().gpu.remove_fitted(&lookup);
            removed |= self.inner().cpu.remove_fitted(&lookup);
        }
        // Clients of this shared cache ask again, and get the picture loaded afresh (§12).
        if self.inner().sharing.load(Ordering::Relaxed) {
            if let Some(owner) = self.inner().shared.lock().as_ref() {
                owner.invalidate();
            }
        }
        removed
    }

    /// §3.6: evicts unused entries of `tier` until it uses at most `bytes`.
    pub fn trim(&self, tier: TierKind, bytes: u64) -> TierStats {
        self.inner().reconcile_clients();
        match tier {
            TierKind::Cpu => self.inner().cpu.trim(bytes),
            TierKind::Gpu => self.inner().gpu.trim(bytes),
        }
    }

    /// §3.7: changes a tier's budget at runtime; shrinking evicts at once.
    pub fn set_budget(&self, tier: TierKind, bytes: u64) -> TierStats {
        self.inner().reconcile_clients();
        let mut cfg = self.inner().config.lock();
        match tier {
            TierKind::Cpu => {
                cfg.cpu.budget.0 = bytes;
                drop(cfg);
                self.inner().cpu.set_budget(bytes)
            }
            TierKind::Gpu => {
                cfg.gpu.budget.0 = bytes;
                drop(cfg);
                self.inner().gpu.set_budget(bytes)
            }
        }
    }

    /// Re-reads a config file and applies what can change at runtime: budgets, `max_entries`,
    /// `loader.max_pixels` and `loader.orientation` (for pictures loaded from then on). (`mediadir`, `confine`, the GPU backend and the socket take effect
    /// in a new cache.)
    pub fn reload_config(&self, file: impl AsRef<Path>) -> Result<()> {
        let new = Config::load(file)?;
        self.inner()
            .max_pixels
            .store(new.loader.max_pixels, Ordering::Relaxed);
        self.inner()
            .orientation
            .store(new.loader.orientation, Ordering::Relaxed);
        self.inner().cpu.set_max_entries(new.cpu.max_entries);
        self.inner().cpu.set_budget(new.cpu.budget.0);
        self.inner().gpu.set_max_entries(new.gpu.max_entries);
        self.inner().gpu.set_budget(new.gpu.budget.0);
        let mut cfg = self.inner().config.lock();
        cfg.cpu = new.cpu;
        cfg.gpu.budget = new.gpu.budget;
        cfg.gpu.max_entries = new.gpu.max_entries;
        cfg.gpu.keep_cpu_copy = new.gpu.keep_cpu_copy;
        cfg.loader = new.loader;
        Ok(())
    }

    /// Gives memory back as memory pressure at `level` asks (what the PSI watcher does when a
    /// trigger fires, for applications with a low-memory signal of their own): trims half of
    /// the CPU tier's unused bytes on [`PressureLevel::Some`], all of them on
    /// [`PressureLevel::Full`]. Entries in use are never touched; the trimmed entries count as
    /// evictions. Returns the bytes trimmed.
    ///
    /// ```
    /// # let cache = texcache::Cache::with_defaults();
    /// use texcache::observe::pressure::PressureLevel;
    /// assert_eq!(cache.on_memory_pressure(PressureLevel::Full), 0); // nothing unused yet
    /// assert_eq!(cache.stats().pressure.events, 1);
    /// ```
    pub fn on_memory_pressure(&self, level: PressureLevel) -> u64 {
        self.inner().trim_for_pressure(level)
    }

    /// The CPU tier itself, for tests and benches that fill it without decoding or read its
    /// entries in order (feature `samples`: applications use [`Cache::stats_with_entries`]).
    #[cfg(feature = "samples")]
    pub fn cpu_tier(&self) -> &Tier<Bitmap> {
        &self.inner().cpu
    }

    /// The GPU tier itself, as [`Cache::cpu_tier`] (feature `samples`).
    #[cfg(all(feature = "samples", feature = "gpu"))]
    pub fn gpu_tier(&self) -> &Tier<Texture> {
        &self.inner().gpu
    }

    /// One tier's counters (§6): what [`Cache::stats`] reports for it, without the rest.
    pub fn tier_stats(&self, tier: TierKind) -> TierStats {
        match tier {
            TierKind::Cpu => self.inner().cpu.stats(),
            TierKind::Gpu => self.inner().gpu.stats(),
        }
    }

    /// The §6 snapshot (no entries).
    pub fn stats(&self) -> Stats {
        self.inner().reconcile_clients();
        let mut v = stats::VideoStats::default();
        for n in self.video_nodes() {
            v.nodes += 1;
            v.playing += (n.state == video::State::Playing) as u64;
            v.queued_frames += n.queued_frames;
            v.cpu_bytes += n.cpu_bytes;
            v.gpu_bytes += n.gpu_bytes;
            v.decoder_bytes += n.decoder_bytes;
        }
        let shared = self.inner().shared.lock().as_ref().map(|o| o.stats());
        let mut cpu = TierStats {
            budget_percent: self.inner().config.lock().cpu.budget.1,
            ..self.inner().cpu.stats()
        };
        // The hits shared-cache clients served themselves are this tier's hits too (§12).
        cpu.hits += shared.as_ref().map_or(0, |s| s.client_hits);
        Stats {
            cpu,
            gpu: self.inner().gpu.stats(),
            video: v,
            pressure: self.inner().pressure.stats(),
            process: ProcessStats {
                rss: stats::process_rss(),
            },
            entries: None,
            history: None,
            shared,
        }
    }

    /// The §6 snapshot with the `entries` array.
    pub fn stats_with_entries(&self) -> Stats {
        let mut s = self.stats();
        let all = self
            .inner
            .cpu
            .entries()
            .into_iter()
            .chain(self.inner().gpu.entries());
        let mut entries: Vec<stats::Entry> = all.map(stats::Entry::Cached).collect();
        entries.extend(
            self.video_nodes()
                .into_iter()
                .map(|n| stats::Entry::Video(stats::VideoEntry::of(n))),
        );
        s.entries = Some(entries);
        s
    }

    /// A snapshot of every open video node.
    pub fn video_nodes(&self) -> Vec<video::NodeStats> {
        let videos = self.inner().videos.lock().clone();
        videos
            .iter()
            .filter_map(Weak::upgrade)
            .map(|n| n.stats())
            .collect()
    }
}

impl Inner {
    /// A cache's state, its pressure watcher registered and its history sampler started.
    fn start(config: Config, resolver: Resolver, confine_root: Option<PathBuf>) -> Arc<Inner> {
        let inner = Arc::new(Inner {
            born: crate::os::fork::generation(),
            resolver,
            confine_root,
            max_pixels: AtomicU64::new(config.loader.max_pixels),
            orientation: config.loader.orientation.into(),
            any_fitted: false.into(),
            cpu: Tier::new(TierKind::Cpu, config.cpu.budget.0, config.cpu.max_entries),
            gpu: Tier::new(TierKind::Gpu, config.gpu.budget.0, config.gpu.max_entries),
            #[cfg(feature = "gpu")]
            device: Mutex::new(None),
            videos: Mutex::new(Vec::new()),
            control: Mutex::new(None),
            shared: Mutex::new(None),
            sharing: std::sync::atomic::AtomicBool::new(false),
            recorder: Mutex::new(None),
            history: Arc::new(History::new(config.stats.history_length)),
            prefetch: Pool::new(),
            pressure: PressureCounters::default(),
            made_with: config.clone(),
            config: Mutex::new(config),
        });
        let pressure = inner.config.lock().pressure.clone();
        let watcher = if pressure.trim {
            let weak: Weak<dyn crate::observe::pressure::Trimmable> = Arc::downgrade(&inner) as _;
            crate::observe::pressure::watch(
                weak,
                crate::observe::pressure::Thresholds {
                    some_ms: pressure.some_ms,
                    full_ms: pressure.full_ms,
                    window_ms: pressure.window_ms,
                },
            )
        } else {
            "off (pressure.trim = false)".into()
        };
        let _ = inner.pressure.watcher.set(watcher);
        inner
    }

    /// Starts the history sampler when the config asks for one.
    fn start_sampling(inner: &Arc<Inner>) -> Result<()> {
        let stats = inner.config.lock().stats.clone();
        if stats.history_interval_ms > 0 && stats.history_length > 0 {
            Inner::start_sampler(inner, Duration::from_millis(stats.history_interval_ms))?;
        }
        Ok(())
    }

    /// Whether this cache was made in this process (not inherited through `fork`).
    #[inline]
    fn is_ours(&self) -> bool {
        crate::os::fork::is_ours(self.born)
    }

    /// A fresh cache for a forked child, made from this one (the parent's): the same config as
    /// far as it can be read (the parent's settings in force, unless a parent thread held
    /// their lock at the fork, then the ones it was made with), without the control socket
    /// and the trace file, which are the parent's. Touches no lock of the parent's tiers.
    fn forked(&self) -> Arc<Inner> {
        let mut config = match self.config.try_lock() {
            Some(c) => c.clone(),
            None => self.made_with.clone(),
        };
        // The parent's sockets and trace stay the parent's: the child serves and writes none.
        config.stats.socket = PathBuf::new();
        config.stats.trace = PathBuf::new();
        config.shared.socket = PathBuf::new();
        let child = Inner::start(config, self.resolver.clone(), self.confine_root.clone());
        // Without its sampler thread (none could be started) the child's history is sampled
        // only by `sample_history`.
        let _ = Inner::start_sampling(&child);
        child
    }

    /// Starts the thread that samples the memory history every `period`; it sleeps in
    /// between and ends with the cache.
    fn start_sampler(inner: &Arc<Inner>, period: Duration) -> Result<()> {
        let weak = Arc::downgrade(inner);
        let history = inner.history.clone();
        let spawned = std::thread::Builder::new()
            .name("texcache-history".into())
            .spawn(move || loop {
                // The cache is held only while sampling, never while sleeping.
                let Some(inner) = weak.upgrade() else { return };
                Cache::from_inner(inner).sample_history();
                if !history.sleep(period) {
                    return;
                }
            });
        spawned.map(drop).map_err(|e| {
            Error::from(ErrorKind::Thread {
                what: "the history sampler thread".into(),
                source: Arc::new(e),
            })
        })
    }

    /// A hit on `href` (fitted into `fit`) in `tier` if it is resident, counted as one;
    /// never loads. Allocates nothing for a normal href.
    fn resident<R: crate::tier::Resource>(
        &self,
        tier: &Tier<R>,
        href: &str,
        fit: Option<(u32, u32)>,
    ) -> Option<Handle<R>> {
        match fit {
            None => tier.get_resident_as(href, true).or_else(|| {
                self.resolver
                    .with_lookup(href, |l| tier.get_resident_as(l, true))
            }),
            Some(fit) => {
                self.any_fitted.store(true, Ordering::Relaxed);
                self.resolver.with_lookup(href, |lookup| {
                    with_fitted_lookup(lookup, fit, |fitted| tier.get_resident_as(fitted, true))
                })
            }
        }
    }

    #[cfg(feature = "gpu")]
    fn gpu_device(&self, href: &str) -> Result<Arc<Gpu>> {
        let mut device = self.device.lock();
        if let Some(gpu) = device.as_ref() {
            return Ok(gpu.clone());
        }
        let cfg = self.config.lock().gpu.clone();
        let gpu = Arc::new(Gpu::open(cfg.backend).map_err(|e| match e.kind() {
            ErrorKind::Gpu { detail } => Error::new(
                href,
                ErrorKind::Gpu {
                    detail: detail.clone(),
                },
            ),
            _ => e,
        })?);
        *device = Some(gpu.clone());
        Ok(gpu)
    }

    #[cfg(feature = "gpu")]
    #[inline]
    fn texture(&self, href: &str) -> Result<TextureHandle> {
        // As in `Inner::bitmap`: the href as it is first.
        match self.gpu.get_resident_as(href, true) {
            Some(hit) => Ok(hit),
            None => self.texture_cold(href, None),
        }
    }

    /// The texture of `href` fitted into a box (§3.9), uploaded from the fitted bitmap.
    #[cfg(feature = "gpu")]
    fn texture_fit(&self, href: &str, fit: (u32, u32)) -> Result<TextureHandle> {
        self.any_fitted.store(true, Ordering::Relaxed);
        let hit = self.resolver.with_lookup(href, |lookup| {
            with_fitted_lookup(lookup, fit, |fitted| self.gpu.get_resident_as(fitted, true))
        });
        match hit {
            Some(hit) => Ok(hit),
            None => self.texture_cold(href, Some(fit)),
        }
    }

    #[cfg(feature = "gpu")]
    /// [`Inner::texture`] (or [`Inner::texture_fit`]) when the texture is not resident.
    #[inline(never)]
    fn texture_cold(&self, href: &str, fit: Option<(u32, u32)>) -> Result<TextureHandle> {
        let inner = self;
        inner.resolver.with_lookup(href, |plain| {
            let mut fitted = String::new();
            let lookup = match fit {
                Some(f) => {
                    crate::key::push_fitted_lookup(&mut fitted, plain, f);
                    fitted.as_str()
                }
                None => plain,
            };
            let key_of = || {
                let k = inner.resolver.key(plain);
                fit.map_or_else(|| k.clone(), |(w, h)| k.fitted(w, h))
            };
            inner.gpu.acquire(lookup, key_of, |key| {
                let gpu = inner.gpu_device(href)?;
                let (keep, mips) = {
                    let cfg = inner.config.lock();
                    (cfg.gpu.keep_cpu_copy, cfg.gpu.mipmaps)
                };
                // The texture's own bitmap acquire is not a traced operation: the replay of
                // the `texture` line does it.
                if keep {
                    let bitmap = match fit {
                        Some(f) => inner.bitmap_fit(href, f, false)?,
                        None => inner.bitmap(href, false)?,
                    };
                    return inner.upload(&gpu, href, &bitmap, mips);
                }
                if let Some(bitmap) = inner.cpu.get_resident_as(lookup, false) {
                    return inner.upload(&gpu, href, &bitmap, mips);
                }
                let decoded = inner.decode(href, key);
                inner.cpu.count_uninserted_miss(decoded.is_err());
                inner.upload(&gpu, href, &decoded?, mips)
            })
        })
    }

    #[inline]
    fn bitmap(&self, href: &str, record: bool) -> Result<BitmapHandle> {
        // An href spelled exactly as a resident key's lookup string names that key (lookup
        // strings are normal, and a normal string resolves to itself), so a hit needs no
        // resolution: try the href as it is, and resolve only if it is not resident.
        match self.cpu.get_resident_as(href, record) {
            Some(hit) => Ok(hit),
            None => self.bitmap_cold(href, record),
        }
    }

    /// The fitted bitmap of `href` (§1): its own entry, keyed by the picture's key and the box.
    fn bitmap_fit(&self, href: &str, fit: (u32, u32), record: bool) -> Result<BitmapHandle> {
        self.any_fitted.store(true, Ordering::Relaxed);
        self.resolver.with_lookup(href, |lookup| {
            with_fitted_lookup(lookup, fit, |fitted| {
                if let Some(hit) = self.cpu.get_resident_as(fitted, record) {
                    return Ok(hit);
                }
                self.cpu.acquire_as(
                    fitted,
                    || self.resolver.key(lookup).fitted(fit.0, fit.1),
                    |key| self.decode(href, key),
                    record,
                )
            })
        })
    }

    /// [`Inner::bitmap`] when the href as it is names no resident key.
    #[inline(never)]
    fn bitmap_cold(&self, href: &str, record: bool) -> Result<BitmapHandle> {
        self.resolver.with_lookup(href, |lookup| {
            self.cpu.acquire_as(
                lookup,
                || self.resolver.key(lookup),
                |key| self.decode(href, key),
                record,
            )
        })
    }

    /// When this cache shares its tier: lets go of the pictures its clients hold no more
    /// (§12), so that the tier sees their releases.
    fn reconcile_clients(&self) {
        if self.sharing.load(Ordering::Relaxed) {
            if let Some(owner) = self.shared.lock().as_ref() {
                owner.reconcile();
            }
        }
    }

    /// With `confine`: refuses a key outside mediadir by its path alone (symlinks are checked
    /// when the file is opened).
    fn check_inside(&self, href: &str, key: &Key) -> Result<()> {
        if self.confine_root.is_some() && !self.resolver.is_inside(key.lookup()) {
            return Err(Error::new(
                href,
                ErrorKind::OutsideMediadir {
                    path: key.path().into(),
                },
            ));
        }
        Ok(())
    }

    /// Reads and decodes the file behind `key`, outside any lock.
    fn decode(&self, href: &str, key: &Key) -> Result<Bitmap> {
        self.check_inside(href, key)?;
        // Before a load makes the tier evict: the pictures clients hold no more are let go.
        self.reconcile_clients();
        let options = crate::picture::decode::DecodeOptions {
            max_pixels: self.max_pixels.load(Ordering::Relaxed),
            orientation: self.orientation.load(Ordering::Relaxed),
            fit: key.fit(),
        };
        let bytes = crate::picture::load::read_file(
            href,
            &key.path(),
            self.confine_root.as_deref(),
            options.max_pixels,
        )?;
        // A sharing cache decodes straight into the shared memory its clients map (§12).
        let to = if self.sharing.load(Ordering::Relaxed) {
            Destination::Shared
        } else {
            Destination::Heap
        };
        crate::picture::decode::decode_telling(href, &bytes, &options, to).map(|d| d.bitmap)
    }
}

/// Calls `f` with the fitted lookup string of `lookup` (§1), built in a buffer of this thread's
/// reused from call to call (a nested call, as a fitted texture's bitmap makes, allocates).
fn with_fitted_lookup<T>(lookup: &str, fit: (u32, u32), f: impl FnOnce(&str) -> T) -> T {
    thread_local! {
        static BUF: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    }
    let mut f = Some(f);
    let done = BUF.with(|buf| {
        let mut buf = buf.try_borrow_mut().ok()?;
        buf.clear();
        crate::key::push_fitted_lookup(&mut buf, lookup, fit);
        Some((f.take().expect("called once"))(&buf))
    });
    match done {
        Some(t) => t,
        None => {
            let mut own = String::new();
            crate::key::push_fitted_lookup(&mut own, lookup, fit);
            (f.take().expect("called once"))(&own)
        }
    }
}

impl PressureCounters {
    fn stats(&self) -> stats::PressureStats {
        stats::PressureStats {
            events: self.events.load(Ordering::Relaxed),
            trimmed_bytes: self.trimmed_bytes.load(Ordering::Relaxed),
            gpu_retries: self.gpu_retries.load(Ordering::Relaxed),
            gpu_retry_evicted_bytes: self.gpu_retry_evicted_bytes.load(Ordering::Relaxed),
            watcher: self.watcher.get().cloned().unwrap_or_default(),
        }
    }
}

impl crate::observe::pressure::Trimmable for Inner {
    fn on_pressure(&self, level: PressureLevel) {
        self.trim_for_pressure(level);
    }
}

impl Inner {
    fn trim_for_pressure(&self, level: PressureLevel) -> u64 {
        let (num, den) = level.share();
        let trimmed = self.cpu.trim_unused_share(num, den);
        self.pressure.events.fetch_add(1, Ordering::Relaxed);
        self.pressure
            .trimmed_bytes
            .fetch_add(trimmed, Ordering::Relaxed);
        trimmed
    }

    #[cfg(feature = "gpu")]
    /// Uploads `bitmap`; with `pressure.gpu_retry`, an upload that fails for GPU memory evicts
    /// half of the GPU tier's unused bytes and tries again, then all of them and once more.
    fn upload(&self, gpu: &Arc<Gpu>, href: &str, bitmap: &Bitmap, mips: bool) -> Result<Texture> {
        let mut result = Texture::upload(gpu, href, bitmap, mips);
        if !self.config.lock().pressure.gpu_retry {
            return result;
        }
        for (num, den) in [(1, 2), (1, 1)] {
            if !matches!(
                result.as_ref().map_err(Error::kind),
                Err(ErrorKind::GpuOutOfMemory { .. })
            ) {
                break;
            }
            let evicted = self.gpu.trim_unused_share(num, den);
            // Evicted textures are destroyed at once, but their memory returns when the device
            // next cleans up after finished work.
            let _ = gpu.device().poll(wgpu::PollType::wait_indefinitely());
            self.pressure.gpu_retries.fetch_add(1, Ordering::Relaxed);
            self.pressure
                .gpu_retry_evicted_bytes
                .fetch_add(evicted, Ordering::Relaxed);
            result = Texture::upload(gpu, href, bitmap, mips);
        }
        result
    }

    /// Stops what runs beside the cache; the rest (memory) goes when the last reference does.
    fn shut_down(&self) {
        // Wakes the history sampler so that it ends now.
        self.history.stop();
        // Stops the socket thread and removes the socket file.
        drop(self.control.lock().take());
        let shared = self.shared.lock().take();
        drop(shared);
        // Writes the rest of the trace while the tiers still exist.
        if let Some(r) = self.recorder.lock().take() {
            if let Err(e) = r.finish() {
                eprintln!("texcache: {e}");
            }
        }
        // Closing the queue ends the prefetch threads once they finish their current image.
        self.prefetch.close();
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if !self.is_ours() {
            // The parent's cache, dropped in a forked child (see `crate::os::fork`): its socket
            // threads (control and shared tier: their connections are the parent's too), trace
            // writer and device are the parent's; they are let go of without
            // being stopped, joined, flushed or removed. (The tiers leave themselves as they are.)
            std::mem::forget(self.control.get_mut().take());
            std::mem::forget(self.shared.get_mut().take());
            std::mem::forget(self.recorder.get_mut().take());
            #[cfg(feature = "gpu")]
            std::mem::forget(self.device.get_mut().take());
            return;
        }
        // Done already by the application's last clone (`Owner`), unless that never existed.
        self.shut_down();
    }
}
