//! Tests of the proof machine itself: each fixture in `tests/fixtures/` breaks one rule, and the run
//! must fail, naming the fixture's file and line. `good.md` must pass.

use std::path::{Path, PathBuf};
use std::process::Command;
use under_the_await::python::{Report, check_chapters};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn check(name: &str) -> Report {
    check_chapters(&[fixture(name)])
}

/// The single failure of a fixture, as printed.
fn only_failure(name: &str) -> String {
    let report = check(name);
    assert_eq!(report.failures.len(), 1, "{name}: {:#?}", report.failures);
    report.failures[0].to_string()
}

#[test]
fn a_good_chapter_passes() {
    let report = check("good.md");
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    assert_eq!(report.passed, 4);
    assert_eq!(report.summary.python_executed, 4);
    assert_eq!(report.summary.outputs_checked, 2);
}

#[test]
fn a_broken_python_block_fails_with_its_line() {
    let failure = only_failure("broken_python.md");
    assert!(failure.contains("broken_python.md:5: python block raised"), "{failure}");
    assert!(failure.contains("ZeroDivisionError"), "{failure}");
    assert!(failure.contains("broken_python.md\", line 7"), "traceback names the chapter line: {failure}");
}

#[test]
fn a_wrong_output_block_fails_showing_both() {
    let failure = only_failure("wrong_output.md");
    assert!(failure.contains("wrong_output.md:3: stdout differs from the output block at"), "{failure}");
    assert!(failure.contains("--- expected\n4⏎\n--- actual\n5⏎\n"), "{failure}");
}

#[test]
fn output_printed_without_an_output_block_fails() {
    let failure = only_failure("unshown_output.md");
    assert!(failure.contains("unshown_output.md:3: python block printed but no output block"), "{failure}");
}

#[test]
fn a_missing_expected_exception_fails() {
    let report = check("missing_raise.md");
    let failures: Vec<String> = report.failures.iter().map(ToString::to_string).collect();
    assert_eq!(failures.len(), 2, "{failures:#?}");
    assert!(failures[0].contains("missing_raise.md:3: python block should raise ValueError but raised nothing"));
    assert!(failures[1].contains("missing_raise.md:9: python block should raise exactly LookupError"));
    assert!(failures[1].contains("KeyError"));
}

#[test]
fn unknown_fence_words_fail() {
    let report = check("unknown_fence.md");
    let failures: Vec<String> = report.failures.iter().map(ToString::to_string).collect();
    assert_eq!(failures.len(), 3, "{failures:#?}");
    assert!(failures[0].contains("unknown_fence.md:3: unknown word \"norun\""));
    assert!(failures[1].contains("unknown_fence.md:7: unknown word \"raise=ValueError\""));
    assert!(failures[2].contains("unknown_fence.md:11: an ignored block needs its reason"));
    assert_eq!(report.summary.python_executed, 0, "a python block with a bad fence never runs");
}

#[test]
fn mioloop_is_importable_in_blocks() {
    let report = check("imports_mioloop.md");
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    assert_eq!(report.passed, 1);
}

/// Rust blocks are tested by rustdoc through the same generated items as the book's; this builds a
/// throw-away crate around one fixture and runs its doctests.
fn rustdoc_on(name: &str) -> (bool, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = root.join("target/machine-tests").join(name.trim_end_matches(".md"));
    let src = work.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let fixtures = root.join("tests/fixtures");
    let items = book_blocks::doctest_items(&[fixture(name)], &fixtures, &work.join("expanded")).unwrap();
    std::fs::write(src.join("lib.rs"), format!("#[cfg(doctest)]\npub mod chapters {{\n{items}}}\n")).unwrap();
    std::fs::write(
        work.join("Cargo.toml"),
        "[package]\nname = \"fixture\"\nversion = \"0.0.0\"\nedition = \"2024\"\n[workspace]\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO"))
        .args(["test", "--doc", "--quiet"])
        .env("CARGO_TARGET_DIR", root.join("target/machine-tests/target"))
        .current_dir(&work)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn rust_blocks_of_every_kind_pass_through_rustdoc() {
    let (ok, text) = rustdoc_on("good_rust.md");
    assert!(ok, "{text}");
    // Edition 2024 merges runnable doctests into one binary and compiles compile_fail ones apart, so
    // the passes come in more than one "test result" line.
    let passed: usize = text
        .lines()
        .filter_map(|l| l.strip_prefix("test result: ok. "))
        .filter_map(|l| l.split(' ').next()?.parse::<usize>().ok())
        .sum();
    assert_eq!(passed, 4, "run, no_run, should_panic and compile_fail all tested: {text}");
}

#[test]
fn a_broken_rust_block_fails_with_its_line() {
    let (ok, text) = rustdoc_on("broken_rust.md");
    assert!(!ok, "{text}");
    assert!(text.contains("broken_rust_md (line 5)"), "{text}");
    assert!(text.contains("assertion `left == right` failed"), "{text}");
}

/// The text block of the appendix that starts with `prefix`, as the reader sees it.
fn appendix_text_block(prefix: &str) -> String {
    let appendix = book_blocks::expand(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/book/src/appendix/testing.md"))).unwrap();
    let (blocks, _) = book_blocks::parse(&appendix);
    blocks
        .into_iter()
        .find(|b| b.lang == book_blocks::Lang::Text && b.code.starts_with(prefix))
        .unwrap_or_else(|| panic!("the appendix has no text block starting {prefix:?}"))
        .code
}

#[test]
fn the_appendix_shows_the_failure_the_machine_really_prints() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let original = std::fs::read_to_string(root.join("book/src/appendix/testing.md")).unwrap();
    let broken = original.replacen("```output\n1 2 fizz 4 5 fizz\n```", "```output\n1 2 buzz 4 5 fizz\n```", 1);
    assert_ne!(broken, original, "the appendix's fizz output block moved");
    let copy = root.join("target/machine-tests/appendix/book/src/appendix/testing.md");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::write(&copy, broken).unwrap();
    let examples = root.join("target/machine-tests/appendix/examples");
    if !examples.exists() {
        std::os::unix::fs::symlink(root.join("examples"), examples).unwrap();
    }

    let report = check_chapters(std::slice::from_ref(&copy));
    assert_eq!(report.failures.len(), 1, "{:#?}", report.failures);
    let printed = format!("{}\n", Report::failure_line(&report.failures[0])).replace(&format!("{}/", root.join("target/machine-tests/appendix").display()), "");
    assert_eq!(printed, appendix_text_block("FAILED "));
}

#[test]
fn the_appendix_shows_the_real_summary_of_good_md() {
    let report = check("good.md");
    let printed = format!("{}\n", report.closing_lines());
    assert_eq!(printed, appendix_text_block("book: "));
}

#[test]
fn a_failure_in_an_included_listing_names_the_listing_line() {
    let failure = only_failure("broken_include.md");
    assert!(failure.contains("broken_include.md:3: python block raised"), "{failure}");
    assert!(failure.contains("broken_listing.py\", line 7, in <module>"), "{failure}");
    assert!(failure.contains("broken_listing.py\", line 4, in divide"), "{failure}");
}
