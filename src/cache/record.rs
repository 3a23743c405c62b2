//! Trace recording (`stats.trace`): what an application did to the cache, written as a §7
//! trace that `texcache replay` and `texcache tune` can play again.
//!
//! The tiers log small events under the lock they already hold (see `tier::log`); everything
//! that costs something (finding the href, naming handles, formatting, writing) happens here, on
//! the recorder's own thread, which sleeps until a tier has buffered enough events or a second
//! has passed (or, while events come fast, comes every 500 µs unasked: see [`POLL`]). So the
//! hit path pays one buffer append, not a lock, a format or a write.
//!
//! # What a recorded trace says
//!
//! - Every acquire the application makes is a `bitmap` or `texture` line with a fresh ID
//!   (`b7`, `t3`); a failed one too (`f1`, counted as a failure again on replay). The cache's own
//!   acquires on behalf of another (the bitmap a texture is uploaded from) are not written: the
//!   replay does them itself.
//! - Clones of a handle share its ID; `release` is written when the last of them drops.
//! - `remove`, `trim` and `budget` as called. (`max_entries` changes are not trace operations.)
//! - Ops are written in the order the tier lock saw them, so replaying a single-threaded
//!   workload reproduces its final stats exactly. In a multi-threaded one, a caller that waited
//!   on another's load (`coalesced`) replays as a hit, since a replay is sequential; a texture's
//!   own bitmap acquire replays at the texture's place rather than where its load began.
//!
//! A recorder that cannot keep up (a stuck disk) stops after [`crate::tier::log::MAX_EVENTS`]
//! buffered events, writing a comment saying so; a write error stops it too, and is reported by
//! [`crate::Cache::flush_trace`].

/// The first line a recording starts with (`stats.trace`, [`crate::Cache::record_trace`]).
pub(crate) const RECORDING_HEADER: &str = "# texcache trace recorded by process";

use crate::error::{Error, ErrorKind, Result};
use crate::sync::{Condvar, Mutex};
use crate::tier::log::{Batch, Event, TierLog, Wake, WAKE_AT};
use crate::tier::TierKind;
use crate::tier::{LogRef, Resource};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the recorder writes what it has, at the latest.
const PERIOD: Duration = Duration::from_secs(1);
/// How often the recorder comes for the events, unasked, while they come fast (a batch of at
/// least half [`WAKE_AT`] each time): waking it costs the thread that asks a system call under
/// the tier lock (3.5 ns a hit in the `hit` bench, where one comes every 4,096 hits), a poll
/// costs nothing on that thread. At 500 µs a batch holds what comes in that time (about
/// 100 KiB at 25 million hits a second).
const POLL: Duration = Duration::from_micros(500);

