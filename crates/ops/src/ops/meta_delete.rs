//! ## `meta-delete`
//!
//! ```safeshift
//! meta-delete "KEY" [at "json.path"] (lossy | derived) [optional]
//! ```
//!
//! Deletes a `__metadata__` entry, or with `at` the value at a dotted path inside the JSON
//! it holds. A missing key or path is an error unless `optional`.
//!
//! * **Shape rule:** tensors unchanged.
//! * **Inverse:** none.
//! * **Lossy:** with `lossy` (`derived`: the value is recomputed elsewhere).
//!
//! ```safeshift
//! meta-delete "config" at "training.seed" lossy
//! ```

use super::metadata::{delete_at, lower_key, lower_path};
use crate::lower::Operands;
use crate::operation::{Entries, NoInverse, OpBase, OpError, OpErrorKind, Operation, Structural};
use crate::tensor_set::{OpContext, TensorSet};

/// `meta-delete "KEY" [at "path"]`.
#[derive(Clone, Debug)]
pub(crate) struct MetaDelete {
    base: OpBase,
    key: String,
    path: Option<Vec<String>>,
    lossy: bool,
    optional: bool,
}

pub(crate) fn lower(operands: &mut Operands<'_>) -> Option<Box<dyn Operation>> {
    let key = lower_key(operands);
    let path = lower_path(operands);
    let lossy = operands.lossy_or_derived();
    let optional = operands.flag("optional").is_some();
    let base = operands.base("meta-delete");
    Some(Box::new(MetaDelete { base, key: key?, path: path?, lossy: lossy?, optional }))
}

impl Structural for MetaDelete {
    fn base(&self) -> &OpBase {
        &self.base
    }

    fn lossy(&self) -> bool {
        self.lossy
    }

    fn edit<V: Clone>(&self, set: Entries<'_, V>, _ctx: &OpContext) -> Result<(), OpError> {
        let metadata = set.metadata;
        let fail = |message: String| self.base.error(Some(&self.key), OpErrorKind::Metadata { message });
        if !metadata.contains_key(&self.key) {
            return if self.optional {
                Ok(())
            } else {
                Err(fail(format!("metadata key `{}` does not exist", self.key)))
            };
        }
        match &self.path {
            None => {
                metadata.remove(&self.key);
                Ok(())
            }
            Some(path) => match delete_at(metadata, &self.key, path) {
                Ok(true) => Ok(()),
                Ok(false) if self.optional => Ok(()),
                Ok(false) => Err(fail(format!("`{}` is not in metadata key `{}`", path.join("."), self.key))),
                Err(kind) => Err(self.base.error(Some(&self.key), kind)),
            },
        }
    }

    fn inverse(&self, _before: &TensorSet, _ctx: &OpContext) -> Result<Vec<Box<dyn Operation>>, NoInverse> {
        Err(self.base.no_inverse("the deleted value is not recorded; write a `down` block"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::*;
    use crate::tensor_set::EagerSet;

    #[test]
    fn deletes_keys_and_paths() {
        let mut set = EagerSet::new();
        set.metadata.insert("config".into(), r#"{"a":{"b":1,"c":2}}"#.into());
        set.metadata.insert("x".into(), "y".into());
        lower_ok(op("meta-delete", vec![pats(&["config"]), clause("at", json_string("a.b")), flag("lossy")]))
            .eager(&mut set, &OpContext::default())
            .unwrap();
        assert_eq!(set.metadata["config"], r#"{"a":{"c":2}}"#);
        let delete_x = lower_ok(op("meta-delete", vec![pats(&["x"]), flag("derived")]));
        check_lazy_eager(&*delete_x, &set, &OpContext::default());
        delete_x.eager(&mut set, &OpContext::default()).unwrap();
        assert!(!set.metadata.contains_key("x"));
        assert!(delete_x.eager(&mut set, &OpContext::default()).is_err());
        assert_eq!(codes(&lower_err(op("meta-delete", vec![pats(&["x"])]))), ["missing-lossy"]);
    }
}
