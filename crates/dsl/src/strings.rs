//! String literals: resolving escapes when parsing, writing them back when formatting.
//!
//! Every string literal of the language uses JSON's escapes: `\"`, `\\`, `\/`, `\b`, `\f`,
//! `\n`, `\r`, `\t` and `\uXXXX` (a UTF-16 unit; surrogate pairs combine). A raw line break
//! inside a literal is not allowed. In a name pattern, `{{` and `}}` are literal braces.

use crate::ast::Span;

/// A bad escape at `span`, with what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EscapeError {
    pub message: String,
    pub span: Span,
}

/// Resolves escapes in `raw` (the text between the quotes, or a piece of a pattern).
/// `offset` is the file offset of `raw`, so errors point at the right bytes; with
/// `braces`, `{{` and `}}` stand for one brace.
pub(crate) fn unescape(raw: &str, offset: usize, braces: bool) -> Result<String, EscapeError> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.char_indices().peekable();
    while let Some((index, ch)) = chars.next() {
        match ch {
            '\\' => {
                let Some((_, escaped)) = chars.next() else {
                    return Err(EscapeError {
                        message: "a string cannot end with a lone `\\`".to_owned(),
                        span: Span::new(offset + index, offset + index + 1),
                    });
                };
                let simple = match escaped {
                    '"' => Some('"'),
                    '\\' => Some('\\'),
                    '/' => Some('/'),
                    'b' => Some('\u{8}'),
                    'f' => Some('\u{c}'),
                    'n' => Some('\n'),
                    'r' => Some('\r'),
                    't' => Some('\t'),
                    _ => None,
                };
                if let Some(simple) = simple {
                    out.push(simple);
                    continue;
                }
                if escaped != 'u' {
                    let end = index + 1 + escaped.len_utf8();
                    return Err(EscapeError {
                        message: format!("unknown escape `\\{}`", escaped.escape_debug()),
                        span: Span::new(offset + index, offset + end),
                    });
                }
                let first = read_hex4(raw, index + 2, offset)?;
                // Skip the four hex digits just read.
                for _ in 0..4 {
                    chars.next();
                }
                let code = if (0xD800..0xDC00).contains(&first) {
                    // A high surrogate must be followed by `\uDC00`..`\uDFFF`.
                    let low_at = index + 6;
                    let low =
                        if raw[low_at..].starts_with("\\u") { Some(read_hex4(raw, low_at + 2, offset)?) } else { None };
                    match low {
                        Some(low) if (0xDC00..0xE000).contains(&low) => {
                            for _ in 0..6 {
                                chars.next();
                            }
                            0x10000 + ((first - 0xD800) << 10) + (low - 0xDC00)
                        }
                        _ => {
                            return Err(EscapeError {
                                message: "unpaired UTF-16 surrogate in `\\u` escape".to_owned(),
                                span: Span::new(offset + index, offset + index + 6),
                            })
                        }
                    }
                } else {
                    first
                };
                match char::from_u32(code) {
                    Some(decoded) => out.push(decoded),
                    None => {
                        return Err(EscapeError {
                            message: "unpaired UTF-16 surrogate in `\\u` escape".to_owned(),
                            span: Span::new(offset + index, offset + index + 6),
                        })
                    }
                }
            }
            '{' | '}' if braces => {
                // The grammar only lets doubled braces reach a literal piece.
                let next = chars.next();
                debug_assert_eq!(next.map(|(_, c)| c), Some(ch));
                out.push(ch);
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

fn read_hex4(raw: &str, at: usize, offset: usize) -> Result<u32, EscapeError> {
    let digits = raw.get(at..at + 4).filter(|digits| digits.bytes().all(|byte| byte.is_ascii_hexdigit()));
    match digits {
        Some(digits) => Ok(u32::from_str_radix(digits, 16).unwrap_or(0)),
        None => Err(EscapeError {
            message: "`\\u` must be followed by four hex digits".to_owned(),
            span: Span::new(offset + at - 2, offset + (at + 4).min(raw.len())),
        }),
    }
}

/// Writes `text` as the content of a string literal (without quotes); with `braces`,
/// literal braces are doubled (pattern text).
pub(crate) fn escape_into(out: &mut String, text: &str, braces: bool) {
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '{' | '}' if braces => {
                out.push(ch);
                out.push(ch);
            }
            ch if ch.is_control() => {
                let mut units = [0u16; 2];
                for unit in ch.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            ch => out.push(ch),
        }
    }
}

/// `text` as a complete string literal, quotes included.
pub(crate) fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    escape_into(&mut out, text, false);
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_resolve() {
        assert_eq!(unescape(r#"a\"b\\c\n\u00e9\ud83d\ude00"#, 0, false).unwrap(), "a\"b\\c\né😀");
        assert_eq!(unescape("{{x}}", 0, true).unwrap(), "{x}");
        assert_eq!(unescape("{{x}}", 0, false).unwrap(), "{{x}}");
    }

    #[test]
    fn bad_escapes_point_at_the_escape() {
        let err = unescape(r"ab\q", 10, false).unwrap_err();
        assert_eq!(err.span, Span::new(12, 14));
        assert!(unescape(r"\u12", 0, false).is_err());
        assert!(unescape(r"\ud800x", 0, false).is_err());
        assert!(unescape(r"\udc00", 0, false).is_err());
        assert!(unescape("\\", 0, false).is_err());
    }

    #[test]
    fn escape_round_trips() {
        for text in ["plain", "q\"uote", "back\\slash", "tab\tnl\n", "\u{1}\u{7f}", "é😀", "{x}"] {
            let mut raw = String::new();
            escape_into(&mut raw, text, true);
            assert_eq!(unescape(&raw, 0, true).unwrap(), text, "{raw}");
        }
    }
}
