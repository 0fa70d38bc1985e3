//! The non-tensor content of a checkpoint as JSON, for `__metadata__`.
//!
//! Encoding: tuples become arrays; dict keys are spelt as Python's `json.dumps` spells them
//! (`0`, `true`, `null`); tensors become `{"__tensor__": "torch.float32", "shape": [..]}`
//! placeholders; bytes `{"__bytes_latin1__": ".."}`; integers beyond i64 `{"__int__": "0x.."}`;
//! non-finite floats `{"__float__": "nan"}`; sets `{"__set__": [..]}`; globals
//! `{"__global__": "module.name"}`; records of other objects
//! `{"__object__": "module.name", "args": .., "kwargs": .., "state": ..}`; a reference back to
//! an enclosing object (a cycle, such as OmegaConf's `_parent`) `{"__cycle__": "module.name"}`.
//!
//! Objects whose pickled form is known data are rendered as that data: OmegaConf
//! `DictConfig`/`ListConfig`/value nodes as their content, pydantic models as their fields,
//! `defaultdict` and other dict subclasses without state as objects, torch modules as
//! `{"__module__": "module.Class"}` (their tensors are the state dict), numpy arrays as
//! `{"__ndarray__": "<f8", "shape": [..], "data": [..]}` (elided above 65,536 elements) and
//! numpy scalars as numbers, and a
//! graph written as extras as `{"__extras__": "graph", ..its other attributes}`.

use std::collections::HashMap;

use serde_json::{json, Map, Value as Json};

use safeshift_model::DType;

use crate::error::ErrorKind;
use crate::value::{Heap, Instance, ObjId, Object, Value};
use crate::Limits;

/// Converts values to JSON within a node budget, a depth bound and a size bound.
pub(crate) struct JsonWriter<'h> {
    heap: &'h Heap,
    limits: &'h Limits,
    /// Nodes left to visit (shared structure is revisited, so this bounds the work).
    budget: usize,
    /// Approximate bytes produced so far.
    size: usize,
    /// The objects being rendered, outermost first: meeting one again is a cycle.
    open: Vec<ObjId>,
    /// Objects written as extras (graphs), rendered as a reference to their name prefix.
    extras: HashMap<ObjId, Json>,
}

