//! `safeshift convert`: a PyTorch pickle checkpoint to safetensors, without executing it.

use std::borrow::Cow;
use std::path::PathBuf;

use clap::Args;
use safeshift_engine::{
    write, Checkpoint, MigratedView, OutputTensor, ReadOptions, TensorOrder, TensorSource, WriteOptions,
};
use safeshift_torch::{ConvertOptions, Converted, ConvertedTensor, METADATA_EXTRAS};
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
    if args.input.extension().is_some_and(|ext| ext == "json") {
        return convert_set(&args, options, printer);
    }
    let converted = safeshift_torch::open(&args.input, &options)?;
    let (tensors, metadata) = file_contents(&converted)?;
    let write_options = WriteOptions { metadata, order: TensorOrder::AsGiven, ..WriteOptions::default() };
    let summary = write(&args.output, tensors, &write_options)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json_output(&args, &converted, summary.bytes))?);
    } else if !printer.quiet {
        print!("{}", human_output(&args, &converted, summary.bytes));
    }
    Ok(ExitStatus::Success)
}

/// A sharded set (`pytorch_model.bin.index.json`): opened by the engine as one checkpoint
/// and written through its pass-through plan, every tensor as it is.
fn convert_set(args: &ConvertArgs, pickle: ConvertOptions, printer: &Printer) -> Result<ExitStatus, Error> {
    let checkpoint = Checkpoint::open_with(&args.input, &ReadOptions { pickle, ..ReadOptions::default() })?;
    let view = MigratedView::pass_through(checkpoint)?;
    let summary =
        view.write_to(&args.output, &WriteOptions { order: TensorOrder::AsGiven, ..WriteOptions::default() })?;
    let count = view.layout().tensors.len() + view.extras().len();
    if args.json {
        let data = json!({ "input": args.input.to_string_lossy(), "output": args.output.to_string_lossy(),
            "bytes": summary.bytes, "tensors": count, "shards": view.source().files().len() });
        println!("{}", serde_json::to_string_pretty(&json!({ "type": "convert", "data": data }))?);
    } else if !printer.quiet {
        println!(
            "wrote `{}`: {count} tensors, {} (from `{}`, {} shards)",
            sanitize(&args.output.display().to_string()),
            human_size(summary.bytes),
            sanitize(&args.input.display().to_string()),
            view.source().files().len()
        );
    }
    Ok(ExitStatus::Success)
}

/// What a converted file holds: the state dict, then the extras, and the metadata naming
/// the extras (so that reading the file sets them apart again).
pub(crate) fn file_contents(
    converted: &Converted,
) -> Result<(Vec<OutputTensor<'_>>, std::collections::BTreeMap<String, String>), serde_json::Error> {
    let mut tensors = output_tensors(converted);
    tensors.extend(output_extras(converted));
    let mut metadata = converted.metadata().clone();
    if !converted.extras().is_empty() {
        let names: Vec<&str> = converted.extras().iter().map(|extra| extra.name.as_str()).collect();
        metadata.insert(METADATA_EXTRAS.into(), serde_json::to_string(&names)?);
    }
    Ok((tensors, metadata))
}

/// The state dict's tensors. Contiguous tensors are borrowed from the input's map; views
/// are materialised one at a time, when the writer reaches them, so memory stays bounded by
/// the largest tensor.
pub(crate) fn output_tensors(converted: &Converted) -> Vec<OutputTensor<'_>> {
    let data = |index| converted.data(index);
    (0..converted.tensors().len())
        .map(|index| output(&converted.tensors()[index], converted.is_borrowed(index), index, data))
        .collect()
}

/// The extras, likewise.
pub(crate) fn output_extras(converted: &Converted) -> Vec<OutputTensor<'_>> {
    let data = |index| converted.extra_data(index);
    (0..converted.extras().len())
        .map(|index| output(&converted.extras()[index], converted.is_extra_borrowed(index), index, data))
        .collect()
}

fn output<'c>(
    tensor: &ConvertedTensor,
    borrowed: bool,
    index: usize,
    data: impl Fn(usize) -> Cow<'c, [u8]> + Send + 'c,
) -> OutputTensor<'c> {
    let source = if borrowed {
        TensorSource::Bytes(data(index))
    } else {
        TensorSource::Generate(Box::new(move |buf: &mut [u8]| {
            buf.copy_from_slice(&data(index));
            Ok(())
        }))
    };
    OutputTensor { name: tensor.name.clone(), dtype: tensor.dtype, shape: tensor.shape.clone(), source }
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
