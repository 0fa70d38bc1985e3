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
    /// Loads the chosen registry with every diagnostic found while loading it.
    pub fn load(&self) -> Result<(Registry, Vec<Diagnostic>), Error> {
        match &self.registry {
            Some(dir) => Ok(Registry::load(dir)?),
            None => Ok(Registry::embedded()),
        }
    }

    /// Loads the registry; errors found while loading are printed and end the command
    /// (warnings are printed and the command goes on).
    pub fn load_usable(&self, color: bool) -> Result<Registry, Error> {
        let (registry, diagnostics) = self.load()?;
        if !diagnostics.is_empty() {
            eprint!("{}", crate::render::render_diagnostics(&diagnostics, registry.sources(), color));
        }
        let errors = diagnostics.iter().filter(|diagnostic| diagnostic.is_error()).count();
        if errors > 0 {
            return Err(format!("the registry has {errors} error{}", plural(errors)).into());
        }
        Ok(registry)
    }
}

/// "s" unless `count` is one.
pub fn plural(count: usize) -> &'static str {
    if count == 1 {
        ""
    } else {
        "s"
    }
}

/// Parses `--dim NAME=N`.
/// `NAME=VALUE` or `NAME=KEY:VALUE,KEY:VALUE` for `--param`.
pub fn parse_param(text: &str) -> Result<(String, safeshift::ops::ParamValue), String> {
    let (name, value) = text.split_once('=').ok_or_else(|| format!("`{text}` is not NAME=VALUE"))?;
    let name = name.trim();
    if name.is_empty() || value.is_empty() {
        return Err(format!("`{text}` is not NAME=VALUE"));
    }
    let value = safeshift::ops::ParamValue::parse(value).map_err(|err| format!("parameter `{name}`: {err}"))?;
    Ok((name.to_owned(), value))
}

pub fn parse_dim(text: &str) -> Result<(String, i64), String> {
    let (name, value) = text.split_once('=').ok_or_else(|| format!("`{text}` is not NAME=N"))?;
    let value: i64 = value.trim().parse().map_err(|_| format!("`{value}` is not an integer"))?;
    if value < 0 {
        return Err(format!("dim `{name}` cannot be negative"));
    }
    Ok((name.trim().to_owned(), value))
}