/// A running trace recording; dropping it writes the rest and closes the file.
pub(crate) struct Recorder {
    writer: Arc<Mutex<Writer>>,
    signal: Arc<Signal>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Signal {
    state: Mutex<(bool, bool)>, // (woken, stop)
    cv: Condvar,
    /// Whether the recorder comes every [`POLL`] unasked.
    polling: AtomicBool,
}

impl Wake for Signal {
    fn wake(&self) -> bool {
        if self.polling.load(Ordering::Relaxed) {
            return false;
        }
        self.state.lock().0 = true;
        self.cv.notify_one();
        true
    }
}

/// A tier's log as the recorder sees it, whatever the tier holds.
pub(crate) trait LogSource: Send + Sync {
    /// Swaps the buffer for `spare`; returns the events and the clock, read under the lock.
    fn take(&self, spare: Batch) -> (Batch, u64);
    /// Stops logging; returns the last events.
    fn stop(&self) -> Batch;
}

impl<R: Resource> LogSource for LogRef<R> {
    fn take(&self, spare: Batch) -> (Batch, u64) {
        self.take_log(spare)
    }
    fn stop(&self) -> Batch {
        self.stop_log()
    }
}

impl Recorder {
    /// Creates (truncates) `path` and starts logging on both tiers.
    pub fn start(
        path: &Path,
        cpu: Arc<dyn LogSource>,
        gpu: Arc<dyn LogSource>,
        start_logs: impl FnOnce(TierLog, TierLog),
    ) -> Result<Recorder> {
        let file = crate::os::file::create_for_writing(path).map_err(|e| {
            Error::from(ErrorKind::Trace {
                file: path.into(),
                line: 0,
                message: format!("cannot record: {e}"),
            })
        })?;
        let mut buf = Vec::with_capacity(1 << 17);
        let _ = writeln!(
            buf,
            "{} {} (format: texcache's docs/reference.md)",
            RECORDING_HEADER,
            std::process::id()
        );
        let signal = Arc::new(Signal::default());
        let clock = Arc::new(crate::tier::log::Clock::default());
        let mut writer = Writer {
            path: path.into(),
            out: Some(file),
            buf,
            error: None,
            sources: [cpu, gpu],
            tiers: Default::default(),
            pending_gpu: VecDeque::new(),
            spares: Default::default(),
            failed: 0,
        };
        writer.write();
        start_logs(
            TierLog::new(clock.clone(), true, signal.clone()),
            TierLog::new(clock, false, signal.clone()),
        );
        let writer = Arc::new(Mutex::new(writer));
        let thread = {
            let (writer, signal) = (writer.clone(), signal.clone());
            std::thread::Builder::new()
                .name("texcache-trace".into())
                .spawn(move || {
                    let mut polling = false;
                    loop {
                        {
                            let mut s = signal.state.lock();
                            if !s.0 && !s.1 {
                                signal
                                    .cv
                                    .wait_for(&mut s, if polling { POLL } else { PERIOD });
                            }
                            if s.1 {
                                return;
                            }
                            s.0 = false;
                        }
                        let taken = writer.lock().drain(false);
                        // Unasked while events come fast; asked (by a tier at `WAKE_AT`) once
                        // they slow down. A tier that found it polling asks again after
                        // `WAKE_AT` more, so a switch to asking never leaves a batch waiting
                        // for `PERIOD`.
                        polling = taken >= WAKE_AT / 2;
                        signal.polling.store(polling, Ordering::Relaxed);
                    }
                })
                .map_err(|e| {
                    Error::from(ErrorKind::Trace {
                        file: path.into(),
                        line: 0,
                        message: format!("cannot start the recorder thread: {e}"),
                    })
                })?
        };
        Ok(Recorder {
            writer,
            signal,
            thread: Some(thread),
        })
    }

    /// Writes everything logged so far to the file; the first write error, if any.
    pub fn flush(&self) -> Result<()> {
        let mut w = self.writer.lock();
        w.drain(false);
        w.error.clone().map_or(Ok(()), Err)
    }

    /// Stops logging, writes the rest and closes the file.
    pub fn finish(mut self) -> Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> Result<()> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        {
            self.signal.state.lock().1 = true;
            self.signal.cv.notify_one();
        }
        let _ = thread.join();
        let mut w = self.writer.lock();
        w.drain(true);
        w.error.clone().map_or(Ok(()), Err)
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Per-tier naming state. The common case, a handle acquired and released without clones,
/// touches only `entries` (one lookup): the other maps stay empty.
#[derive(Default)]
struct TierNames {
    /// Entry address → its lookup string, if a trace line can carry it (while the entry lives).
    /// A copy made on this thread: reading the key's own bytes on every acquire would share
    /// their cache lines, and the entry's next to them, with the thread that hits.
    entries: HashMap<usize, Option<Named>, foldhash::fast::RandomState>,
    /// A clone's handle id → the id its group was written with.
    clones: HashMap<u64, u64, foldhash::fast::RandomState>,
    /// Written id → live handles beyond the first, for groups that were cloned.
    extra: HashMap<u64, u32, foldhash::fast::RandomState>,
    /// Ids whose acquire could not be written (so neither is their release).
    unwritten: HashSet<u64, foldhash::fast::RandomState>,
}

struct Writer {
    path: PathBuf,
    /// `None` once recording has stopped on an error.
    out: Option<File>,
    /// Lines formatted since the last write.
    buf: Vec<u8>,
    error: Option<Error>,
    /// CPU, GPU.
    sources: [Arc<dyn LogSource>; 2],
    tiers: [TierNames; 2],
    /// GPU events (stamp, sequence number, event) stamped after the last CPU event taken.
    pending_gpu: VecDeque<(u64, u64, Event)>,
    spares: [Batch; 2],
    failed: u64,
}

impl Writer {
    /// Takes both tiers' events and writes them in merged order; how many it took. `last`:
    /// stop logging and write everything.
    fn drain(&mut self, last: bool) -> usize {
        if self.out.is_none() && !last {
            return 0;
        }
        let (mut cpu, limit) = if last {
            (self.sources[0].stop(), u64::MAX)
        } else {
            self.sources[0].take(std::mem::take(&mut self.spares[0]))
        };
        let mut gpu = if last {
            self.sources[1].stop()
        } else {
            self.sources[1].take(std::mem::take(&mut self.spares[1])).0
        };
        let taken = cpu.len() + gpu.len();
        let stamps = std::mem::take(&mut gpu.stamps);
        let gpu_first = gpu.first;
        self.pending_gpu.extend(
            gpu.drain()
                .enumerate()
                .map(|(i, e)| (stamps[i], gpu_first + i as u64, e)),
        );
        gpu.stamps = stamps;
        // The CPU tier's sequence numbers are the stamps.
        let mut seq = cpu.first;
        for ev in cpu.drain() {
            self.emit_gpu_before(seq);
            match ev {
                Event::AcquireReleased(entry) if self.emit_hit(seq, entry) => seq += 2,
                Event::AcquireReleased(entry) => {
                    self.emit(TierKind::Cpu, seq, Event::Acquire(entry));
                    self.emit_gpu_before(seq + 1);
                    self.emit(TierKind::Cpu, seq + 1, Event::Release(seq));
                    seq += 2;
                }
                ev => {
                    self.emit(TierKind::Cpu, seq, ev);
                    seq += 1;
                }
            }
            if self.buf.len() >= 1 << 16 {
                self.write();
            }
        }
        while self.pending_gpu.front().is_some_and(|g| g.0 <= limit) {
            let (_, gseq, g) = self.pending_gpu.pop_front().expect("front");
            self.emit(TierKind::Gpu, gseq, g);
        }
        self.spares = [cpu, gpu];
        self.write();
        taken
    }

