//! Matching tensor names against name patterns, and filling target patterns.
//!
//! Names are dotted (`model.layers.3.attn.weight`). In a pattern, `{x}` matches one
//! non-empty run without a dot, `{x..}` a non-empty run of whole dotted segments, and
//! `{i < n}` a decimal index (`0`, or digits without a leading zero). Literal text matches
//! itself. When a pattern can match a name in several ways, captures take the shortest
//! text that lets the rest of the pattern match, left to right: `{a..}.{b..}` splits
//! `x.y.z` as `a = x`, `b = y.z`.
//!
//! The property tests at the bottom take their case count from `PROPTEST_CASES`.

use std::collections::BTreeMap;
use std::fmt;

use safeshift_dsl::ast::{BinOp, Expr, ExprKind, Pattern, PatternPart, Span};

/// The text each capture of a pattern matched, by capture name.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Captures(pub BTreeMap<String, String>);

impl Captures {
    /// The text captured as `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The capture `name` read as an integer, if it is one.
    pub fn int(&self, name: &str) -> Option<i64> {
        int_of(self.get(name)?)
    }
}

/// Captured text read as an integer: decimal digits only.
pub fn int_of(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Matches `name` against `pattern`, returning the captures on success.
///
/// Linear in the name's length for each way of splitting it among multi-segment
/// captures (a hostile header can hold megabyte-long names): candidate ends are found in
/// one scan, and bindings borrow from the name until the match succeeds.
pub fn match_name(pattern: &Pattern, name: &str) -> Option<Captures> {
    let mut bindings: Vec<(&str, &str)> = Vec::new();
    match_into(pattern, name, &mut bindings)
        .then(|| Captures(bindings.into_iter().map(|(capture, text)| (capture.to_owned(), text.to_owned())).collect()))
}

/// [`match_name`] without building [`Captures`]: on success `bindings` (cleared first)
/// holds each capture's name and text, borrowed, in pattern order (a capture used twice
/// once). For callers that match many names and keep little of each match: one buffer
/// serves them all.
pub fn match_into<'p, 'n>(pattern: &'p Pattern, name: &'n str, bindings: &mut Vec<(&'p str, &'n str)>) -> bool {
    bindings.clear();
    match_parts(&pattern.parts, name, bindings)
}

/// Matches `rest` against `parts`; on failure `bindings` is left as it was found.
fn match_parts<'p, 'n>(parts: &'p [PatternPart], rest: &'n str, bindings: &mut Vec<(&'p str, &'n str)>) -> bool {
    let Some((first, tail)) = parts.split_first() else {
        return rest.is_empty();
    };
    match first {
        PatternPart::Literal(text) => {
            rest.strip_prefix(text.as_str()).is_some_and(|after| match_parts(tail, after, bindings))
        }
        PatternPart::Capture { name, multi } => {
            // A name captured twice must capture the same text.
            if let Some(bound) = bound_text(bindings, &name.node) {
                return valid_capture(bound, *multi)
                    && rest.strip_prefix(bound).is_some_and(|after| match_parts(tail, after, bindings));
            }
            for end in capture_ends(rest, *multi) {
                bindings.push((&name.node, &rest[..end]));
                if match_parts(tail, &rest[end..], bindings) {
                    return true;
                }
                bindings.pop();
            }
            false
        }
        PatternPart::Counted { name, .. } => {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 || (digits > 1 && rest.starts_with('0')) {
                return false;
            }
            let (text, after) = rest.split_at(digits);
            if let Some(bound) = bound_text(bindings, &name.node) {
                return bound == text && match_parts(tail, after, bindings);
            }
            bindings.push((&name.node, text));
            if match_parts(tail, after, bindings) {
                return true;
            }
            bindings.pop();
            false
        }
        // An expression only makes sense in a target; as a source it matches the
        // decimal text of nothing we could know, so it never matches.
        PatternPart::Expr(_) => false,
    }
}

fn bound_text<'n>(bindings: &[(&str, &'n str)], name: &str) -> Option<&'n str> {
    bindings.iter().find(|(capture, _)| *capture == name).map(|(_, text)| *text)
}

/// Byte offsets where a capture starting at `rest` could end, shortest first, in one
/// scan: `{x}` ends anywhere before the first dot; `{x..}` anywhere after a non-dot
/// character, up to the first empty segment.
fn capture_ends(rest: &str, multi: bool) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut previous_dot = true; // a capture cannot start with a dot
    for (index, ch) in rest.char_indices() {
        if ch == '.' {
            if !multi || previous_dot {
                break;
            }
            previous_dot = true;
        } else {
            previous_dot = false;
            ends.push(index + ch.len_utf8());
        }
    }
    ends
}

