//! `mioloop.EventLoop`: asyncio's event loop with its hot paths on the `event-loop` crate's core.
//!
//! Taught in the chapter *The same loop in Rust*, measured in *Benchmarks*.
//!
//! `_EventLoopCore` (here) holds the core and implements what runs on every callback: `call_soon`,
//! `call_at`, `call_later`, `call_soon_threadsafe`, `time`, the readers and writers, and `_run_once`,
//! which waits with the GIL released and runs the turn's handles; `create_future` makes a
//! `mioloop.Future` and `create_task` a `mioloop.Task`, without a Python frame. `EventLoop`
//! (`event_loop.py`) is a Python class deriving from it and from asyncio's `BaseEventLoop`, which supplies, unchanged,
//! what runs once per program: `run_forever`, `run_until_complete`, `stop`, task factories,
//! exception handlers, debug mode, async generator hooks and executors.
//!
//! Threads: the core is guarded by the GIL ([`CoreCell`]), except while the loop thread waits with
//! the GIL released: it takes the core with it then. Meanwhile, other threads queue callbacks
//! through the core's `Remote`, a timer cancelled from another thread is only marked (the runner
//! skips it), and anything else (a reader added from another thread) wakes the loop and waits for
//! the core to come back.

use crate::bridge::Wakeups;
use crate::cmethod::{self, MethodDef};
use crate::future::Future;
use crate::gil::GilCell;
use crate::task::Task;
use crate::selector::fileobj_to_fd;
use event_loop::{Core, Job, Remote, TimerId, Turn};
use pyo3::exceptions::{PyKeyboardInterrupt, PyRuntimeError, PySystemExit, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString, PyTuple};
use pyo3::{ffi, intern};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::cell::UnsafeCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `time.monotonic()`, which is what asyncio's `loop.time()` returns, from the same clock.
fn monotonic() -> f64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as f64 + now.tv_nsec as f64 * 1e-9
}

/// Converts between the loop's time (seconds of `time.monotonic()`) and `Instant`s, the core's
/// deadlines, which read the same clock (CLOCK_MONOTONIC): one reading taken when the loop is made.
struct Clock {
    instant: Instant,
    seconds: f64,
}

impl Clock {
    fn new() -> Self {
        Clock { instant: Instant::now(), seconds: monotonic() }
    }

    fn now(&self) -> f64 {
        self.seconds + self.instant.elapsed().as_secs_f64()
    }

    /// The `Instant` of loop time `when`; `None` beyond what an `Instant` can hold (`when=inf`).
    fn deadline(&self, when: f64) -> Option<Instant> {
        let offset = when - self.seconds;
        if offset <= 0.0 {
            return Some(self.instant);
        }
        Duration::try_from_secs_f64(offset).ok().and_then(|d| self.instant.checked_add(d))
    }
}

/// What a handle holds of the `contextvars.Context` its callback runs in.
///
/// A busy loop holds thousands of handles, each with a context it copied; tracked by the garbage
/// collector, those contexts would be traversed by every collection (a third of the cost of
/// `call_soon_threadsafe` in the benchmark). A context the handle copied itself is reachable from
/// nothing else, so it is untracked while the handle holds it. It is tracked again before it is
/// given out (`get_context`) or let go, because CPython frees a context assuming it is tracked.
///
/// A context with no variables in it (what a thread that never set one sends) is not kept at
/// all, and not even copied where [`crate::contexts`] can tell it is empty without a copy: the
/// callback is lent an empty context when it runs, which is the same thing to it, and a
/// backlog of such handles holds no context objects (a thread sending callbacks faster than the
/// loop runs them otherwise made a context for each, and the kernel faulted in the memory). The
/// lent context goes back to [`SPARE_CONTEXT`] after the run if it is still empty and nothing else
/// holds a reference to it (`get_context()` gives it out; a `contextvars.Token` keeps the context
/// it was made in), so a stream of such callbacks makes no context at all.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ContextKind {
    /// The caller's context was empty; the handle holds none.
    Empty,
    /// A copy the handle made itself, untracked while only the handle holds it.
    Copied,
    /// A context the caller passed, or one given out to Python code: tracked, left as it is.
    Shared,
    /// An empty context lent for a run.
    Lent,
}

/// An empty context no callback holds, for the next one that needs one ([`ContextKind`]).
static SPARE_CONTEXT: GilCell<Option<Py<PyAny>>> = GilCell::new(None);

/// A scheduled callback: asyncio's `Handle`, with the same methods and the same repr.
///
/// Its fields are laid out so that the object is 64 bytes (the collector's header apart): the
/// loop makes one per callback, and a backlog of them is the loop's largest use of memory.
#[pyclass(frozen, subclass, weakref, module = "mioloop")]
pub struct Handle {
    /// The callback and its arguments; dropped on `cancel()`, as asyncio does, so that a cancelled
    /// handle keeps nothing alive.
    call: GilCell<Option<(Py<PyAny>, Py<PyTuple>)>>,
    /// The `contextvars.Context` the callback runs in, as `context_kind` says.
    context: GilCell<Option<Py<PyAny>>>,
    context_kind: GilCell<ContextKind>,
    cancelled: GilCell<bool>,
    /// The loop, for its exception handler.
    event_loop: Py<PyAny>,
    /// A reader's or writer's handle runs each time its descriptor is ready; any other handle
    /// runs once, and lets go of its callback when it has.
    repeats: bool,
}

/// A callback scheduled for a time: asyncio's `TimerHandle`.
#[pyclass(frozen, extends = Handle, module = "mioloop")]
pub struct TimerHandle {
    /// The deadline, in loop time.
    when: f64,
    /// The core's name for the timer, to cancel it; set once scheduled.
    timer: GilCell<Option<TimerId>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        // Only pyo3's destructor comes here (a `TimerHandle`, a subclass, a handle never made an
        // object): `release` is the usual way out.
        if *self.context_kind.get_mut() == ContextKind::Copied {
            Python::attach(|py| self.retrack_context(py));
        }
    }
}

impl Handle {
    /// Lets go of everything the handle holds, with the GIL's token in hand: what a handle's
    /// deallocator does (`handle_memory`). Dropping a `Py` without the token asks pyo3 whether
    /// the thread is attached, and outside pyo3's own frames (a handle freed by `del` in plain
    /// Python code, or while the interpreter shuts down) the answer is no: the reference would
    /// wait in pyo3's pool for a later call into Rust, and the context's re-tracking would try
    /// to attach the thread again, which CPython 3.13 refuses while it finalizes.
    pub(crate) fn release(self, py: Python<'_>) {
        self.retrack_context(py);
        if let Some((callback, args)) = self.call.with(py, Option::take) {
            callback.drop_ref(py);
            args.drop_ref(py);
        }
        if let Some(context) = self.context.with(py, Option::take) {
            context.drop_ref(py);
        }
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again, so the reference is read out once; the
        // other fields hold nothing to drop now.
        unsafe { std::ptr::read(&this.event_loop) }.drop_ref(py);
    }

