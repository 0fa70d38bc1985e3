//! Typed errors of the reader and the writer: a `#[non_exhaustive]` kind plus the file.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// A checkpoint could not be opened or read: the file and what is wrong with it.
#[derive(Debug)]
pub struct ReadError {
    /// The file at fault: the `.safetensors` file, a shard, or the index.
    pub path: PathBuf,
    /// What is wrong.
    pub kind: ReadErrorKind,
}

/// What is wrong with a checkpoint file. Every variant names the offending tensor, key or
/// offset where there is one; offsets inside the data section are relative to its start
/// (as `data_offsets` are), other offsets are from the start of the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadErrorKind {
    /// An I/O error (open, stat, read, map).
    #[error("cannot {action}")]
    Io {
        /// What was being done (`open`, `read the header`, …).
        action: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The file is shorter than the 8-byte header length prefix.
    #[error("file is {len} bytes, too short for the 8-byte header length")]
    TooShort {
        /// The file length.
        len: u64,
    },
    /// The header length prefix exceeds the format's bound (100,000,000 bytes).
    #[error("header length {len} exceeds the limit of {limit} bytes")]
    HeaderTooLarge {
        /// The length the prefix declares.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// The header length prefix runs past the end of the file.
    #[error("header length {len} runs past the end of the file ({file_len} bytes)")]
    HeaderPastEnd {
        /// The length the prefix declares.
        len: u64,
        /// The file length.
        file_len: u64,
    },
    /// The header is not UTF-8.
    #[error("header is not UTF-8 (invalid byte at file offset {offset})")]
    HeaderNotUtf8 {
        /// File offset of the first invalid byte.
        offset: u64,
    },
    /// The header is not JSON (syntax), or has trailing characters other than spaces.
    #[error("header is not valid JSON: {message}")]
    HeaderNotJson {
        /// serde_json's message, with line and column inside the header.
        message: String,
    },
    /// The header is JSON but not an object.
    #[error("header is not a JSON object: {message}")]
    HeaderNotObject {
        /// serde_json's message.
        message: String,
    },
    /// A key appears twice in one JSON object (serde_json alone would keep the last).
    #[error("duplicate key `{key}`{}", within.as_ref().map(|w| format!(" in `{w}`")).unwrap_or_default())]
    DuplicateKey {
        /// The repeated key.
        key: String,
        /// The object holding it: a tensor, `__metadata__`, `weight_map`; `None` for the header.
        within: Option<String>,
    },
    /// A tensor entry has no `dtype`, `shape` or `data_offsets`.
    #[error("tensor `{tensor}`: missing field `{field}`")]
    MissingField {
        /// The tensor.
        tensor: String,
        /// The missing field.
        field: &'static str,
    },
    /// A tensor entry has a field other than `dtype`, `shape`, `data_offsets`.
    #[error("tensor `{tensor}`: unknown field `{field}`")]
    UnknownField {
        /// The tensor.
        tensor: String,
        /// The unexpected field.
        field: String,
    },
    /// A tensor entry or one of its fields has the wrong JSON type.
    #[error("tensor `{tensor}`: bad {}: {message}", field.map(|f| format!("`{f}`")).unwrap_or_else(|| "entry".into()))]
    BadField {
        /// The tensor.
        tensor: String,
        /// The field, `None` when the entry itself is not an object.
        field: Option<&'static str>,
        /// serde_json's message.
        message: String,
    },
    /// A dtype the format does not define.
    #[error("tensor `{tensor}`: unknown dtype `{dtype}`")]
    UnknownDType {
        /// The tensor.
        tensor: String,
        /// The dtype as written.
        dtype: String,
    },
    /// The product of a shape overflows 64 bits (or its bit count does).
    #[error("tensor `{tensor}`: shape {shape:?} has too many elements")]
    ShapeOverflow {
        /// The tensor.
        tensor: String,
        /// The shape.
        shape: Vec<u64>,
    },
    /// A packed dtype (`F4`, `F6_*`) whose element count does not fill whole bytes.
    #[error("tensor `{tensor}`: {numel} elements of `{dtype}` do not fill whole bytes")]
    PartialByte {
        /// The tensor.
        tensor: String,
        /// Its element count.
        numel: u64,
        /// Its dtype name.
        dtype: &'static str,
    },
    /// `data_offsets` is not two unsigned integers `[start, end]` with `start <= end`.
    #[error("tensor `{tensor}`: bad `data_offsets`: {message}")]
    BadOffsets {
        /// The tensor.
        tensor: String,
        /// What is wrong.
        message: String,
    },
    /// A tensor's byte range ends past the data section.
    #[error("tensor `{tensor}`: data ends at offset {end}, past the end of the data section ({data_len} bytes)")]
    OffsetsOutOfBounds {
        /// The tensor.
        tensor: String,
        /// Its end offset.
        end: u64,
        /// The data section length.
        data_len: u64,
    },
    /// A tensor's byte count differs from numel × dtype size.
    #[error("tensor `{tensor}`: data_offsets hold {found} bytes, but its shape and dtype need {expected}")]
    ByteCountMismatch {
        /// The tensor.
        tensor: String,
        /// numel × dtype size.
        expected: u64,
        /// end − start.
        found: u64,
    },
    /// Sorted by offset, a tensor starts after the previous one ends.
    #[error("tensor `{tensor}` starts at data offset {found}, leaving a hole after offset {expected}")]
    OffsetsHole {
        /// The tensor after the hole.
        tensor: String,
        /// Where it should start (the end of the previous tensor, or 0).
        expected: u64,
        /// Where it starts.
        found: u64,
    },
    /// Sorted by offset, a tensor starts before the previous one ends.
    #[error("tensor `{tensor}` starts at data offset {found}, overlapping `{previous}` which ends at {expected}")]
    OffsetsOverlap {
        /// The overlapping tensor.
        tensor: String,
        /// The tensor it overlaps.
        previous: String,
        /// Where it should start.
        expected: u64,
        /// Where it starts.
        found: u64,
    },
    /// The file is longer than header plus tensors.
    #[error("{extra} trailing bytes after the last tensor, from data offset {offset}")]
    TrailingBytes {
        /// How many bytes follow the last tensor.
        extra: u64,
        /// Data-section offset where they start (the end of the last tensor).
        offset: u64,
    },
    /// `__metadata__` is not an object of strings to strings.
    #[error("`__metadata__` must map strings to strings: {message}")]
    BadMetadata {
        /// What is wrong (serde_json's message).
        message: String,
    },
    /// More tensors than [`Limits::max_tensors`](crate::Limits).
    #[error("more than {limit} tensors")]
    TooManyTensors {
        /// The limit.
        limit: usize,
    },
    /// A tensor name longer than [`Limits::max_name_len`](crate::Limits).
    #[error("tensor name of {len} bytes starting `{prefix}` exceeds the limit of {limit} bytes")]
    NameTooLong {
        /// The first 64 characters of the name.
        prefix: String,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A shape with more axes than [`Limits::max_rank`](crate::Limits).
    #[error("tensor `{tensor}`: shape has more than {limit} axes")]
    RankTooLarge {
        /// The tensor.
        tensor: String,
        /// The limit.
        limit: usize,
    },
    /// A sharded index file is malformed.
    #[error("bad index: {message}")]
    BadIndex {
        /// What is wrong.
        message: String,
    },
    /// A `weight_map` file name is not a plain file name beside the index.
    #[error("shard `{shard}` must be a plain file name in the index's directory")]
    BadShardName {
        /// The name as written.
        shard: String,
    },
    /// The index lists a tensor in a shard that does not contain it.
    #[error("the index lists tensor `{tensor}` in this shard, which does not contain it")]
    MissingFromShard {
        /// The tensor.
        tensor: String,
    },
    /// A shard holds a tensor the index does not list for it.
    #[error("tensor `{tensor}` is in this shard but the index does not list it here")]
    UnlistedInIndex {
        /// The tensor.
        tensor: String,
    },
    /// Two shards give different values for one `__metadata__` key.
    #[error("metadata `{key}` differs from an earlier shard's")]
    MetadataConflict {
        /// The key.
        key: String,
    },
    /// No tensor of this name.
    #[error("no tensor `{tensor}`")]
    NoSuchTensor {
        /// The name asked for.
        tensor: String,
    },
    /// The file's length changed after it was opened (it must not be modified while open).
    #[error(
        "file changed size since it was opened ({expected} bytes, now {found}); it must not be modified while open"
    )]
    FileChanged {
        /// The length at open.
        expected: u64,
        /// The length now.
        found: u64,
    },
    /// A narrow outside the tensor.
    #[error("tensor `{tensor}`: cannot take {len} elements from {start} along axis {axis} of shape {shape:?}")]
    BadNarrow {
        /// The tensor.
        tensor: String,
        /// The axis.
        axis: usize,
        /// First index along the axis.
        start: u64,
        /// Number of indices.
        len: u64,
        /// The tensor's shape.
        shape: Vec<u64>,
    },
    /// The caller's buffer does not have the tensor's byte length.
    #[error("tensor `{tensor}`: buffer of {found} bytes for a tensor of {expected} bytes")]
    BufferSize {
        /// The tensor.
        tensor: String,
        /// The tensor's byte length.
        expected: u64,
        /// The buffer's length.
        found: usize,
    },
    /// The file is neither safetensors, a sharded set's index, nor a PyTorch checkpoint.
    #[error(
        "not a checkpoint: neither safetensors, a sharded index (JSON), nor a PyTorch file (zip, legacy pickle, tar)"
    )]
    UnknownFormat,
    /// A PyTorch file could not be read (or would run code: the gadget is named).
    #[error(transparent)]
    Torch(safeshift_torch::ErrorKind),
    /// The `safeshift.extras` record is not a JSON array of names, or names a tensor the
    /// checkpoint does not hold.
    #[error("bad extras record: {message}")]
    BadExtras {
        /// What is wrong.
        message: String,
    },
}

