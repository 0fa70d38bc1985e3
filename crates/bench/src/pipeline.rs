//! safeshift's side of the rewrites, through the library's public load-time path: a
//! registry (schemas and migrations in the safeshift language, written into the scratch
//! directory) and `safeshift::Registry::open_with`, which reads the header, detects the
//! version, plans the path, compiles one expression per output tensor and builds the
//! lazy view, whose streaming writer produces the file. This is what
//! `safeshift upgrade --registry DIR --to V` runs.

use std::path::Path;

use safeshift::engine::WriteOptions;
use safeshift::{Migrated, OpenOptions, Registry};

use crate::synth::ModelShape;

/// Which migration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Migration {
    /// Renames and a reshape: every output is a byte range of the input (to 1.1.0).
    Light,
    /// split-heads (interleaved), transpose, cast f32 → bf16 (to 2.0.0, lossy).
    Heavy,
}

impl Migration {
    /// The target version.
    fn target(self) -> &'static str {
        match self {
            Migration::Light => "1.1.0",
            Migration::Heavy => "2.0.0",
        }
    }
}

/// Writes the bench's registry into `dir` (`schemas/bench.ss`, `migrations/bench.ss`).
pub fn write_registry(dir: &Path, shape: &ModelShape) -> std::io::Result<()> {
    std::fs::create_dir_all(dir.join("schemas"))?;
    std::fs::create_dir_all(dir.join("migrations"))?;
    std::fs::write(dir.join("schemas/bench.ss"), SCHEMAS)?;
    std::fs::write(dir.join("migrations/bench.ss"), migrations(shape.heads))
}

/// Loads the registry in `dir`, refusing one with errors.
pub fn load_registry(dir: &Path) -> Result<Registry, String> {
    Registry::load(dir).map_err(|err| format!("{err}: {:?}", err.diagnostics))
}

/// Opens `input` migrated to `migration`'s target: headers only, then detect, plan,
/// compile and build the view.
pub fn open(registry: &Registry, input: &Path, migration: Migration) -> Result<Migrated, safeshift::OpenError> {
    let options = OpenOptions {
        to: Some(migration.target().to_owned()),
        allow_lossy: migration == Migration::Heavy,
        ..OpenOptions::default()
    };
    registry.open_with(input, &options)
}

/// Loads the registry, opens `input` migrated and writes the result to `output`.
pub fn rewrite(
    registry_dir: &Path,
    input: &Path,
    output: &Path,
    migration: Migration,
) -> Result<(), Box<dyn std::error::Error>> {
    let registry = load_registry(registry_dir)?;
    let migrated = open(&registry, input, migration)?;
    migrated.view().write_to(output, &WriteOptions::default())?;
    println!("{} -> {}", migrated.from_version(), migrated.to_version());
    Ok(())
}

/// The schemas of the three versions.
const SCHEMAS: &str = include_str!("bench_schemas.ss");

fn migrations(heads: u64) -> String {
    format!(
        r#"migration bench.model 1.0.0 -> 1.1.0 "rename the blocks, shape the qkv bias" {{
    rename "model.model.processor.proc.{{i}}.{{rest..}}" -> "model.processor.layers.{{i}}.{{rest}}"
    reshape "model.processor.layers.{{i}}.attention.lin_qkv.bias" to [3, hidden]
}}

migration bench.model 1.0.0 -> 2.0.0 "split qkv, transpose, cast attention to bf16" {{
    split-heads "{{p..}}.attention.lin_qkv.{{w}}" into "{{p}}.attention.lin_q.{{w}}", "{{p}}.attention.lin_k.{{w}}", "{{p}}.attention.lin_v.{{w}}" layout interleaved heads {heads}
    cast "{{p..}}.attention.lin_{{x}}.weight" to bf16 lossy
    transpose "{{p..}}.attention.projection.weight"
    cast "{{p..}}.attention.projection.weight" to bf16 lossy
    transpose "{{p..}}.mlp.2.weight"
}}
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use safeshift::engine::Checkpoint;
    use safeshift::model::DType;

    #[test]
    fn both_migrations_run_through_the_registry_on_a_small_model() {
        let dir = tempfile::tempdir().unwrap();
        let shape = ModelShape { hidden: 16, heads: 2, layers: 2 };
        write_registry(&dir.path().join("registry"), &shape).unwrap();
        let registry = load_registry(&dir.path().join("registry")).unwrap();
        let input = dir.path().join("model.safetensors");
        crate::synth::generate(&input, &shape).unwrap();

        let light = open(&registry, &input, Migration::Light).unwrap();
        assert_eq!(light.from_version().to_string(), "bench.model@1.0.0");
        let bias = light.view().info("model.processor.layers.1.attention.lin_qkv.bias").unwrap();
        assert_eq!(bias.shape, vec![3, 16]);
        assert!(light.view().names().all(|name| light.view().is_zero_copy(name)));

        let heavy = open(&registry, &input, Migration::Heavy).unwrap();
        let k = heavy.view().info("model.model.processor.proc.0.attention.lin_k.weight").unwrap();
        assert_eq!((k.dtype, k.shape.clone()), (DType::BF16, vec![16, 16]));
        assert_eq!(heavy.view().layout().tensors.len(), light.view().layout().tensors.len() + 2 * 2 * 2);
        // Interleaved heads (head size 16 / 2 = 8): k's first bias row is fused row 8.
        let fused = crate::synth::ModelShape::tensors(&shape);
        assert!(fused.iter().any(|t| t.name == "model.model.processor.proc.0.attention.lin_qkv.bias"));
        let checkpoint = Checkpoint::open(&input).unwrap();
        let qkv_bias = checkpoint.tensor_bytes("model.model.processor.proc.0.attention.lin_qkv.bias").unwrap();
        let k_bias = heavy.view().tensor("model.model.processor.proc.0.attention.lin_k.bias").unwrap();
        assert_eq!(&k_bias[..8 * 4], &qkv_bias[8 * 4..16 * 4]);
        assert_eq!(&k_bias[8 * 4..], &qkv_bias[32 * 4..40 * 4]);
    }
}
