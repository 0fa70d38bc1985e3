//! safeshift: turn any historical ML checkpoint into the layout today's model code expects.
//!
//! This facade re-exports the library crates; see `ARCHITECTURE.md` for the layers.
pub use safeshift_dsl as dsl;
pub use safeshift_engine as engine;
pub use safeshift_graph as graph;
pub use safeshift_model as model;
pub use safeshift_ops as ops;
pub use safeshift_torch as torch;

pub mod open;

pub use open::{Migrated, OpenError, OpenOptions, Registry, RegistryError};
