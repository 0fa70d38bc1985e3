//! `safeshift schema infer`: a canonical schema for a checkpoint or a layout JSON.

use std::path::PathBuf;

use clap::Args;
use safeshift_evolve::{infer_schema_text, InferOptions};

use crate::exit_codes::ExitStatus;
use crate::printer::{anyhow_like::Error, Printer};
use crate::registry::RegistryArgs;

/// Infer a schema from a checkpoint: repeated indexed blocks folded into `{i < n}`
/// patterns, sizes as named dims (one per distinct size, named after it: `d24`) and
/// products (`[3 * d24, d24]`), exact dtypes, metadata keys. The text is canonical
/// (`safeshift fmt --check` accepts it) and the checkpoint fits it exactly.
#[derive(Args, Debug)]
pub struct SchemaInferArgs {
    /// A checkpoint (`.safetensors`, a PyTorch file read without running anything, a
    /// sharded set's `.index.json`), a layout JSON
    /// (`{"tensors": {name: {"dtype", "shape"}}, "metadata": {…}}`), a schema file
    /// (`.ss`) or `family@version`.
    #[arg(value_name = "CHECKPOINT")]
    pub input: String,
    /// The schema's family.
    #[arg(long, default_value = "model")]
    pub family: String,
    /// The schema's version.
    #[arg(long, default_value = "0.0.0")]
    pub version: String,
    /// Write the schema to FILE (atomically) instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub pickle: crate::pickle::PickleArgs,
}

/// Runs `safeshift schema infer`.
pub fn run(args: SchemaInferArgs, printer: &Printer) -> Result<ExitStatus, Error> {
    let opened = crate::layout_input::open(&args.input, &args.registry, &args.pickle)?;
    let origin = format!("Inferred by `safeshift schema infer` from {} tensors.", opened.layout.tensors.len());
    let options = InferOptions { family: args.family, version: args.version, origin: Some(origin) };
    let text = infer_schema_text(&opened.layout, &options)?;
    match &args.output {
        Some(path) => {
            safeshift::engine::write_file_atomically(path, text.as_bytes())
                .map_err(|err| format!("cannot write `{}`: {err}", path.display()))?;
            if !printer.quiet {
                eprintln!("wrote {}", path.display());
            }
        }
        None => print!("{text}"),
    }
    Ok(ExitStatus::Success)
}
