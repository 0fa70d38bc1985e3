//! Diagnostics as plain data: what is wrong, where, and what might fix it.
//!
//! Every pure layer (language, schemas, graph) reports problems as [`Diagnostic`]s and
//! keeps going, so one run shows every bad line of a registry. Rendering (source
//! snippets, colours) happens at the edge, in the CLI.

use crate::ast::Span;

/// Identifies one source text (a registry file) among those loaded together.
///
/// The loader that reads the files hands these out; the language layer only carries them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SourceId(pub u32);

/// How bad a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// The registry or checkpoint cannot be used as it is.
    Error,
    /// Worth a look; nothing is refused.
    Warning,
}

/// A span in a given source, with a short message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    /// Which source text.
    pub source: SourceId,
    /// Where in it.
    pub span: Span,
    /// What to say there (may be empty).
    pub message: String,
}

/// One problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// A stable kebab-case code (`unknown-dim`, `expected-token`), listed in the book's
    /// error catalogue.
    pub code: &'static str,
    /// Error or warning.
    pub severity: Severity,
    /// One line, no trailing period, names in backticks.
    pub message: String,
    /// The main place; its message is shown under the caret.
    pub primary: Label,
    /// Further places, possibly in other sources (the target schema of a migration).
    pub secondary: Vec<Label>,
    /// Suggestions, one per line (`did you mean `split-heads`?`).
    pub hints: Vec<String>,
}

impl Diagnostic {
    /// An error with `code` and `message` at `span` of `source`.
    pub fn error(code: &'static str, message: impl Into<String>, source: SourceId, span: Span) -> Diagnostic {
        Diagnostic {
            code,
            severity: Severity::Error,
            message: message.into(),
            primary: Label { source, span, message: String::new() },
            secondary: Vec::new(),
            hints: Vec::new(),
        }
    }

    /// A warning with `code` and `message` at `span` of `source`.
    pub fn warning(code: &'static str, message: impl Into<String>, source: SourceId, span: Span) -> Diagnostic {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(code, message, source, span) }
    }

    /// Sets the text under the primary caret.
    pub fn with_label(mut self, message: impl Into<String>) -> Diagnostic {
        self.primary.message = message.into();
        self
    }

    /// Adds a secondary place.
    pub fn with_secondary(mut self, source: SourceId, span: Span, message: impl Into<String>) -> Diagnostic {
        self.secondary.push(Label { source, span, message: message.into() });
        self
    }

    /// Adds a hint line.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hints.push(hint.into());
        self
    }

    /// Whether this is an error (not a warning).
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Candidates close to `name` for a "did you mean" hint, best first (edit distance ≤ 2,
/// or a prefix match).
pub fn similar<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut scored: Vec<(usize, &str)> = candidates
        .into_iter()
        .filter_map(|candidate| {
            let distance = edit_distance(name, candidate);
            let close = distance <= 2.min(name.len().max(1)) || candidate.starts_with(name) && !name.is_empty();
            close.then_some((distance, candidate))
        })
        .collect();
    scored.sort();
    scored.dedup();
    scored.into_iter().map(|(_, candidate)| candidate).collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b_chars: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b_chars.len()).collect();
    for (i, a_char) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, b_char) in b_chars.iter().enumerate() {
            let substitution = previous[j] + usize::from(a_char != *b_char);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b_chars.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similar_finds_close_names() {
        assert_eq!(similar("split_heads", ["split-heads", "split", "merge-heads"]), vec!["split-heads"]);
        assert_eq!(similar("renam", ["rename", "reshape"]), vec!["rename"]);
        assert!(similar("zzz", ["rename"]).is_empty());
    }
}
