//! `safeshift.yaml`: project settings beside a registry's `schemas/` and `migrations/`.
//!
//! ```yaml
//! # Where `plan` and `upgrade` go by default, per family (otherwise: the family's head).
//! targets:
//!   llama.meta: llama.hf@1.0.0
//! # Dim values `synth` uses when the command line gives none, per family.
//! dims:
//!   anemoi.encprocdec:
//!     hidden: 8
//!     heads: 2
//! # Where a family's checkpoints record the release that wrote them (detection reads it
//! # first), and the first release each version's layout describes.
//! provenance:
//!   anemoi.encprocdec:
//!     metadata: anemoi
//!     path: [provenance_training, module_versions, anemoi.models]
//!     releases: {0.4.0: 0.4.0, 0.6.0: 0.5.0}
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::VersionId;

/// The parsed manifest. Every field is optional; unknown keys are an error.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Default target per family (`family: family@version`).
    #[serde(default)]
    pub targets: BTreeMap<String, String>,
    /// Default dim values per family, for synthetic checkpoints.
    #[serde(default)]
    pub dims: BTreeMap<String, BTreeMap<String, i64>>,
    /// Default values of name captures per family, for synthetic checkpoints
    /// (`dataset: [data]`).
    #[serde(default)]
    pub captures: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    /// Other key layouts per family: kind → the prefix its names lack in front of the
    /// schemas' (`anemoi.encprocdec: {inference: "model."}`).
    #[serde(default)]
    pub key_layouts: BTreeMap<String, BTreeMap<String, String>>,
    /// Where each family records the release that wrote a checkpoint.
    #[serde(default)]
    pub provenance: BTreeMap<String, ProvenanceSpec>,
}

/// Where a family's checkpoints record their release, and which version each release is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvenanceSpec {
    /// The `__metadata__` key holding a JSON document (`anemoi`).
    pub metadata: String,
    /// The keys leading to the release string inside it (a key may hold dots:
    /// `anemoi.models`).
    pub path: Vec<String>,
    /// For each version of the family, the first release whose layout it describes: a
    /// release belongs to the version with the greatest first release not after it.
    pub releases: BTreeMap<String, String>,
}

/// Why a manifest could not be read, with the 1-based position when known.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ManifestError {
    /// What is wrong.
    pub message: String,
    /// Byte offset of the problem in the text, when known.
    pub offset: Option<usize>,
}

impl Manifest {
    /// Parses the YAML text of `safeshift.yaml`; an empty file is the default manifest.
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        if text.trim().is_empty() {
            return Ok(Manifest::default());
        }
        let manifest: Manifest = serde_yaml::from_str(text).map_err(|err| ManifestError {
            message: err.to_string(),
            offset: err.location().map(|location| location.index()),
        })?;
        for target in manifest.targets.values() {
            if let Err(err) = VersionId::parse(target) {
                return Err(ManifestError {
                    message: format!("target `{target}`: {err}"),
                    offset: text.find(target.as_str()),
                });
            }
        }
        for (family, spec) in &manifest.provenance {
            for (version, release) in &spec.releases {
                for value in [version, release] {
                    if semver::Version::parse(value).is_err() {
                        return Err(ManifestError {
                            message: format!("provenance of `{family}`: `{value}` is not a version"),
                            offset: text.find(value.as_str()),
                        });
                    }
                }
            }
        }
        Ok(manifest)
    }

    /// The default target the manifest names for `family`.
    pub fn target(&self, family: &str) -> Option<VersionId> {
        self.targets.get(family).and_then(|text| VersionId::parse(text).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets_and_dims() {
        let manifest =
            Manifest::parse("targets:\n  llama.meta: llama.hf@1.0.0\ndims:\n  llama.hf:\n    hidden: 8\n").unwrap();
        assert_eq!(manifest.target("llama.meta").unwrap().to_string(), "llama.hf@1.0.0");
        assert_eq!(manifest.dims["llama.hf"]["hidden"], 8);
        assert_eq!(Manifest::parse("").unwrap(), Manifest::default());
    }

    #[test]
    fn rejects_unknown_keys_and_bad_targets() {
        let err = Manifest::parse("colour: red\n").unwrap_err();
        assert!(err.message.contains("unknown field"), "{}", err.message);
        assert_eq!(err.offset, Some(0));
        let err = Manifest::parse("targets:\n  a: a@1\n").unwrap_err();
        assert!(err.message.contains("`a@1`"), "{}", err.message);
    }
}
