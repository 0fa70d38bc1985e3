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

    for &(tensor_idx, def_idx) in &assigned {
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
        if has_free_capture && !assigned.iter().any(|(_, assigned_def)| *assigned_def == Some(def_idx)) {
            problems.push(SymProblem::Missing { name: pattern_text(&def.pattern) });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{dims, schema};

    const FUSED: &str = r#"
        schema a @ 0.4.0 {
            dim hidden
            dim chunks
            dim blocks
            tensor "proc.{c < chunks}.blocks.{j < blocks}.qkv.weight" : float[3 * hidden, hidden]
            tensor "proc.{c < chunks}.blocks.{j < blocks}.norm.weight" : f32[hidden]
        }
    "#;

    const SPLIT: &str = r#"
        schema a @ 0.5.0 {
            dim hidden
            dim layers
            dim heads = meta("config.heads")
            dim head_dim = hidden / heads
            tensor "proc.{i < layers}.q.weight" : float[heads * head_dim, hidden]
            tensor "proc.{i < layers}.k.weight" : float[hidden, hidden]
            tensor "proc.{i < layers}.v.weight" : float[hidden, hidden]
            tensor "proc.{i < layers}.norm.weight" : float[hidden]
            tensor "proc.{i < layers}.q_norm.weight" : f32[head_dim] optional
            allow "extras.{x..}"
        }
    "#;

    /// What a migration `split qkv into q, k, v` + `rename proc.{c}.blocks.{j} -> proc.{c * blocks + j}`
    /// would produce from FUSED with the given per-tensor rows of q.
    fn migrated(q_rows: Sym) -> Vec<SymTensor> {
        let hidden = Sym::dim("hidden");
        let mut out = Vec::new();
        for layer in 0..4 {
            for (part, rows) in [("q", q_rows.clone()), ("k", hidden.clone()), ("v", hidden.clone())] {
                out.push(SymTensor {
                    name: format!("proc.{layer}.{part}.weight"),
                    dtype: DTypeClass::Float,
                    shape: vec![rows, hidden.clone()],
                    optional: false,
                });
            }
            out.push(SymTensor {
                name: format!("proc.{layer}.norm.weight"),
                dtype: DTypeClass::Exact(DType::F32),
                shape: vec![hidden.clone()],
                optional: false,
            });
        }
        out
    }

    #[test]
    fn a_schema_agrees_with_itself() {
        for text in [FUSED, SPLIT] {
            let schema = schema(text);
            let counts = dims(&[("chunks", 2), ("blocks", 3), ("layers", 2)]);
            let tensors = instantiate_symbolic(&schema, &counts).unwrap();
            assert_eq!(compare_symbolic(&schema, &tensors, &counts), vec![]);
        }
    }

    #[test]
    fn a_correct_migration_result_matches_with_inferred_counts() {
        let target = schema(SPLIT);
        // `layers` is not given: four layers are inferred from the names.
        let problems = compare_symbolic(&target, &migrated(Sym::dim("hidden")), &dims(&[("chunks", 2), ("blocks", 2)]));
        assert_eq!(problems, vec![]);
    }

    #[test]
    fn wrong_shapes_name_the_unproved_dims() {
        let target = schema(SPLIT);
        let wrong = Sym::int(2).mul(&Sym::dim("hidden"));
        let problems = compare_symbolic(&target, &migrated(wrong.clone()), &dims(&[("layers", 4)]));
        assert_eq!(problems.len(), 4);
        assert_eq!(
            problems[0],
            SymProblem::Shape {
                name: "proc.0.q.weight".into(),
                found: vec![wrong, Sym::dim("hidden")],
                expected: vec![Sym::dim("hidden"), Sym::dim("hidden")],
                unproved_dims: vec!["hidden".into()],
            }
        );
        assert_eq!(
            problems[0].to_string(),
            "`proc.0.q.weight` has shape [2 * hidden, hidden], but the target expects [hidden, hidden] (not provably equal in `hidden`)"
        );
    }

    #[test]
    fn missing_unexpected_duplicate_and_dtype_problems() {
        let target = schema(SPLIT);
        let mut tensors = migrated(Sym::dim("hidden"));
        tensors.retain(|t| t.name != "proc.3.v.weight");
        tensors[0].dtype = DTypeClass::Int;
        tensors[1].dtype = DTypeClass::Any;
        tensors.push(SymTensor { name: "proc.9.k.weight".into(), ..tensors[1].clone() });
        tensors.push(SymTensor { name: "stray".into(), ..tensors[2].clone() });
        tensors.push(SymTensor { name: "stray".into(), ..tensors[2].clone() });
        tensors.push(SymTensor { name: "extras.a".into(), ..tensors[2].clone() });
        let problems = compare_symbolic(&target, &tensors, &dims(&[("layers", 4)]));
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            vec![
                "two tensors are named `stray`",
                "`proc.0.q.weight` is int, but the target expects float",
                "`proc.0.k.weight` may be any, but the target expects float",
                "`proc.9.k.weight` is not in the target schema",
                "`stray` is not in the target schema",
                "`stray` is not in the target schema",
                "`proc.3.v.weight` is missing",
            ]
        );
        assert!(matches!(problems[1], SymProblem::Dtype { disjoint: true, .. }));
        assert!(matches!(problems[2], SymProblem::Dtype { disjoint: false, .. }));
    }

    #[test]
    fn an_absent_required_family_is_missing() {
        let target = schema(SPLIT);
        let problems = compare_symbolic(&target, &[], &BTreeMap::new());
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            vec![
                "`proc.{i < layers}.q.weight` is missing",
                "`proc.{i < layers}.k.weight` is missing",
                "`proc.{i < layers}.v.weight` is missing",
                "`proc.{i < layers}.norm.weight` is missing",
            ]
        );
    }
}
