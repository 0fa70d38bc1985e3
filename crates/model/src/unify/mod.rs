//! Unifying a schema with a concrete checkpoint layout: assigning tensors to patterns,
//! binding dims, and collecting every difference when it does not fit. One file per
//! phase, in the order [`unify`] runs them:
//!
//! 1. [`assign`]: each layout tensor to the first schema tensor whose pattern matches
//!    its name, else to an `allow` pattern, else it is unexpected.
//! 2. [`equations`]: what the layout says about each dim (`given`, metadata, counting,
//!    shapes), most authoritative first; dtypes and ranks are checked on the way.
//! 3. [`solve`]: the equations solved to a fixpoint (authority first, then the majority
//!    of shapes); absent optional counted families count 0; derived dims evaluated.
//! 4. [`report`]: every equation must then hold; failures name dims, sources and tensors.
//! 5. [`missing`]: required tensors and metadata keys that are absent.

mod assign;
mod equations;
#[cfg(test)]
mod fixtures;
mod missing;
mod report;
mod solve;

use std::collections::{BTreeMap, HashSet};

use crate::mismatch::{DimSource, Mismatch};
use crate::schema::substitute_all;
use crate::{Layout, Schema, Sym, TensorInfo};
use assign::CompiledDef;
pub use assign::LiteralFilter;
use equations::CountDef;

/// A successful unification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match {
    /// Every dim bound, derived dims included (dims no present tensor needs, such as those
    /// of absent optional tensors, may be missing).
    pub dims: BTreeMap<String, i64>,
    /// For each layout tensor, in layout order, what it belongs to.
    pub assignment: Vec<Assigned>,
    /// Where each non-derived dim's value came from (`hidden` from a tensor's shape).
    pub sources: BTreeMap<String, DimSource>,
}

/// What a layout tensor belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Assigned {
    /// The schema tensor with this index in [`Schema::tensors`].
    Tensor(usize),
    /// The `allow` pattern with this index in [`Schema::allows`].
    Allowed(usize),
}

/// What unification needs of a schema whatever the layout: its derived dims expanded,
/// each tensor pattern's literal filter, counted captures and shape, each `allow`
/// pattern's filter, each dim as the left side of its equations, the counting bounds.
/// [`unify`] prepares them on every call; a caller that unifies many layouts with one
/// schema (a registry, at every open) prepares them once and calls [`unify_prepared`].
#[derive(Clone, Debug)]
pub struct PreparedSchema {
    derived: BTreeMap<String, Sym>,
    defs: Vec<CompiledDef>,
    allows: Vec<LiteralFilter>,
    /// Each dim of [`Schema::dims`], by index, with derived dims expanded: the left side
    /// of its `given` and metadata equations.
    dim_syms: Vec<Sym>,
    /// The counting bounds, in the order of their text.
    counts: Vec<CountDef>,
}

impl PreparedSchema {
    /// Prepares `schema`.
    pub fn new(schema: &Schema) -> PreparedSchema {
        let derived = schema.derived_definitions();
        let mut defs: Vec<CompiledDef> = schema.tensors.iter().map(|def| CompiledDef::new(def, &derived)).collect();
        let allows = schema.allows.iter().map(LiteralFilter::of).collect();
        let dim_syms = schema.dims.iter().map(|dim| substitute_all(&Sym::dim(&dim.name), &derived)).collect();
        let counts = CountDef::gather(schema, &mut defs);
        CompiledDef::choose_probes(&mut defs);
        PreparedSchema { derived, defs, allows, dim_syms, counts }
    }
}

/// Unifies `schema` with `layout`; `given` holds dims fixed by the caller (names the
/// schema does not declare are ignored, so one map can serve every candidate schema).
// The mismatch is the product when it fails (detection ranks them), built once per
// schema; boxing it would only add noise at every call site.
#[allow(clippy::result_large_err)]
pub fn unify(schema: &Schema, layout: &Layout, given: &BTreeMap<String, i64>) -> Result<Match, Mismatch> {
    unify_prepared(schema, &PreparedSchema::new(schema), layout, given)
}

/// [`unify`] with `schema` already prepared: `prepared` must be
/// [`PreparedSchema::new`]`(schema)`.
#[allow(clippy::result_large_err)]
pub fn unify_prepared(
    schema: &Schema,
    prepared: &PreparedSchema,
    layout: &Layout,
    given: &BTreeMap<String, i64>,
) -> Result<Match, Mismatch> {
    let tensors: Vec<&TensorInfo> = layout.tensors.iter().collect();
    unify_tensors(schema, prepared, &tensors, &layout.metadata, given)
}

