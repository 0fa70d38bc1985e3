//! Phase 1, assignment: each layout tensor belongs to the first schema tensor whose
//! pattern matches its name, else to an `allow` pattern, else it is unexpected. Patterns
//! are pre-filtered by their literal prefix and suffix, so the cost is about tensors ×
//! patterns cheap string comparisons plus one real match per tensor.

use std::collections::{BTreeMap, HashMap};

use safeshift_dsl::ast::{self, PatternPart};

use super::Assigned;
use crate::mismatch::Mismatch;
use crate::pattern::{int_of, match_into, Captures};
use crate::schema::substitute_all;
use crate::{Schema, Sym, TensorDef, TensorInfo};

/// What the assignment found: for each layout tensor what it belongs to (`None`:
/// unexpected), and the tensors assigned to schema tensors, with their captures.
pub(super) struct Assignment {
    pub assigned: Vec<Option<Assigned>>,
    pub matched: Vec<Matched>,
    /// The counted captures' values of every match, one after the other (each
    /// [`Matched`] says where its own are): one buffer instead of one per tensor.
    indices: Vec<i64>,
}

impl Assignment {
    /// The values of `hit`'s counted captures, in pattern order.
    pub fn indices(&self, hit: &Matched) -> &[i64] {
        &self.indices[hit.indices.clone()]
    }
}

/// Assigns every tensor of the layout; unexpected and allowed tensors are counted in
/// `mismatch`.
pub(super) fn assign(
    schema: &Schema,
    tensors: &[&TensorInfo],
    defs: &[CompiledDef],
    allows: &[LiteralFilter],
    mismatch: &mut Mismatch,
) -> Assignment {
    let mut assignment: Vec<Option<Assigned>> = vec![None; tensors.len()];
    // Most tensors of a checkpoint its schema fits match a schema tensor.
    let mut matched: Vec<Matched> = Vec::with_capacity(tensors.len());
    let mut all_indices: Vec<i64> = Vec::with_capacity(tensors.len());
    // One buffer of borrowed captures for every match: only what is kept is copied.
    let mut bindings: Vec<(&str, &str)> = Vec::new();
    for (tensor_idx, tensor) in tensors.iter().enumerate() {
        let hit = defs.iter().position(|def| def.matches(&tensor.name, &mut bindings));
        if let Some(def_idx) = hit {
            let def = &defs[def_idx];
            let text = |capture: &str| bindings.iter().find(|(name, _)| *name == capture).map(|(_, text)| *text);
            let start = all_indices.len();
            let integers = def.counted.iter().all(|c| match text(&c.capture).and_then(int_of) {
                Some(index) => {
                    all_indices.push(index);
                    true
                }
                None => false,
            });
            if integers {
                let captures = if def.free_captures.is_empty() {
                    Captures::default()
                } else {
                    Captures(
                        def.free_captures
                            .iter()
                            .filter_map(|name| text(name).map(|value| (name.clone(), value.to_owned())))
                            .collect(),
                    )
                };
                assignment[tensor_idx] = Some(Assigned::Tensor(def_idx));
                matched.push(Matched { tensor_idx, def_idx, captures, indices: start..all_indices.len() });
                continue;
            }
            all_indices.truncate(start);
        }
        let allowed = schema.allows.iter().zip(allows).position(|(pattern, filter)| {
            filter.admits(&tensor.name) && match_into(pattern, &tensor.name, &mut bindings)
        });
        match allowed {
            Some(allow_idx) => {
                assignment[tensor_idx] = Some(Assigned::Allowed(allow_idx));
                mismatch.allowed += 1;
            }
            None => mismatch.unexpected.push(tensor.name.clone()),
        }
    }
    Assignment { assigned: assignment, matched, indices: all_indices }
}

/// A schema tensor pattern prepared for matching many names.
#[derive(Clone, Debug)]
pub(super) struct CompiledDef {
    pub pattern: ast::Pattern,
    pub filter: LiteralFilter,
    /// What is left to check of a name the filter admits.
    form: PatternForm,
    /// A byte of the literal suffix that turns most other patterns' names away (set by
    /// [`CompiledDef::choose_probes`]).
    probe: Option<Probe>,
    /// The counted captures, in pattern order.
    pub counted: Vec<CountedCapture>,
    /// The names of the other captures.
    pub free_captures: Vec<String>,
    /// The shape with derived dims expanded.
    pub shape: Vec<Sym>,
}

#[derive(Clone, Debug)]
pub(super) struct CountedCapture {
    pub capture: String,
    /// The bound with derived dims expanded.
    pub bound: Sym,
    /// The bound's normal form as text: patterns with the same bound share one count.
    pub key: String,
    /// The count of that bound: its index in [`PreparedSchema`](super::PreparedSchema)'s
    /// counts (set when they are gathered).
    pub count: usize,
}

