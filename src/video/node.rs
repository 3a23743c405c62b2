//! The video node: a frame source, a bounded queue of decoded frames, and one texture.
//!
//! # Memory
//!
//! A node has `queue_length` frame *slots*. A slot is taken by a frame in the queue, or by a
//! frame the consumer has taken and not yet dropped; the decoder starts a frame only when a
//! slot is free, into a buffer from the node's pool, allocating one only if the pool is empty.
//! So a node never holds more than `queue_length` frame buffers, a full queue holds exactly
//! that, and steady playback (take, use, drop) recycles the same buffers without allocating.
//! Without a thread (`video.threaded = false`) frames are decoded on demand in the caller's
//! thread into the one pooled buffer. `stop` joins the thread and frees the queue, the pool and
//! the texture before it returns.

use super::open::open as open_source;
use super::source::{index_at, FrameSource, FrameTime, SourceOptions, VideoInfo};
#[cfg(feature = "gpu")]
use super::texture::VideoTexture;
use crate::error::{Error, ErrorKind, Result};
#[cfg(feature = "gpu")]
use crate::gpu::Gpu;
use crate::observe::stats::PixelFormat;
pub use crate::observe::stats::{NodeStats, State};
use crate::sync::{Condvar, Mutex};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

static LIVE_FRAME_BUFFERS: AtomicI64 = AtomicI64::new(0);

/// How long [`VideoNode::next_frame`] keeps looking (spinning, then yielding) for a frame that
/// is not decoded yet before it sleeps until the decoder wakes it. A sleeping consumer is woken
/// by a futex call, and on a virtual machine whose other vCPU has gone idle that wake-up takes
/// tens of microseconds a frame: `cargo bench --bench video` went from 0.86x to 0.95–1.01x of
/// `raw_read` with it. It costs the waiting thread at most this much CPU per frame it waits for
/// (at 60 frames/s, 1.2% of a core), and nothing when frames are ready, as in steady playback.
const WAIT_SPIN: std::time::Duration = std::time::Duration::from_micros(200);

/// Frame buffers alive in the process (all nodes, queued, pooled or held by consumers).
pub fn live_frame_buffers() -> i64 {
    LIVE_FRAME_BUFFERS.load(Ordering::Relaxed)
}

/// A frame buffer, counted while alive.
struct Buffer(Vec<u8>);

impl Buffer {
    fn new(len: usize) -> Buffer {
        LIVE_FRAME_BUFFERS.fetch_add(1, Ordering::Relaxed);
        Buffer(vec![0; len])
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        LIVE_FRAME_BUFFERS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One decoded frame, taken from a node. It is the consumer's until dropped; dropping it gives
/// its buffer back to the node's pool (or frees it if the node has stopped).
pub struct Frame {
    buf: Option<Buffer>,
    at: FrameTime,
    home: Arc<Shared>,
    epoch: u64,
}

impl Frame {
    fn info(&self) -> &VideoInfo {
        &self.home.info
    }
    /// 0-based frame number in the stream, in presentation order (see [`FrameTime::index`]).
    pub fn index(&self) -> u64 {
        self.at.index
    }
    /// Presentation time in seconds from the stream's start (§4): the file's timestamps, so
    /// variable frame rates come out as they are.
    pub fn time(&self) -> f64 {
        self.at.time
    }
    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.info().width
    }
    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.info().height
    }
    /// `Yuv420` (planes Y, U, V one after another) or `Rgba8`.
    pub fn format(&self) -> PixelFormat {
        self.info().format
    }
    /// The pixels: for YUV 4:2:0 the Y plane (w×h), then U and V (⌈w/2⌉×⌈h/2⌉ each).
    pub fn data(&self) -> &[u8] {
        &self.buf.as_ref().expect("present until drop").0
    }
    /// §2 bytes.
    pub fn bytes(&self) -> u64 {
        self.info().frame_bytes()
    }
    /// The frame as packed 8-bit RGB, upright: converted with the stream's matrix and range
    /// as the GPU converts it, and turned by its rotation, so `display_size()` pixels (a copy).
    ///
    /// ```no_run
    /// # fn main() -> texcache::Result<()> {
    /// let cache = texcache::Cache::with_defaults();
    /// let mut node = cache.video("clip.mp4")?;
    /// node.play()?;
    /// if let Some(frame) = node.next_frame()? {
    ///     let (w, h) = frame.display_size();
    ///     assert_eq!(frame.to_rgb().len(), w as usize * h as usize * 3);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn to_rgb(&self) -> Vec<u8> {
        super::convert::to_rgb(self.info(), self.data())
    }
    /// Width and height as displayed (after the stream's rotation): what
    /// [`to_rgb`](Self::to_rgb) gives.
    pub fn display_size(&self) -> (u32, u32) {
        self.info().display_size()
    }
    /// The Y, U and V planes of a YUV frame.
    pub fn planes(&self) -> Option<[&[u8]; 3]> {
        if self.info().format != PixelFormat::Yuv420 {
            return None;
        }
        let (w, h) = (self.info().width as usize, self.info().height as usize);
        let c = w.div_ceil(2) * h.div_ceil(2);
        let (y, uv) = self.data().split_at(w * h);
        let (u, v) = uv.split_at(c);
        Some([y, u, v])
    }
}

