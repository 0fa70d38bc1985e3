//! The machinery `upgrade` and `downgrade` share: for each checkpoint of a batch, detect,
//! plan, write; then report per file and in total.
//!
//! Files are independent: one that fails is reported and the others are still done. The
//! run's exit status is 0 when every file succeeded or was skipped, 1 when some failed.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use safeshift::open::{OpenOptions, Registry};
use safeshift_engine::{Checkpoint, TensorOrder, WriteOptions};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::exit_codes::ExitStatus;
use crate::inputs::{Input, InputKind, Shard};
use crate::printer::{anyhow_like::Error, Printer};
use crate::render::sanitize;

/// Where outputs go.
#[derive(Clone, Debug)]
pub enum Destination {
    /// One output file (one input only).
    File(PathBuf),
    /// A folder mirroring the inputs' relative paths.
    Dir(PathBuf),
    /// Replace each input, keeping `NAME.bak` when `backup`.
    InPlace {
        /// Keep the original as `NAME.bak`.
        backup: bool,
    },
    /// Write nothing (`--dry-run`).
    Nowhere,
}

/// Everything a batch run needs besides its inputs.
pub struct Batch<'a> {
    /// The registry.
    pub registry: &'a Registry,
    /// Target, dims, aux inputs, lossiness.
    pub options: OpenOptions,
    /// Where outputs go.
    pub destination: Destination,
    /// Print JSON records instead of a table.
    pub json: bool,
    /// Worker threads.
    pub jobs: usize,
    /// How the run is shown.
    pub printer: &'a Printer,
}

/// What happened to one input.
#[derive(Clone, Debug)]
enum Outcome {
    Written { output: PathBuf, bytes: u64 },
    Planned,
    Skipped { reason: String },
    Failed { error: String },
}

/// One line of the report.
#[derive(Clone, Debug)]
struct Record {
    input: PathBuf,
    from: Option<String>,
    to: Option<String>,
    steps: Vec<String>,
    /// Every step is the inverse of a migration: the file was taken back (a downgrade).
    undo: bool,
    outcome: Outcome,
    seconds: f64,
}

/// The metadata key recording which input an output was made from, so a rerun can skip
/// outputs that are up to date: `{"file": …, "bytes": …, "mtime_ns": …, "head_sha256": …}`,
/// the input's file name, size, modification time (nanoseconds since the epoch, as a
/// string; null where the file system has none) and the SHA-256 of its first MiB (the
/// header and the first tensors).
pub const SOURCE_KEY: &str = "safeshift.source";

/// Parses `--aux NAME=PATH`.
pub fn parse_aux(text: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = text.split_once('=').ok_or_else(|| format!("`{text}` is not NAME=PATH"))?;
    Ok((name.trim().to_owned(), PathBuf::from(path)))
}

/// Loads `--registry DIR`, or the embedded registry.
pub fn load_registry(dir: Option<&Path>, printer: &Printer) -> Result<Registry, Error> {
    let loaded = match dir {
        Some(dir) => Registry::load(dir),
        None => Registry::embedded(),
    };
    loaded.map_err(|err| {
        if !err.diagnostics.is_empty() {
            eprint!("{}", crate::render::render_diagnostics(&err.diagnostics, &err.sources, printer.color));
        }
        Box::new(err) as Error
    })
}

