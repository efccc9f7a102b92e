//! Methods made as CPython makes its own: a `PyMethodDef` and a method descriptor, for the few
//! calls that run once per message or per callback (`call_soon`, `call_soon_threadsafe`, the
//! socket transport's `write` and `_read_ready`).
//!
//! pyo3's method wrapper (its argument description, a tuple for `*args`, its thread-local
//! bookkeeping on the way in and out) costs a few hundred instructions per call; callgrind put it
//! at a tenth of a `call_soon` chain's step. A method descriptor is also what CPython's
//! `LOAD_METHOD` calls without making a bound method first. The functions here read their
//! arguments in place, and [`enter`] keeps pyo3's promise: a panic becomes a Python exception,
//! never an abort.

use pyo3::prelude::*;
use pyo3::types::PyType;
use pyo3::ffi;
use std::cell::UnsafeCell;
use std::ffi::CStr;

/// A method definition in a static, as C extensions keep theirs.
pub(crate) struct MethodDef(UnsafeCell<ffi::PyMethodDef>);

// SAFETY: a definition is never written after it is made: CPython only reads it.
unsafe impl Sync for MethodDef {}

impl MethodDef {
    /// `doc` starts with the signature (`name($self, ...)\n--\n\n`), as CPython's own methods do,
    /// so that `inspect.signature` reads it. The calling convention follows from the function's
    /// type, through the constructors below.
    const fn new(name: &'static CStr, doc: &'static CStr, method: ffi::PyMethodDefPointer, flags: std::ffi::c_int) -> Self {
        MethodDef(UnsafeCell::new(ffi::PyMethodDef { ml_name: name.as_ptr(), ml_meth: method, ml_flags: flags, ml_doc: doc.as_ptr() }))
    }

    /// A method without arguments (`METH_NOARGS`).
    pub(crate) const fn no_arguments(name: &'static CStr, doc: &'static CStr, function: ffi::PyCFunction) -> Self {
        Self::new(name, doc, ffi::PyMethodDefPointer { PyCFunction: function }, ffi::METH_NOARGS)
    }

    /// A method of one positional argument, passed as it is (`METH_O`).
    pub(crate) const fn one_argument(name: &'static CStr, doc: &'static CStr, function: ffi::PyCFunction) -> Self {
        Self::new(name, doc, ffi::PyMethodDefPointer { PyCFunction: function }, ffi::METH_O)
    }

    /// A method of positional arguments, in place (`METH_FASTCALL`).
    pub(crate) const fn fastcall(name: &'static CStr, doc: &'static CStr, function: ffi::PyCFunctionFast) -> Self {
        Self::new(name, doc, ffi::PyMethodDefPointer { PyCFunctionFast: function }, ffi::METH_FASTCALL)
    }

    /// A method of positional and keyword arguments, in place (`METH_FASTCALL | METH_KEYWORDS`).
    pub(crate) const fn fastcall_keywords(name: &'static CStr, doc: &'static CStr, function: ffi::PyCFunctionFastWithKeywords) -> Self {
        Self::new(name, doc, ffi::PyMethodDefPointer { PyCFunctionFastWithKeywords: function }, ffi::METH_FASTCALL | ffi::METH_KEYWORDS)
    }

    /// Sets the method on `class` as a method descriptor, under its own name.
    fn install(&'static self, class: &Bound<'_, PyType>) -> PyResult<()> {
        let py = class.py();
        // SAFETY: a static definition, which outlives the interpreter; PyDescr_NewMethod returns a
        // new reference to a descriptor for instances of `class`, or NULL with an exception set.
        let descriptor = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyDescr_NewMethod(class.as_type_ptr(), self.0.get()))? };
        // SAFETY: the name is a static C string (see `new`).
        let name = unsafe { CStr::from_ptr((*self.0.get()).ml_name) }.to_str().expect("method names are ASCII");
        class.setattr(name, descriptor)
    }
}

/// Sets each of `methods` on `class`; called once per class, when the module is made.
pub(crate) fn install(class: &Bound<'_, PyType>, methods: &[&'static MethodDef]) -> PyResult<()> {
    methods.iter().try_for_each(|method| method.install(class))
}

/// Runs a method's body for CPython: its result as a new reference, or NULL with the exception
/// set; a panic is caught and raised as pyo3's `PanicException`.
///
/// Unlike pyo3's wrapper, this does not tell pyo3 that the thread is attached (pyo3 keeps that
/// count in a thread-local, and offers no public way to raise it without asking CPython). So a
/// body works with `Bound` references, which need no such question, and releases what it holds
/// with the token (`drop_ref`, `PyUntypedBuffer::release`): a `Py` dropped without it, from a
/// thread that pyo3 thinks is not attached, waits in pyo3's pool for a later call into Rust.
///
/// # Safety
/// The caller is a C function that CPython called, with the GIL held.
#[inline(always)]
pub(crate) unsafe fn enter(body: impl for<'py> FnOnce(Python<'py>) -> PyResult<Bound<'py, PyAny>>) -> *mut ffi::PyObject {
    // SAFETY: as the caller promises.
    let py = unsafe { Python::assume_attached() };
    let error = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(py))) {
        Ok(Ok(result)) => return result.into_ptr(),
        Ok(Err(error)) => error,
        Err(payload) => panic_error(payload),
    };
    error.restore(py);
    std::ptr::null_mut()
}

/// A caught panic as pyo3 raises one: a `PanicException` with the panic's message.
#[cold]
pub(crate) fn panic_error(payload: Box<dyn std::any::Any + Send>) -> PyErr {
    let message = payload.downcast_ref::<String>().map(String::as_str).or_else(|| payload.downcast_ref::<&str>().copied()).unwrap_or("panic from Rust code");
    pyo3::panic::PanicException::new_err(message.to_string())
}
