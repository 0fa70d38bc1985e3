//! An open checkpoint: one safetensors file or a sharded set, mapped, header validated.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use memmap2::MmapMut;
use safeshift_model::{Layout, TensorInfo};

use crate::error::{ReadError, ReadErrorKind};
use crate::header::{self, Limits};
use crate::index;
use crate::writer::SHA256_METADATA_KEY;

/// Length of the little-endian `u64` header length that starts every file.
const PREFIX_LEN: u64 = 8;

/// A validated checkpoint: its [`Layout`] from the headers alone, and its tensors'
/// bytes borrowed from memory maps of the files.
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
    layout: Layout,
    /// Where each tensor's bytes are, parallel to `layout.tensors`.
    spans: Vec<Span>,
    /// Tensor indices sorted by name, for lookups.
    by_name: Vec<u32>,
    shards: Vec<Shard>,
    index_metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Clone, Copy, Debug)]
struct Span {
    shard: u32,
    /// Offset from the start of the shard file.
    offset: u64,
    len: u64,
}

/// One mapped file of a checkpoint.
#[derive(Debug)]
struct Shard {
    path: PathBuf,
    file: File,
    /// Copy-on-write: a client that hands borrowed bytes to a language with mutable arrays
    /// (the Python package's torch tensors) lets a write there change only this process's
    /// copy of the page, never the file, and never fault.
    map: MmapMut,
    len: u64,
    /// This file's own `__metadata__` (for a sharded set, the layout holds the union).
    metadata: BTreeMap<String, String>,
}

/// Where a tensor's bytes are in its file, for `copy_file_range` or `pread`.
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
    /// Opens a `.safetensors` file, or a sharded set through its `*.index.json` (any path
    /// ending in `.json`), with the default [`Limits`].
    pub fn open(path: &Path) -> Result<Checkpoint, ReadError> {
        Checkpoint::open_with(path, &Limits::default())
    }

    /// Opens with explicit limits. Reads only the headers (with `pread`); the data pages
    /// are mapped but not touched.
    pub fn open_with(path: &Path, limits: &Limits) -> Result<Checkpoint, ReadError> {
        if path.extension().is_some_and(|ext| ext == "json") {
            return open_sharded(path, limits);
        }
        let (shard, header) = open_shard(path, limits)?;
        let spans = spans(&header, 0);
        let by_name = header.by_name;
        let layout = Layout { tensors: header.tensors, metadata: header.metadata };
        Ok(Checkpoint { path: path.to_owned(), layout, spans, by_name, shards: vec![shard], index_metadata: None })
    }

    /// The path it was opened from (the file or the index).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Names, dtypes, shapes (file order; shard by shard for a sharded set) and the
    /// `__metadata__` (the union over shards).
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Each file's own `__metadata__`, in [`Checkpoint::files`] order.
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

    /// The tensor called `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.find(name).map(|index| &self.layout.tensors[index])
    }

    /// The bytes of a tensor, borrowed from the map (little-endian, row-major).
    pub fn tensor_bytes(&self, name: &str) -> Result<&[u8], ReadError> {
        let index = self.find(name).ok_or_else(|| self.no_such_tensor(name))?;
        let span = self.spans[index];
        let shard = &self.shards[span.shard as usize];
        if span.len == 0 {
            return Ok(&[]);
        }
        shard.check_unchanged()?;
        // Validation proved offset + len <= the file length, which the map covers.
        Ok(&shard.map[span.offset as usize..(span.offset + span.len) as usize])
    }

    /// Copies a tensor's bytes into `buf` (exactly its byte length) with `pread`, without
    /// touching the map: a file truncated meanwhile gives an error, never a fault.
    pub fn read_tensor_into(&self, name: &str, buf: &mut [u8]) -> Result<(), ReadError> {
        let index = self.find(name).ok_or_else(|| self.no_such_tensor(name))?;
        let span = self.spans[index];
        if buf.len() as u64 != span.len {
            let kind = ReadErrorKind::BufferSize { tensor: name.to_owned(), expected: span.len, found: buf.len() };
            return Err(ReadError::new(&self.shards[span.shard as usize].path, kind));
        }
        self.read_range(index, 0, buf)
    }

    /// Reads `buf.len()` bytes of tensor number `index` from `start` (within the tensor).
    pub(crate) fn read_range(&self, index: usize, start: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        let span = self.spans[index];
        let shard = &self.shards[span.shard as usize];
        debug_assert!(start + buf.len() as u64 <= span.len);
        shard.file.read_exact_at(buf, span.offset + start).map_err(|source| {
            let kind = if source.kind() == std::io::ErrorKind::UnexpectedEof {
                let found = shard.file.metadata().map_or(0, |meta| meta.len());
                ReadErrorKind::FileChanged { expected: shard.len, found }
            } else {
                ReadErrorKind::Io { action: "read tensor bytes", source }
            };
            ReadError::new(&shard.path, kind)
        })
    }

    /// Unmaps this process's pages of tensor `name` (`madvise(MADV_DONTNEED)` on the whole
    /// pages inside it). The bytes stay in the page cache and the next access maps them
    /// again, so a streaming pass over a file larger than memory keeps a small resident
    /// set instead of growing by every page it touched. Advisory: errors are ignored.
    pub(crate) fn release_pages(&self, name: &str) {
        let Some(index) = self.find(name) else {
            return;
        };
        let span = self.spans[index];
        let shard = &self.shards[span.shard as usize];
        // SAFETY: sysconf has no preconditions.
        let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
            size if size > 0 => size as u64,
            _ => return,
        };
        let start = span.offset.next_multiple_of(page);
        let end = (span.offset + span.len) / page * page;
        if end <= start {
            return;
        }
        // SAFETY: the map is a private mapping of a file that must not change while open (see
        // the type's docs) and the engine never writes to it: dropped pages are faulted back in
        // with the same bytes, so slices borrowed from the map keep their contents.
        let _ = unsafe {
            shard.map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start as usize, (end - start) as usize)
        };
    }

    /// Where a tensor's bytes are: file, path, offset from the file start, length.
    pub fn tensor_location(&self, name: &str) -> Option<TensorLocation<'_>> {
        let span = self.spans[self.find(name)?];
        let shard = &self.shards[span.shard as usize];
        Some(TensorLocation { file: &shard.file, path: &shard.path, offset: span.offset, len: span.len })
    }

    /// The bytes of `len` indices from `start` along `axis`, borrowed, when they are one
    /// contiguous range: `axis` is 0 or every axis before it has size 1 (and, for packed
    /// dtypes, the range falls on byte boundaries). `Ok(None)` when not contiguous; an
    /// error for an unknown tensor or a range outside the shape.
    pub fn narrow(&self, name: &str, axis: usize, start: u64, len: u64) -> Result<Option<&[u8]>, ReadError> {
        let index = self.find(name).ok_or_else(|| self.no_such_tensor(name))?;
        let info = &self.layout.tensors[index];
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
        let bytes = self.tensor_bytes(name)?;
        let (first, count) = ((start_bits / 8) as usize, (len_bits / 8) as usize);
        Ok(Some(&bytes[first..first + count]))
    }

    fn find(&self, name: &str) -> Option<usize> {
        let tensors = &self.layout.tensors;
        let position = self.by_name.binary_search_by(|&index| tensors[index as usize].name.as_str().cmp(name)).ok()?;
        Some(self.by_name[position] as usize)
    }

    fn no_such_tensor(&self, name: &str) -> ReadError {
        ReadError::new(&self.path, ReadErrorKind::NoSuchTensor { tensor: name.to_owned() })
    }
}

