//! `safeshift plan`: the migrations that take a checkpoint from its version to a target.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{ArgGroup, Args};
use safeshift_graph::{Plan, Registry, VersionId};
use serde::Serialize;

use crate::exit_codes::ExitStatus;
use crate::printer::{anyhow_like::Error, Printer};
use crate::registry::{parse_dim, RegistryArgs};

/// Show the plan from a checkpoint's version (detected from its header, or given with
/// `--from`) to a target: fewest lossy steps first, then fewest steps.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("start").required(true).args(["path", "from"])))]
pub struct PlanArgs {
    /// The checkpoint whose version to start from (safetensors, PyTorch or a sharded set).
    pub path: Option<PathBuf>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// The version to start from (`family@version`) instead of a checkpoint's.
    #[arg(long, value_name = "FAMILY@VERSION")]
    pub from: Option<String>,
    /// A dim no shape or metadata tells, for detection (repeatable).
    #[arg(long = "dim", value_name = "NAME=N", value_parser = parse_dim)]
    pub dims: Vec<(String, i64)>,
    /// The target: `VERSION` of the same family or `FAMILY@VERSION` (default: the
    /// manifest's target for the family, else the family's head).
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
    #[command(flatten)]
    pub pickle: crate::pickle::PickleArgs,
    /// Print the plan as JSON (`{"type": "plan", "data": {…}}`).
    #[arg(long)]
    pub json: bool,
}

/// The `--json` form of a plan.
#[derive(Serialize)]
pub struct PlanJson {
    /// The start version.
    pub from: String,
    /// The target version.
    pub to: String,
    /// Whether some step discards information.
    pub lossy: bool,
    /// The steps in order.
    pub steps: Vec<StepJson>,
}

/// One step of `--json` plan output.
#[derive(Serialize)]
pub struct StepJson {
    /// The version before the step.
    pub from: String,
    /// The version after it.
    pub to: String,
    /// `apply` (the migration as written) or `undo` (its inverse or `down` block).
    pub action: &'static str,
    /// Whether the step discards information.
    pub lossy: bool,
    /// The migration's doc string.
    pub doc: Option<String>,
    /// `path:line:col` of the migration.
    pub location: String,
    /// SHA-256 of the migration's text.
    pub hash: String,
}

/// Runs `safeshift plan`.
pub fn run(args: PlanArgs, printer: &Printer) -> Result<ExitStatus, Error> {
    let registry = args.registry.open(printer.color)?;
    let registry = registry.graph();
    let from = match (&args.from, &args.path) {
        (Some(text), _) => VersionId::parse(text)?,
        (None, Some(path)) => {
            let checkpoint = safeshift_engine::Checkpoint::open_with(path, &args.pickle.read_options())?;
            let dims: BTreeMap<String, i64> = args.dims.iter().cloned().collect();
            match safeshift_graph::detect(registry, &checkpoint.layout_with_extras(), &dims) {
                Ok(detection) => detection.version,
                Err(err) => {
                    eprint!("{}", crate::render::detect_error(path, &err));
                    return Ok(ExitStatus::No);
                }
            }
        }
        (None, None) => unreachable!("clap requires a checkpoint or --from"),
    };
    let to = registry.resolve_target(&from, args.to.as_deref())?;
    let plan = safeshift_graph::plan(registry.graph(), &from, &to)?;
    if args.json {
        let json = serde_json::json!({ "type": "plan", "data": to_json(registry, &plan) });
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print!("{}", human(registry, &plan));
    }
    Ok(ExitStatus::Success)
}

fn to_json(registry: &Registry, plan: &Plan) -> PlanJson {
    PlanJson {
        from: plan.from.to_string(),
        to: plan.to.to_string(),
        lossy: plan.lossy(),
        steps: plan
            .steps
            .iter()
            .map(|step| {
                let migration = registry.migration(step.migration);
                StepJson {
                    from: step.from.to_string(),
                    to: step.to.to_string(),
                    action: if step.inverse { "undo" } else { "apply" },
                    lossy: step.lossy,
                    doc: migration.ast.doc.as_ref().map(|doc| doc.node.clone()),
                    location: location(registry, step.migration),
                    hash: migration.hash.clone(),
                }
            })
            .collect(),
    }
}

fn location(registry: &Registry, id: safeshift_graph::MigrationId) -> String {
    let migration = registry.migration(id);
    let sources = registry.sources();
    let path = sources.name(migration.source);
    let (line, column) = sources.line_col(migration.source, migration.ast.span.start);
    format!("{path}:{line}:{column}")
}

/// The plan for people: one line per step.
pub fn human(registry: &Registry, plan: &Plan) -> String {
    if plan.steps.is_empty() {
        return format!("`{}` is already at the target\n", plan.from);
    }
    let mut out = format!(
        "{} -> {}: {} step{}{}\n",
        plan.from,
        plan.to,
        plan.steps.len(),
        crate::render::plural(plan.steps.len()),
        if plan.lossy() { ", lossy (needs --allow-lossy)" } else { "" }
    );
    for (index, step) in plan.steps.iter().enumerate() {
        let migration = registry.migration(step.migration);
        let action = if step.inverse { "undo " } else { "" };
        let lossy = if step.lossy { " [lossy]" } else { "" };
        let doc = migration.ast.doc.as_ref().map(|doc| format!(" \"{}\"", doc.node)).unwrap_or_default();
        out.push_str(&format!(
            "  {}. {action}{} -> {}{lossy}{doc}\n     {}\n",
            index + 1,
            step.from,
            step.to,
            location(registry, step.migration)
        ));
    }
    out
}
