//! `safeshift verify`: is a checkpoint sound, down to its last byte?

use std::path::PathBuf;

use clap::Args;
use safeshift_engine::{Checkpoint, ReadError, ReadErrorKind, VerifyReport};
use serde_json::json;

use crate::exit_codes::ExitStatus;
use crate::printer::{anyhow_like::Error, Printer};
use crate::render::{human_size, sanitize};

/// Check a checkpoint completely: everything `inspect` checks, then read every byte,
/// compare recorded SHA-256 checksums (`safeshift.sha256` metadata) and boolean values.
///
/// Exits with 0 for a sound checkpoint, 1 for an unsound one (the reasons are printed),
/// 2 when it cannot be read at all (missing file, permissions, I/O error).
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The checkpoint: a `.safetensors` file, a PyTorch file (`.pt`, `.pth`, `.bin`,
    /// `.ckpt`), or a sharded set's `.index.json`.
    pub path: PathBuf,
    #[command(flatten)]
    pub pickle: crate::pickle::PickleArgs,
    /// Print JSON (`{"type": "verify", "data": {…}}`) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `safeshift verify`.
pub fn run(args: VerifyArgs, printer: &Printer) -> Result<ExitStatus, Error> {
    let outcome = Checkpoint::open_with(&args.path, &args.pickle.read_options()).and_then(|checkpoint| {
        let report = safeshift_engine::verify(&checkpoint)?;
        Ok((checkpoint, report))
    });
    let (problems, report) = match outcome {
        Ok((_, report)) => {
            let problems: Vec<(String, Option<String>, String)> = report
                .problems
                .iter()
                .map(|problem| (problem.path.display().to_string(), problem.tensor.clone(), problem.kind.to_string()))
                .collect();
            (problems, Some(report))
        }
        Err(err) if is_unreadable(&err) => return Err(err.into()),
        Err(err) => (vec![(err.path.display().to_string(), None, err.kind.to_string())], None),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json_output(&args.path, &problems, report.as_ref()))?);
    } else if !printer.quiet || !problems.is_empty() {
        print!("{}", human_output(&args.path, &problems, report.as_ref()));
    }
    Ok(if problems.is_empty() { ExitStatus::Success } else { ExitStatus::No })
}

/// Whether the checkpoint could not be read at all (exit 2), as opposed to read and found
/// unsound (exit 1).
fn is_unreadable(err: &ReadError) -> bool {
    matches!(err.kind, ReadErrorKind::Io { .. } | ReadErrorKind::FileChanged { .. })
}

fn json_output(
    path: &std::path::Path,
    problems: &[(String, Option<String>, String)],
    report: Option<&VerifyReport>,
) -> serde_json::Value {
    let problems: Vec<serde_json::Value> = problems
        .iter()
        .map(|(file, tensor, message)| json!({ "file": file, "tensor": tensor, "message": message }))
        .collect();
    json!({
        "type": "verify",
        "data": {
            "path": path.to_string_lossy(),
            "sound": problems.is_empty(),
            "header_valid": report.is_some(),
            "tensors": report.map(|r| r.tensors),
            "bytes": report.map(|r| r.bytes),
            "checksums_matched": report.map(|r| r.checksums_matched),
            "problems": problems,
        }
    })
}

fn human_output(
    path: &std::path::Path,
    problems: &[(String, Option<String>, String)],
    report: Option<&VerifyReport>,
) -> String {
    let shown = sanitize(&path.display().to_string());
    let mut out = String::new();
    match report {
        Some(report) => {
            let verdict = if problems.is_empty() { "sound" } else { "unsound" };
            out.push_str(&format!(
                "{shown}: {verdict}: {} tensors, {} read, {} checksums matched\n",
                report.tensors,
                human_size(report.bytes),
                report.checksums_matched
            ));
        }
        None => out.push_str(&format!("{shown}: unsound: not a valid checkpoint\n")),
    }
    for (file, tensor, message) in problems {
        let tensor = tensor.as_ref().map(|name| format!("tensor `{}`: ", sanitize(name))).unwrap_or_default();
        out.push_str(&format!("  `{}`: {tensor}{}\n", sanitize(file), sanitize(message)));
    }
    out
}
