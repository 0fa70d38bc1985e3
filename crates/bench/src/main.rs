//! `safeshift-bench`: how close safeshift is to what the machine allows, and how far ahead
//! of the Python way, measured side by side in one run.
//!
//! ```text
//! cargo run --release -p safeshift-bench -- [--size 256MiB|4GiB] [--runs N] [--out-dir DIR]
//! ```
//!
//! It generates a synthetic Anemoi-like checkpoint ([`synth`]), a LLaMA ([`llama`]), a
//! pickled state dict, an archive of checkpoints ([`archive`]) and registries of every size
//! ([`registries`]) in a scratch directory inside the output directory, warms the page
//! cache, and measures each step (header parsing against registry size, the view, light
//! and heavy rewrites and the LLaMA upgrade against `cp` + `sync`, the Python way, pickle
//! conversion against torch, an archive upgrade at several `--jobs`), each process-level
//! step in a child process whose memory is polled ([`measure`]), round-robin. It prints a
//! markdown table of medians and the targets.

mod archive;
mod bench;
mod child;
mod llama;
mod machine;
mod measure;
mod pipeline;
mod python;
mod registries;
mod report;
mod size;
mod synth;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Benchmarks safeshift against `cp`, the `safetensors` crate, and the Python way.
#[derive(Debug, Parser)]
#[command(name = "safeshift-bench", version)]
struct Cli {
    /// Size of the synthetic checkpoint (`256MiB`, `4GiB`, …).
    #[arg(long, default_value = "256MiB", value_parser = size::parse_size)]
    size: u64,
    /// Runs per process-level measurement (the median is reported).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: u32,
    /// Runs (batches) per in-process measurement of cheap steps.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    cheap_runs: u32,
    /// Where outputs, the scratch directory and the cached Python environment go
    /// (default: `safeshift-bench` in the system's temporary directory). The scratch
    /// directory is removed at the end.
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Also write the report to this file.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Skip the Python baselines.
    #[arg(long)]
    no_python: bool,
    /// Keep the scratch directory (the synthetic checkpoint and the outputs) for profiling.
    #[arg(long)]
    keep_scratch: bool,
    /// Skip the torch baselines of step 7 (otherwise torch is installed from PyPI into the
    /// Python environment, several GB, once per machine).
    #[arg(long)]
    no_torch: bool,
    /// The cached Python environment (default: `~/.cache/safeshift/bench-venv`).
    #[arg(long)]
    venv: Option<PathBuf>,
    /// Which groups of steps to run, comma-separated: `core` (steps 1–6 on the synthetic
    /// Anemoi-like checkpoint), `llama` (Meta → HF upgrade), `registries` (step 1 with
    /// registries of 3 to 10,000 schemas and the real one), `pickle` (step 7), `archive`
    /// (step 8).
    #[arg(long, value_delimiter = ',', default_value = "core,llama,registries,pickle,archive")]
    steps: Vec<bench::Group>,
    /// Size of the LLaMA checkpoint.
    #[arg(long, default_value = "1GiB", value_parser = size::parse_size)]
    llama_size: u64,
    /// Size of the pickled state dict of step 7.
    #[arg(long, default_value = "1GiB", value_parser = size::parse_size)]
    pickle_size: u64,
    /// Checkpoints in the archive of step 8.
    #[arg(long, default_value_t = 200)]
    archive_files: usize,
    /// Largest generated registry of step 1 (registries of 3, 100, 1,000, 10,000 schemas
    /// up to this).
    #[arg(long, default_value_t = 10_000)]
    max_schemas: usize,
    #[command(subcommand)]
    child: Option<Hidden>,
}

#[derive(Debug, Subcommand)]
enum Hidden {
    /// Runs one measured step (used by the bench itself, in a child process).
    #[command(name = "__child", hide = true)]
    Child {
        #[arg(value_enum)]
        step: child::ChildStep,
        input: PathBuf,
        output: Option<PathBuf>,
        #[arg(long)]
        registry: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.child {
        Some(Hidden::Child { step, ref input, ref output, ref registry }) => {
            child::run(step, input, output.as_deref(), registry)
        }
        None => bench::run(&bench::Config {
            size: cli.size,
            runs: cli.runs as usize,
            cheap_runs: cli.cheap_runs as usize,
            out_dir: cli.out_dir.unwrap_or_else(|| std::env::temp_dir().join("safeshift-bench")),
            markdown: cli.markdown,
            python: !cli.no_python,
            torch: !cli.no_torch,
            venv: cli.venv.unwrap_or_else(python::default_venv),
            groups: cli.steps,
            llama_size: cli.llama_size,
            pickle_size: cli.pickle_size,
            archive_files: cli.archive_files,
            max_schemas: cli.max_schemas,
            keep_scratch: cli.keep_scratch,
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
