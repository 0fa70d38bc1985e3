//! ## `rename`
//!
//! ```safeshift
//! rename SRC -> DST [optional]
//! ```
//!
//! Gives every tensor matching `SRC` the name `DST` filled with its captures. Targets may
//! compute indices from integer captures and dims: `{c * blocks_per_chunk + j}`.
//!
//! * **Shape rule:** unchanged.
//! * **Inverse:** rename back (`DST -> SRC`), when no other tensor matches `DST` and the
//!   target has no index arithmetic.
//! * **Lossy:** no.
//!
//! ```safeshift
//! rename "model.proc.{c}.blocks.{j}.{rest..}" -> "model.proc.{c * 2 + j}.{rest}"
//! // model.proc.1.blocks.1.mlp.weight  →  model.proc.3.mlp.weight
//! ```

use std::borrow::Cow;

use safeshift_dsl::ast::Pattern;
use safeshift_model::pattern::{fill, fill_with, match_into, match_name};
use safeshift_model::LiteralFilter;

use crate::lower::Operands;
use crate::operation::{Entries, NoInverse, OpBase, OpError, Operation, Structural};
use crate::rewrite::{as_source, matches, pattern_text, Sources};
use crate::tensor_set::{OpContext, TensorSet};

/// `rename SRC -> DST`.
#[derive(Clone, Debug)]
pub(crate) struct Rename {
    pub base: OpBase,
    pub source: Pattern,
    pub target: Pattern,
    pub optional: bool,
    /// The literal text every name `source` matches starts and ends with: a cheap test
    /// that rejects most names before matching (see [`apply_run`]).
    pub filter: LiteralFilter,
}

impl Rename {
    fn new(base: OpBase, source: Pattern, target: Pattern, optional: bool) -> Rename {
        Rename { filter: LiteralFilter::of(&source), base, source, target, optional }
    }
}

pub(crate) fn lower(operands: &mut Operands<'_>) -> Option<Box<dyn Operation>> {
    let source = operands.pattern("a source name pattern");
    let target = operands.arrow_one();
    let optional = operands.flag("optional").is_some();
    let base = operands.base("rename");
    Some(Box::new(Rename::new(base, source?.clone(), target?.clone(), optional)))
}

impl Structural for Rename {
    fn base(&self) -> &OpBase {
        &self.base
    }

    fn edit<V: Clone>(&self, set: Entries<'_, V>, ctx: &OpContext) -> Result<(), OpError> {
        let selected = self.base.select(set.tensors, &self.source, self.optional)?;
        selected.fan_out(std::slice::from_ref(&self.target), Sources::Replaced, ctx, |value| Ok(vec![value.clone()]))
    }

    fn inverse(&self, before: &TensorSet, ctx: &OpContext) -> Result<Vec<Box<dyn Operation>>, NoInverse> {
        let Some(back) = as_source(&self.target, &self.source) else {
            return Err(self.base.no_inverse("the target computes indices, which cannot be matched back"));
        };
        let dims = |name: &str| ctx.dim_value(name);
        let renamed: Vec<usize> = matches(&before.tensors, &self.source).into_iter().map(|(index, _)| index).collect();
        for (index, (name, _)) in before.tensors.iter().enumerate() {
            let is_renamed = renamed.contains(&index);
            if !is_renamed {
                if match_name(&back, name).is_some() {
                    let reason = format!("`{name}` passes through and also matches `{}`", pattern_text(&back));
                    return Err(self.base.no_inverse(reason));
                }
                continue;
            }
            // The way back must find the original name again.
            let captures = match_name(&self.source, name).expect("matched above");
            let forward = fill(&self.target, &captures, &dims).ok();
            let back_name = forward
                .as_deref()
                .and_then(|forward| match_name(&back, forward))
                .and_then(|captures| fill(&self.source, &captures, &dims).ok());
            if back_name.as_deref() != Some(name.as_str()) {
                return Err(self.base.no_inverse(format!("`{name}` cannot be recovered from its new name")));
            }
        }
        Ok(vec![Box::new(Rename::new(self.base, back, self.source.clone(), true))])
    }
}

