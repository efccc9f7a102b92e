//! The two hot paths of mioloop's socket transport, native.
//!
//! Taught in *Transports and protocols*, measured in *Benchmarks*.
//!
//! mioloop's TCP and Unix stream transport is asyncio's own `_SelectorSocketTransport`, subclassed
//! (`event_loop.py`): connecting, closing, flow control, `write_eof`, `set_protocol`, sendfile and
//! every error path are asyncio's code. What runs once per message is replaced by the two functions
//! here, which read and write the same attributes asyncio's methods do:
//!
//! - [`read_ready`]: the socket is readable. `recv` into a `bytes` ([`recv_bytes`]) and hand it
//!   to `protocol.data_received`, or, for a `BufferedProtocol`, `recv` straight into the
//!   protocol's `get_buffer()` and call `buffer_updated(n)`: no Python frame between the selector
//!   and the protocol.
//! - [`write`]: `transport.write(data)`. With nothing buffered, `send` at once; anything else,
//!   including what the kernel did not take, is asyncio's own `write` (its buffer, its writer
//!   callback, its flow control).
//!
//! They are installed on the subclass as CPython's own methods are made ([`install`],
//! [`crate::cmethod`]): `transport.write(data)` calls the C function directly, with no bound method
//! and no pyo3 wrapper in between. They read asyncio's state from the transport's slots
//! ([`State`]).

use crate::cmethod::{self, MethodDef};
use crate::gil::GilCell;
use crate::selector::os_error;
use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::{PyKeyboardInterrupt, PyRuntimeError, PySystemExit, PyTypeError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PyMemoryView, PyType};
use pyo3::{ffi, intern};
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::OnceLock;

/// asyncio's `_SelectorTransport.max_size`: the most one `recv` asks for.
const MAX_SIZE: usize = 256 * 1024;

/// Reads go straight into the `bytes` they become when the last one was at least this large...
const DIRECT_FROM: usize = 16 * 1024;
/// ...and the next is expected to fit in this: below glibc's threshold for mapping a block of its
/// own (128 KiB), so the `bytes` come from the heap, whose pages stay mapped from one read to the
/// next. A larger block would be mapped and unmapped on every read, its pages faulted in each time.
const DIRECT_UP_TO: usize = 127 * 1024;

thread_local! {
    /// The receive buffer of the loop running on this thread (uvloop keeps one per loop as well):
    /// a message is copied out of it into a `bytes` of its own length.
    static RECEIVE: RefCell<Vec<u8>> = RefCell::new(vec![0; MAX_SIZE]);
    /// The size of the last read on this thread: how [`recv_bytes`] guesses the next one.
    static LAST_READ: Cell<usize> = const { Cell::new(0) };
}

/// `bytes` of what one `recv(fd, n)` got (empty at the end of the stream), or what it did instead.
///
/// A message is read into the thread's receive buffer and copied into a `bytes` of its length, as
/// uvloop does, unless the reads on this thread are large: then that copy is a third of the
/// server's work in user space per message (64 KiB echo), so the read goes into a new `bytes` of
/// one and a half times the last read's size, shrunk in place to what came. A steady size then
/// fits in one read; a growing one is followed until it passes [`DIRECT_UP_TO`], and from there it
/// is copied again. A read of more than the buffer holds is direct at the size asked, as CPython's
/// `socket.recv(n)` is.
pub(crate) fn recv_bytes<'py>(py: Python<'py>, fd: i32, n: usize) -> Result<Bound<'py, PyBytes>, Io> {
    let last = LAST_READ.get();
    let guess = last + last / 2;
    let received = if n > MAX_SIZE {
        recv_direct(py, fd, n)
    } else if last >= DIRECT_FROM && guess <= DIRECT_UP_TO {
        recv_direct(py, fd, n.min(guess))
    } else {
        RECEIVE.with_borrow_mut(|buffer| match recv(fd, &mut buffer[..n]) {
            Io::Done(k) => Ok(PyBytes::new(py, &buffer[..k])),
            other => Err(other),
        })
    }?;
    LAST_READ.set(received.as_bytes().len());
    Ok(received)
}

