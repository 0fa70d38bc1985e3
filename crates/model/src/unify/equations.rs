//! Phase 2, equations: what the checkpoint says about each dim, as equations `sym ==
//! value`, most authoritative first: `given` (the command line), metadata (`meta(...)`
//! dims), counting (`{i < n}`: one past the largest index seen), then every axis of every
//! assigned tensor. Dtypes and ranks are checked on the way: a tensor of the wrong rank
//! gives no equations, only a shape failure.

use std::collections::{BTreeMap, BTreeSet};

use super::assign::{Assignment, CompiledDef};
use super::PreparedSchema;
use crate::mismatch::{DimConflict, DimSource, DtypeMismatch, Mismatch};
use crate::schema::pattern_text;
use crate::{resolve_meta_dim, DimKind, MetaDimError, Schema, Sym, TensorInfo};

/// Everything the layout says about the dims.
pub(super) struct Equations<'a> {
    /// In order of authority.
    pub list: Vec<Equation<'a>>,
    /// For each counting bound (as [`PreparedSchema`] lists them), one past the largest
    /// index seen.
    pub seen: Vec<Option<i64>>,
    /// `meta(...)` dims whose key or path is absent: reported only if nothing else binds
    /// them.
    pub absent_meta: BTreeMap<String, MetaDimError>,
    /// The dims each tensor (by layout index) fails on so far: wrong rank, sizes beyond
    /// `i64`.
    pub shape_failures: BTreeMap<usize, BTreeSet<String>>,
}

/// The equations of the layout (`tensors` and `metadata`) for `schema`; metadata that
/// cannot be read and dtypes that do not fit go to `mismatch`.
pub(super) fn collect<'a>(
    schema: &'a Schema,
    tensors: &[&TensorInfo],
    metadata: &BTreeMap<String, String>,
    given: &'a BTreeMap<String, i64>,
    prepared: &'a PreparedSchema,
    assignment: &Assignment,
    mismatch: &mut Mismatch,
) -> Equations<'a> {
    let PreparedSchema { defs, counts, dim_syms, .. } = prepared;
    let matched = &assignment.matched;
    let axes: usize = matched.iter().map(|hit| defs[hit.def_idx].shape.len()).sum();
    let mut equations: Vec<Equation> =
        Vec::with_capacity(given.len().min(schema.dims.len()) + schema.dims.len() + counts.len() + axes);
    for (name, &value) in given {
        if let Some(dim_idx) = schema.dims.iter().position(|dim| dim.name == *name) {
            equations.push(Equation { sym: &dim_syms[dim_idx], value, origin: Origin::Given(name) });
        }
    }
    let mut absent_meta: BTreeMap<String, MetaDimError> = BTreeMap::new();
    for (dim, sym) in schema.dims.iter().zip(dim_syms) {
        if let DimKind::Meta(path) = &dim.kind {
            match resolve_meta_dim(metadata, path) {
                Ok(value) => equations.push(Equation { sym, value, origin: Origin::Meta { dim: &dim.name, path } }),
                // Absent metadata leaves the dim to the shapes; it is only reported if
                // they do not determine it either.
                Err(error) if error.is_absent() => {
                    absent_meta.insert(dim.name.clone(), error);
                }
                Err(error) => mismatch.conflicting_dims.push(DimConflict::Meta { dim: dim.name.clone(), error }),
            }
        }
    }
    let mut seen: Vec<Option<i64>> = vec![None; counts.len()];
    for hit in matched {
        for (counted, &index) in defs[hit.def_idx].counted.iter().zip(assignment.indices(hit)) {
            let next = index.saturating_add(1);
            let seen = &mut seen[counted.count];
            if seen.is_none_or(|seen| next > seen) {
                *seen = Some(next);
            }
        }
    }
    for (count, seen) in counts.iter().zip(&seen) {
        if let Some(seen) = *seen {
            equations.push(Equation { sym: &count.bound, value: seen, origin: Origin::Count(count) });
        }
    }
    let mut shape_failures: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for hit in matched {
        let tensor = tensors[hit.tensor_idx];
        let def = &schema.tensors[hit.def_idx];
        if !def.dtype.accepts(tensor.dtype) {
            mismatch.dtype_mismatches.push(DtypeMismatch {
                tensor: tensor.name.clone(),
                expected: def.dtype,
                found: tensor.dtype,
            });
        }
        if def.shape.len() != tensor.shape.len() {
            shape_failures.entry(hit.tensor_idx).or_default().extend(def.shape.iter().flat_map(Sym::dims));
            continue;
        }
        for (axis, (sym, &size)) in defs[hit.def_idx].shape.iter().zip(&tensor.shape).enumerate() {
            match i64::try_from(size) {
                Ok(value) => equations.push(Equation {
                    sym,
                    value,
                    origin: Origin::Shape { tensor_idx: hit.tensor_idx, def_idx: hit.def_idx, axis },
                }),
                Err(_) => {
                    shape_failures.entry(hit.tensor_idx).or_default().extend(def.shape[axis].dims());
                }
            }
        }
    }
    Equations { list: equations, seen, absent_meta, shape_failures }
}

