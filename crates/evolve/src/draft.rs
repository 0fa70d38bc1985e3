//! The migration a [`Diff`] asks for, in the language.
//!
//! Operations come in an order that keeps names free: drops, copies (their sources are
//! still in place), renames (those whose targets are free first), splits and concats,
//! reshapes and casts, gathers (re-ordered rows), inserts, metadata. Each kind is
//! generalized into patterns ([`crate::rule`]). Shapes are written with the source schema's dims (the schema
//! [`infer`](crate::infer()) gives the old layout). What cannot be decided is written as an
//! `// UNRESOLVED: …` comment, which `check` reports as an error until it is removed.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use safeshift_dsl::UNRESOLVED_MARKER;
use safeshift_model::{DType, Layout};

use crate::diff::{Change, Diff, Init};
use crate::rule::{generalize, Instance, Rule};
use crate::{canonical, explain_index, quoted, AuxInput, InferError, InferredSchema};

/// The migration's header, and the aux inputs it may read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DraftOptions {
    /// The family.
    pub family: String,
    /// The source version.
    pub from: String,
    /// The target version.
    pub to: String,
    /// Aux inputs where a row order found by content may come from.
    pub aux: Vec<AuxInput>,
}

/// The aux input a draft declares when no given one explains a row order: the author
/// names the real one.
const PLACEHOLDER_AUX: &str = "row_order";

/// A drafted migration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Draft {
    /// The canonical text.
    pub text: String,
    /// How many questions it leaves open (`UNRESOLVED` comments).
    pub unresolved: usize,
}

