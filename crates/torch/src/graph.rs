//! torch_geometric graphs held in a checkpoint (`HeteroData`, `Data`), read as data.
//!
//! `torch.save` of a `HeteroData` stores `NEWOBJ(HeteroData, ())` with the BUILD state
//! `{_global_store, _node_store_dict: {node set: NodeStorage}, _edge_store_dict:
//! {(src, rel, dst): EdgeStorage}, …}`, each storage holding its attributes in `_mapping`. A
//! `Data` stores `{_store: GlobalStorage}`. Graphs are recognised by that shape, not by
//! class name, so subclasses and other versions are read the same way.
//!
//! Attribute names: `<prefix>.<attr>` for the global store, `<prefix>.<node set>.<attr>`
//! and `<prefix>.<src>_<rel>_<dst>.<attr>` for node and edge sets; nested containers add
//! their keys or indices.

use std::collections::HashSet;
use std::rc::Rc;

use crate::error::ErrorKind;
use crate::json::{key_string, walk_budget};
use crate::value::{Dict, Heap, ObjId, Object, TensorRef, Value};

/// One attribute of a graph: a tensor, or another value kept as metadata.
pub(crate) enum Attribute<'h> {
    Tensor(Rc<TensorRef>),
    Other(&'h Value),
}

/// The `__dict__` of a recorded object (a dict state, or the dict of a `(dict, slots)` state).
pub(crate) fn object_state<'h>(heap: &'h Heap, value: &Value) -> Option<&'h Dict> {
    let state = heap.instance(value)?.state.as_ref()?;
    match heap.sequence(state) {
        Some([first, _]) => heap.dict(first),
        _ => heap.dict(state),
    }
}

/// Whether `value` is a torch_geometric graph.
pub(crate) fn is_graph(heap: &Heap, value: &Value) -> bool {
    let Some(state) = object_state(heap, value) else { return false };
    state.get_str("_node_store_dict").is_some()
        || state.get_str("_edge_store_dict").is_some()
        || state.get_str("_store").is_some_and(|store| mapping(heap, store).is_some())
}

/// Every distinct graph reachable from `top`, the top first, then in the order a depth-first
/// walk of the object graph meets them (dict entries and object state in stored order).
pub(crate) fn find(heap: &Heap, top: &Value, max_depth: usize) -> Result<Vec<ObjId>, ErrorKind> {
    let mut finder = Finder { heap, seen: HashSet::new(), found: Vec::new(), budget: walk_budget(heap), max_depth };
    finder.visit(top, 0)?;
    Ok(finder.found)
}

struct Finder<'h> {
    heap: &'h Heap,
    seen: HashSet<ObjId>,
    found: Vec<ObjId>,
    budget: usize,
    max_depth: usize,
}

impl Finder<'_> {
    fn visit(&mut self, value: &Value, depth: usize) -> Result<(), ErrorKind> {
        let Value::Obj(id) = value else { return Ok(()) };
        if !self.seen.insert(*id) {
            return Ok(());
        }
        if depth > self.max_depth {
            // Deeper than any real checkpoint nests; not worth failing the conversion for.
            return Ok(());
        }
        if self.budget == 0 {
            return Err(ErrorKind::Limit {
                what: "objects visited looking for graphs",
                limit: walk_budget(self.heap) as u64,
            });
        }
        self.budget -= 1;
        if is_graph(self.heap, value) {
            self.found.push(*id);
            return Ok(());
        }
        match self.heap.get(*id) {
            Object::List(items) | Object::Tuple(items) | Object::Set { items, .. } => {
                for item in items {
                    self.visit(item, depth + 1)?;
                }
            }
            Object::Dict(dict) => {
                for (_, item) in &dict.entries {
                    self.visit(item, depth + 1)?;
                }
            }
            Object::Instance(instance) => {
                for item in
                    [Some(&instance.args), instance.kwargs.as_ref(), instance.state.as_ref()].into_iter().flatten()
                {
                    self.visit(item, depth + 1)?;
                }
                for item in &instance.items {
                    self.visit(item, depth + 1)?;
                }
                for (_, item) in &instance.entries.entries {
                    self.visit(item, depth + 1)?;
                }
            }
        }
        Ok(())
    }
}

/// The `_mapping` dict of a torch_geometric storage object.
fn mapping<'h>(heap: &'h Heap, storage: &Value) -> Option<&'h Dict> {
    heap.dict(object_state(heap, storage)?.get_str("_mapping")?)
}

/// Every attribute of graph `value`, named under `prefix`, in stored order: global
/// attributes, then node sets, then edge sets.
pub(crate) fn attributes<'h>(
    heap: &'h Heap,
    value: &Value,
    prefix: &str,
    max_depth: usize,
) -> Result<Vec<(String, Attribute<'h>)>, ErrorKind> {
    let state = object_state(heap, value).expect("a graph has a state");
    let mut out = Vec::new();
    for store in ["_global_store", "_store"] {
        if let Some(mapping) = state.get_str(store).and_then(|store| mapping(heap, store)) {
            flatten(heap, mapping, prefix, 0, max_depth, &mut out)?;
        }
    }
    for (field, edges) in [("_node_store_dict", false), ("_edge_store_dict", true)] {
        let Some(stores) = state.get_str(field) else { continue };
        let stores = heap
            .dict(stores)
            .ok_or_else(|| ErrorKind::Structure(format!("graph `{prefix}`: `{field}` is not a dict")))?;
        for (key, store) in &stores.entries {
            let set = match heap.sequence(key) {
                Some(parts) if edges => parts.iter().map(|part| key_string(heap, part)).collect::<Vec<_>>().join("_"),
                _ => key_string(heap, key),
            };
            let Some(mapping) = mapping(heap, store) else {
                return Err(ErrorKind::Structure(format!("graph `{prefix}`: set `{set}` has no `_mapping`")));
            };
            flatten(heap, mapping, &format!("{prefix}.{set}"), 0, max_depth, &mut out)?;
        }
    }
    Ok(out)
}

fn flatten<'h>(
    heap: &'h Heap,
    dict: &'h Dict,
    prefix: &str,
    depth: usize,
    max_depth: usize,
    out: &mut Vec<(String, Attribute<'h>)>,
) -> Result<(), ErrorKind> {
    if depth > max_depth {
        return Err(ErrorKind::Limit { what: "nesting depth of a graph attribute", limit: max_depth as u64 });
    }
    for (key, value) in &dict.entries {
        let name = format!("{prefix}.{}", key_string(heap, key));
        match value {
            Value::Tensor(tensor) => out.push((name, Attribute::Tensor(tensor.clone()))),
            _ => match heap.dict(value) {
                Some(inner) => flatten(heap, inner, &name, depth + 1, max_depth, out)?,
                None => out.push((name, Attribute::Other(value))),
            },
        }
    }
    Ok(())
}
