//! Validation of the version graph as a whole: every problem, located, in one pass.
//!
//! Problems found while building the graph (bad and duplicate versions, migrations from
//! unknown versions) come with [`Registry::load`](crate::Registry); this adds the ones
//! that need the whole graph: cycles, families with several heads, versions that cannot
//! reach their head, and equal-cost paths that could disagree.

use std::collections::BTreeSet;

use petgraph::graph::DiGraph;
use petgraph::visit::EdgeRef;
use safeshift_dsl::ast::Span;
use safeshift_dsl::{Diagnostic, SourceId};

use crate::graph::header_span;
use crate::plan::{shortest_paths, Step};
use crate::registry::{MigrationId, Registry};
use crate::VersionId;

/// Whether two equal-cost paths give the same result; the static checker compiles both
/// symbolically. `None` means "could not tell", reported as an ambiguity.
pub type PathComparer<'a> = dyn Fn(&Registry, &[Step], &[Step]) -> Option<bool> + 'a;

/// Every graph-level problem of the registry.
pub fn validate(registry: &Registry, same_result: &PathComparer<'_>) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    manifest_targets(registry, &mut diagnostics);
    cycles(registry, &mut diagnostics);
    for family in registry.graph().families() {
        heads_and_reachability(registry, family, same_result, &mut diagnostics);
    }
    diagnostics
}

fn manifest_targets(registry: &Registry, diagnostics: &mut Vec<Diagnostic>) {
    let sources = registry.sources();
    let manifest_file = sources.ids().find(|id| sources.name(*id).ends_with("safeshift.yaml"));
    for (family, target) in &registry.manifest().targets {
        let known = VersionId::parse(target).is_ok_and(|id| registry.graph().contains(&id));
        if known {
            continue;
        }
        let (source, span) = match manifest_file {
            Some(source) => {
                let start = sources.text(source).find(target.as_str()).unwrap_or(0);
                (source, Span::new(start, start + target.len()))
            }
            None => (SourceId::default(), Span::DUMMY),
        };
        diagnostics.push(
            Diagnostic::error(
                "unknown-target",
                format!("the default target of `{family}` is `{target}`, which no schema or migration declares"),
                source,
                span,
            )
            .with_label("in `targets`"),
        );
    }
}

fn cycles(registry: &Registry, diagnostics: &mut Vec<Diagnostic>) {
    let graph = registry.graph();
    // Upgrades only: inverse edges and declared downgrades go back by design.
    let mut upgrades: DiGraph<VersionId, MigrationId> = DiGraph::new();
    let mut nodes = std::collections::BTreeMap::new();
    for id in graph.versions() {
        nodes.insert(id.clone(), upgrades.add_node(id.clone()));
    }
    let mut pairs = BTreeSet::new();
    for (from, to, edge) in graph.edges() {
        if edge.upgrade {
            pairs.insert((from.clone(), to.clone()));
        }
    }
    for (from, to, edge) in graph.edges() {
        // A cross-family pair `a -> b`, `b -> a` is a conversion and its way back: the
        // one that goes from the later id to the earlier is taken as the way back.
        let way_back = pairs.contains(&(to.clone(), from.clone())) && to < from;
        if edge.upgrade && !way_back {
            upgrades.add_edge(nodes[from], nodes[to], edge.migration);
        }
    }
    for component in petgraph::algo::tarjan_scc(&upgrades) {
        if component.len() < 2 {
            continue;
        }
        let members: BTreeSet<_> = component.iter().copied().collect();
        let mut migrations: Vec<MigrationId> = upgrades
            .edge_references()
            .filter(|edge| members.contains(&edge.source()) && members.contains(&edge.target()))
            .map(|edge| *edge.weight())
            .collect();
        migrations.sort();
        let mut versions: Vec<&VersionId> = component.iter().map(|node| &upgrades[*node]).collect();
        versions.sort();
        let names = versions.iter().map(|id| format!("`{id}`")).collect::<Vec<_>>().join(", ");
        let first = registry.migration(migrations[0]);
        let mut diagnostic = Diagnostic::error(
            "cycle",
            format!("migrations form a cycle through {names}"),
            first.source,
            header_span(first),
        )
        .with_label("this migration is part of the cycle")
        .with_hint("a version history must not loop; write the way back as a `down` block");
        for id in &migrations[1..] {
            let migration = registry.migration(*id);
            diagnostic = diagnostic.with_secondary(migration.source, header_span(migration), "and this one");
        }
        diagnostics.push(diagnostic);
    }
}