/// `recv(fd, capacity)` into a new `bytes` of that capacity, shrunk to what came.
fn recv_direct<'py>(py: Python<'py>, fd: i32, capacity: usize) -> Result<Bound<'py, PyBytes>, Io> {
    let size = ffi::Py_ssize_t::try_from(capacity).map_err(|_| Io::Failed(pyo3::exceptions::PyOverflowError::new_err("recv size too large")))?;
    // SAFETY: a NULL source makes an uninitialised `bytes` of `size` bytes, owned here; `recv`
    // writes at most `size` bytes into it and only what it wrote is kept; `_PyBytes_Resize` needs
    // the only reference, which this is (nothing else has seen it), and on failure frees it and
    // sets an error.
    unsafe {
        let mut bytes = ffi::PyBytes_FromStringAndSize(std::ptr::null(), size);
        if bytes.is_null() {
            return Err(Io::Failed(PyErr::fetch(py)));
        }
        let owned = Bound::from_owned_ptr(py, bytes);
        // A raw pointer, not a slice: the bytes are not initialised until the kernel writes them.
        let k = match io_result(libc::recv(fd, ffi::PyBytes_AS_STRING(bytes) as *mut libc::c_void, capacity, 0)) {
            Io::Done(k) => k,
            other => return Err(other),
        };
        if k == capacity {
            return Ok(owned.cast_into_unchecked());
        }
        bytes = owned.into_ptr();
        if resize_bytes(&mut bytes, k as ffi::Py_ssize_t) < 0 {
            return Err(Io::Failed(PyErr::fetch(py)));
        }
        Ok(Bound::from_owned_ptr(py, bytes).cast_into_unchecked())
    }
}

unsafe extern "C" {
    /// CPython's own `_PyBytes_Resize` (exported by every version this module supports; pyo3
    /// declares it crate-private).
    #[link_name = "_PyBytes_Resize"]
    fn resize_bytes(bytes: *mut *mut ffi::PyObject, size: ffi::Py_ssize_t) -> std::ffi::c_int;
}

static BUFFERED_PROTOCOL: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static ASYNCIO_WRITE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// What one non-blocking socket call did.
pub(crate) enum Io {
    Done(usize),
    WouldBlock,
    Failed(PyErr),
}

fn io_result(result: isize) -> Io {
    if result >= 0 {
        return Io::Done(result as usize);
    }
    let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO);
    match errno {
        libc::EAGAIN | libc::EINTR => Io::WouldBlock,
        _ => Io::Failed(os_error(errno)),
    }
}

fn recv(fd: i32, buffer: &mut [u8]) -> Io {
    // SAFETY: `buffer` is valid for writes of its length for the duration of the call.
    io_result(unsafe { libc::recv(fd, buffer.as_mut_ptr().cast(), buffer.len(), 0) })
}

pub(crate) fn send(fd: i32, data: &[u8]) -> Io {
    // SAFETY: `data` is valid for reads of its length for the duration of the call. MSG_NOSIGNAL:
    // a closed peer is an EPIPE error, never a SIGPIPE (Python ignores SIGPIPE; an embedder may not).
    io_result(unsafe { libc::send(fd, data.as_ptr().cast(), data.len(), libc::MSG_NOSIGNAL) })
}

/// The attributes of asyncio's socket transport that every message reads. `_SocketTransport`
/// (`event_loop.py`) keeps them in `__slots__`, so asyncio's own code reads and writes them as
/// before, through their member descriptors, and the functions here read them at a fixed offset
/// in the object. Each was a dictionary look-up before, 130 to 190 instructions with pyo3's
/// conversions, eight per echoed message: a quarter of the echo server's instructions in user
/// space (callgrind).
#[derive(Clone, Copy)]
enum Attribute {
    SockFd,
    Protocol,
    ConnLost,
    Eof,
    EmptyWaiter,
    Buffer,
}

