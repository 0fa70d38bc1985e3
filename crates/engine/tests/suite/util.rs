//! Helpers shared by the engine tests: raw files, dtype mapping to the reference crate.

use std::path::{Path, PathBuf};

use safeshift_model::DType;

/// A file image: the 8-byte little-endian header length, the header, the data.
pub fn raw_file(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// Writes `bytes` to `dir/name` and returns the path.
pub fn put(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The file names in `dir`, sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The reference crate's dtype for ours.
pub fn reference_dtype(dtype: DType) -> safetensors::Dtype {
    use safetensors::Dtype as R;
    match dtype {
        DType::Bool => R::BOOL,
        DType::F4 => R::F4,
        DType::F6E2M3 => R::F6_E2M3,
        DType::F6E3M2 => R::F6_E3M2,
        DType::U8 => R::U8,
        DType::I8 => R::I8,
        DType::F8E5M2 => R::F8_E5M2,
        DType::F8E4M3 => R::F8_E4M3,
        DType::F8E8M0 => R::F8_E8M0,
        DType::F8E4M3Fnuz => R::F8_E4M3FNUZ,
        DType::F8E5M2Fnuz => R::F8_E5M2FNUZ,
        DType::I16 => R::I16,
        DType::U16 => R::U16,
        DType::F16 => R::F16,
        DType::BF16 => R::BF16,
        DType::I32 => R::I32,
        DType::U32 => R::U32,
        DType::F32 => R::F32,
        DType::C64 => R::C64,
        DType::F64 => R::F64,
        DType::I64 => R::I64,
        DType::U64 => R::U64,
    }
}

/// The name of an enum variant from its `Debug` text (`OffsetsHole { .. }` → `OffsetsHole`).
pub fn variant_name(debug: &str) -> &str {
    debug.split([' ', '{', '(']).next().unwrap_or_default()
}
