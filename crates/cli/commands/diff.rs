//! `safeshift diff`: what changed between two layouts, and the migration that does it.

use std::path::PathBuf;

use clap::Args;
use safeshift_evolve::{diff, draft, infer, Contents, DraftOptions};
use safeshift_graph::VersionId;

use crate::exit_codes::ExitStatus;
use crate::printer::{anyhow_like::Error, Printer};
use crate::registry::RegistryArgs;

/// Compare two layouts: renamed, copied, reshaped, re-typed, split, merged, inserted and
/// dropped tensors, as a table. With `--draft`, also write the migration from OLD to NEW
/// in the language: renames generalized into patterns with index arithmetic, splits and
/// concatenations found by shape arithmetic (or bytes), inserts with a suggested value,
/// drops marked `lossy` or `derived`. Questions the tool cannot answer are written as
/// `// UNRESOLVED: …` comments, which `safeshift check` reports until they are removed.
/// Exits with 1 when the layouts differ.
#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The old layout: a checkpoint, a layout JSON, a schema file (`.ss`) or `family@version`.
    pub old: String,
    /// The new layout, in the same forms.
    pub new: String,
    /// Print the drafted migration (after the table, or into `--output`).
    #[arg(long)]
    pub draft: bool,
    /// Match tensors by their bytes (both sides hold the same weights): finds renames
    /// and swaps that keep names, split parts, derived drops and constant inserts.
    #[arg(long)]
    pub by_content: bool,
    /// The migration's source, `family@version` (default: `model@0.0.0`).
    #[arg(long, value_name = "FAMILY@VERSION")]
    pub from: Option<String>,
    /// The migration's target, `family@version` (default: the source family at `0.0.1`).
    #[arg(long, value_name = "FAMILY@VERSION")]
    pub to: Option<String>,
    /// Write the draft to FILE (atomically); the table still goes to standard output.
    #[arg(long, short, value_name = "FILE", requires = "draft")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// With `--draft --by-content`: a file (`NAME=FILE`, repeatable) where the order of
    /// rows that were re-ordered may come from, e.g. `--aux graph=graph.pt`; an index it
    /// holds, or the stable argsort of one, is written as the `gather`'s index.
    #[arg(long = "aux", value_name = "NAME=FILE", value_parser = crate::registry::parse_aux, requires = "draft")]
    pub aux: Vec<(String, PathBuf)>,
    #[command(flatten)]
    pub pickle: crate::pickle::PickleArgs,
}

/// Runs `safeshift diff`.
pub fn run(args: DiffArgs, printer: &Printer) -> Result<ExitStatus, Error> {
    let old = crate::layout_input::open(&args.old, &args.registry, &args.pickle)?;
    let new = crate::layout_input::open(&args.new, &args.registry, &args.pickle)?;
    if args.by_content && !(old.has_bytes() && new.has_bytes()) {
        return Err("--by-content needs two inputs with tensor bytes (a layout JSON has none)".into());
    }
    let contents = Contents { old: &old, new: &new };
    let found = diff(&old.layout, &new.layout, args.by_content.then_some(&contents));
    print!("{}", found.table());
    if args.draft {
        let from = match &args.from {
            Some(text) => VersionId::parse(text)?,
            None => VersionId::new("model", "0.0.0")?,
        };
        let to = match &args.to {
            Some(text) => VersionId::parse(text)?,
            None => VersionId::new(&from.family, "0.0.1")?,
        };
        if to.family != from.family {
            return Err("--from and --to must name one family".into());
        }
        let aux = args
            .aux
            .iter()
            .map(|(name, path)| crate::layout_input::open_aux(name, path, &args.pickle))
            .collect::<Result<Vec<_>, _>>()?;
        let options = DraftOptions {
            family: from.family.clone(),
            from: from.version.to_string(),
            to: to.version.to_string(),
            aux,
        };
        let drafted = draft(&old.layout, &found, &infer(&old.layout), &options)?;
        match &args.output {
            Some(path) => {
                safeshift::engine::write_file_atomically(path, drafted.text.as_bytes())
                    .map_err(|err| format!("cannot write `{}`: {err}", path.display()))?;
                if !printer.quiet {
                    eprintln!("wrote {} ({} unresolved)", path.display(), drafted.unresolved);
                }
            }
            None => print!("\n{}", drafted.text),
        }
    }
    Ok(if found.is_empty() { ExitStatus::Success } else { ExitStatus::No })
}
