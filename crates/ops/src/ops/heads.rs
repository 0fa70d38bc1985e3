//! Head layouts of fused attention projections, shared by `split-heads` and `merge-heads`.
//!
//! A fused projection stacks the rows of the query (`H` heads), key and value (`K` heads
//! each, `K = H` unless grouped-query attention) projections, each head `d` rows, along
//! one axis of `(H + 2K)·d` rows. With `r = H / K` query heads per key/value head:
//!
//! * `chunked` = `[3, heads, head_dim]` blocks: all query rows, then all key rows, then all
//!   value rows. Query row `h·d + i` is fused row `h·d + i`; key row `g·d + i` is fused row
//!   `H·d + g·d + i`; value row `g·d + i` is fused row `(H + K)·d + g·d + i`.
//! * `interleaved` = `[heads, 3, head_dim]` per group: for each key/value group `g < K`, its
//!   `r` query heads, then its key head, then its value head, `(r + 2)·d` rows per group.
//!   Query head `h = g·r + j` (`j < r`) row `i` is fused row `g·(r + 2)·d + j·d + i`; key row
//!   `g·d + i` is fused row `g·(r + 2)·d + r·d + i`; value row `g·d + i` is fused row
//!   `g·(r + 2)·d + (r + 1)·d + i`. With `K = H` this is `[heads, 3, head_dim]`.

use safeshift_dsl::ast::{Span, Value};
use safeshift_model::Sym;

use crate::eager;
use crate::expr::{is_size, Expr};
use crate::lower::{axis_clause, expr_of, word_of, Operands};
use crate::operation::OpErrorKind;
use crate::rewrite::resolve_axis;
use crate::tensor_set::{concrete, resolve};
use crate::tensor_set::{EagerTensor, OpContext};

/// How the heads of a fused projection are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeadLayout {
    /// `[3, heads, head_dim]`
    Chunked,
    /// `[heads, 3, head_dim]` per key/value group
    Interleaved,
}

/// The clauses common to `split-heads` and `merge-heads`.
#[derive(Clone, Debug)]
pub(crate) struct HeadSpec {
    pub layout: HeadLayout,
    pub heads: Sym,
    pub kv_heads: Option<Sym>,
    pub head_dim: Option<Sym>,
    pub axis: i64,
}

/// The dims of one fused tensor.
pub(crate) struct Heads {
    pub axis: usize,
    /// Query heads `H`.
    pub heads: Sym,
    /// Key/value heads `K`.
    pub kv_heads: Sym,
    /// Rows per head `d`.
    pub head_dim: Sym,
    /// Query heads per key/value head `r`.
    pub group: Sym,
}

pub(crate) fn lower_spec(operands: &mut Operands<'_>) -> Option<HeadSpec> {
    let layout = match operands.required("layout", "layout chunked") {
        Some((value, span)) => match word_of(value) {
            Some("chunked") => Some(HeadLayout::Chunked),
            Some("interleaved") => Some(HeadLayout::Interleaved),
            _ => {
                operands.error_with_hint(
                    "bad-value",
                    "unknown head layout",
                    span,
                    "write `layout chunked` or `layout interleaved`",
                );
                None
            }
        },
        None => None,
    };
    let heads = size(operands, "heads", true);
    let kv_heads = size(operands, "kv_heads", false);
    let head_dim = size(operands, "head_dim", false);
    let axis = axis_clause(operands, Some(0));
    Some(HeadSpec { layout: layout?, heads: heads??, kv_heads: kv_heads?, head_dim: head_dim?, axis: axis? })
}

/// `Some(Some(sym))` when written, `Some(None)` when absent and optional, `None` on error.
fn size(operands: &mut Operands<'_>, keyword: &'static str, required: bool) -> Option<Option<Sym>> {
    let found = if required { operands.required(keyword, &format!("{keyword} 8")) } else { operands.clause(keyword) };
    let Some((value, span)) = found else {
        return if required { None } else { Some(None) };
    };
    match expr_of(value) {
        Some(expr) => Some(Some(Sym::from_expr(expr))),
        None => {
            bad(operands, keyword, span, value);
            None
        }
    }
}

