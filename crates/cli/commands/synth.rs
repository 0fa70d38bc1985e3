//! `safeshift synth`: a small checkpoint that fits a schema exactly, for tests.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use safeshift_engine::{write, OutputTensor, TensorSource, WriteOptions};
use safeshift_graph::{synth, VersionId};

use crate::exit_codes::ExitStatus;
use crate::printer::{anyhow_like::Error, Printer};
use crate::registry::{parse_dim, RegistryArgs};

/// Write a synthetic checkpoint of `FAMILY@VERSION`: every tensor of the schema with
/// seeded values, dims from `--dim`, else `safeshift.yaml`, else small defaults (2 for a
/// counted dim, 4 for any other).
#[derive(Args, Debug)]
pub struct SynthArgs {
    /// The version, `family@version`.
    #[arg(value_name = "FAMILY@VERSION")]
    pub version: String,
    /// Where to write the `.safetensors` file.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// A dim value, e.g. `--dim hidden=8` (repeatable).
    #[arg(long = "dim", value_name = "NAME=N", value_parser = parse_dim)]
    pub dims: Vec<(String, i64)>,
    /// The seed of the values (the same seed gives the same bytes).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Runs `safeshift synth`.
pub fn run(args: SynthArgs, printer: &Printer) -> Result<ExitStatus, Error> {
    let registry = args.registry.load_usable(printer.color)?;
    let version = VersionId::parse(&args.version)?;
    let dims: BTreeMap<String, i64> = args.dims.into_iter().collect();
    let checkpoint = synth(&registry, &version, &dims, args.seed)?;
    let tensors = checkpoint
        .layout
        .tensors
        .iter()
        .zip(&checkpoint.data)
        .map(|(info, data)| OutputTensor {
            name: info.name.clone(),
            dtype: info.dtype,
            shape: info.shape.clone(),
            source: TensorSource::Bytes(Cow::Borrowed(data.as_slice())),
        })
        .collect();
    let mut metadata = checkpoint.layout.metadata.clone();
    metadata.insert(safeshift_graph::SCHEMA_KEY.to_owned(), version.to_string());
    write(&args.output, tensors, &WriteOptions { metadata, ..WriteOptions::default() })?;
    if !printer.quiet {
        let dims: Vec<String> = checkpoint.dims.iter().map(|(name, value)| format!("{name} = {value}")).collect();
        eprintln!(
            "wrote `{}`: {} tensors of `{version}` ({})",
            args.output.display(),
            checkpoint.layout.tensors.len(),
            dims.join(", ")
        );
    }
    Ok(ExitStatus::Success)
}
