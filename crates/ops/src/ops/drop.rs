//! ## `drop`
//!
//! ```safeshift
//! drop SRC, … (lossy | derived) [optional]
//! ```
//!
//! Removes every tensor matching any of the patterns. `lossy` says the data is gone;
//! `derived` says the model recomputes it (a buffer such as rotary frequencies), so nothing
//! is lost, but there is still no way back.
//!
//! * **Shape rule:** the tensors disappear.
//! * **Inverse:** none (a `down` block can `insert` a replacement).
//! * **Lossy:** with `lossy`.
//!
//! ```safeshift
//! drop "model.model.encoder.edge_inc" lossy
//! drop "{p..}.rotary_emb.inv_freq" derived optional
//! ```

use safeshift_dsl::ast::Pattern;

use crate::lower::Operands;
use crate::operation::{Entries, NoInverse, OpBase, OpError, Operation, Structural};
use crate::tensor_set::{OpContext, TensorSet};

/// `drop SRC lossy|derived`.
#[derive(Clone, Debug)]
pub(crate) struct Drop {
    pub base: OpBase,
    pub patterns: Vec<Pattern>,
    pub lossy: bool,
    pub optional: bool,
}

pub(crate) fn lower(operands: &mut Operands<'_>) -> Option<Box<dyn Operation>> {
    let patterns = operands.patterns("the name patterns of the tensors to drop");
    let lossy = operands.lossy_or_derived();
    let optional = operands.flag("optional").is_some();
    let base = operands.base("drop");
    Some(Box::new(Drop { base, patterns: patterns?.to_vec(), lossy: lossy?, optional }))
}

impl Structural for Drop {
    fn base(&self) -> &OpBase {
        &self.base
    }

    fn lossy(&self) -> bool {
        self.lossy
    }

    fn edit<V: Clone>(&self, set: Entries<'_, V>, _ctx: &OpContext) -> Result<(), OpError> {
        let mut doomed = vec![false; set.tensors.len()];
        for pattern in &self.patterns {
            for (index, _) in self.base.find(set.tensors, pattern, self.optional)? {
                doomed[index] = true;
            }
        }
        let mut index = 0;
        set.tensors.retain(|_| {
            index += 1;
            !doomed[index - 1]
        });
        Ok(())
    }

    fn inverse(&self, _before: &TensorSet, _ctx: &OpContext) -> Result<Vec<Box<dyn Operation>>, NoInverse> {
        let reason =
            if self.lossy { "it drops data" } else { "the model recomputes what it drops; write a `down` block" };
        Err(self.base.no_inverse(reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::*;

    #[test]
    fn drops_matches_and_keeps_the_rest() {
        let op = lower_ok(op("drop", vec![pats(&["a.{x}", "b"]), flag("lossy")]));
        assert!(op.lossy());
        let set = eager_set(&[
            ("a.1", f32_tensor(&[1], &[1.0])),
            ("b", f32_tensor(&[1], &[2.0])),
            ("c", f32_tensor(&[1], &[3.0])),
        ]);
        let out = check_lazy_eager(&*op, &set, &OpContext::default());
        assert_eq!(names(&out), ["c"]);
        assert!(op.inverse(&lazy_of(&set), &OpContext::default()).is_err());
    }

    #[test]
    fn derived_is_not_lossy() {
        let op = lower_ok(op("drop", vec![pats(&["a"]), flag("derived")]));
        assert!(!op.lossy());
    }

    #[test]
    fn unmarked_drop_is_missing_lossy() {
        let diagnostics = lower_err(op("drop", vec![pats(&["a"])]));
        assert_eq!(codes(&diagnostics), ["missing-lossy"]);
        let diagnostics = lower_err(op("drop", vec![pats(&["a"]), flag("lossy"), flag("derived")]));
        assert_eq!(codes(&diagnostics), ["conflicting-flags"]);
    }
}
