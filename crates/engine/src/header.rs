//! Strict parsing and validation of one safetensors header.
//!
//! The header is parsed by a hand-written serde visitor rather than into a map, because
//! serde_json keeps the last of duplicate keys silently and a strict reader must reject
//! them; the visitor also builds the tensor list in file order with one allocation per
//! name and shape. Semantic failures found inside the visitor are parked in
//! [`ParseState::failure`] (serde errors are strings) and surfaced as typed kinds.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;

use safeshift_model::{DType, TensorInfo};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::error::ReadErrorKind;

/// Bounds the reader enforces on hostile files. [`Limits::default`] is what
/// [`Checkpoint::open`](crate::Checkpoint::open) uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest header length accepted: 100,000,000 bytes, the bound of the format.
    pub max_header_len: u64,
    /// Most tensors in one file: 1,000,000 (about a 50 MB header of short entries).
    pub max_tensors: usize,
    /// Longest tensor name in bytes: 4,096.
    pub max_name_len: usize,
    /// Most axes in one shape: 64.
    pub max_rank: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_header_len: 100_000_000, max_tensors: 1_000_000, max_name_len: 4096, max_rank: 64 }
    }
}

/// A validated header: tensors in file order, their byte ranges in the data section,
/// the metadata.
#[derive(Debug)]
pub(crate) struct Header {
    pub tensors: Vec<TensorInfo>,
    /// `(start, end)` in the data section, parallel to `tensors`.
    pub offsets: Vec<(u64, u64)>,
    pub metadata: BTreeMap<String, String>,
}

/// Where an error inside the visitor happened, for typing serde's data errors.
#[derive(Default)]
enum Context {
    #[default]
    Top,
    Metadata,
    Tensor {
        name: String,
        field: Option<&'static str>,
    },
}

struct ParseState<'l> {
    limits: &'l Limits,
    failure: RefCell<Option<ReadErrorKind>>,
    context: RefCell<Context>,
}

impl ParseState<'_> {
    /// Parks a typed failure and returns the serde error that stops parsing.
    fn fail<E: de::Error>(&self, kind: ReadErrorKind) -> E {
        let message = kind.to_string();
        *self.failure.borrow_mut() = Some(kind);
        E::custom(message)
    }
}

/// Parses and validates `json` (the header bytes after the length prefix, not yet known
/// to be UTF-8) against a data section of `data_len` bytes.
pub(crate) fn parse(json: &[u8], data_len: u64, limits: &Limits) -> Result<Header, ReadErrorKind> {
    const PREFIX_LEN: u64 = 8;
    if let Err(err) = std::str::from_utf8(json) {
        return Err(ReadErrorKind::HeaderNotUtf8 { offset: PREFIX_LEN + err.valid_up_to() as u64 });
    }
    let state = ParseState { limits, failure: RefCell::new(None), context: RefCell::new(Context::Top) };
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let parsed = de::Deserializer::deserialize_map(&mut deserializer, HeaderVisitor { state: &state })
        .and_then(|parsed| deserializer.end().map(|()| parsed));
    let (tensors, offsets, metadata) = match parsed {
        Ok(parsed) => parsed,
        Err(err) => return Err(classify(err, state)),
    };
    // Duplicates first: a repeated name would otherwise show as overlapping offsets.
    // Names must be unique (the checkpoint indexes them again with its extras).
    index_by_name(&tensors)?;
    let header = Header { tensors, offsets, metadata: metadata.unwrap_or_default() };
    validate(&header, data_len)?;
    Ok(header)
}

fn classify(err: serde_json::Error, state: ParseState<'_>) -> ReadErrorKind {
    if let Some(kind) = state.failure.into_inner() {
        return kind;
    }
    let message = err.to_string();
    if !err.is_data() {
        return ReadErrorKind::HeaderNotJson { message };
    }
    match state.context.into_inner() {
        Context::Top => ReadErrorKind::HeaderNotObject { message },
        Context::Metadata => ReadErrorKind::BadMetadata { message },
        Context::Tensor { name, field } => ReadErrorKind::BadField { tensor: name, field, message },
    }
}

