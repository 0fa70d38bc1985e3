//! `safeshift inspect`: what a checkpoint holds (safetensors from its headers alone; a
//! PyTorch file from its pickle, read without running anything).
//!
//! The `--json` output is a contract (documented in `book/src/inspect.md`); its types
//! live here, not on library types.

mod pickle;

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use safeshift::batch::InputKind;
use safeshift_engine::Checkpoint;
use serde_json::{json, Value};

use crate::exit_codes::ExitStatus;
use crate::printer::{anyhow_like::Error, Printer};
use crate::render::{human_size, input_format_name, sanitize};

/// Show a checkpoint's tensors, dtypes and metadata without reading its data.
///
/// PATH is a `.safetensors` file, a PyTorch file (`.pt`, `.pth`, `.bin`, `.ckpt`: its
/// pickle is read, nothing in it runs), or the index of a sharded set of either; the format
/// is told by content. The state dict is listed as the tensors; tensors held outside it
/// (supporting arrays, graph tensors) as extras. A malformed file is an error (exit code 2).
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The checkpoint: a `.safetensors` or PyTorch file, or a sharded set's `.index.json`.
    pub path: PathBuf,
    #[command(flatten)]
    pub pickle: crate::pickle::PickleArgs,
    /// Print JSON (one object, `{"type": "inspect", "data": {…}}`) instead of text.
    #[arg(long)]
    pub json: bool,
    /// List the tensors: name, dtype, shape, bytes (and file, for a sharded set).
    #[arg(long)]
    pub tensors: bool,
    /// List only tensors whose name matches this glob (implies `--tensors`), e.g. `'*.bias'`.
    #[arg(long, value_name = "GLOB")]
    pub filter: Option<String>,
}

/// Runs `safeshift inspect`.
pub fn run(args: InspectArgs, printer: &Printer) -> Result<ExitStatus, Error> {
    let _ = printer;
    if InputKind::of(&args.path) == Some(InputKind::Pickle) {
        return pickle::run(&args);
    }
    let matcher = match &args.filter {
        Some(glob) => Some(globset::Glob::new(glob)?.compile_matcher()),
        None => None,
    };
    let checkpoint = Checkpoint::open_with(&args.path, &args.pickle.read_options())?;
    let summary = Summary::of(&checkpoint);
    let listed: Option<Vec<usize>> = (args.tensors || matcher.is_some()).then(|| {
        let tensors = &checkpoint.layout().tensors;
        (0..tensors.len()).filter(|&index| matcher.as_ref().is_none_or(|m| m.is_match(&tensors[index].name))).collect()
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json_output(&checkpoint, &summary, listed.as_deref()))?);
    } else {
        print!("{}", human_output(&checkpoint, &summary, listed.as_deref()));
    }
    Ok(ExitStatus::Success)
}

/// Counts over the whole checkpoint.
struct Summary {
    total_bytes: u64,
    /// Safetensors dtype name → (tensors, bytes), by name.
    dtypes: BTreeMap<&'static str, (usize, u64)>,
}

impl Summary {
    fn of(checkpoint: &Checkpoint) -> Summary {
        let mut summary = Summary { total_bytes: 0, dtypes: BTreeMap::new() };
        for info in &checkpoint.layout().tensors {
            // Validated at open: every tensor has a byte length.
            let bytes = info.byte_len().unwrap_or(0);
            summary.total_bytes += bytes;
            let entry = summary.dtypes.entry(info.dtype.safetensors_name()).or_default();
            entry.0 += 1;
            entry.1 += bytes;
        }
        summary
    }
}

fn json_output(checkpoint: &Checkpoint, summary: &Summary, listed: Option<&[usize]>) -> Value {
    let layout = checkpoint.layout();
    let sharded = checkpoint.index_metadata().is_some();
    let dtypes: serde_json::Map<String, Value> = summary
        .dtypes
        .iter()
        .map(|(name, (tensors, bytes))| ((*name).to_owned(), json!({ "tensors": tensors, "bytes": bytes })))
        .collect();
    let mut data = json!({
        "path": checkpoint.path().to_string_lossy(),
        "format": input_format_name(checkpoint.format()),
        "sharded": sharded,
        "files": checkpoint.files().map(|path| path.to_string_lossy()).collect::<Vec<_>>(),
        "tensor_count": layout.tensors.len(),
        "total_bytes": summary.total_bytes,
        "dtypes": dtypes,
        "metadata": layout.metadata,
        "index_metadata": checkpoint.index_metadata(),
        "extras": checkpoint.extras().iter().map(|info| json!({
            "name": info.name,
            "dtype": info.dtype.safetensors_name(),
            "shape": info.shape,
            "bytes": info.byte_len().unwrap_or(0),
        })).collect::<Vec<_>>(),
    });
    if let Some(listed) = listed {
        let tensors: Vec<Value> = listed
            .iter()
            .map(|&index| {
                let info = &layout.tensors[index];
                let mut tensor = json!({
                    "name": info.name,
                    "dtype": info.dtype.safetensors_name(),
                    "shape": info.shape,
                    "bytes": info.byte_len().unwrap_or(0),
                });
                if sharded {
                    let file = checkpoint.file_of(&info.name).and_then(|path| path.file_name());
                    tensor["file"] = json!(file.map(|name| name.to_string_lossy()));
                }
                tensor
            })
            .collect();
        data["tensors"] = Value::Array(tensors);
    }
    json!({ "type": "inspect", "data": data })
}

