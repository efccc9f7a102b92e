//! `mioloop.selectors.MioSelector`: the `selectors` crate wearing Python's `selectors.BaseSelector` API.
//!
//! Taught in the chapter *Selectors*. The crate does the work (registrations, level-triggered waits);
//! this skin turns file objects into descriptors, keeps stdlib `SelectorKey`s as the registration
//! data, releases the GIL while waiting, runs signal handlers when a signal interrupts the wait, and
//! raises the exceptions the standard library raises.

use pyo3::exceptions::{PyKeyError, PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyInt, PyList, PyTuple};
use selectors::{Error, Events, Selector};
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

/// A level-triggered selector over mio, interchangeable with `selectors.DefaultSelector`.
///
/// One thread uses a selector at a time: a second thread calling it during `select()` gets a
/// `RuntimeError` (asyncio never does this; it wakes the selecting thread instead).
#[pyclass(module = "mioloop.selectors", dict)]
pub struct MioSelector {
    /// Each registration's data is its `selectors.SelectorKey`, ready to hand back from `select`.
    inner: Selector<Py<PyAny>>,
}

fn selector_key<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
    py.import("selectors")?.getattr("SelectorKey")
}

/// The exception the standard library raises for `errno`, with the C library's message:
/// `OSError(errno, strerror)` picks the subclass (ConnectionResetError, PermissionError, ...).
pub(crate) fn os_error(errno: i32) -> PyErr {
    // SAFETY: strerror returns a NUL-terminated string, valid until the next strerror call on this
    // thread; it is copied at once.
    let message = unsafe { std::ffi::CStr::from_ptr(libc::strerror(errno)) }.to_string_lossy().into_owned();
    PyOSError::new_err((errno, message))
}

/// The exception the standard library raises for each error of the crate.
fn to_py_err(error: Error) -> PyErr {
    match error {
        Error::Io(e) => match e.raw_os_error() {
            Some(code) => os_error(code),
            None => PyOSError::new_err(e.to_string()),
        },
        Error::AlreadyRegistered(_) | Error::NotRegistered(_) => PyKeyError::new_err(error.to_string()),
        Error::InvalidFd(_) | Error::InvalidEvents(_) | Error::Closed => PyValueError::new_err(error.to_string()),
    }
}

/// `selectors._fileobj_to_fd`: an int, or an object whose `fileno()` returns one.
pub(crate) fn fileobj_to_fd(fileobj: &Bound<'_, PyAny>) -> PyResult<RawFd> {
    let py = fileobj.py();
    let fd = if fileobj.is_instance_of::<PyInt>() {
        fileobj.clone()
    } else {
        let invalid = || PyValueError::new_err(format!("Invalid file object: {}", repr(fileobj)));
        match fileobj.call_method0("fileno").and_then(|n| py.get_type::<PyInt>().call1((n,))) {
            Ok(fd) => fd,
            Err(e) if e.is_instance_of::<pyo3::exceptions::PyAttributeError>(py)
                || e.is_instance_of::<PyTypeError>(py)
                || e.is_instance_of::<PyValueError>(py) => return Err(invalid()),
            Err(e) => return Err(e),
        }
    };
    let fd: i64 = fd.extract().map_err(|_| PyValueError::new_err(format!("Invalid file descriptor: {fd}")))?;
    if fd < 0 {
        return Err(PyValueError::new_err(format!("Invalid file descriptor: {fd}")));
    }
    RawFd::try_from(fd).map_err(|_| PyValueError::new_err(format!("Invalid file descriptor: {fd}")))
}

fn repr(object: &Bound<'_, PyAny>) -> String {
    object.repr().map(|r| r.to_string()).unwrap_or_else(|_| "<object>".into())
}

/// `EVENT_READ | EVENT_WRITE` from a Python int, refusing what the standard library refuses.
fn events_from(events: &Bound<'_, PyAny>) -> PyResult<Events> {
    let invalid = || PyValueError::new_err(format!("Invalid events: {}", repr(events)));
    if !events.is_instance_of::<PyInt>() {
        return Err(PyTypeError::new_err(format!("events must be an int, not {}", events.get_type().name()?)));
    }
    let bits: i64 = events.extract().map_err(|_| invalid())?;
    u64::try_from(bits).ok().and_then(|b| Events::from_bits(b).ok()).ok_or_else(invalid)
}

