//! Memory statistics (§6): the snapshot every dump prints, as JSON and as a table.
//!
//! [`Stats`] serialises to exactly the §6 object; its `Display` is the readable table of
//! `texcache stats` and `texcache replay`.

use crate::observe::history::Sample;
use crate::units::ByteSize;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Counters of one tier. Every byte figure is exact (§2):
/// `used == in_use + unused` and `over_budget == max(0, used - budget)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct TierStats {
    /// Bytes this tier may hold (§2).
    pub budget: u64,
    /// The percentage of the process's memory `budget` came from (`cpu.budget = "25%"`); in
    /// the JSON only when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_percent: Option<f64>,
    /// Bytes held (in use + unused).
    pub used: u64,
    /// Bytes of entries with live handles.
    pub in_use: u64,
    /// Bytes of entries without handles (evictable).
    pub unused: u64,
    /// max(0, used - budget).
    pub over_budget: u64,
    /// The highest `used` at the end of any operation.
    pub peak_used: u64,
    /// Entries held.
    pub entries: u64,
    /// Entries with live handles.
    pub in_use_entries: u64,
    /// Acquires served from the cache.
    pub hits: u64,
    /// Loads (§3.1).
    pub misses: u64,
    /// Acquires that waited for another caller's load of the same key.
    pub coalesced: u64,
    /// Entries evicted (§3.4).
    pub evictions: u64,
    /// Bytes evicted.
    pub evicted_bytes: u64,
    /// Loads that failed.
    pub failures: u64,
}

impl TierStats {
    /// hits / (hits + misses), or 0 with no traffic.
    pub fn hit_ratio(&self) -> f64 {
        let n = self.hits + self.misses;
        if n == 0 {
            0.0
        } else {
            self.hits as f64 / n as f64
        }
    }
}

/// The pressure section: what the cache gave back when memory ran short.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PressureStats {
    /// Memory-pressure events (PSI triggers and [`crate::Cache::on_memory_pressure`] calls).
    pub events: u64,
    /// CPU bytes they trimmed (also counted as the CPU tier's evictions).
    pub trimmed_bytes: u64,
    /// Texture uploads that failed for GPU memory and were tried again after evicting.
    #[serde(default)]
    pub gpu_retries: u64,
    /// Texture bytes those retries evicted (also counted as the GPU tier's evictions).
    #[serde(default)]
    pub gpu_retry_evicted_bytes: u64,
    /// The process's PSI watcher: `watching FILE`, or why none runs.
    #[serde(default)]
    pub watcher: String,
}

/// The video section.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoStats {
    /// Open video nodes.
    pub nodes: u64,
    /// Nodes playing.
    pub playing: u64,
    /// Frames decoded and waiting.
    pub queued_frames: u64,
    /// Bytes of its frame buffers (queued, held and pooled).
    pub cpu_bytes: u64,
    /// Bytes of its texture.
    pub gpu_bytes: u64,
    /// The decoders' own frame memory (§4).
    #[serde(default)]
    pub decoder_bytes: u64,
}

/// The process section.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessStats {
    /// Resident set size in bytes (from `/proc/self/statm`; 0 where unavailable).
    pub rss: u64,
}

/// Pixel layout of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelFormat {
    /// 4 bytes per pixel.
    Rgba8,
    /// 1 byte per pixel.
    Gray8,
    /// Planar Y, U, V with 2x2-subsampled chroma.
    Yuv420,
}

impl PixelFormat {
    /// `"rgba8"`, `"gray8"` or `"yuv420"`.
    pub fn name(self) -> &'static str {
        match self {
            PixelFormat::Rgba8 => "rgba8",
            PixelFormat::Gray8 => "gray8",
            PixelFormat::Yuv420 => "yuv420",
        }
    }
}

/// Playback state (§4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Header read, no frame memory.
    Stopped,
    /// Decoding ahead, the clock not running.
    Paused,
    /// Decoding ahead, frames being shown.
    Playing,
}

