//! How `Handle` objects are made and freed: the loop makes one for every callback, so the way
//! from a Rust `Handle` to a Python object and back is kept short.
//!
//! - Freed handles are kept for the next ones ([`HANDLES_KEPT`] at most), as CPython keeps freed
//!   tuples and frames: the allocator's round trip, with the garbage collector's bookkeeping, was
//!   a tenth of a `call_soon` chain's step (callgrind). They are the class's `tp_alloc` and
//!   `tp_free`. The list is long enough for the backlog threads sending with
//!   `call_soon_threadsafe` leave: four threads taking turns with the GIL hold it for 5 ms each
//!   while the loop waits for its turn, and queue up to half a million handles (460,000 of the
//!   benchmark's 600,000 callbacks were pending at once). Given back, their memory went back to
//!   the kernel, which had to fault it in again for the next burst: a fifth of the benchmark's
//!   threadsafe time with no handle kept, and 4,700 page faults per run with a quarter of a
//!   million kept (2,400 with this list: the ready queue's growth). So a process that once
//!   had that many callbacks pending keeps their memory (40 MiB at most, less than the 64 MiB
//!   glibc's `malloc` may keep at the top of its heap) for the next time; a process that never
//!   had keeps no more than it used.
//! - The class's `tp_dealloc` ([`dealloc`]) reads the Rust value out of the object and lets go of
//!   its references with the GIL's token ([`Handle::release`]), past pyo3's destructor, which
//!   enters pyo3's thread-local bookkeeping for every handle; [`new_object`] makes one the same
//!   way back, past pyo3's constructor.
//!
//! Only exact `Handle`s take these paths; a `TimerHandle` or a Python subclass of `Handle` is
//! laid out differently, and is freed by pyo3 and CPython. Where pyo3 keeps the Rust value
//! inside the object is not a public promise, so it is measured, on a real handle, when the
//! module is made ([`install`]).

use crate::event_loop::Handle;
use crate::gil::GilCell;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyType;
use std::ptr::NonNull;
use std::sync::OnceLock;

/// How many freed handles are kept: 40 MiB at most (80 bytes each, the collector's header included).
const HANDLES_KEPT: usize = 524_288;

/// Freed handles' memory.
static FREE_HANDLES: GilCell<Vec<FreeHandle>> = GilCell::new(Vec::new());

/// A freed handle's memory: no longer an object, only the GIL's holder touches it.
struct FreeHandle(NonNull<ffi::PyObject>);

// SAFETY: the pointer is only used with the GIL held (the list is a `GilCell`).
unsafe impl Send for FreeHandle {}

/// The `Handle` class and where its instances keep what, measured by [`install`].
struct Layout {
    class: usize,
    /// Offset of the Rust `Handle` in the object.
    value: usize,
    /// Offset of the weak-reference list (`tp_weaklistoffset`).
    weaklist: usize,
    /// Size of an instance (`tp_basicsize`).
    size: usize,
    /// pyo3's deallocator, for instances of subclasses.
    pyo3_dealloc: ffi::destructor,
}

static LAYOUT: OnceLock<Layout> = OnceLock::new();

fn layout() -> &'static Layout {
    LAYOUT.get().expect("installed when the module is made")
}

/// Gives the `Handle` class its allocator, its `tp_free` and its deallocator; called once, when
/// the module is made.
pub(crate) fn install(class: &Bound<'_, PyType>) -> PyResult<()> {
    let py = class.py();
    if LAYOUT.get().is_some() {
        return Ok(());
    }
    let probe = Py::new(py, Handle::placeholder(py))?;
    let class = class.as_type_ptr();
    // SAFETY: pyo3's heap type for Handle, whose slots are patched (and PyType_Modified called) as
    // CPython's own types are changed; the probe is a live instance, only measured.
    unsafe {
        let pyo3_dealloc = (*class).tp_dealloc.ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("pyo3 gave Handle no deallocator"))?;
        let value = (probe.get() as *const Handle as usize) - (probe.as_ptr() as usize);
        let layout = Layout { class: class as usize, value, weaklist: (*class).tp_weaklistoffset as usize, size: (*class).tp_basicsize as usize, pyo3_dealloc };
        // The deallocator reads the value and the weak-reference list, and nothing else, which
        // is all pyo3's own deallocator does for a class like this one (no `__dict__`, `frozen`,
        // `Send`: its other fields have nothing to drop).
        let value_end = layout.value + std::mem::size_of::<Handle>();
        let weaklist_apart = layout.weaklist >= value_end || layout.weaklist + std::mem::size_of::<usize>() <= layout.value;
        if layout.weaklist == 0 || !weaklist_apart || value_end > layout.size || (*class).tp_dictoffset != 0 {
            return Err(pyo3::exceptions::PyRuntimeError::new_err("pyo3 laid a Handle out in a way mioloop does not know"));
        }
        drop(probe);
        if LAYOUT.set(layout).is_ok() {
            (*class).tp_alloc = Some(alloc);
            (*class).tp_free = Some(free);
            (*class).tp_dealloc = Some(dealloc);
            ffi::PyType_Modified(class);
        }
    }
    Ok(())
}

