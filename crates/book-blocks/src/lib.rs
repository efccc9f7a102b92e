//! Reads the book's chapters into the code blocks that the test suite executes.
//!
//! Taught in the appendix *How this book is tested* (`book/src/appendix/testing.md`).
//!
//! The crate knows nothing of Python or rustdoc; it only reads markdown:
//!
//! 1. [`expand`] replaces mdBook's `{{#include file:anchor}}` and `{{#rustdoc_include …}}` lines with the lines they name, and keeps,
//!    for every line of the result, the file and line it came from ([`Origin`]), so that a failure in an
//!    included listing is reported where the reader can fix it.
//! 2. [`parse`] finds every code block with pulldown-cmark and reads its fence words into a [`Block`].
//!    A word the book does not define is a [`Problem`], never a silent skip: a typo such as `rust,norun`
//!    would otherwise turn a tested block into an untested one.
//! 3. [`Summary`] counts blocks by language and kind, for the one line the test run prints.
//!
//! # Fence words
//!
//! | fence | meaning |
//! |---|---|
//! | `rust` | a rustdoc doctest; may add `no_run`, `should_panic`, `compile_fail` (with the expected error code, `E0308`), `ignore`, `noplayground`, `editable`, `editionYYYY` |
//! | `python` | run in the chapter's namespace; may add `raises=Name` or `ignore` |
//! | `output` | the exact stdout of the code block before it |
//! | `mermaid` | a diagram, rendered by the browser test |
//! | `console` | commands for the reader to type, shown and never run |
//! | `text` | shown as it is: a compiler error under the `compile_fail` block that causes it, a traceback |
//!
//! `ignore` needs its reason on the line above the fence, written `Not run: why`.

use pulldown_cmark::{CodeBlockKind, Event, Parser, Tag, TagEnd};
use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

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
    /// Rust: must fail to compile.
    CompileFail,
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
            Kind::CompileFail => "compile_fail",
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
                        blocks.push(Block { lang, kind, at, expanded_line: line, code: code.clone(), output: None });
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
    let mut error_code = None;
    let mut kind = match lang {
        Lang::Rust | Lang::Python => Kind::Run,
        _ => Kind::Shown,
    };
    for word in words {
        let new_kind = match (lang, word) {
            (Lang::Rust, "no_run") => Kind::NoRun,
            (Lang::Rust, "should_panic") => Kind::ShouldPanic,
            (Lang::Rust, "compile_fail") => Kind::CompileFail,
            (Lang::Rust | Lang::Python, "ignore") => Kind::Ignore,
            (Lang::Rust, w) if RUST_WORDS.contains(&w) => continue,
            (Lang::Rust, w) if w.len() == 5 && w.starts_with('E') && w[1..].chars().all(|c| c.is_ascii_digit()) => {
                error_code = Some(w);
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
    if let Some(code) = error_code.filter(|_| kind != Kind::CompileFail) {
        return Err(format!("error code {code} in fence {info:?} needs compile_fail"));
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
        assert_eq!(read_fence("rust,compile_fail,E0308"), Ok((Lang::Rust, Kind::CompileFail)));
        assert!(read_fence("rust,E0308").unwrap_err().contains("needs compile_fail"));
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
