//! A sharded set opened through its index (`*.safetensors.index.json`,
//! `pytorch_model.bin.index.json`): every shard opened by the reader its content calls
//! for, checked against the index, and assembled into one checkpoint.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::checkpoint::{assemble, Checkpoint, ReadOptions};
use crate::error::{ReadError, ReadErrorKind};
use crate::index;
use crate::source;

/// Largest index file accepted (HF indexes are a few hundred kilobytes).
const MAX_INDEX_LEN: u64 = 100_000_000;

pub(crate) fn open(path: &Path, options: &ReadOptions) -> Result<Checkpoint, ReadError> {
    let err = |kind| ReadError::new(path, kind);
    let io = |action| move |source| ReadError::new(path, ReadErrorKind::Io { action, source });
    let file = File::open(path).map_err(io("open"))?;
    let len = file.metadata().map_err(io("stat"))?.len();
    if len > MAX_INDEX_LEN {
        return Err(err(ReadErrorKind::BadIndex {
            message: format!("{len} bytes, more than the limit of {MAX_INDEX_LEN}"),
        }));
    }
    let mut bytes = vec![0u8; len as usize];
    file.read_exact_at(&mut bytes, 0).map_err(io("read"))?;
    let parsed = index::parse(&bytes).map_err(err)?;
    let directory = path.parent().unwrap_or(Path::new(""));
    let mut files = Vec::with_capacity(parsed.shards.len());
    let mut count = 0usize;
    for (shard_name, listed) in &parsed.shards {
        let shard_path = directory.join(shard_name);
        let shard_err = |kind| ReadError::new(&shard_path, kind);
        let Some(opened) = source::open(&shard_path, options)? else {
            let message = format!("shard `{shard_name}` is itself an index");
            return Err(err(ReadErrorKind::BadIndex { message }));
        };
        let mut names: Vec<&str> = opened.entries.iter().map(|entry| entry.info.name.as_str()).collect();
        names.sort_unstable();
        let mut listed_sorted: Vec<&str> = listed.iter().map(String::as_str).collect();
        listed_sorted.sort_unstable();
        if let Some(missing) = listed_sorted.iter().find(|name| names.binary_search(name).is_err()) {
            return Err(shard_err(ReadErrorKind::MissingFromShard { tensor: (*missing).to_owned() }));
        }
        if let Some(extra) = names.iter().find(|name| listed_sorted.binary_search(name).is_err()) {
            return Err(shard_err(ReadErrorKind::UnlistedInIndex { tensor: (*extra).to_owned() }));
        }
        count += names.len();
        if count > options.limits.max_tensors {
            return Err(err(ReadErrorKind::TooManyTensors { limit: options.limits.max_tensors }));
        }
        files.push(opened);
    }
    // The index lists each tensor once and every shard matches it, so names are unique.
    assemble(path, files, Some(parsed.metadata), &options.limits)
}
