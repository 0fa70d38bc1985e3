//! `safeshift convert`: a PyTorch pickle checkpoint to safetensors, without executing it.

use std::path::PathBuf;

use clap::Args;
use safeshift::convert::Conversion;
use safeshift_torch::{ConvertOptions, Converted, ConvertedTensor};
use serde_json::json;

use crate::exit_codes::ExitStatus;
use crate::json::json_gadget;
use crate::printer::{anyhow_like::Error, Printer};
use crate::render::{human_size, sanitize};

/// Convert a PyTorch checkpoint (`.pt`, `.pth`, `.bin`, `.ckpt`) to safetensors without
/// executing it.
///
/// The pickle is read by a machine that never imports or calls anything: every object of
/// any class is read as an inert record. A file holding code-execution gadgets (`os.system`,
/// `builtins.eval`, a call of a computed callable… see `safeshift scan`) is refused (exit 2)
/// unless `--allow-gadgets`; classes that are only data (OmegaConf, torch_geometric, your
/// model's classes) are listed and read.
///
/// The output holds the state dict (state-dict order; a Lightning checkpoint's `state_dict`
/// entry, or a whole pickled module's `state_dict()`), then the extras: the tensors of
/// torch_geometric graphs (`graph.<node set>.<attr>`, `graph.<src>_<rel>_<dst>.<attr>`) and
/// Anemoi supporting arrays (`anemoi.supporting_arrays.<name>`), their names listed in the
/// metadata under `safeshift.extras`. Tied tensors are written once and the other names
/// recorded in the metadata as `{name: kept name}`. The rest of the checkpoint is kept as
/// JSON under `torch.checkpoint`, Anemoi metadata under `anemoi`.
#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// The PyTorch checkpoint.
    pub input: PathBuf,
    /// The safetensors file to write (atomically: complete, or not at all).
    #[arg(short, long)]
    pub output: PathBuf,
    #[command(flatten)]
    pub pickle: crate::pickle::PickleArgs,
    /// Also write optimizer state, its tensors named by their path
    /// (`optimizer_states.0.state.0.exp_avg`).
    #[arg(long)]
    pub keep_optimizer: bool,
    /// Write tied tensors once per name instead of once with an alias.
    #[arg(long)]
    pub keep_shared: bool,
    /// Leave out Anemoi supporting arrays (latitudes, longitudes…).
    #[arg(long)]
    pub drop_supporting_arrays: bool,
    /// Print JSON (`{"type": "convert", "data": {…}}`) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `safeshift convert`.
pub fn run(args: ConvertArgs, printer: &Printer) -> Result<ExitStatus, Error> {
    let options = ConvertOptions {
        key: args.pickle.key.clone(),
        keep_optimizer: args.keep_optimizer,
        keep_shared: args.keep_shared,
        supporting_arrays: !args.drop_supporting_arrays,
        allow_gadgets: args.pickle.allow_gadgets,
        ..ConvertOptions::default()
    };
    let conversion = safeshift::convert::convert(&args.input, &args.output, &options)?;
    let Some(converted) = conversion.pickle() else {
        return print_set(&args, &conversion, printer);
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json_output(&args, converted, conversion.bytes()))?);
    } else if !printer.quiet {
        print!("{}", human_output(&args, converted, conversion.bytes()));
    }
    Ok(ExitStatus::Success)
}

/// A sharded set (`pytorch_model.bin.index.json`), converted as one checkpoint.
fn print_set(args: &ConvertArgs, conversion: &Conversion, printer: &Printer) -> Result<ExitStatus, Error> {
    let checkpoint = conversion.checkpoint();
    let count = checkpoint.layout().tensors.len() + checkpoint.extras().len();
    let shards = checkpoint.files().len();
    if args.json {
        let data = json!({ "input": args.input.to_string_lossy(), "output": args.output.to_string_lossy(),
            "bytes": conversion.bytes(), "tensors": count, "shards": shards });
        println!("{}", serde_json::to_string_pretty(&json!({ "type": "convert", "data": data }))?);
    } else if !printer.quiet {
        println!(
            "wrote `{}`: {count} tensors, {} (from `{}`, {shards} shards)",
            sanitize(&args.output.display().to_string()),
            human_size(conversion.bytes()),
            sanitize(&args.input.display().to_string()),
        );
    }
    Ok(ExitStatus::Success)
}

