//! Compilation: a plan and a concrete checkpoint layout in, one simplified expression per
//! output tensor out, plus the output metadata with provenance.
//!
//! This is the API the `upgrade` command and the lazy view build on: nothing here reads
//! tensor bytes; the engine evaluates the expressions.

use std::collections::BTreeMap;

use safeshift_dsl::ast;
use safeshift_model::{resolve_meta_dim, DTypeClass, Layout, Mismatch, Schema, Sym, TensorInfo};
use safeshift_ops::{
    AuxInfo, Expr, NoInverse, OpContext, OpError, OpErrorKind, Param, ParamValue, PlannedTensor, TensorSet,
};

use crate::plan::{Plan, Step};
use crate::registry::{MigrationDef, Registry};
use crate::symbolic::{apply_ops, apply_plain, counts, instantiate, set_of, symbolic_context};
use crate::{Detection, VersionId};

pub use safeshift_model::keys::{HISTORY_KEY, TOOL_KEY};

/// A plan compiled against one checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct CompiledPlan {
    /// The version the checkpoint is at.
    pub from: VersionId,
    /// The version the outputs are at.
    pub to: VersionId,
    /// The output tensors, in order, each with its simplified expression.
    pub outputs: Vec<PlannedTensor>,
    /// The output metadata: the input's after the metadata operations, plus provenance
    /// (`safeshift.schema`, `safeshift.history`, `safeshift.tool`).
    pub metadata: BTreeMap<String, String>,
    /// Whether some step discards information.
    pub lossy: bool,
    /// The steps, as planned.
    pub steps: Vec<Step>,
    /// Every dim value known at the end (bound from the checkpoint, given, or computed).
    pub dims: BTreeMap<String, i64>,
}

/// Why a plan could not be compiled.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CompileError {
    /// A version of the plan has no usable schema.
    #[error("`{version}` has no usable schema")]
    NoSchema {
        /// The version.
        version: VersionId,
    },
    /// The plan starts elsewhere than the version the checkpoint was detected as.
    #[error("the plan starts at `{start}`, but the checkpoint was detected as `{detected}`")]
    NotDetected {
        /// Where the plan starts.
        start: VersionId,
        /// What detection found.
        detected: VersionId,
    },
    /// A migration of the plan has errors.
    #[error("migration `{migration}` has errors; run `safeshift check`")]
    BrokenMigration {
        /// `from -> to`.
        migration: String,
    },
    /// A migration needs an aux input that was not supplied.
    #[error("migration `{migration}` needs the aux input `{name}`: {description}")]
    MissingAux {
        /// `from -> to`.
        migration: String,
        /// The aux input.
        name: String,
        /// What it is, from the migration.
        description: String,
    },
    /// A parameter was given that no migration of the registry declares (a typo, say).
    #[error("no migration takes a parameter `{name}`{}", if known.is_empty() { String::new() } else { format!("; the parameters are {}", known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")) })]
    UnknownParam {
        /// As given.
        name: String,
        /// Every parameter the registry's migrations declare.
        known: Vec<String>,
    },
    /// A dim has no value.
    #[error("dim `{dim}`, used by migration `{migration}`, has no value; give it with `--dim {dim}=N`")]
    MissingDim {
        /// `from -> to`.
        migration: String,
        /// The dim.
        dim: String,
    },
    /// A dim could not be computed.
    #[error("dim `{dim}` of migration `{migration}`: {message}")]
    BadDim {
        /// `from -> to`.
        migration: String,
        /// The dim.
        dim: String,
        /// Why.
        message: String,
    },
    /// An operation failed on the checkpoint.
    #[error("migration `{migration}`: {source}")]
    Op {
        /// `from -> to`.
        migration: String,
        /// What failed.
        #[source]
        source: OpError,
    },
    /// A migration cannot be undone.
    #[error("cannot undo migration `{migration}`: {source}")]
    NoInverse {
        /// `from -> to`.
        migration: String,
        /// Why.
        #[source]
        source: NoInverse,
    },
    /// A schema could not be instantiated with the checkpoint's dims (to undo a migration).
    #[error("cannot instantiate `{version}` with the checkpoint's dims: {message}")]
    Instantiate {
        /// The version.
        version: VersionId,
        /// Why.
        message: String,
    },
    /// An output's dtype or shape is not concrete.
    #[error("output `{name}` is not concrete: {message}")]
    NotConcrete {
        /// The output.
        name: String,
        /// What is not.
        message: String,
    },
    /// The result does not fit the target schema (a migration does not do what its
    /// target schema says; `safeshift check` finds these statically).
    #[error("the result does not fit `{version}`")]
    TargetMismatch {
        /// The target version.
        version: VersionId,
        /// The differences.
        mismatch: Box<Mismatch>,
    },
}

