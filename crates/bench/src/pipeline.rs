//! safeshift's side of the rewrites: the bench's migrations written in the safeshift
//! language, parsed (`safeshift-dsl`), lowered and applied to the checkpoint's layout
//! (`safeshift-ops`), and executed by the lazy view's writer (`safeshift-engine`).
//!
//! This is the pipeline `safeshift upgrade` runs, minus detection and path planning
//! (`safeshift-graph`): the migration to apply is given rather than found.

use std::path::Path;

use safeshift_dsl::ast::Item;
use safeshift_dsl::SourceId;
use safeshift_engine::{Checkpoint, MigratedView, PlannedTensor, TensorOrder, WriteOptions};
use safeshift_model::{DTypeClass, Sym};
use safeshift_ops::{lower_all, OpContext, TensorSet};

use crate::synth::ModelShape;

/// Which migration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Migration {
    /// Renames and a reshape: every output is a byte range of the input.
    Light,
    /// split-heads (interleaved), transpose, cast f32 → bf16.
    Heavy,
}

/// The migration's text in the safeshift language.
pub fn migration_text(migration: Migration, heads: u64) -> String {
    match migration {
        Migration::Light => r#"migration bench.model 1.0.0 -> 1.1.0 "rename the blocks, shape the qkv bias" {
    rename "model.model.processor.proc.{i}.{rest..}" -> "model.processor.layers.{i}.{rest}"
    reshape "model.processor.layers.{i}.attention.lin_qkv.bias" to [3, hidden]
}
"#
        .to_owned(),
        Migration::Heavy => format!(
            r#"migration bench.model 1.0.0 -> 2.0.0 "split qkv, transpose, cast attention to bf16" {{
    split-heads "{{p..}}.attention.lin_qkv.{{w}}" into "{{p}}.attention.lin_q.{{w}}", "{{p}}.attention.lin_k.{{w}}", "{{p}}.attention.lin_v.{{w}}" layout interleaved heads {heads}
    cast "{{p..}}.attention.lin_{{x}}.weight" to bf16 lossy
    transpose "{{p..}}.attention.projection.weight"
    cast "{{p..}}.attention.projection.weight" to bf16 lossy
    transpose "{{p..}}.mlp.2.weight"
}}
"#
        ),
    }
}

/// One expression per output tensor: the migration applied to `checkpoint`'s layout.
pub fn plan(checkpoint: &Checkpoint, migration: Migration, shape: &ModelShape) -> Result<Vec<PlannedTensor>, String> {
    let source = SourceId(0);
    let text = migration_text(migration, shape.heads);
    let file = safeshift_dsl::parse(source, &text).map_err(|diagnostics| format!("{diagnostics:?}"))?;
    let Some(Item::Migration(parsed)) = file.items.into_iter().next() else {
        return Err("the migration text holds no migration".into());
    };
    let (operations, diagnostics) = lower_all(source, &parsed.ops);
    if !diagnostics.is_empty() {
        return Err(format!("{diagnostics:?}"));
    }
    let ctx = OpContext::new(source).with_dim("hidden", Sym::int(shape.hidden as i64));
    let mut set = TensorSet::from_layout(checkpoint.layout());
    for operation in &operations {
        operation.apply(&mut set, &ctx).map_err(|err| err.to_string())?;
    }
    let mut planned = Vec::with_capacity(set.len());
    for (name, value) in set.iter() {
        let DTypeClass::Exact(dtype) = value.dtype() else {
            return Err(format!("`{name}` has no concrete dtype"));
        };
        let dims: Option<Vec<u64>> =
            value.shape().iter().map(|dim| dim.as_int().and_then(|value| u64::try_from(value).ok())).collect();
        let shape = dims.ok_or_else(|| format!("`{name}` has a symbolic shape"))?;
        planned.push(PlannedTensor { name: name.to_owned(), dtype, shape, expr: value.expr().clone() });
    }
    Ok(planned)
}

/// Opens `input`, plans `migration` and writes the result to `output`.
pub fn rewrite(
    input: &Path,
    output: &Path,
    migration: Migration,
    shape: &ModelShape,
) -> Result<(), Box<dyn std::error::Error>> {
    let checkpoint = Checkpoint::open(input)?;
    let planned = plan(&checkpoint, migration, shape)?;
    let metadata = checkpoint.layout().metadata.clone();
    let view = MigratedView::new(checkpoint, Default::default(), planned, metadata)?;
    let options = WriteOptions { order: TensorOrder::AsGiven, ..WriteOptions::default() };
    view.write_to(output, &options)?;
    Ok(())
}