/// Runs the batch over `inputs` (already collected), keeping this worker's `shard`.
pub fn run(batch: &Batch<'_>, inputs: Vec<Input>, shard: Option<Shard>) -> Result<ExitStatus, Error> {
    if let Destination::Dir(dir) = &batch.destination {
        // Checked over all inputs, before sharding: two workers of an array job must not
        // write the same output either.
        check_distinct_outputs(dir, &inputs)?;
    }
    let inputs: Vec<Input> = inputs.into_iter().filter(|input| shard.is_none_or(|shard| shard.owns(input))).collect();
    if let Destination::File(_) = batch.destination {
        if inputs.len() != 1 {
            return Err(
                format!("-o names one output file, but there are {} inputs; use --out-dir", inputs.len()).into()
            );
        }
    }
    // Aux inputs given as pickles (the `graph.pt` anemoi-graphs saves) are converted once
    // for the run, like pickle inputs.
    let mut options = batch.options.clone();
    let mut converted_aux = Vec::new();
    for path in options.aux.values_mut() {
        if InputKind::of(path) == Some(InputKind::Pickle) {
            let temp = convert_pickle(path, &std::env::temp_dir())?;
            *path = temp.to_path_buf();
            converted_aux.push(temp);
        }
    }
    let with_aux = Batch {
        registry: batch.registry,
        options,
        destination: batch.destination.clone(),
        json: batch.json,
        jobs: batch.jobs,
        printer: batch.printer,
    };
    let batch = &with_aux;
    let progress = progress_bar(batch, inputs.len());
    let next = AtomicUsize::new(0);
    let records: Mutex<Vec<(usize, Record)>> = Mutex::new(Vec::with_capacity(inputs.len()));
    std::thread::scope(|scope| {
        for _ in 0..batch.jobs.clamp(1, inputs.len().max(1)) {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(input) = inputs.get(index) else { break };
                let record = process(batch, input);
                if let Outcome::Failed { error } = &record.outcome {
                    progress.suspend(|| eprintln!("{}", render_failure(error, batch.printer.color)));
                }
                if batch.json {
                    // One record per line as soon as it is known, so a long run can be followed.
                    let line = serde_json::to_string(&json_record(&record)).expect("JSON of plain values");
                    let mut stdout = std::io::stdout().lock();
                    let _ = writeln!(stdout, "{line}");
                }
                progress.inc(1);
                records.lock().expect("no panics while holding the lock").push((index, record));
            });
        }
    });
    progress.finish_and_clear();
    let mut records = records.into_inner().expect("no panics while holding the lock");
    records.sort_by_key(|(index, _)| *index);
    let records: Vec<Record> = records.into_iter().map(|(_, record)| record).collect();
    let failed = records.iter().filter(|record| matches!(record.outcome, Outcome::Failed { .. })).count();
    if batch.json {
        println!("{}", serde_json::to_string(&json_summary(&records)).expect("JSON of plain values"));
    } else if !batch.printer.quiet {
        print!("{}", table(&records));
    }
    Ok(if failed > 0 { ExitStatus::No } else { ExitStatus::Success })
}

/// Refuses inputs whose outputs would collide in `dir` (`model.pt` and `model.safetensors`
/// in one folder): they would overwrite each other, and every rerun would redo both.
fn check_distinct_outputs(dir: &Path, inputs: &[Input]) -> Result<(), Error> {
    let mut seen: BTreeMap<PathBuf, &Path> = BTreeMap::new();
    for input in inputs {
        let output = dir.join(output_name(&input.relative));
        if let Some(first) = seen.insert(output.clone(), &input.path) {
            return Err(format!(
                "`{}` and `{}` would both be written to `{}`; upgrade them separately",
                first.display(),
                input.path.display(),
                output.display()
            )
            .into());
        }
    }
    Ok(())
}

fn progress_bar(batch: &Batch<'_>, count: usize) -> ProgressBar {
    if !batch.printer.progress || batch.json {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(count as u64);
    let style = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} files")
        .expect("a valid template");
    bar.set_style(style);
    bar
}

fn render_failure(error: &str, color: bool) -> String {
    let head = if color { "\x1b[1;31merror\x1b[0m" } else { "error" };
    format!("{head}: {}", sanitize(error))
}

fn process(batch: &Batch<'_>, input: &Input) -> Record {
    let started = Instant::now();
    let mut record = Record {
        input: input.path.clone(),
        from: None,
        to: None,
        steps: Vec::new(),
        undo: false,
        outcome: Outcome::Planned,
        seconds: 0.0,
    };
    record.outcome = match process_inner(batch, input, &mut record) {
        Ok(outcome) => outcome,
        Err(err) => Outcome::Failed { error: error_chain(err.as_ref()) },
    };
    record.seconds = started.elapsed().as_secs_f64();
    record
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Wrapper errors often repeat their cause's text.
        if !text.contains(&cause_text) {
            text.push_str(&format!(": {cause_text}"));
        }
        source = cause.source();
    }
    text
}