fn valid_capture(text: &str, multi: bool) -> bool {
    if multi {
        !text.is_empty() && text.split('.').all(|segment| !segment.is_empty())
    } else {
        !text.is_empty() && !text.contains('.')
    }
}

/// Why a target pattern could not be filled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FillError {
    /// A capture or dim the pattern uses has no value.
    Unbound {
        /// Its name.
        name: String,
        /// Where the pattern uses it.
        span: Span,
    },
    /// Index arithmetic failed (see [`EvalError`]).
    Eval(EvalError),
}

impl fmt::Display for FillError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FillError::Unbound { name, .. } => write!(f, "`{name}` is not bound by the source pattern"),
            FillError::Eval(err) => err.fmt(f),
        }
    }
}

/// Fills `pattern` with `captures`; `{expr}` parts are evaluated with integer captures
/// first, then `dim` for dims.
pub fn fill(pattern: &Pattern, captures: &Captures, dim: &dyn Fn(&str) -> Option<i64>) -> Result<String, FillError> {
    fill_with(pattern, &|name| captures.get(name), dim)
}

/// [`fill`] with each capture's text from `capture` (the bindings of [`match_into`], say).
pub fn fill_with<'c>(
    pattern: &Pattern,
    capture: &dyn Fn(&str) -> Option<&'c str>,
    dim: &dyn Fn(&str) -> Option<i64>,
) -> Result<String, FillError> {
    // Room for the literal text and a short value per other part: one allocation, as a rule.
    let literal_len: usize = pattern
        .parts
        .iter()
        .map(|part| match part {
            PatternPart::Literal(text) => text.len(),
            _ => 8,
        })
        .sum();
    let mut out = String::with_capacity(literal_len);
    for part in &pattern.parts {
        match part {
            PatternPart::Literal(text) => out.push_str(text),
            PatternPart::Capture { name, .. } | PatternPart::Counted { name, .. } => match capture(&name.node) {
                Some(value) => out.push_str(value),
                None => return Err(FillError::Unbound { name: name.node.clone(), span: name.span }),
            },
            PatternPart::Expr(expr) => {
                let lookup = |name: &str| capture(name).and_then(int_of).or_else(|| dim(name));
                let value = eval(expr, &lookup).map_err(FillError::Eval)?;
                if value < 0 {
                    return Err(FillError::Eval(EvalError { kind: EvalErrorKind::Negative(value), span: expr.span }));
                }
                out.push_str(&value.to_string());
            }
        }
    }
    Ok(out)
}

/// Why an integer expression could not be evaluated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvalError {
    /// What went wrong.
    pub kind: EvalErrorKind,
    /// The sub-expression at fault.
    pub span: Span,
}

/// The kinds of [`EvalError`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EvalErrorKind {
    /// A name with no value.
    Unbound(String),
    /// `a / b` with a non-zero remainder.
    Inexact {
        /// The dividend.
        dividend: i64,
        /// The divisor.
        divisor: i64,
    },
    /// Division or remainder by zero.
    DivisionByZero,
    /// The result does not fit in 64 bits.
    Overflow,
    /// A negative value where an index or size is needed.
    Negative(i64),
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            EvalErrorKind::Unbound(name) => write!(f, "`{name}` has no value"),
            EvalErrorKind::Inexact { dividend, divisor } => {
                write!(f, "{dividend} is not divisible by {divisor}")
            }
            EvalErrorKind::DivisionByZero => f.write_str("division by zero"),
            EvalErrorKind::Overflow => f.write_str("integer overflow"),
            EvalErrorKind::Negative(value) => write!(f, "negative value {value} where a size or index is needed"),
        }
    }
}

impl std::error::Error for EvalError {}

