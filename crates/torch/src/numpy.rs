//! numpy arrays and scalars as they are pickled, read as data.
//!
//! An array is `_reconstruct(ndarray, (0,), b'b')` followed by BUILD with the state
//! `(version, shape, dtype, is_fortran, raw bytes)` (a list instead of bytes for object
//! arrays); its dtype is `dtype(code, False, True)` with BUILD state `(3, byteorder, …)`. A
//! scalar is `scalar(dtype, raw bytes)`. Nothing of numpy is imported.

use serde_json::{json, Value as Json};

use safeshift_model::DType;

use crate::value::{Heap, Instance, Value};

/// A numeric numpy array held in the pickle.
pub(crate) struct NdArray<'h> {
    /// numpy's type string, byte order first (`<f8`).
    pub typestr: String,
    pub shape: Vec<u64>,
    /// C-order bytes (Fortran-order arrays are not decoded).
    pub data: &'h [u8],
}

/// numpy's C module under its names before and after numpy 2.
const MULTIARRAY: &[&str] = &["numpy.core.multiarray", "numpy._core.multiarray"];

fn is_global(value: &Value, modules: &[&str], name: &str) -> bool {
    matches!(value, Value::Global(g) if g.name == name && modules.contains(&g.module.as_str()))
}

/// numpy's `_frombuffer`, how protocol 5 pickles arrays: `_frombuffer(bytes, dtype, shape, order)`.
const NUMERIC: &[&str] = &["numpy.core.numeric", "numpy._core.numeric"];

/// Whether an instance records a numpy array of any kind (object and Fortran-order ones
/// too, which [`array`] does not decode).
pub(crate) fn is_array(instance: &Instance) -> bool {
    is_global(&instance.class, MULTIARRAY, "_reconstruct") || is_global(&instance.class, NUMERIC, "_frombuffer")
}

/// The array an instance records, if it is a numeric, C-order numpy array.
pub(crate) fn array<'h>(heap: &'h Heap, instance: &Instance) -> Option<NdArray<'h>> {
    let (shape, dtype, data) = if is_global(&instance.class, MULTIARRAY, "_reconstruct") {
        let state = heap.sequence(instance.state.as_ref()?)?;
        let [_version, shape, dtype, Value::Bool(false), Value::Bytes(data)] = state else { return None };
        (shape, dtype, data)
    } else if is_global(&instance.class, NUMERIC, "_frombuffer") {
        let [Value::Bytes(data), dtype, shape, Value::Str(order)] = heap.sequence(&instance.args)? else {
            return None;
        };
        if &**order != "C" {
            return None;
        }
        (shape, dtype, data)
    } else {
        return None;
    };
    let shape: Vec<u64> = heap
        .sequence(shape)?
        .iter()
        .map(|dim| match dim {
            Value::Int(dim) => u64::try_from(*dim).ok(),
            _ => None,
        })
        .collect::<Option<_>>()?;
    let typestr = typestr(heap, dtype)?;
    let element = dtype_of(&typestr)?.size()? as u64;
    let numel = shape.iter().try_fold(1u64, |acc, &dim| acc.checked_mul(dim))?;
    if numel.checked_mul(element)? != data.len() as u64 {
        return None;
    }
    Some(NdArray { typestr, shape, data })
}

/// The number a numpy scalar record stands for.
pub(crate) fn scalar(heap: &Heap, instance: &Instance) -> Option<Json> {
    if !is_global(&instance.class, MULTIARRAY, "scalar") {
        return None;
    }
    let [dtype, Value::Bytes(data)] = heap.sequence(&instance.args)? else { return None };
    let typestr = typestr(heap, dtype)?;
    let values = decode(&typestr, data)?;
    (values.len() == 1).then(|| values.into_iter().next().expect("one value"))
}

/// `<f8`-style type string of a pickled `numpy.dtype` record.
fn typestr(heap: &Heap, dtype: &Value) -> Option<String> {
    let record = heap.instance(dtype)?;
    if !is_global(&record.class, &["numpy"], "dtype") {
        return None;
    }
    let Some(Value::Str(code)) = heap.sequence(&record.args)?.first() else { return None };
    let order = match record.state.as_ref().and_then(|state| heap.sequence(state)) {
        Some([_, Value::Str(order), ..]) => order.to_string(),
        _ => "|".to_string(),
    };
    let order = if order == "=" { "<".to_string() } else { order };
    Some(format!("{order}{code}"))
}

