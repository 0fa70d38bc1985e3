//! The safetensors reader: the length prefix and header read with `pread` and validated
//! strictly, the file mapped without touching its data pages.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use safeshift_model::Layout;

use crate::error::{ReadError, ReadErrorKind};
use crate::header::{self, Limits};
use crate::source::{self, Entry, InputFormat, Opened, Place, Source};
use crate::writer::EXTRAS_METADATA_KEY;

/// Length of the little-endian `u64` header length that starts every file.
const PREFIX_LEN: u64 = 8;

/// Opens a safetensors file. Tensors named in `__metadata__["safeshift.extras"]` are
/// set aside as extras, and that key leaves the layout's metadata (it describes the file,
/// not the model). `prefix` is the file's first 8 bytes, which sniffing read.
pub(crate) fn open(path: &Path, file: File, len: u64, prefix: [u8; 8], limits: &Limits) -> Result<Opened, ReadError> {
    let err = |kind| ReadError::new(path, kind);
    let io = |action| move |source| ReadError::new(path, ReadErrorKind::Io { action, source });
    if len < PREFIX_LEN {
        return Err(err(ReadErrorKind::TooShort { len }));
    }
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
    let header = header::parse(&json, len - data_start, limits).map_err(err)?;
    let mut metadata = header.metadata.clone();
    let extras = match metadata.remove(EXTRAS_METADATA_KEY) {
        Some(text) => extra_names(&text).map_err(err)?,
        None => Vec::new(),
    };
    let entries: Vec<Entry> = header
        .tensors
        .into_iter()
        .zip(&header.offsets)
        .map(|(info, &(start, end))| Entry {
            extra: extras.binary_search(&info.name).is_ok(),
            info,
            place: Place::Mapped { offset: data_start + start, len: end - start },
        })
        .collect();
    let map = source::map(path, &file)?;
    let source = Source {
        path: path.to_owned(),
        file,
        map,
        len,
        format: InputFormat::Safetensors,
        metadata: header.metadata,
        pickle: None,
    };
    // Names listed as extras but held by another shard are matched when the set is assembled.
    Ok(Opened { source, entries, metadata, aliases: Vec::new(), extras })
}

/// The names in a `safeshift.extras` record (a JSON array of strings), sorted.
fn extra_names(text: &str) -> Result<Vec<String>, ReadErrorKind> {
    let mut names: Vec<String> = serde_json::from_str(text).map_err(|err| ReadErrorKind::BadExtras {
        message: format!("`{EXTRAS_METADATA_KEY}` is not a JSON array of tensor names: {err}"),
    })?;
    names.sort_unstable();
    Ok(names)
}

/// Validates a whole single-file checkpoint held in memory exactly as
/// [`Checkpoint::open_with`](crate::Checkpoint::open_with) validates a file (length
/// prefix, header, data section length) and returns its layout. An entry point for
/// fuzzing the header parser without a file per input; not a stable API.
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
