//! An archive of many checkpoints of mixed versions, for `safeshift upgrade --out-dir
//! --jobs N` against `cp -r` of the archive.
//!
//! Every file is a synthetic LLaMA in Meta's layout ([`crate::llama`]): half as released
//! (`llama.meta@0.9.0`, with `rope.freqs`), half without it (`@1.0.0`); sizes spread
//! log-uniformly over 4–64 MiB (hidden size 256, 512 or 768 by size), a quarter in f32,
//! the rest bf16. The upgrade to `llama.hf@1.0.0` renames every tensor and computes the
//! rotary permutation of every q and k weight.

use std::path::Path;

use safeshift_model::DType;

use crate::llama::LlamaShape;

/// What was generated.
pub struct Archive {
    /// Number of files.
    pub files: usize,
    /// Their total size.
    pub bytes: u64,
    /// The largest tensor any upgrade computes (a q weight), in bytes.
    pub largest_computed: u64,
}

/// The shapes of the archive's `files` checkpoints, deterministic.
pub fn shapes(files: usize) -> Vec<LlamaShape> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    (0..files)
        .map(|index| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let unit = (state >> 11) as f64 / (1u64 << 53) as f64;
            // Log-uniform over [4, 64] MiB.
            let bytes = (4.0 * 16f64.powf(unit) * (1 << 20) as f64) as u64;
            let hidden = match bytes >> 20 {
                0..8 => 256,
                8..24 => 512,
                _ => 768,
            };
            let dtype = if index % 4 == 3 { DType::F32 } else { DType::BF16 };
            LlamaShape::for_size(bytes, hidden, 4096, dtype, index % 2 == 0)
        })
        .collect()
}

/// Writes the archive's files into `dir` (`NNN/model.safetensors`, one folder per model
/// as checkpoints are usually kept).
pub fn generate(dir: &Path, files: usize) -> Result<Archive, Box<dyn std::error::Error>> {
    let shapes = shapes(files);
    let mut bytes = 0;
    for (index, shape) in shapes.iter().enumerate() {
        let folder = dir.join(format!("{index:03}"));
        std::fs::create_dir_all(&folder)?;
        let path = folder.join("model.safetensors");
        crate::llama::generate(&path, shape)?;
        bytes += std::fs::metadata(&path)?.len();
    }
    let largest_computed = shapes.iter().map(LlamaShape::largest_computed_bytes).max().unwrap_or(0);
    Ok(Archive { files, bytes, largest_computed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_spread_over_four_to_sixty_four_mib() {
        let shapes = shapes(200);
        let sizes: Vec<u64> = shapes.iter().map(|shape| shape.data_bytes() >> 20).collect();
        assert!(sizes.iter().all(|&mib| (2..=80).contains(&mib)), "{sizes:?}");
        assert!(sizes.iter().any(|&mib| mib < 8) && sizes.iter().any(|&mib| mib > 40), "{sizes:?}");
        assert!(shapes.iter().any(|shape| shape.rope_freqs) && shapes.iter().any(|shape| !shape.rope_freqs));
    }
}
