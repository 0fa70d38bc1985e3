//! How a checkpoint names its tensors, apart from its version: the state dict beside the
//! extras a file holds (a graph, supporting arrays), and the key layout kinds a family
//! knows (`safeshift.yaml`, `key_layouts:`).
//!
//! A family's schemas describe one naming, the *canonical* one (for Anemoi the training
//! checkpoint's, `model.model.encoder…`). Another kind of checkpoint of the same model may
//! name the same tensors without a leading prefix (an Anemoi inference checkpoint pickles
//! the interface itself: `model.encoder…`, `pre_processors…`). Rather than a second family
//! of schemas and migrations that would repeat every line, such a kind is declared by its
//! prefix: detection tries the layout with the prefix put back, planning and compilation
//! run on the canonical names, and the outputs lose the prefix again, so a file keeps its
//! kind through an upgrade.

use std::borrow::Cow;
use std::collections::BTreeSet;

use safeshift_model::Layout;
use safeshift_ops::{Expr, Leaf};

use crate::CompiledPlan;

pub use safeshift_model::keys::EXTRAS_KEY;

/// A key layout kind other than the canonical one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyLayout {
    /// Its name in the manifest (`inference`).
    pub kind: String,
    /// What its names lack in front of the canonical ones (`model.`).
    pub prefix: String,
}

/// The names the metadata marks as extras.
pub fn extras_of(layout: &Layout) -> BTreeSet<String> {
    layout
        .metadata
        .get(EXTRAS_KEY)
        .and_then(|text| serde_json::from_str::<Vec<String>>(text).ok())
        .unwrap_or_default()
        .into_iter()
        .collect()
}

/// The layout without its extras: what detection matches against schemas (the layout
/// itself, not a copy, when it has none).
pub fn state_dict(layout: &Layout) -> Cow<'_, Layout> {
    let extras = extras_of(layout);
    if extras.is_empty() {
        return Cow::Borrowed(layout);
    }
    let tensors = layout.tensors.iter().filter(|tensor| !extras.contains(&tensor.name)).cloned().collect();
    Cow::Owned(Layout { tensors, metadata: layout.metadata.clone() })
}

/// The layout with the canonical names: `prefix` put in front of every state-dict name.
pub fn canonical(layout: &Layout, key_layout: &KeyLayout) -> Layout {
    let extras = extras_of(layout);
    let mut out = layout.clone();
    for tensor in &mut out.tensors {
        if !extras.contains(&tensor.name) {
            tensor.name = format!("{}{}", key_layout.prefix, tensor.name);
        }
    }
    out
}

/// A plan compiled on canonical names, turned back into the file's kind: every output of
/// the state dict, and every leaf read from the input, loses the prefix again. Fails (with
/// the output's name) if an output does not start with the prefix, which would not be a
/// name of this kind.
pub fn restore(
    compiled: &mut CompiledPlan,
    key_layout: &KeyLayout,
    input_extras: &BTreeSet<String>,
) -> Result<(), String> {
    let extras: BTreeSet<String> = output_extras(compiled, input_extras);
    for output in &mut compiled.outputs {
        if !extras.contains(output.name()) {
            let Some(name) = output.name().strip_prefix(&key_layout.prefix) else {
                return Err(format!(
                    "`{}` has no `{}` to drop for the {} layout",
                    output.name(),
                    key_layout.prefix,
                    key_layout.kind
                ));
            };
            let name = name.to_owned();
            output.rename(name);
        }
        output.edit_leaves(|expr| strip_leaves(expr, key_layout, input_extras));
    }
    Ok(())
}

fn strip_leaves(expr: &mut Expr, key_layout: &KeyLayout, input_extras: &BTreeSet<String>) {
    visit_leaves(expr, &mut |leaf: &mut Leaf| {
        if leaf.aux.is_none() && !input_extras.contains(&leaf.name) {
            if let Some(name) = leaf.name.strip_prefix(&key_layout.prefix) {
                leaf.name = name.to_owned();
            }
        }
    });
}

