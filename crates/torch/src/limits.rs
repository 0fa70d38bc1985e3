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
    /// Objects (lists, tuples, dicts, sets, instances) one checkpoint may create, checked
    /// at the opcode that creates one.
    pub max_objects: usize,
    /// Depth of nested containers: checked as the pickle builds them (a container one level
    /// deeper than this stops the parse at the opcode that makes it) and again when walking
    /// the object tree (state dicts, module trees, metadata). Real checkpoints nest a few
    /// dozen levels at most; the walks recurse, so this also bounds stack use.
    pub max_depth: usize,
    /// Bytes materialised for tensors that are *larger* than their stored data (stride-0
    /// `expand`, overlapping `as_strided`), summed over the checkpoint. Copies of ordinary
    /// views are bounded by the file size and not counted.
    pub max_expanded_bytes: u64,
    /// Bytes of JSON metadata produced from the non-tensor content.
    pub max_metadata_bytes: usize,
    /// Memory a pickle's parse may take, per byte of the input file (see
    /// [`Limits::parse_memory`]).
    pub parse_memory_per_input_byte: u64,
    /// Memory a pickle's parse may take whatever the input's size, in bytes.
    pub parse_memory_base: u64,
}

impl Limits {
    /// The bytes the pickle machine may hold while parsing an input file of `input_len`
    /// bytes: `parse_memory_per_input_byte × input_len + parse_memory_base`. Charged as the
    /// parse goes: every object (twice its slot, as the arena grows by doubling), every
    /// container element (twice a value), every memo entry and every string or bytes copied
    /// out of the input. The parse stops at the opcode that crosses it.
    pub fn parse_memory(&self, input_len: u64) -> u64 {
        self.parse_memory_per_input_byte.saturating_mul(input_len).saturating_add(self.parse_memory_base)
    }
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
            parse_memory_per_input_byte: 8,
            parse_memory_base: 64 << 20,
        }
    }
}
