//! The safeshift registry and version graph.
//!
//! A [`Registry`] holds every schema and migration of a project (a folder, see
//! [`Registry::load`], or the set embedded in the binary, [`Registry::embedded`]) with
//! their source texts, lowered meanings, and a [`VersionGraph`]: one node per
//! `family@version` ([`VersionId`]), one edge per migration, plus an inverse edge for
//! every migration that can be undone. A version may be declared by a migration alone;
//! its schema is then derived by applying the migration to the source schema.
//! Loading never stops at the first problem: it returns the registry and every
//! diagnostic.
//!
//! On top of it:
//!
//! * [`check`] reports every graph problem ([`validate`]: cycles, forks, unreachable
//!   versions, ambiguous paths) and statically checks every migration against its two
//!   schemas ([`check_migrations`]), all located; [`check_synth`] also upgrades a
//!   synthetic checkpoint of every version in memory;
//! * [`detect`] finds a checkpoint's version from its layout;
//! * [`plan()`] finds the path to a target: fewest lossy steps, then fewest steps, then a
//!   fixed order;
//! * [`compile`] turns a plan, the detection it starts from (its bound dims) and a concrete
//!   layout into one planned tensor per output (`safeshift_ops::PlannedTensor`: concrete
//!   type, simplified expression), plus the output metadata with provenance: what the
//!   lazy view is built from;
//! * [`synth`] makes a small checkpoint that fits a schema exactly.
//!
//! Everything is pure apart from reading registry files: nothing here touches tensor
//! bytes except the in-memory checks on synthetic checkpoints.
//!
//! ```
//! use std::collections::BTreeMap;
//! use safeshift_graph::{compile, detect, plan, Registry, RegistryFiles};
//! use safeshift_model::{DType, Layout, TensorInfo};
//!
//! let text = r#"
//! schema toy @ 1.0.0 {
//!     dim hidden
//!     tensor "qkv.weight" : f32[3 * hidden, hidden]
//! }
//! migration toy 1.0.0 -> 2.0.0 "split the fused projection" {
//!     split "qkv.weight" axis 0 into "q.weight", "k.weight", "v.weight"
//! }
//! "#;
//! let files = RegistryFiles { files: vec![("toy.ss".into(), text.into())], manifest: None };
//! let (registry, diagnostics) = Registry::from_files(files);
//! assert!(diagnostics.is_empty());
//! assert!(safeshift_graph::check(&registry).is_empty());
//!
//! let layout = Layout {
//!     tensors: vec![TensorInfo { name: "qkv.weight".into(), dtype: DType::F32, shape: vec![24, 8] }],
//!     metadata: BTreeMap::new(),
//! };
//! let found = detect(&registry, &layout, &BTreeMap::new())?;
//! assert_eq!(found.version.to_string(), "toy@1.0.0");
//! let target = registry.default_target("toy").unwrap();
//! let path = plan(registry.graph(), &found.version, &target)?;
//! let compiled = compile(&registry, &path, &found, &layout, &BTreeMap::new(), &BTreeMap::new())?;
//! let names: Vec<&str> = compiled.outputs.iter().map(|output| output.name()).collect();
//! assert_eq!(names, ["q.weight", "k.weight", "v.weight"]);
//! assert_eq!(compiled.outputs[0].shape(), [8, 8]);
//! assert_eq!(compiled.metadata["safeshift.schema"], "toy@2.0.0");
//! Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
// Errors here are cold paths carrying located, plain-data diagnostics; boxing them would
// only add noise at every call site.
#![allow(clippy::result_large_err)]

mod candidates;
mod check;
mod compile;
mod derive;
mod detect;
mod graph;
mod key_layout;
mod load;
mod manifest;
mod plan;
mod provenance;
mod registry;
mod static_check;
mod symbolic;
mod synth;
#[cfg(test)]
mod testutil;
mod validate;
mod version_id;

pub use check::{check, check_synth};
pub use compile::{compile, compile_with_params, CompileError, CompiledPlan, HISTORY_KEY, TOOL_KEY};
pub use detect::{detect, detect_as, DetectError, Detection, Evidence, NearMiss, NEAREST, SCHEMA_KEY};
pub use graph::{Edge, Origin, VersionGraph};
pub use key_layout::{
    aux_from_extras, canonical, extras_of, output_extras, read_aux_from_extras, read_aux_prefixed, restore, state_dict,
    KeyLayout, EXTRAS_KEY,
};
pub use manifest::{Manifest, ManifestError, ProvenanceSpec};
pub use plan::{plan, Plan, PlanError, Step};
pub use provenance::{read_provenance, Provenance};
pub use registry::{
    LoadError, MigrationDef, MigrationId, Registry, RegistryFiles, SchemaDef, MAX_DEPTH, MAX_FILES, MAX_FILE_BYTES,
};
pub use static_check::check_migrations;
pub use synth::{
    run_in_memory, synth, synth_aux, synth_dims, synth_with_captures, SynthError, Synthetic, DEFAULT_COUNT,
    DEFAULT_DIM, MAX_SYNTH_BYTES,
};
pub use validate::{validate, PathComparer};
pub use version_id::{VersionId, VersionIdError};
