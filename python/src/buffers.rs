//! Views without copies: the owner of a view's memory ([`Pixels`]) and read-only numpy
//! arrays over it ([`array`]), whose base is a [`View`].

use pyo3::prelude::*;
use std::ffi::c_void;
use std::sync::Arc;
use texcache::shared::SharedBitmap;
use texcache::video::Frame as RsFrame;
use texcache::BitmapHandle;

/// What a `Bitmap` (or an array made by `Cache.array`) holds: an entry of this process's cache, or a picture held from the owner
/// of a shared cache (§12).
#[derive(Clone)]
pub(crate) enum Held {
    Local(BitmapHandle),
    Shared(SharedBitmap),
}

impl std::ops::Deref for Held {
    type Target = texcache::Bitmap;
    fn deref(&self) -> &texcache::Bitmap {
        match self {
            Held::Local(h) => h,
            Held::Shared(s) => s,
        }
    }
}

/// What keeps a view's memory alive: an entry's handle, a video frame, or owned pixels.
pub(crate) enum Owner {
    Bitmap(#[allow(dead_code)] Held),
    Decoded(#[allow(dead_code)] texcache::Bitmap),
    Frame(#[allow(dead_code)] Arc<RsFrame>),
    Owned(#[allow(dead_code)] Vec<u8>),
}

/// An array's memory: where it starts, its shape and strides in bytes, and what keeps it.
pub(crate) struct Pixels {
    /// Held for its drop: it keeps `ptr`'s memory alive.
    #[allow(dead_code)]
    pub(crate) owner: Owner,
    pub(crate) ptr: *const u8,
    pub(crate) shape: Vec<i64>,
    pub(crate) strides: Vec<i64>,
}

// SAFETY: `ptr` points into memory `owner` keeps alive and nobody writes (a resident bitmap's
// pixels, a frame's buffer while the frame lives, or the Vec it owns); the owners are
// Send + Sync themselves.
unsafe impl Send for Pixels {}
// SAFETY: as above: shared access only reads.
unsafe impl Sync for Pixels {}

/// The shape and strides (bytes) of a packed `w`x`h` image of `bpp` bytes a pixel: (h, w) for
/// one byte, else (h, w, bpp).
pub(crate) fn layout(w: i64, h: i64, bpp: i64) -> (Vec<i64>, Vec<i64>) {
    if bpp == 1 {
        (vec![h, w], vec![w, 1])
    } else {
        (vec![h, w, bpp], vec![w * bpp, bpp, 1])
    }
}

impl Pixels {
    pub(crate) fn of_bitmap(h: Held) -> Pixels {
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
    pub(crate) fn owned(data: Vec<u8>, shape: Vec<i64>) -> Pixels {
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
pub(crate) struct View {
    #[allow(dead_code)]
    pixels: Pixels,
}

/// A read-only numpy array over `pixels`, made with numpy's C API (`PyArray_NewFromDescr`),
/// whose base is a [`View`] owning them.
pub(crate) fn array<'py>(py: Python<'py>, pixels: Pixels) -> PyResult<Bound<'py, PyAny>> {
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
