//! Opening a checkpoint in the layout today's code expects: detect, plan, compile, view.
//!
//! This is the load-time path of the library. [`Registry::open`] reads only headers
//! (the checkpoint's and the aux inputs'), finds the checkpoint's version, plans the path
//! to the target and compiles it into one expression per output tensor; the returned
//! [`Migrated`] answers names, dtypes and shapes from that plan and computes or borrows
//! tensor bytes on demand.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;
use std::path::{Path, PathBuf};

use safeshift_dsl::{Diagnostic, SourceMap};
use safeshift_engine::{Checkpoint, MigratedView, ReadError, ReadOptions, ViewError};
use safeshift_graph::{
    compile_with_params, detect, plan, CompileError, CompiledPlan, DetectError, Detection, Plan, PlanError, VersionId,
};
use safeshift_model::Layout;

/// All schemas and migrations of a project, ready to open checkpoints.
pub struct Registry {
    inner: safeshift_graph::Registry,
    warnings: Vec<Diagnostic>,
}

/// Why a registry could not be used: its diagnostics, with the sources to render them.
#[derive(Debug)]
pub struct RegistryError {
    /// Every problem found (errors and warnings).
    pub diagnostics: Vec<Diagnostic>,
    /// The registry's source texts, for rendering the diagnostics.
    pub sources: SourceMap,
    /// Set when the folder itself could not be read.
    pub load: Option<safeshift_graph::LoadError>,
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(load) = &self.load {
            return write!(f, "cannot load the registry: {load}");
        }
        let errors = self.diagnostics.iter().filter(|diagnostic| diagnostic.is_error()).count();
        write!(f, "the registry has {errors} error(s); run `safeshift check` to see them")
    }
}

impl std::error::Error for RegistryError {}

/// Where to go and with what, for [`Registry::open_with`].
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    /// The target: `VERSION` (in the checkpoint's family) or `FAMILY@VERSION`; the
    /// family's head (or the manifest's target) when `None`.
    pub to: Option<String>,
    /// Dims given by the caller (`--dim heads=32`), for dims no shape or metadata tells.
    pub dims: BTreeMap<String, i64>,
    /// Auxiliary input files by name (`--aux graph=graph.safetensors`).
    pub aux: BTreeMap<String, PathBuf>,
    /// Run plans that discard information (and keep the first of per-dataset copies that
    /// differ where a step merges them).
    pub allow_lossy: bool,
    /// Migration parameters by name (`--param encoder_names=era5:global,cerra:regional`);
    /// a parameter not given takes the default its migration declares.
    pub params: BTreeMap<String, safeshift_ops::ParamValue>,
    /// For a PyTorch file: the top-level entry holding the state dict (default: the
    /// usual ones, see `safeshift_torch::ConvertOptions::key`).
    pub state_dict_key: Option<String>,
    /// For a PyTorch file: read it even when it holds code-execution gadgets
    /// (`os.system`, `builtins.eval`, a call of a computed callable…; see
    /// `safeshift_torch::scan`). Nothing in the file runs either way; without this the file is
    /// refused, the gadget named with its byte offset.
    pub allow_gadgets: bool,
}

impl OpenOptions {
    /// How the engine reads the checkpoint and the aux inputs, whatever their format.
    pub fn read_options(&self) -> ReadOptions {
        // Every state-dict name is kept, tied or not: today's code loads with strict=True.
        let pickle = safeshift_torch::ConvertOptions {
            key: self.state_dict_key.clone(),
            keep_shared: true,
            allow_gadgets: self.allow_gadgets,
            ..Default::default()
        };
        ReadOptions { pickle, ..ReadOptions::default() }
    }
}

