//! `mioloop.Task`: asyncio's `Task`, written in Rust, on top of [`Future`].
//!
//! Taught in the chapter *mioloop.Future*, section *A Task of our own*. It is the C `Task` of
//! CPython's `_asyncio` module step for step — the same `__step` and `__wakeup`, the same errors
//! and messages, `cancel`/`uncancel`/`cancelling`, names, contexts, the report of a task destroyed
//! while pending — so that asyncio's `gather`, `wait_for`, `TaskGroup` and `timeout`, which
//! only use a task's public methods, accept it, and CPython's own Task tests pass with it.
//!
//! What it adds is a fast path for `mioloop.Future`: asyncio's C `Task` has one for its own C
//! `Future` only, and waits for any other future through Python attribute look-ups and method
//! calls (`_asyncio_future_blocking`, `get_loop()`, `add_done_callback()`, and `result()` by
//! name on every wake-up). This task reads and registers on a `mioloop.Future` (or another
//! `mioloop.Task`) directly, and its steps and wake-ups are run by the loop's handles without a
//! Python call. Any other future goes the generic way, exactly as the C `Task` does.
//!
//! As in [`Future`], no borrow of the task is held across a call into Python.

use crate::future::{self, Finalized, Future, LoopRef, State};
use crate::gil::GilRefCell;
use std::cell::{Ref, RefMut};
use pyo3::exceptions::{PyKeyboardInterrupt, PyRuntimeError, PySystemExit, PyTypeError};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::PyTypeInfo;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString, PyTuple};
use pyo3::{PyTraverseError, ffi, intern};
use std::sync::atomic::{AtomicU64, Ordering};

/// `Task-1`, `Task-2`, ...: the names of tasks made without one.
static NAME_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A task's name: a number, formatted only if someone asks for it, or the string it was given.
enum Name {
    Numbered(u64),
    Given(Py<PyAny>),
}

/// The functions of asyncio a task calls, looked up once (the C `Task` binds them once too).
struct Asyncio {
    /// `asyncio.tasks._current_tasks`, the dict (loop → task) that `asyncio.current_task()`
    /// reads; the C `Task` writes it directly, and so does this one (see `enter`).
    current_tasks: Py<PyDict>,
    register_task: Py<PyAny>,
    iscoroutine: Py<PyAny>,
    task_repr: Py<PyAny>,
    get_stack: Py<PyAny>,
    print_stack: Py<PyAny>,
}

static ASYNCIO: PyOnceLock<Asyncio> = PyOnceLock::new();

fn asyncio(py: Python<'_>) -> PyResult<&'static Asyncio> {
    ASYNCIO.get_or_try_init(py, || {
        let tasks = py.import("asyncio.tasks")?;
        let base_tasks = py.import("asyncio.base_tasks")?;
        let get = |module: &Bound<'_, PyModule>, name: &str| module.getattr(name).map(Bound::unbind);
        Ok(Asyncio {
            current_tasks: tasks.getattr("_current_tasks")?.cast_into::<PyDict>()?.unbind(),
            register_task: get(&tasks, "_register_task")?,
            iscoroutine: get(&py.import("asyncio.coroutines")?, "iscoroutine")?,
            task_repr: get(&base_tasks, "_task_repr")?,
            get_stack: get(&base_tasks, "_task_get_stack")?,
            print_stack: get(&base_tasks, "_task_print_stack")?,
        })
    })
}

/// What sending into (or throwing into) the coroutine gave.
enum Sent<'py> {
    /// It awaits this (a future, normally).
    Yield(Bound<'py, PyAny>),
    /// It returned this.
    Return(Bound<'py, PyAny>),
    /// It raised this.
    Raise(PyErr),
}

/// `coro.send(None)`, through `PyIter_Send`, which resumes a coroutine without a method call.
fn send<'py>(coro: &Bound<'py, PyAny>) -> Sent<'py> {
    let py = coro.py();
    let mut result: *mut ffi::PyObject = std::ptr::null_mut();
    // SAFETY: a valid object, None to send, and a place for the new reference PyIter_Send returns.
    let status = unsafe { ffi::PyIter_Send(coro.as_ptr(), ffi::Py_None(), &mut result) };
    // SAFETY: on NEXT and RETURN, `result` is a new reference; on ERROR it is NULL.
    match status {
        ffi::PySendResult::PYGEN_NEXT => Sent::Yield(unsafe { Bound::from_owned_ptr(py, result) }),
        ffi::PySendResult::PYGEN_RETURN => Sent::Return(unsafe { Bound::from_owned_ptr(py, result) }),
        ffi::PySendResult::PYGEN_ERROR => Sent::Raise(PyErr::fetch(py)),
    }
}

