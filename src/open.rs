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
use safeshift_engine::{Checkpoint, MigratedView, PlannedTensor, ReadError, ViewError};
use safeshift_graph::{
    compile_with_params, detect, plan, CompileError, CompiledPlan, DetectError, Detection, Plan, PlanError, VersionId,
    VersionIdError,
};
use safeshift_model::Layout;

/// All schemas and migrations of a project, ready to open checkpoints.
pub struct Registry {
    inner: safeshift_graph::Registry,
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
}

/// Why a checkpoint could not be opened in the target layout.
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
    /// `--to` is not a version.
    #[error("bad target `{text}`: {source}")]
    BadTarget {
        /// As given.
        text: String,
        /// Why.
        #[source]
        source: VersionIdError,
    },
    /// No path to the target.
    #[error("`{path}`: {source}")]
    Plan {
        /// The checkpoint.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<PlanError>,
    },
    /// The plan discards information and that was not allowed.
    #[error(
        "`{path}`: the path {from} -> {to} discards information (lossy steps: {steps}); pass --allow-lossy to run it"
    )]
    Lossy {
        /// The checkpoint.
        path: PathBuf,
        /// Its version (`family@version`).
        from: String,
        /// The target (`family@version`).
        to: String,
        /// The lossy steps, `a -> b` each.
        steps: String,
    },
    /// The plan could not be compiled for this checkpoint.
    #[error("`{path}`: {source}")]
    Compile {
        /// The checkpoint.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<CompileError>,
    },
    /// The outputs cannot be named in the input's key layout kind.
    #[error("`{path}`: {message}")]
    KeyLayout {
        /// The checkpoint.
        path: PathBuf,
        /// Which output, and why.
        message: String,
    },
    /// The compiled plan does not fit the files.
    #[error("`{path}`: {source}")]
    View {
        /// The checkpoint.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<ViewError>,
    },
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
        Ok(Registry { inner })
    }

    /// The schemas, migrations and version graph.
    pub fn graph(&self) -> &safeshift_graph::Registry {
        &self.inner
    }

    /// Opens `path` migrated to its family's newest version.
    pub fn open(&self, path: &Path) -> Result<Migrated, OpenError> {
        self.open_with(path, &OpenOptions::default())
    }

    /// Opens `path` migrated as `options` say.
    pub fn open_with(&self, path: &Path, options: &OpenOptions) -> Result<Migrated, OpenError> {
        let checkpoint = Checkpoint::open(path)?;
        let prepared = self.prepare(path, checkpoint.layout(), options)?;
        self.open_prepared(path, checkpoint, prepared, options)
    }

    /// Compiles an already [prepared](Registry::prepare) plan for an open checkpoint and
    /// returns its view, so a caller that looked at the plan first (to skip, or report) does
    /// not detect and plan twice. `path` names the checkpoint in errors.
    pub fn open_prepared(
        &self,
        path: &Path,
        checkpoint: Checkpoint,
        prepared: Prepared,
        options: &OpenOptions,
    ) -> Result<Migrated, OpenError> {
        let mut aux_checkpoints = BTreeMap::new();
        for (name, aux_path) in &options.aux {
            aux_checkpoints.insert(name.clone(), Checkpoint::open(aux_path)?);
        }
        let mut aux_layouts: BTreeMap<String, Layout> = BTreeMap::new();
        // An aux file may hold its tensors as extras under the input's name (a converted
        // `graph.pt`: `graph.data_to_hidden.edge_index` for `graph`).
        let mut prefixed = Vec::new();
        for (name, aux) in &aux_checkpoints {
            match safeshift_graph::aux_from_extras(aux.layout(), name) {
                Some(inner) => {
                    aux_layouts.insert(name.clone(), inner);
                    prefixed.push(name.clone());
                }
                None => {
                    aux_layouts.insert(name.clone(), aux.layout().clone());
                }
            }
        }
        // The file's own word first: an aux input nobody gave may be among its extras
        // (`graph.<edge set>.edge_index` for `graph`).
        let mut from_extras = Vec::new();
        for step in &prepared.plan.steps {
            for decl in &self.inner.migration(step.migration).ast.decls {
                let safeshift_dsl::ast::MigrationDeclKind::Aux { name, .. } = &decl.kind else { continue };
                if aux_layouts.contains_key(&name.node) {
                    continue;
                }
                if let Some(layout) = safeshift_graph::aux_from_extras(checkpoint.layout(), &name.node) {
                    aux_layouts.insert(name.node.clone(), layout);
                    from_extras.push(name.node.clone());
                }
            }
        }
        // A file of another key layout kind is compiled under the schemas' names.
        let key_layout = prepared.detection.key_layout.clone();
        let canonical = match &key_layout {
            Some(key_layout) => safeshift_graph::canonical(checkpoint.layout(), key_layout),
            None => checkpoint.layout().clone(),
        };
        let mut compiled =
            compile_with_params(&self.inner, &prepared.plan, &canonical, &options.dims, &aux_layouts, &options.params)
                .map_err(|source| OpenError::Compile { path: path.to_owned(), source: Box::new(source) })?;
        for output in &mut compiled.outputs {
            for input in &from_extras {
                safeshift_graph::read_aux_from_extras(&mut output.expr, input);
            }
            for input in &prefixed {
                safeshift_graph::read_aux_prefixed(&mut output.expr, input);
            }
            if options.allow_lossy {
                output.expr = safeshift_ops::accept_unequal_merges(output.expr.clone());
            }
        }
        if let Some(key_layout) = &key_layout {
            let extras = safeshift_graph::extras_of(checkpoint.layout());
            safeshift_graph::restore(&mut compiled, key_layout, &extras)
                .map_err(|message| OpenError::KeyLayout { path: path.to_owned(), message })?;
        }
        let planned = compiled
            .outputs
            .iter()
            .map(|output| PlannedTensor {
                name: output.name.clone(),
                dtype: output.dtype,
                shape: output.shape.clone(),
                expr: output.expr.clone(),
            })
            .collect();
        let view = MigratedView::new(checkpoint, aux_checkpoints, planned, compiled.metadata.clone())
            .map_err(|source| OpenError::View { path: path.to_owned(), source: Box::new(source) })?;
        Ok(Migrated { view, detection: prepared.detection, compiled })
    }

    /// Detects the version of a checkpoint with this layout and plans the path to the
    /// target, refusing lossy paths unless allowed. Reads nothing.
    pub fn prepare(&self, path: &Path, layout: &Layout, options: &OpenOptions) -> Result<Prepared, OpenError> {
        let detection = detect(&self.inner, layout, &options.dims)
            .map_err(|source| OpenError::Detect { path: path.to_owned(), source: Box::new(source) })?;
        let target = self.target(&detection.version, options.to.as_deref())?;
        let plan = plan(self.inner.graph(), &detection.version, &target)
            .map_err(|source| OpenError::Plan { path: path.to_owned(), source: Box::new(source) })?;
        if plan.lossy() && !options.allow_lossy {
            let steps: Vec<String> = plan
                .steps
                .iter()
                .filter(|step| step.lossy)
                .map(|step| format!("{} -> {}", step.from, step.to))
                .collect();
            return Err(OpenError::Lossy {
                path: path.to_owned(),
                from: plan.from.to_string(),
                to: plan.to.to_string(),
                steps: steps.join(", "),
            });
        }
        Ok(Prepared { detection, plan })
    }

    /// The version `to` names for a checkpoint at `from`.
    pub fn target(&self, from: &VersionId, to: Option<&str>) -> Result<VersionId, OpenError> {
        let bad = |text: &str, source| OpenError::BadTarget { text: text.to_owned(), source };
        match to {
            None => Ok(self.inner.default_target(&from.family).unwrap_or_else(|| from.clone())),
            Some(text) if text.contains('@') => VersionId::parse(text).map_err(|source| bad(text, source)),
            Some(text) => VersionId::new(&from.family, text).map_err(|source| bad(text, source)),
        }
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
    compiled: CompiledPlan,
}

impl Migrated {
    /// The version the file is at.
    pub fn from_version(&self) -> &VersionId {
        &self.detection.version
    }

    /// The version the view shows.
    pub fn to_version(&self) -> &VersionId {
        &self.compiled.to
    }

    /// The compiled plan (steps, dims, one expression per output).
    pub fn plan(&self) -> &CompiledPlan {
        &self.compiled
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
