//! Trace files (§7): parsing, and replaying them through a real cache.
//!
//! A trace is one operation a line; `#` starts a comment and blank lines are skipped. The
//! parser checks the whole file before anything runs, so a typo on line 900 is reported before
//! 899 lines of work. Replay keeps the named handles in a table; acquiring with an ID that is
//! still held, or naming an unknown ID, is an error naming the line. A failed load is counted in
//! the stats, not fatal: its ID is remembered as failed so that its `release` is a no-op.

use crate::cache::record::RECORDING_HEADER;
#[cfg(feature = "gpu")]
use crate::cache::TextureHandle;
use crate::cache::{BitmapHandle, Cache};
use crate::error::{Error, ErrorKind, Result};
use crate::tier::TierKind;
use crate::units::ByteSize;
use crate::video::VideoNode;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One trace operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// `bitmap ID HREF`
    Bitmap {
        /// The ID it is known by in the trace.
        id: String,
        /// The href.
        href: String,
    },
    /// `texture ID HREF`
    Texture {
        /// The ID it is known by in the trace.
        id: String,
        /// The href.
        href: String,
    },
    /// `bitmap_fit ID WxH HREF` (§1)
    BitmapFit {
        /// The ID it is known by in the trace.
        id: String,
        /// The box.
        fit: (u32, u32),
        /// The href.
        href: String,
    },
    /// `texture_fit ID WxH HREF` (§1, §3.9)
    TextureFit {
        /// The ID it is known by in the trace.
        id: String,
        /// The box.
        fit: (u32, u32),
        /// The href.
        href: String,
    },
    /// `release ID`
    Release {
        /// The ID it is known by in the trace.
        id: String,
    },
    /// `remove HREF`
    Remove {
        /// The href.
        href: String,
    },
    /// `trim cpu|gpu SIZE`
    Trim {
        /// `cpu` or `gpu`.
        tier: TierKind,
        /// The size in bytes.
        bytes: u64,
    },
    /// `budget cpu|gpu SIZE`
    Budget {
        /// `cpu` or `gpu`.
        tier: TierKind,
        /// The size in bytes.
        bytes: u64,
    },
    /// `video ID HREF`
    Video {
        /// The ID it is known by in the trace.
        id: String,
        /// The href.
        href: String,
    },
    /// `seek ID SECONDS` (§4)
    Seek {
        /// The ID it is known by in the trace.
        id: String,
        /// Where to, in seconds from the stream's start (finite, not negative).
        seconds: f64,
    },
    /// `play ID`
    Play {
        /// The ID it is known by in the trace.
        id: String,
    },
    /// `wait ID`
    Wait {
        /// The ID it is known by in the trace.
        id: String,
    },
    /// `next ID [N]`
    Next {
        /// The ID it is known by in the trace.
        id: String,
        /// Frames to take.
        n: u64,
    },
    /// `stop ID`
    Stop {
        /// The ID it is known by in the trace.
        id: String,
    },
}

impl std::fmt::Display for Op {
    /// The op as a trace line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::Bitmap { id, href } => write!(f, "bitmap {id} {href}"),
            Op::Texture { id, href } => write!(f, "texture {id} {href}"),
            Op::BitmapFit { id, fit, href } => {
                write!(f, "bitmap_fit {id} {}x{} {href}", fit.0, fit.1)
            }
            Op::TextureFit { id, fit, href } => {
                write!(f, "texture_fit {id} {}x{} {href}", fit.0, fit.1)
            }
            Op::Release { id } => write!(f, "release {id}"),
            Op::Remove { href } => write!(f, "remove {href}"),
            Op::Trim { tier, bytes } => write!(f, "trim {} {bytes}", tier.name()),
            Op::Budget { tier, bytes } => write!(f, "budget {} {bytes}", tier.name()),
            Op::Video { id, href } => write!(f, "video {id} {href}"),
            Op::Play { id } => write!(f, "play {id}"),
            Op::Wait { id } => write!(f, "wait {id}"),
            Op::Next { id, n } => write!(f, "next {id} {n}"),
            Op::Stop { id } => write!(f, "stop {id}"),
            Op::Seek { id, seconds } => write!(f, "seek {id} {seconds}"),
        }
    }
}

