//! Bridges between Rust futures and asyncio, both ways, in one hop.
//!
//! Taught in the chapter *Rust futures meet asyncio*.
//!
//! - [`into_awaitable`] turns any `Future<Output = PyResult<T>> + Send + 'static` into a
//!   `mioloop.Future` that Python code awaits. The Rust future is polled on the loop's thread, with
//!   the GIL held, first at once (a future that is ready at once makes a future that is already
//!   done: no loop turn at all), then each time its waker is called.
//! - [`from_awaitable`] turns a Python awaitable into a Rust future that resolves with its result.
//!
//! A waker does not poll: it queues its task on the loop's [`Wakeups`] and, if the queue was empty,
//! tells the loop, once per batch. On a `mioloop.EventLoop` that is a flag and, if the loop sleeps,
//! a write to its waker, without the GIL; the loop polls the queued tasks at the end of the turn.
//! On any other asyncio loop it is one `call_soon_threadsafe` per batch (which needs the GIL).
//!
//! Cancelling the Python future drops the Rust future; dropping the Rust future made by
//! [`from_awaitable`] cancels the Python task. A Rust error becomes the Python exception, and a
//! panic a `RuntimeError` carrying the panic's message.

use crate::event_loop::{EventLoopCore, Handle};
use crate::future::Future as PyFuture;
use event_loop::Remote;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::IntoPyObjectExt;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyCFunction;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

/// What a Rust future hands the loop thread: its output, converted to Python there, with the GIL.
type Output = PyResult<Box<dyn for<'py> FnOnce(Python<'py>) -> PyResult<Py<PyAny>> + Send>>;
type BoxedFuture = Pin<Box<dyn Future<Output = Output> + Send>>;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

// ---- The loop's side: a queue of woken tasks, polled on the loop thread --------------------------

/// How a batch of wake-ups reaches the loop.
enum Route {
    /// A `mioloop.EventLoop`: a flag in its core, and its waker if it sleeps (no GIL needed).
    Native(Remote<Py<Handle>>),
    /// Any other asyncio loop, through a weak reference (the queue must not keep its loop alive):
    /// `loop.call_soon_threadsafe(Drain(...))`, once per batch.
    Asyncio { loop_ref: Py<PyAny> },
}

/// The tasks of one loop that were woken and wait to be polled, in the order they were woken.
pub struct Wakeups {
    queue: Mutex<Vec<Arc<RustTask>>>,
    /// Set while the queue is non-empty: read by the loop after each turn without taking the lock.
    queued: AtomicBool,
    route: Route,
}

impl Wakeups {
    fn new(route: Route) -> Arc<Self> {
        Arc::new(Wakeups { queue: Mutex::new(Vec::new()), queued: AtomicBool::new(false), route })
    }

    /// The queue of a `mioloop.EventLoop`, told through its core's `remote`.
    pub(crate) fn native(remote: Remote<Py<Handle>>) -> Arc<Self> {
        Self::new(Route::Native(remote))
    }

    /// Whether a poll is due: the loop asks after every turn.
    pub(crate) fn has_work(&self) -> bool {
        self.queued.load(Ordering::Acquire)
    }

    fn push(self: &Arc<Self>, task: Arc<RustTask>) {
        let first = {
            let mut queue = lock(&self.queue);
            queue.push(task);
            queue.len() == 1
        };
        if !first {
            return; // the loop has been told already: this wake-up joins the batch
        }
        self.queued.store(true, Ordering::Release);
        match &self.route {
            Route::Native(remote) => {
                // A failure means the loop is closed: the task is dropped with the queue.
                let _ = remote.notify();
            }
            Route::Asyncio { loop_ref } => Python::attach(|py| {
                let scheduled = loop_ref.bind(py).call0().and_then(|event_loop| {
                    if event_loop.is_none() {
                        return Err(PyRuntimeError::new_err("Event loop is closed"));
                    }
                    let drain = Drain { wakeups: self.clone() };
                    event_loop.call_method1("call_soon_threadsafe", (drain,)).map(drop)
                });
                if let Err(e) = scheduled {
                    // The loop is closed or gone: nothing will poll these tasks again.
                    drop(std::mem::take(&mut *lock(&self.queue)));
                    if !e.is_instance_of::<PyRuntimeError>(py) {
                        e.write_unraisable(py, None);
                    }
                }
            }),
        }
    }

    /// Polls every task queued so far (tasks woken meanwhile wait for the next batch).
    pub(crate) fn poll_queued(&self, py: Python<'_>) {
        self.queued.store(false, Ordering::Release);
        let batch = std::mem::take(&mut *lock(&self.queue));
        for task in batch {
            task.poll(py);
        }
    }
}

