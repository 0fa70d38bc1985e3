//! ## `split`
//!
//! ```safeshift
//! split SRC axis N into A, B, … [sizes [a, b, …]] [optional]
//! ```
//!
//! Cuts every tensor matching `SRC` along axis `N` into consecutive parts named `A`, `B`,
//! … (filled with `SRC`'s captures): equal parts, or the given sizes. Along the first axis
//! each part is a byte range of the input: nothing is copied.
//!
//! * **Shape rule:** `shape[N]` must equal the sum of the sizes (be divisible by the
//!   number of parts); part `k` has `shape[N] = size_k`.
//! * **Inverse:** `concat A, B, … axis N into SRC`.
//! * **Lossy:** no.
//!
//! ```safeshift
//! split "{p..}.attention.lin_qkv.{w}" axis 0
//!     into "{p}.attention.lin_q.{w}", "{p}.attention.lin_k.{w}", "{p}.attention.lin_v.{w}"
//! // [3 * hidden, hidden]  →  3 × [hidden, hidden]
//! ```

use safeshift_dsl::ast::{Pattern, Value};
use safeshift_model::pattern::match_name;
use safeshift_model::Sym;

use super::concat::Concat;
use crate::eager;
use crate::expr::{is_size, Expr};
use crate::lower::{axis_clause, Operands};
use crate::operation::{Builtin, NoInverse, OpBase, OpError, OpErrorKind, Operation};
use crate::rewrite::{as_source, matches, pattern_text, resolve_axis, Sources};
use crate::tensor_set::{concrete, resolve};
use crate::tensor_set::{EagerSet, OpContext, TensorSet, TensorValue};

/// `split SRC axis N into …`; also the inverse of `concat` (with literal names and sizes).
#[derive(Clone, Debug)]
pub(crate) struct Split {
    pub base: OpBase,
    pub source: Pattern,
    pub axis: i64,
    pub targets: Vec<Pattern>,
    pub sizes: Option<Vec<Sym>>,
    pub optional: bool,
}

pub(crate) fn lower(operands: &mut Operands<'_>) -> Option<Box<dyn Operation>> {
    let source = operands.pattern("a source name pattern");
    let axis = axis_clause(operands, None);
    let targets = match operands.required("into", "into \"a\", \"b\"") {
        Some((Value::Patterns(targets), span)) if targets.len() < 2 => {
            operands.error("bad-value", "`into` needs at least two parts", span);
            None
        }
        Some((Value::Patterns(targets), _)) => Some(targets.clone()),
        Some((_, span)) => {
            operands.error("bad-value", "`into` takes the names of the parts (`into \"a\", \"b\"`)", span);
            None
        }
        None => None,
    };
    let sizes = match operands.clause("sizes") {
        Some((Value::List(sizes), span)) => {
            if targets.as_ref().is_some_and(|targets| targets.len() != sizes.len()) {
                operands.error("bad-value", "`sizes` needs one size per part", span);
            }
            Some(Some(sizes.iter().map(Sym::from_expr).collect()))
        }
        Some((_, span)) => {
            operands.error("bad-value", "`sizes` takes a bracketed list (`sizes [hidden, 2 * kv]`)", span);
            None
        }
        None => Some(None),
    };
    let optional = operands.flag("optional").is_some();
    let base = operands.base("split");
    Some(Box::new(Split { base, source: source?.clone(), axis: axis?, targets: targets?, sizes: sizes?, optional }))
}

impl Split {
    /// The part sizes for an axis of `size`.
    fn part_sizes(&self, ctx: &OpContext, size: &Sym) -> Result<Vec<Sym>, OpErrorKind> {
        let sizes = match &self.sizes {
            Some(sizes) => sizes.iter().map(|part| resolve(ctx, part)).collect::<Result<Vec<_>, _>>()?,
            None => {
                let parts = self.targets.len() as i64;
                let part = size.div(&Sym::int(parts));
                if !is_size(&part) {
                    return Err(OpErrorKind::invalid(format!("axis size {size} is not divisible into {parts} parts")));
                }
                vec![part; self.targets.len()]
            }
        };
        let total = sizes.iter().fold(Sym::int(0), |acc, part| acc.add(part));
        if total != *size || sizes.iter().any(|part| !is_size(part)) {
            let listed = sizes.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
            return Err(OpErrorKind::invalid(format!("sizes [{listed}] do not add up to the axis size {size}")));
        }
        Ok(sizes)
    }
}

impl Builtin for Split {
    fn base(&self) -> &OpBase {
        &self.base
    }

    fn apply(&self, set: &mut TensorSet, ctx: &OpContext) -> Result<(), OpError> {
        self.base.select(&mut set.tensors, &self.source, self.optional)?.fan_out(
            &self.targets,
            Sources::Replaced,
            ctx,
            |value| {
                let axis = resolve_axis(self.axis, value.shape().len())?;
                let sizes = self.part_sizes(ctx, &value.shape()[axis])?;
                let mut start = Sym::int(0);
                let mut parts = Vec::with_capacity(sizes.len());
                for len in sizes {
                    let expr = Expr::Narrow {
                        input: Box::new(value.expr().clone()),
                        axis,
                        start: start.clone(),
                        len: len.clone(),
                    };
                    parts.push(TensorValue::new(expr)?);
                    start = start.add(&len);
                }
                Ok(parts)
            },
        )
    }

