//! The TOML configuration file (docs/reference.md).
//!
//! Every key is optional and defaults to the value in `config/texcache.toml`. Unknown keys are
//! errors, so a typo is never silently ignored; every error names the file, the line and the
//! key. [`Config::load`] reads a file, [`Config::from_env_or_default`] honours
//! `TEXCACHE_CONFIG`.

use crate::error::{Error, ErrorKind, Result};
use crate::units::{Budget, ByteSize};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The whole configuration.
///
/// ```
/// let cfg = texcache::Config::parse("[cpu]\nbudget = \"64 MiB\"\n", "inline.toml").unwrap();
/// assert_eq!(cfg.cpu.budget.0, 64 << 20);
/// assert_eq!(cfg.gpu.budget.0, 512 << 20); // default
///
/// let err = texcache::Config::parse("[cpu]\nbudgett = 1\n", "bad.toml").unwrap_err();
/// assert!(err.to_string().starts_with("bad.toml:2: cpu.budgett"));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Base directory for relative hrefs.
    pub mediadir: PathBuf,
    /// Reject hrefs that resolve outside `mediadir`, symlinks included.
    pub confine: bool,
    /// `[cpu]`: the decoded-bitmap tier.
    pub cpu: CpuConfig,
    /// `[gpu]`: the texture tier.
    pub gpu: GpuConfig,
    /// `[video]`: video nodes.
    pub video: VideoConfig,
    /// `[loader]`: decoding threads and limits.
    pub loader: LoaderConfig,
    /// `[pressure]`: giving memory back under pressure.
    pub pressure: PressureConfig,
    /// `[stats]`: socket, trace recording, history.
    pub stats: StatsConfig,
    /// `[shared]`: the CPU tier shared with other processes (§12).
    pub shared: SharedConfig,
}

/// `[shared]`: sharing the CPU tier with other processes of the machine (§12).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SharedConfig {
    /// The socket clients connect to (`texcache::shared::connect`); empty: not shared.
    pub socket: PathBuf,
}

/// `[pressure]`: what the cache does when the system runs short of memory (see
/// [`crate::observe::pressure`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PressureConfig {
    /// On Linux memory pressure (PSI), trim unused CPU entries: half of their bytes on "some"
    /// pressure, all on "full".
    pub trim: bool,
    /// A texture upload that fails for GPU memory evicts unused textures (half the tier's
    /// unused bytes, then all) and tries again before it fails.
    pub gpu_retry: bool,
    /// "some" pressure: tasks stalled on memory for this many milliseconds within a window.
    pub some_ms: u64,
    /// "full" pressure: every task stalled for this many milliseconds within a window.
    pub full_ms: u64,
    /// The PSI window, in milliseconds (500 to 10,000; multiples of 2,000 work for
    /// unprivileged processes too).
    pub window_ms: u64,
}

impl Default for PressureConfig {
    fn default() -> Self {
        PressureConfig {
            trim: true,
            gpu_retry: true,
            some_ms: 150,
            full_ms: 100,
            window_ms: 2000,
        }
    }
}

/// `[cpu]`: the decoded-bitmap tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CpuConfig {
    /// Bytes this tier may hold (§2), or a percentage of the memory this process may use.
    pub budget: Budget,
    /// 0 = unlimited.
    pub max_entries: u64,
}

/// `[gpu]`: the texture tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GpuConfig {
    /// Bytes this tier may hold (§2).
    pub budget: ByteSize,
    /// 0 = unlimited.
    pub max_entries: u64,
    /// Give every texture a full mip chain, rendered on the GPU.
    pub mipmaps: bool,
    /// Keep the bitmap cached (unused) after uploading it.
    pub keep_cpu_copy: bool,
    /// The wgpu backend texcache opens a device on.
    pub backend: Backend,
}

/// Which wgpu backend texcache opens when it creates its own device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    /// The best adapter of any primary backend, or GL.
    Auto,
    /// Vulkan only.
    Vulkan,
    /// OpenGL (ES) only.
    Gl,
    /// Metal only.
    Metal,
    /// Direct3D 12 only.
    Dx12,
}

