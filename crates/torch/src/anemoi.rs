//! Anemoi's metadata member (`<dir>/anemoi-metadata/anemoi.json`, older `ai-models.json`)
//! and its supporting arrays (`latitudes.numpy` …), appended by anemoi-utils `save_metadata`.

use safeshift_model::DType;

use crate::error::ErrorKind;
use crate::view::View;
use crate::zip::ZipArchive;

/// The metadata text and the arrays it lists.
pub(crate) struct AnemoiMetadata {
    pub member: String,
    pub text: String,
    /// `(name, view)` per supporting array, in the order the metadata lists them.
    pub arrays: Vec<(String, View)>,
}

/// Reads the metadata member if the archive has one.
pub(crate) fn read(archive: &ZipArchive<'_>, verify_crc: bool) -> Result<Option<AnemoiMetadata>, ErrorKind> {
    let basename = |name: &str| name.rsplit('/').next().unwrap_or(name).to_string();
    let mut found = None;
    for wanted in ["anemoi.json", "ai-models.json"] {
        let members: Vec<_> = archive.members().iter().filter(|m| basename(&m.name) == wanted).collect();
        match members.as_slice() {
            [] => continue,
            [member] => {
                found = Some((*member).clone());
                break;
            }
            several => return Err(ErrorKind::Anemoi(format!("{} members are called `{wanted}`", several.len()))),
        }
    }
    let Some(member) = found else { return Ok(None) };
    let bytes = archive.bytes(&member, verify_crc)?;
    let text =
        String::from_utf8(bytes.to_vec()).map_err(|_| ErrorKind::Anemoi(format!("`{}` is not UTF-8", member.name)))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|err| ErrorKind::Anemoi(format!("`{}` is not JSON: {err}", member.name)))?;
    let mut arrays = Vec::new();
    if let Some(paths) = json.get("supporting_arrays_paths") {
        let paths =
            paths.as_object().ok_or_else(|| ErrorKind::Anemoi("`supporting_arrays_paths` is not an object".into()))?;
        for (name, entry) in paths {
            arrays.push((name.clone(), array_view(archive, name, entry, verify_crc)?));
        }
    }
    Ok(Some(AnemoiMetadata { member: member.name, text, arrays }))
}

fn array_view(
    archive: &ZipArchive<'_>,
    name: &str,
    entry: &serde_json::Value,
    verify_crc: bool,
) -> Result<View, ErrorKind> {
    let bad = |why: String| ErrorKind::Anemoi(format!("supporting array `{name}`: {why}"));
    let path = entry.get("path").and_then(|p| p.as_str()).ok_or_else(|| bad("no `path`".into()))?;
    let dtype_name = entry.get("dtype").and_then(|d| d.as_str()).ok_or_else(|| bad("no `dtype`".into()))?;
    let shape: Vec<u64> = entry
        .get("shape")
        .and_then(|s| s.as_array())
        .and_then(|dims| dims.iter().map(|d| d.as_u64()).collect())
        .ok_or_else(|| bad("`shape` is not a list of sizes".into()))?;
    let dtype = numpy_dtype(dtype_name).ok_or_else(|| bad(format!("numpy dtype `{dtype_name}` is not supported")))?;
    let member = archive.member(path).ok_or_else(|| bad(format!("member `{path}` is missing")))?;
    let bytes = archive.bytes(member, verify_crc)?;
    let numel = shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
    let expected = numel.and_then(|numel| dtype.byte_len(numel));
    if expected != Some(bytes.len() as u64) {
        return Err(bad(format!(
            "member `{path}` has {} bytes, shape {shape:?} of {dtype_name} needs {expected:?}",
            bytes.len()
        )));
    }
    let mut stride = vec![1u64; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        stride[i] = stride[i + 1].saturating_mul(shape[i + 1]);
    }
    let start = member.data_offset as usize;
    let view = View { storage: start..start + bytes.len(), dtype, offset: 0, shape, stride, big_endian: false };
    view.check().map_err(bad)?;
    Ok(view)
}

/// `str(numpy.dtype)` names (and `<f8`-style little-endian codes) → dtype.
fn numpy_dtype(name: &str) -> Option<DType> {
    let name = name.strip_prefix(['<', '|', '=']).unwrap_or(name);
    Some(match name {
        "float64" | "f8" => DType::F64,
        "float32" | "f4" => DType::F32,
        "float16" | "f2" => DType::F16,
        "int64" | "i8" => DType::I64,
        "int32" | "i4" => DType::I32,
        "int16" | "i2" => DType::I16,
        "int8" | "i1" => DType::I8,
        "uint8" | "u1" => DType::U8,
        "uint16" | "u2" => DType::U16,
        "uint32" | "u4" => DType::U32,
        "uint64" | "u8" => DType::U64,
        "bool" | "b1" => DType::Bool,
        "complex64" | "c8" => DType::C64,
        _ => return None,
    })
}
