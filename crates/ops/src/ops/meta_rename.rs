//! ## `meta-rename`
//!
//! ```safeshift
//! meta-rename "OLD" -> "NEW" [optional]
//! ```
//!
//! Renames a `__metadata__` key, keeping its value. A missing `OLD` is an error unless
//! `optional`; an existing `NEW` is an error.
//!
//! * **Shape rule:** tensors unchanged.
//! * **Inverse:** rename back.
//! * **Lossy:** no.
//!
//! ```safeshift
//! meta-rename "anemoi_version" -> "anemoi.models.version"
//! ```

use std::collections::BTreeMap;

use safeshift_dsl::ast::Span;

use super::metadata::lower_key;
use crate::lower::Operands;
use crate::operation::{NoInverse, OpBase, OpError, OpErrorKind, Operation};
use crate::tensor_set::{EagerSet, OpContext, TensorSet};

/// `meta-rename "A" -> "B"`.
#[derive(Clone, Debug)]
pub(crate) struct MetaRename {
    base: OpBase,
    from: String,
    to: String,
    optional: bool,
}

pub(crate) fn lower(operands: &mut Operands<'_>) -> Option<Box<dyn Operation>> {
    let from = lower_key(operands);
    let to = operands.arrow_one().and_then(|target| match target.as_literal() {
        Some(key) => Some(key.to_owned()),
        None => {
            operands.error("bad-value", "a metadata key cannot hold captures", target.span);
            None
        }
    });
    let optional = operands.flag("optional").is_some();
    let base = operands.base("meta-rename");
    Some(Box::new(MetaRename { base, from: from?, to: to?, optional }))
}

impl MetaRename {
    fn run(&self, metadata: &mut BTreeMap<String, String>) -> Result<(), OpError> {
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
}

impl Operation for MetaRename {
    fn name(&self) -> &'static str {
        self.base.name
    }

    fn span(&self) -> Span {
        self.base.span
    }

    fn lossy(&self) -> bool {
        false
    }

    fn apply(&self, set: &mut TensorSet, _ctx: &OpContext) -> Result<(), OpError> {
        self.run(&mut set.metadata)
    }

    fn eager(&self, set: &mut EagerSet, _ctx: &OpContext) -> Result<(), OpError> {
        self.run(&mut set.metadata)
    }

    fn inverse(&self, _before: &TensorSet, _ctx: &OpContext) -> Result<Vec<Box<dyn Operation>>, NoInverse> {
        Ok(vec![Box::new(MetaRename { base: self.base, from: self.to.clone(), to: self.from.clone(), optional: true })])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::*;

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
}
