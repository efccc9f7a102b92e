//! `mioloop.Future`: asyncio's `Future`, written in Rust.
//!
//! Taught in the chapter *mioloop.Future*. It keeps asyncio's contract to the letter — the same
//! methods, states, errors and repr, the `_asyncio_future_blocking` handshake that `asyncio.Task`
//! relies on, done callbacks run through the loop in their `contextvars` context — so that asyncio's
//! own `Task`, `gather`, `wait_for` and friends accept it, on any event loop. On a
//! `mioloop.EventLoop` its callbacks go straight onto the loop's ready queue, without a Python call.
//!
//! Python may re-enter a future while it runs Python code (a callback's `__eq__`, a loop's
//! `call_soon`, a `repr`), so no method keeps the future borrowed across a call into Python.

use crate::event_loop::EventLoopCore;
use crate::gil::GilRefCell;
use crate::task::Task;
use std::cell::{Ref, RefMut};
use pyo3::exceptions::{PyAttributeError, PyBaseException, PyRuntimeError, PyStopIteration, PyTypeError, PyValueError};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyTraceback, PyTuple, PyType};
use pyo3::{PyTraverseError, ffi, intern};

/// Where a future is in its life: it starts pending and ends cancelled or finished, once.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum State {
    #[default]
    Pending,
    Cancelled,
    Finished,
}

impl State {
    /// asyncio's names, as `future._state` shows them.
    pub fn name(self) -> &'static str {
        match self {
            State::Pending => "PENDING",
            State::Cancelled => "CANCELLED",
            State::Finished => "FINISHED",
        }
    }
}

/// The loop a future belongs to, and, when that loop is a `mioloop.EventLoop`, its native half,
/// through which callbacks are scheduled without a Python call.
pub(crate) struct Owner {
    pub(crate) event_loop: Py<PyAny>,
    native: Option<Py<EventLoopCore>>,
}

impl Owner {
    /// The same, held for a moment, outside any borrow of the future.
    pub(crate) fn bind<'py>(&self, py: Python<'py>) -> LoopRef<'py> {
        LoopRef { event_loop: self.event_loop.bind(py).clone(), native: self.native.as_ref().map(|n| n.bind(py).clone()) }
    }
}

/// A future's [`Owner`], bound to the GIL.
pub(crate) struct LoopRef<'py> {
    pub(crate) event_loop: Bound<'py, PyAny>,
    native: Option<Bound<'py, EventLoopCore>>,
}

impl LoopRef<'_> {
    /// Runs `callback(*args)` soon, in `context`, on this loop: straight onto a `mioloop.EventLoop`'s
    /// ready queue (outside debug mode, whose checks live in the Python `call_soon`), through the
    /// loop's `call_soon` otherwise.
    pub(crate) fn call_soon(&self, callback: &Bound<'_, PyAny>, args: &Bound<'_, PyTuple>, context: Py<PyAny>) -> PyResult<()> {
        let py = self.event_loop.py();
        if let Some(core) = self.native.as_ref().filter(|core| !core.get().debug_enabled()) {
            let handle = EventLoopCore::new_handle(core, callback, args, Some(context), false)?;
            return core.get().schedule_checked(py, handle);
        }
        let kwargs = PyDict::new(py);
        kwargs.set_item(intern!(py, "context"), context)?;
        let call = PyTuple::new(py, std::iter::once(callback.clone()).chain(args.iter()).collect::<Vec<_>>())?;
        self.event_loop.getattr(intern!(py, "call_soon"))?.call(call, Some(&kwargs))?;
        Ok(())
    }
}

/// An asyncio-compatible Future. `asyncio.isfuture()` is true of it, and `asyncio.Task` awaits it.
///
/// `frozen`, with its state in a [`GilRefCell`]: a future is borrowed several times per `await`,
/// and pyo3's borrow flag for a mutable class is atomic.
#[pyclass(frozen, subclass, weakref, module = "mioloop", name = "Future")]
#[derive(Default)]
pub struct Future {
    inner: GilRefCell<FutureState>,
}

