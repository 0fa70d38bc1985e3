//! ## `gather`
//!
//! ```safeshift
//! gather SRC axis N index AUX["tensor"] [optional]
//! ```
//!
//! Reorders axis `N` of every tensor matching `SRC` by a 1-d integer index tensor read
//! from an auxiliary input file (`aux NAME "…"`, supplied as `--aux NAME=PATH`): output
//! index `i` along `N` is input index `index[i]`. Typically the index is a permutation
//! (graph nodes re-sorted), and then nothing is lost.
//!
//! * **Shape rule:** `shape[N]` becomes the index length.
//! * **Inverse:** gather with the inverse permutation (computing it fails if the index is
//!   not a permutation of `0..shape[N]`).
//! * **Lossy:** no (a non-permutation index is refused by the inverse).
//!
//! ```safeshift
//! gather "model.encoder.edge_attr" axis 0 index graph["data_to_hidden.perm_sort_by_dst"]
//! ```

use safeshift_dsl::ast::{Pattern, Span, Value};
use safeshift_model::DTypeClass;

use crate::eager;
use crate::expr::{Expr, Leaf};
use crate::lower::{axis_clause, Operands};
use crate::operation::{NoInverse, OpBase, OpError, OpErrorKind, Operation};
use crate::rewrite::{map_each, matches, resolve_axis};
use crate::tensor_set::{EagerSet, EagerTensor, OpContext, TensorSet, TensorValue};

/// `gather SRC axis N index AUX["t"]`; `invert` gathers by the inverse permutation.
#[derive(Clone, Debug)]
pub(crate) struct Gather {
    base: OpBase,
    source: Pattern,
    axis: i64,
    input: String,
    tensor: String,
    invert: bool,
    optional: bool,
}

pub(crate) fn lower(operands: &mut Operands<'_>) -> Option<Box<dyn Operation>> {
    let source = operands.pattern("a source name pattern");
    let axis = axis_clause(operands, None);
    let index = match operands.required("index", "index graph[\"perm\"]") {
        Some((Value::Aux { input, tensor }, _)) => Some((input.node.clone(), tensor.node.clone())),
        Some((_, span)) => {
            operands.error("bad-value", "`index` takes an aux tensor (`index graph[\"perm\"]`)", span);
            None
        }
        None => None,
    };
    let optional = operands.flag("optional").is_some();
    let base = operands.base("gather");
    let (input, tensor) = index?;
    Some(Box::new(Gather { base, source: source?.clone(), axis: axis?, input, tensor, invert: false, optional }))
}

impl Gather {
    fn aux_error(&self) -> OpError {
        self.base.error(None, OpErrorKind::Aux { input: self.input.clone(), tensor: self.tensor.clone() })
    }

    fn index_leaf(&self, ctx: &OpContext) -> Result<Leaf, OpError> {
        let info = ctx.aux.get(&(self.input.clone(), self.tensor.clone())).ok_or_else(|| self.aux_error())?;
        let integer =
            matches!(info.dtype, DTypeClass::Int) || matches!(info.dtype, DTypeClass::Exact(dtype) if dtype.is_int());
        if !integer || info.shape.len() != 1 {
            let message = format!(
                "the index must be a 1-d integer tensor, not {}[{}]",
                info.dtype,
                crate::expr::shape_text(&info.shape)
            );
            return Err(self.base.error(None, OpErrorKind::invalid(message)));
        }
        Ok(Leaf {
            aux: Some(self.input.clone()),
            name: self.tensor.clone(),
            dtype: info.dtype,
            shape: info.shape.clone(),
        })
    }

    /// The row order, by plain loops (inverting the permutation if asked).
    fn eager_rows(&self, index: &EagerTensor) -> Result<Vec<u64>, OpErrorKind> {
        let values = eager::int_values(index)?;
        let size = values.len() as u64;
        let rows: Vec<u64> = values
            .iter()
            .map(|&value| u64::try_from(value).ok().filter(|&row| !self.invert || row < size))
            .collect::<Option<_>>()
            .ok_or_else(|| OpErrorKind::Data { message: "the index holds a negative or out-of-range value".into() })?;
        if !self.invert {
            return Ok(rows);
        }
        let mut inverse = vec![u64::MAX; rows.len()];
        for (position, &row) in rows.iter().enumerate() {
            if inverse[row as usize] != u64::MAX {
                return Err(OpErrorKind::Data { message: format!("the index is not a permutation of 0..{size}") });
            }
            inverse[row as usize] = position as u64;
        }
        Ok(inverse)
    }
}

