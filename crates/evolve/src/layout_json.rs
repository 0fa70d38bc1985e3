//! The layout JSON: a checkpoint's names, dtypes, shapes and metadata, without bytes, in a
//! form any script can write (the model's `state_dict()` is enough; see the book's chapter
//! "Evolving a model's layout").
//!
//! ```json
//! {
//!   "tensors": {
//!     "model.layers.0.weight": {"dtype": "float32", "shape": [4, 4]},
//!     "model.norm.weight": {"dtype": "F32", "shape": [4]}
//!   },
//!   "metadata": {"format": "pt"}
//! }
//! ```
//!
//! `tensors` maps each name, in state-dict order, to its dtype — PyTorch's name with or
//! without `torch.` (`float32`, `torch.bfloat16`), the language's (`f32`) or the
//! safetensors header's (`F32`) — and shape (non-negative integers). `metadata` is
//! optional (string values). A flat object of name → `{dtype, shape}` (the
//! `keys.json` of the Anemoi fixtures) is read the same way.

use std::collections::BTreeMap;

use safeshift_model::{DType, Layout, TensorInfo};
use serde_json::Value;

/// At most this many tensors (a hostile file cannot make inference quadratic in memory).
pub const MAX_LAYOUT_TENSORS: usize = 1 << 20;
/// At most this many axes per tensor.
pub const MAX_RANK: usize = 64;

/// Why a layout JSON could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum LayoutJsonError {
    /// Not JSON at all.
    #[error("not JSON: {0}")]
    Syntax(String),
    /// JSON, but not a layout.
    #[error("not a layout: {0}")]
    Shape(String),
    /// A tensor entry that does not say a dtype and a shape.
    #[error("tensor `{name}`: {problem}")]
    Tensor {
        /// The tensor.
        name: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// Reads a layout JSON text.
pub fn parse_layout_json(text: &str) -> Result<Layout, LayoutJsonError> {
    let value: Value = serde_json::from_str(text).map_err(|err| LayoutJsonError::Syntax(err.to_string()))?;
    let Value::Object(top) = value else {
        return Err(LayoutJsonError::Shape("the top level must be an object".into()));
    };
    let wrapped = matches!(top.get("tensors"), Some(Value::Object(inner)) if !is_tensor_entry(inner));
    let (tensors, metadata) = if wrapped {
        for key in top.keys() {
            if key != "tensors" && key != "metadata" {
                return Err(LayoutJsonError::Shape(format!("unknown key `{key}` (expected `tensors`, `metadata`)")));
            }
        }
        let Some(Value::Object(tensors)) = top.get("tensors") else { unreachable!("checked above") };
        (tensors.clone(), top.get("metadata").cloned())
    } else {
        (top, None)
    };
    if tensors.len() > MAX_LAYOUT_TENSORS {
        return Err(LayoutJsonError::Shape(format!("more than {MAX_LAYOUT_TENSORS} tensors")));
    }
    let mut layout = Layout::default();
    for (name, entry) in tensors {
        layout.tensors.push(tensor(&name, &entry)?);
    }
    match metadata {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (key, value) in map {
                let Value::String(text) = value else {
                    return Err(LayoutJsonError::Shape(format!("metadata `{key}` is not a string")));
                };
                layout.metadata.insert(key, text);
            }
        }
        Some(_) => return Err(LayoutJsonError::Shape("`metadata` must be an object of strings".into())),
    }
    Ok(layout)
}

/// The layout as layout JSON (the form [`parse_layout_json`] reads), for tests and tools.
pub fn layout_json(layout: &Layout) -> String {
    let mut tensors = serde_json::Map::new();
    for info in &layout.tensors {
        let entry = serde_json::json!({ "dtype": info.dtype.language_name(), "shape": info.shape });
        tensors.insert(info.name.clone(), entry);
    }
    let metadata: BTreeMap<&String, &String> = layout.metadata.iter().collect();
    let value = serde_json::json!({ "tensors": tensors, "metadata": metadata });
    serde_json::to_string_pretty(&value).unwrap_or_default()
}