/// A `select()` timeout as Python's epoll selector reads it: rounded up to the millisecond.
fn timeout_from(timeout: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Duration>> {
    let Some(timeout) = timeout.filter(|t| !t.is_none()) else { return Ok(None) };
    let seconds: f64 = timeout.extract()?;
    if seconds.is_nan() {
        return Err(PyValueError::new_err("timeout must be a number, not NaN"));
    }
    if seconds <= 0.0 {
        return Ok(Some(Duration::ZERO));
    }
    let millis = (seconds * 1e3).ceil();
    Ok(Some(Duration::try_from_secs_f64(millis / 1e3).unwrap_or(Duration::MAX)))
}

impl MioSelector {
    /// `_fileobj_lookup`: like `fileobj_to_fd`, but a registered object whose descriptor is gone
    /// (a closed socket's `fileno()` is -1) is still found, by identity, so it can be unregistered.
    fn lookup(&self, fileobj: &Bound<'_, PyAny>) -> PyResult<RawFd> {
        fileobj_to_fd(fileobj).or_else(|e| {
            let py = fileobj.py();
            for key in self.inner.keys() {
                if key.data.bind(py).get_item(0)?.is(fileobj) {
                    return Ok(key.fd);
                }
            }
            Err(e)
        })
    }

    fn not_registered(fileobj: &Bound<'_, PyAny>) -> PyErr {
        PyKeyError::new_err(format!("{} is not registered", repr(fileobj)))
    }
}

#[pymethods]
impl MioSelector {
    #[new]
    fn new() -> PyResult<Self> {
        Ok(MioSelector { inner: Selector::new()? })
    }

    /// Starts watching `fileobj` (a descriptor or an object with `fileno()`) for `events`.
    #[pyo3(signature = (fileobj, events, data = None))]
    fn register<'py>(&mut self, fileobj: &Bound<'py, PyAny>, events: &Bound<'py, PyAny>, data: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        let py = fileobj.py();
        let events = events_from(events)?;
        let fd = self.lookup(fileobj)?;
        if self.inner.get_key(fd).is_some() {
            return Err(PyKeyError::new_err(format!("{} (FD {fd}) is already registered", repr(fileobj))));
        }
        let key = selector_key(py)?.call1((fileobj, fd, events.bits(), data))?.unbind();
        self.inner.register(fd, events, key.clone_ref(py)).map_err(to_py_err)?;
        Ok(key)
    }

    /// Stops watching `fileobj` and returns its key; works after the file object was closed.
    fn unregister(&mut self, fileobj: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let fd = self.lookup(fileobj)?;
        match self.inner.unregister(fd) {
            Ok(key) => Ok(key.data),
            Err(Error::NotRegistered(_)) => Err(Self::not_registered(fileobj)),
            Err(e) => Err(to_py_err(e)),
        }
    }

    /// Changes the events or data of a registered file object; returns the new key.
    #[pyo3(signature = (fileobj, events, data = None))]
    fn modify<'py>(&mut self, fileobj: &Bound<'py, PyAny>, events: &Bound<'py, PyAny>, data: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        let py = fileobj.py();
        let fd = self.lookup(fileobj)?;
        let Some(old) = self.inner.get_key(fd) else { return Err(Self::not_registered(fileobj)) };
        let events = events_from(events)?;
        let old_key = old.data.bind(py).clone();
        let data = data.unwrap_or_else(|| py.None());
        if events == old.events && !old_key.get_item(3)?.ne(data.bind(py))? {
            return Ok(old_key.unbind());
        }
        let changes = PyDict::new(py);
        changes.set_item("events", events.bits())?;
        changes.set_item("data", data)?;
        let key = old_key.call_method("_replace", (), Some(&changes))?.unbind();
        self.inner.modify(fd, events, key.clone_ref(py)).map_err(to_py_err)?;
        Ok(key)
    }

    /// Waits until a registered file object is ready, or `timeout` seconds pass (`None`: forever;
    /// zero or less: just look). Returns `[(key, events), ...]`.
    ///
    /// The GIL is released while waiting. A signal that interrupts the wait runs its Python
    /// handler; if the handler raises, so does `select`, otherwise the wait resumes for the time left.
    #[pyo3(signature = (timeout = None))]
    fn select<'py>(&mut self, py: Python<'py>, timeout: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyList>> {
        let deadline = timeout_from(timeout)?.map(|t| Instant::now().checked_add(t).unwrap_or_else(|| Instant::now() + Duration::from_secs(86400 * 365)));
        let inner = &mut self.inner;
        let ready = loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            match py.detach(|| inner.wait(left)) {
                Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::Interrupted => py.check_signals()?,
                other => break other.map_err(to_py_err)?,
            }
        };
        let pairs = ready.into_iter().filter_map(|(fd, events)| {
            let key = inner.get_key(fd)?;
            Some(PyTuple::new(py, [key.data.clone_ref(py).into_bound(py), events.bits().into_pyobject(py).ok()?.into_any()]))
        });
        let list = PyList::empty(py);
        for pair in pairs {
            list.append(pair?)?;
        }
        Ok(list)
    }

    /// Closes the selector; registered file objects are forgotten, not closed.
    fn close(&mut self) {
        drop(self.inner.close());
    }

    /// The key of `fileobj`; `KeyError` if it is not registered, `RuntimeError` once closed.
    fn get_key(&self, fileobj: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        if self.inner.is_closed() {
            return Err(PyRuntimeError::new_err("Selector is closed"));
        }
        let fd = self.lookup(fileobj)?;
        let key = self.inner.get_key(fd).ok_or_else(|| Self::not_registered(fileobj))?;
        Ok(key.data.clone_ref(fileobj.py()))
    }

    /// A read-only, live mapping of file objects to keys; `None` once closed.
    fn get_map(slf: &Bound<'_, Self>) -> Option<SelectorMapping> {
        (!slf.borrow().inner.is_closed()).then(|| SelectorMapping { selector: slf.clone().unbind() })
    }

    /// The poller's own descriptor (an epoll descriptor on Linux).
    fn fileno(&self) -> PyResult<RawFd> {
        self.inner.fileno().map_err(to_py_err)
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __exit__(&mut self, _type: &Bound<'_, PyAny>, _value: &Bound<'_, PyAny>, _traceback: &Bound<'_, PyAny>) {
        self.close();
    }

    fn __repr__(&self) -> String {
        match self.inner.fileno() {
            Ok(fd) => format!("<MioSelector fd={fd} registered={}>", self.inner.len()),
            Err(_) => "<MioSelector closed>".into(),
        }
    }
}

