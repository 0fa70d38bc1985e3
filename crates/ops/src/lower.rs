//! Lowering generic AST operations (`name operands…`) to [`Operation`]s.

use safeshift_dsl::ast::{self, ExprKind, JsonKind, OperandKind, Pattern, Span, TypeSpec, Value};
use safeshift_dsl::{similar, Diagnostic, SourceId};

use crate::operation::{OpBase, Operation};
use crate::ops::BUILTINS;

/// Lowers one operation; an unknown name, a missing, unexpected or ill-formed operand, or
/// a lossy operation not marked `lossy` gives diagnostics (all of them).
pub fn lower(source: SourceId, op: &ast::Op) -> Result<Box<dyn Operation>, Vec<Diagnostic>> {
    let Some((_, lower_fn)) = BUILTINS.iter().find(|(name, _)| *name == op.name.node) else {
        let mut diagnostic =
            Diagnostic::error("unknown-op", format!("unknown operation `{}`", op.name.node), source, op.name.span)
                .with_label("not a builtin operation");
        if let Some(best) = similar(&op.name.node, builtin_names()).first() {
            diagnostic = diagnostic.with_hint(format!("did you mean `{best}`?"));
        }
        return Err(vec![diagnostic]);
    };
    let mut operands = Operands::new(source, op);
    let lowered = lower_fn(&mut operands);
    let diagnostics = operands.finish();
    match lowered {
        Some(lowered) if diagnostics.is_empty() => Ok(lowered),
        _ => Err(diagnostics),
    }
}

/// Lowers every operation, collecting the diagnostics of all that fail.
pub fn lower_all(source: SourceId, ops: &[ast::Op]) -> (Vec<Box<dyn Operation>>, Vec<Diagnostic>) {
    let mut lowered = Vec::new();
    let mut diagnostics = Vec::new();
    for op in ops {
        match lower(source, op) {
            Ok(op) => lowered.push(op),
            Err(mut found) => diagnostics.append(&mut found),
        }
    }
    (lowered, diagnostics)
}

/// The names of the builtin operations, alphabetically.
pub fn builtin_names() -> impl Iterator<Item = &'static str> {
    BUILTINS.iter().map(|(name, _)| *name)
}

/// The operands of one op, consumed by its lowering function. Every operand not taken by
/// the time [`Operands::finish`] runs is reported as unexpected.
pub(crate) struct Operands<'a> {
    source: SourceId,
    op: &'a ast::Op,
    used: Vec<bool>,
    accepted: Vec<&'static str>,
    diagnostics: Vec<Diagnostic>,
}

impl<'a> Operands<'a> {
    fn new(source: SourceId, op: &'a ast::Op) -> Operands<'a> {
        Operands { source, op, used: vec![false; op.operands.len()], accepted: Vec::new(), diagnostics: Vec::new() }
    }

    /// Where the op was written, for the operation to keep.
    pub fn base(&self, name: &'static str) -> OpBase {
        OpBase { name, file: self.source, span: self.op.span }
    }

    /// Reports a problem at `span`.
    pub fn error(&mut self, code: &'static str, message: impl Into<String>, span: Span) {
        self.diagnostics.push(Diagnostic::error(code, message, self.source, span));
    }

    /// Reports a problem with a hint.
    pub fn error_with_hint(&mut self, code: &'static str, message: impl Into<String>, span: Span, hint: &str) {
        self.diagnostics.push(Diagnostic::error(code, message, self.source, span).with_hint(hint));
    }

    fn take(&mut self, what: &'static str, select: impl Fn(&OperandKind) -> bool) -> Option<&'a ast::Operand> {
        self.accepted.push(what);
        let op = self.op;
        let mut found =
            op.operands.iter().enumerate().filter(|(index, operand)| !self.used[*index] && select(&operand.kind));
        let (index, operand) = found.next()?;
        let duplicates: Vec<(usize, &ast::Operand)> = found.collect();
        for (duplicate_index, duplicate) in duplicates {
            let message = format!("`{}` takes `{what}` once", op.name.node);
            self.diagnostics.push(Diagnostic::error("duplicate-operand", message, self.source, duplicate.span));
            self.used[duplicate_index] = true;
        }
        self.used[index] = true;
        Some(operand)
    }

    /// The leading string list (`"a"` or `"a", "b"`), required.
    pub fn patterns(&mut self, what: &str) -> Option<&'a [Pattern]> {
        match self.take("PATTERN", |kind| matches!(kind, OperandKind::Patterns(_))).map(|operand| &operand.kind) {
            Some(OperandKind::Patterns(patterns)) => Some(patterns),
            _ => {
                let message = format!("`{}` needs {what}", self.op.name.node);
                self.error("missing-operand", message, self.op.span);
                None
            }
        }
    }

    /// The leading string list holding exactly one pattern.
    pub fn pattern(&mut self, what: &str) -> Option<&'a Pattern> {
        let patterns = self.patterns(what)?;
        if patterns.len() != 1 {
            let span = patterns[1].span;
            self.error("unexpected-operand", format!("`{}` takes one {what}", self.op.name.node), span);
            return None;
        }
        patterns.first()
    }

