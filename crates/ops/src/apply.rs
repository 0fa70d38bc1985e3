//! Applying a migration's operations to a set, in order: what compiling a plan does for
//! each step. A run of consecutive renames (a migration that renames every family of a
//! model has a dozen) is applied in one pass over the names (`rename::apply_run`); every
//! other operation, and a run the pass cannot vouch for, is applied on its own.
//!
//! The property test at the bottom takes its case count from `PROPTEST_CASES`.

use crate::operation::{OpError, Operation};
use crate::ops::rename::{self, Rename};
use crate::tensor_set::{OpContext, TensorSet};

/// Applies `ops` to `set` in order: the same result, or the same first error, as calling
/// [`Operation::apply`] for each.
pub fn apply_all(ops: &[Box<dyn Operation>], set: &mut TensorSet, ctx: &OpContext) -> Result<(), OpError> {
    let mut rest = ops;
    while let Some(first) = rest.first() {
        let run: Vec<&Rename> = rest.iter().map_while(|op| op.as_any().downcast_ref::<Rename>()).collect();
        if run.is_empty() {
            first.apply(set, ctx)?;
            rest = &rest[1..];
            continue;
        }
        let (renames, after) = rest.split_at(run.len());
        if !rename::apply_run(&run, &mut set.tensors, ctx) {
            // One by one, for the error (or a result the one pass could not vouch for).
            for op in renames {
                op.apply(set, ctx)?;
            }
        }
        rest = after;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use safeshift_model::{DType, DTypeClass, Sym};

    use super::*;
    use crate::ops::testing::{arrow, arrow_pattern, flag, index_target, lower_ok, op, pats};
    use crate::tensor_set::TensorValue;

    /// A rename over names built from a small alphabet, so that renames chain (one's target
    /// is another's source), collide and match nothing often.
    fn rename_op() -> impl Strategy<Value = Box<dyn Operation>> {
        let patterns = ["a.{x}", "b.{x}", "a.1", "b.2", "c", "{x}.1", "proc.{c}.blocks.{j}.{rest}", "zzz"];
        let targets = ["b.{x}", "c.{x}", "a.{x}", "c", "a.1", "d.{x}.e", "{x}.2", "b.{y}"];
        // Mostly optional: a rename that must match and does not stops the run at once.
        (0..patterns.len(), 0..targets.len(), proptest::bool::weighted(0.7), 0..8usize).prop_map(
            move |(source, target, optional, arithmetic)| {
                let mut operands = vec![pats(&[patterns[source]])];
                // Index arithmetic in the target, which needs the `blocks` dim.
                operands.push(if arithmetic == 0 { arrow_pattern(index_target()) } else { arrow(&[targets[target]]) });
                if optional {
                    operands.push(flag("optional"));
                }
                lower_ok(op("rename", operands))
            },
        )
    }

    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a.1".to_owned()),
            Just("a.2".to_owned()),
            Just("b.1".to_owned()),
            Just("b.2".to_owned()),
            Just("c".to_owned()),
            Just("c.1".to_owned()),
            Just("proc.1.blocks.0.w".to_owned()),
            Just("proc.0.blocks.1.w".to_owned()),
            "[a-d]\\.[0-2]",
        ]
    }

    proptest! {
        /// Whatever the renames and the set, applying them as a run gives the set, or the
        /// error, that applying them one by one gives.
        #[test]
        fn a_run_of_renames_agrees_with_one_by_one(
            names in proptest::collection::vec(name(), 0..8),
            renames in proptest::collection::vec(rename_op(), 1..5),
            blocks in proptest::option::of(1i64..3),
        ) {
            let mut set = TensorSet::new();
            for (index, name) in names.iter().enumerate() {
                // `insert` would replace a repeated name: a set read from a file may repeat one.
                let value = TensorValue::source(name, DTypeClass::Exact(DType::F32), vec![Sym::int(index as i64)]);
                set.tensors.push((name.clone(), value));
            }
            let mut ctx = OpContext::default();
            if let Some(blocks) = blocks {
                ctx.dims.insert("blocks".to_owned(), Sym::int(blocks));
            }
            let (mut run, mut one_by_one) = (set.clone(), set);
            let run_result = apply_all(&renames, &mut run, &ctx);
            let one_by_one_result = renames.iter().try_for_each(|op| op.apply(&mut one_by_one, &ctx));
            prop_assert_eq!(&run_result, &one_by_one_result);
            if one_by_one_result.is_ok() {
                prop_assert_eq!(run, one_by_one);
            }
        }
    }
}