    /// A handle with nothing to call, for measuring where pyo3 keeps a handle's fields
    /// (`handle_memory`).
    pub(crate) fn placeholder(py: Python<'_>) -> Self {
        Handle {
            call: GilCell::new(None),
            context: GilCell::new(None),
            context_kind: GilCell::new(ContextKind::Empty),
            cancelled: GilCell::new(true),
            event_loop: py.None(),
            repeats: false,
        }
    }

    fn new(py: Python<'_>, callback: Py<PyAny>, args: Py<PyTuple>, context: Option<Py<PyAny>>, event_loop: Py<PyAny>, repeats: bool) -> PyResult<Self> {
        let (context, kind) = match context.filter(|c| !c.is_none(py)) {
            Some(context) => (Some(context), ContextKind::Shared),
            None if crate::contexts::current_is_empty(py) => (None, ContextKind::Empty),
            None => {
                // SAFETY: PyContext_CopyCurrent returns a new reference or NULL with an exception set.
                let copy = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyContext_CopyCurrent())? };
                // SAFETY: PyContext_CopyCurrent makes a contextvars.Context.
                if unsafe { crate::contexts::is_empty(copy.as_ptr()) } {
                    (None, ContextKind::Empty)
                } else {
                    let copy = copy.unbind();
                    untrack(&copy);
                    (Some(copy), ContextKind::Copied)
                }
            }
        };
        Ok(Handle {
            call: GilCell::new(Some((callback, args))),
            context: GilCell::new(context),
            context_kind: GilCell::new(kind),
            cancelled: GilCell::new(false),
            event_loop,
            repeats,
        })
    }

    /// The context, for Python code (`get_context`): tracked from now on, and made now if the
    /// handle had none.
    fn share_context(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.retrack_context(py);
        let context = match self.context.with(py, |c| c.as_ref().map(|c| c.clone_ref(py))) {
            Some(context) => context,
            None => {
                // SAFETY: PyContext_New returns a new reference or NULL with an exception set.
                let context = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyContext_New())? }.unbind();
                self.context.with(py, |c| *c = Some(context.clone_ref(py)));
                context
            }
        };
        self.context_kind.with(py, |kind| *kind = ContextKind::Shared);
        Ok(context)
    }

    /// The context to run the callback in: the handle's, or an empty one lent for the run.
    fn context_to_run_in<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        if let Some(context) = self.context.with(py, |c| c.as_ref().map(|c| c.clone_ref(py))) {
            return Ok(context.into_bound(py));
        }
        let context = match SPARE_CONTEXT.with(py, Option::take) {
            Some(spare) => spare.into_bound(py),
            // SAFETY: PyContext_New returns a new reference or NULL with an exception set.
            None => unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyContext_New())? },
        };
        self.context.with(py, |c| *c = Some(context.clone().unbind()));
        self.context_kind.with(py, |kind| *kind = ContextKind::Lent);
        Ok(context)
    }

    /// After a run (the caller holds no reference to the context any more): a lent context goes
    /// back to be lent again if it is still empty and the handle's is the only reference to it;
    /// one the callback set a variable in, or that something kept (a `contextvars.Token` keeps
    /// the context it was made in), stays with the handle, which may run again. A one-shot
    /// handle's own copy is tracked again now, while the GIL is at hand, not in a destructor.
    fn context_after_run(&self, py: Python<'_>) {
        match self.context_kind.with(py, |kind| *kind) {
            ContextKind::Lent => {
                let context = self.context.with(py, Option::take).expect("a lent context");
                // SAFETY: a context made by PyContext_New, referenced here.
                let unshared = unsafe { ffi::Py_REFCNT(context.as_ptr()) } == 1;
                if unshared && unsafe { crate::contexts::is_empty(context.as_ptr()) } {
                    self.context_kind.with(py, |kind| *kind = ContextKind::Empty);
                    let refused = SPARE_CONTEXT.with(py, |spare| spare.replace(context));
                    if let Some(refused) = refused {
                        refused.drop_ref(py);
                    }
                } else {
                    self.context.with(py, |c| *c = Some(context));
                    self.context_kind.with(py, |kind| *kind = ContextKind::Shared);
                }
            }
            ContextKind::Copied if !self.repeats => self.retrack_context(py),
            _ => {}
        }
    }

    /// Tracks the handle's own copy again: it is done with it, or gives it out.
    fn retrack_context(&self, py: Python<'_>) {
        let copied = self.context_kind.with(py, |kind| {
            let copied = *kind == ContextKind::Copied;
            if copied {
                *kind = ContextKind::Shared;
            }
            copied
        });
        if let Some(context) = self.context.with(py, |c| c.as_ref().map(|c| c.as_ptr())).filter(|_| copied) {
            // SAFETY: we untracked it and hold a reference; the GIL is held (the token proves it).
            unsafe { ffi::PyObject_GC_Track(context.cast()) }
        }
    }

    fn call(&self, py: Python<'_>) -> Option<(Py<PyAny>, Py<PyTuple>)> {
        self.call.with(py, |call| call.as_ref().map(|(c, a)| (c.clone_ref(py), a.clone_ref(py))))
    }

    /// Runs the callback in its context. An exception goes to the loop's exception handler, except
    /// `SystemExit` and `KeyboardInterrupt`, which propagate and stop the loop, as in asyncio.
    pub(crate) fn run(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if this.cancelled(py) {
            return Ok(());
        }
        let call = if this.repeats { this.call(py) } else { this.call.with(py, Option::take) };
        let Some((callback, args)) = call else { return Ok(()) };
        // Bound references: dropping them decrements at once, without asking whether the GIL is held.
        let (callback, args) = (callback.into_bound(py), args.into_bound(py));
        let context = this.context_to_run_in(py)?;
        // SAFETY: the context object is a contextvars.Context (asyncio passes only those); Enter and
        // Exit are paired below on every path.
        if unsafe { ffi::PyContext_Enter(context.as_ptr()) } != 0 {
            return Err(PyErr::fetch(py));
        }
        let result = crate::task::call_task_callback(&callback, &args).unwrap_or_else(|| if args.is_empty() { callback.call0().map(drop) } else { callback.call1(&args).map(drop) });
        // SAFETY: entered above on this thread.
        if unsafe { ffi::PyContext_Exit(context.as_ptr()) } != 0 {
            return Err(PyErr::fetch(py));
        }
        drop(context);
        this.context_after_run(py);
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.is_instance_of::<PySystemExit>(py) || e.is_instance_of::<PyKeyboardInterrupt>(py) => Err(e),
            Err(e) => {
                let source = py.import("asyncio.format_helpers")?.call_method1("_format_callback_source", (&callback, &args))?;
                if !this.repeats {
                    // The handler may log the handle: let it show what ran.
                    let call = Some((callback.clone().unbind(), args.clone().unbind()));
                    this.call.with(py, |slot| *slot = call);
                }
                let details = PyDict::new(py);
                details.set_item("message", format!("Exception in callback {source}"))?;
                details.set_item("exception", e.value(py))?;
                details.set_item("handle", slf)?;
                this.event_loop.bind(py).call_method1(intern!(py, "call_exception_handler"), (details,))?;
                Ok(())
            }
        }
    }

    fn repr_info(&self, py: Python<'_>, class: &str, when: Option<f64>) -> PyResult<String> {
        let mut info = vec![class.to_string()];
        if self.cancelled(py) {
            info.push("cancelled".into());
        }
        if let Some(when) = when {
            info.push(format!("when={}", when.into_pyobject(py)?.repr()?));
        }
        if let Some((callback, args)) = self.call(py) {
            info.push(py.import("asyncio.format_helpers")?.call_method1("_format_callback_source", (callback, args))?.extract()?);
        }
        Ok(format!("<{}>", info.join(" ")))
    }
}

