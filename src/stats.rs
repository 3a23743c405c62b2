//! Memory statistics (SPEC §6): the snapshot every dump prints, as JSON and as a table.
//!
//! [`Stats`] serialises to exactly the §6 object; its `Display` is the readable table of
//! `texcache stats` and `texcache replay`.

use crate::units::ByteSize;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Counters of one tier. Every byte figure is exact (SPEC §2):
/// `used == in_use + unused` and `over_budget == max(0, used - budget)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct TierStats {
    /// Bytes this tier may hold (SPEC §2).
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
    /// Loads (SPEC §3.1).
    pub misses: u64,
    /// Acquires that waited for another caller's load of the same key.
    pub coalesced: u64,
    /// Entries evicted (SPEC §3.4).
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

/// One entry of `--entries`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryInfo {
    /// Which tier.
    pub tier: String,
    /// The key (lookup string).
    pub key: String,
    /// Bytes it counts (SPEC §2).
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
}

/// A full snapshot (SPEC §6).
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
    /// Memory pressure: trims and GPU retries (SPEC §6 `pressure`).
    #[serde(default)]
    pub pressure: PressureStats,
    /// The process section.
    pub process: ProcessStats,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    /// Entries held.
    pub entries: Option<Vec<serde_json::Value>>,
    /// Recent memory samples, oldest first (`stats history` on the socket).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub history: Option<Vec<crate::history::Sample>>,
}

impl Stats {
    /// The snapshot as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("stats serialise")
    }
    /// Total bytes held: both tiers and video.
    pub fn total_bytes(&self) -> u64 {
        self.cpu.used + self.gpu.used + self.video.cpu_bytes + self.video.gpu_bytes
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
            "{:<5} {:>11} {:>11} {:>5} {:>11} {:>11} {:>11} {:>7} {:>6} {:>8} {:>8} {:>9} {:>9}",
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
            "evictions",
            "failures"
        )?;
        for (name, t) in [("cpu", &self.cpu), ("gpu", &self.gpu)] {
            writeln!(
                f,
                "{:<5} {:>11} {:>11} {:>5} {:>11} {:>11} {:>11} {:>7} {:>6} {:>8} {:>8} {:>9} {:>9}",
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
            "video {} node(s), {} playing, {} queued frame(s), {} CPU, {} GPU",
            v.nodes,
            v.playing,
            v.queued_frames,
            ByteSize(v.cpu_bytes),
            ByteSize(v.gpu_bytes)
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
        write!(
            f,
            "total {} cached; process RSS {}",
            ByteSize(self.total_bytes()),
            ByteSize(self.process.rss)
        )?;
        if let Some(entries) = &self.entries {
            writeln!(f)?;
            write!(
                f,
                "{:<5} {:>11} {:>11} {:>7} {:>5} {:>9}  key",
                "tier", "bytes", "size", "format", "refs", "idle ms"
            )?;
            for e in entries {
                let g = |k: &str| e.get(k).cloned().unwrap_or_default();
                write!(
                    f,
                    "\n{:<5} {:>11} {:>11} {:>7} {:>5} {:>9}  {}",
                    g("tier").as_str().unwrap_or("video"),
                    ByteSize(g("bytes").as_u64().unwrap_or(0)).to_string(),
                    format!("{}x{}", g("width"), g("height")),
                    g("format").as_str().unwrap_or(""),
                    g("refs"),
                    g("idle_ms"),
                    g("key").as_str().unwrap_or("")
                )?;
                if g("removed").as_bool() == Some(true) {
                    write!(f, "  (removed, freed when released)")?;
                }
            }
        }
        Ok(())
    }
}
