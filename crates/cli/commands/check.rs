//! `safeshift check`: validate a registry and statically check every migration.

mod against;

use clap::Args;

use crate::exit_codes::ExitStatus;
use crate::printer::{anyhow_like::Error, Printer};
use crate::registry::RegistryArgs;
use crate::render::{plural, render_diagnostics};

/// Check a registry: syntax, duplicate and unknown versions, cycles, forked histories,
/// versions that cannot reach their head, ambiguous paths, and every migration against
/// its two schemas. Exits with 1 when there is any error.
#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Also make a small synthetic checkpoint of every version, upgrade it in memory to
    /// its family's target, and check the result against the target schema.
    #[arg(long)]
    pub synth: bool,
    /// Instead: check that a model's layout (a checkpoint or a layout JSON) is the
    /// registry head's schema; exit 1 with the difference and a drafted migration if not.
    #[arg(long, value_name = "CHECKPOINT_OR_LAYOUT")]
    pub against: Option<String>,
    /// With `--against`: the family (default: the one the layout is nearest to).
    #[arg(long, requires = "against")]
    pub family: Option<String>,
    #[command(flatten)]
    pub pickle: crate::pickle::PickleArgs,
}

/// Runs `safeshift check`.
pub fn run(args: CheckArgs, printer: &Printer) -> Result<ExitStatus, Error> {
    if let Some(against) = &args.against {
        let registry = args.registry.open(printer.color)?;
        let registry = registry.graph();
        return against::run(against, args.family.as_deref(), &args.registry, &args.pickle, registry);
    }
    let (registry, mut diagnostics) = args.registry.load()?;
    diagnostics.extend(safeshift_graph::check(&registry));
    if args.synth {
        diagnostics.extend(safeshift_graph::check_synth(&registry));
    }
    if !diagnostics.is_empty() {
        eprint!("{}", render_diagnostics(&diagnostics, registry.sources(), printer.color));
    }
    let errors = diagnostics.iter().filter(|diagnostic| diagnostic.is_error()).count();
    let warnings = diagnostics.len() - errors;
    let graph = registry.graph();
    let versions = graph.versions().count();
    let families = graph.families().len();
    let migrations = registry.migrations().len();
    if !printer.quiet {
        println!(
            "{versions} version{} in {families} famil{}, {migrations} migration{}: {errors} error{}, {warnings} warning{}",
            plural(versions),
            if families == 1 { "y" } else { "ies" },
            plural(migrations),
            plural(errors),
            plural(warnings),
        );
    }
    Ok(if errors > 0 { ExitStatus::No } else { ExitStatus::Success })
}