fn heads_and_reachability(
    registry: &Registry,
    family: &str,
    same_result: &PathComparer<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let graph = registry.graph();
    let heads = graph.heads(family);
    if heads.len() > 1 && registry.manifest().target(family).is_none() {
        let names = heads.iter().map(|id| format!("`{id}`")).collect::<Vec<_>>().join(", ");
        let (source, span) = graph.location(heads[0]).expect("every version has a location");
        let mut diagnostic = Diagnostic::error(
            "multiple-heads",
            format!("family `{family}` has {} heads: {names}", heads.len()),
            source,
            span,
        )
        .with_label("a head: no upgrade leads on from it")
        .with_hint("add a migration from all but the newest head, so every checkpoint has one target");
        for head in &heads[1..] {
            let (source, span) = graph.location(head).expect("every version has a location");
            diagnostic = diagnostic.with_secondary(source, span, "another head");
        }
        diagnostics.push(diagnostic);
        return;
    }
    let Some(head) = registry.default_target(family) else {
        // Every version has an upgrade within the family: only possible with a cycle,
        // which is reported on its own.
        return;
    };
    let head = &head;
    let versions: Vec<&VersionId> = graph.versions().filter(|id| id.family == family && *id != head).collect();
    for version in versions {
        let paths = match shortest_paths(graph, version, head, 2) {
            Ok(paths) => paths,
            Err(_) => continue,
        };
        let (source, span) = graph.location(version).expect("every version has a location");
        match paths.as_slice() {
            [] => diagnostics.push(
                Diagnostic::error(
                    "unreachable-version",
                    format!("no migration path leads from `{version}` to the head `{head}`"),
                    source,
                    span,
                )
                .with_label("checkpoints of this version could not be upgraded")
                .with_hint(format!("add a migration from `{version}` to a version that reaches `{head}`")),
            ),
            [first, second] if same_result(registry, first, second) != Some(true) => {
                let mut diagnostic = Diagnostic::error(
                    "ambiguous-paths",
                    format!("two equally short paths lead from `{version}` to `{head}` and may give different results"),
                    source,
                    span,
                )
                .with_label("from here")
                .with_hint(format!("first: {}", describe(version, first)))
                .with_hint(format!("second: {}", describe(version, second)))
                .with_hint("remove one of the migrations, or make one path shorter");
                let mut seen = BTreeSet::new();
                for step in first.iter().chain(second.iter()) {
                    if !seen.insert(step.migration) {
                        continue;
                    }
                    let migration = registry.migration(step.migration);
                    let label = if step.inverse { "undone on one path" } else { "on one path" };
                    diagnostic = diagnostic.with_secondary(migration.source, header_span(migration), label);
                }
                diagnostics.push(diagnostic);
            }
            _ => {}
        }
    }
}

