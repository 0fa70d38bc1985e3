//! `safeshift convert`: a PyTorch pickle checkpoint to safetensors, without executing it.

use std::borrow::Cow;
use std::path::PathBuf;

use clap::Args;
use safeshift_engine::{write, OutputTensor, TensorOrder, TensorSource, WriteOptions};
use safeshift_torch::{ConvertOptions, Converted};

use crate::commands::inspect::human_size;
use crate::exit_codes::ExitStatus;
use crate::printer::{anyhow_like::Error, Printer};
use crate::render::sanitize;

/// Convert a PyTorch checkpoint (`.pt`, `.pth`, `.bin`, `.ckpt`) to safetensors without
/// executing it.
///
/// The pickle is read by a restricted machine that never imports or calls anything; a file
/// that would make `torch.load` call code outside torch's allow-list is refused (exit 2).
/// Tensors keep state-dict order. Tied tensors are written once and the other names
/// recorded in the metadata as `{name: kept name}`. For Lightning and Anemoi checkpoints the
/// `state_dict` entry is converted and the rest is kept as JSON under `torch.checkpoint`;
/// Anemoi metadata goes under `anemoi` and supporting arrays become tensors named
/// `anemoi.supporting_arrays.<name>`.
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

/// Runs `safeshift convert`.
pub fn run(args: ConvertArgs, printer: &Printer) -> Result<ExitStatus, Error> {
    let options = ConvertOptions {
        key: args.key.clone(),
        keep_optimizer: args.keep_optimizer,
        keep_shared: args.keep_shared,
        supporting_arrays: !args.drop_supporting_arrays,
        ..ConvertOptions::default()
    };
    let converted = safeshift_torch::open(&args.input, &options)?;
    let tensors = output_tensors(&converted);
    let write_options =
        WriteOptions { metadata: converted.metadata().clone(), order: TensorOrder::AsGiven, ..WriteOptions::default() };
    let summary = write(&args.output, tensors, &write_options)?;
    if !printer.quiet {
        print!("{}", human_output(&args, &converted, summary.bytes));
    }
    Ok(ExitStatus::Success)
}

/// Contiguous tensors are borrowed from the input's map; views are materialised one at a
/// time, when the writer reaches them, so memory stays bounded by the largest tensor.
pub(crate) fn output_tensors(converted: &Converted) -> Vec<OutputTensor<'_>> {
    converted
        .tensors()
        .iter()
        .enumerate()
        .map(|(index, tensor)| {
            let source = if converted.is_borrowed(index) {
                TensorSource::Bytes(converted.data(index))
            } else {
                TensorSource::Generate(Box::new(move |buf: &mut [u8]| {
                    let bytes: Cow<'_, [u8]> = converted.data(index);
                    buf.copy_from_slice(&bytes);
                    Ok(())
                }))
            };
            OutputTensor { name: tensor.name.clone(), dtype: tensor.dtype, shape: tensor.shape.clone(), source }
        })
        .collect()
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
    out
}
