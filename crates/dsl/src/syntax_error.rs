//! pest errors as diagnostics in words: "expected `->`, found `=>`", not "expected arrow".
//!
//! pest reports the rules it tried at the position where parsing failed. Each rule has a
//! description here; a few common mistakes get their own message and a hint (an arrow
//! written `=>`, a name pattern without quotes, a misspelt clause word, an unterminated
//! string, an unclosed brace).

use pest::error::{Error, ErrorVariant, InputLocation};

use crate::ast::{Span, FLAGS, KEYWORDS};
use crate::diagnostic::{similar, Diagnostic, SourceId};
use crate::parser::{list_words, Rule};

/// Translates a pest error. `offset` is where the parsed text starts in `text` (non-zero
/// for the content of a name pattern).
pub(crate) fn translate(source: SourceId, text: &str, offset: usize, err: &Error<Rule>) -> Diagnostic {
    let pos = offset
        + match err.location {
            InputLocation::Pos(pos) => pos,
            InputLocation::Span((start, _)) => start,
        };
    let positives = match &err.variant {
        ErrorVariant::ParsingError { positives, .. } => positives.clone(),
        ErrorVariant::CustomError { message } => {
            // pest's own limits (stack or call budget): the nesting bound normally
            // catches these first.
            return Diagnostic::error("too-deep", format!("input too complex to parse: {message}"), source, point(pos));
        }
    };
    let found = Found::at(text, pos);
    let in_pattern = offset > 0;

    if let Some(diagnostic) = special_case(source, text, pos, &found, &positives, in_pattern) {
        return diagnostic;
    }

    let expected = describe(&positives);
    let message = if expected.is_empty() {
        format!("unexpected {}", found.description)
    } else {
        format!("expected {}, found {}", join_alternatives(&expected), found.description)
    };
    let label = if expected.is_empty() { "unexpected here".to_owned() } else { format!("expected {}", expected[0]) };
    let mut diagnostic = Diagnostic::error("syntax", message, source, found.span).with_label(label);
    if found.is_eof {
        if let Some(open) = unclosed_brace(text) {
            diagnostic = diagnostic.with_secondary(source, open, "this `{` is never closed");
        }
    }
    diagnostic
}

/// What stands at the error position.
struct Found {
    /// "`word`", "end of file", "a string literal".
    description: String,
    /// The token's span (one character wide for punctuation, empty at the end).
    span: Span,
    /// The token's text.
    text: String,
    is_eof: bool,
}

impl Found {
    fn at(text: &str, pos: usize) -> Found {
        let rest = text.get(pos..).unwrap_or("");
        let Some(first) = rest.chars().next() else {
            return Found {
                description: "end of file".to_owned(),
                span: point(pos),
                text: String::new(),
                is_eof: true,
            };
        };
        let len = if first.is_alphanumeric() || first == '_' {
            rest.find(|ch: char| !(ch.is_alphanumeric() || ch == '_' || ch == '-' || ch == '.')).unwrap_or(rest.len())
        } else if first == '"' {
            // Up to the closing quote, or the end of the line if there is none.
            closing_quote(rest).map_or_else(|| rest.find('\n').unwrap_or(rest.len()), |end| end + 1)
        } else if ["->", "=>", "..", "//"].iter().any(|two| rest.starts_with(two)) {
            2
        } else {
            first.len_utf8()
        };
        let token = &rest[..len];
        let description = if first == '"' {
            "a string literal".to_owned()
        } else if first == '\n' || first == '\r' {
            "end of line".to_owned()
        } else {
            format!("`{}`", token.escape_debug())
        };
        Found { description, span: Span::new(pos, pos + len), text: token.to_owned(), is_eof: false }
    }
}

fn point(pos: usize) -> Span {
    Span::new(pos, pos)
}

/// The byte offset of the quote closing the literal that starts `rest`, if on this line.
fn closing_quote(rest: &str) -> Option<usize> {
    let bytes = rest.as_bytes();
    let mut index = 1;
    while index < bytes.len() {
        match bytes[index] {
            b'"' => return Some(index),
            b'\n' => return None,
            b'\\' => index += 2,
            _ => index += 1,
        }
    }
    None
}

