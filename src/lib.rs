//! safeshift: turn any historical ML checkpoint into the layout today's model code expects.
//!
//! Schemas describe each version of a model's checkpoint layout, migrations the steps
//! between them (both in a small language, see the book). [`Registry`] holds them;
//! [`Registry::open_with`] reads a checkpoint's header, detects its version, plans the
//! path to the target and returns a lazy [`Migrated`] view: names, dtypes and shapes come
//! from the plan, tensor bytes are borrowed from the memory map where the migration only
//! renames, splits or reshapes, and computed on demand otherwise. Nothing is written.
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::path::Path;
//!
//! use safeshift::{OpenOptions, Registry};
//!
//! let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/anemoi");
//! let registry = Registry::embedded()?;
//! // The last Anemoi migration reorders edge features by the graph's destination order:
//! // the graph is an auxiliary input.
//! let options = OpenOptions {
//!     aux: BTreeMap::from([("graph".to_owned(), data.join("graph.safetensors"))]),
//!     ..OpenOptions::default()
//! };
//! let model = registry.open_with(&data.join("0.4.0/state_dict.safetensors"), &options)?;
//! assert_eq!(model.from_version().to_string(), "anemoi.encprocdec@0.4.0");
//! assert_eq!(model.to_version().to_string(), "anemoi.encprocdec@0.19.0");
//!
//! // The fused qkv projection of 0.4.0 is split into three row blocks: borrowed, not copied.
//! let q = "model.model.processor.proc.0.attention.lin_q.weight";
//! assert!(model.is_zero_copy(q));
//! let info = model.info(q).expect("a 0.19.0 tensor");
//! assert_eq!(model.tensor(q)?.len() as u64, info.byte_len().expect("a sized dtype"));
//! // One rank of a tensor-parallel job reads only its rows.
//! let half = model.slice(q, 0..info.shape[0] / 2)?;
//! assert_eq!(half.len() * 2, model.tensor(q)?.len());
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The command-line tool (`safeshift upgrade`, `downgrade`, `detect`, …) is built on the
//! same calls. This facade re-exports the library crates; see `ARCHITECTURE.md` for the
//! layers.
#![deny(missing_docs)]

pub use safeshift_dsl as dsl;
pub use safeshift_engine as engine;
pub use safeshift_graph as graph;
pub use safeshift_model as model;
pub use safeshift_ops as ops;
pub use safeshift_torch as torch;

pub mod batch;
pub mod convert;
pub mod open;

pub use open::{Migrated, OpenError, OpenOptions, Registry, RegistryError};
