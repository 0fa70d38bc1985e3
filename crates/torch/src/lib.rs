//! Read PyTorch pickle checkpoints (`.pt`, `.pth`, `.bin`, `.ckpt`) without executing them,
//! for conversion to safetensors.
//!
//! `torch.load` unpickles a checkpoint, and unpickling can call any Python function the file
//! names (`os.system`, `builtins.eval`…). This crate reads the same files with a restricted
//! pickle machine that only builds plain data:
//!
//! * a hand-written zip reader over the mapped file (stored members only; sizes from the
//!   central directory, ZIP64 included; local headers checked; nothing is ever inflated),
//!   and the legacy pre-1.6 format (five pickles then raw storages);
//! * a pickle machine for protocols 0 to 5 that never imports or calls anything: every
//!   call, instantiation and BUILD of any class becomes an inert record (callee, arguments,
//!   keyword arguments, state), so the whole object graph of any torch file is read;
//! * tensor rebuilding (`_rebuild_tensor_v2`/`_v3`, `_rebuild_parameter`, torch's
//!   allow-list, the only calls interpreted) into strided views of storages, materialised
//!   in C order and borrowed from the map when already contiguous;
//! * a hazard verdict apart from reading ([`Hazard`], [`DENIED_MODULES`], [`DENIED_GLOBALS`]
//!   and structural patterns such as a call of a computed callable), which makes [`open`]
//!   refuse a file with gadgets unless [`ConvertOptions::allow_gadgets`];
//! * extraction: the state dict (plain state dicts, a Lightning/Anemoi checkpoint's
//!   `state_dict` entry, a whole pickled module's `state_dict()`), the extras
//!   ([`Converted::extras`]: torch_geometric graph tensors `graph.…`, Anemoi supporting
//!   arrays `anemoi.supporting_arrays.…`), and the rest as JSON metadata.
//!
//! [`open`] converts; [`scan`] reports every global a file names, its hazard class, and the
//! gadgets with their byte offsets.
//!
//! # Bounds
//!
//! Every count or size read from the file is checked against the file size or a [`Limits`]
//! field before anything is allocated for it.
//!
//! ```no_run
//! use std::path::Path;
//! use safeshift_torch::{open, scan, ConvertOptions};
//!
//! let report = scan(Path::new("model.ckpt"))?;
//! if !report.has_gadgets() {
//!     let converted = open(Path::new("model.ckpt"), &ConvertOptions::default())?;
//!     for (index, tensor) in converted.tensors().iter().enumerate() {
//!         let bytes = converted.data(index);
//!         println!("{} {:?} {:?} {} bytes", tensor.name, tensor.dtype, tensor.shape, bytes.len());
//!     }
//!     for (index, extra) in converted.extras().iter().enumerate() {
//!         println!("extra {} {} bytes", extra.name, converted.extra_data(index).len());
//!     }
//! }
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod anemoi;
mod convert;
mod error;
mod extract;
mod globals;
mod graph;
mod hazard;
#[doc(hidden)]
pub mod interpret;
mod json;
mod limits;
mod literal;
mod load;
mod machine;
mod numpy;
mod opcodes;
mod rebuild;
mod scan;
mod tar;
mod value;
mod view;
mod zip;

pub use convert::{
    open, open_bytes, Alias, ConvertOptions, Converted, ConvertedTensor, GRAPH_PREFIX, METADATA_ANEMOI,
    METADATA_CHECKPOINT, METADATA_DROPPED, METADATA_EXTRAS, METADATA_MODULE_CLASS, METADATA_STATE_DICT_KEY,
    SUPPORTING_ARRAYS_PREFIX,
};
pub use error::{ErrorKind, Forbidden, PickleError, TorchError, ZipError};
pub use hazard::{Hazard, DENIED_GLOBALS, DENIED_MODULES};
pub use limits::Limits;
pub use load::Format;
pub use machine::UseKind;
pub use scan::{scan, scan_bytes, GlobalFinding, GlobalStatus, ScanReport, UseSite};
