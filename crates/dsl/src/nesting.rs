//! A bound on bracket nesting, checked before parsing.
//!
//! The parser, the tree and every pass over it recurse once per nesting level (JSON
//! arrays in arrays, parentheses in parentheses). Hostile input with a million `[` would
//! overflow the stack, so a linear scan rejects nesting deeper than [`MAX_DEPTH`] first.

use crate::ast::Span;
use crate::diagnostic::{Diagnostic, SourceId};

/// The deepest nesting of `(`, `[` and `{` accepted. Real files use about five levels.
pub(crate) const MAX_DEPTH: usize = 64;

/// Checks the nesting of `text` outside string literals and comments (`in_pattern`:
/// `text` is the content of a name pattern, where there are no strings or comments).
/// `offset` is the file offset of `text`.
pub(crate) fn check(source: SourceId, text: &str, offset: usize, in_pattern: bool) -> Option<Diagnostic> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'"' if !in_pattern => {
                index += 1;
                while index < bytes.len() && bytes[index] != b'"' && bytes[index] != b'\n' {
                    index += if bytes[index] == b'\\' { 2 } else { 1 };
                }
            }
            b'/' if !in_pattern && bytes.get(index + 1) == Some(&b'/') => {
                while index < bytes.len() && bytes[index] != b'\n' {
                    index += 1;
                }
            }
            // `{{` in a pattern is a literal brace, not a level.
            b'{' | b'}' if in_pattern && bytes.get(index + 1) == Some(&bytes[index]) => index += 1,
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    let span = Span::new(offset + index, offset + index + 1);
                    return Some(
                        Diagnostic::error("too-deep", format!("nesting deeper than {MAX_DEPTH} levels"), source, span)
                            .with_label("this bracket is one level too deep")
                            .with_hint("split the value into smaller pieces"),
                    );
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        index += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_nesting_is_refused_at_the_first_bracket_too_many() {
        let text = format!("x {}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        let diagnostic = check(SourceId(0), &text, 0, false).unwrap();
        assert_eq!(diagnostic.primary.span, Span::new(2 + MAX_DEPTH, 3 + MAX_DEPTH));
        let shallow = format!("{}{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(check(SourceId(0), &shallow, 0, false).is_none());
    }

    #[test]
    fn strings_and_comments_do_not_count() {
        let text = format!("\"{}\" // {}", "[".repeat(100), "(".repeat(100));
        assert!(check(SourceId(0), &text, 0, false).is_none());
    }
}
