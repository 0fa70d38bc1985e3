//! Phase 5, completeness: every required schema tensor must be present, each counted
//! family for every index below its bound (grouped by its other captures), each family of
//! a shared capture for every value any of them shows; every expected metadata key must
//! be present (with its value, when the schema gives one). Long lists are cut: the rest is
//! counted.

use std::collections::{BTreeMap, BTreeSet};

use super::assign::{Assignment, CompiledDef, Matched};
use crate::mismatch::{MetaMismatch, Mismatch};
use crate::pattern::{fill, Captures};
use crate::schema::pattern_text;
use crate::Schema;

/// How many missing names a [`Mismatch`] lists before only counting them.
pub(super) const MISSING_LIST_LIMIT: usize = 100;

/// Lists the required tensors the layout lacks.
pub(super) fn find_missing(
    schema: &Schema,
    defs: &[CompiledDef],
    assignment: &Assignment,
    dims: &BTreeMap<String, i64>,
    mismatch: &mut Mismatch,
) {
    let by_def = HitsByDef::of(&assignment.matched, defs.len());
    let mut ranges: Vec<i64> = Vec::new();
    let mut present: Vec<&[i64]> = Vec::new();
    for (def_idx, def) in defs.iter().enumerate() {
        if schema.tensors[def_idx].optional {
            continue;
        }
        let hits = by_def.of_def(def_idx);
        ranges.clear();
        let bounded = def.counted.iter().all(|c| match c.bound.eval(&|name| dims.get(name).copied()) {
            Some(n) => {
                ranges.push(n.max(0));
                true
            }
            None => false,
        });
        if !bounded {
            if hits.len() == 0 {
                mismatch.missing.push(pattern_text(&def.pattern));
            }
            continue;
        }
        if def.free_captures.is_empty() {
            // One group, keyed by no capture.
            present.clear();
            present.extend(hits.map(|hit| assignment.indices(hit)));
            list_absent(def, &ranges, &[], &mut present, mismatch);
            continue;
        }
        // Group by the values of the other captures: each group must be complete.
        let mut groups: BTreeMap<Vec<String>, Vec<&[i64]>> = BTreeMap::new();
        for hit in hits {
            let key = def.free_captures.iter().map(|name| hit.captures.get(name).unwrap_or("").to_owned()).collect();
            groups.entry(key).or_default().push(assignment.indices(hit));
        }
        if groups.is_empty() {
            mismatch.missing.push(pattern_text(&def.pattern));
            continue;
        }
        for (key, mut present) in groups {
            list_absent(def, &ranges, &key, &mut present, mismatch);
        }
    }
}

/// The hits of each schema tensor, in layout order (a counting sort of the hits by
/// schema tensor).
struct HitsByDef<'m> {
    matched: &'m [Matched],
    /// Where each schema tensor's hits start in `order`, and where the last ones end.
    starts: Vec<usize>,
    /// Indices into `matched`.
    order: Vec<usize>,
}

impl<'m> HitsByDef<'m> {
    fn of(matched: &'m [Matched], defs: usize) -> HitsByDef<'m> {
        let mut starts = vec![0; defs + 1];
        for hit in matched {
            starts[hit.def_idx + 1] += 1;
        }
        for def_idx in 0..defs {
            starts[def_idx + 1] += starts[def_idx];
        }
        let mut next = starts.clone();
        let mut order = vec![0; matched.len()];
        for (hit_idx, hit) in matched.iter().enumerate() {
            order[next[hit.def_idx]] = hit_idx;
            next[hit.def_idx] += 1;
        }
        HitsByDef { matched, starts, order }
    }

    fn of_def(&self, def_idx: usize) -> impl ExactSizeIterator<Item = &'m Matched> + '_ {
        self.order[self.starts[def_idx]..self.starts[def_idx + 1]].iter().map(|&hit_idx| &self.matched[hit_idx])
    }
}

/// Lists the names of one group of a counted family (the hits whose other captures are
/// `key`, with the counted `present` indices) that lack below `ranges`.
fn list_absent(def: &CompiledDef, ranges: &[i64], key: &[String], present: &mut Vec<&[i64]>, mismatch: &mut Mismatch) {
    // The indices present, sorted and distinct (sorting costs less than hashing the few
    // hits of a family); they often come so, in layout order.
    if !present.is_sorted_by(|a, b| a < b) {
        present.sort_unstable();
        present.dedup();
    }
    let expected = ranges.iter().try_fold(1u64, |acc, &n| acc.checked_mul(n as u64)).unwrap_or(u64::MAX);
    let in_range = present.iter().filter(|indices| indices.iter().zip(ranges).all(|(i, n)| i < n)).count();
    let absent = expected.saturating_sub(in_range as u64);
    if absent == 0 {
        return;
    }
    let mut captures = Captures::default();
    for (name, value) in def.free_captures.iter().zip(key) {
        captures.0.insert(name.clone(), value.clone());
    }
    let mut listed = 0u64;
    let mut indices = vec![0i64; ranges.len()];
    // Walk the index product in order; each step is either present or listed, so this
    // stops after at most `present + limit` steps even for a huge family.
    'walk: while mismatch.missing.len() < MISSING_LIST_LIMIT && listed < absent {
        if present.binary_search(&indices.as_slice()).is_err() {
            for (counted, index) in def.counted.iter().zip(&indices) {
                captures.0.insert(counted.capture.clone(), index.to_string());
            }
            if let Ok(name) = fill(&def.pattern, &captures, &|_| None) {
                mismatch.missing.push(name);
            }
            listed += 1;
        }
        for axis in (0..indices.len()).rev() {
            indices[axis] += 1;
            if indices[axis] < ranges[axis] {
                continue 'walk;
            }
            indices[axis] = 0;
        }
        break;
    }
    mismatch.missing_unlisted = mismatch.missing_unlisted.saturating_add(absent - listed);
}

