//! Static checking of every migration: its operations applied to the source schema, with
//! symbolic dims, must give exactly the target schema.
//!
//! The source schema is instantiated twice, with two and with three of every counted
//! index, so a rule that only holds for one count is caught. Problems found with both
//! counts are reported once, per tensor pattern of the target schema.

use std::collections::{BTreeMap, BTreeSet};

use safeshift_dsl::ast::Span;
use safeshift_dsl::{Diagnostic, SourceId};
use safeshift_model::pattern::match_name;
use safeshift_model::{compare_symbolic, pattern_text, Schema, Sym, SymProblem};

use crate::registry::{MigrationDef, MigrationId, Registry};
use crate::symbolic::{
    apply_ops, apply_plain, counts, instantiate, optional_names, set_of, sym_tensors, symbolic_context, LoweredOps,
};

/// The counts of each counted dim the checker tries.
const COUNTS: [i64; 2] = [2, 3];

/// Checks every migration whose two schemas are usable.
pub fn check_migrations(registry: &Registry) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    for (index, migration) in registry.migrations().iter().enumerate() {
        let id = MigrationId(index);
        if !registry.graph().contains(&migration.from) || !registry.graph().contains(&migration.to) {
            continue;
        }
        let (Some(from), Some(to), Some(ops)) =
            (registry.schema_of(&migration.from), registry.schema_of(&migration.to), registry.lowered(id))
        else {
            continue;
        };
        diagnostics.extend(check_migration(migration, from, to, ops));
    }
    diagnostics
}

fn check_migration(migration: &MigrationDef, from: &Schema, to: &Schema, ops: &LoweredOps) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    let mut seen: BTreeSet<(&'static str, String)> = BTreeSet::new();
    for count in COUNTS {
        let mut counts = counts(from, count);
        let tensors = match instantiate(from, &mut counts, count) {
            Ok(tensors) => tensors,
            Err(err) => {
                let (source, span) = (migration.source, migration.ast.from.span);
                diagnostics.push(Diagnostic::error(
                    "uninstantiable-schema",
                    format!("cannot instantiate `{}` to check this migration: {err}", migration.from),
                    source,
                    span,
                ));
                return diagnostics;
            }
        };
        let optional = optional_names(&tensors);
        let ctx = symbolic_context(migration, from, Some(to), &counts, &tensors);
        let applied = match apply_ops(&ops.ops, set_of(&tensors, from), &ctx) {
            Ok(applied) => applied,
            Err(err) => {
                if seen.insert(("op-failed", err.to_string())) {
                    diagnostics.push(
                        Diagnostic::error(
                            "op-failed",
                            format!("`{}` fails on `{}`: {}", err.op, migration.from, err.kind),
                            err.file,
                            err.span,
                        )
                        .with_label(err.tensor.as_ref().map(|name| format!("on `{name}`")).unwrap_or_default()),
                    );
                }
                return diagnostics;
            }
        };
        let produced = sym_tensors(&applied.set, &optional);
        for problem in compare_symbolic(to, &produced, &counts) {
            let diagnostic = problem_diagnostic(migration, to, &problem, &applied.made_by);
            if seen.insert((diagnostic.code, diagnostic.message.clone())) {
                diagnostics.push(diagnostic);
            }
        }
        if let Some(down) = &ops.down {
            let mut back = applied.set.clone();
            if let Err(err) = apply_plain(down, &mut back, &ctx) {
                if seen.insert(("down-failed", err.to_string())) {
                    diagnostics.push(Diagnostic::error(
                        "down-failed",
                        format!("the `down` block fails on `{}`: {err}", migration.to),
                        err.file,
                        err.span,
                    ));
                }
                continue;
            }
            for problem in compare_symbolic(from, &sym_tensors(&back, &optional), &counts) {
                let diagnostic = problem_diagnostic(migration, from, &problem, &BTreeMap::new());
                let diagnostic = Diagnostic {
                    message: format!("`down`: {}", diagnostic.message),
                    primary: safeshift_dsl::Label {
                        source: migration.source,
                        span: migration.ast.down.as_ref().map_or(migration.ast.span, |down| down.span),
                        message: String::new(),
                    },
                    ..diagnostic
                };
                if seen.insert((diagnostic.code, diagnostic.message.clone())) {
                    diagnostics.push(diagnostic);
                }
            }
        }
    }
    diagnostics
}

