//! The registry: every schema and migration of a project, loaded together.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use safeshift_dsl::{ast, Diagnostic, SourceId, SourceMap};
use sha2::{Digest, Sha256};

use safeshift_model::{unify_prepared, unify_tensors, Layout, Match, Mismatch, PreparedSchema, Schema, TensorInfo};

use crate::candidates::CandidateIndex;
use crate::derive::derive;
use crate::graph::{EdgeFacts, Origin, VersionGraph};
use crate::manifest::Manifest;
use crate::symbolic::{apply_ops, counts, instantiate, lower_migration, set_of, symbolic_context, LoweredOps};
use crate::{PlanError, VersionId};

/// Registry files larger than this are refused (a registry is hand-written text).
pub const MAX_FILE_BYTES: u64 = 16 << 20;
/// At most this many `.ss` files are read from one registry.
pub const MAX_FILES: usize = 10_000;
/// Folders nested deeper than this below `schemas/` or `migrations/` are not walked.
pub const MAX_DEPTH: usize = 32;

/// All schemas and migrations of a project, with their sources and the version graph.
#[derive(Debug)]
pub struct Registry {
    sources: SourceMap,
    manifest: Manifest,
    schemas: Vec<SchemaDef>,
    migrations: Vec<MigrationDef>,
    graph: VersionGraph,
    /// Schemas of versions declared only through a migration.
    derived: BTreeMap<VersionId, Schema>,
    /// Each migration's operations, lowered (`None` when lowering reported an error).
    lowered: Vec<Option<LoweredOps>>,
    /// Detection's index of candidate schemas, built on first use.
    candidates: OnceLock<CandidateIndex>,
    /// Each schema item's unification data, by index, prepared on first use.
    prepared: Vec<OnceLock<PreparedSchema>>,
    /// Each derived schema's, prepared on first use.
    prepared_derived: BTreeMap<VersionId, OnceLock<PreparedSchema>>,
}

/// One `schema` item.
#[derive(Clone, Debug)]
pub struct SchemaDef {
    /// `family@version`.
    pub id: VersionId,
    /// The file it is in.
    pub source: SourceId,
    /// Its syntax tree.
    pub ast: ast::Schema,
    /// Its meaning.
    pub schema: safeshift_model::Schema,
    /// Whether lowering reported no error (only then is `schema` used).
    pub usable: bool,
}

/// Identifies a migration of a registry (an index into [`Registry::migrations`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MigrationId(pub usize);

/// One `migration` item.
#[derive(Clone, Debug)]
pub struct MigrationDef {
    /// The source version.
    pub from: VersionId,
    /// The target version.
    pub to: VersionId,
    /// The file it is in.
    pub source: SourceId,
    /// Its syntax tree.
    pub ast: ast::Migration,
    /// Hex SHA-256 of the item's source text, recorded in provenance metadata.
    pub hash: String,
}

/// Why a registry folder could not be read at all (problems inside files are diagnostics).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// Reading a file or folder failed.
    #[error("cannot read `{}`", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The folder has neither `schemas/` nor `migrations/`.
    #[error("`{}` is not a registry: it has no `schemas/` or `migrations/` folder", path.display())]
    NotARegistry {
        /// The folder.
        path: PathBuf,
    },
    /// A file is larger than [`MAX_FILE_BYTES`].
    #[error("`{}` is {size} bytes, more than the {MAX_FILE_BYTES} a registry file may have", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// More than [`MAX_FILES`] registry files.
    #[error("`{}` holds more than {MAX_FILES} registry files", path.display())]
    TooManyFiles {
        /// The registry folder.
        path: PathBuf,
    },
    /// A file is not UTF-8.
    #[error("`{}` is not UTF-8 text", path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
    },
}

/// The text files of a registry folder, before parsing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistryFiles {
    /// `(path relative to the registry, text)` of every `.ss` file, schemas first, each
    /// folder in byte order of paths.
    pub files: Vec<(String, String)>,
    /// The text of `safeshift.yaml`, when present.
    pub manifest: Option<String>,
}