impl ReadError {
    pub(crate) fn new(path: impl Into<PathBuf>, kind: ReadErrorKind) -> ReadError {
        ReadError { path: path.into(), kind }
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.path.display(), self.kind)
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.kind)
    }
}

/// The error a tensor generator returns; it aborts the write.
pub type GenerateError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A file could not be written: the target and what went wrong. No file was left at the
/// target and the temporary file was removed.
#[derive(Debug)]
pub struct WriteError {
    /// The target path.
    pub path: PathBuf,
    /// What went wrong.
    pub kind: WriteErrorKind,
}

/// What went wrong while writing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteErrorKind {
    /// An I/O error on the output.
    #[error("cannot {action}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Reading a pass-through file range failed (or it was short).
    #[error("tensor `{tensor}`: cannot read its source bytes")]
    SourceRead {
        /// The tensor.
        tensor: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Two output tensors share a name.
    #[error("duplicate tensor `{tensor}`")]
    DuplicateTensor {
        /// The name.
        tensor: String,
    },
    /// A shape whose element or byte count overflows, or a packed dtype not filling whole bytes.
    #[error("tensor `{tensor}`: shape {shape:?} of `{dtype}` has no whole byte length")]
    BadShape {
        /// The tensor.
        tensor: String,
        /// Its shape.
        shape: Vec<u64>,
        /// Its dtype name.
        dtype: &'static str,
    },
    /// A byte source whose length is not the tensor's byte length.
    #[error("tensor `{tensor}`: source has {found} bytes, its shape and dtype need {expected}")]
    SourceLength {
        /// The tensor.
        tensor: String,
        /// The byte length of the shape and dtype.
        expected: u64,
        /// The source's length.
        found: u64,
    },
    /// The header would exceed the format's bound.
    #[error("header of {len} bytes exceeds the limit of {limit} bytes")]
    HeaderTooLarge {
        /// Its length.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// A generator failed.
    #[error("tensor `{tensor}`: generator failed")]
    Generator {
        /// The tensor.
        tensor: String,
        /// Its error.
        #[source]
        source: GenerateError,
    },
    /// The target path cannot be written as asked (no file name, a sharded target not
    /// ending in `.safetensors.index.json`).
    #[error("bad target: {message}")]
    BadTarget {
        /// What is wrong.
        message: String,
    },
    /// A fault injected by a test ([`WriteOptions::fail_after_bytes`](crate::WriteOptions)).
    #[error("injected fault after {after} bytes")]
    InjectedFault {
        /// Bytes written before the fault.
        after: u64,
    },
}

impl WriteError {
    pub(crate) fn new(path: impl Into<PathBuf>, kind: WriteErrorKind) -> WriteError {
        WriteError { path: path.into(), kind }
    }
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.path.display(), self.kind)
    }
}

impl std::error::Error for WriteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.kind)
    }
}
