//! Runs every Python block of the book, checks the error code of every `compile_fail` Rust block,
//! rejects every fence the book does not define, and prints the summary line. (Rust blocks run as
//! doctests of the root package, `cargo test --doc`; stable rustdoc ignores compile_fail codes.)
//!
//! `cargo test --test book -- closures` runs only chapters whose path contains `closures`.

use std::path::Path;
use under_the_await::python::Report;
use std::process::ExitCode;

fn main() -> ExitCode {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::env::set_current_dir(root).expect("the repository root");
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let chapters: Vec<_> = book_blocks::chapter_files(Path::new("book/src"))
        .expect("book/src")
        .into_iter()
        .filter(|p| filters.is_empty() || filters.iter().any(|f| p.to_string_lossy().contains(f.as_str())))
        .collect();

    let mut report = under_the_await::python::check_chapters(&chapters);
    under_the_await::compile_fail::check_chapters(&chapters, &mut report);
    for failure in &report.failures {
        println!("\n{}", Report::failure_line(failure));
    }
    println!("\n{}", report.closing_lines());
    if report.failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
