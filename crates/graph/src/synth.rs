//! Synthetic checkpoints: a small checkpoint that fits a schema exactly, with seeded
//! deterministic values, and running a compiled plan over one in memory.
//!
//! Dims come from the caller, else from `safeshift.yaml` (`dims:` for the family), else
//! defaults: [`DEFAULT_COUNT`] for a counted dim (`{i < n}`), [`DEFAULT_DIM`] for any
//! other; derived dims are computed. A metadata dim (`meta("config.a.b")`) is written
//! into the metadata where the schema reads it.

use std::borrow::Cow;
use std::collections::BTreeMap;

use safeshift_dsl::ast::PatternPart;
use safeshift_model::{instantiate_with_captures, DType, DimKind, InstantiateError, Layout, TensorInfo};
use safeshift_ops::Leaf;

use crate::compile::CompiledPlan;
use crate::symbolic::schema_metadata;
use crate::{Registry, VersionId};

/// The value of a counted dim when nothing else gives one.
pub const DEFAULT_COUNT: i64 = 2;
/// The value of any other free dim when nothing else gives one.
pub const DEFAULT_DIM: i64 = 4;
/// Synthetic checkpoints larger than this are refused (they are for tests).
pub const MAX_SYNTH_BYTES: u64 = 1 << 30;

/// A checkpoint held in memory: its layout and the bytes of each tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Synthetic {
    /// Names, dtypes, shapes and metadata.
    pub layout: Layout,
    /// The bytes of `layout.tensors[i]`, little-endian, row-major.
    pub data: Vec<Vec<u8>>,
    /// The dims it was made with (derived ones included).
    pub dims: BTreeMap<String, i64>,
}

/// Why a synthetic checkpoint could not be made or computed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SynthError {
    /// The version is unknown or its schema has errors.
    #[error("`{0}` has no usable schema")]
    NoSchema(VersionId),
    /// The schema could not be instantiated with the dims.
    #[error("cannot instantiate `{version}`")]
    Instantiate {
        /// The version.
        version: VersionId,
        /// Why.
        #[source]
        source: InstantiateError,
    },
    /// The tensors would take too many bytes.
    #[error("the synthetic checkpoint would take more than {MAX_SYNTH_BYTES} bytes; use smaller dims")]
    TooLarge,
    /// An output could not be computed.
    #[error("cannot compute `{tensor}`")]
    Evaluate {
        /// The output tensor.
        tensor: String,
        /// Why.
        #[source]
        source: safeshift_ops::EvalError,
    },
}

/// The dims a synthetic checkpoint of `version` uses (see the module docs).
pub fn synth_dims(registry: &Registry, version: &VersionId, given: &BTreeMap<String, i64>) -> BTreeMap<String, i64> {
    let mut dims = given.clone();
    let Some(schema) = registry.schema_of(version) else {
        return dims;
    };
    let manifest = registry.manifest().dims.get(&version.family);
    for dim in &schema.dims {
        if dims.contains_key(&dim.name) || matches!(dim.kind, DimKind::Derived(_)) {
            continue;
        }
        let value = manifest.and_then(|values| values.get(&dim.name)).copied().unwrap_or(match dim.kind {
            DimKind::Counted => DEFAULT_COUNT,
            _ => DEFAULT_DIM,
        });
        dims.insert(dim.name.clone(), value);
    }
    // The manifest's other dims for the family (those migrations declare) come along.
    for (name, value) in manifest.into_iter().flatten() {
        dims.entry(name.clone()).or_insert(*value);
    }
    dims
}

/// A checkpoint of `version` with `given` dims (others as [`synth_dims`] says) and values
/// from a PRNG seeded with `seed`.
pub fn synth(
    registry: &Registry,
    version: &VersionId,
    given: &BTreeMap<String, i64>,
    seed: u64,
) -> Result<Synthetic, SynthError> {
    synth_with_captures(registry, version, given, &BTreeMap::new(), seed)
}

