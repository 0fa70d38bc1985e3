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
//!
//! * [`parse`] turns text into a tree, or returns syntax [`Diagnostic`]s;
//! * [`check`] finds what is wrong in one file alone (unknown dims, unbound captures,
//!   overlapping tensor patterns, versions that are not semver, unknown dtypes);
//! * [`format`] writes a tree in the canonical layout (comments included), and
//!   [`normalize`] strips positions so trees can be compared;
//! * [`SourceMap`] holds the texts of the files loaded together, for turning spans into
//!   lines and columns when diagnostics are shown.
//!
//! ```
//! use safeshift_dsl::{ast, check, format, parse, SourceMap};
//!
//! let mut sources = SourceMap::new();
//! let text = "schema llama.hf@1.0.0 { dim hidden tensor \"model.norm.weight\" : f32[hiden] }";
//! let id = sources.add("schemas/llama.ss".to_owned(), text.to_owned());
//!
//! let file = parse(id, sources.text(id)).map_err(|diagnostics| format!("{diagnostics:?}"))?;
//! let ast::Item::Schema(schema) = &file.items[0] else { unreachable!() };
//! assert_eq!(schema.family.node, "llama.hf");
//!
//! let diagnostics = check(id, &file);
//! assert_eq!(diagnostics[0].code, "unknown-dim");
//! assert_eq!(diagnostics[0].hints, ["did you mean `hidden`?"]);
//! assert_eq!(sources.line_col(id, diagnostics[0].primary.span.start), (1, 69));
//!
//! assert_eq!(
//!     format(&file),
//!     "schema llama.hf @ 1.0.0 {\n    dim hidden\n\n    tensor \"model.norm.weight\" : f32[hiden]\n}\n",
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod ast;
#[cfg(test)]
mod book_examples;
mod check;
mod diagnostic;
mod expr;
mod format;
mod nesting;
mod normalize;
mod overlap;
mod parser;
#[cfg(test)]
mod properties;
mod source_map;
#[cfg(test)]
mod strategies;
mod strings;
mod syntax_error;
mod trivia;
mod unresolved;

pub use check::check;
pub use diagnostic::{similar, Diagnostic, Label, Severity, SourceId};
pub use format::{format, MAX_WIDTH};
pub use normalize::normalize;
pub use parser::parse;
pub use source_map::SourceMap;
pub use unresolved::{unresolved, UNRESOLVED_MARKER};