impl Shard {
    fn check_unchanged(&self) -> Result<(), ReadError> {
        let found = self
            .file
            .metadata()
            .map_err(|source| ReadError::new(&self.path, ReadErrorKind::Io { action: "stat", source }))?
            .len();
        if found != self.len {
            return Err(ReadError::new(&self.path, ReadErrorKind::FileChanged { expected: self.len, found }));
        }
        Ok(())
    }
}

fn spans(header: &header::Header, shard: u32) -> Vec<Span> {
    let data_start = header.data_start;
    header.offsets.iter().map(|&(start, end)| Span { shard, offset: data_start + start, len: end - start }).collect()
}

/// Opens one file: reads the prefix and header with `pread`, validates, maps the file.
fn open_shard(path: &Path, limits: &Limits) -> Result<(Shard, header::Header), ReadError> {
    let err = |kind| ReadError::new(path, kind);
    let io = |action| move |source| ReadError::new(path, ReadErrorKind::Io { action, source });
    let file = File::open(path).map_err(io("open"))?;
    let len = file.metadata().map_err(io("stat"))?.len();
    if len < PREFIX_LEN {
        return Err(err(ReadErrorKind::TooShort { len }));
    }
    let mut prefix = [0u8; PREFIX_LEN as usize];
    file.read_exact_at(&mut prefix, 0).map_err(io("read the header length"))?;
    let header_len = u64::from_le_bytes(prefix);
    if header_len > limits.max_header_len {
        return Err(err(ReadErrorKind::HeaderTooLarge { len: header_len, limit: limits.max_header_len }));
    }
    if header_len > len - PREFIX_LEN {
        return Err(err(ReadErrorKind::HeaderPastEnd { len: header_len, file_len: len }));
    }
    // Bounded by both the limit and the file length, checked above.
    let mut json = vec![0u8; header_len as usize];
    file.read_exact_at(&mut json, PREFIX_LEN).map_err(io("read the header"))?;
    let data_start = PREFIX_LEN + header_len;
    let mut header = header::parse(&json, len - data_start, limits).map_err(err)?;
    header.data_start = data_start;
    // SAFETY: the map is private to this process (copy-on-write: writes through it never
    // reach the file); the documented contract is that the file is not modified while
    // open, and `tensor_bytes` re-checks the length before handing out bytes.
    let map = unsafe { memmap2::MmapOptions::new().map_copy(&file) }.map_err(io("map the file"))?;
    let metadata = header.metadata.clone();
    Ok((Shard { path: path.to_owned(), file, map, len, metadata }, header))
}