/// `[video]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VideoConfig {
    /// Decode ahead on a thread.
    pub threaded: bool,
    /// Frames decoded ahead (the node's frame-buffer limit).
    pub queue_length: usize,
    /// Threads of each FFmpeg decoder (feature `ffmpeg`); 0: FFmpeg's choice (one per core,
    /// as the codec allows).
    pub decoder_threads: usize,
}

/// `[loader]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoaderConfig {
    /// Background decode threads for prefetching.
    pub threads: usize,
    /// Images with more pixels are refused from their header.
    pub max_pixels: u64,
    /// Apply the EXIF orientation of JPEG, PNG, WebP and TIFF files, so a bitmap is the picture
    /// upright (§2a).
    pub orientation: bool,
}

/// `[stats]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatsConfig {
    /// Control socket path; empty = none.
    pub socket: PathBuf,
    /// Trace recording path; empty = none.
    pub trace: PathBuf,
    /// Milliseconds between memory-history samples; 0 = no sampler thread (samples only from
    /// [`crate::Cache::sample_history`]).
    pub history_interval_ms: u64,
    /// Samples the history keeps (the oldest are dropped); 0 = no history.
    pub history_length: usize,
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            socket: PathBuf::new(),
            trace: PathBuf::new(),
            history_interval_ms: 1000,
            history_length: 600,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mediadir: PathBuf::from("."),
            confine: false,
            cpu: CpuConfig::default(),
            gpu: GpuConfig::default(),
            video: VideoConfig::default(),
            loader: LoaderConfig::default(),
            pressure: PressureConfig::default(),
            stats: StatsConfig::default(),
            shared: SharedConfig::default(),
        }
    }
}
impl Default for CpuConfig {
    fn default() -> Self {
        CpuConfig {
            budget: Budget(256 << 20, None),
            max_entries: 0,
        }
    }
}
impl Default for GpuConfig {
    fn default() -> Self {
        GpuConfig {
            budget: ByteSize(512 << 20),
            max_entries: 0,
            mipmaps: false,
            keep_cpu_copy: true,
            backend: Backend::Auto,
        }
    }
}
impl Default for VideoConfig {
    fn default() -> Self {
        VideoConfig {
            threaded: true,
            queue_length: 8,
            decoder_threads: 0,
        }
    }
}
impl Default for LoaderConfig {
    fn default() -> Self {
        LoaderConfig {
            threads: 2,
            max_pixels: 268_435_456,
            orientation: true,
        }
    }
}

impl Config {
    /// Parses TOML text; `file` only names the source in errors. Relative `mediadir`s stay
    /// relative here (see [`Config::load`]).
    pub fn parse(text: &str, file: impl AsRef<Path>) -> Result<Config> {
        let file = file.as_ref();
        let mut cfg: Config = toml::from_str(text).map_err(|e| {
            let span = e.span();
            let line = span.as_ref().map(|s| line_of(text, s.start));
            let msg = e.message().trim().to_string();
            let mut key = span.as_ref().and_then(|s| key_path(text, s.start));
            // Inside an inline table (`cpu = { bogus = 1 }`) the span is the table's: name the
            // unknown key itself.
            if let Some(field) = msg
                .strip_prefix("unknown field `")
                .and_then(|m| m.split('`').next())
            {
                key = match key {
                    Some(k) if k != field && !k.ends_with(&format!(".{field}")) => {
                        Some(format!("{k}.{field}"))
                    }
                    other => other,
                };
            }
            let message = match key {
                Some(k) => format!("{k}: {msg}"),
                None => msg,
            };
            Error::from(ErrorKind::Config {
                file: file.to_owned(),
                line,
                message,
            })
        })?;
        cfg.validate(file)?;
        cfg.resolve_budget(Path::new("/"), file)?;
        Ok(cfg)
    }

    /// Works out a percentage `cpu.budget` in bytes, from the memory this process may use as
    /// read under `root` ([`crate::observe::pressure::memory_limit`]; `/` for the real system). Done
    /// when a file is parsed, and again by [`crate::Cache::new`] and
    /// [`crate::Cache::reload_config`].
    pub fn resolve_budget(&mut self, root: &Path, file: impl AsRef<Path>) -> Result<()> {
        if self.cpu.budget.1.is_none() {
            return Ok(());
        }
        let limit = crate::observe::pressure::memory_limit(root).map_err(|e| {
            Error::from(ErrorKind::Config {
                file: file.as_ref().to_owned(),
                line: None,
                message: format!(
                    "cpu.budget: {}: cannot read the memory this process may use: {e}",
                    self.cpu.budget
                ),
            })
        })?;
        self.cpu.budget = self.cpu.budget.resolved(limit.bytes);
        Ok(())
    }