/// Evaluates an integer expression; `/` must divide exactly.
pub fn eval(expr: &Expr, lookup: &dyn Fn(&str) -> Option<i64>) -> Result<i64, EvalError> {
    let fail = |kind| EvalError { kind, span: expr.span };
    match &expr.kind {
        ExprKind::Int(value) => i64::try_from(*value).map_err(|_| fail(EvalErrorKind::Overflow)),
        ExprKind::Ident(name) => lookup(name).ok_or_else(|| fail(EvalErrorKind::Unbound(name.clone()))),
        ExprKind::Neg(inner) => eval(inner, lookup)?.checked_neg().ok_or_else(|| fail(EvalErrorKind::Overflow)),
        ExprKind::Binary(op, lhs, rhs) => {
            let (a, b) = (eval(lhs, lookup)?, eval(rhs, lookup)?);
            let result = match op {
                BinOp::Add => a.checked_add(b),
                BinOp::Sub => a.checked_sub(b),
                BinOp::Mul => a.checked_mul(b),
                BinOp::Div | BinOp::Rem if b == 0 => return Err(fail(EvalErrorKind::DivisionByZero)),
                BinOp::Div if a % b != 0 => {
                    return Err(fail(EvalErrorKind::Inexact { dividend: a, divisor: b }));
                }
                BinOp::Div => a.checked_div(b),
                BinOp::Rem => a.checked_rem(b),
            };
            result.ok_or_else(|| fail(EvalErrorKind::Overflow))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use safeshift_dsl::ast::Spanned;

    fn lit(text: &str) -> PatternPart {
        PatternPart::Literal(text.to_owned())
    }
    fn cap(name: &str, multi: bool) -> PatternPart {
        PatternPart::Capture { name: Spanned::new(name.to_owned(), Span::DUMMY), multi }
    }
    fn counted(name: &str, bound: &str) -> PatternPart {
        let bound = Expr { kind: ExprKind::Ident(bound.to_owned()), span: Span::DUMMY };
        PatternPart::Counted { name: Spanned::new(name.to_owned(), Span::DUMMY), bound }
    }
    fn pattern(parts: Vec<PatternPart>) -> Pattern {
        Pattern { parts, span: Span::DUMMY }
    }
    fn ident(name: &str) -> Expr {
        Expr { kind: ExprKind::Ident(name.to_owned()), span: Span::DUMMY }
    }
    fn binary(op: BinOp, a: Expr, b: Expr) -> Expr {
        Expr { kind: ExprKind::Binary(op, Box::new(a), Box::new(b)), span: Span::DUMMY }
    }

    #[test]
    fn single_and_multi_segment_captures() {
        let qkv = pattern(vec![cap("p", true), lit(".attention.lin_qkv."), cap("w", false)]);
        let captures = match_name(&qkv, "model.proc.0.blocks.1.attention.lin_qkv.weight").unwrap();
        assert_eq!(captures.get("p"), Some("model.proc.0.blocks.1"));
        assert_eq!(captures.get("w"), Some("weight"));
        assert!(match_name(&qkv, "attention.lin_qkv.weight").is_none(), "{{p..}} needs one segment");
        assert!(match_name(&qkv, "a.attention.lin_qkv.w.x").is_none(), "{{w}} is one segment");
    }

    #[test]
    fn shortest_first_for_ambiguous_multi_captures() {
        let two = pattern(vec![cap("a", true), lit("."), cap("b", true)]);
        let captures = match_name(&two, "x.y.z").unwrap();
        assert_eq!((captures.get("a"), captures.get("b")), (Some("x"), Some("y.z")));
    }

    #[test]
    fn counted_index_rejects_leading_zeros() {
        let layer = pattern(vec![lit("layers."), counted("i", "n"), lit(".w")]);
        assert_eq!(match_name(&layer, "layers.12.w").unwrap().int("i"), Some(12));
        assert!(match_name(&layer, "layers.012.w").is_none());
        assert!(match_name(&layer, "layers.x.w").is_none());
    }

    #[test]
    fn long_names_match_in_linear_time() {
        let qkv = pattern(vec![cap("p", true), lit(".attention.lin_qkv."), cap("w", false)]);
        // Quadratic matching took seconds here; linear takes about a millisecond.
        let long = "a.".repeat(200_000) + "b";
        let start = std::time::Instant::now();
        assert!(match_name(&qkv, &long).is_none());
        let matching = format!("{long}.attention.lin_qkv.weight");
        assert_eq!(match_name(&qkv, &matching).unwrap().get("p"), Some(long.as_str()));
        assert!(start.elapsed().as_secs() < 60, "{:?}", start.elapsed());
    }

    /// The first implementation (quadratic, obviously right), kept as the reference.
    fn reference_match(pattern: &Pattern, name: &str) -> Option<Captures> {
        fn go(parts: &[PatternPart], rest: &str, captures: &mut Captures) -> bool {
            let Some((first, tail)) = parts.split_first() else { return rest.is_empty() };
            let bind = |captures: &mut Captures, name: &str, value: &str| match captures.0.get(name) {
                Some(existing) => existing == value,
                None => {
                    captures.0.insert(name.to_owned(), value.to_owned());
                    true
                }
            };
            match first {
                PatternPart::Literal(text) => {
                    rest.strip_prefix(text.as_str()).is_some_and(|after| go(tail, after, captures))
                }
                PatternPart::Capture { name, multi } => {
                    let ends: Vec<usize> = rest
                        .char_indices()
                        .map(|(i, ch)| i + ch.len_utf8())
                        .filter(|&end| valid_capture(&rest[..end], *multi))
                        .collect();
                    for end in ends {
                        let snapshot = captures.clone();
                        if bind(captures, &name.node, &rest[..end]) && go(tail, &rest[end..], captures) {
                            return true;
                        }
                        *captures = snapshot;
                    }
                    false
                }
                PatternPart::Counted { name, .. } => {
                    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
                    if digits == 0 || (digits > 1 && rest.starts_with('0')) {
                        return false;
                    }
                    let snapshot = captures.clone();
                    if bind(captures, &name.node, &rest[..digits]) && go(tail, &rest[digits..], captures) {
                        return true;
                    }
                    *captures = snapshot;
                    false
                }
                PatternPart::Expr(_) => false,
            }
        }
        let mut captures = Captures::default();
        go(&pattern.parts, name, &mut captures).then_some(captures)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(256)
        ))]

        /// The linear matcher agrees with the reference, captures included.
        #[test]
        fn matcher_agrees_with_reference(
            pieces in proptest::collection::vec(0usize..7, 1..6),
            name in proptest::collection::vec(proptest::sample::select(vec!["a", "b", ".", "0", "1", "ab", "a.b"]), 0..10),
        ) {
            let parts: Vec<PatternPart> = pieces
                .iter()
                .map(|piece| match piece {
                    0 => lit("a"),
                    1 => lit("."),
                    2 => lit(".b"),
                    3 => cap("x", false),
                    4 => cap("y", true),
                    5 => counted("i", "n"),
                    _ => cap("x", true),
                })
                .collect();
            let pattern = pattern(parts);
            let name = name.concat();
            proptest::prop_assert_eq!(match_name(&pattern, &name), reference_match(&pattern, &name));
        }
    }

    #[test]
    fn capture_ends_follow_segment_rules() {
        assert_eq!(capture_ends("ab.c", false), vec![1, 2]);
        assert_eq!(capture_ends("ab.c", true), vec![1, 2, 4]);
        assert_eq!(capture_ends(".a", true), Vec::<usize>::new());
        assert_eq!(capture_ends("a..b", true), vec![1]);
        assert_eq!(capture_ends("é.x", true), vec![2, 4]);
    }

    #[test]
    fn repeated_capture_must_agree() {
        let same = pattern(vec![cap("x", false), lit("."), cap("x", false)]);
        assert!(match_name(&same, "a.a").is_some());
        assert!(match_name(&same, "a.b").is_none());
    }

    #[test]
    fn fill_evaluates_index_arithmetic() {
        let source =
            pattern(vec![lit("proc."), cap("c", false), lit(".blocks."), cap("j", false), lit("."), cap("rest", true)]);
        let target = pattern(vec![
            lit("proc."),
            PatternPart::Expr(binary(BinOp::Add, binary(BinOp::Mul, ident("c"), ident("blocks")), ident("j"))),
            lit("."),
            cap("rest", true),
        ]);
        let captures = match_name(&source, "proc.1.blocks.1.mlp.0.weight").unwrap();
        let dims = |name: &str| (name == "blocks").then_some(2);
        assert_eq!(fill(&target, &captures, &dims).unwrap(), "proc.3.mlp.0.weight");
    }

    #[test]
    fn fill_reports_unbound_and_inexact() {
        let target = pattern(vec![cap("missing", false)]);
        assert!(matches!(fill(&target, &Captures::default(), &|_| None), Err(FillError::Unbound { .. })));
        let half = Expr { kind: ExprKind::Int(7), span: Span::DUMMY };
        let expr = binary(BinOp::Div, half, Expr { kind: ExprKind::Int(2), span: Span::DUMMY });
        let err = eval(&expr, &|_| None).unwrap_err();
        assert_eq!(err.kind, EvalErrorKind::Inexact { dividend: 7, divisor: 2 });
    }
}
