//! Cells that the GIL guards: how a `frozen` pyclass keeps mutable state without atomics.
//!
//! pyo3 guards a mutable (non-`frozen`) class with a borrow flag it changes atomically, twice per
//! borrow, so that the class also works on free-threaded CPython. This module declares that it
//! uses the GIL (pyo3's default, which makes a free-threaded CPython re-enable the GIL to import
//! it), so on the hot paths — a handle run, a future resolved, a task stepped — a plain flag does:
//! every access takes the `Python` token, and only one thread at a time can hold it.

use pyo3::Python;
use std::cell::{Ref, RefCell, RefMut, UnsafeCell};

/// A value read and written whole, under the GIL; the closures given to `with` must not run
/// Python code, which could reach the same cell again.
pub(crate) struct GilCell<T>(UnsafeCell<T>);

// SAFETY: every access goes through `with`, which requires the GIL, so at most one thread touches
// the value at a time; the values kept (Python references, flags) may move between threads.
unsafe impl<T: Send> Sync for GilCell<T> {}

impl<T> GilCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        GilCell(UnsafeCell::new(value))
    }

    pub(crate) fn with<R>(&self, _py: Python<'_>, f: impl FnOnce(&mut T) -> R) -> R {
        // SAFETY: the GIL is held (the token proves it) and `f` runs no Python code, so no other
        // access to the value can begin before this one ends.
        f(unsafe { &mut *self.0.get() })
    }

    /// The value, without the token: for `Drop`, where the owner is being destroyed.
    pub(crate) fn get_mut(&mut self) -> &mut T {
        self.0.get_mut()
    }
}

/// A `RefCell` under the GIL: borrows that may span Python calls, checked with a plain counter.
/// A conflicting borrow panics, as pyo3's own does (and pyo3 turns the panic into an exception).
pub(crate) struct GilRefCell<T>(RefCell<T>);

// SAFETY: the RefCell is only borrowed with the GIL held (the token, or the garbage collector,
// which runs with the GIL), so its counter is never changed by two threads at once.
unsafe impl<T: Send> Sync for GilRefCell<T> {}

impl<T> GilRefCell<T> {
    pub(crate) fn new(value: T) -> Self {
        GilRefCell(RefCell::new(value))
    }

    pub(crate) fn borrow(&self, _py: Python<'_>) -> Ref<'_, T> {
        self.0.borrow()
    }

    pub(crate) fn borrow_mut(&self, _py: Python<'_>) -> RefMut<'_, T> {
        self.0.borrow_mut()
    }

    pub(crate) fn try_borrow_mut(&self, _py: Python<'_>) -> Option<RefMut<'_, T>> {
        self.0.try_borrow_mut().ok()
    }

    /// For `__traverse__`, which gets no token but runs inside the collector, with the GIL held;
    /// `None` while the value is mutably borrowed (the collector then skips it, as pyo3 does).
    pub(crate) fn borrow_in_gc(&self) -> Option<Ref<'_, T>> {
        self.0.try_borrow().ok()
    }
}

impl<T: Default> GilRefCell<T> {
    /// For `__clear__` (inside the collector, with the GIL held): the value, replaced by its
    /// default, so that the caller drops it after the borrow, when dropping may run Python code.
    pub(crate) fn take_in_gc(&self) -> Option<T> {
        self.0.try_borrow_mut().ok().map(|mut value| std::mem::take(&mut *value))
    }
}

impl<T: Default> Default for GilRefCell<T> {
    fn default() -> Self {
        GilRefCell::new(T::default())
    }
}
