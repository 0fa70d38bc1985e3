//! What a checkpoint layout means: dtypes, dims, symbolic shapes, name patterns,
//! semantic schemas and their unification with a checkpoint's header.
//!
//! The language crate gives syntax; this crate gives it meaning without touching bytes
//! or files: [`DType`] and [`DTypeClass`] name element types, [`Sym`] computes with
//! dims symbolically, [`pattern`] matches tensor names and fills target names.
//!
//! A schema item is lowered to a [`Schema`] by [`lower_schema`] (dims classified as
//! [`DimKind`]s, shapes as [`Sym`]s, problems as diagnostics). [`unify`] fits a schema to
//! a concrete [`Layout`], binding every dim, or returns a [`Mismatch`]: a ranked,
//! printable diff. [`instantiate`] goes the other way (a synthetic layout for given
//! dims), [`instantiate_symbolic`] gives concrete names with symbolic shapes, and
//! [`compare_symbolic`] checks such tensors against a target schema.
//!
//! ```
//! use std::collections::BTreeMap;
//! use safeshift_dsl::{ast::Item, SourceId};
//! use safeshift_model::{instantiate, lower_schema, unify};
//!
//! let text = r#"
//!     schema demo @ 1.0.0 {
//!         dim hidden
//!         dim layers
//!         tensor "layers.{i < layers}.qkv.weight" : float[3 * hidden, hidden]
//!     }
//! "#;
//! let file = safeshift_dsl::parse(SourceId(0), text).map_err(|errors| format!("{errors:?}"))?;
//! let Some(Item::Schema(ast)) = file.items.first() else { return Err("no schema".into()) };
//! let (schema, diagnostics) = lower_schema(SourceId(0), ast);
//! assert!(diagnostics.is_empty());
//!
//! // A synthetic checkpoint layout, then the dims read back from it.
//! let dims = BTreeMap::from([("hidden".to_owned(), 8), ("layers".to_owned(), 2)]);
//! let mut layout = instantiate(&schema, &dims)?;
//! assert_eq!(unify(&schema, &layout, &BTreeMap::new()).map(|found| found.dims), Ok(dims));
//!
//! // A near miss: a printable diff and a score for ranking.
//! layout.tensors[1].shape = vec![24, 7];
//! let mismatch = unify(&schema, &layout, &BTreeMap::new()).unwrap_err();
//! assert_eq!(mismatch.to_string(), "~ layers.1.qkv.weight: [24, 7], expected [3 * hidden, hidden] (hidden = 8)");
//! assert_eq!(mismatch.score(), 0.5);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod compare;
mod dtype;
mod instantiate;
pub mod keys;
mod layout;
mod lower;
mod meta_dim;
mod mismatch;
pub mod pattern;
pub mod probe;
#[cfg(test)]
mod properties;
mod render;
mod schema;
mod sym;
#[cfg(test)]
mod testutil;
mod unify;

pub use compare::{compare_symbolic, SymProblem};
pub use dtype::{DType, DTypeClass};
pub use instantiate::{
    canonical_dtype, instantiate, instantiate_symbolic, instantiate_with_captures, InstantiateError, SymTensor,
    MAX_INSTANTIATED_TENSORS,
};
pub use layout::{Layout, TensorInfo};
pub use lower::{lower_dim, lower_schema};
pub use meta_dim::{resolve_meta_dim, MetaDimError};
pub use mismatch::{DimConflict, DimSource, DtypeMismatch, MetaMismatch, Mismatch, ShapeMismatch};
pub use render::render_schema;
pub use schema::{pattern_text, DimDef, DimKind, MetaDef, Schema, TensorDef};
pub use sym::{Atom, Solution, Sym};
pub use unify::{unify, unify_prepared, unify_tensors, Assigned, LiteralFilter, Match, PreparedSchema};
