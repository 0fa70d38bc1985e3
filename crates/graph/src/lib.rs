//! The safeshift registry and version graph.
//!
//! A [`Registry`] holds every schema and migration of a project (from folders, or the
//! set embedded in the binary) with their source texts. Its [`VersionGraph`] has one
//! node per `family@version` ([`VersionId`]) and one edge per migration, plus an inverse
//! edge for every migration that can be undone. On top of it:
//!
//! * [`validate`] reports every graph-level problem (cycles, several heads, unreachable
//!   versions, ambiguous paths) as located diagnostics, all in one pass;
//! * [`plan()`] finds the path from a version to a target: fewest lossy steps, then
//!   fewest steps, then a fixed order.
//!
//! Everything is pure apart from reading registry files: nothing here touches tensor bytes.
#![deny(missing_docs)]
// Errors here are cold paths carrying located, plain-data diagnostics; boxing them would
// only add noise at every call site.
#![allow(clippy::result_large_err)]

mod check;
mod compile;
mod derive;
mod detect;
mod graph;
mod load;
mod manifest;
mod plan;
mod registry;
mod static_check;
mod symbolic;
mod synth;
#[cfg(test)]
mod testutil;
mod validate;
mod version_id;

pub use check::{check, check_synth};
pub use compile::{compile, CompileError, CompiledPlan, Output, HISTORY_KEY, TOOL_KEY};
pub use detect::{detect, DetectError, Detection, Evidence, NearMiss, NEAREST, SCHEMA_KEY};
pub use graph::{Edge, Origin, VersionGraph};
pub use manifest::{Manifest, ManifestError};
pub use plan::{plan, Plan, PlanError, Step};
pub use registry::{
    LoadError, MigrationDef, MigrationId, Registry, RegistryFiles, SchemaDef, MAX_DEPTH, MAX_FILES, MAX_FILE_BYTES,
};
pub use static_check::check_migrations;
pub use synth::{
    run_in_memory, synth, synth_aux, synth_dims, SynthError, Synthetic, DEFAULT_COUNT, DEFAULT_DIM, MAX_SYNTH_BYTES,
};
pub use validate::{validate, PathComparer};
pub use version_id::{VersionId, VersionIdError};