/// [`synth`] with the values of the schema's captures given (`dataset` → `era5`, `cerra`:
/// one tensor per value); a capture not given takes the values `safeshift.yaml` lists
/// (`captures:`), else its own name as its one value.
pub fn synth_with_captures(
    registry: &Registry,
    version: &VersionId,
    given: &BTreeMap<String, i64>,
    given_captures: &BTreeMap<String, Vec<String>>,
    seed: u64,
) -> Result<Synthetic, SynthError> {
    let schema = registry.schema_of(version).ok_or_else(|| SynthError::NoSchema(version.clone()))?;
    let dims = synth_dims(registry, version, given);
    let mut captures: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for def in &schema.tensors {
        for part in &def.pattern.parts {
            if let PatternPart::Capture { name, .. } = part {
                let manifest = registry.manifest().captures.get(&version.family).and_then(|c| c.get(&name.node));
                let values =
                    given_captures.get(&name.node).or(manifest).cloned().unwrap_or_else(|| vec![name.node.clone()]);
                captures.insert(name.node.clone(), values);
            }
        }
    }
    let mut layout = instantiate_with_captures(schema, &dims, &captures)
        .map_err(|source| SynthError::Instantiate { version: version.clone(), source })?;
    let mut total: u64 = 0;
    for tensor in &layout.tensors {
        total = total.saturating_add(tensor.byte_len().unwrap_or(u64::MAX));
    }
    if total > MAX_SYNTH_BYTES {
        return Err(SynthError::TooLarge);
    }
    layout.metadata = metadata(schema, &dims);
    let mut rng = SplitMix64(seed);
    let data = layout.tensors.iter().map(|tensor| values(tensor, &mut rng)).collect();
    let mut all_dims = dims;
    for (name, definition) in schema.derived_definitions() {
        if let Some(value) = definition.eval(&|dim| all_dims.get(dim).copied()) {
            all_dims.entry(name).or_insert(value);
        }
    }
    Ok(Synthetic { layout, data, dims: all_dims })
}

/// The schema's metadata values, plus each metadata dim written where it is read. A key
/// the schema expects without a value (`meta "k"`, as `schema infer` writes) is present
/// with the placeholder `{}`: any value fits, and `{}` also reads as an empty JSON document.
fn metadata(schema: &safeshift_model::Schema, dims: &BTreeMap<String, i64>) -> BTreeMap<String, String> {
    let mut metadata: BTreeMap<String, String> = schema_metadata(schema);
    let mut documents: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    for dim in &schema.dims {
        let (DimKind::Meta(path), Some(value)) = (&dim.kind, dims.get(&dim.name)) else {
            continue;
        };
        let mut segments = path.split('.');
        let Some(key) = segments.next() else { continue };
        let rest: Vec<&str> = segments.collect();
        if rest.is_empty() {
            metadata.insert(key.to_owned(), value.to_string());
            continue;
        }
        let mut node = documents.entry(key.to_owned()).or_insert_with(|| serde_json::json!({}));
        for segment in &rest[..rest.len() - 1] {
            if !node.is_object() {
                *node = serde_json::json!({});
            }
            node = node
                .as_object_mut()
                .expect("an object")
                .entry(segment.to_string())
                .or_insert_with(|| serde_json::json!({}));
        }
        if !node.is_object() {
            *node = serde_json::json!({});
        }
        node.as_object_mut().expect("an object").insert(rest[rest.len() - 1].to_owned(), serde_json::json!(value));
    }
    for (key, document) in documents {
        metadata.insert(key, document.to_string());
    }
    metadata
}