/// Why a checkpoint could not be opened in the target layout. Every failure after
/// detection carries the [`Detection`] (and, once known, the target), so a caller that
/// reports it (the batch runner's row) never detects again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The checkpoint (or an aux input) could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// Its version could not be determined.
    #[error("`{path}`: {source}")]
    Detect {
        /// The checkpoint.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<DetectError>,
    },
    /// No target, or no path to it (a bad `--to`, a family without a default target, no
    /// migrations between the versions).
    #[error("`{path}`: {source}")]
    Plan {
        /// The checkpoint.
        path: PathBuf,
        /// What the checkpoint is.
        detection: Box<Detection>,
        /// Why.
        #[source]
        source: Box<PlanError>,
    },
    /// The plan discards information and that was not allowed.
    #[error(
        "`{path}`: the path {from} -> {to} discards information (lossy steps: {steps}); pass --allow-lossy to run it",
        from = detection.version
    )]
    Lossy {
        /// The checkpoint.
        path: PathBuf,
        /// What the checkpoint is.
        detection: Box<Detection>,
        /// The target.
        to: Box<VersionId>,
        /// The lossy steps, `a -> b` each.
        steps: String,
    },
    /// The plan could not be compiled for this checkpoint.
    #[error("`{path}`: {source}")]
    Compile {
        /// The checkpoint.
        path: PathBuf,
        /// What the checkpoint is.
        detection: Box<Detection>,
        /// The target.
        to: Box<VersionId>,
        /// Why.
        #[source]
        source: Box<CompileError>,
    },
    /// The outputs cannot be named in the input's key layout kind.
    #[error("`{path}`: {message}")]
    KeyLayout {
        /// The checkpoint.
        path: PathBuf,
        /// What the checkpoint is.
        detection: Box<Detection>,
        /// The target.
        to: Box<VersionId>,
        /// Which output, and why.
        message: String,
    },
    /// The compiled plan does not fit the files.
    #[error("`{path}`: {source}")]
    View {
        /// The checkpoint.
        path: PathBuf,
        /// What the checkpoint is.
        detection: Box<Detection>,
        /// The target.
        to: Box<VersionId>,
        /// Why.
        #[source]
        source: Box<ViewError>,
    },
}

impl OpenError {
    /// What the checkpoint was detected as, when detection got that far.
    pub fn detection(&self) -> Option<&Detection> {
        match self {
            OpenError::Read(_) | OpenError::Detect { .. } => None,
            OpenError::Plan { detection, .. }
            | OpenError::Lossy { detection, .. }
            | OpenError::Compile { detection, .. }
            | OpenError::KeyLayout { detection, .. }
            | OpenError::View { detection, .. } => Some(detection),
        }
    }

    /// The version the checkpoint was to go to, when it was resolved.
    pub fn target(&self) -> Option<&VersionId> {
        match self {
            OpenError::Plan { source, .. } => match source.as_ref() {
                PlanError::NoPath { to, .. } => Some(to),
                // The start was detected, so the unknown version is the target.
                PlanError::UnknownVersion(to) => Some(to),
                _ => None,
            },
            OpenError::Lossy { to, .. }
            | OpenError::Compile { to, .. }
            | OpenError::KeyLayout { to, .. }
            | OpenError::View { to, .. } => Some(to),
            _ => None,
        }
    }
}

impl Registry {
    /// The registry embedded in the binary: the project's own `schemas/` and `migrations/`.
    pub fn embedded() -> Result<Registry, RegistryError> {
        let (inner, diagnostics) = safeshift_graph::Registry::embedded();
        Registry::checked(inner, diagnostics)
    }

    /// The registry in `dir` (`schemas/`, `migrations/`, optional `safeshift.yaml`).
    pub fn load(dir: &Path) -> Result<Registry, RegistryError> {
        match safeshift_graph::Registry::load(dir) {
            Ok((inner, diagnostics)) => Registry::checked(inner, diagnostics),
            Err(load) => {
                Err(RegistryError { diagnostics: Vec::new(), sources: SourceMap::default(), load: Some(load) })
            }
        }
    }

    fn checked(inner: safeshift_graph::Registry, diagnostics: Vec<Diagnostic>) -> Result<Registry, RegistryError> {
        if diagnostics.iter().any(Diagnostic::is_error) {
            return Err(RegistryError { diagnostics, sources: inner.sources().clone(), load: None });
        }
        Ok(Registry { inner, warnings: diagnostics })
    }

    /// What loading found that does not stop the registry from being used (render them
    /// with the sources of [`Registry::graph`]).
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    /// The schemas, migrations and version graph.
    pub fn graph(&self) -> &safeshift_graph::Registry {
        &self.inner
    }