/// A counting bound (`{i < n}`) of a schema, shared by every pattern with the same bound.
#[derive(Clone, Debug)]
pub(super) struct CountDef {
    /// The bound's normal form as text.
    pub key: String,
    pub bound: Sym,
    /// The first pattern counting it, to name the source.
    pub pattern: String,
    /// The dim counted as 0 when no tensor counting it is present: the bound when it is a
    /// dim alone and every tensor counting it is optional.
    pub absent_zero: Option<String>,
}

impl CountDef {
    /// The counting bounds of `defs` (the compiled tensors of `schema`) in the order of
    /// their text, each counted capture of `defs` set to the index of its own.
    pub fn gather(schema: &Schema, defs: &mut [CompiledDef]) -> Vec<CountDef> {
        // (def, optional) per key; every tensor counting a bound must be optional for
        // an absent family to count 0.
        let mut by_key: BTreeMap<String, (CountDef, bool)> = BTreeMap::new();
        for (def, tensor) in defs.iter().zip(&schema.tensors) {
            for counted in &def.counted {
                let (_, all_optional) = by_key.entry(counted.key.clone()).or_insert_with(|| {
                    let count = CountDef {
                        key: counted.key.clone(),
                        bound: counted.bound.clone(),
                        pattern: pattern_text(&def.pattern),
                        absent_zero: None,
                    };
                    (count, true)
                });
                *all_optional &= tensor.optional;
            }
        }
        let index: BTreeMap<&str, usize> = by_key.keys().enumerate().map(|(idx, key)| (key.as_str(), idx)).collect();
        for def in defs.iter_mut() {
            for counted in &mut def.counted {
                counted.count = index[counted.key.as_str()];
            }
        }
        by_key
            .into_values()
            .map(|(mut count, all_optional)| {
                if let (true, [dim]) = (all_optional, count.bound.dims().as_slice()) {
                    if count.bound == Sym::dim(dim) {
                        count.absent_zero = Some(dim.clone());
                    }
                }
                count
            })
            .collect()
    }
}

/// `sym == value`, and where it comes from.
pub(super) struct Equation<'a> {
    /// Borrowed from the prepared schema: thousands of tensors share a few shapes.
    pub sym: &'a Sym,
    pub value: i64,
    pub origin: Origin<'a>,
}

