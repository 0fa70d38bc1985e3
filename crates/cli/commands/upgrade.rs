//! `safeshift upgrade`: bring checkpoints to the newest layout (or `--to`).

use std::path::PathBuf;

use clap::{ArgGroup, Args};
use safeshift::batch::{self, Batch, Destination, Shard};
use safeshift::open::OpenOptions;

use crate::exit_codes::ExitStatus;
use crate::printer::{anyhow_like::Error, Printer};

/// Upgrade checkpoints to the layout today's model code expects.
///
/// Each input is a `.safetensors` file, a PyTorch checkpoint (`.pt`, `.pth`, `.bin`,
/// `.ckpt`: read without executing anything), a sharded set's index
/// (`.safetensors.index.json`, `pytorch_model.bin.index.json`), a folder (searched
/// recursively) or a quoted glob; the format is told by content. For each, safeshift detects
/// its version from the layout, plans the path to the target and writes the result
/// atomically, reading the input once and writing one output (a PyTorch file goes straight
/// to safetensors, no intermediate file): complete, or not at all. Inputs are never modified (except with --in-place, which replaces them atomically
/// and keeps a `.bak` copy). Files already at the target are skipped.
///
/// Exit status: 0 when every file was upgraded or skipped, 1 when some failed (the others
/// are still done), 2 for usage or registry errors.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("destination").required(true).args(["output", "out_dir", "in_place", "dry_run"])))]
pub struct UpgradeArgs {
    /// Checkpoints: files, folders or quoted globs.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    /// Write the result here (one input only).
    #[arg(short, long, value_name = "FILE", group = "destination")]
    pub output: Option<PathBuf>,
    /// Write results into this folder, mirroring the inputs' relative paths.
    #[arg(long, value_name = "DIR", group = "destination")]
    pub out_dir: Option<PathBuf>,
    /// Replace each input atomically, keeping the original as `NAME.bak`.
    #[arg(long, group = "destination")]
    pub in_place: bool,
    /// With --in-place, do not keep a backup.
    #[arg(long, requires = "in_place")]
    pub no_backup: bool,
    /// Target version: `VERSION` (in the checkpoint's family) or `FAMILY@VERSION`; default
    /// the family's newest.
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
    #[command(flatten)]
    pub registry: crate::registry::RegistryArgs,
    /// A dim no shape or metadata tells, e.g. `--dim heads=32` (repeatable).
    #[arg(long = "dim", value_name = "NAME=N", value_parser = crate::registry::parse_dim)]
    pub dims: Vec<(String, i64)>,
    /// A migration parameter: one value (`--param encoder_names=0`) or one per dataset
    /// (`--param encoder_names=era5:global,cerra:regional`); repeatable. Each
    /// migration's `param` lines say what its parameters mean and their defaults.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = crate::registry::parse_param)]
    pub params: Vec<(String, safeshift::ops::ParamValue)>,
    /// An auxiliary input a migration needs, e.g. `--aux graph=graph.safetensors` (repeatable).
    #[arg(long = "aux", value_name = "NAME=PATH", value_parser = crate::registry::parse_aux)]
    pub aux: Vec<(String, PathBuf)>,
    /// Run plans that discard information (refused otherwise).
    #[arg(long)]
    pub allow_lossy: bool,
    #[command(flatten)]
    pub pickle: crate::pickle::PickleArgs,
    /// Detect and plan only; print the plans and write nothing.
    #[arg(long, group = "destination")]
    pub dry_run: bool,
    /// Print one JSON record per file, then a summary record (JSON Lines on stdout).
    #[arg(long)]
    pub json: bool,
    /// Files processed at once (default: the number of cores, at most 4).
    #[arg(long, short, value_name = "N")]
    pub jobs: Option<usize>,
    /// Process only share I of N of the inputs (for array jobs on a cluster), e.g. `0/8`.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<Shard>,
}

/// Runs `safeshift upgrade`.
pub fn run(args: UpgradeArgs, printer: &Printer) -> Result<ExitStatus, Error> {
    let registry = args.registry.open(printer.color)?;
    let destination = if let Some(output) = args.output {
        Destination::File(output)
    } else if let Some(dir) = args.out_dir {
        Destination::Dir(dir)
    } else if args.in_place {
        Destination::InPlace { backup: !args.no_backup }
    } else {
        Destination::Nowhere
    };
    let options = OpenOptions {
        to: args.to,
        dims: args.dims.into_iter().collect(),
        aux: args.aux.into_iter().collect(),
        allow_lossy: args.allow_lossy,
        state_dict_key: args.pickle.key,
        allow_gadgets: args.pickle.allow_gadgets,
        params: args.params.into_iter().collect(),
    };
    let batch = Batch { registry: &registry, options, destination, jobs: jobs(args.jobs) };
    crate::batch::run(&batch, batch::collect(&args.inputs)?, args.shard, args.json, printer)
}

/// The default number of workers: one per core, at most 4 (each holds at most its largest
/// computed tensor in memory).
pub fn jobs(requested: Option<usize>) -> usize {
    requested.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |cores| cores.get().min(4))).max(1)
}