/// The slots' names, in `Attribute`'s order; `_SocketTransport.__slots__` lists the same.
const SLOT_NAMES: [&str; 6] = ["_sock_fd", "_protocol", "_conn_lost", "_eof", "_empty_waiter", "_buffer"];

/// Where the transport class's instances keep each attribute, read from the slots' member
/// descriptors when the module is made ([`install`]).
static OFFSETS: OnceLock<[usize; 6]> = OnceLock::new();

/// The transport classes laid out so: one, or more if the module is imported again (a new
/// module object makes its classes anew, with the same slots).
static CLASSES: GilCell<Vec<Py<PyType>>> = GilCell::new(Vec::new());

/// The last of `CLASSES` that a transport was an exact instance of: the usual case, checked by
/// address before the list (subclasses are never stored here).
static LAST_CLASS: AtomicPtr<ffi::PyTypeObject> = AtomicPtr::new(std::ptr::null_mut());

/// A transport's state, read from its slots.
struct State<'a, 'py> {
    transport: &'a Bound<'py, PyAny>,
    offsets: &'static [usize; 6],
}

impl<'a, 'py> State<'a, 'py> {
    /// Refuses anything but an instance of a transport class (or a subclass), whose layout the
    /// offsets describe. (A subclass that declares one of the slots again keeps its value in a
    /// slot of its own: the class's stays empty, and `get` falls back to `getattr`.)
    fn of(transport: &'a Bound<'py, PyAny>) -> PyResult<Self> {
        let py = transport.py();
        let offsets = OFFSETS.get().ok_or_else(|| PyRuntimeError::new_err("mioloop's transport class is not installed"))?;
        // SAFETY: a valid object and class objects, only compared (no Python code runs).
        let class = unsafe { ffi::Py_TYPE(transport.as_ptr()) };
        let known = class == LAST_CLASS.load(Ordering::Relaxed)
            || CLASSES.with(py, |classes| {
                classes.iter().any(|known| {
                    if known.as_ptr().cast() == class {
                        // One of `CLASSES`, which keeps it alive: its address is never another's.
                        LAST_CLASS.store(class, Ordering::Relaxed);
                        return true;
                    }
                    (unsafe { ffi::PyObject_TypeCheck(transport.as_ptr(), known.as_ptr().cast()) }) != 0
                })
            });
        if !known {
            return Err(PyTypeError::new_err(format!("expected mioloop's socket transport, got {}", transport.get_type().name()?)));
        }
        Ok(State { transport, offsets })
    }

    /// The slot's content: NULL when unset, else a reference that the transport owns.
    fn slot(&self, attribute: Attribute) -> *mut ffi::PyObject {
        // SAFETY: `of` checked the object's class: the slot is a pointer-sized field at this
        // offset, holding NULL (unset) or a reference that the object owns.
        unsafe { *self.transport.as_ptr().cast::<u8>().add(self.offsets[attribute as usize]).cast::<*mut ffi::PyObject>() }
    }

