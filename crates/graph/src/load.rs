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