    /// The most frequent pair of lines, a CPU hit dropped at once (an [`Event::AcquireReleased`]
    /// numbered `seq`), written in one go: `bitmap bN HREF` and `release bN`. False, writing
    /// nothing, when [`Writer::emit`] must do it event by event: a GPU event falls between the
    /// two, or the entry's href cannot be written.
    fn emit_hit(&mut self, seq: u64, entry: usize) -> bool {
        if self.pending_gpu.front().is_some_and(|g| g.0 <= seq) {
            return false;
        }
        let Some(Some(named)) = self.tiers[TierKind::Cpu as usize].entries.get(&entry) else {
            return false;
        };
        let mut ids = itoa::Buffer::new();
        let id = ids.format(seq).as_bytes();
        let buf = &mut self.buf;
        let verb = named.verb(TierKind::Cpu);
        buf.reserve(verb.len() + b"b \nrelease b\n".len() + 2 * id.len() + named.text.len());
        buf.extend_from_slice(verb);
        buf.push(b'b');
        buf.extend_from_slice(id);
        buf.push(b' ');
        buf.extend_from_slice(named.text.as_bytes());
        buf.extend_from_slice(b"\nrelease b");
        buf.extend_from_slice(id);
        buf.push(b'\n');
        true
    }

    /// Writes the GPU events stamped before the CPU event `seq`.
    fn emit_gpu_before(&mut self, seq: u64) {
        while self.pending_gpu.front().is_some_and(|g| g.0 < seq) {
            let (_, gseq, g) = self.pending_gpu.pop_front().expect("front");
            self.emit(TierKind::Gpu, gseq, g);
        }
    }

    /// Writes the formatted lines out.
    fn write(&mut self) {
        if let Some(out) = &mut self.out {
            if let Err(e) = out.write_all(&self.buf) {
                self.fail(e);
            }
        }
        self.buf.clear();
    }

    fn fail(&mut self, e: std::io::Error) {
        self.out = None;
        self.error.get_or_insert(Error::from(ErrorKind::Trace {
            file: self.path.clone(),
            line: 0,
            message: format!("cannot record: {e}"),
        }));
        for s in &self.sources {
            drop(s.stop());
        }
    }

