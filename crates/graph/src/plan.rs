//! Planning: the path through the version graph from a checkpoint's version to a target.
//!
//! A path costs `(lossy steps, steps)`, compared in that order: lossless paths win over
//! shorter lossy ones. Among equal-cost paths the first in lexicographic order of
//! `(target version, undo)` per step wins (a migration applied before another one
//! undone), so plans never depend on load order or hashing.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use petgraph::graph::NodeIndex;
use petgraph::visit::EdgeRef;
use petgraph::Direction;

use crate::graph::{Edge, VersionGraph};
use crate::registry::MigrationId;
use crate::{VersionId, VersionIdError};

/// The steps from one version to another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Where the checkpoint is.
    pub from: VersionId,
    /// Where it goes.
    pub to: VersionId,
    /// The migrations to apply, in order (empty when `from == to`).
    pub steps: Vec<Step>,
}

/// One step of a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The version before the step.
    pub from: VersionId,
    /// The version after it.
    pub to: VersionId,
    /// The migration applied.
    pub migration: MigrationId,
    /// Whether the migration is undone (its inverse or `down` block) rather than applied.
    pub inverse: bool,
    /// Whether the step discards information.
    pub lossy: bool,
}

impl Plan {
    /// Whether any step discards information.
    pub fn lossy(&self) -> bool {
        self.steps.iter().any(|step| step.lossy)
    }
}

/// Why no plan could be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// The version is not in the registry.
    #[error("unknown version `{0}`")]
    UnknownVersion(VersionId),
    /// No path joins the two versions.
    #[error("no migration path from `{from}` to `{to}`")]
    NoPath {
        /// The start.
        from: VersionId,
        /// The wanted target.
        to: VersionId,
    },
    /// The family has no single head and the manifest names no target.
    #[error("family `{family}` has no single head ({}); name a target with `--to`", list(heads))]
    NoDefaultTarget {
        /// The family.
        family: String,
        /// Its heads (empty or several).
        heads: Vec<VersionId>,
    },
    /// The target is not a version.
    #[error("bad target `{text}`: {source}")]
    BadTarget {
        /// As given.
        text: String,
        /// Why.
        #[source]
        source: Box<VersionIdError>,
    },
}

fn list(ids: &[VersionId]) -> String {
    if ids.is_empty() {
        return "none".to_owned();
    }
    ids.iter().map(|id| format!("`{id}`")).collect::<Vec<_>>().join(", ")
}

/// The best path from `from` to `to` (see the module docs for "best").
pub fn plan(graph: &VersionGraph, from: &VersionId, to: &VersionId) -> Result<Plan, PlanError> {
    let mut paths = shortest_paths(graph, from, to, 1)?;
    match paths.pop() {
        Some(steps) => Ok(Plan { from: from.clone(), to: to.clone(), steps }),
        None => Err(PlanError::NoPath { from: from.clone(), to: to.clone() }),
    }
}

type Cost = (u32, u32);

fn cost(edge: &Edge) -> Cost {
    (u32::from(edge.lossy), 1)
}

fn add(a: Cost, b: Cost) -> Cost {
    (a.0.saturating_add(b.0), a.1.saturating_add(b.1))
}

/// Up to `limit` distinct minimal-cost paths from `from` to `to`, best first. Empty when
/// `to` cannot be reached; one empty path when `from == to`.
pub(crate) fn shortest_paths(
    graph: &VersionGraph,
    from: &VersionId,
    to: &VersionId,
    limit: usize,
) -> Result<Vec<Vec<Step>>, PlanError> {
    let start = graph.node(from).ok_or_else(|| PlanError::UnknownVersion(from.clone()))?;
    let goal = graph.node(to).ok_or_else(|| PlanError::UnknownVersion(to.clone()))?;
    let petgraph = graph.petgraph();

    // Dijkstra for the cost of the best path to every node.
    let mut best: BTreeMap<NodeIndex, Cost> = BTreeMap::new();
    let mut queue = BinaryHeap::new();
    best.insert(start, (0, 0));
    queue.push(Reverse(((0, 0), start)));
    while let Some(Reverse((so_far, node))) = queue.pop() {
        if best.get(&node).is_some_and(|&known| known < so_far) {
            continue;
        }
        for edge in petgraph.edges_directed(node, Direction::Outgoing) {
            let next = add(so_far, cost(edge.weight()));
            let target = edge.target();
            if best.get(&target).is_none_or(|&known| next < known) {
                best.insert(target, next);
                queue.push(Reverse((next, target)));
            }
        }
    }
    let Some(&goal_cost) = best.get(&goal) else {
        return Ok(Vec::new());
    };

    // Edges on some best path: each adds its cost exactly. Every edge costs at least one
    // step, so these edges form a DAG and the walk below terminates.
    let tight = |node: NodeIndex, edge: &petgraph::graph::EdgeReference<'_, Edge>| {
        best.get(&edge.target()).is_some_and(|&target_cost| add(best[&node], cost(edge.weight())) == target_cost)
    };
    // Nodes from which the goal is reachable over tight edges, found backwards.
    let mut reaches = vec![false; petgraph.node_count()];
    let mut stack = vec![goal];
    reaches[goal.index()] = true;
    while let Some(node) = stack.pop() {
        for edge in petgraph.edges_directed(node, Direction::Incoming) {
            let source = edge.source();
            if best.contains_key(&source) && tight(source, &edge) && !reaches[source.index()] {
                reaches[source.index()] = true;
                stack.push(source);
            }
        }
    }

    let mut paths = Vec::new();
    let mut current = Vec::new();
    walk(graph, start, goal, goal_cost, &best, &reaches, &tight, limit, &mut current, &mut paths);
    Ok(paths)
}

