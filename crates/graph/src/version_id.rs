//! The name of one node of the version graph: `family@version`.

use std::fmt;

/// One version of one model family: a node of the version graph.
///
/// Ordered by family, then by semver precedence, so listings and tie-breaks are stable.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VersionId {
    /// The dotted family name (`anemoi.encprocdec`).
    pub family: String,
    /// The version.
    pub version: semver::Version,
}

/// Why a `family@version` text is not a version id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VersionIdError {
    /// No `@` between family and version.
    #[error("`{0}` is not of the form `family@version`")]
    MissingAt(String),
    /// The family is empty or not dotted identifiers.
    #[error("`{0}` is not a family name (dotted identifiers)")]
    BadFamily(String),
    /// The version is not semver.
    #[error("`{text}` is not a semantic version: {reason}")]
    BadVersion {
        /// The version text.
        text: String,
        /// What semver said.
        reason: String,
    },
}

impl VersionId {
    /// Builds an id from a family and a version text.
    pub fn new(family: &str, version: &str) -> Result<VersionId, VersionIdError> {
        if !is_family(family) {
            return Err(VersionIdError::BadFamily(family.to_owned()));
        }
        let version = semver::Version::parse(version)
            .map_err(|err| VersionIdError::BadVersion { text: version.to_owned(), reason: err.to_string() })?;
        Ok(VersionId { family: family.to_owned(), version })
    }

    /// Parses `family@version`.
    pub fn parse(text: &str) -> Result<VersionId, VersionIdError> {
        let Some((family, version)) = text.split_once('@') else {
            return Err(VersionIdError::MissingAt(text.to_owned()));
        };
        VersionId::new(family.trim(), version.trim())
    }
}

/// Whether `text` is dotted identifiers (`llama.hf`, `gpt2`).
pub(crate) fn is_family(text: &str) -> bool {
    !text.is_empty()
        && text.split('.').all(|segment| {
            let mut chars = segment.chars();
            chars.next().is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
                && chars.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
        })
}

impl fmt::Display for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.family, self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders_by_semver() {
        let old = VersionId::parse("anemoi.encprocdec@0.9.0").unwrap();
        let new = VersionId::parse("anemoi.encprocdec@0.10.0").unwrap();
        assert!(old < new);
        assert_eq!(new.to_string(), "anemoi.encprocdec@0.10.0");
        assert!(VersionId::parse("a@1.0.0-rc.1").unwrap() < VersionId::parse("a@1.0.0").unwrap());
    }

    #[test]
    fn rejects_bad_text() {
        assert!(matches!(VersionId::parse("llama"), Err(VersionIdError::MissingAt(_))));
        assert!(matches!(VersionId::parse("llama@1.0"), Err(VersionIdError::BadVersion { .. })));
        assert!(matches!(VersionId::parse(".x@1.0.0"), Err(VersionIdError::BadFamily(_))));
    }
}
