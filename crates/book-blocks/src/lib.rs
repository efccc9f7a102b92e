//! Reads the book's chapters into the code blocks that the test suite executes.
//!
//! Taught in the appendix *How this book is tested* (`book/src/appendix/testing.md`).
//!
//! The crate knows nothing of Python or rustdoc; it reads markdown, and runs rustc on `compile_fail` blocks:
//!
//! 1. [`expand`] replaces mdBook's `{{#include file:anchor}}` and `{{#rustdoc_include …}}` lines with the lines they name, and keeps,
//!    for every line of the result, the file and line it came from ([`Origin`]), so that a failure in an
//!    included listing is reported where the reader can fix it.
//! 2. [`parse`] finds every code block with pulldown-cmark and reads its fence words into a [`Block`].
//!    A word the book does not define is a [`Problem`], never a silent skip: a typo such as `rust,norun`
//!    would otherwise turn a tested block into an untested one.
//! 3. [`Summary`] counts blocks by language and kind, for the one line the test run prints.
//! 4. [`rust_program`] makes of a Rust block the program rustdoc would compile, and
//!    [`RustProgram::check_compile_fail`] compiles a `compile_fail` block with rustc and checks its error
//!    code, which a stable rustdoc does not (only a nightly one does).
//!
//! # Fence words
//!
//! | fence | meaning |
//! |---|---|
//! | `rust` | a rustdoc doctest; may add `no_run`, `should_panic`, `compile_fail` (with the error code rustc must report, `E0308`; required), `ignore`, `noplayground`, `editable`, `editionYYYY` |
//! | `python` | run in the chapter's namespace; may add `raises=Name` or `ignore` |
//! | `output` | the exact stdout of the code block before it |
//! | `mermaid` | a diagram, rendered by the browser test |
//! | `console` | commands for the reader to type, shown and never run |
//! | `text` | shown as it is: a compiler error under the `compile_fail` block that causes it, a traceback |
//!
//! `ignore` needs its reason on the line above the fence, written `Not run: why`.

use pulldown_cmark::{CodeBlockKind, Event, Parser, Tag, TagEnd};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The file and line a line of expanded text came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The file as the reader names it (relative to the repository root when read from there).
    pub file: PathBuf,
    /// One-based line number in that file.
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// Something wrong in a chapter, where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Where the reader fixes it.
    pub at: Origin,
    /// What is wrong, in a sentence.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// A chapter with its includes expanded.
#[derive(Clone, Debug)]
pub struct Expanded {
    /// The chapter file itself.
    pub file: PathBuf,
    /// The text after expansion, as mdBook would render it.
    pub text: String,
    /// `origins[i]` is where line `i + 1` of `text` came from.
    pub origins: Vec<Origin>,
}

impl Expanded {
    /// Whether any line came from another file (rustdoc must then read the expanded text).
    pub fn has_includes(&self) -> bool {
        self.origins.iter().any(|o| o.file != self.file)
    }

    fn origin_of_line(&self, line: usize) -> Origin {
        self.origins.get(line - 1).cloned().unwrap_or(Origin { file: self.file.clone(), line })
    }
}

/// The language of a block, from the first word of its fence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Lang {
    Rust,
    Python,
    Output,
    Mermaid,
    Console,
    Text,
}

impl Lang {
    fn from_word(word: &str) -> Option<Lang> {
        Some(match word {
            "rust" => Lang::Rust,
            "python" => Lang::Python,
            "output" => Lang::Output,
            "mermaid" => Lang::Mermaid,
            "console" => Lang::Console,
            "text" => Lang::Text,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Output => "output",
            Lang::Mermaid => "mermaid",
            Lang::Console => "console",
            Lang::Text => "text",
        }
    }
}

/// What the test suite does with a block.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Compiled and run (Rust) or run (Python).
    Run,
    /// Rust: compiled, not run.
    NoRun,
    /// Rust: compiled and run, must panic.
    ShouldPanic,
    /// Rust: must fail to compile, with every one of these error codes (`E0382`) among rustc's errors.
    CompileFail(Vec<String>),
    /// Python: must raise exactly this exception class (its `__name__` or qualified name).
    Raises(String),
    /// Not executed; the reason stands on the line above the fence.
    Ignore,
    /// Not code: an output block, a diagram, or commands for the reader.
    Shown,
}

impl Kind {
    pub fn name(&self) -> &str {
        match self {
            Kind::Run => "run",
            Kind::NoRun => "no_run",
            Kind::ShouldPanic => "should_panic",
            Kind::CompileFail(_) => "compile_fail",
            Kind::Raises(_) => "raises",
            Kind::Ignore => "ignore",
            Kind::Shown => "shown",
        }
    }
}

