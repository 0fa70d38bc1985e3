//! What `schema infer`, `diff` and `check --against` read: a checkpoint the engine opens,
//! a layout JSON, a schema file (`.ss`), or a registry version (`family@version`); the
//! last two as a synthetic checkpoint of the schema.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use safeshift_engine::Checkpoint;
use safeshift_evolve::{AuxInput, AuxTensor, Content};
use safeshift_graph::{Registry, RegistryFiles, Synthetic, VersionId};
use safeshift_model::Layout;

use crate::pickle::PickleArgs;
use crate::printer::anyhow_like::Error;
use crate::registry::RegistryArgs;

/// An opened input: its layout, and its bytes when it has any.
pub struct Opened {
    /// Names, dtypes, shapes, metadata.
    pub layout: Layout,
    bytes: Bytes,
}

enum Bytes {
    Checkpoint(Box<Checkpoint>),
    Synthetic(Box<Synthetic>),
    None,
}

impl Content for Opened {
    fn bytes(&self, name: &str) -> Option<Cow<'_, [u8]>> {
        match &self.bytes {
            Bytes::Checkpoint(checkpoint) => checkpoint.tensor_bytes(name).ok(),
            Bytes::Synthetic(synthetic) => {
                let index = synthetic.layout.tensors.iter().position(|info| info.name == name)?;
                synthetic.data.get(index).map(|data| Cow::Borrowed(data.as_slice()))
            }
            Bytes::None => None,
        }
    }
}

impl Opened {
    /// Whether it has tensor bytes (a layout JSON has none).
    pub fn has_bytes(&self) -> bool {
        !matches!(self.bytes, Bytes::None)
    }
}

/// Opens `input` (see the module docs); `family@version` is looked up in `registry`. A
/// checkpoint is opened as `detect` and `upgrade` open it (`pickle`'s flags, tied names
/// kept), so a schema inferred here is the one they fit.
pub fn open(input: &str, registry: &RegistryArgs, pickle: &PickleArgs) -> Result<Opened, Error> {
    let path = Path::new(input);
    if path.exists() {
        let name = path.file_name().and_then(|name| name.to_str()).unwrap_or("");
        if name.ends_with(".ss") {
            return open_schema_file(path);
        }
        if name.ends_with(".json") && !name.ends_with(".index.json") {
            let text = std::fs::read_to_string(path).map_err(|err| format!("cannot read `{input}`: {err}"))?;
            let layout = safeshift_evolve::parse_layout_json(&text)
                .map_err(|err| format!("`{input}` is not a layout JSON: {err}"))?;
            return Ok(Opened { layout, bytes: Bytes::None });
        }
        let checkpoint = Checkpoint::open_with(path, &pickle.read_options())?;
        let layout = checkpoint.layout().clone();
        return Ok(Opened { layout, bytes: Bytes::Checkpoint(Box::new(checkpoint)) });
    }
    if input.contains('@') {
        let registry = registry.open(false)?;
        let registry = registry.graph();
        let version = VersionId::parse(input)?;
        return synthetic(registry, &version);
    }
    Err(format!("`{input}` is neither a file nor `family@version`").into())
}

/// A synthetic checkpoint of `version` at the registry's synth dims.
pub fn synthetic(registry: &Registry, version: &VersionId) -> Result<Opened, Error> {
    if registry.schema_of(version).is_none() {
        return Err(format!("unknown version `{version}`").into());
    }
    let synthetic = safeshift_graph::synth(registry, version, &BTreeMap::new(), 0)?;
    Ok(Opened { layout: synthetic.layout.clone(), bytes: Bytes::Synthetic(Box::new(synthetic)) })
}

fn open_schema_file(path: &Path) -> Result<Opened, Error> {
    let text = std::fs::read_to_string(path).map_err(|err| format!("cannot read `{}`: {err}", path.display()))?;
    let files = RegistryFiles { files: vec![(path.display().to_string(), text)], manifest: None };
    let (registry, diagnostics) = Registry::from_files(files);
    if diagnostics.iter().any(|diagnostic| diagnostic.is_error()) {
        eprint!("{}", crate::render::render_diagnostics(&diagnostics, registry.sources(), false));
        return Err(format!("`{}` has errors", path.display()).into());
    }
    let versions: Vec<VersionId> =
        registry.graph().versions().filter(|version| registry.schema_of(version).is_some()).cloned().collect();
    let [version] = versions.as_slice() else {
        return Err(format!("`{}` must hold exactly one schema (it holds {})", path.display(), versions.len()).into());
    };
    synthetic(&registry, version)
}

/// Opens `--aux NAME=FILE` for a draft: the integer tensors of FILE, named as a migration
/// reads them (as `upgrade --aux` does: a file holding the input among its extras, such as
/// a checkpoint's `graph.…`, is read without that prefix).
pub fn open_aux(name: &str, path: &Path, pickle: &PickleArgs) -> Result<AuxInput, Error> {
    let checkpoint = Checkpoint::open_with(path, &pickle.read_options())?;
    let layout = checkpoint.layout_with_extras().into_owned();
    let inner = safeshift_graph::aux_from_extras(&layout, name);
    let (listed, prefix) = match &inner {
        Some(inner) => (inner, format!("{name}.")),
        None => (&layout, String::new()),
    };
    let mut tensors = Vec::new();
    for info in listed.tensors.iter().filter(|info| info.dtype.is_int()) {
        let bytes = checkpoint.tensor_bytes(&format!("{prefix}{}", info.name))?;
        tensors.push(AuxTensor {
            name: info.name.clone(),
            dtype: info.dtype,
            shape: info.shape.clone(),
            bytes: bytes.into_owned(),
        });
    }
    let file = path.file_name().and_then(|file| file.to_str()).unwrap_or("a file");
    Ok(AuxInput { name: name.to_owned(), doc: format!("given to the draft as `--aux {name}={file}`"), tensors })
}
