//! Helpers for op tests: building AST ops without the parser, small tensors, and the
//! checks every op must pass (lazy = eager, inverse after forward = identity).

use std::borrow::Cow;
use std::ops::Range;

use safeshift_dsl::ast::{
    self, Expr, ExprKind, Name, Operand, OperandKind, Pattern, PatternPart, Span, Spanned, Value,
};
use safeshift_dsl::{Diagnostic, SourceId};
use safeshift_model::{DType, DTypeClass, Sym};

use crate::eager::sym_shape;
use crate::expr::Leaf;
use crate::kernel::{evaluate, evaluate_slice, evaluate_unsimplified};
use crate::operation::Operation;
use crate::tensor_set::{EagerSet, EagerTensor, OpContext, TensorSet, TensorValue};

fn name(text: &str) -> Name {
    Spanned::new(text.to_owned(), Span::DUMMY)
}

fn operand(kind: OperandKind) -> Operand {
    Operand { kind, span: Span::DUMMY }
}

/// Parses a pattern: `{x}`, `{x..}`, `{i < n}`; other text is literal.
pub fn pattern(text: &str) -> Pattern {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            parts.push(PatternPart::Literal(rest[..open].to_owned()));
        }
        let close = rest.find('}').expect("closing brace");
        let inner = &rest[open + 1..close];
        if let Some((index, bound)) = inner.split_once(" < ") {
            parts.push(PatternPart::Counted { name: name(index), bound: ident(bound) });
        } else if let Some(multi) = inner.strip_suffix("..") {
            parts.push(PatternPart::Capture { name: name(multi), multi: true });
        } else {
            parts.push(PatternPart::Capture { name: name(inner), multi: false });
        }
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        parts.push(PatternPart::Literal(rest.to_owned()));
    }
    Pattern { parts, span: Span::DUMMY }
}

/// `proc.{c * blocks + j}.{rest}`
pub fn index_target() -> Pattern {
    let mul = Expr {
        kind: ExprKind::Binary(ast::BinOp::Mul, Box::new(ident("c")), Box::new(ident("blocks"))),
        span: Span::DUMMY,
    };
    let add = Expr { kind: ExprKind::Binary(ast::BinOp::Add, Box::new(mul), Box::new(ident("j"))), span: Span::DUMMY };
    Pattern {
        parts: vec![
            PatternPart::Literal("proc.".into()),
            PatternPart::Expr(add),
            PatternPart::Literal(".".into()),
            PatternPart::Capture { name: name("rest"), multi: false },
        ],
        span: Span::DUMMY,
    }
}

pub fn ident(text: &str) -> Expr {
    Expr { kind: ExprKind::Ident(text.to_owned()), span: Span::DUMMY }
}

pub fn int(value: i64) -> Expr {
    let positive = Expr { kind: ExprKind::Int(value.unsigned_abs()), span: Span::DUMMY };
    if value < 0 {
        Expr { kind: ExprKind::Neg(Box::new(positive)), span: Span::DUMMY }
    } else {
        positive
    }
}

pub fn op(op_name: &str, operands: Vec<Operand>) -> ast::Op {
    ast::Op { name: name(op_name), operands, trivia: Default::default(), span: Span::DUMMY }
}

pub fn pats(texts: &[&str]) -> Operand {
    operand(OperandKind::Patterns(texts.iter().map(|text| pattern(text)).collect()))
}

pub fn arrow(texts: &[&str]) -> Operand {
    operand(OperandKind::Arrow(texts.iter().map(|text| pattern(text)).collect()))
}

pub fn arrow_pattern(target: Pattern) -> Operand {
    operand(OperandKind::Arrow(vec![target]))
}

pub fn flag(word: &str) -> Operand {
    operand(OperandKind::Flag(name(word)))
}

pub fn clause(keyword: &str, value: Value) -> Operand {
    operand(OperandKind::Clause { keyword: name(keyword), value })
}

pub fn clause_int(keyword: &str, value: i64) -> Operand {
    clause(keyword, Value::Expr(int(value)))
}

pub fn clause_expr(keyword: &str, expr: Expr) -> Operand {
    clause(keyword, Value::Expr(expr))
}

pub fn clause_word(keyword: &str, word: &str) -> Operand {
    clause(keyword, Value::Expr(ident(word)))
}

pub fn clause_list(keyword: &str, values: &[i64]) -> Operand {
    clause(keyword, Value::List(values.iter().map(|&value| int(value)).collect()))
}

pub fn clause_pats(keyword: &str, texts: &[&str]) -> Operand {
    clause(keyword, Value::Patterns(texts.iter().map(|text| pattern(text)).collect()))
}

pub fn clause_aux(keyword: &str, input: &str, tensor: &str) -> Operand {
    clause(keyword, Value::Aux { input: name(input), tensor: Spanned::new(tensor.to_owned(), Span::DUMMY) })
}