/// `coro.throw(exc)`: a `StopIteration` it raises is its return value.
fn throw<'py>(coro: &Bound<'py, PyAny>, exc: &Bound<'py, PyAny>) -> Sent<'py> {
    let py = coro.py();
    match coro.call_method1(intern!(py, "throw"), (exc,)) {
        Ok(value) => Sent::Yield(value),
        Err(e) if e.is_instance_of::<pyo3::exceptions::PyStopIteration>(py) => match e.value(py).getattr(intern!(py, "value")) {
            Ok(value) => Sent::Return(value),
            Err(e) => Sent::Raise(e),
        },
        Err(e) => Sent::Raise(e),
    }
}

/// `asyncio.futures._get_loop(future)`: `get_loop()`, or the `_loop` attribute.
fn future_loop<'py>(future: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = future.py();
    match future.getattr_opt(intern!(py, "get_loop"))? {
        Some(get_loop) => get_loop.call0(),
        None => future.getattr(intern!(py, "_loop")),
    }
}

/// True of `mioloop.Future` and `mioloop.Task` themselves, whose state a task reads directly;
/// a subclass may override any method, so it gets the generic path.
pub(crate) fn is_native_future(object: &Bound<'_, PyAny>) -> bool {
    let py = object.py();
    // SAFETY: a valid object; its type pointer is only compared.
    let class = unsafe { ffi::Py_TYPE(object.as_ptr()) };
    class == Future::type_object_raw(py) || class == Task::type_object_raw(py)
}

/// Runs a task's step or wake-up that a handle holds without a Python call (`Handle::run`);
/// `None` for any other callback.
pub(crate) fn call_task_callback(callback: &Bound<'_, PyAny>, args: &Bound<'_, PyTuple>) -> Option<PyResult<()>> {
    // SAFETY: a valid object; its type pointer is only compared.
    if unsafe { ffi::Py_TYPE(callback.as_ptr()) } != TaskCallback::type_object_raw(callback.py()) {
        return None;
    }
    // SAFETY: exactly a TaskCallback, checked above.
    Some(unsafe { callback.cast_unchecked::<TaskCallback>() }.get().run(args))
}

/// An asyncio-compatible Task, driving a coroutine on any event loop. `mioloop.EventLoop`
/// makes these in `create_task`. `frozen`, with its state in a [`GilRefCell`], as [`Future`].
#[pyclass(frozen, extends = Future, subclass, module = "mioloop", name = "Task")]
#[derive(Default)]
pub struct Task {
    inner: GilRefCell<TaskState>,
}

/// What a task holds, besides its future part.
#[derive(Default)]
struct TaskState {
    coro: Option<Py<PyAny>>,
    /// The `contextvars.Context` every step runs in.
    context: Option<Py<PyAny>>,
    name: Option<Name>,
    /// The future the coroutine waits for, while it waits.
    fut_waiter: Option<Py<PyAny>>,
    /// `cancel()` was called when there was no future to pass it on to: the next step throws
    /// `CancelledError` into the coroutine.
    must_cancel: bool,
    log_destroy_pending: bool,
    num_cancels_requested: u64,
}

impl Finalized for Task {
    fn pyo3_dealloc() -> &'static std::sync::OnceLock<ffi::destructor> {
        static DEALLOC: std::sync::OnceLock<ffi::destructor> = std::sync::OnceLock::new();
        &DEALLOC
    }
}

impl TaskState {
    fn context(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.context.as_ref().map(|c| c.clone_ref(py)).ok_or_else(|| PyRuntimeError::new_err("uninitialized Task object"))
    }
}

