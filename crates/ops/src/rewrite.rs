//! Matching name patterns against a set and replacing what matched: the plumbing shared
//! by every tensor operation, for lazy and eager sets alike.

use std::collections::{BTreeMap, BTreeSet};

use safeshift_dsl::ast::{Pattern, PatternPart};
use safeshift_model::pattern::{fill, match_name, Captures, FillError};
use safeshift_model::{LiteralFilter, Sym};

use crate::operation::{OpBase, OpError, OpErrorKind};
use crate::tensor_set::OpContext;

/// A pattern as written in the language: `"{p..}.attention.{w}"`.
pub(crate) fn pattern_text(pattern: &Pattern) -> String {
    let mut out = String::new();
    for part in &pattern.parts {
        match part {
            PatternPart::Literal(text) => out.push_str(&text.replace('{', "{{").replace('}', "}}")),
            PatternPart::Capture { name, multi } => {
                out.push('{');
                out.push_str(&name.node);
                if *multi {
                    out.push_str("..");
                }
                out.push('}');
            }
            PatternPart::Counted { name, bound } => {
                out.push_str(&format!("{{{} < {}}}", name.node, Sym::from_expr(bound)));
            }
            PatternPart::Expr(expr) => out.push_str(&format!("{{{}}}", Sym::from_expr(expr))),
        }
    }
    out
}

/// A literal pattern (no captures) for the exact name `name`.
pub(crate) fn literal(name: &str, like: &Pattern) -> Pattern {
    Pattern { parts: vec![PatternPart::Literal(name.to_owned())], span: like.span }
}

