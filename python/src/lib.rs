//! `texcache._texcache`: the Python package's extension module (SPEC §11). It wraps the Rust
//! library and adds no cache logic of its own; `pysrc/texcache/__init__.py` re-exports it and
//! defines the exception classes.
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

use pyo3::exceptions::{PyRuntimeError, PyStopIteration, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use std::ffi::{c_void, CStr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use texcache::video::{Frame as RsFrame, VideoNode};
use texcache::{BitmapHandle, ByteSize, Error, PixelFormat, TierKind};

/// The Python exception of a texcache error: the class of `texcache` named for its cause
/// (§10), with the message (which names the href) and `href` set.
fn py_err(e: Error) -> PyErr {
    let class = match &e {
        Error::NotFound { .. } => "NotFound",
        Error::Permission { .. } => "PermissionDenied",
        Error::NotAFile { .. } => "NotAFile",
        Error::Io { .. } => "ReadError",
        Error::Unsupported { .. } => "Unsupported",
        Error::Corrupt { .. } => "Corrupt",
        Error::TooManyPixels { .. } => "TooManyPixels",
        Error::OutsideMediadir { .. } => "OutsideMediadir",
        Error::Gpu { .. } => "GpuError",
        Error::GpuOutOfMemory { .. } => "GpuOutOfMemory",
        Error::LoadPanicked { .. } => "LoadPanicked",
        Error::Config { .. } => "ConfigError",
        Error::Trace { .. } => "TraceError",
        Error::Socket { .. } => "SocketError",
        Error::Plot { .. } => "Error",
        Error::Thread { .. } => "ThreadError",
        Error::Video { .. } => "VideoError",
        _ => "Error",
    };
    let href = e.href().map(str::to_string);
    let message = e.to_string();
    Python::attach(|py| {
        let made = (|| -> PyResult<PyErr> {
            let cls = py.import("texcache")?.getattr(class)?;
            let value = cls.call1((message.clone(),))?;
            value.setattr("href", href)?;
            Ok(PyErr::from_value(value))
        })();
        made.unwrap_or_else(|_| PyRuntimeError::new_err(message))
    })
}

fn tier_of(name: &str) -> PyResult<TierKind> {
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
fn size_of(v: &Bound<'_, PyAny>) -> PyResult<u64> {
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
fn href_of<'a>(obj: &'a Bound<'_, PyAny>) -> PyResult<std::borrow::Cow<'a, str>> {
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

fn fit_of(fit: Option<(u32, u32)>) -> PyResult<Option<(u32, u32)>> {
    match fit {
        Some((0, _)) | Some((_, 0)) => Err(PyValueError::new_err(
            "fit is (width, height), both at least 1",
        )),
        f => Ok(f),
    }
}

/// What keeps a view's memory alive: an entry's handle, a video frame, or owned pixels.
enum Owner {
    Bitmap(#[allow(dead_code)] BitmapHandle),
    Decoded(#[allow(dead_code)] texcache::Bitmap),
    Frame(#[allow(dead_code)] Arc<RsFrame>),
    Owned(#[allow(dead_code)] Vec<u8>),
}

/// An array's memory: where it starts, its shape and strides in bytes, and what keeps it.
struct Pixels {
    /// Held for its drop: it keeps `ptr`'s memory alive.
    #[allow(dead_code)]
    owner: Owner,
    ptr: *const u8,
    shape: Vec<i64>,
    strides: Vec<i64>,
}

// SAFETY: `ptr` points into memory `owner` keeps alive and nobody writes (a resident bitmap's
// pixels, a frame's buffer while the frame lives, or the Vec it owns); the owners are
// Send + Sync themselves.
unsafe impl Send for Pixels {}
// SAFETY: as above: shared access only reads.
unsafe impl Sync for Pixels {}

/// The shape and strides (bytes) of a packed `w`x`h` image of `bpp` bytes a pixel: (h, w) for
/// one byte, else (h, w, bpp).
fn layout(w: i64, h: i64, bpp: i64) -> (Vec<i64>, Vec<i64>) {
    if bpp == 1 {
        (vec![h, w], vec![w, 1])
    } else {
        (vec![h, w, bpp], vec![w * bpp, bpp, 1])
    }
}

impl Pixels {
    fn of_bitmap(h: BitmapHandle) -> Pixels {
        let (w, ht, bpp) = (
            h.width() as i64,
            h.height() as i64,
            h.bytes_per_pixel() as i64,
        );
        let ptr = h.pixels().as_ptr();
        let (shape, strides) = layout(w, ht, bpp);
        Pixels {
            owner: Owner::Bitmap(h),
            ptr,
            shape,
            strides,
        }
    }
    fn owned(data: Vec<u8>, shape: Vec<i64>) -> Pixels {
        let mut strides = vec![1i64; shape.len()];
        for i in (0..shape.len().saturating_sub(1)).rev() {
            strides[i] = strides[i + 1] * shape[i + 1];
        }
        Pixels {
            ptr: data.as_ptr(),
            owner: Owner::Owned(data),
            shape,
            strides,
        }
    }
}

/// What an array made by [`array`] has as its base: the owner of its memory.
#[pyclass(frozen, module = "texcache._texcache")]
struct View {
    #[allow(dead_code)]
    pixels: Pixels,
}

/// A read-only numpy array over `pixels`, made with numpy's C API (`PyArray_NewFromDescr`),
/// whose base is a [`View`] owning them.
fn array<'py>(py: Python<'py>, pixels: Pixels) -> PyResult<Bound<'py, PyAny>> {
    use numpy::npyffi::{self, npy_intp, PY_ARRAY_API};
    use numpy::{Element, PyArrayDescrMethods};
    let nd = pixels.shape.len();
    let (mut dims, mut strides) = ([0 as npy_intp; 3], [0 as npy_intp; 3]);
    for i in 0..nd {
        dims[i] = pixels.shape[i] as npy_intp;
        strides[i] = pixels.strides[i] as npy_intp;
    }
    let data = pixels.ptr as *mut c_void;
    let base = Bound::new(py, View { pixels })?;
    // SAFETY: numpy copies `dims` and `strides`; `data` stays valid and unwritten while `base`
    // lives (see [`Pixels`]), and the array keeps `base` (SetBaseObject steals the reference
    // `into_ptr` gives it). Without NPY_ARRAY_WRITEABLE the array is read-only. On failure the
    // half-made array is released and Python's error returned.
    unsafe {
        let arr = PY_ARRAY_API.PyArray_NewFromDescr(
            py,
            PY_ARRAY_API.get_type_object(py, npyffi::NpyTypes::PyArray_Type),
            u8::get_dtype(py).into_dtype_ptr(),
            nd as std::ffi::c_int,
            dims.as_mut_ptr(),
            strides.as_mut_ptr(),
            data,
            npyffi::NPY_ARRAY_ALIGNED,
            std::ptr::null_mut(),
        );
        if arr.is_null() {
            return Err(PyErr::fetch(py));
        }
        if PY_ARRAY_API.PyArray_SetBaseObject(
            py,
            arr as *mut npyffi::PyArrayObject,
            base.into_ptr(),
        ) < 0
        {
            pyo3::ffi::Py_DECREF(arr);
            return Err(PyErr::fetch(py));
        }
        Ok(Bound::from_owned_ptr(py, arr))
    }
}

// DLPack (https://dmlc.github.io/dlpack/latest/c_api.html), the unversioned ABI every consumer
// reads (torch, numpy, jax, cupy).
#[repr(C)]
struct DlDevice {
    device_type: i32,
    device_id: i32,
}
#[repr(C)]
struct DlDataType {
    code: u8,
    bits: u8,
    lanes: u16,
}
#[repr(C)]
struct DlTensor {
    data: *mut c_void,
    device: DlDevice,
    ndim: i32,
    dtype: DlDataType,
    shape: *mut i64,
    strides: *mut i64,
    byte_offset: u64,
}
#[repr(C)]
struct DlManagedTensor {
    dl_tensor: DlTensor,
    manager_ctx: *mut c_void,
    deleter: Option<unsafe extern "C" fn(*mut DlManagedTensor)>,
}
const KDL_CPU: i32 = 1;
const KDL_UINT: u8 = 1;
const DLTENSOR: &CStr = c"dltensor";

/// The deleter a consumer calls when it is done: frees the tensor and the pixels' owner.
///
/// # Safety
/// `t` is a pointer made by [`dlpack_capsule`] and not deleted yet (the DLPack contract).
unsafe extern "C" fn dl_delete(t: *mut DlManagedTensor) {
    // SAFETY: per the contract above, both boxes were made by `dlpack_capsule` with
    // Box::into_raw and are freed exactly once, here.
    unsafe {
        drop(Box::from_raw((*t).manager_ctx as *mut Pixels));
        drop(Box::from_raw(t));
    }
}

/// The capsule's destructor: a capsule never consumed (still named "dltensor") still owns its
/// tensor.
///
/// # Safety
/// Called by Python with the capsule, holding the GIL.
unsafe extern "C" fn capsule_destructor(capsule: *mut pyo3::ffi::PyObject) {
    // SAFETY: `capsule` is a live capsule (Python calls this before freeing it); its pointer,
    // under the name it still has, is the tensor `dlpack_capsule` made.
    unsafe {
        if pyo3::ffi::PyCapsule_IsValid(capsule, DLTENSOR.as_ptr()) == 1 {
            let t =
                pyo3::ffi::PyCapsule_GetPointer(capsule, DLTENSOR.as_ptr()) as *mut DlManagedTensor;
            if !t.is_null() {
                dl_delete(t);
            }
        }
    }
}

/// The DLPack description of `ctx`: uint8 on the CPU; its shape and strides point into
/// `ctx`'s own Vecs (DLPack counts strides in elements, which for uint8 are bytes).
fn dl_tensor(ctx: &mut Pixels) -> DlTensor {
    DlTensor {
        data: ctx.ptr as *mut c_void,
        device: DlDevice {
            device_type: KDL_CPU,
            device_id: 0,
        },
        ndim: ctx.shape.len() as i32,
        dtype: DlDataType {
            code: KDL_UINT,
            bits: 8,
            lanes: 1,
        },
        shape: ctx.shape.as_mut_ptr(),
        strides: ctx.strides.as_mut_ptr(),
        byte_offset: 0,
    }
}

/// A "dltensor" capsule over `pixels` (uint8, on the CPU).
fn dlpack_capsule(py: Python<'_>, pixels: Pixels) -> PyResult<Py<PyAny>> {
    let mut ctx = Box::new(pixels);
    let tensor = Box::new(DlManagedTensor {
        dl_tensor: dl_tensor(&mut ctx),
        manager_ctx: std::ptr::null_mut(),
        deleter: Some(dl_delete),
    });
    let t = Box::into_raw(tensor);
    // SAFETY: `t` is the box just made; the Vecs `shape` and `strides` point into are owned by
    // `ctx`, which lives (boxed, not moved again) until the deleter frees it with the tensor.
    // DLPack counts strides in elements, which for uint8 are bytes.
    unsafe {
        (*t).manager_ctx = Box::into_raw(ctx) as *mut c_void;
        let capsule = pyo3::ffi::PyCapsule_New(
            t as *mut c_void,
            DLTENSOR.as_ptr(),
            Some(capsule_destructor),
        );
        if capsule.is_null() {
            dl_delete(t);
            return Err(PyErr::fetch(py));
        }
        Ok(Py::from_owned_ptr(py, capsule))
    }
}

/// DLPack 1.x's versioned tensor, which can say "read-only".
#[repr(C)]
struct DlManagedTensorVersioned {
    version: [u32; 2],
    manager_ctx: *mut c_void,
    deleter: Option<unsafe extern "C" fn(*mut DlManagedTensorVersioned)>,
    flags: u64,
    dl_tensor: DlTensor,
}
const DLPACK_FLAG_READ_ONLY: u64 = 1;
const DLTENSOR_VERSIONED: &CStr = c"dltensor_versioned";

/// The versioned deleter.
///
/// # Safety
/// `t` is a pointer made by [`dlpack_capsule_versioned`] and not deleted yet.
unsafe extern "C" fn dl_delete_versioned(t: *mut DlManagedTensorVersioned) {
    // SAFETY: both boxes were made by `dlpack_capsule_versioned` and are freed once, here.
    unsafe {
        drop(Box::from_raw((*t).manager_ctx as *mut Pixels));
        drop(Box::from_raw(t));
    }
}

/// The versioned capsule's destructor (see [`capsule_destructor`]).
///
/// # Safety
/// Called by Python with the capsule, holding the GIL.
unsafe extern "C" fn capsule_destructor_versioned(capsule: *mut pyo3::ffi::PyObject) {
    // SAFETY: as for `capsule_destructor`, under the versioned name.
    unsafe {
        if pyo3::ffi::PyCapsule_IsValid(capsule, DLTENSOR_VERSIONED.as_ptr()) == 1 {
            let t = pyo3::ffi::PyCapsule_GetPointer(capsule, DLTENSOR_VERSIONED.as_ptr())
                as *mut DlManagedTensorVersioned;
            if !t.is_null() {
                dl_delete_versioned(t);
            }
        }
    }
}

/// A "dltensor_versioned" capsule (DLPack 1.0) over `pixels`, flagged read-only, for
/// consumers that ask for it (`max_version` ≥ (1, 0): numpy 2.1+, recent torch).
fn dlpack_capsule_versioned(
    py: Python<'_>,
    pixels: Pixels,
    read_only: bool,
) -> PyResult<Py<PyAny>> {
    let mut ctx = Box::new(pixels);
    let tensor = Box::new(DlManagedTensorVersioned {
        version: [1, 0],
        manager_ctx: std::ptr::null_mut(),
        deleter: Some(dl_delete_versioned),
        flags: if read_only { DLPACK_FLAG_READ_ONLY } else { 0 },
        dl_tensor: dl_tensor(&mut ctx),
    });
    let t = Box::into_raw(tensor);
    // SAFETY: as in `dlpack_capsule`.
    unsafe {
        (*t).manager_ctx = Box::into_raw(ctx) as *mut c_void;
        let capsule = pyo3::ffi::PyCapsule_New(
            t as *mut c_void,
            DLTENSOR_VERSIONED.as_ptr(),
            Some(capsule_destructor_versioned),
        );
        if capsule.is_null() {
            dl_delete_versioned(t);
            return Err(PyErr::fetch(py));
        }
        Ok(Py::from_owned_ptr(py, capsule))
    }
}

/// Whether a consumer's `max_version` allows DLPack 1.x.
fn wants_versioned(max_version: Option<&Bound<'_, PyAny>>) -> bool {
    max_version
        .and_then(|v| v.extract::<(u32, u32)>().ok())
        .is_some_and(|(major, _)| major >= 1)
}

/// A decoded picture held from the cache: `numpy.asarray(bm)` is a read-only (h, w, 4) or
/// (h, w) uint8 array of its pixels, without a copy (the buffer protocol, as `memoryview(bm)`
/// is); `torch.from_dlpack(bm)` likewise. The entry is in use while the `Bitmap` or any array
/// made from it lives. `with cache.bitmap(h) as bm:` releases the `Bitmap`'s hold at the
/// block's end, or, when arrays of it still live, when the last of them is collected.
#[pyclass(frozen, weakref, module = "texcache._texcache")]
struct Bitmap {
    /// The entry's handle; `None` once released and no export is left. Locked only to take
    /// it away or to clone it (DLPack, `refs`): exports read `pixels`.
    handle: Mutex<Option<BitmapHandle>>,
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
    /// The entry's key (an `Arc` clone: no allocation on a hit); shown as a string on demand.
    key: texcache::Key,
}

// SAFETY: `pixels` is only read, and only while the handle that keeps the entry's immutable
// pixels alive is held (see the field); everything else is Send + Sync.
unsafe impl Send for Bitmap {}
// SAFETY: as above.
unsafe impl Sync for Bitmap {}

impl Bitmap {
    fn of(h: BitmapHandle) -> Bitmap {
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
            key: h.key().clone(),
            pixels: h.pixels().as_ptr(),
            exports: AtomicUsize::new(0),
            released: AtomicBool::new(false),
            handle: Mutex::new(Some(h)),
        }
    }
    fn handle(&self) -> std::sync::MutexGuard<'_, Option<BitmapHandle>> {
        self.handle
            .lock()
            .expect("never poisoned: no code panics holding it")
    }
    /// A clone of the handle, unless released.
    fn hold(&self) -> PyResult<BitmapHandle> {
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
            Some(h) => Ok(h.refs()),
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
        // SAFETY (the buffer's rules): `view` is the consumer's to fill (checked non-null).
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
        let versioned = wants_versioned(max_version.as_ref());
        let h = self.hold()?;
        if copy == Some(true) {
            let shape = Pixels::of_bitmap(h.clone()).shape;
            let owned = Pixels::owned(h.pixels().to_vec(), shape);
            return if versioned {
                dlpack_capsule_versioned(py, owned, false)
            } else {
                dlpack_capsule(py, owned)
            };
        }
        if versioned {
            dlpack_capsule_versioned(py, Pixels::of_bitmap(h), true)
        } else {
            dlpack_capsule(py, Pixels::of_bitmap(h))
        }
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

/// One decoded video frame: `time` (seconds), `index`, `planes()` (the Y, U, V arrays of a
/// YUV 4:2:0 frame, or one (h, w, 4) array of an RGBA one, without a copy) and `to_rgb()`
/// (an (h, w, 3) array, converted). The frame's buffer goes back to its node when the `Frame`
/// and every array of its planes are gone.
#[pyclass(frozen, module = "texcache._texcache")]
struct Frame {
    frame: Arc<RsFrame>,
}

#[pymethods]
impl Frame {
    #[getter]
    fn time(&self) -> f64 {
        self.frame.time()
    }
    #[getter]
    fn index(&self) -> u64 {
        self.frame.index()
    }
    #[getter]
    fn width(&self) -> u32 {
        self.frame.width()
    }
    #[getter]
    fn height(&self) -> u32 {
        self.frame.height()
    }
    #[getter]
    fn format(&self) -> &'static str {
        self.frame.format().name()
    }
    /// The planes as arrays over the frame's own memory.
    fn planes<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let f = &self.frame;
        let (w, h) = (f.width() as i64, f.height() as i64);
        let plane = |ptr: *const u8, pw: i64, ph: i64, bpp: i64| -> PyResult<Bound<'py, PyAny>> {
            let (shape, strides) = layout(pw, ph, bpp);
            array(
                py,
                Pixels {
                    owner: Owner::Frame(f.clone()),
                    ptr,
                    shape,
                    strides,
                },
            )
        };
        match f.planes() {
            Some([y, u, v]) => {
                let (cw, ch) = ((w + 1) / 2, (h + 1) / 2);
                Ok(vec![
                    plane(y.as_ptr(), w, h, 1)?,
                    plane(u.as_ptr(), cw, ch, 1)?,
                    plane(v.as_ptr(), cw, ch, 1)?,
                ])
            }
            None => Ok(vec![plane(f.data().as_ptr(), w, h, 4)?]),
        }
    }
    /// The frame as an (h, w, 3) RGB array, upright: converted with the stream's matrix
    /// (BT.601 or BT.709) and range, as the GPU converts it, and turned by its rotation (so
    /// h and w are the displayed ones): a copy.
    fn to_rgb<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let f = self.frame.clone();
        let rgb = py.detach(move || f.to_rgb());
        let (w, h) = self.frame.display_size();
        array(py, Pixels::owned(rgb, vec![h as i64, w as i64, 3]))
    }
    fn __repr__(&self) -> String {
        format!(
            "<texcache.Frame {} at {:.3} s, {}x{} {}>",
            self.frame.index(),
            self.frame.time(),
            self.frame.width(),
            self.frame.height(),
            self.frame.format().name()
        )
    }
}

/// A video node (§4): `play()`, `pause()`, `stop()`, `seek(t)`, `loop` and iteration over its
/// frames (`for frame in node:`), which waits for the decoder without holding the GIL.
#[pyclass(frozen, module = "texcache._texcache")]
struct Video {
    node: Mutex<VideoNode>,
    /// What the header said, and the href (read without the lock).
    info: texcache::video::VideoInfo,
    href: String,
    /// The process that opened it: in a child forked since, the lock may be held by a parent
    /// thread that was waiting for a frame, so the node is not touched there.
    pid: u32,
}

impl Video {
    fn of(node: VideoNode) -> Video {
        Video {
            info: node.info().clone(),
            href: node.href().to_owned(),
            node: Mutex::new(node),
            pid: std::process::id(),
        }
    }
    /// In a forked child, the library's error for a node of the parent's (whose lock a parent
    /// thread may hold); else nothing.
    fn check_process(&self) -> PyResult<()> {
        if std::process::id() == self.pid {
            return Ok(());
        }
        Err(py_err(texcache::Error::Video {
            href: self.href.clone(),
            detail: "this video node was opened before the process forked: its decoder is the \
                     parent's; open the video again in this process"
                .into(),
        }))
    }
    /// The node, locked (see [`Video::check_process`]).
    fn node(&self) -> PyResult<std::sync::MutexGuard<'_, VideoNode>> {
        self.check_process()?;
        Ok(self.node.lock().expect("never poisoned"))
    }
    /// `f` on the node, without the GIL (see [`Video::check_process`]).
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut VideoNode) -> T + Send,
    ) -> PyResult<T> {
        self.check_process()?;
        Ok(py.detach(|| f(&mut self.node.lock().expect("never poisoned"))))
    }
}