fn is_tensor_entry(map: &serde_json::Map<String, Value>) -> bool {
    map.contains_key("dtype") && map.contains_key("shape")
}

fn tensor(name: &str, entry: &Value) -> Result<TensorInfo, LayoutJsonError> {
    let problem = |problem: &str| LayoutJsonError::Tensor { name: name.to_owned(), problem: problem.to_owned() };
    let Value::Object(map) = entry else {
        return Err(problem("expected an object with `dtype` and `shape`"));
    };
    let Some(Value::String(dtype_text)) = map.get("dtype") else {
        return Err(problem("`dtype` is missing or not a string"));
    };
    let dtype = parse_dtype(dtype_text).ok_or_else(|| problem(&format!("unknown dtype `{dtype_text}`")))?;
    let Some(Value::Array(axes)) = map.get("shape") else {
        return Err(problem("`shape` is missing or not an array"));
    };
    if axes.len() > MAX_RANK {
        return Err(problem(&format!("more than {MAX_RANK} axes")));
    }
    let mut shape = Vec::with_capacity(axes.len());
    for axis in axes {
        let size = axis.as_u64().ok_or_else(|| problem("a shape holds non-negative integers only"))?;
        shape.push(size);
    }
    let info = TensorInfo { name: name.to_owned(), dtype, shape };
    if info.byte_len().is_none() {
        return Err(problem("the shape's byte size overflows"));
    }
    Ok(info)
}

/// A dtype in any of the spellings the module docs list.
pub fn parse_dtype(text: &str) -> Option<DType> {
    let text = text.strip_prefix("torch.").unwrap_or(text);
    DType::from_safetensors_name(text)
        .or_else(|| DType::from_language_name(text))
        .or_else(|| DType::from_safetensors_name(&text.to_ascii_uppercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_wrapped_and_the_flat_form() {
        let wrapped = r#"{"tensors": {"b": {"dtype": "torch.bfloat16", "shape": [2, 3]}, "a": {"dtype": "F32", "shape": []}},
                          "metadata": {"format": "pt"}}"#;
        let layout = parse_layout_json(wrapped).unwrap();
        let names: Vec<_> = layout.tensors.iter().map(|t| (t.name.as_str(), t.dtype, t.shape.clone())).collect();
        assert_eq!(names, [("b", DType::BF16, vec![2, 3]), ("a", DType::F32, vec![])]);
        assert_eq!(layout.metadata["format"], "pt");
        let flat = r#"{"x": {"dtype": "int32", "shape": [5]}}"#;
        assert_eq!(parse_layout_json(flat).unwrap().tensors[0].dtype, DType::I32);
        assert_eq!(parse_layout_json(&layout_json(&layout)).unwrap(), layout);
    }

    #[test]
    fn a_tensor_called_tensors_is_a_tensor() {
        let flat = r#"{"tensors": {"dtype": "f32", "shape": [1]}}"#;
        assert_eq!(parse_layout_json(flat).unwrap().tensors[0].name, "tensors");
    }

    #[test]
    fn bad_entries_name_the_tensor() {
        for (text, message) in [
            ("[1]", "not a layout: the top level must be an object"),
            (r#"{"w": {"dtype": "f33", "shape": [1]}}"#, "tensor `w`: unknown dtype `f33`"),
            (r#"{"w": {"dtype": "f32", "shape": [-1]}}"#, "tensor `w`: a shape holds non-negative integers only"),
            (r#"{"w": {"dtype": "f32"}}"#, "tensor `w`: `shape` is missing or not an array"),
            (r#"{"tensors": {}, "extra": 1}"#, "not a layout: unknown key `extra` (expected `tensors`, `metadata`)"),
            (
                r#"{"w": {"dtype": "f32", "shape": [4294967296, 4294967296, 4]}}"#,
                "tensor `w`: the shape's byte size overflows",
            ),
        ] {
            assert_eq!(parse_layout_json(text).unwrap_err().to_string(), message, "{text}");
        }
        assert!(matches!(parse_layout_json("{"), Err(LayoutJsonError::Syntax(_))));
    }
}