    /// Opens `path` migrated to its family's newest version.
    pub fn open(&self, path: &Path) -> Result<Migrated, OpenError> {
        self.open_with(path, &OpenOptions::default())
    }

    /// Opens `path` migrated as `options` say: the whole pipeline, each step once (the
    /// header read, the layout detected and unified once, planned, compiled from the
    /// detection, viewed).
    pub fn open_with(&self, path: &Path, options: &OpenOptions) -> Result<Migrated, OpenError> {
        let checkpoint = Checkpoint::open_with(path, &options.read_options())?;
        let prepared = self.prepare(path, &checkpoint.layout_with_extras(), options)?;
        self.open_prepared(path, checkpoint, prepared, options)
    }

    /// Compiles an already [prepared](Registry::prepare) plan for an open checkpoint and
    /// returns its view, so a caller that looked at the plan first (to skip, or report) does
    /// not detect and plan twice. The detection's dims are used as they are: the layout is
    /// not unified again. `path` names the checkpoint in errors.
    pub fn open_prepared(
        &self,
        path: &Path,
        checkpoint: Checkpoint,
        prepared: Prepared,
        options: &OpenOptions,
    ) -> Result<Migrated, OpenError> {
        let Prepared { detection, plan } = prepared;
        let mut aux_checkpoints = BTreeMap::new();
        for (name, aux_path) in &options.aux {
            aux_checkpoints.insert(name.clone(), Checkpoint::open_with(aux_path, &options.read_options())?);
        }
        let mut aux_layouts: BTreeMap<String, Layout> = BTreeMap::new();
        // An aux file may hold its tensors as extras under the input's name (a converted
        // `graph.pt`: `graph.data_to_hidden.edge_index` for `graph`).
        let mut prefixed = Vec::new();
        for (name, aux) in &aux_checkpoints {
            match safeshift_graph::aux_from_extras(&aux.layout_with_extras(), name) {
                Some(inner) => {
                    aux_layouts.insert(name.clone(), inner);
                    prefixed.push(name.clone());
                }
                None => {
                    aux_layouts.insert(name.clone(), aux.layout_with_extras().into_owned());
                }
            }
        }
        // The file's own word first: an aux input nobody gave may be among its extras
        // (`graph.<edge set>.edge_index` for `graph`).
        let mut from_extras = Vec::new();
        for step in &plan.steps {
            for decl in &self.inner.migration(step.migration).ast.decls {
                let safeshift_dsl::ast::MigrationDeclKind::Aux { name, .. } = &decl.kind else { continue };
                if aux_layouts.contains_key(&name.node) {
                    continue;
                }
                if let Some(layout) = safeshift_graph::aux_from_extras(&checkpoint.layout_with_extras(), &name.node) {
                    aux_layouts.insert(name.node.clone(), layout);
                    from_extras.push(name.node.clone());
                }
            }
        }
        // A file of another key layout kind is compiled under the schemas' names.
        let key_layout = detection.key_layout.clone();
        let with_extras = checkpoint.layout_with_extras();
        let canonical = key_layout.as_ref().map(|key_layout| safeshift_graph::canonical(&with_extras, key_layout));
        let layout = canonical.as_ref().unwrap_or(&*with_extras);
        let compiled =
            compile_with_params(&self.inner, &plan, &detection, layout, &options.dims, &aux_layouts, &options.params);
        let learned = |detection: Detection, to: VersionId| (path.to_owned(), Box::new(detection), Box::new(to));
        let mut compiled = match compiled {
            Ok(compiled) => compiled,
            Err(source) => {
                let (path, detection, to) = learned(detection, plan.to);
                return Err(OpenError::Compile { path, detection, to, source: Box::new(source) });
            }
        };
        for output in &mut compiled.outputs {
            for input in &from_extras {
                output.edit_leaves(|expr| safeshift_graph::read_aux_from_extras(expr, input));
            }
            for input in &prefixed {
                output.edit_leaves(|expr| safeshift_graph::read_aux_prefixed(expr, input));
            }
            if options.allow_lossy {
                output.accept_unequal_merges();
            }
        }
        if let Some(key_layout) = &key_layout {
            let extras = safeshift_graph::extras_of(&with_extras);
            if let Err(message) = safeshift_graph::restore(&mut compiled, key_layout, &extras) {
                let (path, detection, to) = learned(detection, plan.to);
                return Err(OpenError::KeyLayout { path, detection, to, message });
            }
        }
        let CompiledPlan { outputs, metadata, dims, .. } = compiled;
        let view = match MigratedView::new(checkpoint, aux_checkpoints, outputs, metadata) {
            Ok(view) => view,
            Err(source) => {
                let (path, detection, to) = learned(detection, plan.to);
                return Err(OpenError::View { path, detection, to, source: Box::new(source) });
            }
        };
        Ok(Migrated { view, detection, plan, dims })
    }