impl Task {
    fn state(&self, py: Python<'_>) -> Ref<'_, TaskState> {
        self.inner.borrow(py)
    }

    fn state_mut(&self, py: Python<'_>) -> RefMut<'_, TaskState> {
        self.inner.borrow_mut(py)
    }

    /// A task running `coro` on `event_loop`, its first step scheduled: what
    /// `mioloop.EventLoop.create_task` returns.
    pub(crate) fn spawn<'py>(coro: &Bound<'py, PyAny>, event_loop: &Bound<'py, PyAny>, name: Option<&Bound<'py, PyAny>>, context: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, Task>> {
        let task = Bound::new(coro.py(), PyClassInitializer::from(Future::default()).add_subclass(Task::default()))?;
        Self::init(&task, coro, Some(event_loop), name, context, false)?;
        Ok(task)
    }

    /// `Task.__init__`: the future's part, then the task's, then the first step (scheduled, or
    /// run at once for an eager task on a running loop).
    fn init(slf: &Bound<'_, Self>, coro: &Bound<'_, PyAny>, event_loop: Option<&Bound<'_, PyAny>>, name: Option<&Bound<'_, PyAny>>, context: Option<&Bound<'_, PyAny>>, eager_start: bool) -> PyResult<()> {
        let py = slf.py();
        if eager_start && py.version_info() < (3, 12) {
            return Err(PyTypeError::new_err("eager_start needs Python 3.12 or later (asyncio's eager tasks)"));
        }
        Future::init(slf.as_super(), event_loop)?;
        let earlier = std::mem::take(&mut *slf.get().state_mut(py));
        drop(earlier); // outside the borrow: letting go of an old coroutine may run Python code
        // SAFETY: a valid object; PyCoro_CheckExact only reads its type.
        let is_coroutine = unsafe { ffi::PyCoro_CheckExact(coro.as_ptr()) } != 0 || asyncio(py)?.iscoroutine.bind(py).call1((coro,))?.is_truthy()?;
        if !is_coroutine {
            return Err(PyTypeError::new_err(format!("a coroutine was expected, got {}", coro.repr()?)));
        }
        let name = match name.filter(|n| !n.is_none()) {
            None => Name::Numbered(NAME_COUNTER.fetch_add(1, Ordering::Relaxed) + 1),
            Some(name) if name.is_exact_instance_of::<PyString>() => Name::Given(name.clone().unbind()),
            Some(name) => Name::Given(name.str()?.into_any().unbind()),
        };
        let context = match context.filter(|c| !c.is_none()) {
            Some(context) => context.clone().unbind(),
            None => future::copy_context(py)?,
        };
        {
            let mut this = slf.get().state_mut(py);
            this.coro = Some(coro.clone().unbind());
            this.context = Some(context);
            this.name = Some(name);
            this.log_destroy_pending = true;
        }
        if eager_start && Self::event_loop(slf)?.call_method0(intern!(py, "is_running"))?.is_truthy()? {
            return Self::eager_start(slf);
        }
        Self::call_step_soon(slf, None)?;
        asyncio(py)?.register_task.bind(py).call1((slf,))?;
        Ok(())
    }

    /// The task's loop (the [`LoopRef`] of its future part).
    fn owner<'py>(slf: &Bound<'py, Self>) -> PyResult<LoopRef<'py>> {
        let py = slf.py();
        Ok(slf.as_super().get().state(py).owner()?.bind(py))
    }

