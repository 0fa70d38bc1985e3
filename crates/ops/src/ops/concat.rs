//! ## `concat`
//!
//! ```safeshift
//! concat A, B, … axis N into DST [optional]
//! ```
//!
//! Joins, for every tensor matching `A`, the tensors `B`, … named with `A`'s captures,
//! along axis `N`, into `DST`. The parts disappear.
//!
//! * **Shape rule:** the parts agree on every other axis and in dtype; `shape[N]` is the
//!   sum of theirs.
//! * **Inverse:** `split DST axis N into A, B, … sizes [...]` with each part's size.
//! * **Lossy:** no.
//!
//! ```safeshift
//! concat "{p..}.q.{w}", "{p}.k.{w}", "{p}.v.{w}" axis 0 into "{p}.qkv.{w}"
//! // 3 × [hidden, hidden]  →  [3 * hidden, hidden]
//! ```

use safeshift_dsl::ast::{Pattern, Value};
use safeshift_model::pattern::fill;

use super::split::Split;
use crate::eager;
use crate::expr::Expr;
use crate::lower::{axis_clause, Operands};
use crate::operation::{Builtin, NoInverse, OpBase, OpError, Operation};
use crate::rewrite::{literal, matches, resolve_axis};
use crate::tensor_set::{EagerSet, OpContext, TensorSet, TensorValue};

/// `concat A, B axis N into DST`; also the inverse of `split`.
#[derive(Clone, Debug)]
pub(crate) struct Concat {
    pub base: OpBase,
    pub parts: Vec<Pattern>,
    pub axis: i64,
    pub target: Pattern,
    pub optional: bool,
}

pub(crate) fn lower(operands: &mut Operands<'_>) -> Option<Box<dyn Operation>> {
    let parts = operands.patterns("the name patterns of the parts");
    if parts.is_some_and(|parts| parts.len() < 2) {
        let span = operands.base("concat").span;
        operands.error("bad-value", "`concat` needs at least two parts", span);
    }
    let axis = axis_clause(operands, None);
    let target = match operands.required("into", "into \"name\"") {
        Some((Value::Patterns(targets), _)) if targets.len() == 1 => Some(targets[0].clone()),
        Some((_, span)) => {
            operands.error("bad-value", "`into` takes one target name", span);
            None
        }
        None => None,
    };
    let optional = operands.flag("optional").is_some();
    let base = operands.base("concat");
    Some(Box::new(Concat { base, parts: parts?.to_vec(), axis: axis?, target: target?, optional }))
}

impl Builtin for Concat {
    fn base(&self) -> &OpBase {
        &self.base
    }

    fn apply(&self, set: &mut TensorSet, ctx: &OpContext) -> Result<(), OpError> {
        self.base.select(&mut set.tensors, &self.parts[0], self.optional)?.fan_in(
            &self.parts,
            &self.target,
            ctx,
            |values| {
                let axis = resolve_axis(self.axis, values[0].shape().len())?;
                let inputs = values.iter().map(|value| value.expr().clone()).collect();
                Ok(TensorValue::new(Expr::Concat { inputs, axis })?)
            },
        )
    }

    fn eager(&self, set: &mut EagerSet, ctx: &OpContext) -> Result<(), OpError> {
        self.base.select(&mut set.tensors, &self.parts[0], self.optional)?.fan_in(
            &self.parts,
            &self.target,
            ctx,
            |values| {
                let axis = resolve_axis(self.axis, values[0].shape.len())?;
                eager::concat(values, axis)
            },
        )
    }

    fn inverse(&self, before: &TensorSet, ctx: &OpContext) -> Result<Vec<Box<dyn Operation>>, NoInverse> {
        let dims = |name: &str| ctx.dim_value(name);
        let mut back: Vec<Box<dyn Operation>> = Vec::new();
        for (_, captures) in matches(&before.tensors, &self.parts[0]) {
            let mut targets = Vec::new();
            let mut sizes = Vec::new();
            for part in &self.parts {
                let name = fill(part, &captures, &dims).map_err(|err| self.base.no_inverse(err.to_string()))?;
                let value =
                    before.get(&name).ok_or_else(|| self.base.no_inverse(format!("part `{name}` is missing")))?;
                let axis = resolve_axis(self.axis, value.shape().len())
                    .map_err(|kind| self.base.no_inverse(kind.to_string()))?;
                sizes.push(value.shape()[axis].clone());
                targets.push(literal(&name, part));
            }
            let whole = fill(&self.target, &captures, &dims).map_err(|err| self.base.no_inverse(err.to_string()))?;
            let base = self.base.renamed("split");
            let split = Split {
                base,
                source: literal(&whole, &self.target),
                axis: self.axis,
                targets,
                sizes: Some(sizes),
                optional: false,
            };
            back.push(Box::new(split));
        }
        Ok(back)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::*;

    #[test]
    fn concatenates_columns_and_splits_back() {
        let op = lower_ok(op(
            "concat",
            vec![pats(&["{p}.a", "{p}.b"]), clause_int("axis", 1), clause_pats("into", &["{p}.ab"])],
        ));
        let set = eager_set(&[("x.a", iota(&[2, 1])), ("y", iota(&[1])), ("x.b", iota(&[2, 2]))]);
        let out = check_lazy_eager(&*op, &set, &OpContext::default());
        assert_eq!(names(&out), ["x.ab", "y"]);
        assert_eq!(i32_values(out.get("x.ab").unwrap()), [0, 0, 1, 1, 2, 3]);
        // The round trip restores the values; the order of the set changes (parts land
        // where the whole was), so compare per name.
        let before = lazy_of(&set);
        let inverse = op.inverse(&before, &OpContext::default()).unwrap();
        let mut eager = out;
        for inverse_op in &inverse {
            inverse_op.eager(&mut eager, &OpContext::default()).unwrap();
        }
        for (name, tensor) in set.iter() {
            assert_eq!(eager.get(name), Some(tensor));
        }
    }

    #[test]
    fn missing_part_is_an_error() {
        let op = lower_ok(op(
            "concat",
            vec![pats(&["{p}.a", "{p}.b"]), clause_int("axis", 0), clause_pats("into", &["{p}.ab"])],
        ));
        let mut set = eager_set(&[("x.a", iota(&[2]))]);
        let err = op.eager(&mut set, &OpContext::default()).unwrap_err();
        assert_eq!(err.to_string(), "`concat` on `x.a`: tensor `x.b` does not exist");
    }
}
