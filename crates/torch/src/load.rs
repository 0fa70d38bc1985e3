//! Opening a checkpoint's container (zip or legacy) and running its pickles.

use std::collections::HashMap;
use std::ops::Range;
use std::rc::Rc;

use crate::error::ErrorKind;
use crate::machine::{Machine, Mode, RunError, Use};
use crate::value::{Heap, StorageRef, Value};
use crate::zip::{self, ZipArchive};
use crate::Limits;

/// The two container formats `torch.save` has written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// The zip format (torch ≥ 1.6): `<dir>/data.pkl` plus one member per storage.
    Zip {
        /// The archive's top directory (`archive`, or the file name minus its extension).
        dir: String,
    },
    /// The legacy format (torch < 1.6, or `_use_new_zipfile_serialization=False`): five
    /// pickles back to back, then the raw storages.
    Legacy,
    /// A plain pickle that is not a torch checkpoint (no legacy magic number): `scan`
    /// reports its globals, `open` refuses it.
    Pickle,
}

/// A checkpoint whose pickles have run.
pub(crate) struct Loaded<'a> {
    pub format: Format,
    pub heap: Heap,
    pub top: Value,
    pub zip: Option<ZipArchive<'a>>,
    /// Legacy storages: key → byte range (zip storages are members).
    legacy_storages: HashMap<String, Range<usize>>,
    pub big_endian: bool,
}

/// The magic number the legacy format starts with, as LONG1 little-endian bytes.
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const LEGACY_PROTOCOL_VERSION: i64 = 1001;

/// Finds the container, runs its pickles in `mode`, and records every use of a global in
/// `uses` (filled even when an error stops the run, for `scan`).
pub(crate) fn load<'a>(
    data: &'a [u8],
    mode: Mode,
    limits: &Limits,
    verify_crc: bool,
    uses: &mut Vec<(String, Use)>,
) -> Result<Loaded<'a>, ErrorKind> {
    if zip::looks_like_zip(data) {
        return load_zip(data, mode, limits, verify_crc, uses);
    }
    if data.first() == Some(&0x80) {
        return load_legacy(data, mode, limits, uses);
    }
    if data.len() > 262 && &data[257..262] == b"ustar" {
        return Err(ErrorKind::NotACheckpoint("a tar checkpoint (torch < 0.4); this format is not supported".into()));
    }
    Err(ErrorKind::NotACheckpoint("neither a zip archive nor a pickle".into()))
}

fn load_zip<'a>(
    data: &'a [u8],
    mode: Mode,
    limits: &Limits,
    verify_crc: bool,
    uses: &mut Vec<(String, Use)>,
) -> Result<Loaded<'a>, ErrorKind> {
    let archive = ZipArchive::parse(data, limits)?;
    let pickles: Vec<&zip::Member> = archive
        .members()
        .iter()
        .filter(|member| member.name.strip_suffix("/data.pkl").is_some_and(|dir| !dir.is_empty() && !dir.contains('/')))
        .collect();
    let member = match pickles.as_slice() {
        [member] => (*member).clone(),
        [] => {
            let torchscript = archive.members().iter().any(|m| m.name.ends_with("/constants.pkl"));
            return Err(ErrorKind::NotACheckpoint(if torchscript {
                "a TorchScript archive (no `<dir>/data.pkl`); export a state dict instead".into()
            } else {
                "a zip archive without a `<dir>/data.pkl` member".into()
            }));
        }
        several => {
            return Err(ErrorKind::NotACheckpoint(format!(
                "{} `<dir>/data.pkl` members; which one is the checkpoint is ambiguous",
                several.len()
            )))
        }
    };
    let dir = member.name.trim_end_matches("/data.pkl").to_string();
    let pickle = archive.bytes(&member, verify_crc)?;
    let big_endian = match archive.member(&format!("{dir}/byteorder")) {
        None => false,
        Some(byteorder) => match archive.bytes(byteorder, verify_crc)? {
            b"little" => false,
            b"big" => true,
            other => {
                return Err(ErrorKind::NotACheckpoint(format!(
                    "`{dir}/byteorder` says `{}`",
                    String::from_utf8_lossy(&other[..other.len().min(16)])
                )))
            }
        },
    };
    let mut heap = Heap::new(limits.max_objects);
    let mut machine = Machine::new(&mut heap, limits, mode);
    let result = machine.run(pickle, &member.name);
    uses.extend(machine.uses.drain(..).map(|u| (member.name.clone(), u)));
    let (top, _) = result.map_err(|err| pickle_error(&member.name, err))?;
    Ok(Loaded {
        format: Format::Zip { dir },
        heap,
        top,
        zip: Some(archive),
        legacy_storages: HashMap::new(),
        big_endian,
    })
}

