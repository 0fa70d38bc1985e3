//! Choosing the tensors of a checkpoint: a state dict, a Lightning/Anemoi checkpoint's
//! `state_dict` entry, or the state dict of a whole pickled module; the tensors of the
//! torch_geometric graphs it holds as extras; and the rest of the content as JSON metadata.

use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;

use safeshift_model::keys::{TORCH_CHECKPOINT_KEY, TORCH_DROPPED_KEY, TORCH_MODULE_CLASS_KEY, TORCH_STATE_DICT_KEY};
use serde_json::{Map, Value as Json};

use crate::error::ErrorKind;
use crate::globals::{self, Known};
use crate::graph::{self, Attribute};
use crate::json::{key_string, walk_budget, JsonWriter};
use crate::numpy;
use crate::value::{Dict, Heap, Instance, Object, TensorRef, Value};
use crate::{ConvertOptions, Limits, GRAPH_PREFIX};

/// Top-level entries holding optimizer state (dropped unless `keep_optimizer`).
pub(crate) const OPTIMIZER_KEYS: &[&str] =
    &["optimizer_states", "optimizer", "optimizer_state_dict", "optimizers", "optim"];

/// Top-level entries tried, in order, as the model's state dict when no key is given.
const STATE_DICT_KEYS: &[&str] = &["state_dict", "model_state_dict", "model", "module", "net", "network"];

/// The tensors chosen, in state-dict order, the extras (graph tensors), and the metadata
/// describing the rest.
pub(crate) struct Extracted {
    pub tensors: Vec<(String, Rc<TensorRef>)>,
    pub extras: Vec<(String, Rc<TensorRef>)>,
    pub metadata: BTreeMap<String, String>,
}

