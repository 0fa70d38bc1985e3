//! The version graph: one node per `family@version`, one edge per migration, plus an
//! inverse edge for every migration that can be undone.

use std::collections::{BTreeMap, BTreeSet};

use petgraph::graph::{DiGraph, EdgeIndex, NodeIndex};
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use safeshift_dsl::ast::Span;
use safeshift_dsl::{similar, Diagnostic, SourceId};

use crate::registry::{MigrationDef, MigrationId, SchemaDef};
use crate::VersionId;

/// How a version came to exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Declared by this schema item (index into `Registry::schemas`).
    Schema(usize),
    /// Declared only as the target of this migration: its schema is the source schema
    /// with the migration applied.
    Derived(MigrationId),
}

/// What the graph needs to know about a migration to draw its edges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct EdgeFacts {
    /// Applying it loses information.
    pub lossy: bool,
    /// It can be undone (automatic inverse, or `down` block): `Some(lossy)` of the way back.
    pub undo: Option<bool>,
}

/// One edge: a migration applied as written, or undone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edge {
    /// The migration.
    pub migration: MigrationId,
    /// Whether the edge undoes the migration (its automatic inverse or its `down` block).
    pub inverse: bool,
    /// Whether following the edge discards information.
    pub lossy: bool,
    /// Whether the edge moves a checkpoint forward in history: a migration as written,
    /// unless it goes to an earlier version of the same family (a declared downgrade).
    pub upgrade: bool,
}

/// The version graph of a registry.
#[derive(Clone, Debug, Default)]
pub struct VersionGraph {
    graph: DiGraph<VersionId, Edge>,
    nodes: BTreeMap<VersionId, NodeIndex>,
    origins: BTreeMap<VersionId, Origin>,
    /// Where each version is declared: (source, span) of its schema header or of the
    /// target of the migration that derives it.
    locations: BTreeMap<VersionId, (SourceId, Span)>,
}

impl VersionGraph {
    /// Builds the graph, reporting duplicate versions, duplicate migrations, and
    /// migrations from versions that neither a schema nor another migration declares.
    /// The nodes only: add the edges with [`VersionGraph::add_edges`]. Returns the
    /// migrations whose source version exists, in an order where each comes after the
    /// one that derives its source.
    pub(crate) fn build(
        schemas: &[SchemaDef],
        migrations: &[MigrationDef],
    ) -> (VersionGraph, Vec<MigrationId>, Vec<Diagnostic>) {
        let mut graph = VersionGraph::default();
        let mut diagnostics = Vec::new();

        for (index, schema) in schemas.iter().enumerate() {
            if let Some(Origin::Schema(first)) = graph.origins.get(&schema.id) {
                let first = &schemas[*first];
                diagnostics.push(
                    Diagnostic::error(
                        "duplicate-version",
                        format!("version `{}` is declared twice", schema.id),
                        schema.source,
                        schema.ast.version.span,
                    )
                    .with_label("declared again here")
                    .with_secondary(first.source, first.ast.version.span, "first declared here")
                    .with_hint("bump the version of the changed schema and add a migration to it"),
                );
                continue;
            }
            graph.origins.insert(schema.id.clone(), Origin::Schema(index));
            graph.locations.insert(schema.id.clone(), (schema.source, span_of_version(schema)));
        }

        let mut seen_pairs: BTreeMap<(&VersionId, &VersionId), usize> = BTreeMap::new();
        let mut candidates = Vec::new();
        for (index, migration) in migrations.iter().enumerate() {
            if let Some(first) = seen_pairs.get(&(&migration.from, &migration.to)) {
                let first = &migrations[*first];
                diagnostics.push(
                    Diagnostic::error(
                        "duplicate-migration",
                        format!("two migrations from `{}` to `{}`", migration.from, migration.to),
                        migration.source,
                        header_span(migration),
                    )
                    .with_label("declared again here")
                    .with_secondary(first.source, header_span(first), "first declared here"),
                );
                continue;
            }
            seen_pairs.insert((&migration.from, &migration.to), index);
            if migration.from == migration.to {
                // The language reports it (`self-migration`); it is no edge.
                continue;
            }
            candidates.push(index);
        }

        // A version without a schema exists when a migration leads to it from a version
        // that exists: grow the set from the schemas, first derivation in load order wins.
        let mut grounded: Vec<usize> = Vec::new();
        let mut pending = candidates;
        loop {
            let before = pending.len();
            pending.retain(|&index| {
                let migration = &migrations[index];
                if !graph.origins.contains_key(&migration.from) {
                    return true;
                }
                if !graph.origins.contains_key(&migration.to) {
                    graph.origins.insert(migration.to.clone(), Origin::Derived(MigrationId(index)));
                    graph.locations.insert(migration.to.clone(), (migration.source, migration.ast.to.span));
                }
                grounded.push(index);
                false
            });
            if pending.len() == before {
                break;
            }
        }
        for index in pending {
            diagnostics.push(unknown_version(&graph, &migrations[index]));
        }

        for id in graph.origins.keys() {
            let node = graph.graph.add_node(id.clone());
            graph.nodes.insert(id.clone(), node);
        }
        (graph, grounded.into_iter().map(MigrationId).collect(), diagnostics)
    }

