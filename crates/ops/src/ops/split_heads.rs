//! ## `split-heads`
//!
//! ```safeshift
//! split-heads SRC into Q, K, V layout (chunked | interleaved) heads H [kv_heads K] [head_dim D] [axis N] [optional]
//! ```
//!
//! Splits a fused attention projection (weight or bias) into query, key and value parts.
//! `H` query heads, `K` key/value heads (default `H`; fewer for grouped-query attention),
//! head size `D` (default: the axis size divided by `H + 2K`), along axis `N` (default 0).
//! With `r = H / K`:
//!
//! * `layout chunked` (`[3, heads, head_dim]`): query row `h·D + i` is fused row `h·D + i`,
//!   key row `g·D + i` is fused row `H·D + g·D + i`, value row `g·D + i` is fused row
//!   `(H + K)·D + g·D + i`. Each part is a contiguous block: along the first axis, a byte
//!   range.
//! * `layout interleaved` (`[heads, 3, head_dim]` as GPT-NeoX stores it; with grouped-query
//!   attention `[kv_heads, r + 2, head_dim]` as Falcon's `_split_heads` views it: per
//!   key/value group `g`, its `r` query heads, its key head, its value head): query head `h = g·r + j` row
//!   `i` is fused row `g·(r + 2)·D + j·D + i`, key row `g·D + i` is fused row
//!   `g·(r + 2)·D + r·D + i`, value row `g·D + i` is fused row `g·(r + 2)·D + (r + 1)·D + i`.
//!
//! * **Shape rule:** `shape[N] = (H + 2K)·D`; Q has `H·D` rows, K and V `K·D`.
//! * **Inverse:** `merge-heads Q, K, V into SRC` with the same layout and counts.
//! * **Lossy:** no.
//!
//! Example, interleaved, `H = 4`, `K = 2`, `D = 1` (so `r = 2`): fused rows
//! `[q0, q1, k0, v0, q2, q3, k1, v1]` give `Q = [q0, q1, q2, q3]`, `K = [k0, k1]`,
//! `V = [v0, v1]`.
//!
//! ```safeshift
//! split-heads "{p..}.query_key_value.{w}" into "{p}.q_proj.{w}", "{p}.k_proj.{w}", "{p}.v_proj.{w}"
//!     layout interleaved heads 32 kv_heads 8
//! ```

use safeshift_dsl::ast::{Pattern, Value};

use super::heads::{lower_spec, split_eager, split_lazy, HeadSpec};
use super::merge_heads::MergeHeads;
use crate::lower::Operands;
use crate::operation::{Builtin, NoInverse, OpBase, OpError, Operation};
use crate::rewrite::{as_source, Sources};
use crate::tensor_set::{EagerSet, OpContext, TensorSet, TensorValue};

/// `split-heads SRC into Q, K, V …`.
#[derive(Clone, Debug)]
pub(crate) struct SplitHeads {
    pub base: OpBase,
    pub source: Pattern,
    pub targets: Vec<Pattern>,
    pub spec: HeadSpec,
    pub optional: bool,
}

pub(crate) fn lower(operands: &mut Operands<'_>) -> Option<Box<dyn Operation>> {
    let source = operands.pattern("a source name pattern");
    let targets = match operands.required("into", "into \"q\", \"k\", \"v\"") {
        Some((Value::Patterns(targets), _)) if targets.len() == 3 => Some(targets.clone()),
        Some((_, span)) => {
            operands.error("bad-value", "`into` takes three names: query, key, value", span);
            None
        }
        None => None,
    };
    let spec = lower_spec(operands);
    let optional = operands.flag("optional").is_some();
    let base = operands.base("split-heads");
    Some(Box::new(SplitHeads { base, source: source?.clone(), targets: targets?, spec: spec?, optional }))
}

impl Builtin for SplitHeads {
    fn base(&self) -> &OpBase {
        &self.base
    }

    fn apply(&self, set: &mut TensorSet, ctx: &OpContext) -> Result<(), OpError> {
        self.base.select(&mut set.tensors, &self.source, self.optional)?.fan_out(
            &self.targets,
            Sources::Replaced,
            ctx,
            |value| {
                let dims = self.spec.resolve(ctx, value.shape(), true)?;
                let parts = split_lazy(self.spec.layout, value.expr(), value.shape(), &dims);
                Ok(parts.into_iter().map(TensorValue::new).collect::<Result<Vec<_>, _>>()?)
            },
        )
    }

    fn eager(&self, set: &mut EagerSet, ctx: &OpContext) -> Result<(), OpError> {
        self.base.select(&mut set.tensors, &self.source, self.optional)?.fan_out(
            &self.targets,
            Sources::Replaced,
            ctx,
            |tensor| {
                let shape = crate::eager::sym_shape(&tensor.shape);
                let dims = self.spec.resolve(ctx, &shape, true)?;
                split_eager(self.spec.layout, ctx, tensor, &dims)
            },
        )
    }

