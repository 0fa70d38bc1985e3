//! ## `transpose`
//!
//! ```safeshift
//! transpose SRC [optional]
//! ```
//!
//! Transposes every (2-d) tensor matching `SRC`.
//!
//! * **Shape rule:** `[a, b]` → `[b, a]`; any other rank is an error.
//! * **Inverse:** itself.
//! * **Lossy:** no.
//!
//! ```safeshift
//! transpose "{p..}.c_attn.weight"    // GPT-2's Conv1D [in, out] → Linear [out, in]
//! ```

use safeshift_dsl::ast::Pattern;

use crate::eager;
use crate::expr::Expr;
use crate::lower::Operands;
use crate::operation::{Builtin, NoInverse, OpBase, OpError, OpErrorKind, Operation};

use crate::tensor_set::{EagerSet, OpContext, TensorSet, TensorValue};

/// `transpose SRC`.
#[derive(Clone, Debug)]
pub(crate) struct Transpose {
    base: OpBase,
    source: Pattern,
    optional: bool,
}

pub(crate) fn lower(operands: &mut Operands<'_>) -> Option<Box<dyn Operation>> {
    let source = operands.pattern("a source name pattern");
    let optional = operands.flag("optional").is_some();
    let base = operands.base("transpose");
    Some(Box::new(Transpose { base, source: source?.clone(), optional }))
}

fn check_rank(rank: usize) -> Result<(), OpErrorKind> {
    if rank != 2 {
        return Err(OpErrorKind::invalid(format!("`transpose` needs a 2-d tensor, not rank {rank}; use `permute`")));
    }
    Ok(())
}

impl Builtin for Transpose {
    fn base(&self) -> &OpBase {
        &self.base
    }

    fn apply(&self, set: &mut TensorSet, _ctx: &OpContext) -> Result<(), OpError> {
        self.base.select(&mut set.tensors, &self.source, self.optional)?.map_each(|value| {
            check_rank(value.shape().len())?;
            Ok(TensorValue::new(Expr::Permute { input: Box::new(value.expr().clone()), axes: vec![1, 0] })?)
        })
    }

    fn eager(&self, set: &mut EagerSet, _ctx: &OpContext) -> Result<(), OpError> {
        self.base.select(&mut set.tensors, &self.source, self.optional)?.map_each(|tensor| {
            check_rank(tensor.shape.len())?;
            eager::permute(tensor, &[1, 0])
        })
    }

    fn inverse(&self, _before: &TensorSet, _ctx: &OpContext) -> Result<Vec<Box<dyn Operation>>, NoInverse> {
        Ok(vec![Box::new(self.clone())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::*;

    #[test]
    fn transposes_and_back() {
        let op = lower_ok(op("transpose", vec![pats(&["w"])]));
        let set = eager_set(&[("w", iota(&[2, 3]))]);
        let out = check_lazy_eager(&*op, &set, &OpContext::default());
        assert_eq!(i32_values(out.get("w").unwrap()), [0, 3, 1, 4, 2, 5]);
        check_round_trip(&*op, &set, &OpContext::default());
    }

    #[test]
    fn rank_must_be_two() {
        let op = lower_ok(op("transpose", vec![pats(&["w"])]));
        let mut set = eager_set(&[("w", iota(&[2, 3, 1]))]);
        assert!(op.eager(&mut set, &OpContext::default()).is_err());
    }
}