fn special_case(
    source: SourceId,
    text: &str,
    pos: usize,
    found: &Found,
    positives: &[Rule],
    in_pattern: bool,
) -> Option<Diagnostic> {
    let expects = |rules: &[Rule]| rules.iter().any(|rule| positives.contains(rule));
    let found_word = found.text.starts_with(|ch: char| ch.is_alphabetic() || ch == '_');

    if in_pattern {
        return Some(pattern_error(source, text, pos, found, positives));
    }
    if found.text.starts_with('"') && closing_quote(&text[pos..]).is_none() {
        let end = text[pos..].find('\n').map_or(text.len(), |offset| pos + offset);
        return Some(
            Diagnostic::error("syntax", "unterminated string literal", source, Span::new(pos, end))
                .with_label("this string has no closing `\"`")
                .with_hint("a string literal ends on the line where it starts"),
        );
    }
    if found.text == "=>" {
        return Some(
            Diagnostic::error("syntax", "expected `->`, found `=>`", source, found.span)
                .with_label("not an arrow")
                .with_hint("arrows are written `->`"),
        );
    }
    if found.is_eof && expects(&[Rule::rbrace]) {
        let mut diagnostic = Diagnostic::error("syntax", "expected `}` before the end of the file", source, found.span)
            .with_label("the file ends here");
        if let Some(open) = unclosed_brace(text) {
            diagnostic = diagnostic.with_secondary(source, open, "this `{` is never closed");
        }
        return Some(diagnostic);
    }
    if expects(&[Rule::file, Rule::kw_schema, Rule::kw_migration]) && found_word {
        let mut diagnostic = Diagnostic::error(
            "syntax",
            format!("expected `schema` or `migration`, found {}", found.description),
            source,
            found.span,
        )
        .with_label("not an item");
        if let Some(best) = similar(&found.text, ["schema", "migration"]).first() {
            diagnostic = diagnostic.with_hint(format!("did you mean `{best}`?"));
        }
        return Some(diagnostic);
    }
    let in_operation = expects(&[Rule::op_name, Rule::clause_word]);
    if in_operation {
        // `rename model.x -> …`: the grammar read `model` as an operation name.
        let glued = text[..pos].ends_with(|ch: char| ch.is_ascii_alphanumeric() || ch == '_');
        if glued && (found.text.starts_with('.') || found.text.starts_with('{')) {
            if let Some((_, word_span)) = previous_word(text, pos) {
                return Some(unquoted_pattern(source, text, word_span.start));
            }
        }
        // `axs 0`: an unknown clause word, read as an operation name, then its value.
        if !found_word && !found.text.starts_with('}') {
            if let Some((word, span)) = previous_word(text, pos) {
                let operand_words = KEYWORDS.iter().chain(FLAGS).copied();
                let mut diagnostic =
                    Diagnostic::error("unknown-word", format!("unknown clause word `{word}`"), source, span)
                        .with_label("not a clause word");
                if let Some(hint) = did_you_mean(&similar(word, operand_words)) {
                    diagnostic = diagnostic.with_hint(hint);
                }
                return Some(diagnostic.with_hint(format!("clause words are {}", list_words(KEYWORDS))));
            }
        }
        return Some(
            Diagnostic::error(
                "syntax",
                format!("unexpected {} in an operation", found.description),
                source,
                found.span,
            )
            .with_label("expected an operand or the next statement"),
        );
    }
    if expects(&[Rule::string]) && !found.is_eof && !found.text.starts_with('"') {
        let before = text[..pos].trim_end();
        let pattern_place = ["tensor", "allow", "->", ",", "into"].iter().any(|word| before.ends_with(word));
        let bare = found.text.starts_with(|ch: char| ch.is_alphanumeric() || ch == '_' || ch == '{');
        if pattern_place && bare {
            return Some(unquoted_pattern(source, text, pos));
        }
        if pattern_place {
            return Some(
                Diagnostic::error(
                    "syntax",
                    format!("expected a quoted name pattern, found {}", found.description),
                    source,
                    found.span,
                )
                .with_label("expected a name pattern like \"model.{x}.weight\""),
            );
        }
    }
    if expects(&[Rule::ident]) && !in_operation && found.text.starts_with(|ch: char| ch.is_ascii_digit()) {
        if let Some(word) = ["dim", "aux"].iter().find(|word| text[..pos].trim_end().ends_with(*word)) {
            return Some(
                Diagnostic::error(
                    "syntax",
                    format!("expected a name after `{word}`, found {}", found.description),
                    source,
                    found.span,
                )
                .with_label("names start with a letter or `_`"),
            );
        }
    }
    if found_word {
        // A misspelt statement word: `tenser "x" …`.
        let words: Vec<&str> = positives.iter().filter_map(|rule| keyword(*rule)).collect();
        if let Some(best) = similar(&found.text, words.iter().copied()).first() {
            let expected = describe(positives);
            return Some(
                Diagnostic::error(
                    "syntax",
                    format!("expected {}, found {}", join_alternatives(&expected), found.description),
                    source,
                    found.span,
                )
                .with_label("unknown word")
                .with_hint(format!("did you mean `{best}`?")),
            );
        }
    }
    None
}