#[allow(clippy::too_many_arguments)]
fn walk(
    graph: &VersionGraph,
    node: NodeIndex,
    goal: NodeIndex,
    goal_cost: Cost,
    best: &BTreeMap<NodeIndex, Cost>,
    reaches: &[bool],
    tight: &dyn Fn(NodeIndex, &petgraph::graph::EdgeReference<'_, Edge>) -> bool,
    limit: usize,
    current: &mut Vec<Step>,
    paths: &mut Vec<Vec<Step>>,
) {
    if paths.len() >= limit {
        return;
    }
    if node == goal {
        paths.push(current.clone());
        return;
    }
    if best[&node] >= goal_cost {
        return;
    }
    let petgraph = graph.petgraph();
    let mut edges: Vec<_> = petgraph
        .edges_directed(node, Direction::Outgoing)
        .filter(|edge| reaches[edge.target().index()] && tight(node, edge))
        .collect();
    edges.sort_by(|a, b| {
        let key = |edge: &petgraph::graph::EdgeReference<'_, Edge>| {
            // Between two versions there is at most one migration each way (a second is a
            // `duplicate-migration` error), so this never depends on load order except
            // through that error.
            (&petgraph[edge.target()], edge.weight().inverse, edge.weight().migration)
        };
        key(a).cmp(&key(b))
    });
    for edge in edges {
        let weight = edge.weight();
        current.push(Step {
            from: petgraph[node].clone(),
            to: petgraph[edge.target()].clone(),
            migration: weight.migration,
            inverse: weight.inverse,
            lossy: weight.lossy,
        });
        walk(graph, edge.target(), goal, goal_cost, best, reaches, tight, limit, current, paths);
        current.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{lossy, registry, schema, up};

    fn id(text: &str) -> VersionId {
        VersionId::parse(text).unwrap()
    }

    fn route(plan: &Plan) -> Vec<String> {
        plan.steps.iter().map(|step| format!("{}{}", step.to, if step.inverse { " (undo)" } else { "" })).collect()
    }

    #[test]
    fn prefers_lossless_then_short_then_stable_order() {
        let (registry, _) = registry(vec![
            schema("a@1.0.0"),
            lossy("a@1.0.0", "a@3.0.0"),
            up("a@1.0.0", "a@2.0.0"),
            up("a@2.0.0", "a@2.5.0"),
            up("a@2.5.0", "a@3.0.0"),
            up("a@1.0.0", "a@1.5.0"),
            up("a@1.5.0", "a@2.5.0"),
        ]);
        let graph = registry.graph();
        let plan = plan(graph, &id("a@1.0.0"), &id("a@3.0.0")).unwrap();
        assert_eq!(route(&plan), ["a@1.5.0", "a@2.5.0", "a@3.0.0"]);
        assert!(!plan.lossy());
        let paths = shortest_paths(graph, &id("a@1.0.0"), &id("a@3.0.0"), 5).unwrap();
        assert_eq!(paths.len(), 2);
    }

    #[test]
    fn downgrades_follow_inverse_edges_only_when_lossless() {
        let (registry, _) = registry(vec![schema("a@1.0.0"), up("a@1.0.0", "a@2.0.0"), lossy("a@2.0.0", "a@3.0.0")]);
        let graph = registry.graph();
        let down = plan(graph, &id("a@2.0.0"), &id("a@1.0.0")).unwrap();
        assert_eq!(route(&down), ["a@1.0.0 (undo)"]);
        assert_eq!(
            plan(graph, &id("a@3.0.0"), &id("a@1.0.0")),
            Err(PlanError::NoPath { from: id("a@3.0.0"), to: id("a@1.0.0") })
        );
        let up_lossy = plan(graph, &id("a@1.0.0"), &id("a@3.0.0")).unwrap();
        assert!(up_lossy.lossy());
        assert_eq!(plan(graph, &id("a@1.0.0"), &id("a@1.0.0")).unwrap().steps, []);
        assert_eq!(plan(graph, &id("a@9.0.0"), &id("a@1.0.0")), Err(PlanError::UnknownVersion(id("a@9.0.0"))));
    }

    #[test]
    fn crosses_families() {
        let (registry, _) = registry(vec![
            schema("llama.meta@1.0.0"),
            schema("llama.hf@1.0.0"),
            up("llama.meta@1.0.0", "llama.hf@1.0.0"),
            up("llama.hf@1.0.0", "llama.hf@1.1.0"),
        ]);
        let plan = plan(registry.graph(), &id("llama.meta@1.0.0"), &id("llama.hf@1.1.0")).unwrap();
        assert_eq!(route(&plan), ["llama.hf@1.0.0", "llama.hf@1.1.0"]);
    }
}

/// Properties of planning over random histories (`PROPTEST_CASES` raises the count).
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::testutil::registry;
    use crate::testutil::strategies::{arb_history, history_text};

    /// The best cost over all simple paths, by brute force.
    fn brute_force(graph: &VersionGraph, from: &VersionId, to: &VersionId) -> Option<Cost> {
        fn walk(
            graph: &VersionGraph,
            at: &VersionId,
            to: &VersionId,
            seen: &mut Vec<VersionId>,
            cost: Cost,
            best: &mut Option<Cost>,
        ) {
            if at == to {
                *best = Some(best.map_or(cost, |known| known.min(cost)));
                return;
            }
            for (next, edge) in graph.outgoing(at) {
                if seen.contains(next) {
                    continue;
                }
                seen.push(next.clone());
                walk(graph, next, to, seen, add(cost, super::cost(&edge)), best);
                seen.pop();
            }
        }
        let mut best = None;
        walk(graph, from, to, &mut vec![from.clone()], (0, 0), &mut best);
        best
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn plans_are_optimal_chained_and_independent_of_file_order((versions, history) in arb_history()) {
            let (registry, diagnostics) = registry(history_text(&history));
            // With a duplicate migration the first one loaded wins (and an error says so).
            let clean = diagnostics.is_empty();
            let mut reversed_history = history.clone();
            reversed_history.reverse();
            let (reversed, _) = registry_of(&reversed_history);
            let graph = registry.graph();
            let ids: Vec<VersionId> = graph.versions().cloned().collect();
            prop_assert!(ids.len() <= versions);
            for from in &ids {
                for to in &ids {
                    let planned = plan(graph, from, to);
                    let best = brute_force(graph, from, to);
                    match (&planned, best) {
                        (Ok(found), Some(best)) => {
                            let cost = found.steps.iter().fold((0, 0), |acc, step| add(acc, (u32::from(step.lossy), 1)));
                            prop_assert_eq!(cost, best);
                            let mut at = from.clone();
                            for step in &found.steps {
                                prop_assert_eq!(&step.from, &at);
                                at = step.to.clone();
                            }
                            prop_assert_eq!(&at, to);
                        }
                        (Err(PlanError::NoPath { .. }), None) => {}
                        (other, best) => prop_assert!(false, "plan {:?}, brute force {:?}", other, best),
                    }
                    let key = |plan: Result<Plan, PlanError>| {
                        plan.map(|plan| plan.steps.iter().map(|step| (step.to.clone(), step.inverse)).collect::<Vec<_>>())
                    };
                    if clean {
                        prop_assert_eq!(key(planned), key(plan(reversed.graph(), from, to)));
                    }
                }
            }
            // Validation never panics and always locates its findings in a loaded source.
            for diagnostic in crate::validate(&registry, &|_, _, _| None) {
                prop_assert!(registry.sources().ids().any(|id| id == diagnostic.primary.source));
            }
        }
    }

    fn registry_of(history: &[(usize, usize, bool)]) -> (crate::Registry, Vec<safeshift_dsl::Diagnostic>) {
        registry(history_text(history))
    }
}
