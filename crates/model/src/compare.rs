//! Comparing symbolic tensors (a source schema's, after a migration's operations) with
//! a target schema: the static checker's last step.
//!
//! Each tensor belongs to the first target tensor pattern matching its name (counted
//! indices must be below the count), else to an `allow` pattern, else it is unexpected.
//! Counts come from `counts`; a target count missing there is inferred from the indices
//! seen (one past the largest). Shapes are compared in normal form after expanding the
//! target's derived dims on both sides and substituting the counts.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;

use safeshift_dsl::ast::PatternPart;

use crate::instantiate::{instantiate_symbolic, substitute_values};
use crate::pattern::match_name;
use crate::schema::{pattern_text, substitute_all};
use crate::{DType, DTypeClass, Schema, Sym, SymTensor};

/// One way symbolic tensors differ from a target schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SymProblem {
    /// A required target tensor is not produced: a concrete name, or a pattern text when
    /// the pattern has captures other than `{i < n}`.
    Missing {
        /// The name or pattern.
        name: String,
    },
    /// A tensor the target schema neither declares nor allows.
    Unexpected {
        /// Its name.
        name: String,
    },
    /// Two tensors have the same name.
    Duplicate {
        /// The name.
        name: String,
    },
    /// The dtype class produced is not within the target's.
    Dtype {
        /// The tensor.
        name: String,
        /// What is produced.
        found: DTypeClass,
        /// What the target accepts.
        expected: DTypeClass,
        /// Whether no dtype fits both (certainly wrong, rather than not provably right).
        disjoint: bool,
    },
    /// The shape is not provably the target's.
    Shape {
        /// The tensor.
        name: String,
        /// The shape produced.
        found: Vec<Sym>,
        /// The target's shape (derived dims expanded, counts substituted).
        expected: Vec<Sym>,
        /// The dims in the differences of the axes that differ (empty when the ranks
        /// differ or only constants differ).
        unproved_dims: Vec<String>,
    },
    /// The target's names could not be enumerated (a count is missing or inexact).
    Target {
        /// Why.
        message: String,
    },
}

