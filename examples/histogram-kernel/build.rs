//! The test embeds CPython: link it to the libpython that `PYO3_PYTHON` names.
fn main() {
    pyo3_build_config::add_libpython_rpath_link_args();
}
