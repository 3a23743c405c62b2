//! texcache's errors as Python exceptions: the class of `texcache` named for the error's kind
//! (§10), with the message (which names the href) and `href` set.
//!
//! The classes are defined in Python (`pysrc/texcache/__init__.py`, so that each also derives
//! from the built-in exception it refines: `NotFound` is a `FileNotFoundError`) and looked up
//! once, on the first error, then kept.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;
use texcache::{Error, ErrorKind};

/// The exception classes, in the order of [`CLASSES`].
static RESOLVED: PyOnceLock<Vec<Py<PyType>>> = PyOnceLock::new();

/// The class names of `texcache`'s exceptions; the last, `Error`, is every other kind's.
const CLASSES: [&str; 18] = [
    "NotFound",
    "PermissionDenied",
    "NotAFile",
    "ReadError",
    "Unsupported",
    "Corrupt",
    "TooManyPixels",
    "OutsideMediadir",
    "GpuError",
    "GpuOutOfMemory",
    "LoadPanicked",
    "ConfigError",
    "TraceError",
    "SocketError",
    "ThreadError",
    "VideoError",
    "OwnerGone",
    "Error",
];

/// The index in [`CLASSES`] of the class for `kind`.
fn class_of(kind: &ErrorKind) -> usize {
    match kind {
        ErrorKind::NotFound { .. } => 0,
        ErrorKind::Permission { .. } => 1,
        ErrorKind::NotAFile { .. } => 2,
        ErrorKind::Io { .. } => 3,
        ErrorKind::Unsupported { .. } => 4,
        ErrorKind::Corrupt { .. } => 5,
        ErrorKind::TooManyPixels { .. } => 6,
        ErrorKind::OutsideMediadir { .. } => 7,
        ErrorKind::Gpu { .. } => 8,
        ErrorKind::GpuOutOfMemory { .. } => 9,
        ErrorKind::LoadPanicked { .. } => 10,
        ErrorKind::Config { .. } => 11,
        ErrorKind::Trace { .. } => 12,
        ErrorKind::Socket { .. } => 13,
        ErrorKind::Thread { .. } => 14,
        ErrorKind::Video { .. } => 15,
        ErrorKind::OwnerGone { .. } => 16,
        _ => 17,
    }
}

/// The Python exception of a texcache error.
pub(crate) fn py_err(e: Error) -> PyErr {
    let message = e.to_string();
    Python::attach(|py| {
        let made = (|| -> PyResult<PyErr> {
            let classes = RESOLVED.get_or_try_init(py, || -> PyResult<_> {
                let module = py.import("texcache")?;
                CLASSES
                    .iter()
                    .map(|name| Ok(module.getattr(*name)?.cast_into::<PyType>()?.unbind()))
                    .collect()
            })?;
            let value = classes[class_of(e.kind())]
                .bind(py)
                .call1((message.clone(),))?;
            value.setattr("href", e.href())?;
            Ok(PyErr::from_value(value))
        })();
        made.unwrap_or_else(|_| PyRuntimeError::new_err(message))
    })
}
