//! `open`: a checkpoint's tensors as safetensors would hold them, plus metadata and aliases.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::path::Path;

use safeshift_model::{DType, Layout, TensorInfo};

use crate::anemoi;
use crate::error::{ErrorKind, Forbidden, TorchError};
use crate::extract;
use crate::hazard;
use crate::load::{self, Format};
use crate::machine::Mode;
use crate::value::TensorRef;
use crate::view::View;
use crate::Limits;

// The metadata keys and extras' name prefixes this crate writes, under the names it
// has always exported; all are defined in `safeshift_model::keys`.
pub use safeshift_model::keys::{
    ANEMOI_KEY as METADATA_ANEMOI, EXTRAS_KEY as METADATA_EXTRAS, GRAPH_PREFIX, SUPPORTING_ARRAYS_PREFIX,
    TORCH_CHECKPOINT_KEY as METADATA_CHECKPOINT, TORCH_DROPPED_KEY as METADATA_DROPPED,
    TORCH_MODULE_CLASS_KEY as METADATA_MODULE_CLASS, TORCH_STATE_DICT_KEY as METADATA_STATE_DICT_KEY,
};

/// What to take from a checkpoint.
#[derive(Clone, Debug)]
pub struct ConvertOptions {
    /// The top-level entry holding the state dict (default: `state_dict`, `model_state_dict`,
    /// `model`, `module`, `net`, `network`, tried in order, or the whole object).
    pub key: Option<String>,
    /// Also write optimizer state tensors, named by their path (`optimizer_states.0.state.0.exp_avg`).
    pub keep_optimizer: bool,
    /// Write tied tensors (same storage, offset, shape and stride) once per name instead of
    /// once, with an alias.
    pub keep_shared: bool,
    /// Give Anemoi supporting arrays as extras named `anemoi.supporting_arrays.<name>`.
    pub supporting_arrays: bool,
    /// Give the tensors of torch_geometric graphs the checkpoint holds as extras named
    /// `graph.<node set>.<attr>` and `graph.<src>_<rel>_<dst>.<attr>`.
    pub graphs: bool,
    /// Convert a file even when it holds code-execution gadgets (still running nothing);
    /// they are listed in [`Converted::gadgets`].
    pub allow_gadgets: bool,
    /// Check the CRC-32 of every zip member read.
    pub verify_crc: bool,
    /// Resource bounds.
    pub limits: Limits,
}

impl Default for ConvertOptions {
    fn default() -> ConvertOptions {
        ConvertOptions {
            key: None,
            keep_optimizer: false,
            keep_shared: false,
            supporting_arrays: true,
            graphs: true,
            allow_gadgets: false,
            verify_crc: true,
            limits: Limits::default(),
        }
    }
}

/// A converted checkpoint: the state dict's tensors in state-dict order, the extras (tensors
/// the file holds outside the state dict: Anemoi supporting arrays, graph tensors), bytes
/// materialised on demand (borrowed from the mapped file when already contiguous),
/// `__metadata__`, the aliases removed, and the hazard verdict.
pub struct Converted {
    bytes: Bytes,
    tensors: Vec<ConvertedTensor>,
    extras: Vec<ConvertedTensor>,
    metadata: BTreeMap<String, String>,
    aliases: Vec<Alias>,
    format: Format,
    gadgets: Vec<Forbidden>,
    data_classes: Vec<String>,
}

enum Bytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

/// One output tensor (of the state dict, or an extra).
#[derive(Clone, Debug)]
pub struct ConvertedTensor {
    /// Its name (the state-dict key, or the extra's name).
    pub name: String,
    /// Its element type.
    pub dtype: DType,
    /// Its shape.
    pub shape: Vec<u64>,
    view: View,
}

/// A tensor name left out because it shares its bytes with a kept tensor (tied weights).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alias {
    /// The name not written.
    pub name: String,
    /// The name written, whose bytes it shares.
    pub kept: String,
}

/// Opens and converts the checkpoint at `path`. Nothing in the file is executed; see the
/// crate documentation for what is refused.
pub fn open(path: &Path, options: &ConvertOptions) -> Result<Converted, TorchError> {
    let file = std::fs::File::open(path).map_err(|err| TorchError::new(path, ErrorKind::Io(err)))?;
    open_file(path, &file, options)
}

/// Converts the checkpoint in `file`, already open (`path` names it in errors). A caller
/// that keeps `file` to read the ranges
/// [`Converted::file_range`] gives reads the same file the tensors were found in.
pub fn open_file(path: &Path, file: &std::fs::File, options: &ConvertOptions) -> Result<Converted, TorchError> {
    let fail = |kind| TorchError::new(path, kind);
    let len = file.metadata().map_err(|err| fail(ErrorKind::Io(err)))?.len();
    if len == 0 {
        return Err(fail(ErrorKind::NotACheckpoint("the file is empty".into())));
    }
    // SAFETY: the map is read-only; like every mmap-based reader we rely on the file not
    // being truncated while we read it (the engine documents the same contract).
    let map = unsafe { memmap2::Mmap::map(file) }.map_err(|err| fail(ErrorKind::Io(err)))?;
    convert(Bytes::Mapped(map), options).map_err(fail)
}

