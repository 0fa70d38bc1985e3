//! The plain value tree a pickle builds: scalars, containers in an arena, and opaque objects.
//!
//! Containers live in a [`Heap`] and values refer to them by index, which gives pickle's
//! identity semantics (a memoised list appended to later is the same list everywhere) with
//! flat drops and no reference cycles in Rust's ownership.

use std::collections::HashMap;
use std::rc::Rc;

use safeshift_model::DType;

use crate::error::PickleError;
use crate::Limits;

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

/// The arena of objects of one checkpoint, with the bounds the parse must respect *while* it
/// runs: how many objects, how deep they nest as built, and how many bytes they take.
#[derive(Debug)]
pub(crate) struct Heap {
    objects: Vec<Object>,
    /// Nesting depth of each object as built: 1 + the depth of its deepest element when it
    /// was made or last grown. A structure deepened later through the memo (a list appended
    /// into after it was nested) can be deeper than recorded; the walks over the finished
    /// graph bound their own depth too.
    depths: Vec<u32>,
    max_objects: usize,
    max_depth: usize,
    /// Bytes charged so far (see [`Limits::parse_memory`]).
    charged: u64,
    budget: u64,
}

/// What one object costs against the budget: its slot, twice (the arena grows by doubling).
const OBJECT_COST: u64 = 2 * std::mem::size_of::<Object>() as u64 + 4;
/// What one element of a container costs: a value, twice (containers grow by doubling),
/// which also covers a dict's index entry.
pub(crate) const ELEMENT_COST: u64 = 2 * std::mem::size_of::<Value>() as u64;

impl Heap {
    /// A heap for a pickle read from an input of `input_len` bytes.
    pub fn new(limits: &Limits, input_len: usize) -> Heap {
        Heap {
            objects: Vec::new(),
            depths: Vec::new(),
            max_objects: limits.max_objects,
            max_depth: limits.max_depth,
            charged: 0,
            budget: limits.parse_memory(input_len as u64),
        }
    }

    pub fn alloc(&mut self, object: Object) -> Result<Value, PickleError> {
        if self.objects.len() >= self.max_objects {
            return Err(PickleError::Limit { what: "objects", limit: self.max_objects as u64 });
        }
        let (depth, elements) = match &object {
            Object::List(items) | Object::Tuple(items) | Object::Set { items, .. } => {
                (self.depth_of(items), items.len())
            }
            Object::Dict(dict) => {
                (self.depth_of(dict.entries.iter().flat_map(|(k, v)| [k, v])), 2 * dict.entries.len())
            }
            Object::Instance(instance) => (self.depth_of([&instance.class, &instance.args]), 2),
        };
        self.charge(OBJECT_COST + elements as u64 * ELEMENT_COST)?;
        let depth = self.check_depth(depth)?;
        self.objects.push(object);
        self.depths.push(depth);
        Ok(Value::Obj(self.objects.len() - 1))
    }

    /// Records that `items` are about to be added to object `id` (APPEND, SETITEM, BUILD…):
    /// charges them and deepens the object, failing at the opcode that crosses a limit.
    pub fn grow<'v>(
        &mut self,
        id: ObjId,
        items: impl IntoIterator<Item = &'v Value> + Clone,
    ) -> Result<(), PickleError> {
        let count = items.clone().into_iter().count() as u64;
        self.charge(count * ELEMENT_COST)?;
        let depth = self.check_depth(self.depth_of(items))?;
        if let Some(slot) = self.depths.get_mut(id) {
            *slot = (*slot).max(depth);
        }
        Ok(())
    }

    /// Charges `bytes` against the parse's memory budget.
    pub fn charge(&mut self, bytes: u64) -> Result<(), PickleError> {
        self.charged = self.charged.saturating_add(bytes);
        if self.charged > self.budget {
            return Err(PickleError::Limit { what: "memory of the parsed pickle (bytes)", limit: self.budget });
        }
        Ok(())
    }

    /// 1 + the deepest of `items`.
    fn depth_of<'v>(&self, items: impl IntoIterator<Item = &'v Value>) -> u32 {
        1 + items
            .into_iter()
            .map(|item| match item {
                Value::Obj(id) => self.depths.get(*id).copied().unwrap_or(0),
                _ => 0,
            })
            .max()
            .unwrap_or(0)
    }

    fn check_depth(&self, depth: u32) -> Result<u32, PickleError> {
        if depth as usize > self.max_depth {
            return Err(PickleError::Limit { what: "nesting depth", limit: self.max_depth as u64 });
        }
        Ok(depth)
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
        let mut heap = Heap::new(&Limits { max_objects: 1, ..Limits::default() }, 0);
        heap.alloc(Object::List(Vec::new())).unwrap();
        assert!(matches!(heap.alloc(Object::List(Vec::new())), Err(PickleError::Limit { .. })));
    }

    #[test]
    fn heap_bounds_depth_as_objects_are_built() {
        let mut heap = Heap::new(&Limits { max_depth: 3, ..Limits::default() }, 0);
        let mut value = Value::None;
        for _ in 0..3 {
            value = heap.alloc(Object::Tuple(vec![value])).unwrap();
        }
        let err = heap.alloc(Object::Tuple(vec![value.clone()])).unwrap_err();
        assert!(matches!(err, PickleError::Limit { what: "nesting depth", .. }), "{err}");
        // Growing a shallow list by a deep value deepens it.
        let list = heap.alloc(Object::List(Vec::new())).unwrap();
        let Value::Obj(id) = list else { panic!() };
        assert!(heap.grow(id, [&value]).is_err());
    }

    #[test]
    fn heap_bounds_memory_by_the_input_size() {
        let limits = Limits { parse_memory_per_input_byte: 1, parse_memory_base: 0, ..Limits::default() };
        let mut heap = Heap::new(&limits, 10_000);
        let made = (0..10_000).take_while(|_| heap.alloc(Object::List(Vec::new())).is_ok()).count();
        assert!(made > 0 && made < 10_000 / std::mem::size_of::<Object>(), "{made}");
    }
}
