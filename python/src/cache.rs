//! `texcache.Cache`, and the functions that need no cache (`decode_file`, `version`).

use crate::args::*;
use crate::bitmap::*;
use crate::buffers::*;
use crate::errors::*;
use crate::video::*;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use texcache::shared::Client;
use texcache::{BitmapHandle, ByteSize};

/// A bounded, shared cache of decoded pictures (§11).
///
/// `Cache(config=None, **overrides)`: `config` is a TOML file (None: `TEXCACHE_CONFIG`, else
/// the defaults); overrides are the config's keys with `_` for `.`: `cpu_budget="1 GiB"`,
/// `mediadir="data"`, `loader_threads=4`.
#[pyclass(frozen, module = "texcache._texcache")]
pub(crate) struct Cache {
    /// This process's cache; `None` for a client of a shared cache (`texcache.connect`).
    local: Option<Arc<texcache::Cache>>,
    /// The process this `Cache` was made in.
    pid: u32,
    /// The socket the tier is shared at (an owner, after `share`) or connected to (a client).
    shared: OnceLock<PathBuf>,
    /// The connection to the owner: a client's from the start; a shared owner's `Cache` in a
    /// process forked from it makes one on its first call (§12).
    client: OnceLock<Client>,
}

impl Cache {
    fn with_local(cache: texcache::Cache) -> Cache {
        Cache {
            local: Some(Arc::new(cache)),
            pid: std::process::id(),
            shared: OnceLock::new(),
            client: OnceLock::new(),
        }
    }

    /// The client to ask instead of a cache of this process's: a client's connection, or, in a
    /// process forked from a shared owner, a new connection to it.
    fn client(&self) -> PyResult<Option<&Client>> {
        if let Some(c) = self.client.get() {
            return Ok(Some(c));
        }
        if self.local.is_none() || std::process::id() == self.pid {
            return Ok(None);
        }
        let Some(path) = self.shared.get() else {
            return Ok(None);
        };
        let c = texcache::shared::connect(path).map_err(py_err)?;
        let _ = self.client.set(c);
        Ok(self.client.get())
    }

    /// This process's cache, for the calls a client of a shared cache does not have.
    fn cache(&self) -> PyResult<&Arc<texcache::Cache>> {
        self.local.as_ref().ok_or_else(|| {
            py_err(texcache::Error::new(
                "shared cache",
                texcache::ErrorKind::Unsupported {
                    detail: "a client of a shared cache has only the calls for pictures (bitmap, \
                             array, prefetch, remove, stats); the rest is the owner's"
                        .into(),
                },
            ))
        })
    }

    /// The picture of `href`: from the owner, for a client; else a hit or a load here.
    fn acquire_held(&self, py: Python<'_>, href: &str, fit: Option<(u32, u32)>) -> PyResult<Held> {
        if let Some(client) = self.client()? {
            let fit = fit_of(fit)?;
            let s = py
                .detach(|| match fit {
                    None => client.bitmap(href),
                    Some((w, h)) => client.bitmap_fit(href, w, h),
                })
                .map_err(py_err)?;
            return Ok(Held::Shared(s));
        }
        self.acquire(py, href, fit).map(Held::Local)
    }

    /// A hit, or a load without the GIL (§3.1).
    fn acquire(
        &self,
        py: Python<'_>,
        href: &str,
        fit: Option<(u32, u32)>,
    ) -> PyResult<BitmapHandle> {
        let fit = fit_of(fit)?;
        let c = self.cache()?;
        // A resident picture is a hit without giving up the GIL (which costs more than it).
        if fit.is_none() {
            if let Some(h) = c.bitmap_if_resident(href) {
                return Ok(h);
            }
        }
        py.detach(|| match fit {
            None => c.bitmap(href),
            Some((w, h)) => c.bitmap_fit(href, w, h),
        })
        .map_err(py_err)
    }
}