/// The safetensors dtype of a numpy type string or name (`<f8`, `float64`, `|b1`…); `None`
/// for big-endian or unsupported types.
pub(crate) fn dtype_of(name: &str) -> Option<DType> {
    if name.starts_with('>') {
        return None;
    }
    let name = name.strip_prefix(['<', '|', '=']).unwrap_or(name);
    Some(match name {
        "float64" | "f8" => DType::F64,
        "float32" | "f4" => DType::F32,
        "float16" | "f2" => DType::F16,
        "int64" | "i8" => DType::I64,
        "int32" | "i4" => DType::I32,
        "int16" | "i2" => DType::I16,
        "int8" | "i1" => DType::I8,
        "uint8" | "u1" => DType::U8,
        "uint16" | "u2" => DType::U16,
        "uint32" | "u4" => DType::U32,
        "uint64" | "u8" => DType::U64,
        "bool" | "b1" => DType::Bool,
        "complex64" | "c8" => DType::C64,
        _ => return None,
    })
}

/// The elements of little-endian `data` as JSON numbers, for the types JSON can hold.
fn decode(typestr: &str, data: &[u8]) -> Option<Vec<Json>> {
    fn each<const N: usize>(data: &[u8], f: impl Fn([u8; N]) -> Json) -> Vec<Json> {
        data.chunks_exact(N).map(|chunk| f(chunk.try_into().expect("N bytes"))).collect()
    }
    let float = |value: f64| if value.is_finite() { json!(value) } else { json!({ "__float__": value.to_string() }) };
    Some(match dtype_of(typestr)? {
        DType::F64 => each::<8>(data, |b| float(f64::from_le_bytes(b))),
        DType::F32 => each::<4>(data, |b| float(f64::from(f32::from_le_bytes(b)))),
        DType::I64 => each::<8>(data, |b| json!(i64::from_le_bytes(b))),
        DType::I32 => each::<4>(data, |b| json!(i32::from_le_bytes(b))),
        DType::I16 => each::<2>(data, |b| json!(i16::from_le_bytes(b))),
        DType::I8 => each::<1>(data, |b| json!(i8::from_le_bytes(b))),
        DType::U64 => each::<8>(data, |b| json!(u64::from_le_bytes(b))),
        DType::U32 => each::<4>(data, |b| json!(u32::from_le_bytes(b))),
        DType::U16 => each::<2>(data, |b| json!(u16::from_le_bytes(b))),
        DType::U8 => each::<1>(data, |b| json!(b[0])),
        DType::Bool => each::<1>(data, |b| json!(b[0] != 0)),
        _ => return None,
    })
}

/// Arrays with more elements than this are not copied into JSON metadata (a real
/// checkpoint's hyper-parameters can hold grids of a million points, which belong in a
/// tensor file, not in its header).
pub(crate) const MAX_JSON_ELEMENTS: usize = 1 << 16;

impl NdArray<'_> {
    /// `{"__ndarray__": "<f8", "shape": [..], "data": [..]}` (flat, C order), or the raw bytes
    /// as latin-1 when the elements are not JSON numbers; above [`MAX_JSON_ELEMENTS`],
    /// `{"__ndarray__", "shape", "__elided__": true}`.
    pub fn to_json(&self) -> Json {
        let numel = self.shape.iter().product::<u64>();
        if numel > MAX_JSON_ELEMENTS as u64 {
            return json!({ "__ndarray__": self.typestr, "shape": self.shape, "__elided__": true });
        }
        match decode(&self.typestr, self.data) {
            Some(values) => json!({ "__ndarray__": self.typestr, "shape": self.shape, "data": values }),
            None => json!({
                "__ndarray__": self.typestr,
                "shape": self.shape,
                "__bytes_latin1__": self.data.iter().map(|&b| char::from(b)).collect::<String>(),
            }),
        }
    }
}