#[pymethods]
impl Video {
    fn play(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |n| n.play())?.map_err(py_err)
    }
    fn pause(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |n| n.pause())?.map_err(py_err)
    }
    /// Stops decoding and frees the queue, the decoder and the frames not held.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |n| n.stop())
    }
    /// Makes the next frame the first whose time is at least `seconds`.
    fn seek(&self, py: Python<'_>, seconds: f64) -> PyResult<()> {
        if !(seconds.is_finite() && seconds >= 0.0) {
            return Err(PyValueError::new_err(
                "seek: seconds must be finite and >= 0",
            ));
        }
        self.with(py, |n| n.seek(seconds))
    }
    /// Start again at the end of the stream.
    #[setter(r#loop)]
    fn set_loop(&self, looping: bool) -> PyResult<()> {
        self.node()?.set_looping(looping);
        Ok(())
    }
    #[getter]
    fn width(&self) -> u32 {
        self.info.width
    }
    #[getter]
    fn height(&self) -> u32 {
        self.info.height
    }
    #[getter]
    fn codec(&self) -> String {
        self.info.codec.clone()
    }
    /// The next frame, or None at the end of the stream (playing it first if stopped).
    fn next_frame(&self, py: Python<'_>) -> PyResult<Option<Frame>> {
        let got = self.with(py, |n| {
            if n.state() == texcache::video::State::Stopped {
                n.play()?;
            }
            n.next_frame()
        })?;
        Ok(got.map_err(py_err)?.map(|f| Frame { frame: Arc::new(f) }))
    }
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }
    fn __next__(&self, py: Python<'_>) -> PyResult<Frame> {
        self.next_frame(py)?
            .ok_or_else(|| PyStopIteration::new_err(()))
    }
    /// The node's §6 object (a dict).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let s = self.node()?.stats();
        json(py, &serde_json::to_string(&s).expect("stats serialise"))
    }
}