impl RegistryFiles {
    /// Reads `dir/schemas/**/*.ss`, `dir/migrations/**/*.ss` and `dir/safeshift.yaml`.
    pub fn read(dir: &Path) -> Result<RegistryFiles, LoadError> {
        let mut out = RegistryFiles::default();
        let mut found_folder = false;
        for folder in ["schemas", "migrations"] {
            let root = dir.join(folder);
            if !root.is_dir() {
                continue;
            }
            found_folder = true;
            let mut paths = Vec::new();
            walk(&root, 0, &mut paths, dir)?;
            paths.sort();
            for path in paths {
                if out.files.len() >= MAX_FILES {
                    return Err(LoadError::TooManyFiles { path: dir.to_path_buf() });
                }
                let text = read_text(&path)?;
                let shown = path.strip_prefix(dir).unwrap_or(&path).to_string_lossy().replace('\\', "/");
                out.files.push((shown, text));
            }
        }
        let manifest_path = dir.join("safeshift.yaml");
        if manifest_path.is_file() {
            out.manifest = Some(read_text(&manifest_path)?);
        } else if !found_folder {
            return Err(LoadError::NotARegistry { path: dir.to_path_buf() });
        }
        Ok(out)
    }
}

fn walk(folder: &Path, depth: usize, out: &mut Vec<PathBuf>, registry: &Path) -> Result<(), LoadError> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    let io = |source| LoadError::Io { path: folder.to_path_buf(), source };
    for entry in std::fs::read_dir(folder).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        // Symlinks are followed only as files: a link back up the tree must not loop.
        let file_type = entry.file_type().map_err(io)?;
        if file_type.is_dir() {
            walk(&path, depth + 1, out, registry)?;
        } else if path.extension().is_some_and(|ext| ext == "ss") {
            out.push(path);
            if out.len() > MAX_FILES {
                return Err(LoadError::TooManyFiles { path: registry.to_path_buf() });
            }
        }
    }
    Ok(())
}