pub fn assign(value: Value) -> Operand {
    operand(OperandKind::Assign(value))
}

pub fn type_spec(dtype: &str, shape: Vec<Expr>) -> Operand {
    operand(OperandKind::Type(ast::TypeSpec { dtype: name(dtype), shape, span: Span::DUMMY }))
}

pub fn json_string(text: &str) -> Value {
    Value::Json(ast::Json { kind: ast::JsonKind::String(text.to_owned()), span: Span::DUMMY })
}

pub fn lower_ok(op: ast::Op) -> Box<dyn Operation> {
    match crate::lower(SourceId(0), &op) {
        Ok(lowered) => lowered,
        Err(diagnostics) => panic!("lowering failed: {diagnostics:#?}"),
    }
}

pub fn lower_err(op: ast::Op) -> Vec<Diagnostic> {
    match crate::lower(SourceId(0), &op) {
        Ok(lowered) => panic!("lowering succeeded: {lowered:?}"),
        Err(diagnostics) => diagnostics,
    }
}

pub fn codes(diagnostics: &[Diagnostic]) -> Vec<&'static str> {
    diagnostics.iter().map(|diagnostic| diagnostic.code).collect()
}

pub fn ctx_with(dims: &[(&str, i64)]) -> OpContext {
    let mut ctx = OpContext::new(SourceId(0));
    for (dim, value) in dims {
        ctx.dims.insert((*dim).to_owned(), Sym::int(*value));
    }
    ctx
}

pub fn tensor(dtype: DType, shape: &[u64], data: Vec<u8>) -> EagerTensor {
    EagerTensor { dtype, shape: shape.to_vec(), data }
}

pub fn f32_tensor(shape: &[u64], values: &[f32]) -> EagerTensor {
    tensor(DType::F32, shape, values.iter().flat_map(|value| value.to_le_bytes()).collect())
}

/// An i32 tensor holding `0, 1, 2, …` (values show where each element came from).
pub fn iota(shape: &[u64]) -> EagerTensor {
    let count: u64 = shape.iter().product();
    tensor(DType::I32, shape, (0..count as i32).flat_map(|value| value.to_le_bytes()).collect())
}

pub fn i32_values(tensor: &EagerTensor) -> Vec<i32> {
    tensor.data.chunks_exact(4).map(|chunk| i32::from_le_bytes(chunk.try_into().unwrap())).collect()
}

pub fn eager_set(tensors: &[(&str, EagerTensor)]) -> EagerSet {
    let mut set = EagerSet::new();
    for (tensor_name, tensor) in tensors {
        set.insert(tensor_name, tensor.clone());
    }
    set
}

pub fn names(set: &EagerSet) -> Vec<&str> {
    set.iter().map(|(tensor_name, _)| tensor_name).collect()
}

/// The lazy set whose sources are the tensors of `set`, plus an aux context.
pub fn lazy_of(set: &EagerSet) -> TensorSet {
    let mut lazy = TensorSet::new();
    for (tensor_name, tensor) in set.iter() {
        lazy.insert(
            tensor_name,
            TensorValue::source(tensor_name, DTypeClass::Exact(tensor.dtype), sym_shape(&tensor.shape)),
        );
    }
    lazy.metadata = set.metadata.clone();
    lazy
}

/// `ctx` plus the aux tensors of `set`.
pub fn with_aux(ctx: &OpContext, set: &EagerSet) -> OpContext {
    let mut ctx = ctx.clone();
    for ((input, tensor_name), tensor) in &set.aux {
        let info = crate::AuxInfo { dtype: DTypeClass::Exact(tensor.dtype), shape: sym_shape(&tensor.shape) };
        ctx.aux.insert((input.clone(), tensor_name.clone()), info);
    }
    ctx
}

