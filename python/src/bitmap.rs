//! `texcache.Bitmap`: a decoded picture held from the cache, readable through the buffer
//! protocol and DLPack without a copy.

use crate::buffers::*;
use crate::dlpack::*;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;
use texcache::shared::SharedBitmap;
use texcache::{BitmapHandle, PixelFormat};

/// The name a `Bitmap` shows: its entry's key, or the href a shared cache's client asked for.
enum Name {
    Key(texcache::Key),
    Href(String),
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Name::Key(k) => k.fmt(f),
            Name::Href(h) => h.fmt(f),
        }
    }
}

/// A decoded picture held from the cache: `numpy.asarray(bm)` is a read-only (h, w, 4) or
/// (h, w) uint8 array of its pixels, without a copy (the buffer protocol, as `memoryview(bm)`
/// is); `torch.from_dlpack(bm)` likewise. The entry is in use while the `Bitmap` or any array
/// made from it lives. `with cache.bitmap(h) as bm:` releases the `Bitmap`'s hold at the
/// block's end, or, when arrays of it still live, when the last of them is collected.
#[pyclass(frozen, weakref, module = "texcache._texcache")]
pub(crate) struct Bitmap {
    /// The entry's handle; `None` once released and no export is left. Locked only to take
    /// it away or to clone it (DLPack, `refs`): exports read `pixels`.
    handle: Mutex<Option<Held>>,
    /// Buffers exported and not yet released (arrays and memoryviews alive). Read and written
    /// only with the GIL held (the buffer slots, `release`, getters: the package is built for
    /// GIL-holding CPython), so a load and a store make a count no other thread interleaves;
    /// atomics only so that the class is `Sync`.
    exports: AtomicUsize,
    /// `release()` was called: no new views, and the handle goes with the last export. Like
    /// `exports`, touched only with the GIL held.
    released: AtomicBool,
    /// The entry's pixels: valid while `handle` is `Some`, which it is while not released or
    /// while an export lives.
    pixels: *const u8,
    width: u32,
    height: u32,
    format: &'static str,
    /// The buffer protocol's shape and strides (bytes), of (h, w, 4) or (h, w); read by
    /// consumers through the `Py_buffer` while an export lives (which keeps this object).
    shape: [pyo3::ffi::Py_ssize_t; 3],
    strides: [pyo3::ffi::Py_ssize_t; 3],
    /// The entry's key (an `Arc` clone: no allocation on a hit), or the href of a shared
    /// picture; shown as a string on demand.
    key: Name,
}

// SAFETY: `pixels` is only read, and only while the handle that keeps the entry's immutable
// pixels alive is held (see the field); everything else is Send + Sync.
unsafe impl Send for Bitmap {}
// SAFETY: as above.
unsafe impl Sync for Bitmap {}

impl Bitmap {
    pub(crate) fn of(h: BitmapHandle) -> Bitmap {
        let key = Name::Key(h.key().clone());
        Bitmap::holding(Held::Local(h), key)
    }

    /// A `Bitmap` of a picture held from a shared cache's owner, asked for as `href`.
    pub(crate) fn of_shared(s: SharedBitmap, href: &str) -> Bitmap {
        Bitmap::holding(Held::Shared(s), Name::Href(href.to_string()))
    }