/// A parsed trace: operations with their line numbers.
#[derive(Debug, Clone)]
pub struct Trace {
    /// The file it was read from.
    pub file: PathBuf,
    /// The operations with their line numbers.
    pub ops: Vec<(usize, Op)>,
    /// What was read past, with its line: an unterminated last line that is not an operation
    /// (a recording cut short, as by SIGKILL), or any unterminated last line of a recording.
    pub warnings: Vec<(usize, String)>,
}

impl Trace {
    /// Reads and parses a trace file.
    pub fn load(file: impl AsRef<Path>) -> Result<Trace> {
        let file = file.as_ref();
        let text = crate::os::file::read_text(file).map_err(|e| {
            Error::from(ErrorKind::Trace {
                file: file.into(),
                line: e.line().unwrap_or(0),
                message: format!("cannot read: {e}"),
            })
        })?;
        Trace::parse(&text, file)
    }

    /// Parses trace text; `file` names it in errors.
    ///
    /// ```
    /// let t = texcache::trace::Trace::parse("# warm up\nbitmap a cat.png\nrelease a\ntrim cpu 1 MiB\n", "t").unwrap();
    /// assert_eq!(t.ops.len(), 3);
    /// assert_eq!(t.ops[2].1, texcache::trace::Op::Trim { tier: texcache::TierKind::Cpu, bytes: 1 << 20 });
    /// let err = texcache::trace::Trace::parse("bitmap a\n", "t").unwrap_err();
    /// assert_eq!(err.to_string(), "t:1: `bitmap` needs an ID and an HREF");
    /// ```
    pub fn parse(text: &str, file: impl AsRef<Path>) -> Result<Trace> {
        let file = file.as_ref();
        let mut ops = Vec::new();
        let mut warnings = Vec::new();
        let recording = text.starts_with(RECORDING_HEADER);
        let mut lines = lines(text).peekable();
        while let Some((i, raw, terminated)) = lines.next() {
            let line = i + 1;
            let content = raw.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            let last = lines.peek().is_none();
            // A recorder writes whole lines, so a recording's unterminated last line is torn.
            if last && !terminated && recording {
                warnings.push((
                    line,
                    format!(
                        "ignored: a recording's unterminated last line {content:?} (cut short)"
                    ),
                ));
                continue;
            }
            match parse_op(content) {
                Ok(op) => ops.push((line, op)),
                Err(message) if last && !terminated => {
                    warnings.push((line, format!("ignored: unterminated last line ({message})")));
                }
                Err(message) => {
                    return Err(Error::from(ErrorKind::Trace {
                        file: file.into(),
                        line,
                        message,
                    }))
                }
            }
        }
        Ok(Trace {
            file: file.into(),
            ops,
            warnings,
        })
    }
}

/// The lines of `text` with their 0-based index and whether a line end closed them; a line
/// ends at `\n`, `\r\n` or a lone `\r` (old Mac files).
fn lines(text: &str) -> impl Iterator<Item = (usize, &str, bool)> {
    let mut rest = text;
    let mut index = 0;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (line, next, terminated) = match rest.find(['\n', '\r']) {
            Some(i) => {
                let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
                (&rest[..i], &rest[i + skip..], true)
            }
            None => (rest, "", false),
        };
        rest = next;
        index += 1;
        Some((index - 1, line, terminated))
    })
}