    fn event_loop<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        Ok(Self::owner(slf)?.event_loop)
    }

    /// Schedules a step (with `exc` to throw into the coroutine) in the task's context.
    fn call_step_soon(slf: &Bound<'_, Self>, exc: Option<Py<PyAny>>) -> PyResult<()> {
        let py = slf.py();
        let step = TaskCallback::new(slf, Call::Step { exc })?;
        let context = slf.get().state(py).context(py)?;
        let owner = Self::owner(slf)?;
        owner.call_soon(step.as_any(), &crate::event_loop::empty_tuple(py), context)
    }

    /// Schedules a step that throws `RuntimeError(message)` into the coroutine.
    fn call_error_soon(slf: &Bound<'_, Self>, message: String) -> PyResult<()> {
        let error = PyRuntimeError::new_err(message).into_value(slf.py());
        Self::call_step_soon(slf, Some(error.into_any()))
    }

    /// One step: resume the coroutine (or throw `exc` into it) with the task as asyncio's current
    /// task, then deal with what it did. `Err` is only for what must stop the loop (`SystemExit`,
    /// `KeyboardInterrupt`) or a broken task; the coroutine's own exceptions end the task.
    pub(crate) fn step(slf: &Bound<'_, Self>, exc: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        let py = slf.py();
        let current_tasks = asyncio(py)?.current_tasks.bind(py);
        let event_loop = Self::event_loop(slf)?;
        Self::enter(current_tasks, &event_loop, slf)?;
        let stepped = Self::step_within(slf, &event_loop, exc);
        let left = Self::leave(current_tasks, &event_loop, slf);
        stepped?;
        left
    }

    /// asyncio's `_enter_task(loop, task)`, the dict operations without the call: the task
    /// becomes the loop's current task, unless another one is.
    fn enter(current_tasks: &Bound<'_, PyDict>, event_loop: &Bound<'_, PyAny>, task: &Bound<'_, Self>) -> PyResult<()> {
        if let Some(current) = current_tasks.get_item(event_loop)? {
            return Err(PyRuntimeError::new_err(format!("Cannot enter into task {} while another task {} is being executed.", task.repr()?, current.repr()?)));
        }
        current_tasks.set_item(event_loop, task)
    }

    /// asyncio's `_leave_task(loop, task)`: the loop has no current task again.
    fn leave(current_tasks: &Bound<'_, PyDict>, event_loop: &Bound<'_, PyAny>, task: &Bound<'_, Self>) -> PyResult<()> {
        match current_tasks.get_item(event_loop)? {
            Some(current) if current.is(task) => current_tasks.del_item(event_loop),
            current => {
                let current = current.map_or_else(|| Ok("None".to_string()), |c| c.repr().map(|r| r.to_string()))?;
                Err(PyRuntimeError::new_err(format!("Leaving task {} does not match the current task {current}.", task.repr()?)))
            }
        }
    }

    /// The step proper (the C `Task`'s `task_step_impl`).
    fn step_within(slf: &Bound<'_, Self>, event_loop: &Bound<'_, PyAny>, exc: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        let py = slf.py();
        let future = slf.as_super();
        if future.get().state(py).state() != State::Pending {
            let exc = exc.as_ref().map_or_else(|| Ok("None".to_string()), |e| e.repr().map(|r| r.to_string()))?;
            return Err(future::invalid_state(py, format!("_step(): already done: {} {exc}", slf.repr()?)));
        }
        // One look at the task: what it runs, the future it waited for, a cancellation meanwhile.
        let (coro, waiter, must_cancel) = {
            let mut this = slf.get().state_mut(py);
            let coro = this.coro.as_ref().map(|c| c.bind(py).clone());
            (coro, this.fut_waiter.take(), std::mem::take(&mut this.must_cancel))
        };
        drop(waiter); // outside the borrow: it may have been the last reference
        let mut exc = exc;
        if must_cancel {
            let cancelled_error = future::asyncio_exception(py, &future::CANCELLED_ERROR, "CancelledError")?;
            if !exc.as_ref().map_or(Ok(false), |e| e.is_instance(&cancelled_error))? {
                exc = Some(future.get().state_mut(py).make_cancelled_error(py)?.into_bound(py));
            }
        }
        let coro = coro.ok_or_else(|| PyRuntimeError::new_err("uninitialized Task object"))?;
        let sent = match &exc {
            None => send(&coro),
            Some(exc) => throw(&coro, exc),
        };
        drop(exc);
        match sent {
            Sent::Yield(awaited) => Self::wait_for(slf, event_loop, &awaited),
            Sent::Return(value) => {
                if std::mem::take(&mut slf.get().state_mut(py).must_cancel) {
                    // Cancelled just as the coroutine returned.
                    let message = future.get().state(py).cancel_message.as_ref().map(|m| m.clone_ref(py));
                    Future::cancel(future, message).map(drop)
                } else {
                    Future::set_result(future, value.unbind())
                }
            }
            Sent::Raise(error) => {
                let cancelled_error = future::asyncio_exception(py, &future::CANCELLED_ERROR, "CancelledError")?;
                if error.matches(py, &cancelled_error)? {
                    // Kept, so that awaiting the task raises the same CancelledError.
                    let raised = error.into_value(py).into_any();
                    return Future::complete_cancelled(future, Some(raised), None);
                }
                let value = error.clone_ref(py).into_value(py).into_bound(py).into_any();
                Future::set_exception(future, &value)?;
                if error.is_instance_of::<PyKeyboardInterrupt>(py) || error.is_instance_of::<PySystemExit>(py) {
                    return Err(error);
                }
                Ok(())
            }
        }
    }

    /// The coroutine yielded `awaited`: wait for it if it is a future of this loop, say why not
    /// (by throwing a `RuntimeError` into the coroutine next step) if it is anything else.
    fn wait_for(slf: &Bound<'_, Self>, event_loop: &Bound<'_, PyAny>, awaited: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        if awaited.is(slf) {
            return Self::call_error_soon(slf, format!("Task cannot await on itself: {}", slf.repr()?));
        }
        let different_loop = || -> PyResult<String> { Ok(format!("Task {} got Future {} attached to a different loop", slf.repr()?, awaited.repr()?)) };
        let yield_instead = || -> PyResult<String> { Ok(format!("yield was used instead of yield from in task {} with {}", slf.repr()?, awaited.repr()?)) };
        if is_native_future(awaited) {
            // mioloop's own futures: their state read, and the wake-up registered, directly.
            let future = awaited.cast::<Future>()?;
            let (same_loop, blocking) = {
                let mut this = future.get().state_mut(py);
                (this.owner()?.event_loop.is(event_loop), this.take_blocking())
            };
            if !same_loop {
                return Self::call_error_soon(slf, different_loop()?);
            }
            if !blocking {
                return Self::call_error_soon(slf, yield_instead()?);
            }
            let context = slf.get().state(py).context(py)?;
            Future::add_callback(future, TaskCallback::new(slf, Call::Wakeup)?.into_any().unbind(), context)?;
        } else if awaited.is_none() {
            // A bare `yield`: give the other callbacks one turn.
            return Self::call_step_soon(slf, None);
        } else {
            match awaited.getattr_opt(intern!(py, "_asyncio_future_blocking"))? {
                Some(blocking) if !blocking.is_none() => {
                    let blocking = blocking.is_truthy()?;
                    if !future_loop(awaited)?.is(event_loop) {
                        return Self::call_error_soon(slf, different_loop()?);
                    }
                    if !blocking {
                        return Self::call_error_soon(slf, yield_instead()?);
                    }
                    awaited.setattr(intern!(py, "_asyncio_future_blocking"), false)?;
                    let kwargs = PyDict::new(py);
                    kwargs.set_item(intern!(py, "context"), slf.get().state(py).context(py)?)?;
                    awaited.call_method(intern!(py, "add_done_callback"), (TaskCallback::new(slf, Call::Wakeup)?,), Some(&kwargs))?;
                }
                _ => {
                    // SAFETY: a valid object; PyGen_Check only reads its type.
                    let message = if unsafe { ffi::PyGen_Check(awaited.as_ptr()) } != 0 {
                        format!("yield was used instead of yield from for generator in task {} with {}", slf.repr()?, awaited.repr()?)
                    } else {
                        format!("Task got bad yield: {}", awaited.repr()?)
                    };
                    return Self::call_error_soon(slf, message);
                }
            }
        }
        let must_cancel = {
            let mut this = slf.get().state_mut(py);
            this.fut_waiter = Some(awaited.clone().unbind());
            this.must_cancel
        };
        let cancel_message = must_cancel.then(|| slf.as_super().get().state(py).cancel_message.as_ref().map(|m| m.clone_ref(py)));
        if let Some(message) = cancel_message {
            // cancel() was called while the coroutine ran: pass it on to the future it now awaits.
            if awaited.call_method1(intern!(py, "cancel"), (message,))?.is_truthy()? {
                slf.get().state_mut(py).must_cancel = false;
            }
        }
        Ok(())
    }

    /// The future the task waited for is done: step again, throwing its exception (or the
    /// `CancelledError`) into the coroutine if it has one.
    fn wakeup(slf: &Bound<'_, Self>, awaited: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let outcome = if is_native_future(awaited) {
            awaited.cast::<Future>()?.get().result(py).map(drop)
        } else {
            awaited.call_method0(intern!(py, "result")).map(drop)
        };
        match outcome {
            Ok(()) => Self::step(slf, None),
            Err(error) => Self::step(slf, Some(error.into_value(py).into_bound(py).into_any())),
        }
    }

    /// 3.12's eager start: the first step now, within `__init__`, as the current task.
    fn eager_start(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let tasks = py.import("asyncio.tasks")?;
        let event_loop = Self::event_loop(slf)?;
        let previous = tasks.call_method1(intern!(py, "_swap_current_task"), (&event_loop, slf))?;
        tasks.call_method1(intern!(py, "_register_eager_task"), (slf,))?;
        let context = slf.get().state(py).context(py)?.into_bound(py);
        // SAFETY: a contextvars.Context; Enter and Exit are paired below.
        if unsafe { ffi::PyContext_Enter(context.as_ptr()) } != 0 {
            return Err(PyErr::fetch(py));
        }
        let stepped = Self::step_within(slf, &event_loop, None);
        let swapped = tasks.call_method1(intern!(py, "_swap_current_task"), (&event_loop, previous));
        let unregistered = tasks.call_method1(intern!(py, "_unregister_eager_task"), (slf,));
        // SAFETY: entered above, on this thread.
        if unsafe { ffi::PyContext_Exit(context.as_ptr()) } != 0 {
            return Err(PyErr::fetch(py));
        }
        stepped?;
        swapped?;
        unregistered?;
        if !slf.as_super().get().done(py) {
            asyncio(py)?.register_task.bind(py).call1((slf,))?;
        } else {
            let coro = slf.get().state_mut(py).coro.take();
            drop(coro);
        }
        Ok(())
    }

    /// Whether the task would be reported if it were collected while pending.
    pub(crate) fn logs_destroy_pending(&self, py: Python<'_>) -> bool {
        self.inner.try_borrow_mut(py).is_none_or(|this| this.log_destroy_pending)
    }

    /// asyncio's report of a task collected while pending, unless the task says not to.
    pub(crate) fn report_pending(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let (event_loop, source) = {
            if !slf.get().inner.try_borrow_mut(py).is_some_and(|this| this.log_destroy_pending) {
                return Ok(());
            }
            let Some(future) = slf.as_super().get().inner_try(py) else { return Ok(()) };
            let Ok(owner) = future.owner() else { return Ok(()) };
            if future.state() != State::Pending {
                return Ok(());
            }
            (owner.event_loop.clone_ref(py), future.source_traceback().map(|s| s.clone_ref(py)))
        };
        let context = PyDict::new(py);
        context.set_item("message", "Task was destroyed but it is pending!")?;
        context.set_item("task", slf)?;
        crate::future::report_to_handler(event_loop.bind(py), &context, source)
    }
}

