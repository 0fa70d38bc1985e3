//! Registries of every size for step 1: the bench's three schemas plus generated
//! families, as a model zoo or a company's registry of every model it shipped would be.
//!
//! Family `zoo.f{k}` has versions `1.0.0` … `1.9.0` (ten schemas, no migrations), each of
//! fourteen tensors under its own prefix `zoo{k}.` (an embedding, counted blocks of
//! attention and MLP weights, a version-specific head), and every fourth family also
//! has the bench model's `model.model.encoder.proj.weight`, so that names overlap across
//! families the way shared building blocks do.

use std::fmt::Write;
use std::path::Path;

use crate::synth::ModelShape;

/// Versions per generated family.
const VERSIONS: usize = 10;

/// Writes a registry of `schemas` schemas (at least the bench's three) into `dir`: the
/// bench's schemas and migrations, and `schemas - 3` generated ones.
pub fn write(dir: &Path, shape: &ModelShape, schemas: usize) -> std::io::Result<()> {
    crate::pipeline::write_registry(dir, shape)?;
    let generated = schemas.saturating_sub(3);
    let mut text = String::new();
    for index in 0..generated {
        let (family, version) = (index / VERSIONS, index % VERSIONS);
        text.push_str(&schema(family, version));
        // Files of about a hundred schemas, as a real registry would split them.
        if (index + 1) % 100 == 0 || index + 1 == generated {
            std::fs::write(dir.join(format!("schemas/zoo-{:05}.ss", index / 100)), &text)?;
            text.clear();
        }
    }
    Ok(())
}

fn schema(family: usize, version: usize) -> String {
    let mut text = String::new();
    let p = format!("zoo{family}");
    let _ = writeln!(text, "schema zoo.f{family} @ 1.{version}.0 {{");
    text.push_str("    dim hidden\n    dim layers\n    dim vocab\n");
    let _ = writeln!(text, "    tensor \"{p}.embed.weight\" : float[vocab, hidden]");
    if family % 4 == 0 {
        text.push_str("    tensor \"model.model.encoder.proj.weight\" : f32[hidden, 128]\n");
    }
    for (name, shape) in [
        ("attn.q.weight", "[hidden, hidden]"),
        ("attn.k.weight", "[hidden, hidden]"),
        ("attn.v.weight", "[hidden, hidden]"),
        ("attn.o.weight", "[hidden, hidden]"),
        ("norm1.weight", "[hidden]"),
        ("norm2.weight", "[hidden]"),
        ("mlp.up.weight", "[4 * hidden, hidden]"),
        ("mlp.down.weight", "[hidden, 4 * hidden]"),
    ] {
        let _ = writeln!(text, "    tensor \"{p}.blocks.{{i < layers}}.{name}\" : float{shape}");
    }
    // What changes between versions: where the head lives and what it is called.
    let _ = writeln!(text, "    tensor \"{p}.head_v{version}.weight\" : float[vocab, hidden]");
    let _ = writeln!(text, "    tensor \"{p}.head_v{version}.bias\" : float[vocab] optional");
    let _ = writeln!(text, "    tensor \"{p}.final_norm.weight\" : float[hidden]");
    text.push_str("}\n\n");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_registries_load_and_still_detect_the_bench_model() {
        let dir = tempfile::tempdir().unwrap();
        let shape = ModelShape { hidden: 16, heads: 2, layers: 2 };
        write(&dir.path().join("registry"), &shape, 103).unwrap();
        let registry = crate::pipeline::load_registry(&dir.path().join("registry")).unwrap();
        assert_eq!(registry.graph().schemas().len(), 103);
        let input = dir.path().join("model.safetensors");
        crate::synth::generate(&input, &shape).unwrap();
        let migrated = crate::pipeline::open(&registry, &input, crate::pipeline::Migration::Heavy).unwrap();
        assert_eq!(migrated.from_version().to_string(), "bench.model@1.0.0");
    }
}
