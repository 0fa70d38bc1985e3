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