/// One fenced code block of a chapter.
#[derive(Clone, Debug)]
pub struct Block {
    pub lang: Lang,
    pub kind: Kind,
    /// Where the opening fence stands.
    pub at: Origin,
    /// Line of the opening fence in the expanded text (for mapping the code's own lines).
    pub expanded_line: usize,
    /// The fence's info string as written (`rust,compile_fail,E0382`).
    pub fence: String,
    /// The code as written, hidden lines included.
    pub code: String,
    /// The `output` block that follows this one, if any: its place and exact text.
    pub output: Option<(Origin, String)>,
}

/// Every `.md` file below `dir`, sorted, so that no chapter can be forgotten.
pub fn chapter_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Reads `file` and expands its `{{#include …}}` lines (mdBook's syntax, paths relative to the file).
///
/// Supported: `{{#include path}}`, `{{#include path:anchor}}`, `{{#include path:start:end}}` (either
/// bound may be empty). A directive must stand alone on its line. Other `{{#…}}` directives are
/// reported, because rustdoc and our runner would otherwise see them as code.
pub fn expand(file: &Path) -> Result<Expanded, Problem> {
    let text = fs::read_to_string(file).map_err(|e| Problem {
        at: Origin { file: file.to_path_buf(), line: 0 },
        message: format!("cannot read: {e}"),
    })?;
    let mut out = Expanded { file: file.to_path_buf(), text: String::new(), origins: Vec::new() };
    for (i, line) in text.lines().enumerate() {
        let here = Origin { file: file.to_path_buf(), line: i + 1 };
        match directive(line) {
            None => push_line(&mut out, &line.replace("\\{{#", "{{#"), here),
            Some(Err(message)) => return Err(Problem { at: here, message }),
            Some(Ok(spec)) => {
                let dir = file.parent().unwrap_or(Path::new("."));
                for (text, origin) in include(&normalize(&dir.join(spec.path)), &spec.selector, spec.hide_rest, &here)? {
                    push_line(&mut out, &text, origin);
                }
            }
        }
    }
    Ok(out)
}

/// `book/src/appendix/../../examples/x.py` → `book/examples/x.py`, without touching the file system,
/// so reported paths stay relative and readable.
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir if matches!(out.components().next_back(), Some(Component::Normal(_))) => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn push_line(out: &mut Expanded, line: &str, origin: Origin) {
    out.text.push_str(line);
    out.text.push('\n');
    out.origins.push(origin);
}

struct IncludeSpec<'a> {
    path: &'a str,
    selector: Selector,
    /// `{{#rustdoc_include}}`: the rest of the file comes along as hidden lines.
    hide_rest: bool,
}

enum Selector {
    Whole,
    Anchor(String),
    Lines(Option<usize>, Option<usize>),
}

/// `None` for an ordinary line; `Some(Err)` for a directive we cannot honour.
/// `\{{#…}}` is mdBook's escape for a directive shown as text.
fn directive(line: &str) -> Option<Result<IncludeSpec<'_>, String>> {
    let start = line.match_indices("{{#").find(|(i, _)| !line[..*i].ends_with('\\'))?.0;
    let trimmed = line.trim();
    if start != line.len() - line.trim_start().len() || !trimmed.ends_with("}}") {
        return Some(Err("an mdBook {{#…}} directive must stand alone on its line".into()));
    }
    let inner = trimmed[3..trimmed.len() - 2].trim();
    let (hide_rest, args) = match (inner.strip_prefix("include "), inner.strip_prefix("rustdoc_include ")) {
        (Some(args), _) => (false, args),
        (_, Some(args)) => (true, args),
        _ => {
            return Some(Err(format!(
                "unsupported mdBook directive {{{{#{inner}}}}}: only include and rustdoc_include are tested"
            )));
        }
    };
    let mut parts = args.trim().split(':');
    let path = parts.next().unwrap_or("");
    let rest: Vec<&str> = parts.collect();
    let number = |s: &str| -> Result<Option<usize>, String> {
        if s.is_empty() { Ok(None) } else { s.parse().map(Some).map_err(|_| format!("bad line number {s:?}")) }
    };
    let selector = match rest.as_slice() {
        [] => Selector::Whole,
        [a] if !a.is_empty() && a.chars().all(|c| c.is_ascii_digit()) => match number(a) {
            Ok(n) => Selector::Lines(n, None),
            Err(e) => return Some(Err(e)),
        },
        [a] => Selector::Anchor(a.to_string()),
        [a, b] => match (number(a), number(b)) {
            (Ok(a), Ok(b)) => Selector::Lines(a, b),
            (Err(e), _) | (_, Err(e)) => return Some(Err(e)),
        },
        _ => return Some(Err(format!("cannot read include {args:?}"))),
    };
    Some(Ok(IncludeSpec { path, selector, hide_rest }))
}