    /// Formats one event's line, if it has one. `seq` is its sequence number in its tier,
    /// which is the id of the handle it creates, if any.
    fn emit(&mut self, tier: TierKind, seq: u64, event: Event) {
        let prefix: &[u8] = match tier {
            TierKind::Cpu => b"b",
            TierKind::Gpu => b"t",
        };
        let names = &mut self.tiers[tier as usize];
        let buf = &mut self.buf;
        let mut ids = itoa::Buffer::new();
        match event {
            Event::Name(named) => {
                let (entry, key) = *named;
                names.entries.insert(entry, Named::of(&key));
            }
            Event::Forget(entry) => {
                names.entries.remove(&entry);
            }
            Event::Acquire(entry) => match names.entries.get(&entry) {
                Some(Some(named)) => {
                    for part in [named.verb(tier), prefix, ids.format(seq).as_bytes(), b" "] {
                        buf.extend_from_slice(part);
                    }
                    buf.extend_from_slice(named.text.as_bytes());
                    buf.push(b'\n');
                }
                _ => {
                    names.unwritten.insert(seq);
                    buf.extend_from_slice(b"# an acquire whose href a trace line cannot carry\n");
                }
            },
            Event::Failed(key) => {
                self.failed += 1;
                if let Some(named) = Named::of(&key) {
                    for part in [
                        named.verb(tier),
                        b"f",
                        ids.format(self.failed).as_bytes(),
                        b" ",
                    ] {
                        buf.extend_from_slice(part);
                    }
                    buf.extend_from_slice(named.text.as_bytes());
                    buf.push(b'\n');
                }
            }
            Event::Clone(of) => {
                let group = names.clones.get(&of).copied().unwrap_or(of);
                names.clones.insert(seq, group);
                *names.extra.entry(group).or_insert(0) += 1;
            }
            Event::AcquireReleased(entry) => {
                // Unpacked by `drain`; the GPU tier never packs.
                debug_assert!(false, "an unpacked acquire-and-release");
                self.emit(tier, seq, Event::Acquire(entry));
                self.emit(tier, seq + 1, Event::Release(seq));
            }
            Event::Release(id) => {
                let mut group = id;
                if !names.clones.is_empty() {
                    group = names.clones.remove(&id).unwrap_or(id);
                }
                if !names.extra.is_empty() {
                    if let Some(n) = names.extra.get_mut(&group) {
                        *n -= 1;
                        if *n == 0 {
                            names.extra.remove(&group);
                        }
                        return; // other handles of this group live on
                    }
                }
                if !names.unwritten.is_empty() && names.unwritten.remove(&group) {
                    return;
                }
                for part in [b"release ", prefix, ids.format(group).as_bytes(), b"\n"] {
                    buf.extend_from_slice(part);
                }
            }
            Event::Remove(lookup) => {
                if writable(&lookup) {
                    let _ = writeln!(buf, "remove {lookup}");
                }
            }
            Event::Trim(bytes) => {
                let _ = writeln!(buf, "trim {} {bytes}", tier.name());
            }
            Event::Budget(bytes) => {
                let _ = writeln!(buf, "budget {} {bytes}", tier.name());
            }
            Event::Overflow => {
                let why = format!(
                    "recording stopped: the {} tier buffered {} events the recorder had not \
                     written yet",
                    tier.name(),
                    crate::tier::log::MAX_EVENTS
                );
                let _ = writeln!(buf, "# {why}");
                self.error.get_or_insert(Error::from(ErrorKind::Trace {
                    file: self.path.clone(),
                    line: 0,
                    message: why,
                }));
            }
        }
    }
}

/// Whether a trace line can carry `href` (the rest of the line, up to a `#`, trimmed).
/// What an acquire line of an entry says after its verb's ID: the href, or for a fitted entry
/// `WxH HREF` (written with the `_fit` verb).
struct Named {
    fitted: bool,
    text: Box<str>,
}

impl Named {
    /// `None` for a key whose href a trace line cannot carry.
    fn of(key: &crate::key::Key) -> Option<Named> {
        let href = key.plain_lookup();
        if !writable(href) {
            return None;
        }
        Some(match key.fit() {
            Some((w, h)) => Named {
                fitted: true,
                text: format!("{w}x{h} {href}").into(),
            },
            None => Named {
                fitted: false,
                text: href.into(),
            },
        })
    }
    /// The verb of its acquire line in `tier`.
    fn verb(&self, tier: TierKind) -> &'static [u8] {
        match (tier, self.fitted) {
            (TierKind::Cpu, false) => b"bitmap ",
            (TierKind::Cpu, true) => b"bitmap_fit ",
            (TierKind::Gpu, false) => b"texture ",
            (TierKind::Gpu, true) => b"texture_fit ",
        }
    }
}

fn writable(href: &str) -> bool {
    !href.is_empty() && href.trim() == href && !href.contains(['#', '\n', '\r'])
}