#[pymethods]
impl Cache {
    #[new]
    #[pyo3(signature = (config=None, **overrides))]
    fn new(
        py: Python<'_>,
        config: Option<PathBuf>,
        overrides: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Cache> {
        let cfg = match &config {
            Some(f) => texcache::Config::load(f),
            None => texcache::Config::from_env_or_default(),
        }
        .map_err(py_err)?;
        let cfg = match overrides.filter(|o| !o.is_empty()) {
            None => cfg,
            Some(o) => {
                let mut table: toml::Table = toml::from_str(&cfg.to_toml())
                    .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
                for (k, v) in o.iter() {
                    let k: String = k.extract()?;
                    let v = toml_value(&v)?;
                    match k.split_once('_').filter(|(s, _)| SECTIONS.contains(s)) {
                        Some((section, key)) => {
                            let t = table
                                .entry(section)
                                .or_insert_with(|| toml::Value::Table(Default::default()));
                            if let Some(t) = t.as_table_mut() {
                                t.insert(key.to_string(), v);
                            }
                        }
                        None => {
                            table.insert(k, v);
                        }
                    }
                }
                let name = config
                    .as_ref()
                    .map_or("<overrides>".into(), |c| c.display().to_string());
                texcache::Config::parse(&toml::to_string(&table).expect("a table"), name)
                    .map_err(py_err)?
            }
        };
        let cache = py.detach(|| texcache::Cache::new(cfg)).map_err(py_err)?;
        Ok(Cache::with_local(cache))
    }

    /// The decoded picture `href` (fitted into `fit=(w, h)` when given): a hit, or a load
    /// (decoded without the GIL, or waited for if another thread is loading it).
    #[pyo3(signature = (href, fit=None))]
    fn bitmap(
        &self,
        py: Python<'_>,
        href: &Bound<'_, PyAny>,
        fit: Option<(u32, u32)>,
    ) -> PyResult<Bitmap> {
        let href = href_of(href)?;
        Ok(match self.acquire_held(py, &href, fit)? {
            Held::Local(h) => Bitmap::of(h),
            Held::Shared(s) => Bitmap::of_shared(s, &href),
        })
    }

    /// `numpy.asarray(cache.bitmap(href, fit))` in one call, without the `Bitmap` and the
    /// buffer protocol between: a read-only array of the cached pixels whose base holds the
    /// entry until the array (and every view of it) is collected. The fastest hit.
    #[pyo3(signature = (href, fit=None))]
    fn array<'py>(
        &self,
        py: Python<'py>,
        href: &Bound<'py, PyAny>,
        fit: Option<(u32, u32)>,
    ) -> PyResult<Bound<'py, PyAny>> {
        array(
            py,
            Pixels::of_bitmap(self.acquire_held(py, &href_of(href)?, fit)?),
        )
    }

    /// Decodes `hrefs` in the background (`loader.threads`), so later requests hit.
    #[pyo3(signature = (hrefs, fit=None))]
    fn prefetch(&self, hrefs: &Bound<'_, PyAny>, fit: Option<(u32, u32)>) -> PyResult<()> {
        let fit = fit_of(fit)?;
        // One href (a str, bytes or path), or an iterable of them.
        let one = hrefs.is_instance_of::<pyo3::types::PyString>()
            || hrefs.is_instance_of::<pyo3::types::PyBytes>()
            || hrefs.hasattr("__fspath__")?;
        let hrefs: Vec<String> = if one {
            vec![href_of(hrefs)?.into_owned()]
        } else {
            hrefs
                .try_iter()?
                .map(|h| h.and_then(|h| Ok(href_of(&h)?.into_owned())))
                .collect::<PyResult<_>>()?
        };
        match self.client()? {
            Some(client) => client.prefetch(hrefs, fit),
            None => self.cache()?.prefetch(hrefs, fit),
        }
        .map_err(py_err)
    }

    /// Blocks (without the GIL) until every prefetch queued so far is done.
    fn wait_prefetch(&self, py: Python<'_>) -> PyResult<()> {
        let c = self.cache()?;
        py.detach(|| c.wait_prefetch());
        Ok(())
    }

    /// Removes `href` (every size of it) from the cache (§3.5); whether anything was there.
    fn remove(&self, href: &Bound<'_, PyAny>) -> PyResult<bool> {
        let href = href_of(href)?;
        match self.client()? {
            Some(client) => client.remove(&href).map_err(py_err),
            None => Ok(self.cache()?.remove(&href)),
        }
    }

    /// Evicts unused entries of `tier` ("cpu") until it uses at most `size` (§3.6).
    fn trim<'py>(
        &self,
        py: Python<'py>,
        tier: &str,
        size: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (t, b) = (tier_of(tier)?, size_of(size)?);
        let s = self.cache()?.trim(t, b);
        json(py, &serde_json::to_string(&s).expect("stats serialise"))
    }

    /// Sets the budget of `tier` ("cpu"): shrinking evicts at once (§3.7).
    fn set_budget<'py>(
        &self,
        py: Python<'py>,
        tier: &str,
        size: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (t, b) = (tier_of(tier)?, size_of(size)?);
        let s = self.cache()?.set_budget(t, b);
        json(py, &serde_json::to_string(&s).expect("stats serialise"))
    }

    /// The §6 statistics as a dict (`entries=True` adds the entries).
    #[pyo3(signature = (entries=false))]
    fn stats<'py>(&self, py: Python<'py>, entries: bool) -> PyResult<Bound<'py, PyAny>> {
        if let Some(client) = self.client()? {
            let s = py.detach(|| client.stats()).map_err(py_err)?;
            return json(py, &s.to_json());
        }
        let c = self.cache()?;
        let s = py.detach(|| {
            if entries {
                c.stats_with_entries()
            } else {
                c.stats()
            }
        });
        json(py, &s.to_json())
    }

    /// Opens the video `href` (stopped: the header only).
    fn video(&self, py: Python<'_>, href: &Bound<'_, PyAny>) -> PyResult<Video> {
        let c = self.cache()?;
        let href = href_of(href)?;
        let node = py.detach(|| c.video(&href)).map_err(py_err)?;
        Ok(Video::of(node))
    }

    /// Records every acquire and release to the trace file `path` (§7).
    fn record_trace(&self, path: PathBuf) -> PyResult<()> {
        self.cache()?.record_trace(&path).map_err(py_err)
    }

    /// Serves the control socket at `path` (§9), for `texcache stats --socket PATH`.
    fn serve(&self, path: PathBuf) -> PyResult<()> {
        self.cache()?.serve(&path).map_err(py_err)
    }

    /// Shares this cache's pictures with the other processes of the machine (§12): they
    /// `texcache.connect(path)` (or unpickle this `Cache`, or use it after `fork`) and view the
    /// pictures this process decodes, one decode and one copy for all. `path` is the socket's
    /// (None: a private one); returns it.
    #[pyo3(signature = (path=None))]
    fn share(&self, py: Python<'_>, path: Option<PathBuf>) -> PyResult<String> {
        let c = self.cache()?;
        let path = path.unwrap_or_else(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            std::env::temp_dir().join(format!("texcache-{}-{nanos:08x}.sock", std::process::id()))
        });
        py.detach(|| c.share(&path)).map_err(py_err)?;
        let _ = self.shared.set(path.clone());
        Ok(path.display().to_string())
    }

    /// The socket of the shared cache: where this cache shares its tier, or the owner this
    /// client connects to; None when not shared.
    #[getter]
    fn shared(&self) -> Option<String> {
        self.shared.get().map(|p| p.display().to_string())
    }

    /// A shared cache pickles to a client of its owner (`spawn` and `forkserver` workers).
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, (String,))> {
        let Some(path) = self.shared.get() else {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "only a shared texcache.Cache can be pickled (call cache.share() first): \
                 another process then gets a client of it",
            ));
        };
        let connect = py.import("texcache")?.getattr("connect")?;
        Ok((connect, (path.display().to_string(),)))
    }

    /// The key `href` resolves to.
    fn key(&self, href: &Bound<'_, PyAny>) -> PyResult<String> {
        Ok(self.cache()?.key(&href_of(href)?).to_string())
    }

    fn __repr__(&self) -> String {
        let Some(c) = &self.local else {
            return format!(
                "<texcache.Cache client of {}>",
                self.shared
                    .get()
                    .map_or("?".into(), |p| p.display().to_string())
            );
        };
        let s = c.stats();
        format!(
            "<texcache.Cache cpu {} of {}, {} entries>",
            ByteSize(s.cpu.used),
            ByteSize(s.cpu.budget),
            s.cpu.entries
        )
    }
}

