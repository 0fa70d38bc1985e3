//! Detection: which family and version a checkpoint is, from its layout alone.
//!
//! A version recorded by safeshift in the metadata ([`SCHEMA_KEY`]) is trusted only when
//! the layout fits that schema. Otherwise the layout is unified with every schema of the
//! registry (derived ones included): one fit wins; several are ambiguous unless the
//! recorded version is among them; none gives the nearest schemas, ranked, with diffs.

use std::collections::BTreeMap;

use safeshift_model::{unify, Layout, Mismatch};

use crate::{Registry, VersionId};

/// The metadata key where safeshift records a written checkpoint's `family@version`.
pub const SCHEMA_KEY: &str = "safeshift.schema";

/// How many near misses a failed detection reports.
pub const NEAREST: usize = 3;

/// A detected version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detection {
    /// The version.
    pub version: VersionId,
    /// The dims bound by unifying the layout with the version's schema.
    pub dims: BTreeMap<String, i64>,
    /// Why this version.
    pub evidence: Evidence,
}

/// Why a version was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Evidence {
    /// The metadata records it and the layout fits it.
    Recorded,
    /// It is the only schema the layout fits.
    OnlyFit,
    /// The caller named it ([`detect_as`]) and the layout fits it.
    Given,
}

/// A schema the layout nearly fits.
#[derive(Clone, Debug, PartialEq)]
pub struct NearMiss {
    /// The version.
    pub version: VersionId,
    /// How near, `0.0..=1.0` (see `Mismatch::score`).
    pub score: f64,
    /// The differences.
    pub mismatch: Mismatch,
}

/// Why no single version was found.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DetectError {
    /// The layout fits several schemas equally well.
    #[error("the checkpoint fits {} schemas: {}", candidates.len(), list(candidates))]
    Ambiguous {
        /// Every version it fits, sorted.
        candidates: Vec<VersionId>,
    },
    /// The layout fits no schema.
    #[error("the checkpoint fits no schema of the registry{}", nearest_text(nearest))]
    NoFit {
        /// The nearest schemas, best first (at most [`NEAREST`]).
        nearest: Vec<NearMiss>,
    },
    /// The version named by the caller has no usable schema.
    #[error("`{version}` has no usable schema")]
    NoSchema {
        /// The version.
        version: VersionId,
    },
}

fn list(ids: &[VersionId]) -> String {
    ids.iter().map(|id| format!("`{id}`")).collect::<Vec<_>>().join(", ")
}

fn nearest_text(nearest: &[NearMiss]) -> String {
    match nearest.first() {
        Some(best) => format!(" (nearest: `{}`, {:.0}% of tensors fit)", best.version, best.score * 100.0),
        None => String::new(),
    }
}

/// Finds the version of a checkpoint from its layout; `given` holds dims fixed by the caller.
pub fn detect(registry: &Registry, layout: &Layout, given: &BTreeMap<String, i64>) -> Result<Detection, DetectError> {
    let recorded = layout.metadata.get(SCHEMA_KEY).and_then(|text| VersionId::parse(text).ok());
    if let Some(recorded) = &recorded {
        if let Some(schema) = registry.schema_of(recorded) {
            if let Ok(found) = unify(schema, layout, given) {
                return Ok(Detection { version: recorded.clone(), dims: found.dims, evidence: Evidence::Recorded });
            }
        }
    }
    let mut fits = Vec::new();
    let mut misses = Vec::new();
    for version in registry.graph().versions() {
        let Some(schema) = registry.schema_of(version) else {
            continue;
        };
        match unify(schema, layout, given) {
            Ok(found) => fits.push((version.clone(), found.dims)),
            Err(mismatch) => misses.push(NearMiss { version: version.clone(), score: mismatch.score(), mismatch }),
        }
    }
    match fits.len() {
        0 => {
            // Best first; equal scores in version order, so the output is stable.
            misses.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.version.cmp(&b.version)));
            misses.truncate(NEAREST);
            Err(DetectError::NoFit { nearest: misses })
        }
        1 => {
            let (version, dims) = fits.pop().expect("one fit");
            Ok(Detection { version, dims, evidence: Evidence::OnlyFit })
        }
        _ => Err(DetectError::Ambiguous { candidates: fits.into_iter().map(|(version, _)| version).collect() }),
    }
}