/// The checks that need the whole header: byte counts, offsets contiguous from 0 in
/// offset order, the data section exactly covered, and unique names.
fn validate(header: &Header, data_len: u64) -> Result<(), ReadErrorKind> {
    for (info, &(start, end)) in header.tensors.iter().zip(&header.offsets) {
        let expected = byte_len(info)?;
        if end > data_len {
            return Err(ReadErrorKind::OffsetsOutOfBounds { tensor: info.name.clone(), end, data_len });
        }
        if end - start != expected {
            return Err(ReadErrorKind::ByteCountMismatch { tensor: info.name.clone(), expected, found: end - start });
        }
    }
    let mut by_offset: Vec<u32> = (0..header.tensors.len() as u32).collect();
    by_offset.sort_unstable_by_key(|&index| header.offsets[index as usize]);
    let mut expected = 0u64;
    let mut previous: Option<u32> = None;
    for &index in &by_offset {
        let (start, end) = header.offsets[index as usize];
        let name = || header.tensors[index as usize].name.clone();
        if start > expected {
            return Err(ReadErrorKind::OffsetsHole { tensor: name(), expected, found: start });
        }
        if start < expected {
            let previous = previous.map(|p| header.tensors[p as usize].name.clone()).unwrap_or_default();
            return Err(ReadErrorKind::OffsetsOverlap { tensor: name(), previous, expected, found: start });
        }
        expected = end;
        if end > start {
            previous = Some(index);
        }
    }
    if expected != data_len {
        return Err(ReadErrorKind::TrailingBytes { extra: data_len - expected, offset: expected });
    }
    Ok(())
}

/// The byte length of a tensor, or the kind saying why it has none.
pub(crate) fn byte_len(info: &TensorInfo) -> Result<u64, ReadErrorKind> {
    let overflow = || ReadErrorKind::ShapeOverflow { tensor: info.name.clone(), shape: info.shape.clone() };
    let numel = info.numel().ok_or_else(overflow)?;
    let bits = numel.checked_mul(info.dtype.bits() as u64).ok_or_else(overflow)?;
    if bits % 8 != 0 {
        let dtype = info.dtype.safetensors_name();
        return Err(ReadErrorKind::PartialByte { tensor: info.name.clone(), numel, dtype });
    }
    Ok(bits / 8)
}

/// Sorts tensor indices by name; two equal names are a duplicate key.
pub(crate) fn index_by_name(tensors: &[TensorInfo]) -> Result<Vec<u32>, ReadErrorKind> {
    let mut by_name: Vec<u32> = (0..tensors.len() as u32).collect();
    by_name.sort_unstable_by(|&a, &b| tensors[a as usize].name.cmp(&tensors[b as usize].name));
    for pair in by_name.windows(2) {
        let name = &tensors[pair[0] as usize].name;
        if *name == tensors[pair[1] as usize].name {
            return Err(ReadErrorKind::DuplicateKey { key: name.clone(), within: None });
        }
    }
    Ok(by_name)
}

type Parsed = (Vec<TensorInfo>, Vec<(u64, u64)>, Option<BTreeMap<String, String>>);

struct HeaderVisitor<'s, 'l> {
    state: &'s ParseState<'l>,
}

