//! The `mioloop` extension module: nothing but a link to `mioloop-pymodule`.
//!
//! The `#[pymodule]` lives in an rlib so that the book's test package can embed it too; this cdylib
//! re-exports it so that its `PyInit_mioloop` symbol is part of the shared object maturin packages.

pub use mioloop_pymodule::mioloop;
