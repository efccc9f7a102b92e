//! Whether a `contextvars.Context` has variables, and whether the current one has, without a copy.
//!
//! `call_soon` runs its callback in a copy of the caller's context, and a handle made from an
//! empty context holds none (`event_loop::ContextKind`). Telling that the context is empty used to
//! take a copy, looked at and freed at once: `PyContext_CopyCurrent` and the copy's deallocator,
//! 84 of the 2,000 instructions of a `call_soon` chain's step (callgrind), and 15 of the 86 ns a
//! thread spent sending a callback with `call_soon_threadsafe` (timed). CPython keeps the current
//! context in the thread state, a structure whose layout is not public and changes between
//! versions (its context is the 29th word in 3.11, the 27th in 3.13), so [`install`] finds it the
//! way `handle_memory` finds pyo3's layout: by looking, once, when the module is made. If it is
//! not found, [`current_is_empty`] answers "don't know" and the copy is taken as before.

use pyo3::ffi;
use pyo3::prelude::*;
use std::sync::OnceLock;

/// Where the thread state keeps the current context, in pointers from its start; `None` when
/// [`install`] could not tell.
static CURRENT_CONTEXT_WORD: OnceLock<Option<usize>> = OnceLock::new();

/// How far into the thread state to look: a thread state is larger than this in every version
/// (3.11's, the smallest, has the context at word 28 and more than 40 words in all, by its
/// header), and the context comes before.
const WORDS_LOOKED_AT: usize = 36;

/// Whether a `contextvars.Context` has no variables: its type's length slot, called directly
/// (`len()` goes through the sequence and mapping protocols first).
///
/// # Safety
/// `context` is a `contextvars.Context`: its length is its variables' count, and cannot fail.
pub(crate) unsafe fn is_empty(context: *mut ffi::PyObject) -> bool {
    // SAFETY: as the caller promises; a type's mapping methods, if any, live as long as the type.
    unsafe {
        let mapping = (*ffi::Py_TYPE(context)).tp_as_mapping;
        mapping.as_ref().and_then(|m| m.mp_length).is_some_and(|length| length(context) == 0)
    }
}

/// Whether the calling thread's current context is known to have no variables: true when the
/// thread never entered one or the one it is in is empty; false when it has variables, or when
/// where to look is unknown.
pub(crate) fn current_is_empty(_py: Python<'_>) -> bool {
    let Some(Some(word)) = CURRENT_CONTEXT_WORD.get().copied() else { return false };
    // SAFETY: the GIL is held, so the thread has a state; `install` found the current context at
    // `word` in it, and the pointer there is NULL or a live `contextvars.Context` the thread state
    // holds a reference to.
    unsafe {
        let context = *ffi::PyThreadState_Get().cast::<*mut ffi::PyObject>().add(word);
        context.is_null() || is_empty(context)
    }
}

/// Finds where the thread state keeps the current context: enters a new context and looks for it
/// among the thread state's first words, then checks the word follows a second context entered
/// inside the first, and each exit. Called once, when the module is made.
pub(crate) fn install(py: Python<'_>) -> PyResult<()> {
    if CURRENT_CONTEXT_WORD.get().is_some() {
        return Ok(());
    }
    // SAFETY: PyContext_New returns a new reference or NULL with an exception set.
    let (outer, inner) = unsafe { (Bound::from_owned_ptr_or_err(py, ffi::PyContext_New())?, Bound::from_owned_ptr_or_err(py, ffi::PyContext_New())?) };
    // SAFETY: the GIL is held; the thread state is read, never written, one word at a time, and
    // no further than `WORDS_LOOKED_AT` words, within every version's thread state; the two
    // contexts are entered and exited in pairs, on this thread.
    let word = unsafe {
        let state = ffi::PyThreadState_Get().cast::<*mut ffi::PyObject>();
        let read = |word: usize| *state.add(word);
        let before: Vec<_> = (0..WORDS_LOOKED_AT).map(read).collect();
        if ffi::PyContext_Enter(outer.as_ptr()) != 0 {
            return Err(PyErr::fetch(py));
        }
        let found = (0..WORDS_LOOKED_AT).find(|&word| read(word) == outer.as_ptr());
        let followed = found.filter(|&word| {
            let entered = ffi::PyContext_Enter(inner.as_ptr()) == 0 && read(word) == inner.as_ptr();
            let exited = ffi::PyContext_Exit(inner.as_ptr()) == 0 && read(word) == outer.as_ptr();
            entered && exited
        });
        if ffi::PyContext_Exit(outer.as_ptr()) != 0 {
            return Err(PyErr::fetch(py));
        }
        followed.filter(|&word| read(word) == before[word])
    };
    if PyErr::occurred(py) {
        // A failed inner enter or exit left an exception: the look was inconclusive, not an error.
        drop(PyErr::fetch(py));
    }
    let _ = CURRENT_CONTEXT_WORD.set(word);
    Ok(())
}

/// Whether [`install`] found the current context (for the tests).
pub(crate) fn found() -> bool {
    matches!(CURRENT_CONTEXT_WORD.get(), Some(Some(_)))
}