/// Where an equation comes from.
#[derive(Clone, Debug)]
pub(super) enum Origin<'a> {
    /// The given dim of this name.
    Given(&'a str),
    Meta {
        dim: &'a str,
        path: &'a str,
    },
    Count(&'a CountDef),
    Shape {
        tensor_idx: usize,
        def_idx: usize,
        axis: usize,
    },
}

impl Origin<'_> {
    /// The source named when this equation binds a dim.
    pub fn source(&self, tensors: &[&TensorInfo]) -> DimSource {
        match self {
            Origin::Given(name) => DimSource::Given((*name).to_owned()),
            Origin::Meta { path, .. } => DimSource::Meta((*path).to_owned()),
            Origin::Count(count) => DimSource::Count(count.pattern.clone()),
            Origin::Shape { tensor_idx, axis, .. } => {
                DimSource::Shape { tensor: tensors[*tensor_idx].name.clone(), axis: *axis }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::fixtures::*;
    use crate::mismatch::{DimConflict, DimSource};
    use crate::testutil::{dims, layout, schema};
    use crate::{unify, DType, MetaDimError, TensorInfo};

    #[test]
    fn given_and_metadata_must_agree() {
        let schema = schema(ANEMOI);
        let mismatch = unify(&schema, &anemoi_layout(1, 1, 8, Some(2)), &dims(&[("heads", 4)])).unwrap_err();
        assert_eq!(
            mismatch.conflicting_dims,
            vec![DimConflict::Disagree {
                dim: "heads".into(),
                value: 2,
                source: DimSource::Meta("config.model.processor.num_heads".into()),
                other_value: 4,
                other_source: DimSource::Given("heads".into()),
            }]
        );
    }

    #[test]
    fn given_count_must_agree_with_counting() {
        let schema = schema(ANEMOI);
        let mismatch = unify(&schema, &anemoi_layout(2, 1, 8, Some(2)), &dims(&[("chunks", 3)])).unwrap_err();
        // Chunk 2 is missing, and counting says 2.
        assert!(mismatch.missing.iter().any(|name| name.starts_with(&format!("{PROC}.2."))));
        assert!(matches!(
            &mismatch.conflicting_dims[..],
            [DimConflict::Disagree { dim, value: 2, other_value: 3, .. }] if dim == "chunks"
        ));
    }

    #[test]
    fn malformed_or_absent_metadata() {
        let schema = schema(ANEMOI);
        let mut layout = anemoi_layout(1, 1, 8, None);
        layout.metadata.insert("config".into(), r#"{"model": {"processor": {"num_heads": "many"}}}"#.into());
        let mismatch = unify(&schema, &layout, &BTreeMap::new()).unwrap_err();
        assert!(
            matches!(&mismatch.conflicting_dims[..], [DimConflict::Meta { dim, error: MetaDimError::NotInteger { .. } }] if dim == "heads")
        );
        // Absent metadata: heads is only needed by head_dim, which no present tensor uses.
        let found = unify(&schema, &anemoi_layout(1, 1, 8, None), &BTreeMap::new()).unwrap();
        assert!(!found.dims.contains_key("heads") && !found.dims.contains_key("head_dim"));
        // ... unless a q_norm is present, which then determines heads.
        let mut layout = anemoi_layout(1, 1, 8, None);
        layout.tensors.push(TensorInfo {
            name: format!("{PROC}.0.blocks.0.attention.q_norm.weight"),
            dtype: DType::F32,
            shape: vec![2],
        });
        let found = unify(&schema, &layout, &BTreeMap::new()).unwrap();
        assert_eq!((found.dims["heads"], found.dims["head_dim"]), (4, 2));
    }

    #[test]
    fn rank_and_huge_sizes_are_shape_mismatches() {
        let schema = schema(
            "schema t @ 1.0.0 {\n dim a\n dim b\n tensor \"x\" : f32[a, b]\n tensor \"y\" : f32[a * b * a * b]\n}",
        );
        let layout = layout(&format!("x f32 [4]\ny f32 [{}]", u64::MAX));
        let mismatch = unify(&schema, &layout, &BTreeMap::new()).unwrap_err();
        let names: Vec<&str> = mismatch.shape_mismatches.iter().map(|m| m.tensor.as_str()).collect();
        assert_eq!(names, vec!["x", "y"]);
        assert_eq!(mismatch.shape_mismatches[0].failed_dims, vec!["a".to_owned(), "b".to_owned()]);
    }
}