    /// Reads and parses `file`. A relative `mediadir` is taken relative to the file's folder.
    pub fn load(file: impl AsRef<Path>) -> Result<Config> {
        let file = file.as_ref();
        let text = crate::os::file::read_text(file).map_err(|e| {
            Error::from(ErrorKind::Config {
                file: file.to_owned(),
                line: e.line(),
                message: format!("cannot read: {e}"),
            })
        })?;
        let mut cfg = Config::parse(&text, file)?;
        if cfg.mediadir.is_relative() {
            if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
                cfg.mediadir = dir.join(&cfg.mediadir);
            }
        }
        Ok(cfg)
    }

    /// [`Config::load`], and what in the file is valid but probably not what its writer meant
    /// (what `texcache check-config` prints as warnings): a size whose unit is spelled unlike
    /// the documented ones (`"64 Mib"`, [`ByteSize::spelling_warning`]), a `mediadir` that does
    /// not exist or is not a folder, a `stats.socket` or `stats.trace` whose folder does not
    /// exist.
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("texcache-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let file = dir.join("t.toml");
    /// std::fs::write(&file, "mediadir = \"nowhere\"\n[cpu]\nbudget = \"64 Mib\"\n").unwrap();
    /// let (cfg, warnings) = texcache::Config::load_checked(&file).unwrap();
    /// assert_eq!(cfg.cpu.budget.0, 64 << 20);
    /// assert_eq!(warnings.len(), 2, "{warnings:?}");
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn load_checked(file: impl AsRef<Path>) -> Result<(Config, Vec<String>)> {
        let file = file.as_ref();
        let cfg = Config::load(file)?;
        let mut warnings = Vec::new();
        // The file parsed, so it reads again; only its size strings are looked at.
        let table: toml::Table = crate::os::file::read_text(file)
            .ok()
            .and_then(|t| toml::from_str(&t).ok())
            .unwrap_or_default();
        for section in ["cpu", "gpu"] {
            let value = table
                .get(section)
                .and_then(|t| t.get("budget"))
                .and_then(|v| v.as_str());
            if let Some(w) = value.and_then(ByteSize::spelling_warning) {
                warnings.push(format!("{section}.budget: {w}"));
            }
        }
        match std::fs::metadata(&cfg.mediadir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => warnings.push(format!(
                "mediadir: {} is not a folder: every relative href will fail",
                cfg.mediadir.display()
            )),
            Err(e) => warnings.push(format!(
                "mediadir: {}: {e}: every relative href will fail to load",
                cfg.mediadir.display()
            )),
        }
        for (key, path) in [
            ("stats.socket", &cfg.stats.socket),
            ("stats.trace", &cfg.stats.trace),
            ("shared.socket", &cfg.shared.socket),
        ] {
            let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
                continue;
            };
            if !dir.is_dir() {
                warnings.push(format!(
                    "{key}: the folder {} does not exist: the cache will fail to start",
                    dir.display()
                ));
            }
        }
        Ok((cfg, warnings))
    }

    /// The file `TEXCACHE_CONFIG` names, if it is set and not empty.
    pub fn env_file() -> Option<PathBuf> {
        std::env::var_os("TEXCACHE_CONFIG")
            .filter(|f| !f.is_empty())
            .map(PathBuf::from)
    }

    /// The file named by `TEXCACHE_CONFIG` if set, else the built-in defaults.
    pub fn from_env_or_default() -> Result<Config> {
        match Config::env_file() {
            Some(f) => Config::load(f),
            None => Ok(Config::default()),
        }
    }

    /// The effective settings as TOML (what `texcache check-config` prints).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }

    /// Checks every value a parsed file can still get wrong: counts are bounded, so no
    /// setting can make [`crate::Cache::new`] allocate without limit or start threads without
    /// end. The bounds are [`Config::MAX_QUEUE_LENGTH`], [`Config::MAX_THREADS`] and
    /// [`Config::MAX_HISTORY_LENGTH`]; the error names the key and its bound.
    pub fn validate(&self, file: impl AsRef<Path>) -> Result<()> {
        let file = file.as_ref();
        let bad = |key: &str, message: String| {
            Error::from(ErrorKind::Config {
                file: file.to_owned(),
                line: None,
                message: format!("{key}: {message}"),
            })
        };
        let bounded = |key: &str, value: u64, min: u64, max: u64| {
            if value < min || value > max {
                return Err(bad(
                    key,
                    format!("{value} is out of range (from {min} to {max})"),
                ));
            }
            Ok(())
        };
        bounded(
            "video.queue_length",
            self.video.queue_length as u64,
            1,
            Self::MAX_QUEUE_LENGTH as u64,
        )?;
        bounded(
            "video.decoder_threads",
            self.video.decoder_threads as u64,
            0,
            64,
        )?;
        bounded(
            "loader.threads",
            self.loader.threads as u64,
            0,
            Self::MAX_THREADS as u64,
        )?;
        bounded("loader.max_pixels", self.loader.max_pixels, 1, u64::MAX)?;
        let p = &self.pressure;
        bounded("pressure.window_ms", p.window_ms, 500, 10_000)?;
        bounded("pressure.some_ms", p.some_ms, 1, p.window_ms)?;
        bounded("pressure.full_ms", p.full_ms, 1, p.window_ms)?;
        bounded(
            "stats.history_length",
            self.stats.history_length as u64,
            0,
            Self::MAX_HISTORY_LENGTH as u64,
        )?;
        Ok(())
    }

    /// The longest `video.queue_length`: frames a node may decode ahead.
    pub const MAX_QUEUE_LENGTH: usize = 1024;
    /// The most `loader.threads`.
    pub const MAX_THREADS: usize = 1024;
    /// The most samples `stats.history_length` may keep (about 100 bytes each).
    pub const MAX_HISTORY_LENGTH: usize = 1_000_000;
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