/// Converts a checkpoint held in memory; `name` is used in errors.
pub fn open_bytes(name: &str, bytes: Vec<u8>, options: &ConvertOptions) -> Result<Converted, TorchError> {
    convert(Bytes::Owned(bytes), options).map_err(|kind| TorchError::new(name, kind))
}

fn convert(bytes: Bytes, options: &ConvertOptions) -> Result<Converted, ErrorKind> {
    let data: &[u8] = bytes.as_slice();
    let mut uses = Vec::new();
    let loaded = load::load(data, Mode::Convert, &options.limits, options.verify_crc, &mut uses);
    // The verdict comes first: a file with gadgets is refused as such even when reading it
    // failed further on.
    let verdict = hazard::verdict(&uses);
    if let Some((first, rest)) = verdict.gadgets.split_first() {
        if !options.allow_gadgets {
            return Err(ErrorKind::Forbidden(Box::new(Forbidden { also: rest.to_vec(), ..first.clone() })));
        }
    }
    let loaded = loaded?;
    let extracted = extract::extract(&loaded.heap, &loaded.top, options)?;
    let mut metadata = extracted.metadata;
    metadata.insert("format".into(), "pt".into());

    let mut ranges = HashMap::new();
    let mut view_of = |name: &str, tensor: &TensorRef| -> Result<ConvertedTensor, ErrorKind> {
        let storage = &tensor.storage;
        let range =
            match ranges.get(&storage.key) {
                Some(range) => Clone::clone(range),
                None => {
                    let range = loaded.storage_range(storage, options.verify_crc).map_err(|reason| {
                        ErrorKind::Storage { key: storage.key.to_string(), tensor: name.to_string(), reason }
                    })?;
                    if options.verify_crc {
                        // The CRC check read every page of the storage: drop them, or a
                        // conversion's resident set would reach the file's size before
                        // anything is written.
                        bytes.release(range.clone());
                    }
                    ranges.insert(storage.key.clone(), range.clone());
                    range
                }
            };
        let view = View {
            storage: range,
            dtype: tensor.dtype,
            offset: tensor.offset,
            shape: tensor.shape.clone(),
            stride: tensor.stride.clone(),
            big_endian: loaded.big_endian,
        };
        Ok(ConvertedTensor { name: name.to_string(), dtype: tensor.dtype, shape: tensor.shape.clone(), view })
    };
    let mut tensors = Vec::with_capacity(extracted.tensors.len());
    for (name, tensor) in &extracted.tensors {
        tensors.push(view_of(name, tensor)?);
    }
    let mut extras = Vec::with_capacity(extracted.extras.len());
    for (name, tensor) in &extracted.extras {
        extras.push(view_of(name, tensor)?);
    }

    if let (Some(archive), Format::Zip { .. }) = (&loaded.zip, &loaded.format) {
        if let Some(anemoi) = anemoi::read(archive, options.verify_crc)? {
            metadata.insert(METADATA_ANEMOI.into(), anemoi.text);
            metadata.insert("anemoi.member".into(), anemoi.member);
            if options.supporting_arrays {
                for (name, view) in anemoi.arrays {
                    let name = format!("{SUPPORTING_ARRAYS_PREFIX}{name}");
                    extras.push(ConvertedTensor { name, dtype: view.dtype, shape: view.shape.clone(), view });
                }
            }
        }
    }
    // State dict and extras share one namespace in a written file.
    let mut names = HashSet::new();
    if let Some(name) = tensors.iter().chain(&extras).map(|t| t.name.as_str()).find(|name| !names.insert(*name)) {
        return Err(ErrorKind::Structure(format!("two tensors are both named `{name}` (state dict and extras)")));
    }

    // Tied tensors: same bytes, same view. The first name is kept (as Hugging Face's
    // converter does) and `{removed: kept}` is recorded in the metadata.
    let mut aliases = Vec::new();
    if !options.keep_shared {
        let mut first: HashMap<&View, usize> = HashMap::new();
        let mut keep = vec![true; tensors.len()];
        for (index, tensor) in tensors.iter().enumerate() {
            match first.get(&tensor.view) {
                Some(&kept) => {
                    keep[index] = false;
                    aliases.push(Alias { name: tensor.name.clone(), kept: tensors[kept].name.clone() });
                }
                None => {
                    first.insert(&tensor.view, index);
                }
            }
        }
        let mut keep = keep.into_iter();
        tensors.retain(|_| keep.next().expect("one flag per tensor"));
        for alias in &aliases {
            if metadata.insert(alias.name.clone(), alias.kept.clone()).is_some() {
                return Err(ErrorKind::Structure(format!(
                    "tied tensor `{}` has the name of a metadata key",
                    alias.name
                )));
            }
        }
    }

    let mut expanded = 0u64;
    for tensor in tensors.iter().chain(&extras) {
        let bytes = tensor.view.check().map_err(|reason| ErrorKind::Tensor { tensor: tensor.name.clone(), reason })?;
        if bytes > tensor.view.storage.len() as u64 {
            expanded = expanded.saturating_add(bytes);
            if expanded > options.limits.max_expanded_bytes {
                return Err(ErrorKind::Limit {
                    what: "bytes of expanded (stride-0 or overlapping) tensors",
                    limit: options.limits.max_expanded_bytes,
                });
            }
        }
    }
    let format = loaded.format.clone();
    drop(loaded);
    Ok(Converted {
        bytes,
        tensors,
        extras,
        metadata,
        aliases,
        format,
        gadgets: verdict.gadgets,
        data_classes: verdict.data_classes,
    })
}