fn human_output(checkpoint: &Checkpoint, summary: &Summary, listed: Option<&[usize]>) -> String {
    let layout = checkpoint.layout();
    let mut out = String::new();
    out.push_str(&format!("{}\n", sanitize(&checkpoint.path().display().to_string())));
    out.push_str(&format!("  format   {}\n", input_format_name(checkpoint.format())));
    if checkpoint.index_metadata().is_some() {
        out.push_str(&format!("  files    {} shards\n", checkpoint.files().len()));
    }
    out.push_str(&format!("  tensors  {}\n", layout.tensors.len()));
    out.push_str(&format!("  bytes    {} ({})\n", summary.total_bytes, human_size(summary.total_bytes)));
    out.push_str("  dtypes  ");
    if summary.dtypes.is_empty() {
        out.push_str(" none");
    }
    for (index, (name, (tensors, bytes))) in summary.dtypes.iter().enumerate() {
        let separator = if index == 0 { " " } else { ", " };
        out.push_str(&format!("{separator}{name} × {tensors} ({})", human_size(*bytes)));
    }
    out.push('\n');
    if !checkpoint.extras().is_empty() {
        let bytes: u64 = checkpoint.extras().iter().map(|info| info.byte_len().unwrap_or(0)).sum();
        let names: Vec<String> = checkpoint.extras().iter().map(|info| sanitize(&info.name)).collect();
        out.push_str(&format!("  extras   {} ({}): {}\n", names.len(), human_size(bytes), names.join(", ")));
    }
    if !layout.metadata.is_empty() {
        out.push_str("metadata\n");
        for (key, value) in &layout.metadata {
            out.push_str(&format!("  {}: {}\n", sanitize(key), metadata_value(value)));
        }
    }
    if let Some(index_metadata) = checkpoint.index_metadata().filter(|meta| !meta.is_empty()) {
        out.push_str("index metadata\n");
        for (key, value) in index_metadata {
            out.push_str(&format!("  {}: {}\n", sanitize(key), sanitize(&value.to_string())));
        }
    }
    if let Some(listed) = listed {
        out.push_str(&format!("tensors ({} listed)\n", listed.len()));
        let rows: Vec<[String; 4]> = listed
            .iter()
            .map(|&index| {
                let info = &layout.tensors[index];
                let shape = info.shape.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
                [
                    sanitize(&info.name),
                    info.dtype.safetensors_name().to_owned(),
                    format!("[{shape}]"),
                    info.byte_len().unwrap_or(0).to_string(),
                ]
            })
            .collect();
        let width = |column: usize| rows.iter().map(|row| row[column].chars().count()).max().unwrap_or(0);
        let (name_width, dtype_width, shape_width) = (width(0), width(1), width(2));
        for (row, &index) in rows.iter().zip(listed) {
            let mut line =
                format!("  {:name_width$}  {:dtype_width$}  {:shape_width$}  {:>10}", row[0], row[1], row[2], row[3]);
            if checkpoint.index_metadata().is_some() {
                let file = checkpoint.file_of(&layout.tensors[index].name).and_then(|path| path.file_name());
                line.push_str(&format!("  {}", file.map(|name| name.to_string_lossy()).unwrap_or_default()));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    out
}

/// A metadata value: JSON objects and arrays pretty-printed and indented under their key,
/// anything else as it is.
fn metadata_value(value: &str) -> String {
    match serde_json::from_str::<Value>(value) {
        Ok(parsed @ (Value::Object(_) | Value::Array(_))) => {
            let pretty = serde_json::to_string_pretty(&parsed).unwrap_or_else(|_| value.to_owned());
            sanitize(&pretty.replace('\n', "\n    "))
        }
        _ => sanitize(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_metadata_is_pretty_printed() {
        assert_eq!(metadata_value(r#"{"a":[1]}"#), "{\n      \"a\": [\n        1\n      ]\n    }");
        assert_eq!(metadata_value("pt"), "pt");
        assert_eq!(metadata_value("3"), "3");
    }
}
