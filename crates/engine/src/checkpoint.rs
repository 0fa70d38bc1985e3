//! An open checkpoint: one file or a sharded set, in any input format, mapped, validated.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};

use safeshift_model::{Layout, TensorInfo};

use crate::error::{ReadError, ReadErrorKind};
use crate::header::{self, Limits};
use crate::source::{self, InputFormat, Opened, Place, Source};
use crate::writer::SHA256_METADATA_KEY;

/// How to open a checkpoint: the reader's bounds, and what to take from a PyTorch pickle
/// (the state-dict entry, tied tensors, the gadget override…). Safetensors files ignore
/// `pickle`.
#[derive(Clone, Debug, Default)]
pub struct ReadOptions {
    /// Bounds on headers and tensor counts.
    pub limits: Limits,
    /// How PyTorch files are read.
    pub pickle: safeshift_torch::ConvertOptions,
}

/// A validated checkpoint, whatever its format: its [`Layout`] (the state dict), its
/// extras, and each tensor's bytes — borrowed from a memory map of the file where the
/// format stores them as one byte range (safetensors always; a PyTorch file for every
/// contiguous little-endian tensor), built on demand otherwise.
///
/// The files must not be modified while a `Checkpoint` is open. Before handing out
/// bytes from a map, [`Checkpoint::tensor_bytes`] checks that the file still has the
/// length it had at open ([`ReadErrorKind::FileChanged`] otherwise); a file truncated
/// after that check would make the borrowed pages fault (SIGBUS). Callers that cannot
/// trust the files to stay put use [`Checkpoint::read_tensor_into`], which reads with
/// `pread` and reports a truncation as an error.
#[derive(Debug)]
pub struct Checkpoint {
    path: PathBuf,
    /// The state dict.
    layout: Layout,
    /// Tensors held outside the state dict.
    extras: Vec<TensorInfo>,
    /// Where each tensor's bytes are, parallel to `layout.tensors` then `extras`.
    spans: Vec<Span>,
    /// Tensor indices (into `spans`) sorted by name, for lookups.
    by_name: Vec<u32>,
    shards: Vec<Source>,
    index_metadata: Option<serde_json::Map<String, serde_json::Value>>,
    aliases: Vec<(String, String)>,
}

#[derive(Clone, Copy, Debug)]
struct Span {
    shard: u32,
    place: Place,
}

/// Where a tensor's bytes are in its file, for the writer's copy or `pread`.
#[derive(Clone, Copy, Debug)]
pub struct TensorLocation<'a> {
    /// The open file (read-only).
    pub file: &'a File,
    /// Its path.
    pub path: &'a Path,
    /// Offset of the first byte from the start of the file.
    pub offset: u64,
    /// Number of bytes.
    pub len: u64,
}

impl Checkpoint {
    /// Opens a checkpoint with the default [`ReadOptions`]: a `.safetensors` file, a
    /// PyTorch file (`.pt`, `.pth`, `.bin`, `.ckpt`: zip or legacy), or a sharded set
    /// through its index (`*.safetensors.index.json`, `pytorch_model.bin.index.json`).
    /// The format is told by the content, not the name.
    pub fn open(path: &Path) -> Result<Checkpoint, ReadError> {
        Checkpoint::open_with(path, &ReadOptions::default())
    }

    /// Opens with explicit options. A safetensors file is read up to its header (with
    /// `pread`) and its data pages are mapped but not touched; a PyTorch file's pickle is
    /// read whole (running nothing) and its storages are mapped.
    pub fn open_with(path: &Path, options: &ReadOptions) -> Result<Checkpoint, ReadError> {
        match source::open(path, options)? {
            Some(opened) => assemble(path, vec![opened], None, &options.limits),
            None => crate::sharded::open(path, options),
        }
    }

    /// The path it was opened from (the file or the index).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The state dict's names, dtypes, shapes (file order; shard by shard for a sharded
    /// set) and the metadata (the union over shards). Extras are not in it.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Tensors the checkpoint holds outside its state dict (Anemoi supporting arrays, graph
    /// tensors; in a safetensors file, those `__metadata__["safeshift.extras"]` lists), in
    /// file order. Read them like any tensor.
    pub fn extras(&self) -> &[TensorInfo] {
        &self.extras
    }

