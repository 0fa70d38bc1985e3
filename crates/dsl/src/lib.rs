//! The safeshift language: schemas and migrations as text.
//!
//! A registry file holds `schema` items (the tensor layout of one model family at one
//! version) and `migration` items (the operations from one version to another). This
//! crate turns text into a typed [`ast::File`] whose every node keeps its source span,
//! reports problems as [`Diagnostic`]s (plain data, rendered at the CLI edge), and
//! formats a tree back to the one canonical layout.
//!
//! It is pure: text in, tree or diagnostics out. It never touches the file system and
//! knows nothing about tensors or what an operation means.
#![deny(missing_docs)]

pub mod ast;
mod check;
mod diagnostic;
mod expr;
mod format;
mod nesting;
mod normalize;
mod overlap;
mod parser;
mod source_map;
mod strings;
mod syntax_error;
mod trivia;

pub use check::check;
pub use diagnostic::{similar, Diagnostic, Label, Severity, SourceId};
pub use format::{format, MAX_WIDTH};
pub use normalize::normalize;
pub use parser::parse;
pub use source_map::SourceMap;
