//! `loop.sock_recv` and `loop.sock_sendall` of mioloop, native from asyncio's checks to the clean-up.
//!
//! Taught in *Sockets on the loop*, measured in *Benchmarks*.
//!
//! asyncio's versions are coroutines of Python: each tries its system call at once and, when it
//! would block, makes a future, adds a reader (or writer) whose callback retries the call, and adds
//! a done callback to the future that removes the reader, on success and on cancellation alike
//! (bpo-30064). These functions do the same, step for step, with the callbacks in Rust: the
//! immediate attempt (no `BlockingIOError` raised and caught), the retry, and the clean-up, which,
//! like asyncio's, leaves the descriptor alone if its handle was replaced (cancelled) meanwhile.
//! asyncio's checks come first, natively too: an SSL socket is refused, so is a blocking socket in
//! debug mode, and a call that has to wait is refused a socket that a transport owns
//! (`EventLoopCore::ensure_fd_no_transport`, which raises no `KeyError` where asyncio's does).
//! `EventLoop.sock_recv` and `sock_sendall` (`event_loop.py`) stay coroutines, as asyncio documents
//! them, and await what these return: a `mioloop.Future`, done at once when the socket did not have
//! to wait.

use crate::cmethod::{self, MethodDef};
use crate::event_loop::{EventLoopCore, Handle};
use crate::future::Future;
use crate::transport::{Io, recv_bytes, send};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::sync::PyOnceLock;
use pyo3::prelude::*;
use pyo3::{PyClass, PyClassInitializer};
use pyo3::types::PyType;
use pyo3::{buffer::PyUntypedBuffer, ffi, intern};
use std::os::fd::RawFd;
use std::sync::{Mutex, OnceLock};

/// The socket's descriptor, `-1` once it is closed, for which the system call then fails with
/// `EBADF`, the `OSError` asyncio's `sock.recv`/`sock.send` raise.
fn socket_fd(sock: &Bound<'_, PyAny>) -> PyResult<RawFd> {
    sock.call_method0(intern!(sock.py(), "fileno"))?.extract()
}

/// asyncio's checks before any `sock_*` call (`_check_ssl_socket` and, in debug mode, the
/// blocking-socket check), with its exceptions and messages.
fn check_socket(event_loop: &Bound<'_, EventLoopCore>, sock: &Bound<'_, PyAny>) -> PyResult<()> {
    let py = event_loop.py();
    static SSL_SOCKET: PyOnceLock<Option<Py<PyType>>> = PyOnceLock::new();
    // `ssl` may be missing from a Python built without OpenSSL; asyncio then skips the check too.
    let ssl_socket = SSL_SOCKET.get_or_init(py, || py.import("ssl").and_then(|ssl| Ok(ssl.getattr("SSLSocket")?.cast_into::<PyType>()?.unbind())).ok());
    if let Some(ssl_socket) = ssl_socket {
        if sock.is_instance(ssl_socket.bind(py))? {
            return Err(PyTypeError::new_err("Socket cannot be of type SSLSocket"));
        }
    }
    if event_loop.get().debug_enabled() && !sock.call_method0(intern!(py, "gettimeout"))?.eq(0)? {
        return Err(PyValueError::new_err("the socket must be non-blocking"));
    }
    Ok(())
}

/// A pending future on `event_loop`, after asyncio's check that no transport owns `fd`.
fn pending_future<'py>(event_loop: &Bound<'py, EventLoopCore>, fd: RawFd) -> PyResult<Bound<'py, Future>> {
    let py = event_loop.py();
    EventLoopCore::ensure_fd_no_transport(event_loop, fd, fd.into_pyobject(py)?.as_any())?;
    Bound::new(py, Future::pending(py, event_loop.as_any(), event_loop.get().debug_enabled())?)
}