/// What a future holds.
#[derive(Default)]
pub(crate) struct FutureState {
    /// `None` until `__init__` has run (a subclass may skip it: every method then raises).
    owner: Option<Owner>,
    state: State,
    result: Option<Py<PyAny>>,
    exception: Option<Py<PyAny>>,
    /// The exception's traceback when it was set, so that `result()` re-raises it from there.
    exception_tb: Option<Py<PyAny>>,
    /// Done callbacks and the context each runs in, in the order they were added.
    callbacks: Vec<(Py<PyAny>, Py<PyAny>)>,
    /// `_asyncio_future_blocking`: set when `await` yields the future to the task driving it.
    blocking: bool,
    /// An exception nobody looked at is reported when the future is collected.
    pub(crate) log_traceback: bool,
    pub(crate) cancel_message: Option<Py<PyAny>>,
    /// The `CancelledError` a task's coroutine raised, handed on (once) to whoever asks the task
    /// for its error, so that the traceback shows where the coroutine was cancelled.
    cancelled_exc: Option<Py<PyAny>>,
    /// Where the future was made (`traceback.extract_stack()`), in debug mode only.
    source_traceback: Option<Py<PyAny>>,
}

pub(crate) static CANCELLED_ERROR: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static INVALID_STATE_ERROR: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// An exception class of `asyncio.exceptions`, looked up once.
pub(crate) fn asyncio_exception<'py>(py: Python<'py>, cell: &'static PyOnceLock<Py<PyAny>>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    let class = cell.get_or_try_init(py, || py.import("asyncio.exceptions")?.getattr(name).map(Bound::unbind))?;
    Ok(class.bind(py).clone())
}

pub(crate) fn invalid_state(py: Python<'_>, message: String) -> PyErr {
    match asyncio_exception(py, &INVALID_STATE_ERROR, "InvalidStateError") {
        Ok(class) => match class.call1((message,)) {
            Ok(error) => PyErr::from_value(error),
            Err(e) => e,
        },
        Err(e) => e,
    }
}

fn not_initialized() -> PyErr {
    PyRuntimeError::new_err("Future object is not initialized.")
}

/// A setter's value: deleting the attribute is refused, as asyncio's C classes refuse it.
pub(crate) fn assigned<'a, 'py>(value: Option<&'a Bound<'py, PyAny>>) -> PyResult<&'a Bound<'py, PyAny>> {
    value.ok_or_else(|| PyAttributeError::new_err("cannot delete attribute"))
}

/// `contextvars.copy_context()`.
pub(crate) fn copy_context(py: Python<'_>) -> PyResult<Py<PyAny>> {
    // SAFETY: PyContext_CopyCurrent returns a new reference, or NULL with an exception set.
    Ok(unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyContext_CopyCurrent())? }.unbind())
}

/// `a == b` as Python's list operations compare (identity first, then `__eq__`).
fn equal(a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>) -> PyResult<bool> {
    // SAFETY: both are valid objects; the call returns -1 with an exception set on error.
    match unsafe { ffi::PyObject_RichCompareBool(a.as_ptr(), b.as_ptr(), ffi::Py_EQ) } {
        -1 => Err(PyErr::fetch(a.py())),
        result => Ok(result == 1),
    }
}

impl FutureState {
    pub(crate) fn owner(&self) -> PyResult<&Owner> {
        self.owner.as_ref().ok_or_else(not_initialized)
    }

    pub(crate) fn state(&self) -> State {
        self.state
    }

    /// Clears `_asyncio_future_blocking` if it is set: what a task does to a future it will wait for.
    pub(crate) fn take_blocking(&mut self) -> bool {
        std::mem::take(&mut self.blocking)
    }

    pub(crate) fn source_traceback(&self) -> Option<&Py<PyAny>> {
        self.source_traceback.as_ref()
    }

    fn attach(&mut self, py: Python<'_>, event_loop: &Bound<'_, PyAny>, debug: bool) -> PyResult<()> {
        let native = match event_loop.cast::<EventLoopCore>() {
            Ok(core) if EventLoopCore::keeps_native_call_soon(core)? => Some(core.clone().unbind()),
            _ => None,
        };
        self.owner = Some(Owner { event_loop: event_loop.clone().unbind(), native });
        self.source_traceback = if debug { Some(py.import("traceback")?.call_method0("extract_stack")?.unbind()) } else { None };
        Ok(())
    }

    /// The `CancelledError` that `result()`, `exception()` and `await` raise: the one a task's
    /// coroutine raised, the first time, or a new one with the cancel message.
    pub(crate) fn cancelled_error(&mut self, py: Python<'_>) -> PyResult<PyErr> {
        if let Some(raised) = self.cancelled_exc.take() {
            return Ok(PyErr::from_value(raised.into_bound(py)));
        }
        let class = asyncio_exception(py, &CANCELLED_ERROR, "CancelledError")?;
        let error = match &self.cancel_message {
            Some(message) => class.call1((message,))?,
            None => class.call0()?,
        };
        Ok(PyErr::from_value(error))
    }