/// The lines an include names, each with its origin; anchor marker lines are dropped as mdBook does.
///
/// `{{#rustdoc_include}}` (`hide_rest`) keeps the whole file, with the lines outside the selection
/// turned into hidden `# ` lines, so a Rust listing shown in parts still compiles as a whole program.
fn include(path: &Path, selector: &Selector, hide_rest: bool, from: &Origin) -> Result<Vec<(String, Origin)>, Problem> {
    let fail = |message: String| Problem { at: from.clone(), message };
    let text = fs::read_to_string(path).map_err(|e| fail(format!("cannot include {}: {e}", path.display())))?;
    let is_marker = |l: &str| l.contains("ANCHOR:") || l.contains("ANCHOR_END:");
    let (mut inside, mut seen) = (false, false);
    let mut lines = Vec::new(); // (text, origin, selected)
    for (i, line) in text.lines().enumerate() {
        let origin = Origin { file: path.to_path_buf(), line: i + 1 };
        if let Selector::Anchor(name) = selector {
            if marker_name(line, "ANCHOR:") == Some(name.as_str()) {
                (inside, seen) = (true, true);
            } else if marker_name(line, "ANCHOR_END:") == Some(name.as_str()) {
                inside = false;
            }
        }
        if is_marker(line) {
            continue;
        }
        let selected = match selector {
            Selector::Whole => true,
            Selector::Lines(a, b) => origin.line >= a.unwrap_or(1) && b.is_none_or(|b| origin.line <= b),
            Selector::Anchor(_) => inside,
        };
        lines.push((line.to_string(), origin, selected));
    }
    if let (Selector::Anchor(name), false) = (selector, seen) {
        return Err(fail(format!("{} has no ANCHOR: {name}", path.display())));
    }
    if hide_rest {
        return Ok(lines
            .into_iter()
            .map(|(l, o, selected)| match (selected, l.is_empty()) {
                (true, _) => (l, o),
                (false, true) => ("#".to_string(), o),
                (false, false) => (format!("# {l}"), o),
            })
            .collect());
    }
    Ok(dedent(lines.into_iter().filter(|(_, _, selected)| *selected).map(|(l, o, _)| (l, o)).collect()))
}

fn marker_name<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    let at = line.find(marker)?;
    line[at + marker.len()..].split_whitespace().next()
}

/// Removes the indentation common to all non-blank lines, as mdBook does for anchors.
fn dedent(lines: Vec<(String, Origin)>) -> Vec<(String, Origin)> {
    let indent = lines
        .iter()
        .filter(|(l, _)| !l.trim().is_empty())
        .map(|(l, _)| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    lines.into_iter().map(|(l, o)| (if l.len() >= indent { l[indent..].to_string() } else { String::new() }, o)).collect()
}

/// Finds every code block of an expanded chapter and reads its fence.
///
/// Returns the blocks (an `output` block is attached to the code block before it) and every problem
/// found; the caller fails the run if there is any problem.
pub fn parse(chapter: &Expanded) -> (Vec<Block>, Vec<Problem>) {
    let text = &chapter.text;
    let line_starts: Vec<usize> =
        std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
    let line_of = |offset: usize| line_starts.partition_point(|&s| s <= offset);
    let lines: Vec<&str> = text.lines().collect();

    let mut blocks: Vec<Block> = Vec::new();
    let mut problems = Vec::new();
    let mut current: Option<(String, usize)> = None; // (info, expanded line)
    let mut code = String::new();
    for (event, range) in Parser::new(text).into_offset_iter() {
        match event {
            Event::Start(Tag::CodeBlock(kind)) => {
                let line = line_of(range.start);
                code.clear();
                match kind {
                    CodeBlockKind::Fenced(info) => current = Some((info.to_string(), line)),
                    CodeBlockKind::Indented => {
                        problems.push(Problem {
                            at: chapter.origin_of_line(line),
                            message: "indented code block: rustdoc would run it as Rust; use a fenced block with a language".into(),
                        });
                        current = None;
                    }
                }
            }
            Event::Text(t) if current.is_some() => code.push_str(&t),
            Event::End(TagEnd::CodeBlock) => {
                let Some((info, line)) = current.take() else { continue };
                let at = chapter.origin_of_line(line);
                match read_fence(&info) {
                    Err(message) => problems.push(Problem { at, message }),
                    Ok((Lang::Output, _)) => match blocks.last_mut() {
                        Some(b) if matches!(b.lang, Lang::Python) && b.output.is_none() => {
                            b.output = Some((at, code.clone()))
                        }
                        _ => problems.push(Problem {
                            at,
                            message: "an output block must directly follow the python block whose stdout it is".into(),
                        }),
                    },
                    Ok((lang, kind)) => {
                        if lang == Lang::Rust && code.contains("extern crate ") && !info.contains("noplayground") {
                            problems.push(Problem {
                                at: at.clone(),
                                message: "a block that uses the book's crates needs `noplayground`: the playground cannot see them".into(),
                            });
                        }
                        if kind == Kind::Ignore && !has_reason(&lines, line) {
                            problems.push(Problem {
                                at: at.clone(),
                                message: "an ignored block needs its reason on the line above the fence: `Not run: why`".into(),
                            });
                        }
                        blocks.push(Block {
                            lang,
                            kind,
                            at,
                            expanded_line: line,
                            fence: info.clone(),
                            code: code.clone(),
                            output: None,
                        });
                    }
                }
            }
            _ => {}
        }
    }
    (blocks, problems)
}

/// The line above the fence (blank lines skipped) must give the reason an ignored block is not run.
fn has_reason(lines: &[&str], fence_line: usize) -> bool {
    lines[..fence_line - 1]
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty())
        .and_then(|l| l.trim().strip_prefix("Not run:"))
        .is_some_and(|why| !why.trim().is_empty())
}