impl Drop for Frame {
    fn drop(&mut self) {
        let buf = self.buf.take().expect("present until drop");
        if !crate::os::fork::is_ours(self.home.born) {
            // A frame of the parent's node, dropped in a forked child: the node's lock may be
            // held by the parent's decoder thread, so the buffer is let go of unrecycled.
            std::mem::forget(buf);
            return;
        }
        let mut st = self.home.state.lock();
        if st.epoch == self.epoch {
            st.held -= 1;
            self.home.decoder.notify_one();
            if st.eos && !st.looping {
                // §4: at the end of a stream that does not loop, spare buffers are freed.
                drop(st);
                drop(buf);
            } else {
                st.pool.push(buf);
            }
        } else {
            // The node stopped since: the buffer is freed (outside the lock).
            st.detached_held -= 1;
            drop(st);
            drop(buf);
        }
    }
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Frame({} at {:.3} s {}x{} {})",
            self.at.index,
            self.at.time,
            self.width(),
            self.height(),
            self.format().name()
        )
    }
}

/// What the decoder thread and the consumer share.
pub(crate) struct Shared {
    pub(crate) href: String,
    /// The process generation the node was opened in ([`crate::os::fork`]): in a forked child its
    /// decoder thread is the parent's, and the node only answers that it cannot play here.
    born: u64,
    path: PathBuf,
    /// The canonical mediadir with `confine = true`: every reopen checks the file against it
    /// again, so a folder swapped for a symlink after the node opened cannot redirect it.
    confine: Option<PathBuf>,
    /// `loader.max_pixels` and `video.decoder_threads` when the node was opened; the decoder
    /// reopens the file with them.
    options: SourceOptions,
    pub(crate) info: Arc<VideoInfo>,
    queue_length: usize,
    state: Mutex<Inner>,
    /// Wakes the decoder: a slot freed, a seek, stop.
    decoder: Condvar,
    /// Wakes the consumer: a frame queued, end of stream, an error.
    consumer: Condvar,
}

impl Shared {
    /// Opens the file again for decoding. A file replaced since the node was opened must still
    /// have the node's frame size and format: the node's buffers and texture are sized for it.
    fn reopen(&self) -> Result<Box<dyn FrameSource>> {
        let src = open_source(
            &self.href,
            &self.path,
            self.confine.as_deref(),
            self.options,
        )?;
        let (a, b) = (src.info(), &*self.info);
        if (a.width, a.height, a.format) != (b.width, b.height, b.format) {
            return Err(Error::new(
                self.href.clone(),
                ErrorKind::Video {
                    detail: format!(
                        "the file changed since the node was opened: {}x{} {:?}, was {}x{} {:?}",
                        a.width, a.height, a.format, b.width, b.height, b.format
                    ),
                },
            ));
        }
        Ok(src)
    }
}

/// A decoded frame in the queue.
struct Decoded {
    at: FrameTime,
    buf: Buffer,
}