fn bad(operands: &mut Operands<'_>, keyword: &str, span: Span, _value: &Value) {
    operands.error("bad-value", format!("`{keyword}` takes a count (`{keyword} 32`, `{keyword} heads`)"), span);
}

impl HeadSpec {
    /// The dims for a fused tensor of `shape` (or, for a merge, the query part's shape).
    pub fn resolve(&self, ctx: &OpContext, shape: &[Sym], rows_are_fused: bool) -> Result<Heads, OpErrorKind> {
        let axis = resolve_axis(self.axis, shape.len())?;
        let heads = resolve(ctx, &self.heads)?;
        let kv_heads = match &self.kv_heads {
            Some(kv) => resolve(ctx, kv)?,
            None => heads.clone(),
        };
        let per_head = if rows_are_fused { heads.add(&kv_heads.mul(&Sym::int(2))) } else { heads.clone() };
        let head_dim = match &self.head_dim {
            Some(head_dim) => resolve(ctx, head_dim)?,
            None => shape[axis].div(&per_head),
        };
        let group = heads.div(&kv_heads);
        if !is_size(&head_dim) || per_head.mul(&head_dim) != shape[axis] {
            return Err(OpErrorKind::invalid(format!(
                "axis {axis} of size {} is not {per_head} heads of equal size",
                shape[axis]
            )));
        }
        if !is_size(&group) || group == Sym::int(0) {
            return Err(OpErrorKind::invalid(format!(
                "{heads} query heads do not group evenly over {kv_heads} key/value heads"
            )));
        }
        Ok(Heads { axis, heads, kv_heads, head_dim, group })
    }
}

fn with_axis(shape: &[Sym], axis: usize, replacement: &[Sym]) -> Vec<Sym> {
    let mut out = shape[..axis].to_vec();
    out.extend_from_slice(replacement);
    out.extend_from_slice(&shape[axis + 1..]);
    out
}

/// The lazy query, key and value parts of a fused tensor.
pub(crate) fn split_lazy(layout: HeadLayout, fused: &Expr, shape: &[Sym], dims: &Heads) -> [Expr; 3] {
    let Heads { axis, heads, kv_heads, head_dim, group } = dims;
    let q_rows = heads.mul(head_dim);
    let kv_rows = kv_heads.mul(head_dim);
    match layout {
        HeadLayout::Chunked => {
            let narrow =
                |start: Sym, len: Sym| Expr::Narrow { input: Box::new(fused.clone()), axis: *axis, start, len };
            [
                narrow(Sym::int(0), q_rows.clone()),
                narrow(q_rows.clone(), kv_rows.clone()),
                narrow(q_rows.add(&kv_rows), kv_rows),
            ]
        }
        HeadLayout::Interleaved => {
            let slots = group.add(&Sym::int(2));
            let grouped = Expr::Reshape {
                input: Box::new(fused.clone()),
                shape: with_axis(shape, *axis, &[kv_heads.clone(), slots, head_dim.clone()]),
            };
            let part = |start: Sym, len: Sym, rows: &Sym| Expr::Reshape {
                input: Box::new(Expr::Narrow { input: Box::new(grouped.clone()), axis: axis + 1, start, len }),
                shape: with_axis(shape, *axis, std::slice::from_ref(rows)),
            };
            [
                part(Sym::int(0), group.clone(), &q_rows),
                part(group.clone(), Sym::int(1), &kv_rows),
                part(group.add(&Sym::int(1)), Sym::int(1), &kv_rows),
            ]
        }
    }
}

/// The lazy fused tensor of query, key and value parts (`q_shape` is the query's shape).
pub(crate) fn merge_lazy(layout: HeadLayout, parts: [&Expr; 3], q_shape: &[Sym], dims: &Heads) -> Expr {
    let Heads { axis, heads, kv_heads, head_dim, group } = dims;
    match layout {
        HeadLayout::Chunked => Expr::Concat { inputs: parts.iter().map(|part| (*part).clone()).collect(), axis: *axis },
        HeadLayout::Interleaved => {
            let grouped = |part: &Expr, slots: Sym| Expr::Reshape {
                input: Box::new(part.clone()),
                shape: with_axis(q_shape, *axis, &[kv_heads.clone(), slots, head_dim.clone()]),
            };
            let inputs =
                vec![grouped(parts[0], group.clone()), grouped(parts[1], Sym::int(1)), grouped(parts[2], Sym::int(1))];
            let fused_rows = heads.add(&kv_heads.mul(&Sym::int(2))).mul(head_dim);
            Expr::Reshape {
                input: Box::new(Expr::Concat { inputs, axis: axis + 1 }),
                shape: with_axis(q_shape, *axis, &[fused_rows]),
            }
        }
    }
}