/// "did you mean `a`?" or "did you mean `a` or `b`?" for the two closest candidates.
pub(crate) fn did_you_mean(candidates: &[&str]) -> Option<String> {
    match candidates {
        [] => None,
        [only] => Some(format!("did you mean `{only}`?")),
        [first, second, ..] => Some(format!("did you mean `{first}` or `{second}`?")),
    }
}

/// The statement word a keyword rule stands for.
fn keyword(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::kw_dim => "dim",
        Rule::kw_tensor => "tensor",
        Rule::kw_allow => "allow",
        Rule::kw_meta => "meta",
        Rule::kw_aux => "aux",
        Rule::kw_param => "param",
        Rule::kw_down => "down",
        Rule::kw_optional => "optional",
        Rule::kw_schema => "schema",
        Rule::kw_migration => "migration",
        _ => return None,
    })
}

/// A name pattern written without quotes, starting at `start`.
fn unquoted_pattern(source: SourceId, text: &str, start: usize) -> Diagnostic {
    let bare = bare_run(text, start);
    Diagnostic::error("syntax", "expected a quoted name pattern", source, Span::new(start, start + bare.len()))
        .with_label("not in quotes")
        .with_hint(format!("name patterns are string literals: write `\"{bare}\"`"))
}

/// Errors inside the content of a name pattern.
fn pattern_error(source: SourceId, text: &str, pos: usize, found: &Found, positives: &[Rule]) -> Diagnostic {
    let span = if found.is_eof || found.text.starts_with('"') { point(pos) } else { found.span };
    let after_open = text[..pos].ends_with('{') && !text[..pos].ends_with("{{");
    if found.text == "}" && !after_open {
        return Diagnostic::error("bad-pattern", "unmatched `}` in name pattern", source, span)
            .with_label("no `{` opens this")
            .with_hint("write `}}` for a literal brace");
    }
    if found.text == "}" {
        return Diagnostic::error("bad-pattern", "empty capture `{}` in name pattern", source, span)
            .with_label("expected a capture name")
            .with_hint("write `{x}` for one segment, `{x..}` for several, `{i < n}` for a counted index");
    }
    if found.is_eof || found.text.starts_with('"') {
        return Diagnostic::error("bad-pattern", "unclosed `{` in name pattern", source, span)
            .with_label("expected `}`")
            .with_hint("write `{{` for a literal brace");
    }
    let expected = describe(positives);
    let message = if expected.is_empty() {
        format!("unexpected {} in name pattern", found.description)
    } else {
        format!("expected {} in name pattern, found {}", join_alternatives(&expected), found.description)
    };
    Diagnostic::error("bad-pattern", message, source, span)
        .with_label("inside this capture")
        .with_hint("a capture is `{x}`, `{x..}`, `{i < n}` or, in a target, an expression like `{c * n + j}`")
}

/// The run of non-blank text at `pos` (a name pattern someone forgot to quote).
fn bare_run(text: &str, pos: usize) -> &str {
    let rest = &text[pos..];
    let end = rest.find(|ch: char| ch.is_whitespace() || ch == ',' || ch == '"').unwrap_or(rest.len());
    rest[..end].trim_end_matches(':')
}

/// The identifier just before `pos` on the same line, with a blank before it.
fn previous_word(text: &str, pos: usize) -> Option<(&str, Span)> {
    let before = &text[..pos];
    let trimmed = before.trim_end_matches([' ', '\t']);
    let start = trimmed
        .char_indices()
        .rev()
        .take_while(|(_, ch)| ch.is_ascii_alphanumeric() || *ch == '_' || *ch == '-')
        .last()
        .map(|(index, _)| index)?;
    let word = &trimmed[start..];
    let blank_before = trimmed[..start].ends_with([' ', '\t', '\n']);
    (blank_before && word.starts_with(|ch: char| ch.is_ascii_alphabetic() || ch == '_'))
        .then(|| (word, Span::new(start, trimmed.len())))
}