#[pymethods]
impl Handle {
    /// Prevents the callback from running; idempotent. Works from any thread.
    fn cancel(&self, py: Python<'_>) {
        self.cancelled.with(py, |cancelled| *cancelled = true);
        // Dropped after the cell is released: dropping a callback may run Python code.
        let dropped = self.call.with(py, Option::take);
        drop(dropped);
        self.retrack_context(py);
    }

    pub fn cancelled(&self, py: Python<'_>) -> bool {
        self.cancelled.with(py, |cancelled| *cancelled)
    }

    fn get_context(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.share_context(py)
    }

    fn _run(slf: &Bound<'_, Self>) -> PyResult<()> {
        Handle::run(slf)
    }

    #[getter]
    fn _callback(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.call(py).map(|(c, _)| c)
    }

    #[getter]
    fn _args(&self, py: Python<'_>) -> Option<Py<PyTuple>> {
        self.call(py).map(|(_, a)| a)
    }

    #[getter]
    fn _cancelled(&self, py: Python<'_>) -> bool {
        self.cancelled(py)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        self.repr_info(py, "Handle", None)
    }
}

#[pymethods]
impl TimerHandle {
    /// The deadline, in the loop's time.
    fn when(&self) -> f64 {
        self.when
    }

    #[getter]
    fn _when(&self) -> f64 {
        self.when
    }

    /// Cancels the callback and, unless the loop is asleep in another thread, its timer (which
    /// otherwise fires later, and is skipped because it is cancelled).
    fn cancel(slf: PyRef<'_, Self>) {
        let py = slf.py();
        let handle = slf.as_super();
        handle.cancel(py);
        let timer = slf.timer.with(py, Option::take);
        if let (Some(timer), Ok(core)) = (timer, handle.event_loop.bind(py).cast::<EventLoopCore>()) {
            // Dropped outside the core: letting go of a handle may run Python code.
            let dropped = core.get().core.with(py, |core| core.cancel(timer));
            drop(dropped);
        }
    }

    fn __repr__(slf: PyRef<'_, Self>) -> PyResult<String> {
        slf.as_super().repr_info(slf.py(), "TimerHandle", Some(slf.when))
    }
}

/// Where the loop's core is.
enum Slot {
    /// In its cell, for whoever holds the GIL (boxed: the loop thread carries it off to wait).
    Here(Box<Core<Py<Handle>>>),
    /// Out with the loop thread, which waits for events with the GIL released.
    Waiting,
    /// Gone: the loop is closed (dropping the core closed its epoll and waker).
    Closed,
}

/// Why [`CoreCell::with`] could not lend the core.
enum Unavailable {
    Waiting,
    Closed,
    /// Already lent, further up this thread's stack: dropping a handle inside a core operation
    /// ran Python code (a callback's `__del__`) that reached for the loop again.
    Busy,
}

/// The loop's core, guarded by the GIL: a plain flag instead of a mutex's atomic operations on
/// every `call_soon` and every turn. Lent to one closure at a time, which runs no Python code.
struct CoreCell {
    slot: UnsafeCell<Slot>,
    busy: UnsafeCell<bool>,
}

// SAFETY: both cells are only touched with the GIL held (every method takes the token), and
// `busy` keeps a second loan from starting while one is out; the core itself is Send.
unsafe impl Sync for CoreCell {}

impl CoreCell {
    fn new(core: Core<Py<Handle>>) -> Self {
        CoreCell { slot: UnsafeCell::new(Slot::Here(Box::new(core))), busy: UnsafeCell::new(false) }
    }

    /// Lends the core to `f`, which must not run Python code.
    fn with<R>(&self, _py: Python<'_>, f: impl FnOnce(&mut Core<Py<Handle>>) -> R) -> Result<R, Unavailable> {
        /// Ends the loan, even if `f` panics.
        struct Loan<'a>(&'a UnsafeCell<bool>);
        impl Drop for Loan<'_> {
            fn drop(&mut self) {
                // SAFETY: the GIL is still held by the thread that started the loan.
                unsafe { *self.0.get() = false }
            }
        }
        // SAFETY: the GIL is held (the token proves it); no reference to `busy` outlives these
        // statements, and the slot is only borrowed while `busy` keeps others out.
        unsafe {
            if *self.busy.get() {
                return Err(Unavailable::Busy);
            }
            match &mut *self.slot.get() {
                Slot::Here(core) => {
                    *self.busy.get() = true;
                    let _loan = Loan(&self.busy);
                    Ok(f(core))
                }
                Slot::Waiting => Err(Unavailable::Waiting),
                Slot::Closed => Err(Unavailable::Closed),
            }
        }
    }

    /// Takes the core out of the cell (leaving `then`), or says why it is not there.
    fn take(&self, _py: Python<'_>, then: Slot) -> Result<Box<Core<Py<Handle>>>, Unavailable> {
        // SAFETY: GIL held; no loan is out (checked), so nobody else borrows the slot.
        unsafe {
            if *self.busy.get() {
                return Err(Unavailable::Busy);
            }
            let slot = &mut *self.slot.get();
            match slot {
                Slot::Here(_) => match std::mem::replace(slot, then) {
                    Slot::Here(core) => Ok(core),
                    _ => unreachable!("matched above"),
                },
                Slot::Waiting => Err(Unavailable::Waiting),
                Slot::Closed => Err(Unavailable::Closed),
            }
        }
    }

    /// Puts the core back after a wait.
    fn put(&self, _py: Python<'_>, core: Box<Core<Py<Handle>>>) {
        // SAFETY: GIL held; the slot says Waiting, which nobody borrows.
        unsafe { *self.slot.get() = Slot::Here(core) }
    }
}

