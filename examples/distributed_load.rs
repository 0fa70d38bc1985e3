//! Tensor-parallel loading: each rank reads only its rows of every 2-D tensor.
//!
//! ```text
//! cargo run --example distributed_load -- [RANK WORLD [CHECKPOINT [GRAPH]]]
//! RANK=1 WORLD_SIZE=4 cargo run --example distributed_load
//! ```
//!
//! Without a rank (neither argument nor `RANK`), every rank of a world of 2 is run in turn.
//! For each 2-D tensor a rank asks the lazy view for rows
//! `[rows * rank / world, rows * (rank + 1) / world)` with `slice`: the slice is pushed
//! down through the migration, so when the tensor is a renamed or split source only the
//! rank's bytes of the memory map are touched, and borrowed. Other tensors (1-D, scalars)
//! are replicated: every rank reads them whole.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::PathBuf;

use safeshift::{Migrated, OpenOptions, Registry};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env = |key: &str| std::env::var(key).ok();
    let rank: Option<u64> = args.first().cloned().or_else(|| env("RANK")).map(|text| text.parse()).transpose()?;
    let world: u64 = args.get(1).cloned().or_else(|| env("WORLD_SIZE")).map_or(Ok(2), |text| text.parse())?;
    if world == 0 || rank.is_some_and(|rank| rank >= world) {
        return Err(format!("need 0 <= RANK < WORLD, got {rank:?} of {world}").into());
    }
    let checkpoint =
        args.get(2).map_or_else(|| manifest.join("tests/data/anemoi/0.4.0/state_dict.safetensors"), PathBuf::from);
    let graph = args.get(3).map_or_else(|| manifest.join("tests/data/anemoi/graph.safetensors"), PathBuf::from);

    let registry = Registry::embedded()?;
    let options = OpenOptions { aux: BTreeMap::from([("graph".to_owned(), graph)]), ..OpenOptions::default() };
    let model = registry.open_with(&checkpoint, &options)?;
    println!("{}: {} -> {}, world of {world}", checkpoint.display(), model.from_version(), model.to_version());
    let ranks: Vec<u64> = rank.map_or_else(|| (0..world).collect(), |rank| vec![rank]);
    for rank in ranks {
        load_rank(&model, rank, world)?;
    }
    Ok(())
}

/// What one rank reads, and how much of it was borrowed from the map or computed.
fn load_rank(model: &Migrated, rank: u64, world: u64) -> Result<(), Box<dyn std::error::Error>> {
    let (mut borrowed, mut computed, mut replicated) = (0usize, 0usize, 0usize);
    for name in model.names() {
        let info = model.info(name).expect("every name has an info");
        let bytes = match info.shape.as_slice() {
            &[rows, _] => model.slice(name, rows * rank / world..rows * (rank + 1) / world)?,
            _ => {
                let whole = model.tensor(name)?;
                replicated += whole.len();
                whole
            }
        };
        match bytes {
            Cow::Borrowed(bytes) => borrowed += bytes.len(),
            Cow::Owned(bytes) => computed += bytes.len(),
        }
    }
    println!(
        "rank {rank}/{world}: {} bytes read ({borrowed} borrowed, {computed} computed; {replicated} of them replicated 0/1-D tensors)",
        borrowed + computed
    );
    Ok(())
}