    /// Detects the version of a checkpoint with this layout and plans the path to the
    /// target, refusing lossy paths unless allowed. Reads nothing.
    #[allow(clippy::result_large_err)]
    pub fn prepare(&self, path: &Path, layout: &Layout, options: &OpenOptions) -> Result<Prepared, OpenError> {
        let detection = detect(&self.inner, layout, &options.dims)
            .map_err(|source| OpenError::Detect { path: path.to_owned(), source: Box::new(source) })?;
        let planned = self
            .inner
            .resolve_target(&detection.version, options.to.as_deref())
            .and_then(|target| plan(self.inner.graph(), &detection.version, &target));
        let plan = match planned {
            Ok(plan) => plan,
            Err(source) => {
                return Err(OpenError::Plan {
                    path: path.to_owned(),
                    detection: Box::new(detection),
                    source: Box::new(source),
                })
            }
        };
        if plan.lossy() && !options.allow_lossy {
            let steps: Vec<String> = plan
                .steps
                .iter()
                .filter(|step| step.lossy)
                .map(|step| format!("{} -> {}", step.from, step.to))
                .collect();
            return Err(OpenError::Lossy {
                path: path.to_owned(),
                detection: Box::new(detection),
                to: Box::new(plan.to),
                steps: steps.join(", "),
            });
        }
        Ok(Prepared { detection, plan })
    }

    /// The version `to` names for a checkpoint at `from` (the registry's one resolver:
    /// `FAMILY@VERSION`, a bare `VERSION`, or the family's default target).
    // The graph crate's errors are plain located data, cold paths (see its crate docs).
    #[allow(clippy::result_large_err)]
    pub fn target(&self, from: &VersionId, to: Option<&str>) -> Result<VersionId, PlanError> {
        self.inner.resolve_target(from, to)
    }
}

/// A checkpoint's version and the path from it to the target, before anything is compiled.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// What the checkpoint is.
    pub detection: Detection,
    /// Where it goes and how.
    pub plan: Plan,
}

/// A checkpoint seen in the target layout. Dereferences to the engine's
/// [`MigratedView`]: `names`, `info`, `tensor`, `slice`, `metadata`, `write_to`.
pub struct Migrated {
    view: MigratedView,
    detection: Detection,
    plan: Plan,
    dims: BTreeMap<String, i64>,
}

impl Migrated {
    /// The version the file is at.
    pub fn from_version(&self) -> &VersionId {
        &self.detection.version
    }

    /// The version the view shows.
    pub fn to_version(&self) -> &VersionId {
        &self.plan.to
    }

    /// What the file was detected as (version, bound dims, evidence).
    pub fn detection(&self) -> &Detection {
        &self.detection
    }

    /// The steps from the file's version to the view's.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Every dim value known after compiling (bound from the checkpoint, given, or
    /// computed by the migrations).
    pub fn dims(&self) -> &BTreeMap<String, i64> {
        &self.dims
    }

    /// The lazy view.
    pub fn view(&self) -> &MigratedView {
        &self.view
    }
}

impl Deref for Migrated {
    type Target = MigratedView;

    fn deref(&self) -> &MigratedView {
        &self.view
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use safeshift_engine::WriteOptions;
    use safeshift_model::probe::{self, Unified};

    use super::*;

    fn data() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/anemoi")
    }

    fn options() -> OpenOptions {
        OpenOptions {
            aux: BTreeMap::from([("graph".to_owned(), data().join("graph.safetensors"))]),
            ..OpenOptions::default()
        }
    }

