//! A kernel from outside the book's crates: how a crate of yours adds CPU work to `mioloop.offload`.
//!
//! Taught in the chapter *The offload pool*. Three steps: a struct holding the inputs (a
//! [`Buffer`] borrows a Python bytes-like object without copying), an implementation of
//! [`Kernel`] that does the work on a worker thread and looks at its [`Cancel`] flag between
//! chunks, and a `#[pyfunction]` that hands it to [`run_kernel`], which returns the awaitable.

// ANCHOR: kernel
use mioloop_pymodule::offload::{Buffer, Cancel, Cancelled, Kernel};

/// How many times each byte value occurs in a buffer.
pub struct Histogram(pub Buffer);

impl Kernel for Histogram {
    /// 256 counts, which Python receives as a list of ints.
    type Output = Vec<u64>;

    fn run(&self, cancel: &Cancel) -> Result<Vec<u64>, Cancelled> {
        let mut counts = vec![0u64; 256];
        for chunk in self.0.as_bytes().chunks(1 << 18) {
            cancel.check()?; // a cancelled job stops within one chunk
            for &byte in chunk {
                counts[byte as usize] += 1;
            }
        }
        Ok(counts)
    }
}

/// `import histogram`: the Python face of the kernel.
#[pyo3::pymodule]
pub mod histogram {
    use mioloop_pymodule::offload::{Buffer, Pool, run_kernel};
    use pyo3::prelude::*;

    /// `await histogram(data, *, pool=None)`: the 256 byte counts of a bytes-like object, counted
    /// on an offload pool's worker (the default pool if `pool` is None).
    #[pyfunction]
    #[pyo3(signature = (data, *, pool = None))]
    fn histogram<'py>(py: Python<'py>, data: Buffer, pool: Option<&Bound<'py, Pool>>) -> PyResult<Bound<'py, PyAny>> {
        Ok(run_kernel(py, pool, super::Histogram(data))?.into_any())
    }
}
// ANCHOR_END: kernel