impl ConvertedTensor {
    /// Contiguous in its storage and little-endian: its bytes are a range of the file.
    fn is_borrowed(&self) -> bool {
        let view = &self.view;
        view.is_contiguous() && !(view.big_endian && view.dtype.size().is_some_and(|size| size > 1))
    }

    /// Where the tensor's bytes lie in the file (in the bytes given to [`open_bytes`]), when
    /// they are one range of it (contiguous, little-endian): what a writer can copy from the
    /// file or borrow without materialising anything.
    pub fn file_range(&self) -> Option<std::ops::Range<u64>> {
        if !self.is_borrowed() {
            return None;
        }
        let size = self.view.dtype.size()? as u64;
        let len = self.shape.iter().product::<u64>() * size;
        if len == 0 {
            let at = self.view.storage.start as u64;
            return Some(at..at);
        }
        let start = self.view.storage.start as u64 + self.view.offset * size;
        Some(start..start + len)
    }
}

/// Where a released range starts: the largest page size Linux uses (arm64, ppc64), a
/// multiple of every smaller one, so the start is page-aligned on every system (the crate
/// calls nothing from libc). The few pages before the range that go too are read-only
/// and come back on the next read.
const PAGE_ALIGN: usize = 64 << 10;

impl Bytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Mapped(map) => map,
            Bytes::Owned(bytes) => bytes,
        }
    }

    /// Unmaps this process's pages of `range` of a mapped file (`madvise(MADV_DONTNEED)`,
    /// from the [`PAGE_ALIGN`] boundary before its first byte): bytes read once (a CRC check, a
    /// materialised view) stay in the page cache and the next read maps them again, so a
    /// pass over a file larger than memory keeps a small resident set. Advisory: errors
    /// are ignored; nothing to do for bytes in memory.
    fn release(&self, range: Range<usize>) {
        let Bytes::Mapped(map) = self else {
            return;
        };
        let (start, end) = (range.start / PAGE_ALIGN * PAGE_ALIGN, range.end.min(map.len()));
        if end <= start {
            return;
        }
        // SAFETY: the map is a read-only private mapping of a file that must not change
        // while open (see `open_file`): dropped pages, including the partial ones at the
        // ends, are faulted back in with the same bytes, so every slice borrowed from the
        // map keeps its contents.
        let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start) };
    }
}

impl Converted {
    /// The state dict's tensors, in state-dict order.
    pub fn tensors(&self) -> &[ConvertedTensor] {
        &self.tensors
    }

    /// The extras: tensors the file holds outside the state dict, graph tensors first
    /// (`graph.…`), then Anemoi supporting arrays (`anemoi.supporting_arrays.…`).
    pub fn extras(&self) -> &[ConvertedTensor] {
        &self.extras
    }

