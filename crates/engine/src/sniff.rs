//! Which reader a file needs, from its first bytes; the extension only decides what a
//! broken file is reported as.
//!
//! * safetensors: an 8-byte little-endian header length that fits in the file (then
//!   `{`, which the strict reader checks);
//! * PyTorch: a zip archive (`PK\x03\x04`, or `PK\x05\x06` for an empty one), a pickle
//!   (protocol 2+ starts with `\x80`: the legacy format), or a tar archive (`ustar` at
//!   byte 257, torch < 0.4);
//! * a sharded set's index: JSON, `{` after optional white space.
//!
//! A header length whose low byte happens to be `0x80` (or whose low bytes spell `PK…`)
//! is told apart by byte 8: `{` for safetensors, which neither a zip nor a legacy pickle
//! has there. Only then is a ninth byte read: opening a safetensors file reads its
//! prefix and header and nothing else. A file that is none of these is refused by name,
//! except a `.safetensors` or `.json` file, which gets its strict reader's complaint.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::error::{ReadError, ReadErrorKind};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileFormat {
    /// With the first 8 bytes, already read (zeros past the end of a shorter file).
    Safetensors {
        prefix: [u8; 8],
    },
    Torch,
    Index,
}

/// Bytes read to look further when the first 8 do not decide: enough for a tar header.
const SNIFF_LEN: u64 = 512;

pub(crate) fn sniff(path: &Path, file: &File, len: u64) -> Result<FileFormat, ReadError> {
    let read = |at: u64, count: u64| -> Result<Vec<u8>, ReadError> {
        let mut bytes = vec![0u8; count.min(len.saturating_sub(at)) as usize];
        file.read_exact_at(&mut bytes, at)
            .map_err(|source| ReadError::new(path, ReadErrorKind::Io { action: "read the first bytes", source }))?;
        Ok(bytes)
    };
    let first = read(0, 8)?;
    let mut prefix = [0u8; 8];
    prefix[..first.len()].copy_from_slice(&first);
    let fits = first.len() == 8 && u64::from_le_bytes(prefix) <= len - 8;
    let torch_magic = prefix.starts_with(b"PK\x03\x04") || prefix.starts_with(b"PK\x05\x06") || prefix[0] == 0x80;
    if fits && (!torch_magic || read(8, 1)? == b"{") {
        return Ok(FileFormat::Safetensors { prefix });
    }
    if torch_magic {
        return Ok(FileFormat::Torch);
    }
    let head = read(0, SNIFF_LEN)?;
    if head.get(257..262) == Some(b"ustar") {
        return Ok(FileFormat::Torch);
    }
    if head.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'{') {
        return Ok(FileFormat::Index);
    }
    let named = |extension: &str| path.extension().is_some_and(|ext| ext == extension);
    if named("safetensors") {
        Ok(FileFormat::Safetensors { prefix })
    } else if named("json") {
        Ok(FileFormat::Index)
    } else {
        Err(ReadError::new(path, ReadErrorKind::UnknownFormat))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sniff_bytes(name: &str, bytes: &[u8]) -> Result<FileFormat, ReadError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        sniff(&path, &File::open(&path).unwrap(), bytes.len() as u64)
    }

    fn safetensors(header: &[u8]) -> Vec<u8> {
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header);
        bytes
    }

    fn kind(result: Result<FileFormat, ReadError>) -> &'static str {
        match result {
            Ok(FileFormat::Safetensors { .. }) => "safetensors",
            Ok(FileFormat::Torch) => "torch",
            Ok(FileFormat::Index) => "index",
            Err(err) if matches!(err.kind, ReadErrorKind::UnknownFormat) => "unknown",
            Err(err) => panic!("{err}"),
        }
    }

    #[test]
    fn formats_are_told_by_content_not_name() {
        assert_eq!(kind(sniff_bytes("m.bin", &safetensors(b"{}"))), "safetensors");
        // A header of 0x180 bytes: the length's low byte is a pickle's first byte.
        let mut header = br#"{"__metadata__":{"k":""#.to_vec();
        header.resize(0x180 - 3, b'x');
        header.extend_from_slice(b"\"}}");
        let tricky = safetensors(&header);
        assert_eq!(tricky[0], 0x80);
        assert_eq!(kind(sniff_bytes("m.pt", &tricky)), "safetensors");
        let zip = b"PK\x03\x04\x00\x00\x08\x08\x00\x00\x00\x00";
        assert_eq!(kind(sniff_bytes("m.safetensors", zip)), "torch");
        let legacy = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19";
        assert_eq!(kind(sniff_bytes("m.safetensors", legacy)), "torch");
        let mut tar = vec![b'x'; 10240];
        tar[257..262].copy_from_slice(b"ustar");
        assert_eq!(kind(sniff_bytes("m.pt", &tar)), "torch");
        assert_eq!(kind(sniff_bytes("m.txt", b"\n  {\"weight_map\": {}}")), "index");
        // A length past the end is not safetensors, whatever follows.
        let mut past = safetensors(b"{}");
        past[0] = 200;
        assert_eq!(kind(sniff_bytes("m.bin", &past)), "unknown");
    }

    #[test]
    fn files_of_no_known_format_are_named() {
        let err = sniff_bytes("notes.bin", b"just some text, not a model").unwrap_err();
        assert!(matches!(err.kind, ReadErrorKind::UnknownFormat));
        assert!(err.to_string().contains("notes.bin"), "{err}");
        assert_eq!(kind(sniff_bytes("tiny.pt", b"abc")), "unknown");
        // Named .safetensors or .json, they get the strict reader's own error instead.
        assert_eq!(kind(sniff_bytes("broken.safetensors", b"just some text, not a model")), "safetensors");
        assert_eq!(kind(sniff_bytes("broken.json", b"[1, 2]")), "index");
    }
}