fn read_text(path: &Path) -> Result<String, LoadError> {
    let io = |source| LoadError::Io { path: path.to_path_buf(), source };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_FILE_BYTES {
        return Err(LoadError::TooLarge { path: path.to_path_buf(), size });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    String::from_utf8(bytes).map_err(|_| LoadError::NotUtf8 { path: path.to_path_buf() })
}

impl Registry {
    /// Builds a registry from parsed files (`files` name their text in `sources`),
    /// reporting every problem found on the way (bad and duplicate versions, migrations
    /// from unknown versions) together.
    pub fn from_parsed(
        sources: SourceMap,
        files: Vec<(SourceId, ast::File)>,
        manifest: Manifest,
    ) -> (Registry, Vec<Diagnostic>) {
        let mut schemas = Vec::new();
        let mut migrations = Vec::new();
        let mut diagnostics = Vec::new();
        for (source, file) in files {
            for item in file.items {
                match item {
                    ast::Item::Schema(schema) => match version_id(source, &schema.family, &schema.version) {
                        Ok(id) => {
                            let (lowered, problems) = safeshift_model::lower_schema(source, &schema);
                            let usable = !problems.iter().any(Diagnostic::is_error);
                            diagnostics.extend(problems);
                            schemas.push(SchemaDef { id, source, ast: schema, schema: lowered, usable });
                        }
                        Err(diagnostic) => diagnostics.push(diagnostic),
                    },
                    ast::Item::Migration(migration) => {
                        let from = version_ref(source, &migration.from);
                        let to = version_ref(source, &migration.to);
                        match (from, to) {
                            (Ok(from), Ok(to)) => {
                                let text =
                                    sources.text(source).get(migration.span.start..migration.span.end).unwrap_or("");
                                let hash = hex(&Sha256::digest(text.as_bytes()));
                                migrations.push(MigrationDef { from, to, source, ast: migration, hash });
                            }
                            (from, to) => diagnostics.extend(from.err().into_iter().chain(to.err())),
                        }
                    }
                }
            }
        }
        let (mut graph, grounded, graph_diagnostics) = VersionGraph::build(&schemas, &migrations);
        diagnostics.extend(graph_diagnostics);

        let mut lowered = Vec::with_capacity(migrations.len());
        for migration in &migrations {
            let (ops, problems) = lower_migration(migration);
            let complete = !problems.iter().any(Diagnostic::is_error);
            diagnostics.extend(problems);
            lowered.push(complete.then_some(ops));
        }

        // Derivation order: each migration comes after the one deriving its source.
        let mut derived: BTreeMap<VersionId, Schema> = BTreeMap::new();
        let mut facts: BTreeMap<MigrationId, EdgeFacts> = BTreeMap::new();
        for &id in &grounded {
            let migration = &migrations[id.0];
            let from = match graph.origin(&migration.from) {
                Some(Origin::Schema(index)) => schemas.get(index).filter(|def| def.usable).map(|def| &def.schema),
                Some(Origin::Derived(_)) => derived.get(&migration.from),
                None => None,
            };
            let to = match graph.origin(&migration.to) {
                Some(Origin::Schema(index)) => schemas.get(index).filter(|def| def.usable).map(|def| &def.schema),
                _ => None,
            };
            let Some(ops) = &lowered[id.0] else {
                let lossy = migration.ast.ops.iter().any(has_lossy_flag);
                facts.insert(id, EdgeFacts { lossy, undo: None });
                continue;
            };
            let undo = match (&ops.down, from) {
                (Some(_), _) => Some(ops.down_lossy()),
                (None, Some(from)) => invertible(migration, from, to, ops).then_some(false),
                (None, None) => None,
            };
            facts.insert(id, EdgeFacts { lossy: ops.lossy(), undo });
            if graph.origin(&migration.to) == Some(Origin::Derived(id)) {
                if let Some(from) = from {
                    match derive(migration, from, ops) {
                        Ok(schema) => {
                            derived.insert(migration.to.clone(), schema);
                        }
                        Err(diagnostic) => diagnostics.push(diagnostic),
                    }
                }
            }
        }
        graph.add_edges(&migrations, &grounded, &|id| facts.get(&id).copied().unwrap_or_default());
        let prepared = schemas.iter().map(|_| OnceLock::new()).collect();
        let prepared_derived = derived.keys().map(|id| (id.clone(), OnceLock::new())).collect();
        let registry = Registry {
            sources,
            manifest,
            schemas,
            migrations,
            graph,
            derived,
            lowered,
            candidates: OnceLock::new(),
            prepared,
            prepared_derived,
        };
        (registry, diagnostics)
    }

    /// The source texts, for rendering diagnostics.
    pub fn sources(&self) -> &SourceMap {
        &self.sources
    }

    /// The project settings (`safeshift.yaml`), default when absent.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Every schema item, in load order (duplicates included).
    pub fn schemas(&self) -> &[SchemaDef] {
        &self.schemas
    }

    /// Every migration item, in load order.
    pub fn migrations(&self) -> &[MigrationDef] {
        &self.migrations
    }

    /// The lowered operations of a migration; `None` when they have errors.
    pub(crate) fn lowered(&self, id: MigrationId) -> Option<&LoweredOps> {
        self.lowered.get(id.0).and_then(Option::as_ref)
    }

    /// The migration with this id.
    pub fn migration(&self, id: MigrationId) -> &MigrationDef {
        &self.migrations[id.0]
    }

    /// The version graph.
    pub fn graph(&self) -> &VersionGraph {
        &self.graph
    }

    /// The schema item that declares `id` (the first, if duplicated); `None` for a
    /// version declared only through a migration.
    pub fn schema(&self, id: &VersionId) -> Option<&SchemaDef> {
        self.schemas.iter().find(|schema| &schema.id == id)
    }

    /// The meaning of version `id`: its schema item's, or the derived one; `None` when the
    /// version is unknown or its schema has errors.
    pub fn schema_of(&self, id: &VersionId) -> Option<&Schema> {
        match self.graph.origin(id)? {
            Origin::Schema(index) => self.schemas.get(index).filter(|def| def.usable).map(|def| &def.schema),
            Origin::Derived(_) => self.derived.get(id),
        }
    }

    /// Unifies `layout` with the schema of `id` ([`safeshift_model::unify`]), whose name
    /// patterns and shapes are prepared once per registry, not at every open; `None` when
    /// `id` has no usable schema.
    #[allow(clippy::result_large_err)]
    pub fn unify(
        &self,
        id: &VersionId,
        layout: &Layout,
        given: &BTreeMap<String, i64>,
    ) -> Option<Result<Match, Mismatch>> {
        let (schema, prepared) = self.prepared_schema(id)?;
        Some(unify_prepared(schema, prepared, layout, given))
    }

    /// [`Registry::unify`] with the layout given as its parts, the tensors borrowed
    /// ([`safeshift_model::unify_tensors`]): compilation checks its outputs against the
    /// target schema without copying them into a [`Layout`].
    #[allow(clippy::result_large_err)]
    pub fn unify_tensors(
        &self,
        id: &VersionId,
        tensors: &[&TensorInfo],
        metadata: &BTreeMap<String, String>,
        given: &BTreeMap<String, i64>,
    ) -> Option<Result<Match, Mismatch>> {
        let (schema, prepared) = self.prepared_schema(id)?;
        Some(unify_tensors(schema, prepared, tensors, metadata, given))
    }

    /// The schema of `id` and its unification data, prepared on first use.
    fn prepared_schema(&self, id: &VersionId) -> Option<(&Schema, &PreparedSchema)> {
        let schema = self.schema_of(id)?;
        let prepared = match self.graph.origin(id)? {
            Origin::Schema(index) => &self.prepared[index],
            Origin::Derived(_) => self.prepared_derived.get(id)?,
        };
        Some((schema, prepared.get_or_init(|| PreparedSchema::new(schema))))
    }

    /// The index detection uses to unify a layout only with schemas it could fit, built
    /// on first use and kept: name filters are compiled once per registry.
    pub(crate) fn candidate_index(&self) -> &CandidateIndex {
        self.candidates.get_or_init(|| CandidateIndex::build(self))
    }

    /// The default target for a checkpoint of `family`: the manifest's choice, else the
    /// family's head (`None` when the family has no single head).
    pub fn default_target(&self, family: &str) -> Option<VersionId> {
        self.manifest.target(family).or_else(|| self.graph.head(family))
    }

    /// The one target resolver (the CLI's `--to` and the library's `OpenOptions::to`): for
    /// a checkpoint at `from`, `FAMILY@VERSION`, a bare `VERSION` of `from`'s family, or,
    /// without `to`, the [default target](Registry::default_target) — an error, never a
    /// silent fallback, when the family has none.
    pub fn resolve_target(&self, from: &VersionId, to: Option<&str>) -> Result<VersionId, PlanError> {
        let bad = |text: &str, source| PlanError::BadTarget { text: text.to_owned(), source: Box::new(source) };
        match to {
            None => self.default_target(&from.family).ok_or_else(|| PlanError::NoDefaultTarget {
                family: from.family.clone(),
                heads: self.graph.heads(&from.family).into_iter().cloned().collect(),
            }),
            Some(text) if text.contains('@') => VersionId::parse(text).map_err(|source| bad(text, source)),
            Some(text) => VersionId::new(&from.family, text).map_err(|source| bad(text, source)),
        }
    }
}

fn has_lossy_flag(op: &ast::Op) -> bool {
    op.operands.iter().any(|operand| matches!(&operand.kind, ast::OperandKind::Flag(flag) if flag.node == "lossy"))
}

/// Whether every operation of `migration` has an inverse, tried on `from` instantiated
/// with two of each counted index.
fn invertible(migration: &MigrationDef, from: &Schema, to: Option<&Schema>, ops: &LoweredOps) -> bool {
    let mut counts = counts(from, 2);
    let Ok(tensors) = instantiate(from, &mut counts, Some(2)) else {
        return false;
    };
    let ctx = symbolic_context(migration, from, to, &counts, &tensors);
    apply_ops(&ops.ops, set_of(&tensors, from), &ctx).is_ok_and(|applied| applied.inverse.is_ok())
}

fn version_ref(source: SourceId, reference: &ast::VersionRef) -> Result<VersionId, Diagnostic> {
    match &reference.family {
        Some(family) => version_id(source, family, &reference.version),
        // The parser always fills the family in; a tree built in code might not.
        None => Err(Diagnostic::error("missing-family", "migration version without a family", source, reference.span)),
    }
}

fn version_id(source: SourceId, family: &ast::Name, version: &ast::Version) -> Result<VersionId, Diagnostic> {
    if !crate::version_id::is_family(&family.node) {
        return Err(Diagnostic::error(
            "bad-family",
            format!("`{}` is not a family name", family.node),
            source,
            family.span,
        )
        .with_hint("a family is dotted identifiers, like `llama.hf`"));
    }
    VersionId::new(&family.node, &version.node).map_err(|err| {
        Diagnostic::error("bad-version", format!("`{}` is not a semantic version", version.node), source, version.span)
            .with_label(err.to_string())
            .with_hint("versions are semver: `MAJOR.MINOR.PATCH`, like `0.4.0` or `1.0.0-rc.1`")
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
