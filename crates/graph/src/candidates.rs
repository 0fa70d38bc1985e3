//! Candidate schemas for detection: an index over the registry, so that a layout is
//! unified only with the schemas it could fit, not with every schema of a large registry.
//!
//! The index is built once per registry ([`Registry::candidate_index`]) from the literal
//! parts of every schema's name patterns. A schema is a candidate for a layout only if
//! conditions that unification itself would check hold, cheaply:
//!
//! 1. every *required name* (a non-optional tensor whose pattern is plain text) is in the
//!    layout: unification reports it missing otherwise. Schemas are indexed by their
//!    rarest required name (the *anchor*), so a layout reaches the schemas whose anchor
//!    it holds by hash lookups alone;
//! 2. the layout holds no more tensors than a schema of plain-text patterns only (and no
//!    `allow`) can name;
//! 3. every non-optional pattern without a counted index (`{i < n}`) admits some layout
//!    name: unification reports it missing otherwise (a counted pattern may be absent
//!    when its count is 0);
//! 4. every layout name is admitted by some tensor or `allow` pattern of the schema:
//!    unification reports it unexpected otherwise.
//!
//! "Admits" compares a name with a pattern's literal prefix and suffix (precomputed
//! here), which every name the pattern matches has; so each condition is necessary for
//! unification to succeed, and the index never drops a schema the layout fits (a
//! property test compares it with the full scan). Schemas with no required name are
//! checked on every detection by conditions 2–4.

use std::collections::{HashMap, HashSet};

use safeshift_dsl::ast::{Pattern, PatternPart};
use safeshift_model::{Layout, LiteralFilter, Schema};

use crate::{Registry, VersionId};

/// The candidate index of a registry. See the [module docs](self).
#[derive(Debug, Default)]
pub(crate) struct CandidateIndex {
    entries: Vec<Entry>,
    /// Entries by their anchor (one of their required names).
    by_anchor: HashMap<String, Vec<usize>>,
    /// Entries with no required name: checked every time.
    floating: Vec<usize>,
}

/// One schema, prepared.
#[derive(Debug)]
struct Entry {
    version: VersionId,
    /// Names of non-optional tensors whose pattern is plain text.
    required_names: Vec<String>,
    /// Filters of the other non-optional patterns without a counted index.
    required_patterns: Vec<LiteralFilter>,
    /// Filters of every tensor and `allow` pattern.
    any_pattern: Vec<LiteralFilter>,
    /// How many tensors the schema can name at most, when it has only plain-text patterns.
    max_tensors: Option<usize>,
}

/// The text of a pattern made of literal text only (`None` when it has captures).
fn plain_text(pattern: &Pattern) -> Option<String> {
    match pattern.parts.as_slice() {
        [] => Some(String::new()),
        [PatternPart::Literal(text)] => Some(text.clone()),
        _ => None,
    }
}

fn has_counted(pattern: &Pattern) -> bool {
    pattern.parts.iter().any(|part| matches!(part, PatternPart::Counted { .. }))
}

impl CandidateIndex {
    /// The index of every usable schema of `registry` (derived ones included), in the
    /// order of [`VersionGraph::versions`](crate::VersionGraph::versions).
    pub(crate) fn build(registry: &Registry) -> CandidateIndex {
        let schemas: Vec<(&VersionId, &Schema)> = registry
            .graph()
            .versions()
            .filter_map(|version| registry.schema_of(version).map(|schema| (version, schema)))
            .collect();
        CandidateIndex::of(&schemas)
    }

    fn of(schemas: &[(&VersionId, &Schema)]) -> CandidateIndex {
        let mut index = CandidateIndex::default();
        for (version, schema) in schemas {
            let mut entry = Entry {
                version: (*version).clone(),
                required_names: Vec::new(),
                required_patterns: Vec::new(),
                any_pattern: Vec::new(),
                max_tensors: Some(0),
            };
            for tensor in &schema.tensors {
                let filter = LiteralFilter::of(&tensor.pattern);
                let plain = plain_text(&tensor.pattern);
                if !tensor.optional {
                    match &plain {
                        Some(name) => entry.required_names.push(name.clone()),
                        None if !has_counted(&tensor.pattern) => entry.required_patterns.push(filter.clone()),
                        None => {}
                    }
                }
                // A plain-text pattern names one tensor; anything else, any number.
                entry.max_tensors = entry.max_tensors.zip(plain.as_ref()).map(|(count, _)| count + 1);
                entry.any_pattern.push(filter);
            }
            if !schema.allows.is_empty() {
                entry.max_tensors = None;
            }
            entry.any_pattern.extend(schema.allows.iter().map(LiteralFilter::of));
            // Patterns sharing a prefix and suffix are one check.
            let mut seen = HashSet::new();
            entry.any_pattern.retain(|filter| seen.insert(filter.clone()));
            let mut seen = HashSet::new();
            entry.required_patterns.retain(|filter| seen.insert(filter.clone()));
            index.entries.push(entry);
        }
        // Anchor each schema at its rarest required name: the fewer schemas share an
        // anchor, the fewer a layout holding it reaches.
        let mut frequency: HashMap<&str, usize> = HashMap::new();
        for entry in &index.entries {
            let distinct: HashSet<&str> = entry.required_names.iter().map(String::as_str).collect();
            for name in distinct {
                *frequency.entry(name).or_default() += 1;
            }
        }
        let mut by_anchor: HashMap<String, Vec<usize>> = HashMap::new();
        for (entry_idx, entry) in index.entries.iter().enumerate() {
            let anchor = entry.required_names.iter().min_by_key(|name| (frequency[name.as_str()], name.as_str()));
            match anchor {
                Some(anchor) => by_anchor.entry(anchor.clone()).or_default().push(entry_idx),
                None => index.floating.push(entry_idx),
            }
        }
        index.by_anchor = by_anchor;
        index
    }

