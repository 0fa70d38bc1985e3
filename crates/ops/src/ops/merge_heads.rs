//! ## `merge-heads`
//!
//! ```safeshift
//! merge-heads Q, K, V into DST layout (chunked | interleaved) heads H [kv_heads K] [head_dim D] [axis N] [optional]
//! ```
//!
//! Fuses query, key and value projections into one tensor with the given head layout:
//! exactly the inverse of `split-heads` (see there for the index formulas).
//!
//! * **Shape rule:** Q has `H·D` rows along axis `N`, K and V `K·D`; the result
//!   `(H + 2K)·D`.
//! * **Inverse:** `split-heads DST into Q, K, V` with the same layout and counts.
//! * **Lossy:** no.
//!
//! ```safeshift
//! merge-heads "{p..}.q_proj.{w}", "{p}.k_proj.{w}", "{p}.v_proj.{w}" into "{p}.qkv.{w}"
//!     layout chunked heads 16
//! ```

use safeshift_dsl::ast::{Pattern, Value};

use super::heads::{lower_spec, merge_eager, merge_lazy, HeadSpec};
use super::split_heads::SplitHeads;
use crate::lower::Operands;
use crate::operation::{Builtin, NoInverse, OpBase, OpError, OpErrorKind, Operation};
use crate::rewrite::{literal, matches};
use crate::tensor_set::{EagerSet, OpContext, TensorSet, TensorValue};

/// `merge-heads Q, K, V into DST …`.
#[derive(Clone, Debug)]
pub(crate) struct MergeHeads {
    pub base: OpBase,
    pub parts: Vec<Pattern>,
    pub target: Pattern,
    pub spec: HeadSpec,
    pub optional: bool,
}

pub(crate) fn lower(operands: &mut Operands<'_>) -> Option<Box<dyn Operation>> {
    let parts = operands.patterns("the query, key and value name patterns");
    if parts.is_some_and(|parts| parts.len() != 3) {
        let span = operands.base("merge-heads").span;
        operands.error("bad-value", "`merge-heads` takes three names: query, key, value", span);
    }
    let target = match operands.required("into", "into \"qkv\"") {
        Some((Value::Patterns(targets), _)) if targets.len() == 1 => Some(targets[0].clone()),
        Some((_, span)) => {
            operands.error("bad-value", "`into` takes one target name", span);
            None
        }
        None => None,
    };
    let spec = lower_spec(operands);
    let optional = operands.flag("optional").is_some();
    let base = operands.base("merge-heads");
    let parts = parts.filter(|parts| parts.len() == 3)?;
    Some(Box::new(MergeHeads { base, parts: parts.to_vec(), target: target?, spec: spec?, optional }))
}

fn check_parts(shapes: [&[safeshift_model::Sym]; 3], axis: usize) -> Result<(), OpErrorKind> {
    let [q, k, v] = shapes;
    if k != v || q.len() != k.len() || (0..q.len()).any(|i| i != axis && q[i] != k[i]) {
        return Err(OpErrorKind::invalid("query, key and value shapes do not fit together"));
    }
    Ok(())
}

impl Builtin for MergeHeads {
    fn base(&self) -> &OpBase {
        &self.base
    }

    fn apply(&self, set: &mut TensorSet, ctx: &OpContext) -> Result<(), OpError> {
        self.base.select(&mut set.tensors, &self.parts[0], self.optional)?.fan_in(
            &self.parts,
            &self.target,
            ctx,
            |values| {
                let dims = self.spec.resolve(ctx, values[0].shape(), false)?;
                check_parts([values[0].shape(), values[1].shape(), values[2].shape()], dims.axis)?;
                if values[1].shape()[dims.axis] != dims.kv_heads.mul(&dims.head_dim) {
                    return Err(OpErrorKind::invalid(format!(
                        "key and value need {} rows",
                        dims.kv_heads.mul(&dims.head_dim)
                    )));
                }
                let parts = [values[0].expr(), values[1].expr(), values[2].expr()];
                Ok(TensorValue::new(merge_lazy(self.spec.layout, parts, values[0].shape(), &dims))?)
            },
        )
    }