/// A new `Handle` object holding `value`, untracked by the garbage collector: a handle has no
/// `__traverse__`, so the collector could find nothing through it (`EventLoopCore::new_handle`
/// says why none is needed).
///
/// Made here, not by pyo3: pyo3 calls `object.__new__` with an empty tuple of arguments, which
/// checks them and then calls the class's `tp_alloc`, and looks the slots up on the way: 66 of
/// the 2,121 instructions a `call_soon_threadsafe` callback cost, sent and run (callgrind).
/// What pyo3 writes into a new object of this class is the value and an empty weak-reference list
/// (its borrow flag and thread checker take no room in a `frozen`, `Send` class), and that is
/// what is written here, where [`install`] measured pyo3 keeps them.
pub(crate) fn new_object(py: Python<'_>, value: Handle) -> PyResult<Py<Handle>> {
    let layout = layout();
    // SAFETY: `alloc` returns a new reference to an object of the class (kept memory made an
    // object again, or CPython's zeroed allocation), or NULL with an exception set. Its value
    // and weak-reference list are where `install` measured them, within the object, and are
    // written once, before anything else sees the object; untracking an untracked object does
    // nothing.
    unsafe {
        let object = alloc(layout.class as *mut ffi::PyTypeObject, 0);
        if object.is_null() {
            value.release(py);
            return Err(PyErr::fetch(py));
        }
        ffi::PyObject_GC_UnTrack(object.cast());
        std::ptr::write(object.cast::<u8>().add(layout.value).cast::<Handle>(), value);
        *object.cast::<u8>().add(layout.weaklist).cast::<*mut ffi::PyObject>() = std::ptr::null_mut();
        Ok(Bound::from_owned_ptr(py, object).cast_into_unchecked::<Handle>().unbind())
    }
}

/// `tp_alloc`: a kept handle made an object again (with a reference to its class, as
/// `PyType_GenericAlloc` makes one; pyo3 then writes every field it has), or a new one.
unsafe extern "C" fn alloc(class: *mut ffi::PyTypeObject, items: ffi::Py_ssize_t) -> *mut ffi::PyObject {
    // SAFETY: CPython allocates with the GIL held.
    let py = unsafe { Python::assume_attached() };
    let layout = layout();
    if items == 0 && class as usize == layout.class {
        if let Some(FreeHandle(memory)) = FREE_HANDLES.with(py, Vec::pop) {
            // SAFETY: memory of a freed, untracked handle of this very class. It is left
            // untracked, as `new_object` leaves every handle.
            return unsafe { ffi::PyObject_Init(memory.as_ptr(), class) };
        }
    }
    // SAFETY: CPython's own allocation, for any class.
    unsafe { ffi::PyType_GenericAlloc(class, items) }
}

/// `tp_dealloc`: an exact handle's weak references cleared and its Rust value released with the
/// GIL's token ([`Handle::release`]), then its memory kept or freed; anything else goes to pyo3's
/// deallocator. A panic (there is none to expect) is reported as unraisable, never unwound into C.
unsafe extern "C" fn dealloc(object: *mut ffi::PyObject) {
    let layout = layout();
    // SAFETY: CPython calls tp_dealloc with the GIL held, on a dead object of this class or of a
    // subclass, once. For an exact handle: the weak-reference list and the value are where
    // `install` measured them; the value was written by `new_object` or pyo3 and is read out
    // once; the object's reference to its class is released last, as pyo3 and CPython do.
    unsafe {
        let class = ffi::Py_TYPE(object);
        if class as usize != layout.class {
            return (layout.pyo3_dealloc)(object);
        }
        let py = Python::assume_attached();
        ffi::PyObject_GC_UnTrack(object.cast());
        if !(*object.cast::<u8>().add(layout.weaklist).cast::<*mut ffi::PyObject>()).is_null() {
            ffi::PyObject_ClearWeakRefs(object);
        }
        let value = std::ptr::read(object.cast::<u8>().add(layout.value).cast::<Handle>());
        if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| value.release(py))) {
            crate::cmethod::panic_error(payload).write_unraisable(py, None);
        }
        free(object.cast());
        ffi::Py_DECREF(class.cast());
    }
}

/// `tp_free`: keeps an exact handle's memory (its value is gone and it is untracked); frees
/// anything else as CPython would.
unsafe extern "C" fn free(memory: *mut std::ffi::c_void) {
    // SAFETY: CPython frees with the GIL held.
    let py = unsafe { Python::assume_attached() };
    let object: *mut ffi::PyObject = memory.cast();
    // SAFETY: `object` is a dead object whose type pointer is still readable.
    let class = unsafe { ffi::Py_TYPE(object) };
    if class as usize == layout().class {
        if let Some(object) = NonNull::new(object) {
            let kept = FREE_HANDLES.with(py, |kept| kept.len() < HANDLES_KEPT && {
                kept.push(FreeHandle(object));
                true
            });
            if kept {
                return;
            }
        }
    }
    // SAFETY: the inverse of PyType_GenericAlloc for the object's class.
    unsafe {
        if ffi::PyType_IS_GC(class) != 0 { ffi::PyObject_GC_Del(memory) } else { ffi::PyObject_Free(memory) }
    }
}