/// A future that is already done, with `result`.
fn done_future<'py>(event_loop: &Bound<'py, EventLoopCore>, result: Bound<'py, PyAny>) -> PyResult<Bound<'py, Future>> {
    let py = event_loop.py();
    let future = Bound::new(py, Future::pending(py, event_loop.as_any(), event_loop.get().debug_enabled())?)?;
    Future::set_result(&future, result.unbind())?;
    Ok(future)
}

/// What a waiting call's reader or writer knows: its future, its descriptor, and the done
/// callback that would remove it if the future ended another way (cancelled).
struct Waiting {
    future: Py<Future>,
    event_loop: Py<EventLoopCore>,
    fd: RawFd,
    write: bool,
    clean_up: OnceLock<Py<CleanUp>>,
}

impl Waiting {
    fn new(event_loop: &Bound<'_, EventLoopCore>, future: &Bound<'_, Future>, fd: RawFd, write: bool) -> Self {
        Waiting { future: future.clone().unbind(), event_loop: event_loop.clone().unbind(), fd, write, clean_up: OnceLock::new() }
    }

    fn is_over(&self, py: Python<'_>) -> bool {
        self.future.get().done(py)
    }

    /// Ends the call from its own reader or writer, which is the one registered (a replaced one is
    /// cancelled and never runs): removes it at once and takes back the clean-up, so that finishing
    /// schedules nothing but the task's wake-up.
    fn finish(&self, py: Python<'_>, outcome: Result<Py<PyAny>, PyErr>) -> PyResult<()> {
        let fd = self.fd.into_pyobject(py)?.into_any();
        EventLoopCore::unwatch(self.event_loop.bind(py), &fd, self.write)?;
        let future = self.future.bind(py);
        if let Some(clean_up) = self.clean_up.get() {
            Future::remove_done_callback(future, clean_up.bind(py).as_any())?;
        }
        match outcome {
            Ok(result) => Future::set_result(future, result),
            Err(error) => Future::set_exception(future, error.value(py).as_any()),
        }
    }
}

/// A waiting call's reader or writer.
trait Retry: PyClass<Frozen = pyo3::pyclass::boolean_struct::True> + Sync + Into<PyClassInitializer<Self>> {
    fn waiting(&self) -> &Waiting;
}

/// Registers `retry` as the reader or writer of its descriptor, and the done callback that
/// removes it if its future ends any other way than through it (cancelled).
fn wait_with<T: Retry>(event_loop: &Bound<'_, EventLoopCore>, retry: T) -> PyResult<()> {
    let py = event_loop.py();
    let waiting = retry.waiting();
    let (fd, write, future) = (waiting.fd, waiting.write, waiting.future.clone_ref(py));
    let retry = Bound::new(py, retry)?;
    let fd_object = fd.into_pyobject(py)?.into_any();
    let handle = EventLoopCore::watch(event_loop, &fd_object, retry.as_any(), &crate::event_loop::empty_tuple(py), write)?;
    let clean_up = Py::new(py, CleanUp { event_loop: event_loop.clone().unbind(), fd, handle, write })?;
    Future::add_done_callback(future.bind(py), clean_up.clone_ref(py).into_any(), None)?;
    let _ = retry.get().waiting().clean_up.set(clean_up);
    Ok(())
}

/// `loop.sock_recv(sock, n)`: a future of the bytes.
pub fn sock_recv<'py>(event_loop: &Bound<'py, EventLoopCore>, sock: &Bound<'py, PyAny>, n: isize) -> PyResult<Bound<'py, Future>> {
    let py = event_loop.py();
    check_socket(event_loop, sock)?;
    let n = usize::try_from(n).map_err(|_| PyValueError::new_err("negative buffersize in recv"))?;
    let fd = socket_fd(sock)?;
    match recv_bytes(py, fd, n) {
        Ok(data) => return done_future(event_loop, data.into_any()),
        Err(Io::Failed(error)) => return Err(error),
        Err(_) => {} // would block: wait for the socket
    }
    let future = pending_future(event_loop, fd)?;
    wait_with(event_loop, RetryRecv { waiting: Waiting::new(event_loop, &future, fd, false), sock: sock.clone().unbind(), n })?;
    Ok(future)
}

