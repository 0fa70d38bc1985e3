//! ## `permute-heads`
//!
//! ```safeshift
//! permute-heads SRC heads H from (interleaved | rotate_half) to (interleaved | rotate_half) [axis N] [optional]
//! ```
//!
//! Reorders the rows of each head of a query or key projection between the two rotary
//! embedding conventions. Each head has `d = shape[N] / H` rows, `d` even. In the
//! `interleaved` convention (Meta's LLaMA) rotary pairs are rows `(2m, 2m + 1)`; in
//! `rotate_half` (Hugging Face) they are rows `(m, m + d/2)`. From interleaved to
//! rotate_half, output row `h·d + c·(d/2) + m` is input row `h·d + 2m + c` (`c ∈ {0, 1}`,
//! `m < d/2`): exactly Hugging Face's conversion script,
//! `w.view(H, d // 2, 2, rest).transpose(1, 2).reshape(H·d, rest)`. For keys under
//! grouped-query attention, write the key/value head count as `heads`.
//!
//! * **Shape rule:** unchanged; `shape[N]` must be `H·d` with `d` even.
//! * **Inverse:** the same with `from` and `to` swapped.
//! * **Lossy:** no.
//!
//! Example, `H = 1`, `d = 4`: interleaved rows `[x0, y0, x1, y1]` become rotate_half rows
//! `[x0, x1, y0, y1]`.
//!
//! ```safeshift
//! permute-heads "{p..}.self_attn.q_proj.weight" heads heads from interleaved to rotate_half
//! permute-heads "{p..}.self_attn.k_proj.weight" heads kv_heads from interleaved to rotate_half
//! ```

use safeshift_dsl::ast::Pattern;
use safeshift_model::Sym;

use crate::eager;
use crate::expr::{is_size, Expr};
use crate::lower::{axis_clause, expr_of, word_of, Operands};
use crate::operation::{Builtin, NoInverse, OpBase, OpError, OpErrorKind, Operation};
use crate::rewrite::resolve_axis;
use crate::tensor_set::{concrete, resolve};
use crate::tensor_set::{EagerSet, OpContext, TensorSet, TensorValue};

/// A rotary pairing convention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rotary {
    /// Pairs `(2m, 2m + 1)`.
    Interleaved,
    /// Pairs `(m, m + d/2)`.
    RotateHalf,
}

/// `permute-heads SRC heads H from A to B`.
#[derive(Clone, Debug)]
pub(crate) struct PermuteHeads {
    base: OpBase,
    source: Pattern,
    heads: Sym,
    from: Rotary,
    to: Rotary,
    axis: i64,
    optional: bool,
}

fn rotary(operands: &mut Operands<'_>, keyword: &'static str) -> Option<Rotary> {
    let (value, span) = operands.required(keyword, &format!("{keyword} interleaved"))?;
    match word_of(value) {
        Some("interleaved") => Some(Rotary::Interleaved),
        Some("rotate_half") => Some(Rotary::RotateHalf),
        _ => {
            operands.error_with_hint(
                "bad-value",
                "unknown rotary convention",
                span,
                "write `interleaved` or `rotate_half`",
            );
            None
        }
    }
}

pub(crate) fn lower(operands: &mut Operands<'_>) -> Option<Box<dyn Operation>> {
    let source = operands.pattern("a source name pattern");
    let heads = match operands.required("heads", "heads 32") {
        Some((value, span)) => match expr_of(value) {
            Some(expr) => Some(Sym::from_expr(expr)),
            None => {
                operands.error("bad-value", "`heads` takes a count (`heads 32`, `heads kv_heads`)", span);
                None
            }
        },
        None => None,
    };
    let from = rotary(operands, "from");
    let to = rotary(operands, "to");
    if from.is_some() && from == to {
        let span = operands.base("permute-heads").span;
        operands.error("bad-value", "`from` and `to` are the same convention", span);
        return None;
    }
    let axis = axis_clause(operands, Some(0));
    let optional = operands.flag("optional").is_some();
    let base = operands.base("permute-heads");
    Some(Box::new(PermuteHeads {
        base,
        source: source?.clone(),
        heads: heads?,
        from: from?,
        to: to?,
        axis: axis?,
        optional,
    }))
}

impl PermuteHeads {
    /// Axis, heads and half head size for a tensor of `shape`.
    fn dims(&self, ctx: &OpContext, shape: &[Sym]) -> Result<(usize, Sym, Sym), OpErrorKind> {
        let axis = resolve_axis(self.axis, shape.len())?;
        let heads = resolve(ctx, &self.heads)?;
        let half = shape[axis].div(&heads.mul(&Sym::int(2)));
        if !is_size(&half) || half.mul(&heads).mul(&Sym::int(2)) != shape[axis] {
            return Err(OpErrorKind::invalid(format!(
                "axis {axis} of size {} is not {heads} heads of even size",
                shape[axis]
            )));
        }
        Ok((axis, heads, half))
    }
}

impl Builtin for PermuteHeads {
    fn base(&self) -> &OpBase {
        &self.base
    }

