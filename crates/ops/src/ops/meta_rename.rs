//! ## `meta-rename`
//!
//! ```safeshift
//! meta-rename "OLD" -> "NEW" [optional]
//! meta-rename "KEY" at "OLD.path" -> "NEW.path" [optional]
//! ```
//!
//! Renames a `__metadata__` key, keeping its value. A missing `OLD` is an error unless
//! `optional`; an existing `NEW` is an error. With `at`, moves a value inside the JSON the
//! key holds from one dotted path to another (creating objects on the way): moving
//! `supporting_arrays_paths` to `supporting_arrays_paths.data` wraps it in an object.
//!
//! * **Shape rule:** tensors unchanged.
//! * **Inverse:** rename back.
//! * **Lossy:** no.
//!
//! ```safeshift
//! meta-rename "anemoi_version" -> "anemoi.models.version"
//! meta-rename "anemoi" at "supporting_arrays_paths" -> "supporting_arrays_paths.data"
//! ```

use std::collections::BTreeMap;

use super::metadata::{delete_at, get_at, lower_key, lower_path, set_at};
use crate::lower::Operands;
use crate::operation::{Entries, NoInverse, OpBase, OpError, OpErrorKind, Operation, Structural};
use crate::tensor_set::{OpContext, TensorSet};

/// `meta-rename "A" -> "B"`.
#[derive(Clone, Debug)]
pub(crate) struct MetaRename {
    base: OpBase,
    from: String,
    to: String,
    /// With `at`: `from` and `to` are JSON paths inside this key's value.
    key: Option<String>,
    optional: bool,
}

pub(crate) fn lower(operands: &mut Operands<'_>) -> Option<Box<dyn Operation>> {
    let key = lower_key(operands);
    let path = lower_path(operands);
    let to = operands.arrow_one().and_then(|target| match target.as_literal() {
        Some(key) => Some(key.to_owned()),
        None => {
            operands.error("bad-value", "a metadata key cannot hold captures", target.span);
            None
        }
    });
    let optional = operands.flag("optional").is_some();
    let base = operands.base("meta-rename");
    let (key, path, to) = (key?, path?, to?);
    match path {
        None => Some(Box::new(MetaRename { base, from: key, to, key: None, optional })),
        Some(path) => Some(Box::new(MetaRename { base, from: path.join("."), to, key: Some(key), optional })),
    }
}

impl Structural for MetaRename {
    fn base(&self) -> &OpBase {
        &self.base
    }

    fn edit<V: Clone>(&self, set: Entries<'_, V>, _ctx: &OpContext) -> Result<(), OpError> {
        let metadata = set.metadata;
        if let Some(key) = &self.key {
            return self.run_at(metadata, key).map_err(|kind| self.base.error(Some(key), kind));
        }
        if !metadata.contains_key(&self.from) {
            if self.optional {
                return Ok(());
            }
            let message = format!("metadata key `{}` does not exist", self.from);
            return Err(self.base.error(Some(&self.from), OpErrorKind::Metadata { message }));
        }
        if metadata.contains_key(&self.to) {
            let message = format!("metadata key `{}` already exists", self.to);
            return Err(self.base.error(Some(&self.to), OpErrorKind::Metadata { message }));
        }
        let value = metadata.remove(&self.from).expect("checked above");
        metadata.insert(self.to.clone(), value);
        Ok(())
    }

    fn inverse(&self, _before: &TensorSet, _ctx: &OpContext) -> Result<Vec<Box<dyn Operation>>, NoInverse> {
        let back = MetaRename { from: self.to.clone(), to: self.from.clone(), optional: true, ..self.clone() };
        Ok(vec![Box::new(back)])
    }
}

impl MetaRename {
    /// Moves the JSON value at `from` to `to` inside the value of `key`.
    fn run_at(&self, metadata: &mut BTreeMap<String, String>, key: &str) -> Result<(), OpErrorKind> {
        let split = |path: &str| path.split('.').map(str::to_owned).collect::<Vec<_>>();
        let (from, to) = (split(&self.from), split(&self.to));
        let value = if metadata.contains_key(key) { get_at(metadata, key, &from)? } else { None };
        let Some(value) = value else {
            if self.optional {
                return Ok(());
            }
            return Err(OpErrorKind::Metadata { message: format!("no `{}` in metadata key `{key}`", self.from) });
        };
        // Wrapping into (or unwrapping from) a deeper path replaces the value where it is,
        // so the document keeps its order and a move and its inverse give the same text.
        if let Some(rest) = to.strip_prefix(from.as_slice()).filter(|rest| !rest.is_empty()) {
            let wrapped =
                rest.iter().rev().fold(value, |inner, segment| serde_json::json!({ segment.as_str(): inner }));
            return set_at(metadata, key, &from, wrapped);
        }
        if from.starts_with(&to) {
            return set_at(metadata, key, &to, value);
        }
        delete_at(metadata, key, &from)?;
        set_at(metadata, key, &to, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::*;
    use crate::tensor_set::EagerSet;

    #[test]
    fn renames_and_back() {
        let op = lower_ok(op("meta-rename", vec![pats(&["a"]), arrow(&["b"])]));
        let mut set = EagerSet::new();
        set.metadata.insert("a".into(), "1".into());
        check_round_trip(&*op, &set, &OpContext::default());
        op.eager(&mut set, &OpContext::default()).unwrap();
        assert_eq!(set.metadata.get("b").map(String::as_str), Some("1"));
        let err = op.eager(&mut set, &OpContext::default()).unwrap_err();
        assert_eq!(err.to_string(), "`meta-rename` on `a`: metadata key `a` does not exist");
    }

    #[test]
    fn moves_a_json_value_into_an_object_and_back() {
        let op = lower_text(r#"meta-rename "anemoi" at "arrays" -> "arrays.data""#);
        let mut set = EagerSet::new();
        set.metadata.insert("anemoi".into(), r#"{"arrays":{"lat":1},"seed":2}"#.into());
        check_round_trip(&*op, &set, &OpContext::default());
        op.eager(&mut set, &OpContext::default()).unwrap();
        assert_eq!(set.metadata["anemoi"], r#"{"arrays":{"data":{"lat":1}},"seed":2}"#);
        let absent = lower_text(r#"meta-rename "anemoi" at "none" -> "none.data" optional"#);
        check_round_trip(&*absent, &set, &OpContext::default());
    }
}
