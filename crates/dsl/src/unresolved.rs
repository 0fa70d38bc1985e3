//! Questions a drafted migration leaves to its author.
//!
//! `safeshift diff --draft` writes what it cannot decide (the order of a split's parts, a
//! new tensor's values) as a comment starting with [`UNRESOLVED_MARKER`]. The comment is
//! valid syntax, so the draft formats and parses, but every such comment is an error
//! (`unresolved-draft`) until the author answers the question and deletes the comment.

use crate::diagnostic::{Diagnostic, SourceId};

/// The text a comment starts with (after `//` and blanks) to mark an open question.
pub const UNRESOLVED_MARKER: &str = "UNRESOLVED:";

/// One error per marked comment of `text`.
pub fn unresolved(source: SourceId, text: &str) -> Vec<Diagnostic> {
    crate::trivia::scan(text)
        .into_iter()
        .filter(|comment| comment.text.trim_start().starts_with(UNRESOLVED_MARKER))
        .map(|comment| {
            let question = comment.text.trim_start()[UNRESOLVED_MARKER.len()..].trim().to_owned();
            Diagnostic::error(
                "unresolved-draft",
                format!("unresolved question in a drafted migration: {question}"),
                source,
                comment.span,
            )
            .with_label("answer it, then delete this comment")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marked_comments_are_errors_and_others_are_not() {
        let text = "// fine\nmigration a 1.0.0 -> 2.0.0 {\n    // UNRESOLVED: which order?\n    rename \"// UNRESOLVED: no\" -> \"b\"\n}\n";
        let found = unresolved(SourceId(0), text);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].code, "unresolved-draft");
        assert_eq!(found[0].message, "unresolved question in a drafted migration: which order?");
        assert_eq!(&text[found[0].primary.span.start..found[0].primary.span.end], "// UNRESOLVED: which order?");
    }
}
