//! ## `gather`
//!
//! ```safeshift
//! gather SRC axis N index AUX["tensor"] [optional]
//! gather SRC axis N index argsort(AUX["tensor"], ROW) [optional]
//! ```
//!
//! Reorders axis `N` of every tensor matching `SRC` by a 1-d integer index: a tensor of an
//! auxiliary input (`aux NAME "…"`, supplied as `--aux NAME=PATH` or found in the
//! checkpoint's extras as `NAME.tensor`), or an index computed from one (see `argsort`
//! below). Output index `i` along `N` is input index `index[i]`. Typically the index is a
//! permutation (graph edges re-sorted), and then nothing is lost.
//!
//! * **Shape rule:** `shape[N]` becomes the index length.
//! * **Inverse:** gather with the inverse permutation (computing it fails if the index is
//!   not a permutation of `0..shape[N]`).
//! * **Lossy:** no (a non-permutation index is refused by the inverse).
//!
//! ```safeshift
//! gather "model.encoder.edge_attr" axis 0 index graph["data_to_hidden.perm_sort_by_dst"]
//! ```

use safeshift_dsl::ast::Pattern;
use safeshift_model::pattern::Captures;

use crate::eager;
use crate::expr::Expr;
use crate::lower::{axis_clause, Operands};
use crate::operation::{Builtin, NoInverse, OpBase, OpError, OpErrorKind, Operation};
use crate::ops::argsort::{lower_index, Index};
use crate::rewrite::{matches, resolve_axis};
use crate::tensor_set::{EagerSet, OpContext, TensorSet, TensorValue};

/// `gather SRC axis N index AUX["t"]` (or `index argsort(…)`); `invert` gathers by the
/// inverse permutation.
#[derive(Clone, Debug)]
pub(crate) struct Gather {
    base: OpBase,
    source: Pattern,
    axis: i64,
    index: Index,
    invert: bool,
    optional: bool,
}

pub(crate) fn lower(operands: &mut Operands<'_>) -> Option<Box<dyn Operation>> {
    let source = operands.pattern("a source name pattern");
    let axis = axis_clause(operands, None);
    let index = match operands.required("index", "index graph[\"perm\"]") {
        Some((value, span)) => match lower_index(value) {
            Ok(index) => Some(index),
            Err(message) => {
                operands.error("bad-value", message, span);
                None
            }
        },
        None => None,
    };
    let optional = operands.flag("optional").is_some();
    let base = operands.base("gather");
    Some(Box::new(Gather { base, source: source?.clone(), axis: axis?, index: index?, invert: false, optional }))
}

impl Gather {
    /// The lazy index for a source tensor with these captures (inverted if asked).
    fn index_expr(&self, ctx: &OpContext, captures: &Captures) -> Result<Expr, OpErrorKind> {
        let index = self.index.expr(ctx, captures)?;
        Ok(if self.invert { Expr::InversePermutation { index: Box::new(index) } } else { index })
    }

    /// The row order, by plain loops (inverting the permutation if asked).
    fn eager_rows(&self, values: &[i64]) -> Result<Vec<u64>, OpErrorKind> {
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

impl Builtin for Gather {
    fn base(&self) -> &OpBase {
        &self.base
    }

    fn apply(&self, set: &mut TensorSet, ctx: &OpContext) -> Result<(), OpError> {
        // Nothing matched (an optional gather): nothing to reorder, the aux input is not needed.
        for (position, captures) in self.base.find(&set.tensors, &self.source, self.optional)? {
            let (name, value) = &set.tensors[position];
            let error = |kind| self.base.error(Some(name), kind);
            let index = self.index_expr(ctx, &captures).map_err(error)?;
            let axis = resolve_axis(self.axis, value.shape().len()).map_err(error)?;
            let gathered =
                TensorValue::new(Expr::Gather { input: Box::new(value.expr().clone()), axis, index: Box::new(index) })
                    .map_err(|err| error(err.into()))?;
            set.tensors[position].1 = gathered;
        }
        Ok(())
    }

    fn eager(&self, set: &mut EagerSet, _ctx: &OpContext) -> Result<(), OpError> {
        for (position, captures) in self.base.find(&set.tensors, &self.source, self.optional)? {
            let (name, tensor) = &set.tensors[position];
            let error = |kind| self.base.error(Some(name), kind);
            let values = self.index.eager(&set.aux, &captures).map_err(error)?;
            let rows = self.eager_rows(&values).map_err(error)?;
            let axis = resolve_axis(self.axis, tensor.shape.len()).map_err(error)?;
            let gathered = eager::gather(tensor, axis, &rows).map_err(error)?;
            set.tensors[position].1 = gathered;
        }
        Ok(())
    }

    fn inverse(&self, before: &TensorSet, ctx: &OpContext) -> Result<Vec<Box<dyn Operation>>, NoInverse> {
        for (position, captures) in matches(&before.tensors, &self.source) {
            let (name, value) = &before.tensors[position];
            let index = self.index.expr(ctx, &captures).map_err(|kind| self.base.no_inverse(kind.to_string()))?;
            let length = crate::expr::shape_of(&index).map_err(|err| self.base.no_inverse(err.to_string()))?;
            let axis =
                resolve_axis(self.axis, value.shape().len()).map_err(|kind| self.base.no_inverse(kind.to_string()))?;
            if value.shape()[axis] != length[0] {
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
        assert_eq!(err.to_string(), "`gather` on `w`: aux tensor `graph[\"perm\"]` is not available");
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