struct Inner {
    state: State,
    queue: VecDeque<Decoded>,
    pool: Vec<Buffer>,
    /// Frames taken and not dropped (each holds a slot).
    held: usize,
    /// Frames taken before the last stop and not dropped yet (no slot; still memory).
    detached_held: usize,
    /// Buffers being filled by the decoder right now (0 or 1).
    in_flight: usize,
    /// Index of the next frame the decoder will produce.
    next: u64,
    /// Time of the last frame the consumer took.
    position: f64,
    /// The decoder's own frame memory and damaged packets, as its source last said.
    decoder_bytes: u64,
    corrupt_packets: u64,
    eos: bool,
    error: Option<Error>,
    looping: bool,
    /// Bumped by seek and stop: a frame decoded for an older generation is discarded.
    generation: u64,
    seek_to: Option<f64>,
    /// Bumped by stop: frames of an older epoch no longer hold slots.
    epoch: u64,
    quit: bool,
    /// Frames the playback clock skipped because they were late.
    dropped: u64,
    texture_bytes: u64,
}

impl Inner {
    fn buffers(&self) -> usize {
        self.queue.len() + self.pool.len() + self.held + self.detached_held + self.in_flight
    }
}

/// One frame to decode, taken under the lock by [`Shared::begin`].
struct Job {
    buf: Option<Buffer>,
    seek: Option<f64>,
    looping: bool,
    generation: u64,
}

/// A decoded frame's outcome: a frame or the end (`None`); whether the source was rewound to
/// its start (looping) to get it; and the source's decoder bytes and damaged packets after it.
struct Filled {
    result: Result<Option<FrameTime>>,
    rewound: bool,
    decoder_bytes: u64,
    corrupt_packets: u64,
}

impl Shared {
    /// Claims a slot for one frame: a pooled buffer if there is one, and any pending seek.
    fn begin(&self, st: &mut Inner) -> Job {
        st.in_flight += 1;
        Job {
            buf: st.pool.pop(),
            seek: st.seek_to.take(),
            looping: st.looping,
            generation: st.generation,
        }
    }

    /// Decodes one frame outside the lock (allocating a buffer only if the pool had none);
    /// at the end of a looping stream, rewinds and decodes frame 0.
    fn fill(&self, src: &mut dyn FrameSource, job: Job) -> (Buffer, Filled) {
        let len = self.info.frame_bytes() as usize;
        let mut buf = job.buf.unwrap_or_else(|| Buffer::new(len));
        let mut result = job
            .seek
            .map_or(Ok(()), |t| src.seek(t))
            .and_then(|_| src.read_frame(&mut buf.0));
        let rewound = matches!(result, Ok(None)) && job.looping;
        if rewound {
            result = src.seek(0.0).and_then(|_| src.read_frame(&mut buf.0));
        }
        let filled = Filled {
            result,
            rewound,
            decoder_bytes: src.decoder_bytes(),
            corrupt_packets: src.corrupt_packets(),
        };
        (buf, filled)
    }

    /// Books the outcome of [`Shared::fill`] under the lock: the frame and its index, or the
    /// end of the stream (the buffer goes back to the pool), or the error.
    /// At the end of a stream that does not loop, the spare buffers are freed (§4): returned
    /// in `freed`, for the caller to drop outside the lock.
    fn finish(
        &self,
        st: &mut Inner,
        buf: Buffer,
        filled: Filled,
        freed: &mut Vec<Buffer>,
    ) -> Result<Option<Decoded>> {
        st.in_flight -= 1;
        st.decoder_bytes = filled.decoder_bytes;
        st.corrupt_packets = filled.corrupt_packets;
        if filled.rewound {
            st.next = 0;
        }
        match filled.result {
            Ok(Some(at)) => {
                st.next = at.index + 1;
                Ok(Some(Decoded { at, buf }))
            }
            other => {
                st.eos = true;
                if st.looping {
                    st.pool.push(buf);
                } else {
                    freed.push(buf);
                    freed.append(&mut st.pool);
                }
                other.map(|_| None)
            }
        }
    }