/// The native half of `mioloop.EventLoop`. Not meant to be used on its own.
#[pyclass(frozen, subclass, module = "mioloop", name = "_EventLoopCore")]
pub struct EventLoopCore {
    core: CoreCell,
    /// How other threads reach the loop while the core is out with the waiting loop thread.
    remote: Remote<Py<Handle>>,
    closed: AtomicBool,
    /// asyncio's `loop._debug` and `loop._stopping`, kept natively (BaseEventLoop reads and writes
    /// them as attributes; here they are properties), so the hot paths read an atomic, not a dict.
    debug: AtomicBool,
    stopping: AtomicBool,
    clock: Clock,
    /// Threads other than the loop's waiting for `core` (see `with_core`).
    waiters: std::sync::atomic::AtomicUsize,
    /// Rust futures bridged to this loop that were woken and wait to be polled (`bridge`).
    wakeups: Arc<Wakeups>,
    /// Whether `call_soon` is still the native one (see `keeps_native_call_soon`), with
    /// the version of the loop's class it was decided for; cleared when the loop's own
    /// `call_soon` attribute is set or deleted (`__setattr__`).
    native_call_soon: GilCell<Option<(u32, bool)>>,
}

/// A descriptor's `(reader, writer)` handles, each None when there is none.
type Watchers = (Option<Py<Handle>>, Option<Py<Handle>>);

/// How many busy turns one `_run_once` call may run before returning to `run_forever`.
const TURNS_PER_CALL: usize = 64;

/// Takes an object out of the garbage collector's lists (see `EventLoopCore::new_handle`).
fn untrack(object: &Py<PyAny>) {
    // SAFETY: a valid, tracked GC object that we own a reference to; untracking is always allowed.
    unsafe { ffi::PyObject_GC_UnTrack(object.as_ptr().cast()) }
}

fn closed_error() -> PyErr {
    PyRuntimeError::new_err("Event loop is closed")
}

/// asyncio's checks on a callback: coroutines are refused, and so is anything not callable.
#[inline]
fn check_callback(callback: &Bound<'_, PyAny>, method: &str) -> PyResult<()> {
    if callback.is_callable() { Ok(()) } else { refuse_callback(callback, method) }
}

#[cold]
fn refuse_callback(callback: &Bound<'_, PyAny>, method: &str) -> PyResult<()> {
    let py = callback.py();
    if py.import("asyncio.coroutines")?.call_method1("iscoroutine", (callback,))?.is_truthy()? {
        return Err(PyTypeError::new_err(format!("coroutines cannot be used with {method}()")));
    }
    Err(PyTypeError::new_err(format!("a callable object was expected by {method}(), got {}", callback.repr()?)))
}

impl EventLoopCore {
    /// Lends the core to `f` (which must not run Python code); `None` once the loop is closed.
    /// Another thread finding it out with the waiting loop thread wakes the loop and waits for it
    /// with the GIL released (the loop thread steps aside while `waiters` is non-zero, see `turn`).
    fn with_core<R>(&self, py: Python<'_>, f: impl FnOnce(&mut Core<Py<Handle>>) -> R) -> PyResult<Option<R>> {
        let mut f = Some(f);
        let mut waiting = false;
        let outcome = loop {
            match self.core.with(py, |core| (f.take().expect("called once"))(core)) {
                Ok(value) => break Ok(Some(value)),
                Err(Unavailable::Closed) => break Ok(None),
                Err(Unavailable::Busy) => break Err(PyRuntimeError::new_err("the event loop was re-entered while it changed its own state")),
                Err(Unavailable::Waiting) => {
                    if !waiting {
                        waiting = true;
                        self.waiters.fetch_add(1, Ordering::AcqRel);
                    }
                    if let Err(e) = self.remote.wake() {
                        break Err(e.into());
                    }
                    py.detach(std::thread::yield_now);
                }
            }
        };
        if waiting {
            self.waiters.fetch_sub(1, Ordering::AcqRel);
        }
        outcome
    }

    /// `object.__setattr__` (or `__delattr__` for `None`), forgetting whether `call_soon` is native.
    fn set_attribute(slf: &Bound<'_, Self>, name: &Bound<'_, PyString>, value: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let py = slf.py();
        if name.to_str()? == "call_soon" {
            slf.get().native_call_soon.with(py, |cached| *cached = None);
        }
        let value = value.map_or(std::ptr::null_mut(), |v| v.as_ptr());
        // SAFETY: valid objects (value may be NULL: deletion); returns -1 with an error set.
        if unsafe { ffi::PyObject_GenericSetAttr(slf.as_ptr(), name.as_ptr(), value) } < 0 {
            return Err(PyErr::fetch(py));
        }
        Ok(())
    }

    /// The queue of bridged Rust futures that were woken (see `bridge`).
    pub(crate) fn wakeups(&self) -> &Arc<Wakeups> {
        &self.wakeups
    }

    /// Whether `call_soon` on this loop is still the native one: a subclass that overrides it (to
    /// trace, say), or a test that replaces it on the loop itself, must see the callbacks of the
    /// loop's futures and tasks, as with asyncio's Future, which looks `call_soon` up every time.
    ///
    /// The answer is kept on the loop for its class's current version (which changes when the class
    /// or a base is modified) until the loop's own `call_soon` attribute is set or deleted.
    pub(crate) fn keeps_native_call_soon(core: &Bound<'_, Self>) -> PyResult<bool> {
        let py = core.py();
        // SAFETY: a live object's type, read only.
        let version = unsafe { (*ffi::Py_TYPE(core.as_ptr())).tp_version_tag };
        let cached = core.get().native_call_soon.with(py, |cached| *cached);
        if let Some((_, native)) = cached.filter(|(v, _)| *v == version && version != 0) {
            return Ok(native);
        }
        let native = Self::looks_up_native_call_soon(core)?;
        // SAFETY: as above; the look-up may have given the class its version tag.
        let version = unsafe { (*ffi::Py_TYPE(core.as_ptr())).tp_version_tag };
        core.get().native_call_soon.with(py, |cached| *cached = Some((version, native)));
        Ok(native)
    }

    fn looks_up_native_call_soon(core: &Bound<'_, Self>) -> PyResult<bool> {
        static NATIVE_CALL_SOON: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let py = core.py();
        let native_call_soon = NATIVE_CALL_SOON.get_or_try_init(py, || py.get_type::<EventLoopCore>().getattr("call_soon").map(Bound::unbind))?;
        if !core.get_type().getattr(intern!(py, "call_soon"))?.is(native_call_soon.bind(py)) {
            return Ok(false);
        }
        // SAFETY: a valid object; returns a new reference to its __dict__, or NULL with an error set
        // when it has none (the bare native core), which is then not replaced either.
        let dict = unsafe { Bound::from_owned_ptr_or_opt(py, ffi::PyObject_GenericGetDict(core.as_ptr(), std::ptr::null_mut())) };
        match dict {
            Some(dict) => Ok(!dict.cast::<PyDict>()?.contains(intern!(py, "call_soon"))?),
            None => {
                PyErr::take(py);
                Ok(true)
            }
        }
    }

