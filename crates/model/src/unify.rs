//! Unifying a schema with a concrete checkpoint layout: assigning tensors to patterns,
//! binding dims, and collecting every difference when it does not fit.
//!
//! 1. Each layout tensor belongs to the first schema tensor whose pattern matches its
//!    name, else to an `allow` pattern, else it is unexpected. Patterns are pre-filtered
//!    by their literal prefix and suffix, so the cost is about tensors × patterns cheap
//!    string comparisons plus one real match per tensor.
//! 2. Dims are bound by equations `sym == value`, most authoritative first: `given`
//!    (the command line), metadata (`meta(...)` dims), counting (`{i < n}`: the indices
//!    seen must be exactly `0..n`), then every axis of every present tensor. Equations
//!    are solved to a fixpoint: one with a single unknown dim occurring as `a * x + b` or
//!    `a / x + b` binds it (to a non-negative integer); when several shapes disagree on a
//!    dim the majority wins, so the diff blames the odd ones out. Every equation must
//!    then hold exactly.
//! 3. A counted dim whose patterns are all optional and absent is 0. Derived dims must
//!    evaluate exactly (`head_dim = hidden / heads` with `hidden = 24, heads = 5` is a
//!    conflict naming both).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use safeshift_dsl::ast::{self, PatternPart};

use crate::mismatch::{DimConflict, DimSource, DtypeMismatch, MetaMismatch, Mismatch, ShapeMismatch};
use crate::pattern::{fill, match_name, Captures};
use crate::schema::{pattern_text, substitute_all};
use crate::sym::Solution;
use crate::{resolve_meta_dim, DimKind, Layout, Schema, Sym, TensorDef};

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

/// How many missing names a [`Mismatch`] lists before only counting them.
const MISSING_LIST_LIMIT: usize = 100;