impl State {
    /// `"stopped"`, `"paused"` or `"playing"`.
    pub fn name(self) -> &'static str {
        match self {
            State::Stopped => "stopped",
            State::Paused => "paused",
            State::Playing => "playing",
        }
    }
}

/// A snapshot of one node, for the stats (§6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStats {
    /// The href it was opened with.
    pub href: String,
    /// The file it plays: the href resolved against `mediadir`, as an entry's key is.
    #[serde(default)]
    pub path: String,
    /// `stopped`, `paused` or `playing`.
    pub state: State,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Pixel format.
    pub format: PixelFormat,
    /// Frames decoded ahead (the node's frame-buffer limit).
    pub queue_length: u64,
    /// Frames decoded and waiting.
    pub queued_frames: u64,
    /// Frames taken by the consumer and not dropped.
    pub held_frames: u64,
    /// Bytes of its frame buffers (queued, held and pooled).
    pub cpu_bytes: u64,
    /// Bytes of its texture.
    pub gpu_bytes: u64,
    /// The index of the next frame to be taken.
    pub next_frame: u64,
    /// The source has no more frames.
    pub end_of_stream: bool,
    /// Frames skipped as late by the playback clock.
    pub dropped_frames: u64,
    /// Seconds: the time of the last frame the consumer took.
    #[serde(default)]
    pub position: f64,
    /// The decoder's own frame memory (reference frames; §4), in bytes.
    #[serde(default)]
    pub decoder_bytes: u64,
    /// Packets skipped as damaged (and frames the decoder reported damaged).
    #[serde(default)]
    pub corrupt_packets: u64,
    /// The codec (`rawvideo`, `gif`, `h264`, ...).
    #[serde(default)]
    pub codec: String,
    /// Degrees clockwise the frames are turned for display.
    #[serde(default)]
    pub rotation: u32,
}

/// One item of `--entries`: a cached bitmap or texture, or an open video node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Entry {
    /// A video node (`"tier": "video"`); first, since its keys are a superset.
    Video(VideoEntry),
    /// A bitmap or texture.
    Cached(EntryInfo),
}

impl Entry {
    /// `cpu`, `gpu` or `video`.
    pub fn tier(&self) -> &str {
        match self {
            Entry::Video(v) => &v.tier,
            Entry::Cached(e) => &e.tier,
        }
    }
    /// The key (a video node's href).
    pub fn key(&self) -> &str {
        match self {
            Entry::Video(v) => &v.key,
            Entry::Cached(e) => &e.key,
        }
    }
    /// Bytes it holds (a video node's frame buffers and texture).
    pub fn bytes(&self) -> u64 {
        match self {
            Entry::Video(v) => v.bytes,
            Entry::Cached(e) => e.bytes,
        }
    }
    /// Live handles (a video node's frames held by the consumer).
    pub fn refs(&self) -> u64 {
        match self {
            Entry::Video(v) => v.refs,
            Entry::Cached(e) => e.refs,
        }
    }
}

/// A video node as an item of `--entries`: the keys every item has, then the node's own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoEntry {
    /// Always `video`.
    pub tier: String,
    /// The file it plays (the href resolved against `mediadir`, as bitmaps' and textures'
    /// keys are).
    pub key: String,
    /// `cpu_bytes + gpu_bytes`.
    pub bytes: u64,
    /// Frames held by the consumer.
    pub refs: u64,
    /// 0.
    pub idle_ms: u64,
    /// The node's stats.
    #[serde(flatten)]
    pub node: NodeStats,
}

impl VideoEntry {
    /// The `--entries` item of a node.
    pub fn of(node: NodeStats) -> VideoEntry {
        VideoEntry {
            tier: "video".into(),
            key: if node.path.is_empty() {
                node.href.clone()
            } else {
                node.path.clone()
            },
            bytes: node.cpu_bytes + node.gpu_bytes,
            refs: node.held_frames,
            idle_ms: 0,
            node,
        }
    }
}

