//! Runs the Python blocks of chapters in an embedded CPython, with `mioloop` importable.
//!
//! The interpreter starts once per process, after `mioloop` is appended to its table of built-in
//! modules (that must happen before it starts). Blocks of one chapter share a namespace, in order;
//! each block's stdout is captured by swapping `sys.stdout` and compared with the `output` block
//! after it. Every failure names the chapter file and line.

use book_blocks::{Block, Expanded, Kind, Lang, Origin, Problem, Summary};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::ffi::CString;
use std::path::PathBuf;
use std::sync::{Mutex, Once};

/// The outcome of checking some chapters.
#[derive(Default, Debug)]
pub struct Report {
    pub summary: Summary,
    /// Python blocks that ran as the book says they do, and `compile_fail` blocks that failed with their code.
    pub passed: usize,
    /// Everything that did not: bad fences, failed blocks, differing output.
    pub failures: Vec<Problem>,
}

impl Report {
    /// How the run prints one failure.
    pub fn failure_line(failure: &Problem) -> String {
        format!("FAILED {failure}")
    }

    /// The closing lines: the summary, then passes and failures in the form CI tools read.
    pub fn closing_lines(&self) -> String {
        format!("{}\nbook: {} passed, {} failed", self.summary, self.passed, self.failures.len())
    }
}

static INTERPRETER: Once = Once::new();
/// Blocks swap `sys.stdout`, which is global: one chapter runs at a time in a process.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn start_interpreter() {
    INTERPRETER.call_once(|| {
        use mioloop_pymodule::mioloop;
        pyo3::append_to_inittab!(mioloop);
        Python::initialize();
    });
}

/// Reads, checks and runs every chapter in `files`.
pub fn check_chapters(files: &[PathBuf]) -> Report {
    start_interpreter();
    let _only_us = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut report = Report::default();
    for file in files {
        let chapter = match book_blocks::expand(file) {
            Ok(chapter) => chapter,
            Err(problem) => {
                report.failures.push(problem);
                continue;
            }
        };
        let (blocks, problems) = book_blocks::parse(&chapter);
        report.failures.extend(problems);
        report.summary.chapters += 1;
        blocks.iter().for_each(|b| report.summary.add(b));
        Python::attach(|py| {
            if let Err(err) = run_chapter(py, &chapter, &blocks, &mut report) {
                let at = Origin { file: file.clone(), line: 0 };
                report.failures.push(Problem { at, message: format!("the block runner itself failed: {err}") });
            }
        });
    }
    report
}

fn runner(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    let code = CString::new(include_str!("run_block.py")).expect("no NUL in run_block.py");
    PyModule::from_code(py, &code, c"src/run_block.py", c"_under_the_await_runner")
}

fn run_chapter(py: Python<'_>, chapter: &Expanded, blocks: &[Block], report: &mut Report) -> PyResult<()> {
    let runner = runner(py)?;
    let filename = chapter.file.to_string_lossy().into_owned();
    let namespace = runner.getattr("new_namespace")?.call0()?.cast_into::<PyDict>()?;
    let unhidden: String = chapter.text.lines().map(|l| format!("{}\n", book_blocks::unhide_python(l))).collect();
    runner.getattr("register_source")?.call1((&filename, unhidden))?;

    for block in blocks.iter().filter(|b| b.lang == Lang::Python) {
        let raises = match &block.kind {
            Kind::Run => None,
            Kind::Raises(name) => Some(name.clone()),
            _ => continue,
        };
        let source = book_blocks::python_source(block);
        let (stdout, stderr, traceback, raised_as_expected): (String, String, Option<String>, bool) =
            runner.getattr("run")?.call1((source, &filename, &namespace, raises.clone()))?.extract()?;
        report.summary.python_executed += 1;

        let fail = |message: String| Problem { at: block.at.clone(), message };
        let stderr_note = if stderr.is_empty() { String::new() } else { format!("\nstderr:\n{stderr}") };
        let failure = match (&raises, traceback) {
            (None, Some(tb)) => Some(fail(format!("python block raised:\n{}{stderr_note}", map_lines(&tb, chapter)))),
            (Some(name), None) => Some(fail(format!("python block should raise {name} but raised nothing{stderr_note}"))),
            (Some(name), Some(tb)) if !raised_as_expected => Some(fail(format!(
                "python block should raise exactly {name}, but raised:\n{}{stderr_note}",
                map_lines(&tb, chapter)
            ))),
            _ => compare_output(block, &stdout).map(|m| fail(format!("{m}{stderr_note}"))),
        };
        match failure {
            Some(problem) => report.failures.push(problem),
            None => report.passed += 1,
        }
        if block.output.is_some() {
            report.summary.outputs_checked += 1;
        }
    }
    Ok(())
}

/// `None` when the block printed exactly what its output block says (or printed nothing and has none).
fn compare_output(block: &Block, stdout: &str) -> Option<String> {
    match &block.output {
        Some((_, expected)) if expected == stdout => None,
        Some((at, expected)) => Some(format!(
            "stdout differs from the output block at {at}\n--- expected\n{}--- actual\n{}--- end",
            show(expected),
            show(stdout)
        )),
        None if stdout.is_empty() => None,
        None => Some(format!(
            "python block printed but no output block follows it; add one:\n```output\n{stdout}```"
        )),
    }
}

/// Shows text line by line, making trailing spaces and a missing final newline visible.
fn show(text: &str) -> String {
    let mut shown: String = text.lines().map(|l| format!("{l}⏎\n")).collect();
    if !text.is_empty() && !text.ends_with('\n') {
        shown.push_str("(no newline at end)\n");
    }
    shown
}

/// Rewrites traceback lines `File "<chapter>", line N` to the file and line where line N came from.
fn map_lines(traceback: &str, chapter: &Expanded) -> String {
    let prefix = format!("  File \"{}\", line ", chapter.file.display());
    traceback
        .lines()
        .map(|line| {
            let Some(rest) = line.strip_prefix(&prefix) else { return format!("{line}\n") };
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            match digits.parse::<usize>().ok().and_then(|n| chapter.origins.get(n.wrapping_sub(1))) {
                Some(origin) => format!("  File \"{}\", line {}{}\n", origin.file.display(), origin.line, &rest[digits.len()..]),
                None => format!("{line}\n"),
            }
        })
        .collect()
}
