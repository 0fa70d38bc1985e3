//! `open`: a checkpoint's tensors as safetensors would hold them, plus metadata and aliases.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safeshift_model::{DType, Layout, TensorInfo};

use crate::anemoi;
use crate::error::{ErrorKind, TorchError};
use crate::extract;
use crate::load::{self, Format};
use crate::machine::Mode;
use crate::view::View;
use crate::Limits;

/// Metadata key of the anemoi metadata text (`anemoi.json`).
pub const METADATA_ANEMOI: &str = "anemoi";
/// Metadata key of the non-tensor content of a dict checkpoint, as JSON.
pub const METADATA_CHECKPOINT: &str = "torch.checkpoint";
/// Metadata key naming the entry the tensors come from (`state_dict`).
pub const METADATA_STATE_DICT_KEY: &str = "torch.state_dict_key";
/// Metadata key listing the dropped top-level entries (optimizer state), as JSON.
pub const METADATA_DROPPED: &str = "torch.dropped";
/// Metadata key of the class of a pickled whole module (`__main__.TinyNet`).
pub const METADATA_MODULE_CLASS: &str = "torch.module_class";
/// Name prefix of Anemoi supporting arrays written as tensors.
pub const SUPPORTING_ARRAYS_PREFIX: &str = "anemoi.supporting_arrays.";

/// What to take from a checkpoint.
#[derive(Clone, Debug)]
pub struct ConvertOptions {
    /// The top-level entry holding the state dict (default: `state_dict`, `model_state_dict`,
    /// `model`, `module`, `net`, `network`, tried in order, or the whole object).
    pub key: Option<String>,
    /// Also write optimizer state tensors, named by their path (`optimizer_states.0.state.0.exp_avg`).
    pub keep_optimizer: bool,
    /// Write tied tensors (same storage, offset, shape and stride) once per name instead of
    /// once, with an alias.
    pub keep_shared: bool,
    /// Write Anemoi supporting arrays as tensors named `anemoi.supporting_arrays.<name>`.
    pub supporting_arrays: bool,
    /// Check the CRC-32 of every zip member read.
    pub verify_crc: bool,
    /// Resource bounds.
    pub limits: Limits,
}

impl Default for ConvertOptions {
    fn default() -> ConvertOptions {
        ConvertOptions {
            key: None,
            keep_optimizer: false,
            keep_shared: false,
            supporting_arrays: true,
            verify_crc: true,
            limits: Limits::default(),
        }
    }
}

/// A converted checkpoint: tensors in state-dict order (bytes materialised on demand, borrowed
/// from the mapped file when already contiguous), `__metadata__`, and the aliases removed.
pub struct Converted {
    bytes: Bytes,
    tensors: Vec<ConvertedTensor>,
    metadata: BTreeMap<String, String>,
    aliases: Vec<Alias>,
    format: Format,
}

enum Bytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

/// One output tensor.
#[derive(Clone, Debug)]
pub struct ConvertedTensor {
    /// Its name (the state-dict key).
    pub name: String,
    /// Its element type.
    pub dtype: DType,
    /// Its shape.
    pub shape: Vec<u64>,
    view: View,
}

/// A tensor name left out because it shares its bytes with a kept tensor (tied weights).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alias {
    /// The name not written.
    pub name: String,
    /// The name written, whose bytes it shares.
    pub kept: String,
}

/// Opens and converts the checkpoint at `path`. Nothing in the file is executed; see the
/// crate documentation for what is refused.
pub fn open(path: &Path, options: &ConvertOptions) -> Result<Converted, TorchError> {
    let fail = |kind| TorchError::new(path, kind);
    let file = std::fs::File::open(path).map_err(|err| fail(ErrorKind::Io(err)))?;
    let len = file.metadata().map_err(|err| fail(ErrorKind::Io(err)))?.len();
    if len == 0 {
        return Err(fail(ErrorKind::NotACheckpoint("the file is empty".into())));
    }
    // SAFETY: the map is read-only; like every mmap-based reader we rely on the file not
    // being truncated while we read it (the engine documents the same contract).
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|err| fail(ErrorKind::Io(err)))?;
    convert(Bytes::Mapped(map), options).map_err(fail)
}

/// Converts a checkpoint held in memory; `name` is used in errors.
pub fn open_bytes(name: &str, bytes: Vec<u8>, options: &ConvertOptions) -> Result<Converted, TorchError> {
    convert(Bytes::Owned(bytes), options).map_err(|kind| TorchError::new(name, kind))
}

