//! The error catalogue (`book/src/errors.md`) covers every error the tool can give.
//!
//! The test reads the source at run time: every variant of every error enum (those listed
//! in [`ENUMS`], which must exist where listed, and any other enum deriving
//! `thiserror::Error` in the crates, the CLI or the facade) must appear as `` `Variant` ``
//! under the heading `` ### `Enum` `` of the catalogue, and every diagnostic code a library
//! emits (`Diagnostic::error("code", …)`, `Diagnostic::warning(…)`, `operands.error("code",
//! …)`) as `` `code` `` in its `## Diagnostic codes` section. A failure lists exactly what is
//! missing and where to add it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The error enums the catalogue must cover, with their files. A renamed or moved enum
/// fails here, so the catalogue cannot silently lose a section.
const ENUMS: &[(&str, &str)] = &[
    ("crates/engine/src/error.rs", "ReadErrorKind"),
    ("crates/engine/src/error.rs", "WriteErrorKind"),
    ("crates/engine/src/verify.rs", "ProblemKind"),
    ("crates/engine/src/view.rs", "ViewError"),
    ("crates/torch/src/error.rs", "ErrorKind"),
    ("crates/torch/src/error.rs", "ZipError"),
    ("crates/torch/src/error.rs", "PickleError"),
    ("crates/model/src/instantiate.rs", "InstantiateError"),
    ("crates/model/src/meta_dim.rs", "MetaDimError"),
    ("crates/model/src/pattern.rs", "FillError"),
    ("crates/model/src/pattern.rs", "EvalErrorKind"),
    ("crates/ops/src/operation.rs", "OpErrorKind"),
    ("crates/ops/src/kernel.rs", "EvalError"),
    ("crates/ops/src/expr.rs", "ShapeError"),
    ("crates/ops/src/cast.rs", "CastError"),
    ("crates/graph/src/compile.rs", "CompileError"),
    ("crates/graph/src/detect.rs", "DetectError"),
    ("crates/graph/src/plan.rs", "PlanError"),
    ("crates/graph/src/registry.rs", "LoadError"),
    ("crates/graph/src/synth.rs", "SynthError"),
    ("crates/graph/src/version_id.rs", "VersionIdError"),
    ("crates/evolve/src/layout_json.rs", "LayoutJsonError"),
    ("crates/evolve/src/infer.rs", "InferError"),
    ("src/open.rs", "OpenError"),
    ("src/batch.rs", "BatchError"),
    ("src/batch.rs", "FileError"),
    ("src/convert.rs", "ConvertError"),
    ("src/batch/inputs.rs", "InputError"),
    ("crates/cli/commands/fmt.rs", "FmtError"),
];

const CATALOGUE: &str = "book/src/errors.md";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_error_and_diagnostic_code_is_in_the_catalogue() {
    let catalogue = std::fs::read_to_string(root().join(CATALOGUE)).unwrap();
    let sections = sections(&catalogue);
    let mut missing = Vec::new();

    let mut enums: BTreeMap<String, (PathBuf, Vec<String>)> = BTreeMap::new();
    for file in source_files() {
        let text = strip_test_modules(&std::fs::read_to_string(root().join(&file)).unwrap());
        for found in error_enums(&text) {
            enums.insert(found.name.clone(), (file.clone(), found.variants));
        }
        if !file.starts_with("crates/cli") && !file.starts_with("src") {
            for code in diagnostic_codes(&text) {
                let listed = sections.get("Diagnostic codes").is_some_and(|names| names.contains(&code));
                if !listed {
                    missing.push(format!(
                        "diagnostic code `{code}` ({}): add a row with `{code}` under `## Diagnostic codes`",
                        file.display()
                    ));
                }
            }
        }
    }
    for (file, name) in ENUMS {
        match enums.get(*name) {
            Some((found_in, _)) if found_in == Path::new(file) => {}
            Some((found_in, _)) => missing.push(format!(
                "enum `{name}` moved from {file} to {}: update ENUMS in tests/catalogue.rs",
                found_in.display()
            )),
            None => missing.push(format!(
                "enum `{name}` is no longer in {file} (renamed or removed?): update ENUMS in tests/catalogue.rs and {CATALOGUE}"
            )),
        }
    }
    for (name, (file, variants)) in &enums {
        let Some(listed) = sections.get(name.as_str()) else {
            missing.push(format!(
                "enum `{name}` ({}) has no section: add a heading ### `{name}` with a row per variant: {}",
                file.display(),
                variants.join(", ")
            ));
            continue;
        };
        for variant in variants {
            if !listed.contains(variant) {
                missing.push(format!(
                    "`{name}::{variant}` ({}): add a row with `{variant}` under ### `{name}`",
                    file.display()
                ));
            }
        }
    }
    let stale: Vec<&str> = sections
        .keys()
        .map(String::as_str)
        .filter(|name| *name != "Diagnostic codes" && !enums.contains_key(*name))
        .collect();
    for name in stale {
        missing.push(format!("{CATALOGUE} has a section ### `{name}` but no such error enum exists: remove it"));
    }
    assert!(missing.is_empty(), "{CATALOGUE} is incomplete:\n  {}", missing.join("\n  "));
}