    /// Adds the edges of the grounded migrations (`grounded`, from [`VersionGraph::build`]).
    pub(crate) fn add_edges(
        &mut self,
        migrations: &[MigrationDef],
        grounded: &[MigrationId],
        facts: &dyn Fn(MigrationId) -> EdgeFacts,
    ) {
        let mut sorted = grounded.to_vec();
        sorted.sort();
        for id in sorted {
            let migration = &migrations[id.0];
            let (from, to) = (self.nodes[&migration.from], self.nodes[&migration.to]);
            let facts = facts(id);
            let downgrade =
                migration.from.family == migration.to.family && migration.to.version < migration.from.version;
            self.graph.add_edge(
                from,
                to,
                Edge { migration: id, inverse: false, lossy: facts.lossy, upgrade: !downgrade },
            );
            if let Some(lossy) = facts.undo {
                self.graph.add_edge(to, from, Edge { migration: id, inverse: true, lossy, upgrade: false });
            }
        }
    }

    /// Every version, sorted by family then semver.
    pub fn versions(&self) -> impl Iterator<Item = &VersionId> {
        self.nodes.keys()
    }

    /// The families, sorted.
    pub fn families(&self) -> Vec<&str> {
        let families: BTreeSet<&str> = self.nodes.keys().map(|id| id.family.as_str()).collect();
        families.into_iter().collect()
    }

    /// Whether the graph has this version.
    pub fn contains(&self, id: &VersionId) -> bool {
        self.nodes.contains_key(id)
    }

    /// How a version is declared.
    pub fn origin(&self, id: &VersionId) -> Option<Origin> {
        self.origins.get(id).copied()
    }

    /// Where a version is declared (schema header, or the target of the migration that
    /// derives it).
    pub fn location(&self, id: &VersionId) -> Option<(SourceId, Span)> {
        self.locations.get(id).copied()
    }

    /// Every edge as `(from, to, edge)`, in a stable order (by migration, forward first).
    pub fn edges(&self) -> Vec<(&VersionId, &VersionId, Edge)> {
        let mut edges: Vec<_> = self
            .graph
            .edge_references()
            .map(|edge| (&self.graph[edge.source()], &self.graph[edge.target()], *edge.weight()))
            .collect();
        edges.sort_by_key(|(_, _, edge)| (edge.migration, edge.inverse));
        edges
    }

    /// Edges leaving `id`, in a stable order.
    pub fn outgoing(&self, id: &VersionId) -> Vec<(&VersionId, Edge)> {
        let Some(&node) = self.nodes.get(id) else {
            return Vec::new();
        };
        let mut edges: Vec<_> = self
            .graph
            .edges_directed(node, Direction::Outgoing)
            .map(|edge| (&self.graph[edge.target()], *edge.weight()))
            .collect();
        edges.sort_by_key(|(_, edge)| (edge.migration, edge.inverse));
        edges
    }

    /// The heads of `family`: the ends of its branches of history.
    ///
    /// A version no upgrade leads away from within the family is a *sink*. The heads are
    /// the sinks some upgrade of the family leads to; when there is none (a family of
    /// lone versions), the newest sink. Several heads mean a forked history; a sink that
    /// is not a head is a version that cannot be upgraded.
    pub fn heads(&self, family: &str) -> Vec<&VersionId> {
        let sinks: Vec<&VersionId> = self
            .nodes
            .keys()
            .filter(|id| id.family == family)
            .filter(|id| self.outgoing(id).iter().all(|(to, edge)| !edge.upgrade || to.family != family))
            .collect();
        let tips: Vec<&VersionId> = sinks
            .iter()
            .copied()
            .filter(|id| {
                let node = self.nodes[*id];
                self.graph
                    .edges_directed(node, Direction::Incoming)
                    .any(|edge| edge.weight().upgrade && self.graph[edge.source()].family == family)
            })
            .collect();
        if tips.is_empty() {
            sinks.last().copied().into_iter().collect()
        } else {
            tips
        }
    }

    /// The head of `family` when it has exactly one.
    pub fn head(&self, family: &str) -> Option<VersionId> {
        match self.heads(family).as_slice() {
            [head] => Some((*head).clone()),
            _ => None,
        }
    }

    pub(crate) fn petgraph(&self) -> &DiGraph<VersionId, Edge> {
        &self.graph
    }

    pub(crate) fn node(&self, id: &VersionId) -> Option<NodeIndex> {
        self.nodes.get(id).copied()
    }

    #[allow(dead_code)]
    pub(crate) fn edge(&self, index: EdgeIndex) -> Edge {
        self.graph[index]
    }
}

/// The span of a schema's `family @ version` header.
fn span_of_version(schema: &SchemaDef) -> Span {
    schema.ast.family.span.to(schema.ast.version.span)
}