fn json<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?.call_method1("loads", (text,))
}

/// The config's top-level keys and its sections: an override `cpu_budget` is `cpu.budget`.
const SECTIONS: &[&str] = &["cpu", "gpu", "video", "loader", "pressure", "stats"];

/// A TOML value of a Python override.
fn toml_value(v: &Bound<'_, PyAny>) -> PyResult<toml::Value> {
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

/// A bounded, shared cache of decoded pictures (§11).
///
/// `Cache(config=None, **overrides)`: `config` is a TOML file (None: `TEXCACHE_CONFIG`, else
/// the defaults); overrides are the config's keys with `_` for `.`: `cpu_budget="1 GiB"`,
/// `mediadir="data"`, `loader_threads=4`.
#[pyclass(frozen, module = "texcache._texcache")]
struct Cache {
    cache: Arc<texcache::Cache>,
}

impl Cache {
    /// A hit, or a load without the GIL (§3.1).
    fn acquire(
        &self,
        py: Python<'_>,
        href: &str,
        fit: Option<(u32, u32)>,
    ) -> PyResult<BitmapHandle> {
        let fit = fit_of(fit)?;
        let c = &self.cache;
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
        Ok(Cache {
            cache: Arc::new(cache),
        })
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
        self.acquire(py, &href_of(href)?, fit).map(Bitmap::of)
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
            Pixels::of_bitmap(self.acquire(py, &href_of(href)?, fit)?),
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
        match fit {
            None => self.cache.prefetch(hrefs),
            Some((w, h)) => self.cache.prefetch_fit(hrefs, w, h),
        }
        .map_err(py_err)
    }

    /// Blocks (without the GIL) until every prefetch queued so far is done.
    fn wait_prefetch(&self, py: Python<'_>) {
        py.detach(|| self.cache.wait_prefetch())
    }

    /// Removes `href` (every size of it) from the cache (§3.5); whether anything was there.
    fn remove(&self, href: &Bound<'_, PyAny>) -> PyResult<bool> {
        Ok(self.cache.remove(&href_of(href)?))
    }

    /// Evicts unused entries of `tier` ("cpu") until it uses at most `size` (§3.6).
    fn trim<'py>(
        &self,
        py: Python<'py>,
        tier: &str,
        size: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (t, b) = (tier_of(tier)?, size_of(size)?);
        let s = self.cache.trim(t, b);
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
        let s = self.cache.set_budget(t, b);
        json(py, &serde_json::to_string(&s).expect("stats serialise"))
    }

    /// The §6 statistics as a dict (`entries=True` adds the entries).
    #[pyo3(signature = (entries=false))]
    fn stats<'py>(&self, py: Python<'py>, entries: bool) -> PyResult<Bound<'py, PyAny>> {
        let c = &self.cache;
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
        let c = &self.cache;
        let href = href_of(href)?;
        let node = py.detach(|| c.video(&href)).map_err(py_err)?;
        Ok(Video::of(node))
    }

    /// Records every acquire and release to the trace file `path` (§7).
    fn record_trace(&self, path: PathBuf) -> PyResult<()> {
        self.cache.record_trace(&path).map_err(py_err)
    }

    /// Serves the control socket at `path` (§9), for `texcache stats --socket PATH`.
    fn serve(&self, path: PathBuf) -> PyResult<()> {
        self.cache.serve(&path).map_err(py_err)
    }

    /// The key `href` resolves to.
    fn key(&self, href: &Bound<'_, PyAny>) -> PyResult<String> {
        Ok(self.cache.key(&href_of(href)?).to_string())
    }

    fn __repr__(&self) -> String {
        let s = self.cache.stats();
        format!(
            "<texcache.Cache cpu {} of {}, {} entries>",
            ByteSize(s.cpu.used),
            ByteSize(s.cpu.budget),
            s.cpu.entries
        )
    }
}

/// Decodes the picture at `path` as the cache would (EXIF orientation, `fit`, `max_pixels`),
/// without caching it: a new (h, w, 4) or (h, w) uint8 array.
#[pyfunction]
#[pyo3(signature = (path, fit=None, max_pixels=268_435_456, orientation=true))]
fn decode_file<'py>(
    py: Python<'py>,
    path: PathBuf,
    fit: Option<(u32, u32)>,
    max_pixels: u64,
    orientation: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let options = texcache::decode::DecodeOptions {
        max_pixels,
        orientation,
        fit: fit_of(fit)?,
    };
    let href = path.display().to_string();
    let bm = py
        .detach(|| texcache::bitmap::load_file(&href, &path, None, &options))
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
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

#[pymodule]
fn _texcache(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Cache>()?;
    m.add_class::<Bitmap>()?;
    m.add_class::<Video>()?;
    m.add_class::<Frame>()?;
    m.add_class::<View>()?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    m.add_function(wrap_pyfunction!(decode_file, m)?)?;
    Ok(())
}
