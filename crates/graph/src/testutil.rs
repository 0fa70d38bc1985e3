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
