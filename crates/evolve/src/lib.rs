//! Schema evolution: infer a schema from a concrete layout, compare two layouts, and draft
//! the migration between them.
//!
//! * [`infer_schema_text`]: a canonical schema for one layout (names folded into
//!   `{i < n}` patterns, sizes as named dims and products, exact dtypes, metadata keys).
//! * [`diff`]: what changed between two layouts — by names and shapes, or, given both
//!   checkpoints' bytes ([`Content`]), by content — as a list of [`Change`]s.
//! * [`draft`]: the migration in the language, with generalized name patterns and index
//!   arithmetic; what cannot be decided is written as an `UNRESOLVED` comment, which
//!   `check` reports until the author removes it.
//! * [`parse_layout_json`]: the layout JSON any script can write.
//!
//! Pure: no files, no terminal. Tensor bytes come in through [`Content`], which the caller
//! implements over its checkpoints.
#![deny(missing_docs)]

pub mod fold;
mod infer;
mod layout_json;

pub use infer::{
    canonical, infer, infer_schema_text, pattern, quoted, schema_names, InferError, InferOptions, InferredSchema,
    SizeNames, TOOL_METADATA_PREFIX,
};
pub use layout_json::{layout_json, parse_dtype, parse_layout_json, LayoutJsonError, MAX_LAYOUT_TENSORS, MAX_RANK};

mod aux_index;
mod diff;
mod draft;
#[cfg(test)]
mod roundtrip;
mod rule;
#[cfg(test)]
mod shipped;

pub use aux_index::{explain as explain_index, AuxInput, AuxTensor};
pub use diff::{diff, Change, Content, Contents, Diff, Init};
pub use draft::{draft, Draft, DraftOptions};
pub use rule::{generalize, Instance, Rule};
