//! Phase 3, solving: equations are solved to a fixpoint. One with a single unknown dim
//! occurring as `a * x + b` or `a / x + b` binds it (to a non-negative integer); a
//! non-shape equation wins over shapes, and when shapes disagree on a dim the majority
//! wins, so the report blames the odd ones out. A counted dim whose patterns are all
//! optional and absent is 0. Derived dims must then evaluate exactly.

use std::collections::BTreeMap;

use super::assign::CompiledDef;
use super::equations::{CountDef, Equation, Origin};
use crate::mismatch::{DimConflict, DimSource, Mismatch};
use crate::sym::BorrowedSolution;
use crate::{Schema, Sym, TensorInfo};

/// Binds every dim the equations determine. Equal equations are solved once (every
/// block's `3 * hidden == 72`): the groups returned list them.
pub(super) fn solve(
    equations: &[Equation<'_>],
    defs: &[CompiledDef],
    counts: &[CountDef],
    seen: &[Option<i64>],
    tensors: &[&TensorInfo],
) -> (Solver, Groups) {
    let groups = Groups::of(equations, defs.iter().map(|def| def.shape.len()));
    let mut solver = Solver { known: BTreeMap::new(), holds: vec![false; groups.len()] };
    solver.run(equations, &groups, tensors);
    let mut defaulted = false;
    for (count, seen) in counts.iter().zip(seen) {
        if let (None, Some(dim)) = (seen, &count.absent_zero) {
            if !solver.known.contains_key(dim) {
                solver.bind(dim, 0, DimSource::Count(count.pattern.clone()));
                defaulted = true;
            }
        }
    }
    if defaulted {
        solver.run(equations, &groups, tensors);
    }
    (solver, groups)
}

/// Every bound dim, derived dims evaluated from the others; a derived dim that does not
/// evaluate to a non-negative integer is a conflict naming its inputs.
pub(super) fn derive(
    schema: &Schema,
    derived: &BTreeMap<String, Sym>,
    solver: &Solver,
    mismatch: &mut Mismatch,
) -> BTreeMap<String, i64> {
    let mut dims: BTreeMap<String, i64> =
        solver.known.iter().map(|(name, (value, _))| (name.clone(), *value)).collect();
    for dim in &schema.dims {
        let Some(expr) = derived.get(&dim.name) else { continue };
        let uses = expr.dims();
        if !uses.iter().all(|name| dims.contains_key(name)) {
            continue;
        }
        match expr.eval(&|name| dims.get(name).copied()) {
            Some(value) if value >= 0 => {
                dims.insert(dim.name.clone(), value);
            }
            _ => mismatch.conflicting_dims.push(DimConflict::Inexact {
                dim: dim.name.clone(),
                expr: expr.clone(),
                values: uses.iter().map(|name| (name.clone(), dims[name])).collect(),
            }),
        }
    }
    dims
}

/// The fixpoint solver's state: dims bound so far and where each came from.
pub(super) struct Solver {
    pub known: BTreeMap<String, (i64, DimSource)>,
    /// Per equation group, whether the solver already found it holds (every dim bound,
    /// the value exact and equal). A bound dim is never rebound, so such a group holds
    /// for good: the report skips it instead of solving it again.
    pub holds: Vec<bool>,
}

impl Solver {
    /// The value of `name`, if bound.
    pub fn value(&self, name: &str) -> Option<i64> {
        self.known.get(name).map(|(value, _)| *value)
    }

    fn bind(&mut self, name: &str, value: i64, source: DimSource) {
        self.known.insert(name.to_owned(), (value, source));
    }

    /// Binds dims until no equation determines a new one.
    fn run<'e>(&mut self, equations: &'e [Equation<'_>], groups: &Groups, tensors: &[&TensorInfo]) {
        let mut open: Vec<usize> = (0..groups.len()).filter(|&group_idx| !self.holds[group_idx]).collect();
        // The values the groups of one round propose, with the dim each binds.
        let mut candidates: Vec<(&'e str, Candidate)> = Vec::with_capacity(open.len());
        loop {
            candidates.clear();
            let mut still_open = 0;
            for at in 0..open.len() {
                let group_idx = open[at];
                let group = groups.get(group_idx);
                let representative: &'e Equation = &equations[group[0]];
                let solved = representative.sym.solve_borrowed(representative.value, &|name| self.value(name));
                let keep = match solved {
                    BorrowedSolution::Known(value) => {
                        if value == Some(representative.value) {
                            self.holds[group_idx] = true;
                        }
                        false
                    }
                    BorrowedSolution::Solved { dim, value: Some(value) } => {
                        let authoritative =
                            group.iter().copied().find(|&i| !matches!(equations[i].origin, Origin::Shape { .. }));
                        let candidate = Candidate { value, authoritative, votes: group.len(), first: group[0] };
                        candidates.push((dim, candidate));
                        true
                    }
                    BorrowedSolution::Solved { value: None, .. } | BorrowedSolution::Stuck => true,
                };
                if keep {
                    open[still_open] = group_idx;
                    still_open += 1;
                }
            }
            open.truncate(still_open);
            if candidates.is_empty() {
                return;
            }
            // Dim by dim in name order, each dim's candidates in group order (the groups'
            // first equations are distinct and in group order).
            candidates.sort_unstable_by(|(a, x), (b, y)| a.cmp(b).then(x.first.cmp(&y.first)));
            for options in candidates.chunk_by(|(a, _), (b, _)| a == b) {
                let dim = options[0].0;
                let options = options.iter().map(|(_, candidate)| candidate);
                let (value, eq_idx) =
                    match options.clone().filter_map(|c| c.authoritative.map(|i| (c.value, i))).min_by_key(|(_, i)| *i)
                    {
                        Some(authoritative) => authoritative,
                        None => {
                            // Majority vote among shapes; ties go to the first in layout order.
                            let mut votes: BTreeMap<i64, (usize, usize)> = BTreeMap::new();
                            for option in options {
                                let entry = votes.entry(option.value).or_insert((0, option.first));
                                entry.0 += option.votes;
                                entry.1 = entry.1.min(option.first);
                            }
                            votes
                                .into_iter()
                                .max_by(|a, b| a.1 .0.cmp(&b.1 .0).then(b.1 .1.cmp(&a.1 .1)))
                                .map(|(value, (_, first))| (value, first))
                                .expect("at least one candidate")
                        }
                    };
                self.bind(dim, value, equations[eq_idx].origin.source(tensors));
            }
        }
    }
}

/// One value an equation group proposes for a dim.
struct Candidate {
    value: i64,
    /// The first non-shape equation of the group, if any: it wins over shapes.
    authoritative: Option<usize>,
    /// How many equations agree.
    votes: usize,
    /// The group's first equation (to order ties and to name the source).
    first: usize,
}

/// Equal equations (same expression and value) by index, grouped in first-seen order;
/// each group's indices in order. Shape equations are keyed by their schema tensor and
/// axis (cheap, and the same axis means the same expression); the few others stay alone.
pub(super) struct Groups {
    /// Where each group starts in `members`, and where the last one ends.
    starts: Vec<usize>,
    /// The equation indices of every group, one group after the other.
    members: Vec<usize>,
}

impl Groups {
    /// The groups of `equations`, whose shape equations are of schema tensors of these
    /// ranks.
    fn of(equations: &[Equation<'_>], ranks: impl ExactSizeIterator<Item = usize>) -> Groups {
        // A flat index per (schema tensor, axis), and the first value seen on each with
        // its group: the shapes of a fitting layout agree, so one slot is enough; other
        // values go to a map.
        let mut first_axis = Vec::with_capacity(ranks.len());
        let mut axes = 0;
        for rank in ranks {
            first_axis.push(axes);
            axes += rank;
        }
        let mut first_value: Vec<Option<(i64, usize)>> = vec![None; axes];
        let mut other_values: BTreeMap<(usize, i64), usize> = BTreeMap::new();
        // Each equation's group first, then the groups at their final sizes: no group
        // grows one push at a time.
        let mut sizes: Vec<usize> = Vec::with_capacity(equations.len());
        let new_group = |sizes: &mut Vec<usize>| {
            sizes.push(0);
            sizes.len() - 1
        };
        let slots: Vec<usize> = equations
            .iter()
            .map(|equation| {
                let slot = match equation.origin {
                    Origin::Shape { def_idx, axis, .. } => {
                        let axis = first_axis[def_idx] + axis;
                        match first_value[axis] {
                            Some((value, slot)) if value == equation.value => slot,
                            Some(_) => {
                                *other_values.entry((axis, equation.value)).or_insert_with(|| new_group(&mut sizes))
                            }
                            None => {
                                let slot = new_group(&mut sizes);
                                first_value[axis] = Some((equation.value, slot));
                                slot
                            }
                        }
                    }
                    _ => new_group(&mut sizes),
                };
                sizes[slot] += 1;
                slot
            })
            .collect();
        let mut starts = Vec::with_capacity(sizes.len() + 1);
        let mut end = 0;
        starts.push(end);
        for size in &mut sizes {
            // From here on, where the group's next member goes.
            let start = end;
            end += *size;
            *size = start;
            starts.push(end);
        }
        let mut members = vec![0; equations.len()];
        for (eq_idx, slot) in slots.into_iter().enumerate() {
            members[sizes[slot]] = eq_idx;
            sizes[slot] += 1;
        }
        Groups { starts, members }
    }

    pub fn len(&self) -> usize {
        self.starts.len() - 1
    }

    /// The equation indices of group `group_idx`.
    pub fn get(&self, group_idx: usize) -> &[usize] {
        &self.members[self.starts[group_idx]..self.starts[group_idx + 1]]
    }

    /// Every group, in order.
    pub fn iter(&self) -> impl Iterator<Item = &[usize]> {
        self.starts.windows(2).map(|bounds| &self.members[bounds[0]..bounds[1]])
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::fixtures::*;
    use crate::mismatch::DimConflict;
    use crate::testutil::{dims, layout, schema};
    use crate::{unify, DType, TensorInfo};

    #[test]
    fn the_odd_shape_out_is_blamed_not_the_majority() {
        let schema = schema(ANEMOI);
        let mut layout = anemoi_layout(1, 3, 16, Some(2));
        // The first tensor in file order is the wrong one.
        layout.tensors[0].shape = vec![48, 20];
        let mismatch = unify(&schema, &layout, &BTreeMap::new()).unwrap_err();
        assert_eq!(mismatch.dims["hidden"], 16);
        assert_eq!(mismatch.shape_mismatches.len(), 1);
        let shape = &mismatch.shape_mismatches[0];
        assert_eq!(shape.tensor, format!("{PROC}.0.blocks.0.attention.lin_qkv.weight"));
        assert_eq!(shape.found, vec![48, 20]);
        assert_eq!(shape.failed_dims, vec!["hidden".to_owned()]);
    }

    #[test]
    fn llama_with_given_heads_binds_head_dim() {
        let schema = schema(LLAMA);
        let found = unify(&schema, &llama_layout(2, 32, 16), &dims(&[("heads", 4), ("kv_heads", 2)])).unwrap();
        assert_eq!(
            found.dims,
            dims(&[("hidden", 32), ("layers", 2), ("vocab", 100), ("heads", 4), ("kv_heads", 2), ("head_dim", 8)])
        );
    }

    #[test]
    fn llama_without_heads_leaves_them_unresolved() {
        let schema = schema(LLAMA);
        let mismatch = unify(&schema, &llama_layout(2, 32, 16), &BTreeMap::new()).unwrap_err();
        // q_proj's rows are heads * (hidden / heads) = hidden: no information on heads.
        assert_eq!(mismatch.unresolved_dims, vec!["heads".to_owned(), "kv_heads".to_owned()]);
        assert!(mismatch.missing.is_empty() && mismatch.shape_mismatches.is_empty());
    }

    #[test]
    fn head_dim_from_a_norm_determines_heads() {
        let schema = schema(LLAMA);
        let mut layout = llama_layout(1, 32, 16);
        layout.tensors.push(TensorInfo {
            name: "model.layers.0.self_attn.q_norm.weight".into(),
            dtype: DType::BF16,
            shape: vec![8],
        });
        // hidden / heads == 8 is solved for heads; then kv_heads * 8 == 16.
        let found = unify(&schema, &layout, &BTreeMap::new()).unwrap();
        assert_eq!((found.dims["heads"], found.dims["kv_heads"], found.dims["head_dim"]), (4, 2, 8));
    }

    #[test]
    fn an_inexact_derived_dim_names_its_inputs() {
        let schema = schema(LLAMA);
        let mismatch = unify(&schema, &llama_layout(1, 24, 8), &dims(&[("heads", 5), ("kv_heads", 1)])).unwrap_err();
        let inexact = mismatch
            .conflicting_dims
            .iter()
            .find_map(|conflict| match conflict {
                DimConflict::Inexact { dim, values, .. } if dim == "head_dim" => Some(values.clone()),
                _ => None,
            })
            .expect("head_dim is reported");
        assert_eq!(inexact, dims(&[("heads", 5), ("hidden", 24)]));
        let text = mismatch.to_string();
        assert!(
            text.contains("dim `head_dim` = hidden / heads is not a non-negative integer with heads = 5, hidden = 24"),
            "{text}"
        );
    }

    /// The report skips the groups the solver found holding; solving them again, as the
    /// report did before, must report exactly the same.
    fn report_skipping_held_groups_agrees(
        schema: &crate::Schema,
        layout: &crate::Layout,
        given: &BTreeMap<String, i64>,
    ) {
        use super::super::{assign, equations, report, PreparedSchema};
        let prepared = PreparedSchema::new(schema);
        let tensors: Vec<&crate::TensorInfo> = layout.tensors.iter().collect();
        let mut reports = Vec::new();
        for skip_held in [true, false] {
            let mut mismatch = crate::Mismatch::default();
            let assignment = assign::assign(schema, &tensors, &prepared.defs, &prepared.allows, &mut mismatch);
            let equations =
                equations::collect(schema, &tensors, &layout.metadata, given, &prepared, &assignment, &mut mismatch);
            let (mut solver, groups) =
                super::solve(&equations.list, &prepared.defs, &prepared.counts, &equations.seen, &tensors);
            for (group, &holds) in groups.iter().zip(&solver.holds) {
                if holds {
                    let representative = &equations.list[group[0]];
                    let again = representative.sym.solve(representative.value, &|name| solver.value(name));
                    assert_eq!(again, crate::sym::Solution::Known(Some(representative.value)));
                }
            }
            if !skip_held {
                solver.holds.fill(false);
            }
            report::check_equations(schema, &tensors, &assignment.assigned, equations, &groups, &solver, &mut mismatch);
            reports.push(mismatch);
        }
        assert_eq!(reports[0], reports[1]);
    }

    proptest::proptest! {
        /// The groups are the equal equations in first-seen order, as a map by schema
        /// tensor, axis and value gives them.
        #[test]
        fn groups_are_the_equal_equations_in_first_seen_order(
            origins in proptest::collection::vec(proptest::option::of((0usize..3, 0usize..2, 0i64..3)), 0..40),
        ) {
            use super::super::equations::{Equation, Origin};
            let sym = crate::Sym::dim("n");
            let equations: Vec<Equation> = origins
                .iter()
                .enumerate()
                .map(|(tensor_idx, origin)| match *origin {
                    Some((def_idx, axis, value)) => {
                        Equation { sym: &sym, value, origin: Origin::Shape { tensor_idx, def_idx, axis } }
                    }
                    None => Equation { sym: &sym, value: 1, origin: Origin::Given("n") },
                })
                .collect();
            let mut expected: Vec<Vec<usize>> = Vec::new();
            let mut by_key: BTreeMap<(usize, usize, i64), usize> = BTreeMap::new();
            for (eq_idx, origin) in origins.iter().enumerate() {
                let group = match origin {
                    Some(key) => *by_key.entry(*key).or_insert_with(|| {
                        expected.push(Vec::new());
                        expected.len() - 1
                    }),
                    None => {
                        expected.push(Vec::new());
                        expected.len() - 1
                    }
                };
                expected[group].push(eq_idx);
            }
            let groups = super::Groups::of(&equations, [2, 2, 2].into_iter());
            let found: Vec<Vec<usize>> = groups.iter().map(<[usize]>::to_vec).collect();
            proptest::prop_assert_eq!(groups.len(), expected.len());
            proptest::prop_assert_eq!(found, expected);
        }

        #[test]
        fn skipping_held_groups_reports_the_same(
            chunks in 1u64..3,
            blocks in 1u64..4,
            hidden in 1u64..20,
            heads in proptest::option::of(1u64..5),
            corrupt in proptest::option::of((0usize..64, 0usize..2, 0u64..60)),
            given_heads in proptest::option::of(1i64..6),
            kv_rows in 0u64..40,
        ) {
            let anemoi = schema(ANEMOI);
            let mut layout = anemoi_layout(chunks, blocks, hidden, heads);
            if let Some((tensor, axis, size)) = corrupt {
                let count = layout.tensors.len();
                let shape = &mut layout.tensors[tensor % count].shape;
                if !shape.is_empty() {
                    let axis = axis % shape.len();
                    shape[axis] = size;
                }
            }
            let given: BTreeMap<String, i64> = given_heads.map(|h| ("heads".to_owned(), h)).into_iter().collect();
            report_skipping_held_groups_agrees(&anemoi, &layout, &given);
            let mut given = given;
            given.insert("kv_heads".into(), 2);
            report_skipping_held_groups_agrees(&schema(LLAMA), &llama_layout(blocks, hidden, kv_rows), &given);
        }
    }

    #[test]
    fn families_absent_entirely() {
        let optional = schema(
            r#"
            schema t @ 1.0.0 {
                dim n
                dim h
                tensor "x" : f32[h]
                tensor "extra.{i < n}.w" : f32[h] optional
            }
        "#,
        );
        let found = unify(&optional, &layout("x f32 [3]"), &BTreeMap::new()).unwrap();
        assert_eq!(found.dims, dims(&[("h", 3), ("n", 0)]));
        let required = schema(
            r#"
            schema t @ 1.0.0 {
                dim n
                dim h
                tensor "x" : f32[h]
                tensor "layers.{i < n}.w" : f32[h]
                tensor "{p..}.norm" : f32[h]
            }
        "#,
        );
        let mismatch = unify(&required, &layout("x f32 [3]"), &BTreeMap::new()).unwrap_err();
        assert_eq!(mismatch.missing, vec!["layers.{i < n}.w".to_owned(), "{p..}.norm".to_owned()]);
        assert!(mismatch.unresolved_dims.is_empty());
    }
}