/// splitmix64: a tiny, well-mixed PRNG, plenty for test values.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Seeded values for one tensor: multiples of 1/8 in [-1, 1) for floats (exact in every
/// float dtype), 0..8 for integers, 0 or 1 for booleans, raw bytes otherwise.
fn values(tensor: &TensorInfo, rng: &mut SplitMix64) -> Vec<u8> {
    let numel = tensor.numel().unwrap_or(0);
    let dtype = tensor.dtype;
    if safeshift_ops::cast::supported(dtype) {
        let mut buffer = Vec::with_capacity(numel as usize * 8);
        for _ in 0..numel {
            let raw = rng.next();
            let value = match dtype {
                DType::Bool => (raw & 1) as f64,
                dtype if dtype.is_int() => (raw % 8) as f64,
                _ => ((raw % 16) as f64 - 8.0) / 8.0,
            };
            buffer.extend_from_slice(&value.to_le_bytes());
        }
        if let Ok(bytes) = safeshift_ops::cast::cast_bytes(&buffer, DType::F64, dtype) {
            return bytes;
        }
    }
    let len = tensor.byte_len().unwrap_or(0) as usize;
    let mask = match dtype {
        // Stored one per byte, in the low six bits.
        DType::F6E2M3 | DType::F6E3M2 => 0x3f,
        _ => 0xff,
    };
    (0..len).map(|_| (rng.next() & mask) as u8).collect()
}

/// Synthetic aux inputs for `plan`: every aux tensor its migrations read, as an `i64`
/// index of the length the tensor it indexes has (a reversal permutation), for a
/// checkpoint made with `dims`. `None` when some length cannot be inferred.
pub fn synth_aux(
    registry: &Registry,
    plan: &crate::Plan,
    dims: &BTreeMap<String, i64>,
) -> Option<BTreeMap<String, Synthetic>> {
    let mut aux: BTreeMap<String, Synthetic> = BTreeMap::new();
    for step in &plan.steps {
        let migration = registry.migration(step.migration);
        let has_aux = migration
            .ast
            .decls
            .iter()
            .any(|decl| matches!(decl.kind, safeshift_dsl::ast::MigrationDeclKind::Aux { .. }));
        if !has_aux {
            continue;
        }
        let source = synth(registry, &migration.from, dims, 0).ok()?;
        let shape_of = |pattern: &safeshift_dsl::ast::Pattern| {
            let tensor = source
                .layout
                .tensors
                .iter()
                .find(|tensor| safeshift_model::pattern::match_name(pattern, &tensor.name).is_some())?;
            Some(
                tensor
                    .shape
                    .iter()
                    .map(|&size| safeshift_model::Sym::int(i64::try_from(size).unwrap_or(i64::MAX)))
                    .collect(),
            )
        };
        for ((input, tensor), used) in crate::symbolic::aux_lengths(migration, &shape_of) {
            let length = used.length.clone()?.as_int()?;
            let entry = aux.entry(input).or_insert_with(|| Synthetic {
                layout: Layout::default(),
                data: Vec::new(),
                dims: BTreeMap::new(),
            });
            if entry.layout.tensor(&tensor).is_some() {
                continue;
            }
            // A reversal: for an argsort, every row reversed (so the sort is one too).
            let shape: Vec<u64> = used
                .shape(safeshift_model::Sym::int(length))
                .iter()
                .filter_map(|size| size.as_int())
                .map(|size| size as u64)
                .collect();
            let rows = if shape.len() == 2 { shape[0] } else { 1 };
            let data = (0..rows).flat_map(|_| (0..length).rev().flat_map(i64::to_le_bytes)).collect();
            entry.layout.tensors.push(TensorInfo { name: tensor, dtype: DType::I64, shape });
            entry.data.push(data);
        }
    }
    Some(aux)
}

