//! What a checkpoint layout means: dtypes, dims, symbolic shapes, name patterns,
//! semantic schemas and their unification with a checkpoint's header.
//!
//! The language crate gives syntax; this crate gives it meaning without touching bytes
//! or files: [`DType`] and [`DTypeClass`] name element types, [`Sym`] computes with
//! dims symbolically, [`pattern`] matches tensor names and fills target names.
#![deny(missing_docs)]

mod dtype;
mod layout;
pub mod pattern;
mod sym;

pub use dtype::{DType, DTypeClass};
pub use layout::{Layout, TensorInfo};
pub use sym::{Atom, Sym};
