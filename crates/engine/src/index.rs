//! The index of a sharded checkpoint, as Hugging Face writes it:
//! `{"metadata": {...}, "weight_map": {"tensor": "model-00001-of-00002.safetensors", ...}}`.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};

use crate::error::ReadErrorKind;

/// A parsed index: shard file names in order of first appearance, and for each shard
/// the tensors the index puts there.
#[derive(Debug)]
pub(crate) struct Index {
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// `(shard file name, tensor names)` in order of first appearance in `weight_map`.
    pub shards: Vec<(String, Vec<String>)>,
}

/// Parses an index file's bytes.
pub(crate) fn parse(bytes: &[u8]) -> Result<Index, ReadErrorKind> {
    let failure = RefCell::new(None);
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed = de::Deserializer::deserialize_map(&mut deserializer, IndexVisitor { failure: &failure })
        .and_then(|index| deserializer.end().map(|()| index));
    match parsed {
        Ok(index) => Ok(index),
        Err(err) => Err(failure.into_inner().unwrap_or(ReadErrorKind::BadIndex { message: err.to_string() })),
    }
}

/// Whether `name` is a plain file name (no directory part, not `.`/`..`), so an index
/// can never make the reader open a file outside its own directory.
pub(crate) fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

struct IndexVisitor<'f> {
    failure: &'f RefCell<Option<ReadErrorKind>>,
}

impl<'de> Visitor<'de> for IndexVisitor<'_> {
    type Value = Index;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object with `weight_map`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Index, A::Error> {
        let mut metadata = None;
        let mut shards = None;
        let duplicate = |key: &str| {
            let kind = ReadErrorKind::DuplicateKey { key: key.to_owned(), within: None };
            let message = kind.to_string();
            *self.failure.borrow_mut() = Some(kind);
            de::Error::custom(message)
        };
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "metadata" => {
                    if metadata.is_some() {
                        return Err(duplicate(&key));
                    }
                    let value: Option<serde_json::Map<String, serde_json::Value>> = map.next_value()?;
                    metadata = Some(value.unwrap_or_default());
                }
                "weight_map" => {
                    if shards.is_some() {
                        return Err(duplicate(&key));
                    }
                    shards = Some(map.next_value_seed(WeightMapSeed { failure: self.failure })?);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let Some(shards) = shards else {
            return Err(de::Error::custom("missing `weight_map`"));
        };
        Ok(Index { metadata: metadata.unwrap_or_default(), shards })
    }
}

struct WeightMapSeed<'f> {
    failure: &'f RefCell<Option<ReadErrorKind>>,
}

impl<'de> DeserializeSeed<'de> for WeightMapSeed<'_> {
    type Value = Vec<(String, Vec<String>)>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for WeightMapSeed<'_> {
    type Value = Vec<(String, Vec<String>)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of tensor names to shard file names")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut shards: Vec<(String, Vec<String>)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        while let Some(tensor) = map.next_key::<String>()? {
            let shard: String = map.next_value()?;
            if !seen.insert(tensor.clone()) {
                let kind = ReadErrorKind::DuplicateKey { key: tensor, within: Some("weight_map".to_owned()) };
                let message = kind.to_string();
                *self.failure.borrow_mut() = Some(kind);
                return Err(de::Error::custom(message));
            }
            if !is_plain_file_name(&shard) {
                let kind = ReadErrorKind::BadShardName { shard };
                let message = kind.to_string();
                *self.failure.borrow_mut() = Some(kind);
                return Err(de::Error::custom(message));
            }
            // Indexes list few shards: a linear scan beats hashing here.
            match shards.iter_mut().find(|(name, _)| *name == shard) {
                Some((_, tensors)) => tensors.push(tensor),
                None => shards.push((shard, vec![tensor])),
            }
        }
        Ok(shards)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_by_shard_in_first_appearance_order() {
        let json = br#"{"metadata":{"total_size":12},"weight_map":{"b":"s2","a":"s1","c":"s2"}}"#;
        let index = parse(json).unwrap();
        assert_eq!(index.shards, vec![("s2".into(), vec!["b".into(), "c".into()]), ("s1".into(), vec!["a".into()])]);
        assert_eq!(index.metadata["total_size"], 12);
    }

    #[test]
    fn rejects_duplicates_and_escaping_names() {
        let dup = br#"{"weight_map":{"a":"s1","a":"s2"}}"#;
        assert!(matches!(parse(dup), Err(ReadErrorKind::DuplicateKey { .. })));
        let escape = br#"{"weight_map":{"a":"../etc/passwd"}}"#;
        assert!(matches!(parse(escape), Err(ReadErrorKind::BadShardName { .. })));
        assert!(matches!(parse(br#"{"metadata":{}}"#), Err(ReadErrorKind::BadIndex { .. })));
        assert!(matches!(parse(b"[]"), Err(ReadErrorKind::BadIndex { .. })));
    }
}