    /// The unifications of the layout of `path` among `log`, and the others.
    fn split(log: Vec<Unified>, path: &Path) -> (Vec<String>, Vec<String>) {
        let input = probe::fingerprint(Checkpoint::open(path).unwrap().layout());
        let (mine, others): (Vec<Unified>, Vec<Unified>) = log.into_iter().partition(|call| call.layout == input);
        (mine.into_iter().map(|call| call.schema).collect(), others.into_iter().map(|call| call.schema).collect())
    }

    /// Opening detects once and never unifies the input again: each schema meets the
    /// input's layout at most once (detection), and the only other unification is the
    /// result checked against the target schema.
    #[test]
    #[cfg(debug_assertions)]
    fn each_input_is_detected_and_unified_once_per_open() {
        let registry = Registry::embedded().unwrap();
        let input = data().join("0.4.0/state_dict.safetensors");
        probe::take();
        let migrated = registry.open_with(&input, &options()).unwrap();
        let (mine, others) = split(probe::take(), &input);
        let mut distinct = mine.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), mine.len(), "a schema met the input twice: {mine:?}");
        let from = migrated.from_version().to_string();
        assert_eq!(mine.iter().filter(|schema| **schema == from).count(), 1, "{mine:?}");
        assert!(mine.len() <= registry.graph().graph().versions().count());
        assert_eq!(others, [migrated.to_version().to_string()]);

        // A file safeshift wrote records its version: detection trusts it after one
        // unification, and nothing else touches its layout.
        let dir = tempfile::tempdir().unwrap();
        let written = dir.path().join("upgraded.safetensors");
        migrated.write_to(&written, &WriteOptions::default()).unwrap();
        probe::take();
        let again = registry.open_with(&written, &options()).unwrap();
        assert_eq!(again.detection().evidence, safeshift_graph::Evidence::Recorded);
        assert!(again.plan().steps.is_empty());
        let (mine, others) = split(probe::take(), &written);
        assert_eq!(mine, [again.from_version().to_string()]);
        assert!(others.is_empty(), "{others:?}");
    }

    /// A failure after detection carries the detection and the target, so a report need
    /// not detect again.
    #[test]
    fn errors_after_detection_carry_it() {
        let registry = Registry::embedded().unwrap();
        let input = data().join("0.4.0/state_dict.safetensors");
        let bad = OpenOptions { to: Some("not-a-version".to_owned()), ..options() };
        let err = registry.open_with(&input, &bad).err().expect("a bad target");
        assert!(matches!(&err, OpenError::Plan { .. }), "{err}");
        assert_eq!(err.detection().map(|found| found.version.to_string()).as_deref(), Some("anemoi.encprocdec@0.4.0"));

        // A lossy path refused: the error names where the file is and where it was to go.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("schemas")).unwrap();
        std::fs::create_dir_all(dir.path().join("migrations")).unwrap();
        let schema = "schema t @ 1.0.0 {\n    dim n\n    tensor \"a\" : f32[n]\n}\n";
        std::fs::write(dir.path().join("schemas/t.ss"), schema).unwrap();
        let migration = "migration t 1.0.0 -> 2.0.0 {\n    cast \"a\" to bf16 lossy\n}\n";
        std::fs::write(dir.path().join("migrations/t.ss"), migration).unwrap();
        let registry = Registry::load(dir.path()).unwrap();
        let file = dir.path().join("a.safetensors");
        let tensor = safeshift_engine::OutputTensor {
            name: "a".into(),
            dtype: safeshift_model::DType::F32,
            shape: vec![2],
            source: safeshift_engine::TensorSource::Bytes(vec![0u8; 8].into()),
        };
        safeshift_engine::write(&file, vec![tensor], &WriteOptions::default()).unwrap();
        let err = registry.open(&file).err().expect("a lossy path");
        assert!(matches!(&err, OpenError::Lossy { .. }), "{err}");
        assert_eq!(err.detection().map(|found| found.version.to_string()).as_deref(), Some("t@1.0.0"));
        assert_eq!(err.target().map(ToString::to_string).as_deref(), Some("t@2.0.0"));
    }
}
