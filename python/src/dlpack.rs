//! DLPack (https://dmlc.github.io/dlpack/latest/c_api.html): `__dlpack__` capsules over a
//! view's pixels, uint8 on the CPU, without a copy.
//!
//! One capsule path serves both ABIs: the unversioned `DLManagedTensor` every consumer reads
//! (torch, numpy, jax, cupy), and DLPack 1.x's `DLManagedTensorVersioned`, which can say
//! "read-only", for consumers that ask for it (`max_version` ≥ (1, 0): numpy 2.1+, recent
//! torch). Each is a [`Managed`] tensor; [`capsule`] is written once for both.
//!
//! # Safety
//!
//! A capsule's tensor and the [`Pixels`] it points into are two boxes made by [`capsule`] with
//! `Box::into_raw`, and freed exactly once: by the deleter the consumer calls when it is done
//! (from any thread, without the GIL: dropping a handle needs no Python), or by the capsule's
//! destructor when no consumer took it (the capsule still bears its original name). The
//! tensor's shape and strides point into the `Pixels`' own Vecs, which live (boxed, never
//! moved) as long as the tensor.

use crate::buffers::Pixels;
use pyo3::prelude::*;
use std::ffi::{c_void, CStr};

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
/// DLPack 1.x's versioned tensor.
#[repr(C)]
struct DlManagedTensorVersioned {
    version: [u32; 2],
    manager_ctx: *mut c_void,
    deleter: Option<unsafe extern "C" fn(*mut DlManagedTensorVersioned)>,
    flags: u64,
    dl_tensor: DlTensor,
}

/// DLPack's device type of CPU memory.
pub(crate) const KDL_CPU: i32 = 1;
const KDL_UINT: u8 = 1;
const DLPACK_FLAG_READ_ONLY: u64 = 1;

/// A managed tensor of one of the two ABIs.
trait Managed: Sized {
    /// The capsule's name.
    const NAME: &'static CStr;
    /// The tensor over `tensor`, its deleter set, its context not yet.
    fn new(tensor: DlTensor, read_only: bool) -> Self;
    /// Where the context pointer lives.
    fn ctx(&mut self) -> &mut *mut c_void;
}

impl Managed for DlManagedTensor {
    const NAME: &'static CStr = c"dltensor";
    fn new(dl_tensor: DlTensor, _read_only: bool) -> Self {
        DlManagedTensor {
            dl_tensor,
            manager_ctx: std::ptr::null_mut(),
            deleter: Some(delete::<Self>),
        }
    }
    fn ctx(&mut self) -> &mut *mut c_void {
        &mut self.manager_ctx
    }
}

impl Managed for DlManagedTensorVersioned {
    const NAME: &'static CStr = c"dltensor_versioned";
    fn new(dl_tensor: DlTensor, read_only: bool) -> Self {
        DlManagedTensorVersioned {
            version: [1, 0],
            manager_ctx: std::ptr::null_mut(),
            deleter: Some(delete::<Self>),
            flags: if read_only { DLPACK_FLAG_READ_ONLY } else { 0 },
            dl_tensor,
        }
    }
    fn ctx(&mut self) -> &mut *mut c_void {
        &mut self.manager_ctx
    }
}

/// The deleter a consumer calls when it is done: frees the tensor and the pixels' owner.
///
/// # Safety
/// `t` is a pointer made by [`capsule`] and not deleted yet (the DLPack contract).
unsafe extern "C" fn delete<M: Managed>(t: *mut M) {
    // SAFETY: per the contract above, both boxes were made by `capsule` with Box::into_raw
    // and are freed exactly once, here (the module's rules).
    unsafe {
        drop(Box::from_raw(*(*t).ctx() as *mut Pixels));
        drop(Box::from_raw(t));
    }
}

/// The capsule's destructor: a capsule never consumed (still bearing its name) still owns its
/// tensor.
///
/// # Safety
/// Called by Python with the capsule, holding the GIL.
unsafe extern "C" fn destructor<M: Managed>(capsule: *mut pyo3::ffi::PyObject) {
    // SAFETY: `capsule` is a live capsule (Python calls this before freeing it); its pointer,
    // under the name it still has, is the tensor `capsule` made (the module's rules).
    unsafe {
        if pyo3::ffi::PyCapsule_IsValid(capsule, M::NAME.as_ptr()) == 1 {
            let t = pyo3::ffi::PyCapsule_GetPointer(capsule, M::NAME.as_ptr()) as *mut M;
            if !t.is_null() {
                delete(t);
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

/// A capsule of `M` over `pixels`.
fn capsule<M: Managed>(py: Python<'_>, pixels: Pixels, read_only: bool) -> PyResult<Py<PyAny>> {
    let mut ctx = Box::new(pixels);
    let t = Box::into_raw(Box::new(M::new(dl_tensor(&mut ctx), read_only)));
    // SAFETY: `t` is the box just made; `ctx` is handed to it (the module's rules), and both
    // are freed by `delete` if Python cannot make the capsule.
    unsafe {
        *(*t).ctx() = Box::into_raw(ctx) as *mut c_void;
        let capsule =
            pyo3::ffi::PyCapsule_New(t as *mut c_void, M::NAME.as_ptr(), Some(destructor::<M>));
        if capsule.is_null() {
            delete(t);
            return Err(PyErr::fetch(py));
        }
        Ok(Py::from_owned_ptr(py, capsule))
    }
}

/// The `__dlpack__` capsule over `pixels` for a consumer that asked with `max_version`: the
/// versioned tensor (flagged read-only when `read_only`) if it reads DLPack 1.x, else the
/// unversioned one (which cannot say read-only).
pub(crate) fn dlpack(
    py: Python<'_>,
    pixels: Pixels,
    max_version: Option<&Bound<'_, PyAny>>,
    read_only: bool,
) -> PyResult<Py<PyAny>> {
    let versioned = max_version
        .and_then(|v| v.extract::<(u32, u32)>().ok())
        .is_some_and(|(major, _)| major >= 1);
    if versioned {
        capsule::<DlManagedTensorVersioned>(py, pixels, read_only)
    } else {
        capsule::<DlManagedTensor>(py, pixels, false)
    }
}