    pub(crate) fn stats(&self) -> NodeStats {
        let st = self.state.lock();
        NodeStats {
            href: self.href.clone(),
            path: self.path.display().to_string(),
            state: st.state,
            width: self.info.width,
            height: self.info.height,
            format: self.info.format,
            queue_length: self.queue_length as u64,
            queued_frames: st.queue.len() as u64,
            held_frames: (st.held + st.detached_held) as u64,
            cpu_bytes: st.buffers() as u64 * self.info.frame_bytes(),
            gpu_bytes: st.texture_bytes,
            next_frame: st.queue.front().map_or(st.next, |d| d.at.index),
            end_of_stream: st.eos && st.queue.is_empty(),
            dropped_frames: st.dropped,
            position: st.position,
            decoder_bytes: st.decoder_bytes,
            corrupt_packets: st.corrupt_packets,
            codec: self.info.codec.clone(),
            rotation: self.info.rotation,
        }
    }
}

/// A video node (§4): opened stopped, then played, paused, seeked and stopped.
///
/// ```
/// # fn main() -> texcache::Result<()> {
/// let dir = std::env::temp_dir().join("texcache-doc-node");
/// std::fs::create_dir_all(&dir).unwrap();
/// texcache::testing::samples::write_y4m(&dir.join("clip.y4m"), 64, 48, 10).unwrap();
/// let mut cfg = texcache::Config::default();
/// cfg.mediadir = dir;
/// cfg.video.queue_length = 4;
/// let cache = texcache::Cache::new(cfg)?;
/// let mut node = cache.video("clip.y4m")?;     // header only: no frame memory yet
/// node.play()?;
/// let mut shown = 0;
/// while let Some(frame) = node.next_frame()? { // blocks until decoded; None at the end
///     assert_eq!(frame.index(), shown);
///     shown += 1;
/// }                                             // each frame's buffer goes back to the pool
/// assert_eq!(shown, 10);
/// node.stop();                                  // joins the decoder, frees every frame
/// assert_eq!(cache.stats().video.cpu_bytes, 0);
/// # Ok(()) }
/// ```
pub struct VideoNode {
    shared: Arc<Shared>,
    threaded: bool,
    thread: Option<JoinHandle<()>>,
    /// The caller-thread decoder when not threaded.
    source: Option<Box<dyn FrameSource>>,
    /// A frame [`VideoNode::frame_at`] took that was not due yet: the next one out.
    pending: Option<Frame>,
    #[cfg(feature = "gpu")]
    texture: Option<VideoTexture>,
}

