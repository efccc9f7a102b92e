//! Turns every chapter of `book/src` into rustdoc doctests, and links test binaries to the libpython
//! that `PYO3_PYTHON` names (this machine has two, and the loader would otherwise pick Debian's).

use std::path::{Path, PathBuf};

fn main() {
    pyo3_build_config::add_libpython_rpath_link_args();
    println!("cargo:rerun-if-changed=book/src");
    println!("cargo:rerun-if-changed=examples");

    let root = Path::new("book/src");
    let chapters = book_blocks::chapter_files(root).expect("book/src must exist");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    match book_blocks::doctest_items(&chapters, root, &out.join("expanded")) {
        Ok(items) => std::fs::write(out.join("chapters.rs"), items).unwrap(),
        Err(problem) => panic!("{problem}"),
    }
}
