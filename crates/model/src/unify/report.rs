//! Phase 4, the report: every equation must hold once the dims are bound. An equation
//! that fails names its dim and both sources (given, metadata, counting) or, for a shape,
//! the tensor and the dims its axis uses; a dim nothing determines is unresolved (or, for
//! a `meta(...)` dim, its absent key is the reason).

use std::collections::{BTreeMap, BTreeSet};

use super::equations::{Equation, Equations, Origin};
use super::solve::{Groups, Solver};
use super::Assigned;
use crate::mismatch::{DimConflict, DimSource, Mismatch, ShapeMismatch};
use crate::sym::Solution;
use crate::{Schema, TensorInfo};

/// Checks every equation group against the bound dims, then turns the shape failures of
/// tensors assigned to schema tensors into shape mismatches.
pub(super) fn check_equations(
    schema: &Schema,
    tensors: &[&TensorInfo],
    assignment: &[Option<Assigned>],
    equations: Equations<'_>,
    groups: &Groups,
    solver: &Solver,
    mismatch: &mut Mismatch,
) {
    let Equations { list: equations, mut absent_meta, mut shape_failures, .. } = equations;
    let mut unresolved: BTreeSet<String> = BTreeSet::new();
    for (group, _) in groups.iter().zip(&solver.holds).filter(|(_, holds)| !**holds) {
        let representative = &equations[group[0]];
        match representative.sym.solve(representative.value, &|name| solver.value(name)) {
            Solution::Known(Some(value)) if value == representative.value => {}
            Solution::Stuck(dims) => unresolved.extend(dims),
            Solution::Solved { value: Some(_), dim } => {
                unresolved.insert(dim);
            }
            outcome => {
                let value = match outcome {
                    Solution::Known(value) => value,
                    _ => None,
                };
                for &eq_idx in group {
                    report_failure(schema, &equations[eq_idx], value, solver, &mut shape_failures, mismatch);
                }
            }
        }
    }
    for dim in unresolved {
        match absent_meta.remove(&dim) {
            Some(error) => mismatch.conflicting_dims.push(DimConflict::Meta { dim, error }),
            None => mismatch.unresolved_dims.push(dim),
        }
    }
    for (tensor_idx, failed_dims) in shape_failures {
        // Shape failures come from tensors assigned to schema tensors.
        let Some(Assigned::Tensor(def_idx)) = assignment[tensor_idx] else { continue };
        let tensor = tensors[tensor_idx];
        mismatch.shape_mismatches.push(ShapeMismatch {
            tensor: tensor.name.clone(),
            expected: schema.tensors[def_idx].shape.clone(),
            found: tensor.shape.clone(),
            failed_dims: failed_dims.into_iter().collect(),
        });
    }
}

/// Records why `equation` does not hold (it evaluates to `evaluated`, or not exactly).
fn report_failure(
    schema: &Schema,
    equation: &Equation,
    evaluated: Option<i64>,
    solver: &Solver,
    shape_failures: &mut BTreeMap<usize, BTreeSet<String>>,
    mismatch: &mut Mismatch,
) {
    let (dim, source) = match &equation.origin {
        Origin::Shape { tensor_idx, def_idx, axis } => {
            shape_failures.entry(*tensor_idx).or_default().extend(schema.tensors[*def_idx].shape[*axis].dims());
            return;
        }
        Origin::Given(name) => ((*name).to_owned(), DimSource::Given((*name).to_owned())),
        Origin::Meta { dim, path } => ((*dim).to_owned(), DimSource::Meta((*path).to_owned())),
        Origin::Count(count) => (count.key.clone(), DimSource::Count(count.pattern.clone())),
    };
    let uses = equation.sym.dims();
    match evaluated {
        Some(other_value) => {
            let other_source = uses
                .iter()
                .find_map(|name| solver.known.get(name).map(|(_, source)| source.clone()))
                .unwrap_or_else(|| source.clone());
            mismatch.conflicting_dims.push(DimConflict::Disagree {
                dim,
                value: equation.value,
                source,
                other_value,
                other_source,
            });
        }
        None => mismatch.conflicting_dims.push(DimConflict::Inexact {
            dim,
            expr: equation.sym.clone(),
            values: uses.iter().filter_map(|name| solver.value(name).map(|value| (name.clone(), value))).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::fixtures::*;
    use crate::testutil::{dims, schema};
    use crate::{unify, DType, Mismatch, TensorInfo};

    #[test]
    fn near_miss_diff_snapshot() {
        let schema = schema(ANEMOI);
        let mut layout = anemoi_layout(2, 2, 16, Some(2));
        layout.tensors.retain(|t| t.name != format!("{PROC}.1.blocks.1.mlp.0.weight"));
        layout.tensors[0].shape = vec![48, 15];
        layout.tensors[1].dtype = DType::I32;
        layout.tensors.push(TensorInfo {
            name: "model.model.decoder.new.weight".into(),
            dtype: DType::F32,
            shape: vec![2],
        });
        let mismatch = unify(&schema, &layout, &dims(&[("heads", 3)])).unwrap_err();
        insta::assert_snapshot!("near_miss_diff", mismatch.to_string());
    }

    #[test]
    fn long_diffs_are_cut_unless_alternate() {
        let schema = schema(ANEMOI);
        let mut layout = anemoi_layout(1, 12, 8, Some(2));
        layout.tensors.retain(|t| !t.name.ends_with("mlp.0.weight"));
        // Dims the schema does not declare are ignored: one map serves every schema.
        let mismatch = unify(&schema, &layout, &dims(&[("vocab", 3)])).unwrap_err();
        assert_eq!(mismatch.missing.len(), 12);
        let short = mismatch.to_string();
        assert_eq!(short.lines().count(), Mismatch::DISPLAY_LIMIT + 1);
        assert!(short.ends_with("- … and 2 more missing"), "{short}");
        assert_eq!(format!("{mismatch:#}").lines().count(), 12);
        assert!(mismatch.conflicting_dims.is_empty() && !mismatch.dims.contains_key("vocab"));
    }

    #[test]
    fn near_misses_rank_above_other_families() {
        let anemoi = schema(ANEMOI);
        let llama = schema(LLAMA);
        let mut layout = anemoi_layout(2, 2, 16, Some(2));
        layout.tensors.remove(0);
        let near = unify(&anemoi, &layout, &BTreeMap::new()).unwrap_err();
        let far = unify(&llama, &layout, &BTreeMap::new()).unwrap_err();
        assert!(near.score() > far.score(), "{} vs {}", near.score(), far.score());
        assert_eq!(far.fitting, 0);
    }
}