#[pymethods]
impl Task {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> PyClassInitializer<Self> {
        PyClassInitializer::from(Future::default()).add_subclass(Task::default())
    }

    /// `Task(coro, *, loop=None, name=None, context=None, eager_start=False)`; `eager_start`
    /// from Python 3.12, as in asyncio.
    #[pyo3(signature = (coro, *, r#loop = None, name = None, context = None, eager_start = false))]
    fn __init__(slf: &Bound<'_, Self>, coro: &Bound<'_, PyAny>, r#loop: Option<&Bound<'_, PyAny>>, name: Option<&Bound<'_, PyAny>>, context: Option<&Bound<'_, PyAny>>, eager_start: bool) -> PyResult<()> {
        Self::init(slf, coro, r#loop, name, context, eager_start)
    }

    /// Asks the task to cancel: the future it waits for is cancelled, or, if there is none (or it
    /// refuses), the coroutine gets `CancelledError` at its next step. False if the task is done.
    #[pyo3(signature = (msg = None))]
    fn cancel(slf: &Bound<'_, Self>, msg: Option<Py<PyAny>>) -> PyResult<bool> {
        let py = slf.py();
        {
            let mut future = slf.as_super().get().state_mut(py);
            future.log_traceback = false;
            if future.state() != State::Pending {
                return Ok(false);
            }
        }
        let waiter = {
            let mut this = slf.get().state_mut(py);
            this.num_cancels_requested += 1;
            this.fut_waiter.as_ref().map(|w| w.clone_ref(py))
        };
        if let Some(waiter) = waiter {
            if waiter.bind(py).call_method1(intern!(py, "cancel"), (msg.as_ref().map(|m| m.clone_ref(py)),))?.is_truthy()? {
                return Ok(true);
            }
        }
        slf.get().state_mut(py).must_cancel = true;
        let earlier = std::mem::replace(&mut slf.as_super().get().state_mut(py).cancel_message, msg);
        drop(earlier);
        Ok(true)
    }

    /// How many cancellations are pending (asked for, not yet `uncancel`led).
    fn cancelling(&self, py: Python<'_>) -> u64 {
        self.state(py).num_cancels_requested
    }

    /// Withdraws one cancellation request; returns how many remain. From Python 3.13, withdrawing
    /// the last also withdraws a cancellation the coroutine has not seen yet.
    fn uncancel(&self, py: Python<'_>) -> u64 {
        let mut this = self.state_mut(py);
        if this.num_cancels_requested > 0 {
            this.num_cancels_requested -= 1;
            if this.num_cancels_requested == 0 && py.version_info() >= (3, 13) {
                this.must_cancel = false;
            }
        }
        this.num_cancels_requested
    }

    fn get_coro(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.state(py).coro.as_ref().map(|c| c.clone_ref(py))
    }

    fn get_context(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.state(py).context.as_ref().map(|c| c.clone_ref(py))
    }

    fn get_name(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let mut this = self.state_mut(py);
        let name = match this.name.as_ref() {
            None => return Ok(py.None()),
            Some(Name::Given(name)) => return Ok(name.clone_ref(py)),
            Some(Name::Numbered(number)) => PyString::new(py, &format!("Task-{number}")).into_any().unbind(),
        };
        this.name = Some(Name::Given(name.clone_ref(py)));
        Ok(name)
    }

    fn set_name(slf: &Bound<'_, Self>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let name = if value.is_exact_instance_of::<PyString>() { value.clone() } else { value.str()?.into_any() };
        let earlier = slf.get().state_mut(slf.py()).name.replace(Name::Given(name.unbind()));
        drop(earlier);
        Ok(())
    }

    /// A task's result is its coroutine's: refused.
    fn set_result(&self, _result: &Bound<'_, PyAny>) -> PyResult<()> {
        Err(PyRuntimeError::new_err("Task does not support set_result operation"))
    }

    /// A task's exception is its coroutine's: refused.
    fn set_exception(&self, _exception: &Bound<'_, PyAny>) -> PyResult<()> {
        Err(PyRuntimeError::new_err("Task does not support set_exception operation"))
    }

    /// The frames of the suspended coroutine (or of the exception's traceback), as asyncio's.
    #[pyo3(signature = (*, limit = None))]
    fn get_stack(slf: &Bound<'_, Self>, limit: Option<&Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        Ok(asyncio(py)?.get_stack.bind(py).call1((slf, limit))?.unbind())
    }

    #[pyo3(signature = (*, limit = None, file = None))]
    fn print_stack(slf: &Bound<'_, Self>, limit: Option<&Bound<'_, PyAny>>, file: Option<&Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        Ok(asyncio(py)?.print_stack.bind(py).call1((slf, limit, file))?.unbind())
    }

    /// asyncio's repr, e.g. `<Task pending name='Task-1' coro=<main() running at x.py:3>>`.
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        Ok(asyncio(py)?.task_repr.bind(py).call1((slf,))?.unbind())
    }