impl<'de> Visitor<'de> for HeaderVisitor<'_, '_> {
    type Value = Parsed;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of tensors")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed, A::Error> {
        let state = self.state;
        let mut tensors = Vec::new();
        let mut offsets = Vec::new();
        let mut metadata = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "__metadata__" {
                if metadata.is_some() {
                    return Err(state.fail(ReadErrorKind::DuplicateKey { key, within: None }));
                }
                *state.context.borrow_mut() = Context::Metadata;
                metadata = Some(map.next_value_seed(MetadataSeed { state })?);
                continue;
            }
            if tensors.len() >= state.limits.max_tensors {
                return Err(state.fail(ReadErrorKind::TooManyTensors { limit: state.limits.max_tensors }));
            }
            if key.len() > state.limits.max_name_len {
                let prefix = key.chars().take(64).collect();
                let limit = state.limits.max_name_len;
                return Err(state.fail(ReadErrorKind::NameTooLong { prefix, len: key.len(), limit }));
            }
            match map.next_value_seed(EntrySeed { state, name: &key }) {
                Ok((dtype, shape, range)) => {
                    tensors.push(TensorInfo { name: key, dtype, shape });
                    offsets.push(range);
                }
                Err(err) => {
                    let mut context = state.context.borrow_mut();
                    let field = match &*context {
                        Context::Tensor { field, .. } => *field,
                        _ => None,
                    };
                    *context = Context::Tensor { name: key, field };
                    return Err(err);
                }
            }
        }
        Ok((tensors, offsets, metadata))
    }
}

struct MetadataSeed<'s, 'l> {
    state: &'s ParseState<'l>,
}

impl<'de> DeserializeSeed<'de> for MetadataSeed<'_, '_> {
    type Value = BTreeMap<String, String>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MetadataSeed<'_, '_> {
    type Value = BTreeMap<String, String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of strings")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut metadata = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let value: String = map.next_value()?;
            if metadata.contains_key(&key) {
                let within = Some("__metadata__".to_owned());
                return Err(self.state.fail(ReadErrorKind::DuplicateKey { key, within }));
            }
            metadata.insert(key, value);
        }
        *self.state.context.borrow_mut() = Context::Top;
        Ok(metadata)
    }
}

struct EntrySeed<'s, 'l, 'n> {
    state: &'s ParseState<'l>,
    name: &'n str,
}

type Entry = (DType, Vec<u64>, (u64, u64));

impl<'de> DeserializeSeed<'de> for EntrySeed<'_, '_, '_> {
    type Value = Entry;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Entry, D::Error> {
        deserializer.deserialize_map(self)
    }
}

/// The fields of a tensor entry.
enum Field {
    DType,
    Shape,
    Offsets,
    Unknown(String),
}

struct FieldSeed;

impl<'de> DeserializeSeed<'de> for FieldSeed {
    type Value = Field;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Field, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for FieldSeed {
    type Value = Field;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Field, E> {
        Ok(match value {
            "dtype" => Field::DType,
            "shape" => Field::Shape,
            "data_offsets" => Field::Offsets,
            other => Field::Unknown(other.to_owned()),
        })
    }
}

impl<'de> Visitor<'de> for EntrySeed<'_, '_, '_> {
    type Value = Entry;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object with `dtype`, `shape` and `data_offsets`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entry, A::Error> {
        let state = self.state;
        let tensor = || self.name.to_owned();
        let (mut dtype, mut shape, mut offsets) = (None, None, None);
        while let Some(field) = map.next_key_seed(FieldSeed)? {
            let (name, seen) = match field {
                Field::DType => ("dtype", dtype.is_some()),
                Field::Shape => ("shape", shape.is_some()),
                Field::Offsets => ("data_offsets", offsets.is_some()),
                Field::Unknown(field) => {
                    return Err(state.fail(ReadErrorKind::UnknownField { tensor: tensor(), field }));
                }
            };
            if seen {
                let within = Some(tensor());
                return Err(state.fail(ReadErrorKind::DuplicateKey { key: name.to_owned(), within }));
            }
            *state.context.borrow_mut() = Context::Tensor { name: String::new(), field: Some(name) };
            match field {
                Field::DType => {
                    let text: String = map.next_value()?;
                    match DType::from_safetensors_name(&text) {
                        Some(parsed) => dtype = Some(parsed),
                        None => {
                            return Err(state.fail(ReadErrorKind::UnknownDType { tensor: tensor(), dtype: text }));
                        }
                    }
                }
                Field::Shape => shape = Some(map.next_value_seed(ShapeSeed { state, name: self.name })?),
                Field::Offsets => {
                    let parsed = map.next_value_seed(OffsetsSeed)?;
                    match parsed {
                        Ok((start, end)) if start <= end => offsets = Some((start, end)),
                        Ok((start, end)) => {
                            let message = format!("start {start} is after end {end}");
                            return Err(state.fail(ReadErrorKind::BadOffsets { tensor: tensor(), message }));
                        }
                        Err(message) => {
                            return Err(state.fail(ReadErrorKind::BadOffsets { tensor: tensor(), message }));
                        }
                    }
                }
                Field::Unknown(_) => unreachable!("unknown fields return above"),
            }
            *state.context.borrow_mut() = Context::Top;
        }
        let missing = |field| state.fail(ReadErrorKind::MissingField { tensor: tensor(), field });
        let dtype = dtype.ok_or_else(|| missing("dtype"))?;
        let shape = shape.ok_or_else(|| missing("shape"))?;
        let offsets = offsets.ok_or_else(|| missing("data_offsets"))?;
        Ok((dtype, shape, offsets))
    }
}

