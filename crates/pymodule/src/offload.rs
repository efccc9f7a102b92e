//! `mioloop.offload`: Rust work on real threads, outside the interpreter, awaited from asyncio.
//!
//! Taught in the chapters *The offload pool* and *Cancellation, panics, shutdown and backpressure*
//! (`book/src/gil-free-offload/`). The pool is the pure-Rust `offload` crate; this module adds:
//!
//! - [`Buffer`]: a Python buffer (bytes, bytearray, memoryview, ...) borrowed without copying,
//!   readable from any thread, released on the loop's thread with the GIL;
//! - [`run_kernel`]: runs any [`Kernel`] on a pool and returns a `mioloop.Future` on the running
//!   loop, completed through the bridge of Part IV (one hop onto the loop, batched);
//! - [`Pool`], the built-in kernels (`sha256`, `crc32`, `compress`, `count_primes`, and `empty`
//!   and `panics` for measuring and teaching), and `Executor`, a `concurrent.futures.Executor` on
//!   the pool's threads for `loop.run_in_executor` (defined in `offload.py`).
//!
//! A crate of yours adds a kernel by implementing [`Kernel`] and calling [`run_kernel`] from a
//! `#[pyfunction]`: `examples/histogram-kernel` does exactly that.

use crate::bridge::{into_awaitable, running_loop};
use crate::future::Future as PyFuture;
use offload::{Config, JobError};
use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::{PyBufferError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// What a kernel implements, and what it is given: re-exported so a kernel crate needs only this one.
pub use offload::{Cancel, Cancelled, Kernel};

// ---- Borrowed buffers -----------------------------------------------------------------------------

/// A Python object's bytes, borrowed through the buffer protocol: no copy, and the exporter keeps
/// the memory where it is (a `bytearray` cannot be resized) until the `Buffer` is dropped.
///
/// It may be read on any thread without the GIL. Dropping it releases the export, which needs the
/// GIL: [`run_kernel`] hands kernels back to the loop's thread to be dropped there.
/// A writable exporter (`bytearray`) can still be written by Python while a worker reads it; the
/// kernel then sees some mix of old and new bytes. Pass `bytes` for a stable input.
pub struct Buffer(PyUntypedBuffer);

impl Buffer {
    /// Borrows `object`'s bytes: `TypeError` if it has no buffer, `BufferError` if they are not
    /// one contiguous block.
    pub fn borrow(object: &Bound<'_, PyAny>) -> PyResult<Buffer> {
        let buffer = PyUntypedBuffer::get(object).map_err(|_| PyTypeError::new_err(format!("a bytes-like object is required, not '{}'", object.get_type().name().map(|n| n.to_string()).unwrap_or_default())))?;
        if !buffer.is_c_contiguous() {
            return Err(PyBufferError::new_err("the buffer is not contiguous: pass bytes(...) or a contiguous memoryview"));
        }
        Ok(Buffer(buffer))
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        let (pointer, length) = (self.0.buf_ptr() as *const u8, self.0.len_bytes());
        if length == 0 {
            return &[];
        }
        // SAFETY: a C-contiguous buffer is `len_bytes` bytes at `buf_ptr`, valid and fixed in place
        // while the export is held, which is as long as `self` lives.
        unsafe { std::slice::from_raw_parts(pointer, length) }
    }
}

impl<'a, 'py> FromPyObject<'a, 'py> for Buffer {
    type Error = PyErr;

    fn extract(object: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        Buffer::borrow(&object)
    }
}

// ---- Running kernels -------------------------------------------------------------------------------

/// How a failed job reaches Python.
fn job_error(error: JobError) -> PyErr {
    match error {
        JobError::Cancelled => pyo3::exceptions::asyncio::CancelledError::new_err("the offload job was cancelled"),
        JobError::Panicked(message) => PyRuntimeError::new_err(format!("the kernel panicked: {message}")),
        JobError::ShutDown => shut_down(),
    }
}

fn shut_down() -> PyErr {
    PyRuntimeError::new_err("cannot schedule new jobs after shutdown")
}

/// Runs `kernel` on `pool` (the default pool if `None`) and returns a `mioloop.Future` of its
/// output on the running loop.
///
/// The job is queued before this returns if the pool has room; otherwise the future first waits
/// for room (backpressure without blocking the loop). Cancelling the future cancels the job: a
/// queued job is removed, a running one sees its [`Cancel`] flag. The kernel comes back to the
/// loop's thread and is dropped there, with its inputs (so a [`Buffer`] is released with the GIL).
pub fn run_kernel<'py, K>(py: Python<'py>, pool: Option<&Bound<'py, Pool>>, kernel: K) -> PyResult<Bound<'py, PyFuture>>
where
    K: Kernel,
    K::Output: for<'a> IntoPyObject<'a>,
{
    let pool = match pool {
        Some(pool) => pool.get().inner.clone(),
        None => default_pool(py)?.get().inner.clone(),
    };
    if !pool.stats().open {
        return Err(shut_down());
    }
    into_awaitable(&running_loop(py)?, async move {
        let (kernel, output) = pool.run_kernel(kernel).await.map_err(job_error)?;
        drop(kernel); // here, on the loop's thread, with the GIL
        Ok(output)
    })
}

// ---- The pool --------------------------------------------------------------------------------------

/// `mioloop.offload.Pool(workers=None, capacity=None, *, nice=10)`: a bounded pool of Rust worker
/// threads. `workers` defaults to the cores this process may use, `capacity` (jobs waiting for a
/// worker) to four per worker. `nice` lowers the workers' priority on Linux by that many steps
/// below the thread that creates the pool (0 = the same; nice values stop at 19, the lowest): at
/// the default 10 the loop's thread, waking for a timer or a socket, takes a core from a worker at
/// once (measured in *Measured: offload*).
#[pyclass(frozen, module = "mioloop.offload", name = "Pool")]
pub struct Pool {
    inner: offload::Pool,
}

/// A watch on every pool whose workers may still run, reachable from Python or not: `atexit`
/// drains and joins them all before the interpreter finalizes, because a worker that takes the
/// GIL during finalization (to wake a stock loop, or to release a buffer) is killed mid-call.
/// A watch does not keep its pool open: a pool Python forgets still shuts down, and its watch
/// is dropped once its workers have exited.
static LIVE: Mutex<Vec<offload::Watch>> = Mutex::new(Vec::new());

/// Set by `_shutdown_all`: a pool started later (by an `atexit` handler that runs after it) could
/// not be joined, so none may start (as `concurrent.futures` refuses work at exit).
static EXITING: AtomicBool = AtomicBool::new(false);

fn live() -> std::sync::MutexGuard<'static, Vec<offload::Watch>> {
    LIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Registered with `atexit` by the module: shuts every pool down and waits for its workers
/// (queued jobs still finish), with the GIL released so that they can deliver.
#[pyfunction]
pub fn _shutdown_all(py: Python<'_>) {
    EXITING.store(true, Ordering::SeqCst);
    let pools = std::mem::take(&mut *live());
    py.detach(|| pools.iter().for_each(offload::Watch::join));
}

#[pymethods]
impl Pool {
    #[new]
    #[pyo3(signature = (workers = None, capacity = None, *, nice = 10))]
    fn new(workers: Option<usize>, capacity: Option<usize>, nice: i32) -> PyResult<Self> {
        let default = Config::default();
        let workers = workers.unwrap_or(default.workers);
        let on_thread: offload::ThreadHook = std::sync::Arc::new(ThreadState::keep);
        let config = Config { workers, capacity: capacity.unwrap_or(4 * workers), nice, on_thread: Some(on_thread), ..default };
        if config.workers == 0 || config.capacity == 0 {
            return Err(PyValueError::new_err("workers and capacity must be at least 1"));
        }
        if !(0..=19).contains(&config.nice) {
            return Err(PyValueError::new_err("nice must be between 0 and 19 (steps below the creating thread's priority)"));
        }
        if EXITING.load(Ordering::SeqCst) {
            return Err(PyRuntimeError::new_err("cannot start a pool after interpreter shutdown"));
        }
        let inner = offload::Pool::new(config)?;
        let mut live = live();
        live.retain(|watch| !watch.is_finished());
        live.push(inner.watch());
        Ok(Pool { inner })
    }

    /// Worker threads.
    #[getter]
    fn workers(&self) -> usize {
        self.inner.stats().workers
    }

    /// Jobs that may wait for a worker.
    #[getter]
    fn capacity(&self) -> usize {
        self.inner.stats().capacity
    }

    /// Jobs waiting for a worker now.
    #[getter]
    fn queued(&self) -> usize {
        self.inner.stats().queued
    }

    /// Jobs on a worker now.
    #[getter]
    fn running(&self) -> usize {
        self.inner.stats().running
    }

    /// Jobs finished since the pool started.
    #[getter]
    fn completed(&self) -> u64 {
        self.inner.stats().completed
    }

    /// Callers waiting for room in the queue.
    #[getter]
    fn waiting(&self) -> usize {
        self.inner.stats().waiting
    }

    /// Whether `shutdown()` was called.
    #[getter]
    fn closed(&self) -> bool {
        !self.inner.stats().open
    }

    /// Stops taking jobs; queued and running jobs still finish and deliver their results (unless
    /// `cancel_queued`: then queued jobs are removed and their awaiters get `CancelledError`).
    /// With `wait`, returns when the workers have exited (the GIL is released meanwhile).
    #[pyo3(signature = (wait = true, *, cancel_queued = false))]
    fn shutdown(&self, py: Python<'_>, wait: bool, cancel_queued: bool) {
        // Close first: once closed, no caller waiting for room can slip a job in after the purge.
        self.inner.shutdown();
        if cancel_queued {
            self.inner.cancel_queued();
        }
        if wait {
            py.detach(|| self.inner.join());
        }
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) {
        self.shutdown(py, true, false);
    }

    fn __repr__(&self) -> String {
        let stats = self.inner.stats();
        let state = if stats.open { "open" } else { "closed" };
        format!("<mioloop.offload.Pool workers={} capacity={} queued={} running={} completed={} {state}>", stats.workers, stats.capacity, stats.queued, stats.running, stats.completed)
    }

    /// `executor.submit(fn, *args, **kwargs)` for `Executor`: runs a Python callable on a worker
    /// (with the GIL, like any Python code) and completes the `concurrent.futures.Future`.
    /// Waits, with the GIL released, while the queue is full.
    fn _submit_call(&self, py: Python<'_>, future: Py<PyAny>, function: Py<PyAny>, args: Py<PyTuple>, kwargs: Option<Py<PyDict>>) -> PyResult<()> {
        let call = PythonCall { future, function, args, kwargs, ran: false };
        let slot = py.detach(|| offload::block_on(self.inner.reserve())).map_err(job_error)?;
        slot.submit(move |_cancel| call.run()).detach();
        Ok(())
    }
}

/// A worker's Python thread state, kept for the worker's life. Taking the GIL on a thread without
/// one (`PyGILState_Ensure`) creates a thread state and releasing it destroys it again, which costs
/// more than the GIL itself; a worker takes the GIL to wake a stock asyncio loop, to run an
/// `Executor` call, or to release a buffer of a cancelled job.
struct ThreadState(pyo3::ffi::PyGILState_STATE);

impl ThreadState {
    fn keep() -> Box<dyn std::any::Any> {
        // SAFETY: Ensure then SaveThread leaves this thread with a thread state and without the GIL.
        unsafe {
            if pyo3::ffi::Py_IsInitialized() == 0 {
                return Box::new(());
            }
            let state = pyo3::ffi::PyGILState_Ensure();
            pyo3::ffi::PyEval_SaveThread();
            Box::new(ThreadState(state))
        }
    }
}

impl Drop for ThreadState {
    fn drop(&mut self) {
        // SAFETY: undoes `keep` on the same thread: take the GIL back with our state, then release.
        unsafe {
            if pyo3::ffi::Py_IsInitialized() != 0 {
                pyo3::ffi::PyEval_RestoreThread(pyo3::ffi::PyGILState_GetThisThreadState());
                pyo3::ffi::PyGILState_Release(self.0);
            }
        }
    }
}

/// A Python call queued by `Executor.submit`. If it never runs (its queued job was cancelled by
/// `shutdown(cancel_futures=True)`), dropping it cancels its `concurrent.futures.Future`.
struct PythonCall {
    future: Py<PyAny>,
    function: Py<PyAny>,
    args: Py<PyTuple>,
    kwargs: Option<Py<PyDict>>,
    ran: bool,
}

impl PythonCall {
    fn run(mut self) {
        self.ran = true;
        Python::attach(|py| {
            let future = self.future.bind(py);
            // False if the future was cancelled while queued: then the call is skipped.
            if !future.call_method0("set_running_or_notify_cancel").and_then(|running| running.is_truthy()).unwrap_or(false) {
                return;
            }
            let outcome = self.function.bind(py).call(self.args.bind(py), self.kwargs.as_ref().map(|kwargs| kwargs.bind(py)));
            let delivered = match outcome {
                Ok(value) => future.call_method1("set_result", (value,)),
                Err(error) => future.call_method1("set_exception", (error.into_value(py),)),
            };
            if let Err(error) = delivered {
                error.write_unraisable(py, Some(future));
            }
        });
    }
}

impl Drop for PythonCall {
    fn drop(&mut self) {
        if !self.ran {
            // Never ran: the queued job was cancelled. `try_attach`: nothing to do at exit.
            let _ = Python::try_attach(|py| self.future.bind(py).call_method0("cancel").map(drop));
        }
    }
}

/// The pool the kernels use when none is given: one worker per core, created on first use, shut
/// down (queued jobs still finish) when the interpreter exits, like every pool.
#[pyfunction]
pub fn default_pool(py: Python<'_>) -> PyResult<&Bound<'_, Pool>> {
    static DEFAULT: PyOnceLock<Py<Pool>> = PyOnceLock::new();
    DEFAULT.get_or_try_init(py, || Py::new(py, Pool::new(None, None, 10)?)).map(|pool| pool.bind(py))
}

// ---- The built-in kernels ---------------------------------------------------------------------------

/// SHA-256 of a buffer.
struct Sha256(Buffer);

impl Kernel for Sha256 {
    type Output = Vec<u8>;
    fn run(&self, cancel: &Cancel) -> Result<Vec<u8>, Cancelled> {
        offload::kernels::sha256(self.0.as_bytes(), cancel).map(|digest| digest.to_vec())
    }
}

/// CRC-32 of a buffer.
struct Crc32(Buffer);

impl Kernel for Crc32 {
    type Output = u32;
    fn run(&self, cancel: &Cancel) -> Result<u32, Cancelled> {
        offload::kernels::crc32(self.0.as_bytes(), cancel)
    }
}

/// zlib compression of a buffer.
struct Compress(Buffer, u32);

impl Kernel for Compress {
    type Output = Vec<u8>;
    fn run(&self, cancel: &Cancel) -> Result<Vec<u8>, Cancelled> {
        offload::kernels::compress(self.0.as_bytes(), self.1, cancel)
    }
}

/// Primes below a limit.
struct CountPrimes(u64);

impl Kernel for CountPrimes {
    type Output = u64;
    fn run(&self, cancel: &Cancel) -> Result<u64, Cancelled> {
        offload::kernels::count_primes(self.0, cancel)
    }
}

/// No work: the round trip alone.
struct Empty;

impl Kernel for Empty {
    /// Always `None`, which Python sees as `None` (pyo3 turns `()` into an empty tuple).
    type Output = Option<()>;
    fn run(&self, _cancel: &Cancel) -> Result<Option<()>, Cancelled> {
        Ok(None)
    }
}

/// A kernel that panics with a message.
struct Panics(String);

impl Kernel for Panics {
    type Output = Option<()>;
    fn run(&self, _cancel: &Cancel) -> Result<Option<()>, Cancelled> {
        panic!("{}", self.0)
    }
}

/// `await sha256(data)`: the SHA-256 digest (32 bytes) of a bytes-like object, computed on a worker.
#[pyfunction]
#[pyo3(signature = (data, *, pool = None))]
pub fn sha256<'py>(py: Python<'py>, data: Buffer, pool: Option<&Bound<'py, Pool>>) -> PyResult<Bound<'py, PyFuture>> {
    run_kernel(py, pool, Sha256(data))
}

/// `await crc32(data)`: the CRC-32 of a bytes-like object, as `zlib.crc32(data)`.
#[pyfunction]
#[pyo3(signature = (data, *, pool = None))]
pub fn crc32<'py>(py: Python<'py>, data: Buffer, pool: Option<&Bound<'py, Pool>>) -> PyResult<Bound<'py, PyFuture>> {
    run_kernel(py, pool, Crc32(data))
}

/// `await compress(data, level=6)`: zlib-compressed bytes, as `zlib.compress(data, level)`;
/// `level` from 0 (store) to 9 (smallest), or -1 for the default (6).
#[pyfunction]
#[pyo3(signature = (data, level = -1, *, pool = None))]
pub fn compress<'py>(py: Python<'py>, data: Buffer, level: i32, pool: Option<&Bound<'py, Pool>>) -> PyResult<Bound<'py, PyFuture>> {
    let level = match level {
        -1 => 6,
        0..=9 => level as u32,
        _ => return Err(PyValueError::new_err(format!("compression level must be -1 or between 0 and 9, not {level}"))),
    };
    run_kernel(py, pool, Compress(data, level))
}

/// `await count_primes(limit)`: how many primes are below `limit` — pure CPU work that grows
/// with `limit` (about 1 ms per 2 million on a current core).
#[pyfunction]
#[pyo3(signature = (limit, *, pool = None))]
pub fn count_primes<'py>(py: Python<'py>, limit: u64, pool: Option<&Bound<'py, Pool>>) -> PyResult<Bound<'py, PyFuture>> {
    run_kernel(py, pool, CountPrimes(limit))
}

/// `await empty()`: a job that does nothing — the cost of the trip to a worker and back.
#[pyfunction]
#[pyo3(signature = (*, pool = None))]
pub fn empty<'py>(py: Python<'py>, pool: Option<&Bound<'py, Pool>>) -> PyResult<Bound<'py, PyFuture>> {
    run_kernel(py, pool, Empty)
}

/// `await panics(message)`: a kernel that panics on its worker; the awaiter gets `RuntimeError`.
#[pyfunction]
#[pyo3(signature = (message, *, pool = None))]
pub fn panics<'py>(py: Python<'py>, message: String, pool: Option<&Bound<'py, Pool>>) -> PyResult<Bound<'py, PyFuture>> {
    run_kernel(py, pool, Panics(message))
}