/// Unifies `schema` with `layout`; `given` holds dims fixed by the caller (names the
/// schema does not declare are ignored, so one map can serve every candidate schema).
// The mismatch is the product when it fails (detection ranks them), built once per
// schema; boxing it would only add noise at every call site.
#[allow(clippy::result_large_err)]
pub fn unify(schema: &Schema, layout: &Layout, given: &BTreeMap<String, i64>) -> Result<Match, Mismatch> {
    crate::probe::record(schema, layout);
    let derived = schema.derived_definitions();
    let defs: Vec<CompiledDef> = schema.tensors.iter().map(|def| CompiledDef::new(def, &derived)).collect();
    let allows: Vec<LiteralFilter> = schema.allows.iter().map(LiteralFilter::of).collect();
    let mut mismatch = Mismatch::default();

    // 1. Assignment.
    let mut assignment: Vec<Option<Assigned>> = vec![None; layout.tensors.len()];
    let mut matched: Vec<Matched> = Vec::new();
    for (tensor_idx, tensor) in layout.tensors.iter().enumerate() {
        let hit = defs.iter().enumerate().find_map(|(def_idx, def)| {
            def.filter
                .admits(&tensor.name)
                .then(|| match_name(def.pattern, &tensor.name))
                .flatten()
                .map(|c| (def_idx, c))
        });
        if let Some((def_idx, captures)) = hit {
            let indices: Option<Vec<i64>> = defs[def_idx].counted.iter().map(|c| captures.int(&c.capture)).collect();
            if let Some(indices) = indices {
                assignment[tensor_idx] = Some(Assigned::Tensor(def_idx));
                matched.push(Matched { tensor_idx, def_idx, captures, indices });
                continue;
            }
        }
        let allowed =
            schema.allows.iter().zip(&allows).position(|(pattern, filter)| {
                filter.admits(&tensor.name) && match_name(pattern, &tensor.name).is_some()
            });
        match allowed {
            Some(allow_idx) => {
                assignment[tensor_idx] = Some(Assigned::Allowed(allow_idx));
                mismatch.allowed += 1;
            }
            None => mismatch.unexpected.push(tensor.name.clone()),
        }
    }

    // 2. Equations, most authoritative first.
    let mut equations: Vec<Equation> = Vec::new();
    for (name, &value) in given {
        if schema.dim(name).is_some() {
            let sym = substitute_all(&Sym::dim(name), &derived);
            equations.push(Equation { sym: Cow::Owned(sym), value, origin: Origin::Given(name.clone()) });
        }
    }
    let mut absent_meta: BTreeMap<String, crate::MetaDimError> = BTreeMap::new();
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
                pattern: pattern_text(def.pattern),
                all_optional: true,
            });
            count.all_optional &= schema.tensors[def_idx].optional;
        }
    }
    for hit in &matched {
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
    for hit in &matched {
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

    // 3. Solve.
    // Many tensors share an equation (every block's `3 * hidden == 72`): solve each once.
    let groups = group_equations(&equations);
    let mut solver = Solver::default();
    solver.run(&equations, &groups, layout);
    let mut defaulted = false;
    for count in counts.values() {
        if let (None, true, [dim]) = (count.seen, count.all_optional, count.bound.dims().as_slice()) {
            if count.bound == Sym::dim(dim) && !solver.known.contains_key(dim) {
                solver.bind(dim, 0, DimSource::Count(count.pattern.clone()));
                defaulted = true;
            }
        }
    }
    if defaulted {
        solver.run(&equations, &groups, layout);
    }
    let mut unresolved: BTreeSet<String> = BTreeSet::new();
    for group in &groups {
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
                    report_failure(schema, &equations[eq_idx], value, &solver, &mut shape_failures, &mut mismatch);
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
        let tensor = &layout.tensors[tensor_idx];
        mismatch.shape_mismatches.push(ShapeMismatch {
            tensor: tensor.name.clone(),
            expected: schema.tensors[def_idx].shape.clone(),
            found: tensor.shape.clone(),
            failed_dims: failed_dims.into_iter().collect(),
        });
    }

    // 4. Derived dims must evaluate exactly.
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

    // 5. Missing tensors and metadata.
    find_missing(schema, &defs, &matched, &dims, &mut mismatch);
    find_missing_per_capture(schema, &defs, &matched, &mut mismatch);
    check_meta(schema, layout, &mut mismatch);

    let misfits: HashSet<&str> = mismatch
        .dtype_mismatches
        .iter()
        .map(|m| m.tensor.as_str())
        .chain(mismatch.shape_mismatches.iter().map(|m| m.tensor.as_str()))
        .collect();
    mismatch.fitting =
        matched.iter().filter(|hit| !misfits.contains(layout.tensors[hit.tensor_idx].name.as_str())).count();
    if mismatch.is_empty() {
        let assignment = assignment.into_iter().map(|assigned| assigned.expect("no unexpected tensors")).collect();
        let sources = solver.known.into_iter().map(|(name, (_, source))| (name, source)).collect();
        return Ok(Match { dims, assignment, sources });
    }
    mismatch.dims = dims;
    Err(mismatch)
}

/// A schema tensor pattern prepared for matching many names.
struct CompiledDef<'a> {
    pattern: &'a ast::Pattern,
    filter: LiteralFilter,
    /// The counted captures, in pattern order.
    counted: Vec<CountedCapture>,
    /// The names of the other captures.
    free_captures: Vec<String>,
    /// The shape with derived dims expanded.
    shape: Vec<Sym>,
}

struct CountedCapture {
    capture: String,
    /// The bound with derived dims expanded.
    bound: Sym,
    /// The bound's normal form as text: patterns with the same bound share one count.
    key: String,
}

