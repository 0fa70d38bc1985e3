//! The plain value tree a pickle builds: scalars, containers in an arena, and opaque objects.
//!
//! Containers live in a [`Heap`] and values refer to them by index, which gives pickle's
//! identity semantics (a memoised list appended to later is the same list everywhere) with
//! flat drops and no reference cycles in Rust's ownership.

use std::collections::HashMap;
use std::rc::Rc;

use safeshift_model::DType;

use crate::error::PickleError;

/// Index of an object in the [`Heap`].
pub(crate) type ObjId = usize;

/// One pickle value.
#[derive(Clone, Debug)]
pub(crate) enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer that does not fit in i64, as little-endian two's complement bytes.
    BigInt(Rc<[u8]>),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    /// A list, tuple, dict, set or object instance in the heap.
    Obj(ObjId),
    /// A global named by GLOBAL/STACK_GLOBAL/INST: never imported, never called.
    Global(Rc<GlobalRef>),
    /// A storage named by a persistent id.
    Storage(Rc<StorageRef>),
    /// A tensor rebuilt from an allow-listed rebuild function (a view of a storage).
    Tensor(Rc<TensorRef>),
}

/// A `module.name` reference, with where it was named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GlobalRef {
    /// As written in the pickle (`__builtin__`, `commands`…).
    pub module: String,
    pub name: String,
    /// Byte offset of the naming opcode.
    pub offset: u64,
}

impl GlobalRef {
    /// `module.name`, as written.
    pub fn dotted(&self) -> String {
        format!("{}.{}", self.module, self.name)
    }
}

/// What a storage persistent id says: `('storage', torch.XStorage, key, location, numel)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StorageRef {
    pub key: Rc<str>,
    /// The element type of the storage class; `None` for `UntypedStorage` (numel counts bytes).
    pub dtype: Option<DType>,
    /// Elements of `dtype` (bytes when untyped).
    pub numel: u64,
}

impl StorageRef {
    /// Bytes the persistent id claims, `None` on overflow.
    pub fn byte_len(&self) -> Option<u64> {
        match self.dtype {
            Some(dtype) => dtype.byte_len(self.numel),
            None => Some(self.numel),
        }
    }
}

/// A tensor: a strided view of a storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TensorRef {
    pub storage: Rc<StorageRef>,
    pub dtype: DType,
    /// Offset into the storage, in elements of `dtype`.
    pub offset: u64,
    pub shape: Vec<u64>,
    /// Strides in elements of `dtype`.
    pub stride: Vec<u64>,
}

/// A container or object instance.
#[derive(Debug)]
pub(crate) enum Object {
    List(Vec<Value>),
    Tuple(Vec<Value>),
    Dict(Dict),
    Set { items: Vec<Value>, frozen: bool },
    Instance(Instance),
}

/// An ordered dict (Python dicts keep insertion order), deduplicating simple keys.
#[derive(Debug, Default)]
pub(crate) struct Dict {
    pub entries: Vec<(Value, Value)>,
    /// Position of each simple key in `entries`.
    index: HashMap<Key, usize>,
}

/// Keys that can be deduplicated cheaply: Python's equal-and-same-hash scalars. Longer
/// strings and compound keys are kept as given, so a hostile file cannot make us hash more
/// than `MAX_INDEXED_KEY` bytes per SETITEM.
#[derive(Debug, PartialEq, Eq, Hash)]
enum Key {
    None,
    Int(i64),
    FloatBits(u64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
}

const MAX_INDEXED_KEY: usize = 256;

impl Dict {
    /// Inserts or replaces, as `dict[key] = value` does.
    pub fn insert(&mut self, key: Value, value: Value) {
        let simple = match &key {
            Value::None => Some(Key::None),
            Value::Bool(flag) => Some(Key::Int(i64::from(*flag))),
            Value::Int(int) => Some(Key::Int(*int)),
            Value::Float(float) if float.fract() == 0.0 && float.abs() < 9.0e15 => Some(Key::Int(*float as i64)),
            Value::Float(float) => Some(Key::FloatBits(float.to_bits())),
            Value::Str(text) if text.len() <= MAX_INDEXED_KEY => Some(Key::Str(text.clone())),
            Value::Bytes(bytes) if bytes.len() <= MAX_INDEXED_KEY => Some(Key::Bytes(bytes.clone())),
            _ => None,
        };
        if let Some(simple) = simple {
            if let Some(&at) = self.index.get(&simple) {
                self.entries[at].1 = value;
                return;
            }
            self.index.insert(simple, self.entries.len());
        }
        self.entries.push((key, value));
    }