    fn inverse(&self, _before: &TensorSet, _ctx: &OpContext) -> Result<Vec<Box<dyn Operation>>, NoInverse> {
        let parts: Option<Vec<Pattern>> = self.targets.iter().map(|target| as_source(target, &self.source)).collect();
        let Some(parts) = parts else {
            return Err(self.base.no_inverse("a part name computes indices, which cannot be matched back"));
        };
        let base = self.base.renamed("merge-heads");
        Ok(vec![Box::new(MergeHeads {
            base,
            parts,
            target: self.source.clone(),
            spec: self.spec.clone(),
            optional: true,
        })])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::byte_range::byte_range;
    use crate::ops::testing::*;

    fn split_heads(layout: &str, heads: i64, kv_heads: Option<i64>) -> Box<dyn Operation> {
        let mut operands = vec![
            pats(&["qkv"]),
            clause_pats("into", &["q", "k", "v"]),
            clause_word("layout", layout),
            clause_int("heads", heads),
        ];
        if let Some(kv) = kv_heads {
            operands.push(clause_int("kv_heads", kv));
        }
        lower_ok(op("split-heads", operands))
    }

    /// Fused row `n` holds the value `n` (one column), so each output lists fused rows.
    fn rows_of(out: &EagerSet, name: &str) -> Vec<i32> {
        i32_values(out.get(name).unwrap())
    }

    #[test]
    fn interleaved_grouped_query_by_hand() {
        // H = 4, K = 2, D = 1, r = 2: per group g, rows [q(2g), q(2g+1), k(g), v(g)].
        let set = eager_set(&[("qkv", iota(&[8, 1]))]);
        let out = check_lazy_eager(&*split_heads("interleaved", 4, Some(2)), &set, &OpContext::default());
        assert_eq!(rows_of(&out, "q"), [0, 1, 4, 5]);
        assert_eq!(rows_of(&out, "k"), [2, 6]);
        assert_eq!(rows_of(&out, "v"), [3, 7]);
    }

    #[test]
    fn interleaved_multi_head_with_head_dim_two() {
        // H = K = 2, D = 2: [q0 (2 rows), k0, v0, q1, k1, v1].
        let set = eager_set(&[("qkv", iota(&[12]))]);
        let out = check_lazy_eager(&*split_heads("interleaved", 2, None), &set, &OpContext::default());
        assert_eq!(rows_of(&out, "q"), [0, 1, 6, 7]);
        assert_eq!(rows_of(&out, "k"), [2, 3, 8, 9]);
        assert_eq!(rows_of(&out, "v"), [4, 5, 10, 11]);
    }

    #[test]
    fn chunked_grouped_query_is_byte_ranges() {
        // H = 4, K = 2, D = 1: [q0..q3, k0, k1, v0, v1].
        let set = eager_set(&[("qkv", iota(&[8, 2]))]);
        let op = split_heads("chunked", 4, Some(2));
        let out = check_lazy_eager(&*op, &set, &OpContext::default());
        assert_eq!(rows_of(&out, "k"), [8, 9, 10, 11]);
        let mut lazy = lazy_of(&set);
        op.apply(&mut lazy, &OpContext::default()).unwrap();
        let range = byte_range(lazy.get("v").unwrap().expr()).unwrap();
        assert_eq!((range.start, range.end), (48, 64));
    }

    #[test]
    fn both_layouts_round_trip() {
        let ctx = OpContext::default();
        for layout in ["chunked", "interleaved"] {
            for (heads, kv) in [(2, None), (4, Some(2)), (4, Some(1)), (6, Some(3))] {
                let fused_rows = (heads + 2 * kv.unwrap_or(heads)) as u64 * 2;
                let set = eager_set(&[("qkv", iota(&[fused_rows, 3])), ("b", iota(&[fused_rows]))]);
                check_round_trip(&*split_heads(layout, heads, kv), &set, &ctx);
            }
        }
    }

    #[test]
    fn uneven_heads_are_errors() {
        let mut set = eager_set(&[("qkv", iota(&[10]))]);
        let err = split_heads("chunked", 4, Some(2)).eager(&mut set, &OpContext::default()).unwrap_err();
        assert_eq!(err.to_string(), "`split-heads` on `qkv`: axis 0 of size 10 is not 8 heads of equal size");
        let mut set = eager_set(&[("qkv", iota(&[7]))]);
        let err = split_heads("chunked", 3, Some(2)).eager(&mut set, &OpContext::default()).unwrap_err();
        assert!(err.to_string().contains("do not group evenly"), "{err}");
    }

    #[test]
    fn unknown_layout_is_a_diagnostic() {
        let diagnostics = lower_err(op(
            "split-heads",
            vec![
                pats(&["qkv"]),
                clause_pats("into", &["q", "k", "v"]),
                clause_word("layout", "zigzag"),
                clause_int("heads", 2),
            ],
        ));
        assert_eq!(codes(&diagnostics), ["bad-value"]);
    }
}