impl<'h> JsonWriter<'h> {
    pub fn new(heap: &'h Heap, limits: &'h Limits) -> JsonWriter<'h> {
        JsonWriter { heap, limits, budget: walk_budget(heap), size: 0, open: Vec::new(), extras: HashMap::new() }
    }

    /// Renders object `id` as `rendering` (a graph written as extras).
    pub fn set_extra(&mut self, id: ObjId, rendering: Json) {
        self.extras.insert(id, rendering);
    }

    pub fn convert(&mut self, value: &Value, depth: usize) -> Result<Json, ErrorKind> {
        if depth > self.limits.max_depth {
            return Err(ErrorKind::Limit {
                what: "nesting depth of the metadata",
                limit: self.limits.max_depth as u64,
            });
        }
        if self.budget == 0 {
            return Err(ErrorKind::Limit {
                what: "objects visited for the metadata",
                limit: walk_budget(self.heap) as u64,
            });
        }
        self.budget -= 1;
        self.size += 8;
        let json = match value {
            Value::None => Json::Null,
            Value::Bool(flag) => Json::Bool(*flag),
            Value::Int(int) => json!(int),
            Value::BigInt(bytes) => {
                self.size += bytes.len() * 2;
                json!({ "__int__": big_int_hex(bytes) })
            }
            Value::Float(float) if float.is_finite() => json!(float),
            Value::Float(float) => {
                let text = if float.is_nan() {
                    "nan"
                } else if *float > 0.0 {
                    "inf"
                } else {
                    "-inf"
                };
                json!({ "__float__": text })
            }
            Value::Str(text) => {
                self.size += text.len();
                Json::String(text.to_string())
            }
            Value::Bytes(bytes) => {
                self.size += bytes.len() * 2;
                json!({ "__bytes_latin1__": bytes.iter().map(|&b| char::from(b)).collect::<String>() })
            }
            Value::Global(global) => json!({ "__global__": global.dotted() }),
            Value::Storage(storage) => json!({ "__storage__": &*storage.key }),
            Value::Tensor(tensor) => json!({ "__tensor__": torch_dtype_name(tensor.dtype), "shape": tensor.shape }),
            Value::Obj(id) if self.open.contains(id) => {
                json!({ "__cycle__": self.heap.type_name(value) })
            }
            Value::Obj(id) if self.extras.contains_key(id) => self.extras[id].clone(),
            Value::Obj(id) => {
                self.open.push(*id);
                let json = self.object(*id, depth);
                self.open.pop();
                json?
            }
        };
        if self.size > self.limits.max_metadata_bytes {
            return Err(ErrorKind::Limit { what: "JSON metadata", limit: self.limits.max_metadata_bytes as u64 });
        }
        Ok(json)
    }

    fn object(&mut self, id: ObjId, depth: usize) -> Result<Json, ErrorKind> {
        Ok(match self.heap.get(id) {
            Object::List(items) | Object::Tuple(items) => Json::Array(self.array(items, depth)?),
            Object::Set { items, .. } => json!({ "__set__": self.array(items, depth)? }),
            Object::Dict(dict) => {
                let mut map = Map::new();
                for (key, value) in &dict.entries {
                    let key = key_string(self.heap, key);
                    self.size += key.len();
                    let value = self.convert(value, depth + 1)?;
                    map.insert(key, value);
                }
                Json::Object(map)
            }
            Object::Instance(instance) => self.instance(instance, depth)?,
        })
    }

    /// Kept out of `convert` so its locals do not weigh on every level of the recursion.
    #[inline(never)]
    fn instance(&mut self, instance: &Instance, depth: usize) -> Result<Json, ErrorKind> {
        if let Some(data) = self.known_data(instance, depth)? {
            return Ok(data);
        }
        let mut map = Map::new();
        let class = match &instance.class {
            Value::Global(global) => global.dotted(),
            _ => "?".into(),
        };
        map.insert("__object__".into(), Json::String(class));
        if self.heap.sequence(&instance.args).is_none_or(|args| !args.is_empty()) {
            map.insert("args".into(), self.convert(&instance.args, depth + 1)?);
        }
        if let Some(kwargs) = &instance.kwargs {
            map.insert("kwargs".into(), self.convert(kwargs, depth + 1)?);
        }
        if let Some(state) = &instance.state {
            map.insert("state".into(), self.convert(state, depth + 1)?);
        }
        if !instance.items.is_empty() {
            map.insert("items".into(), Json::Array(self.array(&instance.items, depth)?));
        }
        if !instance.entries.entries.is_empty() {
            let mut entries = Map::new();
            for (key, value) in &instance.entries.entries {
                entries.insert(key_string(self.heap, key), self.convert(value, depth + 1)?);
            }
            map.insert("entries".into(), Json::Object(entries));
        }
        Ok(Json::Object(map))
    }

    /// The data an object stands for, when its pickled form is known (see the module docs).
    fn known_data(&mut self, instance: &Instance, depth: usize) -> Result<Option<Json>, ErrorKind> {
        let class = match &instance.class {
            Value::Global(global) => global.dotted(),
            _ => return Ok(None),
        };
        let state = instance.state.as_ref().and_then(|state| self.heap.dict(state));
        if state.is_some_and(|state| state.get_str("_parameters").is_some() && state.get_str("_modules").is_some()) {
            // A torch module: its tensors are the state dict, its classes are code.
            return Ok(Some(json!({ "__module__": class })));
        }
        if class.starts_with("omegaconf.") {
            for field in ["_content", "_val"] {
                if let Some(content) = state.and_then(|state| state.get_str(field)) {
                    return self.convert(content, depth + 1).map(Some);
                }
            }
        }
        if let Some(fields) = state.and_then(|state| {
            let pydantic =
                state.get_str("__pydantic_fields_set__").is_some() || state.get_str("__fields_set__").is_some();
            state.get_str("__dict__").filter(|_| pydantic)
        }) {
            return self.convert(fields, depth + 1).map(Some);
        }
        let dict_like = instance.state.is_none() && instance.items.is_empty();
        if dict_like && (!instance.entries.entries.is_empty() || class == "collections.defaultdict") {
            let mut map = Map::new();
            for (key, value) in &instance.entries.entries {
                map.insert(key_string(self.heap, key), self.convert(value, depth + 1)?);
            }
            return Ok(Some(Json::Object(map)));
        }
        if let Some(array) = crate::numpy::array(self.heap, instance) {
            self.size += array.data.len().min(crate::numpy::MAX_JSON_ELEMENTS * 8) * 3;
            return Ok(Some(array.to_json()));
        }
        Ok(crate::numpy::scalar(self.heap, instance))
    }

    fn array(&mut self, items: &[Value], depth: usize) -> Result<Vec<Json>, ErrorKind> {
        items.iter().map(|item| self.convert(item, depth + 1)).collect()
    }
}