    /// asyncio's `loop.get_debug()`, read natively.
    pub(crate) fn debug_enabled(&self) -> bool {
        self.debug.load(Ordering::Relaxed)
    }

    /// `schedule`, refused with asyncio's error once the loop is closed.
    pub(crate) fn schedule_checked(&self, py: Python<'_>, handle: Py<Handle>) -> PyResult<()> {
        self.check_open()?;
        self.schedule(py, handle)
    }

    fn check_open(&self) -> PyResult<()> {
        if self.closed.load(Ordering::Acquire) { Err(closed_error()) } else { Ok(()) }
    }

    /// Debug mode adds asyncio's own checks (the calling thread, coroutine functions).
    #[inline]
    fn debug_checks(slf: &Bound<'_, Self>, callback: &Bound<'_, PyAny>, method: &str) -> PyResult<()> {
        let py = slf.py();
        if slf.get().debug.load(Ordering::Relaxed) {
            slf.call_method0(intern!(py, "_check_thread"))?;
            slf.call_method1(intern!(py, "_check_callback"), (callback, method))?;
        }
        Ok(())
    }

    /// A handle for `callback(*args)`, untracked by the garbage collector (`handle_memory`): a
    /// handle lets go of its callback when it runs (once), is cancelled or removed, or its loop
    /// closes, so its callback keeps no cycle alive past that, and the collector need not visit
    /// the thousands a busy loop holds. (Its context stays until the handle goes: a callback that
    /// stores its own handle in a context variable makes a cycle the collector cannot see, as
    /// it would through any untracked object.)
    pub(crate) fn new_handle(slf: &Bound<'_, Self>, callback: &Bound<'_, PyAny>, args: &Bound<'_, PyTuple>, context: Option<Py<PyAny>>, repeats: bool) -> PyResult<Py<Handle>> {
        let py = slf.py();
        crate::handle_memory::new_object(py, Handle::new(py, callback.clone().unbind(), args.clone().unbind(), context, slf.clone().into_any().unbind(), repeats)?)
    }

    /// Schedules `handle` on the ready queue. If the core is busy, the loop thread is in its wait
    /// (or a moment from it): the handle goes through the remote queue, which wakes the loop.
    fn schedule(&self, py: Python<'_>, handle: Py<Handle>) -> PyResult<()> {
        let mut handle = Some(handle);
        match self.core.with(py, |core| core.call_soon(handle.take().expect("once"))) {
            Ok(()) => Ok(()),
            Err(Unavailable::Closed) => Err(closed_error()),
            Err(Unavailable::Waiting | Unavailable::Busy) => Ok(self.remote.call_soon_threadsafe(handle.take().expect("not scheduled"))?),
        }
    }

    /// `call_soon` (`threadsafe` false) and `call_soon_threadsafe`: a handle for `callback(*args)`
    /// in `context` (a copy of the current one by default), scheduled for the next turn. From
    /// another thread, while the loop waits, it goes through the remote queue, which wakes the loop
    /// (once per batch). Debug mode adds asyncio's checks: the calling thread (not for
    /// `call_soon_threadsafe`), and coroutine functions.
    fn call_soon(slf: &Bound<'_, Self>, callback: &Bound<'_, PyAny>, args: &Bound<'_, PyTuple>, context: Option<Py<PyAny>>, threadsafe: bool) -> PyResult<Py<Handle>> {
        let py = slf.py();
        let this = slf.get();
        this.check_open()?;
        let method = if threadsafe { "call_soon_threadsafe" } else { "call_soon" };
        check_callback(callback, method)?;
        if !threadsafe {
            Self::debug_checks(slf, callback, method)?;
        } else if this.debug.load(Ordering::Relaxed) {
            slf.call_method1(intern!(py, "_check_callback"), (callback, method))?;
        }
        let handle = Self::new_handle(slf, callback, args, context, false)?;
        // Straight onto the ready queue when the loop is not waiting (keeping the order of calls
        // from all threads, as asyncio's single deque does); through the remote queue when it is.
        this.schedule(py, handle.clone_ref(py))?;
        Ok(handle)
    }

    pub(crate) fn watch(slf: &Bound<'_, Self>, fileobj: &Bound<'_, PyAny>, callback: &Bound<'_, PyAny>, args: &Bound<'_, PyTuple>, write: bool) -> PyResult<Py<Handle>> {
        let this = slf.get();
        this.check_open()?;
        let method = if write { "add_writer" } else { "add_reader" };
        check_callback(callback, method)?;
        let fd = fileobj_to_fd(fileobj)?;
        let handle = Self::new_handle(slf, callback, args, None, true)?;
        let py = slf.py();
        let handle_ref = handle.clone_ref(py);
        let added = this.with_core(py, |core| if write { core.add_writer(fd, handle_ref) } else { core.add_reader(fd, handle_ref) })?;
        if let Some(previous) = added.ok_or_else(closed_error)?? {
            previous.get().cancel(py);
        }
        Ok(handle)
    }

    /// asyncio's rule for the public reader and writer methods: a descriptor a transport owns is
    /// not for them.
    fn ensure_no_transport(slf: &Bound<'_, Self>, fileobj: &Bound<'_, PyAny>) -> PyResult<()> {
        Self::ensure_fd_no_transport(slf, fileobj_to_fd(fileobj)?, fileobj)
    }