    fn holding(h: Held, key: Name) -> Bitmap {
        let (w, ht, bpp) = (
            h.width() as isize,
            h.height() as isize,
            h.bytes_per_pixel() as isize,
        );
        let (shape, strides) = if bpp == 1 {
            ([ht, w, 0], [w, 1, 0])
        } else {
            ([ht, w, bpp], [w * bpp, bpp, 1])
        };
        Bitmap {
            width: h.width(),
            height: h.height(),
            format: h.format().name(),
            shape,
            strides,
            key,
            pixels: h.pixels().as_ptr(),
            exports: AtomicUsize::new(0),
            released: AtomicBool::new(false),
            handle: Mutex::new(Some(h)),
        }
    }
    fn handle(&self) -> std::sync::MutexGuard<'_, Option<Held>> {
        self.handle
            .lock()
            .expect("never poisoned: no code panics holding it")
    }
    /// A clone of the handle, unless released.
    fn hold(&self) -> PyResult<Held> {
        match &*self.handle() {
            Some(h) if !self.released.load(Relaxed) => Ok(h.clone()),
            _ => Err(self.released_error()),
        }
    }
    fn released_error(&self) -> PyErr {
        PyValueError::new_err(format!("{}: the bitmap was released", self.key))
    }
    /// Drops the handle if released and no export is left (whoever sees that last).
    fn drop_if_unheld(&self) {
        let gone = {
            let mut handle = self.handle();
            if self.released.load(Relaxed) && self.exports.load(Relaxed) == 0 {
                handle.take()
            } else {
                None
            }
        };
        drop(gone);
    }
}