    /// The state dict and the extras in one layout, the extras named in its metadata under
    /// [`EXTRAS_METADATA_KEY`](crate::EXTRAS_METADATA_KEY): the form the graph layer takes
    /// (detection sets the extras aside, compilation passes them through as outputs listed
    /// under the same key). Just the layout when there are no extras.
    pub fn layout_with_extras(&self) -> Cow<'_, Layout> {
        if self.extras.is_empty() {
            return Cow::Borrowed(&self.layout);
        }
        let mut layout = self.layout.clone();
        layout.tensors.extend(self.extras.iter().cloned());
        let names: Vec<&str> = self.extras.iter().map(|info| info.name.as_str()).collect();
        let record = serde_json::to_string(&names).expect("strings serialize");
        layout.metadata.insert(crate::EXTRAS_METADATA_KEY.to_owned(), record);
        Cow::Owned(layout)
    }

    /// Tied names a PyTorch file held twice and the reader listed once: `(name, kept name)`.
    pub fn aliases(&self) -> &[(String, String)] {
        &self.aliases
    }

    /// For a single PyTorch file, what its reader found besides the tensors: the classes
    /// read as data, any gadget (when allowed), the aliases, the metadata it made.
    pub fn pickle(&self) -> Option<&safeshift_torch::Converted> {
        match self.shards.as_slice() {
            [only] => only.pickle.as_ref(),
            _ => None,
        }
    }

    /// The format of the (first) file.
    pub fn format(&self) -> &InputFormat {
        &self.shards[0].format
    }

    /// Each file's own `__metadata__` as stored, in [`Checkpoint::files`] order.
    pub fn file_metadata(&self) -> impl ExactSizeIterator<Item = (&Path, &BTreeMap<String, String>)> {
        self.shards.iter().map(|shard| (shard.path.as_path(), &shard.metadata))
    }

    /// The index's `metadata` object, for a sharded set.
    pub fn index_metadata(&self) -> Option<&serde_json::Map<String, serde_json::Value>> {
        self.index_metadata.as_ref()
    }

    /// The files: one, or the shards in index order.
    pub fn files(&self) -> impl ExactSizeIterator<Item = &Path> {
        self.shards.iter().map(|shard| shard.path.as_path())
    }

    /// The file a tensor is in.
    pub fn file_of(&self, name: &str) -> Option<&Path> {
        let index = self.find(name)?;
        Some(&self.shards[self.spans[index].shard as usize].path)
    }

    /// The tensor (of the state dict, or an extra) called `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.find(name).map(|index| self.info(index))
    }

    /// Whether [`Checkpoint::tensor_bytes`] borrows tensor `name` from the file's map
    /// (its bytes are one range of the file) rather than building it.
    pub fn is_zero_copy(&self, name: &str) -> bool {
        self.find(name).is_some_and(|index| matches!(self.spans[index].place, Place::Mapped { .. }))
    }

    /// The bytes of a tensor (little-endian, row-major): borrowed from the map when they
    /// are a byte range of the file, built otherwise (a strided or big-endian PyTorch view).
    pub fn tensor_bytes(&self, name: &str) -> Result<Cow<'_, [u8]>, ReadError> {
        let index = self.find(name).ok_or_else(|| self.no_such_tensor(name))?;
        let span = self.spans[index];
        self.shards[span.shard as usize].bytes(span.place)
    }

    /// Copies a tensor's bytes into `buf` (exactly its byte length): with `pread` for a
    /// byte range of the file, without touching the map (a file truncated meanwhile gives
    /// an error, never a fault).
    pub fn read_tensor_into(&self, name: &str, buf: &mut [u8]) -> Result<(), ReadError> {
        let index = self.find(name).ok_or_else(|| self.no_such_tensor(name))?;
        let span = self.spans[index];
        if buf.len() as u64 != span.place.len() {
            let expected = span.place.len();
            let kind = ReadErrorKind::BufferSize { tensor: name.to_owned(), expected, found: buf.len() };
            return Err(ReadError::new(&self.shards[span.shard as usize].path, kind));
        }
        self.read_range(index, 0, buf)
    }

    /// Reads `buf.len()` bytes of tensor number `index` from `start` (within the tensor).
    pub(crate) fn read_range(&self, index: usize, start: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        let span = self.spans[index];
        self.shards[span.shard as usize].read(span.place, start, buf)
    }

    /// The byte length of tensor number `index`.
    pub(crate) fn tensor_len(&self, index: usize) -> u64 {
        self.spans[index].place.len()
    }

    /// The index (for [`Checkpoint::read_range`]) of tensor `name`.
    pub(crate) fn index_of(&self, name: &str) -> Option<usize> {
        self.find(name)
    }

    /// Unmaps this process's pages of tensor `name` (`madvise(MADV_DONTNEED)` on the whole
    /// pages inside it). The bytes stay in the page cache and the next access maps them
    /// again, so a streaming pass over a file larger than memory keeps a small resident
    /// set instead of growing by every page it touched. Advisory: errors are ignored.
    pub(crate) fn release_pages(&self, name: &str) {
        self.release_range(name, 0..u64::MAX);
    }

    /// Like [`Checkpoint::release_pages`], for bytes `within` of tensor `name` only (clamped
    /// to the tensor): a part borrowed from a fused tensor releases its own pages, not the
    /// other parts' that a loader is still to read. A view the torch reader builds releases
    /// the pages of its whole storage.
    pub(crate) fn release_range(&self, name: &str, within: Range<u64>) {
        let Some(index) = self.find(name) else {
            return;
        };
        let span = self.spans[index];
        let place = match span.place {
            Place::Mapped { offset, len } => {
                let (start, end) = (within.start.min(len), within.end.min(len));
                Place::Mapped { offset: offset + start, len: end.saturating_sub(start) }
            }
            // A built tensor: the pages its storage was read from, all of them.
            materialised @ Place::Materialised { .. } => materialised,
        };
        self.shards[span.shard as usize].release_pages(place);
    }

    /// Where a tensor's bytes are: file, path, offset from the file start, length. `None`
    /// for an unknown name, or a tensor whose bytes are not one range of its file.
    pub fn tensor_location(&self, name: &str) -> Option<TensorLocation<'_>> {
        let span = self.spans[self.find(name)?];
        let shard = &self.shards[span.shard as usize];
        match span.place {
            Place::Mapped { offset, len } => Some(TensorLocation { file: &shard.file, path: &shard.path, offset, len }),
            Place::Materialised { .. } => None,
        }
    }

    /// The bytes of `len` indices from `start` along `axis`, borrowed, when they are one
    /// contiguous range of the file: `axis` is 0 or every axis before it has size 1 (and,
    /// for packed dtypes, the range falls on byte boundaries), and the tensor itself is a
    /// byte range of its file. `Ok(None)` when not contiguous; an error for an unknown
    /// tensor or a range outside the shape.
    pub fn narrow(&self, name: &str, axis: usize, start: u64, len: u64) -> Result<Option<&[u8]>, ReadError> {
        let index = self.find(name).ok_or_else(|| self.no_such_tensor(name))?;
        let info = self.info(index);
        let in_range = axis < info.shape.len() && start.checked_add(len).is_some_and(|end| end <= info.shape[axis]);
        if !in_range {
            let kind =
                ReadErrorKind::BadNarrow { tensor: name.to_owned(), axis, start, len, shape: info.shape.clone() };
            return Err(ReadError::new(self.file_of(name).unwrap_or(&self.path), kind));
        }
        // An empty result is trivially one (empty) range.
        if len == 0 || info.numel() == Some(0) {
            return Ok(Some(&[]));
        }
        if info.shape[..axis].iter().any(|&dim| dim != 1) {
            return Ok(None);
        }
        let inner_bits =
            info.shape[axis + 1..].iter().try_fold(info.dtype.bits() as u64, |acc, &dim| acc.checked_mul(dim));
        let range = inner_bits.and_then(|bits| Some((start.checked_mul(bits)?, len.checked_mul(bits)?)));
        let Some((start_bits, len_bits)) = range else {
            return Ok(None);
        };
        if start_bits % 8 != 0 || len_bits % 8 != 0 {
            return Ok(None);
        }
        let Cow::Borrowed(bytes) = self.tensor_bytes(name)? else {
            return Ok(None);
        };
        let (first, count) = ((start_bits / 8) as usize, (len_bits / 8) as usize);
        Ok(Some(&bytes[first..first + count]))
    }

    fn info(&self, index: usize) -> &TensorInfo {
        let state_dict = self.layout.tensors.len();
        if index < state_dict {
            &self.layout.tensors[index]
        } else {
            &self.extras[index - state_dict]
        }
    }

    fn find(&self, name: &str) -> Option<usize> {
        let position =
            self.by_name.binary_search_by(|&index| self.info(index as usize).name.as_str().cmp(name)).ok()?;
        Some(self.by_name[position] as usize)
    }

    fn no_such_tensor(&self, name: &str) -> ReadError {
        ReadError::new(&self.path, ReadErrorKind::NoSuchTensor { tensor: name.to_owned() })
    }
}