/// `target` turned into a source pattern: each capture takes the kind (one segment, many
/// segments, counted) it has in `source`. `None` when `target` holds index arithmetic,
/// which cannot be matched.
pub(crate) fn as_source(target: &Pattern, source: &Pattern) -> Option<Pattern> {
    let kinds: BTreeMap<&str, &PatternPart> = source
        .parts
        .iter()
        .filter_map(|part| match part {
            PatternPart::Capture { name, .. } | PatternPart::Counted { name, .. } => Some((name.node.as_str(), part)),
            _ => None,
        })
        .collect();
    let parts = target
        .parts
        .iter()
        .map(|part| match part {
            PatternPart::Literal(_) => Some(part.clone()),
            PatternPart::Capture { name, .. } | PatternPart::Counted { name, .. } => {
                Some(kinds.get(name.node.as_str()).map_or_else(|| part.clone(), |kind| (*kind).clone()))
            }
            PatternPart::Expr(_) => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Pattern { parts, span: target.span })
}

/// Names of the set matching `pattern`, in set order, with their captures.
pub(crate) fn matches<V>(tensors: &[(String, V)], pattern: &Pattern) -> Vec<(usize, Captures)> {
    // The literal prefix and suffix turn most names away before a match is tried.
    let filter = LiteralFilter::of(pattern);
    tensors
        .iter()
        .enumerate()
        .filter(|(_, (name, _))| filter.admits(name))
        .filter_map(|(index, (name, _))| match_name(pattern, name).map(|captures| (index, captures)))
        .collect()
}

/// Fills a target pattern, with dims from `ctx`.
pub(crate) fn fill_name(
    base: &OpBase,
    source_name: &str,
    target: &Pattern,
    captures: &Captures,
    ctx: &OpContext,
) -> Result<String, OpError> {
    fill(target, captures, &|name| ctx.dim_value(name)).map_err(|err| {
        let message = match err {
            FillError::Unbound { name, .. } => format!("`{name}` in `{}` has no value", pattern_text(target)),
            FillError::Eval(err) => format!("`{}`: {err}", pattern_text(target)),
        };
        base.error(Some(source_name), OpErrorKind::Name { message })
    })
}

/// Tensors removed and added by one operation. Added tensors take the place of their
/// anchor (the first source they came from), in order; without an anchor they go last.
pub(crate) struct Rewrite<V> {
    removed: BTreeSet<String>,
    added: Vec<(Option<String>, String, V)>,
}

impl<V> Rewrite<V> {
    pub fn new() -> Rewrite<V> {
        Rewrite { removed: BTreeSet::new(), added: Vec::new() }
    }

    pub fn remove(&mut self, name: &str) {
        self.removed.insert(name.to_owned());
    }

    pub fn add(&mut self, anchor: Option<&str>, name: String, value: V) {
        self.added.push((anchor.map(str::to_owned), name, value));
    }

    /// Applies the rewrite; two tensors with one name is an error.
    pub fn commit(self, base: &OpBase, tensors: &mut Vec<(String, V)>) -> Result<(), OpError> {
        match self.replace_in_place(tensors) {
            Ok(()) => Ok(()),
            Err(rewrite) => rewrite.rebuild(base, tensors),
        }
    }

    /// The rewrite of a rename (each removed tensor replaced by the one tensor anchored at
    /// it), done in place: the order is kept, so only the replaced slots change, instead of
    /// the whole set being rebuilt. The result is the one [`Rewrite::rebuild`] gives. Gives
    /// the rewrite back, having changed nothing, when it is of another kind or its result
    /// would hold a name twice ([`Rewrite::rebuild`] reports which).
    fn replace_in_place(self, tensors: &mut [(String, V)]) -> Result<(), Rewrite<V>> {
        if self.added.len() != self.removed.len() {
            return Err(self);
        }
        // Sorted lookups, not hashing: a rename touches a few of many tensors, and sorting
        // keeps a hostile header's names from degrading the lookups.
        let mut anchors: Vec<(&str, usize)> = Vec::with_capacity(self.added.len());
        for (added_idx, (anchor, _, _)) in self.added.iter().enumerate() {
            match anchor.as_deref().filter(|anchor| self.removed.contains(*anchor)) {
                Some(anchor) => anchors.push((anchor, added_idx)),
                None => return Err(self),
            }
        }
        anchors.sort_unstable();
        if anchors.windows(2).any(|pair| pair[0].0 == pair[1].0) {
            return Err(self);
        }
        // (slot in the set, what replaces it); each anchor must be in the set exactly once.
        let replacement =
            |name: &str| anchors.binary_search_by(|(anchor, _)| (*anchor).cmp(name)).ok().map(|found| anchors[found].1);
        let slots: Vec<(usize, usize)> = tensors
            .iter()
            .enumerate()
            .filter_map(|(slot, (name, _))| replacement(name).map(|added_idx| (slot, added_idx)))
            .collect();
        if slots.len() != self.added.len() {
            return Err(self);
        }
        let mut replaced = slots.iter().peekable();
        let mut names: Vec<&str> = tensors
            .iter()
            .enumerate()
            .map(|(slot, (name, _))| match replaced.next_if(|(replaced_slot, _)| *replaced_slot == slot) {
                Some(&(_, added_idx)) => self.added[added_idx].1.as_str(),
                None => name.as_str(),
            })
            .collect();
        names.sort_unstable();
        if names.windows(2).any(|pair| pair[0] == pair[1]) {
            return Err(self);
        }
        let mut added: Vec<Option<(String, V)>> =
            self.added.into_iter().map(|(_, name, value)| Some((name, value))).collect();
        for (slot, added_idx) in slots {
            if let Some(entry) = added[added_idx].take() {
                tensors[slot] = entry;
            }
        }
        Ok(())
    }

    /// Applies the rewrite by building the set again: kept tensors in order, each added one
    /// after its anchor (or last); two tensors with one name is an error.
    fn rebuild(self, base: &OpBase, tensors: &mut Vec<(String, V)>) -> Result<(), OpError> {
        let Rewrite { removed, added } = self;
        let mut by_anchor: BTreeMap<String, Vec<(String, V)>> = BTreeMap::new();
        let mut unanchored = Vec::new();
        for (anchor, name, value) in added {
            match anchor {
                Some(anchor) => by_anchor.entry(anchor).or_default().push((name, value)),
                None => unanchored.push((name, value)),
            }
        }
        let old = std::mem::take(tensors);
        let mut out = Vec::with_capacity(old.len() + unanchored.len());
        for (name, value) in old {
            let outputs = by_anchor.remove(&name);
            if !removed.contains(&name) {
                out.push((name, value));
            }
            out.extend(outputs.into_iter().flatten());
        }
        out.extend(by_anchor.into_values().flatten());
        out.extend(unanchored);
        let mut seen = BTreeSet::new();
        for (name, _) in &out {
            if !seen.insert(name.as_str()) {
                let name = name.clone();
                return Err(base.error(Some(&name), OpErrorKind::Collision { name: name.clone() }));
            }
        }
        *tensors = out;
        Ok(())
    }
}

impl OpBase {
    /// The tensors matching `pattern`, in set order, with their captures; none is an error
    /// unless the operation is `optional`.
    pub fn find<V>(&self, tensors: &[(String, V)], pattern: &Pattern, optional: bool) -> Result<Found, OpError> {
        let found = matches(tensors, pattern);
        if found.is_empty() && !optional {
            return Err(self.error(None, OpErrorKind::NoMatch { pattern: pattern_text(pattern) }));
        }
        Ok(found)
    }

    /// The tensors of `tensors` matching `pattern` (see [`OpBase::find`]), to rewrite.
    pub fn select<'s, V>(
        &'s self,
        tensors: &'s mut Vec<(String, V)>,
        pattern: &Pattern,
        optional: bool,
    ) -> Result<Selected<'s, V>, OpError> {
        let found = self.find(tensors, pattern, optional)?;
        Ok(Selected { base: self, tensors, found })
    }
}