    /// The finalizer, as a method, for Python subclasses (see `Future.__del__`).
    fn __del__(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::report_pending(slf)?;
        future::report_unretrieved(slf.as_super())
    }

    #[getter]
    fn _log_destroy_pending(&self, py: Python<'_>) -> bool {
        self.state(py).log_destroy_pending
    }

    #[setter(_log_destroy_pending)]
    fn set_log_destroy_pending(&self, py: Python<'_>, value: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let value = future::assigned(value)?.is_truthy()?;
        self.state_mut(py).log_destroy_pending = value;
        Ok(())
    }

    #[getter]
    fn _must_cancel(&self, py: Python<'_>) -> bool {
        self.state(py).must_cancel
    }

    #[getter]
    fn _coro(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.get_coro(py)
    }

    #[getter]
    fn _fut_waiter(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.state(py).fut_waiter.as_ref().map(|w| w.clone_ref(py))
    }

    #[getter]
    fn _num_cancels_requested(&self, py: Python<'_>) -> u64 {
        self.state(py).num_cancels_requested
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        let Some(this) = self.inner.borrow_in_gc() else { return Ok(()) };
        visit.call(&this.coro)?;
        visit.call(&this.context)?;
        if let Some(Name::Given(name)) = &this.name {
            visit.call(name)?;
        }
        visit.call(&this.fut_waiter)
    }

