//! The measured steps that run in a child process (`safeshift-bench __child STEP …`), so
//! that each has its own peak memory. Each prints its memory line last
//! ([`crate::measure::own_memory_line`]).

use std::path::Path;

use crate::pipeline::{self, Migration};

/// A step a child runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ChildStep {
    /// Read every tensor of the light migration's view once, touching every page.
    ViewLight,
    /// Read every tensor of the heavy migration's view once (computing them).
    ViewHeavy,
    /// Rewrite with the light (rename and reshape) migration.
    RewriteLight,
    /// Rewrite with the heavy (split-heads, transpose, cast) migration.
    RewriteHeavy,
    /// Open, detect, plan and compile the heavy migration ten times (for profiling).
    PlanHeavy,
    /// Convert a PyTorch pickle to safetensors, as `safeshift convert` does.
    ConvertPickle,
    /// Upgrade a LLaMA from Meta's layout to Hugging Face's with the embedded registry.
    UpgradeLlama,
}

/// Runs `step` on `input` (writing `output` for rewrites) with the registry in
/// `registry`, and prints the memory line.
pub fn run(
    step: ChildStep,
    input: &Path,
    output: Option<&Path>,
    registry: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let output = || output.ok_or("a rewrite needs an output path");
    match step {
        ChildStep::ViewLight => println!("checksum {}", read_view(registry, input, Migration::Light)?),
        ChildStep::ViewHeavy => println!("checksum {}", read_view(registry, input, Migration::Heavy)?),
        ChildStep::RewriteLight => pipeline::rewrite(registry, input, output()?, Migration::Light)?,
        ChildStep::RewriteHeavy => pipeline::rewrite(registry, input, output()?, Migration::Heavy)?,
        ChildStep::ConvertPickle => convert_pickle(input, output()?)?,
        ChildStep::UpgradeLlama => crate::llama::upgrade(input, output()?)?,
        ChildStep::PlanHeavy => {
            let registry = pipeline::load_registry(registry)?;
            for _ in 0..10 {
                std::hint::black_box(pipeline::open(&registry, input, Migration::Heavy)?);
            }
        }
    }
    println!("{}", crate::measure::own_memory_line());
    Ok(())
}

/// Reads every tensor of the migrated view once, one byte per page, and returns the
/// wrapping sum of them (printed, so the reads cannot be optimised away).
fn read_view(registry: &Path, input: &Path, migration: Migration) -> Result<u64, Box<dyn std::error::Error>> {
    let registry = pipeline::load_registry(registry)?;
    let migrated = pipeline::open(&registry, input, migration)?;
    let view = migrated.view();
    let mut sum = 0u64;
    for name in view.names() {
        let bytes = view.tensor(name)?;
        sum = bytes.iter().step_by(4096).fold(sum, |acc, &byte| acc.wrapping_add(u64::from(byte)));
    }
    Ok(std::hint::black_box(sum))
}

/// `safeshift convert`: the library's conversion (the engine's pass-through view; contiguous
/// tensors copied as file ranges, views materialised one at a time by the writer).
fn convert_pickle(input: &Path, output: &Path) -> Result<(), Box<dyn std::error::Error>> {
    safeshift::convert::convert(input, output, &safeshift_torch::ConvertOptions::default())?;
    Ok(())
}