const RUST_WORDS: &[&str] = &["noplayground", "editable", "edition2015", "edition2018", "edition2021", "edition2024"];

/// Reads a fence's info string: the language, then words separated by commas or spaces.
pub fn read_fence(info: &str) -> Result<(Lang, Kind), String> {
    let mut words = info.split([',', ' ', '\t']).filter(|w| !w.is_empty());
    let Some(first) = words.next() else {
        return Err("a fence needs a language (rustdoc runs an unlabelled block as Rust)".into());
    };
    let lang = Lang::from_word(first).ok_or_else(|| {
        format!("unknown language {first:?} in fence {info:?}: use rust, python, output, mermaid, console or text")
    })?;
    let mut error_codes = Vec::new();
    let mut kind = match lang {
        Lang::Rust | Lang::Python => Kind::Run,
        _ => Kind::Shown,
    };
    for word in words {
        let new_kind = match (lang, word) {
            (Lang::Rust, "no_run") => Kind::NoRun,
            (Lang::Rust, "should_panic") => Kind::ShouldPanic,
            (Lang::Rust, "compile_fail") => Kind::CompileFail(Vec::new()),
            (Lang::Rust | Lang::Python, "ignore") => Kind::Ignore,
            (Lang::Rust, w) if RUST_WORDS.contains(&w) => continue,
            (Lang::Rust, w) if w.len() == 5 && w.starts_with('E') && w[1..].chars().all(|c| c.is_ascii_digit()) => {
                error_codes.push(w.to_string());
                continue;
            }
            (Lang::Python, w) if w.starts_with("raises=") => {
                let name = &w["raises=".len()..];
                if name.is_empty() || !name.split('.').all(is_identifier) {
                    return Err(format!("raises= needs an exception name, got {name:?}"));
                }
                Kind::Raises(name.to_string())
            }
            _ => return Err(format!("unknown word {word:?} in fence {info:?} for a {} block", lang.name())),
        };
        if kind != Kind::Run {
            return Err(format!("fence {info:?} names two kinds ({} and {})", kind.name(), new_kind.name()));
        }
        kind = new_kind;
    }
    match (&mut kind, error_codes.first()) {
        (Kind::CompileFail(codes), Some(_)) => *codes = error_codes,
        (Kind::CompileFail(_), None) => {
            return Err(format!(
                "compile_fail in fence {info:?} needs the error code rustc must report, as in rust,compile_fail,E0382"
            ));
        }
        (_, Some(code)) => return Err(format!("error code {code} in fence {info:?} needs compile_fail")),
        (_, None) => {}
    }
    Ok((lang, kind))
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c == '_' || c.is_alphabetic()) && chars.all(|c| c == '_' || c.is_alphanumeric())
}

/// Python source of a block as it is executed: `~ ` hidden lines lose their marker, and the code is
/// preceded by blank lines so that line numbers in tracebacks are the expanded chapter's own.
pub fn python_source(block: &Block) -> String {
    let mut source = "\n".repeat(block.expanded_line);
    for line in block.code.lines() {
        source.push_str(unhide_python(line));
        source.push('\n');
    }
    source
}

/// `~ x = 1` runs as `x = 1`; a lone `~` is a hidden blank line.
pub fn unhide_python(line: &str) -> &str {
    if line == "~" { "" } else { line.strip_prefix("~ ").unwrap_or(line) }
}

/// rustdoc's reading of a Rust line: `# x` is the hidden line `x`, a lone `#` a hidden blank line,
/// and `##x` the shown line `#x` (how a block writes `#x` at the start of a line).
pub fn unhide_rust(line: &str) -> Cow<'_, str> {
    let trimmed = line.trim();
    if trimmed.starts_with("##") {
        Cow::Owned(line.replacen("##", "#", 1))
    } else if let Some(hidden) = trimmed.strip_prefix("# ") {
        Cow::Borrowed(hidden)
    } else if trimmed == "#" {
        Cow::Borrowed("")
    } else {
        Cow::Borrowed(line)
    }
}