/// A client of the shared cache whose owner serves `path` (§12): a `Cache` with the calls for
/// pictures (bitmap, array, prefetch, remove, stats), its pixels the owner's, decoded once.
#[pyfunction]
pub(crate) fn connect(py: Python<'_>, path: PathBuf) -> PyResult<Cache> {
    let client = py
        .detach(|| texcache::shared::connect(&path))
        .map_err(py_err)?;
    let (shared, c) = (OnceLock::new(), OnceLock::new());
    let _ = shared.set(path);
    let _ = c.set(client);
    Ok(Cache {
        local: None,
        pid: std::process::id(),
        shared,
        client: c,
    })
}

/// Decodes the picture at `path` as the cache would (EXIF orientation, `fit`, `max_pixels`),
/// without caching it: a new (h, w, 4) or (h, w) uint8 array.
#[pyfunction]
#[pyo3(signature = (path, fit=None, max_pixels=268_435_456, orientation=true))]
pub(crate) fn decode_file<'py>(
    py: Python<'py>,
    path: PathBuf,
    fit: Option<(u32, u32)>,
    max_pixels: u64,
    orientation: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let options = texcache::picture::DecodeOptions {
        max_pixels,
        orientation,
        fit: fit_of(fit)?,
    };
    let href = path.display().to_string();
    let bm = py
        .detach(|| texcache::picture::load_file(&href, &path, None, &options))
        .map_err(py_err)?;
    let (w, h, bpp) = (
        bm.width() as i64,
        bm.height() as i64,
        bm.bytes_per_pixel() as i64,
    );
    let (shape, strides) = layout(w, h, bpp);
    let ptr = bm.pixels().as_ptr();
    array(
        py,
        Pixels {
            owner: Owner::Decoded(bm),
            ptr,
            shape,
            strides,
        },
    )
}

/// The version of the texcache library inside.
#[pyfunction]
pub(crate) fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}