/// The scanner itself: variants through attributes with braces in strings, codes in
/// both forms, test modules ignored.
#[test]
fn the_scanner_finds_variants_and_codes() {
    let text = r#"
/// Doc.
#[derive(Debug, thiserror::Error)]
pub enum SomeError {
    /// A { brace in a doc.
    #[error("`{name}` bad {{")]
    Bad { name: String, inner: Vec<(u8, u8)> },
    #[error("x")]
    Plain(#[from] std::io::Error),
    Unit,
}
pub enum NotAnError { A }
fn f() {
    Diagnostic::error("kebab-code", "m", s, span);
    Diagnostic::error(
        if x { "first-code" } else { "second-code" },
        "m", s, span);
    operands.error("op-code", "m", span);
    self.error(Some("w"), kind);
    self.error(code, kind);
}
#[cfg(test)]
mod tests {
    fn g() { Diagnostic::error("test-only", "m", s, span); }
}
"#;
    let text = strip_test_modules(text);
    let enums = error_enums(&text);
    assert_eq!(enums.len(), 1);
    assert_eq!(enums[0].name, "SomeError");
    assert_eq!(enums[0].variants, ["Bad", "Plain", "Unit"]);
    assert_eq!(diagnostic_codes(&text), ["kebab-code", "first-code", "second-code", "op-code"]);
}

/// `crates/*/src/**.rs`, `crates/cli/**.rs` and `src/**.rs`, relative to the root.
fn source_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs: Vec<PathBuf> = vec![PathBuf::from("src"), PathBuf::from("crates/cli")];
    for entry in std::fs::read_dir(root().join("crates")).unwrap() {
        let path = entry.unwrap().path();
        if path.join("src").is_dir() {
            dirs.push(path.strip_prefix(root()).unwrap().join("src"));
        }
    }
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(root().join(&dir)).unwrap() {
            let entry = entry.unwrap();
            let relative = dir.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                dirs.push(relative);
            } else if relative.extension().is_some_and(|ext| ext == "rs") {
                let name = entry.file_name();
                // Test-only modules (`#[cfg(test)] mod tests;` in their own files).
                if name != "tests.rs" && name != "testutil.rs" {
                    files.push(relative);
                }
            }
        }
    }
    files.sort();
    files
}

/// The catalogue's `` ### `Name` `` sections (and `## Diagnostic codes`), each with the
/// backquoted words in it.
fn sections(catalogue: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut sections: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in catalogue.lines() {
        if let Some(heading) = line.strip_prefix("### ") {
            current = Some(heading.trim().trim_matches('`').to_owned());
        } else if line.starts_with("## ") {
            current = (line.trim() == "## Diagnostic codes").then(|| "Diagnostic codes".to_owned());
        } else if let Some(name) = &current {
            let words = sections.entry(name.clone()).or_default();
            words.extend(line.split('`').skip(1).step_by(2).map(str::to_owned));
            continue;
        } else {
            continue;
        }
        if let Some(name) = &current {
            sections.entry(name.clone()).or_default();
        }
    }
    sections
}

/// `text` without `#[cfg(test)] mod NAME { … }` blocks.
fn strip_test_modules(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "#[cfg(test)]".len()..];
        let trimmed = after.trim_start();
        let is_inline_module = trimmed.starts_with("mod ")
            && trimmed.find('{').is_some_and(|brace| trimmed.find(';').is_none_or(|semicolon| brace < semicolon));
        if !is_inline_module {
            rest = after;
            continue;
        }
        let open = after.find('{').unwrap();
        let close = matching(after, open).unwrap_or(after.len());
        rest = &after[close..];
    }
    out.push_str(rest);
    out
}

