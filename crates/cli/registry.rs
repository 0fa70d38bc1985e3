//! What every registry-reading command shares: `--registry DIR`, loading, and printing
//! the registry's diagnostics.

use std::path::PathBuf;

use clap::Args;
use safeshift_dsl::Diagnostic;
use safeshift_graph::Registry;

use crate::printer::anyhow_like::Error;

/// Which registry to read.
#[derive(Args, Debug, Clone)]
pub struct RegistryArgs {
    /// A registry folder (with `schemas/` and `migrations/`) instead of the one built in.
    #[arg(long, value_name = "DIR")]
    pub registry: Option<PathBuf>,
}

impl RegistryArgs {
    /// Loads the chosen registry with every diagnostic found while loading it, errors
    /// included: what `check` reports (every other command uses [`RegistryArgs::open`]).
    pub fn load(&self) -> Result<(Registry, Vec<Diagnostic>), Error> {
        match &self.registry {
            Some(dir) => Ok(Registry::load(dir)?),
            None => Ok(Registry::embedded()),
        }
    }

    /// The chosen registry, as every command but `check` uses it (one registry type: the
    /// facade's, whose `graph()` the registry-reading commands read): warnings found while
    /// loading are printed and the command goes on; errors are printed and end it.
    pub fn open(&self, color: bool) -> Result<safeshift::Registry, Error> {
        let loaded = match &self.registry {
            Some(dir) => safeshift::Registry::load(dir),
            None => safeshift::Registry::embedded(),
        };
        let registry = loaded.map_err(|err| {
            if !err.diagnostics.is_empty() {
                eprint!("{}", crate::render::render_diagnostics(&err.diagnostics, &err.sources, color));
            }
            Box::new(err) as Error
        })?;
        if !registry.warnings().is_empty() {
            let sources = registry.graph().sources();
            eprint!("{}", crate::render::render_diagnostics(registry.warnings(), sources, color));
        }
        Ok(registry)
    }
}

/// Parses `--aux NAME=PATH`.
pub fn parse_aux(text: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = text.split_once('=').ok_or_else(|| format!("`{text}` is not NAME=PATH"))?;
    Ok((name.trim().to_owned(), PathBuf::from(path)))
}

/// Parses `NAME=VALUE` or `NAME=KEY:VALUE,KEY:VALUE` for `--param`.
pub fn parse_param(text: &str) -> Result<(String, safeshift::ops::ParamValue), String> {
    let (name, value) = text.split_once('=').ok_or_else(|| format!("`{text}` is not NAME=VALUE"))?;
    let name = name.trim();
    if name.is_empty() || value.is_empty() {
        return Err(format!("`{text}` is not NAME=VALUE"));
    }
    let value = safeshift::ops::ParamValue::parse(value).map_err(|err| format!("parameter `{name}`: {err}"))?;
    Ok((name.to_owned(), value))
}

/// Parses `--dim NAME=N`.
pub fn parse_dim(text: &str) -> Result<(String, i64), String> {
    let (name, value) = text.split_once('=').ok_or_else(|| format!("`{text}` is not NAME=N"))?;
    let value: i64 = value.trim().parse().map_err(|_| format!("`{value}` is not an integer"))?;
    if value < 0 {
        return Err(format!("dim `{name}` cannot be negative"));
    }
    Ok((name.trim().to_owned(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aux_parses() {
        assert_eq!(parse_aux("graph=g.safetensors"), Ok(("graph".into(), PathBuf::from("g.safetensors"))));
        assert!(parse_aux("graph").is_err());
    }
}