/// `drain()`: what stock asyncio calls, once per batch, to poll a loop's woken tasks.
#[pyclass(frozen, module = "mioloop.bridge")]
struct Drain {
    wakeups: Arc<Wakeups>,
}

#[pymethods]
impl Drain {
    fn __call__(&self, py: Python<'_>) {
        self.wakeups.poll_queued(py);
    }
}

/// The wake-up queue of `event_loop`: a `mioloop.EventLoop`'s own, or one made for a stock asyncio
/// loop the first time and kept in a weak dictionary beside it (and, for the next call on the same
/// thread, in a thread-local: a loop runs on one thread, and the dictionary is a Python call).
fn wakeups_of(event_loop: &Bound<'_, PyAny>) -> PyResult<Arc<Wakeups>> {
    if let Ok(core) = event_loop.cast::<EventLoopCore>() {
        return Ok(core.get().wakeups().clone());
    }
    thread_local! {
        static LAST: std::cell::RefCell<Option<Arc<Wakeups>>> = const { std::cell::RefCell::new(None) };
    }
    let py = event_loop.py();
    let cached = LAST.with_borrow(|last| last.clone());
    if let Some(wakeups) = cached {
        if let Route::Asyncio { loop_ref } = &wakeups.route {
            if loop_ref.bind(py).call0()?.is(event_loop) {
                return Ok(wakeups);
            }
        }
    }
    static QUEUES: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let queues = QUEUES.get_or_try_init(py, || py.import("weakref")?.getattr("WeakKeyDictionary")?.call0().map(Bound::unbind))?.bind(py);
    let wakeups = match queues.call_method1("get", (event_loop,))?.cast::<Drain>() {
        Ok(drain) => drain.get().wakeups.clone(),
        Err(_) => {
            let loop_ref = py.import("weakref")?.getattr("ref")?.call1((event_loop,))?.unbind();
            let wakeups = Wakeups::new(Route::Asyncio { loop_ref });
            queues.set_item(event_loop, Bound::new(py, Drain { wakeups: wakeups.clone() })?)?;
            wakeups
        }
    };
    LAST.set(Some(wakeups.clone()));
    Ok(wakeups)
}

// ---- Rust future → Python awaitable -------------------------------------------------------------

/// A Rust future being driven for a Python future.
struct RustTask {
    /// `None` once it has finished, or was dropped because the Python side was cancelled.
    future: Mutex<Option<BoxedFuture>>,
    /// The Python side, resolved when the Rust future finishes.
    awaitable: Py<PyFuture>,
    wakeups: Arc<Wakeups>,
    /// Already in the queue: a second wake-up before the poll adds nothing.
    queued: AtomicBool,
}

impl Wake for RustTask {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.wakeups.push(self.clone());
        }
    }
}

impl RustTask {
    /// Polls once (on the loop thread, GIL held); resolves the Python future when it is done.
    fn poll(self: &Arc<Self>, py: Python<'_>) {
        self.queued.store(false, Ordering::Release);
        let waker = Waker::from(self.clone());
        let mut slot = lock(&self.future);
        let Some(future) = slot.as_mut() else { return };
        let polled = std::panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut Context::from_waker(&waker))));
        let outcome = match polled {
            Ok(Poll::Pending) => return,
            Ok(Poll::Ready(output)) => output.and_then(|convert| convert(py)),
            Err(panic) => Err(PyRuntimeError::new_err(format!("the Rust future panicked: {}", event_loop::executor::panic_message(panic.as_ref())))),
        };
        let finished = slot.take();
        drop(slot);
        drop(finished); // the future's own resources go now, before Python runs the callbacks
        let awaitable = self.awaitable.bind(py);
        if awaitable.get().done(py) {
            return; // cancelled meanwhile
        }
        let resolved = match outcome {
            Ok(value) => PyFuture::set_result(awaitable, value),
            Err(error) => PyFuture::set_exception(awaitable, error.value(py).as_any()),
        };
        if let Err(e) = resolved {
            e.write_unraisable(py, Some(awaitable.as_any()));
        }
    }
}

