//! The book cannot drift from the grammar: every ```` ```safeshift ```` block in
//! `book/src/**/*.md` must parse and check clean (blocks tagged ```` ```safeshift,error ````
//! must fail), and `format` must be idempotent on each of them and on every `.ss` file of
//! the repository's `schemas/` and `migrations/`.
//!
//! A block of bare operations (no `schema` or `migration` item) is checked as the body of a
//! migration. Syntax templates (`cast SRC to DTYPE [lossy]`) are not code: they are tagged
//! ```` ```safeshift,syntax ```` and skipped; an untagged block with template placeholders
//! (an all-capitals word outside strings, `…`, `a | b`, or an optional part like
//! `[optional]`) is recognised as one too.

use std::path::{Path, PathBuf};

use crate::{check, format, parse, SourceId};

/// One fenced example of the book.
pub(crate) struct Example {
    /// The Markdown file and the line of the opening fence.
    pub location: String,
    /// The code between the fences.
    pub code: String,
    /// Tagged `safeshift,error`: it shows a mistake.
    pub expect_error: bool,
}

/// Whether a block is a syntax template rather than code: tagged `syntax`, or written
/// with placeholders (`SRC`, `DTYPE`, `…`) outside string literals and comments.
fn is_template(tags: &[&str], code: &str) -> bool {
    if tags.contains(&"syntax") {
        return true;
    }
    code.lines().any(|line| {
        let code_part = line.split("//").next().unwrap_or("");
        let mut outside = String::new();
        for (index, piece) in code_part.split('"').enumerate() {
            if index % 2 == 0 {
                outside.push_str(piece);
                outside.push(' ');
            }
        }
        // Alternatives `(a | b)` and optional parts `[optional]`, `[at "path"]` are template
        // notation, never code.
        outside.contains('…')
            || outside.contains(" | ")
            || crate::ast::KEYWORDS
                .iter()
                .chain(crate::ast::FLAGS)
                .any(|word| outside.contains(&format!("[{word} ")) || outside.contains(&format!("[{word}]")))
            || outside
                .split(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                .any(|word| word.len() >= 2 && word.chars().all(|ch| ch.is_ascii_uppercase() || ch == '_'))
    })
}

/// A block of bare operations, wrapped in a migration so it parses as a file.
fn as_file(code: &str) -> String {
    let starts_with_item = code
        .lines()
        .map(str::trim_start)
        .find(|line| !line.is_empty() && !line.starts_with("//"))
        .is_some_and(|line| line.starts_with("schema") || line.starts_with("migration"));
    if starts_with_item {
        code.to_owned()
    } else {
        format!("migration book.example 0.0.0 -> 0.0.1 {{\n{code}}}\n")
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Files below `dir` (recursively) whose name ends with `extension`, sorted.
fn files(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            found.extend(files(&path, extension));
        } else if path.to_string_lossy().ends_with(extension) {
            found.push(path);
        }
    }
    found.sort();
    found
}

/// Every `safeshift` fenced block of the book that is code (fragments wrapped).
pub(crate) fn examples() -> Vec<Example> {
    let mut examples = Vec::new();
    for path in files(&repo_root().join("book/src"), ".md") {
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines = text.lines().enumerate();
        while let Some((number, line)) = lines.next() {
            let Some(info) = line.trim_start().strip_prefix("```") else {
                continue;
            };
            let tags: Vec<&str> = info.split(',').map(str::trim).collect();
            if tags.first() != Some(&"safeshift") {
                // Skip the body of other fenced blocks so their content is not read as fences.
                for (_, inner) in lines.by_ref() {
                    if inner.trim_start().starts_with("```") {
                        break;
                    }
                }
                continue;
            }
            let mut code = String::new();
            for (_, inner) in lines.by_ref() {
                if inner.trim_start().starts_with("```") {
                    break;
                }
                code.push_str(inner);
                code.push('\n');
            }
            if is_template(&tags, &code) {
                continue;
            }
            examples.push(Example {
                location: format!("{}:{}", path.display(), number + 1),
                code: as_file(&code),
                expect_error: tags.contains(&"error"),
            });
        }
    }
    examples
}

#[test]
fn book_examples_parse_and_check() {
    let examples = examples();
    assert!(examples.len() >= 10, "found only {} examples", examples.len());
    for example in &examples {
        let diagnostics = match parse(SourceId(0), &example.code) {
            Ok(file) => check(SourceId(0), &file),
            Err(diagnostics) => diagnostics,
        };
        if example.expect_error {
            assert!(!diagnostics.is_empty(), "{}: tagged `error` but is accepted", example.location);
        } else {
            assert!(diagnostics.is_empty(), "{}: {diagnostics:#?}", example.location);
        }
    }
}

#[test]
fn format_is_idempotent_on_book_examples_and_registry_files() {
    let mut texts: Vec<(String, String)> = examples()
        .into_iter()
        .filter(|example| !example.expect_error)
        .map(|example| (example.location, example.code))
        .collect();
    for folder in ["schemas", "migrations"] {
        for path in files(&repo_root().join(folder), ".ss") {
            texts.push((path.display().to_string(), std::fs::read_to_string(&path).unwrap()));
        }
    }
    for (location, text) in texts {
        let file = parse(SourceId(0), &text).unwrap_or_else(|err| panic!("{location}: {err:#?}"));
        let once = format(&file);
        let twice = format(&parse(SourceId(0), &once).unwrap_or_else(|err| panic!("{location}: {err:#?}\n{once}")));
        assert_eq!(once, twice, "{location}: format is not idempotent");
    }
}