    /// Breaks a cycle: lets go of everything the task holds, after the borrow.
    fn __clear__(&self) {
        let cleared = self.inner.take_in_gc();
        drop(cleared);
    }
}

/// What a [`TaskCallback`] does when called.
enum Call {
    /// asyncio's `Task.__step`: resume the coroutine, throwing `exc` into it if there is one.
    Step { exc: Option<Py<PyAny>> },
    /// asyncio's `Task.__wakeup`, called with the future the task waited for.
    Wakeup,
}

/// A task's step or wake-up, bound to the task: what its handles call, and the done callback it
/// puts on the future it waits for. It shows a bound method's `__self__`, `__name__` and
/// `__qualname__`, as asyncio's pure-Python Task's methods do, for handle reprs and tracers.
#[pyclass(frozen, module = "mioloop")]
pub(crate) struct TaskCallback {
    task: Py<Task>,
    call: Call,
}

impl TaskCallback {
    fn new<'py>(task: &Bound<'py, Task>, call: Call) -> PyResult<Bound<'py, TaskCallback>> {
        Bound::new(task.py(), TaskCallback { task: task.clone().unbind(), call })
    }

    fn run(&self, args: &Bound<'_, PyTuple>) -> PyResult<()> {
        let py = args.py();
        let task = self.task.bind(py);
        let expected = match self.call {
            Call::Step { .. } => 0,
            Call::Wakeup => 1,
        };
        if args.len() != expected {
            return Err(PyTypeError::new_err(format!("{}() takes {expected} arguments but {} were given", self.__qualname__(), args.len())));
        }
        match &self.call {
            Call::Step { exc } => Task::step(task, exc.as_ref().map(|e| e.bind(py).clone())),
            Call::Wakeup => Task::wakeup(task, &args.get_item(0)?),
        }
    }
}

#[pymethods]
impl TaskCallback {
    #[pyo3(signature = (*args))]
    fn __call__(&self, args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.run(args)
    }

    #[getter]
    fn __qualname__(&self) -> &'static str {
        match self.call {
            Call::Step { .. } => "Task.__step",
            Call::Wakeup => "Task.__wakeup",
        }
    }

    #[getter]
    fn __name__(&self) -> &'static str {
        &self.__qualname__()["Task.".len()..]
    }

    #[getter]
    fn __self__(&self, py: Python<'_>) -> Py<Task> {
        self.task.clone_ref(py)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.task)?;
        if let Call::Step { exc } = &self.call {
            visit.call(exc)?;
        }
        Ok(())
    }
}
