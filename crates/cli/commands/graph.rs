//! `safeshift graph`: the version graph as text, Graphviz DOT or Mermaid.

use std::fmt::Write as _;

use clap::{Args, ValueEnum};
use safeshift_graph::{Origin, Registry, VersionId};

use crate::exit_codes::ExitStatus;
use crate::printer::{anyhow_like::Error, Printer};
use crate::registry::RegistryArgs;

/// Print the version graph: every version, every migration, and the inverse edges
/// (automatic or `down` blocks) that allow downgrades.
#[derive(Args, Debug)]
pub struct GraphArgs {
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Output format: `text` (for people), `dot` (Graphviz: `| dot -Tsvg`) or `mermaid`.
    #[arg(long, value_enum, default_value_t = GraphFormat::Text)]
    pub format: GraphFormat,
}

/// How to print the graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    /// One block per version with its edges.
    Text,
    /// Graphviz DOT, one cluster per family.
    Dot,
    /// A Mermaid flowchart.
    Mermaid,
}

/// Runs `safeshift graph`.
pub fn run(args: GraphArgs, printer: &Printer) -> Result<ExitStatus, Error> {
    let registry = args.registry.open(printer.color)?;
    let registry = registry.graph();
    let text = match args.format {
        GraphFormat::Text => text(registry),
        GraphFormat::Dot => dot(registry),
        GraphFormat::Mermaid => mermaid(registry),
    };
    print!("{text}");
    Ok(ExitStatus::Success)
}

fn doc(registry: &Registry, migration: safeshift_graph::MigrationId) -> Option<String> {
    registry.migration(migration).ast.doc.as_ref().map(|doc| doc.node.clone())
}

/// The text form: per family, each version with where it comes from and its edges.
pub fn text(registry: &Registry) -> String {
    let graph = registry.graph();
    let mut out = String::new();
    for family in graph.families() {
        let heads: Vec<String> = graph.heads(family).iter().map(|id| id.version.to_string()).collect();
        writeln!(out, "{family} (head {})", heads.join(", ")).expect("write to string");
        for id in graph.versions().filter(|id| id.family == family) {
            let origin = match graph.origin(id) {
                Some(Origin::Schema(_)) => "schema".to_owned(),
                Some(Origin::Derived(migration)) => format!("derived from {}", registry.migration(migration).from),
                None => String::new(),
            };
            writeln!(out, "  {} [{origin}]", id.version).expect("write to string");
            for (to, edge) in graph.outgoing(id) {
                let mut notes = Vec::new();
                if edge.inverse {
                    notes.push("undo".to_owned());
                }
                if edge.lossy {
                    notes.push("lossy".to_owned());
                }
                let notes = if notes.is_empty() { String::new() } else { format!(" ({})", notes.join(", ")) };
                let doc = doc(registry, edge.migration).map(|doc| format!(" \"{doc}\"")).unwrap_or_default();
                writeln!(out, "    -> {to}{notes}{doc}").expect("write to string");
            }
        }
    }
    out
}

fn dot_string(text: &str) -> String {
    let mut out = String::from("\"");
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            ch if ch.is_control() => {}
            ch => out.push(ch),
        }
    }
    out.push('"');
    out
}

/// Graphviz DOT: a cluster per family; dashed edges undo a migration, bold red ones lose
/// information.
pub fn dot(registry: &Registry) -> String {
    let graph = registry.graph();
    let mut out = String::from("digraph safeshift {\n    rankdir=LR;\n    node [shape=box, fontname=\"Helvetica\"];\n    edge [fontname=\"Helvetica\", fontsize=10];\n");
    for (index, family) in graph.families().into_iter().enumerate() {
        writeln!(out, "    subgraph cluster_{index} {{\n        label={};", dot_string(family))
            .expect("write to string");
        let heads = graph.heads(family);
        for id in graph.versions().filter(|id| id.family == family) {
            let style = match graph.origin(id) {
                Some(Origin::Derived(_)) => ", style=dashed",
                _ => "",
            };
            let peripheries = if heads.contains(&id) { ", peripheries=2" } else { "" };
            writeln!(
                out,
                "        {} [label={}{style}{peripheries}];",
                dot_string(&id.to_string()),
                dot_string(&id.version.to_string())
            )
            .expect("write to string");
        }
        out.push_str("    }\n");
    }
    for (from, to, edge) in graph.edges() {
        let mut attributes = Vec::new();
        if let Some(doc) = doc(registry, edge.migration).filter(|_| !edge.inverse) {
            attributes.push(format!("label={}", dot_string(&doc)));
        }
        if edge.inverse {
            attributes.push("style=dashed".to_owned());
        }
        if edge.lossy {
            attributes.push("color=red, penwidth=2".to_owned());
        }
        let attributes = if attributes.is_empty() { String::new() } else { format!(" [{}]", attributes.join(", ")) };
        writeln!(out, "    {} -> {}{attributes};", dot_string(&from.to_string()), dot_string(&to.to_string()))
            .expect("write to string");
    }
    out.push_str("}\n");
    out
}

fn mermaid_text(text: &str) -> String {
    text.chars()
        .map(|ch| match ch {
            '"' => "#quot;".to_owned(),
            '|' => "#124;".to_owned(),
            ch if ch.is_control() => String::new(),
            ch => ch.to_string(),
        })
        .collect()
}

/// A Mermaid flowchart: a subgraph per family; dotted edges undo a migration.
pub fn mermaid(registry: &Registry) -> String {
    let graph = registry.graph();
    let ids: Vec<&VersionId> = graph.versions().collect();
    let node = |id: &VersionId| format!("v{}", ids.iter().position(|other| *other == id).expect("a version"));
    let mut out = String::from("flowchart LR\n");
    for (index, family) in graph.families().into_iter().enumerate() {
        writeln!(out, "    subgraph f{index}[\"{}\"]", mermaid_text(family)).expect("write to string");
        for id in graph.versions().filter(|id| id.family == family) {
            writeln!(out, "        {}[\"{}\"]", node(id), mermaid_text(&id.to_string())).expect("write to string");
        }
        out.push_str("    end\n");
    }
    for (from, to, edge) in graph.edges() {
        let arrow = if edge.inverse { "-.->" } else { "-->" };
        let mut label =
            if edge.inverse { "undo".to_owned() } else { doc(registry, edge.migration).unwrap_or_default() };
        if edge.lossy {
            label = if label.is_empty() { "lossy".to_owned() } else { format!("{label} (lossy)") };
        }
        let label = if label.is_empty() { String::new() } else { format!("|\"{}\"|", mermaid_text(&label)) };
        writeln!(out, "    {} {arrow}{label} {}", node(from), node(to)).expect("write to string");
    }
    out
}
