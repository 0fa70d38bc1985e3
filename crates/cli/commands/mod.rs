//! The subcommands, one per file. Doc comments are the `--help` text.

use clap::{Args, Parser, Subcommand};

pub mod check;
pub mod convert;
pub mod detect;
pub mod diff;
pub mod downgrade;
pub mod fmt;
pub mod graph;
pub mod inspect;
pub mod plan;
pub mod scan;
pub mod schema;
pub mod synth;
pub mod upgrade;
pub mod verify;

use crate::exit_codes::ExitStatus;
use crate::printer::{anyhow_like::Error, Printer};

/// Turn old ML checkpoints into the layout today's model code expects.
#[derive(Parser, Debug)]
#[command(name = "safeshift", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes.
#[derive(Args, Debug)]
pub struct GlobalArgs {
    /// When to colour output: auto, always or never.
    #[arg(long, global = true, default_value = "auto", value_parser = ["auto", "always", "never"])]
    pub color: String,
    /// Print only errors; no progress.
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

/// The subcommands (alphabetical).
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check a registry: graph rules and every migration against its schemas.
    Check(check::CheckArgs),
    /// Convert a PyTorch checkpoint to safetensors without executing it.
    Convert(convert::ConvertArgs),
    /// Find a checkpoint's family and version from its header.
    Detect(detect::DetectArgs),
    /// Compare two layouts; with `--draft`, write the migration between them.
    Diff(diff::DiffArgs),
    /// Take a checkpoint back to an older layout, through the inverses of its migrations.
    Downgrade(downgrade::DowngradeArgs),
    /// Format schema and migration files (`*.ss`) in the canonical layout.
    Fmt(fmt::FmtArgs),
    /// Print the version graph (text, Graphviz DOT or Mermaid).
    Graph(graph::GraphArgs),
    /// Show a checkpoint's tensors, dtypes and metadata without reading its data.
    Inspect(inspect::InspectArgs),
    /// Show the migrations from a version to a target.
    Plan(plan::PlanArgs),
    /// Report the globals a PyTorch checkpoint names and whether torch.load would run code.
    Scan(scan::ScanArgs),
    /// Print the schema of a version (declared or derived).
    Schema(schema::SchemaArgs),
    /// Write a small synthetic checkpoint that fits a schema exactly.
    Synth(synth::SynthArgs),
    /// Upgrade checkpoints to the layout today's model code expects.
    Upgrade(upgrade::UpgradeArgs),
    /// Check a checkpoint completely, reading every byte; exit 1 if it is unsound.
    Verify(verify::VerifyArgs),
    /// Print the version of safeshift.
    Version,
}

/// Runs one subcommand.
pub fn run(cli: Cli, printer: &Printer) -> Result<ExitStatus, Error> {
    match cli.command {
        Command::Check(args) => check::run(args, printer),
        Command::Convert(args) => convert::run(args, printer),
        Command::Detect(args) => detect::run(args, printer),
        Command::Diff(args) => diff::run(args, printer),
        Command::Downgrade(args) => downgrade::run(args, printer),
        Command::Fmt(args) => fmt::run(args, printer),
        Command::Graph(args) => graph::run(args, printer),
        Command::Inspect(args) => inspect::run(args, printer),
        Command::Plan(args) => plan::run(args, printer),
        Command::Scan(args) => scan::run(args, printer),
        Command::Schema(args) => schema::run(args, printer),
        Command::Synth(args) => synth::run(args, printer),
        Command::Upgrade(args) => upgrade::run(args, printer),
        Command::Verify(args) => verify::run(args, printer),
        Command::Version => {
            println!("safeshift {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitStatus::Success)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        super::Cli::command().debug_assert();
    }

    /// Each command is its file (and its own folder of parts): no file of the CLI reaches
    /// into another command's module, and only `main.rs` knows the commands. What commands
    /// share lives beside them (`render.rs`, `json.rs`, `registry.rs`, …) or in the library.
    #[test]
    fn no_command_imports_another_commands_module() {
        let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/crates/cli"));
        let mut files = Vec::new();
        let mut folders = vec![root.to_path_buf()];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    folders.push(path);
                } else if path.extension().is_some_and(|ext| ext == "rs") {
                    files.push(path);
                }
            }
        }
        assert!(files.len() > 20, "{files:?}");
        // Spelled in two halves so that this test does not find itself.
        let into_commands = concat!("crate::", "commands");
        let mut offences = Vec::new();
        for file in &files {
            let relative = file.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(file).unwrap();
            // A file directly in `commands/` is one command: `super::` is the commands'
            // table, so any `super::name::` is a sibling command.
            let is_command = relative.starts_with("commands/") && relative.matches('/').count() == 1;
            for (number, line) in text.lines().enumerate() {
                let sibling = is_command && relative != "commands/mod.rs" && line.contains("super::") && {
                    let after = &line[line.find("super::").unwrap() + "super::".len()..];
                    after.starts_with(|ch: char| ch.is_ascii_lowercase()) && after.contains("::")
                };
                if line.contains(into_commands) || sibling {
                    offences.push(format!("crates/cli/{relative}:{}: {}", number + 1, line.trim()));
                }
            }
        }
        assert!(offences.is_empty(), "imports of another command's module:\n{}", offences.join("\n"));
    }
}