/// Builds a checkpoint from its opened files (one, or a sharded set's shards in index
/// order): the state dict and the extras in file order, the metadata merged (a key two
/// files give different values is an error, except the per-file checksum records, which
/// are united).
pub(crate) fn assemble(
    path: &Path,
    files: Vec<Opened>,
    index_metadata: Option<serde_json::Map<String, serde_json::Value>>,
    limits: &Limits,
) -> Result<Checkpoint, ReadError> {
    let err = |kind| ReadError::new(path, kind);
    let total: usize = files.iter().map(|file| file.entries.len()).sum();
    if total > limits.max_tensors {
        return Err(err(ReadErrorKind::TooManyTensors { limit: limits.max_tensors }));
    }
    let mut listed_extras: Vec<String> = files.iter().flat_map(|file| file.extras.iter().cloned()).collect();
    listed_extras.sort_unstable();
    listed_extras.dedup();
    let mut layout = Layout::default();
    let mut extras = Vec::new();
    let (mut spans, mut extra_spans) = (Vec::with_capacity(total), Vec::new());
    let mut shards = Vec::with_capacity(files.len());
    let mut aliases = Vec::new();
    for (shard, file) in files.into_iter().enumerate() {
        let shard_err = |kind| ReadError::new(&file.source.path, kind);
        for entry in file.entries {
            let span = Span { shard: shard as u32, place: entry.place };
            if entry.extra || listed_extras.binary_search(&entry.info.name).is_ok() {
                extras.push(entry.info);
                extra_spans.push(span);
            } else {
                layout.tensors.push(entry.info);
                spans.push(span);
            }
        }
        for (key, value) in file.metadata {
            match layout.metadata.get_mut(&key) {
                // Each shard records the checksums of its own tensors; the layout shows all.
                Some(existing) if key == SHA256_METADATA_KEY => {
                    if let Some(merged) = merge_json_objects(existing, &value) {
                        *existing = merged;
                    }
                }
                Some(existing) if *existing != value => {
                    return Err(shard_err(ReadErrorKind::MetadataConflict { key }));
                }
                Some(_) => {}
                None => {
                    layout.metadata.insert(key, value);
                }
            }
        }
        aliases.extend(file.aliases);
        shards.push(file.source);
    }
    let mut found_extras: Vec<&str> = extras.iter().map(|info| info.name.as_str()).collect();
    found_extras.sort_unstable();
    for name in &listed_extras {
        if found_extras.binary_search(&name.as_str()).is_err() {
            return Err(err(ReadErrorKind::BadExtras {
                message: format!("`safeshift.extras` lists `{name}`, which is not in the checkpoint"),
            }));
        }
    }
    spans.extend(extra_spans);
    let all: Vec<TensorInfo> = layout.tensors.iter().chain(&extras).cloned().collect();
    let by_name = header::index_by_name(&all).map_err(err)?;
    Ok(Checkpoint { path: path.to_owned(), layout, extras, spans, by_name, shards, index_metadata, aliases })
}

