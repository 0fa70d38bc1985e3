//! `safeshift detect`: which family and version a checkpoint is.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use safeshift_engine::Checkpoint;
use safeshift_graph::{detect, DetectError, Detection, Evidence};

use crate::exit_codes::ExitStatus;
use crate::printer::{anyhow_like::Error, Printer};
use crate::registry::{parse_dim, RegistryArgs};
use crate::render;

/// Find a checkpoint's family and version from its header alone.
///
/// A version recorded by safeshift in the metadata is trusted only when the layout fits
/// it; otherwise the layout is unified with every schema. Where the file records the
/// release that wrote it (Anemoi's `provenance_training.module_versions`, as the
/// registry's `provenance:` settings say), that release names the version among those the
/// layout fits (so a 0.18.0 checkpoint, whose layout is 0.17.0's, is named 0.18.0), and a
/// release whose layout the file does not have is reported as a warning. No fit prints the
/// nearest schemas with their differences; several fits list them. Both exit with 1.
#[derive(Args, Debug)]
pub struct DetectArgs {
    /// The checkpoint: a `.safetensors` file, a PyTorch file (`.pt`, `.pth`, `.bin`, `.ckpt`;
    /// read without running anything), or a sharded set's `.index.json`.
    pub path: PathBuf,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// A dim no shape or metadata tells, e.g. `--dim heads=32` (repeatable).
    #[arg(long = "dim", value_name = "NAME=N", value_parser = parse_dim)]
    pub dims: Vec<(String, i64)>,
    #[command(flatten)]
    pub pickle: crate::pickle::PickleArgs,
    /// Print the result as JSON: `{"type": "detection" | "ambiguous" | "no-fit", "data": …}`.
    #[arg(long)]
    pub json: bool,
}

/// Runs `safeshift detect`.
pub fn run(args: DetectArgs, printer: &Printer) -> Result<ExitStatus, Error> {
    let registry = args.registry.open(printer.color)?;
    let registry = registry.graph();
    let checkpoint = Checkpoint::open_with(&args.path, &args.pickle.read_options())?;
    let dims: BTreeMap<String, i64> = args.dims.into_iter().collect();
    let result = detect(registry, &checkpoint.layout_with_extras(), &dims);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json(&result))?);
    } else {
        match &result {
            Ok(detection) => print!("{}", render::detection(detection)),
            Err(err) => eprint!("{}", render::detect_error(&args.path, err)),
        }
    }
    Ok(if result.is_ok() { ExitStatus::Success } else { ExitStatus::No })
}

fn json(result: &Result<Detection, DetectError>) -> serde_json::Value {
    match result {
        Ok(detection) => serde_json::json!({
            "type": "detection",
            "data": {
                "family": detection.version.family,
                "version": detection.version.version.to_string(),
                "id": detection.version.to_string(),
                "evidence": match detection.evidence {
                    Evidence::Recorded => "recorded",
                    Evidence::OnlyFit => "only-fit",
                    Evidence::Provenance => "provenance",
                    Evidence::OldestFit => "oldest-fit",
                    Evidence::Given => "given",
                },
                "release": detection.provenance.as_ref().map(|record| record.release.clone()),
                "contradicted_by": detection.contradicted().map(ToString::to_string),
                "alternatives": detection.alternatives.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "key_layout": detection.key_layout.as_ref().map(|key_layout| key_layout.kind.clone()),
                "dims": detection.dims,
            }
        }),
        Err(DetectError::Ambiguous { candidates }) => serde_json::json!({
            "type": "ambiguous",
            "data": { "candidates": candidates.iter().map(ToString::to_string).collect::<Vec<_>>() }
        }),
        Err(DetectError::NoFit { nearest }) => serde_json::json!({
            "type": "no-fit",
            "data": {
                "nearest": nearest.iter().map(|near| serde_json::json!({
                    "id": near.version.to_string(),
                    "score": near.score,
                    "diff": format!("{:#}", near.mismatch),
                })).collect::<Vec<_>>()
            }
        }),
        Err(other) => serde_json::json!({ "type": "error", "data": { "message": other.to_string() } }),
    }
}