    /// asyncio's `_ensure_fd_no_transport`: a `RuntimeError` naming `shown` (what the caller
    /// passed) if a transport that is not closing owns `fd`. The Python half's `_transports` is a
    /// `WeakValueDictionary`; its `data` dict is read without raising, where asyncio's look-up
    /// raises and catches a `KeyError` for every descriptor no transport owns, and a reference
    /// whose transport is gone counts as none. The bare core has no `_transports`: nothing to check.
    pub(crate) fn ensure_fd_no_transport(slf: &Bound<'_, Self>, fd: RawFd, shown: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let transports = match slf.getattr(intern!(py, "_transports")) {
            Ok(transports) => transports.getattr(intern!(py, "data"))?,
            Err(error) if error.is_instance_of::<pyo3::exceptions::PyAttributeError>(py) => return Ok(()),
            Err(error) => return Err(error),
        };
        let Some(reference) = transports.cast::<PyDict>()?.get_item(fd)? else { return Ok(()) };
        let transport = reference.call0()?;
        if !transport.is_none() && !transport.call_method0(intern!(py, "is_closing"))?.is_truthy()? {
            return Err(PyRuntimeError::new_err(format!("File descriptor {} is used by transport {}", shown.repr()?, transport.repr()?)));
        }
        Ok(())
    }

    pub(crate) fn unwatch(slf: &Bound<'_, Self>, fileobj: &Bound<'_, PyAny>, write: bool) -> PyResult<bool> {
        let this = slf.get();
        if this.closed.load(Ordering::Acquire) {
            return Ok(false);
        }
        let fd = fileobj_to_fd(fileobj)?;
        let removed = this.with_core(slf.py(), |core| if write { core.remove_writer(fd) } else { core.remove_reader(fd) })?;
        let Some(removed) = removed else { return Ok(false) };
        Ok(match removed? {
            Some(handle) => {
                handle.get().cancel(slf.py());
                true
            }
            None => false,
        })
    }

    /// One turn; `may_sleep` lets the wait block until work arrives, with the GIL released (which
    /// is skipped when the wait cannot block). Returns whether it could have slept.
    fn turn(&self, py: Python<'_>, may_sleep: bool, jobs: &mut Turn<Py<Handle>>) -> PyResult<bool> {
        if self.waiters.load(Ordering::Acquire) > 0 {
            // Another thread is waiting for the core (a loop used from the wrong thread): let it in.
            py.detach(|| {
                while self.waiters.load(Ordering::Acquire) > 0 {
                    std::thread::yield_now();
                }
            });
        }
        // A turn that may block takes the core out of its cell, and releases the GIL, for the wait;
        // one that cannot block runs where the core is, in the loan that found it out.
        let ran = self.with_core(py, |core| match may_sleep && core.next_timeout() != Some(Duration::ZERO) {
            true => None,
            false => Some(core.turn_into(Some(Duration::ZERO), jobs)),
        });
        let blocking = match ran?.ok_or_else(closed_error)? {
            Some(turned) => {
                turned?;
                false
            }
            None => true,
        };
        if blocking {
            let mut core = match self.core.take(py, Slot::Waiting) {
                Ok(core) => core,
                Err(Unavailable::Closed) => return Err(closed_error()),
                Err(_) => return Err(PyRuntimeError::new_err("the event loop is already waiting")),
            };
            let waited = py.detach(|| core.turn_into(None, jobs));
            self.core.put(py, core);
            waited?;
        }
        while let Some(job) = jobs.pop_front() {
            let handle = match job {
                Job::Call(handle) => handle,
                Job::Readable(fd) => match self.watcher(py, fd, false)? {
                    Some(handle) => handle,
                    None => continue,
                },
                Job::Writable(fd) => match self.watcher(py, fd, true)? {
                    Some(handle) => handle,
                    None => continue,
                },
            };
            // Debug mode times each callback, as asyncio's `_run_once` does, and reports the slow.
            // The handle is described before it runs: a one-shot handle lets go of its callback.
            let timing = match self.debug.load(Ordering::Relaxed) {
                true => Some((py.import(intern!(py, "asyncio.base_events"))?.getattr(intern!(py, "_format_handle"))?.call1((handle.bind(py),))?, Instant::now())),
                false => None,
            };
            let outcome = Handle::run(handle.bind(py));
            if let Some((description, started)) = timing {
                let seconds = started.elapsed().as_secs_f64();
                handle.get().event_loop.bind(py).call_method1(intern!(py, "_report_slow_callback"), (description, seconds))?;
            }
            if let Err(e) = outcome {
                // SystemExit or KeyboardInterrupt: the rest of the turn runs next time.
                let unfinished = std::mem::take(jobs);
                self.with_core(py, |core| core.requeue(unfinished))?;
                return Err(e);
            }
        }
        Ok(blocking)
    }

    /// The handle watching `fd`, if it is still there and not cancelled (it is removed if cancelled).
    fn watcher(&self, py: Python<'_>, fd: RawFd, write: bool) -> PyResult<Option<Py<Handle>>> {
        let handle = self.with_core(py, |core| if write { core.writer(fd) } else { core.reader(fd) }.map(|h| h.clone_ref(py)))?.flatten();
        match handle {
            Some(h) if h.get().cancelled(py) => {
                let removed = self.with_core(py, |core| if write { core.remove_writer(fd) } else { core.remove_reader(fd) })?;
                drop(removed.transpose()?);
                Ok(None)
            }
            other => Ok(other),
        }
    }
}