/// The union of two JSON objects given as text, `None` if either is not an object.
fn merge_json_objects(first: &str, second: &str) -> Option<String> {
    let mut merged: serde_json::Map<String, serde_json::Value> = serde_json::from_str(first).ok()?;
    let more: serde_json::Map<String, serde_json::Value> = serde_json::from_str(second).ok()?;
    merged.extend(more);
    serde_json::to_string(&merged).ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Workers share one open checkpoint (`&Checkpoint` across threads, e.g. with rayon).
    #[test]
    fn checkpoints_can_be_shared_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Checkpoint>();
        assert_send_sync::<TensorLocation<'_>>();
    }

    /// The resident size, in KiB, of this process's mapping that contains `address`
    /// (from `/proc/self/smaps`, so other tests' maps do not interfere).
    pub(crate) fn mapping_rss_kib(address: usize) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        for line in smaps.lines() {
            let first = line.split_whitespace().next().unwrap_or("");
            if let Some((start, end)) = first.split_once('-').filter(|(start, _)| !start.contains(':')) {
                let (Ok(start), Ok(end)) = (usize::from_str_radix(start, 16), usize::from_str_radix(end, 16)) else {
                    continue;
                };
                inside = (start..end).contains(&address);
            } else if inside && line.starts_with("Rss:") {
                return line.split_whitespace().nth(1).unwrap().parse().unwrap();
            }
        }
        panic!("no mapping contains {address:#x}");
    }

    /// A file in `dir` with one `u8` tensor `w` of `len` bytes, opened after every page of
    /// `w` was read; its bytes, and the address of `w` in the map.
    fn read_whole_tensor(dir: &Path, len: u32) -> (Checkpoint, Vec<u8>, usize) {
        let path = dir.join("big.safetensors");
        let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let tensor = crate::OutputTensor {
            name: "w".into(),
            dtype: safeshift_model::DType::U8,
            shape: vec![bytes.len() as u64],
            source: crate::TensorSource::Bytes(std::borrow::Cow::Borrowed(&bytes)),
        };
        crate::write(&path, vec![tensor], &crate::WriteOptions::default()).unwrap();
        let checkpoint = Checkpoint::open(&path).unwrap();
        let mapped = checkpoint.tensor_bytes("w").unwrap();
        assert_eq!(mapped, &bytes[..]);
        let address = mapped.as_ptr() as usize;
        (checkpoint, bytes, address)
    }

    #[test]
    fn released_pages_leave_the_resident_set_and_keep_their_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (checkpoint, bytes, address) = read_whole_tensor(dir.path(), 1 << 20);
        let touched = mapping_rss_kib(address);
        checkpoint.release_pages("w");
        let released = mapping_rss_kib(address);
        assert!(touched >= 1000 && released + 1000 <= touched, "{touched} KiB resident, {released} KiB after release");
        assert_eq!(checkpoint.tensor_bytes("w").unwrap(), &bytes[..]);
        checkpoint.release_pages("no such tensor");
    }

    #[test]
    fn a_released_range_leaves_the_rest_of_the_tensor_resident() {
        let dir = tempfile::tempdir().unwrap();
        let (checkpoint, bytes, address) = read_whole_tensor(dir.path(), 4 << 20);
        let touched = mapping_rss_kib(address);
        let quarter = bytes.len() as u64 / 4;
        checkpoint.release_range("w", quarter..2 * quarter);
        let released = mapping_rss_kib(address);
        // One quarter (1 MiB) left; the other three stayed (give or take the edge pages).
        assert!(touched >= 4000, "{touched} KiB resident after reading 4 MiB");
        assert!(
            released + 1000 <= touched && released + 1100 >= touched,
            "{touched} KiB resident, {released} KiB after"
        );
        // Ranges past the end are clamped, not a panic.
        checkpoint.release_range("w", 3 * quarter..u64::MAX);
        assert!(mapping_rss_kib(address) + 1900 <= touched);
        assert_eq!(checkpoint.tensor_bytes("w").unwrap(), &bytes[..]);
    }

    /// The in-memory entry point the fuzzer uses accepts and rejects what `open` does.
    #[test]
    fn parse_header_agrees_with_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let mut bytes = Vec::new();
        let header = br#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
        bytes.extend_from_slice(&(header.len() as u64).to_le_bytes());
        bytes.extend_from_slice(header);
        bytes.extend_from_slice(&[0; 8]);
        std::fs::write(&path, &bytes).unwrap();
        let opened = Checkpoint::open(&path).unwrap();
        assert_eq!(&crate::parse_header(&bytes, &Limits::default()).unwrap(), opened.layout());
        for cut in [0, 7, 8, 20, bytes.len() - 1] {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let from_file = Checkpoint::open(&path).unwrap_err().kind.to_string();
            let in_memory = crate::parse_header(&bytes[..cut], &Limits::default()).unwrap_err().to_string();
            assert_eq!(in_memory, from_file, "cut at {cut}");
        }
    }

    #[test]
    fn checksum_records_merge_across_shards() {
        assert_eq!(merge_json_objects(r#"{"a":"1"}"#, r#"{"b":"2"}"#).as_deref(), Some(r#"{"a":"1","b":"2"}"#));
        assert_eq!(merge_json_objects("[]", r#"{"b":"2"}"#), None);
    }
}
