//! Small registries written as text, for unit tests.

use safeshift_dsl::Diagnostic;

use crate::{Registry, RegistryFiles};

fn split(id: &str) -> (&str, &str) {
    id.split_once('@').expect("family@version")
}

/// `schema FAMILY @ VERSION {}` from `"family@version"`.
pub fn schema(id: &str) -> String {
    let (family, version) = split(id);
    format!("schema {family} @ {version} {{\n}}\n")
}

/// `migration FROM -> TO { body }` from `"family@version"` ids.
pub fn migration(from: &str, to: &str, body: &str) -> String {
    let ((from_family, from_version), (to_family, to_version)) = (split(from), split(to));
    format!("migration {from_family} @ {from_version} -> {to_family} @ {to_version} {{\n    {body}\n}}\n")
}

/// An invertible migration (an optional `rename`).
pub fn up(from: &str, to: &str) -> String {
    migration(from, to, r#"rename "x" -> "y" optional"#)
}

/// A lossy migration without a way back (an optional lossy `drop`).
pub fn lossy(from: &str, to: &str) -> String {
    migration(from, to, r#"drop "x" lossy optional"#)
}

/// A registry of one file holding `items`.
pub fn registry(items: Vec<String>) -> (Registry, Vec<Diagnostic>) {
    Registry::from_files(RegistryFiles { files: vec![("test.ss".to_owned(), items.concat())], manifest: None })
}

/// The codes of `diagnostics`, in order.
pub fn codes(diagnostics: &[Diagnostic]) -> Vec<&'static str> {
    diagnostics.iter().map(|diagnostic| diagnostic.code).collect()
}

/// Proptest strategies for registries.
pub mod strategies {
    use proptest::prelude::*;

    /// A history of one family `f` over `versions` versions `1.0.0`, `2.0.0`, …: a list
    /// of migrations `(from, to, lossy)` between distinct versions (both directions, so
    /// declared downgrades and cycles of them occur too), and the version with a schema.
    /// Small sizes on purpose: the properties compare with brute force.
    pub fn arb_history() -> impl Strategy<Value = (usize, Vec<(usize, usize, bool)>)> {
        (2usize..6).prop_flat_map(|versions| {
            let edge = (0..versions, 0..versions, prop::bool::weighted(0.3))
                .prop_filter("a migration changes the version", |(from, to, _)| from != to);
            (Just(versions), prop::collection::vec(edge, 0..10))
        })
    }

    /// The registry text of a history: `f@1.0.0` has the schema, every migration an
    /// optional rename (invertible) or an optional lossy drop.
    pub fn history_text(history: &[(usize, usize, bool)]) -> Vec<String> {
        let mut items = vec![super::schema("f@1.0.0")];
        for (from, to, lossy) in history {
            let (from, to) = (format!("f@{}.0.0", from + 1), format!("f@{}.0.0", to + 1));
            items.push(if *lossy { super::lossy(&from, &to) } else { super::up(&from, &to) });
        }
        items
    }
}
