//! Property tests of schemas and unification. Invariants:
//!
//! * `unify(schema, instantiate(schema, dims)) == Ok(dims)` (derived dims included) for
//!   schemas whose dims the shapes and counts determine;
//! * `unify` never panics, and its score stays in `0.0..=1.0`, on arbitrary layouts
//!   (hostile sizes included);
//! * a schema compares equal to its own symbolic instance;
//! * rendering and reading back gives the same schema.
//!
//! Case counts are modest by default; raise them with `PROPTEST_CASES=1000`.

use std::collections::BTreeMap;

use proptest::prelude::*;

use crate::testutil::strategies::{arb_layout, arb_schema_with_dims};
use crate::testutil::{dims, schema};
use crate::{compare_symbolic, instantiate, instantiate_symbolic, render_schema, unify};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn unify_recovers_the_dims_of_an_instance((text, values) in arb_schema_with_dims()) {
        let schema = schema(&text);
        let base: BTreeMap<String, i64> = values.iter().filter(|(name, _)| *name != "d").map(|(n, v)| (n.clone(), *v)).collect();
        let layout = instantiate(&schema, &base).unwrap();
        let found = unify(&schema, &layout, &BTreeMap::new());
        prop_assert_eq!(found.map(|m| m.dims), Ok(values), "{}", text);
    }

    #[test]
    fn unify_never_panics_on_arbitrary_layouts((text, _) in arb_schema_with_dims(), layout in arb_layout()) {
        let schema = schema(&text);
        if let Err(mismatch) = unify(&schema, &layout, &dims(&[("f0", 3)])) {
            let score = mismatch.score();
            prop_assert!((0.0..=1.0).contains(&score), "{}", score);
            let _ = mismatch.to_string();
        }
    }

    #[test]
    fn a_schema_matches_its_symbolic_instance((text, values) in arb_schema_with_dims()) {
        let schema = schema(&text);
        let counts: BTreeMap<String, i64> = values.into_iter().filter(|(name, _)| name.starts_with('n')).collect();
        // Symbolic names need only the counts; shapes stay over f0, m, ….
        let tensors = instantiate_symbolic(&schema, &counts).unwrap();
        prop_assert_eq!(compare_symbolic(&schema, &tensors, &counts), vec![]);
    }

    #[test]
    fn render_reads_back((text, _) in arb_schema_with_dims()) {
        let schema = schema(&text);
        let rendered = render_schema(&schema);
        prop_assert_eq!(render_schema(&crate::testutil::schema(&rendered)), rendered);
    }
}

proptest! {
    #![proptest_config(config())]

    /// Dropping one tensor of an instance is noticed exactly when the tensor is required.
    #[test]
    fn dropping_a_required_tensor_is_noticed((text, values) in arb_schema_with_dims(), pick in any::<prop::sample::Index>()) {
        let schema = schema(&text);
        let base: BTreeMap<String, i64> = values.iter().filter(|(name, _)| *name != "d").map(|(n, v)| (n.clone(), *v)).collect();
        let mut layout = instantiate(&schema, &base).unwrap();
        prop_assume!(!layout.tensors.is_empty());
        let dropped = layout.tensors.remove(pick.index(layout.tensors.len()));
        let owner = schema.tensors.iter().find(|def| crate::pattern::match_name(&def.pattern, &dropped.name).is_some()).unwrap();
        let found = unify(&schema, &layout, &BTreeMap::new());
        if owner.optional {
            prop_assert_eq!(found.map(|m| m.dims), Ok(values));
        } else {
            // Dropping the last index of the only family counting a dim just makes the
            // count smaller: that cannot be told from a shorter model, but the dims differ.
            let mismatch = match found {
                Ok(found) => {
                    prop_assert_ne!(found.dims, values, "dropped {}", dropped.name);
                    return Ok(());
                }
                Err(mismatch) => mismatch,
            };
            // A family left empty is missing as a whole (its count is unknown).
            let family = crate::pattern_text(&owner.pattern);
            prop_assert!(
                mismatch.missing.contains(&dropped.name) || mismatch.missing.contains(&family) || !mismatch.unresolved_dims.is_empty(),
                "dropped {}: {}", dropped.name, mismatch
            );
        }
    }
}
