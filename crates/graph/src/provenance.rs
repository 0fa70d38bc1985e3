//! Provenance: the release a checkpoint says wrote it, read from its metadata where the
//! manifest says a family records it (`provenance:` in `safeshift.yaml`), mapped to the
//! version of the registry whose layout that release has.
//!
//! Detection trusts this word first, but checks it: a layout that does not fit the version
//! its provenance names is reported, and the layout wins.

use std::collections::BTreeMap;

use safeshift_model::Layout;

use crate::manifest::ProvenanceSpec;
use crate::{Registry, VersionId};

/// What a checkpoint's metadata says about its release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provenance {
    /// The family whose provenance key it is.
    pub family: String,
    /// The release as recorded (`0.17.0`, `0.19.0.post1`).
    pub release: String,
    /// The version of the registry that release has the layout of; `None` when the
    /// release is older than every version the registry knows, or not a version at all.
    pub version: Option<VersionId>,
}

/// The provenance of every family whose record the metadata holds, in family order.
pub fn read_provenance(registry: &Registry, layout: &Layout) -> Vec<Provenance> {
    registry
        .manifest()
        .provenance
        .iter()
        .filter_map(|(family, spec)| {
            let release = recorded_release(spec, &layout.metadata)?;
            let version = version_of(family, spec, &release);
            Some(Provenance { family: family.clone(), release, version })
        })
        .collect()
}

/// The release string at the spec's path, if the metadata holds one.
fn recorded_release(spec: &ProvenanceSpec, metadata: &BTreeMap<String, String>) -> Option<String> {
    let document: serde_json::Value = serde_json::from_str(metadata.get(&spec.metadata)?).ok()?;
    let mut node = &document;
    for key in &spec.path {
        node = node.get(key)?;
    }
    node.as_str().map(str::to_owned)
}

/// The leading `MAJOR.MINOR.PATCH` of a release (`0.5.1.post2` → 0.5.1, `0.19` → 0.19.0).
fn release_version(release: &str) -> Option<semver::Version> {
    let numbers: Vec<u64> = release
        .trim_start_matches('v')
        .split(|c: char| !c.is_ascii_digit())
        .take_while(|part| !part.is_empty())
        .take(3)
        .map(|part| part.parse().ok())
        .collect::<Option<_>>()?;
    let part = |index: usize| numbers.get(index).copied().unwrap_or(0);
    (!numbers.is_empty()).then(|| semver::Version::new(part(0), part(1), part(2)))
}

fn version_of(family: &str, spec: &ProvenanceSpec, release: &str) -> Option<VersionId> {
    let release = release_version(release)?;
    let (version, _) = spec
        .releases
        .iter()
        .filter_map(|(version, first)| Some((version, semver::Version::parse(first).ok()?)))
        .filter(|(_, first)| *first <= release)
        .max_by(|a, b| a.1.cmp(&b.1))?;
    VersionId::new(family, version).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ProvenanceSpec {
        ProvenanceSpec {
            metadata: "anemoi".into(),
            path: vec!["provenance_training".into(), "module_versions".into(), "anemoi.models".into()],
            releases: BTreeMap::from([
                ("0.4.0".into(), "0.4.0".into()),
                ("0.6.0".into(), "0.5.0".into()),
                ("0.10.0".into(), "0.7.0".into()),
            ]),
        }
    }

    #[test]
    fn a_release_maps_to_the_version_that_describes_it() {
        let at = |release: &str| version_of("a", &spec(), release).map(|v| v.to_string());
        assert_eq!(at("0.4.1").as_deref(), Some("a@0.4.0"));
        assert_eq!(at("0.5.0").as_deref(), Some("a@0.6.0"));
        assert_eq!(at("0.6.3.post1").as_deref(), Some("a@0.6.0"));
        assert_eq!(at("0.12").as_deref(), Some("a@0.10.0"));
        assert_eq!(at("0.3.9"), None);
        assert_eq!(at("unknown"), None);
    }

    #[test]
    fn the_release_is_read_at_its_path() {
        let anemoi = r#"{"provenance_training": {"module_versions": {"anemoi.models": "0.5.0"}}}"#;
        let metadata = BTreeMap::from([("anemoi".to_owned(), anemoi.to_owned())]);
        assert_eq!(recorded_release(&spec(), &metadata).as_deref(), Some("0.5.0"));
        let broken = BTreeMap::from([("anemoi".to_owned(), "{not json".to_owned())]);
        assert_eq!(recorded_release(&spec(), &broken), None);
    }
}
