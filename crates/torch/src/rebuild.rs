//! What the allow-listed globals build, as plain data: tensors from `_rebuild_tensor_v2`,
//! dicts from `OrderedDict`, bytes from `_codecs.encode`. Never a call into anything.

use std::rc::Rc;

use safeshift_model::DType;

use crate::error::PickleError;
use crate::globals::{self, Known};
use crate::value::{Dict, GlobalRef, Heap, Instance, Object, TensorRef, Value};

/// The value `global(*args)` would return, for an allow-listed `global`.
pub(crate) fn apply(heap: &mut Heap, known: Known, global: &Rc<GlobalRef>, args: Value) -> Result<Value, PickleError> {
    let name = global.dotted();
    let args_vec: Vec<Value> = heap
        .sequence(&args)
        .ok_or_else(|| {
            PickleError::BadValue(format!("`{name}` called with a {} instead of a tuple", heap.type_name(&args)))
        })?
        .to_vec();
    match known {
        Known::RebuildTensorV1 | Known::RebuildTensorV2 | Known::RebuildTensorV3 => {
            rebuild_tensor(heap, known, &name, &args_vec)
        }
        Known::RebuildParameter | Known::RebuildParameterWithState => match args_vec.first() {
            Some(tensor @ Value::Tensor(_)) => Ok(tensor.clone()),
            _ => Err(PickleError::BadValue(format!("`{name}` needs a tensor as its first argument"))),
        },
        Known::RebuildFromTypeV2 => {
            // `func(*args).as_subclass(type)` plus Python state: for a subclass made with
            // `as_subclass` (any `type`, torch's own or not) the bytes are those of the
            // inner tensor, which is what is kept. Any other `func` (wrapper subclasses…) stays
            // an inert record.
            let [Value::Global(func), Value::Global(_), inner_args, _state] = args_vec.as_slice() else {
                return Err(PickleError::BadValue(format!("`{name}` needs (func, type, args, state)")));
            };
            match globals::lookup(&func.module, &func.name) {
                Some(inner @ (Known::RebuildTensorV1 | Known::RebuildTensorV2 | Known::RebuildTensorV3)) => {
                    apply(heap, inner, func, inner_args.clone())
                }
                _ => record(heap, global, args),
            }
        }
        Known::OrderedDict | Known::Counter => {
            let mut dict = Dict::default();
            if let Some(source) = args_vec.first() {
                let pairs = heap
                    .sequence(source)
                    .ok_or_else(|| PickleError::BadValue(format!("`{name}` of a {}", heap.type_name(source))))?
                    .to_vec();
                for pair in pairs {
                    match heap.sequence(&pair) {
                        Some([key, value]) => dict.insert(key.clone(), value.clone()),
                        _ => return Err(PickleError::BadValue(format!("`{name}` item is not a pair"))),
                    }
                }
            }
            heap.alloc(Object::Dict(dict))
        }
        Known::Set | Known::FrozenSet => {
            let items = match args_vec.first() {
                None => Vec::new(),
                Some(source) => heap
                    .sequence(source)
                    .ok_or_else(|| PickleError::BadValue(format!("`{name}` of a {}", heap.type_name(source))))?
                    .to_vec(),
            };
            heap.alloc(Object::Set { items, frozen: known == Known::FrozenSet })
        }
        Known::CodecsEncode => {
            let [Value::Str(text), Value::Str(encoding)] = args_vec.as_slice() else {
                return Err(PickleError::BadValue(format!("`{name}` needs (str, encoding)")));
            };
            match &**encoding {
                "latin1" | "latin-1" | "iso-8859-1" => {
                    let bytes: Option<Vec<u8>> = text.chars().map(|ch| u8::try_from(u32::from(ch)).ok()).collect();
                    let bytes = bytes.ok_or_else(|| PickleError::BadValue("latin-1 text above U+00FF".into()))?;
                    Ok(Value::Bytes(bytes.into()))
                }
                "utf-8" | "utf8" => Ok(Value::Bytes(text.as_bytes().into())),
                other => Err(PickleError::BadValue(format!("`{name}` with encoding `{other}`"))),
            }
        }
        Known::UnsupportedTensor => Err(PickleError::BadValue(format!(
            "`{name}` rebuilds a tensor safetensors cannot hold (sparse, quantized, meta, nested…)"
        ))),
        Known::Size => match args_vec.as_slice() {
            [] => heap.alloc(Object::Tuple(Vec::new())),
            [dims] => Ok(dims.clone()),
            _ => Err(PickleError::BadValue(format!("`{name}` needs one argument"))),
        },
        Known::Data | Known::TensorType | Known::Storage(_) | Known::UnsupportedStorage | Known::TorchDType(_) => {
            record(heap, global, args)
        }
    }
}

