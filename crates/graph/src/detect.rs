//! Detection: which family and version a checkpoint is, from its own word and its layout.
//!
//! A version recorded by safeshift in the metadata ([`SCHEMA_KEY`]) is trusted only when
//! the layout fits that schema. Otherwise the layout is unified with every schema of the
//! registry (derived ones included), and the release the checkpoint's provenance names
//! (see [`crate::provenance`]) settles between the fits; then one fit wins; several of one
//! family, which share a layout, go to the oldest (upgrading through the steps between
//! them changes nothing the layout shows); several of different families are ambiguous;
//! none gives the nearest schemas, ranked, with diffs.
//! Only the candidates of the registry's index (`candidates.rs`) are unified first: it
//! never drops a schema the layout fits, so the answer is the full scan's; the full scan
//! runs only to rank near misses when nothing fits.

use std::collections::BTreeMap;

use safeshift_model::{Layout, Mismatch};

use crate::key_layout::{canonical, state_dict, KeyLayout};
use crate::provenance::{read_provenance, Provenance};
use crate::{Registry, VersionId};

pub use safeshift_model::keys::SCHEMA_KEY;

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
    /// What the checkpoint's metadata says about the release that wrote it, if anything;
    /// see [`Detection::contradicted`].
    pub provenance: Option<Provenance>,
    /// Other versions the layout fits equally (of the same family).
    pub alternatives: Vec<VersionId>,
    /// The key layout kind, when the names are not the schemas' own (see
    /// [`crate::KeyLayout`]); `None` for the canonical names.
    pub key_layout: Option<KeyLayout>,
}

impl Detection {
    /// The version the provenance names when it is not the detected one: the layout
    /// contradicts what the checkpoint says of itself.
    pub fn contradicted(&self) -> Option<&VersionId> {
        self.provenance.as_ref()?.version.as_ref().filter(|named| **named != self.version)
    }
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
    /// The checkpoint's provenance names it, and the layout fits it.
    Provenance,
    /// The layout fits several versions of one family (one layout); this is the oldest.
    OldestFit,
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
    /// The file holds tensors, but all of them outside a state dict (extras: a graph file
    /// such as Anemoi's `graph.pt`, supporting arrays): there is nothing to detect.
    #[error(
        "the checkpoint holds no state dict, only {count} extra tensor(s) such as `{example}`: \
         nothing to detect (a graph file is an aux input: `--aux graph=FILE`)"
    )]
    NoStateDict {
        /// How many extras it holds.
        count: usize,
        /// The first one's name.
        example: String,
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
    let file_layout = layout;
    let state = state_dict(layout);
    if state.tensors.is_empty() {
        if let Some(first) = file_layout.tensors.first() {
            return Err(DetectError::NoStateDict { count: file_layout.tensors.len(), example: first.name.clone() });
        }
    }
    let layout = &state;
    let recorded = layout.metadata.get(SCHEMA_KEY).and_then(|text| VersionId::parse(text).ok());
    if let Some(recorded) = &recorded {
        if let Some(Ok(found)) = registry.unify(recorded, layout, given) {
            return Ok(Detection {
                version: recorded.clone(),
                dims: found.dims,
                evidence: Evidence::Recorded,
                provenance: None,
                alternatives: Vec::new(),
                key_layout: None,
            });
        }
    }
    // Only the candidates can fit; when none does, every schema is ranked for the report.
    let (mut fits, _) = unify_each(registry, registry.candidate_index().candidates(layout), layout, given);
    let provenance = read_provenance(registry, layout);
    if let Some(detection) = settle(&mut fits, &provenance) {
        return Ok(detection);
    }
    if fits.is_empty() {
        if let Some(detection) = detect_other_key_layouts(registry, file_layout, given, &provenance) {
            return Ok(detection);
        }
    }
    match fits.len() {
        0 => {
            let (_, mut misses) = unify_each(registry, registry.graph().versions(), layout, given);
            // Best first; equal scores in version order, so the output is stable.
            misses.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.version.cmp(&b.version)));
            misses.truncate(NEAREST);
            Err(DetectError::NoFit { nearest: misses })
        }
        _ => Err(DetectError::Ambiguous { candidates: fits.into_iter().map(|(version, _)| version).collect() }),
    }
}

/// A version the layout fits, with the dims unification bound.
type Fit = (VersionId, BTreeMap<String, i64>);

/// Unifies `layout` with the schema of each of `versions`: the fits with their dims, and
/// the near misses.
fn unify_each<'r>(
    registry: &'r Registry,
    versions: impl IntoIterator<Item = &'r VersionId>,
    layout: &Layout,
    given: &BTreeMap<String, i64>,
) -> (Vec<Fit>, Vec<NearMiss>) {
    let mut fits = Vec::new();
    let mut misses = Vec::new();
    for version in versions {
        let Some(unified) = registry.unify(version, layout, given) else {
            continue;
        };
        match unified {
            Ok(found) => fits.push((version.clone(), found.dims)),
            Err(mismatch) => misses.push(NearMiss { version: version.clone(), score: mismatch.score(), mismatch }),
        }
    }
    (fits, misses)
}