    /// The attribute's value; unset, the `AttributeError` Python would raise.
    fn get(&self, attribute: Attribute) -> PyResult<Bound<'py, PyAny>> {
        let value = self.slot(attribute);
        if value.is_null() {
            return self.transport.getattr(SLOT_NAMES[attribute as usize]);
        }
        // SAFETY: a live object (see `slot`), to which this takes a reference of its own.
        Ok(unsafe { Bound::from_borrowed_ptr(self.transport.py(), value) })
    }

    /// `bool(attribute)`. The values that every message finds, `False`, `True`, the integer 0
    /// (`_conn_lost`) and an empty `bytearray` (3.11's `_buffer`), are told without a call or a
    /// reference (`False`, `True` and 0 are singletons: CPython keeps one object for each);
    /// anything else is asked with `PyObject_IsTrue`, as Python's `if` asks.
    fn is_true(&self, attribute: Attribute) -> PyResult<bool> {
        let value = self.slot(attribute);
        // SAFETY: NULL or a live object (see `slot`), only compared and, for an exact bytearray,
        // measured; the singletons are CPython's.
        unsafe {
            if value == ffi::Py_False() || value == small_zero(self.transport.py()) {
                return Ok(false);
            }
            if value == ffi::Py_True() {
                return Ok(true);
            }
            if !value.is_null() && ffi::PyByteArray_CheckExact(value) != 0 {
                return Ok(ffi::PyByteArray_Size(value) != 0);
            }
        }
        self.get(attribute)?.is_truthy()
    }

    /// `_sock_fd`; an exact `int` in range is read with one call, anything else as pyo3 converts.
    fn fd(&self) -> PyResult<i32> {
        let value = self.slot(Attribute::SockFd);
        // SAFETY: NULL or a live object (see `slot`); `PyLong_AsLongAndOverflow` reports an int
        // out of range in `overflow`, without setting an exception.
        unsafe {
            if !value.is_null() && ffi::PyLong_CheckExact(value) != 0 {
                let mut overflow = 0;
                let fd = ffi::PyLong_AsLongAndOverflow(value, &mut overflow);
                if overflow == 0 {
                    if let Ok(fd) = i32::try_from(fd) {
                        return Ok(fd);
                    }
                }
            }
        }
        self.get(Attribute::SockFd)?.extract()
    }
}

/// CPython's one `0` (small integers are cached, so `self._conn_lost = 0` stores this object).
fn small_zero(py: Python<'_>) -> *mut ffi::PyObject {
    static ZERO: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    ZERO.get_or_init(py, || 0i32.into_pyobject(py).expect("an int").into_any().unbind()).as_ptr()
}

/// asyncio's rule for a protocol callback's exception: SystemExit and KeyboardInterrupt
/// propagate, anything else is the transport's fatal error.
fn fatal(transport: &Bound<'_, PyAny>, error: PyErr, message: &str) -> PyResult<()> {
    let py = transport.py();
    if error.is_instance_of::<PySystemExit>(py) || error.is_instance_of::<PyKeyboardInterrupt>(py) {
        return Err(error);
    }
    transport.call_method1(intern!(py, "_fatal_error"), (error.value(py), message)).map(drop)
}

/// `transport._read_ready()`: asyncio's `_read_ready__data_received` or `_read_ready__get_buffer`,
/// chosen by the protocol's class as asyncio's `set_protocol` chooses.
pub fn read_ready(transport: &Bound<'_, PyAny>) -> PyResult<()> {
    let py = transport.py();
    let state = State::of(transport)?;
    if state.is_true(Attribute::ConnLost)? {
        return Ok(());
    }
    let fd = state.fd()?;
    let protocol = state.get(Attribute::Protocol)?;
    let buffered = BUFFERED_PROTOCOL.get_or_try_init(py, || py.import("asyncio")?.getattr("BufferedProtocol").map(Bound::unbind))?;
    // asyncio's `isinstance(protocol, BufferedProtocol)`, for classes (a protocol is an instance
    // of its own class; BufferedProtocol has no `__instancecheck__`).
    // SAFETY: two valid type objects, only compared.
    if unsafe { ffi::PyType_IsSubtype(ffi::Py_TYPE(protocol.as_ptr()), buffered.as_ptr().cast()) } != 0 {
        return read_into_protocol(transport, &protocol, fd);
    }
    match recv_bytes(py, fd, MAX_SIZE) {
        Ok(data) if data.as_bytes().is_empty() => transport.call_method0(intern!(py, "_read_ready__on_eof")).map(drop),
        Ok(data) => match protocol.call_method1(intern!(py, "data_received"), (data,)) {
            Ok(_) => Ok(()),
            Err(error) => fatal(transport, error, "Fatal error: protocol.data_received() call failed."),
        },
        Err(Io::Failed(error)) => fatal(transport, error, "Fatal read error on socket transport"),
        Err(_) => Ok(()), // would block: the selector reports the socket again
    }
}