/// Applies a run of consecutive renames to `tensors` in one pass: each name goes through
/// the renames in order, and the set is changed once, at the end. Applying them one by
/// one matches every name against every rename, clones every renamed value and checks the
/// whole set for collisions after each rename; a migration that renames every family of
/// a model (LLaMA's twelve) pays that per rename.
///
/// The result is the one applying them one by one gives: a rename maps each name by the
/// name alone, so two tensors that share a name after some rename share it after every
/// later one, and a final set without a repeated name had none after any rename. Returns
/// `false`, having changed nothing, when the pass cannot vouch for that: a repeated name,
/// a rename that matches nothing and is not `optional`, a target that cannot be filled.
/// The caller then applies the renames one by one, which reports the error.
pub(crate) fn apply_run<V>(run: &[&Rename], tensors: &mut [(String, V)], ctx: &OpContext) -> bool {
    let mut matched_any = vec![false; run.len()];
    let mut renamed: Vec<(usize, String)> = Vec::new();
    for (slot, (name, _)) in tensors.iter().enumerate() {
        let mut current: Cow<'_, str> = Cow::Borrowed(name);
        for (rename, matched) in run.iter().zip(&mut matched_any) {
            let mut bindings: Vec<(&str, &str)> = Vec::new();
            if !rename.filter.admits(&current) || !match_into(&rename.source, &current, &mut bindings) {
                continue;
            }
            *matched = true;
            let capture = |name: &str| bindings.iter().find(|(capture, _)| *capture == name).map(|(_, text)| *text);
            match fill_with(&rename.target, &capture, &|dim| ctx.dim_value(dim)) {
                Ok(filled) => current = Cow::Owned(filled),
                Err(_) => return false,
            }
        }
        if let Cow::Owned(new_name) = current {
            renamed.push((slot, new_name));
        }
    }
    if run.iter().zip(&matched_any).any(|(rename, matched)| !matched && !rename.optional) {
        return false;
    }
    let mut replaced = renamed.iter().peekable();
    let mut names: Vec<&str> = tensors
        .iter()
        .enumerate()
        .map(|(slot, (name, _))| match replaced.next_if(|(renamed_slot, _)| *renamed_slot == slot) {
            Some((_, new_name)) => new_name.as_str(),
            None => name.as_str(),
        })
        .collect();
    names.sort_unstable();
    if names.windows(2).any(|pair| pair[0] == pair[1]) {
        return false;
    }
    for (slot, new_name) in renamed {
        tensors[slot].0 = new_name;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::*;

    #[test]
    fn renames_with_captures_and_index_arithmetic() {
        let op = lower_ok(op("rename", vec![pats(&["proc.{c}.blocks.{j}.{rest..}"]), arrow_pattern(index_target())]));
        let ctx = ctx_with(&[("blocks", 2)]);
        let mut set =
            eager_set(&[("proc.1.blocks.1.mlp.w", f32_tensor(&[2], &[1.0, 2.0])), ("other", f32_tensor(&[1], &[0.0]))]);
        check_lazy_eager(&*op, &set, &ctx);
        op.eager(&mut set, &ctx).unwrap();
        assert_eq!(names(&set), ["proc.3.mlp.w", "other"]);
        assert!(op
            .inverse(&lazy_of(&eager_set(&[("proc.1.blocks.1.mlp.w", f32_tensor(&[1], &[0.0]))])), &ctx)
            .is_err());
    }

    #[test]
    fn inverse_restores_names() {
        let op = lower_ok(op("rename", vec![pats(&["{p..}.lin_q.{w}"]), arrow(&["{p}.q_proj.{w}"])]));
        let set = eager_set(&[("a.b.lin_q.weight", f32_tensor(&[1], &[1.0])), ("x", f32_tensor(&[1], &[2.0]))]);
        check_round_trip(&*op, &set, &OpContext::default());
    }

    #[test]
    fn pass_through_matching_the_target_has_no_inverse() {
        let op = lower_ok(op("rename", vec![pats(&["a.{x}"]), arrow(&["b.{x}"])]));
        let set = lazy_of(&eager_set(&[("a.1", f32_tensor(&[1], &[1.0])), ("b.2", f32_tensor(&[1], &[2.0]))]));
        let err = op.inverse(&set, &OpContext::default()).unwrap_err();
        assert!(err.reason.contains("`b.2` passes through"), "{err}");
    }

    #[test]
    fn collisions_and_missing_sources_are_errors() {
        let colliding = lower_ok(op("rename", vec![pats(&["a.{x}"]), arrow(&["b"])]));
        let mut set = eager_set(&[("a.1", f32_tensor(&[1], &[1.0])), ("a.2", f32_tensor(&[1], &[2.0]))]);
        let err = colliding.eager(&mut set, &OpContext::default()).unwrap_err();
        assert_eq!(err.to_string(), "`rename` on `b`: two tensors would be named `b`");
        let missing = lower_ok(op("rename", vec![pats(&["zzz"]), arrow(&["b"])]));
        let err = missing.eager(&mut set, &OpContext::default()).unwrap_err();
        assert_eq!(err.to_string(), "`rename`: no tensor matches `zzz`");
        let optional = lower_ok(op("rename", vec![pats(&["zzz"]), arrow(&["b"]), flag("optional")]));
        optional.eager(&mut set, &OpContext::default()).unwrap();
    }

    #[test]
    fn missing_target_is_a_diagnostic() {
        let diagnostics = lower_err(op("rename", vec![pats(&["a"])]));
        assert_eq!(codes(&diagnostics), ["missing-operand"]);
    }
}
