//! Are the inferred Anemoi schemas equivalent to the shipped ones (which
//! `tools/anemoi_schemas.py` generates)? Two comparisons, pinned as snapshots:
//!
//! * on the fixtures: which fixture layouts each shipped schema and each inferred schema
//!   fits, with the tensors both give at the bound dims;
//! * beyond them: a synthetic checkpoint of each shipped schema with every free dim a
//!   different size and the dataset named `era5` — a real model's layout, which the shipped
//!   schema describes and the inferred one, made from one tiny fixture, may not.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use safeshift_graph::{synth_with_captures, Registry, RegistryFiles, VersionId};
use safeshift_model::pattern::match_name;
use safeshift_model::{unify, DType, DimKind, Layout, Schema, TensorInfo};

use crate::{infer_schema_text, parse_layout_json, InferOptions};

const FAMILY: &str = "anemoi.encprocdec";

fn fixtures() -> Vec<(String, Layout)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/anemoi");
    let mut found: Vec<(semver::Version, PathBuf)> = std::fs::read_dir(&root)
        .unwrap()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("keys.json")))
        })
        .collect();
    found.sort();
    found
        .into_iter()
        .map(|(version, keys)| {
            (version.to_string(), parse_layout_json(&std::fs::read_to_string(keys).unwrap()).unwrap())
        })
        .collect()
}

/// Each fixture's inferred schema, as a registry of the family (one schema per version).
fn inferred(fixtures: &[(String, Layout)]) -> Registry {
    let files = fixtures
        .iter()
        .map(|(version, layout)| {
            let options = InferOptions { family: FAMILY.into(), version: version.clone(), origin: None };
            (format!("{version}.ss"), infer_schema_text(layout, &options).unwrap())
        })
        .collect();
    let (registry, diagnostics) = Registry::from_files(RegistryFiles { files, manifest: None });
    assert!(diagnostics.iter().all(|d| !d.is_error()), "{diagnostics:?}");
    registry
}

fn schema<'r>(registry: &'r Registry, version: &str) -> Option<&'r Schema> {
    registry.schema_of(&VersionId::parse(&format!("{FAMILY}@{version}")).unwrap())
}

fn fits(schema: &Schema, layout: &Layout) -> bool {
    unify(schema, layout, &BTreeMap::new()).is_ok()
}

#[test]
fn shipped_and_inferred_anemoi_schemas_fit_the_same_fixtures() {
    let (shipped, _) = Registry::embedded();
    let fixtures = fixtures();
    assert!(fixtures.len() >= 10);
    let inferred = inferred(&fixtures);
    let mut table = String::new();
    for (version, _) in &fixtures {
        let shipped_schema = schema(&shipped, version).expect("a shipped schema per fixture");
        let inferred_schema = schema(&inferred, version).unwrap();
        let list = |schema: &Schema| -> Vec<&str> {
            fixtures.iter().filter(|(_, layout)| fits(schema, layout)).map(|(v, _)| v.as_str()).collect()
        };
        let _ = writeln!(
            table,
            "{version}: shipped fits {:?}; inferred fits {:?}",
            list(shipped_schema),
            list(inferred_schema)
        );
    }
    insta::assert_snapshot!("fixture_fits", table);
}

/// A synthetic checkpoint of a shipped schema: with the fixture's dims or every free dim a
/// different size, and the dataset named as given. Every optional tensor is in it.
fn probe(registry: &Registry, version: &str, fixture: &Layout, distinct: bool, dataset: &str) -> Layout {
    let id = VersionId::parse(&format!("{FAMILY}@{version}")).unwrap();
    let schema = registry.schema_of(&id).unwrap();
    let bound = unify(schema, fixture, &BTreeMap::new()).expect("the shipped schema fits its fixture").dims;
    let mut dims = BTreeMap::new();
    let mut next = 5;
    for dim in &schema.dims {
        let value = match dim.kind {
            DimKind::Free if distinct => {
                next += 1;
                next
            }
            DimKind::Derived(_) => continue,
            _ => match bound.get(&dim.name) {
                Some(&value) => value,
                None => continue,
            },
        };
        dims.insert(dim.name.clone(), value);
    }
    let captures = BTreeMap::from([
        ("dataset".to_owned(), vec![dataset.to_owned()]),
        ("encoder".to_owned(), vec!["0".to_owned()]),
        ("decoder".to_owned(), vec!["0".to_owned()]),
    ]);
    let layout = synth_with_captures(registry, &id, &dims, &captures, 0).expect("a synthetic checkpoint").layout;
    assert!(fits(schema, &layout), "{version}: the probe fits the shipped schema");
    layout
}