/// A Rust block as rustdoc compiles it, for [`RustProgram::check_compile_fail`].
#[derive(Clone, Debug)]
pub struct RustProgram {
    /// `#![allow(unused)]`, then the code with its hidden lines, wrapped in `fn main` unless it has
    /// one; `#![…]` and `extern crate` lines go above the wrapper.
    pub source: String,
    /// `origins[i]` is where line `i + 1` of `source` came from; `None` for a line rustdoc adds.
    pub origins: Vec<Option<Origin>>,
    /// The crates the block names with `extern crate`, which rustc must be shown.
    pub extern_crates: Vec<String>,
    /// The edition a fence word such as `edition2021` asks for.
    pub edition: Option<String>,
    /// Where the block's fence stands.
    pub at: Origin,
}

/// The program rustdoc would make of a Rust block of `chapter`.
///
/// rustdoc parses the code to find `fn main` and the lines to move above it; this reads lines, which
/// is enough for blocks written as the book writes them (items at the start of their line).
pub fn rust_program(chapter: &Expanded, block: &Block) -> RustProgram {
    let lines: Vec<(String, Option<Origin>)> = block
        .code
        .lines()
        .enumerate()
        .map(|(i, line)| (unhide_rust(line).into_owned(), Some(chapter.origin_of_line(block.expanded_line + 1 + i))))
        .collect();
    let extern_crates = lines
        .iter()
        .filter_map(|(line, _)| line.trim_start().strip_prefix("extern crate "))
        .map(|rest| rest.chars().take_while(|&c| c == '_' || c.is_alphanumeric()).collect::<String>())
        .filter(|name| !name.is_empty() && name != "self")
        .collect();
    let has_main = lines.iter().any(|(line, _)| declares_main(line));
    let mut program = vec![("#![allow(unused)]".to_string(), None)];
    if has_main {
        program.extend(lines);
    } else {
        let (above, body): (Vec<_>, Vec<_>) = lines.into_iter().partition(|(line, _)| {
            let line = line.trim_start();
            line.starts_with("#![") || line.starts_with("extern crate ")
        });
        // rustdoc lets a block that ends with `Ok::<(), E>(())` use `?`, as the body of a function returning Result.
        let last = body.iter().rev().find(|(line, _)| !line.trim().is_empty());
        let returns_result = last.is_some_and(|(line, _)| line.trim_end().ends_with("(())"));
        let (open, close) = if returns_result {
            ("fn main() { fn _inner() -> Result<(), impl core::fmt::Debug> {", "} _inner().unwrap() }")
        } else {
            ("fn main() {", "}")
        };
        program.extend(above);
        program.push((open.to_string(), None));
        program.extend(body);
        program.push((close.to_string(), None));
    }
    let edition = block.fence.split([',', ' ', '\t']).find_map(|w| w.strip_prefix("edition")).map(str::to_string);
    RustProgram {
        source: program.iter().map(|(line, _)| format!("{line}\n")).collect(),
        origins: program.into_iter().map(|(_, origin)| origin).collect(),
        extern_crates,
        edition,
        at: block.at.clone(),
    }
}

/// `fn main(`, possibly `pub`, `async`, … , at the start of a line.
fn declares_main(line: &str) -> bool {
    let mut rest = line;
    while let Some(after) = ["pub ", "const ", "async ", "unsafe "].iter().find_map(|q| rest.strip_prefix(q)) {
        rest = after;
    }
    rest.strip_prefix("fn main").is_some_and(|r| r.trim_start().starts_with(['(', '<']))
}

