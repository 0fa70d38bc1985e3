//! Opens one checkpoint many times with one registry (open + detect + plan + compile +
//! view, as step 1 of the bench does), for profiling with callgrind or perf:
//!
//! ```text
//! cargo run --release -p safeshift-bench --example open_loop -- REGISTRY FILE TO N [DIM=VALUE…]
//! valgrind --tool=callgrind target/release/examples/open_loop embedded llama.safetensors llama.hf@1.0.0 20 heads=8 kv_heads=4
//! ```
//!
//! `REGISTRY` is a registry folder or `embedded`; `TO` the target version, or
//! `read_metadata` for the baseline the bench compares with (the `safetensors` crate's
//! open + mmap + header parse, as step 1 measures it). The registry
//! is loaded and the file opened once before the loop (the first open builds the
//! registry's candidate index), so the loop measures every later open.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use safeshift::{OpenOptions, Registry};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [registry, file, to, count, dims @ ..] = args.as_slice() else {
        return Err("usage: open_loop REGISTRY|embedded FILE TO N [DIM=VALUE…]".into());
    };
    let registry = match registry.as_str() {
        "embedded" => Registry::embedded()?,
        dir => Registry::load(Path::new(dir))?,
    };
    let mut given = BTreeMap::new();
    for dim in dims {
        let (name, value) = dim.split_once('=').ok_or("a dim is NAME=VALUE")?;
        given.insert(name.to_owned(), value.parse::<i64>()?);
    }
    let options = OpenOptions { to: Some(to.clone()), dims: given, allow_lossy: true, ..OpenOptions::default() };
    let path = Path::new(file);
    let count: u32 = count.parse()?;
    if to == "read_metadata" {
        let started = Instant::now();
        for _ in 0..count {
            let file = std::fs::File::open(path)?;
            // SAFETY: a file of the caller's, not modified while mapped (as the bench's).
            let map = unsafe { memmap2::Mmap::map(&file)? };
            let (_, metadata) = safetensors::SafeTensors::read_metadata(&map)?;
            std::hint::black_box(metadata.tensors().len());
        }
        println!("{:?} per read_metadata", started.elapsed() / count.max(1));
        return Ok(());
    }
    let first = registry.open_with(path, &options)?;
    println!("{} -> {}", first.from_version(), first.to_version());
    let started = Instant::now();
    for _ in 0..count {
        registry.open_with(path, &options)?;
    }
    println!("{:?} per open", started.elapsed() / count.max(1));
    Ok(())
}