/// Validates a whole single-file checkpoint held in memory exactly as
/// [`Checkpoint::open_with`] validates a file (length prefix, header, data section
/// length) and returns its layout. An entry point for fuzzing the header parser without
/// a file per input; not a stable API.
#[doc(hidden)]
pub fn parse_header(file_bytes: &[u8], limits: &Limits) -> Result<Layout, ReadErrorKind> {
    let len = file_bytes.len() as u64;
    let Some((prefix, rest)) = file_bytes.split_first_chunk::<{ PREFIX_LEN as usize }>() else {
        return Err(ReadErrorKind::TooShort { len });
    };
    let header_len = u64::from_le_bytes(*prefix);
    if header_len > limits.max_header_len {
        return Err(ReadErrorKind::HeaderTooLarge { len: header_len, limit: limits.max_header_len });
    }
    if header_len > len - PREFIX_LEN {
        return Err(ReadErrorKind::HeaderPastEnd { len: header_len, file_len: len });
    }
    let (json, data) = rest.split_at(header_len as usize);
    let header = header::parse(json, data.len() as u64, limits)?;
    Ok(Layout { tensors: header.tensors, metadata: header.metadata })
}

/// Largest index file accepted (HF indexes are a few hundred kilobytes).
const MAX_INDEX_LEN: u64 = 100_000_000;

fn open_sharded(path: &Path, limits: &Limits) -> Result<Checkpoint, ReadError> {
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
    let mut layout = Layout::default();
    let mut spans_all = Vec::new();
    let mut shards = Vec::with_capacity(parsed.shards.len());
    for (shard_index, (shard_name, listed)) in parsed.shards.iter().enumerate() {
        let shard_path = directory.join(shard_name);
        let (shard, header) = open_shard(&shard_path, limits)?;
        let shard_err = |kind| ReadError::new(&shard_path, kind);
        let mut names: Vec<&str> = header.tensors.iter().map(|info| info.name.as_str()).collect();
        names.sort_unstable();
        let mut listed_sorted: Vec<&str> = listed.iter().map(String::as_str).collect();
        listed_sorted.sort_unstable();
        if let Some(missing) = listed_sorted.iter().find(|name| names.binary_search(name).is_err()) {
            return Err(shard_err(ReadErrorKind::MissingFromShard { tensor: (*missing).to_owned() }));
        }
        if let Some(extra) = names.iter().find(|name| listed_sorted.binary_search(name).is_err()) {
            return Err(shard_err(ReadErrorKind::UnlistedInIndex { tensor: (*extra).to_owned() }));
        }
        if layout.tensors.len() + header.tensors.len() > limits.max_tensors {
            return Err(err(ReadErrorKind::TooManyTensors { limit: limits.max_tensors }));
        }
        spans_all.extend(spans(&header, shard_index as u32));
        layout.tensors.extend(header.tensors);
        for (key, value) in header.metadata {
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
        shards.push(shard);
    }
    // The index lists each tensor once and every shard matches it, so names are unique.
    let by_name = header::index_by_name(&layout.tensors).map_err(err)?;
    Ok(Checkpoint {
        path: path.to_owned(),
        layout,
        spans: spans_all,
        by_name,
        shards,
        index_metadata: Some(parsed.metadata),
    })
}

/// The union of two JSON objects given as text, `None` if either is not an object.
fn merge_json_objects(first: &str, second: &str) -> Option<String> {
    let mut merged: serde_json::Map<String, serde_json::Value> = serde_json::from_str(first).ok()?;
    let more: serde_json::Map<String, serde_json::Value> = serde_json::from_str(second).ok()?;
    merged.extend(more);
    serde_json::to_string(&merged).ok()
}

#[cfg(test)]
mod tests {
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
    fn mapping_rss_kib(address: usize) -> u64 {
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

    #[test]
    fn released_pages_leave_the_resident_set_and_keep_their_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.safetensors");
        let bytes: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
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
        let touched = mapping_rss_kib(address);
        checkpoint.release_pages("w");
        let released = mapping_rss_kib(address);
        assert!(touched >= 1000 && released + 1000 <= touched, "{touched} KiB resident, {released} KiB after release");
        assert_eq!(checkpoint.tensor_bytes("w").unwrap(), &bytes[..]);
        checkpoint.release_pages("no such tensor");
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
        assert_eq!(&parse_header(&bytes, &Limits::default()).unwrap(), opened.layout());
        for cut in [0, 7, 8, 20, bytes.len() - 1] {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let from_file = Checkpoint::open(&path).unwrap_err().kind.to_string();
            let in_memory = parse_header(&bytes[..cut], &Limits::default()).unwrap_err().to_string();
            assert_eq!(in_memory, from_file, "cut at {cut}");
        }
    }

    #[test]
    fn checksum_records_merge_across_shards() {
        assert_eq!(merge_json_objects(r#"{"a":"1"}"#, r#"{"b":"2"}"#).as_deref(), Some(r#"{"a":"1","b":"2"}"#));
        assert_eq!(merge_json_objects("[]", r#"{"b":"2"}"#), None);
    }
}
