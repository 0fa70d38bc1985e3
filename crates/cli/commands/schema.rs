//! `safeshift schema`: the schema of a version, declared or derived, as language text.

mod infer;

use clap::Args;
use safeshift_graph::{Origin, VersionId};

use crate::exit_codes::ExitStatus;
use crate::printer::{anyhow_like::Error, Printer};
use crate::registry::RegistryArgs;

/// Print the schema of `FAMILY@VERSION`: as written, or, for a version declared only
/// through a migration, derived by applying the migration to its source schema.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SchemaArgs {
    /// The version, `family@version`.
    #[arg(value_name = "FAMILY@VERSION", required = true)]
    pub version: Option<String>,
    /// `infer`: a schema for a checkpoint instead.
    #[command(subcommand)]
    pub command: Option<SchemaCommand>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// What `safeshift schema` can do besides printing a registry schema.
#[derive(clap::Subcommand, Debug)]
pub enum SchemaCommand {
    /// Infer a schema from a checkpoint or a layout JSON.
    Infer(infer::SchemaInferArgs),
}

/// Runs `safeshift schema`.
pub fn run(args: SchemaArgs, printer: &Printer) -> Result<ExitStatus, Error> {
    if let Some(SchemaCommand::Infer(infer)) = args.command {
        return infer::run(infer, printer);
    }
    let registry = args.registry.open(printer.color)?;
    let registry = registry.graph();
    let version = VersionId::parse(args.version.as_deref().unwrap_or_default())?;
    let Some(schema) = registry.schema_of(&version) else {
        return Err(format!("unknown version `{version}`").into());
    };
    if let Some(Origin::Derived(migration)) = registry.graph().origin(&version) {
        let migration = registry.migration(migration);
        println!("// Derived: `{}` with the migration to `{version}` applied.", migration.from);
    }
    print!("{}", safeshift_model::render_schema(schema));
    Ok(ExitStatus::Success)
}