    /// What `result()` and `exception()` check first: the future is initialized, not cancelled
    /// (`CancelledError`) and done (`InvalidStateError` with `pending`); its exception then counts
    /// as retrieved.
    fn retrieve(&mut self, py: Python<'_>, pending: &str) -> PyResult<()> {
        if self.owner.is_none() {
            // asyncio's C Future says this with InvalidStateError here, RuntimeError elsewhere.
            return Err(invalid_state(py, "Future object is not initialized.".into()));
        }
        match self.state {
            State::Cancelled => Err(self.cancelled_error(py)?),
            State::Pending => Err(invalid_state(py, pending.into())),
            State::Finished => {
                self.log_traceback = false;
                Ok(())
            }
        }
    }

    /// The result; raises the exception if one was set, `CancelledError` if cancelled, and
    /// `InvalidStateError` if the future is not done.
    pub(crate) fn result(&mut self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.retrieve(py, "Result is not set.")?;
        if let Some(exception) = &self.exception {
            let exception = exception.bind(py);
            if let Some(tb) = &self.exception_tb {
                // As the C Future does: no Python code runs (the future is borrowed).
                // SAFETY: a valid exception instance and traceback; the call takes its own reference.
                unsafe { ffi::PyException_SetTraceback(exception.as_ptr(), tb.as_ptr()) };
            }
            return Err(PyErr::from_value(exception.clone()));
        }
        Ok(self.result.as_ref().map_or_else(|| py.None(), |r| r.clone_ref(py)))
    }

    /// The exception set (or None); `CancelledError` if cancelled, `InvalidStateError` if pending.
    pub(crate) fn exception(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        self.retrieve(py, "Exception is not set.")?;
        Ok(self.exception.as_ref().map(|e| e.clone_ref(py)))
    }

    /// The `CancelledError` for a cancelled future (asyncio's `gather` asks its children for it).
    pub(crate) fn make_cancelled_error(&mut self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(self.cancelled_error(py)?.into_value(py).into_any())
    }
}

impl Future {
    /// One step of `await` (see `__await__`): the future itself to yield while it is pending, its
    /// result (`Err` for its exception) once it is done.
    fn step(slf: &Bound<'_, Self>) -> PyResult<Step> {
        let py = slf.py();
        let mut this = slf.get().state_mut(py);
        this.owner()?;
        if this.state == State::Pending {
            if this.blocking {
                return Err(PyRuntimeError::new_err("await wasn't used with future"));
            }
            this.blocking = true;
            return Ok(Step::Yield(slf.clone().into_any().unbind()));
        }
        Ok(Step::Return(this.result(py)?))
    }