pub(crate) fn extract(heap: &Heap, top: &Value, options: &ConvertOptions) -> Result<Extracted, ErrorKind> {
    let limits = &options.limits;
    let mut walker = Walker { heap, limits, budget: walk_budget(heap), tensors: Vec::new() };
    let mut metadata = BTreeMap::new();
    let mut json = JsonWriter::new(heap, limits);
    let extras = if options.graphs { graph_extras(heap, top, &mut json, limits)? } else { Vec::new() };
    let top_dict = heap.dict(top);
    let chosen_key: Option<String> = match (&options.key, top_dict) {
        (Some(key), Some(dict)) => {
            if dict.get_str(key).is_none() {
                let keys: Vec<String> =
                    dict.entries.iter().take(20).map(|(k, _)| format!("`{}`", key_string(heap, k))).collect();
                return Err(ErrorKind::Structure(format!(
                    "the checkpoint has no entry `{key}` (it has {})",
                    keys.join(", ")
                )));
            }
            Some(key.clone())
        }
        (Some(key), None) => {
            return Err(ErrorKind::Structure(format!(
                "`--key {key}` needs a dict checkpoint; this one holds a {}",
                heap.type_name(top)
            )))
        }
        (None, Some(dict)) if !dict.entries.iter().all(|(_, v)| matches!(v, Value::Tensor(_))) => STATE_DICT_KEYS
            .iter()
            // A container or module, not a tensor that happens to be called `model`.
            .find(|key| dict.get_str(key).is_some_and(|v| matches!(v, Value::Obj(_)) && holds_tensors(heap, v)))
            .map(|key| key.to_string()),
        _ => None,
    };
    match (&chosen_key, top_dict) {
        (Some(key), Some(dict)) => {
            let root = dict.get_str(key).expect("checked above");
            walker.collect(root, "", 0)?;
            metadata.insert(TORCH_STATE_DICT_KEY.into(), key.clone());
            let mut rest = Vec::new();
            let mut dropped = Vec::new();
            for (entry_key, value) in &dict.entries {
                let name = key_string(heap, entry_key);
                if name == *key {
                    continue;
                }
                if OPTIMIZER_KEYS.contains(&name.as_str()) {
                    if !options.keep_optimizer {
                        dropped.push(name);
                        continue;
                    }
                    walker.collect(value, &name, 0)?;
                }
                rest.push((name, value));
            }
            let mut map = serde_json::Map::new();
            for (name, value) in rest {
                map.insert(name, json.convert(value, 0)?);
            }
            metadata.insert(TORCH_CHECKPOINT_KEY.into(), serde_json::Value::Object(map).to_string());
            if !dropped.is_empty() {
                metadata.insert(TORCH_DROPPED_KEY.into(), serde_json::json!(dropped).to_string());
            }
        }
        _ => {
            if let Some(class) = module_class(heap, top) {
                metadata.insert(TORCH_MODULE_CLASS_KEY.into(), class);
                // A whole module: its own public attributes (Anemoi's `config`, `metadata`,
                // `data_indices`, `statistics`…) are the rest of the checkpoint.
                let state = graph::object_state(heap, top).expect("a module has a state");
                let mut map = serde_json::Map::new();
                for (key, value) in &state.entries {
                    let Value::Str(name) = key else { continue };
                    if !name.starts_with('_') && &**name != "training" {
                        map.insert(name.to_string(), json.convert(value, 0)?);
                    }
                }
                if !map.is_empty() {
                    metadata.insert(TORCH_CHECKPOINT_KEY.into(), serde_json::Value::Object(map).to_string());
                }
            } else if graph::is_graph(heap, top) {
                metadata.insert(TORCH_CHECKPOINT_KEY.into(), json.convert(top, 0)?.to_string());
            } else if let Some(dict) = top_dict {
                // The dict is the state dict; what else it holds (`epoch`, a config) is the
                // rest of the checkpoint, kept as with a state dict under a key.
                let mut map = serde_json::Map::new();
                for (entry_key, value) in &dict.entries {
                    if !matches!(value, Value::Tensor(_)) && !holds_tensors(heap, value) {
                        map.insert(key_string(heap, entry_key), json.convert(value, 0)?);
                    }
                }
                if !map.is_empty() {
                    metadata.insert(TORCH_CHECKPOINT_KEY.into(), serde_json::Value::Object(map).to_string());
                }
            }
            // `torch.save(tensor)`: one unnamed tensor.
            let prefix = if matches!(top, Value::Tensor(_)) { "tensor" } else { "" };
            walker.collect(top, prefix, 0)?;
        }
    }
    if walker.tensors.is_empty() && extras.is_empty() {
        return Err(ErrorKind::Structure(format!("no tensors found (the checkpoint holds a {})", heap.type_name(top))));
    }
    if walker.tensors.iter().any(|(name, _)| name.is_empty()) {
        return Err(ErrorKind::Structure("a tensor has an empty name".into()));
    }
    let mut seen = HashSet::new();
    if let Some((name, _)) = walker.tensors.iter().find(|(name, _)| !seen.insert(name.as_str())) {
        return Err(ErrorKind::Structure(format!("two tensors are both named `{name}`")));
    }
    let mut seen = HashSet::new();
    if let Some((name, _)) = extras.iter().find(|(name, _)| !seen.insert(name.as_str())) {
        return Err(ErrorKind::Structure(format!("two graph tensors are both named `{name}`")));
    }
    Ok(Extracted { tensors: walker.tensors, extras, metadata })
}

/// The tensors of every graph reachable from `top`, named `graph.…` (then `graph2.…`…);
/// `json` learns to render each graph as a reference to its prefix plus its non-tensor
/// attributes.
fn graph_extras(
    heap: &Heap,
    top: &Value,
    json: &mut JsonWriter<'_>,
    limits: &Limits,
) -> Result<Vec<(String, Rc<TensorRef>)>, ErrorKind> {
    let mut extras = Vec::new();
    for (index, id) in graph::find(heap, top, limits.max_depth)?.into_iter().enumerate() {
        // `graph`, then `graph2`, `graph3`…
        let first = GRAPH_PREFIX.trim_end_matches('.');
        let prefix = if index == 0 { first.to_string() } else { format!("{first}{}", index + 1) };
        let mut rendering = Map::new();
        rendering.insert("__extras__".into(), Json::String(prefix.clone()));
        for (name, attribute) in graph::attributes(heap, &Value::Obj(id), &prefix, limits.max_depth)? {
            match attribute {
                Attribute::Tensor(tensor) => extras.push((name, tensor)),
                Attribute::Other(value) => {
                    let value = json.convert(value, 1)?;
                    rendering.insert(name, value);
                }
            }
        }
        json.set_extra(id, Json::Object(rendering));
    }
    Ok(extras)
}