fn describe(start: &VersionId, steps: &[Step]) -> String {
    let mut text = format!("`{start}`");
    for step in steps {
        text.push_str(&format!(" -> `{}`", step.to));
        if step.inverse {
            text.push_str(" (undone)");
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{codes, lossy, registry, schema, up};

    fn check(items: Vec<String>) -> Vec<Diagnostic> {
        let (registry, diagnostics) = registry(items);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        validate(&registry, &|_, _, _| None)
    }

    #[test]
    fn a_straight_history_is_valid() {
        assert!(check(vec![schema("a@1.0.0"), up("a@1.0.0", "a@2.0.0"), up("a@2.0.0", "a@3.0.0")]).is_empty());
    }

    #[test]
    fn cross_family_cycles_are_reported_but_conversion_pairs_are_not() {
        let cycle = check(vec![
            schema("a@1.0.0"),
            up("a@1.0.0", "b@1.0.0"),
            up("b@1.0.0", "c@1.0.0"),
            up("c@1.0.0", "a@1.0.0"),
        ]);
        assert_eq!(codes(&cycle), ["cycle"]);
        assert!(cycle[0].message.contains("`a@1.0.0`, `b@1.0.0`, `c@1.0.0`"), "{}", cycle[0].message);
        assert_eq!(cycle[0].secondary.len(), 2);
        let pair =
            check(vec![schema("a@1.0.0"), schema("b@1.0.0"), up("a@1.0.0", "b@1.0.0"), up("b@1.0.0", "a@1.0.0")]);
        assert!(pair.is_empty(), "{pair:?}");
    }

    #[test]
    fn declared_downgrades_are_not_cycles() {
        let items = vec![schema("a@1.0.0"), up("a@1.0.0", "a@2.0.0"), lossy("a@2.0.0", "a@1.0.0")];
        assert!(check(items).is_empty());
    }

    #[test]
    fn forks_are_multiple_heads() {
        let heads = check(vec![schema("a@1.0.0"), up("a@1.0.0", "a@2.0.0"), up("a@1.0.0", "a@3.0.0")]);
        assert_eq!(codes(&heads), ["multiple-heads"]);
        assert_eq!(heads[0].message, "family `a` has 2 heads: `a@2.0.0`, `a@3.0.0`");
        assert_eq!(heads[0].secondary.len(), 1);
    }

    #[test]
    fn versions_without_a_way_up_are_unreachable() {
        // b@1.0.0 upgrades into family c, never to b's head.
        let diagnostics = check(vec![schema("b@1.0.0"), schema("b@2.0.0"), up("b@1.0.0", "c@1.0.0")]);
        assert_eq!(codes(&diagnostics), ["unreachable-version"]);
        assert_eq!(diagnostics[0].message, "no migration path leads from `b@1.0.0` to the head `b@2.0.0`");
        // a@0.5.0 is only reached by a declared downgrade.
        let diagnostics = check(vec![schema("a@1.0.0"), up("a@1.0.0", "a@2.0.0"), lossy("a@2.0.0", "a@0.5.0")]);
        assert_eq!(codes(&diagnostics), ["unreachable-version"]);
        assert_eq!(diagnostics[0].message, "no migration path leads from `a@0.5.0` to the head `a@2.0.0`");
        // A lone old schema.
        let diagnostics = check(vec![schema("a@0.1.0"), schema("a@1.0.0"), up("a@1.0.0", "a@2.0.0")]);
        assert_eq!(codes(&diagnostics), ["unreachable-version"]);
    }

    #[test]
    fn equal_cost_paths_are_ambiguous_unless_proved_equal() {
        let items = || {
            vec![
                schema("a@1.0.0"),
                up("a@1.0.0", "a@2.0.0"),
                up("a@1.0.0", "a@1.5.0"),
                up("a@1.5.0", "a@3.0.0"),
                up("a@2.0.0", "a@3.0.0"),
            ]
        };
        let diagnostics = check(items());
        assert_eq!(codes(&diagnostics), ["ambiguous-paths"]);
        assert_eq!(diagnostics[0].hints[0], "first: `a@1.0.0` -> `a@1.5.0` -> `a@3.0.0`");
        assert_eq!(diagnostics[0].hints[1], "second: `a@1.0.0` -> `a@2.0.0` -> `a@3.0.0`");
        let (registry, _) = registry(items());
        assert!(validate(&registry, &|_, _, _| Some(true)).is_empty());
    }
}
