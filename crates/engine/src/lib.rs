//! safeshift's bytes: memory-mapped checkpoint readers behind one input interface, and an
//! atomic streaming writer.
//!
//! # Reading
//!
//! [`Checkpoint::open`] opens one `.safetensors` file, a PyTorch file (`.pt`, `.pth`,
//! `.bin`, `.ckpt`: zip or legacy, read by `safeshift-torch` without running anything; a
//! file with code-execution gadgets is refused unless [`ReadOptions::pickle`] allows them),
//! or a sharded set of either through its index (`*.safetensors.index.json`,
//! `pytorch_model.bin.index.json`: `{"metadata": {...}, "weight_map": {tensor: file}}`, as
//! Hugging Face writes it). The format is told by the content. Every format gives the same
//! [`Checkpoint`]: the state dict as its layout, tensors held outside it as
//! [`Checkpoint::extras`], and each tensor's bytes borrowed from the map where the file
//! stores them as one range (a PyTorch file's contiguous tensors included), built on demand
//! otherwise. A safetensors file is opened from its 8-byte length prefix and header alone
//! (read with `pread`, validated strictly), its data pages mapped but not touched.
//! [`Checkpoint::layout`] then answers names, dtypes, shapes and metadata
//! ([`safeshift_model::Layout`]); [`Checkpoint::tensor_bytes`] borrows a tensor's bytes
//! from the map, [`Checkpoint::narrow`] a contiguous slice of them, and
//! [`Checkpoint::tensor_location`] gives the file range the writer copies.
//!
//! Validation, each failure a distinct [`ReadErrorKind`] naming the file and the tensor,
//! key or offset: the header length within the format's bound (100,000,000 bytes) and the
//! file; UTF-8; a JSON object (trailing spaces allowed, as writers pad with them); no
//! duplicate key at any level (serde_json would silently keep the last); each entry
//! exactly `dtype`, `shape`, `data_offsets`; a dtype the format defines (all of the
//! `safetensors` 0.8 crate's, `F4` and `F6_*` packed at 4 and 6 bits); a shape whose
//! element and bit counts fit in 64 bits and fill whole bytes; `data_offsets` two integers
//! `start <= end` with `end - start` equal to the byte count; ranges contiguous from 0 with
//! no hole or overlap (in any JSON order: they are sorted by offset); the file exactly as
//! long as prefix, header and data; `__metadata__` strings to strings. [`Limits`] bounds
//! the tensor count (1,000,000), name length (4,096 bytes) and rank (64).
//!
//! **Files must not change while open.** A memory map of a file that another process
//! truncates faults (SIGBUS) when the missing pages are touched. `tensor_bytes` re-checks
//! the file's length before handing out bytes and returns [`ReadErrorKind::FileChanged`]
//! if it differs, which catches a file rewritten or truncated before the access but not
//! during it. Code that cannot trust its inputs to stay put reads with
//! [`Checkpoint::read_tensor_into`] (`pread`: truncation is an error, never a fault);
//! [`verify`] reads that way.
//!
//! # Writing
//!
//! [`write`] takes the output tensors ([`OutputTensor`]: name, dtype, shape and a
//! [`TensorSource`]: bytes, a file range, or a generator), computes the whole header,
//! then streams the data into an unnamed file (`O_TMPFILE`) in the target's directory,
//! fsyncs it, links it under a temporary name and renames that over the target, and fsyncs
//! the directory. On any error nothing is left and the target is untouched; a process
//! killed mid-write leaves nothing either (the kernel drops the unnamed file). Where the
//! file system has no `O_TMPFILE`, the file is a named temporary beside the target
//! (`.NAME.safeshift-tmp-XXXXXX`), which a killed process leaves behind, never a partial
//! target; such leftovers are recognised by the [`TEMP_INFIX`] in their name and can be
//! deleted. [`write_file_atomically`] does the same for a whole file's bytes.
//! In the default [`TensorOrder::Safetensors`] the output is byte-identical to what the
//! `safetensors` crate writes for the same tensors (with at most one metadata key; with
//! more, it orders keys by hash and we sort them). [`WriteOptions::record_sha256`]
//! records checksums that [`verify`] checks.
//!
//! # Example
//!
//! ```
//! use std::borrow::Cow;
//! use safeshift_engine::{write, Checkpoint, OutputTensor, TensorSource, WriteOptions};
//! use safeshift_model::DType;
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("model.safetensors");
//! let weight: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0].iter().flat_map(|x| x.to_le_bytes()).collect();
//! let tensors = vec![
//!     OutputTensor { name: "w".into(), dtype: DType::F32, shape: vec![2, 2], source: TensorSource::Bytes(Cow::Borrowed(&weight)) },
//!     OutputTensor {
//!         name: "b".into(),
//!         dtype: DType::F32,
//!         shape: vec![2],
//!         source: TensorSource::Generate(Box::new(|buf: &mut [u8]| { buf.fill(0); Ok(()) })),
//!     },
//! ];
//! let options = WriteOptions { record_sha256: true, ..WriteOptions::default() };
//! write(&path, tensors, &options)?;
//!
//! let checkpoint = Checkpoint::open(&path)?;
//! assert_eq!(checkpoint.layout().tensor("w").unwrap().shape, vec![2, 2]);
//! assert_eq!(checkpoint.tensor_bytes("w")?, &weight[..]);
//! // The second row of `w`, borrowed from the map.
//! assert_eq!(checkpoint.narrow("w", 0, 1, 1)?, Some(&weight[8..16]));
//! let report = safeshift_engine::verify(&checkpoint)?;
//! assert!(report.problems.is_empty());
//! assert_eq!(report.checksums_matched, 2);
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod atomic;
mod checkpoint;
mod error;
mod fill;
mod header;
mod index;
mod safetensors_file;
mod sharded;
mod sniff;
mod source;
mod torch_file;
mod verify;
mod view;
mod writer;

pub use atomic::write_file_atomically;
pub use checkpoint::{Checkpoint, ReadOptions, TensorLocation};
pub use error::{GenerateError, ReadError, ReadErrorKind, WriteError, WriteErrorKind};
pub use header::Limits;
pub use safeshift_ops::PlannedTensor;
#[doc(hidden)]
pub use safetensors_file::parse_header;
pub use source::InputFormat;
pub use verify::{verify, Problem, ProblemKind, VerifyReport};
pub use view::{MigratedView, ViewError};
pub use writer::{
    write, write_with_extras, Generator, OutputTensor, TensorOrder, TensorSource, WriteOptions, WriteSummary,
    EXTRAS_METADATA_KEY, SHA256_METADATA_KEY, TEMP_INFIX,
};