    /// The future's state, borrowed (never across a call into Python).
    pub(crate) fn state(&self, py: Python<'_>) -> Ref<'_, FutureState> {
        self.inner.borrow(py)
    }

    pub(crate) fn state_mut(&self, py: Python<'_>) -> RefMut<'_, FutureState> {
        self.inner.borrow_mut(py)
    }

    /// The state unless it is borrowed already (a finalizer running inside a method).
    pub(crate) fn inner_try(&self, py: Python<'_>) -> Option<RefMut<'_, FutureState>> {
        self.inner.try_borrow_mut(py)
    }

    /// `Future.__init__(loop=...)`, for this class and for `Task`: on `loop`, or on the current
    /// thread's loop; any state from an earlier `__init__` is dropped.
    pub(crate) fn init(slf: &Bound<'_, Self>, event_loop: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let py = slf.py();
        let event_loop = match event_loop.filter(|l| !l.is_none()) {
            Some(event_loop) => event_loop.clone(),
            None => py.import("asyncio.events")?.call_method0("get_event_loop")?,
        };
        let debug = match event_loop.cast::<EventLoopCore>() {
            Ok(core) => core.get().debug_enabled(),
            Err(_) => event_loop.call_method0(intern!(py, "get_debug"))?.is_truthy()?,
        };
        let earlier = std::mem::take(&mut *slf.get().state_mut(py));
        drop(earlier); // outside the borrow: letting go of a result may run Python code
        slf.get().state_mut(py).attach(py, &event_loop, debug)
    }

    /// A pending future on `event_loop`, as `loop.create_future()` makes them. `debug` says whether
    /// to record where it was made.
    pub(crate) fn pending(py: Python<'_>, event_loop: &Bound<'_, PyAny>, debug: bool) -> PyResult<Self> {
        let mut state = FutureState::default();
        state.attach(py, event_loop, debug)?;
        Ok(Future { inner: GilRefCell::new(state) })
    }

    /// Runs `callback(future)` soon, in `context`, on the future's loop.
    fn call_soon(slf: &Bound<'_, Self>, owner: &LoopRef<'_>, callback: Py<PyAny>, context: Py<PyAny>) -> PyResult<()> {
        let py = slf.py();
        owner.call_soon(callback.bind(py), &PyTuple::new(py, [slf.as_any()])?, context)
    }

    /// `InvalidStateError` unless the future is pending.
    fn ensure_pending(slf: &Bound<'_, Self>) -> PyResult<()> {
        let state = {
            let this = slf.get().state(slf.py());
            this.owner()?;
            this.state
        };
        if state == State::Pending {
            return Ok(());
        }
        Err(invalid_state(slf.py(), "invalid state".into()))
    }

    /// Moves a pending future to `state` and schedules its callbacks; `InvalidStateError` if it is done.
    fn complete(slf: &Bound<'_, Self>, state: State, set: impl FnOnce(&mut FutureState)) -> PyResult<()> {
        let py = slf.py();
        let (callbacks, owner) = {
            let mut this = slf.get().state_mut(py);
            let owner = this.owner()?.bind(py);
            if this.state != State::Pending {
                drop(this);
                return Err(invalid_state(py, "invalid state".into()));
            }
            this.state = state;
            set(&mut this);
            (std::mem::take(&mut this.callbacks), owner)
        };
        for (callback, context) in callbacks {
            Self::call_soon(slf, &owner, callback, context)?;
        }
        Ok(())
    }

    /// `add_done_callback(callback, context=context)`, from Rust.
    pub(crate) fn add_callback(slf: &Bound<'_, Self>, callback: Py<PyAny>, context: Py<PyAny>) -> PyResult<()> {
        let py = slf.py();
        let mut this = slf.get().state_mut(py);
        let owner = this.owner()?;
        if this.state == State::Pending {
            this.callbacks.push((callback, context));
            return Ok(());
        }
        let owner = owner.bind(py);
        drop(this);
        Self::call_soon(slf, &owner, callback, context)
    }

    /// Marks the future cancelled after its task's coroutine raised `CancelledError` (kept, to be
    /// raised again by `result()`), or with `msg`, and schedules its callbacks.
    pub(crate) fn complete_cancelled(slf: &Bound<'_, Self>, raised: Option<Py<PyAny>>, msg: Option<Py<PyAny>>) -> PyResult<()> {
        Self::complete(slf, State::Cancelled, |this| {
            this.log_traceback = false;
            this.cancelled_exc = raised;
            this.cancel_message = msg;
        })
    }

}

/// What one step of `await` on a future does.
enum Step {
    /// Pending: hand the future to the task, which waits for it.
    Yield(Py<PyAny>),
    /// Done: the `await` evaluates to this.
    Return(Py<PyAny>),
}

impl Step {
    /// The iterator protocol's form: a return is `StopIteration(result)`.
    fn into_next(self) -> PyResult<Py<PyAny>> {
        match self {
            Step::Yield(future) => Ok(future),
            Step::Return(result) => Err(PyStopIteration::new_err((result,))),
        }
    }
}

/// `PyIter_Send` on a `Future` (the `am_send` slot, which pyo3 cannot declare): what the `await`
/// of a coroutine calls. A done future returns its result directly, as asyncio's C future does,
/// instead of raising and catching a `StopIteration` per `await`. A subclass, which may override
/// `__next__`, gets the iterator protocol.
unsafe extern "C" fn am_send(object: *mut ffi::PyObject, _value: *mut ffi::PyObject, result: *mut *mut ffi::PyObject) -> ffi::PySendResult {
    // SAFETY: CPython calls am_send with the GIL held, a live object of our type (or a subclass)
    // and a place for the result.
    let py = unsafe { Python::assume_attached() };
    let object = unsafe { Bound::from_borrowed_ptr(py, object) };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> PyResult<Step> {
        let class = object.get_type();
        if !class.is(py.get_type::<Future>()) && !class.is(py.get_type::<Task>()) {
            // SAFETY: every type with this slot is Future or a subclass, which has tp_iternext.
            let next = unsafe { Bound::from_owned_ptr_or_opt(py, ffi::PyIter_Next(object.as_ptr())) };
            return match next {
                Some(value) => Ok(Step::Yield(value.unbind())),
                None => match PyErr::take(py) {
                    Some(error) if error.is_instance_of::<PyStopIteration>(py) => Ok(Step::Return(error.value(py).getattr("value")?.unbind())),
                    Some(error) => Err(error),
                    None => Ok(Step::Return(py.None())),
                },
            };
        }
        Future::step(object.cast::<Future>()?)
    }));
    let outcome = outcome.unwrap_or_else(|panic| Err(pyo3::panic::PanicException::new_err(event_loop::executor::panic_message(&*panic).to_string())));
    match outcome {
        Ok(Step::Yield(value)) => {
            // SAFETY: `result` is CPython's out-parameter; it takes the reference.
            unsafe { *result = value.into_ptr() };
            ffi::PySendResult::PYGEN_NEXT
        }
        Ok(Step::Return(value)) => {
            unsafe { *result = value.into_ptr() };
            ffi::PySendResult::PYGEN_RETURN
        }
        Err(error) => {
            error.restore(py);
            unsafe { *result = std::ptr::null_mut() };
            ffi::PySendResult::PYGEN_ERROR
        }
    }
}

/// A class given a finalizer by [`install_slots`]: where it keeps the deallocator pyo3 gave it.
pub(crate) trait Finalized: pyo3::PyClass {
    fn pyo3_dealloc() -> &'static std::sync::OnceLock<ffi::destructor>;
}

impl Finalized for Future {
    fn pyo3_dealloc() -> &'static std::sync::OnceLock<ffi::destructor> {
        static DEALLOC: std::sync::OnceLock<ffi::destructor> = std::sync::OnceLock::new();
        &DEALLOC
    }
}

