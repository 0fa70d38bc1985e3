//! How `upgrade` and `downgrade` show a batch run of the library
//! ([`safeshift::batch`]): a progress bar, each failure on stderr as it happens, then a
//! table (or one JSON record per file as soon as it is known, and a summary record).
//!
//! The run's exit status is 0 when every file succeeded or was skipped, 1 when some failed.

use std::io::Write as _;

use indicatif::{ProgressBar, ProgressStyle};
use safeshift::batch::{Batch, FileResult, Input, Outcome, Report, Shard};
use serde_json::json;

use crate::exit_codes::ExitStatus;
use crate::printer::{anyhow_like::Error, Printer};
use crate::render::{error_chain, human_size, one_line_error, sanitize};

/// Runs `batch` over `inputs` (already collected), keeping this worker's `shard`.
pub fn run(
    batch: &Batch<'_>,
    inputs: Vec<Input>,
    shard: Option<Shard>,
    json: bool,
    printer: &Printer,
) -> Result<ExitStatus, Error> {
    let inputs = batch.select(inputs, shard)?;
    let progress = progress_bar(printer.progress && !json, inputs.len());
    let report = batch.run(&inputs, |result| {
        if let Outcome::Failed(error) = &result.outcome {
            progress.suspend(|| eprintln!("{}", one_line_error(error, printer.color)));
        }
        if json {
            // One record per line as soon as it is known, so a long run can be followed.
            let line = serde_json::to_string(&json_record(result)).expect("JSON of plain values");
            let _ = writeln!(std::io::stdout().lock(), "{line}");
        }
        progress.inc(1);
    });
    progress.finish_and_clear();
    if json {
        println!("{}", serde_json::to_string(&json_summary(&report)).expect("JSON of plain values"));
    } else if !printer.quiet {
        print!("{}", table(&report));
    }
    Ok(if report.failed() > 0 { ExitStatus::No } else { ExitStatus::Success })
}

fn progress_bar(shown: bool, count: usize) -> ProgressBar {
    if !shown {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(count as u64);
    let style = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} files")
        .expect("a valid template");
    bar.set_style(style);
    bar
}

/// `a -> b`, or `a -> b (undo)` for the inverse of a migration.
fn steps(result: &FileResult) -> Vec<String> {
    let step = |step: &safeshift::graph::Step| {
        format!("{} -> {}{}", step.from, step.to, if step.inverse { " (undo)" } else { "" })
    };
    result.steps.iter().map(step).collect()
}

fn json_record(result: &FileResult) -> serde_json::Value {
    let (outcome, output, bytes, message) = match &result.outcome {
        Outcome::Written { output, bytes } => ("written", Some(output.display().to_string()), Some(*bytes), None),
        Outcome::Planned => ("planned", None, None, None),
        Outcome::Skipped(skip) => ("skipped", None, None, Some(skip.to_string())),
        Outcome::Failed(error) => ("failed", None, None, Some(error_chain(error))),
    };
    json!({
        "type": "file",
        "data": {
            "input": result.input.display().to_string(),
            "output": output,
            "from": result.from.as_ref().map(ToString::to_string),
            "to": result.to.as_ref().map(ToString::to_string),
            "migrations": steps(result),
            "outcome": outcome,
            "bytes": bytes,
            "seconds": (result.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
            "message": message,
        }
    })
}

fn json_summary(report: &Report) -> serde_json::Value {
    json!({
        "type": "summary",
        "data": {
            "files": report.files.len(),
            "written": report.written(),
            "planned": report.planned(),
            "skipped": report.skipped(),
            "failed": report.failed(),
        }
    })
}

fn table(report: &Report) -> String {
    let version =
        |version: &Option<safeshift::graph::VersionId>| version.as_ref().map_or("-".into(), ToString::to_string);
    let rows: Vec<[String; 6]> = report
        .files
        .iter()
        .map(|result| {
            let (outcome, size) = match &result.outcome {
                Outcome::Written { bytes, .. } => {
                    let done = if result.is_undo() { "downgraded" } else { "upgraded" };
                    (done.to_owned(), human_size(*bytes))
                }
                Outcome::Planned => (format!("would apply {} step(s)", result.steps.len()), String::new()),
                Outcome::Skipped(skip) => (format!("skipped: {}", sanitize(&skip.to_string())), String::new()),
                Outcome::Failed(_) => ("FAILED".to_owned(), String::new()),
            };
            [
                sanitize(&result.input.display().to_string()),
                version(&result.from),
                version(&result.to),
                outcome,
                size,
                format!("{:.2}s", result.elapsed.as_secs_f64()),
            ]
        })
        .collect();
    let header = ["file", "from", "to", "outcome", "size", "time"];
    let mut widths: Vec<usize> = header.iter().map(|cell| cell.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> =
            cells.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}", width = *width)).collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(&header.map(String::from));
    for row in &rows {
        out.push_str(&line(row));
    }
    out.push_str(&format!(
        "{} file(s): {} written, {} skipped, {} failed\n",
        report.files.len(),
        report.written(),
        report.skipped(),
        report.failed()
    ));
    out
}