fn human_output(args: &ConvertArgs, converted: &Converted, bytes: u64) -> String {
    let mut out = format!(
        "wrote `{}`: {} tensors, {} (from `{}`)\n",
        sanitize(&args.output.display().to_string()),
        converted.tensors().len(),
        human_size(bytes),
        sanitize(&args.input.display().to_string()),
    );
    for alias in converted.aliases() {
        out.push_str(&format!("  tied: `{}` = `{}`\n", sanitize(&alias.name), sanitize(&alias.kept)));
    }
    if let Some(dropped) = converted.metadata().get(safeshift_torch::METADATA_DROPPED) {
        let names: Vec<String> = serde_json::from_str(dropped).unwrap_or_default();
        out.push_str(&format!("  dropped: {} (--keep-optimizer keeps it)\n", sanitize(&names.join(", "))));
    }
    let keys: Vec<&str> = converted
        .metadata()
        .keys()
        .map(String::as_str)
        .filter(|key| !converted.aliases().iter().any(|alias| alias.name == *key))
        .collect();
    out.push_str(&format!("  metadata: {}\n", sanitize(&keys.join(", "))));
    if !converted.extras().is_empty() {
        out.push_str(&format!("  extras: {} tensors ({})\n", converted.extras().len(), extras_summary(converted)));
    }
    if !converted.data_classes().is_empty() {
        out.push_str(&format!(
            "  read as data: {} classes not on torch's allow-list: {}\n",
            converted.data_classes().len(),
            sanitize(&converted.data_classes().join(", "))
        ));
    }
    for gadget in converted.gadgets() {
        out.push_str(&format!("  gadget (not run, --allow-gadgets): {}\n", sanitize(&gadget.to_string())));
    }
    out
}

/// `graph.* (8), anemoi.supporting_arrays.* (2)`: extras grouped by their first name part.
fn extras_summary(converted: &Converted) -> String {
    let mut groups: Vec<(String, usize)> = Vec::new();
    for extra in converted.extras() {
        let group = match extra.name.strip_prefix(safeshift_torch::SUPPORTING_ARRAYS_PREFIX) {
            Some(_) => safeshift_torch::SUPPORTING_ARRAYS_PREFIX.to_string(),
            None => format!("{}.", extra.name.split('.').next().unwrap_or_default()),
        };
        match groups.iter_mut().find(|(name, _)| *name == group) {
            Some((_, count)) => *count += 1,
            None => groups.push((group, 1)),
        }
    }
    let parts: Vec<String> = groups.iter().map(|(group, count)| format!("{count} {}*", sanitize(group))).collect();
    parts.join(", ")
}

fn json_output(args: &ConvertArgs, converted: &Converted, bytes: u64) -> serde_json::Value {
    let tensor = |t: &ConvertedTensor| json!({ "name": t.name, "dtype": t.dtype.safetensors_name(), "shape": t.shape });
    json!({
        "type": "convert",
        "data": {
            "input": args.input.to_string_lossy(),
            "output": args.output.to_string_lossy(),
            "bytes": bytes,
            "tensors": converted.tensors().len(),
            "extras": converted.extras().iter().map(tensor).collect::<Vec<_>>(),
            "aliases": converted.aliases().iter().map(|a| json!({ "name": a.name, "kept": a.kept })).collect::<Vec<_>>(),
            "metadata_keys": converted.metadata().keys().collect::<Vec<_>>(),
            "data_classes": converted.data_classes(),
            "gadgets": converted.gadgets().iter().map(json_gadget).collect::<Vec<_>>(),
        }
    })
}