/// One entry of `--entries`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryInfo {
    /// Which tier.
    pub tier: String,
    /// The key (lookup string).
    pub key: String,
    /// Bytes it counts (§2).
    pub bytes: u64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Pixel format.
    pub format: PixelFormat,
    /// Live handles.
    pub refs: u64,
    /// Milliseconds since its last release (0 while in use).
    pub idle_ms: u64,
    /// Removed (§3.5) while in use: out of the index, still counted until its last handle
    /// drops. In the JSON only when true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub removed: bool,
    /// `[W, H]`: the box of a fitted entry (§1); absent for a full-size one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fit: Option<[u32; 2]>,
}

/// A full snapshot (§6).
///
/// ```
/// let s = texcache::Stats::default();
/// let json = serde_json::to_value(&s).unwrap();
/// assert_eq!(json["cpu"]["used"], 0);
/// assert!(json.get("entries").is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// The CPU tier (decoded bitmaps).
    pub cpu: TierStats,
    /// The GPU tier (textures).
    pub gpu: TierStats,
    /// Video nodes.
    pub video: VideoStats,
    /// Memory pressure: trims and GPU retries (§6 `pressure`).
    #[serde(default)]
    pub pressure: PressureStats,
    /// The process section.
    pub process: ProcessStats,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    /// Entries held, and the open video nodes.
    pub entries: Option<Vec<Entry>>,
    /// Recent memory samples, oldest first (`stats history` on the socket).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub history: Option<Vec<Sample>>,
    /// The CPU tier shared with other processes (§12), when this cache shares it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub shared: Option<SharedStats>,
}

/// The `"shared"` object of §12: the socket, the client processes, the shared memory mapped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SharedStats {
    /// The socket clients connect to.
    pub socket: String,
    /// The connected client processes.
    pub clients: Vec<ClientStats>,
    /// Bytes of shared memory mapped in the owner's process (pictures and clients' hold
    /// tables).
    pub mapped_bytes: u64,
    /// Hits the clients served themselves, from their hold tables, without a message (counted
    /// in `cpu.hits` too).
    #[serde(default)]
    pub client_hits: u64,
}

/// One client process of a shared cache (§12).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientStats {
    /// Its process id.
    pub pid: u32,
    /// Pictures it holds.
    pub held_entries: u64,
    /// Their bytes (each counted once however often it is held).
    pub held_bytes: u64,
    /// Requests it has made (its own hits, served without one, not included).
    pub requests: u64,
    /// Hits it served itself, from its hold table.
    #[serde(default)]
    pub hits: u64,
}

impl Stats {
    /// The point of the memory graph these stats make, taken `t_ms` after the cache was
    /// created.
    pub fn sample(&self, t_ms: u64) -> Sample {
        Sample {
            t_ms,
            cpu_used: self.cpu.used,
            cpu_budget: self.cpu.budget,
            gpu_used: self.gpu.used,
            gpu_budget: self.gpu.budget,
            video_bytes: self.video.cpu_bytes + self.video.gpu_bytes,
            rss: self.process.rss,
        }
    }

    /// The snapshot as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("stats serialise")
    }
    /// Total bytes held: both tiers and video.
    pub fn total_bytes(&self) -> u64 {
        self.cpu.used
            + self.gpu.used
            + self.video.cpu_bytes
            + self.video.gpu_bytes
            + self.video.decoder_bytes
    }
}

/// The resident set size of this process in bytes.
pub fn process_rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|pages| pages * page_size())
        .unwrap_or(0)
}

fn page_size() -> u64 {
    #[cfg(unix)]
    {
        // SAFETY: sysconf has no preconditions.
        let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if p > 0 {
            return p as u64;
        }
    }
    4096
}

fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".into()
    } else {
        format!("{:.0}%", part as f64 * 100.0 / whole as f64)
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<5} {:>11} {:>11} {:>5} {:>11} {:>11} {:>11} {:>7} {:>6} {:>8} {:>8} {:>9} {:>9} {:>9}",
            "tier",
            "budget",
            "used",
            "%",
            "in use",
            "unused",
            "peak",
            "entries",
            "hit%",
            "hits",
            "misses",
            "coalesced",
            "evictions",
            "failures"
        )?;
        for (name, t) in [("cpu", &self.cpu), ("gpu", &self.gpu)] {
            writeln!(
                f,
                "{:<5} {:>11} {:>11} {:>5} {:>11} {:>11} {:>11} {:>7} {:>6} {:>8} {:>8} {:>9} {:>9} {:>9}",
                name,
                ByteSize(t.budget).to_string(),
                ByteSize(t.used).to_string(),
                pct(t.used, t.budget),
                ByteSize(t.in_use).to_string(),
                ByteSize(t.unused).to_string(),
                ByteSize(t.peak_used).to_string(),
                t.entries,
                format!("{:.1}", t.hit_ratio() * 100.0),
                t.hits,
                t.misses,
                t.coalesced,
                t.evictions,
                t.failures
            )?;
            if t.over_budget > 0 {
                writeln!(
                    f,
                    "      {name} is over budget by {} (held by live handles)",
                    ByteSize(t.over_budget)
                )?;
            }
            if let Some(p) = t.budget_percent {
                writeln!(
                    f,
                    "      {name} budget is {p}% of the memory this process may use"
                )?;
            }
        }
        let v = &self.video;
        writeln!(
            f,
            "video {} node(s), {} playing, {} queued frame(s), {} CPU, {} GPU, {} in decoders",
            v.nodes,
            v.playing,
            v.queued_frames,
            ByteSize(v.cpu_bytes),
            ByteSize(v.gpu_bytes),
            ByteSize(v.decoder_bytes)
        )?;
        let p = &self.pressure;
        if p.events + p.gpu_retries > 0 || !p.watcher.is_empty() {
            writeln!(
                f,
                "pressure {} event(s), {} trimmed, {} GPU retr{}; {}",
                p.events,
                ByteSize(p.trimmed_bytes),
                p.gpu_retries,
                if p.gpu_retries == 1 { "y" } else { "ies" },
                if p.watcher.is_empty() {
                    "no watcher"
                } else {
                    &p.watcher
                }
            )?;
        }
        if let Some(sh) = &self.shared {
            writeln!(
                f,
                "shared at {}: {} client(s), {} mapped",
                sh.socket,
                sh.clients.len(),
                ByteSize(sh.mapped_bytes)
            )?;
            if !sh.clients.is_empty() {
                writeln!(
                    f,
                    "  {:>8} {:>8} {:>11} {:>9}",
                    "pid", "held", "held bytes", "requests"
                )?;
            }
            for c in &sh.clients {
                writeln!(
                    f,
                    "  {:>8} {:>8} {:>11} {:>9}",
                    c.pid,
                    c.held_entries,
                    ByteSize(c.held_bytes).to_string(),
                    c.requests
                )?;
            }
        }
        write!(
            f,
            "total {} cached; process RSS {}",
            ByteSize(self.total_bytes()),
            ByteSize(self.process.rss)
        )?;
        if let Some(entries) = &self.entries {
            // One row of text per entry, then every column as wide as its widest cell.
            let head = [
                "tier", "bytes", "size", "fit", "format", "refs", "idle ms", "key",
            ];
            let rows: Vec<[String; 8]> = entries
                .iter()
                .map(|e| {
                    let (size, fit, format, idle, removed) = match e {
                        Entry::Cached(c) => (
                            format!("{}x{}", c.width, c.height),
                            c.fit.map_or("-".into(), |[w, h]| format!("{w}x{h}")),
                            c.format.name(),
                            c.idle_ms,
                            c.removed,
                        ),
                        Entry::Video(v) => (
                            format!("{}x{}", v.node.width, v.node.height),
                            "-".into(),
                            v.node.format.name(),
                            0,
                            false,
                        ),
                    };
                    let key = if removed {
                        format!("{}  (removed, freed when released)", e.key())
                    } else {
                        e.key().to_string()
                    };
                    [
                        e.tier().to_string(),
                        ByteSize(e.bytes()).to_string(),
                        size,
                        fit,
                        format.to_string(),
                        e.refs().to_string(),
                        idle.to_string(),
                        key,
                    ]
                })
                .collect();
            let mut width = head.map(str::len);
            for r in &rows {
                for (w, cell) in width.iter_mut().zip(r) {
                    *w = (*w).max(cell.chars().count());
                }
            }
            let line = |f: &mut fmt::Formatter<'_>, cells: [&str; 8]| -> fmt::Result {
                writeln!(f)?;
                // tier and key read from the left; the numbers and sizes from the right.
                write!(f, "{:<w$}", cells[0], w = width[0])?;
                for (cell, w) in cells[1..7].iter().zip(&width[1..7]) {
                    write!(f, "  {cell:>w$}")?;
                }
                write!(f, "  {}", cells[7])
            };
            line(f, head)?;
            for r in &rows {
                line(f, std::array::from_fn(|i| r[i].as_str()))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod entry_tests {
    use super::*;

    #[test]
    fn entries_of_both_kinds_survive_the_json_a_socket_client_reads() {
        let cached = Entry::Cached(EntryInfo {
            tier: "cpu".into(),
            key: "/m/a.png".into(),
            bytes: 64,
            width: 4,
            height: 4,
            format: PixelFormat::Rgba8,
            refs: 1,
            idle_ms: 0,
            removed: true,
            fit: Some([64, 48]),
        });
        let video = Entry::Video(VideoEntry::of(NodeStats {
            href: "clip.y4m".into(),
            path: "/m/clip.y4m".into(),
            state: State::Playing,
            width: 8,
            height: 6,
            format: PixelFormat::Yuv420,
            queue_length: 8,
            queued_frames: 2,
            held_frames: 1,
            cpu_bytes: 216,
            gpu_bytes: 72,
            next_frame: 3,
            end_of_stream: false,
            dropped_frames: 0,
            position: 0.0,
            decoder_bytes: 0,
            corrupt_packets: 0,
            codec: "rawvideo".into(),
            rotation: 0,
        }));
        let stats = Stats {
            entries: Some(vec![cached, video]),
            ..Stats::default()
        };
        let json: serde_json::Value = serde_json::from_str(&stats.to_json()).unwrap();
        assert_eq!(json["entries"][1]["tier"], "video");
        assert_eq!(json["entries"][1]["state"], "playing");
        assert_eq!(json["entries"][1]["bytes"], 288);
        let back: Stats = serde_json::from_value(json).unwrap();
        assert_eq!(back.entries, stats.entries);

        // The table: one key form (the file's path) for both kinds, every column aligned.
        let table = stats.to_string();
        let rows: Vec<&str> = table
            .lines()
            .skip_while(|l| !l.starts_with("total"))
            .skip(1)
            .collect();
        assert_eq!(rows.len(), 3, "{table}");
        assert!(
            rows[1].ends_with("/m/a.png  (removed, freed when released)"),
            "{table}"
        );
        assert!(rows[2].ends_with("/m/clip.y4m"), "{table}");
        assert!(rows[1].contains("64x48"), "the fit is shown: {table}");
        let key_at = rows[0].find("key").unwrap();
        assert!(
            rows[1..].iter().all(|r| r[key_at..].starts_with('/')),
            "{table}"
        );
        let refs_end = rows[0].find("refs").unwrap() + 4;
        assert!(
            rows[1..].iter().all(|r| r.as_bytes()[refs_end - 1] == b'1'),
            "{table}"
        );
    }
}