/// Gives `Future` or `Task` a finalizer (PEP 442), as asyncio's C classes have: pyo3 has no
/// `__del__`, and a destructor cannot hand the dying future to the exception handler, which
/// asyncio's reports (an exception never retrieved, a task destroyed while pending) include.
/// Called once per class, when the module is made.
///
/// It also gives it `am_send` ([`am_send`]).
pub(crate) fn install_slots<T: Finalized>(class: &Bound<'_, PyType>) {
    let class = class.as_type_ptr();
    // SAFETY: `class` is pyo3's heap type for T, not yet instantiated or subclassed; setting
    // slots and then calling PyType_Modified is how CPython's own types are patched. pyo3 gave
    // Future `am_await` (`__await__`), and Task inherits it, so `tp_as_async` points at the heap
    // type's own table.
    unsafe {
        if let Some(original) = (*class).tp_dealloc {
            if T::pyo3_dealloc().set(original).is_ok() {
                (*class).tp_dealloc = Some(dealloc::<T>);
                (*class).tp_finalize = Some(finalize);
                if let Some(methods) = (*class).tp_as_async.as_mut() {
                    methods.am_send = Some(am_send);
                }
                ffi::PyType_Modified(class);
            }
        }
    }
}

/// Runs the finalizer (unless it already ran, or the object is cyclic garbage the collector
/// finalized), then pyo3's deallocator; a finalizer that resurrected the object stops here.
unsafe extern "C" fn dealloc<T: Finalized>(object: *mut ffi::PyObject) {
    // SAFETY: called by CPython with a dead object of our type (refcount 0), GIL held.
    unsafe {
        if ffi::PyObject_CallFinalizerFromDealloc(object) < 0 {
            return;
        }
        if let Some(original) = T::pyo3_dealloc().get() {
            original(object);
        }
    }
}

/// Reports, to the loop's exception handler, a task destroyed while pending, then an exception
/// that was set and never retrieved, with the object itself in the context, as asyncio does; the
/// exception being raised, if any, is kept.
unsafe extern "C" fn finalize(object: *mut ffi::PyObject) {
    // SAFETY: CPython calls tp_finalize with the GIL held and the object alive.
    let py = unsafe { Python::assume_attached() };
    // SAFETY: `object` is alive for the duration of this call; we take a new reference.
    let any = unsafe { Bound::from_borrowed_ptr(py, object) };
    let Ok(future) = any.cast::<Future>() else { return };
    let task = any.cast::<Task>().ok();
    // Most futures die with nothing to report: they are let go without touching the error
    // indicator (as asyncio's C Future does), which is one look at their state.
    let report = match future.get().inner_try(py) {
        Some(this) => this.log_traceback || (this.state == State::Pending && task.is_some_and(|t| t.get().logs_destroy_pending(py))),
        None => true, // borrowed by the method the finalizer interrupts: the reports look again
    };
    if !report {
        return;
    }
    let pending = PyErr::take(py);
    if let Some(task) = task {
        if let Err(e) = Task::report_pending(task) {
            e.write_unraisable(py, Some(task.as_any()));
        }
    }
    if let Err(e) = report_unretrieved(future) {
        e.write_unraisable(py, Some(future.as_any()));
    }
    if let Some(pending) = pending {
        pending.restore(py);
    }
}