fn parse_op(s: &str) -> std::result::Result<Op, String> {
    let (verb, rest) = split_word(s);
    let id_href = |verb: &str| -> std::result::Result<(String, String), String> {
        let (id, href) = split_word(rest);
        if id.is_empty() || href.is_empty() {
            return Err(format!("`{verb}` needs an ID and an HREF"));
        }
        Ok((id.to_string(), href.to_string()))
    };
    let id_fit_href = |verb: &str| -> std::result::Result<(String, (u32, u32), String), String> {
        let (id, more) = split_word(rest);
        let (size, href) = split_word(more);
        let fit = size
            .split_once('x')
            .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)));
        match fit {
            Some(fit) if !id.is_empty() && !href.is_empty() => {
                Ok((id.to_string(), fit, href.to_string()))
            }
            _ => Err(format!(
                "`{verb}` needs an ID, a box WxH (e.g. 320x240), then an HREF"
            )),
        }
    };
    let only_id = |verb: &str| -> std::result::Result<String, String> {
        let (id, more) = split_word(rest);
        if id.is_empty() || !more.is_empty() {
            return Err(format!("`{verb}` takes exactly one ID"));
        }
        Ok(id.to_string())
    };
    let tier_size = |verb: &str| -> std::result::Result<(TierKind, u64), String> {
        let (tier, size) = split_word(rest);
        let tier = match tier {
            "cpu" => TierKind::Cpu,
            "gpu" => TierKind::Gpu,
            _ => return Err(format!("`{verb}` needs `cpu` or `gpu`, then a SIZE")),
        };
        let size: ByteSize = size.parse().map_err(|e| format!("`{verb}`: {e}"))?;
        Ok((tier, size.0))
    };
    Ok(match verb {
        "bitmap" => id_href(verb).map(|(id, href)| Op::Bitmap { id, href })?,
        "texture" => id_href(verb).map(|(id, href)| Op::Texture { id, href })?,
        "bitmap_fit" => id_fit_href(verb).map(|(id, fit, href)| Op::BitmapFit { id, fit, href })?,
        "texture_fit" => {
            id_fit_href(verb).map(|(id, fit, href)| Op::TextureFit { id, fit, href })?
        }
        "video" => id_href(verb).map(|(id, href)| Op::Video { id, href })?,
        "release" => Op::Release { id: only_id(verb)? },
        "play" => Op::Play { id: only_id(verb)? },
        "wait" => Op::Wait { id: only_id(verb)? },
        "stop" => Op::Stop { id: only_id(verb)? },
        "remove" if !rest.is_empty() => Op::Remove {
            href: rest.to_string(),
        },
        "remove" => return Err("`remove` needs an HREF".into()),
        "trim" => tier_size(verb).map(|(tier, bytes)| Op::Trim { tier, bytes })?,
        "budget" => tier_size(verb).map(|(tier, bytes)| Op::Budget { tier, bytes })?,
        "next" => {
            let (id, n) = split_word(rest);
            if id.is_empty() {
                return Err("`next` needs an ID".into());
            }
            let n = if n.is_empty() {
                1
            } else {
                n.parse()
                    .map_err(|_| format!("`next`: `{n}` is not a count"))?
            };
            Op::Next {
                id: id.to_string(),
                n,
            }
        }
        "seek" => {
            let (id, t) = split_word(rest);
            if id.is_empty() || t.is_empty() {
                return Err("`seek` needs an ID, then SECONDS".into());
            }
            let seconds = t
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .ok_or_else(|| format!("`seek`: `{t}` is not a number of seconds (0 or more)"))?;
            Op::Seek {
                id: id.to_string(),
                seconds,
            }
        }
        other => return Err(format!("unknown operation `{other}`")),
    })
}

fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim()),
        None => (s, ""),
    }
}