/// Writes the migration from `old` (whose schema is `schema`) that `diff` describes.
pub fn draft(old: &Layout, diff: &Diff, schema: &InferredSchema, options: &DraftOptions) -> Result<Draft, InferError> {
    let mut writer = Writer {
        current: old.tensors.iter().map(|info| info.name.clone()).collect(),
        schema,
        lines: Vec::new(),
        unresolved: 0,
    };
    let changes = &diff.changes;
    let drops = |derived: bool| {
        move |change: &Change| match change {
            Change::Dropped { name, derived: d } if *d == derived => Some(one(&[name], &[])),
            _ => None,
        }
    };
    writer.emit("drop", &pick(changes, drops(true)), |rule| format!("drop {} derived", rule.sources[0]));
    writer.emit("drop", &pick(changes, drops(false)), |rule| format!("drop {} lossy", rule.sources[0]));
    writer.emit(
        "copy",
        &pick(changes, |c| match c {
            Change::Copied { from, to } => Some(one(&[from], &[to])),
            _ => None,
        }),
        |rule| format!("copy {} -> {}", rule.sources[0], rule.targets[0]),
    );
    writer.renames(&pick(changes, |c| match c {
        Change::Renamed { from, to } => Some(one(&[from], &[to])),
        _ => None,
    }));
    // Splits (and concats) alike in axis and sizes are generalized together.
    let mut splits: Vec<(SplitKey, Vec<Instance>)> = Vec::new();
    let mut merges: Vec<((usize, bool), Vec<Instance>)> = Vec::new();
    for change in changes {
        match change {
            Change::Split { from, into, axis, sizes, ordered } => {
                let key = (*axis, sizes.clone(), *ordered);
                let instance = Instance { sources: vec![from.clone()], targets: into.clone() };
                match splits.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, group)) => group.push(instance),
                    None => splits.push((key, vec![instance])),
                }
            }
            Change::Merged { from, into, axis, ordered } => {
                let key = (*axis, *ordered);
                let instance = Instance { sources: from.clone(), targets: vec![into.clone()] };
                match merges.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, group)) => group.push(instance),
                    None => merges.push((key, vec![instance])),
                }
            }
            _ => {}
        }
    }
    for ((axis, sizes, ordered), group) in splits {
        writer.split(&group, axis, &sizes, ordered);
    }
    for ((axis, ordered), group) in merges {
        if !ordered {
            writer.question("the order of the concatenated parts is a guess (file order)".into());
        }
        writer.emit("concat", &group, |rule| {
            format!("concat {} axis {axis} into {}", rule.sources.join(", "), rule.targets[0])
        });
    }
    for change in changes {
        match change {
            Change::Reshaped { name, to, .. } => {
                let shape = writer.shape(to);
                writer
                    .emit("reshape", &[one(&[name], &[])], |rule| format!("reshape {} to [{shape}]", rule.sources[0]));
            }
            Change::Retyped { name, from, to } => {
                let lossy = if narrows(*from, *to) { " lossy" } else { "" };
                let dtype = to.language_name();
                writer.emit("cast", &[one(&[name], &[])], |rule| format!("cast {} to {dtype}{lossy}", rule.sources[0]));
            }
            _ => {}
        }
    }
    let mut declared: Vec<(String, String)> = Vec::new();
    for change in changes {
        let Change::Permuted { to, index, .. } = change else { continue };
        let target = literal(to);
        let (input, expr) = match explain_index(index, &options.aux).as_slice() {
            [] => {
                writer.question(format!(
                    "the rows of `{to}` are the old rows in another order, which no aux input given to the draft (`--aux NAME=FILE`) holds or sorts into; read the order from the input the new code computes it from"
                ));
                let doc = "the order of the permuted rows (placeholder)".to_owned();
                ((PLACEHOLDER_AUX.to_owned(), doc), format!("{PLACEHOLDER_AUX}[{target}]"))
            }
            [(input, expr), others @ ..] => {
                if !others.is_empty() {
                    let also: Vec<&str> = others.iter().map(|(_, expr)| expr.as_str()).collect();
                    writer.lines.push(format!("// the same order: {}", also.join(", ")));
                }
                let doc =
                    options.aux.iter().find(|aux| aux.name == *input).map(|aux| aux.doc.clone()).unwrap_or_default();
                ((input.clone(), doc), expr.clone())
            }
        };
        if !declared.iter().any(|(name, _)| *name == input.0) {
            declared.push(input);
        }
        writer.lines.push(format!("gather {target} axis 0 index {expr}"));
    }
    for change in changes {
        if let Change::Inserted { tensor, init } = change {
            let value = match init {
                Init::Zeros => "zeros".to_owned(),
                Init::Ones => "ones".to_owned(),
                Init::Eye => "eye".to_owned(),
                Init::Fill(value) => format!("fill({value})"),
                Init::Unknown => {
                    writer.question(format!(
                        "the values of the new tensor `{}` are not known; `zeros` is a placeholder (a constant, a copy of another tensor, or an aux input?)",
                        tensor.name
                    ));
                    "zeros".to_owned()
                }
            };
            let line = format!(
                "insert {} : {}[{}] = {value}",
                literal(&tensor.name),
                tensor.dtype.language_name(),
                writer.shape(&tensor.shape)
            );
            writer.lines.push(line);
            writer.current.insert(tensor.name.clone());
        }
    }
    for change in changes {
        match change {
            Change::MetaRemoved { key } => writer.lines.push(format!("meta-delete {} lossy", quoted(key))),
            Change::MetaAdded { key, value } => {
                writer.question(format!(
                    "metadata key `{key}` is new (here {}); set it with `meta-set` if the model reads it",
                    quoted(value)
                ));
            }
            _ => {}
        }
    }
    let mut text = String::new();
    let _ = writeln!(
        text,
        "// Drafted by `safeshift diff --draft`: review every operation; answer and delete each question marked UNRESOLVED."
    );
    let _ = writeln!(text, "migration {} {} -> {} {{", options.family, options.from, options.to);
    for (name, doc) in &declared {
        let _ = writeln!(text, "aux {name} {}", quoted(doc));
    }
    for line in &writer.lines {
        text.push_str(line);
        text.push('\n');
    }
    text.push_str("}\n");
    let text = canonical(&text).map_err(|message| InferError::Header {
        family: options.family.clone(),
        version: format!("{} -> {}", options.from, options.to),
        message,
    })?;
    Ok(Draft { text, unresolved: writer.unresolved })
}

/// What splits must share to be written as one operation: axis, sizes, known order.
type SplitKey = (usize, Vec<u64>, bool);

fn pick(changes: &[Change], kind: impl Fn(&Change) -> Option<Instance>) -> Vec<Instance> {
    changes.iter().filter_map(kind).collect()
}

fn one(sources: &[&String], targets: &[&String]) -> Instance {
    Instance {
        sources: sources.iter().map(|s| (*s).clone()).collect(),
        targets: targets.iter().map(|s| (*s).clone()).collect(),
    }
}

