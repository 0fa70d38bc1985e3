//! Synthetic LLaMA checkpoints in Meta's layout, upgraded to Hugging Face's with the
//! registry embedded in safeshift (`llama.meta` → `llama.hf`: renames, and the rotary
//! permutation of every q and k weight, computed).

use std::collections::BTreeMap;
use std::path::Path;

use safeshift::engine::WriteOptions;
use safeshift::{OpenOptions, Registry};
use safeshift_model::{DType, TensorInfo};

/// The dimensions of a synthetic LLaMA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LlamaShape {
    /// `dim`.
    pub hidden: u64,
    /// `n_heads`.
    pub heads: u64,
    /// `n_kv_heads` (grouped-query attention when below `heads`).
    pub kv_heads: u64,
    /// The feed-forward width.
    pub ffn: u64,
    /// The vocabulary size.
    pub vocab: u64,
    /// `n_layers`.
    pub layers: u64,
    /// The element type of every tensor.
    pub dtype: DType,
    /// Whether the file has `rope.freqs` (Meta's 0.9.0 layout, as released).
    pub rope_freqs: bool,
}

/// The head counts every synthetic LLaMA of the bench has: the upgrade is given them
/// with `--dim`, once for a whole batch.
pub const HEADS: u64 = 8;
/// See [`HEADS`].
pub const KV_HEADS: u64 = 4;

impl LlamaShape {
    /// A model of about `bytes` with hidden size `hidden`, as many layers as fit.
    pub fn for_size(bytes: u64, hidden: u64, vocab: u64, dtype: DType, rope_freqs: bool) -> LlamaShape {
        let base = LlamaShape {
            hidden,
            heads: HEADS,
            kv_heads: KV_HEADS,
            ffn: ffn(hidden),
            vocab,
            layers: 0,
            dtype,
            rope_freqs,
        };
        let fixed = base.data_bytes();
        let per_layer = LlamaShape { layers: 1, ..base }.data_bytes() - fixed;
        let layers = (bytes.saturating_sub(fixed) + per_layer / 2) / per_layer;
        LlamaShape { layers: layers.max(1), ..base }
    }

    /// The tensors, in Meta's order.
    pub fn tensors(&self) -> Vec<TensorInfo> {
        let (h, kv) = (self.hidden, self.hidden / self.heads * self.kv_heads);
        let info = |name: String, shape: &[u64]| TensorInfo { name, dtype: self.dtype, shape: shape.to_vec() };
        let mut tensors = vec![info("tok_embeddings.weight".into(), &[self.vocab, h])];
        for layer in 0..self.layers {
            let block: [(&str, Vec<u64>); 9] = [
                ("attention.wq.weight", vec![h, h]),
                ("attention.wk.weight", vec![kv, h]),
                ("attention.wv.weight", vec![kv, h]),
                ("attention.wo.weight", vec![h, h]),
                ("feed_forward.w1.weight", vec![self.ffn, h]),
                ("feed_forward.w2.weight", vec![h, self.ffn]),
                ("feed_forward.w3.weight", vec![self.ffn, h]),
                ("attention_norm.weight", vec![h]),
                ("ffn_norm.weight", vec![h]),
            ];
            tensors.extend(block.into_iter().map(|(suffix, shape)| info(format!("layers.{layer}.{suffix}"), &shape)));
        }
        tensors.push(info("norm.weight".into(), &[h]));
        tensors.push(info("output.weight".into(), &[self.vocab, h]));
        if self.rope_freqs {
            tensors.push(info("rope.freqs".into(), &[h / self.heads / 2]));
        }
        tensors
    }

    /// The data bytes (headers excluded).
    pub fn data_bytes(&self) -> u64 {
        self.tensors().iter().map(|tensor| tensor.byte_len().expect("synthetic shapes are small")).sum()
    }

    /// The largest tensor the upgrade computes: a q weight, `[hidden, hidden]`.
    pub fn largest_computed_bytes(&self) -> u64 {
        self.hidden * self.hidden * self.dtype.bits() as u64 / 8
    }

    /// The bytes the upgrade computes (every q and k weight).
    pub fn computed_bytes(&self) -> u64 {
        let kv = self.hidden / self.heads * self.kv_heads;
        self.layers * (self.hidden + kv) * self.hidden * self.dtype.bits() as u64 / 8
    }
}

/// LLaMA's feed-forward width for `hidden`: 8/3 of it, rounded up to a multiple of 64.
fn ffn(hidden: u64) -> u64 {
    (8 * hidden / 3).div_ceil(64) * 64
}

/// Writes a checkpoint of `shape` to `path`.
pub fn generate(path: &Path, shape: &LlamaShape) -> Result<(), safeshift_engine::WriteError> {
    crate::synth::write_random(path, shape.tensors())
}

/// The `--dim` values of the upgrade.
pub fn dims() -> BTreeMap<String, i64> {
    [("heads".to_owned(), HEADS as i64), ("kv_heads".to_owned(), KV_HEADS as i64)].into_iter().collect()
}

/// Opens `input` with the embedded registry migrated to `llama.hf@1.0.0` (headers only:
/// detect, plan, compile).
pub fn open(registry: &Registry, input: &Path) -> Result<safeshift::Migrated, safeshift::OpenError> {
    let options = OpenOptions { to: Some("llama.hf@1.0.0".to_owned()), dims: dims(), ..OpenOptions::default() };
    registry.open_with(input, &options)
}

/// Upgrades `input` to `output`, as `safeshift upgrade --dim heads=8 --dim kv_heads=4` does.
pub fn upgrade(input: &Path, output: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let registry = Registry::embedded()?;
    let migrated = open(&registry, input)?;
    migrated.view().write_to(output, &WriteOptions::default())?;
    println!("{} -> {}", migrated.from_version(), migrated.to_version());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_llamas_upgrade_with_the_embedded_registry() {
        let dir = tempfile::tempdir().unwrap();
        for rope_freqs in [false, true] {
            let shape = LlamaShape::for_size(1 << 20, 64, 256, DType::BF16, rope_freqs);
            assert!(shape.layers >= 1);
            let input = dir.path().join("meta.safetensors");
            generate(&input, &shape).unwrap();
            let registry = Registry::embedded().unwrap();
            let migrated = open(&registry, &input).unwrap();
            let expected = if rope_freqs { "llama.meta@0.9.0" } else { "llama.meta@1.0.0" };
            assert_eq!(migrated.from_version().to_string(), expected);
            let q = migrated.view().info("model.layers.0.self_attn.q_proj.weight").unwrap();
            assert_eq!(q.shape, vec![64, 64]);
            assert!(!migrated.view().is_zero_copy("model.layers.0.self_attn.q_proj.weight"));
            assert!(migrated.view().is_zero_copy("model.layers.0.self_attn.v_proj.weight"));
            upgrade(&input, &dir.path().join("hf.safetensors")).unwrap();
        }
    }
}
