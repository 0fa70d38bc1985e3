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
//! * a pickle machine for protocols 0 to 5 that resolves globals against an allow-list (what
//!   `torch.load(weights_only=True)` accepts) and never imports or calls anything;
//! * tensor rebuilding (`_rebuild_tensor_v2`/`_v3`, `_rebuild_parameter`) into strided views
//!   of storages, materialised in C order and borrowed from the map when already contiguous;
//! * state-dict extraction from plain state dicts, Lightning/Anemoi checkpoints
//!   (`state_dict` entry; the rest kept as JSON metadata) and whole pickled modules
//!   (`torch.save(model)`: `_parameters`, `_buffers`, `_modules` walked as data).
//!
//! [`open`] converts; [`scan`] reports every global a file names and whether `torch.load`
//! would execute code.
//!
//! # What `open` refuses
//!
//! Any call of a global outside the allow-list (REDUCE, INST, OBJ, NEWOBJ with arguments,
//! NEWOBJ_EX with keyword arguments, BUILD with a state that is not a dict), any call of a
//! value that is not a global, the EXT1/2/4 and out-of-band buffer opcodes. The one accepted
//! pattern outside the allow-list is how `torch.save(model)` stores modules:
//! `NEWOBJ(cls, ())` followed by `BUILD(dict)`; the object stays opaque data (its class is
//! never imported), and its `__dict__` is read as data. A global that is only named (not
//! called) is kept as data. [`scan`] reports module classes as code `torch.load` would run.
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
//! if !report.executes_code() {
//!     let converted = open(Path::new("model.ckpt"), &ConvertOptions::default())?;
//!     for (index, tensor) in converted.tensors().iter().enumerate() {
//!         let bytes = converted.data(index);
//!         println!("{} {:?} {:?} {} bytes", tensor.name, tensor.dtype, tensor.shape, bytes.len());
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
#[doc(hidden)]
pub mod interpret;
mod json;
mod limits;
mod literal;
mod load;
mod machine;
mod opcodes;
mod rebuild;
mod scan;
mod tar;
mod value;
mod view;
mod zip;

pub use convert::{
    open, open_bytes, Alias, ConvertOptions, Converted, ConvertedTensor, METADATA_ANEMOI, METADATA_CHECKPOINT,
    METADATA_DROPPED, METADATA_MODULE_CLASS, METADATA_STATE_DICT_KEY, SUPPORTING_ARRAYS_PREFIX,
};
pub use error::{ErrorKind, Forbidden, PickleError, TorchError, ZipError};
pub use limits::Limits;
pub use load::Format;
pub use machine::UseKind;
pub use scan::{scan, scan_bytes, GlobalFinding, GlobalStatus, ScanReport, UseSite};
