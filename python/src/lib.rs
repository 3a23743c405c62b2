//! `texcache._texcache`: the Python package's extension module (§11 of docs/reference.md). It
//! wraps the Rust library and adds no cache logic of its own; `pysrc/texcache/__init__.py`
//! re-exports it and defines the exception classes. One file per family of classes:
//!
//! - `cache.rs`: `Cache`, `decode_file`, `version`;
//! - `bitmap.rs`: `Bitmap`; `video.rs`: `Video`, `Frame`;
//! - `buffers.rs`: the memory behind views and numpy arrays over it; `dlpack.rs`: DLPack;
//! - `errors.rs`: texcache's errors as Python exceptions; `args.rs`: arguments from Python.
//!
//! # Zero copy, and why the views are safe
//!
//! Pixels leave the cache without a copy in three ways:
//! - `numpy.asarray(bitmap)` (or `memoryview`, or any reader of buffers) goes through
//!   `Bitmap.__getbuffer__`, the buffer protocol (in the stable ABI from Python 3.11, which
//!   the one abi3 wheel targets): a read-only view of the entry's pixels. Every export holds a
//!   reference to the `Bitmap` (`view.obj`) and is counted in `Bitmap::exports`; the `Bitmap`
//!   keeps its handle while it is not released or any export lives, so the pointer handed out
//!   is valid until `__releasebuffer__` of that export. `release()` drops the handle at once
//!   when nothing is exported, else the last `__releasebuffer__` does.
//! - `Cache.array` returns an array made with numpy's C API over a fresh [`View`] that owns a
//!   clone of the entry's handle, released when the array (and every view of it) is collected.
//! - `__dlpack__` returns a capsule whose `DLManagedTensor` owns a handle clone the same way
//!   (flagged read-only for consumers of DLPack 1.x, which ask with `max_version`),
//!   freed by its deleter (which the consumer may call from any thread, without the GIL:
//!   dropping a handle needs no Python).
//!
//! The pixels a view points at are the entry's, immutable while any handle lives (the cache
//! never writes a resident bitmap), so every pointer handed out is valid exactly as long as
//! the owner it travels with.

mod args;
mod bitmap;
mod buffers;
mod cache;
mod dlpack;
mod errors;
mod video;

use pyo3::prelude::*;

#[pymodule]
fn _texcache(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<cache::Cache>()?;
    m.add_class::<bitmap::Bitmap>()?;
    m.add_class::<video::Video>()?;
    m.add_class::<video::Frame>()?;
    m.add_class::<buffers::View>()?;
    m.add_function(wrap_pyfunction!(cache::version, m)?)?;
    m.add_function(wrap_pyfunction!(cache::decode_file, m)?)?;
    m.add_function(wrap_pyfunction!(cache::connect, m)?)?;
    Ok(())
}