impl CompiledDef {
    pub fn new(def: &TensorDef, derived: &BTreeMap<String, Sym>) -> CompiledDef {
        let pattern = &def.pattern;
        let mut counted = Vec::new();
        let mut free_captures = Vec::new();
        for part in &pattern.parts {
            match part {
                PatternPart::Counted { name, bound } => {
                    let bound = substitute_all(&Sym::from_expr(bound), derived);
                    counted.push(CountedCapture {
                        capture: name.node.clone(),
                        key: bound.to_string(),
                        bound,
                        count: 0,
                    });
                }
                PatternPart::Capture { name, .. } => free_captures.push(name.node.clone()),
                PatternPart::Literal(_) | PatternPart::Expr(_) => {}
            }
        }
        let shape = def.shape.iter().map(|sym| substitute_all(sym, derived)).collect();
        let form = PatternForm::of(pattern);
        let filter = LiteralFilter::of(pattern);
        CompiledDef { pattern: pattern.clone(), filter, form, probe: None, counted, free_captures, shape }
    }

    /// Chooses each pattern's probe: the byte of its literal suffix that the fewest of
    /// the others' suffixes have at the same distance from the end (in a family of
    /// patterns that differ in their suffix, `q` of `.attention.wq.weight`, not its
    /// shared `.` or `weight`).
    pub fn choose_probes(defs: &mut [CompiledDef]) {
        let mut counts: HashMap<(usize, u8), usize> = HashMap::new();
        for def in defs.iter() {
            for (back, &byte) in def.filter.suffix.as_bytes().iter().rev().enumerate() {
                *counts.entry((back + 1, byte)).or_default() += 1;
            }
        }
        for def in defs.iter_mut() {
            let suffix = def.filter.suffix.as_bytes();
            def.probe = (1..=suffix.len())
                .map(|back| Probe { back, byte: suffix[suffix.len() - back] })
                .min_by_key(|probe| counts[&(probe.back, probe.byte)]);
        }
    }

    /// Whether `name` matches the pattern; on success `bindings` holds the captures as
    /// [`match_into`] gives them.
    pub fn matches<'p, 'n>(&'p self, name: &'n str, bindings: &mut Vec<(&'p str, &'n str)>) -> bool {
        // The probe is a byte of the suffix the filter checks: one comparison first.
        if let Some(Probe { back, byte }) = self.probe {
            if name.len() < back || name.as_bytes()[name.len() - back] != byte {
                return false;
            }
        }
        match self.form {
            PatternForm::Literal => {
                // What the filter (the literal as a prefix) and the matcher check together.
                bindings.clear();
                name == self.filter.prefix
            }
            PatternForm::Index => {
                if !self.filter.admits(name) {
                    return false;
                }
                bindings.clear();
                // The filter checked the literal text around the index.
                let index = &name[self.filter.prefix.len()..name.len() - self.filter.suffix.len()];
                let digits = !index.is_empty() && index.bytes().all(|byte| byte.is_ascii_digit());
                let matched = digits && !(index.len() > 1 && index.starts_with('0'));
                if matched {
                    bindings.push((&self.counted[0].capture, index));
                }
                matched
            }
            PatternForm::General => self.filter.admits(name) && match_into(&self.pattern, name, bindings),
        }
    }
}

/// The byte `back` bytes from the end of every name a pattern matches.
#[derive(Clone, Copy, Debug)]
struct Probe {
    back: usize,
    byte: u8,
}

/// The common forms of tensor patterns, matched without the general matcher once the
/// literal filter admits a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PatternForm {
    /// A lone literal (`norm.weight`).
    Literal,
    /// One counted capture between optional literals (`layers.{i < n}.attention.wq.weight`),
    /// the literal after it not starting with a digit: the index is all that lies between
    /// the literals (the general matcher takes every digit it can).
    Index,
    /// Anything else.
    General,
}

impl PatternForm {
    fn of(pattern: &ast::Pattern) -> PatternForm {
        let starts_with_digit = |text: &str| text.bytes().next().is_some_and(|byte| byte.is_ascii_digit());
        let mut parts = pattern.parts.as_slice();
        if let [PatternPart::Literal(_)] = parts {
            return PatternForm::Literal;
        }
        if let [PatternPart::Literal(_), rest @ ..] = parts {
            parts = rest;
        }
        match parts {
            [PatternPart::Counted { .. }] => PatternForm::Index,
            [PatternPart::Counted { .. }, PatternPart::Literal(after)] if !starts_with_digit(after) => {
                PatternForm::Index
            }
            _ => PatternForm::General,
        }
    }
}

/// The literal text a name must start and end with to match a pattern: a cheap test
/// every name the pattern matches passes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LiteralFilter {
    prefix: String,
    suffix: String,
}