    fn apply(&self, set: &mut TensorSet, ctx: &OpContext) -> Result<(), OpError> {
        self.base.select(&mut set.tensors, &self.source, self.optional)?.map_each(|value| {
            let shape = value.shape();
            let (axis, heads, half) = self.dims(ctx, shape)?;
            // Rows of a head as [half, 2] (interleaved) or [2, half] (rotate_half); swapping
            // the two axes converts.
            let inner = match self.from {
                Rotary::Interleaved => [half, Sym::int(2)],
                Rotary::RotateHalf => [Sym::int(2), half],
            };
            let mut split_shape = shape[..axis].to_vec();
            split_shape.push(heads);
            split_shape.extend(inner);
            split_shape.extend_from_slice(&shape[axis + 1..]);
            let mut axes: Vec<usize> = (0..split_shape.len()).collect();
            axes.swap(axis + 1, axis + 2);
            let expr = Expr::Reshape {
                input: Box::new(Expr::Permute {
                    input: Box::new(Expr::Reshape { input: Box::new(value.expr().clone()), shape: split_shape }),
                    axes,
                }),
                shape: shape.to_vec(),
            };
            Ok(TensorValue::new(expr)?)
        })
    }

    fn eager(&self, set: &mut EagerSet, ctx: &OpContext) -> Result<(), OpError> {
        self.base.select(&mut set.tensors, &self.source, self.optional)?.map_each(|tensor| {
            let (axis, _, half) = self.dims(ctx, &eager::sym_shape(&tensor.shape))?;
            let half = concrete(ctx, &half)?;
            let head_dim = 2 * half;
            let rows: Vec<u64> = (0..tensor.shape[axis])
                .map(|row| {
                    let (head, within) = (row / head_dim, row % head_dim);
                    let source = match self.from {
                        // Output (rotate_half) row c·half + m comes from input row 2m + c.
                        Rotary::Interleaved => 2 * (within % half) + within / half,
                        // Output (interleaved) row 2m + c comes from input row c·half + m.
                        Rotary::RotateHalf => (within % 2) * half + within / 2,
                    };
                    head * head_dim + source
                })
                .collect();
            eager::gather(tensor, axis, &rows)
        })
    }

    fn inverse(&self, _before: &TensorSet, _ctx: &OpContext) -> Result<Vec<Box<dyn Operation>>, NoInverse> {
        Ok(vec![Box::new(PermuteHeads { from: self.to, to: self.from, ..self.clone() })])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::*;

    fn permute_heads(heads: i64, from: &str, to: &str) -> Box<dyn Operation> {
        lower_ok(op(
            "permute-heads",
            vec![pats(&["w"]), clause_int("heads", heads), clause_word("from", from), clause_word("to", to)],
        ))
    }

    /// Hugging Face: `w.view(n_heads, dim1 // n_heads // 2, 2, dim2).transpose(1, 2)
    /// .reshape(dim1, dim2)`. For H = 2, dim1 = 8 (d = 4, d/2 = 2), dim2 = 2: the view
    /// index (h, m, c) is input row h·4 + m·2 + c; after the transpose it is at (h, c, m),
    /// i.e. output row h·4 + c·2 + m. So output rows come from input rows
    /// h=0: (c=0,m=0)←0, (0,1)←2, (1,0)←1, (1,1)←3; h=1: 4, 6, 5, 7.
    #[test]
    fn reproduces_the_hugging_face_permutation() {
        let set = eager_set(&[("w", iota(&[8, 2]))]);
        let out = check_lazy_eager(&*permute_heads(2, "interleaved", "rotate_half"), &set, &OpContext::default());
        let expected_rows = [0, 2, 1, 3, 4, 6, 5, 7];
        let expected: Vec<i32> = expected_rows.iter().flat_map(|row| [2 * row, 2 * row + 1]).collect();
        assert_eq!(i32_values(out.get("w").unwrap()), expected);
    }

    #[test]
    fn grouped_keys_use_their_own_head_count() {
        // Keys with K = 1 head of d = 6 (query heads irrelevant): rows 0, 2, 4, 1, 3, 5.
        let set = eager_set(&[("w", iota(&[6]))]);
        let out = check_lazy_eager(&*permute_heads(1, "interleaved", "rotate_half"), &set, &OpContext::default());
        assert_eq!(i32_values(out.get("w").unwrap()), [0, 2, 4, 1, 3, 5]);
        let back = check_lazy_eager(&*permute_heads(1, "rotate_half", "interleaved"), &out, &OpContext::default());
        assert_eq!(back, set);
    }

    #[test]
    fn round_trips_both_ways() {
        let set = eager_set(&[("w", iota(&[12, 3]))]);
        for (from, to) in [("interleaved", "rotate_half"), ("rotate_half", "interleaved")] {
            check_round_trip(&*permute_heads(3, from, to), &set, &OpContext::default());
        }
    }

    #[test]
    fn odd_head_size_is_an_error() {
        let mut set = eager_set(&[("w", iota(&[6]))]);
        let err = permute_heads(2, "interleaved", "rotate_half").eager(&mut set, &OpContext::default()).unwrap_err();
        assert_eq!(err.to_string(), "`permute-heads` on `w`: axis 0 of size 6 is not 2 heads of even size");
    }
}