/// Names of a set that matched a pattern, by index, with their captures.
pub(crate) type Found = Vec<(usize, Captures)>;

/// The tensors of a set one operation rewrites, found by [`OpBase::select`]: the lazy and
/// the eager path of an operation make the same rewrite, each computing its own values.
pub(crate) struct Selected<'s, V> {
    base: &'s OpBase,
    tensors: &'s mut Vec<(String, V)>,
    found: Found,
}

/// Whether [`Selected::fan_out`] keeps the tensors it read from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sources {
    /// The outputs replace their source.
    Replaced,
    /// The outputs come after their source, which stays.
    Kept,
}

impl<V> Selected<'_, V> {
    /// Replaces every selected tensor by `f(value)`, in place.
    pub fn map_each(self, mut f: impl FnMut(&V) -> Result<V, OpErrorKind>) -> Result<(), OpError> {
        for (index, _) in self.found {
            let (name, value) = &self.tensors[index];
            let new = f(value).map_err(|kind| self.base.error(Some(name), kind))?;
            self.tensors[index].1 = new;
        }
        Ok(())
    }

    /// For every selected tensor: `f` computes one value per target pattern, which are
    /// added under the filled target names in its place (or after it, if `Sources::Kept`).
    pub fn fan_out(
        self,
        targets: &[Pattern],
        sources: Sources,
        ctx: &OpContext,
        mut f: impl FnMut(&V) -> Result<Vec<V>, OpErrorKind>,
    ) -> Result<(), OpError> {
        let mut rewrite = Rewrite::new();
        for (index, captures) in self.found {
            let (name, value) = &self.tensors[index];
            let outputs = f(value).map_err(|kind| self.base.error(Some(name), kind))?;
            debug_assert_eq!(outputs.len(), targets.len());
            if sources == Sources::Replaced {
                rewrite.remove(name);
            }
            for (target, output) in targets.iter().zip(outputs) {
                let new_name = fill_name(self.base, name, target, &captures, ctx)?;
                rewrite.add(Some(name), new_name, output);
            }
        }
        rewrite.commit(self.base, self.tensors)
    }

    /// For every selected tensor (selected by `parts[0]`): the other parts are found by
    /// filling their patterns with its captures; `f` combines them into one value named by
    /// `target`, which replaces them all (at the first part's place).
    pub fn fan_in(
        self,
        parts: &[Pattern],
        target: &Pattern,
        ctx: &OpContext,
        mut f: impl FnMut(&[&V]) -> Result<V, OpErrorKind>,
    ) -> Result<(), OpError>
    where
        V: Clone,
    {
        let base = self.base;
        let mut rewrite = Rewrite::new();
        for (index, captures) in self.found {
            let first = self.tensors[index].0.clone();
            let mut values: Vec<V> = Vec::with_capacity(parts.len());
            for part in parts {
                let name = fill_name(base, &first, part, &captures, ctx)?;
                let Some((_, value)) = self.tensors.iter().find(|(existing, _)| *existing == name) else {
                    return Err(base.error(Some(&first), OpErrorKind::MissingTensor { name }));
                };
                values.push(value.clone());
                rewrite.remove(&name);
            }
            let refs: Vec<&V> = values.iter().collect();
            let output = f(&refs).map_err(|kind| base.error(Some(&first), kind))?;
            let new_name = fill_name(base, &first, target, &captures, ctx)?;
            rewrite.add(Some(&first), new_name, output);
        }
        rewrite.commit(base, self.tensors)
    }
}

