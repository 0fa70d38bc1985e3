//! Deep verification: read every byte of an open checkpoint and check what can be
//! checked beyond the header (recorded checksums, boolean values, the index's size).

use std::path::PathBuf;

use safeshift_model::DType;
use sha2::{Digest, Sha256};

use crate::checkpoint::Checkpoint;
use crate::error::ReadError;
use crate::writer::{hex, SHA256_METADATA_KEY};

/// What [`verify`] found.
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Tensors read.
    pub tensors: usize,
    /// Tensor bytes read.
    pub bytes: u64,
    /// Tensors whose recorded SHA-256 matched.
    pub checksums_matched: usize,
    /// Problems, in file order. Empty for a sound checkpoint.
    pub problems: Vec<Problem>,
}

/// One problem found by [`verify`].
#[derive(Debug)]
pub struct Problem {
    /// The file.
    pub path: PathBuf,
    /// The tensor, when the problem is about one.
    pub tensor: Option<String>,
    /// What is wrong.
    pub kind: ProblemKind,
}

/// What is wrong, beyond what opening the checkpoint already checks.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProblemKind {
    /// The bytes' SHA-256 differs from the one recorded in the metadata.
    #[error("SHA-256 is {found}, the metadata records {expected}")]
    ChecksumMismatch {
        /// The recorded digest.
        expected: String,
        /// The digest of the bytes.
        found: String,
    },
    /// The checksum record is not a JSON object of names to 64 hex digits.
    #[error("`{SHA256_METADATA_KEY}` is malformed: {message}")]
    BadChecksumRecord {
        /// What is wrong.
        message: String,
    },
    /// The checksum record names a tensor this file does not hold.
    #[error("`{SHA256_METADATA_KEY}` records a checksum for a tensor this file does not hold")]
    ChecksumOfUnknownTensor,
    /// A `BOOL` tensor holds a byte other than 0 or 1.
    #[error("boolean byte {value} at element {element}")]
    BoolOutOfRange {
        /// The element index.
        element: u64,
        /// The byte.
        value: u8,
    },
    /// The index's `metadata.total_size` differs from the tensors' total byte count.
    #[error("the index records `total_size` {recorded}, the tensors hold {actual} bytes")]
    TotalSizeMismatch {
        /// The recorded size.
        recorded: u64,
        /// The tensors' total byte length.
        actual: u64,
    },
}

/// Reads every byte of every tensor (with `pread`, so a file truncated meanwhile gives an
/// error rather than a fault) and checks recorded checksums and boolean values. An I/O
/// error is an `Err`; everything else found wrong is a [`Problem`] in the report.
pub fn verify(checkpoint: &Checkpoint) -> Result<VerifyReport, ReadError> {
    const CHUNK: usize = 8 << 20;
    let mut report = VerifyReport::default();
    let largest = checkpoint
        .layout()
        .tensors
        .iter()
        .chain(checkpoint.extras())
        .filter_map(|info| info.byte_len())
        .max()
        .unwrap_or(0);
    let mut buffer = vec![0u8; largest.min(CHUNK as u64) as usize];
    for (path, metadata) in checkpoint.file_metadata() {
        let mut recorded = match metadata.get(SHA256_METADATA_KEY).map(|text| parse_record(text)) {
            None => Default::default(),
            Some(Ok(recorded)) => recorded,
            Some(Err(message)) => {
                let kind = ProblemKind::BadChecksumRecord { message };
                report.problems.push(Problem { path: path.to_owned(), tensor: None, kind });
                Default::default()
            }
        };
        for info in checkpoint.layout().tensors.iter().chain(checkpoint.extras()) {
            if checkpoint.file_of(&info.name) != Some(path) {
                continue;
            }
            let index = checkpoint.index_of(&info.name).expect("listed tensors have an index");
            let len = checkpoint.tensor_len(index);
            let expected = recorded.remove(&info.name);
            let mut hasher = expected.is_some().then(Sha256::new);
            let mut done = 0u64;
            let mut first_bad_bool = None;
            while done < len {
                let chunk = &mut buffer[..(len - done).min(CHUNK as u64) as usize];
                checkpoint.read_range(index, done, chunk)?;
                if let Some(hasher) = hasher.as_mut() {
                    hasher.update(&*chunk);
                }
                if info.dtype == DType::Bool && first_bad_bool.is_none() {
                    first_bad_bool = chunk.iter().position(|&byte| byte > 1).map(|at| (done + at as u64, chunk[at]));
                }
                done += chunk.len() as u64;
            }
            report.tensors += 1;
            report.bytes += len;
            if let Some((element, value)) = first_bad_bool {
                let kind = ProblemKind::BoolOutOfRange { element, value };
                report.problems.push(Problem { path: path.to_owned(), tensor: Some(info.name.clone()), kind });
            }
            if let (Some(expected), Some(hasher)) = (expected, hasher) {
                let found = hex(&hasher.finalize());
                if found == expected {
                    report.checksums_matched += 1;
                } else {
                    let kind = ProblemKind::ChecksumMismatch { expected, found };
                    report.problems.push(Problem { path: path.to_owned(), tensor: Some(info.name.clone()), kind });
                }
            }
        }
        for (tensor, _) in recorded {
            let kind = ProblemKind::ChecksumOfUnknownTensor;
            report.problems.push(Problem { path: path.to_owned(), tensor: Some(tensor), kind });
        }
    }
    let recorded_total = checkpoint.index_metadata().and_then(|meta| meta.get("total_size")).and_then(|v| v.as_u64());
    if let Some(recorded) = recorded_total.filter(|&recorded| recorded != report.bytes) {
        let kind = ProblemKind::TotalSizeMismatch { recorded, actual: report.bytes };
        report.problems.push(Problem { path: checkpoint.path().to_owned(), tensor: None, kind });
    }
    Ok(report)
}

/// Parses a checksum record: a JSON object of names to 64 lowercase hex digits.
fn parse_record(text: &str) -> Result<std::collections::HashMap<String, String>, String> {
    let map: std::collections::HashMap<String, String> = serde_json::from_str(text).map_err(|err| err.to_string())?;
    if let Some((name, _)) = map
        .iter()
        .find(|(_, digest)| digest.len() != 64 || !digest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
    {
        return Err(format!("the digest of `{name}` is not 64 lowercase hex digits"));
    }
    Ok(map)
}
