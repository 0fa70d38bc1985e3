//! `safeshift synth`: a small checkpoint that fits a schema exactly, for tests.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use safeshift_engine::{write, OutputTensor, TensorSource, WriteOptions};
use safeshift_graph::{synth_with_captures, VersionId};

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
    /// The values of a name capture of the schema, e.g. `--capture dataset=era5,cerra` for
    /// a checkpoint of two datasets (repeatable; a capture not given takes its own name).
    #[arg(long = "capture", value_name = "NAME=V1,V2", value_parser = parse_capture)]
    pub captures: Vec<(String, Vec<String>)>,
    /// The seed of the values (the same seed gives the same bytes).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

fn parse_capture(text: &str) -> Result<(String, Vec<String>), String> {
    let (name, values) = text.split_once('=').ok_or_else(|| format!("`{text}` is not NAME=V1,V2"))?;
    let values: Vec<String> = values.split(',').map(str::to_owned).collect();
    if name.is_empty() || values.iter().any(String::is_empty) {
        return Err(format!("`{text}` is not NAME=V1,V2"));
    }
    Ok((name.to_owned(), values))
}

/// Runs `safeshift synth`.
pub fn run(args: SynthArgs, printer: &Printer) -> Result<ExitStatus, Error> {
    let registry = args.registry.open(printer.color)?;
    let registry = registry.graph();
    let version = VersionId::parse(&args.version)?;
    let dims: BTreeMap<String, i64> = args.dims.into_iter().collect();
    let captures: BTreeMap<String, Vec<String>> = args.captures.into_iter().collect();
    let checkpoint = synth_with_captures(registry, &version, &dims, &captures, args.seed)?;
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