/// Resolves an axis (negative counts from the end) against a rank.
pub(crate) fn resolve_axis(axis: i64, rank: usize) -> Result<usize, OpErrorKind> {
    let resolved = if axis < 0 { axis + rank as i64 } else { axis };
    if resolved < 0 || resolved >= rank as i64 {
        return Err(OpErrorKind::invalid(format!("axis {axis} is out of range for a tensor of rank {rank}")));
    }
    Ok(resolved as usize)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use safeshift_dsl::ast::Span;
    use safeshift_dsl::SourceId;

    use super::*;

    fn base() -> OpBase {
        OpBase { name: "rename", file: SourceId::default(), span: Span::default() }
    }

    /// One change of a rewrite, over a set of tensors named from a small alphabet so that
    /// collisions are frequent: tensor `index` renamed, or removed, or something added.
    #[derive(Clone, Debug)]
    enum Change {
        Rename { index: usize, to: u8 },
        Remove { index: usize },
        Add { anchor: Option<usize>, name: u8 },
    }

    fn change() -> impl Strategy<Value = Change> {
        prop_oneof![
            8 => (0usize..12, 0u8..16).prop_map(|(index, to)| Change::Rename { index, to }),
            1 => (0usize..12).prop_map(|index| Change::Remove { index }),
            1 => (proptest::option::of(0usize..12), 0u8..16).prop_map(|(anchor, name)| Change::Add { anchor, name }),
        ]
    }

    proptest! {
        /// Whatever the rewrite, committing it (in place when it is a rename) gives the set,
        /// or the error, that rebuilding the set gives.
        #[test]
        fn in_place_renames_agree_with_rebuilding(
            names in proptest::collection::vec(0u8..16, 0..12),
            changes in proptest::collection::vec(change(), 0..8),
        ) {
            let tensors: Vec<(String, usize)> =
                names.iter().enumerate().map(|(value, name)| (format!("t{name}"), value)).collect();
            let rewrite = || {
                let mut rewrite = Rewrite::new();
                for (step, change) in changes.iter().enumerate() {
                    let name_of = |index: usize| tensors.get(index).map(|(name, _)| name.clone());
                    match *change {
                        Change::Rename { index, to } => {
                            if let Some(name) = name_of(index) {
                                rewrite.remove(&name);
                                rewrite.add(Some(&name), format!("t{to}"), 100 + step);
                            }
                        }
                        Change::Remove { index } => {
                            if let Some(name) = name_of(index) {
                                rewrite.remove(&name);
                            }
                        }
                        Change::Add { anchor, name } => {
                            let anchor = anchor.and_then(name_of);
                            rewrite.add(anchor.as_deref(), format!("t{name}"), 100 + step);
                        }
                    }
                }
                rewrite
            };
            let (mut fast, mut slow) = (tensors.clone(), tensors.clone());
            let fast_result = rewrite().commit(&base(), &mut fast);
            let slow_result = rewrite().rebuild(&base(), &mut slow);
            prop_assert_eq!(&fast_result, &slow_result);
            if slow_result.is_ok() {
                prop_assert_eq!(fast, slow);
            }
        }
    }
}
