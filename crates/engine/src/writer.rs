//! The streaming atomic writer.
//!
//! The whole header is computed before any data is written; tensors are then streamed
//! in order: borrowed bytes are written as they are, file ranges are copied through one
//! reused buffer of [`COPY_CHUNK`] bytes (`pread`, then `write`; see [`Sink::copy_range`]
//! for why not `copy_file_range`), generated tensors are produced into reused buffers.
//! Writing happens on a second thread while the caller's thread computes the next
//! generated tensor, so
//! computation overlaps the I/O; at most two generated tensors are in memory at once
//! (one being written, one being computed), so memory stays bounded by twice the largest
//! generated tensor. Output goes to an unnamed (`O_TMPFILE`) file in the target's
//! directory, or where the file system has none to a temporary file beside the target
//! (`.NAME.safeshift-tmp-XXXXXX`, removed on any error by its drop guard); it is fsynced,
//! given the target's name (see [`crate::atomic`]), and the directory fsynced.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use safeshift_model::DType;
use sha2::{Digest, Sha256};

use crate::atomic::{self, Pending};
use crate::checkpoint::TensorLocation;
use crate::error::{GenerateError, WriteError, WriteErrorKind};

/// The `__metadata__` keys of checksums (recorded when [`WriteOptions::record_sha256`]
/// is set, checked by `verify`) and of the extras' names (the reader sets them aside
/// again, [`Checkpoint::extras`](crate::Checkpoint::extras)); defined with every other
/// key in `safeshift_model::keys`.
pub use safeshift_model::keys::{EXTRAS_KEY as EXTRAS_METADATA_KEY, SHA256_KEY as SHA256_METADATA_KEY};

/// The header length bound of the format.
const MAX_HEADER_LEN: u64 = 100_000_000;

/// Infix of temporary file names: `.NAME.safeshift-tmp-XXXXXX` beside the target (the
/// fallback where `O_TMPFILE` is not available, and the instant between link and rename).
pub const TEMP_INFIX: &str = ".safeshift-tmp-";

/// A tensor to write: its header entry and where its bytes come from.
pub struct OutputTensor<'a> {
    /// The name.
    pub name: String,
    /// The element type.
    pub dtype: DType,
    /// The shape; empty for a 0-d tensor.
    pub shape: Vec<u64>,
    /// The bytes.
    pub source: TensorSource<'a>,
}

/// Where an output tensor's bytes come from.
pub enum TensorSource<'a> {
    /// Bytes in memory, usually borrowed from an input's map.
    Bytes(Cow<'a, [u8]>),
    /// A byte range of an input file, copied with `pread` and `write` through a buffer.
    File(TensorLocation<'a>),
    /// A generator that fills a zeroed buffer of exactly the tensor's byte length; called
    /// once, when the tensor's turn comes. Its error aborts the write.
    Generate(Generator<'a>),
}

/// A tensor generator: fills a zeroed buffer of the tensor's byte length.
pub type Generator<'a> = Box<dyn FnOnce(&mut [u8]) -> Result<(), GenerateError> + 'a>;

/// The order of tensors in the output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TensorOrder {
    /// As the `safetensors` crate writes: by dtype descending (in [`DType::ALL`] order),
    /// then by name. With at most one metadata key the output is byte-identical to
    /// `safetensors::serialize` (which orders metadata keys by hash; we sort them).
    #[default]
    Safetensors,
    /// In the order given.
    AsGiven,
}

/// How to write.
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    /// The `__metadata__` map (omitted from the header when empty).
    pub metadata: BTreeMap<String, String>,
    /// The tensor order.
    pub order: TensorOrder,
    /// Record each tensor's SHA-256 under [`SHA256_METADATA_KEY`].
    pub record_sha256: bool,
    /// Split into shards of at most this many data bytes (a larger tensor gets a shard of
    /// its own); the target path is then the index, `NAME.safetensors.index.json`, and
    /// shards are `NAME-00001-of-0000N.safetensors` beside it.
    pub max_shard_size: Option<u64>,
    /// Test hook: fail with [`WriteErrorKind::InjectedFault`] once this many bytes have
    /// been written to output files.
    #[doc(hidden)]
    pub fail_after_bytes: Option<u64>,
}

