//! ## `copy`
//!
//! ```safeshift
//! copy SRC -> DST [optional]
//! ```
//!
//! Adds a copy of every tensor matching `SRC` under the name `DST`; the source stays
//! (fan-out, e.g. to untie shared embeddings). The copy is placed right after its source.
//!
//! * **Shape rule:** the copy has the source's dtype and shape.
//! * **Inverse:** drop the copies.
//! * **Lossy:** no.
//!
//! ```safeshift
//! copy "model.embed_tokens.weight" -> "lm_head.weight"
//! ```

use safeshift_dsl::ast::Pattern;
use safeshift_model::pattern::{fill, match_name};

use super::drop::Drop;
use crate::lower::Operands;
use crate::operation::{Entries, NoInverse, OpBase, OpError, Operation, Structural};
use crate::rewrite::{literal, Sources};
use crate::tensor_set::{OpContext, TensorSet};

/// `copy SRC -> DST`.
#[derive(Clone, Debug)]
pub(crate) struct Copy {
    base: OpBase,
    source: Pattern,
    target: Pattern,
    optional: bool,
}

pub(crate) fn lower(operands: &mut Operands<'_>) -> Option<Box<dyn Operation>> {
    let source = operands.pattern("a source name pattern");
    let target = operands.arrow_one();
    let optional = operands.flag("optional").is_some();
    let base = operands.base("copy");
    Some(Box::new(Copy { base, source: source?.clone(), target: target?.clone(), optional }))
}

impl Structural for Copy {
    fn base(&self) -> &OpBase {
        &self.base
    }

    fn edit<V: Clone>(&self, set: Entries<'_, V>, ctx: &OpContext) -> Result<(), OpError> {
        let selected = self.base.select(set.tensors, &self.source, self.optional)?;
        selected.fan_out(std::slice::from_ref(&self.target), Sources::Kept, ctx, |value| Ok(vec![value.clone()]))
    }

    fn inverse(&self, before: &TensorSet, ctx: &OpContext) -> Result<Vec<Box<dyn Operation>>, NoInverse> {
        let mut copies = Vec::new();
        for (name, _) in before.iter() {
            let Some(captures) = match_name(&self.source, name) else { continue };
            let copy = fill(&self.target, &captures, &|dim| ctx.dim_value(dim))
                .map_err(|err| self.base.no_inverse(format!("cannot name the copy of `{name}`: {err}")))?;
            copies.push(literal(&copy, &self.target));
        }
        let drop = Drop { base: self.base.renamed("drop"), patterns: copies, lossy: false, optional: false };
        Ok(vec![Box::new(drop)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::*;

    #[test]
    fn copies_after_the_source_and_drops_back() {
        let op = lower_ok(op("copy", vec![pats(&["emb.{w}"]), arrow(&["head.{w}"])]));
        let set = eager_set(&[("emb.weight", f32_tensor(&[2], &[1.0, 2.0])), ("z", f32_tensor(&[1], &[3.0]))]);
        let out = check_lazy_eager(&*op, &set, &OpContext::default());
        assert_eq!(names(&out), ["emb.weight", "head.weight", "z"]);
        check_round_trip(&*op, &set, &OpContext::default());
    }
}