/// What `MioSelector.get_map()` returns: a live, read-only `Mapping` from file objects to keys,
/// iterated as descriptors, like the standard library's `_SelectorMapping`.
#[pyclass(module = "mioloop.selectors", mapping)]
pub struct SelectorMapping {
    selector: Py<MioSelector>,
}

#[pymethods]
impl SelectorMapping {
    fn __len__(&self, py: Python<'_>) -> usize {
        self.selector.borrow(py).inner.len()
    }

    fn __getitem__(&self, fileobj: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let selector = self.selector.borrow(fileobj.py());
        let fd = selector.lookup(fileobj)?;
        let key = selector.inner.get_key(fd).ok_or_else(|| MioSelector::not_registered(fileobj))?;
        Ok(key.data.clone_ref(fileobj.py()))
    }

    fn __contains__(&self, fileobj: &Bound<'_, PyAny>) -> PyResult<bool> {
        match self.__getitem__(fileobj) {
            Ok(_) => Ok(true),
            Err(e) if e.is_instance_of::<PyKeyError>(fileobj.py()) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.keys(py)?.into_any().try_iter().map(Bound::into_any)
    }

    /// The registered descriptors.
    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.selector.borrow(py).inner.keys().map(|k| k.fd))
    }

    /// The registered `SelectorKey`s.
    fn values<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.selector.borrow(py).inner.keys().map(|k| k.data.clone_ref(py)))
    }

    /// `(descriptor, SelectorKey)` pairs.
    fn items<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.selector.borrow(py).inner.keys().map(|k| (k.fd, k.data.clone_ref(py))))
    }

    #[pyo3(signature = (fileobj, default = None))]
    fn get(&self, fileobj: &Bound<'_, PyAny>, default: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        let py = fileobj.py();
        match self.__getitem__(fileobj) {
            Err(e) if e.is_instance_of::<PyKeyError>(py) => Ok(default.unwrap_or_else(|| py.None())),
            other => other,
        }
    }
}