/// A tensor name as a pattern that matches only it (braces doubled), quoted.
fn literal(name: &str) -> String {
    quoted(&name.replace('{', "{{").replace('}', "}}"))
}

/// Whether a cast from `from` to `to` can lose information.
fn narrows(from: DType, to: DType) -> bool {
    (from.is_float() && !to.is_float()) || to.bits() < from.bits()
}

struct Writer<'s> {
    /// The names the operations so far leave.
    current: BTreeSet<String>,
    schema: &'s InferredSchema,
    lines: Vec<String>,
    unresolved: usize,
}

impl Writer<'_> {
    fn question(&mut self, text: String) {
        self.unresolved += 1;
        self.lines.push(format!("// {UNRESOLVED_MARKER} {text}"));
    }

    fn shape(&self, shape: &[u64]) -> String {
        shape.iter().map(|&size| self.schema.sizes.expr(size)).collect::<Vec<_>>().join(", ")
    }

    /// Generalizes `instances`, writes one line per rule, and updates the names.
    fn emit(&mut self, _kind: &str, instances: &[Instance], line: impl Fn(&Rule) -> String) {
        if instances.is_empty() {
            return;
        }
        let rules = generalize(instances, &self.current, &self.schema.counts);
        for rule in &rules {
            self.lines.push(line(&quote_rule(rule)));
            self.apply(rule);
        }
    }

    fn apply(&mut self, rule: &Rule) {
        for instance in &rule.instances {
            for source in &instance.sources {
                self.current.remove(source);
            }
        }
        for instance in &rule.instances {
            self.current.extend(instance.targets.iter().cloned());
        }
    }

    /// Renames, in an order where each rule's targets are free when it runs and, where
    /// possible, no rule still to run matches them (`{p..}.mlp.{n}` → `{p}.mlp.mlp.{n}`
    /// after `{p..}.node_dst_mlp.{n}` → `{p}.node_dst_mlp.mlp.{n}` would move the
    /// latter's results again).
    fn renames(&mut self, instances: &[Instance]) {
        if instances.is_empty() {
            return;
        }
        let mut rules = generalize(instances, &self.current, &self.schema.counts);
        while !rules.is_empty() {
            let free = |rule: &Rule| {
                let leaving: BTreeSet<&String> = rule.instances.iter().flat_map(|one| &one.sources).collect();
                rule.instances
                    .iter()
                    .flat_map(|one| &one.targets)
                    .all(|t| !self.current.contains(t) || leaving.contains(t))
            };
            let untouched = |index: usize| {
                let targets = rules[index].instances.iter().flat_map(|one| &one.targets);
                !targets.into_iter().any(|target| {
                    rules.iter().enumerate().any(|(other, rule)| other != index && rule.matches_source(target))
                })
            };
            let ready = (0..rules.len())
                .find(|&index| free(&rules[index]) && untouched(index))
                .or_else(|| (0..rules.len()).find(|&index| free(&rules[index])));
            let index = match ready {
                Some(index) => index,
                None => {
                    self.question("these renames exchange names; rename one side to a temporary name first".into());
                    0
                }
            };
            let rule = rules.remove(index);
            self.lines.push(format!("rename {} -> {}", quote_rule(&rule).sources[0], quote_rule(&rule).targets[0]));
            if rule.instances.iter().all(|one| !one.sources.is_empty()) {
                for instance in &rule.instances {
                    self.current.remove(&instance.sources[0]);
                }
                for instance in &rule.instances {
                    self.current.extend(instance.targets.iter().cloned());
                }
            }
        }
    }

    fn split(&mut self, group: &[Instance], axis: usize, sizes: &[u64], ordered: bool) {
        if !ordered {
            self.question(format!("the order of the parts of `{}` is a guess (file order)", group[0].sources[0]));
        }
        let equal = sizes.windows(2).all(|pair| pair[0] == pair[1]);
        let sizes_clause = if equal { String::new() } else { format!(" sizes [{}]", self.shape(sizes)) };
        self.emit("split", group, |rule| {
            format!("split {} axis {axis} into {}{sizes_clause}", rule.sources[0], rule.targets.join(", "))
        });
    }
}

fn quote_rule(rule: &Rule) -> Rule {
    Rule {
        sources: rule.sources.iter().map(|s| quoted(s)).collect(),
        targets: rule.targets.iter().map(|s| quoted(s)).collect(),
        ..rule.clone()
    }
}