/// A capture name shared by several tensor patterns ranges over one set of names (the
/// datasets of `"pre_processors.{dataset}.…"` and `"encoder.{dataset}.…"`): every required
/// pattern whose only capture it is must be present for every value any pattern shows.
/// Lists the names that lack.
pub(super) fn find_missing_per_capture(
    schema: &Schema,
    defs: &[CompiledDef],
    matched: &[Matched],
    mismatch: &mut Mismatch,
) {
    let mut users: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (def_idx, def) in defs.iter().enumerate() {
        for capture in &def.free_captures {
            users.entry(capture.as_str()).or_default().push(def_idx);
        }
    }
    for (capture, def_indices) in users {
        if def_indices.len() < 2 {
            continue;
        }
        let mut seen: BTreeMap<usize, BTreeSet<&str>> = BTreeMap::new();
        for hit in matched.iter().filter(|hit| def_indices.contains(&hit.def_idx)) {
            if let Some(value) = hit.captures.get(capture) {
                seen.entry(hit.def_idx).or_default().insert(value);
            }
        }
        let all: BTreeSet<&str> = seen.values().flatten().copied().collect();
        for &def_idx in &def_indices {
            let def = &defs[def_idx];
            let only_this = def.free_captures.iter().all(|name| name == capture) && def.counted.is_empty();
            let has_hits = seen.contains_key(&def_idx);
            // A family with no tensor at all is already reported by `find_missing`.
            if schema.tensors[def_idx].optional || !only_this || !has_hits {
                continue;
            }
            for value in all.difference(&seen[&def_idx]) {
                if mismatch.missing.len() >= MISSING_LIST_LIMIT {
                    mismatch.missing_unlisted = mismatch.missing_unlisted.saturating_add(1);
                    continue;
                }
                let captures = Captures(BTreeMap::from([(capture.to_owned(), (*value).to_owned())]));
                if let Ok(name) = fill(&def.pattern, &captures, &|_| None) {
                    mismatch.missing.push(name);
                }
            }
        }
    }
}