/// The dotted key an error offset points into: the nearest `[table]` header above plus the key
/// on the offending line.
fn key_path(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let key = line
        .split('=')
        .next()
        .map(str::trim)
        .filter(|k| !k.is_empty() && !k.starts_with('['));
    let table = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && l.ends_with(']'))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    match (table, key) {
        (Some(t), Some(k)) => Some(format!("{t}.{k}")),
        (None, Some(k)) => Some(k.to_string()),
        (Some(t), None) if line.trim().starts_with('[') => Some(t),
        _ => line
            .trim()
            .strip_prefix('[')
            .map(|l| l.trim_end_matches(']').to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_default_file_equals_builtin_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/texcache.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(Config::parse(&text, &path).unwrap(), Config::default());
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let cases = [
            (
                "[gpu]\nmipmaps = true\nbackend = \"glide\"\n",
                "x.toml:3: gpu.backend",
            ),
            ("confine = 3\n", "x.toml:1: confine"),
            ("[cpu]\nbudget = \"12 parsecs\"\n", "x.toml:2: cpu.budget"),
            ("[cpu]\nbudget = -5\n", "x.toml:2: cpu.budget"),
            (
                "[video]\nqueue_length = 4\nthreded = false\n",
                "x.toml:3: video.threded",
            ),
            ("[vidoe]\nthreaded = false\n", "x.toml:1: vidoe"),
        ];
        for (text, want) in cases {
            let err = Config::parse(text, "x.toml").unwrap_err().to_string();
            assert!(
                err.starts_with(want),
                "{text:?}: got {err:?}, want prefix {want:?}"
            );
        }
        let err = Config::parse("[video]\nqueue_length = 0\n", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("video.queue_length"), "{err}");
    }

    #[test]
    fn sizes_accept_integers_and_units() {
        let cfg = Config::parse("[cpu]\nbudget = 1000\n[gpu]\nbudget = \"2 GB\"\n", "x").unwrap();
        assert_eq!(cfg.cpu.budget.0, 1000);
        assert_eq!(cfg.gpu.budget.0, 2_000_000_000);
    }
}