/// Chooses among the fits: the one the provenance names, the only one, or the oldest of
/// one family. `None` when there is nothing to choose from, or fits of several families.
fn settle(fits: &mut Vec<(VersionId, BTreeMap<String, i64>)>, provenance: &[Provenance]) -> Option<Detection> {
    let family_of_fits = fits.first().map(|(version, _)| version.family.clone())?;
    let own = provenance.iter().find(|record| record.family == family_of_fits).cloned();
    let named = own.as_ref().and_then(|record| record.version.as_ref());
    let (index, evidence) = match fits.iter().position(|(version, _)| Some(version) == named) {
        Some(index) => (index, Evidence::Provenance),
        None if fits.len() == 1 => (0, Evidence::OnlyFit),
        None if fits.iter().all(|(version, _)| version.family == family_of_fits) => {
            let oldest = fits.iter().enumerate().min_by(|a, b| a.1 .0.cmp(&b.1 .0)).map(|(index, _)| index)?;
            (oldest, Evidence::OldestFit)
        }
        None => return None,
    };
    let (version, dims) = fits.remove(index);
    let alternatives = fits.iter().map(|(version, _)| version.clone()).collect();
    Some(Detection { version, dims, evidence, provenance: own, alternatives, key_layout: None })
}

/// Tries the key layout kinds the manifest declares: the names with each kind's prefix put
/// back, against that family's schemas.
fn detect_other_key_layouts(
    registry: &Registry,
    layout: &Layout,
    given: &BTreeMap<String, i64>,
    provenance: &[Provenance],
) -> Option<Detection> {
    for (family, kinds) in &registry.manifest().key_layouts {
        for (kind, prefix) in kinds {
            let key_layout = KeyLayout { kind: kind.clone(), prefix: prefix.clone() };
            let canonical_names = canonical(layout, &key_layout);
            let renamed = state_dict(&canonical_names);
            let mut fits: Vec<(VersionId, BTreeMap<String, i64>)> = registry
                .graph()
                .versions()
                .filter(|version| version.family == *family)
                .filter_map(|version| {
                    let found = registry.unify(version, &renamed, given)?.ok()?;
                    Some((version.clone(), found.dims))
                })
                .collect();
            if let Some(detection) = settle(&mut fits, provenance) {
                return Some(Detection { key_layout: Some(key_layout), ..detection });
            }
        }
    }
    None
}

/// Takes the caller's word for the version (a synthetic checkpoint, `--from`), checked:
/// the layout is unified with that version's schema only, binding its dims.
pub fn detect_as(
    registry: &Registry,
    version: &VersionId,
    layout: &Layout,
    given: &BTreeMap<String, i64>,
) -> Result<Detection, DetectError> {
    // Extras (a graph, supporting arrays) pass through; the schemas describe the rest.
    let unified = registry.unify(version, &state_dict(layout), given);
    match unified.ok_or_else(|| DetectError::NoSchema { version: version.clone() })? {
        Ok(found) => Ok(Detection {
            version: version.clone(),
            dims: found.dims,
            evidence: Evidence::Given,
            provenance: None,
            alternatives: Vec::new(),
            key_layout: None,
        }),
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
    fn a_file_of_extras_only_has_no_state_dict_to_detect() {
        let (registry, _) = registry(vec![TEXT.to_owned()]);
        let mut graph = layout(&["graph.data.x", "graph.data_to_hidden.edge_index"]);
        let extras = r#"["graph.data.x","graph.data_to_hidden.edge_index"]"#;
        graph.metadata.insert(crate::key_layout::EXTRAS_KEY.into(), extras.into());
        let err = detect(&registry, &graph, &BTreeMap::new()).unwrap_err();
        assert_eq!(err, DetectError::NoStateDict { count: 2, example: "graph.data.x".into() });
        assert!(err.to_string().contains("--aux graph=FILE"), "{err}");
        // An empty file is not that case: it fits no schema.
        let err = detect(&registry, &layout(&[]), &BTreeMap::new()).unwrap_err();
        assert!(matches!(err, DetectError::NoFit { .. }), "{err}");
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

    const ONE_LAYOUT: &str = r#"
schema d @ 1.0.0 {
    dim n
    tensor "a" : f32[n]
}
schema d @ 1.1.0 {
    dim n
    tensor "a" : f32[n]
}
schema d @ 2.0.0 {
    dim n
    tensor "b" : f32[n]
}
"#;

    fn with_provenance(release: &str, names: &[&str]) -> Layout {
        let mut layout = layout(names);
        layout.metadata.insert("info".into(), format!(r#"{{"versions": {{"d.lib": "{release}"}}}}"#));
        layout
    }

    #[test]
    fn one_layout_of_several_versions_is_the_oldest_unless_provenance_names_one() {
        let manifest = "provenance:\n  d:\n    metadata: info\n    path: [versions, d.lib]\n    releases: {1.0.0: 1.0.0, 1.1.0: 1.1.0, 2.0.0: 2.0.0}\n";
        let files =
            crate::RegistryFiles { files: vec![("d.ss".into(), ONE_LAYOUT.into())], manifest: Some(manifest.into()) };
        let (registry, diagnostics) = Registry::from_files(files);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let found = detect(&registry, &layout(&["a"]), &BTreeMap::new()).unwrap();
        assert_eq!((found.version.to_string(), found.evidence), ("d@1.0.0".to_owned(), Evidence::OldestFit));
        assert_eq!(found.alternatives.iter().map(ToString::to_string).collect::<Vec<_>>(), ["d@1.1.0"]);
        let found = detect(&registry, &with_provenance("1.1.3", &["a"]), &BTreeMap::new()).unwrap();
        assert_eq!((found.version.to_string(), found.evidence), ("d@1.1.0".to_owned(), Evidence::Provenance));
        assert_eq!(found.contradicted(), None);
        // The file says 2.0 but holds the 1.x layout: the layout wins, the contradiction shows.
        let found = detect(&registry, &with_provenance("2.0.0", &["a"]), &BTreeMap::new()).unwrap();
        assert_eq!(found.version.to_string(), "d@1.0.0");
        assert_eq!(found.contradicted().map(ToString::to_string).as_deref(), Some("d@2.0.0"));
    }
}