fn process_inner(batch: &Batch<'_>, input: &Input, record: &mut Record) -> Result<Outcome, Error> {
    // A pickle is converted first, into a hidden file beside the output, deleted at the end.
    let converted = match InputKind::of(&input.path) {
        Some(InputKind::Pickle) => Some(convert_pickle(&input.path, &scratch_dir(batch, input))?),
        _ => None,
    };
    let open_path: &Path = converted.as_deref().unwrap_or(&input.path);
    let checkpoint = Checkpoint::open(open_path)?;
    let prepared = match batch.registry.prepare(&input.path, checkpoint.layout(), &batch.options) {
        Ok(prepared) => prepared,
        Err(err) => {
            // The version may be known even though the plan failed (no path, lossy, bad
            // target): the error carries it, and the report says where the file is and
            // where it was asked to go.
            record.from = err.detection().map(|detection| detection.version.to_string());
            record.to = err.target().map(ToString::to_string);
            return Err(err.into());
        }
    };
    record.undo = !prepared.plan.steps.is_empty() && prepared.plan.steps.iter().all(|step| step.inverse);
    record.from = Some(prepared.plan.from.to_string());
    record.to = Some(prepared.plan.to.to_string());
    record.steps = prepared
        .plan
        .steps
        .iter()
        .map(|step| format!("{} -> {}{}", step.from, step.to, if step.inverse { " (undo)" } else { "" }))
        .collect();
    if prepared.plan.steps.is_empty() && converted.is_none() {
        return Ok(Outcome::Skipped { reason: format!("already at {}", prepared.plan.to) });
    }
    let output = match &batch.destination {
        Destination::Nowhere => return Ok(Outcome::Planned),
        Destination::File(path) => path.clone(),
        Destination::Dir(dir) => dir.join(output_name(&input.relative)),
        Destination::InPlace { .. } => {
            if input_kind_is_single_safetensors(&input.path) {
                input.path.clone()
            } else {
                return Err(
                    "--in-place replaces single .safetensors files only; use --out-dir for pickles and sharded sets"
                        .into(),
                );
            }
        }
    };
    let source_stamp = source_stamp(&input.path)?;
    if output != input.path && up_to_date(&output, &source_stamp, &prepared.plan.to.to_string()) {
        return Ok(Outcome::Skipped { reason: format!("{} is up to date", output.display()) });
    }
    let migrated = batch.registry.open_prepared(&input.path, checkpoint, prepared, &batch.options)?;
    let mut metadata = BTreeMap::new();
    metadata.insert(SOURCE_KEY.to_owned(), source_stamp.to_string());
    let write_options = WriteOptions { metadata, order: TensorOrder::AsGiven, ..WriteOptions::default() };
    if let Some(parent) = output.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    if let Destination::InPlace { backup: true } = batch.destination {
        let backup = backup_path(&input.path);
        // A hard link keeps the original bytes under the backup name for free; the
        // atomic rename of the writer then replaces only the directory entry.
        let _ = std::fs::remove_file(&backup);
        std::fs::hard_link(&input.path, &backup).or_else(|_| std::fs::copy(&input.path, &backup).map(|_| ()))?;
    }
    let summary = migrated.write_to(&output, &write_options)?;
    Ok(Outcome::Written { output, bytes: summary.bytes })
}

fn input_kind_is_single_safetensors(path: &Path) -> bool {
    InputKind::of(path) == Some(InputKind::Safetensors)
}

fn scratch_dir(batch: &Batch<'_>, input: &Input) -> PathBuf {
    let beside = |path: &Path| path.parent().filter(|parent| !parent.as_os_str().is_empty()).map(Path::to_path_buf);
    match &batch.destination {
        Destination::File(path) => beside(path),
        Destination::Dir(dir) => Some(dir.clone()),
        Destination::InPlace { .. } | Destination::Nowhere => beside(&input.path),
    }
    .unwrap_or_else(|| PathBuf::from("."))
}

fn convert_pickle(path: &Path, dir: &Path) -> Result<tempfile::TempPath, Error> {
    std::fs::create_dir_all(dir)?;
    // Named like the engine's temporaries, so a run killed mid-conversion leaves a file that
    // `safeshift` (and the book's clean-up recipe) recognises as a leftover.
    let prefix = format!(".converted{}", safeshift_engine::TEMP_INFIX);
    let temp = tempfile::Builder::new().prefix(&prefix).suffix(".safetensors").tempfile_in(dir)?;
    let temp = temp.into_temp_path();
    // Every state-dict name is kept, tied or not: today's code loads with strict=True.
    let options = safeshift_torch::ConvertOptions { keep_shared: true, ..safeshift_torch::ConvertOptions::default() };
    let converted = safeshift_torch::open(path, &options)?;
    let (tensors, metadata) = crate::commands::convert::file_contents(&converted)?;
    let write_options = WriteOptions { metadata, order: TensorOrder::AsGiven, ..WriteOptions::default() };
    safeshift_engine::write(&temp, tensors, &write_options)?;
    Ok(temp)
}

/// `model.pt` → `model.safetensors`; `model.safetensors.index.json` → `model.safetensors`.
fn output_name(relative: &Path) -> PathBuf {
    let name = relative.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let stem = name
        .strip_suffix(".safetensors.index.json")
        .or_else(|| name.strip_suffix(".safetensors"))
        .or_else(|| [".pt", ".pth", ".bin", ".ckpt"].iter().find_map(|ext| name.strip_suffix(ext)))
        .unwrap_or(&name);
    relative.with_file_name(format!("{stem}.safetensors"))
}

fn backup_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".bak");
    path.with_file_name(name)
}

