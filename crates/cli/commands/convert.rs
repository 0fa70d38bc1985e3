//! `safeshift convert`: a PyTorch pickle checkpoint to safetensors, without executing it.

use std::path::PathBuf;

use clap::Args;
use safeshift_engine::{Checkpoint, MigratedView, ReadOptions, TensorOrder, WriteOptions};
use safeshift_torch::ConvertOptions;

use crate::commands::inspect::human_size;
use crate::exit_codes::ExitStatus;
use crate::printer::{anyhow_like::Error, Printer};
use crate::render::sanitize;

/// Convert a PyTorch checkpoint (`.pt`, `.pth`, `.bin`, `.ckpt`, or a sharded
/// `pytorch_model.bin.index.json` set) to one safetensors file without executing it.
///
/// The pickle is read by a restricted machine that never imports or calls anything; a file
/// that would make `torch.load` call code outside torch's allow-list is refused (exit 2).
/// Tensors keep state-dict order. Tied tensors are written once and the other names
/// recorded in the metadata as `{name: kept name}`. For Lightning and Anemoi checkpoints the
/// `state_dict` entry is converted and the rest is kept as JSON under `torch.checkpoint`;
/// Anemoi metadata goes under `anemoi`; supporting arrays are extras named
/// `anemoi.supporting_arrays.<name>`, written after the state dict and listed under
/// `safeshift.extras`. Contiguous tensors are copied straight from the input file.
#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// The PyTorch checkpoint.
    pub input: PathBuf,
    /// The safetensors file to write (atomically: complete, or not at all).
    #[arg(short, long)]
    pub output: PathBuf,
    /// The top-level entry holding the state dict (default: `state_dict`, `model_state_dict`,
    /// `model`, `module`, `net`, `network`, else the whole object).
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
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
}

/// Runs `safeshift convert`: the pass-through plan of the engine (open any format, write
/// every tensor and extra as it is).
pub fn run(args: ConvertArgs, printer: &Printer) -> Result<ExitStatus, Error> {
    let pickle = ConvertOptions {
        key: args.key.clone(),
        keep_optimizer: args.keep_optimizer,
        keep_shared: args.keep_shared,
        supporting_arrays: !args.drop_supporting_arrays,
        ..ConvertOptions::default()
    };
    let checkpoint = Checkpoint::open_with(&args.input, &ReadOptions { pickle, ..ReadOptions::default() })?;
    let view = MigratedView::pass_through(checkpoint)?;
    let write_options = WriteOptions { order: TensorOrder::AsGiven, ..WriteOptions::default() };
    let summary = view.write_to(&args.output, &write_options)?;
    if !printer.quiet {
        print!("{}", human_output(&args, &view, summary.bytes));
    }
    Ok(ExitStatus::Success)
}

fn human_output(args: &ConvertArgs, view: &MigratedView, bytes: u64) -> String {
    let aliases = view.source().aliases();
    let mut out = format!(
        "wrote `{}`: {} tensors, {} (from `{}`)\n",
        sanitize(&args.output.display().to_string()),
        view.layout().tensors.len() + view.extras().len(),
        human_size(bytes),
        sanitize(&args.input.display().to_string()),
    );
    for (name, kept) in aliases {
        out.push_str(&format!("  tied: `{}` = `{}`\n", sanitize(name), sanitize(kept)));
    }
    if let Some(dropped) = view.metadata().get(safeshift_torch::METADATA_DROPPED) {
        let names: Vec<String> = serde_json::from_str(dropped).unwrap_or_default();
        out.push_str(&format!("  dropped: {} (--keep-optimizer keeps it)\n", sanitize(&names.join(", "))));
    }
    let keys: Vec<&str> =
        view.metadata().keys().map(String::as_str).filter(|key| !aliases.iter().any(|(name, _)| name == key)).collect();
    out.push_str(&format!("  metadata: {}\n", sanitize(&keys.join(", "))));
    out
}