    /// The versions whose schemas `layout` might fit, in registry order: every version
    /// whose schema unifies with `layout` is among them.
    pub(crate) fn candidates(&self, layout: &Layout) -> Vec<&VersionId> {
        let names: HashSet<&str> = layout.tensors.iter().map(|tensor| tensor.name.as_str()).collect();
        let mut reached: Vec<usize> = self.floating.clone();
        // Look up whichever side is smaller: the layout's names or the anchors.
        if names.len() <= self.by_anchor.len() {
            for name in &names {
                if let Some(entries) = self.by_anchor.get(*name) {
                    reached.extend(entries);
                }
            }
        } else {
            for (anchor, entries) in &self.by_anchor {
                if names.contains(anchor.as_str()) {
                    reached.extend(entries);
                }
            }
        }
        reached.sort_unstable();
        reached.dedup();
        reached
            .into_iter()
            .map(|entry_idx| &self.entries[entry_idx])
            .filter(|entry| entry.admits(layout, &names))
            .map(|entry| &entry.version)
            .collect()
    }
}

impl Entry {
    /// Conditions 1–4 of the module docs.
    fn admits(&self, layout: &Layout, names: &HashSet<&str>) -> bool {
        if self.max_tensors.is_some_and(|max| layout.tensors.len() > max) {
            return false;
        }
        if !self.required_names.iter().all(|name| names.contains(name.as_str())) {
            return false;
        }
        let admitted = |filter: &LiteralFilter| layout.tensors.iter().any(|tensor| filter.admits(&tensor.name));
        if !self.required_patterns.iter().all(admitted) {
            return false;
        }
        layout.tensors.iter().all(|tensor| self.any_pattern.iter().any(|filter| filter.admits(&tensor.name)))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use safeshift_model::{unify, DType, TensorInfo};

    use super::*;
    use crate::testutil::registry;

    fn layout(names: &[&str]) -> Layout {
        Layout {
            tensors: names
                .iter()
                .map(|name| TensorInfo { name: (*name).to_owned(), dtype: DType::F32, shape: vec![3] })
                .collect(),
            metadata: BTreeMap::new(),
        }
    }

    const TEXT: &str = r#"
schema llama.meta @ 1.0.0 {
    dim n
    dim layers
    tensor "tok_embeddings.weight" : f32[n]
    tensor "layers.{i < layers}.attention.wq.weight" : f32[n]
}
schema llama.hf @ 1.0.0 {
    dim n
    dim layers
    tensor "model.embed_tokens.weight" : f32[n]
    tensor "model.layers.{i < layers}.self_attn.q_proj.weight" : f32[n]
}
schema loose @ 1.0.0 {
    dim n
    tensor "{p..}.weight" : f32[n]
}
"#;

    fn candidates(names: &[&str]) -> Vec<String> {
        let (registry, diagnostics) = registry(vec![TEXT.to_owned()]);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        registry.candidate_index().candidates(&layout(names)).into_iter().map(ToString::to_string).collect()
    }

    #[test]
    fn anchored_schemas_are_reached_through_their_required_names() {
        let meta = ["tok_embeddings.weight", "layers.0.attention.wq.weight"];
        assert_eq!(candidates(&meta), ["llama.meta@1.0.0", "loose@1.0.0"]);
        let hf = ["model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight"];
        assert_eq!(candidates(&hf), ["llama.hf@1.0.0", "loose@1.0.0"]);
        // The floating schema is checked too: a name it does not admit rules it out.
        assert_eq!(candidates(&["tok_embeddings.weight", "rope.freqs"]), Vec::<String>::new());
        assert_eq!(candidates(&["x.weight"]), ["loose@1.0.0"]);
    }

    /// A random pattern of a small alphabet, so that names and patterns of different
    /// schemas overlap often. `slot` makes each tensor pattern of a schema start with its
    /// own literal, so that patterns within a schema never overlap (which the registry
    /// would refuse).
    fn pattern_text(slot: usize, pieces: &[u8]) -> String {
        let mut text = format!("t{slot}");
        for piece in pieces {
            text.push_str(match piece % 7 {
                0 => ".a",
                1 => ".b",
                2 => ".{x}",
                3 => ".{p..}",
                4 => ".{i < m}",
                5 => "_c",
                _ => ".weight",
            });
        }
        text
    }

    /// A name the pattern text matches (captures and indices filled in).
    fn instance(pattern: &str) -> String {
        pattern.replace("{x}", "a").replace("{p..}", "b.a").replace("{i < m}", "0")
    }

    type SchemaSpec = (Vec<(Vec<u8>, bool)>, Option<Vec<u8>>);

    /// The text of schema `f{family}@1.0.{patch}`: its tensors (pattern pieces, optional)
    /// and an optional `allow` pattern.
    fn schema_text(family: usize, patch: usize, (tensors, allow): &SchemaSpec) -> String {
        let mut text = format!("schema f{family} @ 1.0.{patch} {{\n    dim n\n");
        let patterns: Vec<String> =
            tensors.iter().enumerate().map(|(slot, (pieces, _))| pattern_text(slot, pieces)).collect();
        if patterns.iter().any(|pattern| pattern.contains("{i < m}")) {
            text.push_str("    dim m\n");
        }
        for (pattern, (_, optional)) in patterns.iter().zip(tensors) {
            let optional = if *optional { " optional" } else { "" };
            text.push_str(&format!("    tensor \"{pattern}\" : f32[n]{optional}\n"));
        }
        if let Some(pieces) = allow {
            text.push_str(&format!("    allow \"{}\"\n", pattern_text(3, pieces)));
        }
        text.push_str("}\n");
        text
    }

    fn arb_schema() -> impl Strategy<Value = SchemaSpec> {
        let tensor = (prop::collection::vec(any::<u8>(), 0..4), prop::bool::weighted(0.3));
        (prop::collection::vec(tensor, 1..5), prop::option::weighted(0.3, prop::collection::vec(any::<u8>(), 0..3)))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(256)
        ))]

        /// The index never drops a schema the layout fits: every version the full scan
        /// unifies is a candidate.
        #[test]
        fn the_index_keeps_every_fit(
            schemas in prop::collection::vec(arb_schema(), 1..8),
            base in any::<prop::sample::Index>(),
            keep_optional in prop::collection::vec(any::<bool>(), 5),
            extras in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 0..3),
            noise in prop::option::weighted(0.2, (0usize..5, prop::collection::vec(any::<u8>(), 0..3))),
        ) {
            // Families of up to three versions: schema k is `f{k/3}@1.0.{k%3}`.
            let texts: Vec<String> =
                schemas.iter().enumerate().map(|(k, spec)| schema_text(k / 3, k % 3, spec)).collect();
            let (registry, _) = registry(texts);
            // A layout made to fit one schema (so fits are common), sometimes with
            // instances of other schemas' patterns or a name nobody declared.
            let (tensors, _) = &schemas[base.index(schemas.len())];
            let mut names: Vec<String> = tensors
                .iter()
                .enumerate()
                .filter(|(slot, (_, optional))| !optional || keep_optional[*slot])
                .map(|(slot, (pieces, _))| instance(&pattern_text(slot, pieces)))
                .collect();
            for (schema, tensor) in &extras {
                let (tensors, _) = &schemas[schema.index(schemas.len())];
                let slot = tensor.index(tensors.len());
                names.push(instance(&pattern_text(slot, &tensors[slot].0)));
            }
            if let Some((slot, pieces)) = &noise {
                names.push(instance(&pattern_text(*slot, pieces)));
            }
            names.sort();
            names.dedup();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let layout = layout(&names);
            let candidates = registry.candidate_index().candidates(&layout);
            for version in registry.graph().versions() {
                let Some(schema) = registry.schema_of(version) else { continue };
                if unify(schema, &layout, &BTreeMap::new()).is_ok() {
                    prop_assert!(candidates.contains(&version), "{version} fits {names:?} but is no candidate");
                }
            }
        }
    }

    /// The property above is not vacuous: its generator makes layouts that fit.
    #[test]
    fn generated_layouts_fit_their_schema() {
        let spec: SchemaSpec = (vec![(vec![2, 6], false), (vec![4, 0], false), (vec![3], true)], Some(vec![1]));
        let (registry, diagnostics) = registry(vec![schema_text(0, 0, &spec)]);
        assert!(!diagnostics.iter().any(safeshift_dsl::Diagnostic::is_error), "{diagnostics:?}");
        let names = ["t0.a.weight", "t1.0.a", "t3.b"];
        let fits = |names: &[&str]| {
            let version = registry.graph().versions().next().unwrap();
            unify(registry.schema_of(version).unwrap(), &layout(names), &BTreeMap::new()).is_ok()
        };
        assert_eq!(instance(&pattern_text(0, &[2, 6])), names[0]);
        assert!(fits(&names));
        assert_eq!(registry.candidate_index().candidates(&layout(&names)).len(), 1);
        assert!(!fits(&names[..1]));
    }
}