/// Takes the caller's word for the version (a synthetic checkpoint, `--from`), checked:
/// the layout is unified with that version's schema only, binding its dims.
pub fn detect_as(
    registry: &Registry,
    version: &VersionId,
    layout: &Layout,
    given: &BTreeMap<String, i64>,
) -> Result<Detection, DetectError> {
    let schema = registry.schema_of(version).ok_or_else(|| DetectError::NoSchema { version: version.clone() })?;
    match unify(schema, layout, given) {
        Ok(found) => Ok(Detection { version: version.clone(), dims: found.dims, evidence: Evidence::Given }),
        Err(mismatch) => Err(DetectError::NoFit {
            nearest: vec![NearMiss { version: version.clone(), score: mismatch.score(), mismatch }],
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::registry;
    use safeshift_model::{DType, TensorInfo};

    const TEXT: &str = r#"
schema d @ 1.0.0 {
    dim n
    tensor "a" : f32[n]
}
schema d @ 2.0.0 {
    dim n
    tensor "a" : f32[n]
    tensor "b" : f32[n]
}
schema e @ 1.0.0 {
    dim n
    tensor "a" : float[n]
}
"#;

    fn layout(names: &[&str]) -> Layout {
        Layout {
            tensors: names
                .iter()
                .map(|name| TensorInfo { name: (*name).into(), dtype: DType::F32, shape: vec![3] })
                .collect(),
            metadata: BTreeMap::new(),
        }
    }

    #[test]
    fn one_fit_wins_and_several_are_ambiguous() {
        let (registry, _) = registry(vec![TEXT.to_owned()]);
        let found = detect(&registry, &layout(&["a", "b"]), &BTreeMap::new()).unwrap();
        assert_eq!((found.version.to_string(), found.evidence), ("d@2.0.0".to_owned(), Evidence::OnlyFit));
        assert_eq!(found.dims["n"], 3);
        let err = detect(&registry, &layout(&["a"]), &BTreeMap::new()).unwrap_err();
        let DetectError::Ambiguous { candidates } = &err else { panic!("{err}") };
        assert_eq!(candidates.iter().map(ToString::to_string).collect::<Vec<_>>(), ["d@1.0.0", "e@1.0.0"]);
    }

    #[test]
    fn a_recorded_version_is_trusted_only_when_it_fits() {
        let (registry, _) = registry(vec![TEXT.to_owned()]);
        let mut recorded = layout(&["a"]);
        recorded.metadata.insert(SCHEMA_KEY.into(), "e@1.0.0".into());
        let found = detect(&registry, &recorded, &BTreeMap::new()).unwrap();
        assert_eq!((found.version.to_string(), found.evidence), ("e@1.0.0".to_owned(), Evidence::Recorded));
        let mut lying = layout(&["a", "b"]);
        lying.metadata.insert(SCHEMA_KEY.into(), "e@1.0.0".into());
        let found = detect(&registry, &lying, &BTreeMap::new()).unwrap();
        assert_eq!((found.version.to_string(), found.evidence), ("d@2.0.0".to_owned(), Evidence::OnlyFit));
    }

    #[test]
    fn no_fit_ranks_the_nearest() {
        let (registry, _) = registry(vec![TEXT.to_owned()]);
        let err = detect(&registry, &layout(&["a", "c"]), &BTreeMap::new()).unwrap_err();
        let DetectError::NoFit { nearest } = &err else { panic!("{err}") };
        let ranked: Vec<String> = nearest.iter().map(|near| near.version.to_string()).collect();
        // `a` fits everywhere, `c` nowhere; `d@2.0.0` also misses `b`.
        assert_eq!(ranked, ["d@1.0.0", "e@1.0.0", "d@2.0.0"]);
        assert!(nearest.windows(2).all(|pair| pair[0].score >= pair[1].score));
        assert_eq!(
            err.to_string(),
            "the checkpoint fits no schema of the registry (nearest: `d@1.0.0`, 50% of tensors fit)"
        );
    }
}