/// Descriptions of the expected rules, most useful first, without duplicates.
fn describe(positives: &[Rule]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    let operand_rules =
        [Rule::patterns, Rule::arrow_targets, Rule::clause, Rule::flag, Rule::type_operand, Rule::assign];
    let expects_operand = positives.iter().any(|rule| operand_rules.contains(rule));
    for rule in positives {
        let description = match rule {
            rule if operand_rules.contains(rule) => Some("an operand"),
            _ => description(*rule),
        };
        if let Some(description) = description {
            if !out.contains(&description) {
                out.push(description);
            }
        }
    }
    // Operators can always continue an expression; naming them only helps when nothing
    // else would do.
    if out.len() > 1 {
        out.retain(|description| *description != "an operator");
    }
    if out.contains(&"an expression") {
        out.retain(|description| !matches!(*description, "an integer" | "`(`" | "a name"));
    }
    if expects_operand {
        // An operand or the start of the next statement: say what the statement lacks.
        out.retain(|description| !matches!(*description, "an operation" | "`down`" | "`dim`" | "`aux`"));
    }
    out
}

fn description(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::arrow => "`->`",
        Rule::at_sign => "`@`",
        Rule::colon => "`:`",
        Rule::equals => "`=`",
        Rule::lbrace => "`{`",
        Rule::rbrace => "`}`",
        Rule::lbracket | Rule::shape => "`[`",
        Rule::rbracket => "`]`",
        Rule::lparen => "`(`",
        Rule::rparen => "`)`",
        Rule::comma => "`,`",
        Rule::less => "`<`",
        Rule::ident => "a name",
        Rule::family | Rule::version_ref | Rule::cross_header | Rule::shared_header => "a family name",
        Rule::version => "a version",
        Rule::string | Rule::doc | Rule::json_string => "a string literal",
        Rule::pattern | Rule::patterns => "a quoted name pattern",
        Rule::int => "an integer",
        Rule::expr | Rule::name_expr | Rule::parens | Rule::neg => "an expression",
        Rule::expr_list | Rule::call | Rule::aux_ref => "a value",
        Rule::json_object
        | Rule::json_array
        | Rule::json_true
        | Rule::json_false
        | Rule::json_null
        | Rule::json_number
        | Rule::json_number_nonint
        | Rule::json_member => "a JSON value",
        Rule::file => "`schema` or `migration`",
        Rule::schema | Rule::kw_schema => "`schema`",
        Rule::migration | Rule::kw_migration => "`migration`",
        Rule::EOI => "end of file",
        Rule::dim_decl | Rule::kw_dim => "`dim`",
        Rule::tensor_decl | Rule::kw_tensor => "`tensor`",
        Rule::allow_decl | Rule::kw_allow => "`allow`",
        Rule::meta_decl | Rule::kw_meta | Rule::meta_call => "`meta`",
        Rule::aux_decl | Rule::kw_aux => "`aux`",
        Rule::param_decl | Rule::kw_param | Rule::param_default => "`param`",
        Rule::op | Rule::op_name => "an operation",
        Rule::down_block | Rule::kw_down => "`down`",
        Rule::clause_word | Rule::clause => "a clause word",
        Rule::flag => "a flag",
        Rule::kw_optional => "`optional`",
        Rule::type_operand => "`:`",
        Rule::assign => "`=`",
        Rule::arrow_targets => "`->`",
        Rule::type_spec => "a type like `f32[n]`",
        Rule::add | Rule::sub | Rule::mul | Rule::div | Rule::rem => "an operator",
        Rule::counted | Rule::multi_capture | Rule::hole => "a capture",
        _ => return None,
    })
}

/// `a`, `a or b`, `a, b or c`
fn join_alternatives(items: &[&str]) -> String {
    match items.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => (*last).to_owned(),
        None => String::new(),
    }
}

/// The innermost `{` never closed, outside strings and comments.
fn unclosed_brace(text: &str) -> Option<Span> {
    let bytes = text.as_bytes();
    let mut open = Vec::new();
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'"' => {
                index += 1;
                while index < bytes.len() && bytes[index] != b'"' && bytes[index] != b'\n' {
                    index += if bytes[index] == b'\\' { 2 } else { 1 };
                }
            }
            b'/' if bytes.get(index + 1) == Some(&b'/') => {
                while index < bytes.len() && bytes[index] != b'\n' {
                    index += 1;
                }
            }
            b'{' => open.push(index),
            b'}' => {
                open.pop();
            }
            _ => {}
        }
        index += 1;
    }
    open.last().map(|&start| Span::new(start, start + 1))
}