/// The `BufferedProtocol` path: `recv` into `protocol.get_buffer(-1)`, then `buffer_updated(n)`.
fn read_into_protocol(transport: &Bound<'_, PyAny>, protocol: &Bound<'_, PyAny>, fd: i32) -> PyResult<()> {
    let py = transport.py();
    let view = protocol.call_method1(intern!(py, "get_buffer"), (-1,)).and_then(|buffer| {
        let view = PyUntypedBuffer::get(&buffer)?;
        if view.readonly() {
            return Err(PyTypeError::new_err("get_buffer() returned a read-only buffer"));
        }
        if !view.is_c_contiguous() {
            return Err(pyo3::exceptions::PyBufferError::new_err("get_buffer() returned a non-contiguous buffer"));
        }
        if view.len_bytes() == 0 {
            return Err(PyRuntimeError::new_err("get_buffer() returned an empty buffer"));
        }
        Ok(view)
    });
    let view = match view {
        Ok(view) => view,
        Err(error) => return fatal(transport, error, "Fatal error: protocol.get_buffer() call failed."),
    };
    // SAFETY: a writable, C-contiguous export of `len_bytes` bytes, held until `view` is released
    // below; nothing else runs in between.
    let target = unsafe { std::slice::from_raw_parts_mut(view.buf_ptr() as *mut u8, view.len_bytes()) };
    let received = recv(fd, target);
    view.release(py);
    match received {
        Io::Done(0) => transport.call_method0(intern!(py, "_read_ready__on_eof")).map(drop),
        Io::Done(n) => match protocol.call_method1(intern!(py, "buffer_updated"), (n,)) {
            Ok(_) => Ok(()),
            Err(error) => fatal(transport, error, "Fatal error: protocol.buffer_updated() call failed."),
        },
        Io::WouldBlock => Ok(()),
        Io::Failed(error) => fatal(transport, error, "Fatal read error on socket transport"),
    }
}

/// `transport.write(data)`. In the transport's ordinary state (not at EOF, no sendfile, no lost
/// connection, nothing buffered) and for bytes, a bytearray or a contiguous memoryview: one `send`,
/// and if the kernel takes it all, that is the whole call. Everything else is asyncio's own `write`,
/// given what is left: its checks and errors, the send that would block, what the kernel did not
/// take, a write behind buffered data. So the buffer, the writer callback and flow control are
/// asyncio's, whatever its version keeps in `_buffer` (a bytearray in 3.11, a deque since 3.12).
pub fn write(transport: &Bound<'_, PyAny>, data: &Bound<'_, PyAny>) -> PyResult<()> {
    let py = transport.py();
    let asyncio_write = |data: &Bound<'_, PyAny>| -> PyResult<()> {
        let write = ASYNCIO_WRITE.get_or_try_init(py, || {
            py.import("asyncio.selector_events")?.getattr("_SelectorSocketTransport")?.getattr("write").map(Bound::unbind)
        })?;
        write.bind(py).call1((transport, data)).map(drop)
    };
    let bytes_like = data.is_instance_of::<PyBytes>() || data.is_instance_of::<PyByteArray>() || data.is_instance_of::<PyMemoryView>();
    let state = State::of(transport)?;
    let ordinary = bytes_like
        && !state.is_true(Attribute::Eof)?
        && state.get(Attribute::EmptyWaiter)?.is_none()
        && !state.is_true(Attribute::ConnLost)?
        && !state.is_true(Attribute::Buffer)?;
    if !ordinary {
        return asyncio_write(data);
    }
    let fd = state.fd()?;
    // One `send`; what the kernel does not take, or all of it if it would block, to asyncio.
    let send_now = |bytes: &[u8]| match bytes.is_empty() {
        true => Ok(()),
        false => match send(fd, bytes) {
            Io::Done(n) if n == bytes.len() => Ok(()),
            Io::Done(n) => asyncio_write(PyBytes::new(py, &bytes[n..]).as_any()),
            Io::WouldBlock => asyncio_write(data),
            Io::Failed(error) => fatal(transport, error, "Fatal write error on socket transport"),
        },
    };
    // bytes are read in place; a bytearray or memoryview through the buffer protocol, held until
    // the send is done and released with the token (see `cmethod::enter`).
    match data.cast::<PyBytes>() {
        Ok(bytes) => send_now(bytes.as_bytes()),
        Err(_) => match PyUntypedBuffer::get(data) {
            Ok(view) if view.is_c_contiguous() => {
                // SAFETY: a C-contiguous export of `len_bytes` bytes, held while the slice is used.
                let result = send_now(unsafe { std::slice::from_raw_parts(view.buf_ptr() as *const u8, view.len_bytes()) });
                view.release(py);
                result
            }
            Ok(view) => {
                view.release(py);
                asyncio_write(data)
            }
            Err(_) => asyncio_write(data),
        },
    }
}

