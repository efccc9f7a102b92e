//! The `mioloop` Python module, as an rlib.
//!
//! Two crates consume it: the `mioloop` cdylib wrapper (`crates/mioloop`), which maturin builds into the
//! package readers `pip install`, and the book's test package, which registers the module in an
//! embedded interpreter before it starts, so that the book's Python blocks can `import mioloop`.
//! Keeping the module here, not in the cdylib, is what lets both link it.
//!
//! The module is a thin skin: each submodule added by a later part of the book wraps a pure-Rust crate
//! that knows nothing of Python.

/// `import mioloop`: the selector, the event loop, the Future and the offload pool of *Under the Await*.
#[pyo3::pymodule]
pub mod mioloop {
    use pyo3::prelude::*;

    #[pymodule_init]
    fn init(module: &Bound<'_, PyModule>) -> PyResult<()> {
        module.add("__version__", env!("CARGO_PKG_VERSION"))
    }
}