impl LiteralFilter {
    /// The filter of `pattern`.
    pub fn of(pattern: &ast::Pattern) -> LiteralFilter {
        let literal = |part: Option<&PatternPart>| match part {
            Some(PatternPart::Literal(text)) => text.clone(),
            _ => String::new(),
        };
        let prefix = literal(pattern.parts.first());
        // A lone literal is both prefix and suffix; checking it once is enough.
        let suffix = if pattern.parts.len() > 1 { literal(pattern.parts.last()) } else { String::new() };
        LiteralFilter { prefix, suffix }
    }

    /// Whether `name` starts and ends with the pattern's literal text.
    pub fn admits(&self, name: &str) -> bool {
        // The suffix first: the patterns of one family share their prefix (`layers.`)
        // and differ in their suffix, so it turns most names away at once.
        name.len() >= self.prefix.len() + self.suffix.len()
            && name.ends_with(&self.suffix)
            && name.starts_with(&self.prefix)
    }
}

/// A layout tensor assigned to a schema tensor.
pub(super) struct Matched {
    pub tensor_idx: usize,
    pub def_idx: usize,
    /// The text of each of the def's other (not counted) captures.
    pub captures: Captures,
    /// Where the values of the def's counted captures are in [`Assignment::indices`].
    indices: std::ops::Range<usize>,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::mismatch::DtypeMismatch;
    use crate::testutil::{layout, schema};
    use crate::{unify, DType};

    #[test]
    fn unexpected_dtype_and_allowed_tensors() {
        let schema = schema(
            r#"
            schema t @ 1.0.0 {
                dim n
                tensor "a.weight" : float[n]
                tensor "b.index" : int[n]
                allow "extra.{x..}"
            }
        "#,
        );
        let layout = layout("a.weight i64 [4]\nb.index i32 [4]\nextra.a.b f32 []\nstray u8 [1]");
        let mismatch = unify(&schema, &layout, &BTreeMap::new()).unwrap_err();
        assert_eq!(mismatch.unexpected, vec!["stray".to_owned()]);
        assert_eq!(
            mismatch.dtype_mismatches,
            vec![DtypeMismatch { tensor: "a.weight".into(), expected: crate::DTypeClass::Float, found: DType::I64 }]
        );
        assert_eq!((mismatch.fitting, mismatch.allowed), (1, 1));
        assert_eq!(mismatch.score(), 1.0 / 3.0);
    }

    proptest::proptest! {
        /// A pattern matched by its probe and its form, once its filter admits a name,
        /// matches what the general matcher matches, with the same captures.
        #[test]
        fn pattern_forms_match_as_the_general_matcher(
            name in proptest::prop_oneof![
                "[a-z0-9.]{0,12}",
                "(layers\\.|l|l1|a\\.b\\.|)(0|00|7|10|012|99999999999999999999|x|)(\\.attention\\.wq\\.weight|\\.w|0\\.w|\\.norm|)",
            ],
        ) {
            let patterns = [
                "layers.{i < n}.attention.wq.weight",
                "layers.{i < n}",
                "{i < n}.w",
                "{i < n}",
                "l{i < n}0.w",
                "l1{i < n}.w",
                "norm.weight",
                "a.{x}.{i < n}.w",
                "{p..}.norm",
            ];
            let schemas = patterns
                .map(|pattern| schema(&format!("schema t @ 1.0.0 {{\n dim n\n tensor \"{pattern}\" : f32[]\n}}")));
            let mut defs: Vec<CompiledDef> =
                schemas.iter().map(|schema| CompiledDef::new(&schema.tensors[0], &BTreeMap::new())).collect();
            CompiledDef::choose_probes(&mut defs);
            for (def, pattern) in defs.iter().zip(patterns) {
                let (mut by_form, mut general) = (vec![("stale", "x")], Vec::new());
                let matched = def.matches(&name, &mut by_form);
                let expected = def.filter.admits(&name) && match_into(&def.pattern, &name, &mut general);
                proptest::prop_assert_eq!(matched, expected, "{} against {}", name, pattern);
                if matched {
                    proptest::prop_assert_eq!(by_form, general);
                }
            }
        }
    }

    #[test]
    fn the_literal_filter_admits_what_the_pattern_matches() {
        let schema = schema("schema t @ 1.0.0 {\n tensor \"enc.{i}.w\" : f32[]\n tensor \"bias\" : f32[]\n}");
        let filter = LiteralFilter::of(&schema.tensors[0].pattern);
        assert!(filter.admits("enc.0.w") && filter.admits("enc.12.w"));
        assert!(!filter.admits("dec.0.w") && !filter.admits("enc.0.b"));
        // The prefix and the suffix may not overlap: `enc.w` is too short for both.
        assert!(!filter.admits("enc.w"));
        let lone = LiteralFilter::of(&schema.tensors[1].pattern);
        // A lone literal is checked once, as a prefix: a cheap test, not the match.
        assert!(lone.admits("bias") && lone.admits("bias2") && !lone.admits("a.bias"));
    }
}