/// What was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteSummary {
    /// The files written: the target, or the shards then the index.
    pub files: Vec<PathBuf>,
    /// Bytes written to all files (headers included).
    pub bytes: u64,
}

/// Writes `tensors` to `path` atomically: either the complete file appears at `path` or
/// nothing changes there. See the module docs for how.
pub fn write(path: &Path, tensors: Vec<OutputTensor<'_>>, options: &WriteOptions) -> Result<WriteSummary, WriteError> {
    write_with_extras(path, tensors, Vec::new(), options)
}

/// Writes the state dict `tensors` (in [`WriteOptions::order`]) and then `extras` (tensors
/// held outside the state dict, in the order given), atomically as [`write`] does. The
/// extras' names are recorded under [`EXTRAS_METADATA_KEY`] (replacing any record in
/// `options.metadata`; with no extras the metadata is written as given), so the reader
/// sets them aside again.
pub fn write_with_extras(
    path: &Path,
    tensors: Vec<OutputTensor<'_>>,
    extras: Vec<OutputTensor<'_>>,
    options: &WriteOptions,
) -> Result<WriteSummary, WriteError> {
    let err = |kind| WriteError::new(path, kind);
    let mut metadata = options.metadata.clone();
    if !extras.is_empty() {
        let names: Vec<&str> = extras.iter().map(|tensor| tensor.name.as_str()).collect();
        metadata.insert(EXTRAS_METADATA_KEY.to_owned(), serde_json::to_string(&names).expect("strings serialize"));
    }
    let options = &WriteOptions { metadata, ..options.clone() };
    let mut planned = plan(tensors, options.order).map_err(err)?;
    planned.extend(plan(extras, TensorOrder::AsGiven).map_err(err)?);
    check_unique(&planned).map_err(err)?;
    let mut sink_state = Budget { written: 0, fail_after: options.fail_after_bytes };
    let mut buffers = Vec::new();
    let Some(max_shard_size) = options.max_shard_size else {
        let pending = write_file(path, &mut planned, options, &mut sink_state, &mut buffers).map_err(err)?;
        commit(vec![(pending, path.to_owned())]).map_err(err)?;
        return Ok(WriteSummary { files: vec![path.to_owned()], bytes: sink_state.written });
    };
    let file_name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
    let Some(stem) = file_name.strip_suffix(".safetensors.index.json").filter(|stem| !stem.is_empty()) else {
        let message = "a sharded target must be named `NAME.safetensors.index.json`".to_owned();
        return Err(err(WriteErrorKind::BadTarget { message }));
    };
    let groups = shard_groups(&planned, max_shard_size);
    let directory = path.parent().unwrap_or(Path::new(""));
    let mut pending = Vec::with_capacity(groups.len() + 1);
    let mut weight_map = BTreeMap::new();
    let mut total_size = 0u64;
    let mut rest = planned.as_mut_slice();
    for (index, &count) in groups.iter().enumerate() {
        let (group, tail) = rest.split_at_mut(count);
        rest = tail;
        let shard_name = format!("{stem}-{:05}-of-{:05}.safetensors", index + 1, groups.len());
        let shard_path = directory.join(&shard_name);
        for tensor in group.iter() {
            weight_map.insert(tensor.name.clone(), serde_json::Value::String(shard_name.clone()));
            total_size += tensor.byte_len;
        }
        let file = write_file(&shard_path, group, options, &mut sink_state, &mut buffers)
            .map_err(|kind| WriteError::new(&shard_path, kind))?;
        pending.push((file, shard_path));
    }
    let mut index = serde_json::Map::new();
    index.insert("metadata".into(), serde_json::json!({ "total_size": total_size }));
    index.insert("weight_map".into(), serde_json::Value::Object(weight_map.into_iter().collect()));
    let mut text = serde_json::to_string_pretty(&serde_json::Value::Object(index)).expect("a JSON value serializes");
    text.push('\n');
    let mut index_file = Pending::create(path).map_err(err)?;
    let mut sink = Sink { file: index_file.file(), budget: &mut sink_state, copy_buffer: Vec::new() };
    sink.write_all(text.as_bytes(), "write the index").map_err(err)?;
    index_file.file().sync_all().map_err(|source| err(WriteErrorKind::Io { action: "fsync the index", source }))?;
    // The index is renamed last: until then no index appears at the target.
    pending.push((index_file, path.to_owned()));
    let files = pending.iter().map(|(_, target)| target.clone()).collect();
    commit(pending).map_err(err)?;
    Ok(WriteSummary { files, bytes: sink_state.written })
}

