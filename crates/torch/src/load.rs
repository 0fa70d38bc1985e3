//! Opening a checkpoint's container (zip, TorchScript, tar or legacy) as `torch.load` would,
//! and running its pickles.

use std::collections::HashMap;
use std::ops::Range;
use std::rc::Rc;

use crate::error::ErrorKind;
use crate::machine::{Machine, Mode, RunError, Use};
use crate::opcodes;
use crate::tar;
use crate::value::{Heap, StorageRef, Value};
use crate::zip::{self, ZipArchive};
use crate::Limits;

/// The container formats `torch.load` reads, in the order it tries them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// The zip format (torch ≥ 1.6): `<dir>/data.pkl` plus one member per storage.
    Zip {
        /// The archive's top directory (`archive`, or the file name minus its extension).
        dir: String,
    },
    /// A TorchScript archive (`torch.jit.save`): a zip with `<dir>/constants.pkl`, which
    /// `torch.load` hands to `torch.jit.load`. `scan` reads every pickle in it; `open`
    /// refuses it.
    TorchScript {
        /// The archive's top directory.
        dir: String,
    },
    /// The tar format of torch < 0.4 (any file whose first block `tarfile` accepts):
    /// `torch.load` unpickles its `storages`, `tensors` and `pickle` members. Not read:
    /// `scan` flags it, `open` refuses it.
    Tar,
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

/// Why `open` refuses a tar checkpoint, and `scan` flags one.
pub(crate) const TAR_REFUSAL: &str = "a tar-format checkpoint (torch < 0.4): torch.load unpickles its `storages`, `tensors` and `pickle` members, which safeshift does not read";

/// Finds the container as `torch.load` does (zip by its first four bytes, then whatever
/// `tarfile` accepts, then the legacy stream), runs its pickles in `mode`, and records every
/// use of a global in `uses` (filled even when an error stops the run, for `scan`).
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
    if tar::is_tar(data) {
        return Err(ErrorKind::NotACheckpoint(TAR_REFUSAL.into()));
    }
    if data.first().is_none_or(|&byte| !opcodes::is_known(byte)) {
        return Err(ErrorKind::NotACheckpoint("neither a zip archive, a tar archive nor a pickle".into()));
    }
    match load_legacy(data, mode, limits, uses) {
        Err(err @ ErrorKind::Pickle { .. }) if mode == Mode::Convert && !is_legacy_magic(data) => {
            Err(ErrorKind::NotACheckpoint(format!("neither a zip archive, a tar archive nor a torch pickle ({err})")))
        }
        other => other,
    }
}

/// Whether `data` starts with the legacy format's magic-number pickle (PROTO 2, LONG1).
fn is_legacy_magic(data: &[u8]) -> bool {
    data.get(2..4) == Some(&[0x8a, 0x0a][..]) && data.get(4..14) == Some(&LEGACY_MAGIC[..])
}

fn load_zip<'a>(
    data: &'a [u8],
    mode: Mode,
    limits: &Limits,
    verify_crc: bool,
    uses: &mut Vec<(String, Use)>,
) -> Result<Loaded<'a>, ErrorKind> {
    let archive = ZipArchive::parse(data, limits)?;
    // torch's reader takes the archive's directory from the first member's name, and refuses
    // an archive with a member outside it (`PyTorchStreamReader`, `getAllRecords`).
    let first = archive.members().first().ok_or_else(|| ErrorKind::NotACheckpoint("an empty zip archive".into()))?;
    let dir = match first.name.split_once('/') {
        Some((dir, _)) => dir.to_string(),
        None => {
            return Err(ErrorKind::NotACheckpoint(format!(
                "the zip archive's first member `{}` is not in a directory",
                first.name
            )))
        }
    };
    let prefix = format!("{dir}/");
    if let Some(outside) = archive.members().iter().find(|m| !m.name.starts_with(&prefix)) {
        return Err(ErrorKind::NotACheckpoint(format!(
            "member `{}` is outside the archive's directory `{dir}`; torch's reader refuses such archives",
            outside.name
        )));
    }
    let mut heap = Heap::new(limits, data.len());
    if archive.member(&format!("{dir}/constants.pkl")).is_some() {
        if mode == Mode::Convert {
            return Err(ErrorKind::NotACheckpoint(format!(
                "a TorchScript archive (`{dir}/constants.pkl`): torch.load hands it to torch.jit.load, which runs the TorchScript code it holds; save a state dict instead"
            )));
        }
        // torch.jit.load unpickles constants.pkl, data.pkl and others: scan them all.
        for member in archive.members().iter().filter(|m| m.name.ends_with(".pkl")) {
            let pickle = archive.bytes(member, verify_crc)?;
            let mut machine = Machine::new(&mut heap, limits, mode);
            let result = machine.run(pickle, &member.name);
            uses.extend(machine.uses.drain(..).map(|u| (member.name.clone(), u)));
            result.map_err(|err| pickle_error(&member.name, err))?;
        }
        let format = Format::TorchScript { dir };
        let top = Value::None;
        return Ok(Loaded {
            format,
            heap,
            top,
            zip: Some(archive),
            legacy_storages: HashMap::new(),
            big_endian: false,
        });
    }
    let member = archive
        .member(&format!("{dir}/data.pkl"))
        .cloned()
        .ok_or_else(|| {
            // `torch.export.save` writes `archive_format` = `pt2`: a program, its weights in
            // files described by a JSON config, not a pickled object.
            let pt2 = archive
                .member(&format!("{dir}/archive_format"))
                .and_then(|member| archive.bytes(member, verify_crc).ok())
                .is_some_and(|format| format == b"pt2");
            ErrorKind::NotACheckpoint(if pt2 {
                format!("a torch.export program (`{dir}/archive_format` is `pt2`), not a torch.save checkpoint; save `exported.state_dict` instead")
            } else {
                format!("a zip archive without `{dir}/data.pkl`")
            })
        })?;
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
    let mut heap = Heap::new(limits, data.len());
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
            Format::Legacy | Format::Pickle | Format::Tar | Format::TorchScript { .. } => self
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

/// The container of `data`, as far as it can be told without running a pickle (for `scan`'s
/// report when a pickle stops early).
pub(crate) fn container(data: &[u8], limits: &Limits, member: &str) -> Format {
    if zip::looks_like_zip(data) {
        let dir = member.split('/').next().unwrap_or_default().to_string();
        let torchscript = ZipArchive::parse(data, limits)
            .is_ok_and(|archive| archive.member(&format!("{dir}/constants.pkl")).is_some());
        return if torchscript { Format::TorchScript { dir } } else { Format::Zip { dir } };
    }
    if tar::is_tar(data) {
        Format::Tar
    } else if member.starts_with("pickle 1") {
        Format::Pickle
    } else {
        Format::Legacy
    }
}

fn pickle_error(member: &str, err: RunError) -> ErrorKind {
    ErrorKind::Pickle { member: member.to_string(), offset: err.offset, reason: err.error }
}
