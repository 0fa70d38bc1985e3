//! ## `truncate`
//!
//! ```safeshift
//! truncate SRC axis N to SIZE lossy [optional]
//! ```
//!
//! Keeps the first `SIZE` indices of axis `N` of every tensor matching `SRC`. Along the
//! first axis the result is a byte range of the input: nothing is copied.
//!
//! * **Shape rule:** `shape[N]` becomes `SIZE`, which must not be larger.
//! * **Inverse:** none.
//! * **Lossy:** yes; it must be marked `lossy`.
//!
//! ```safeshift
//! truncate "model.embed_tokens.weight" axis 0 to vocab lossy
//! // [32128, hidden]  →  [32000, hidden]
//! ```

use safeshift_dsl::ast::Pattern;
use safeshift_model::Sym;

use super::pad::size_clause;
use crate::eager;
use crate::expr::Expr;
use crate::lower::{axis_clause, Operands};
use crate::operation::{Builtin, NoInverse, OpBase, OpError, OpErrorKind, Operation};
use crate::rewrite::resolve_axis;
use crate::tensor_set::{concrete, resolve};
use crate::tensor_set::{EagerSet, OpContext, TensorSet, TensorValue};

/// `truncate SRC axis N to SIZE`; also the inverse of `pad` (then not lossy).
#[derive(Clone, Debug)]
pub(crate) struct Truncate {
    pub base: OpBase,
    pub source: Pattern,
    pub axis: i64,
    pub size: Sym,
    pub lossy: bool,
    pub optional: bool,
}

pub(crate) fn lower(operands: &mut Operands<'_>) -> Option<Box<dyn Operation>> {
    let source = operands.pattern("a source name pattern");
    let axis = axis_clause(operands, None);
    let size = size_clause(operands);
    let lossy = operands.require_lossy("drops the indices beyond the size");
    let optional = operands.flag("optional").is_some();
    let base = operands.base("truncate");
    if !lossy {
        return None;
    }
    Some(Box::new(Truncate { base, source: source?.clone(), axis: axis?, size: size?, lossy, optional }))
}

impl Builtin for Truncate {
    fn base(&self) -> &OpBase {
        &self.base
    }

    fn lossy(&self) -> bool {
        self.lossy
    }

    fn apply(&self, set: &mut TensorSet, ctx: &OpContext) -> Result<(), OpError> {
        let size = resolve(ctx, &self.size).map_err(|kind| self.base.error(None, kind))?;
        self.base.select(&mut set.tensors, &self.source, self.optional)?.map_each(|value| {
            let axis = resolve_axis(self.axis, value.shape().len())?;
            let expr =
                Expr::Narrow { input: Box::new(value.expr().clone()), axis, start: Sym::int(0), len: size.clone() };
            Ok(TensorValue::new(expr)?)
        })
    }

    fn eager(&self, set: &mut EagerSet, ctx: &OpContext) -> Result<(), OpError> {
        let size = concrete(ctx, &self.size).map_err(|kind| self.base.error(None, kind))?;
        self.base.select(&mut set.tensors, &self.source, self.optional)?.map_each(|tensor| {
            let axis = resolve_axis(self.axis, tensor.shape.len())?;
            if size > tensor.shape[axis] {
                return Err(OpErrorKind::invalid(format!("axis {axis} is smaller than {size}; use `pad`")));
            }
            eager::narrow(tensor, axis, 0, size)
        })
    }

    fn inverse(&self, _before: &TensorSet, _ctx: &OpContext) -> Result<Vec<Box<dyn Operation>>, NoInverse> {
        Err(self.base.no_inverse("it drops the indices beyond the size"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::byte_range::byte_range;
    use crate::ops::testing::*;

    #[test]
    fn truncates_rows_as_a_byte_range() {
        let op =
            lower_ok(op("truncate", vec![pats(&["w"]), clause_int("axis", 0), clause_int("to", 2), flag("lossy")]));
        let set = eager_set(&[("w", iota(&[3, 2]))]);
        let out = check_lazy_eager(&*op, &set, &OpContext::default());
        assert_eq!(i32_values(out.get("w").unwrap()), [0, 1, 2, 3]);
        let mut lazy = lazy_of(&set);
        op.apply(&mut lazy, &OpContext::default()).unwrap();
        let range = byte_range(lazy.get("w").unwrap().expr()).unwrap();
        assert_eq!((range.start, range.end), (0, 16));
    }

    #[test]
    fn must_be_marked_lossy() {
        let diagnostics = lower_err(op("truncate", vec![pats(&["w"]), clause_int("axis", 0), clause_int("to", 2)]));
        assert_eq!(codes(&diagnostics), ["missing-lossy"]);
    }

    #[test]
    fn growing_is_an_error() {
        let op =
            lower_ok(op("truncate", vec![pats(&["w"]), clause_int("axis", 0), clause_int("to", 5), flag("lossy")]));
        let mut lazy = lazy_of(&eager_set(&[("w", iota(&[3, 2]))]));
        let err = op.apply(&mut lazy, &OpContext::default()).unwrap_err();
        assert!(matches!(err.kind, OpErrorKind::Shape(_)), "{err}");
    }
}
