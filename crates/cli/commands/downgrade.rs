//! `safeshift downgrade`: take a checkpoint back to an older layout.

use std::path::PathBuf;

use clap::Args;
use safeshift::batch::{self, Batch, Destination};
use safeshift::open::OpenOptions;

use crate::exit_codes::ExitStatus;
use crate::printer::{anyhow_like::Error, Printer};

/// Take a checkpoint back to an older layout, through the inverses of its migrations.
///
/// Only paths whose every step can be undone exactly are taken: a downgrade never discards
/// information (there is no --allow-lossy here).
#[derive(Args, Debug)]
pub struct DowngradeArgs {
    /// The checkpoint.
    #[arg(value_name = "INPUT")]
    pub input: PathBuf,
    /// The version to go back to: `VERSION` or `FAMILY@VERSION`.
    #[arg(long, value_name = "VERSION")]
    pub to: String,
    /// Write the result here.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
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
    /// An auxiliary input a migration needs (repeatable).
    #[arg(long = "aux", value_name = "NAME=PATH", value_parser = crate::registry::parse_aux)]
    pub aux: Vec<(String, PathBuf)>,
    #[command(flatten)]
    pub pickle: crate::pickle::PickleArgs,
    /// Print a JSON record instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `safeshift downgrade`.
pub fn run(args: DowngradeArgs, printer: &Printer) -> Result<ExitStatus, Error> {
    let registry = args.registry.open(printer.color)?;
    let options = OpenOptions {
        to: Some(args.to),
        dims: args.dims.into_iter().collect(),
        aux: args.aux.into_iter().collect(),
        allow_lossy: false,
        params: args.params.into_iter().collect(),
        state_dict_key: args.pickle.key,
        allow_gadgets: args.pickle.allow_gadgets,
    };
    let batch = Batch::new(&registry, options, Destination::File(args.output));
    crate::batch::run(&batch, batch::collect(&[args.input])?, None, args.json, printer)
}
