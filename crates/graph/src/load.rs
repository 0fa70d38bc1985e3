//! Loading a registry from text: a folder, or the files embedded in the binary.

use std::path::Path;

use safeshift_dsl::ast::Span;
use safeshift_dsl::{Diagnostic, SourceId, SourceMap};

use crate::registry::{LoadError, Registry, RegistryFiles};
use crate::Manifest;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_registry.rs"));
}

impl Registry {
    /// Loads `dir/schemas/**/*.ss`, `dir/migrations/**/*.ss` and `dir/safeshift.yaml`.
    ///
    /// Only an unreadable folder is an error; every problem inside the files (syntax,
    /// meaning, graph structure found while building it) is one of the diagnostics.
    pub fn load(dir: &Path) -> Result<(Registry, Vec<Diagnostic>), LoadError> {
        Ok(Registry::from_files(RegistryFiles::read(dir)?))
    }

    /// The registry shipped with safeshift (the repository's `schemas/` and `migrations/`).
    pub fn embedded() -> (Registry, Vec<Diagnostic>) {
        Registry::from_files(RegistryFiles {
            files: embedded::FILES.iter().map(|(path, text)| ((*path).to_owned(), (*text).to_owned())).collect(),
            manifest: embedded::MANIFEST.map(str::to_owned),
        })
    }

    /// Parses and loads registry texts (see [`RegistryFiles`]).
    pub fn from_files(files: RegistryFiles) -> (Registry, Vec<Diagnostic>) {
        let mut sources = SourceMap::new();
        // The language's own checks come first; a later pass that finds the same place
        // wrong (a bad version, a migration to itself) is not reported twice.
        let mut diagnostics = Vec::new();
        let mut parsed = Vec::new();
        for (path, text) in files.files {
            let source = sources.add(path, text);
            let text = sources.text(source);
            // A drafted migration's open questions are errors wherever the file stands.
            diagnostics.extend(safeshift_dsl::unresolved(source, text));
            match safeshift_dsl::parse(source, text) {
                Ok(file) => {
                    diagnostics.extend(safeshift_dsl::check(source, &file));
                    parsed.push((source, file));
                }
                Err(errors) => diagnostics.extend(errors),
            }
        }
        let manifest = match files.manifest {
            Some(text) => {
                let source = sources.add("safeshift.yaml".to_owned(), text);
                match Manifest::parse(sources.text(source)) {
                    Ok(manifest) => manifest,
                    Err(err) => {
                        diagnostics.push(manifest_error(source, &err));
                        Manifest::default()
                    }
                }
            }
            None => Manifest::default(),
        };
        let reported: std::collections::BTreeSet<(SourceId, Span)> =
            diagnostics.iter().map(|diagnostic| (diagnostic.primary.source, diagnostic.primary.span)).collect();
        let (registry, more) = Registry::from_parsed(sources, parsed, manifest);
        diagnostics.extend(
            more.into_iter()
                .filter(|diagnostic| !reported.contains(&(diagnostic.primary.source, diagnostic.primary.span))),
        );
        (registry, diagnostics)
    }
}

fn manifest_error(source: SourceId, err: &crate::ManifestError) -> Diagnostic {
    let offset = err.offset.unwrap_or(0);
    Diagnostic::error(
        "bad-manifest",
        format!("invalid `safeshift.yaml`: {}", err.message),
        source,
        Span::new(offset, offset),
    )
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn reads_nested_files_in_order_and_reports_every_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("schemas/b")).unwrap();
        fs::create_dir_all(dir.path().join("migrations")).unwrap();
        fs::write(dir.path().join("schemas/b/x.ss"), "schema x @ 1.0.0 {\n}\n").unwrap();
        fs::write(dir.path().join("schemas/a.ss"), "schema a @ 1.0.0 {\n  tensor\n}\n").unwrap();
        fs::write(dir.path().join("schemas/notes.md"), "not read").unwrap();
        fs::write(dir.path().join("migrations/m.ss"), "migration x 1.0.0 -> 2.0.0 {\n  frobnicate \"a\"\n}\n").unwrap();
        let files = RegistryFiles::read(dir.path()).unwrap();
        let paths: Vec<&str> = files.files.iter().map(|(path, _)| path.as_str()).collect();
        assert_eq!(paths, ["schemas/a.ss", "schemas/b/x.ss", "migrations/m.ss"]);
        let (registry, diagnostics) = Registry::load(dir.path()).unwrap();
        let codes: Vec<&str> = diagnostics.iter().map(|diagnostic| diagnostic.code).collect();
        assert_eq!(codes.len(), 2, "a syntax error in one file and an unknown op in another: {codes:?}");
        assert!(codes.contains(&"unknown-op"), "{codes:?}");
        assert_eq!(registry.sources().name(diagnostics[0].primary.source), "schemas/a.ss");
        assert!(registry.graph().contains(&crate::VersionId::parse("x@2.0.0").unwrap()));
    }

    #[test]
    fn folder_errors_are_typed() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(Registry::load(dir.path()), Err(LoadError::NotARegistry { .. })));
        assert!(matches!(Registry::load(&dir.path().join("missing")), Err(LoadError::NotARegistry { .. })));
        fs::create_dir_all(dir.path().join("schemas")).unwrap();
        fs::write(dir.path().join("schemas/bad.ss"), [0xff, 0xfe]).unwrap();
        assert!(matches!(Registry::load(dir.path()), Err(LoadError::NotUtf8 { .. })));
    }

    #[test]
    fn manifest_errors_are_located() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("schemas")).unwrap();
        fs::write(dir.path().join("safeshift.yaml"), "targets:\n  a: a@1.0.0\ncolour: red\n").unwrap();
        let (registry, diagnostics) = Registry::load(dir.path()).unwrap();
        assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
        assert_eq!(diagnostics[0].code, "bad-manifest");
        let source = diagnostics[0].primary.source;
        assert_eq!(registry.sources().name(source), "safeshift.yaml");
        assert_eq!(registry.sources().line_col(source, diagnostics[0].primary.span.start), (3, 1));
    }

    #[test]
    fn the_embedded_registry_loads() {
        // Its contents are checked end to end in the root tests; here: it is there and parses.
        let (registry, _) = Registry::embedded();
        assert_eq!(registry.sources().ids().count(), embedded::FILES.len() + usize::from(embedded::MANIFEST.is_some()));
    }
}