impl RustProgram {
    /// Compiles the program with `rustc` as rustdoc compiles a `compile_fail` doctest (a binary,
    /// metadata only, in the fence's edition or else `default_edition`) and checks that it fails with
    /// every code of `expected`, which stable rustdoc does not check.
    ///
    /// `rustc` carries whatever the block's crates need (`-L dependency=…`, `--extern name=path`);
    /// the compiler's metadata, never used, goes to `out_dir`.
    pub fn check_compile_fail(
        &self,
        expected: &[String],
        mut rustc: Command,
        default_edition: &str,
        out_dir: &Path,
    ) -> Result<(), Problem> {
        let fail = |message: String| Problem { at: self.at.clone(), message };
        rustc
            .args(["-", "--crate-name", "rust_out", "--crate-type", "bin", "--emit=metadata", "--cfg", "doctest"])
            .args(["--error-format=short", "--color=never", "--edition"])
            .arg(self.edition.as_deref().unwrap_or(default_edition))
            .arg("--out-dir")
            .arg(out_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = rustc.spawn().map_err(|e| fail(format!("cannot run rustc: {e}")))?;
        let written = child.stdin.take().map(|mut stdin| stdin.write_all(self.source.as_bytes()));
        let output = child.wait_with_output().map_err(|e| fail(format!("rustc failed to run: {e}")))?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if let Some(Err(e)) = written {
            return Err(fail(format!("cannot give rustc the block ({e}); rustc said:\n{}", stderr.trim_end())));
        }
        self.verdict(expected, output.status.success(), &stderr).map_err(fail)
    }

    /// Whether rustc's short-format messages (`stderr`) show the block failing with every expected code;
    /// if not, what went wrong, with rustc's messages pointing at the chapter's lines.
    pub fn verdict(&self, expected: &[String], compiled: bool, stderr: &str) -> Result<(), String> {
        let expected_list = expected.join(", ");
        if compiled {
            return Err(format!("compile_fail block compiled without error, but should fail with {expected_list}"));
        }
        let reported = error_codes(stderr);
        if expected.iter().all(|code| reported.contains(code)) {
            return Ok(());
        }
        let reported = if reported.is_empty() { "only errors without a code".to_string() } else { reported.join(", ") };
        Err(format!(
            "compile_fail block should fail with {expected_list}, but rustc reported {reported}:\n{}",
            self.map_lines(stderr).trim_end()
        ))
    }

    /// rustc names the program `<anon>` (it reads it from stdin); each `<anon>:N:C:` becomes the
    /// chapter line (or included file line) that line `N` came from.
    fn map_lines(&self, stderr: &str) -> String {
        stderr
            .lines()
            .map(|line| {
                let mapped = line.strip_prefix("<anon>:").and_then(|rest| {
                    let (number, rest) = rest.split_once(':')?;
                    let origin = self.origins.get(number.parse::<usize>().ok()?.checked_sub(1)?)?.as_ref()?;
                    Some(format!("{origin}:{rest}\n"))
                });
                mapped.unwrap_or_else(|| format!("{line}\n"))
            })
            .collect()
    }
}

/// The error codes in rustc's `--error-format=short` messages (`file:line:col: error[E0382]: …`), in order, once each.
pub fn error_codes(stderr: &str) -> Vec<String> {
    let mut codes: Vec<String> = Vec::new();
    for line in stderr.lines() {
        let level = line.split(": ").find(|part| part.starts_with("error["));
        match level.and_then(|l| l.strip_prefix("error[")?.strip_suffix(']')) {
            Some(code) if !codes.iter().any(|c| c == code) => codes.push(code.to_string()),
            _ => {}
        }
    }
    codes
}

/// Counts of blocks by language and kind, for the run's summary line.
#[derive(Default, Debug)]
pub struct Summary {
    /// (language, kind) → number of blocks.
    pub counts: BTreeMap<(Lang, String), usize>,
    pub chapters: usize,
    /// Python blocks actually executed, and output blocks compared.
    pub python_executed: usize,
    pub outputs_checked: usize,
}

impl Summary {
    pub fn add(&mut self, block: &Block) {
        *self.counts.entry((block.lang, block.kind.name().to_string())).or_default() += 1;
        if block.output.is_some() {
            *self.counts.entry((Lang::Output, "shown".into())).or_default() += 1;
        }
    }

    fn of(&self, lang: Lang) -> (usize, String) {
        let parts: Vec<String> =
            self.counts.iter().filter(|((l, _), _)| *l == lang).map(|((_, k), n)| format!("{n} {k}")).collect();
        let total = self.counts.iter().filter(|((l, _), _)| *l == lang).map(|(_, n)| n).sum();
        (total, parts.join(", "))
    }

