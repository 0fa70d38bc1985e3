//! Phase 2, equations: what the checkpoint says about each dim, as equations `sym ==
//! value`, most authoritative first: `given` (the command line), metadata (`meta(...)`
//! dims), counting (`{i < n}`: one past the largest index seen), then every axis of every
//! assigned tensor. Dtypes and ranks are checked on the way: a tensor of the wrong rank
//! gives no equations, only a shape failure.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use super::assign::{CompiledDef, Matched};
use crate::mismatch::{DimConflict, DimSource, DtypeMismatch, Mismatch};
use crate::schema::{pattern_text, substitute_all};
use crate::{resolve_meta_dim, DimKind, Layout, MetaDimError, Schema, Sym};

/// Everything the layout says about the dims.
pub(super) struct Equations<'a> {
    /// In order of authority.
    pub list: Vec<Equation<'a>>,
    /// The counting bounds, by the text of their normal form.
    pub counts: BTreeMap<String, Count>,
    /// `meta(...)` dims whose key or path is absent: reported only if nothing else binds
    /// them.
    pub absent_meta: BTreeMap<String, MetaDimError>,
    /// The dims each tensor (by layout index) fails on so far: wrong rank, sizes beyond
    /// `i64`.
    pub shape_failures: BTreeMap<usize, BTreeSet<String>>,
}

/// The equations of `layout` for `schema`; metadata that cannot be read and dtypes that
/// do not fit go to `mismatch`.
pub(super) fn collect<'a>(
    schema: &Schema,
    layout: &Layout,
    given: &BTreeMap<String, i64>,
    derived: &BTreeMap<String, Sym>,
    defs: &'a [CompiledDef],
    matched: &[Matched],
    mismatch: &mut Mismatch,
) -> Equations<'a> {
    let mut equations: Vec<Equation> = Vec::new();
    for (name, &value) in given {
        if schema.dim(name).is_some() {
            let sym = substitute_all(&Sym::dim(name), derived);
            equations.push(Equation { sym: Cow::Owned(sym), value, origin: Origin::Given(name.clone()) });
        }
    }
    let mut absent_meta: BTreeMap<String, MetaDimError> = BTreeMap::new();
    for dim in &schema.dims {
        if let DimKind::Meta(path) = &dim.kind {
            match resolve_meta_dim(&layout.metadata, path) {
                Ok(value) => equations.push(Equation {
                    sym: Cow::Owned(Sym::dim(&dim.name)),
                    value,
                    origin: Origin::Meta { dim: dim.name.clone(), path: path.clone() },
                }),
                // Absent metadata leaves the dim to the shapes; it is only reported if
                // they do not determine it either.
                Err(error) if error.is_absent() => {
                    absent_meta.insert(dim.name.clone(), error);
                }
                Err(error) => mismatch.conflicting_dims.push(DimConflict::Meta { dim: dim.name.clone(), error }),
            }
        }
    }
    let mut counts: BTreeMap<String, Count> = BTreeMap::new();
    for (def_idx, def) in defs.iter().enumerate() {
        for counted in &def.counted {
            let count = counts.entry(counted.key.clone()).or_insert_with(|| Count {
                bound: counted.bound.clone(),
                seen: None,
                pattern: pattern_text(&def.pattern),
                all_optional: true,
            });
            count.all_optional &= schema.tensors[def_idx].optional;
        }
    }
    for hit in matched {
        for (counted, &index) in defs[hit.def_idx].counted.iter().zip(&hit.indices) {
            let count = counts.get_mut(&counted.key).expect("every counted bound has an entry");
            let next = index.saturating_add(1);
            if count.seen.is_none_or(|seen| next > seen) {
                count.seen = Some(next);
            }
        }
    }
    for (key, count) in &counts {
        if let Some(seen) = count.seen {
            let origin = Origin::Count { key: key.clone(), pattern: count.pattern.clone() };
            equations.push(Equation { sym: Cow::Owned(count.bound.clone()), value: seen, origin });
        }
    }
    let mut shape_failures: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for hit in matched {
        let tensor = &layout.tensors[hit.tensor_idx];
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
                    sym: Cow::Borrowed(sym),
                    value,
                    origin: Origin::Shape { tensor_idx: hit.tensor_idx, def_idx: hit.def_idx, axis },
                }),
                Err(_) => {
                    shape_failures.entry(hit.tensor_idx).or_default().extend(def.shape[axis].dims());
                }
            }
        }
    }
    Equations { list: equations, counts, absent_meta, shape_failures }
}

/// The indices seen for one counting bound.
pub(super) struct Count {
    pub bound: Sym,
    /// One past the largest index seen.
    pub seen: Option<i64>,
    /// The first pattern counting it, to name the source.
    pub pattern: String,
    /// Whether every tensor counting it is optional.
    pub all_optional: bool,
}

/// `sym == value`, and where it comes from.
pub(super) struct Equation<'a> {
    /// Borrowed from the compiled schema for shapes: thousands of tensors share a few.
    pub sym: Cow<'a, Sym>,
    pub value: i64,
    pub origin: Origin,
}

/// Where an equation comes from.
#[derive(Clone, Debug)]
pub(super) enum Origin {
    Given(String),
    Meta { dim: String, path: String },
    Count { key: String, pattern: String },
    Shape { tensor_idx: usize, def_idx: usize, axis: usize },
}

impl Origin {
    /// The source named when this equation binds a dim.
    pub fn source(&self, layout: &Layout) -> DimSource {
        match self {
            Origin::Given(name) => DimSource::Given(name.clone()),
            Origin::Meta { path, .. } => DimSource::Meta(path.clone()),
            Origin::Count { pattern, .. } => DimSource::Count(pattern.clone()),
            Origin::Shape { tensor_idx, axis, .. } => {
                DimSource::Shape { tensor: layout.tensors[*tensor_idx].name.clone(), axis: *axis }
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