/// Whether a value has a tensor somewhere inside (bounded look).
fn holds_tensors(heap: &Heap, value: &Value) -> bool {
    let mut walker = Walker { heap, limits: &Limits::default(), budget: 10_000, tensors: Vec::new() };
    walker.collect(value, "", 0).is_ok() && !walker.tensors.is_empty()
}

/// `module.name` of a pickled module object.
fn module_class(heap: &Heap, value: &Value) -> Option<String> {
    let Value::Obj(id) = value else { return None };
    let Object::Instance(instance) = heap.get(*id) else { return None };
    module_state(heap, instance)?;
    match &instance.class {
        Value::Global(global) => Some(global.dotted()),
        _ => None,
    }
}

/// The `__dict__` of an opaque instance, when it looks like an `nn.Module`'s.
fn module_state<'h>(heap: &'h Heap, instance: &Instance) -> Option<&'h Dict> {
    let state = instance.state.as_ref()?;
    let state = match heap.sequence(state) {
        // `(dict, slots)` form.
        Some([first, _]) => first,
        _ => state,
    };
    let dict = heap.dict(state)?;
    (dict.get_str("_parameters").is_some() || dict.get_str("_modules").is_some()).then_some(dict)
}

struct Walker<'h> {
    heap: &'h Heap,
    limits: &'h Limits,
    budget: usize,
    tensors: Vec<(String, Rc<TensorRef>)>,
}

