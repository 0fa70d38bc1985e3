//! ## `permute`
//!
//! ```safeshift
//! permute SRC axes [a0, a1, …] [optional]
//! ```
//!
//! Reorders the axes of every tensor matching `SRC`: output axis `i` is input axis `a_i`.
//!
//! * **Shape rule:** `out[i] = in[a_i]`; the axes must be a permutation of `0..rank`.
//! * **Inverse:** the inverse permutation.
//! * **Lossy:** no.
//!
//! ```safeshift
//! permute "{p..}.conv.weight" axes [0, 2, 3, 1]
//! // [out, in, kh, kw]  →  [out, kh, kw, in]
//! ```

use safeshift_dsl::ast::{Pattern, Value};

use crate::eager;
use crate::expr::{is_permutation, Expr};
use crate::lower::{int_literal, Operands};
use crate::operation::{Builtin, NoInverse, OpBase, OpError, OpErrorKind, Operation};

use crate::tensor_set::{EagerSet, OpContext, TensorSet, TensorValue};

/// `permute SRC axes [..]`.
#[derive(Clone, Debug)]
pub(crate) struct Permute {
    base: OpBase,
    source: Pattern,
    axes: Vec<usize>,
    optional: bool,
}

pub(crate) fn lower(operands: &mut Operands<'_>) -> Option<Box<dyn Operation>> {
    let source = operands.pattern("a source name pattern");
    let axes = match operands.required("axes", "axes [1, 0, 2]") {
        Some((Value::List(axes), span)) => {
            let axes: Option<Vec<usize>> =
                axes.iter().map(|axis| int_literal(axis).and_then(|a| usize::try_from(a).ok())).collect();
            match axes {
                Some(axes) if is_permutation(&axes, axes.len()) => Some(axes),
                _ => {
                    operands.error("bad-value", "`axes` must list each axis `0..rank` once", span);
                    None
                }
            }
        }
        Some((_, span)) => {
            operands.error("bad-value", "`axes` takes a bracketed list (`axes [1, 0, 2]`)", span);
            None
        }
        None => None,
    };
    let optional = operands.flag("optional").is_some();
    let base = operands.base("permute");
    Some(Box::new(Permute { base, source: source?.clone(), axes: axes?, optional }))
}

impl Permute {
    fn check(&self, rank: usize) -> Result<(), OpErrorKind> {
        if rank != self.axes.len() {
            return Err(OpErrorKind::invalid(format!("{} axes given for a tensor of rank {rank}", self.axes.len())));
        }
        Ok(())
    }
}

impl Builtin for Permute {
    fn base(&self) -> &OpBase {
        &self.base
    }

    fn apply(&self, set: &mut TensorSet, _ctx: &OpContext) -> Result<(), OpError> {
        self.base.select(&mut set.tensors, &self.source, self.optional)?.map_each(|value| {
            self.check(value.shape().len())?;
            Ok(TensorValue::new(Expr::Permute { input: Box::new(value.expr().clone()), axes: self.axes.clone() })?)
        })
    }

    fn eager(&self, set: &mut EagerSet, _ctx: &OpContext) -> Result<(), OpError> {
        self.base.select(&mut set.tensors, &self.source, self.optional)?.map_each(|tensor| {
            self.check(tensor.shape.len())?;
            eager::permute(tensor, &self.axes)
        })
    }

    fn inverse(&self, _before: &TensorSet, _ctx: &OpContext) -> Result<Vec<Box<dyn Operation>>, NoInverse> {
        let mut inverse = vec![0; self.axes.len()];
        for (position, &axis) in self.axes.iter().enumerate() {
            inverse[axis] = position;
        }
        Ok(vec![Box::new(Permute { axes: inverse, ..self.clone() })])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::*;

    #[test]
    fn permutes_and_back() {
        let op = lower_ok(op("permute", vec![pats(&["w"]), clause_list("axes", &[1, 2, 0])]));
        let set = eager_set(&[("w", iota(&[2, 3, 4]))]);
        let out = check_lazy_eager(&*op, &set, &OpContext::default());
        assert_eq!(out.get("w").unwrap().shape, [3, 4, 2]);
        // out[i, j, k] = in[k, i, j]: out[0, 0, 1] = in[1, 0, 0] = 12.
        assert_eq!(i32_values(out.get("w").unwrap())[1], 12);
        check_round_trip(&*op, &set, &OpContext::default());
    }

    #[test]
    fn axes_must_be_a_permutation() {
        let diagnostics = lower_err(op("permute", vec![pats(&["w"]), clause_list("axes", &[0, 0])]));
        assert_eq!(codes(&diagnostics), ["bad-value"]);
    }
}