static READ_READY: MethodDef = MethodDef::no_arguments(
    c"_read_ready",
    c"_read_ready($self, /)\n--\n\nThe socket is readable: recv, then hand the data to the protocol.",
    read_ready_entry,
);

static WRITE: MethodDef = MethodDef::one_argument(
    c"write",
    c"write($self, data, /)\n--\n\nSends `data` at once when nothing is buffered; buffers the rest, as asyncio does.",
    write_entry,
);

/// Puts `_read_ready` and `write` on mioloop's socket transport class (`event_loop.py`), and reads
/// where its instances keep their slots.
pub(crate) fn install(class: &Bound<'_, PyType>) -> PyResult<()> {
    let mut offsets = [0; 6];
    for (offset, name) in offsets.iter_mut().zip(SLOT_NAMES) {
        let descriptor = class.getattr(name)?;
        // SAFETY: the descriptor is checked to be a member descriptor of this very class before
        // its definition is read; a slot's member is an object reference (`Py_T_OBJECT_EX`).
        unsafe {
            let member = descriptor.as_ptr().cast::<ffi::PyMemberDescrObject>();
            let own = ffi::Py_TYPE(descriptor.as_ptr()) == std::ptr::addr_of_mut!(ffi::PyMemberDescr_Type) && (*member).d_common.d_type == class.as_type_ptr();
            if !own || (*(*member).d_member).type_code != ffi::Py_T_OBJECT_EX {
                return Err(PyRuntimeError::new_err(format!("{name} is not a slot of mioloop's socket transport")));
            }
            *offset = (*(*member).d_member).offset as usize;
        }
    }
    if *OFFSETS.get_or_init(|| offsets) != offsets {
        return Err(PyRuntimeError::new_err("mioloop's socket transport was made again with its slots elsewhere"));
    }
    CLASSES.with(class.py(), |classes| classes.push(class.clone().unbind()));
    cmethod::install(class, &[&READ_READY, &WRITE])
}

unsafe extern "C" fn read_ready_entry(transport: *mut ffi::PyObject, _: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: CPython calls the method with the GIL held, on an instance of the class (the
    // descriptor checks that).
    unsafe { cmethod::enter(|py| read_ready(&Bound::from_borrowed_ptr(py, transport)).map(|()| py.None().into_bound(py))) }
}

unsafe extern "C" fn write_entry(transport: *mut ffi::PyObject, data: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: as above; METH_O passes the one argument, borrowed.
    unsafe { cmethod::enter(|py| write(&Bound::from_borrowed_ptr(py, transport), &Bound::from_borrowed_ptr(py, data)).map(|()| py.None().into_bound(py))) }
}