impl Walker<'_> {
    /// Collects every tensor under `value`, names joined with `.`.
    fn collect(&mut self, value: &Value, prefix: &str, depth: usize) -> Result<(), ErrorKind> {
        self.enter(depth)?;
        match value {
            Value::Tensor(tensor) => self.tensors.push((prefix.to_string(), tensor.clone())),
            Value::Obj(id) => match self.heap.get(*id) {
                Object::Dict(dict) => self.collect_dict(dict, prefix, depth)?,
                Object::List(items) | Object::Tuple(items) => {
                    for (index, item) in items.iter().enumerate() {
                        self.collect(item, &join(prefix, &index.to_string()), depth + 1)?;
                    }
                }
                Object::Instance(instance) => {
                    unconvertible(instance, prefix)?;
                    if let Some(state) = module_state(self.heap, instance) {
                        self.module(state, prefix, depth)?;
                    } else if graph::is_graph(self.heap, value) {
                        // A graph's tensors are extras, not part of a state dict.
                    } else {
                        self.collect_dict(&instance.entries, prefix, depth)?;
                        for (index, item) in instance.items.iter().enumerate() {
                            self.collect(item, &join(prefix, &index.to_string()), depth + 1)?;
                        }
                    }
                }
                Object::Set { .. } => {}
            },
            _ => {}
        }
        Ok(())
    }

    fn collect_dict(&mut self, dict: &Dict, prefix: &str, depth: usize) -> Result<(), ErrorKind> {
        for (key, item) in &dict.entries {
            self.collect(item, &join(prefix, &key_string(self.heap, key)), depth + 1)?;
        }
        Ok(())
    }

    /// `nn.Module.state_dict()` without running it: `_parameters` (skipping None), then
    /// `_buffers` (skipping None and `_non_persistent_buffers_set`), then each child of
    /// `_modules` (skipping None), depth first.
    fn module(&mut self, state: &Dict, prefix: &str, depth: usize) -> Result<(), ErrorKind> {
        self.enter(depth)?;
        let here = if prefix.is_empty() { "the top module".to_string() } else { format!("module `{prefix}`") };
        let non_persistent: HashSet<String> = match state.get_str("_non_persistent_buffers_set") {
            None | Some(Value::None) => HashSet::new(),
            Some(value) => match value {
                Value::Obj(id) => match self.heap.get(*id) {
                    Object::Set { items, .. } | Object::List(items) | Object::Tuple(items) => {
                        items.iter().map(|item| key_string(self.heap, item)).collect()
                    }
                    _ => {
                        return Err(ErrorKind::Structure(format!("{here}: `_non_persistent_buffers_set` is not a set")))
                    }
                },
                _ => return Err(ErrorKind::Structure(format!("{here}: `_non_persistent_buffers_set` is not a set"))),
            },
        };
        for (field, skip) in [("_parameters", None), ("_buffers", Some(&non_persistent))] {
            let Some(entries) = state.get_str(field) else { continue };
            let Some(entries) = self.heap.dict(entries) else {
                return Err(ErrorKind::Structure(format!("{here}: `{field}` is not a dict")));
            };
            for (key, value) in &entries.entries {
                let name = key_string(self.heap, key);
                if skip.is_some_and(|skip| skip.contains(&name)) {
                    continue;
                }
                match value {
                    Value::None => {}
                    Value::Tensor(tensor) => self.tensors.push((join(prefix, &name), tensor.clone())),
                    other => {
                        return Err(ErrorKind::Structure(format!(
                            "{here}: `{field}` entry `{name}` is a {}, not a tensor",
                            self.heap.type_name(other)
                        )))
                    }
                }
            }
        }
        if let Some(children) = state.get_str("_modules") {
            let Some(children) = self.heap.dict(children) else {
                return Err(ErrorKind::Structure(format!("{here}: `_modules` is not a dict")));
            };
            for (key, child) in &children.entries {
                let name = join(prefix, &key_string(self.heap, key));
                let child_state = match child {
                    Value::None => continue,
                    Value::Obj(id) => match self.heap.get(*id) {
                        Object::Instance(instance) => module_state(self.heap, instance),
                        _ => None,
                    },
                    _ => None,
                };
                let Some(child_state) = child_state else {
                    return Err(ErrorKind::Structure(format!(
                        "{here}: child `{name}` is a {}, not a module",
                        self.heap.type_name(child)
                    )));
                };
                self.module(child_state, &name, depth + 1)?;
            }
        }
        Ok(())
    }

    fn enter(&mut self, depth: usize) -> Result<(), ErrorKind> {
        if depth > self.limits.max_depth {
            return Err(ErrorKind::Limit {
                what: "nesting depth of the checkpoint",
                limit: self.limits.max_depth as u64,
            });
        }
        if self.budget == 0 {
            return Err(ErrorKind::Limit { what: "objects visited", limit: walk_budget(self.heap) as u64 });
        }
        self.budget -= 1;
        Ok(())
    }
}

/// Refuses a tensor-like value that has no safetensors form where the tensors are
/// collected, rather than leaving it out unnoticed: a sparse, quantized, meta or nested
/// tensor (torch rebuilds it with a function of its own), or a numpy array.
fn unconvertible(instance: &Instance, prefix: &str) -> Result<(), ErrorKind> {
    let Value::Global(global) = &instance.class else { return Ok(()) };
    let tensor = if prefix.is_empty() { "(the whole checkpoint)".to_string() } else { prefix.to_string() };
    if globals::lookup(&global.module, &global.name) == Some(Known::UnsupportedTensor) {
        let kind = globals::unsupported_tensor_kind(&global.name);
        return Err(ErrorKind::Tensor {
            tensor,
            reason: format!(
                "{kind} (rebuilt by `{}`) has no safetensors form; only dense tensors convert",
                global.dotted()
            ),
        });
    }
    if numpy::is_array(instance) {
        return Err(ErrorKind::Tensor {
            tensor,
            reason: "a numpy array, not a torch tensor; only torch tensors convert (`torch.from_numpy` it before \
                     saving)"
                .into(),
        });
    }
    Ok(())
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}
