//! The documented bounds every read enforces, so a hostile file cannot exhaust memory or time.

/// Bounds on what a checkpoint may make the reader do. The defaults are far above what
/// real checkpoints need (a 70B-parameter model has ~1,000 tensors) and far below what
/// would hurt the machine; every limit is checked before the allocation it guards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Zip members (the central directory is also checked against the file size first).
    pub max_zip_members: u64,
    /// Memo entries of one pickle (PUT/BINPUT/LONG_BINPUT/MEMOIZE); the memo is a map, so a
    /// huge slot number costs nothing.
    pub max_memo: usize,
    /// Values on the pickle stack at once.
    pub max_stack: usize,
    /// MARKs open at once.
    pub max_marks: usize,
    /// Objects (lists, tuples, dicts, sets, instances) one checkpoint may create.
    pub max_objects: usize,
    /// Depth of nested containers followed when walking the object tree (state dicts,
    /// module trees, metadata). Real checkpoints nest a few dozen levels at most; the walks
    /// recurse, so this also bounds stack use.
    pub max_depth: usize,
    /// Bytes materialised for tensors that are *larger* than their stored data (stride-0
    /// `expand`, overlapping `as_strided`), summed over the checkpoint. Copies of ordinary
    /// views are bounded by the file size and not counted.
    pub max_expanded_bytes: u64,
    /// Bytes of JSON metadata produced from the non-tensor content.
    pub max_metadata_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_zip_members: 1 << 20,
            max_memo: 1 << 22,
            max_stack: 1 << 22,
            max_marks: 1 << 16,
            max_objects: 1 << 24,
            max_depth: 100,
            max_expanded_bytes: 1 << 30,
            max_metadata_bytes: 64 << 20,
        }
    }
}