impl VideoNode {
    /// Opens `path` stopped: reads the header only.
    pub(crate) fn open(
        href: &str,
        path: PathBuf,
        confine: Option<PathBuf>,
        threaded: bool,
        queue_length: usize,
        options: SourceOptions,
    ) -> Result<VideoNode> {
        let src = open_source(href, &path, confine.as_deref(), options)?;
        let info = Arc::new(src.info().clone());
        Ok(VideoNode {
            shared: Arc::new(Shared {
                href: href.into(),
                born: crate::os::fork::generation(),
                path,
                confine,
                options,
                info,
                queue_length: queue_length.max(1),
                state: Mutex::new(Inner {
                    state: State::Stopped,
                    queue: VecDeque::new(),
                    pool: Vec::new(),
                    held: 0,
                    detached_held: 0,
                    in_flight: 0,
                    next: 0,
                    position: 0.0,
                    decoder_bytes: 0,
                    corrupt_packets: 0,
                    eos: false,
                    error: None,
                    looping: false,
                    generation: 0,
                    seek_to: None,
                    epoch: 0,
                    quit: false,
                    dropped: 0,
                    texture_bytes: 0,
                }),
                decoder: Condvar::new(),
                consumer: Condvar::new(),
            }),
            threaded,
            thread: None,
            // Keep the opened source for the caller-thread mode; a thread opens its own.
            source: if threaded { None } else { Some(src) },
            pending: None,
            #[cfg(feature = "gpu")]
            texture: None,
        })
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Size, format, rate and (where known) frame count.
    pub fn info(&self) -> &VideoInfo {
        &self.shared.info
    }

    /// The href it was opened with.
    pub fn href(&self) -> &str {
        &self.shared.href
    }

    /// The current state.
    pub fn state(&self) -> State {
        if !crate::os::fork::is_ours(self.shared.born) {
            return State::Stopped; // in a forked child: it cannot play here
        }
        self.shared.state.lock().state
    }

    /// This node's numbers.
    pub fn stats(&self) -> NodeStats {
        self.shared.stats()
    }

    /// Whether the stream starts again after its last frame.
    pub fn set_looping(&self, looping: bool) {
        if !crate::os::fork::is_ours(self.shared.born) {
            return;
        }
        self.shared.state.lock().looping = looping;
        self.shared.decoder.notify_one();
    }

    /// Starts (from stopped: decoding begins) or resumes playback.
    pub fn play(&mut self) -> Result<()> {
        self.start(State::Playing)
    }

    /// Pauses; from stopped, starts decoding ahead without playing.
    pub fn pause(&mut self) -> Result<()> {
        self.start(State::Paused)
    }

    /// The error of a node used in a child forked from the process that opened it.
    fn forked_error(&self) -> Error {
        Error::new(
            self.shared.href.clone(),
            ErrorKind::Video {
                detail: "this video node was opened before the process forked: its decoder is the \
                     parent's; open the video again in this process"
                    .into(),
            },
        )
    }

    fn start(&mut self, to: State) -> Result<()> {
        if !crate::os::fork::is_ours(self.shared.born) {
            return Err(self.forked_error());
        }
        let was = {
            let mut st = self.shared.state.lock();
            let was = st.state;
            st.state = to;
            was
        };
        if was != State::Stopped {
            return Ok(());
        }
        if self.threaded {
            let shared = self.shared.clone();
            let spawned = std::thread::Builder::new()
                .name("texcache-video".into())
                .spawn(move || decoder_thread(shared));
            match spawned {
                Ok(t) => self.thread = Some(t),
                Err(e) => {
                    self.shared.state.lock().state = State::Stopped;
                    return Err(Error::new(
                        self.shared.href.clone(),
                        ErrorKind::Video {
                            detail: format!("cannot start the decoder thread: {e}"),
                        },
                    ));
                }
            }
        } else if self.source.is_none() {
            self.source = Some(self.shared.reopen()?);
        }
        Ok(())
    }

    /// The next frame, in order: waits for the decoder (threaded) or decodes it now (not
    /// threaded). `None` at the end of the stream. A decoding error is returned once, then the
    /// stream counts as ended. A wait first spins and yields for up to 200 µs, then sleeps (a
    /// sleeping thread is slow to wake on some machines); [`VideoNode::try_next_frame`] never
    /// waits.
    pub fn next_frame(&mut self) -> Result<Option<Frame>> {
        if !crate::os::fork::is_ours(self.shared.born) {
            return Err(self.forked_error());
        }
        if self.state() == State::Stopped {
            return Err(Error::new(
                self.shared.href.clone(),
                ErrorKind::Video {
                    detail: "the node is stopped: play or pause it first".into(),
                },
            ));
        }
        if let Some(f) = self.pending.take() {
            return Ok(Some(f));
        }
        if !self.threaded {
            return self.decode_here();
        }
        let mut st = self.shared.state.lock();
        let backoff = crossbeam_utils::Backoff::new();
        let mut spin_until = None;
        loop {
            if let Some(f) = self.take(&mut st) {
                return Ok(Some(f));
            }
            if let Some(e) = st.error.take() {
                return Err(e);
            }
            if st.eos {
                return Ok(None);
            }
            // Every slot is a frame the consumer holds: the decoder cannot start another until
            // one is dropped, so waiting would be for ever.
            if st.queue.is_empty() && st.in_flight == 0 && st.held >= self.shared.queue_length {
                return Err(Error::new(
                    self.shared.href.clone(),
                    ErrorKind::Video {
                        detail: format!(
                        "all {} frame slots (video.queue_length) are frames the consumer still \
                         holds: drop one before asking for the next",
                        self.shared.queue_length
                    ),
                    },
                ));
            }
            let now = std::time::Instant::now();
            if now < *spin_until.get_or_insert(now + WAIT_SPIN) {
                crate::sync::MutexGuard::unlocked(&mut st, || backoff.snooze());
                continue;
            }
            self.shared.consumer.wait(&mut st);
        }
    }

    /// A queued frame if one is ready now (never blocks, never decodes).
    pub fn try_next_frame(&mut self) -> Option<Frame> {
        if let Some(f) = self.pending.take() {
            return Some(f);
        }
        if !crate::os::fork::is_ours(self.shared.born) {
            return None;
        }
        let mut st = self.shared.state.lock();
        self.take(&mut st)
    }

    fn take(&self, st: &mut Inner) -> Option<Frame> {
        let Decoded { at, buf } = st.queue.pop_front()?;
        st.held += 1;
        st.position = at.time;
        self.shared.decoder.notify_one();
        Some(Frame {
            buf: Some(buf),
            at,
            home: self.shared.clone(),
            epoch: st.epoch,
        })
    }

    fn decode_here(&mut self) -> Result<Option<Frame>> {
        let shared = &self.shared;
        let src = self.source.as_mut().expect("opened by start");
        let (job, epoch) = {
            let mut st = shared.state.lock();
            if st.eos && !st.looping {
                return Ok(None);
            }
            (shared.begin(&mut st), st.epoch)
        };
        let (buf, filled) = shared.fill(src.as_mut(), job);
        let mut freed = Vec::new();
        let mut st = shared.state.lock();
        let decoded = shared.finish(&mut st, buf, filled, &mut freed);
        let frame = match decoded {
            Ok(Some(Decoded { at, buf })) => {
                st.held += 1;
                st.position = at.time;
                Ok(Some(Frame {
                    buf: Some(buf),
                    at,
                    home: shared.clone(),
                    epoch,
                }))
            }
            other => other.map(|_| None),
        };
        drop(st);
        drop(freed);
        frame
    }

    /// Blocks until the queue is full or the stream has ended (threaded); at once otherwise.
    pub fn wait_full(&self) {
        if !self.threaded || !crate::os::fork::is_ours(self.shared.born) {
            return;
        }
        let mut st = self.shared.state.lock();
        while st.state != State::Stopped
            && !st.eos
            && st.error.is_none()
            && st.queue.len() + st.held < self.shared.queue_length
        {
            self.shared.consumer.wait(&mut st);
        }
    }

    /// §4: flushes the queue; the next frame is the first whose time is at least `seconds`
    /// (decoded from the keyframe before it, the frames before it dropped). Past the last
    /// frame, the next is the end of the stream.
    pub fn seek(&mut self, seconds: f64) {
        self.pending = None;
        if !crate::os::fork::is_ours(self.shared.born) {
            return;
        }
        let mut st = self.shared.state.lock();
        while let Some(d) = st.queue.pop_front() {
            st.pool.push(d.buf); // kept for reuse
        }
        st.generation += 1;
        st.seek_to = Some(seconds.max(0.0));
        st.next = index_at(&self.shared.info, seconds);
        st.eos = false;
        st.error = None;
        drop(st);
        self.shared.decoder.notify_one();
    }

    /// The frame due at `t` seconds into the stream, for a display loop driven by a clock:
    /// the last frame whose time is at most `t`. Frames before it are taken and dropped as late
    /// (counted in `dropped_frames`); waits for (or decodes) frames until one is later than `t`,
    /// which is kept for the next call. `None` when nothing new is due or at the end of the
    /// stream. With looping, pass `t` within the current round: a frame earlier than the one
    /// before (the stream started again) ends the call and is the next one out.
    pub fn frame_at(&mut self, t: f64) -> Result<Option<Frame>> {
        let mut current: Option<Frame> = None;
        loop {
            let Some(f) = self.next_frame()? else {
                return Ok(current);
            };
            let wrapped = current.as_ref().is_some_and(|c| f.time() < c.time());
            if f.time() > t + 1e-9 || wrapped {
                self.pending = Some(f);
                return Ok(current);
            }
            if current.replace(f).is_some() {
                self.shared.state.lock().dropped += 1;
            }
        }
    }

    #[cfg(feature = "gpu")]
    /// Writes `frame` into the node's one texture (created on first use, reused after): YUV as
    /// planes of one `R8Unorm` texture (see [`VideoTexture`]), RGBA as `Rgba8UnormSrgb`.
    pub fn upload(&mut self, gpu: &Arc<Gpu>, frame: &Frame) -> Result<&VideoTexture> {
        if self
            .texture
            .as_ref()
            .is_none_or(|t| !Arc::ptr_eq(t.gpu(), gpu))
        {
            self.texture = None;
            let t = VideoTexture::new(gpu, &self.shared.href, &self.shared.info)?;
            self.shared.state.lock().texture_bytes = t.bytes();
            self.texture = Some(t);
        }
        let t = self.texture.as_ref().expect("created above");
        t.write(frame)?;
        Ok(t)
    }

    /// The node's texture, once a frame has been uploaded.
    #[cfg(feature = "gpu")]
    pub fn texture(&self) -> Option<&VideoTexture> {
        self.texture.as_ref()
    }

    /// §4: joins the decoder thread, frees every queued and pooled frame and the texture,
    /// and returns to stopped (the next play starts from frame 0). Frames the consumer still
    /// holds stay valid and are freed when dropped.
    pub fn stop(&mut self) {
        self.pending = None;
        if !crate::os::fork::is_ours(self.shared.born) {
            // In a forked child: the decoder thread is the parent's, and the node's lock may
            // be held by it. Nothing is joined or locked; the node's memory is let go of.
            std::mem::forget(self.thread.take());
            std::mem::forget(self.shared.clone());
            return;
        }
        {
            let mut st = self.shared.state.lock();
            st.quit = true;
        }
        self.shared.decoder.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        #[cfg(feature = "gpu")]
        {
            self.texture = None;
        }
        let freed = {
            let mut st = self.shared.state.lock();
            st.state = State::Stopped;
            st.quit = false;
            st.epoch += 1;
            st.generation += 1;
            st.detached_held += st.held;
            st.held = 0;
            st.next = 0;
            st.eos = false;
            st.error = None;
            st.seek_to = None;
            st.texture_bytes = 0;
            // The decoder went with its thread (or goes with the caller-thread source below).
            st.decoder_bytes = 0;
            st.position = 0.0;
            let q: Vec<Buffer> = st.queue.drain(..).map(|d| d.buf).collect();
            let p = std::mem::take(&mut st.pool);
            (q, p)
        };
        drop(freed);
        if !self.threaded {
            // Reopened (at frame 0) by the next play.
            self.source = None;
        }
        self.shared.consumer.notify_all();
    }
}

impl Drop for VideoNode {
    fn drop(&mut self) {
        self.stop();
    }
}

fn decoder_thread(shared: Arc<Shared>) {
    let mut src = match shared.reopen() {
        Ok(s) => s,
        Err(e) => {
            let mut st = shared.state.lock();
            st.error = Some(e);
            st.eos = true;
            shared.consumer.notify_all();
            return;
        }
    };
    let mut st = shared.state.lock();
    loop {
        if st.quit {
            return;
        }
        let slots_full = st.queue.len() + st.held >= shared.queue_length;
        let ended = st.eos && st.seek_to.is_none();
        if slots_full || ended {
            shared.decoder.wait(&mut st);
            continue;
        }
        let job = shared.begin(&mut st);
        let generation = job.generation;
        drop(st);
        let (buf, filled) = shared.fill(src.as_mut(), job);
        st = shared.state.lock();
        if st.generation != generation {
            // A seek or stop happened meanwhile: this frame is stale.
            st.in_flight -= 1;
            st.pool.push(buf);
            continue;
        }
        let mut freed = Vec::new();
        match shared.finish(&mut st, buf, filled, &mut freed) {
            Ok(Some(frame)) => st.queue.push_back(frame),
            Ok(None) => {}
            Err(e) => st.error = Some(e),
        }
        shared.consumer.notify_all();
        if !freed.is_empty() {
            crate::sync::MutexGuard::unlocked(&mut st, || drop(freed));
        }
    }
}