/// What an ID names during replay.
enum Held {
    Bitmap(#[allow(dead_code)] BitmapHandle),
    #[cfg(feature = "gpu")]
    Texture(#[allow(dead_code)] TextureHandle),
    Video(Box<VideoNode>),
    /// The acquire failed (counted); its release is a no-op.
    Failed,
}

/// A load that failed during replay, with how often that same failure came back: one per
/// distinct operation kind, href and error.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayFailure {
    /// The first trace line it happened on.
    pub line: usize,
    /// The operation: `bitmap`, `texture`, `bitmap_fit`, `texture_fit`, `video` (the node did
    /// not open), `play` or `next` (a frame could not be decoded).
    pub op: &'static str,
    /// The href, as the trace wrote it.
    pub href: String,
    /// The error, in words (it names the href and the cause).
    pub error: String,
    /// Whether the error is `ErrorKind::NotFound` (an href that names no file, as when a trace
    /// is replayed without the `mediadir` it was recorded under).
    pub not_found: bool,
    /// How many times it happened.
    pub count: u64,
}

/// Plays traces through a cache, keeping the named handles.
///
/// A failed load is not fatal (§7): it is counted in the cache's stats, and the replayer keeps
/// each distinct failure ([`Replayer::failures`]) so that a caller can say *why*, such as
/// every href failing for want of the `mediadir` the trace was recorded with.
pub struct Replayer<'c> {
    cache: &'c Cache,
    held: HashMap<String, Held>,
    /// Video hrefs by ID, to name them in a frame's failure.
    videos: HashMap<String, String>,
    failures: Vec<ReplayFailure>,
    /// (op, href, error) → index in `failures`.
    seen: HashMap<(&'static str, String, String), usize>,
    line: usize,
}

impl<'c> Replayer<'c> {
    /// A replayer over `cache`.
    pub fn new(cache: &'c Cache) -> Self {
        Replayer {
            cache,
            held: HashMap::new(),
            videos: HashMap::new(),
            failures: Vec::new(),
            seen: HashMap::new(),
            line: 0,
        }
    }

    /// Runs every op of `trace`; `progress(done, total)` is called after each.
    pub fn run(&mut self, trace: &Trace, mut progress: impl FnMut(usize, usize)) -> Result<()> {
        let total = trace.ops.len();
        for (i, (line, op)) in trace.ops.iter().enumerate() {
            self.line = *line;
            self.step(op).map_err(|message| {
                Error::from(ErrorKind::Trace {
                    file: trace.file.clone(),
                    line: *line,
                    message,
                })
            })?;
            progress(i + 1, total);
        }
        Ok(())
    }

    /// Drops every handle still held.
    pub fn release_all(&mut self) {
        self.held.clear();
    }

    /// The loads that failed so far, one per distinct operation, href and error, in the order
    /// they first happened.
    pub fn failures(&self) -> &[ReplayFailure] {
        &self.failures
    }

    /// Notes a failure of `op` on `href`.
    fn failed(&mut self, op: &'static str, href: &str, error: &Error) {
        let not_found = matches!(error.kind(), ErrorKind::NotFound { .. });
        let error = error.to_string();
        let key = (op, href.to_string(), error);
        if let Some(&i) = self.seen.get(&key) {
            self.failures[i].count += 1;
            return;
        }
        self.failures.push(ReplayFailure {
            line: self.line,
            op,
            href: key.1.clone(),
            error: key.2.clone(),
            not_found,
            count: 1,
        });
        self.seen.insert(key, self.failures.len() - 1);
    }

    /// The held value of an acquire's result, noting a failure.
    fn held<T>(
        &mut self,
        op: &'static str,
        href: &str,
        r: Result<T>,
        wrap: impl FnOnce(T) -> Held,
    ) -> Held {
        match r {
            Ok(v) => wrap(v),
            Err(e) => {
                self.failed(op, href, &e);
                Held::Failed
            }
        }
    }