/// The outputs that are input extras passed through (renamed or not): read from nothing
/// but an extra.
pub fn output_extras(compiled: &CompiledPlan, input_extras: &BTreeSet<String>) -> BTreeSet<String> {
    compiled
        .outputs
        .iter()
        .filter(|output| is_extra(output.expr(), input_extras))
        .map(|output| output.name().to_owned())
        .collect()
}

/// Whether an output is one of the input's extras, passed through.
pub(crate) fn is_extra(expr: &Expr, input_extras: &BTreeSet<String>) -> bool {
    matches!(expr, Expr::Source(leaf) if leaf.aux.is_none() && input_extras.contains(&leaf.name))
}

/// Aux tensors a migration reads from an aux input the checkpoint carries among its extras
/// (`graph.data_to_hidden.edge_index` for `graph["data_to_hidden.edge_index"]`): the
/// layout of that input, its names without the `NAME.` in front.
pub fn aux_from_extras(layout: &Layout, input: &str) -> Option<Layout> {
    let extras = extras_of(layout);
    let prefix = format!("{input}.");
    let tensors: Vec<_> = layout
        .tensors
        .iter()
        .filter(|tensor| extras.contains(&tensor.name))
        .filter_map(|tensor| {
            let name = tensor.name.strip_prefix(&prefix)?;
            Some(safeshift_model::TensorInfo { name: name.to_owned(), ..tensor.clone() })
        })
        .collect();
    (!tensors.is_empty()).then(|| Layout { tensors, metadata: Default::default() })
}

/// Points every leaf of aux input `input` at `input.NAME` in the aux file itself: for an aux
/// file whose tensors are extras under that prefix (a `graph.pt` read as
/// `graph.<edge set>.edge_index`).
pub fn read_aux_prefixed(expr: &mut Expr, input: &str) {
    visit_leaves(expr, &mut |leaf: &mut Leaf| {
        if leaf.aux.as_deref() == Some(input) {
            leaf.name = format!("{input}.{}", leaf.name);
        }
    });
}

/// Points every leaf of aux input `input` at the checkpoint's own extra `input.NAME`.
pub fn read_aux_from_extras(expr: &mut Expr, input: &str) {
    visit_leaves(expr, &mut |leaf: &mut Leaf| {
        if leaf.aux.as_deref() == Some(input) {
            leaf.aux = None;
            leaf.name = format!("{input}.{}", leaf.name);
        }
    });
}

fn visit_leaves(expr: &mut Expr, f: &mut dyn FnMut(&mut Leaf)) {
    if let Expr::Source(leaf) = expr {
        f(leaf);
    }
    expr.children_mut().into_iter().for_each(|child| visit_leaves(child, f));
}

#[cfg(test)]
mod tests {
    use super::*;
    use safeshift_model::{DType, TensorInfo};
    use std::collections::BTreeMap;

    fn layout(names: &[&str], extras: &[&str]) -> Layout {
        let tensors =
            names.iter().map(|name| TensorInfo { name: (*name).into(), dtype: DType::F32, shape: vec![2] }).collect();
        let metadata = BTreeMap::from([(EXTRAS_KEY.to_owned(), serde_json::to_string(extras).unwrap())]);
        Layout { tensors, metadata }
    }

    #[test]
    fn extras_are_set_aside_and_keep_their_names() {
        let file = layout(&["model.encoder.w", "graph.e.edge_index"], &["graph.e.edge_index"]);
        let names = |layout: &Layout| layout.tensors.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&state_dict(&file)), ["model.encoder.w"]);
        let key_layout = KeyLayout { kind: "inference".into(), prefix: "model.".into() };
        assert_eq!(names(&canonical(&file, &key_layout)), ["model.model.encoder.w", "graph.e.edge_index"]);
        let aux = aux_from_extras(&file, "graph").unwrap();
        assert_eq!(names(&aux), ["e.edge_index"]);
        assert!(aux_from_extras(&file, "other").is_none());
    }
}