/// The index just past the bracket closing the one at `open`, skipping strings, chars
/// and comments.
fn matching(text: &str, open: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut index = open;
    while index < bytes.len() {
        match bytes[index] {
            b'"' => index = skip_string(bytes, index),
            b'/' if bytes.get(index + 1) == Some(&b'/') => {
                while index < bytes.len() && bytes[index] != b'\n' {
                    index += 1;
                }
            }
            // A char literal like '{' (but not a lifetime like 'a).
            b'\'' if bytes.get(index + 2) == Some(&b'\'') => index += 2,
            b'\'' if bytes.get(index + 1) == Some(&b'\\') => {
                index += 2;
                while index < bytes.len() && bytes[index] != b'\'' {
                    index += 1;
                }
            }
            b'{' | b'(' | b'[' => depth += 1,
            b'}' | b')' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(index + 1);
                }
            }
            _ => {}
        }
        index += 1;
    }
    None
}

/// The index of the closing quote of the string starting at `start`.
fn skip_string(bytes: &[u8], start: usize) -> usize {
    let mut index = start + 1;
    while index < bytes.len() && bytes[index] != b'"' {
        index += if bytes[index] == b'\\' { 2 } else { 1 };
    }
    index
}

struct ErrorEnum {
    name: String,
    variants: Vec<String>,
}

/// Enums deriving `thiserror::Error`, and those in [`ENUMS`] that do not (plain `Display`).
fn error_enums(text: &str) -> Vec<ErrorEnum> {
    let mut found = Vec::new();
    let mut search = 0;
    while let Some(at) = text[search..].find("pub enum ") {
        let start = search + at;
        search = start + "pub enum ".len();
        let name: String = text[search..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        // The attributes right above: back to the previous blank line or item end.
        let above = &text[..start];
        let attributes_start = above.rfind(['}', ';']).map_or(0, |index| index + 1);
        let attributes = &above[attributes_start..];
        let derives_error = attributes.contains("thiserror::Error") || attributes.contains(" Error)");
        let listed = ENUMS.iter().any(|(_, listed)| *listed == name);
        if !derives_error && !listed {
            continue;
        }
        let Some(open) = text[search..].find('{').map(|index| search + index) else { continue };
        let Some(close) = matching(text, open) else { continue };
        found.push(ErrorEnum { name, variants: variants(&text[open + 1..close - 1]) });
    }
    found
}

/// The variant names of an enum body: identifiers at depth 0 at the start or after a comma.
fn variants(body: &str) -> Vec<String> {
    let bytes = body.as_bytes();
    let mut names = Vec::new();
    let mut expecting = true;
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'/' if bytes.get(index + 1) == Some(&b'/') => {
                while index < bytes.len() && bytes[index] != b'\n' {
                    index += 1;
                }
            }
            b'#' | b'{' | b'(' | b'[' => {
                let open = if bytes[index] == b'#' { index + 1 } else { index };
                index = matching(body, open).unwrap_or(bytes.len());
                continue;
            }
            b',' => expecting = true,
            byte if byte.is_ascii_uppercase() && expecting => {
                let name: String = body[index..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                index += name.len();
                names.push(name);
                expecting = false;
                continue;
            }
            _ => {}
        }
        index += 1;
    }
    names
}

/// Codes given as a string literal (or an `if … { "a" } else { "b" }`) as the first
/// argument of `Diagnostic::error`, `Diagnostic::warning`, `.error`, `.error_with_hint`
/// or `.warning`.
fn diagnostic_codes(text: &str) -> Vec<String> {
    let mut codes = Vec::new();
    let mut index = 0;
    while index < text.len() {
        let rest = &text[index..];
        let Some(call) = ["Diagnostic::error(", "Diagnostic::warning(", ".error(", ".error_with_hint(", ".warning("]
            .iter()
            .filter_map(|call| rest.find(call).map(|at| (at, call.len())))
            .min()
        else {
            break;
        };
        let argument_start = index + call.0 + call.1;
        index = argument_start;
        let argument = first_argument(&text[argument_start..]);
        let argument = argument.trim();
        let literals: Vec<&str> = argument.split('"').skip(1).step_by(2).collect();
        let is_literal = argument.starts_with('"') && literals.len() == 1;
        let is_choice = argument.starts_with("if ") && argument.contains("else");
        if is_literal || is_choice {
            codes.extend(literals.iter().filter(|literal| is_code(literal)).map(|literal| (*literal).to_owned()));
        }
    }
    codes
}

/// Up to the first comma (or closing parenthesis) at depth 0.
fn first_argument(text: &str) -> &str {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'"' => index = skip_string(bytes, index),
            b'{' | b'(' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b')' if depth == 0 => return &text[..index],
            b')' => depth -= 1,
            b',' if depth == 0 => return &text[..index],
            _ => {}
        }
        index += 1;
    }
    text
}

fn is_code(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_lowercase())
        && text.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}
