//! Every metadata key and reserved tensor-name prefix safeshift reads or writes, in one
//! place. Each crate that writes or reads one uses these constants (or re-exports them
//! under its older name), so a key cannot drift between a writer and a reader.
//!
//! `model` is the lowest crate every user depends on (graph, engine, torch, evolve and
//! the facade), which is why the keys live here although they mean nothing to it.

/// Prefix of the keys safeshift writes itself; a schema does not expect them.
pub const TOOL_PREFIX: &str = "safeshift.";

/// A written checkpoint's `family@version`, trusted by detection when the layout fits it.
pub const SCHEMA_KEY: &str = "safeshift.schema";

/// The migrations applied to a checkpoint, oldest first: a JSON array of
/// `{"from", "to", "action", "sha256"}` objects.
pub const HISTORY_KEY: &str = "safeshift.history";

/// The tool that wrote a checkpoint (`safeshift 0.1.0`).
pub const TOOL_KEY: &str = "safeshift.tool";

/// Which input a batch output was made from, so a rerun can skip outputs that are up to
/// date: `{"file": …, "bytes": …, "mtime_ns": …, "head_sha256": …}` (see
/// `safeshift::batch::SourceStamp`).
pub const SOURCE_KEY: &str = "safeshift.source";

/// The extras of a file (tensors held beside the state dict, written after it): a JSON
/// array of their names, so reading the file sets them apart again.
pub const EXTRAS_KEY: &str = "safeshift.extras";

/// Per-tensor checksums the writer records on request and `verify` checks: a JSON object
/// of tensor name to lowercase hex SHA-256 of its bytes (in a sharded set, per shard).
pub const SHA256_KEY: &str = "safeshift.sha256";

/// The Anemoi metadata text (`anemoi-metadata/anemoi.json`): provenance at
/// `provenance_training.module_versions["anemoi.models"]`, configuration under `config`.
pub const ANEMOI_KEY: &str = "anemoi";

/// The non-tensor content of a dict PyTorch checkpoint, as JSON.
pub const TORCH_CHECKPOINT_KEY: &str = "torch.checkpoint";

/// The top-level entry of a PyTorch checkpoint the state dict came from (`state_dict`).
pub const TORCH_STATE_DICT_KEY: &str = "torch.state_dict_key";

/// The top-level entries of a PyTorch checkpoint left out (optimizer state), as a JSON array.
pub const TORCH_DROPPED_KEY: &str = "torch.dropped";

/// The class of a pickled whole module (`__main__.TinyNet`).
pub const TORCH_MODULE_CLASS_KEY: &str = "torch.module_class";

/// Name prefix of Anemoi supporting arrays held as extras (`anemoi.supporting_arrays.latitudes`;
/// per dataset from anemoi-models 0.12: `anemoi.supporting_arrays.data.latitudes`).
pub const SUPPORTING_ARRAYS_PREFIX: &str = "anemoi.supporting_arrays.";

/// Name prefix of the tensors of the first torch_geometric graph a checkpoint holds, as
/// extras (`graph.data.x`, `graph.data_to_hidden.edge_index`); later graphs use `graph2.`…
pub const GRAPH_PREFIX: &str = "graph.";