    fn step(&mut self, op: &Op) -> std::result::Result<(), String> {
        match op {
            Op::Bitmap { id, href } => {
                self.check_free(id)?;
                let r = self.cache.bitmap(href);
                let held = self.held("bitmap", href, r, Held::Bitmap);
                self.held.insert(id.clone(), held);
            }
            Op::Texture { id, href } => {
                self.check_free(id)?;
                #[cfg(feature = "gpu")]
                let held = {
                    let r = self.cache.texture(href);
                    self.held("texture", href, r, Held::Texture)
                };
                // Built without the GPU tier: a texture cannot be had.
                #[cfg(not(feature = "gpu"))]
                let held = {
                    self.failed("texture", href, &no_gpu_tier(href));
                    Held::Failed
                };
                self.held.insert(id.clone(), held);
            }
            Op::BitmapFit { id, fit, href } => {
                self.check_free(id)?;
                let r = self.cache.bitmap_fit(href, fit.0, fit.1);
                let held = self.held("bitmap_fit", href, r, Held::Bitmap);
                self.held.insert(id.clone(), held);
            }
            Op::TextureFit { id, fit, href } => {
                self.check_free(id)?;
                #[cfg(feature = "gpu")]
                let held = {
                    let r = self.cache.texture_fit(href, fit.0, fit.1);
                    self.held("texture_fit", href, r, Held::Texture)
                };
                #[cfg(not(feature = "gpu"))]
                let held = {
                    let _ = fit;
                    self.failed("texture_fit", href, &no_gpu_tier(href));
                    Held::Failed
                };
                self.held.insert(id.clone(), held);
            }
            Op::Release { id } => {
                self.held
                    .remove(id)
                    .ok_or_else(|| format!("`release`: unknown ID `{id}`"))?;
            }
            Op::Remove { href } => {
                self.cache.remove(href);
            }
            Op::Trim { tier, bytes } => {
                self.cache.trim(*tier, *bytes);
            }
            Op::Budget { tier, bytes } => {
                self.cache.set_budget(*tier, *bytes);
            }
            Op::Video { id, href } => {
                self.check_free(id)?;
                let r = self.cache.video(href);
                let held = self.held("video", href, r, |n| Held::Video(Box::new(n)));
                self.held.insert(id.clone(), held);
                self.videos.insert(id.clone(), href.clone());
            }
            Op::Play { id } => {
                if let Some(node) = self.node(id, op)? {
                    if let Err(e) = node.play() {
                        self.video_failed("play", id, &e);
                    }
                }
            }
            Op::Wait { id } => {
                if let Some(node) = self.node(id, op)? {
                    node.wait_full();
                }
            }
            Op::Next { id, n } => {
                #[cfg(feature = "gpu")]
                let gpu = self.cache.gpu_if_open();
                let mut error = None;
                if let Some(node) = self.node(id, op)? {
                    for _ in 0..*n {
                        // Bad media is not fatal: an error or the end of the stream ends this op.
                        let frame = match node.next_frame() {
                            Ok(Some(frame)) => frame,
                            Ok(None) => break,
                            Err(e) => {
                                error = Some(e);
                                break;
                            }
                        };
                        #[cfg(feature = "gpu")]
                        if let Some(gpu) = &gpu {
                            if let Err(e) = node.upload(gpu, &frame) {
                                error = Some(e);
                                break;
                            }
                        }
                        drop(frame);
                    }
                }
                if let Some(e) = error {
                    self.video_failed("next", id, &e);
                }
            }
            Op::Stop { id } => {
                if let Some(node) = self.node(id, op)? {
                    node.stop();
                }
            }
            Op::Seek { id, seconds } => {
                if let Some(node) = self.node(id, op)? {
                    node.seek(*seconds);
                }
            }
        }
        Ok(())
    }

    /// Notes a failure of `op` on the video node called `id`.
    fn video_failed(&mut self, op: &'static str, id: &str, e: &Error) {
        let href = self.videos.get(id).cloned().unwrap_or_default();
        self.failed(op, &href, e);
    }

    /// The node called `id`: `None` if its open failed, an error if `id` is unknown or not a
    /// video.
    fn node(&mut self, id: &str, op: &Op) -> std::result::Result<Option<&mut VideoNode>, String> {
        match self.held.get_mut(id) {
            Some(Held::Video(n)) => Ok(Some(n)),
            Some(Held::Failed) => Ok(None),
            Some(_) => Err(format!("`{op}`: `{id}` is not a video node")),
            None => Err(format!("`{op}`: unknown ID `{id}`")),
        }
    }

    fn check_free(&self, id: &str) -> std::result::Result<(), String> {
        if self.held.contains_key(id) {
            return Err(format!("ID `{id}` is still held (release it first)"));
        }
        Ok(())
    }
}

/// The failure of a `texture` line in a build without the GPU tier.
#[cfg(not(feature = "gpu"))]
fn no_gpu_tier(href: &str) -> Error {
    Error::new(
        href,
        ErrorKind::Gpu {
            detail: "texcache was built without its `gpu` feature: there is no texture tier".into(),
        },
    )
}