/// Checks the metadata keys the schema expects.
pub(super) fn check_meta(schema: &Schema, metadata: &BTreeMap<String, String>, mismatch: &mut Mismatch) {
    for meta in &schema.meta {
        let found = metadata.get(&meta.key);
        let fits = match (found, &meta.value) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(text), Some(expected)) => {
                let value = serde_json::from_str::<serde_json::Value>(text)
                    .unwrap_or_else(|_| serde_json::Value::String(text.clone()));
                value == *expected || serde_json::Value::String(text.clone()) == *expected
            }
        };
        if !fits {
            mismatch.meta_mismatches.push(MetaMismatch {
                key: meta.key.clone(),
                expected: meta.value.clone(),
                found: found.cloned(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::fixtures::*;
    use super::*;
    use crate::testutil::{layout, schema};
    use crate::unify;

    #[test]
    fn a_missing_block_is_named() {
        let schema = schema(ANEMOI);
        let mut layout = anemoi_layout(2, 3, 24, Some(4));
        let gone = format!("{PROC}.1.blocks.2.mlp.0.weight");
        layout.tensors.retain(|t| t.name != gone);
        let mismatch = unify(&schema, &layout, &BTreeMap::new()).unwrap_err();
        assert_eq!(mismatch.missing, vec![gone]);
        assert!(mismatch.unexpected.is_empty() && mismatch.shape_mismatches.is_empty());
        // The optional bias of the same block may be there or not: it is not missing.
        assert!(mismatch.score() > 0.9 && mismatch.score() < 1.0, "{}", mismatch.score());
    }

    #[test]
    fn a_gap_in_the_indices_lists_the_whole_chunk() {
        let schema = schema(ANEMOI);
        let mut layout = anemoi_layout(3, 1, 8, Some(2));
        layout.tensors.retain(|t| !t.name.starts_with(&format!("{PROC}.1.")));
        let mismatch = unify(&schema, &layout, &BTreeMap::new()).unwrap_err();
        assert_eq!(
            mismatch.missing,
            vec![format!("{PROC}.1.blocks.0.attention.lin_qkv.weight"), format!("{PROC}.1.blocks.0.mlp.0.weight")]
        );
        assert_eq!(mismatch.dims["chunks"], 3);
    }

    #[test]
    fn grouped_families_are_complete_per_prefix() {
        let schema = schema(
            r#"
            schema t @ 1.0.0 {
                dim n
                tensor "{side}.blocks.{i < n}.w" : f32[]
            }
        "#,
        );
        let layout = layout("enc.blocks.0.w f32 []\nenc.blocks.1.w f32 []\ndec.blocks.0.w f32 []");
        let mismatch = unify(&schema, &layout, &BTreeMap::new()).unwrap_err();
        assert_eq!(mismatch.missing, vec!["dec.blocks.1.w".to_owned()]);
    }

    #[test]
    fn a_shared_capture_ranges_over_one_set_of_names() {
        let schema = schema(
            r#"
            schema t @ 1.0.0 {
                dim n
                tensor "pre.{dataset}.w" : f32[n]
                tensor "enc.{dataset}.w" : f32[n]
                tensor "graph.{dataset}.t" : f32[n] optional
            }
        "#,
        );
        let two = layout("pre.a.w f32 [2]\npre.b.w f32 [2]\nenc.a.w f32 [2]\nenc.b.w f32 [2]\ngraph.a.t f32 [2]");
        assert!(unify(&schema, &two, &BTreeMap::new()).is_ok(), "an optional family may lack a dataset");
        // An encoder named `0` is not one of the datasets: `enc.a.w` is missing.
        let renamed = layout("pre.a.w f32 [2]\nenc.0.w f32 [2]");
        let mismatch = unify(&schema, &renamed, &BTreeMap::new()).unwrap_err();
        assert_eq!(mismatch.missing, ["pre.0.w", "enc.a.w"]);
    }

    #[test]
    fn huge_indices_are_counted_not_listed() {
        let schema = schema(
            r#"
            schema t @ 1.0.0 {
                dim n
                tensor "l.{i < n}.w" : f32[]
            }
        "#,
        );
        let layout = layout("l.0.w f32 []\nl.999999999999.w f32 []");
        let mismatch = unify(&schema, &layout, &BTreeMap::new()).unwrap_err();
        assert_eq!(mismatch.missing.len(), MISSING_LIST_LIMIT);
        assert_eq!(mismatch.missing[0], "l.1.w");
        assert_eq!(mismatch.missing.len() as u64 + mismatch.missing_unlisted, 999_999_999_998);
        assert!(mismatch.to_string().contains("- … and 999999999988 more missing"));
        // An index beyond i64 does not match as a count: the tensor is unexpected.
        let layout = crate::testutil::layout("l.0.w f32 []\nl.99999999999999999999.w f32 []");
        let mismatch = unify(&schema, &layout, &BTreeMap::new()).unwrap_err();
        assert_eq!(mismatch.unexpected, vec!["l.99999999999999999999.w".to_owned()]);
    }

    #[test]
    fn metadata_expectations() {
        let schema =
            schema("schema t @ 1.0.0 {\n meta \"format\" = \"pt\"\n meta \"version\" = 2\n meta \"origin\"\n}");
        let mut layout = layout("");
        layout.metadata.insert("format".into(), "pt".into());
        layout.metadata.insert("version".into(), "3".into());
        let mismatch = unify(&schema, &layout, &BTreeMap::new()).unwrap_err();
        let keys: Vec<&str> = mismatch.meta_mismatches.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(keys, vec!["version", "origin"]);
        layout.metadata.insert("version".into(), "2".into());
        layout.metadata.insert("origin".into(), "anything".into());
        assert!(unify(&schema, &layout, &BTreeMap::new()).is_ok());
    }
}
