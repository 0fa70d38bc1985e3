//! Everything `safeshift check` runs, as library calls.

use std::collections::BTreeMap;

use safeshift_dsl::Diagnostic;

use crate::compile::{compile, same_result};
use crate::static_check::check_migrations;
use safeshift_model::Layout;

use crate::synth::{run_in_memory, synth, synth_aux, synth_dims};
use crate::{detect_as, plan, validate, DetectError, Registry};

/// Every problem of a loaded registry: graph validation (equal-cost paths compared by
/// compiling both symbolically) and static checking of every migration.
pub fn check(registry: &Registry) -> Vec<Diagnostic> {
    let mut diagnostics = validate(registry, &same_result);
    diagnostics.extend(check_migrations(registry));
    diagnostics
}

/// For every version with a usable schema: a synthetic checkpoint, upgraded in memory
/// to its family's target, must fit the target schema.
pub fn check_synth(registry: &Registry) -> Vec<Diagnostic> {
    let graph = registry.graph();
    let mut diagnostics = Vec::new();
    let mut skipped = Vec::new();
    for version in graph.versions() {
        let Some(target) = registry.default_target(&version.family) else { continue };
        if registry.schema_of(version).is_none() || registry.schema_of(&target).is_none() {
            continue;
        }
        let (source, span) = graph.location(version).expect("every version has a location");
        let fail = |message: String| Diagnostic::error("synth-failed", message, source, span);
        let Ok(path) = plan(graph, version, &target) else {
            // Reported by validation (`unreachable-version`).
            continue;
        };
        let given = synth_dims(registry, version, &BTreeMap::new());
        let input = match synth(registry, version, &given, 0) {
            Ok(input) => input,
            Err(err) => {
                diagnostics.push(fail(format!("cannot synthesise `{version}`: {}", chain(&err))));
                continue;
            }
        };
        let detection = match detect_as(registry, version, &input.layout, &given) {
            Ok(detection) => detection,
            Err(DetectError::NoFit { nearest }) if !nearest.is_empty() => {
                let mismatch = &nearest[0].mismatch;
                diagnostics.push(fail(format!("a synthetic `{version}` does not fit its own schema:\n{mismatch}")));
                continue;
            }
            Err(err) => {
                diagnostics.push(fail(format!("a synthetic `{version}` does not fit its own schema: {err}")));
                continue;
            }
        };
        let Some(aux) = synth_aux(registry, &path, &given) else {
            skipped.push(version.clone());
            continue;
        };
        let aux_layouts: BTreeMap<String, Layout> =
            aux.iter().map(|(name, checkpoint)| (name.clone(), checkpoint.layout.clone())).collect();
        let compiled = match compile(registry, &path, &detection, &input.layout, &given, &aux_layouts) {
            Ok(compiled) => compiled,
            Err(err) => {
                diagnostics
                    .push(fail(format!("upgrading a synthetic `{version}` to `{target}` fails: {}", chain(&err))));
                continue;
            }
        };
        if let Err(err) = run_in_memory(&compiled, &input, &aux) {
            diagnostics.push(fail(format!("upgrading a synthetic `{version}` to `{target}` fails: {}", chain(&err))));
        }
    }
    if let Some(first) = skipped.first() {
        let (source, span) = graph.location(first).expect("every version has a location");
        let names = skipped.iter().map(|id| format!("`{id}`")).collect::<Vec<_>>().join(", ");
        diagnostics.push(Diagnostic::warning(
            "synth-skipped",
            format!("not upgraded synthetically (the length of an aux input cannot be inferred): {names}"),
            source,
            span,
        ));
    }
    diagnostics
}

/// An error and its causes, `: `-separated.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}
