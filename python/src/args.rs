//! Arguments from Python: tiers, sizes, hrefs, fits, config overrides.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::path::PathBuf;
use texcache::{ByteSize, TierKind};

pub(crate) fn tier_of(name: &str) -> PyResult<TierKind> {
    match name {
        "cpu" => Ok(TierKind::Cpu),
        "gpu" => Err(PyValueError::new_err(
            "the Python package has no GPU tier (built without texcache's `gpu` feature)",
        )),
        other => Err(PyValueError::new_err(format!(
            "tier must be \"cpu\", not {other:?}"
        ))),
    }
}

/// A size: an int (bytes) or a string as the config file writes it ("64 MiB").
pub(crate) fn size_of(v: &Bound<'_, PyAny>) -> PyResult<u64> {
    if let Ok(n) = v.extract::<u64>() {
        return Ok(n);
    }
    let s: String = v.extract().map_err(|_| {
        PyValueError::new_err("a size is an int of bytes or a string such as \"64 MiB\"")
    })?;
    s.parse::<ByteSize>()
        .map(|b| b.0)
        .map_err(PyValueError::new_err)
}

/// An href from Python: a `str` (with the surrogate escapes `os.listdir` uses for names that
/// are not UTF-8), `bytes` or an `os.PathLike`; names that are not UTF-8 become hrefs that
/// open those very bytes (`texcache::key::href_of_os`). A plain `str` is borrowed as it is.
pub(crate) fn href_of<'a>(obj: &'a Bound<'_, PyAny>) -> PyResult<std::borrow::Cow<'a, str>> {
    use std::os::unix::ffi::OsStrExt;
    if let Ok(s) = obj.cast::<pyo3::types::PyString>() {
        if let Ok(s) = s.to_str() {
            return Ok(std::borrow::Cow::Borrowed(s));
        }
    }
    let encoded = obj
        .py()
        .import("os")?
        .call_method1("fsencode", (obj,))
        .map_err(|_| {
            pyo3::exceptions::PyTypeError::new_err(format!(
                "an href is a str, bytes or os.PathLike, not {}",
                obj.get_type()
                    .name()
                    .map_or_else(|_| "that".into(), |n| n.to_string())
            ))
        })?;
    let bytes = encoded.cast::<pyo3::types::PyBytes>()?.as_bytes();
    let name = std::ffi::OsStr::from_bytes(bytes);
    Ok(std::borrow::Cow::Owned(
        texcache::key::href_of_os(name).into_owned(),
    ))
}

pub(crate) fn fit_of(fit: Option<(u32, u32)>) -> PyResult<Option<(u32, u32)>> {
    match fit {
        Some((0, _)) | Some((_, 0)) => Err(PyValueError::new_err(
            "fit is (width, height), both at least 1",
        )),
        f => Ok(f),
    }
}

pub(crate) fn json<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?.call_method1("loads", (text,))
}

/// The config's top-level keys and its sections: an override `cpu_budget` is `cpu.budget`.
pub(crate) const SECTIONS: &[&str] = &["cpu", "gpu", "video", "loader", "pressure", "stats"];

/// A TOML value of a Python override.
pub(crate) fn toml_value(v: &Bound<'_, PyAny>) -> PyResult<toml::Value> {
    if let Ok(b) = v.extract::<bool>() {
        return Ok(toml::Value::Boolean(b));
    }
    if let Ok(i) = v.extract::<i64>() {
        return Ok(toml::Value::Integer(i));
    }
    if let Ok(f) = v.extract::<f64>() {
        return Ok(toml::Value::Float(f));
    }
    if let Ok(s) = v.extract::<String>() {
        return Ok(toml::Value::String(s));
    }
    if let Ok(p) = v.extract::<PathBuf>() {
        return Ok(toml::Value::String(p.display().to_string()));
    }
    Err(PyValueError::new_err(format!(
        "a config value is a bool, int, float, str or path, not {}",
        v.get_type().name()?
    )))
}