    /// `-> "a", …`, required.
    pub fn arrow(&mut self) -> Option<&'a [Pattern]> {
        match self.take("->", |kind| matches!(kind, OperandKind::Arrow(_))).map(|operand| &operand.kind) {
            Some(OperandKind::Arrow(patterns)) => Some(patterns),
            _ => {
                let message = format!("`{}` needs a target: `-> \"name\"`", self.op.name.node);
                self.error("missing-operand", message, self.op.span);
                None
            }
        }
    }

    /// `-> "a"` with exactly one target.
    pub fn arrow_one(&mut self) -> Option<&'a Pattern> {
        let targets = self.arrow()?;
        if targets.len() != 1 {
            self.error("unexpected-operand", format!("`{}` takes one target", self.op.name.node), targets[1].span);
            return None;
        }
        targets.first()
    }

    /// The value of clause `keyword`, if written.
    pub fn clause(&mut self, keyword: &'static str) -> Option<(&'a Value, Span)> {
        let operand = self
            .take(keyword, |kind| matches!(kind, OperandKind::Clause { keyword: word, .. } if word.node == keyword))?;
        match &operand.kind {
            OperandKind::Clause { value, .. } => Some((value, operand.span)),
            _ => unreachable!("selected a clause"),
        }
    }

    /// The value of clause `keyword`, reported missing when not written.
    pub fn required(&mut self, keyword: &'static str, example: &str) -> Option<(&'a Value, Span)> {
        let found = self.clause(keyword);
        if found.is_none() {
            let message = format!("`{}` needs `{keyword}`", self.op.name.node);
            self.error_with_hint("missing-operand", message, self.op.span, &format!("write `{example}`"));
        }
        found
    }

    /// The one name pattern of optional clause `keyword` (`each "model.{x}.w"`): `Ok(None)`
    /// when not written, `Err(())` (reported) when its value is not one pattern.
    pub fn pattern_clause(&mut self, keyword: &'static str) -> Result<Option<&'a Pattern>, ()> {
        match self.clause(keyword) {
            Some((Value::Patterns(patterns), _)) if patterns.len() == 1 => Ok(Some(&patterns[0])),
            Some((_, span)) => {
                let message = format!("`{keyword}` takes one name pattern (`{keyword} \"model.{{x}}.weight\"`)");
                self.error("bad-value", message, span);
                Err(())
            }
            None => Ok(None),
        }
    }

    /// Whether flag `name` is written.
    pub fn flag(&mut self, name: &'static str) -> Option<Span> {
        self.take(name, |kind| matches!(kind, OperandKind::Flag(word) if word.node == name)).map(|operand| operand.span)
    }

    /// `: dtype[shape]`, if written.
    pub fn ty(&mut self) -> Option<&'a TypeSpec> {
        match self.take(": TYPE", |kind| matches!(kind, OperandKind::Type(_)))?.kind {
            OperandKind::Type(ref ty) => Some(ty),
            _ => unreachable!("selected a type"),
        }
    }

    /// `= value`, if written.
    pub fn assign(&mut self) -> Option<(&'a Value, Span)> {
        let operand = self.take("= VALUE", |kind| matches!(kind, OperandKind::Assign(_)))?;
        match &operand.kind {
            OperandKind::Assign(value) => Some((value, operand.span)),
            _ => unreachable!("selected an assignment"),
        }
    }

    /// Requires the `lossy` flag (the op always loses data).
    pub fn require_lossy(&mut self, what: &str) -> bool {
        if self.flag("lossy").is_some() {
            return true;
        }
        let message = format!("`{}` {what}, so it must be marked `lossy`", self.op.name.node);
        self.error_with_hint("missing-lossy", message, self.op.span, "add `lossy` at the end of the statement");
        false
    }

    /// `lossy` or `derived` (exactly one), as for `drop`: `Some(true)` for lossy.
    pub fn lossy_or_derived(&mut self) -> Option<bool> {
        let (lossy, derived) = (self.flag("lossy"), self.flag("derived"));
        match (lossy, derived) {
            (Some(_), None) => Some(true),
            (None, Some(_)) => Some(false),
            (Some(_), Some(span)) => {
                self.error("conflicting-flags", "`lossy` and `derived` exclude each other", span);
                None
            }
            (None, None) => {
                let message =
                    format!("`{}` removes data, so it must be marked `lossy` (or `derived`)", self.op.name.node);
                let hint = "add `lossy`, or `derived` if the model recomputes it";
                self.error_with_hint("missing-lossy", message, self.op.span, hint);
                None
            }
        }
    }

    /// Reports unused operands.
    fn finish(mut self) -> Vec<Diagnostic> {
        let op = self.op;
        let mut accepted: Vec<&str> = self.accepted.clone();
        accepted.sort();
        accepted.dedup();
        for (operand, used) in op.operands.iter().zip(&self.used) {
            if *used {
                continue;
            }
            let what = match &operand.kind {
                OperandKind::Patterns(_) => "a name list".to_owned(),
                OperandKind::Arrow(_) => "`->`".to_owned(),
                OperandKind::Clause { keyword, .. } => format!("`{}`", keyword.node),
                OperandKind::Flag(flag) => format!("`{}`", flag.node),
                OperandKind::Type(_) => "a type".to_owned(),
                OperandKind::Assign(_) => "`=`".to_owned(),
            };
            let message = format!("`{}` does not take {what}", op.name.node);
            let hint = format!("`{}` takes: {}", op.name.node, accepted.join(", "));
            self.diagnostics
                .push(Diagnostic::error("unexpected-operand", message, self.source, operand.span).with_hint(hint));
        }
        self.diagnostics
    }
}