fn name(migration: &MigrationDef) -> String {
    format!("{} -> {}", migration.from, migration.to)
}

/// Compiles `plan` for the checkpoint with layout `layout`, which `detection` found to be
/// at the plan's start: the dims detection bound are used as they are (the layout is not
/// unified again). `dims` are values given by the caller (`--dim`); `aux` the layouts of
/// the aux inputs supplied, by name.
pub fn compile(
    registry: &Registry,
    plan: &Plan,
    detection: &Detection,
    layout: &Layout,
    dims: &BTreeMap<String, i64>,
    aux: &BTreeMap<String, Layout>,
) -> Result<CompiledPlan, CompileError> {
    compile_with_params(registry, plan, detection, layout, dims, aux, &BTreeMap::new())
}

/// [`compile`] with the migration parameters the caller gives (`--param NAME=VALUE`), by
/// name; a parameter not given takes its declared default.
pub fn compile_with_params(
    registry: &Registry,
    plan: &Plan,
    detection: &Detection,
    layout: &Layout,
    dims: &BTreeMap<String, i64>,
    aux: &BTreeMap<String, Layout>,
    params: &BTreeMap<String, ParamValue>,
) -> Result<CompiledPlan, CompileError> {
    let declared: std::collections::BTreeSet<String> = registry
        .migrations()
        .iter()
        .flat_map(|migration| &migration.ast.decls)
        .filter_map(|decl| match &decl.kind {
            ast::MigrationDeclKind::Param { name, .. } => Some(name.node.clone()),
            _ => None,
        })
        .collect();
    if let Some(unknown) = params.keys().find(|name| !declared.contains(*name)) {
        return Err(CompileError::UnknownParam { name: unknown.clone(), known: declared.into_iter().collect() });
    }
    let schema_of = |version: &VersionId| {
        registry.schema_of(version).ok_or_else(|| CompileError::NoSchema { version: version.clone() })
    };
    if detection.version != plan.from {
        return Err(CompileError::NotDetected { start: plan.from.clone(), detected: detection.version.clone() });
    }
    // Extras (a graph, supporting arrays) pass through; the schemas describe the rest.
    let input_extras = crate::key_layout::extras_of(layout);
    let mut known = detection.dims.clone();
    for (dim, value) in dims {
        known.entry(dim.clone()).or_insert(*value);
    }
    let mut set = TensorSet::from_layout(layout);
    let mut history = previous_history(&layout.metadata);

    for step in &plan.steps {
        let migration = registry.migration(step.migration);
        let ops = registry
            .lowered(step.migration)
            .ok_or_else(|| CompileError::BrokenMigration { migration: name(migration) })?;
        let ctx = concrete_context(registry, migration, step, &set, &known, aux, params)?;
        let op_error = |source: OpError| match &source.kind {
            OpErrorKind::UnknownDim { name: dim } => {
                CompileError::MissingDim { migration: name(migration), dim: dim.clone() }
            }
            // An aux input is only needed by an operation that has something to do.
            OpErrorKind::Aux { input, .. } if !aux.contains_key(input) => CompileError::MissingAux {
                migration: name(migration),
                name: input.clone(),
                description: aux_description(migration, input),
            },
            _ => CompileError::Op { migration: name(migration), source },
        };
        match (step.inverse, &ops.down) {
            (false, _) => apply_plain(&ops.ops, &mut set, &ctx).map_err(op_error)?,
            (true, Some(down)) => apply_plain(down, &mut set, &ctx).map_err(op_error)?,
            (true, None) => {
                // The inverse of each operation is computed on the set it applies to: the
                // source schema instantiated with the checkpoint's dims.
                let source = schema_of(&migration.from)?;
                let mut values = known.clone();
                let before = instantiate(source, &mut values, None).map_err(|err| CompileError::Instantiate {
                    version: migration.from.clone(),
                    message: err.to_string(),
                })?;
                // Names of the instantiated schema are placeholders (`{dataset}` is
                // `dataset`): parameters map them to themselves and aux tensors are known by
                // the names the migration writes here; the inverse runs below with the real ones.
                let mut placeholder_ctx = ctx.clone();
                crate::symbolic::symbolic_params(migration, &mut placeholder_ctx);
                let shape_of = |pattern: &ast::Pattern| {
                    let found = before
                        .iter()
                        .find(|tensor| safeshift_model::pattern::match_name(pattern, &tensor.name).is_some());
                    found.map(|tensor| tensor.shape.clone())
                };
                placeholder_ctx.aux.extend(crate::symbolic::symbolic_aux(migration, &shape_of));
                let applied = apply_ops(&ops.ops, set_of(&before, source), &placeholder_ctx).map_err(op_error)?;
                let inverse =
                    applied.inverse.map_err(|source| CompileError::NoInverse { migration: name(migration), source })?;
                apply_plain(&inverse, &mut set, &ctx).map_err(op_error)?;
            }
        }
        for (dim, value) in &ctx.dims {
            if let Some(value) = value.as_int() {
                known.entry(dim.clone()).or_insert(value);
            }
        }
        history.push(serde_json::json!({
            "from": step.from.to_string(),
            "to": step.to.to_string(),
            "action": if step.inverse { "undo" } else { "apply" },
            "sha256": migration.hash,
        }));
    }

    let (tensors, mut metadata) = set.into_parts();
    let outputs = tensors
        .into_iter()
        .map(|(name, value)| PlannedTensor::new(name, value))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| CompileError::NotConcrete { name: err.tensor, message: err.what })?;

    // The target has a usable schema (the result is checked against it below).
    schema_of(&plan.to)?;
    if !input_extras.is_empty() {
        let extras: Vec<String> = outputs
            .iter()
            .filter(|output| crate::key_layout::is_extra(output.expr(), &input_extras))
            .map(|output| output.name().to_owned())
            .collect();
        metadata.insert(crate::key_layout::EXTRAS_KEY.to_owned(), serde_json::to_string(&extras).unwrap_or_default());
    }
    metadata.insert(crate::SCHEMA_KEY.to_owned(), plan.to.to_string());
    metadata.insert(HISTORY_KEY.to_owned(), serde_json::Value::Array(history).to_string());
    metadata.insert(TOOL_KEY.to_owned(), format!("safeshift {}", env!("CARGO_PKG_VERSION")));
    // The result is checked against the target schema (a migration that does not do what
    // its target schema says is caught here, for the dims of this checkpoint). This is the
    // output's layout, not the input's: the input is unified once, by detection. Without
    // steps the result is the input, which detection already fitted to the target.
    if !plan.steps.is_empty() {
        // Borrowed, not copied into a `Layout`: the outputs are kept.
        let result: Vec<&TensorInfo> = outputs
            .iter()
            .filter(|output| !crate::key_layout::is_extra(output.expr(), &input_extras))
            .map(PlannedTensor::info)
            .collect();
        if let Some(Err(mismatch)) = registry.unify_tensors(&plan.to, &result, &metadata, dims) {
            return Err(CompileError::TargetMismatch { version: plan.to.clone(), mismatch: Box::new(mismatch) });
        }
    }
    Ok(CompiledPlan {
        from: plan.from.clone(),
        to: plan.to.clone(),
        outputs,
        metadata,
        lossy: plan.lossy(),
        steps: plan.steps.clone(),
        dims: known,
    })
}