fn load_legacy<'a>(
    data: &'a [u8],
    mode: Mode,
    limits: &Limits,
    uses: &mut Vec<(String, Use)>,
) -> Result<Loaded<'a>, ErrorKind> {
    let mut heap = Heap::new(limits.max_objects);
    let mut machine = Machine::new(&mut heap, limits, mode);
    let mut pos = 0usize;
    let mut values = Vec::with_capacity(5);
    let names = [
        "pickle 1 (magic number)",
        "pickle 2 (protocol)",
        "pickle 3 (system info)",
        "pickle 4 (object)",
        "pickle 5 (storage keys)",
    ];
    for name in names {
        let result = machine.run(&data[pos..], name);
        uses.extend(machine.uses.drain(..).map(|u| (name.to_string(), u)));
        let (value, consumed) =
            result.map_err(|err| pickle_error(name, RunError { offset: err.offset + pos as u64, ..err }))?;
        pos += consumed;
        if values.is_empty() && !matches!(&value, Value::BigInt(magic) if **magic == LEGACY_MAGIC) {
            // Not torch's legacy format: an ordinary pickle, which scan still reports on.
            drop(machine);
            if mode == Mode::Scan {
                let format = Format::Pickle;
                return Ok(Loaded {
                    format,
                    heap,
                    top: value,
                    zip: None,
                    legacy_storages: HashMap::new(),
                    big_endian: false,
                });
            }
            return Err(ErrorKind::NotACheckpoint(
                "a pickle without torch's magic number; not a torch.save checkpoint".into(),
            ));
        }
        values.push(value);
    }
    let storages = std::mem::take(&mut machine.storages);
    drop(machine);
    let legacy = |why: String| ErrorKind::NotACheckpoint(format!("legacy format: {why}"));
    if !matches!(&values[0], Value::BigInt(magic) if **magic == LEGACY_MAGIC) {
        return Err(legacy("wrong magic number".into()));
    }
    if !matches!(values[1], Value::Int(LEGACY_PROTOCOL_VERSION)) {
        return Err(legacy("unknown protocol version".into()));
    }
    let mut big_endian = false;
    if mode == Mode::Convert {
        let info = heap.dict(&values[2]).ok_or_else(|| legacy("system info is not a dict".into()))?;
        big_endian = match info.get_str("little_endian") {
            Some(Value::Bool(little)) => !little,
            _ => return Err(legacy("system info lacks `little_endian`".into())),
        };
    }
    let top = values[3].clone();
    let mut legacy_storages = HashMap::new();
    if mode == Mode::Convert {
        let keys = heap.sequence(&values[4]).ok_or_else(|| legacy("storage key list is not a list".into()))?;
        let by_key: HashMap<&str, &Rc<StorageRef>> = storages.iter().map(|s| (&*s.key, s)).collect();
        for key in keys {
            let Value::Str(key) = key else {
                return Err(legacy("a storage key is not a string".into()));
            };
            let storage = by_key.get(&**key).ok_or_else(|| {
                legacy(format!("storage `{key}` is listed but no tensor names it; its size is unknown"))
            })?;
            let header = data.get(pos..pos + 8).ok_or_else(|| legacy(format!("storage `{key}` is truncated")))?;
            let header: [u8; 8] = header.try_into().expect("8 bytes");
            let numel = if big_endian { u64::from_be_bytes(header) } else { u64::from_le_bytes(header) };
            if numel != storage.numel {
                return Err(legacy(format!("storage `{key}` has {numel} elements, the pickle says {}", storage.numel)));
            }
            let len = storage
                .byte_len()
                .filter(|&len| len <= (data.len() - pos - 8) as u64)
                .ok_or_else(|| legacy(format!("storage `{key}` declares more bytes than the file holds")))?;
            let start = pos + 8;
            legacy_storages.insert(key.to_string(), start..start + len as usize);
            pos = start + len as usize;
        }
    }
    Ok(Loaded { format: Format::Legacy, heap, top, zip: None, legacy_storages, big_endian })
}

impl Loaded<'_> {
    /// The byte range of the storage `key`, checked against what its persistent id claims.
    pub fn storage_range(&self, storage: &StorageRef, verify_crc: bool) -> Result<Range<usize>, String> {
        let expected = storage.byte_len().ok_or("its size overflows")?;
        let range = match &self.format {
            Format::Legacy | Format::Pickle => self
                .legacy_storages
                .get(&*storage.key)
                .cloned()
                .ok_or_else(|| "not in the file's storage list".to_string())?,
            Format::Zip { dir } => {
                let archive = self.zip.as_ref().expect("zip format has an archive");
                let name = format!("{dir}/data/{}", storage.key);
                let member =
                    archive.member(&name).ok_or_else(|| format!("member `{name}` is missing from the archive"))?;
                let bytes = archive.bytes(member, verify_crc).map_err(|err| err.to_string())?;
                let start = member.data_offset as usize;
                debug_assert_eq!(bytes.len() as u64, member.size);
                start..start + bytes.len()
            }
        };
        if range.len() as u64 != expected {
            let element = match storage.dtype {
                Some(dtype) => format!("{} × {}", storage.numel, dtype.size().unwrap_or(0)),
                None => format!("{} × 1", storage.numel),
            };
            return Err(format!("has {} bytes, expected {element} = {expected}", range.len()));
        }
        Ok(range)
    }
}

fn pickle_error(member: &str, err: RunError) -> ErrorKind {
    ErrorKind::Pickle { member: member.to_string(), offset: err.offset, reason: err.error }
}
