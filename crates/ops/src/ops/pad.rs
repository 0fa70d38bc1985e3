//! ## `pad`
//!
//! ```safeshift
//! pad SRC axis N to SIZE [value X] [optional]
//! ```
//!
//! Grows axis `N` of every tensor matching `SRC` to `SIZE`, appending elements of value
//! `X` (default 0) at the end: new input variables start with zero weights, a no-op.
//!
//! * **Shape rule:** `shape[N]` becomes `SIZE`, which must not be smaller.
//! * **Inverse:** truncate back to the old size (not lossy: only the padding goes).
//! * **Lossy:** no.
//!
//! ```safeshift
//! pad "model.encoder.emb_nodes_src.weight" axis 1 to num_input_vars
//! // [hidden, 98]  →  [hidden, 101], columns 98..101 zero
//! ```

use safeshift_dsl::ast::Pattern;
use safeshift_model::Sym;

use super::truncate::Truncate;
use crate::eager;
use crate::expr::Expr;
use crate::lower::{axis_clause, expr_of, number_of, Operands};
use crate::operation::{Builtin, NoInverse, OpBase, OpError, OpErrorKind, Operation};
use crate::rewrite::{literal, matches, resolve_axis};
use crate::tensor_set::{concrete, resolve};
use crate::tensor_set::{EagerSet, OpContext, TensorSet, TensorValue};

/// `pad SRC axis N to SIZE value X`.
#[derive(Clone, Debug)]
pub(crate) struct Pad {
    base: OpBase,
    source: Pattern,
    axis: i64,
    size: Sym,
    value: f64,
    optional: bool,
}

pub(crate) fn lower(operands: &mut Operands<'_>) -> Option<Box<dyn Operation>> {
    let source = operands.pattern("a source name pattern");
    let axis = axis_clause(operands, None);
    let size = size_clause(operands);
    let value = match operands.clause("value") {
        Some((value, span)) => {
            let number = number_of(value);
            if number.is_none() {
                operands.error("bad-value", "`value` takes a number (`value 0`, `value -1.5`)", span);
            }
            number
        }
        None => Some(0.0),
    };
    let optional = operands.flag("optional").is_some();
    let base = operands.base("pad");
    Some(Box::new(Pad { base, source: source?.clone(), axis: axis?, size: size?, value: value?, optional }))
}

/// `to SIZE` as a sym.
pub(crate) fn size_clause(operands: &mut Operands<'_>) -> Option<Sym> {
    let (value, span) = operands.required("to", "to 128")?;
    match expr_of(value) {
        Some(expr) => Some(Sym::from_expr(expr)),
        None => {
            operands.error("bad-value", "`to` takes a size (`to 128`, `to hidden`)", span);
            None
        }
    }
}

impl Builtin for Pad {
    fn base(&self) -> &OpBase {
        &self.base
    }

    fn apply(&self, set: &mut TensorSet, ctx: &OpContext) -> Result<(), OpError> {
        let size = resolve(ctx, &self.size).map_err(|kind| self.base.error(None, kind))?;
        self.base.select(&mut set.tensors, &self.source, self.optional)?.map_each(|value| {
            let axis = resolve_axis(self.axis, value.shape().len())?;
            let after = size.sub(&value.shape()[axis]);
            if after.as_int().is_some_and(|after| after < 0) {
                return Err(OpErrorKind::invalid(format!("axis {axis} is already larger than {size}; use `truncate`")));
            }
            let expr = Expr::Pad { input: Box::new(value.expr().clone()), axis, after, value: self.value };
            Ok(TensorValue::new(expr)?)
        })
    }

    fn eager(&self, set: &mut EagerSet, ctx: &OpContext) -> Result<(), OpError> {
        let size = concrete(ctx, &self.size).map_err(|kind| self.base.error(None, kind))?;
        self.base.select(&mut set.tensors, &self.source, self.optional)?.map_each(|tensor| {
            let axis = resolve_axis(self.axis, tensor.shape.len())?;
            let Some(after) = size.checked_sub(tensor.shape[axis]) else {
                return Err(OpErrorKind::invalid(format!("axis {axis} is already larger than {size}; use `truncate`")));
            };
            eager::pad(tensor, axis, after, self.value)
        })
    }

    fn inverse(&self, before: &TensorSet, _ctx: &OpContext) -> Result<Vec<Box<dyn Operation>>, NoInverse> {
        let mut back: Vec<Box<dyn Operation>> = Vec::new();
        for (index, _) in matches(&before.tensors, &self.source) {
            let (name, value) = &before.tensors[index];
            let axis =
                resolve_axis(self.axis, value.shape().len()).map_err(|kind| self.base.no_inverse(kind.to_string()))?;
            let size = value.shape()[axis].clone();
            let base = self.base.renamed("truncate");
            back.push(Box::new(Truncate {
                base,
                source: literal(name, &self.source),
                axis: axis as i64,
                size,
                lossy: false,
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
    fn pads_columns_and_truncates_back() {
        let op = lower_ok(op(
            "pad",
            vec![pats(&["w"]), clause_int("axis", 1), clause_expr("to", ident("vars")), clause_int("value", -1)],
        ));
        let set = eager_set(&[("w", iota(&[2, 2]))]);
        let ctx = ctx_with(&[("vars", 3)]);
        let out = check_lazy_eager(&*op, &set, &ctx);
        assert_eq!(i32_values(out.get("w").unwrap()), [0, 1, -1, 2, 3, -1]);
        check_round_trip(&*op, &set, &ctx);
    }

    #[test]
    fn shrinking_is_an_error() {
        let op = lower_ok(op("pad", vec![pats(&["w"]), clause_int("axis", 0), clause_int("to", 1)]));
        let mut set = lazy_of(&eager_set(&[("w", iota(&[2, 2]))]));
        assert!(op.apply(&mut set, &OpContext::default()).is_err());
    }
}
