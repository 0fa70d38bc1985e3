//! The measured steps that run in a child process (`safeshift-bench __child STEP …`), so
//! that each has its own peak memory. Each prints its memory line last
//! ([`crate::measure::own_memory_line`]).

use std::path::Path;

use safeshift_engine::{write, Checkpoint, OutputTensor, TensorOrder, TensorSource, WriteOptions};

use crate::synth;

/// A step a child runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ChildStep {
    /// Read every tensor once through the view, touching every page.
    ReadView,
    /// Rewrite with the light (rename and reshape) migration.
    RewriteLight,
    /// Rewrite with the heavy (split-heads, transpose, cast) migration.
    RewriteHeavy,
}

/// Runs `step` on `input` (writing `output` for rewrites) and prints the memory line.
pub fn run(step: ChildStep, input: &Path, output: Option<&Path>) -> Result<(), Box<dyn std::error::Error>> {
    match step {
        ChildStep::ReadView => {
            let checksum = read_view(input)?;
            println!("checksum {checksum}");
        }
        ChildStep::RewriteLight => rewrite_light(input, output.ok_or("a rewrite needs an output path")?)?,
        ChildStep::RewriteHeavy => return Err("the heavy migration needs the ops crate, not yet on main".into()),
    }
    println!("{}", crate::measure::own_memory_line());
    Ok(())
}

/// Reads every tensor once, one byte per page, and returns the wrapping sum of them
/// (printed, so the reads cannot be optimised away).
fn read_view(input: &Path) -> Result<u64, Box<dyn std::error::Error>> {
    let checkpoint = Checkpoint::open(input)?;
    let mut sum = 0u64;
    for info in &checkpoint.layout().tensors {
        let bytes = checkpoint.tensor_bytes(&info.name)?;
        sum = bytes.iter().step_by(4096).fold(sum, |acc, &byte| acc.wrapping_add(u64::from(byte)));
    }
    Ok(std::hint::black_box(sum))
}

/// The light migration: every output tensor is an input's byte range under a new name
/// and shape, copied by the engine with `copy_file_range`.
fn rewrite_light(input: &Path, output: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let checkpoint = Checkpoint::open(input)?;
    let mut tensors = Vec::with_capacity(checkpoint.layout().tensors.len());
    for info in &checkpoint.layout().tensors {
        let location = checkpoint.tensor_location(&info.name).ok_or("a listed tensor has a location")?;
        tensors.push(OutputTensor {
            name: synth::light_name(&info.name),
            dtype: info.dtype,
            shape: synth::light_shape(info),
            source: TensorSource::File(location),
        });
    }
    let options = WriteOptions {
        metadata: checkpoint.layout().metadata.clone(),
        order: TensorOrder::AsGiven,
        ..Default::default()
    };
    write(output, tensors, &options)?;
    Ok(())
}