#[pymethods]
impl Bitmap {
    /// Width in pixels.
    #[getter]
    fn width(&self) -> u32 {
        self.width
    }
    /// Height in pixels.
    #[getter]
    fn height(&self) -> u32 {
        self.height
    }
    /// "rgba8" or "gray8".
    #[getter]
    fn format(&self) -> &'static str {
        self.format
    }
    /// The entry's key: the href resolved against mediadir.
    #[getter]
    fn key(&self) -> String {
        self.key.to_string()
    }
    /// The (h, w, 4) or (h, w) shape of its array.
    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        if self.format == PixelFormat::Gray8.name() {
            PyTuple::new(py, [self.height, self.width])
        } else {
            PyTuple::new(py, [self.height, self.width, 4])
        }
    }
    /// Live handles of the entry: this `Bitmap` (while it or an array of it holds the
    /// entry), its DLPack capsules and tensors, other holders.
    #[getter]
    fn refs(&self) -> PyResult<usize> {
        match &*self.handle() {
            Some(Held::Local(h)) => Ok(h.refs()),
            Some(Held::Shared(s)) => Ok(s.holds()),
            None => Err(self.released_error()),
        }
    }
    /// Whether this `Bitmap` still holds the entry for itself (not released).
    #[getter]
    fn held(&self) -> bool {
        !self.released.load(Relaxed)
    }
    /// Arrays and memoryviews of the pixels alive now.
    #[getter]
    fn exports(&self) -> usize {
        self.exports.load(Relaxed)
    }
    /// The buffer protocol: a read-only view of the cached pixels, unsigned bytes, C order.
    /// The export holds the `Bitmap` (`view.obj`), and through it the entry.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut pyo3::ffi::Py_buffer,
        flags: std::ffi::c_int,
    ) -> PyResult<()> {
        use pyo3::exceptions::PyBufferError;
        use pyo3::ffi;
        let me = slf.get();
        if view.is_null() {
            return Err(PyBufferError::new_err("the view is null"));
        }
        if flags & ffi::PyBUF_WRITABLE == ffi::PyBUF_WRITABLE {
            return Err(PyBufferError::new_err(format!(
                "{}: the cached pixels are read-only (copy them to write)",
                me.key
            )));
        }
        if me.released.load(Relaxed) {
            return Err(me.released_error());
        }
        // Under the GIL (see `exports`): no locked instruction needed.
        me.exports.store(me.exports.load(Relaxed) + 1, Relaxed);
        let ndim = if me.format == PixelFormat::Gray8.name() {
            2
        } else {
            3
        };
        // SAFETY: (the buffer's rules) `view` is the consumer's to fill (checked non-null).
        // `pixels` is the entry's, which nobody writes and which stay alive while `handle`
        // does: the export counted above keeps it until `__releasebuffer__`, and `view.obj`
        // (a new reference) keeps this object, whose `shape` and `strides` the view points
        // into, alive as long. `format` is a static C string.
        unsafe {
            (*view).obj = slf.clone().into_any().into_ptr();
            (*view).buf = me.pixels as *mut c_void;
            (*view).len = me.strides[0] * me.shape[0];
            (*view).readonly = 1;
            (*view).itemsize = 1;
            (*view).format = if flags & ffi::PyBUF_FORMAT == ffi::PyBUF_FORMAT {
                c"B".as_ptr() as *mut std::ffi::c_char
            } else {
                std::ptr::null_mut()
            };
            (*view).ndim = ndim;
            (*view).shape = if flags & ffi::PyBUF_ND == ffi::PyBUF_ND {
                me.shape.as_ptr() as *mut ffi::Py_ssize_t
            } else {
                std::ptr::null_mut()
            };
            (*view).strides = if flags & ffi::PyBUF_STRIDES == ffi::PyBUF_STRIDES {
                me.strides.as_ptr() as *mut ffi::Py_ssize_t
            } else {
                std::ptr::null_mut()
            };
            (*view).suboffsets = std::ptr::null_mut();
            (*view).internal = std::ptr::null_mut();
        }
        Ok(())
    }
    unsafe fn __releasebuffer__(&self, _view: *mut pyo3::ffi::Py_buffer) {
        let left = self.exports.load(Relaxed) - 1;
        self.exports.store(left, Relaxed);
        if left == 0 && self.released.load(Relaxed) {
            self.drop_if_unheld();
        }
    }
    /// numpy asks for this only when the buffer protocol fails, as it does for a released
    /// `Bitmap` (and numpy would otherwise make a 0-d object array of it): the same array,
    /// or the error that says why not.
    #[pyo3(signature = (dtype=None, copy=None))]
    fn __array__<'py>(
        &self,
        py: Python<'py>,
        dtype: Option<Bound<'py, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let a = array(py, Pixels::of_bitmap(self.hold()?))?;
        let a = match dtype {
            Some(d) => a.call_method1("astype", (d,))?,
            None => a,
        };
        if copy == Some(true) {
            return a.call_method0("copy");
        }
        Ok(a)
    }
    #[pyo3(signature = (*, stream=None, max_version=None, dl_device=None, copy=None))]
    fn __dlpack__(
        &self,
        py: Python<'_>,
        stream: Option<Bound<'_, PyAny>>,
        max_version: Option<Bound<'_, PyAny>>,
        dl_device: Option<Bound<'_, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Py<PyAny>> {
        let _ = stream;
        // The pixels are in host memory: a consumer asking for another device (CUDA is
        // (2, 0)) is told so, as the DLPack protocol says, instead of handed a CPU tensor.
        if let Some(device) = dl_device.filter(|d| !d.is_none()) {
            let (kind, id): (i32, i32) = device.extract().map_err(|_| {
                PyValueError::new_err("dl_device is a (device_type, device_id) tuple")
            })?;
            if (kind, id) != (KDL_CPU, 0) {
                return Err(pyo3::exceptions::PyBufferError::new_err(format!(
                    "the pixels are in CPU memory (device (1, 0)); they cannot be exported to \
                     device ({kind}, {id}): copy them there with the consumer's own API"
                )));
            }
        }
        // A consumer that reads DLPack 1.x gets a read-only tensor of the cached pixels; an
        // older one the unversioned tensor (which cannot say read-only), or a copy if it asks.
        let h = self.hold()?;
        if copy == Some(true) {
            let shape = Pixels::of_bitmap(h.clone()).shape;
            let owned = Pixels::owned(h.pixels().to_vec(), shape);
            return dlpack(py, owned, max_version.as_ref(), false);
        }
        dlpack(py, Pixels::of_bitmap(h), max_version.as_ref(), true)
    }
    fn __dlpack_device__(&self) -> (i32, i32) {
        (KDL_CPU, 0)
    }
    /// Releases this `Bitmap`'s hold on the entry: at once, or when the last array or
    /// memoryview of it is collected. DLPack tensors keep their own holds.
    fn release(&self) {
        self.released.store(true, Relaxed);
        self.drop_if_unheld();
    }
    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }
    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> bool {
        self.release();
        false
    }
    fn __repr__(&self) -> String {
        format!(
            "<texcache.Bitmap {} {}x{} {}>",
            self.key, self.width, self.height, self.format
        )
    }
}
