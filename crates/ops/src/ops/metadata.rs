//! Metadata edits shared by the `meta-*` operations: a key of the `__metadata__` map, and
//! optionally a dotted path into the JSON its value holds.

use std::collections::BTreeMap;

use safeshift_dsl::ast::{Json, JsonKind, Value};
use serde_json::Value as JsonValue;

use crate::lower::{string_of, Operands};
use crate::operation::OpErrorKind;

/// Reads the `"KEY"` operand: one literal string.
pub(crate) fn lower_key(operands: &mut Operands<'_>) -> Option<String> {
    let pattern = operands.pattern("a metadata key")?;
    match pattern.as_literal() {
        Some(key) => Some(key.to_owned()),
        None => {
            operands.error("bad-value", "a metadata key cannot hold captures", pattern.span);
            None
        }
    }
}

/// Reads `at "json.path"`, split into segments.
pub(crate) fn lower_path(operands: &mut Operands<'_>) -> Option<Option<Vec<String>>> {
    let Some((value, span)) = operands.clause("at") else {
        return Some(None);
    };
    match string_of(value) {
        Some(path) if !path.is_empty() && path.split('.').all(|segment| !segment.is_empty()) => {
            Some(Some(path.split('.').map(str::to_owned).collect()))
        }
        _ => {
            operands.error("bad-value", "`at` takes a dotted JSON path (`at \"config.model.heads\"`)", span);
            None
        }
    }
}

/// A JSON value from the language's JSON literal (or an integer, or a string).
pub(crate) fn json_of(value: &Value) -> Option<JsonValue> {
    fn convert(json: &Json) -> Option<JsonValue> {
        Some(match &json.kind {
            JsonKind::Null => JsonValue::Null,
            JsonKind::Bool(value) => JsonValue::Bool(*value),
            JsonKind::Number(text) => serde_json::from_str(text).ok()?,
            JsonKind::String(text) => JsonValue::String(text.clone()),
            JsonKind::Array(items) => JsonValue::Array(items.iter().map(convert).collect::<Option<_>>()?),
            JsonKind::Object(entries) => JsonValue::Object(
                entries.iter().map(|(key, value)| Some((key.node.clone(), convert(value)?))).collect::<Option<_>>()?,
            ),
        })
    }
    match value {
        Value::Json(json) => convert(json),
        Value::Expr(expr) => match crate::lower::int_literal(expr) {
            Some(number) => Some(JsonValue::from(number)),
            None => match crate::lower::word_of(value) {
                Some("true") => Some(JsonValue::Bool(true)),
                Some("false") => Some(JsonValue::Bool(false)),
                Some("null") => Some(JsonValue::Null),
                _ => None,
            },
        },
        other => string_of(other).map(JsonValue::String),
    }
}

/// The text stored for a whole metadata value: a JSON string as its plain text, anything
/// else as compact JSON.
pub(crate) fn stored_text(value: &JsonValue) -> String {
    match value {
        JsonValue::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn metadata_error(message: String) -> OpErrorKind {
    OpErrorKind::Metadata { message }
}

/// Parses the JSON held in metadata key `key`.
fn parse(metadata: &BTreeMap<String, String>, key: &str) -> Result<JsonValue, OpErrorKind> {
    let text = metadata.get(key).ok_or_else(|| metadata_error(format!("metadata key `{key}` does not exist")))?;
    serde_json::from_str(text).map_err(|err| metadata_error(format!("metadata key `{key}` does not hold JSON: {err}")))
}

/// The container one step along the path, created (as an object) when `create`.
fn step<'v>(value: &'v mut JsonValue, segment: &str, create: bool) -> Result<&'v mut JsonValue, OpErrorKind> {
    match value {
        JsonValue::Object(map) => {
            if create && !map.contains_key(segment) {
                map.insert(segment.to_owned(), JsonValue::Object(Default::default()));
            }
            map.get_mut(segment).ok_or_else(|| metadata_error(format!("no `{segment}` in the JSON")))
        }
        JsonValue::Array(items) => {
            let index: usize =
                segment.parse().map_err(|_| metadata_error(format!("`{segment}` is not an array index")))?;
            items.get_mut(index).ok_or_else(|| metadata_error(format!("index {index} is beyond the array")))
        }
        _ => Err(metadata_error(format!("cannot go into a scalar at `{segment}`"))),
    }
}

/// Sets `path` inside the JSON of `key` (the key must hold JSON, or be absent: then an
/// object is created).
pub(crate) fn set_at(
    metadata: &mut BTreeMap<String, String>,
    key: &str,
    path: &[String],
    value: JsonValue,
) -> Result<(), OpErrorKind> {
    let mut root =
        if metadata.contains_key(key) { parse(metadata, key)? } else { JsonValue::Object(Default::default()) };
    let (last, parents) = path.split_last().expect("a path has a segment");
    let mut node = &mut root;
    for segment in parents {
        node = step(node, segment, true)?;
    }
    match node {
        JsonValue::Object(map) => {
            map.insert(last.clone(), value);
        }
        JsonValue::Array(_) => *step(node, last, false)? = value,
        _ => return Err(metadata_error(format!("cannot set `{last}` inside a scalar"))),
    }
    metadata.insert(key.to_owned(), root.to_string());
    Ok(())
}

/// The value at `path` inside the JSON of `key`; `Ok(None)` when the key holds JSON
/// without it.
pub(crate) fn get_at(
    metadata: &BTreeMap<String, String>,
    key: &str,
    path: &[String],
) -> Result<Option<JsonValue>, OpErrorKind> {
    let mut root = parse(metadata, key)?;
    let mut node = &mut root;
    for segment in path {
        match step(node, segment, false) {
            Ok(next) => node = next,
            Err(_) => return Ok(None),
        }
    }
    Ok(Some(node.take()))
}

/// Deletes `path` inside the JSON of `key`; `Ok(false)` when it was not there.
pub(crate) fn delete_at(
    metadata: &mut BTreeMap<String, String>,
    key: &str,
    path: &[String],
) -> Result<bool, OpErrorKind> {
    let mut root = parse(metadata, key)?;
    let (last, parents) = path.split_last().expect("a path has a segment");
    let mut node = &mut root;
    for segment in parents {
        match step(node, segment, false) {
            Ok(next) => node = next,
            Err(_) => return Ok(false),
        }
    }
    let removed = match node {
        JsonValue::Object(map) => map.shift_remove(last).is_some(),
        JsonValue::Array(items) => match last.parse::<usize>() {
            Ok(index) if index < items.len() => {
                items.remove(index);
                true
            }
            _ => false,
        },
        _ => false,
    };
    metadata.insert(key.to_owned(), root.to_string());
    Ok(removed)
}
