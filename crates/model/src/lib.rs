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
#![deny(missing_docs)]

mod compare;
mod dtype;
mod instantiate;
mod layout;
mod lower;
mod meta_dim;
mod mismatch;
pub mod pattern;
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
pub use unify::{unify, Assigned, Match};