    /// The bytes of extra `index`, as [`Converted::data`] gives a tensor's. Panics if `index`
    /// is out of range.
    pub fn extra_data(&self, index: usize) -> Cow<'_, [u8]> {
        self.extras[index].view.materialise(self.bytes.as_slice())
    }

    /// Whether [`Converted::extra_data`] borrows extra `index` from the file.
    pub fn is_extra_borrowed(&self, index: usize) -> bool {
        self.extras[index].is_borrowed()
    }

    /// The gadgets the file holds (empty unless [`ConvertOptions::allow_gadgets`] let a
    /// file with gadgets through): each deny-listed global and structural pattern, with
    /// its byte offset.
    pub fn gadgets(&self) -> &[Forbidden] {
        &self.gadgets
    }

    /// Classes and functions outside torch's allow-list that the file instantiates or
    /// calls, read as inert data (`omegaconf.dictconfig.DictConfig`…), in first-use order.
    pub fn data_classes(&self) -> &[String] {
        &self.data_classes
    }

    /// The bytes of tensor `index` (C order, little-endian): borrowed from the file when the
    /// tensor is contiguous in its storage, else a copy. Panics if `index` is out of range.
    pub fn data(&self, index: usize) -> Cow<'_, [u8]> {
        self.tensors[index].view.materialise(self.bytes.as_slice())
    }

    /// Unmaps this process's pages of the storage of tensor `index` (see
    /// [`Converted::data`]): a writer that has copied a materialised view calls it so that
    /// its resident set does not grow by every storage it read. Advisory; the next
    /// [`Converted::data`] reads the pages again. Panics if `index` is out of range.
    pub fn release_data(&self, index: usize) {
        self.bytes.release(self.tensors[index].view.storage.clone());
    }

    /// [`Converted::release_data`] for extra `index`.
    pub fn release_extra_data(&self, index: usize) {
        self.bytes.release(self.extras[index].view.storage.clone());
    }

    /// Whether [`Converted::data`] borrows tensor `index` from the file (it is contiguous in
    /// its storage and little-endian) rather than building a copy. Writers can take
    /// borrowed tensors up front and materialise the others one at a time.
    pub fn is_borrowed(&self, index: usize) -> bool {
        self.tensors[index].is_borrowed()
    }

    /// The `__metadata__` to write.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// Names left out because they alias a kept tensor (empty with `keep_shared`).
    pub fn aliases(&self) -> &[Alias] {
        &self.aliases
    }

    /// The container format the checkpoint used.
    pub fn format(&self) -> &Format {
        &self.format
    }

    /// Names, dtypes, shapes and metadata, as a safetensors header of the output would say.
    pub fn layout(&self) -> Layout {
        Layout {
            tensors: self
                .tensors
                .iter()
                .map(|t| TensorInfo { name: t.name.clone(), dtype: t.dtype, shape: t.shape.clone() })
                .collect(),
            metadata: self.metadata.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zip::tests::build_zip;

    /// One state-dict entry: name, storage class, storage key, storage numel, offset, size, stride.
    type Entry<'a> = (&'a str, &'a str, &'a str, u64, u64, &'a [u64], &'a [u64]);

    fn int(out: &mut Vec<u8>, value: u64) {
        out.push(b'J');
        out.extend_from_slice(&(value as i32).to_le_bytes());
    }

    fn text(out: &mut Vec<u8>, value: &str) {
        out.push(b'X');
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value.as_bytes());
    }

    fn tuple(out: &mut Vec<u8>, values: &[u64]) {
        out.push(b'(');
        for &value in values {
            int(out, value);
        }
        out.push(b't');
    }

    /// A protocol 2 pickle of `{name: tensor, …}` as torch writes it.
    fn state_dict_pickle(entries: &[Entry<'_>]) -> Vec<u8> {
        let mut out = b"\x80\x02}(".to_vec();
        for (name, class, key, numel, offset, size, stride) in entries {
            text(&mut out, name);
            out.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n((");
            text(&mut out, "storage");
            out.extend_from_slice(format!("ctorch\n{class}\n").as_bytes());
            text(&mut out, key);
            text(&mut out, "cpu");
            int(&mut out, *numel);
            out.extend_from_slice(b"tQ");
            int(&mut out, *offset);
            tuple(&mut out, size);
            tuple(&mut out, stride);
            out.extend_from_slice(b"\x89)tR");
        }
        out.extend_from_slice(b"u.");
        out
    }

    fn checkpoint(pickle: &[u8], byteorder: &[u8], storages: &[(&str, &[u8])]) -> Vec<u8> {
        let names: Vec<String> = storages.iter().map(|(key, _)| format!("ck/data/{key}")).collect();
        let mut members: Vec<(&str, &[u8])> = vec![("ck/data.pkl", pickle), ("ck/byteorder", byteorder)];
        for ((_, bytes), name) in storages.iter().zip(&names) {
            members.push((name, bytes));
        }
        build_zip(&members)
    }

    fn convert_bytes(bytes: Vec<u8>, options: &ConvertOptions) -> Result<Converted, ErrorKind> {
        open_bytes("test.pt", bytes, options).map_err(|err| err.kind)
    }

    #[test]
    fn big_endian_checkpoints_are_byte_swapped() {
        let pickle = state_dict_pickle(&[("w", "FloatStorage", "0", 2, 0, &[2], &[1])]);
        let storage: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|v| v.to_be_bytes()).collect();
        let converted =
            convert_bytes(checkpoint(&pickle, b"big", &[("0", &storage)]), &ConvertOptions::default()).unwrap();
        let expected: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(&*converted.data(0), expected.as_slice());
        let err = convert_bytes(checkpoint(&pickle, b"middle", &[("0", &storage)]), &ConvertOptions::default());
        assert!(matches!(err, Err(ErrorKind::NotACheckpoint(_))));
    }

    #[test]
    fn contiguous_tensors_are_byte_ranges_of_the_file_and_views_are_not() {
        // `w` is rows 1..3 of a 3x2 storage (contiguous, offset 2); `t` its transpose.
        let pickle = state_dict_pickle(&[
            ("w", "FloatStorage", "0", 6, 2, &[2, 2], &[2, 1]),
            ("t", "FloatStorage", "0", 6, 0, &[2, 3], &[1, 2]),
            ("be", "FloatStorage", "1", 1, 0, &[1], &[1]),
        ]);
        let storage: Vec<u8> = (0..24).collect();
        let bytes = checkpoint(&pickle, b"little", &[("0", &storage), ("1", &[9; 4])]);
        let converted = convert_bytes(bytes.clone(), &ConvertOptions::default()).unwrap();
        let range = converted.tensors()[0].file_range().unwrap();
        assert_eq!(&bytes[range.start as usize..range.end as usize], &*converted.data(0));
        assert_eq!(&*converted.data(0), &storage[8..24]);
        assert_eq!(converted.tensors()[1].file_range(), None);
        assert!(converted.tensors()[2].file_range().is_some());
        let big =
            convert_bytes(checkpoint(&pickle, b"big", &[("0", &storage), ("1", &[9; 4])]), &ConvertOptions::default());
        assert_eq!(big.unwrap().tensors()[0].file_range(), None, "big-endian floats are swapped, not borrowed");
    }

    /// Resident KiB of this process's mapping that contains `address` (`/proc/self/smaps`).
    fn mapping_rss_kib(address: usize) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        for line in smaps.lines() {
            let first = line.split_whitespace().next().unwrap_or("");
            if let Some((start, end)) = first.split_once('-').filter(|(start, _)| !start.contains(':')) {
                if let (Ok(start), Ok(end)) = (usize::from_str_radix(start, 16), usize::from_str_radix(end, 16)) {
                    inside = (start..end).contains(&address);
                }
            } else if inside && line.starts_with("Rss:") {
                return line.split_whitespace().nth(1).unwrap().parse().unwrap();
            }
        }
        panic!("no mapping contains {address:#x}");
    }

    /// The pages of a mapped file leave the resident set after the CRC check at open and
    /// after a view is read; every tensor reads back the same bytes afterwards.
    #[test]
    fn released_storages_leave_the_resident_set_and_read_back_the_same_bytes() {
        // `w` borrows a 1 MiB storage; `t` is its transpose (materialised).
        let numel = 512 * 512u64;
        let pickle = state_dict_pickle(&[
            ("w", "FloatStorage", "0", numel, 0, &[512, 512], &[512, 1]),
            ("t", "FloatStorage", "0", numel, 0, &[512, 512], &[1, 512]),
        ]);
        let storage: Vec<u8> = (0..numel * 4).map(|i| (i % 251) as u8).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("released.pt");
        std::fs::write(&path, checkpoint(&pickle, b"little", &[("0", &storage)])).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let converted = open_file(&path, &file, &ConvertOptions::default()).unwrap();
        let address = converted.data(0).as_ptr() as usize;
        let opened = mapping_rss_kib(address);
        assert!(opened < 200, "{opened} KiB resident after the CRC check of a 1 MiB storage");
        let t = converted.data(1).into_owned();
        assert_eq!(t[4..8], storage[512 * 4..513 * 4], "t[0][1] = w[1][0]");
        let read = mapping_rss_kib(address);
        converted.release_data(1);
        let released = mapping_rss_kib(address);
        assert!(read >= 1000 && released + 1000 <= read, "{read} KiB resident, {released} KiB after release");
        assert_eq!(&*converted.data(1), t.as_slice());
        assert_eq!(&*converted.data(0), storage.as_slice());
    }

    #[test]
    fn views_past_their_storage_are_refused() {
        let pickle = state_dict_pickle(&[("w", "FloatStorage", "0", 4, 2, &[2, 2], &[2, 1])]);
        let err = convert_bytes(checkpoint(&pickle, b"little", &[("0", &[0; 16])]), &ConvertOptions::default());
        assert!(matches!(err, Err(ErrorKind::Tensor { tensor, .. }) if tensor == "w"));
    }

    #[test]
    fn expanded_tensors_are_bounded() {
        let pickle = state_dict_pickle(&[("w", "FloatStorage", "0", 1, 0, &[1 << 15, 1 << 15], &[0, 0])]);
        let err = convert_bytes(checkpoint(&pickle, b"little", &[("0", &[0; 4])]), &ConvertOptions::default());
        assert!(matches!(err, Err(ErrorKind::Limit { what, .. }) if what.contains("expanded")));
    }

    #[test]
    fn two_dtypes_for_one_storage_are_refused() {
        let pickle = state_dict_pickle(&[
            ("a", "FloatStorage", "0", 2, 0, &[2], &[1]),
            ("b", "IntStorage", "0", 2, 0, &[2], &[1]),
        ]);
        let err = convert_bytes(checkpoint(&pickle, b"little", &[("0", &[0; 8])]), &ConvertOptions::default());
        assert!(matches!(err, Err(ErrorKind::Pickle { reason: crate::PickleError::BadValue(_), .. })));
    }

    #[test]
    fn shared_structure_cannot_blow_up_the_metadata() {
        // {'state_dict': {'w': tensor}, 'x': L30} where L(n) = [L(n-1), L(n-1)]: 2^30 nodes
        // if walked naively.
        let mut pickle = b"\x80\x02}(".to_vec();
        text(&mut pickle, "state_dict");
        let tensor = state_dict_pickle(&[("w", "FloatStorage", "0", 1, 0, &[1], &[1])]);
        pickle.extend_from_slice(&tensor[2..tensor.len() - 1]);
        text(&mut pickle, "x");
        pickle.extend_from_slice(b"]q\x00");
        for level in 1..=30u8 {
            pickle.extend_from_slice(&[b'(', b'h', level - 1, b'h', level - 1, b'l', b'q', level]);
        }
        pickle.extend_from_slice(b"u.");
        let start = std::time::Instant::now();
        let err = convert_bytes(checkpoint(&pickle, b"little", &[("0", &[0; 4])]), &ConvertOptions::default());
        assert!(matches!(err, Err(ErrorKind::Limit { .. })), "{:?}", err.err());
        assert!(start.elapsed().as_secs() < 10);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let mut pickle = b"\x80\x02}(".to_vec();
        text(&mut pickle, "state_dict");
        let tensor = state_dict_pickle(&[("w", "FloatStorage", "0", 1, 0, &[1], &[1])]);
        pickle.extend_from_slice(&tensor[2..tensor.len() - 1]);
        text(&mut pickle, "deep");
        pickle.extend(std::iter::repeat_n(b']', 100_000));
        pickle.extend(std::iter::repeat_n(b'a', 99_999));
        pickle.extend_from_slice(b"u.");
        // On a 1 MiB stack (half a test thread's), so the depth bound has a margin.
        let zip = checkpoint(&pickle, b"little", &[("0", &[0; 4])]);
        let run = move || convert_bytes(zip, &ConvertOptions::default()).err().map(|err| err.to_string());
        let err = std::thread::Builder::new().stack_size(1 << 20).spawn(run).unwrap().join().unwrap();
        assert!(err.as_deref().is_some_and(|err| err.contains("depth")), "{err:?}");
    }

    #[test]
    fn anemoi_supporting_arrays_are_checked_against_their_members() {
        let pickle = state_dict_pickle(&[("w", "FloatStorage", "0", 1, 0, &[1], &[1])]);
        let with_metadata = |json: &str, array: &[u8]| {
            build_zip(&[
                ("ck/data.pkl", &pickle),
                ("ck/data/0", &[0; 4]),
                ("ck/anemoi-metadata/anemoi.json", json.as_bytes()),
                ("ck/anemoi-metadata/lat.numpy", array),
            ])
        };
        let entry = |shape: &str, dtype: &str| {
            format!(
                r#"{{"supporting_arrays_paths": {{"lat": {{"path": "ck/anemoi-metadata/lat.numpy", "shape": {shape}, "dtype": "{dtype}"}}}}}}"#
            )
        };
        let ok = convert_bytes(with_metadata(&entry("[2]", "float32"), &[0; 8]), &ConvertOptions::default()).unwrap();
        assert_eq!(ok.tensors().len(), 1);
        assert_eq!(ok.extras()[0].name, "anemoi.supporting_arrays.lat");
        for (json, array) in [
            (entry("[3]", "float32"), &[0u8; 8][..]),
            (entry("[2]", "object"), &[0; 8]),
            (entry("[-1]", "float32"), &[0; 8]),
            ("not json".to_string(), &[0; 8]),
            (
                r#"{"supporting_arrays_paths": {"lat": {"path": "ck/missing", "shape": [2], "dtype": "float32"}}}"#
                    .into(),
                &[0; 8],
            ),
        ] {
            let result = convert_bytes(with_metadata(&json, array), &ConvertOptions::default());
            assert!(matches!(result, Err(ErrorKind::Anemoi(_))), "{json}: {:?}", result.err());
        }
        // An empty array whose other dims would overflow a stride product is still empty.
        let empty = with_metadata(&entry("[0, 1099511627776, 1099511627776]", "float32"), &[]);
        assert_eq!(convert_bytes(empty, &ConvertOptions::default()).unwrap().extra_data(0).len(), 0);
        let dropped = ConvertOptions { supporting_arrays: false, ..ConvertOptions::default() };
        let converted = convert_bytes(with_metadata(&entry("[2]", "float32"), &[0; 8]), &dropped).unwrap();
        assert_eq!(converted.tensors().len(), 1);
        assert!(converted.extras().is_empty());
        assert!(converted.metadata().contains_key("anemoi"));
        // Per dataset (anemoi-models >= 0.12): names join the keys on the way.
        let nested = r#"{"supporting_arrays_paths": {"data": {"lat": {"path": "ck/anemoi-metadata/lat.numpy", "shape": [2], "dtype": "float32"}}}}"#;
        let converted = convert_bytes(with_metadata(nested, &[0; 8]), &ConvertOptions::default()).unwrap();
        assert_eq!(converted.extras()[0].name, "anemoi.supporting_arrays.data.lat");
    }

    #[test]
    fn a_tensor_called_model_is_not_taken_for_the_state_dict() {
        // {'model': tensor, 'epoch': 3}
        let tensor = state_dict_pickle(&[("model", "FloatStorage", "0", 1, 0, &[1], &[1])]);
        let mut pickle = tensor[..tensor.len() - 2].to_vec();
        text(&mut pickle, "epoch");
        int(&mut pickle, 3);
        pickle.extend_from_slice(b"u.");
        let converted =
            convert_bytes(checkpoint(&pickle, b"little", &[("0", &[0; 4])]), &ConvertOptions::default()).unwrap();
        assert_eq!(converted.tensors()[0].name, "model");
        // torch.save(tensor): one tensor, named `tensor`.
        let bare = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x01tQK\x00)))\x89)tR.";
        let converted =
            convert_bytes(checkpoint(bare, b"little", &[("0", &[0; 4])]), &ConvertOptions::default()).unwrap();
        assert_eq!(converted.tensors()[0].name, "tensor");
    }

    #[test]
    fn float8_tensors_come_from_untyped_storages() {
        // _rebuild_tensor_v3(UntypedStorage pid (numel in bytes), 0, (4,), (1,), False, (), torch.float8_e4m3fn)
        let mut pickle = b"\x80\x02}(".to_vec();
        for (name, key, dtype) in [("a", "0", "float8_e4m3fn"), ("b", "1", "float8_e5m2fnuz")] {
            text(&mut pickle, name);
            pickle.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v3\n((");
            text(&mut pickle, "storage");
            pickle.extend_from_slice(b"ctorch.storage\nUntypedStorage\n");
            text(&mut pickle, key);
            text(&mut pickle, "cpu");
            int(&mut pickle, 4);
            pickle.extend_from_slice(b"tQ");
            int(&mut pickle, 0);
            tuple(&mut pickle, &[4]);
            tuple(&mut pickle, &[1]);
            pickle.extend_from_slice(b"\x89)");
            pickle.extend_from_slice(format!("ctorch\n{dtype}\ntR").as_bytes());
        }
        pickle.extend_from_slice(b"u.");
        let zip = checkpoint(&pickle, b"little", &[("0", &[1, 2, 3, 4]), ("1", &[5, 6, 7, 8])]);
        let converted = convert_bytes(zip, &ConvertOptions::default()).unwrap();
        assert_eq!(converted.tensors()[0].dtype, DType::F8E4M3);
        assert_eq!(converted.tensors()[1].dtype, DType::F8E5M2Fnuz);
        assert_eq!(&*converted.data(1), &[5, 6, 7, 8]);
    }

    /// `_rebuild_tensor_v2` of `numel` float32 elements of storage `key`.
    fn tensor_value(out: &mut Vec<u8>, key: &str, numel: u64) {
        out.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n((");
        text(out, "storage");
        out.extend_from_slice(b"ctorch\nFloatStorage\n");
        text(out, key);
        text(out, "cpu");
        int(out, numel);
        out.extend_from_slice(b"tQ");
        int(out, 0);
        tuple(out, &[numel]);
        tuple(out, &[1]);
        out.extend_from_slice(b"\x89)tR");
    }

    /// `NEWOBJ(module.class, ())` + `BUILD({key: value, …})`, values written by `items`.
    fn object(out: &mut Vec<u8>, class: &str, items: impl FnOnce(&mut Vec<u8>)) {
        let (module, name) = class.rsplit_once('.').expect("module.class");
        out.extend_from_slice(format!("c{module}\n{name}\n").as_bytes());
        out.extend_from_slice(b")\x81}(");
        items(out);
        out.extend_from_slice(b"ub");
    }

    #[test]
    fn graphs_anywhere_in_the_object_graph_are_extras() {
        // {'state_dict': {'w': t0}, 'g': Data(x=t1, n=3), 'more': [HeteroData(a.x=t2, (a,to,a).edge_index=t3)]}
        let mut pickle = b"\x80\x02}(".to_vec();
        text(&mut pickle, "state_dict");
        pickle.extend_from_slice(b"}(");
        text(&mut pickle, "w");
        tensor_value(&mut pickle, "0", 1);
        pickle.extend_from_slice(b"u");
        text(&mut pickle, "g");
        object(&mut pickle, "pyg.Data", |out| {
            text(out, "_store");
            object(out, "pyg.GlobalStorage", |out| {
                text(out, "_mapping");
                out.extend_from_slice(b"}(");
                text(out, "x");
                tensor_value(out, "1", 2);
                text(out, "n");
                int(out, 3);
                out.push(b'u');
            });
        });
        text(&mut pickle, "more");
        pickle.extend_from_slice(b"(");
        object(&mut pickle, "pyg.HeteroData", |out| {
            text(out, "_node_store_dict");
            out.extend_from_slice(b"}(");
            text(out, "a");
            object(out, "pyg.NodeStorage", |out| {
                text(out, "_mapping");
                out.extend_from_slice(b"}(");
                text(out, "x");
                tensor_value(out, "2", 1);
                out.push(b'u');
            });
            out.push(b'u');
            text(out, "_edge_store_dict");
            out.extend_from_slice(b"}((");
            for part in ["a", "to", "a"] {
                text(out, part);
            }
            out.push(b't');
            object(out, "pyg.EdgeStorage", |out| {
                text(out, "_mapping");
                out.extend_from_slice(b"}(");
                text(out, "edge_index");
                tensor_value(out, "3", 2);
                out.push(b'u');
            });
            out.push(b'u');
        });
        pickle.extend_from_slice(b"lu.");
        let storages: [(&str, &[u8]); 4] = [("0", &[0; 4]), ("1", &[1; 8]), ("2", &[2; 4]), ("3", &[3; 8])];
        let converted = convert_bytes(checkpoint(&pickle, b"little", &storages), &ConvertOptions::default()).unwrap();
        let names = |tensors: &[ConvertedTensor]| tensors.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(converted.tensors()), ["w"]);
        assert_eq!(names(converted.extras()), ["graph.x", "graph2.a.x", "graph2.a_to_a.edge_index"]);
        assert_eq!(&*converted.extra_data(2), &[3; 8]);
        let rest: serde_json::Value = serde_json::from_str(&converted.metadata()[METADATA_CHECKPOINT]).unwrap();
        assert_eq!(rest["g"], serde_json::json!({ "__extras__": "graph", "graph.n": 3 }));
        assert_eq!(rest["more"][0]["__extras__"], "graph2");
        assert_eq!(converted.data_classes().len(), 5, "{:?}", converted.data_classes());
        // Without graphs, they are placeholders only.
        let options = ConvertOptions { graphs: false, ..ConvertOptions::default() };
        let converted = convert_bytes(checkpoint(&pickle, b"little", &storages), &options).unwrap();
        assert!(converted.extras().is_empty());
    }

    #[test]
    fn tensor_subclasses_keep_their_bytes_and_unknown_rebuilds_stay_records() {
        // {'a': _rebuild_from_type_v2(_rebuild_tensor_v2, my.Sub, (…), {}), 'b': _rebuild_from_type_v2(my.f, my.Sub, (), {})}
        let mut pickle = b"\x80\x02}(".to_vec();
        text(&mut pickle, "a");
        pickle.extend_from_slice(
            b"ctorch._tensor\n_rebuild_from_type_v2\n(ctorch._utils\n_rebuild_tensor_v2\ncmy\nSub\n(",
        );
        let mut inner = Vec::new();
        tensor_value(&mut inner, "0", 1);
        // The inner call's arguments: strip `GLOBAL … (` and the final `R`.
        let start = inner.iter().position(|&b| b == b'(').unwrap();
        pickle.extend_from_slice(&inner[start + 1..inner.len() - 2]);
        pickle.extend_from_slice(b"t}tR");
        text(&mut pickle, "b");
        pickle.extend_from_slice(b"ctorch._tensor\n_rebuild_from_type_v2\n(cmy\nf\ncmy\nSub\n)}tRu.");
        let converted =
            convert_bytes(checkpoint(&pickle, b"little", &[("0", &[7; 4])]), &ConvertOptions::default()).unwrap();
        assert_eq!(converted.tensors().len(), 1);
        assert_eq!((converted.tensors()[0].name.as_str(), &*converted.data(0)), ("a", &[7u8; 4][..]));
    }

    #[test]
    fn a_checkpoint_without_tensors_is_an_error() {
        let zip = checkpoint(b"\x80\x02}.", b"little", &[]);
        assert!(matches!(convert_bytes(zip, &ConvertOptions::default()), Err(ErrorKind::Structure(_))));
    }

    #[test]
    fn non_checkpoints_are_named_as_such() {
        for bytes in [&b"hello"[..], b"", b"PK\x03\x04garbage"] {
            let err = convert_bytes(bytes.to_vec(), &ConvertOptions::default()).err().unwrap();
            assert!(matches!(err, ErrorKind::NotACheckpoint(_) | ErrorKind::Zip(_)), "{err}");
        }
        let no_pickle = build_zip(&[("x/other", b"")]);
        assert!(matches!(convert_bytes(no_pickle, &ConvertOptions::default()), Err(ErrorKind::NotACheckpoint(_))));
    }
}
