//! ## `reshape`
//!
//! ```safeshift
//! reshape SRC to [d0, d1, …] [optional]
//! ```
//!
//! Gives every tensor matching `SRC` a new shape with the same number of elements; the
//! elements keep their row-major order (a reshape never moves bytes).
//!
//! * **Shape rule:** `[d0, d1, …]`; the element counts must be equal (provably, for
//!   symbolic dims).
//! * **Inverse:** reshape back to the shape each tensor had.
//! * **Lossy:** no.
//!
//! ```safeshift
//! reshape "{p..}.attention.qkv.weight" to [3, hidden, hidden]
//! // [3 * hidden, hidden]  →  [3, hidden, hidden]
//! ```

use safeshift_dsl::ast::{Pattern, Value};
use safeshift_model::Sym;

use crate::expr::Expr;
use crate::lower::Operands;
use crate::operation::{Builtin, NoInverse, OpBase, OpError, OpErrorKind, Operation};
use crate::rewrite::{literal, matches};
use crate::tensor_set::{concrete_shape, resolve_shape};
use crate::tensor_set::{EagerSet, EagerTensor, OpContext, TensorSet, TensorValue};

/// `reshape SRC to [shape]`.
#[derive(Clone, Debug)]
pub(crate) struct Reshape {
    base: OpBase,
    source: Pattern,
    shape: Vec<Sym>,
    optional: bool,
}

pub(crate) fn lower(operands: &mut Operands<'_>) -> Option<Box<dyn Operation>> {
    let source = operands.pattern("a source name pattern");
    let shape = match operands.required("to", "to [a, b]") {
        Some((Value::List(dims), _)) => Some(dims.iter().map(Sym::from_expr).collect()),
        Some((_, span)) => {
            operands.error("bad-value", "`to` takes a bracketed shape (`to [heads, head_dim]`)", span);
            None
        }
        None => None,
    };
    let optional = operands.flag("optional").is_some();
    let base = operands.base("reshape");
    Some(Box::new(Reshape { base, source: source?.clone(), shape: shape?, optional }))
}

impl Builtin for Reshape {
    fn base(&self) -> &OpBase {
        &self.base
    }

    fn apply(&self, set: &mut TensorSet, ctx: &OpContext) -> Result<(), OpError> {
        let shape = resolve_shape(ctx, &self.shape).map_err(|kind| self.base.error(None, kind))?;
        self.base.select(&mut set.tensors, &self.source, self.optional)?.map_each(|value| {
            let expr = Expr::Reshape { input: Box::new(value.expr().clone()), shape: shape.clone() };
            Ok(TensorValue::new(expr)?)
        })
    }

    fn eager(&self, set: &mut EagerSet, ctx: &OpContext) -> Result<(), OpError> {
        let shape = concrete_shape(ctx, &self.shape).map_err(|kind| self.base.error(None, kind))?;
        self.base.select(&mut set.tensors, &self.source, self.optional)?.map_each(|tensor| {
            if shape.iter().product::<u64>() != tensor.shape.iter().product::<u64>() {
                return Err(OpErrorKind::invalid(format!("cannot reshape {:?} to {shape:?}", tensor.shape)));
            }
            Ok(EagerTensor { shape: shape.clone(), ..tensor.clone() })
        })
    }

    fn inverse(&self, before: &TensorSet, _ctx: &OpContext) -> Result<Vec<Box<dyn Operation>>, NoInverse> {
        let back = matches(&before.tensors, &self.source)
            .into_iter()
            .map(|(index, _)| {
                let (name, value) = &before.tensors[index];
                let op = Reshape {
                    base: self.base,
                    source: literal(name, &self.source),
                    shape: value.shape().to_vec(),
                    optional: false,
                };
                Box::new(op) as Box<dyn Operation>
            })
            .collect();
        Ok(back)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::*;

    #[test]
    fn reshapes_and_back() {
        let op = lower_ok(op("reshape", vec![pats(&["w.{x}"]), clause("to", Value::List(vec![int(3), ident("n")]))]));
        let set = eager_set(&[("w.a", iota(&[6, 2])), ("w.b", iota(&[12]))]);
        let ctx = ctx_with(&[("n", 4)]);
        let out = check_lazy_eager(&*op, &set, &ctx);
        assert_eq!(out.get("w.b").unwrap().shape, [3, 4]);
        check_round_trip(&*op, &set, &ctx);
    }

    #[test]
    fn element_count_must_match() {
        let op = lower_ok(op("reshape", vec![pats(&["w"]), clause("to", Value::List(vec![int(5)]))]));
        let mut lazy = lazy_of(&eager_set(&[("w", iota(&[6]))]));
        let err = op.apply(&mut lazy, &OpContext::default()).unwrap_err();
        assert_eq!(err.to_string(), "`reshape` on `w`: cannot reshape [6] to [5]: element counts differ");
    }

    #[test]
    fn symbolic_reshape_proves_counts_equal() {
        let op = lower_ok(op(
            "reshape",
            vec![pats(&["w"]), clause("to", Value::List(vec![int(3), ident("h"), ident("h")]))],
        ));
        let mut lazy = TensorSet::new();
        let h = Sym::dim("h");
        lazy.insert(
            "w",
            TensorValue::source("w", safeshift_model::DTypeClass::Float, vec![Sym::int(3).mul(&h), h.clone()]),
        );
        let ctx = OpContext::default().with_dim("h", h.clone());
        op.apply(&mut lazy, &ctx).unwrap();
        assert_eq!(lazy.get("w").unwrap().shape(), [Sym::int(3), h.clone(), h]);
    }
}