impl<'a> CompiledDef<'a> {
    fn new(def: &'a TensorDef, derived: &BTreeMap<String, Sym>) -> CompiledDef<'a> {
        let pattern = &def.pattern;
        let mut counted = Vec::new();
        let mut free_captures = Vec::new();
        for part in &pattern.parts {
            match part {
                PatternPart::Counted { name, bound } => {
                    let bound = substitute_all(&Sym::from_expr(bound), derived);
                    counted.push(CountedCapture { capture: name.node.clone(), key: bound.to_string(), bound });
                }
                PatternPart::Capture { name, .. } => free_captures.push(name.node.clone()),
                PatternPart::Literal(_) | PatternPart::Expr(_) => {}
            }
        }
        let shape = def.shape.iter().map(|sym| substitute_all(sym, derived)).collect();
        CompiledDef { pattern, filter: LiteralFilter::of(pattern), counted, free_captures, shape }
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
        name.len() >= self.prefix.len() + self.suffix.len()
            && name.starts_with(&self.prefix)
            && name.ends_with(&self.suffix)
    }
}

/// A layout tensor assigned to a schema tensor.
struct Matched {
    tensor_idx: usize,
    def_idx: usize,
    captures: Captures,
    /// The values of the def's counted captures, in order.
    indices: Vec<i64>,
}

/// The indices seen for one counting bound.
struct Count {
    bound: Sym,
    /// One past the largest index seen.
    seen: Option<i64>,
    /// The first pattern counting it, to name the source.
    pattern: String,
    /// Whether every tensor counting it is optional.
    all_optional: bool,
}

/// `sym == value`, and where it comes from.
struct Equation<'a> {
    /// Borrowed from the compiled schema for shapes: thousands of tensors share a few.
    sym: Cow<'a, Sym>,
    value: i64,
    origin: Origin,
}

#[derive(Clone, Debug)]
enum Origin {
    Given(String),
    Meta { dim: String, path: String },
    Count { key: String, pattern: String },
    Shape { tensor_idx: usize, def_idx: usize, axis: usize },
}

/// The fixpoint solver's state: dims bound so far and where each came from.
#[derive(Default)]
struct Solver {
    known: BTreeMap<String, (i64, DimSource)>,
}

impl Solver {
    fn value(&self, name: &str) -> Option<i64> {
        self.known.get(name).map(|(value, _)| *value)
    }

    fn bind(&mut self, name: &str, value: i64, source: DimSource) {
        self.known.insert(name.to_owned(), (value, source));
    }