pub(crate) fn report_unretrieved(future: &Bound<'_, Future>) -> PyResult<()> {
    let py = future.py();
    let (exception, event_loop, source) = {
        let Some(mut this) = future.get().inner_try(py) else { return Ok(()) };
        if !std::mem::take(&mut this.log_traceback) {
            return Ok(());
        }
        let (Some(exception), Some(owner)) = (this.exception.as_ref(), this.owner.as_ref()) else { return Ok(()) };
        (exception.clone_ref(py), owner.event_loop.clone_ref(py), this.source_traceback.as_ref().map(|s| s.clone_ref(py)))
    };
    let context = PyDict::new(py);
    context.set_item("message", format!("{} exception was never retrieved", future.get_type().name()?))?;
    context.set_item("exception", exception)?;
    context.set_item("future", future)?;
    report_to_handler(event_loop.bind(py), &context, source)
}

/// Hands a report of a dying future or task to its loop's exception handler, with the traceback
/// of where it was made (debug mode), as asyncio's C Future does.
pub(crate) fn report_to_handler(event_loop: &Bound<'_, PyAny>, context: &Bound<'_, PyDict>, source_traceback: Option<Py<PyAny>>) -> PyResult<()> {
    if let Some(source) = source_traceback {
        context.set_item("source_traceback", source)?;
    }
    event_loop.call_method1(intern!(event_loop.py(), "call_exception_handler"), (context,)).map(drop)
}

