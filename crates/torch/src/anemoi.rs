//! Anemoi's metadata member (`<dir>/anemoi-metadata/anemoi.json`, older `ai-models.json`)
//! and its supporting arrays (`latitudes.numpy` …), appended by anemoi-utils `save_metadata`.
//!
//! `supporting_arrays_paths` maps a name to `{path, shape, dtype}`; from anemoi-models 0.12
//! (several datasets) it nests one level per dataset (`{"data": {"latitudes": {…}}}`). An
//! array's name joins the keys on its way with `.` (`data.latitudes`).

use crate::error::ErrorKind;
use crate::numpy;
use crate::view::View;
use crate::zip::ZipArchive;

/// The metadata text and the arrays it lists.
pub(crate) struct AnemoiMetadata {
    pub member: String,
    pub text: String,
    /// `(name, view)` per supporting array, in the order the metadata lists them; nested
    /// names joined with `.`.
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
        collect_arrays(archive, "", paths, verify_crc, 0, &mut arrays)?;
    }
    Ok(Some(AnemoiMetadata { member: member.name, text, arrays }))
}

/// Datasets nest one level; a few more are tolerated, a hostile depth is not.
const MAX_NESTING: usize = 8;

/// Every array under `entries` (an object of arrays or of nested objects), named by the
/// keys on the way.
fn collect_arrays(
    archive: &ZipArchive<'_>,
    prefix: &str,
    entries: &serde_json::Value,
    verify_crc: bool,
    depth: usize,
    arrays: &mut Vec<(String, View)>,
) -> Result<(), ErrorKind> {
    let what = if prefix.is_empty() { "`supporting_arrays_paths`".to_string() } else { format!("`{prefix}`") };
    let entries = entries.as_object().ok_or_else(|| ErrorKind::Anemoi(format!("{what} is not an object")))?;
    if depth > MAX_NESTING {
        return Err(ErrorKind::Anemoi(format!("{what} nests more than {MAX_NESTING} levels")));
    }
    for (key, entry) in entries {
        let name = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        if entry.get("path").is_some() {
            arrays.push((name.clone(), array_view(archive, &name, entry, verify_crc)?));
        } else {
            collect_arrays(archive, &name, entry, verify_crc, depth + 1, arrays)?;
        }
    }
    Ok(())
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
    let dtype =
        numpy::dtype_of(dtype_name).ok_or_else(|| bad(format!("numpy dtype `{dtype_name}` is not supported")))?;
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