/// `layout` with only the tensors `keep` marks, each with the dtype `dtypes` gives it
/// (probes of one schema with one value per capture list the same tensors in the same
/// order, so what is worked out on one serves all).
fn only(layout: &Layout, keep: &[bool], dtypes: &[Option<DType>]) -> Layout {
    let tensors = layout
        .tensors
        .iter()
        .zip(keep.iter().zip(dtypes))
        .filter(|(_, (&keep, _))| keep)
        .map(|(tensor, (_, dtype))| TensorInfo { dtype: dtype.unwrap_or(tensor.dtype), ..tensor.clone() })
        .collect();
    Layout { tensors, metadata: layout.metadata.clone() }
}

fn verdict(schema: &Schema, layout: &Layout) -> String {
    match unify(schema, layout, &BTreeMap::new()) {
        Ok(_) => "fits".to_owned(),
        Err(mismatch) => {
            let mut why = Vec::new();
            if !mismatch.unexpected.is_empty() {
                why.push(format!("{} unexpected", mismatch.unexpected.len()));
            }
            if !mismatch.missing.is_empty() {
                why.push(format!("{} missing", mismatch.missing.len() as u64 + mismatch.missing_unlisted));
            }
            let conflicts = mismatch.conflicting_dims.len() + mismatch.shape_mismatches.len();
            if conflicts > 0 {
                why.push(format!("{conflicts} size conflicts"));
            }
            if !mismatch.dtype_mismatches.is_empty() {
                why.push(format!("{} dtypes", mismatch.dtype_mismatches.len()));
            }
            if !mismatch.meta_mismatches.is_empty() {
                why.push(format!("{} metadata keys", mismatch.meta_mismatches.len()));
            }
            format!("no ({})", why.join(", "))
        }
    }
}

/// Where the inferred schema of each fixture is narrower than the shipped one, one
/// generalization at a time, each probe fitting the shipped schema: optional tensors the
/// fixture does not hold present; every free dim a different size (the fixture gives
/// several the same: 2 for four trainable widths, 96 for three MLP widths, 5 for three
/// variable counts); the dataset named `era5` instead of `data`; bf16 weights.
#[test]
fn inferred_anemoi_schemas_are_narrower_than_the_shipped_ones() {
    let (shipped, _) = Registry::embedded();
    let fixtures = fixtures();
    let inferred = inferred(&fixtures);
    let mut table = String::new();
    for (version, fixture) in &fixtures {
        let inferred_schema = schema(&inferred, version).unwrap();
        let shipped_schema = schema(&shipped, version).unwrap();
        let full = probe(&shipped, version, fixture, false, "data");
        // The fixture's own tensors: required ones, and the optional ones it holds.
        let keep: Vec<bool> = full
            .tensors
            .iter()
            .map(|tensor| {
                let def = shipped_schema.tensors.iter().find(|def| match_name(&def.pattern, &tensor.name).is_some());
                !def.is_some_and(|def| def.optional) || fixture.tensors.iter().any(|held| held.name == tensor.name)
            })
            .collect();
        // The fixture's dtypes (a schema's `float` lets synth choose one).
        let dtypes: Vec<Option<DType>> = full
            .tensors
            .iter()
            .map(|tensor| fixture.tensors.iter().find(|held| held.name == tensor.name).map(|held| held.dtype))
            .collect();
        let as_fixture = only(&full, &keep, &dtypes);
        assert_eq!(as_fixture.tensors.len(), fixture.tensors.len(), "{version}");
        let bf16: Vec<Option<DType>> =
            dtypes.iter().map(|dtype| dtype.map(|d| if d == DType::F32 { DType::BF16 } else { d })).collect();
        let _ = writeln!(
            table,
            "{version}: as the fixture: {}; + {} optional tensors: {}; free dims distinct: {}; dataset era5: {}; bf16: {}",
            verdict(inferred_schema, &as_fixture),
            full.tensors.len() - as_fixture.tensors.len(),
            verdict(inferred_schema, &only(&full, &vec![true; keep.len()], &dtypes)),
            verdict(inferred_schema, &only(&probe(&shipped, version, fixture, true, "data"), &keep, &dtypes)),
            verdict(inferred_schema, &only(&probe(&shipped, version, fixture, false, "era5"), &keep, &dtypes)),
            verdict(inferred_schema, &only(&full, &keep, &bf16)),
        );
    }
    insta::assert_snapshot!("beyond_the_fixtures", table);
}