/// The pattern text of the target tensor a name belongs to, and where it is declared.
fn target_def(target: &Schema, name: &str) -> Option<(String, SourceId, Span)> {
    let def = target.tensors.iter().find(|def| match_name(&def.pattern, name).is_some())?;
    Some((pattern_text(&def.pattern), target.source, def.span))
}

/// A name with its digit-only segments shown as `{n}`, so that the same problem for
/// every index reads as one.
fn generic_name(name: &str) -> String {
    name.split('.')
        .map(|segment| if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) { "{n}" } else { segment })
        .collect::<Vec<_>>()
        .join(".")
}

fn shape_text(shape: &[Sym]) -> String {
    format!("[{}]", shape.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
}

fn problem_diagnostic(
    migration: &MigrationDef,
    target: &Schema,
    problem: &SymProblem,
    made_by: &BTreeMap<String, Span>,
) -> Diagnostic {
    let (source, header) = (migration.source, crate::graph::header_span(migration));
    let at = |name: &str| made_by.get(name).copied().unwrap_or(header);
    let shown = |name: &str| target_def(target, name).map_or_else(|| generic_name(name), |(text, _, _)| text);
    let declared = |diagnostic: Diagnostic, name: &str, label: &str| match target_def(target, name) {
        Some((_, file, span)) => diagnostic.with_secondary(file, span, label),
        None => diagnostic.with_secondary(target.source, target.span, format!("`{}`", target.id())),
    };
    let target_id = target.id();
    match problem {
        SymProblem::Missing { name } => declared(
            Diagnostic::error(
                "missing-tensor",
                format!("`{}` is missing after the migration: `{target_id}` requires it", shown(name)),
                source,
                header,
            )
            .with_label("this migration does not produce it")
            .with_hint("create it (`rename`, `insert`, …), or mark it `optional` in the target schema"),
            name,
            "required here",
        ),
        SymProblem::Unexpected { name } => Diagnostic::error(
            "unexpected-tensor",
            format!(
                "`{}` is left after the migration, but `{target_id}` neither declares nor allows it",
                generic_name(name)
            ),
            source,
            at(name),
        )
        .with_label("left over")
        .with_secondary(target.source, target.span, format!("`{target_id}`"))
        .with_hint("rename or drop it, or `allow` it in the target schema"),
        SymProblem::Duplicate { name } => Diagnostic::error(
            "duplicate-tensor",
            format!("two tensors are named `{}` after the migration", generic_name(name)),
            source,
            at(name),
        ),
        SymProblem::Dtype { name, found, expected, disjoint } => declared(
            Diagnostic::error(
                "dtype-mismatch",
                format!("`{}` is `{found}` after the migration, but `{target_id}` expects `{expected}`", shown(name)),
                source,
                at(name),
            )
            .with_label(if *disjoint { "wrong dtype" } else { "not provably the expected dtype" }),
            name,
            "declared here",
        ),
        SymProblem::Shape { name, found, expected, unproved_dims } => {
            let mut diagnostic = Diagnostic::error(
                "shape-mismatch",
                format!(
                    "`{}` has shape {} after the migration, but `{target_id}` expects {}",
                    shown(name),
                    shape_text(found),
                    shape_text(expected)
                ),
                source,
                at(name),
            )
            .with_label("gives this shape");
            if !unproved_dims.is_empty() {
                let dims = unproved_dims.iter().map(|dim| format!("`{dim}`")).collect::<Vec<_>>().join(", ");
                diagnostic = diagnostic.with_hint(format!("cannot prove the sizes equal for all values of {dims}"));
            }
            declared(diagnostic, name, "declared here")
        }
        SymProblem::Target { message } => Diagnostic::error(
            "target-schema",
            format!("cannot enumerate `{target_id}`: {message}"),
            target.source,
            target.span,
        ),
    }
}
