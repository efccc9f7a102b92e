//! Checks that every `compile_fail` Rust block fails with the error code its fence names.
//!
//! rustdoc runs these blocks as well, but a stable toolchain's rustdoc ignores the code (only a
//! nightly one checks it), so a block rejected for another reason would pass. Here each block is
//! compiled as rustdoc compiles it ([`book_blocks::rust_program`]) by `rustc --error-format=short`,
//! and the codes rustc reports must include the fence's.
//!
//! A block that names one of the book's crates (`# extern crate pyo3;`) is shown exactly the
//! artifacts of the current build, found as `scripts/mdbook-test` finds them, by the same code:
//! `book_artifacts` in `scripts/lib.sh` lists what `cargo build --message-format=json` reports.

use crate::python::Report;
use book_blocks::{Kind, Problem};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The edition rustdoc gives a block without an `editionYYYY` word: the book package's.
const EDITION: &str = "2024";

/// Checks the `compile_fail` blocks of `files`, adding a pass or a failure to `report` for each.
///
/// Bad fences are not reported again: the Python pass over the same chapters already reports them.
pub fn check_chapters(files: &[PathBuf], report: &mut Report) {
    let out_dir = std::env::temp_dir().join(format!("under-the-await-compile-fail-{}", std::process::id()));
    let mut artifacts: Option<Result<Artifacts, String>> = None; // listed once, if a block needs them
    for file in files {
        let Ok(chapter) = book_blocks::expand(file) else { continue };
        for block in book_blocks::parse(&chapter).0 {
            let Kind::CompileFail(codes) = &block.kind else { continue };
            let program = book_blocks::rust_program(&chapter, &block);
            let mut rustc = Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()));
            if !program.extern_crates.is_empty() {
                match artifacts.get_or_insert_with(Artifacts::of_current_build) {
                    Ok(artifacts) => rustc.args(artifacts.rustc_args(&program.extern_crates)),
                    Err(message) => {
                        let message = format!("cannot list the crates' artifacts for rustc: {message}");
                        report.failures.push(Problem { at: block.at.clone(), message });
                        continue;
                    }
                };
            }
            match program.check_compile_fail(codes, rustc, EDITION, &out_dir) {
                Ok(()) => report.passed += 1,
                Err(problem) => report.failures.push(problem),
            }
        }
    }
    let _ = std::fs::remove_dir_all(&out_dir);
}

/// `(crate name, file)` for every library the root package's build produced.
struct Artifacts(Vec<(String, PathBuf)>);

impl Artifacts {
    fn of_current_build() -> Result<Artifacts, String> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let output = Command::new("bash")
            .args(["-c", "source scripts/lib.sh && book_artifacts"])
            .current_dir(root)
            .output()
            .map_err(|e| format!("cannot run bash: {e}"))?;
        if !output.status.success() {
            return Err(format!("book_artifacts (scripts/lib.sh) failed:\n{}", String::from_utf8_lossy(&output.stderr)));
        }
        let listed = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| line.split_once(' '))
            .map(|(name, path)| (name.to_string(), PathBuf::from(path)))
            .collect();
        Ok(Artifacts(listed))
    }

    /// What rustc needs to find `crates` and their dependencies: cargo's own `-L dependency=` and
    /// `--extern name=path` arguments, for exactly these artifacts.
    fn rustc_args(&self, crates: &[String]) -> Vec<OsString> {
        let mut args = Vec::new();
        let mut folders: Vec<&Path> = self.0.iter().filter_map(|(_, path)| path.parent()).collect();
        folders.sort();
        folders.dedup();
        for folder in folders {
            args.push(OsString::from("-L"));
            args.push(OsString::from(format!("dependency={}", folder.display())));
        }
        for (name, path) in self.0.iter().filter(|(name, _)| crates.contains(name)) {
            args.push(OsString::from("--extern"));
            args.push(OsString::from(format!("{name}={}", path.display())));
        }
        args
    }
}
