//! ## `merge`
//!
//! ```safeshift
//! merge SRC -> DST [optional]
//! ```
//!
//! Merges copies into one: every tensor matching `SRC` goes to the name `DST` filled with
//! its captures, and where several sources land on one name (`DST` leaves out a capture of
//! `SRC`, such as the dataset of a per-dataset copy), they become one tensor. Equal copies
//! merge without loss. Copies that differ cannot all be kept: the result then fails when
//! it is computed, naming the tensors, unless lossy results are allowed (`--allow-lossy`),
//! which keeps the first. A source that lands alone is simply renamed.
//!
//! * **Shape rule:** unchanged; the copies must have one dtype and shape.
//! * **Inverse:** none (which sources had a copy is not recorded in the result).
//! * **Lossy:** only when the copies differ, which is found when the bytes are read.
//!
//! ```safeshift
//! merge "model.model.node_attributes.{dataset}.latlons_hidden" -> "model.model.node_attributes.latlons_hidden"
//! // node_attributes.era5.latlons_hidden, node_attributes.cerra.latlons_hidden  →  node_attributes.latlons_hidden
//! ```

use safeshift_dsl::ast::Pattern;

use crate::expr::Expr;
use crate::lower::Operands;
use crate::operation::{Builtin, NoInverse, OpBase, OpError, OpErrorKind, Operation};
use crate::rewrite::{fill_name, Rewrite};
use crate::tensor_set::{EagerSet, EagerTensor, OpContext, TensorSet, TensorValue};

/// `merge SRC -> DST`.
#[derive(Clone, Debug)]
pub(crate) struct Merge {
    base: OpBase,
    source: Pattern,
    target: Pattern,
    optional: bool,
}

pub(crate) fn lower(operands: &mut Operands<'_>) -> Option<Box<dyn Operation>> {
    let source = operands.pattern("a source name pattern");
    let target = operands.arrow_one();
    let optional = operands.flag("optional").is_some();
    let base = operands.base("merge");
    Some(Box::new(Merge { base, source: source?.clone(), target: target?.clone(), optional }))
}

impl Merge {
    /// Groups the sources by target name, in order: `combine` makes one value of a group.
    fn merge<V: Clone>(
        &self,
        tensors: &mut Vec<(String, V)>,
        ctx: &OpContext,
        combine: impl Fn(&[(&str, &V)]) -> Result<V, OpErrorKind>,
    ) -> Result<(), OpError> {
        let found = self.base.find(tensors, &self.source, self.optional)?;
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        for (index, captures) in found {
            let target = fill_name(&self.base, &tensors[index].0, &self.target, &captures, ctx)?;
            match groups.iter_mut().find(|(name, _)| *name == target) {
                Some((_, members)) => members.push(index),
                None => groups.push((target, vec![index])),
            }
        }
        let mut rewrite = Rewrite::new();
        for (target, members) in groups {
            let parts: Vec<(&str, &V)> =
                members.iter().map(|&index| (tensors[index].0.as_str(), &tensors[index].1)).collect();
            let anchor = parts[0].0;
            let merged = combine(&parts).map_err(|kind| self.base.error(Some(anchor), kind))?;
            for (name, _) in &parts {
                rewrite.remove(name);
            }
            rewrite.add(Some(anchor), target, merged);
        }
        rewrite.commit(&self.base, tensors)
    }
}

impl Builtin for Merge {
    fn base(&self) -> &OpBase {
        &self.base
    }

    fn apply(&self, set: &mut TensorSet, ctx: &OpContext) -> Result<(), OpError> {
        self.merge(&mut set.tensors, ctx, |parts| match parts {
            [(_, single)] => Ok((*single).clone()),
            _ => {
                let inputs = parts.iter().map(|(_, value)| value.expr().clone()).collect();
                Ok(TensorValue::new(Expr::Merge { inputs })?)
            }
        })
    }

    fn eager(&self, set: &mut EagerSet, ctx: &OpContext) -> Result<(), OpError> {
        self.merge(&mut set.tensors, ctx, |parts: &[(&str, &EagerTensor)]| {
            let (_, first) = parts[0];
            if parts.iter().any(|(_, other)| *other != first) {
                let names: Vec<String> = parts.iter().map(|(name, _)| format!("`{name}`")).collect();
                return Err(OpErrorKind::Data {
                    message: format!("{} differ: merging them would lose data", names.join(", ")),
                });
            }
            Ok(first.clone())
        })
    }

    fn inverse(&self, _before: &TensorSet, _ctx: &OpContext) -> Result<Vec<Box<dyn Operation>>, NoInverse> {
        Err(self.base.no_inverse("which names had a copy is not recorded in the merged tensor"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::*;
    use crate::EvalError;

    fn merge_op() -> Box<dyn Operation> {
        lower_text(r#"merge "attrs.{dataset}.hidden" -> "attrs.hidden""#)
    }

    #[test]
    fn equal_copies_merge_into_one() {
        let set =
            eager_set(&[("attrs.a.hidden", iota(&[3])), ("attrs.a.data", iota(&[2])), ("attrs.b.hidden", iota(&[3]))]);
        let out = check_lazy_eager(&*merge_op(), &set, &OpContext::default());
        assert_eq!(names(&out), ["attrs.hidden", "attrs.a.data"]);
        assert_eq!(out.get("attrs.hidden"), set.get("attrs.a.hidden"));
    }

    #[test]
    fn unequal_copies_are_refused_naming_them_unless_allowed() {
        let set = eager_set(&[
            ("attrs.a.hidden", f32_tensor(&[3], &[1.0, 2.0, 3.0])),
            ("attrs.b.hidden", f32_tensor(&[3], &[9.0, 9.0, 9.0])),
        ]);
        let err = merge_op().eager(&mut set.clone(), &OpContext::default()).unwrap_err();
        assert!(err.to_string().contains("`attrs.a.hidden`, `attrs.b.hidden` differ"), "{err}");
        let mut lazy = lazy_of(&set);
        merge_op().apply(&mut lazy, &OpContext::default()).unwrap();
        let expr = lazy.get("attrs.hidden").unwrap().expr().clone();
        let sources = |leaf: &crate::Leaf| {
            Ok::<_, std::io::Error>(std::borrow::Cow::Owned(set.get(&leaf.name).unwrap().data.clone()))
        };
        let err = crate::evaluate(&expr, &sources).unwrap_err();
        assert!(matches!(&err, EvalError::UnequalMerge { names } if names == &["attrs.a.hidden", "attrs.b.hidden"]));
        let first = crate::evaluate(&crate::accept_unequal_merges(expr), &sources).unwrap();
        assert_eq!(first, set.get("attrs.a.hidden").unwrap().data);
    }

    #[test]
    fn a_single_source_is_renamed_and_nothing_is_inverted() {
        let set = eager_set(&[("attrs.data.hidden", iota(&[3]))]);
        let out = check_lazy_eager(&*merge_op(), &set, &OpContext::default());
        assert_eq!(names(&out), ["attrs.hidden"]);
        assert!(merge_op().inverse(&lazy_of(&set), &OpContext::default()).is_err());
    }
}
