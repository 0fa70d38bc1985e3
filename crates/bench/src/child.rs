//! The measured steps that run in a child process (`safeshift-bench __child STEP …`), so
//! that each has its own peak memory. Each prints its memory line last
//! ([`crate::measure::own_memory_line`]).

use std::path::Path;

use safeshift_engine::{Checkpoint, MigratedView};

use crate::pipeline::{self, Migration};
use crate::synth::ModelShape;

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
}

/// Runs `step` on `input` (writing `output` for rewrites) and prints the memory line.
pub fn run(
    step: ChildStep,
    input: &Path,
    output: Option<&Path>,
    shape: &ModelShape,
) -> Result<(), Box<dyn std::error::Error>> {
    let output = || output.ok_or("a rewrite needs an output path");
    match step {
        ChildStep::ViewLight => println!("checksum {}", read_view(input, Migration::Light, shape)?),
        ChildStep::ViewHeavy => println!("checksum {}", read_view(input, Migration::Heavy, shape)?),
        ChildStep::RewriteLight => pipeline::rewrite(input, output()?, Migration::Light, shape)?,
        ChildStep::RewriteHeavy => pipeline::rewrite(input, output()?, Migration::Heavy, shape)?,
    }
    println!("{}", crate::measure::own_memory_line());
    Ok(())
}

/// Reads every tensor of the migrated view once, one byte per page, and returns the
/// wrapping sum of them (printed, so the reads cannot be optimised away).
fn read_view(input: &Path, migration: Migration, shape: &ModelShape) -> Result<u64, Box<dyn std::error::Error>> {
    let checkpoint = Checkpoint::open(input)?;
    let planned = pipeline::plan(&checkpoint, migration, shape)?;
    let metadata = checkpoint.layout().metadata.clone();
    let view = MigratedView::new(checkpoint, Default::default(), planned, metadata)?;
    let mut sum = 0u64;
    for name in view.names() {
        let bytes = view.tensor(name)?;
        sum = bytes.iter().step_by(4096).fold(sum, |acc, &byte| acc.wrapping_add(u64::from(byte)));
    }
    Ok(std::hint::black_box(sum))
}