/// Identifies an input cheaply: its name, size, modification time and the hash of its first MiB.
fn source_stamp(path: &Path) -> Result<serde_json::Value, Error> {
    use std::io::Read as _;
    let mut file = std::fs::File::open(path)?;
    let stat = file.metadata()?;
    let bytes = stat.len();
    // The modification time catches a rewrite that keeps the size and the first MiB (a
    // fine-tune of the later layers); a copy that resets it only costs a redo.
    let mtime_ns = stat
        .modified()
        .ok()
        .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|since| since.as_nanos().to_string());
    let mut head = vec![0u8; 1 << 20];
    let mut filled = 0;
    while filled < head.len() {
        let read = file.read(&mut head[filled..])?;
        if read == 0 {
            break;
        }
        filled += read;
    }
    let digest = Sha256::digest(&head[..filled]);
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(json!({ "file": name, "bytes": bytes, "mtime_ns": mtime_ns, "head_sha256": hex }))
}

/// Whether `output` exists, is at `target`, and was made from the input with this stamp.
fn up_to_date(output: &Path, stamp: &serde_json::Value, target: &str) -> bool {
    let Ok(checkpoint) = Checkpoint::open(output) else { return false };
    let metadata = &checkpoint.layout().metadata;
    let recorded: Option<serde_json::Value> = metadata.get(SOURCE_KEY).and_then(|text| serde_json::from_str(text).ok());
    recorded.as_ref() == Some(stamp) && metadata.get(safeshift_graph::SCHEMA_KEY).map(String::as_str) == Some(target)
}

fn json_record(record: &Record) -> serde_json::Value {
    let (outcome, output, bytes, error) = match &record.outcome {
        Outcome::Written { output, bytes } => ("written", Some(output.display().to_string()), Some(*bytes), None),
        Outcome::Planned => ("planned", None, None, None),
        Outcome::Skipped { reason } => ("skipped", None, None, Some(reason.clone())),
        Outcome::Failed { error } => ("failed", None, None, Some(error.clone())),
    };
    json!({
        "type": "file",
        "data": {
            "input": record.input.display().to_string(),
            "output": output,
            "from": record.from,
            "to": record.to,
            "migrations": record.steps,
            "outcome": outcome,
            "bytes": bytes,
            "seconds": (record.seconds * 1000.0).round() / 1000.0,
            "message": error,
        }
    })
}

fn json_summary(records: &[Record]) -> serde_json::Value {
    let count = |wanted: &str| {
        records
            .iter()
            .filter(|record| {
                matches!(
                    (&record.outcome, wanted),
                    (Outcome::Written { .. }, "written")
                        | (Outcome::Planned, "planned")
                        | (Outcome::Skipped { .. }, "skipped")
                        | (Outcome::Failed { .. }, "failed")
                )
            })
            .count()
    };
    json!({
        "type": "summary",
        "data": {
            "files": records.len(),
            "written": count("written"),
            "planned": count("planned"),
            "skipped": count("skipped"),
            "failed": count("failed"),
        }
    })
}

fn table(records: &[Record]) -> String {
    let rows: Vec<[String; 6]> = records
        .iter()
        .map(|record| {
            let (outcome, size) = match &record.outcome {
                Outcome::Written { bytes, .. } => {
                    let done = if record.undo { "downgraded" } else { "upgraded" };
                    (done.to_owned(), crate::commands::inspect::human_size(*bytes))
                }
                Outcome::Planned => (format!("would apply {} step(s)", record.steps.len()), String::new()),
                Outcome::Skipped { reason } => (format!("skipped: {reason}"), String::new()),
                Outcome::Failed { .. } => ("FAILED".to_owned(), String::new()),
            };
            [
                sanitize(&record.input.display().to_string()),
                record.from.clone().unwrap_or_else(|| "-".into()),
                record.to.clone().unwrap_or_else(|| "-".into()),
                outcome,
                size,
                format!("{:.2}s", record.seconds),
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
    let failed = records.iter().filter(|record| matches!(record.outcome, Outcome::Failed { .. })).count();
    let written = records.iter().filter(|record| matches!(record.outcome, Outcome::Written { .. })).count();
    let skipped = records.iter().filter(|record| matches!(record.outcome, Outcome::Skipped { .. })).count();
    out.push_str(&format!("{} file(s): {written} written, {skipped} skipped, {failed} failed\n", records.len()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_names_become_safetensors() {
        assert_eq!(output_name(Path::new("a/model.pt")), Path::new("a/model.safetensors"));
        assert_eq!(output_name(Path::new("m.safetensors.index.json")), Path::new("m.safetensors"));
        assert_eq!(output_name(Path::new("x.safetensors")), Path::new("x.safetensors"));
    }

    #[test]
    fn aux_parses() {
        assert_eq!(parse_aux("graph=g.safetensors"), Ok(("graph".into(), PathBuf::from("g.safetensors"))));
    }
}
