//! Synthetic checkpoints shaped like real ones, and the two migrations the bench runs.
//!
//! The model is Anemoi-like: an encoder and a decoder projection, a trainable grid
//! tensor, and `layers` transformer blocks of twelve tensors each under
//! `model.model.processor.proc.{i}.`: a fused `attention.lin_qkv` projection
//! (`[3*hidden, hidden]` f32, interleaved heads), the output projection, two layer
//! norms, and an MLP whose weights are bf16 (mixed precision, as saved by recent
//! trainers). 256 MiB is 32 blocks of hidden size 512 (388 tensors); 4 GiB is 82 blocks
//! of hidden size 1280 (988 tensors).
//!
//! The **light** migration renames the blocks to `model.processor.layers.{i}.` and
//! reshapes the qkv bias to `[3, hidden]`: every output tensor is a byte range of an
//! input. The **heavy** one splits the qkv projection (weight and bias) into q, k, v
//! with the interleaved head layout, transposes the output projection and the second
//! MLP weight, and casts the attention weights from f32 to bf16 (round to nearest even).

use std::path::Path;

use safeshift_engine::{write, GenerateError, OutputTensor, TensorOrder, TensorSource, WriteOptions};
use safeshift_model::{DType, TensorInfo};

/// Where the transformer blocks are in the input.
const BLOCK_PREFIX: &str = "model.model.processor.proc.";

/// The dimensions of a synthetic model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelShape {
    /// Hidden size.
    pub hidden: u64,
    /// Attention heads (`hidden / heads` is the head size).
    pub heads: u64,
    /// Transformer blocks.
    pub layers: u64,
}

/// Size of the fixed encoder/decoder inputs.
const GRID_FEATURES: u64 = 128;
const GRID_POINTS: u64 = 40_320;

impl ModelShape {
    /// The model whose checkpoint is closest to `bytes` (at least one block).
    pub fn for_size(bytes: u64) -> ModelShape {
        let (hidden, heads) = if bytes <= 1 << 30 { (512, 8) } else { (1280, 16) };
        let fixed = ModelShape { hidden, heads, layers: 0 }.data_bytes();
        let per_layer = ModelShape { hidden, heads, layers: 1 }.data_bytes() - fixed;
        let layers = (bytes.saturating_sub(fixed) + per_layer / 2) / per_layer;
        ModelShape { hidden, heads, layers: layers.max(1) }
    }

    /// The tensors, in file order.
    pub fn tensors(&self) -> Vec<TensorInfo> {
        let h = self.hidden;
        let info = |name: String, dtype, shape: &[u64]| TensorInfo { name, dtype, shape: shape.to_vec() };
        let mut tensors = vec![
            info("model.model.encoder.proj.weight".into(), DType::F32, &[h, GRID_FEATURES]),
            info("model.model.encoder.proj.bias".into(), DType::F32, &[h]),
            info("model.model.trainable_data.trainable".into(), DType::F32, &[GRID_POINTS, 8]),
        ];
        for layer in 0..self.layers {
            let prefix = format!("{BLOCK_PREFIX}{layer}.");
            let block: [(&str, DType, Vec<u64>); 12] = [
                ("attention.lin_qkv.weight", DType::F32, vec![3 * h, h]),
                ("attention.lin_qkv.bias", DType::F32, vec![3 * h]),
                ("attention.projection.weight", DType::F32, vec![h, h]),
                ("attention.projection.bias", DType::F32, vec![h]),
                ("layer_norm1.weight", DType::F32, vec![h]),
                ("layer_norm1.bias", DType::F32, vec![h]),
                ("layer_norm2.weight", DType::F32, vec![h]),
                ("layer_norm2.bias", DType::F32, vec![h]),
                ("mlp.0.weight", DType::BF16, vec![4 * h, h]),
                ("mlp.0.bias", DType::F32, vec![4 * h]),
                ("mlp.2.weight", DType::BF16, vec![h, 4 * h]),
                ("mlp.2.bias", DType::F32, vec![h]),
            ];
            tensors.extend(
                block.into_iter().map(|(suffix, dtype, shape)| info(format!("{prefix}{suffix}"), dtype, &shape)),
            );
        }
        tensors.push(info("model.model.decoder.proj.weight".into(), DType::F32, &[GRID_FEATURES, h]));
        tensors.push(info("model.model.decoder.proj.bias".into(), DType::F32, &[GRID_FEATURES]));
        tensors
    }

