//! `import async_runtimes_peer`: the same trivially ready Rust future as `mioloop.bridge.ready`, made
//! awaitable by [pyo3-async-runtimes](https://crates.io/crates/pyo3-async-runtimes), the crate most
//! pyo3 projects use for this. `benchmarks/futures_bridge.py` builds it (`cargo build --release -p
//! async-runtimes-peer`) and measures an `await` of it beside ours.
//!
//! pyo3-async-runtimes runs the Rust future on a tokio runtime of its own (worker threads) and, when
//! it is done, resolves a future of the running loop with `call_soon_threadsafe`: a thread hop each
//! way, where mioloop's bridge polls the future on the loop's thread.

use pyo3::prelude::*;

/// `await ready(value)`: a Rust future that is ready at once, run on pyo3-async-runtimes' tokio runtime.
#[pyfunction]
fn ready(py: Python<'_>, value: Py<PyAny>) -> PyResult<Bound<'_, PyAny>> {
    pyo3_async_runtimes::tokio::future_into_py(py, async move { Ok(value) })
}

#[pymodule]
fn async_runtimes_peer(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(ready, module)?)
}