fn previous_history(metadata: &BTreeMap<String, String>) -> Vec<serde_json::Value> {
    match metadata.get(HISTORY_KEY).map(|text| serde_json::from_str(text)) {
        Some(Ok(serde_json::Value::Array(entries))) => entries,
        _ => Vec::new(),
    }
}

/// What a migration says its aux input `input` is.
fn aux_description(migration: &MigrationDef, input: &str) -> String {
    migration
        .ast
        .decls
        .iter()
        .find_map(|decl| match &decl.kind {
            ast::MigrationDeclKind::Aux { name, doc } if name.node == input => Some(doc.node.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

/// The dims, aux tensors and parameters for one step over a concrete checkpoint.
fn concrete_context(
    registry: &Registry,
    migration: &MigrationDef,
    step: &Step,
    set: &TensorSet,
    known: &BTreeMap<String, i64>,
    aux: &BTreeMap<String, Layout>,
    params: &BTreeMap<String, ParamValue>,
) -> Result<OpContext, CompileError> {
    let mut ctx = OpContext::new(migration.source);
    for (dim, value) in known {
        ctx.dims.insert(dim.clone(), Sym::int(*value));
    }
    let lookup = |name: &str| known.get(name).copied();
    for version in [&step.from, &step.to] {
        let Some(schema) = registry.schema_of(version) else { continue };
        for (dim, definition) in schema.derived_definitions() {
            if let (false, Some(value)) = (ctx.dims.contains_key(&dim), definition.eval(&lookup)) {
                ctx.dims.insert(dim, Sym::int(value));
            }
        }
    }
    for decl in &migration.ast.decls {
        match &decl.kind {
            ast::MigrationDeclKind::Dim(dim) => {
                let dim_name = &dim.name.node;
                let value = match &dim.value {
                    None => lookup(dim_name),
                    Some(ast::DimValue::Expr(expr)) => {
                        let resolved = ctx
                            .resolve(expr)
                            .map_err(|missing| CompileError::MissingDim { migration: name(migration), dim: missing })?;
                        let value = resolved.as_int().ok_or_else(|| CompileError::BadDim {
                            migration: name(migration),
                            dim: dim_name.clone(),
                            message: format!("`{resolved}` is not an integer"),
                        })?;
                        Some(value)
                    }
                    Some(ast::DimValue::Meta(path)) => {
                        Some(resolve_meta_dim(&set.metadata, &path.node).map_err(|err| CompileError::BadDim {
                            migration: name(migration),
                            dim: dim_name.clone(),
                            message: err.to_string(),
                        })?)
                    }
                };
                let value = value
                    .ok_or_else(|| CompileError::MissingDim { migration: name(migration), dim: dim_name.clone() })?;
                ctx.dims.insert(dim_name.clone(), Sym::int(value));
            }
            ast::MigrationDeclKind::Param { name: param, doc, default } => {
                let value = params
                    .get(&param.node)
                    .cloned()
                    .or_else(|| default.as_ref().map(|default| ParamValue::One(default.node.clone())));
                ctx.params.insert(param.node.clone(), Param { doc: doc.node.clone(), value });
            }
            ast::MigrationDeclKind::Aux { name: input, .. } => {
                // A missing input is reported by the operation that needs it.
                let Some(layout) = aux.get(&input.node) else { continue };
                for tensor in &layout.tensors {
                    let shape =
                        tensor.shape.iter().map(|&size| Sym::int(i64::try_from(size).unwrap_or(i64::MAX))).collect();
                    ctx.aux.insert(
                        (input.node.clone(), tensor.name.clone()),
                        AuxInfo { dtype: DTypeClass::Exact(tensor.dtype), shape },
                    );
                }
            }
        }
    }
    Ok(ctx)
}

/// Whether two paths from the same version give the same result, compiled symbolically
/// (two of each counted index): the same output names, each the same simplified
/// expression, and the same metadata. `None` when a path cannot be compiled.
pub(crate) fn same_result(registry: &Registry, first: &[Step], second: &[Step]) -> Option<bool> {
    let start = &first.first()?.from;
    let schema: &Schema = registry.schema_of(start)?;
    let mut counts = counts(schema, 2);
    let tensors = instantiate(schema, &mut counts, Some(2)).ok()?;
    let run = |steps: &[Step]| -> Option<TensorSet> {
        let mut set = set_of(&tensors, schema);
        for step in steps {
            let migration = registry.migration(step.migration);
            let ops = registry.lowered(step.migration)?;
            let from = registry.schema_of(&migration.from)?;
            let mut from_counts = counts.clone();
            let from_tensors = instantiate(from, &mut from_counts, Some(2)).ok()?;
            let ctx = symbolic_context(migration, from, registry.schema_of(&migration.to), &counts, &from_tensors);
            match (step.inverse, &ops.down) {
                (false, _) => apply_plain(&ops.ops, &mut set, &ctx).ok()?,
                (true, Some(down)) => apply_plain(down, &mut set, &ctx).ok()?,
                (true, None) => {
                    let inverse = apply_ops(&ops.ops, set_of(&from_tensors, from), &ctx).ok()?.inverse.ok()?;
                    apply_plain(&inverse, &mut set, &ctx).ok()?;
                }
            }
        }
        Some(set)
    };
    let (a, b) = (run(first)?, run(second)?);
    let simplified = |set: &TensorSet| -> BTreeMap<String, Expr> {
        set.iter().map(|(name, value)| (name.to_owned(), safeshift_ops::simplify(value.expr().clone()))).collect()
    };
    Some(simplified(&a) == simplified(&b) && a.metadata == b.metadata)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::registry;
    use safeshift_model::{DType, TensorInfo};

    const SPLIT: &str = r#"
schema toy @ 1.0.0 {
    dim h
    tensor "qkv" : f32[3 * h, h]
    tensor "norm" : f32[h]
}
schema toy @ 2.0.0 {
    dim h
    tensor "q" : f32[h, h]
    tensor "k" : f32[h, h]
    tensor "v" : f32[h, h]
    tensor "norm" : f32[h]
}
migration toy 1.0.0 -> 2.0.0 "split" {
    split "qkv" axis 0 into "q", "k", "v"
}
migration toy 2.0.0 -> 3.0.0 "rename the norm" {
    rename "norm" -> "final_norm"
}
"#;

    fn id(text: &str) -> VersionId {
        VersionId::parse(text).unwrap()
    }

    /// Detects `layout` as `version` and compiles `path` from there.
    fn compile_at(
        registry: &Registry,
        path: &Plan,
        layout: &Layout,
        dims: &BTreeMap<String, i64>,
        aux: &BTreeMap<String, Layout>,
    ) -> Result<CompiledPlan, CompileError> {
        let detection = crate::detect_as(registry, &path.from, layout, dims).expect("the layout fits the start");
        compile(registry, path, &detection, layout, dims, aux)
    }

    fn layout(tensors: &[(&str, Vec<u64>)]) -> Layout {
        Layout {
            tensors: tensors
                .iter()
                .map(|(name, shape)| TensorInfo { name: (*name).to_owned(), dtype: DType::F32, shape: shape.clone() })
                .collect(),
            metadata: BTreeMap::new(),
        }
    }

    #[test]
    fn compiles_outputs_metadata_and_history() {
        let (registry, diagnostics) = registry(vec![SPLIT.to_owned()]);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let path = crate::plan(registry.graph(), &id("toy@1.0.0"), &id("toy@3.0.0")).unwrap();
        let input = layout(&[("qkv", vec![6, 2]), ("norm", vec![2])]);
        let compiled = compile_at(&registry, &path, &input, &BTreeMap::new(), &BTreeMap::new()).unwrap();
        let outputs: BTreeMap<&str, &[u64]> =
            compiled.outputs.iter().map(|output| (output.name(), output.shape())).collect();
        let expected: BTreeMap<&str, &[u64]> =
            BTreeMap::from([("q", &[2, 2][..]), ("k", &[2, 2][..]), ("v", &[2, 2][..]), ("final_norm", &[2][..])]);
        assert_eq!(outputs, expected);
        assert!(compiled.outputs.iter().all(|output| output.dtype() == DType::F32));
        assert!(!compiled.lossy);
        assert_eq!(compiled.dims.get("h"), Some(&2));
        assert_eq!(compiled.metadata[crate::SCHEMA_KEY], "toy@3.0.0");
        let history: serde_json::Value = serde_json::from_str(&compiled.metadata[HISTORY_KEY]).unwrap();
        assert_eq!(history.as_array().unwrap().len(), 2);
        assert_eq!(history[0]["from"], "toy@1.0.0");
        assert_eq!(history[0]["sha256"], registry.migrations()[0].hash.as_str());
        assert_eq!(registry.migrations()[0].hash.len(), 64);
        assert!(compiled.metadata[TOOL_KEY].starts_with("safeshift "));
    }

    #[test]
    fn history_is_appended_to() {
        let (registry, _) = registry(vec![SPLIT.to_owned()]);
        let first = crate::plan(registry.graph(), &id("toy@1.0.0"), &id("toy@2.0.0")).unwrap();
        let input = layout(&[("qkv", vec![6, 2]), ("norm", vec![2])]);
        let compiled = compile_at(&registry, &first, &input, &BTreeMap::new(), &BTreeMap::new()).unwrap();
        let mut middle = layout(&[("q", vec![2, 2]), ("k", vec![2, 2]), ("v", vec![2, 2]), ("norm", vec![2])]);
        middle.metadata = compiled.metadata.clone();
        let second = crate::plan(registry.graph(), &id("toy@2.0.0"), &id("toy@3.0.0")).unwrap();
        let compiled = compile_at(&registry, &second, &middle, &BTreeMap::new(), &BTreeMap::new()).unwrap();
        let history: serde_json::Value = serde_json::from_str(&compiled.metadata[HISTORY_KEY]).unwrap();
        let steps: Vec<&str> = history.as_array().unwrap().iter().map(|entry| entry["to"].as_str().unwrap()).collect();
        assert_eq!(steps, ["toy@2.0.0", "toy@3.0.0"]);
    }

    #[test]
    fn a_layout_that_does_not_fit_the_start_is_refused() {
        let (registry, _) = registry(vec![SPLIT.to_owned()]);
        let path = crate::plan(registry.graph(), &id("toy@1.0.0"), &id("toy@2.0.0")).unwrap();
        let wrong = layout(&[("qkv", vec![5, 2]), ("norm", vec![2])]);
        // Compilation starts from a detection: a layout that does not fit the start has none.
        let err = crate::detect_as(&registry, &path.from, &wrong, &BTreeMap::new()).unwrap_err();
        assert!(matches!(err, crate::DetectError::NoFit { .. }), "{err}");
        // And a detection of another version is refused.
        let right = layout(&[("qkv", vec![6, 2]), ("norm", vec![2])]);
        let mut detection = crate::detect_as(&registry, &path.from, &right, &BTreeMap::new()).unwrap();
        detection.version = id("toy@2.0.0");
        let err = compile(&registry, &path, &detection, &right, &BTreeMap::new(), &BTreeMap::new()).unwrap_err();
        assert!(matches!(err, CompileError::NotDetected { .. }), "{err}");
    }

    #[test]
    fn missing_aux_inputs_and_dims_are_named() {
        let text = r#"
schema g @ 1.0.0 {
    dim n
    tensor "w" : f32[n]
}
migration g 1.0.0 -> 2.0.0 "reorder" {
    aux graph "the training graph, as safetensors"
    gather "w" axis 0 index graph["perm"]
}
migration g 2.0.0 -> 3.0.0 "heads" {
    dim heads
    reshape "w" to [heads, n / heads]
}
"#;
        let (registry, diagnostics) = registry(vec![text.to_owned()]);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let input = layout(&[("w", vec![4])]);
        let path = crate::plan(registry.graph(), &id("g@1.0.0"), &id("g@2.0.0")).unwrap();
        let err = compile_at(&registry, &path, &input, &BTreeMap::new(), &BTreeMap::new()).unwrap_err();
        assert_eq!(
            err,
            CompileError::MissingAux {
                migration: "g@1.0.0 -> g@2.0.0".into(),
                name: "graph".into(),
                description: "the training graph, as safetensors".into()
            }
        );
        let perm = Layout {
            tensors: vec![TensorInfo { name: "perm".into(), dtype: DType::I64, shape: vec![4] }],
            metadata: BTreeMap::new(),
        };
        let aux = BTreeMap::from([("graph".to_owned(), perm)]);
        assert!(compile_at(&registry, &path, &input, &BTreeMap::new(), &aux).is_ok());

        let path = crate::plan(registry.graph(), &id("g@2.0.0"), &id("g@3.0.0")).unwrap();
        let err = compile_at(&registry, &path, &input, &BTreeMap::new(), &BTreeMap::new()).unwrap_err();
        assert_eq!(err, CompileError::MissingDim { migration: "g@2.0.0 -> g@3.0.0".into(), dim: "heads".into() });
        let dims = BTreeMap::from([("heads".to_owned(), 2)]);
        let compiled = compile_at(&registry, &path, &input, &dims, &BTreeMap::new()).unwrap();
        assert_eq!(compiled.outputs[0].shape(), [2, 2]);
    }

    #[test]
    fn equal_paths_are_told_apart_by_their_results() {
        let text = r#"
schema t @ 1.0.0 {
    dim n
    tensor "a" : f32[n]
    tensor "b" : f32[n]
}
migration t 1.0.0 -> 1.1.0 { rename "a" -> "x" }
migration t 1.1.0 -> 2.0.0 { rename "b" -> "y" }
migration t 1.0.0 -> 1.2.0 { rename "b" -> "y" }
migration t 1.2.0 -> 2.0.0 { rename "a" -> "x" }
migration t 1.0.0 -> 1.3.0 { rename "a" -> "y" }
migration t 1.3.0 -> 2.0.0 { rename "b" -> "x" }
"#;
        let (registry, diagnostics) = registry(vec![text.to_owned()]);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let paths = crate::plan::shortest_paths(registry.graph(), &id("t@1.0.0"), &id("t@2.0.0"), 3).unwrap();
        assert_eq!(paths.len(), 3);
        assert_eq!(same_result(&registry, &paths[0], &paths[1]), Some(true));
        assert_eq!(same_result(&registry, &paths[0], &paths[2]), Some(false));
    }
}