#[pymethods]
impl Future {
    /// Python calls `__new__` then `__init__`, as for asyncio's C Future: a subclass that skips
    /// `__init__` gets a future whose methods raise `RuntimeError`, not one that crashes.
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
        Future::default()
    }

    /// `Future(*, loop=None)`: on `loop`, or on the running loop, or on the current thread's loop.
    #[pyo3(signature = (*, r#loop = None))]
    fn __init__(slf: &Bound<'_, Self>, r#loop: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        Self::init(slf, r#loop)
    }

    /// `Future[int]` in annotations.
    #[classmethod]
    fn __class_getitem__(cls: &Bound<'_, PyType>, item: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let py = cls.py();
        Ok(py.import("types")?.getattr("GenericAlias")?.call1((cls, item))?.unbind())
    }

    /// The loop the future is bound to.
    pub fn get_loop(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(self.state(py).owner()?.event_loop.clone_ref(py))
    }

    /// The result; raises the exception if one was set, `CancelledError` if cancelled, and
    /// `InvalidStateError` if the future is not done.
    pub fn result(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.state_mut(py).result(py)
    }

    /// The exception set (or None); `CancelledError` if cancelled, `InvalidStateError` if pending.
    pub fn exception(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        self.state_mut(py).exception(py)
    }

    /// Marks the future done with `result` and schedules its callbacks.
    pub fn set_result(slf: &Bound<'_, Self>, result: Py<PyAny>) -> PyResult<()> {
        Self::complete(slf, State::Finished, |this| this.result = Some(result))
    }

    /// Marks the future done with `exception` (a class is instantiated) and schedules its callbacks.
    pub fn set_exception(slf: &Bound<'_, Self>, exception: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        Self::ensure_pending(slf)?;
        let exception = match exception.cast::<PyType>() {
            Ok(class) => class.call0()?,
            Err(_) => exception.clone(),
        };
        if !exception.is_instance_of::<PyBaseException>() {
            return Err(PyTypeError::new_err("invalid exception object"));
        }
        let exception = if exception.is_instance_of::<PyStopIteration>() {
            const MESSAGE: &str = "StopIteration interacts badly with generators and cannot be raised into a Future";
            if py.version_info() < (3, 13) {
                return Err(PyTypeError::new_err(MESSAGE));
            }
            // Since 3.13, asyncio stores a RuntimeError caused by the StopIteration instead.
            let error = PyRuntimeError::new_err(MESSAGE).into_value(py).into_bound(py).into_any();
            error.setattr(intern!(py, "__cause__"), &exception)?;
            error.setattr(intern!(py, "__context__"), &exception)?;
            error
        } else {
            exception
        };
        let tb = exception.getattr(intern!(py, "__traceback__"))?;
        Self::complete(slf, State::Finished, |this| {
            this.exception = Some(exception.unbind());
            this.exception_tb = (!tb.is_none()).then(|| tb.unbind());
            this.log_traceback = true;
        })
    }

    /// Cancels a pending future (True), with an optional message for its `CancelledError`;
    /// False if it is already done.
    #[pyo3(signature = (msg = None))]
    pub fn cancel(slf: &Bound<'_, Self>, msg: Option<Py<PyAny>>) -> PyResult<bool> {
        {
            let mut this = slf.get().state_mut(slf.py());
            this.owner()?;
            this.log_traceback = false;
            if this.state != State::Pending {
                return Ok(false);
            }
        }
        Self::complete_cancelled(slf, None, msg)?;
        Ok(true)
    }

    pub fn cancelled(&self, py: Python<'_>) -> bool {
        self.state(py).state == State::Cancelled
    }

    pub fn done(&self, py: Python<'_>) -> bool {
        self.state(py).state != State::Pending
    }

    /// Runs `callback(future)` when the future is done (soon, if it already is), in `context`
    /// (a copy of the current context by default).
    #[pyo3(signature = (callback, *, context = None))]
    pub fn add_done_callback(slf: &Bound<'_, Self>, callback: Py<PyAny>, context: Option<Py<PyAny>>) -> PyResult<()> {
        let py = slf.py();
        let context = match context.filter(|c| !c.is_none(py)) {
            Some(context) => context,
            None => copy_context(py)?,
        };
        Self::add_callback(slf, callback, context)
    }

    /// Removes every registration of `callback` (compared with `==`); returns how many.
    ///
    /// Comparing runs Python code that may add or remove callbacks meanwhile: the list is read
    /// afresh at each step and replaced at the end only by what survived.
    pub fn remove_done_callback(slf: &Bound<'_, Self>, callback: &Bound<'_, PyAny>) -> PyResult<usize> {
        let py = slf.py();
        slf.get().state(py).owner()?;
        let mut kept = Vec::new();
        let mut index = 0;
        loop {
            let entry = {
                let this = slf.get().state(py);
                match this.callbacks.get(index) {
                    Some((f, c)) => (f.clone_ref(py), c.clone_ref(py)),
                    None => break,
                }
            };
            if !equal(entry.0.bind(py), callback)? {
                kept.push(entry);
            }
            index += 1;
        }
        let mut this = slf.get().state_mut(py);
        let before = this.callbacks.len();
        if kept.len() != before {
            this.callbacks = kept;
        }
        Ok(before - this.callbacks.len())
    }

    /// The finalizer, as a method: a Python subclass finds its finalizer by looking up `__del__`.
    fn __del__(slf: &Bound<'_, Self>) -> PyResult<()> {
        report_unretrieved(slf)
    }

    /// `await future` (and `yield from future`): the future is its own iterator, which saves an
    /// object per `await`. While the future is pending, the first step yields it (telling the task
    /// to wait for it) with `_asyncio_future_blocking` set; a task clears the flag when it has
    /// registered its wake-up, so a second step while the flag is still set means no task did.
    /// Once the future is done, a step returns its result (raises `StopIteration(result)`).
    fn __await__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        Self::step(slf)?.into_next()
    }

    /// A value sent in is ignored: a future's `await` only ever resumes with `None`.
    fn send(slf: &Bound<'_, Self>, _value: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        Self::step(slf)?.into_next()
    }

    /// Raises the exception at the `await`, as a generator's `throw` would (same checks, same errors;
    /// from Python 3.12, the same `DeprecationWarning` for the `(type, value, traceback)` form).
    #[pyo3(signature = (kind, *rest))]
    fn throw(_slf: &Bound<'_, Self>, kind: &Bound<'_, PyAny>, rest: &Bound<'_, PyTuple>) -> PyResult<Py<PyAny>> {
        let py = kind.py();
        if rest.len() > 2 {
            return Err(PyTypeError::new_err(format!("throw expected at most 3 arguments, got {}", rest.len() + 1)));
        }
        if !rest.is_empty() && py.version_info() >= (3, 12) {
            let message = c"the (type, exc, tb) signature of throw() is deprecated, use the single-arg signature instead.";
            PyErr::warn(py, &py.get_type::<pyo3::exceptions::PyDeprecationWarning>(), message, 1)?;
        }
        let value = rest.get_item(0).ok().filter(|v| !v.is_none());
        let traceback = rest.get_item(1).ok().filter(|t| !t.is_none());
        let value = value.as_ref();
        if let Some(tb) = &traceback {
            if !tb.is_instance_of::<PyTraceback>() {
                return Err(PyTypeError::new_err("throw() third argument must be a traceback"));
            }
        }
        let class = kind.cast::<PyType>().ok().filter(|c| c.is_subclass_of::<PyBaseException>().unwrap_or(false));
        let exception = if let Some(class) = class {
            match value {
                Some(v) if v.is_instance(class)? => v.clone(),
                Some(v) => match v.cast::<PyTuple>() {
                    Ok(args) => class.call1(args.clone())?,
                    Err(_) => class.call1((v,))?,
                },
                None => class.call0()?,
            }
        } else if kind.is_instance_of::<PyBaseException>() {
            if value.is_some() {
                return Err(PyTypeError::new_err("instance exception may not have a separate value"));
            }
            kind.clone()
        } else {
            return Err(PyTypeError::new_err("exceptions must be classes deriving BaseException"));
        };
        if let Some(tb) = traceback {
            exception.call_method1(intern!(py, "with_traceback"), (tb,))?;
        }
        Err(PyErr::from_value(exception))
    }

    /// asyncio's repr, e.g. `<Future pending cb=[...]>` or `<Future finished result=4>`.
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        Ok(py.import("asyncio.base_futures")?.call_method1("_future_repr", (slf,))?.unbind())
    }

    /// The `CancelledError` for a cancelled future (asyncio's `gather` asks its children for it).
    fn _make_cancelled_error(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.state_mut(py).make_cancelled_error(py)
    }

    #[getter]
    fn _asyncio_future_blocking(&self, py: Python<'_>) -> bool {
        self.state(py).blocking
    }

    #[setter(_asyncio_future_blocking)]
    fn set_blocking(&self, py: Python<'_>, value: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let value = assigned(value)?.is_truthy()?;
        self.state_mut(py).blocking = value;
        Ok(())
    }

    #[getter]
    fn _log_traceback(&self, py: Python<'_>) -> bool {
        self.state(py).log_traceback
    }

    #[setter(_log_traceback)]
    fn set_log_traceback(&self, py: Python<'_>, value: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        if assigned(value)?.is_truthy()? {
            return Err(PyValueError::new_err("_log_traceback can only be set to False"));
        }
        self.state_mut(py).log_traceback = false;
        Ok(())
    }

    #[getter]
    fn _loop(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.state(py).owner.as_ref().map(|o| o.event_loop.clone_ref(py))
    }

    #[getter]
    fn _state(&self, py: Python<'_>) -> PyResult<&'static str> {
        let this = self.state(py);
        this.owner()?;
        Ok(this.state.name())
    }

    #[getter]
    fn _result(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.state(py).result.as_ref().map(|r| r.clone_ref(py))
    }

    #[getter]
    fn _exception(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.state(py).exception.as_ref().map(|e| e.clone_ref(py))
    }

    /// The pending callbacks as asyncio's C Future lists them: `[(callback, context), ...]`, or
    /// None when there are none.
    #[getter]
    fn _callbacks<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyList>>> {
        let entries = {
            let this = self.state(py);
            this.callbacks.iter().map(|(f, c)| (f.clone_ref(py), c.clone_ref(py))).collect::<Vec<_>>()
        };
        if entries.is_empty() {
            return Ok(None);
        }
        let entries = entries.into_iter().map(|(f, c)| PyTuple::new(py, [f, c])).collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, entries).map(Some)
    }

    #[getter]
    fn _source_traceback(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.state(py).source_traceback.as_ref().map(|s| s.clone_ref(py))
    }

    #[getter]
    fn _cancel_message(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.state(py).cancel_message.as_ref().map(|m| m.clone_ref(py))
    }

    #[setter(_cancel_message)]
    fn set_cancel_message(&self, py: Python<'_>, value: Option<Py<PyAny>>) {
        let earlier = std::mem::replace(&mut self.state_mut(py).cancel_message, value);
        drop(earlier);
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        let Some(this) = self.inner.borrow_in_gc() else { return Ok(()) };
        if let Some(owner) = &this.owner {
            visit.call(&owner.event_loop)?;
        }
        visit.call(&this.result)?;
        visit.call(&this.exception)?;
        visit.call(&this.exception_tb)?;
        for (callback, context) in &this.callbacks {
            visit.call(callback)?;
            visit.call(context)?;
        }
        visit.call(&this.cancel_message)?;
        visit.call(&this.cancelled_exc)?;
        visit.call(&this.source_traceback)?;
        Ok(())
    }

    /// Breaks a cycle: lets go of everything the future holds except its state, after the borrow.
    fn __clear__(&self) {
        let cleared = self.inner.take_in_gc();
        drop(cleared);
    }
}