    /// The data bytes of the checkpoint (headers excluded).
    pub fn data_bytes(&self) -> u64 {
        self.tensors().iter().map(|tensor| tensor.byte_len().expect("synthetic shapes are small")).sum()
    }

    /// The largest tensor the heavy migration computes (rather than copies), in output
    /// bytes: the transposed second MLP weight (bf16, `[4*hidden, hidden]`).
    pub fn largest_computed_bytes(&self) -> u64 {
        4 * self.hidden * self.hidden * 2
    }
}

/// Writes the synthetic checkpoint of `shape` to `path` with deterministic pseudo-random
/// weights (small uniform floats, as after initialisation).
pub fn generate(path: &Path, shape: &ModelShape) -> Result<(), safeshift_engine::WriteError> {
    write_random(path, shape.tensors())
}

/// Writes `tensors` to `path` (in the order given) with deterministic pseudo-random
/// weights.
pub fn write_random(path: &Path, tensors: Vec<TensorInfo>) -> Result<(), safeshift_engine::WriteError> {
    let tensors = tensors
        .into_iter()
        .enumerate()
        .map(|(index, info)| {
            let dtype = info.dtype;
            let generate = move |buf: &mut [u8]| -> Result<(), GenerateError> {
                fill_weights(buf, dtype, index as u64);
                Ok(())
            };
            OutputTensor {
                name: info.name,
                dtype,
                shape: info.shape,
                source: TensorSource::Generate(Box::new(generate)),
            }
        })
        .collect();
    let metadata = [("format".to_owned(), "pt".to_owned())].into_iter().collect();
    let options = WriteOptions { metadata, order: TensorOrder::AsGiven, ..WriteOptions::default() };
    write(path, tensors, &options)?;
    Ok(())
}

/// Fills `buf` with values uniform in about ±0.06 (f32, or bf16 truncated from it).
fn fill_weights(buf: &mut [u8], dtype: DType, seed: u64) {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        // xorshift64*: cheap and good enough for weights nobody trains.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let bits = (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 41) as u32;
        // A float in [1, 2) from 23 random mantissa bits, shifted and scaled to ±0.0625.
        (f32::from_bits(0x3F80_0000 | bits) - 1.5) * 0.125
    };
    match dtype {
        DType::BF16 => buf.chunks_exact_mut(2).for_each(|chunk| {
            chunk.copy_from_slice(&((next().to_bits() >> 16) as u16).to_le_bytes());
        }),
        _ => buf.chunks_exact_mut(4).for_each(|chunk| chunk.copy_from_slice(&next().to_le_bytes())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_sizes_are_close_and_realistic() {
        for (target, tensor_range) in [(256u64 << 20, 300..500), (4 << 30, 900..1100)] {
            let shape = ModelShape::for_size(target);
            let bytes = shape.data_bytes() as f64;
            assert!((bytes / target as f64 - 1.0).abs() < 0.05, "{shape:?}: {bytes} for {target}");
            assert!(tensor_range.contains(&shape.tensors().len()), "{}", shape.tensors().len());
        }
        assert_eq!(ModelShape::for_size(1).layers, 1);
    }

    #[test]
    fn weights_are_small_finite_floats() {
        let mut buf = vec![0u8; 4096];
        fill_weights(&mut buf, DType::F32, 7);
        let values: Vec<f32> = buf.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        assert!(values.iter().all(|v| v.abs() <= 0.0625));
        assert!(values.windows(2).any(|w| w[0] != w[1]));
    }
}