struct ShapeSeed<'s, 'l, 'n> {
    state: &'s ParseState<'l>,
    name: &'n str,
}

impl<'de> DeserializeSeed<'de> for ShapeSeed<'_, '_, '_> {
    type Value = Vec<u64>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Vec<u64>, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ShapeSeed<'_, '_, '_> {
    type Value = Vec<u64>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of unsigned integers")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u64>, A::Error> {
        let mut shape = Vec::new();
        while let Some(dim) = seq.next_element::<u64>()? {
            if shape.len() == self.state.limits.max_rank {
                let limit = self.state.limits.max_rank;
                return Err(self.state.fail(ReadErrorKind::RankTooLarge { tensor: self.name.to_owned(), limit }));
            }
            shape.push(dim);
        }
        Ok(shape)
    }
}

struct OffsetsSeed;

impl<'de> DeserializeSeed<'de> for OffsetsSeed {
    type Value = Result<(u64, u64), String>;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for OffsetsSeed {
    type Value = Result<(u64, u64), String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array `[start, end]` of two unsigned integers")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let Some(start) = seq.next_element::<u64>()? else {
            return Ok(Err("expected `[start, end]`, found `[]`".to_owned()));
        };
        let Some(end) = seq.next_element::<u64>()? else {
            return Ok(Err("expected `[start, end]`, found one number".to_owned()));
        };
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Ok(Err("expected `[start, end]`, found more than two numbers".to_owned()));
        }
        Ok(Ok((start, end)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str, data_len: u64) -> Result<Header, ReadErrorKind> {
        parse(json.as_bytes(), data_len, &Limits::default())
    }

    #[test]
    fn accepts_any_offset_order_and_padding() {
        let json = r#"{"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]},"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"__metadata__":{"k":"v"}}   "#;
        let header = check(json, 12).unwrap();
        assert_eq!(header.tensors[0].name, "b");
        assert_eq!(header.offsets, vec![(4, 12), (0, 4)]);
        assert_eq!(header.metadata["k"], "v");
    }

    #[test]
    fn zero_sized_tensors_share_offsets() {
        let json = r#"{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]},"c":{"dtype":"F64","shape":[],"data_offsets":[0,8]}}"#;
        assert_eq!(check(json, 8).unwrap().tensors.len(), 3);
    }

    #[test]
    fn nested_errors_are_typed() {
        let bad_shape = r#"{"a":{"dtype":"F32","shape":["x"],"data_offsets":[0,0]}}"#;
        assert!(matches!(
            check(bad_shape, 0),
            Err(ReadErrorKind::BadField { ref tensor, field: Some("shape"), .. }) if tensor == "a"
        ));
        let not_entry = r#"{"a":3}"#;
        assert!(matches!(check(not_entry, 0), Err(ReadErrorKind::BadField { field: None, .. })));
        let escaped_field = r#"{"a":{"dt\u0079pe":"F32","shape":[],"data_offsets":[0,4]}}"#;
        assert!(check(escaped_field, 4).is_ok());
    }
}