/// `loop.sock_sendall(sock, data)`: a future of None once the kernel has taken every byte. What
/// the first attempt did not send is copied, so a bytearray changed after the call does not change
/// what is sent.
pub fn sock_sendall<'py>(event_loop: &Bound<'py, EventLoopCore>, sock: &Bound<'py, PyAny>, data: &Bound<'py, PyAny>) -> PyResult<Bound<'py, Future>> {
    let py = event_loop.py();
    check_socket(event_loop, sock)?;
    let view = PyUntypedBuffer::get(data)?;
    // The export is released with the token on every way out (see `cmethod::enter`).
    let result = send_from_view(event_loop, sock, &view);
    view.release(py);
    result
}

fn send_from_view<'py>(event_loop: &Bound<'py, EventLoopCore>, sock: &Bound<'py, PyAny>, view: &PyUntypedBuffer) -> PyResult<Bound<'py, Future>> {
    let py = event_loop.py();
    if !view.is_c_contiguous() {
        return Err(pyo3::exceptions::PyBufferError::new_err("the buffer is not contiguous"));
    }
    // SAFETY: a C-contiguous export of `len_bytes` bytes, held by the caller while `bytes` is used.
    let bytes = unsafe { std::slice::from_raw_parts(view.buf_ptr() as *const u8, view.len_bytes()) };
    let fd = socket_fd(sock)?;
    let sent = match if bytes.is_empty() { Io::Done(0) } else { send(fd, bytes) } {
        Io::Done(k) => k,
        Io::WouldBlock => 0,
        Io::Failed(error) => return Err(error),
    };
    if sent == bytes.len() {
        return done_future(event_loop, py.None().into_bound(py));
    }
    let future = pending_future(event_loop, fd)?;
    let rest = Mutex::new(bytes[sent..].to_vec());
    wait_with(event_loop, RetrySend { waiting: Waiting::new(event_loop, &future, fd, true), sock: sock.clone().unbind(), rest })?;
    Ok(future)
}

/// The reader of a waiting `sock_recv`: retries the `recv` each time the socket is readable.
#[pyclass(frozen, module = "mioloop")]
struct RetryRecv {
    waiting: Waiting,
    /// Kept alive while the future waits, as asyncio's callback keeps it.
    #[allow(dead_code)]
    sock: Py<PyAny>,
    n: usize,
}

impl Retry for RetryRecv {
    fn waiting(&self) -> &Waiting {
        &self.waiting
    }
}

#[pymethods]
impl RetryRecv {
    fn __call__(&self, py: Python<'_>) -> PyResult<()> {
        if self.waiting.is_over(py) {
            return Ok(());
        }
        match recv_bytes(py, self.waiting.fd, self.n) {
            Ok(data) => self.waiting.finish(py, Ok(data.into_any().unbind())),
            Err(Io::Failed(error)) => self.waiting.finish(py, Err(error)),
            Err(_) => Ok(()), // woken, but nothing to read after all: wait again
        }
    }
}

/// The writer of a waiting `sock_sendall`: sends what is left each time the socket is writable.
#[pyclass(frozen, module = "mioloop")]
struct RetrySend {
    waiting: Waiting,
    #[allow(dead_code)]
    sock: Py<PyAny>,
    rest: Mutex<Vec<u8>>,
}

impl Retry for RetrySend {
    fn waiting(&self) -> &Waiting {
        &self.waiting
    }
}

#[pymethods]
impl RetrySend {
    fn __call__(&self, py: Python<'_>) -> PyResult<()> {
        if self.waiting.is_over(py) {
            return Ok(());
        }
        let outcome = {
            let mut rest = self.rest.lock().unwrap_or_else(|e| e.into_inner());
            match send(self.waiting.fd, &rest) {
                Io::Done(k) => {
                    rest.drain(..k);
                    rest.is_empty().then(|| Ok(py.None()))
                }
                Io::WouldBlock => None,
                Io::Failed(error) => Some(Err(error)),
            }
        };
        match outcome {
            Some(outcome) => self.waiting.finish(py, outcome),
            None => Ok(()),
        }
    }
}