/// The span of a migration's `from -> to` header.
pub(crate) fn header_span(migration: &MigrationDef) -> Span {
    migration.ast.from.span.to(migration.ast.to.span)
}

fn unknown_version(graph: &VersionGraph, migration: &MigrationDef) -> Diagnostic {
    let missing = &migration.from;
    let mut diagnostic = Diagnostic::error(
        "unknown-version",
        format!("migration from unknown version `{missing}`"),
        migration.source,
        migration.ast.from.span,
    )
    .with_label("no schema declares it and no migration leads to it");
    let known: Vec<String> =
        graph.origins.keys().filter(|id| id.family == missing.family).map(|id| id.version.to_string()).collect();
    if known.is_empty() {
        let families: BTreeSet<&str> = graph.origins.keys().map(|id| id.family.as_str()).collect();
        match similar(&missing.family, families.iter().copied()).first() {
            Some(family) => diagnostic = diagnostic.with_hint(format!("did you mean family `{family}`?")),
            None => diagnostic = diagnostic.with_hint(format!("no version of family `{}` exists", missing.family)),
        }
    } else {
        let wanted = missing.version.to_string();
        if let Some(version) = similar(&wanted, known.iter().map(String::as_str)).first() {
            diagnostic = diagnostic.with_hint(format!("did you mean `{}@{version}`?", missing.family));
        }
        diagnostic = diagnostic.with_hint(format!("known versions of `{}`: {}", missing.family, known.join(", ")));
    }
    diagnostic
}

#[cfg(test)]
mod tests {
    use crate::testutil::{codes, lossy, migration, registry, schema, up};
    use crate::{Origin, VersionId};

    fn id(text: &str) -> VersionId {
        VersionId::parse(text).unwrap()
    }

    #[test]
    fn versions_come_from_schemas_and_migrations() {
        let (registry, diagnostics) =
            registry(vec![schema("a@1.0.0"), up("a@1.0.0", "a@2.0.0"), up("a@2.0.0", "a@3.0.0")]);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let graph = registry.graph();
        assert_eq!(graph.versions().map(ToString::to_string).collect::<Vec<_>>(), ["a@1.0.0", "a@2.0.0", "a@3.0.0"]);
        assert_eq!(graph.origin(&id("a@1.0.0")), Some(Origin::Schema(0)));
        assert!(matches!(graph.origin(&id("a@3.0.0")), Some(Origin::Derived(_))));
        assert_eq!(graph.heads("a"), [&id("a@3.0.0")]);
    }

    #[test]
    fn invertible_migrations_get_an_inverse_edge() {
        let lossy = lossy("a@2.0.0", "a@3.0.0");
        let derived = migration("a@3.0.0", "a@4.0.0", r#"drop "x" derived optional"#);
        let (registry, _) = registry(vec![schema("a@1.0.0"), up("a@1.0.0", "a@2.0.0"), lossy, derived]);
        let edges: Vec<(String, String, bool, bool)> = registry
            .graph()
            .edges()
            .into_iter()
            .map(|(from, to, edge)| (from.to_string(), to.to_string(), edge.inverse, edge.lossy))
            .collect();
        assert_eq!(
            edges,
            [
                ("a@1.0.0".into(), "a@2.0.0".into(), false, false),
                ("a@2.0.0".into(), "a@1.0.0".into(), true, false),
                ("a@2.0.0".into(), "a@3.0.0".into(), false, true),
                ("a@3.0.0".into(), "a@4.0.0".into(), false, false),
            ]
        );
    }

    #[test]
    fn reports_duplicates_and_unknown_versions_together() {
        let (registry, diagnostics) = registry(vec![
            schema("a@1.0.0"),
            schema("a@1.0.0"),
            up("a@1.0.0", "a@2.0.0"),
            up("a@1.0.0", "a@2.0.0"),
            up("a@1.5.0", "a@2.0.0"),
            up("b@1.0.0", "b@2.0.0"),
            up("a@1.0.0", "a@1.0.0"),
        ]);
        assert_eq!(
            codes(&diagnostics),
            ["self-migration", "duplicate-version", "duplicate-migration", "unknown-version", "unknown-version"]
        );
        assert_eq!(diagnostics[3].hints, ["did you mean `a@1.0.0`?", "known versions of `a`: 1.0.0, 2.0.0"]);
        assert_eq!(diagnostics[4].hints, ["did you mean family `a`?"]);
        assert_eq!(registry.graph().versions().count(), 2);
    }

    #[test]
    fn chains_without_a_schema_are_unknown() {
        let (_, diagnostics) = registry(vec![up("x@1.0.0", "x@2.0.0"), up("x@2.0.0", "x@3.0.0")]);
        assert_eq!(codes(&diagnostics), ["unknown-version", "unknown-version"]);
    }

    #[test]
    fn bad_versions_are_reported() {
        let (_, diagnostics) = registry(vec![schema("a@1.0"), up("a@1.0.0", "a@two")]);
        assert_eq!(codes(&diagnostics), ["bad-version", "bad-version"]);
    }
}