fn convert(bytes: Bytes, options: &ConvertOptions) -> Result<Converted, ErrorKind> {
    let data: &[u8] = bytes.as_slice();
    let mut uses = Vec::new();
    let loaded = load::load(data, Mode::Convert, &options.limits, options.verify_crc, &mut uses)?;
    let extracted = extract::extract(&loaded.heap, &loaded.top, options)?;
    let mut metadata = extracted.metadata;
    metadata.insert("format".into(), "pt".into());

    let mut ranges = HashMap::new();
    let mut tensors = Vec::with_capacity(extracted.tensors.len());
    for (name, tensor) in &extracted.tensors {
        let storage = &tensor.storage;
        let range =
            match ranges.get(&storage.key) {
                Some(range) => Clone::clone(range),
                None => {
                    let range = loaded.storage_range(storage, options.verify_crc).map_err(|reason| {
                        ErrorKind::Storage { key: storage.key.to_string(), tensor: name.clone(), reason }
                    })?;
                    ranges.insert(storage.key.clone(), range.clone());
                    range
                }
            };
        let view = View {
            storage: range,
            dtype: tensor.dtype,
            offset: tensor.offset,
            shape: tensor.shape.clone(),
            stride: tensor.stride.clone(),
            big_endian: loaded.big_endian,
        };
        tensors.push(ConvertedTensor { name: name.clone(), dtype: tensor.dtype, shape: tensor.shape.clone(), view });
    }

    if let (Some(archive), Format::Zip { .. }) = (&loaded.zip, &loaded.format) {
        if let Some(anemoi) = anemoi::read(archive, options.verify_crc)? {
            metadata.insert(METADATA_ANEMOI.into(), anemoi.text);
            metadata.insert("anemoi.member".into(), anemoi.member);
            if options.supporting_arrays {
                for (name, view) in anemoi.arrays {
                    let name = format!("{SUPPORTING_ARRAYS_PREFIX}{name}");
                    if tensors.iter().any(|t| t.name == name) {
                        return Err(ErrorKind::Structure(format!("a model tensor is already called `{name}`")));
                    }
                    tensors.push(ConvertedTensor { name, dtype: view.dtype, shape: view.shape.clone(), view });
                }
            }
        }
    }

    // Tied tensors: same bytes, same view. The first name is kept (as Hugging Face's
    // converter does) and `{removed: kept}` is recorded in the metadata.
    let mut aliases = Vec::new();
    if !options.keep_shared {
        let mut first: HashMap<&View, usize> = HashMap::new();
        let mut keep = vec![true; tensors.len()];
        for (index, tensor) in tensors.iter().enumerate() {
            match first.get(&tensor.view) {
                Some(&kept) => {
                    keep[index] = false;
                    aliases.push(Alias { name: tensor.name.clone(), kept: tensors[kept].name.clone() });
                }
                None => {
                    first.insert(&tensor.view, index);
                }
            }
        }
        let mut keep = keep.into_iter();
        tensors.retain(|_| keep.next().expect("one flag per tensor"));
        for alias in &aliases {
            if metadata.insert(alias.name.clone(), alias.kept.clone()).is_some() {
                return Err(ErrorKind::Structure(format!(
                    "tied tensor `{}` has the name of a metadata key",
                    alias.name
                )));
            }
        }
    }

    let mut expanded = 0u64;
    for tensor in &tensors {
        let bytes = tensor.view.check().map_err(|reason| ErrorKind::Tensor { tensor: tensor.name.clone(), reason })?;
        if bytes > tensor.view.storage.len() as u64 {
            expanded = expanded.saturating_add(bytes);
            if expanded > options.limits.max_expanded_bytes {
                return Err(ErrorKind::Limit {
                    what: "bytes of expanded (stride-0 or overlapping) tensors",
                    limit: options.limits.max_expanded_bytes,
                });
            }
        }
    }
    let format = loaded.format.clone();
    drop(loaded);
    Ok(Converted { bytes, tensors, metadata, aliases, format })
}

impl Bytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Mapped(map) => map,
            Bytes::Owned(bytes) => bytes,
        }
    }
}

impl Converted {
    /// The tensors, in state-dict order (supporting arrays last).
    pub fn tensors(&self) -> &[ConvertedTensor] {
        &self.tensors
    }

    /// The bytes of tensor `index` (C order, little-endian): borrowed from the file when the
    /// tensor is contiguous in its storage, else a copy. Panics if `index` is out of range.
    pub fn data(&self, index: usize) -> Cow<'_, [u8]> {
        self.tensors[index].view.materialise(self.bytes.as_slice())
    }

    /// The `__metadata__` to write.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// Names left out because they alias a kept tensor (empty with `keep_shared`).
    pub fn aliases(&self) -> &[Alias] {
        &self.aliases
    }

    /// The container format the checkpoint used.
    pub fn format(&self) -> &Format {
        &self.format
    }

    /// Names, dtypes, shapes and metadata, as a safetensors header of the output would say.
    pub fn layout(&self) -> Layout {
        Layout {
            tensors: self
                .tensors
                .iter()
                .map(|t| TensorInfo { name: t.name.clone(), dtype: t.dtype, shape: t.shape.clone() })
                .collect(),
            metadata: self.metadata.clone(),
        }
    }
}
