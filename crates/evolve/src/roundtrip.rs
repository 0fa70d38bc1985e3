//! `schema infer` round-trips: a synthetic checkpoint of every shipped schema, at the
//! registry's dims and at random ones, is detected as its inferred schema, and that
//! schema instantiated with the dims detection bound gives the checkpoint's layout back.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use safeshift_graph::{detect, synth, Registry, RegistryFiles, VersionId};
use safeshift_model::{instantiate, DimKind, Layout};

use crate::{infer_schema_text, InferOptions};

fn versions(registry: &Registry) -> Vec<VersionId> {
    registry.graph().versions().filter(|version| registry.schema_of(version).is_some()).cloned().collect()
}

fn tensors(layout: &Layout) -> BTreeSet<(String, String, Vec<u64>)> {
    layout.tensors.iter().map(|t| (t.name.clone(), t.dtype.language_name().to_owned(), t.shape.clone())).collect()
}

/// Infers, detects, re-instantiates; `Err` says what differs.
pub(crate) fn round_trip(layout: &Layout) -> Result<(), String> {
    let options = InferOptions { family: "inferred".into(), version: "1.0.0".into(), origin: None };
    let text = infer_schema_text(layout, &options).map_err(|err| err.to_string())?;
    let (registry, diagnostics) =
        Registry::from_files(RegistryFiles { files: vec![("inferred.ss".into(), text.clone())], manifest: None });
    if let Some(problem) = diagnostics.iter().find(|d| d.is_error()) {
        return Err(format!("{}: {}\n{text}", problem.code, problem.message));
    }
    let found = detect(&registry, layout, &BTreeMap::new()).map_err(|err| format!("{err}\n{text}"))?;
    let schema = registry.schema_of(&found.version).ok_or("no schema")?;
    let again = instantiate(schema, &found.dims).map_err(|err| err.to_string())?;
    if tensors(&again) != tensors(layout) {
        return Err(format!("instantiated differently:\n{text}"));
    }
    Ok(())
}

#[test]
fn every_shipped_schema_round_trips_at_its_synth_dims() {
    let (registry, _) = Registry::embedded();
    let versions = versions(&registry);
    assert!(versions.len() >= 10, "{versions:?}");
    for version in versions {
        let synthetic = synth(&registry, &version, &BTreeMap::new(), 1).unwrap();
        round_trip(&synthetic.layout).unwrap_or_else(|err| panic!("{version}: {err}"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn every_shipped_schema_round_trips_at_random_dims(pick in 0usize..64, values in prop::collection::vec(1i64..10, 64)) {
        let (registry, _) = Registry::embedded();
        let versions = versions(&registry);
        let version = &versions[pick % versions.len()];
        let schema = registry.schema_of(version).unwrap();
        let mut given = BTreeMap::new();
        for (dim, value) in schema.dims.iter().zip(values) {
            match dim.kind {
                DimKind::Free => { given.insert(dim.name.clone(), value); }
                DimKind::Counted => { given.insert(dim.name.clone(), 1 + value % 4); }
                _ => {}
            }
        }
        // Some combinations break a derived dim's exact division: not a layout at all.
        let Ok(synthetic) = synth(&registry, version, &given, 7) else { return Ok(()) };
        prop_assert!(round_trip(&synthetic.layout).is_ok(), "{version} {given:?}: {:?}", round_trip(&synthetic.layout));
    }
}