/// Compares `tensors` with `target` (see the module docs); empty when they agree.
pub fn compare_symbolic(target: &Schema, tensors: &[SymTensor], counts: &BTreeMap<String, i64>) -> Vec<SymProblem> {
    let mut problems = Vec::new();
    let derived = target.derived_definitions();
    let mut names: HashSet<&str> = HashSet::new();
    for tensor in tensors {
        if !names.insert(&tensor.name) {
            problems.push(SymProblem::Duplicate { name: tensor.name.clone() });
        }
    }

    // Assign, remembering the largest index seen per counted dim to infer missing counts.
    let mut assigned: Vec<(usize, Option<usize>)> = Vec::with_capacity(tensors.len());
    let mut seen: BTreeMap<String, i64> = BTreeMap::new();
    for (tensor_idx, tensor) in tensors.iter().enumerate() {
        let hit =
            target.tensors.iter().enumerate().find_map(|(def_idx, def)| {
                match_name(&def.pattern, &tensor.name).map(|captures| (def_idx, def, captures))
            });
        if let Some((def_idx, def, captures)) = hit {
            for part in &def.pattern.parts {
                if let PatternPart::Counted { name, bound } = part {
                    let bound = substitute_all(&Sym::from_expr(bound), &derived);
                    if let ([dim], Some(index)) = (bound.dims().as_slice(), captures.int(&name.node)) {
                        let entry = seen.entry(dim.clone()).or_insert(0);
                        *entry = (*entry).max(index.saturating_add(1));
                    }
                }
            }
            assigned.push((tensor_idx, Some(def_idx)));
        } else {
            assigned.push((tensor_idx, None));
        }
    }
    let mut all_counts = counts.clone();
    for (dim, count) in seen {
        all_counts.entry(dim).or_insert(count);
    }
    // A counted dim neither given nor seen: its family is absent (reported below if required).
    let mut absent_families: BTreeSet<String> = BTreeSet::new();
    for dim in &target.dims {
        if dim.kind == crate::DimKind::Counted && !all_counts.contains_key(&dim.name) {
            all_counts.insert(dim.name.clone(), 0);
            absent_families.insert(dim.name.clone());
        }
    }

    let expected = match instantiate_symbolic(target, &all_counts) {
        Ok(expected) => expected,
        Err(err) => {
            problems.push(SymProblem::Target { message: err.to_string() });
            return problems;
        }
    };
    let expected_names: HashSet<&str> = expected.iter().map(|t| t.name.as_str()).collect();

    for (tensor_idx, def_idx) in assigned {
        let tensor = &tensors[tensor_idx];
        let Some(def_idx) = def_idx else {
            let allowed = target.allows.iter().any(|pattern| match_name(pattern, &tensor.name).is_some());
            if !allowed {
                problems.push(SymProblem::Unexpected { name: tensor.name.clone() });
            }
            continue;
        };
        let def = &target.tensors[def_idx];
        let has_free_capture = def.pattern.parts.iter().any(|part| matches!(part, PatternPart::Capture { .. }));
        if !has_free_capture && !expected_names.contains(tensor.name.as_str()) {
            // Matches the pattern, but a counted index is beyond the count.
            problems.push(SymProblem::Unexpected { name: tensor.name.clone() });
            continue;
        }
        if !subsumes(def.dtype, tensor.dtype) {
            problems.push(SymProblem::Dtype {
                name: tensor.name.clone(),
                found: tensor.dtype,
                expected: def.dtype,
                disjoint: !DType::ALL.iter().any(|&d| def.dtype.accepts(d) && tensor.dtype.accepts(d)),
            });
        }
        let normalise = |sym: &Sym| substitute_values(&substitute_all(sym, &derived), &all_counts);
        let want: Vec<Sym> = def.shape.iter().map(normalise).collect();
        let have: Vec<Sym> = tensor.shape.iter().map(normalise).collect();
        if want != have {
            let mut unproved: BTreeSet<String> = BTreeSet::new();
            if want.len() == have.len() {
                for (a, b) in want.iter().zip(&have) {
                    unproved.extend(a.sub(b).dims());
                }
            }
            problems.push(SymProblem::Shape {
                name: tensor.name.clone(),
                found: have,
                expected: want,
                unproved_dims: unproved.into_iter().collect(),
            });
        }
    }

    // Missing: every required concrete name, and each required pattern with free
    // captures that nothing matched.
    for (def_idx, def) in target.tensors.iter().enumerate() {
        if def.optional {
            continue;
        }
        let counts_absent_family = def.pattern.parts.iter().any(|part| {
            matches!(part, PatternPart::Counted { bound, .. } if Sym::from_expr(bound).dims().iter().any(|dim| absent_families.contains(dim)))
        });
        if counts_absent_family {
            problems.push(SymProblem::Missing { name: pattern_text(&def.pattern) });
            continue;
        }
        let has_free_capture = def.pattern.parts.iter().any(|part| matches!(part, PatternPart::Capture { .. }));
        if has_free_capture {
            let matched = tensors.iter().any(|tensor| {
                target.tensors.iter().position(|d| match_name(&d.pattern, &tensor.name).is_some()) == Some(def_idx)
            });
            if !matched {
                problems.push(SymProblem::Missing { name: pattern_text(&def.pattern) });
            }
        }
    }
    for tensor in &expected {
        if tensor.optional || names.contains(tensor.name.as_str()) {
            continue;
        }
        let from_free_capture_pattern = target.tensors.iter().any(|def| {
            def.pattern.parts.iter().any(|part| matches!(part, PatternPart::Capture { .. }))
                && match_name(&def.pattern, &tensor.name).is_some()
        });
        if !from_free_capture_pattern {
            problems.push(SymProblem::Missing { name: tensor.name.clone() });
        }
    }
    problems
}

/// Whether every dtype `found` admits is one `expected` accepts.
fn subsumes(expected: DTypeClass, found: DTypeClass) -> bool {
    match found {
        DTypeClass::Exact(dtype) => expected.accepts(dtype),
        class => expected == DTypeClass::Any || expected == class,
    }
}

impl fmt::Display for SymProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |shape: &[Sym]| format!("[{}]", shape.iter().map(Sym::to_string).collect::<Vec<_>>().join(", "));
        match self {
            SymProblem::Missing { name } => write!(f, "`{name}` is missing"),
            SymProblem::Unexpected { name } => write!(f, "`{name}` is not in the target schema"),
            SymProblem::Duplicate { name } => write!(f, "two tensors are named `{name}`"),
            SymProblem::Dtype { name, found, expected, disjoint } => {
                let verb = if *disjoint { "is" } else { "may be" };
                write!(f, "`{name}` {verb} {found}, but the target expects {expected}")
            }
            SymProblem::Shape { name, found, expected, unproved_dims } => {
                write!(f, "`{name}` has shape {}, but the target expects {}", list(found), list(expected))?;
                if !unproved_dims.is_empty() {
                    let dims: Vec<String> = unproved_dims.iter().map(|dim| format!("`{dim}`")).collect();
                    write!(f, " (not provably equal in {})", dims.join(", "))?;
                }
                Ok(())
            }
            SymProblem::Target { message } => write!(f, "target schema: {message}"),
        }
    }
}
