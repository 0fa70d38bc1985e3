//! `safeshift-bench`: how close safeshift is to what the machine allows, and how far ahead
//! of the Python way, measured side by side in one run.
//!
//! ```text
//! cargo run --release -p safeshift-bench -- [--size 256MiB|4GiB] [--runs N] [--out-dir DIR]
//! ```
//!
//! It generates a synthetic Anemoi-like checkpoint ([`synth`]) in a scratch directory
//! inside the output directory, warms the page cache, and measures each step of issue #9
//! (header parsing, the view, light and heavy rewrites against `cp`, the Python way, the
//! torch way), each process-level step in a child process whose memory is polled
//! ([`measure`]). It prints a markdown table of medians and the targets.

mod bench;
mod child;
mod machine;
mod measure;
mod pipeline;
mod python;
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
    /// Install torch (the CPU wheel, large) into the Python environment for step 7.
    #[arg(long)]
    with_torch: bool,
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
        hidden: u64,
        #[arg(long)]
        heads: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.child {
        Some(Hidden::Child { step, ref input, ref output, hidden, heads }) => {
            let shape = synth::ModelShape { hidden, heads, layers: 0 };
            child::run(step, input, output.as_deref(), &shape)
        }
        None => bench::run(&bench::Config {
            size: cli.size,
            runs: cli.runs as usize,
            cheap_runs: cli.cheap_runs as usize,
            out_dir: cli.out_dir.unwrap_or_else(|| std::env::temp_dir().join("safeshift-bench")),
            markdown: cli.markdown,
            python: !cli.no_python,
            with_torch: cli.with_torch,
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
