//! A model loader that opens an old checkpoint in today's layout, lazily.
//!
//! ```text
//! cargo run --example load_model -- [CHECKPOINT [GRAPH]]
//! ```
//!
//! By default it opens the anemoi-models 0.4.0 fixture with the fixture graph (the last
//! migration reorders trainable edge features by the graph's destination order). Nothing
//! is written: the loader walks `names()`/`info()`/`tensor()` and sees each tensor as
//! 0.19.0 code expects it. Renamed and split tensors are borrowed from the memory map
//! (zero-copy); the others (here: the reordered edge features and the new buffers) are
//! computed on demand.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::PathBuf;

use safeshift::{OpenOptions, Registry};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let checkpoint = args.next().unwrap_or_else(|| manifest.join("tests/data/anemoi/0.4.0/state_dict.safetensors"));
    let graph = args.next().unwrap_or_else(|| manifest.join("tests/data/anemoi/graph.safetensors"));

    let registry = Registry::embedded()?;
    let options = OpenOptions { aux: BTreeMap::from([("graph".to_owned(), graph)]), ..OpenOptions::default() };
    let model = registry.open_with(&checkpoint, &options)?;
    println!("{}: {} -> {}", checkpoint.display(), model.from_version(), model.to_version());

    let (mut borrowed, mut computed) = (0usize, 0usize);
    let mut computed_names = Vec::new();
    for name in model.names() {
        let info = model.info(name).expect("every name has an info");
        // This is where a real loader would copy into its parameter: `tensor` gives the
        // bytes in the target layout, little-endian, row-major.
        let bytes = model.tensor(name)?;
        match bytes {
            Cow::Borrowed(bytes) => borrowed += bytes.len(),
            Cow::Owned(bytes) => {
                computed += bytes.len();
                computed_names.push(format!("{name} {} {:?}", info.dtype, info.shape));
            }
        }
    }
    println!(
        "{} tensors: {borrowed} bytes borrowed from the map (zero-copy), {computed} bytes computed",
        model.names().len()
    );
    println!("computed tensors:");
    for name in computed_names {
        println!("  {name}");
    }
    Ok(())
}