    /// The value for a string key.
    pub fn get_str(&self, key: &str) -> Option<&Value> {
        if key.len() <= MAX_INDEXED_KEY {
            let at = *self.index.get(&Key::Str(Rc::from(key)))?;
            return Some(&self.entries[at].1);
        }
        self.entries.iter().find(|(k, _)| matches!(k, Value::Str(s) if &**s == key)).map(|(_, v)| v)
    }
}

/// An inert record of a call or instantiation of a global we never import or call: the
/// callee, its arguments, and the state and items later given to the object, all as data.
#[derive(Debug)]
pub(crate) struct Instance {
    pub class: Value,
    /// The argument tuple given to the class or callable (REDUCE/NEWOBJ args).
    pub args: Value,
    /// The keyword arguments (NEWOBJ_EX), when there are any.
    pub kwargs: Option<Value>,
    /// The BUILD state (`__dict__` for modules).
    pub state: Option<Value>,
    /// Items appended (list subclasses).
    pub items: Vec<Value>,
    /// Items set (dict subclasses).
    pub entries: Dict,
}

/// The arena of objects of one checkpoint, with a bound on how many it may hold.
#[derive(Debug)]
pub(crate) struct Heap {
    objects: Vec<Object>,
    max_objects: usize,
}

impl Heap {
    pub fn new(max_objects: usize) -> Heap {
        Heap { objects: Vec::new(), max_objects }
    }

    pub fn alloc(&mut self, object: Object) -> Result<Value, PickleError> {
        if self.objects.len() >= self.max_objects {
            return Err(PickleError::Limit { what: "objects", limit: self.max_objects as u64 });
        }
        self.objects.push(object);
        Ok(Value::Obj(self.objects.len() - 1))
    }

    pub fn get(&self, id: ObjId) -> &Object {
        &self.objects[id]
    }

    pub fn get_mut(&mut self, id: ObjId) -> &mut Object {
        &mut self.objects[id]
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// The record behind `value`, if it is one.
    pub fn instance(&self, value: &Value) -> Option<&Instance> {
        match value {
            Value::Obj(id) => match self.get(*id) {
                Object::Instance(instance) => Some(instance),
                _ => None,
            },
            _ => None,
        }
    }

    /// The dict behind `value`, if it is one.
    pub fn dict(&self, value: &Value) -> Option<&Dict> {
        match value {
            Value::Obj(id) => match self.get(*id) {
                Object::Dict(dict) => Some(dict),
                _ => None,
            },
            _ => None,
        }
    }

    /// The elements of a tuple or list value.
    pub fn sequence(&self, value: &Value) -> Option<&[Value]> {
        match value {
            Value::Obj(id) => match self.get(*id) {
                Object::Tuple(items) | Object::List(items) => Some(items),
                _ => None,
            },
            _ => None,
        }
    }

    /// A short name of the value's Python type, for messages.
    pub fn type_name(&self, value: &Value) -> String {
        match value {
            Value::None => "None".into(),
            Value::Bool(_) => "bool".into(),
            Value::Int(_) | Value::BigInt(_) => "int".into(),
            Value::Float(_) => "float".into(),
            Value::Str(_) => "str".into(),
            Value::Bytes(_) => "bytes".into(),
            Value::Global(global) => format!("global `{}`", global.dotted()),
            Value::Storage(_) => "storage".into(),
            Value::Tensor(_) => "tensor".into(),
            Value::Obj(id) => match self.get(*id) {
                Object::List(_) => "list".into(),
                Object::Tuple(_) => "tuple".into(),
                Object::Dict(_) => "dict".into(),
                Object::Set { frozen: false, .. } => "set".into(),
                Object::Set { frozen: true, .. } => "frozenset".into(),
                Object::Instance(instance) => match &instance.class {
                    Value::Global(global) => format!("`{}` object", global.dotted()),
                    _ => "object".into(),
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dict_replaces_equal_simple_keys_and_keeps_order() {
        let mut dict = Dict::default();
        dict.insert(Value::Str("a".into()), Value::Int(1));
        dict.insert(Value::Int(1), Value::Int(2));
        dict.insert(Value::Bool(true), Value::Int(3));
        dict.insert(Value::Str("a".into()), Value::Int(4));
        assert_eq!(dict.entries.len(), 2);
        assert!(matches!(dict.get_str("a"), Some(Value::Int(4))));
        assert!(matches!(dict.entries[1].1, Value::Int(3)));
    }

    #[test]
    fn heap_enforces_its_bound() {
        let mut heap = Heap::new(1);
        heap.alloc(Object::List(Vec::new())).unwrap();
        assert!(matches!(heap.alloc(Object::List(Vec::new())), Err(PickleError::Limit { .. })));
    }
}