/// Computes every output of `compiled` from the tensors of `input` (and of the aux
/// inputs `aux`, by name), in memory.
pub fn run_in_memory(
    compiled: &CompiledPlan,
    input: &Synthetic,
    aux: &BTreeMap<String, Synthetic>,
) -> Result<Synthetic, SynthError> {
    let find =
        |checkpoint: &'_ Synthetic, name: &str| checkpoint.layout.tensors.iter().position(|tensor| tensor.name == name);
    let sources = |leaf: &Leaf| -> Result<Cow<'_, [u8]>, String> {
        let checkpoint = match &leaf.aux {
            None => input,
            Some(name) => aux.get(name).ok_or_else(|| format!("no aux input `{name}`"))?,
        };
        find(checkpoint, &leaf.name)
            .map(|position| Cow::Borrowed(checkpoint.data[position].as_slice()))
            .ok_or_else(|| format!("no tensor `{}`", leaf.name))
    };
    let mut layout = Layout { tensors: Vec::new(), metadata: compiled.metadata.clone() };
    let mut data = Vec::new();
    for output in &compiled.outputs {
        let bytes = safeshift_ops::evaluate(output.expr(), &sources)
            .map_err(|source| SynthError::Evaluate { tensor: output.name().to_owned(), source })?;
        layout.tensors.push(output.info().clone());
        data.push(bytes);
    }
    Ok(Synthetic { layout, data, dims: compiled.dims.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::registry;

    const TEXT: &str = r#"
schema s @ 1.0.0 {
    dim hidden
    dim layers
    dim heads = meta("config.model.heads")
    dim head_dim = hidden / heads
    tensor "l.{i < layers}.w" : float[hidden, hidden]
    tensor "l.{i < layers}.idx" : i64[heads, head_dim]
    tensor "{p..}.norm" : bf16[hidden]
}
"#;

    fn id() -> VersionId {
        VersionId::parse("s@1.0.0").unwrap()
    }

    #[test]
    fn synthetic_checkpoints_fit_their_schema_and_are_seeded() {
        let (registry, diagnostics) = registry(vec![TEXT.to_owned()]);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let given = BTreeMap::from([("heads".to_owned(), 2)]);
        let first = synth(&registry, &id(), &given, 7).unwrap();
        let names: Vec<&str> = first.layout.tensors.iter().map(|tensor| tensor.name.as_str()).collect();
        assert_eq!(names, ["l.0.w", "l.1.w", "l.0.idx", "l.1.idx", "p.norm"]);
        assert_eq!(first.layout.metadata["config"], r#"{"model":{"heads":2}}"#);
        assert_eq!(first.dims["head_dim"], 2);
        let schema = registry.schema_of(&id()).unwrap();
        let found = safeshift_model::unify(schema, &first.layout, &BTreeMap::new()).unwrap();
        assert_eq!(found.dims["hidden"], DEFAULT_DIM);
        assert_eq!(found.dims["layers"], DEFAULT_COUNT);
        assert_eq!(synth(&registry, &id(), &given, 7).unwrap(), first);
        assert_ne!(synth(&registry, &id(), &given, 8).unwrap().data, first.data);
        for (tensor, bytes) in first.layout.tensors.iter().zip(&first.data) {
            assert_eq!(bytes.len() as u64, tensor.byte_len().unwrap(), "{}", tensor.name);
        }
    }

    #[test]
    fn metadata_keys_without_a_value_are_present() {
        // What `schema infer` writes: the key is expected, any value fits.
        let text = "schema m @ 1.0.0 {\n tensor \"w\" : f32[2]\n meta \"anemoi\"\n meta \"format\" = \"pt\"\n}\n";
        let (registry, diagnostics) = registry(vec![text.to_owned()]);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let id = VersionId::parse("m@1.0.0").unwrap();
        let made = synth(&registry, &id, &BTreeMap::new(), 0).unwrap();
        assert_eq!(made.layout.metadata.get("anemoi").map(String::as_str), Some("{}"));
        assert_eq!(made.layout.metadata.get("format").map(String::as_str), Some("pt"));
        let schema = registry.schema_of(&id).unwrap();
        safeshift_model::unify(schema, &made.layout, &BTreeMap::new()).unwrap();
    }

    #[test]
    fn bad_dims_and_huge_checkpoints_are_refused() {
        let (registry, _) = registry(vec![TEXT.to_owned()]);
        let inexact = BTreeMap::from([("heads".to_owned(), 3)]);
        assert!(matches!(synth(&registry, &id(), &inexact, 0), Err(SynthError::Instantiate { .. })));
        let huge = BTreeMap::from([("heads".to_owned(), 2), ("hidden".to_owned(), 1 << 20)]);
        assert!(matches!(synth(&registry, &id(), &huge, 0), Err(SynthError::TooLarge)));
        let unknown = VersionId::parse("s@9.0.0").unwrap();
        assert!(matches!(synth(&registry, &unknown, &BTreeMap::new(), 0), Err(SynthError::NoSchema(_))));
    }
}