/// An integer literal, possibly negative (`axis -1`).
pub(crate) fn int_literal(expr: &ast::Expr) -> Option<i64> {
    match &expr.kind {
        ExprKind::Int(value) => i64::try_from(*value).ok(),
        ExprKind::Neg(inner) => int_literal(inner).map(|value| -value),
        _ => None,
    }
}

/// The expression of an expression value.
pub(crate) fn expr_of(value: &Value) -> Option<&ast::Expr> {
    match value {
        Value::Expr(expr) => Some(expr),
        _ => None,
    }
}

/// A bare word (`interleaved`, `bf16`).
pub(crate) fn word_of(value: &Value) -> Option<&str> {
    match expr_of(value)?.kind {
        ExprKind::Ident(ref word) => Some(word),
        _ => None,
    }
}

/// A number: an integer expression, a JSON number, or `nan`/`inf`/`-inf`.
pub(crate) fn number_of(value: &Value) -> Option<f64> {
    fn from_expr(expr: &ast::Expr) -> Option<f64> {
        match &expr.kind {
            ExprKind::Int(value) => Some(*value as f64),
            ExprKind::Neg(inner) => from_expr(inner).map(|value| -value),
            ExprKind::Ident(word) if word == "nan" => Some(f64::NAN),
            ExprKind::Ident(word) if word == "inf" => Some(f64::INFINITY),
            _ => None,
        }
    }
    match value {
        Value::Expr(expr) => from_expr(expr),
        Value::Json(json) => match &json.kind {
            JsonKind::Number(text) => text.parse().ok(),
            _ => None,
        },
        _ => None,
    }
}

/// A single literal string: a one-pattern list without captures, or a JSON string.
pub(crate) fn string_of(value: &Value) -> Option<String> {
    match value {
        Value::Patterns(patterns) if patterns.len() == 1 => patterns[0].as_literal().map(str::to_owned),
        Value::Json(json) => match &json.kind {
            JsonKind::String(text) => Some(text.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// Reads `axis N` (optional with a default, or required).
pub(crate) fn axis_clause(operands: &mut Operands<'_>, default: Option<i64>) -> Option<i64> {
    let found = match default {
        Some(default) => match operands.clause("axis") {
            Some(found) => found,
            None => return Some(default),
        },
        None => operands.required("axis", "axis 0")?,
    };
    let (value, span) = found;
    let axis = expr_of(value).and_then(int_literal);
    if axis.is_none() {
        operands.error("bad-value", "`axis` takes an integer (`axis 0`, `axis -1`)", span);
    }
    axis
}