#[pymethods]
impl EventLoopCore {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let core = Core::new()?;
        let remote = core.remote();
        Ok(EventLoopCore {
            core: CoreCell::new(core),
            closed: AtomicBool::new(false),
            debug: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            clock: Clock::new(),
            waiters: std::sync::atomic::AtomicUsize::new(0),
            wakeups: Wakeups::native(remote.clone()),
            native_call_soon: GilCell::new(None),
            remote,
        })
    }

    /// Attributes are set as on any object; setting the loop's own `call_soon` (a test's
    /// monkeypatch) also tells its futures to schedule through it.
    fn __setattr__(slf: &Bound<'_, Self>, name: &Bound<'_, PyString>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        Self::set_attribute(slf, name, Some(value))
    }

    fn __delattr__(slf: &Bound<'_, Self>, name: &Bound<'_, PyString>) -> PyResult<()> {
        Self::set_attribute(slf, name, None)
    }

    #[getter]
    fn _debug(&self) -> bool {
        self.debug.load(Ordering::Relaxed)
    }

    #[setter(_debug)]
    fn set_debug_flag(&self, enabled: &Bound<'_, PyAny>) -> PyResult<()> {
        self.debug.store(enabled.is_truthy()?, Ordering::Relaxed);
        Ok(())
    }

    #[getter]
    fn _stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    #[setter(_stopping)]
    fn set_stopping_flag(&self, stopping: &Bound<'_, PyAny>) -> PyResult<()> {
        self.stopping.store(stopping.is_truthy()?, Ordering::Release);
        Ok(())
    }

    /// The loop's clock: `time.monotonic()`.
    fn time(&self) -> f64 {
        self.clock.now()
    }

    /// Runs `callback(*args)` at loop time `when` (never before).
    #[pyo3(signature = (when, callback, *args, context = None))]
    fn call_at(slf: &Bound<'_, Self>, when: Option<f64>, callback: &Bound<'_, PyAny>, args: &Bound<'_, PyTuple>, context: Option<Py<PyAny>>) -> PyResult<Py<TimerHandle>> {
        let py = slf.py();
        let this = slf.get();
        let when = when.ok_or_else(|| PyTypeError::new_err("when cannot be None"))?;
        if when.is_nan() {
            return Err(PyValueError::new_err("when cannot be NaN"));
        }
        this.check_open()?;
        check_callback(callback, "call_at")?;
        Self::debug_checks(slf, callback, "call_at")?;
        let handle = Handle::new(py, callback.clone().unbind(), args.clone().unbind(), context, slf.clone().into_any().unbind(), false)?;
        let timer = Py::new(py, PyClassInitializer::from(handle).add_subclass(TimerHandle { when, timer: GilCell::new(None) }))?;
        untrack(timer.as_any());
        let deadline = this.clock.deadline(when);
        let base: Py<Handle> = timer.clone_ref(py).into_bound(py).into_super().unbind();
        // A deadline beyond what Instant can hold (`when=inf`) is a timer that never fires.
        let deadline = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(100 * 365 * 86_400));
        let id = this.with_core(py, |core| core.call_at(deadline, base))?.ok_or_else(closed_error)?;
        timer.get().timer.with(py, |slot| *slot = Some(id));
        Ok(timer)
    }

    /// Runs `callback(*args)` after `delay` seconds (never before).
    #[pyo3(signature = (delay, callback, *args, context = None))]
    fn call_later(slf: &Bound<'_, Self>, delay: Option<f64>, callback: &Bound<'_, PyAny>, args: &Bound<'_, PyTuple>, context: Option<Py<PyAny>>) -> PyResult<Py<TimerHandle>> {
        let delay = delay.ok_or_else(|| PyTypeError::new_err("delay must not be None"))?;
        Self::call_at(slf, Some(slf.get().clock.now() + delay), callback, args, context)
    }

    /// Calls `callback(*args)` whenever `fd` is readable (level-triggered), until removed. Refuses
    /// a descriptor that a transport owns, and returns None, as asyncio's.
    #[pyo3(signature = (fd, callback, *args))]
    fn add_reader(slf: &Bound<'_, Self>, fd: &Bound<'_, PyAny>, callback: &Bound<'_, PyAny>, args: &Bound<'_, PyTuple>) -> PyResult<()> {
        Self::ensure_no_transport(slf, fd)?;
        Self::watch(slf, fd, callback, args, false).map(drop)
    }

    /// Calls `callback(*args)` whenever `fd` is writable, until removed (transports refused, as above).
    #[pyo3(signature = (fd, callback, *args))]
    fn add_writer(slf: &Bound<'_, Self>, fd: &Bound<'_, PyAny>, callback: &Bound<'_, PyAny>, args: &Bound<'_, PyTuple>) -> PyResult<()> {
        Self::ensure_no_transport(slf, fd)?;
        Self::watch(slf, fd, callback, args, true).map(drop)
    }

    /// Stops watching `fd` for reading; True if it was watched (transports refused, as above).
    fn remove_reader(slf: &Bound<'_, Self>, fd: &Bound<'_, PyAny>) -> PyResult<bool> {
        Self::ensure_no_transport(slf, fd)?;
        Self::unwatch(slf, fd, false)
    }

    /// Stops watching `fd` for writing; True if it was watched (transports refused, as above).
    fn remove_writer(slf: &Bound<'_, Self>, fd: &Bound<'_, PyAny>) -> PyResult<bool> {
        Self::ensure_no_transport(slf, fd)?;
        Self::unwatch(slf, fd, true)
    }

    /// `add_reader` without the transport check, returning the handle: what asyncio's transports
    /// and `sock_*` coroutines call (`loop._add_reader`).
    #[pyo3(signature = (fd, callback, *args))]
    fn _add_reader(slf: &Bound<'_, Self>, fd: &Bound<'_, PyAny>, callback: &Bound<'_, PyAny>, args: &Bound<'_, PyTuple>) -> PyResult<Py<Handle>> {
        Self::watch(slf, fd, callback, args, false)
    }

    /// `add_writer` without the transport check, returning the handle.
    #[pyo3(signature = (fd, callback, *args))]
    fn _add_writer(slf: &Bound<'_, Self>, fd: &Bound<'_, PyAny>, callback: &Bound<'_, PyAny>, args: &Bound<'_, PyTuple>) -> PyResult<Py<Handle>> {
        Self::watch(slf, fd, callback, args, true)
    }

    /// `remove_reader` without the transport check.
    fn _remove_reader(slf: &Bound<'_, Self>, fd: &Bound<'_, PyAny>) -> PyResult<bool> {
        Self::unwatch(slf, fd, false)
    }

    /// `remove_writer` without the transport check.
    fn _remove_writer(slf: &Bound<'_, Self>, fd: &Bound<'_, PyAny>) -> PyResult<bool> {
        Self::unwatch(slf, fd, true)
    }

    /// The handles watching `fd`, `(reader, writer)`, each None when there is none: what a
    /// selector key holds (asyncio's transports show it in their repr through `loop._selector`).
    fn _watchers(slf: &Bound<'_, Self>, fd: &Bound<'_, PyAny>) -> PyResult<Watchers> {
        let py = slf.py();
        let fd = fileobj_to_fd(fd)?;
        let watchers = slf.get().with_core(py, |core| (core.reader(fd).map(|h| h.clone_ref(py)), core.writer(fd).map(|h| h.clone_ref(py))))?;
        Ok(watchers.unwrap_or((None, None)))
    }

    /// A new `mioloop.Future` on this loop.
    fn create_future(slf: &Bound<'_, Self>) -> PyResult<Py<Future>> {
        let py = slf.py();
        Py::new(py, Future::pending(py, slf.as_any(), slf.get().debug_enabled())?)
    }

    /// Wraps `coro` in a `mioloop.Task` on this loop. With a task factory set, this is
    /// `BaseEventLoop.create_task` itself, which calls the factory.
    #[pyo3(signature = (coro, *, name = None, context = None))]
    fn create_task<'py>(slf: &Bound<'py, Self>, coro: &Bound<'py, PyAny>, name: Option<&Bound<'py, PyAny>>, context: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        if !slf.getattr(intern!(py, "_task_factory"))?.is_none() {
            let kwargs = PyDict::new(py);
            kwargs.set_item("name", name)?;
            kwargs.set_item("context", context)?;
            let base = py.import("asyncio.base_events")?.getattr("BaseEventLoop")?;
            return base.getattr("create_task")?.call((slf, coro), Some(&kwargs));
        }
        slf.get().check_open()?;
        Ok(Task::spawn(coro, slf.as_any(), name, context)?.into_any())
    }

    /// How many times another thread (or a signal) had to wake the loop from its sleep.
    #[getter]
    fn _wakeups(&self) -> u64 {
        self.remote.wakeups()
    }

    /// Wakes the loop if it sleeps (asyncio's self-pipe write).
    fn _write_to_self(&self) -> PyResult<()> {
        Ok(self.remote.wake()?)
    }

    /// What `run_forever` calls in its loop, until `_stopping`: one turn, or several while none of
    /// them could sleep (at most [`TURNS_PER_CALL`]), which saves the Python loop's overhead per turn.
    ///
    /// A turn waits (with the GIL released) until something is ready or the next timer is due, then
    /// runs the callbacks that were ready, the ready readers and writers, and the due timers. After
    /// a turn that slept, control goes back to Python at once, so that signal handlers run.
    fn _run_once(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let mut jobs = Turn::new(); // reused by the turns of this call
        for _ in 0..TURNS_PER_CALL {
            // A loop asked to stop runs one last turn that must not sleep, as asyncio's does.
            let stopping = this.stopping.load(Ordering::Acquire);
            let slept = this.turn(py, !stopping, &mut jobs)?;
            if this.wakeups.has_work() {
                // Rust futures woken during the turn (or from other threads): one poll each.
                this.wakeups.poll_queued(py);
            }
            // `stop()` called during this turn ends the call too: asyncio's run_forever checks
            // after every turn, so what that turn scheduled waits for the next run.
            if stopping || slept || this.stopping.load(Ordering::Acquire) {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Drops every callback and closes the core's descriptors; the Python `close()` calls it.
    /// Pending handles are cancelled, so that they let go of their callbacks (and of any cycle).
    fn _close_core(&self, py: Python<'_>) -> PyResult<()> {
        self.closed.store(true, Ordering::Release);
        let core = loop {
            match self.core.take(py, Slot::Closed) {
                Ok(core) => break Some(core),
                Err(Unavailable::Closed) => break None,
                // Closed from another thread while the loop waits: wait for the core.
                Err(_) => drop(self.with_core(py, |_| ())?),
            }
        };
        if let Some(mut core) = core {
            for handle in core.drain() {
                handle.get().cancel(py);
            }
        }
        Ok(())
    }
}

/// `call_soon` and `call_soon_threadsafe` as CPython's own methods are made ([`crate::cmethod`]):
/// they are the loop's most frequent calls.
static CALL_SOON: MethodDef = MethodDef::fastcall_keywords(
    c"call_soon",
    c"call_soon($self, callback, *args, context=None)\n--\n\nRuns `callback(*args)` on the next turn, in `context` (a copy of the current one by default).",
    call_soon_entry::<false>,
);

static CALL_SOON_THREADSAFE: MethodDef = MethodDef::fastcall_keywords(
    c"call_soon_threadsafe",
    c"call_soon_threadsafe($self, callback, *args, context=None)\n--\n\n`call_soon` for other threads: wakes the loop if it waits (once per batch).",
    call_soon_entry::<true>,
);

/// Puts `call_soon` and `call_soon_threadsafe` on `_EventLoopCore`; called once, when the module
/// is made.
pub(crate) fn install_call_soon(class: &Bound<'_, pyo3::types::PyType>) -> PyResult<()> {
    cmethod::install(class, &[&CALL_SOON, &CALL_SOON_THREADSAFE])
}

/// The C function of `call_soon` (`THREADSAFE` false) and `call_soon_threadsafe`.
unsafe extern "C" fn call_soon_entry<const THREADSAFE: bool>(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls a method with the GIL held. `slf` is an instance of `_EventLoopCore`
    // (the descriptor checks that), and the vector holds `nargs` positional arguments followed by
    // one value per name in `kwnames`.
    unsafe {
        cmethod::enter(|py| {
            let slf = Bound::from_borrowed_ptr(py, slf).cast_into_unchecked::<EventLoopCore>();
            let handle = if nargs == 1 && kwnames.is_null() {
                // The usual call, `call_soon(callback)`, read without more ado.
                let callback = Bound::from_borrowed_ptr(py, *args);
                EventLoopCore::call_soon(&slf, &callback, &empty_tuple(py), None, THREADSAFE)?
            } else {
                let method = if THREADSAFE { "call_soon_threadsafe" } else { "call_soon" };
                let CallSoonArguments { callback, args, context } = CallSoonArguments::read(py, method, args, nargs, kwnames)?;
                EventLoopCore::call_soon(&slf, &callback, &args, context, THREADSAFE)?
            };
            Ok(handle.into_bound(py).into_any())
        })
    }
}

/// `()`, the arguments of most callbacks: CPython's one empty tuple, kept at hand.
pub(crate) fn empty_tuple(py: Python<'_>) -> Bound<'_, PyTuple> {
    static EMPTY: PyOnceLock<Py<PyTuple>> = PyOnceLock::new();
    EMPTY.get_or_init(py, || PyTuple::empty(py).unbind()).bind(py).clone()
}

/// What `call_soon(callback, *args, context=None)` was given.
struct CallSoonArguments<'py> {
    callback: Bound<'py, PyAny>,
    args: Bound<'py, PyTuple>,
    /// `None` when not given, or given as None.
    context: Option<Py<PyAny>>,
}

impl<'py> CallSoonArguments<'py> {
    /// Reads a vectorcall's arguments by Python's rules for that signature; a mistake is the
    /// `TypeError` Python would raise, after the method's name.
    ///
    /// # Safety
    /// `args` holds `nargs` positional arguments, then one value per name in `kwnames` (a tuple of
    /// strings, or NULL), all valid for the call.
    unsafe fn read(py: Python<'py>, method: &str, args: *const *mut ffi::PyObject, nargs: ffi::Py_ssize_t, kwnames: *mut ffi::PyObject) -> PyResult<Self> {
        let mistake = |message: &str| PyTypeError::new_err(format!("{method}() {message}"));
        let positional: &[*mut ffi::PyObject] = match nargs {
            0 => &[],
            // SAFETY: as the caller promises.
            n => unsafe { std::slice::from_raw_parts(args, n as usize) },
        };
        // SAFETY: (here and below) borrowed references, valid for the call, as the caller promises.
        let mut callback = positional.first().map(|&p| unsafe { Bound::from_borrowed_ptr(py, p) });
        let mut context = None;
        if !kwnames.is_null() {
            // SAFETY: CPython passes a tuple of names, and their values right after the positionals.
            let names = unsafe { Bound::from_borrowed_ptr(py, kwnames).cast_into_unchecked::<PyTuple>() };
            for (i, name) in names.iter().enumerate() {
                // SAFETY: as above.
                let value = unsafe { Bound::from_borrowed_ptr(py, *args.offset(nargs + i as ffi::Py_ssize_t)) };
                let name = name.cast_into::<PyString>().map_err(|_| mistake("keywords must be strings"))?;
                match name.to_str().unwrap_or_default() {
                    "context" => context = Some(value).filter(|v| !v.is_none()).map(Bound::unbind),
                    "callback" if callback.is_some() => return Err(mistake("got multiple values for argument 'callback'")),
                    "callback" => callback = Some(value),
                    other => return Err(mistake(&format!("got an unexpected keyword argument '{other}'"))),
                }
            }
        }
        let callback = callback.ok_or_else(|| mistake("missing 1 required positional argument: 'callback'"))?;
        let args = match positional.get(1..) {
            // SAFETY: as above.
            Some(rest) if !rest.is_empty() => PyTuple::new(py, rest.iter().map(|&p| unsafe { Bound::from_borrowed_ptr(py, p) }))?,
            _ => empty_tuple(py),
        };
        Ok(CallSoonArguments { callback, args, context })
    }
}