/// How many nodes a walk may visit: a multiple of what the pickle built, so shared
/// structure (a DAG revisited exponentially often) cannot make a walk run away.
pub(crate) fn walk_budget(heap: &Heap) -> usize {
    heap.len().saturating_mul(4).saturating_add(100_000)
}

/// A dict key as Python's `json.dumps` (and tensor names) spell it.
pub(crate) fn key_string(heap: &Heap, key: &Value) -> String {
    match key {
        Value::Str(text) => text.to_string(),
        Value::Int(int) => int.to_string(),
        Value::Bool(true) => "true".into(),
        Value::Bool(false) => "false".into(),
        Value::None => "null".into(),
        Value::Float(float) => format!("{float:?}"),
        Value::BigInt(bytes) => big_int_hex(bytes),
        Value::Global(global) => global.dotted(),
        other => match heap.sequence(other) {
            Some(items) if items.len() <= 16 => {
                let parts: Vec<String> = items
                    .iter()
                    .map(|item| if heap.sequence(item).is_some() { "…".to_string() } else { key_string(heap, item) })
                    .collect();
                format!("({})", parts.join(", "))
            }
            _ => format!("<{}>", heap.type_name(other)),
        },
    }
}

/// `0x…` (or `-0x…`) for little-endian two's complement bytes.
fn big_int_hex(bytes: &[u8]) -> String {
    let negative = bytes.last().is_some_and(|&b| b & 0x80 != 0);
    let mut magnitude = bytes.to_vec();
    if negative {
        let mut carry = 1u16;
        for byte in magnitude.iter_mut() {
            let value = u16::from(!*byte) + carry;
            *byte = value as u8;
            carry = value >> 8;
        }
    }
    let digits: String = magnitude.iter().rev().map(|b| format!("{b:02x}")).collect();
    let digits = digits.trim_start_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    format!("{}0x{digits}", if negative { "-" } else { "" })
}

