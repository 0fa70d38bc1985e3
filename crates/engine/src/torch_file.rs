//! The PyTorch reader: `safeshift-torch` reads the pickle (running nothing) and says where
//! each tensor's storage is; torch stores storages uncompressed, so a tensor whose view
//! is contiguous (and little-endian) is a byte range of the file, borrowed like a
//! safetensors tensor. Other views are materialised by the torch reader on demand.

use std::fs::File;
use std::path::Path;

use safeshift_model::TensorInfo;

use crate::checkpoint::ReadOptions;
use crate::error::{ReadError, ReadErrorKind};
use crate::source::{self, Entry, InputFormat, Opened, Place, Source};

pub(crate) fn open(path: &Path, file: File, len: u64, options: &ReadOptions) -> Result<Opened, ReadError> {
    let converted = safeshift_torch::open_file(path, &file, &options.pickle)
        .map_err(|err| ReadError::new(path, ReadErrorKind::Torch(err.kind)))?;
    let map = source::map(path, &file)?;
    if converted.tensors().len() + converted.extras().len() > options.limits.max_tensors {
        return Err(ReadError::new(path, ReadErrorKind::TooManyTensors { limit: options.limits.max_tensors }));
    }
    let listed = [(converted.tensors(), false), (converted.extras(), true)];
    let mut entries = Vec::with_capacity(converted.tensors().len() + converted.extras().len());
    for (tensors, extra) in listed {
        for (index, tensor) in tensors.iter().enumerate() {
            let info = TensorInfo { name: tensor.name.clone(), dtype: tensor.dtype, shape: tensor.shape.clone() };
            // The torch reader checked that every view fits its storage and has whole bytes.
            let len = info.byte_len().expect("torch tensors have whole-byte dtypes and checked shapes");
            let place = match tensor.file_range() {
                Some(range) => Place::Mapped { offset: range.start, len: range.end - range.start },
                None => Place::Materialised { index: index as u32, extra, len },
            };
            entries.push(Entry { info, place, extra });
        }
    }
    let aliases = converted.aliases().iter().map(|alias| (alias.name.clone(), alias.kept.clone())).collect();
    let mut metadata = converted.metadata().clone();
    // The extras are listed apart; the record only describes a written file.
    metadata.remove(crate::EXTRAS_METADATA_KEY);
    let source = Source {
        path: path.to_owned(),
        file,
        map,
        len,
        format: InputFormat::Torch(converted.format().clone()),
        metadata: converted.metadata().clone(),
        pickle: Some(converted),
    };
    Ok(Opened { source, entries, metadata, aliases, extras: Vec::new() })
}