    fn eager(&self, set: &mut EagerSet, ctx: &OpContext) -> Result<(), OpError> {
        self.base.select(&mut set.tensors, &self.parts[0], self.optional)?.fan_in(
            &self.parts,
            &self.target,
            ctx,
            |values| {
                let shapes: Vec<_> = values.iter().map(|value| crate::eager::sym_shape(&value.shape)).collect();
                let dims = self.spec.resolve(ctx, &shapes[0], false)?;
                check_parts([&shapes[0], &shapes[1], &shapes[2]], dims.axis)?;
                if shapes[1][dims.axis] != dims.kv_heads.mul(&dims.head_dim) {
                    return Err(OpErrorKind::invalid(format!(
                        "key and value need {} rows",
                        dims.kv_heads.mul(&dims.head_dim)
                    )));
                }
                merge_eager(self.spec.layout, ctx, [values[0], values[1], values[2]], &dims)
            },
        )
    }

    fn inverse(&self, before: &TensorSet, ctx: &OpContext) -> Result<Vec<Box<dyn Operation>>, NoInverse> {
        let dims = |name: &str| ctx.dim_value(name);
        let mut back: Vec<Box<dyn Operation>> = Vec::new();
        for (_, captures) in matches(&before.tensors, &self.parts[0]) {
            let fill = |pattern: &Pattern| {
                safeshift_model::pattern::fill(pattern, &captures, &dims)
                    .map(|name| literal(&name, pattern))
                    .map_err(|err| self.base.no_inverse(err.to_string()))
            };
            let targets = self.parts.iter().map(fill).collect::<Result<Vec<_>, _>>()?;
            let base = self.base.renamed("split-heads");
            back.push(Box::new(SplitHeads {
                base,
                source: fill(&self.target)?,
                targets,
                spec: self.spec.clone(),
                optional: false,
            }));
        }
        Ok(back)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::*;

    #[test]
    fn interleaved_grouped_query_by_hand() {
        // H = 4, K = 2, D = 1: per group g, [q(2g), q(2g+1), k(g), v(g)].
        let op = lower_ok(op(
            "merge-heads",
            vec![
                pats(&["q", "k", "v"]),
                clause_pats("into", &["qkv"]),
                clause_word("layout", "interleaved"),
                clause_int("heads", 4),
                clause_int("kv_heads", 2),
            ],
        ));
        let q = tensor(
            safeshift_model::DType::I32,
            &[4],
            [10, 11, 12, 13].iter().flat_map(|v: &i32| v.to_le_bytes()).collect(),
        );
        let k =
            tensor(safeshift_model::DType::I32, &[2], [20, 21].iter().flat_map(|v: &i32| v.to_le_bytes()).collect());
        let v =
            tensor(safeshift_model::DType::I32, &[2], [30, 31].iter().flat_map(|v: &i32| v.to_le_bytes()).collect());
        let set = eager_set(&[("q", q), ("k", k), ("v", v)]);
        let out = check_lazy_eager(&*op, &set, &OpContext::default());
        assert_eq!(i32_values(out.get("qkv").unwrap()), [10, 11, 20, 30, 12, 13, 21, 31]);
        check_round_trip(&*op, &set, &OpContext::default());
    }

    #[test]
    fn mismatched_parts_are_errors() {
        let op = lower_ok(op(
            "merge-heads",
            vec![
                pats(&["q", "k", "v"]),
                clause_pats("into", &["qkv"]),
                clause_word("layout", "chunked"),
                clause_int("heads", 2),
            ],
        ));
        let mut set = eager_set(&[("q", iota(&[4])), ("k", iota(&[2])), ("v", iota(&[2]))]);
        assert!(op.eager(&mut set, &OpContext::default()).is_err());
    }
}