/// The torch spelling of a dtype (`torch.float32`).
pub(crate) fn torch_dtype_name(dtype: DType) -> &'static str {
    // A table rather than a match, so new dtypes in `safeshift-model` need no change here.
    const NAMES: &[(DType, &str)] = &[
        (DType::Bool, "torch.bool"),
        (DType::U8, "torch.uint8"),
        (DType::I8, "torch.int8"),
        (DType::I16, "torch.int16"),
        (DType::U16, "torch.uint16"),
        (DType::I32, "torch.int32"),
        (DType::U32, "torch.uint32"),
        (DType::I64, "torch.int64"),
        (DType::U64, "torch.uint64"),
        (DType::F16, "torch.float16"),
        (DType::BF16, "torch.bfloat16"),
        (DType::F32, "torch.float32"),
        (DType::F64, "torch.float64"),
        (DType::C64, "torch.complex64"),
        (DType::F8E4M3, "torch.float8_e4m3fn"),
        (DType::F8E5M2, "torch.float8_e5m2"),
        (DType::F8E8M0, "torch.float8_e8m0fnu"),
        (DType::F8E4M3Fnuz, "torch.float8_e4m3fnuz"),
        (DType::F8E5M2Fnuz, "torch.float8_e5m2fnuz"),
    ];
    NAMES.iter().find(|(d, _)| *d == dtype).map_or("(no torch dtype)", |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{Dict, GlobalRef, Instance};
    use std::rc::Rc;

    fn global(dotted: &str) -> Value {
        let (module, name) = dotted.rsplit_once('.').unwrap();
        Value::Global(Rc::new(GlobalRef { module: module.into(), name: name.into(), offset: 0 }))
    }

    fn record(heap: &mut Heap, class: &str, args: Vec<Value>, state: Option<Value>) -> Value {
        let args = heap.alloc(Object::Tuple(args)).unwrap();
        let instance =
            Instance { class: global(class), args, kwargs: None, state, items: Vec::new(), entries: Dict::default() };
        heap.alloc(Object::Instance(instance)).unwrap()
    }

    fn dict(heap: &mut Heap, entries: Vec<(&str, Value)>) -> Value {
        let mut dict = Dict::default();
        for (key, value) in entries {
            dict.insert(Value::Str(key.into()), value);
        }
        heap.alloc(Object::Dict(dict)).unwrap()
    }

    #[test]
    fn known_data_objects_render_as_their_data() {
        let mut heap = Heap::new(&crate::Limits { max_objects: 1000, ..crate::Limits::default() }, 0);
        // pydantic v2: {'__dict__': {...}, '__pydantic_fields_set__': set, ...}
        let fields = dict(&mut heap, vec![("lr", Value::Float(0.5))]);
        let set = heap.alloc(Object::Set { items: Vec::new(), frozen: false }).unwrap();
        let state = dict(&mut heap, vec![("__dict__", fields), ("__pydantic_fields_set__", set)]);
        let model = record(&mut heap, "cfg.Training", vec![], Some(state));
        // numpy: _reconstruct(ndarray, (0,), b'b') + BUILD((1, (2,), dtype('f8') + (3, '<', …), False, bytes))
        let dtype_state = heap.alloc(Object::Tuple(vec![Value::Int(3), Value::Str("<".into())])).unwrap();
        let dtype = record(
            &mut heap,
            "numpy.dtype",
            vec![Value::Str("f8".into()), Value::Bool(false), Value::Bool(true)],
            Some(dtype_state),
        );
        let shape = heap.alloc(Object::Tuple(vec![Value::Int(2)])).unwrap();
        let bytes: Vec<u8> = [1.5f64, -2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let array_state = heap
            .alloc(Object::Tuple(vec![Value::Int(1), shape, dtype, Value::Bool(false), Value::Bytes(bytes.into())]))
            .unwrap();
        let array = record(&mut heap, "numpy._core.multiarray._reconstruct", vec![], Some(array_state));
        // A node whose `_parent` points back at its container: a cycle.
        let child_state = dict(&mut heap, vec![("_parent", Value::None)]);
        let child = record(&mut heap, "tree.Node", vec![], Some(child_state.clone()));
        let top = dict(&mut heap, vec![("model", model), ("array", array), ("child", child.clone())]);
        let Value::Obj(state_id) = child_state else { panic!() };
        let Object::Dict(state) = heap.get_mut(state_id) else { panic!() };
        state.insert(Value::Str("_parent".into()), top.clone());

        let limits = Limits::default();
        let json = JsonWriter::new(&heap, &limits).convert(&top, 0).unwrap();
        assert_eq!(json["model"], json!({ "lr": 0.5 }));
        assert_eq!(json["array"], json!({ "__ndarray__": "<f8", "shape": [2], "data": [1.5, -2.0] }));
        assert_eq!(json["child"]["state"]["_parent"], json!({ "__cycle__": "dict" }));
    }

    #[test]
    fn big_ints_print_as_hex() {
        assert_eq!(big_int_hex(&[0, 0, 0, 0, 0, 0, 0, 0, 1]), "0x10000000000000000");
        assert_eq!(big_int_hex(&[0, 0, 0, 0, 0, 0, 0, 0, 0xff]), "-0x10000000000000000");
    }
}