/// [`unify_prepared`] with the layout given as its parts, the tensors borrowed: for a
/// caller whose tensor infos live elsewhere (a compiled plan's outputs), which need not
/// be copied into a [`Layout`].
#[allow(clippy::result_large_err)]
pub fn unify_tensors(
    schema: &Schema,
    prepared: &PreparedSchema,
    tensors: &[&TensorInfo],
    metadata: &BTreeMap<String, String>,
    given: &BTreeMap<String, i64>,
) -> Result<Match, Mismatch> {
    crate::probe::record(schema, tensors);
    debug_assert_eq!((prepared.defs.len(), prepared.allows.len()), (schema.tensors.len(), schema.allows.len()));
    let mut mismatch = Mismatch::default();
    let assignment = assign::assign(schema, tensors, &prepared.defs, &prepared.allows, &mut mismatch);
    let equations = equations::collect(schema, tensors, metadata, given, prepared, &assignment, &mut mismatch);
    let (solver, groups) = solve::solve(&equations.list, &prepared.defs, &prepared.counts, &equations.seen, tensors);
    report::check_equations(schema, tensors, &assignment.assigned, equations, &groups, &solver, &mut mismatch);
    let dims = solve::derive(schema, &prepared.derived, &solver, &mut mismatch);
    missing::find_missing(schema, &prepared.defs, &assignment, &dims, &mut mismatch);
    missing::find_missing_per_capture(schema, &prepared.defs, &assignment.matched, &mut mismatch);
    missing::check_meta(schema, metadata, &mut mismatch);

    mismatch.fitting = fitting(tensors, &assignment.matched, &mismatch);
    if mismatch.is_empty() {
        let assignment =
            assignment.assigned.into_iter().map(|assigned| assigned.expect("no unexpected tensors")).collect();
        let sources = solver.known.into_iter().map(|(name, (_, source))| (name, source)).collect();
        return Ok(Match { dims, assignment, sources });
    }
    mismatch.dims = dims;
    Err(mismatch)
}

/// How many matched tensors have neither a dtype nor a shape mismatch (detection ranks
/// near misses by it).
fn fitting(tensors: &[&TensorInfo], matched: &[assign::Matched], mismatch: &Mismatch) -> usize {
    if mismatch.dtype_mismatches.is_empty() && mismatch.shape_mismatches.is_empty() {
        // Nothing misfits (every fitting unification): no names to hash.
        return matched.len();
    }
    let misfits: HashSet<&str> = mismatch
        .dtype_mismatches
        .iter()
        .map(|m| m.tensor.as_str())
        .chain(mismatch.shape_mismatches.iter().map(|m| m.tensor.as_str()))
        .collect();
    matched.iter().filter(|hit| !misfits.contains(tensors[hit.tensor_idx].name.as_str())).count()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::fixtures::*;
    use super::*;
    use crate::testutil::{dims, schema};

    #[test]
    fn anemoi_binds_dims_from_shapes_counts_and_metadata() {
        let schema = schema(ANEMOI);
        let found = unify(&schema, &anemoi_layout(2, 3, 24, Some(4)), &BTreeMap::new()).unwrap();
        let expected = dims(&[("hidden", 24), ("chunks", 2), ("blocks_per_chunk", 3), ("heads", 4), ("head_dim", 6)]);
        assert_eq!(found.dims, expected);
        assert_eq!(found.assignment[0], Assigned::Tensor(0));
        assert_eq!(found.assignment[1], Assigned::Tensor(1));
        assert_eq!(found.assignment.last(), Some(&Assigned::Allowed(0)));
        assert_eq!(found.sources["heads"], DimSource::Meta("config.model.processor.num_heads".into()));
        assert_eq!(
            found.sources["chunks"],
            DimSource::Count(format!("{PROC}.{{c < chunks}}.blocks.{{j < blocks_per_chunk}}.attention.lin_qkv.weight"))
        );
        assert_eq!(
            found.sources["hidden"],
            DimSource::Shape { tensor: format!("{PROC}.0.blocks.0.attention.lin_qkv.weight"), axis: 0 }
        );
    }

    #[test]
    fn many_tensors_many_schemas_stay_fast() {
        // 2 × 300 blocks × 3 tensors + 2 ≈ 1800 tensors against 12 schemas.
        let layout = anemoi_layout(2, 300, 8, Some(2));
        let schemas: Vec<Schema> = (0..12).map(|_| schema(ANEMOI)).chain([schema(LLAMA)]).collect();
        let start = std::time::Instant::now();
        let fits = schemas.iter().filter(|schema| unify(schema, &layout, &BTreeMap::new()).is_ok()).count();
        assert_eq!(fits, 12);
        eprintln!("unify: {} tensors x {} schemas in {:?}", layout.tensors.len(), schemas.len(), start.elapsed());
        // Generous bound for a debug build on a busy machine; release takes milliseconds.
        assert!(start.elapsed().as_secs() < 30, "{:?}", start.elapsed());
    }
}