    fn eager(&self, set: &mut EagerSet, ctx: &OpContext) -> Result<(), OpError> {
        self.base.select(&mut set.tensors, &self.source, self.optional)?.fan_out(
            &self.targets,
            Sources::Replaced,
            ctx,
            |tensor| {
                let axis = resolve_axis(self.axis, tensor.shape.len())?;
                let sizes = self.part_sizes(ctx, &Sym::int(tensor.shape[axis] as i64))?;
                let mut start = 0;
                let mut parts = Vec::with_capacity(sizes.len());
                for size in sizes {
                    let len = concrete(ctx, &size)?;
                    parts.push(eager::narrow(tensor, axis, start, len)?);
                    start += len;
                }
                Ok(parts)
            },
        )
    }

    fn inverse(&self, before: &TensorSet, _ctx: &OpContext) -> Result<Vec<Box<dyn Operation>>, NoInverse> {
        let parts: Option<Vec<Pattern>> = self.targets.iter().map(|target| as_source(target, &self.source)).collect();
        let Some(parts) = parts else {
            return Err(self.base.no_inverse("a part name computes indices, which cannot be matched back"));
        };
        let split: Vec<usize> = matches(&before.tensors, &self.source).into_iter().map(|(index, _)| index).collect();
        for (index, (name, _)) in before.tensors.iter().enumerate() {
            if !split.contains(&index) && match_name(&parts[0], name).is_some() {
                let reason = format!("`{name}` passes through and also matches `{}`", pattern_text(&parts[0]));
                return Err(self.base.no_inverse(reason));
            }
        }
        let base = self.base.renamed("concat");
        Ok(vec![Box::new(Concat { base, parts, axis: self.axis, target: self.source.clone(), optional: true })])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::byte_range::byte_range;
    use crate::ops::testing::*;

    fn qkv_split() -> Box<dyn Operation> {
        lower_ok(op(
            "split",
            vec![
                pats(&["{p..}.qkv.{w}"]),
                clause_int("axis", 0),
                clause_pats("into", &["{p}.q.{w}", "{p}.k.{w}", "{p}.v.{w}"]),
            ],
        ))
    }

    #[test]
    fn equal_parts_are_byte_ranges_and_concat_back() {
        let op = qkv_split();
        let set = eager_set(&[("l.0.qkv.weight", iota(&[6, 2])), ("l.0.qkv.bias", iota(&[6]))]);
        let out = check_lazy_eager(&*op, &set, &OpContext::default());
        assert_eq!(
            names(&out),
            ["l.0.q.weight", "l.0.k.weight", "l.0.v.weight", "l.0.q.bias", "l.0.k.bias", "l.0.v.bias"]
        );
        assert_eq!(i32_values(out.get("l.0.k.weight").unwrap()), [4, 5, 6, 7]);
        let mut lazy = lazy_of(&set);
        op.apply(&mut lazy, &OpContext::default()).unwrap();
        let range = byte_range(lazy.get("l.0.v.weight").unwrap().expr()).unwrap();
        assert_eq!((range.source.as_str(), range.start, range.end), ("l.0.qkv.weight", 32, 48));
        check_round_trip(&*op, &set, &OpContext::default());
    }

    #[test]
    fn sizes_split_grouped_projections() {
        let op = lower_ok(op(
            "split",
            vec![
                pats(&["w"]),
                clause_int("axis", -1),
                clause_pats("into", &["q", "kv"]),
                clause("sizes", Value::List(vec![ident("h"), int(2)])),
            ],
        ));
        let set = eager_set(&[("w", iota(&[2, 5]))]);
        let ctx = ctx_with(&[("h", 3)]);
        let out = check_lazy_eager(&*op, &set, &ctx);
        assert_eq!(i32_values(out.get("kv").unwrap()), [3, 4, 8, 9]);
        check_round_trip(&*op, &set, &ctx);
    }

    #[test]
    fn indivisible_axis_is_an_error() {
        let op = qkv_split();
        let mut set = eager_set(&[("a.qkv.w", iota(&[4]))]);
        let err = op.eager(&mut set, &OpContext::default()).unwrap_err();
        assert_eq!(err.to_string(), "`split` on `a.qkv.w`: axis size 4 is not divisible into 3 parts");
    }

    #[test]
    fn symbolic_split_of_a_fused_dim() {
        let op = qkv_split();
        let hidden = Sym::dim("hidden");
        let mut lazy = TensorSet::new();
        let fused = vec![Sym::int(3).mul(&hidden), hidden.clone()];
        lazy.insert("a.qkv.w", TensorValue::source("a.qkv.w", safeshift_model::DTypeClass::Float, fused));
        op.apply(&mut lazy, &OpContext::default()).unwrap();
        assert_eq!(lazy.get("a.k.w").unwrap().shape(), [hidden.clone(), hidden]);
    }
}
