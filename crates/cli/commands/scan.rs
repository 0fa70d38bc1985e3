//! `safeshift scan`: which globals a PyTorch checkpoint names, and whether `torch.load`
//! would execute code. Nothing is executed or converted.
//!
//! The `--json` output is a contract (documented in `book/src/convert.md`); its types live
//! here, not on library types.

use std::path::{Path, PathBuf};

use clap::Args;
use safeshift_torch::{GlobalStatus, Hazard, ScanReport, UseKind, UseSite};
use serde_json::{json, Value};

use crate::exit_codes::ExitStatus;
use crate::json::json_gadget;
use crate::printer::{anyhow_like::Error, Printer};
use crate::render::{pickle_format_name, sanitize};

/// Report every global a PyTorch checkpoint names, what `torch.load` would do with it, and
/// whether the file holds code-execution gadgets.
///
/// Each global is in one hazard class: `tensor` (torch's allow-list, what
/// `torch.load(weights_only=True)` accepts), `data` (any other class or function: safeshift
/// reads it as an inert record) or `gadget` (the deny-list: `os`, `subprocess`,
/// `builtins.eval`, `pickle.loads`…). Structural gadgets (a call of a computed callable such
/// as `getattr(x, "system")(…)`, a `getattr` of a dangerous attribute, a BUILD on a class)
/// are listed with their byte offsets. How each global is used: `allowed`, `imported` (only
/// named), `instantiated` (`NEWOBJ` + `BUILD`, as `torch.save(model)` stores modules) or
/// `called`.
///
/// Exits with 0 when no file holds a gadget, 1 when any does (`safeshift convert` refuses
/// it unless `--allow-gadgets`), 2 when a file cannot be read (that takes precedence).
#[derive(Args, Debug)]
pub struct ScanArgs {
    /// The checkpoints to scan.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Print JSON (`{"type": "scan", "data": {"files": […]}}`) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `safeshift scan`.
pub fn run(args: ScanArgs, printer: &Printer) -> Result<ExitStatus, Error> {
    let mut status = ExitStatus::Success;
    let mut files = Vec::new();
    let mut text = String::new();
    for input in &args.inputs {
        let outcome = safeshift_torch::scan(input);
        let file_status = match &outcome {
            Err(_) => ExitStatus::Error,
            Ok(report) if report.has_gadgets() => ExitStatus::No,
            Ok(report) if report.problem.is_some() => ExitStatus::Error,
            Ok(_) => ExitStatus::Success,
        };
        status = worst(status, file_status);
        if args.json {
            files.push(json_file(input, &outcome));
        } else {
            match &outcome {
                Ok(report) => {
                    if !printer.quiet || report.has_gadgets() {
                        text.push_str(&human_report(input, report));
                    }
                }
                Err(err) => {
                    printer.error(&Error::from(err.to_string()));
                }
            }
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json!({ "type": "scan", "data": { "files": files } }))?);
    } else {
        print!("{text}");
    }
    Ok(status)
}

fn worst(a: ExitStatus, b: ExitStatus) -> ExitStatus {
    let rank = |status| match status {
        ExitStatus::Success => 0,
        ExitStatus::No => 1,
        _ => 2,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

fn status_name(status: GlobalStatus) -> &'static str {
    match status {
        GlobalStatus::Allowed => "allowed",
        GlobalStatus::Imported => "imported",
        GlobalStatus::Instantiated => "instantiated",
        GlobalStatus::Called => "called",
    }
}

fn hazard_name(hazard: Hazard) -> &'static str {
    match hazard {
        Hazard::TensorRebuild => "tensor",
        Hazard::Data => "data",
        Hazard::Gadget => "gadget",
    }
}

fn kind_name(kind: UseKind) -> &'static str {
    match kind {
        UseKind::Named => "named",
        UseKind::Instantiated => "instantiated",
        UseKind::Called => "called",
    }
}

fn verdict(report: &ScanReport) -> &'static str {
    if report.has_gadgets() {
        "GADGETS: torch.load would run them; safeshift convert refuses the file (--allow-gadgets converts it, running nothing)"
    } else if !report.executes_code() {
        "clean: torch.load(weights_only=True) accepts every global"
    } else {
        "no gadget: torch.load would import these classes; safeshift convert reads them as data"
    }
}

fn human_report(path: &Path, report: &ScanReport) -> String {
    let mut out = format!(
        "`{}` ({}): {}\n",
        sanitize(&path.display().to_string()),
        pickle_format_name(&report.format),
        verdict(report)
    );
    let mut findings: Vec<_> = report.findings.iter().collect();
    // Most dangerous first; stable within a status (first-use order).
    findings.sort_by_key(|finding| std::cmp::Reverse(finding.status));
    for finding in findings {
        let mut line = format!(
            "  {:<7}{:<13}{}",
            hazard_name(finding.hazard),
            status_name(finding.status),
            sanitize(&finding.global)
        );
        if let Some(name) = &finding.python3_name {
            line.push_str(&format!(" (= {})", sanitize(name)));
        }
        if finding.status != GlobalStatus::Allowed {
            if let Some(site) = finding.uses.iter().max_by_key(|site| site.kind) {
                line.push_str(&format!("  {} at byte {} of `{}`", site.opcode, site.offset, sanitize(&site.member)));
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    for gadget in &report.gadgets {
        out.push_str(&format!("  gadget: {}\n", sanitize(&gadget.to_string())));
    }
    if let Some(problem) = &report.problem {
        out.push_str(&format!("  stopped early: {}\n", sanitize(problem)));
    }
    out
}

/// A gadget as JSON (shared with `convert --json`).
fn json_site(site: &UseSite) -> Value {
    json!({ "member": site.member, "offset": site.offset, "opcode": site.opcode, "kind": kind_name(site.kind) })
}

fn json_file(path: &Path, outcome: &Result<ScanReport, safeshift_torch::TorchError>) -> Value {
    let path = path.to_string_lossy();
    match outcome {
        Err(err) => json!({ "path": path, "error": err.kind.to_string() }),
        Ok(report) => json!({
            "path": path,
            "format": pickle_format_name(&report.format),
            "executes_code": report.executes_code(),
            "weights_only_accepts": report.weights_only_accepts(),
            "convertible": report.convertible(),
            "has_gadgets": report.has_gadgets(),
            "gadgets": report.gadgets.iter().map(json_gadget).collect::<Vec<_>>(),
            "data_classes": report.data_classes,
            "problem": report.problem,
            "globals": report.findings.iter().map(|finding| json!({
                "global": finding.global,
                "python3_name": finding.python3_name,
                "status": status_name(finding.status),
                "hazard": hazard_name(finding.hazard),
                "uses": finding.uses.iter().map(json_site).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "non_global_calls": report.non_global_calls.iter().map(json_site).collect::<Vec<_>>(),
        }),
    }
}