/// The done callback that removes a waiting call's reader or writer, unless its handle was
/// cancelled, which means another callback has replaced it (asyncio's `_sock_read_done`).
#[pyclass(frozen, module = "mioloop")]
struct CleanUp {
    event_loop: Py<EventLoopCore>,
    fd: RawFd,
    handle: Py<Handle>,
    write: bool,
}

#[pymethods]
impl CleanUp {
    fn __call__(&self, py: Python<'_>, _future: &Bound<'_, PyAny>) -> PyResult<()> {
        if self.handle.get().cancelled(py) {
            return Ok(());
        }
        let fd = self.fd.into_pyobject(py)?.into_any();
        EventLoopCore::unwatch(self.event_loop.bind(py), &fd, self.write).map(drop)
    }
}

static SOCK_RECV: MethodDef = MethodDef::fastcall(
    c"_sock_recv_native",
    c"_sock_recv_native($self, sock, n, /)\n--\n\nA future of the bytes of one recv(n) (`sock_recv` awaits it).",
    sock_recv_entry,
);

static SOCK_SENDALL: MethodDef = MethodDef::fastcall(
    c"_sock_sendall_native",
    c"_sock_sendall_native($self, sock, data, /)\n--\n\nA future of None once every byte is sent (`sock_sendall` awaits it).",
    sock_sendall_entry,
);

/// Puts `_sock_recv_native` and `_sock_sendall_native` on `_EventLoopCore`.
pub(crate) fn install(class: &Bound<'_, PyType>) -> PyResult<()> {
    cmethod::install(class, &[&SOCK_RECV, &SOCK_SENDALL])
}

/// The two arguments of a call, or the TypeError Python would raise.
///
/// # Safety
/// `args` holds `nargs` borrowed references, valid for the call.
unsafe fn two_arguments<'py>(py: Python<'py>, method: &str, args: *const *mut ffi::PyObject, nargs: ffi::Py_ssize_t) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    if nargs != 2 {
        return Err(PyTypeError::new_err(format!("{method}() takes exactly 2 arguments ({nargs} given)")));
    }
    // SAFETY: as the caller promises.
    unsafe { Ok((Bound::from_borrowed_ptr(py, *args), Bound::from_borrowed_ptr(py, *args.add(1)))) }
}

unsafe extern "C" fn sock_recv_entry(event_loop: *mut ffi::PyObject, args: *mut *mut ffi::PyObject, nargs: ffi::Py_ssize_t) -> *mut ffi::PyObject {
    // SAFETY: CPython calls the method with the GIL held, on an `_EventLoopCore` (the descriptor
    // checks that), with `nargs` arguments in `args`.
    unsafe {
        cmethod::enter(|py| {
            let (sock, n) = two_arguments(py, "_sock_recv_native", args, nargs)?;
            let event_loop = Bound::from_borrowed_ptr(py, event_loop).cast_into_unchecked::<EventLoopCore>();
            sock_recv(&event_loop, &sock, n.extract()?).map(Bound::into_any)
        })
    }
}

unsafe extern "C" fn sock_sendall_entry(event_loop: *mut ffi::PyObject, args: *mut *mut ffi::PyObject, nargs: ffi::Py_ssize_t) -> *mut ffi::PyObject {
    // SAFETY: as above.
    unsafe {
        cmethod::enter(|py| {
            let (sock, data) = two_arguments(py, "_sock_sendall_native", args, nargs)?;
            let event_loop = Bound::from_borrowed_ptr(py, event_loop).cast_into_unchecked::<EventLoopCore>();
            sock_sendall(&event_loop, &sock, &data).map(Bound::into_any)
        })
    }
}
