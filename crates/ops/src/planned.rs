//! What compilation hands the engine: one output tensor with a concrete dtype and shape
//! and its expression, already simplified.
//!
//! This is the one type between the planner (`safeshift-graph`'s `compile`) and the lazy
//! view (`safeshift-engine`'s `MigratedView`). Its fields are private so that what it
//! promises holds by construction: the dtype and shape are those of the expression, and
//! the expression is a fixed point of [`simplify`]. The engine therefore only checks the
//! expression's leaves against the files; it never simplifies or re-derives shapes again.

use safeshift_model::{DType, DTypeClass, Sym, TensorInfo};

use crate::byte_range::{range_of_simplified, ByteRange};
use crate::expr::{accept_unequal_merges, shape_text, Expr};
use crate::simplify::simplify;
use crate::tensor_set::TensorValue;

/// One output tensor of a compiled plan: name, concrete dtype and shape, and the
/// simplified expression that computes it from the input's (and aux inputs') tensors.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedTensor {
    info: TensorInfo,
    expr: Expr,
}

/// Why a tensor value cannot be planned: its dtype or shape is still symbolic.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("output `{tensor}` is not concrete: {what}")]
pub struct NotConcrete {
    /// The output tensor.
    pub tensor: String,
    /// What is not concrete (`dtype float`, `shape [n, 4]`).
    pub what: String,
}

impl PlannedTensor {
    /// Plans `value` under `name`: its dtype and shape must be concrete; its expression
    /// is simplified here, once.
    pub fn new(name: impl Into<String>, value: TensorValue) -> Result<PlannedTensor, NotConcrete> {
        let name = name.into();
        let not_concrete = |what: String| NotConcrete { tensor: name.clone(), what };
        let DTypeClass::Exact(dtype) = value.dtype() else {
            return Err(not_concrete(format!("dtype `{}`", value.dtype())));
        };
        let shape = concrete_shape(value.shape())
            .ok_or_else(|| not_concrete(format!("shape [{}]", shape_text(value.shape()))))?;
        let expr = simplify(value.into_expr());
        Ok(PlannedTensor { info: TensorInfo { name, dtype, shape }, expr })
    }

    /// The input's tensor `info` carried over as itself: a leaf reading it under its
    /// own name (what a pass-through plan, `convert`, writes).
    pub fn unchanged(info: &TensorInfo) -> PlannedTensor {
        let expr = Expr::Source(crate::expr::Leaf {
            aux: None,
            name: info.name.clone(),
            dtype: DTypeClass::Exact(info.dtype),
            shape: info.shape.iter().map(|&dim| Sym::int(i64::try_from(dim).unwrap_or(i64::MAX))).collect(),
        });
        PlannedTensor { info: info.clone(), expr }
    }

    /// The output name.
    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// The output dtype.
    pub fn dtype(&self) -> DType {
        self.info.dtype
    }

    /// The output shape.
    pub fn shape(&self) -> &[u64] {
        &self.info.shape
    }

    /// Name, dtype and shape.
    pub fn info(&self) -> &TensorInfo {
        &self.info
    }

    /// The simplified expression.
    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// The byte range of one source this tensor is, when it is one (the zero-copy test,
    /// without simplifying again).
    pub fn byte_range(&self) -> Option<ByteRange> {
        range_of_simplified(&self.expr)
    }

    /// Renames the output (a key layout's names restored).
    pub fn rename(&mut self, name: impl Into<String>) {
        self.info.name = name.into();
    }

    /// Lets `edit` rename the expression's leaves (point them at another file or another
    /// name). Renaming keeps the dtype, the shape and the simplified form, so nothing is
    /// redone; `edit` must do nothing else.
    pub fn edit_leaves(&mut self, edit: impl FnOnce(&mut Expr)) {
        edit(&mut self.expr);
    }

    /// Takes the first of per-dataset copies wherever the expression merges copies that
    /// may differ (`--allow-lossy`); simplifies again only when there was a merge.
    pub fn accept_unequal_merges(&mut self) {
        if has_merge(&self.expr) {
            let expr = std::mem::replace(&mut self.expr, Expr::Concat { inputs: Vec::new(), axis: 0 });
            self.expr = simplify(accept_unequal_merges(expr));
        }
    }

    /// Name, dtype and shape, and the simplified expression, by value.
    pub fn into_parts(self) -> (TensorInfo, Expr) {
        (self.info, self.expr)
    }
}

fn has_merge(expr: &Expr) -> bool {
    matches!(expr, Expr::Merge { .. }) || expr.children().into_iter().any(has_merge)
}

fn concrete_shape(shape: &[Sym]) -> Option<Vec<u64>> {
    shape.iter().map(|axis| axis.as_int().and_then(|size| u64::try_from(size).ok())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::Leaf;

    fn source(shape: Vec<Sym>, dtype: DTypeClass) -> TensorValue {
        TensorValue::new(Expr::Source(Leaf { aux: None, name: "w".into(), dtype, shape })).unwrap()
    }

    #[test]
    fn plans_concrete_values_simplified() {
        let w = source(vec![Sym::int(6), Sym::int(4)], DTypeClass::Exact(DType::F32));
        let twice = Expr::Permute {
            input: Box::new(Expr::Permute { input: Box::new(w.expr().clone()), axes: vec![1, 0] }),
            axes: vec![1, 0],
        };
        let planned = PlannedTensor::new("out", TensorValue::new(twice).unwrap()).unwrap();
        assert_eq!((planned.name(), planned.dtype(), planned.shape()), ("out", DType::F32, &[6, 4][..]));
        assert_eq!(planned.expr(), w.expr(), "two transposes cancel");
        assert_eq!(planned.byte_range().map(|range| (range.start, range.end)), Some((0, 96)));
    }

    #[test]
    fn symbolic_values_are_refused_by_name() {
        let err = PlannedTensor::new("x", source(vec![Sym::dim("n")], DTypeClass::Exact(DType::F32))).unwrap_err();
        assert_eq!(err.to_string(), "output `x` is not concrete: shape [n]");
        let err = PlannedTensor::new("y", source(vec![Sym::int(2)], DTypeClass::Float)).unwrap_err();
        assert_eq!(err.to_string(), "output `y` is not concrete: dtype `float`");
    }
}