    /// Binds dims until no equation determines a new one.
    fn run(&mut self, equations: &[Equation], groups: &[Vec<usize>], layout: &Layout) {
        let mut open: Vec<&Vec<usize>> = groups.iter().collect();
        loop {
            // Candidate values per dim, in equation order.
            let mut candidates: BTreeMap<String, Vec<Candidate>> = BTreeMap::new();
            open.retain(|group| {
                let representative = &equations[group[0]];
                match representative.sym.solve(representative.value, &|name| self.value(name)) {
                    Solution::Known(_) => false,
                    Solution::Solved { dim, value: Some(value) } => {
                        let authoritative =
                            group.iter().copied().find(|&i| !matches!(equations[i].origin, Origin::Shape { .. }));
                        candidates.entry(dim).or_default().push(Candidate {
                            value,
                            authoritative,
                            votes: group.len(),
                            first: group[0],
                        });
                        true
                    }
                    Solution::Solved { value: None, .. } | Solution::Stuck(_) => true,
                }
            });
            if candidates.is_empty() {
                return;
            }
            for (dim, options) in candidates {
                let (value, eq_idx) = match options
                    .iter()
                    .filter_map(|c| c.authoritative.map(|i| (c.value, i)))
                    .min_by_key(|(_, i)| *i)
                {
                    Some(authoritative) => authoritative,
                    None => {
                        // Majority vote among shapes; ties go to the first in layout order.
                        let mut votes: BTreeMap<i64, (usize, usize)> = BTreeMap::new();
                        for option in &options {
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
                self.bind(&dim, value, equations[eq_idx].origin.source(layout));
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

/// Indices of equal equations (same expression and value), grouped in first-seen order.
/// Shape equations are keyed by their schema tensor and axis (cheap, and the same axis
/// means the same expression); the few others stay alone.
fn group_equations(equations: &[Equation<'_>]) -> Vec<Vec<usize>> {
    let mut index: HashMap<(usize, usize, i64), usize> = HashMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (eq_idx, equation) in equations.iter().enumerate() {
        let Origin::Shape { def_idx, axis, .. } = equation.origin else {
            groups.push(vec![eq_idx]);
            continue;
        };
        let slot = *index.entry((def_idx, axis, equation.value)).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[slot].push(eq_idx);
    }
    groups
}

impl Origin {
    fn source(&self, layout: &Layout) -> DimSource {
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
        Origin::Given(name) => (name.clone(), DimSource::Given(name.clone())),
        Origin::Meta { dim, path } => (dim.clone(), DimSource::Meta(path.clone())),
        Origin::Count { key, pattern } => (key.clone(), DimSource::Count(pattern.clone())),
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
            expr: equation.sym.clone().into_owned(),
            values: uses.iter().filter_map(|name| solver.value(name).map(|value| (name.clone(), value))).collect(),
        }),
    }
}

/// Lists the required tensors the layout lacks.
fn find_missing(
    schema: &Schema,
    defs: &[CompiledDef<'_>],
    matched: &[Matched],
    dims: &BTreeMap<String, i64>,
    mismatch: &mut Mismatch,
) {
    let mut by_def: BTreeMap<usize, Vec<&Matched>> = BTreeMap::new();
    for hit in matched {
        by_def.entry(hit.def_idx).or_default().push(hit);
    }
    for (def_idx, def) in defs.iter().enumerate() {
        if schema.tensors[def_idx].optional {
            continue;
        }
        let hits = by_def.get(&def_idx).map(Vec::as_slice).unwrap_or_default();
        let ranges: Option<Vec<i64>> =
            def.counted.iter().map(|c| c.bound.eval(&|name| dims.get(name).copied()).map(|n| n.max(0))).collect();
        let Some(ranges) = ranges else {
            if hits.is_empty() {
                mismatch.missing.push(pattern_text(def.pattern));
            }
            continue;
        };
        // Group by the values of the other captures: each group must be complete.
        let mut groups: BTreeMap<Vec<String>, HashSet<&[i64]>> = BTreeMap::new();
        for hit in hits {
            let key = def.free_captures.iter().map(|name| hit.captures.get(name).unwrap_or("").to_owned()).collect();
            groups.entry(key).or_default().insert(&hit.indices);
        }
        if def.free_captures.is_empty() {
            groups.entry(Vec::new()).or_default();
        } else if groups.is_empty() {
            mismatch.missing.push(pattern_text(def.pattern));
            continue;
        }
        for (key, present) in groups {
            let expected = ranges.iter().try_fold(1u64, |acc, &n| acc.checked_mul(n as u64)).unwrap_or(u64::MAX);
            let in_range = present.iter().filter(|indices| indices.iter().zip(&ranges).all(|(i, n)| i < n)).count();
            let absent = expected.saturating_sub(in_range as u64);
            if absent == 0 {
                continue;
            }
            let mut captures = Captures::default();
            for (name, value) in def.free_captures.iter().zip(&key) {
                captures.0.insert(name.clone(), value.clone());
            }
            let mut listed = 0u64;
            let mut indices = vec![0i64; ranges.len()];
            // Walk the index product in order; each step is either present or listed, so
            // this stops after at most `present + limit` steps even for a huge family.
            'walk: while mismatch.missing.len() < MISSING_LIST_LIMIT && listed < absent {
                if !present.contains(indices.as_slice()) {
                    for (counted, index) in def.counted.iter().zip(&indices) {
                        captures.0.insert(counted.capture.clone(), index.to_string());
                    }
                    if let Ok(name) = fill(def.pattern, &captures, &|_| None) {
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
    }
}

/// A capture name shared by several tensor patterns ranges over one set of names (the
/// datasets of `"pre_processors.{dataset}.…"` and `"encoder.{dataset}.…"`): every required
/// pattern whose only capture it is must be present for every value any pattern shows.
/// Lists the names that lack.
fn find_missing_per_capture(schema: &Schema, defs: &[CompiledDef<'_>], matched: &[Matched], mismatch: &mut Mismatch) {
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
                if let Ok(name) = fill(def.pattern, &captures, &|_| None) {
                    mismatch.missing.push(name);
                }
            }
        }
    }
}

/// Checks the metadata keys the schema expects.
fn check_meta(schema: &Schema, layout: &Layout, mismatch: &mut Mismatch) {
    for meta in &schema.meta {
        let found = layout.metadata.get(&meta.key);
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
    use super::*;
    use crate::testutil::{dims, layout, schema};
    use crate::{DType, MetaDimError, TensorInfo};

    const ANEMOI: &str = r#"
        schema anemoi.encprocdec @ 0.4.0 {
            dim hidden
            dim chunks
            dim blocks_per_chunk
            dim heads = meta("config.model.processor.num_heads")
            dim head_dim = hidden / heads
            tensor "model.model.processor.proc.{c < chunks}.blocks.{j < blocks_per_chunk}.attention.lin_qkv.weight" : float[3 * hidden, hidden]
            tensor "model.model.processor.proc.{c < chunks}.blocks.{j < blocks_per_chunk}.attention.lin_qkv.bias" : float[3 * hidden] optional
            tensor "model.model.processor.proc.{c < chunks}.blocks.{j < blocks_per_chunk}.attention.q_norm.weight" : float[head_dim] optional
            tensor "model.model.processor.proc.{c < chunks}.blocks.{j < blocks_per_chunk}.mlp.0.weight" : float[4 * hidden, hidden]
            tensor "model.model.encoder.emb_nodes.weight" : float[hidden, 7]
            allow "model.model.extras.{rest..}"
        }
    "#;

    const LLAMA: &str = r#"
        schema llama.hf @ 1.0.0 {
            dim hidden
            dim layers
            dim vocab
            dim heads
            dim kv_heads
            dim head_dim = hidden / heads
            tensor "model.embed_tokens.weight" : float[vocab, hidden]
            tensor "model.layers.{i < layers}.self_attn.q_proj.weight" : float[heads * head_dim, hidden]
            tensor "model.layers.{i < layers}.self_attn.k_proj.weight" : float[kv_heads * head_dim, hidden]
            tensor "model.layers.{i < layers}.self_attn.v_proj.weight" : float[kv_heads * head_dim, hidden]
            tensor "model.layers.{i < layers}.self_attn.q_norm.weight" : float[head_dim] optional
            tensor "model.norm.weight" : float[hidden]
        }
    "#;

    const PROC: &str = "model.model.processor.proc";

    /// An Anemoi-like layout: `chunks` × `blocks` blocks of width `hidden`, f32.
    fn anemoi_layout(chunks: u64, blocks: u64, hidden: u64, heads: Option<u64>) -> Layout {
        let mut tensors = Vec::new();
        let mut push = |name: String, shape: Vec<u64>| tensors.push(TensorInfo { name, dtype: DType::F32, shape });
        for c in 0..chunks {
            for j in 0..blocks {
                let block = format!("{PROC}.{c}.blocks.{j}");
                push(format!("{block}.attention.lin_qkv.weight"), vec![3 * hidden, hidden]);
                push(format!("{block}.attention.lin_qkv.bias"), vec![3 * hidden]);
                push(format!("{block}.mlp.0.weight"), vec![4 * hidden, hidden]);
            }
        }
        push("model.model.encoder.emb_nodes.weight".into(), vec![hidden, 7]);
        push("model.model.extras.step_count".into(), vec![]);
        let mut layout = Layout { tensors, metadata: BTreeMap::new() };
        if let Some(heads) = heads {
            let config = format!(r#"{{"model": {{"processor": {{"num_heads": {heads}}}}}}}"#);
            layout.metadata.insert("config".into(), config);
        }
        layout
    }

    fn llama_layout(layers: u64, hidden: u64, kv_rows: u64) -> Layout {
        let mut lines = format!("model.embed_tokens.weight bf16 [100, {hidden}]\nmodel.norm.weight bf16 [{hidden}]\n");
        for i in 0..layers {
            let p = format!("model.layers.{i}.self_attn");
            lines.push_str(&format!("{p}.q_proj.weight bf16 [{hidden}, {hidden}]\n"));
            lines.push_str(&format!("{p}.k_proj.weight bf16 [{kv_rows}, {hidden}]\n"));
            lines.push_str(&format!("{p}.v_proj.weight bf16 [{kv_rows}, {hidden}]\n"));
        }
        layout(&lines)
    }

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