/// Concrete `H`, `K`, `d`, `r`.
fn concrete_dims(ctx: &OpContext, dims: &Heads) -> Result<(u64, u64, u64, u64), OpErrorKind> {
    Ok((
        concrete(ctx, &dims.heads)?,
        concrete(ctx, &dims.kv_heads)?,
        concrete(ctx, &dims.head_dim)?,
        concrete(ctx, &dims.group)?,
    ))
}

/// Rows along `axis` picked by `source_row(output_row)`, by plain index loops.
fn pick_rows(
    tensor: &EagerTensor,
    axis: usize,
    rows: u64,
    source_row: impl Fn(u64) -> u64,
) -> Result<EagerTensor, OpErrorKind> {
    let indices: Vec<u64> = (0..rows).map(source_row).collect();
    eager::gather(tensor, axis, &indices)
}

/// The fused row that query (`part` 0), key (1) or value (2) row `row` comes from.
pub(crate) fn fused_row(
    layout: HeadLayout,
    part: u64,
    row: u64,
    (heads, kv_heads, head_dim, group): (u64, u64, u64, u64),
) -> u64 {
    let (head, i) = (row / head_dim, row % head_dim);
    match (layout, part) {
        (HeadLayout::Chunked, 0) => row,
        (HeadLayout::Chunked, 1) => heads * head_dim + row,
        (HeadLayout::Chunked, _) => (heads + kv_heads) * head_dim + row,
        (HeadLayout::Interleaved, 0) => {
            let (g, j) = (head / group, head % group);
            g * (group + 2) * head_dim + j * head_dim + i
        }
        (HeadLayout::Interleaved, 1) => head * (group + 2) * head_dim + group * head_dim + i,
        (HeadLayout::Interleaved, _) => head * (group + 2) * head_dim + (group + 1) * head_dim + i,
    }
}

/// Eager split by the index formula.
pub(crate) fn split_eager(
    layout: HeadLayout,
    ctx: &OpContext,
    fused: &EagerTensor,
    dims: &Heads,
) -> Result<Vec<EagerTensor>, OpErrorKind> {
    let concrete = concrete_dims(ctx, dims)?;
    let (heads, kv_heads, head_dim, _) = concrete;
    let rows = [heads * head_dim, kv_heads * head_dim, kv_heads * head_dim];
    (0..3u64)
        .map(|part| pick_rows(fused, dims.axis, rows[part as usize], |row| fused_row(layout, part, row, concrete)))
        .collect()
}

/// Eager merge: the parts stacked in chunked order, then each fused row picked from where
/// the formula puts it.
pub(crate) fn merge_eager(
    layout: HeadLayout,
    ctx: &OpContext,
    parts: [&EagerTensor; 3],
    dims: &Heads,
) -> Result<EagerTensor, OpErrorKind> {
    let concrete = concrete_dims(ctx, dims)?;
    let (heads, kv_heads, head_dim, _) = concrete;
    let stacked = eager::concat(&parts, dims.axis)?;
    let total = (heads + 2 * kv_heads) * head_dim;
    // Invert the formula: fused row → (part, row) → row of the stacked parts.
    let mut source = vec![0u64; total as usize];
    let offsets = [0, heads * head_dim, (heads + kv_heads) * head_dim];
    let rows = [heads * head_dim, kv_heads * head_dim, kv_heads * head_dim];
    for part in 0..3u64 {
        for row in 0..rows[part as usize] {
            source[fused_row(layout, part, row, concrete) as usize] = offsets[part as usize] + row;
        }
    }
    pick_rows(&stacked, dims.axis, total, |row| source[row as usize])
}
