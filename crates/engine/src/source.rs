//! One file of a checkpoint, whatever its format: mapped, with each tensor's place in it.
//!
//! This is the input interface every format implements. A reader (safetensors,
//! PyTorch zip or legacy) opens the file once, maps it, and lists its tensors in file
//! order with, for each, where its bytes are: a byte range of the file (borrowed from
//! the map, copied by the writer with `pread`/`write`) or, where the format stores something else
//! (a strided or expanded view, big-endian elements), a tensor to materialise on demand.
//! [`Checkpoint`](crate::Checkpoint) composes one or more of these (a sharded set).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use memmap2::MmapMut;
use safeshift_model::TensorInfo;

use crate::checkpoint::ReadOptions;
use crate::error::{ReadError, ReadErrorKind};
use crate::sniff::{sniff, FileFormat};

/// Which reader a file was read with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputFormat {
    /// A `.safetensors` file.
    Safetensors,
    /// A PyTorch checkpoint (`torch.save`): zip or legacy.
    Torch(safeshift_torch::Format),
}

/// Where one tensor's bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Place {
    /// A byte range of the file: `len` bytes from `offset` (from the file start).
    Mapped { offset: u64, len: u64 },
    /// Built on demand by the format's reader: tensor `index` of a PyTorch file's state
    /// dict, or of its extras.
    Materialised { index: u32, extra: bool, len: u64 },
}

impl Place {
    pub fn len(self) -> u64 {
        match self {
            Place::Mapped { len, .. } | Place::Materialised { len, .. } => len,
        }
    }
}

/// One tensor of a file, as its reader found it.
#[derive(Debug)]
pub(crate) struct Entry {
    pub info: TensorInfo,
    pub place: Place,
    /// Held outside the state dict (supporting arrays, graph tensors): listed apart from
    /// the layout, written back unchanged.
    pub extra: bool,
}

/// One mapped file of a checkpoint.
pub(crate) struct Source {
    pub path: PathBuf,
    pub file: File,
    /// Copy-on-write: a client that hands borrowed bytes to a language with mutable arrays
    /// (the Python package's torch tensors) lets a write there change only this process's
    /// copy of the page, never the file, and never fault.
    pub map: MmapMut,
    pub len: u64,
    pub format: InputFormat,
    /// This file's own `__metadata__` as stored (for a sharded set, the layout holds the union).
    pub metadata: BTreeMap<String, String>,
    /// The PyTorch reader, for tensors it must materialise.
    pub pickle: Option<safeshift_torch::Converted>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("path", &self.path)
            .field("len", &self.len)
            .field("format", &self.format)
            .finish()
    }
}

/// A file opened by its reader: the mapped file, its tensors, the metadata the layout
/// shows (the stored metadata minus what describes the file itself), tied names left out
/// (`(name, kept name)`), and the names its metadata lists as extras, sorted (in a
/// sharded set they may be in another shard).
pub(crate) struct Opened {
    pub source: Source,
    pub entries: Vec<Entry>,
    pub metadata: BTreeMap<String, String>,
    pub aliases: Vec<(String, String)>,
    pub extras: Vec<String>,
}

/// Opens one file with the reader its content calls for; `None` for a sharded index (the
/// caller opens its shards).
pub(crate) fn open(path: &Path, options: &ReadOptions) -> Result<Option<Opened>, ReadError> {
    let io = |action| move |source| ReadError::new(path, ReadErrorKind::Io { action, source });
    let file = File::open(path).map_err(io("open"))?;
    let len = file.metadata().map_err(io("stat"))?.len();
    match sniff(path, &file, len)? {
        FileFormat::Index => Ok(None),
        FileFormat::Safetensors { prefix } => {
            crate::safetensors_file::open(path, file, len, prefix, &options.limits).map(Some)
        }
        FileFormat::Torch => crate::torch_file::open(path, file, len, options).map(Some),
    }
}

/// Maps `file` privately (copy-on-write).
pub(crate) fn map(path: &Path, file: &File) -> Result<MmapMut, ReadError> {
    // SAFETY: the map is private to this process (copy-on-write: writes through it never
    // reach the file); the documented contract is that the file is not modified while
    // open, and `tensor_bytes` re-checks the length before handing out bytes.
    unsafe { memmap2::MmapOptions::new().map_copy(file) }
        .map_err(|source| ReadError::new(path, ReadErrorKind::Io { action: "map the file", source }))
}

impl Source {
    /// The bytes at `place`: borrowed from the map for a byte range, built otherwise.
    pub fn bytes(&self, place: Place) -> Result<Cow<'_, [u8]>, ReadError> {
        match place {
            Place::Mapped { len: 0, .. } => Ok(Cow::Borrowed(&[])),
            Place::Mapped { offset, len } => {
                self.check_unchanged()?;
                // The reader proved offset + len <= the file length, which the map covers.
                Ok(Cow::Borrowed(&self.map[offset as usize..(offset + len) as usize]))
            }
            Place::Materialised { index, extra, .. } => {
                self.check_unchanged()?;
                let pickle = self.pickle.as_ref().expect("materialised tensors come from a PyTorch file");
                Ok(if extra { pickle.extra_data(index as usize) } else { pickle.data(index as usize) })
            }
        }
    }

    /// Reads `buf.len()` bytes at `start` within `place`: with `pread` for a byte range
    /// (a file truncated meanwhile gives an error, never a fault), from the built tensor
    /// otherwise.
    pub fn read(&self, place: Place, start: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        debug_assert!(start + buf.len() as u64 <= place.len());
        match place {
            Place::Mapped { offset, .. } => self.file.read_exact_at(buf, offset + start).map_err(|source| {
                let kind = if source.kind() == std::io::ErrorKind::UnexpectedEof {
                    let found = self.file.metadata().map_or(0, |meta| meta.len());
                    ReadErrorKind::FileChanged { expected: self.len, found }
                } else {
                    ReadErrorKind::Io { action: "read tensor bytes", source }
                };
                ReadError::new(&self.path, kind)
            }),
            Place::Materialised { .. } => {
                let bytes = self.bytes(place)?;
                buf.copy_from_slice(&bytes[start as usize..start as usize + buf.len()]);
                Ok(())
            }
        }
    }

    /// Unmaps this process's whole pages inside `place` (advisory; see
    /// [`Checkpoint::release_pages`](crate::Checkpoint)).
    pub fn release_pages(&self, place: Place) {
        let (offset, len) = match place {
            Place::Mapped { offset, len } => (offset, len),
            // A view the torch reader built: its storage's pages in the reader's own map.
            Place::Materialised { index, extra, .. } => {
                if let Some(pickle) = &self.pickle {
                    match extra {
                        true => pickle.release_extra_data(index as usize),
                        false => pickle.release_data(index as usize),
                    }
                }
                return;
            }
        };
        // SAFETY: sysconf has no preconditions.
        let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
            size if size > 0 => size as u64,
            _ => return,
        };
        let start = offset.next_multiple_of(page);
        let end = (offset + len) / page * page;
        if end <= start {
            return;
        }
        // SAFETY: the map is a private mapping of a file that must not change while open (see
        // the type's docs) and the engine never writes to it: dropped pages are faulted back in
        // with the same bytes, so slices borrowed from the map keep their contents.
        let _ = unsafe {
            self.map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start as usize, (end - start) as usize)
        };
    }

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