/// An output tensor with its byte length checked.
struct Planned<'a> {
    name: String,
    dtype: DType,
    shape: Vec<u64>,
    byte_len: u64,
    source: Option<TensorSource<'a>>,
}

fn plan(tensors: Vec<OutputTensor<'_>>, order: TensorOrder) -> Result<Vec<Planned<'_>>, WriteErrorKind> {
    let mut planned = Vec::with_capacity(tensors.len());
    for tensor in tensors {
        let bits = tensor
            .shape
            .iter()
            .try_fold(1u64, |acc, &dim| acc.checked_mul(dim))
            .and_then(|numel| numel.checked_mul(tensor.dtype.bits() as u64))
            .filter(|bits| bits % 8 == 0);
        let Some(bits) = bits else {
            let dtype = tensor.dtype.safetensors_name();
            return Err(WriteErrorKind::BadShape { tensor: tensor.name, shape: tensor.shape, dtype });
        };
        let byte_len = bits / 8;
        let found = match &tensor.source {
            TensorSource::Bytes(bytes) => Some(bytes.len() as u64),
            TensorSource::File(location) => Some(location.len),
            TensorSource::Generate(_) => None,
        };
        if let Some(found) = found.filter(|&found| found != byte_len) {
            return Err(WriteErrorKind::SourceLength { tensor: tensor.name, expected: byte_len, found });
        }
        planned.push(Planned {
            name: tensor.name,
            dtype: tensor.dtype,
            shape: tensor.shape,
            byte_len,
            source: Some(tensor.source),
        });
    }
    if order == TensorOrder::Safetensors {
        planned.sort_by(|a, b| b.dtype.cmp(&a.dtype).then_with(|| a.name.cmp(&b.name)));
    }
    Ok(planned)
}

fn check_unique(planned: &[Planned<'_>]) -> Result<(), WriteErrorKind> {
    let mut names: Vec<&str> = planned.iter().map(|tensor| tensor.name.as_str()).collect();
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(WriteErrorKind::DuplicateTensor { tensor: pair[0].to_owned() });
    }
    Ok(())
}

/// Counts of consecutive tensors per shard, greedy in output order.
fn shard_groups(planned: &[Planned<'_>], max_shard_size: u64) -> Vec<usize> {
    let mut groups = Vec::new();
    let (mut count, mut size) = (0usize, 0u64);
    for tensor in planned {
        if count > 0 && size.saturating_add(tensor.byte_len) > max_shard_size {
            groups.push(count);
            (count, size) = (0, 0);
        }
        count += 1;
        size = size.saturating_add(tensor.byte_len);
    }
    if count > 0 || groups.is_empty() {
        groups.push(count);
    }
    groups
}

/// The serialized header, padded with spaces to a multiple of 8 bytes as the
/// `safetensors` crate does. `digests` (hex, parallel to `tensors`) are recorded under
/// [`SHA256_METADATA_KEY`] when given.
fn header_bytes(tensors: &[Planned<'_>], metadata: &BTreeMap<String, String>, digests: Option<&[String]>) -> Vec<u8> {
    let mut metadata = Cow::Borrowed(metadata);
    if let Some(digests) = digests {
        let record: BTreeMap<&str, &str> =
            tensors.iter().zip(digests).map(|(tensor, digest)| (tensor.name.as_str(), digest.as_str())).collect();
        let text = serde_json::to_string(&record).expect("a map of strings serializes");
        metadata.to_mut().insert(SHA256_METADATA_KEY.to_owned(), text);
    }
    let mut out = Vec::with_capacity(64 + tensors.len() * 96);
    out.push(b'{');
    let mut first = true;
    if !metadata.is_empty() {
        out.extend_from_slice(b"\"__metadata__\":");
        serde_json::to_writer(&mut out, &*metadata).expect("a map of strings serializes");
        first = false;
    }
    let mut offset = 0u64;
    for tensor in tensors {
        if !first {
            out.push(b',');
        }
        first = false;
        serde_json::to_writer(&mut out, &tensor.name).expect("a string serializes");
        out.extend_from_slice(b":{\"dtype\":\"");
        out.extend_from_slice(tensor.dtype.safetensors_name().as_bytes());
        out.extend_from_slice(b"\",\"shape\":");
        serde_json::to_writer(&mut out, &tensor.shape).expect("integers serialize");
        let end = offset + tensor.byte_len;
        write!(out, ",\"data_offsets\":[{offset},{end}]}}").expect("writing to a Vec cannot fail");
        offset = end;
    }
    out.push(b'}');
    let padded = out.len().next_multiple_of(8);
    out.resize(padded, b' ');
    out
}

/// Bytes written so far, across all files of one write, and the injected-fault limit.
struct Budget {
    written: u64,
    fail_after: Option<u64>,
}

/// The output file being written, with the byte budget.
struct Sink<'f, 'b> {
    file: &'f mut File,
    budget: &'b mut Budget,
    /// The buffer file ranges are copied through: allocated on the first copy, reused by
    /// the next ones.
    copy_buffer: Vec<u8>,
}

impl Sink<'_, '_> {
    /// How many of `len` bytes may be written before the injected fault.
    fn allowance(&self, len: u64) -> u64 {
        match self.budget.fail_after {
            Some(limit) => len.min(limit.saturating_sub(self.budget.written)),
            None => len,
        }
    }

    fn fault(&self) -> WriteErrorKind {
        WriteErrorKind::InjectedFault { after: self.budget.written }
    }

    fn write_all(&mut self, bytes: &[u8], action: &'static str) -> Result<(), WriteErrorKind> {
        let allowed = self.allowance(bytes.len() as u64) as usize;
        self.file.write_all(&bytes[..allowed]).map_err(|source| WriteErrorKind::Io { action, source })?;
        self.budget.written += allowed as u64;
        if allowed < bytes.len() {
            return Err(self.fault());
        }
        Ok(())
    }

    /// Copies `len` bytes of `source` from `offset` to the end of the output, through
    /// [`Sink::copy_buffer`], hashing them on the way if asked.
    ///
    /// Not `copy_file_range`, although that moves the bytes once instead of twice: on
    /// ext4 (Linux 6.18, the bench machine) the kernel's splice copy of ranges that start
    /// mid-page, as tensor ranges do (a safetensors file's data starts at 8 + the header
    /// length), took 1.3–1.5× as long as this loop and its output was slower to fsync,
    /// whether or not the two offsets were congruent modulo the page size (most likely
    /// because the splice copy writes in rounds of at most 16 pages, where these 1 MiB
    /// writes let the page cache use larger folios). The buffer stays in the CPU cache
    /// between its two copies. A whole-file copy from offset 0 to offset 0, as `cp` does,
    /// was the one case where the kernel's copy was as fast.
    fn copy_range(
        &mut self,
        source: &File,
        mut offset: u64,
        len: u64,
        tensor: &str,
        mut hasher: Option<&mut Sha256>,
    ) -> Result<(), WriteErrorKind> {
        // Taken out of `self` for the loop, which writes through `self`; put back after.
        let mut buffer = std::mem::take(&mut self.copy_buffer);
        buffer.resize(buffer.len().max(len.min(COPY_CHUNK) as usize), 0);
        let mut remaining = len;
        let mut copied = Ok(());
        while remaining > 0 {
            let chunk = &mut buffer[..remaining.min(COPY_CHUNK) as usize];
            if let Err(source) = source.read_exact_at(chunk, offset) {
                copied = Err(if source.kind() == std::io::ErrorKind::UnexpectedEof {
                    short_source(tensor)
                } else {
                    WriteErrorKind::SourceRead { tensor: tensor.to_owned(), source }
                });
                break;
            }
            if let Some(hasher) = hasher.as_deref_mut() {
                hasher.update(&*chunk);
            }
            if let Err(err) = self.write_all(chunk, "write tensor bytes") {
                copied = Err(err);
                break;
            }
            offset += chunk.len() as u64;
            remaining -= chunk.len() as u64;
        }
        self.copy_buffer = buffer;
        copied
    }
}

fn short_source(tensor: &str) -> WriteErrorKind {
    let source = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the source file ended early");
    WriteErrorKind::SourceRead { tensor: tensor.to_owned(), source }
}

/// Writes one file's header and data to a temporary file beside `target` and fsyncs it;
/// the caller renames it into place with [`commit`].
fn write_file(
    target: &Path,
    tensors: &mut [Planned<'_>],
    options: &WriteOptions,
    budget: &mut Budget,
    buffers: &mut Vec<Vec<u8>>,
) -> Result<Pending, WriteErrorKind> {
    let placeholder = vec!["0".repeat(64); tensors.len()];
    let digests_in = options.record_sha256.then_some(placeholder.as_slice());
    let header = header_bytes(tensors, &options.metadata, digests_in);
    if header.len() as u64 > MAX_HEADER_LEN {
        return Err(WriteErrorKind::HeaderTooLarge { len: header.len() as u64, limit: MAX_HEADER_LEN });
    }
    let mut temp = Pending::create(target)?;
    let mut sink = Sink { file: temp.file(), budget, copy_buffer: Vec::new() };
    sink.write_all(&(header.len() as u64).to_le_bytes(), "write the header")?;
    sink.write_all(&header, "write the header")?;
    let digests = stream(tensors, &mut sink, options.record_sha256, buffers)?;
    if options.record_sha256 {
        let final_header = header_bytes(tensors, &options.metadata, Some(&digests));
        // Hex digests have a fixed length, so the header keeps its length and offsets.
        assert_eq!(final_header.len(), header.len(), "digest placeholders have the digests' length");
        temp.file()
            .write_all_at(&final_header, 8)
            .map_err(|source| WriteErrorKind::Io { action: "write the checksums", source })?;
    }
    temp.file().sync_all().map_err(|source| WriteErrorKind::Io { action: "fsync", source })?;
    Ok(temp)
}

/// The size of the buffer file ranges are copied through, and of each `pread` and
/// `write` of a copy: large enough that syscalls cost nothing next to the bytes, small
/// enough to stay in the CPU cache between the two copies.
const COPY_CHUNK: u64 = 1 << 20;

/// How many generated tensors may be in memory at once: one being written while the
/// next is computed.
const GENERATED_IN_FLIGHT: usize = 2;

/// What the I/O thread writes next, in output order.
enum Chunk<'a> {
    Bytes(Cow<'a, [u8]>),
    File(TensorLocation<'a>),
    /// A generated tensor's buffer, handed back once written.
    Generated(Vec<u8>),
}

/// Streams the tensors' data into `sink`, in order, and returns their hex SHA-256s when
/// `record_sha256`.
///
/// The writing happens on a second thread, fed in output order through a channel: while
/// it writes (or copies) earlier tensors, this thread already computes the
/// next generated one, so computation hides behind I/O instead of adding to it. The
/// look-ahead is bounded by [`GENERATED_IN_FLIGHT`] buffers, which are recycled: memory
/// stays within twice the largest generated tensor (`buffers` keeps them for the next
/// file of a sharded write). Pass-through tensors cost no memory in the queue.
fn stream(
    tensors: &mut [Planned<'_>],
    sink: &mut Sink<'_, '_>,
    record_sha256: bool,
    buffers: &mut Vec<Vec<u8>>,
) -> Result<Vec<String>, WriteErrorKind> {
    std::thread::scope(|scope| {
        let (to_writer, chunks) = mpsc::channel::<(Chunk<'_>, &str)>();
        let (give_back, returned) = mpsc::channel::<Vec<u8>>();
        let writer = scope.spawn(move || -> Result<Vec<String>, WriteErrorKind> {
            let mut digests = Vec::new();
            for (chunk, name) in chunks {
                let mut hasher = record_sha256.then(Sha256::new);
                match &chunk {
                    Chunk::Bytes(bytes) => {
                        if let Some(hasher) = hasher.as_mut() {
                            hasher.update(bytes);
                        }
                        sink.write_all(bytes, "write tensor bytes")?;
                    }
                    Chunk::File(location) => {
                        sink.copy_range(location.file, location.offset, location.len, name, hasher.as_mut())?
                    }
                    Chunk::Generated(buffer) => {
                        if let Some(hasher) = hasher.as_mut() {
                            hasher.update(buffer);
                        }
                        sink.write_all(buffer, "write tensor bytes")?;
                    }
                }
                if let Some(hasher) = hasher {
                    digests.push(hex(&hasher.finalize()));
                }
                if let Chunk::Generated(buffer) = chunk {
                    // The producer may have finished already; the buffer is then dropped.
                    let _ = give_back.send(buffer);
                }
            }
            Ok(digests)
        });
        let produced = produce(tensors, &to_writer, &returned, buffers);
        drop(to_writer);
        let written = writer.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        buffers.extend(returned.try_iter());
        // The writer's error comes first: when it stopped, the producer only saw a
        // closed channel.
        let digests = written?;
        produced?;
        Ok(digests)
    })
}

/// Feeds the writer thread every tensor's bytes in order, computing generated tensors
/// into recycled buffers. Returns early, with `Ok`, when the writer has stopped (its
/// error is reported by the caller).
fn produce<'t>(
    tensors: &'t mut [Planned<'_>],
    to_writer: &mpsc::Sender<(Chunk<'t>, &'t str)>,
    returned: &mpsc::Receiver<Vec<u8>>,
    buffers: &mut Vec<Vec<u8>>,
) -> Result<(), WriteErrorKind> {
    let mut allocated = buffers.len();
    for tensor in tensors.iter_mut() {
        let chunk = match tensor.source.take().expect("each tensor is written once") {
            TensorSource::Bytes(bytes) => Chunk::Bytes(bytes),
            TensorSource::File(location) => Chunk::File(location),
            TensorSource::Generate(generate) => {
                let mut buffer = match buffers.pop() {
                    Some(buffer) => buffer,
                    None if allocated < GENERATED_IN_FLIGHT => {
                        allocated += 1;
                        Vec::new()
                    }
                    None => match returned.recv() {
                        Ok(buffer) => buffer,
                        Err(_) => return Ok(()),
                    },
                };
                let len = tensor.byte_len as usize;
                buffer.clear();
                buffer.try_reserve_exact(len).map_err(|_| WriteErrorKind::Io {
                    action: "allocate",
                    source: std::io::ErrorKind::OutOfMemory.into(),
                })?;
                buffer.resize(len, 0);
                generate(&mut buffer)
                    .map_err(|source| WriteErrorKind::Generator { tensor: tensor.name.clone(), source })?;
                Chunk::Generated(buffer)
            }
        };
        if to_writer.send((chunk, tensor.name.as_str())).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// Gives each pending file its target's name, in order, then fsyncs the directories.
fn commit(files: Vec<(Pending, PathBuf)>) -> Result<(), WriteErrorKind> {
    let targets: Vec<PathBuf> = files.iter().map(|(_, target)| target.clone()).collect();
    for (pending, target) in files {
        pending.commit(&target).map_err(|source| WriteErrorKind::Io { action: "rename into place", source })?;
    }
    atomic::sync_directories(targets).map_err(|source| WriteErrorKind::Io { action: "fsync the directory", source })
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        out.push(DIGITS[(byte >> 4) as usize] as char);
        out.push(DIGITS[(byte & 15) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(name: &str, byte_len: u64) -> Planned<'static> {
        Planned { name: name.into(), dtype: DType::U8, shape: vec![byte_len], byte_len, source: None }
    }

    #[test]
    fn shards_are_greedy_and_never_empty() {
        let tensors = [planned("a", 4), planned("b", 4), planned("c", 10), planned("d", 1)];
        assert_eq!(shard_groups(&tensors, 8), vec![2, 1, 1]);
        assert_eq!(shard_groups(&tensors, 100), vec![4]);
        assert_eq!(shard_groups(&[], 8), vec![0]);
    }

    #[test]
    fn header_is_padded_to_eight() {
        let header = header_bytes(&[planned("a", 3)], &BTreeMap::new(), None);
        assert_eq!(header.len() % 8, 0);
        assert!(header.starts_with(br#"{"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}}"#));
    }
}