/// An inert record of the call `global(*args)`.
fn record(heap: &mut Heap, global: &Rc<GlobalRef>, args: Value) -> Result<Value, PickleError> {
    heap.alloc(Object::Instance(Instance {
        class: Value::Global(global.clone()),
        args,
        kwargs: None,
        state: None,
        items: Vec::new(),
        entries: Dict::default(),
    }))
}

/// `_rebuild_tensor[_v2|_v3](storage, storage_offset, size, stride, …)`.
fn rebuild_tensor(heap: &Heap, known: Known, name: &str, args: &[Value]) -> Result<Value, PickleError> {
    let bad = |why: String| PickleError::BadValue(format!("`{name}`: {why}"));
    let expected = match known {
        Known::RebuildTensorV1 => 4..=4,
        Known::RebuildTensorV2 => 6..=7,
        _ => 7..=8,
    };
    if !expected.contains(&args.len()) {
        return Err(bad(format!("{} arguments", args.len())));
    }
    let Value::Storage(storage) = &args[0] else {
        return Err(bad(format!("first argument is a {}, not a storage", heap.type_name(&args[0]))));
    };
    let offset = non_negative(&args[1]).ok_or_else(|| bad("storage offset is not a non-negative int".into()))?;
    let shape = int_tuple(heap, &args[2]).ok_or_else(|| bad("size is not a tuple of non-negative ints".into()))?;
    let stride = int_tuple(heap, &args[3]).ok_or_else(|| bad("stride is not a tuple of non-negative ints".into()))?;
    if shape.len() != stride.len() {
        return Err(bad(format!("size has {} dims, stride {}", shape.len(), stride.len())));
    }
    let dtype: DType = match known {
        Known::RebuildTensorV3 => {
            let Value::Global(dtype) = &args[6] else {
                return Err(bad("dtype argument is not a torch dtype".into()));
            };
            match globals::lookup(&dtype.module, &dtype.name) {
                Some(Known::TorchDType(Some(dtype))) => dtype,
                _ => return Err(bad(format!("dtype `{}` has no safetensors equivalent", dtype.dotted()))),
            }
        }
        _ => storage.dtype.ok_or_else(|| bad("an untyped storage needs _rebuild_tensor_v3".into()))?,
    };
    if let (Some(storage_dtype), Known::RebuildTensorV3) = (storage.dtype, known) {
        if storage_dtype != dtype {
            return Err(bad("typed storage with a different dtype".into()));
        }
    }
    if dtype.size().is_none() {
        return Err(bad(format!("dtype {dtype} is not a whole number of bytes")));
    }
    Ok(Value::Tensor(Rc::new(TensorRef { storage: storage.clone(), dtype, offset, shape, stride })))
}

fn non_negative(value: &Value) -> Option<u64> {
    match value {
        Value::Int(int) => u64::try_from(*int).ok(),
        _ => None,
    }
}

fn int_tuple(heap: &Heap, value: &Value) -> Option<Vec<u64>> {
    heap.sequence(value)?.iter().map(non_negative).collect()
}