/// Evaluates every tensor of `lazy` with leaves read from `sources` (and its aux).
pub fn evaluate_all(lazy: &TensorSet, sources: &EagerSet) -> EagerSet {
    let read = |leaf: &Leaf| -> Result<Cow<'_, [u8]>, std::io::Error> {
        let found = match &leaf.aux {
            None => sources.get(&leaf.name),
            Some(input) => sources.aux.get(&(input.clone(), leaf.name.clone())),
        };
        found
            .map(|tensor| Cow::Borrowed(tensor.data.as_slice()))
            .ok_or_else(|| std::io::Error::other(leaf.name.clone()))
    };
    let mut out = EagerSet::new();
    for (tensor_name, value) in lazy.iter() {
        let DTypeClass::Exact(dtype) = value.dtype() else { panic!("inexact dtype") };
        let shape: Vec<u64> = value.shape().iter().map(|dim| dim.as_int().unwrap() as u64).collect();
        let data = evaluate(value.expr(), &read).unwrap_or_else(|err| panic!("evaluating `{tensor_name}`: {err}"));
        let plain = evaluate_unsimplified(value.expr(), &read).unwrap();
        let simplified = crate::simplify(value.expr().clone());
        assert_eq!(crate::simplify(simplified.clone()), simplified, "`{tensor_name}`: simplify is not idempotent");
        assert_eq!(
            data.len() as u64,
            dtype.byte_len(shape.iter().product()).unwrap(),
            "`{tensor_name}`: shape rule and kernel disagree"
        );
        assert_eq!(data, plain, "`{tensor_name}`: simplification changed the bytes of {}", value.expr());
        // Computing straight into a buffer (what the writer does) gives the same bytes.
        let mut into = vec![0xAB; data.len()];
        crate::evaluate_into(value.expr(), &mut into, &read)
            .unwrap_or_else(|err| panic!("into `{tensor_name}`: {err}"));
        assert_eq!(into, data, "`{tensor_name}`: evaluate_into disagrees with evaluate");
        let mut wrong = vec![0; data.len() + 1];
        assert!(
            crate::evaluate_into(value.expr(), &mut wrong, &read).is_err(),
            "a buffer of the wrong size is refused"
        );
        // Any row partition, concatenated, gives the whole.
        if let Some(&rows) = shape.first() {
            let mut joined = Vec::new();
            for range in partition(rows) {
                joined.extend(evaluate_slice(value.expr(), range, &read).unwrap());
            }
            assert_eq!(joined, data, "`{tensor_name}`: row slices disagree with the whole");
        }
        out.insert(tensor_name, EagerTensor { dtype, shape, data });
    }
    out.metadata = lazy.metadata.clone();
    out
}

/// Rows `0..rows` cut into uneven pieces (one empty piece included).
pub fn partition(rows: u64) -> Vec<Range<u64>> {
    let mut cuts = [0, rows / 3, rows / 3, rows / 2 + 1, rows];
    cuts.iter_mut().for_each(|cut| *cut = (*cut).min(rows));
    cuts.sort();
    cuts.windows(2).map(|pair| pair[0]..pair[1]).collect()
}

/// Applies `op` lazily and eagerly to `set` and checks that they agree (names, dtypes,
/// shapes, bytes, metadata); returns the eager result.
pub fn check_lazy_eager(op: &dyn Operation, set: &EagerSet, ctx: &OpContext) -> EagerSet {
    let ctx = with_aux(ctx, set);
    let mut lazy = lazy_of(set);
    op.apply(&mut lazy, &ctx).unwrap_or_else(|err| panic!("apply: {err}"));
    let mut eager = set.clone();
    op.eager(&mut eager, &ctx).unwrap_or_else(|err| panic!("eager: {err}"));
    let mut computed = evaluate_all(&lazy, set);
    computed.aux = eager.aux.clone();
    assert_eq!(computed, eager, "lazy and eager disagree for {op:?}");
    eager
}

/// Checks lazy = eager, then that the inverse undoes the op, lazily and eagerly.
pub fn check_round_trip(op: &dyn Operation, set: &EagerSet, ctx: &OpContext) {
    let ctx = with_aux(ctx, set);
    let forward = check_lazy_eager(op, set, &ctx);
    let before = lazy_of(set);
    let inverse = op.inverse(&before, &ctx).unwrap_or_else(|err| panic!("{err}"));
    // Lazily: forward then inverse over the original sources.
    let mut lazy = before.clone();
    op.apply(&mut lazy, &ctx).unwrap();
    for inverse_op in &inverse {
        inverse_op.apply(&mut lazy, &ctx).unwrap_or_else(|err| panic!("inverse apply: {err}"));
    }
    let mut back = evaluate_all(&lazy, set);
    back.aux = set.aux.clone();
    assert_eq!(&back, set, "the inverse does not restore the set (lazy)");
    // Eagerly.
    let mut eager = forward;
    for inverse_op in &inverse {
        inverse_op.eager(&mut eager, &ctx).unwrap_or_else(|err| panic!("inverse eager: {err}"));
    }
    assert_eq!(&eager, set, "the inverse does not restore the set (eager)");
}

/// The operations of a migration body written in the language.
pub fn parse_ops(body: &str) -> Vec<ast::Op> {
    let text = format!("migration test.model 0.1.0 -> 0.2.0 {{\n{body}\n}}\n");
    let file =
        safeshift_dsl::parse(SourceId(0), &text).unwrap_or_else(|diagnostics| panic!("{text}\n{diagnostics:#?}"));
    match &file.items[0] {
        ast::Item::Migration(migration) => migration.ops.clone(),
        other => panic!("not a migration: {other:?}"),
    }
}

/// Lowers the single operation written in `statement`.
pub fn lower_text(statement: &str) -> Box<dyn Operation> {
    let ops = parse_ops(statement);
    assert_eq!(ops.len(), 1, "one statement expected in {statement:?}");
    lower_ok(ops.into_iter().next().expect("one op"))
}
