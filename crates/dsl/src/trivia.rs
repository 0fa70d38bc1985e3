//! Comments: found by one linear scan of the text, then handed out to statements in
//! source order by a cursor.
//!
//! The grammar skips comments (so the pairs stay small); the parser asks this cursor for
//! the comments before each statement and for the one at the end of its line. Because
//! statements are built in source order, every comment is handed out exactly once, and a
//! comment in an odd place (inside a statement that spans lines) becomes a leading
//! comment of that statement rather than being lost.

use crate::ast::{Comment, Span, Trivia};

/// All comments of a file, and how many have been handed out.
pub(crate) struct CommentCursor<'t> {
    text: &'t str,
    comments: Vec<Comment>,
    next: usize,
}

impl<'t> CommentCursor<'t> {
    /// Scans `text` for `//` comments outside string literals.
    pub(crate) fn new(text: &'t str) -> CommentCursor<'t> {
        CommentCursor { text, comments: scan(text), next: 0 }
    }

    /// `end` moved back over blanks and comments: pest spans of rules that end in an
    /// optional part (`dim x`, `op operand*`) include the blanks and comments after them.
    pub(crate) fn trim_end(&self, start: usize, mut end: usize) -> usize {
        loop {
            let trimmed = start + self.text[start..end].trim_end().len();
            let comment = self.comments.binary_search_by_key(&trimmed, |comment| comment.span.end);
            match comment {
                Ok(index) if self.comments[index].span.start >= start => end = self.comments[index].span.start,
                _ => return trimmed,
            }
        }
    }

    /// Every comment not yet handed out that starts before `pos`.
    pub(crate) fn take_before(&mut self, pos: usize) -> Vec<Comment> {
        let start = self.next;
        while self.next < self.comments.len() && self.comments[self.next].span.start < pos {
            self.next += 1;
        }
        self.comments[start..self.next].to_vec()
    }

    /// The next comment, if it is on the same line as `end` with only blanks between.
    pub(crate) fn take_trailing(&mut self, end: usize) -> Option<Comment> {
        let comment = self.comments.get(self.next)?;
        let between = self.text.get(end..comment.span.start)?;
        if !between.bytes().all(|byte| byte == b' ' || byte == b'\t') {
            return None;
        }
        self.next += 1;
        Some(comment.clone())
    }

    /// The trivia of a statement ending at `end`: comments before its end, and the one
    /// after it on its last line.
    pub(crate) fn statement(&mut self, end: usize) -> Trivia {
        let leading = self.take_before(end);
        let trailing = self.take_trailing(end);
        Trivia { leading, trailing }
    }
}

/// The comments of `text` in order. Strings are skipped with the same rules as the
/// grammar (a backslash escapes the next character; a line break ends an unterminated
/// literal), so `"a//b"` is no comment.
pub(crate) fn scan(text: &str) -> Vec<Comment> {
    let bytes = text.as_bytes();
    let mut comments = Vec::new();
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'"' => {
                index += 1;
                while index < bytes.len() && bytes[index] != b'"' && bytes[index] != b'\n' {
                    index += if bytes[index] == b'\\' { 2 } else { 1 };
                }
                index += 1;
            }
            b'/' if bytes.get(index + 1) == Some(&b'/') => {
                let end = text[index..].find('\n').map_or(text.len(), |offset| index + offset);
                // Trailing blanks (and the `\r` of a CRLF line end) are not part of it.
                let body = text[index + 2..end].trim_end();
                comments.push(Comment { text: body.to_owned(), span: Span::new(index, index + 2 + body.len()) });
                index = end;
            }
            _ => index += 1,
        }
    }
    comments
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_hide_slashes() {
        let found = scan("a \"x//y\\\"//z\" // one  \n\"//\" b //two");
        let texts: Vec<&str> = found.iter().map(|comment| comment.text.as_str()).collect();
        assert_eq!(texts, [" one", "two"]);
    }

    #[test]
    fn trailing_needs_the_same_line() {
        let text = "x // same\n// next\ny";
        let mut cursor = CommentCursor::new(text);
        assert_eq!(cursor.take_trailing(1).map(|comment| comment.text), Some(" same".to_owned()));
        assert_eq!(cursor.take_trailing(1), None);
        assert_eq!(cursor.take_before(text.len()).len(), 1);
    }
}
