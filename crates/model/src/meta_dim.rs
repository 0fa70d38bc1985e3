//! Reading a dim from a checkpoint's metadata: `dim heads = meta("config.model.num_heads")`.
//!
//! The first dotted segment of the path is the `__metadata__` key; its value is parsed as
//! JSON and the rest of the path walks into it (object keys, or decimal array indices).
//! If the first segment is not a key, longer dotted prefixes are tried (longest first), so
//! a key that itself contains dots (`anemoi.config`) still works.

use std::collections::BTreeMap;

use serde_json::Value;

/// Why a metadata dim could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetaDimError {
    /// The path is empty or has an empty segment.
    #[error("metadata path `{path}` is not a dotted path")]
    BadPath {
        /// The path.
        path: String,
    },
    /// No metadata key starts the path.
    #[error("metadata has no key `{key}`")]
    MissingKey {
        /// The first segment of the path.
        key: String,
    },
    /// The key's value is not JSON, and the path goes further into it.
    #[error("metadata `{key}` is not JSON: {message}")]
    NotJson {
        /// The metadata key.
        key: String,
        /// The JSON parser's message.
        message: String,
    },
    /// The path walks into something that lacks the next segment.
    #[error("metadata path `{path}` not found: `{found_at}` has no `{segment}`")]
    MissingPath {
        /// The whole path.
        path: String,
        /// The prefix that was found.
        found_at: String,
        /// The segment that was not.
        segment: String,
    },
    /// The value is not an integer.
    #[error("metadata `{path}` is {found}, not an integer")]
    NotInteger {
        /// The whole path.
        path: String,
        /// The value found, as JSON (shortened).
        found: String,
    },
}

impl MetaDimError {
    /// Whether the value is simply not there (as opposed to being there but malformed).
    pub fn is_absent(&self) -> bool {
        matches!(self, MetaDimError::MissingKey { .. } | MetaDimError::MissingPath { .. })
    }
}

/// Reads the integer at `path` in `metadata` (see the module docs).
pub fn resolve_meta_dim(metadata: &BTreeMap<String, String>, path: &str) -> Result<i64, MetaDimError> {
    let segments: Vec<&str> = path.split('.').collect();
    if segments.iter().any(|segment| segment.is_empty()) {
        return Err(MetaDimError::BadPath { path: path.to_owned() });
    }
    let split = (1..=segments.len())
        .find(|&count| count == 1 && metadata.contains_key(segments[0]))
        .or_else(|| (2..=segments.len()).rev().find(|&count| metadata.contains_key(&segments[..count].join("."))))
        .ok_or_else(|| MetaDimError::MissingKey { key: segments[0].to_owned() })?;
    let key = segments[..split].join(".");
    let text = &metadata[&key];
    let rest = &segments[split..];
    let value = match serde_json::from_str::<Value>(text) {
        Ok(value) => value,
        // A bare string value that is the final stop may still be an integer's text.
        Err(_) if rest.is_empty() => Value::String(text.clone()),
        Err(err) => return Err(MetaDimError::NotJson { key, message: err.to_string() }),
    };
    let mut current = &value;
    let mut found_at = key.clone();
    for segment in rest {
        let next = match current {
            Value::Object(map) => map.get(*segment),
            Value::Array(items) if is_index(segment) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        current = next.ok_or_else(|| MetaDimError::MissingPath {
            path: path.to_owned(),
            found_at: found_at.clone(),
            segment: (*segment).to_owned(),
        })?;
        found_at.push('.');
        found_at.push_str(segment);
    }
    integer(current).ok_or_else(|| MetaDimError::NotInteger { path: path.to_owned(), found: shorten(current) })
}

fn is_index(segment: &str) -> bool {
    !segment.is_empty() && segment.bytes().all(|byte| byte.is_ascii_digit())
}

fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => {
            let trimmed = text.trim();
            let digits = trimmed.strip_prefix('-').unwrap_or(trimmed);
            is_index(digits).then(|| trimmed.parse().ok()).flatten()
        }
        _ => None,
    }
}

/// The value as JSON, cut to a readable length.
fn shorten(value: &Value) -> String {
    const LIMIT: usize = 60;
    let text = value.to_string();
    match text.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect()
    }

    #[test]
    fn reads_integers_through_paths() {
        let config = r#"{"model": {"processor": {"num_heads": 16, "sizes": [8, "32"]}}, "n": "7"}"#;
        let meta = metadata(&[("config", config), ("layers", "12"), ("anemoi.config", r#"{"h": 4}"#)]);
        let cases: &[(&str, Result<i64, MetaDimError>)] = &[
            ("config.model.processor.num_heads", Ok(16)),
            ("config.model.processor.sizes.0", Ok(8)),
            ("config.model.processor.sizes.1", Ok(32)),
            ("config.n", Ok(7)),
            ("layers", Ok(12)),
            ("anemoi.config.h", Ok(4)),
            ("missing.x", Err(MetaDimError::MissingKey { key: "missing".into() })),
            ("", Err(MetaDimError::BadPath { path: "".into() })),
            ("config..x", Err(MetaDimError::BadPath { path: "config..x".into() })),
            (
                "config.model.heads",
                Err(MetaDimError::MissingPath {
                    path: "config.model.heads".into(),
                    found_at: "config.model".into(),
                    segment: "heads".into(),
                }),
            ),
            (
                "config.model.processor.sizes.2",
                Err(MetaDimError::MissingPath {
                    path: "config.model.processor.sizes.2".into(),
                    found_at: "config.model.processor.sizes".into(),
                    segment: "2".into(),
                }),
            ),
            (
                "config.model",
                Err(MetaDimError::NotInteger {
                    path: "config.model".into(),
                    found: r#"{"processor":{"num_heads":16,"sizes":[8,"32"]}}"#.into(),
                }),
            ),
        ];
        for (path, expected) in cases {
            assert_eq!(&resolve_meta_dim(&meta, path), expected, "path {path}");
        }
    }

    #[test]
    fn rejects_non_integers_and_non_json() {
        let meta = metadata(&[("f", "16.5"), ("word", "abc"), ("bad", "{"), ("neg", "-3"), ("big", "1e400")]);
        assert!(matches!(resolve_meta_dim(&meta, "f"), Err(MetaDimError::NotInteger { .. })));
        assert!(matches!(resolve_meta_dim(&meta, "word"), Err(MetaDimError::NotInteger { .. })));
        assert!(matches!(resolve_meta_dim(&meta, "bad.x"), Err(MetaDimError::NotJson { .. })));
        assert_eq!(resolve_meta_dim(&meta, "neg"), Ok(-3));
        assert!(resolve_meta_dim(&meta, "big").is_err());
        let err = resolve_meta_dim(&meta, "f").unwrap_err();
        assert_eq!(err.to_string(), "metadata `f` is 16.5, not an integer");
    }
}
