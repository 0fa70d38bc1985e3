//! Rewrites a checkpoint through the engine (every tensor a file range, copied through
//! the writer's buffer) and prints how long opening and writing took:
//!
//! ```text
//! cargo run --release -p safeshift-engine --example rewrite -- IN.safetensors OUT.safetensors [--sha256]
//! ```

use std::path::Path;
use std::time::Instant;

use safeshift_engine::{write, Checkpoint, OutputTensor, TensorOrder, TensorSource, WriteOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output, rest @ ..] = args.as_slice() else {
        return Err("usage: rewrite IN OUT [--sha256]".into());
    };
    let started = Instant::now();
    let checkpoint = Checkpoint::open(Path::new(input))?;
    let opened = started.elapsed();
    let tensors = checkpoint
        .layout()
        .tensors
        .iter()
        .map(|info| OutputTensor {
            name: info.name.clone(),
            dtype: info.dtype,
            shape: info.shape.clone(),
            source: TensorSource::File(checkpoint.tensor_location(&info.name).expect("listed tensors have locations")),
        })
        .collect();
    let options = WriteOptions {
        metadata: checkpoint.layout().metadata.clone(),
        order: TensorOrder::AsGiven,
        record_sha256: rest.iter().any(|arg| arg == "--sha256"),
        ..WriteOptions::default()
    };
    let summary = write(Path::new(output), tensors, &options)?;
    let total = started.elapsed();
    println!(
        "{} tensors, {} bytes: open {:.3} s, open + write + fsync {:.3} s",
        checkpoint.layout().tensors.len(),
        summary.bytes,
        opened.as_secs_f64(),
        total.as_secs_f64()
    );
    Ok(())
}
