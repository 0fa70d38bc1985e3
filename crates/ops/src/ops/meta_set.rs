//! ## `meta-set`
//!
//! ```safeshift
//! meta-set "KEY" [at "json.path"] = JSON
//! ```
//!
//! Sets a `__metadata__` entry. Without `at`, the entry becomes the value (a JSON string
//! is stored as its plain text, anything else as compact JSON). With `at`, the entry is
//! parsed as JSON and the value is set at the dotted path inside it (objects are created
//! along the way; numeric segments index arrays).
//!
//! * **Shape rule:** tensors unchanged.
//! * **Inverse:** none (write a `down` block).
//! * **Lossy:** no.
//!
//! ```safeshift
//! meta-set "anemoi.models.version" = "0.5.0"
//! meta-set "config" at "model.processor.num_heads" = 16
//! ```

use serde_json::Value as JsonValue;

use super::metadata::{json_of, lower_key, lower_path, set_at, stored_text};
use crate::lower::Operands;
use crate::operation::{Entries, NoInverse, OpBase, OpError, Operation, Structural};
use crate::tensor_set::{OpContext, TensorSet};

/// `meta-set "KEY" [at "path"] = JSON`.
#[derive(Clone, Debug)]
pub(crate) struct MetaSet {
    base: OpBase,
    key: String,
    path: Option<Vec<String>>,
    value: JsonValue,
}

pub(crate) fn lower(operands: &mut Operands<'_>) -> Option<Box<dyn Operation>> {
    let key = lower_key(operands);
    let path = lower_path(operands);
    let value = match operands.assign() {
        Some((value, span)) => {
            let json = json_of(value);
            if json.is_none() {
                operands.error("bad-value", "`=` takes a JSON value", span);
            }
            json
        }
        None => {
            let span = operands.base("meta-set").span;
            operands.error_with_hint(
                "missing-operand",
                "`meta-set` needs a value",
                span,
                "write `= \"text\"` or `= 16`",
            );
            None
        }
    };
    let base = operands.base("meta-set");
    Some(Box::new(MetaSet { base, key: key?, path: path?, value: value? }))
}

impl Structural for MetaSet {
    fn base(&self) -> &OpBase {
        &self.base
    }

    fn edit<V: Clone>(&self, set: Entries<'_, V>, _ctx: &OpContext) -> Result<(), OpError> {
        match &self.path {
            None => {
                set.metadata.insert(self.key.clone(), stored_text(&self.value));
                Ok(())
            }
            Some(path) => set_at(set.metadata, &self.key, path, self.value.clone())
                .map_err(|kind| self.base.error(Some(&self.key), kind)),
        }
    }

    fn inverse(&self, _before: &TensorSet, _ctx: &OpContext) -> Result<Vec<Box<dyn Operation>>, NoInverse> {
        Err(self.base.no_inverse("the old value is not recorded; write a `down` block"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::*;
    use crate::tensor_set::EagerSet;
    use safeshift_dsl::ast::Value;

    #[test]
    fn sets_plain_and_nested_values() {
        let mut set = EagerSet::new();
        set.metadata.insert("config".into(), r#"{"model":{"heads":8},"list":[1,2]}"#.into());
        lower_ok(op("meta-set", vec![pats(&["version"]), assign(json_string("0.5.0"))]))
            .eager(&mut set, &OpContext::default())
            .unwrap();
        lower_ok(op(
            "meta-set",
            vec![pats(&["config"]), clause("at", json_string("model.heads")), assign(Value::Expr(int(16)))],
        ))
        .eager(&mut set, &OpContext::default())
        .unwrap();
        lower_ok(op(
            "meta-set",
            vec![pats(&["config"]), clause("at", json_string("list.1")), assign(Value::Expr(ident("true")))],
        ))
        .eager(&mut set, &OpContext::default())
        .unwrap();
        assert_eq!(set.metadata["version"], "0.5.0");
        assert_eq!(set.metadata["config"], r#"{"model":{"heads":16},"list":[1,true]}"#);
        check_lazy_eager(
            &*lower_ok(op("meta-set", vec![pats(&["v"]), assign(Value::Expr(int(3)))])),
            &set,
            &OpContext::default(),
        );
    }

    #[test]
    fn non_json_value_is_an_error() {
        let mut set = EagerSet::new();
        set.metadata.insert("config".into(), "not json".into());
        let op = lower_ok(op(
            "meta-set",
            vec![pats(&["config"]), clause("at", json_string("a")), assign(Value::Expr(int(1)))],
        ));
        let err = op.eager(&mut set, &OpContext::default()).unwrap_err();
        assert!(
            err.to_string().starts_with("`meta-set` on `config`: metadata key `config` does not hold JSON"),
            "{err}"
        );
    }
}