impl Operation for Gather {
    fn name(&self) -> &'static str {
        self.base.name
    }

    fn span(&self) -> Span {
        self.base.span
    }

    fn lossy(&self) -> bool {
        false
    }

    fn apply(&self, set: &mut TensorSet, ctx: &OpContext) -> Result<(), OpError> {
        // Nothing to reorder: the aux input is not needed (an optional gather).
        if self.optional && matches(&set.tensors, &self.source).is_empty() {
            return Ok(());
        }
        let leaf = self.index_leaf(ctx)?;
        let mut index = Expr::Source(leaf);
        if self.invert {
            index = Expr::InversePermutation { index: Box::new(index) };
        }
        map_each(&self.base, &mut set.tensors, &self.source, self.optional, |_, value| {
            let axis = resolve_axis(self.axis, value.shape().len())?;
            Ok(TensorValue::new(Expr::Gather {
                input: Box::new(value.expr().clone()),
                axis,
                index: Box::new(index.clone()),
            })?)
        })
    }

    fn eager(&self, set: &mut EagerSet, _ctx: &OpContext) -> Result<(), OpError> {
        if self.optional && matches(&set.tensors, &self.source).is_empty() {
            return Ok(());
        }
        let index = set.aux.get(&(self.input.clone(), self.tensor.clone())).cloned().ok_or_else(|| self.aux_error())?;
        let rows = self.eager_rows(&index).map_err(|kind| self.base.error(None, kind))?;
        map_each(&self.base, &mut set.tensors, &self.source, self.optional, |_, tensor| {
            let axis = resolve_axis(self.axis, tensor.shape.len())?;
            eager::gather(tensor, axis, &rows)
        })
    }

    fn inverse(&self, before: &TensorSet, ctx: &OpContext) -> Result<Vec<Box<dyn Operation>>, NoInverse> {
        let leaf = self.index_leaf(ctx).map_err(|err| self.base.no_inverse(err.kind.to_string()))?;
        for (index, _) in matches(&before.tensors, &self.source) {
            let (name, value) = &before.tensors[index];
            let axis =
                resolve_axis(self.axis, value.shape().len()).map_err(|kind| self.base.no_inverse(kind.to_string()))?;
            if value.shape()[axis] != leaf.shape[0] {
                return Err(self.base.no_inverse(format!("the index does not permute axis {axis} of `{name}`")));
            }
        }
        Ok(vec![Box::new(Gather { invert: !self.invert, ..self.clone() })])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::*;
    use safeshift_model::DType;

    fn gather_op() -> Box<dyn Operation> {
        lower_ok(op("gather", vec![pats(&["w"]), clause_int("axis", 0), clause_aux("index", "graph", "perm")]))
    }

    fn with_perm(mut set: EagerSet, perm: &[i64]) -> EagerSet {
        let data = perm.iter().flat_map(|value| value.to_le_bytes()).collect();
        set.aux.insert(("graph".into(), "perm".into()), tensor(DType::I64, &[perm.len() as u64], data));
        set
    }

    #[test]
    fn reorders_rows_and_back() {
        let set = with_perm(eager_set(&[("w", iota(&[4, 2]))]), &[2, 0, 3, 1]);
        let out = check_lazy_eager(&*gather_op(), &set, &OpContext::default());
        assert_eq!(i32_values(out.get("w").unwrap()), [4, 5, 0, 1, 6, 7, 2, 3]);
        check_round_trip(&*gather_op(), &set, &OpContext::default());
    }

    #[test]
    fn missing_aux_and_bad_index_are_errors() {
        let mut set = eager_set(&[("w", iota(&[4]))]);
        let err = gather_op().eager(&mut set, &OpContext::default()).unwrap_err();
        assert_eq!(err.to_string(), "`gather`: aux tensor `graph[\"perm\"]` is not available");
        let mut set = with_perm(eager_set(&[("w", iota(&[4]))]), &[0, 9]);
        assert!(gather_op().eager(&mut set, &OpContext::default()).is_err());
    }

    #[test]
    fn optional_gather_of_nothing_needs_no_aux() {
        let op = lower_text(r#"gather "absent" axis 0 index graph["perm"] optional"#);
        let set = eager_set(&[("w", iota(&[4]))]);
        let out = check_lazy_eager(&*op, &set, &OpContext::default());
        assert_eq!(out, set);
    }
}
