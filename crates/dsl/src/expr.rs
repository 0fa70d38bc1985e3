//! Integer expressions: pest pairs to [`ast::Expr`] with one Pratt precedence table.

use std::sync::LazyLock;

use pest::iterators::Pair;
use pest::pratt_parser::{Assoc, Op, PrattParser};

use crate::ast::{BinOp, Expr, ExprKind, Span};
use crate::parser::{Builder, Rule};

/// `+ -` bind loosest, then `* / %`, then prefix `-`; binary operators associate left.
static PRATT: LazyLock<PrattParser<Rule>> = LazyLock::new(|| {
    PrattParser::new()
        .op(Op::infix(Rule::add, Assoc::Left) | Op::infix(Rule::sub, Assoc::Left))
        .op(Op::infix(Rule::mul, Assoc::Left) | Op::infix(Rule::div, Assoc::Left) | Op::infix(Rule::rem, Assoc::Left))
        .op(Op::prefix(Rule::neg))
});

/// The most operators one expression may hold. Every pass over an expression recurses
/// once per operator in a chain (`1 + 1 + … + 1` is a left-deep tree), so a bound keeps
/// hostile input from overflowing the stack. Real expressions have two or three.
pub(crate) const MAX_OPERATORS: usize = 256;

impl Builder<'_> {
    /// Builds an expression from an `expr` pair.
    pub(crate) fn expr(&mut self, pair: Pair<'_, Rule>) -> Expr {
        assert_eq!(pair.as_rule(), Rule::expr);
        let span = self.span(&pair);
        let operators = pair
            .clone()
            .into_inner()
            .filter(|inner| {
                matches!(inner.as_rule(), Rule::add | Rule::sub | Rule::mul | Rule::div | Rule::rem | Rule::neg)
            })
            .count();
        if operators > MAX_OPERATORS {
            self.error(
                crate::Diagnostic::error(
                    "too-long",
                    format!("expression with more than {MAX_OPERATORS} operators"),
                    self.source,
                    span,
                )
                .with_label("this expression"),
            );
            return Expr { kind: ExprKind::Int(0), span };
        }
        let offset = self.offset;
        PRATT
            .map_primary(|primary| self.primary(primary))
            .map_prefix(move |neg, operand| {
                let span = Span::new(offset + neg.as_span().start(), operand.span.end);
                Expr { kind: ExprKind::Neg(Box::new(operand)), span }
            })
            .map_infix(|lhs, op, rhs| {
                let op = match op.as_rule() {
                    Rule::add => BinOp::Add,
                    Rule::sub => BinOp::Sub,
                    Rule::mul => BinOp::Mul,
                    Rule::div => BinOp::Div,
                    Rule::rem => BinOp::Rem,
                    rule => unreachable!("not an infix operator: {rule:?}"),
                };
                let span = lhs.span.to(rhs.span);
                Expr { kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)), span }
            })
            .parse(pair.into_inner())
    }

    fn primary(&mut self, pair: Pair<'_, Rule>) -> Expr {
        let span = self.span(&pair);
        match pair.as_rule() {
            Rule::int => Expr { kind: ExprKind::Int(self.int(&pair)), span },
            Rule::name_expr => Expr { kind: ExprKind::Ident(pair.as_str().to_owned()), span },
            Rule::parens => {
                let inner = pair.into_inner().find(|inner| inner.as_rule() == Rule::expr);
                match inner {
                    Some(inner) => self.expr(inner),
                    None => unreachable!("`parens` always holds an `expr`"),
                }
            }
            rule => unreachable!("not a primary: {rule:?}"),
        }
    }

    /// The value of an `int` token, or an error if it does not fit in 64 bits.
    pub(crate) fn int(&mut self, pair: &Pair<'_, Rule>) -> u64 {
        match pair.as_str().parse::<u64>() {
            Ok(value) => value,
            Err(_) => {
                let span = self.span(pair);
                self.error(
                    crate::Diagnostic::error("int-too-large", "integer literal too large", self.source, span)
                        .with_label("does not fit in 64 bits")
                        .with_hint(format!("the largest integer is {}", u64::MAX)),
                );
                0
            }
        }
    }
}