/// Exposes a Rust future to Python as a `mioloop.Future` on `event_loop` (which must be the loop
/// of the calling thread: the future is polled there).
///
/// The future is polled once before this returns: if it is ready, the Python future is already
/// done and `await` on it costs no loop turn. Otherwise its waker queues it on the loop, and the
/// loop polls it at the end of the turn in which it was woken (from any thread). Cancelling the
/// Python future drops the Rust future (on the loop thread).
pub fn into_awaitable<'py, F, T>(event_loop: &Bound<'py, PyAny>, future: F) -> PyResult<Bound<'py, PyFuture>>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    let py = event_loop.py();
    let debug = match event_loop.cast::<EventLoopCore>() {
        Ok(core) => core.get().debug_enabled(),
        Err(_) => event_loop.call_method0("get_debug")?.is_truthy()?,
    };
    let awaitable = Bound::new(py, PyFuture::pending(py, event_loop, debug)?)?;
    let future: BoxedFuture = Box::pin(async move {
        let value = future.await?;
        Ok(Box::new(move |py: Python<'_>| value.into_py_any(py)) as Box<dyn for<'a> FnOnce(Python<'a>) -> PyResult<Py<PyAny>> + Send>)
    });
    let task = Arc::new(RustTask { future: Mutex::new(Some(future)), awaitable: awaitable.clone().unbind(), wakeups: wakeups_of(event_loop)?, queued: AtomicBool::new(false) });
    task.poll(py);
    if !awaitable.get().done(py) {
        // Cancelling the Python side drops the Rust future. Weak: the Python future must not keep
        // the task alive (the task holds the Python future; whoever holds its waker holds the task).
        let task = Arc::downgrade(&task);
        let on_done = PyCFunction::new_closure(py, None, None, move |args, _kwargs| -> PyResult<()> {
            let future = args.get_item(0)?;
            if let Some(task) = task.upgrade().filter(|_| future.call_method0("cancelled").and_then(|c| c.is_truthy()).unwrap_or(false)) {
                let dropped = lock(&task.future).take();
                drop(dropped);
            }
            Ok(())
        })?;
        PyFuture::add_done_callback(&awaitable, on_done.into_any().unbind(), None)?;
    }
    Ok(awaitable)
}

// ---- Python awaitable → Rust future -------------------------------------------------------------

/// Where the Python side leaves its result for the Rust side, and the Rust waker to call.
#[derive(Default)]
struct Slot {
    result: Option<PyResult<Py<PyAny>>>,
    waker: Option<Waker>,
}

/// A Rust future resolving to a Python awaitable's result (or its exception, as a `PyErr`).
///
/// Made by [`from_awaitable`]. It can be awaited on any thread and by any executor; dropping it
/// before it is done cancels the Python task.
pub struct AwaitPython {
    slot: Arc<Mutex<Slot>>,
    /// The task wrapping the awaitable, and its loop, to cancel it if this is dropped early.
    task: Option<(Py<PyAny>, Py<PyAny>)>,
}

impl Future for AwaitPython {
    type Output = PyResult<Py<PyAny>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = lock(&self.slot);
        match slot.result.take() {
            Some(result) => {
                drop(slot);
                self.task = None;
                Poll::Ready(result)
            }
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Drop for AwaitPython {
    fn drop(&mut self) {
        if let Some((task, event_loop)) = self.task.take() {
            // Possibly on another thread: the cancellation is handed to the loop.
            Python::attach(|py| {
                let cancel = task.bind(py).getattr("cancel");
                if let Ok(cancel) = cancel {
                    // A closed loop has nothing left to cancel.
                    let _ = event_loop.bind(py).call_method1("call_soon_threadsafe", (cancel,));
                }
            });
        }
    }
}

/// Starts a Python awaitable on the running loop (`asyncio.ensure_future`) and returns a Rust
/// future for its result. Call it on the loop's thread; await the result anywhere.
pub fn from_awaitable(awaitable: &Bound<'_, PyAny>) -> PyResult<AwaitPython> {
    let py = awaitable.py();
    let asyncio = py.import("asyncio")?;
    let task = asyncio.call_method1("ensure_future", (awaitable,))?;
    let event_loop = task.call_method0("get_loop")?;
    let slot = Arc::new(Mutex::new(Slot::default()));
    let filler = slot.clone();
    let on_done = PyCFunction::new_closure(py, None, None, move |args, _kwargs| -> PyResult<()> {
        let result = args.get_item(0)?.call_method0("result").map(Bound::unbind);
        let waker = {
            let mut slot = lock(&filler);
            slot.result = Some(result);
            slot.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    })?;
    task.call_method1("add_done_callback", (on_done,))?;
    Ok(AwaitPython { slot, task: Some((task.unbind(), event_loop.unbind())) })
}

// ---- mioloop.bridge: Rust futures for Python to await --------------------------------------------

/// A one-shot channel: the Rust future of a value another thread will send (no runtime needed).
struct Oneshot<T> {
    shared: Arc<Mutex<(Option<T>, Option<Waker>)>>,
}

impl<T> Future for Oneshot<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut shared = lock(&self.shared);
        match shared.0.take() {
            Some(value) => Poll::Ready(value),
            None => {
                shared.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// Sends `value` into a [`Oneshot`], waking whoever awaits it.
fn send<T>(shared: &Mutex<(Option<T>, Option<Waker>)>, value: T) {
    let waker = {
        let mut shared = lock(shared);
        shared.0 = Some(value);
        shared.1.take()
    };
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// Returns `Pending` once, waking itself: the Rust `sleep(0)`.
fn yield_now() -> impl Future<Output = ()> {
    let mut yielded = false;
    std::future::poll_fn(move |cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
}

/// `asyncio.get_running_loop()`, through asyncio's C `_get_running_loop`, looked up once.
pub(crate) fn running_loop(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let get = GET_RUNNING_LOOP.get_or_try_init(py, || py.import("asyncio.events")?.getattr("_get_running_loop").map(Bound::unbind))?;
    let event_loop = get.bind(py).call0()?;
    if event_loop.is_none() {
        return Err(PyRuntimeError::new_err("no running event loop"));
    }
    Ok(event_loop)
}

/// `await ready(value)`: a Rust future that is ready at once.
#[pyfunction]
pub fn ready(py: Python<'_>, value: Py<PyAny>) -> PyResult<Bound<'_, PyFuture>> {
    into_awaitable(&running_loop(py)?, async move { Ok(value) })
}

/// The same, as a coroutine of pyo3's `experimental-async` (for the comparison in *Measured*).
#[pyfunction]
pub async fn ready_pyo3(value: Py<PyAny>) -> Py<PyAny> {
    value
}

/// `await after(seconds, value)`: a Rust future completed by another OS thread after `seconds`.
#[pyfunction]
pub fn after(py: Python<'_>, seconds: f64, value: Py<PyAny>) -> PyResult<Bound<'_, PyFuture>> {
    Ok(after_many(py, seconds, vec![value])?.remove(0))
}

/// Futures that one OS thread completes together after `seconds`, one per value: the loop is
/// woken once for the whole batch.
#[pyfunction]
pub fn after_many(py: Python<'_>, seconds: f64, values: Vec<Py<PyAny>>) -> PyResult<Vec<Bound<'_, PyFuture>>> {
    let delay = std::time::Duration::try_from_secs_f64(seconds).map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("seconds: {e}")))?;
    let event_loop = running_loop(py)?;
    let mut channels = Vec::new();
    let mut awaitables = Vec::new();
    for _ in &values {
        let shared = Arc::new(Mutex::new((None, None)));
        awaitables.push(into_awaitable(&event_loop, { let oneshot = Oneshot { shared: shared.clone() }; async move { Ok::<Py<PyAny>, PyErr>(oneshot.await) } })?);
        channels.push(shared);
    }
    std::thread::spawn(move || {
        std::thread::sleep(delay);
        for (channel, value) in channels.iter().zip(values) {
            send(channel, value);
        }
    });
    Ok(awaitables)
}

/// `await relay(awaitable)`: a Rust future that awaits a Python awaitable and returns its result.
#[pyfunction]
pub fn relay<'py>(awaitable: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyFuture>> {
    let inner = from_awaitable(awaitable)?;
    into_awaitable(&running_loop(awaitable.py())?, inner)
}

/// A Rust future that yields once to the loop and then panics with `message`.
#[pyfunction]
pub fn panics(py: Python<'_>, message: String) -> PyResult<Bound<'_, PyFuture>> {
    into_awaitable(&running_loop(py)?, async move {
        yield_now().await;
        if !message.is_empty() {
            panic!("{message}");
        }
        Ok(())
    })
}

/// A Rust future that never finishes and calls `on_drop()` when it is dropped.
#[pyfunction]
pub fn forever(py: Python<'_>, on_drop: Py<PyAny>) -> PyResult<Bound<'_, PyFuture>> {
    struct CallOnDrop(Py<PyAny>);
    impl Drop for CallOnDrop {
        fn drop(&mut self) {
            Python::attach(|py| {
                if let Err(e) = self.0.call0(py) {
                    e.write_unraisable(py, None);
                }
            });
        }
    }
    let guard = CallOnDrop(on_drop);
    into_awaitable(&running_loop(py)?, async move {
        let _guard = guard;
        std::future::pending::<()>().await;
        Ok(())
    })
}