    fn count(&self, lang: Lang, kind: &str) -> usize {
        self.counts.get(&(lang, kind.to_string())).copied().unwrap_or(0)
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (rust, rust_parts) = self.of(Lang::Rust);
        let (python, python_parts) = self.of(Lang::Python);
        let rust_tested = rust - self.count(Lang::Rust, "ignore");
        let ignored = self.count(Lang::Rust, "ignore") + self.count(Lang::Python, "ignore");
        write!(
            f,
            "book: {} chapters; rust {rust} blocks ({rust_parts}) — {rust_tested} tested as rustdoc doctests; \
             python {python} blocks ({python_parts}) — {} executed, {} outputs compared; \
             {} mermaid, {} console, {} text shown; {ignored} ignored",
            self.chapters,
            self.python_executed,
            self.outputs_checked,
            self.count(Lang::Mermaid, "shown"),
            self.count(Lang::Console, "shown"),
            self.count(Lang::Text, "shown"),
        )
    }
}

/// Rust source that makes every chapter a rustdoc doctest: one item per chapter, documented by the
/// chapter's text, for `include!` inside a `#[cfg(doctest)]` module.
///
/// A chapter without includes is documented by the file itself, so rustdoc's line numbers are the
/// chapter's; a chapter with includes is first written out expanded below `expanded_dir`.
pub fn doctest_items(chapters: &[PathBuf], root: &Path, expanded_dir: &Path) -> Result<String, Problem> {
    let mut items = String::new();
    for file in chapters {
        let chapter = expand(file)?;
        let documented = if chapter.has_includes() {
            let out = expanded_dir.join(file.strip_prefix(root).unwrap_or(file));
            let write = |e: io::Error| Problem { at: Origin { file: file.clone(), line: 0 }, message: e.to_string() };
            fs::create_dir_all(out.parent().unwrap_or(expanded_dir)).map_err(write)?;
            fs::write(&out, &chapter.text).map_err(write)?;
            out
        } else {
            file.clone()
        };
        let documented = fs::canonicalize(&documented).unwrap_or(documented);
        let name: String = file
            .strip_prefix(root)
            .unwrap_or(file)
            .to_string_lossy()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
            .collect();
        items.push_str(&format!(
            "#[doc = include_str!({:?})]\n#[allow(non_camel_case_types)]\npub struct {name};\n",
            documented.to_string_lossy()
        ));
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expanded(text: &str) -> Expanded {
        let file = PathBuf::from("ch.md");
        let origins = (1..=text.lines().count()).map(|line| Origin { file: file.clone(), line }).collect();
        Expanded { file, text: text.to_string(), origins }
    }

    #[test]
    fn fence_words() {
        assert_eq!(read_fence("rust,no_run,noplayground"), Ok((Lang::Rust, Kind::NoRun)));
        assert_eq!(read_fence("python,raises=ValueError"), Ok((Lang::Python, Kind::Raises("ValueError".into()))));
        assert_eq!(read_fence("python raises=asyncio.CancelledError"), Ok((Lang::Python, Kind::Raises("asyncio.CancelledError".into()))));
        assert!(read_fence("rust,norun").unwrap_err().contains("norun"));
        assert!(read_fence("python,raise=X").unwrap_err().contains("raise=X"));
        assert!(read_fence("python,raises=").is_err());
        assert!(read_fence("").is_err());
        assert!(read_fence("rust,no_run,should_panic").unwrap_err().contains("two kinds"));
        assert!(read_fence("mermaid,ignore").is_err());
        assert!(read_fence("js").is_err());
        assert_eq!(read_fence("rust,compile_fail,E0308"), Ok((Lang::Rust, Kind::CompileFail(vec!["E0308".into()]))));
        assert_eq!(
            read_fence("rust,compile_fail,E0382,E0505"),
            Ok((Lang::Rust, Kind::CompileFail(vec!["E0382".into(), "E0505".into()])))
        );
        assert!(read_fence("rust,E0308").unwrap_err().contains("needs compile_fail"));
        assert!(read_fence("rust,compile_fail").unwrap_err().contains("needs the error code"));
    }

    fn only_block(md: &str) -> (Expanded, Block) {
        let chapter = expanded(md);
        let (mut blocks, problems) = parse(&chapter);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(blocks.len(), 1);
        (chapter, blocks.remove(0))
    }

    #[test]
    fn rust_programs_are_wrapped_like_rustdoc_wraps_them() {
        let md = "```rust,noplayground,edition2021\n# extern crate pyo3;\n#\n## [derive(Debug)] is shown\nlet x = 1;\n```\n";
        let (chapter, block) = only_block(md);
        let program = rust_program(&chapter, &block);
        assert_eq!(
            program.source,
            "#![allow(unused)]\nextern crate pyo3;\nfn main() {\n\n# [derive(Debug)] is shown\nlet x = 1;\n}\n"
        );
        let lines: Vec<Option<usize>> = program.origins.iter().map(|o| o.as_ref().map(|o| o.line)).collect();
        assert_eq!(lines, [None, Some(2), None, Some(3), Some(4), Some(5), None]);
        assert_eq!(program.extern_crates, ["pyo3"]);
        assert_eq!(program.edition.as_deref(), Some("2021"));

        let (chapter, block) = only_block("```rust\n# fn main() {\nlet x = 1;\n# }\n```\n");
        assert_eq!(rust_program(&chapter, &block).source, "#![allow(unused)]\nfn main() {\nlet x = 1;\n}\n");
        let (chapter, block) = only_block("```rust\nlet n: u8 = \"1\".parse()?;\nOk::<(), std::num::ParseIntError>(())\n```\n");
        assert!(rust_program(&chapter, &block).source.contains("fn _inner() -> Result<(), impl core::fmt::Debug>"));
    }

    #[test]
    fn error_codes_of_short_messages() {
        let stderr = "<anon>:6:14: error[E0308]: mismatched types: expected `u32`, found `&str`\n\
                      <anon>:7:1: error[E0382]: borrow of moved value: `m`\n\
                      <anon>:9:1: error[E0308]: mismatched types\n\
                      error: aborting due to 3 previous errors\n";
        assert_eq!(error_codes(stderr), ["E0308", "E0382"]);
        assert_eq!(error_codes("error[E0463]: can't find crate for `nope`\n"), ["E0463"]);
        assert!(error_codes("<anon>:1:1: error: expected one of `!` or `::`, found `x`\n").is_empty());
    }

    /// The check itself, with the real rustc: a wrong code fails and says which codes rustc gave,
    /// pointing at the chapter's lines; the right code passes; code that compiles fails.
    #[test]
    fn compile_fail_blocks_must_fail_with_their_code() {
        let out = std::env::temp_dir().join(format!("book-blocks-rustc-{}", std::process::id()));
        let check = |fence: &str, code: &str| {
            let (chapter, block) = only_block(&format!("# A chapter\n\n```{fence}\n{code}```\n"));
            let Kind::CompileFail(expected) = &block.kind else { panic!("{fence} is not compile_fail") };
            let rustc = Command::new(std::env::var_os("RUSTC").unwrap_or("rustc".into()));
            rust_program(&chapter, &block).check_compile_fail(expected, rustc, "2024", &out).map_err(|p| p.to_string())
        };
        let moved = "let message = String::from(\"moved\");\nlet taken = message;\nprintln!(\"{message} {taken}\");\n";

        assert_eq!(check("rust,compile_fail,E0382", moved), Ok(()));
        let wrong = check("rust,compile_fail,E0001", moved).unwrap_err();
        assert!(wrong.starts_with("ch.md:3: compile_fail block should fail with E0001, but rustc reported E0382:\n"), "{wrong}");
        assert!(wrong.contains("\nch.md:6:"), "rustc's message names the chapter line of the println: {wrong}");
        let both = check("rust,compile_fail,E0382,E0308", moved).unwrap_err();
        assert!(both.contains("should fail with E0382, E0308, but rustc reported E0382"), "{both}");
        let fine = check("rust,compile_fail,E0382", "let message = 1;\n").unwrap_err();
        assert!(fine.contains("compiled without error"), "{fine}");
        let _ = fs::remove_dir_all(&out);
    }

    #[test]
    fn output_attaches_to_the_python_block_before_it() {
        let md = "# T\n\n```python\nprint(1)\n```\n\nIt prints:\n\n```output\n1\n```\n";
        let (blocks, problems) = parse(&expanded(md));
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].at.line, 3);
        let (at, text) = blocks[0].output.as_ref().unwrap();
        assert_eq!((at.line, text.as_str()), (9, "1\n"));
    }

    #[test]
    fn stray_output_and_indented_code_are_problems() {
        let md = "```rust\nfn main() {}\n```\n\n```output\nx\n```\n\n    let x = 1;\n";
        let (_, problems) = parse(&expanded(md));
        let lines: Vec<usize> = problems.iter().map(|p| p.at.line).collect();
        assert_eq!(lines, vec![5, 9]);
    }

    #[test]
    fn blocks_using_our_crates_stay_off_the_playground() {
        let md = "```rust\n# extern crate book_blocks;\n```\n\n```rust,noplayground\n# extern crate book_blocks;\n```\n";
        let (_, problems) = parse(&expanded(md));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].at.line, 1);
    }

    #[test]
    fn ignore_needs_a_reason() {
        let with = "Not run: it waits for Ctrl+C.\n\n```python,ignore\nwhile True: pass\n```\n";
        let without = "Some prose.\n\n```python,ignore\nwhile True: pass\n```\n";
        assert!(parse(&expanded(with)).1.is_empty());
        assert_eq!(parse(&expanded(without)).1.len(), 1);
    }

    #[test]
    fn hidden_python_lines_and_line_numbers() {
        let md = "text\n\n```python\n~ import sys\n~\nprint(sys.version_info[0])\n```\n";
        let (blocks, _) = parse(&expanded(md));
        let source = python_source(&blocks[0]);
        let lines: Vec<&str> = source.lines().collect();
        assert_eq!(lines[3], "import sys");
        assert_eq!(lines[4], "");
        assert_eq!(lines[5], "print(sys.version_info[0])");
    }

    #[test]
    fn includes_keep_their_origin() {
        let dir = std::env::temp_dir().join(format!("book-blocks-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("listing.py"), "import os\n# ANCHOR: body\n    x = 1\n    y = 2\n# ANCHOR_END: body\n").unwrap();
        fs::write(dir.join("ch.md"), "# T\n\n```python\n{{#include listing.py:body}}\n```\n").unwrap();
        let e = expand(&dir.join("ch.md")).unwrap();
        assert_eq!(e.text, "# T\n\n```python\nx = 1\ny = 2\n```\n");
        assert_eq!(e.origins[3], Origin { file: dir.join("listing.py"), line: 3 });
        assert!(e.has_includes());
        fs::write(dir.join("whole.md"), "```rust\n{{#rustdoc_include listing.py:body}}\n```\n").unwrap();
        assert_eq!(expand(&dir.join("whole.md")).unwrap().text, "```rust\n# import os\n    x = 1\n    y = 2\n```\n");
        fs::write(dir.join("escaped.md"), "mdBook's `\\{{#include}}` as text\n").unwrap();
        assert_eq!(expand(&dir.join("escaped.md")).unwrap().text, "mdBook's `{{#include}}` as text\n");
        fs::write(dir.join("bad.md"), "{{#playground x.rs}}\n").unwrap();
        assert!(expand(&dir.join("bad.md")).unwrap_err().message.contains("unsupported"));
        fs::write(dir.join("missing.md"), "{{#include listing.py:nope}}\n").unwrap();
        assert!(expand(&dir.join("missing.md")).unwrap_err().message.contains("no ANCHOR"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
