//! The provenance stamp an output carries (which input it was made from), and the
//! up-to-date test a rerun uses to skip outputs that would come out the same.

use std::io::Read as _;
use std::path::Path;

use safeshift_engine::Checkpoint;
use safeshift_model::keys::{SCHEMA_KEY, SOURCE_KEY};
use serde_json::json;
use sha2::{Digest, Sha256};

/// How many leading bytes of an input are hashed: the header and the first tensors.
const HEAD_BYTES: usize = 1 << 20;

/// Identifies an input cheaply, as recorded under [`SOURCE_KEY`]: `{"file": …, "bytes": …,
/// "mtime_ns": …, "head_sha256": …}`, the file name, size, modification time (nanoseconds
/// since the epoch, as a string; null where the file system has none) and the SHA-256 of
/// its first MiB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceStamp(serde_json::Value);

impl SourceStamp {
    /// Stamps the file at `path` (reads at most its first MiB).
    pub fn of(path: &Path) -> std::io::Result<SourceStamp> {
        let mut file = std::fs::File::open(path)?;
        let stat = file.metadata()?;
        // The modification time catches a rewrite that keeps the size and the first MiB (a
        // fine-tune of the later layers); a copy that resets it only costs a redo.
        let mtime_ns = stat
            .modified()
            .ok()
            .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|since| since.as_nanos().to_string());
        let mut head = vec![0u8; HEAD_BYTES];
        let mut filled = 0;
        while filled < head.len() {
            let read = file.read(&mut head[filled..])?;
            if read == 0 {
                break;
            }
            filled += read;
        }
        let hex: String = Sha256::digest(&head[..filled]).iter().map(|byte| format!("{byte:02x}")).collect();
        let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        Ok(SourceStamp(json!({ "file": name, "bytes": stat.len(), "mtime_ns": mtime_ns, "head_sha256": hex })))
    }

    /// The stamp as the metadata value written under [`SOURCE_KEY`].
    pub fn to_metadata(&self) -> String {
        self.0.to_string()
    }

    /// Whether `output` exists, is at `target` (`family@version`), and was made from the
    /// input with this stamp. An unreadable output is not up to date.
    pub fn is_recorded_in(&self, output: &Path, target: &str) -> bool {
        let Ok(checkpoint) = Checkpoint::open(output) else { return false };
        let metadata = &checkpoint.layout().metadata;
        let recorded: Option<serde_json::Value> =
            metadata.get(SOURCE_KEY).and_then(|text| serde_json::from_str(text).ok());
        recorded.as_ref() == Some(&self.0) && metadata.get(SCHEMA_KEY).map(String::as_str) == Some(target)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use safeshift_engine::{write, OutputTensor, TensorSource, WriteOptions};
    use safeshift_model::DType;

    use super::*;

    fn write_file(path: &Path, value: u8, metadata: BTreeMap<String, String>) {
        let tensor = OutputTensor {
            name: "w".into(),
            dtype: DType::U8,
            shape: vec![4],
            source: TensorSource::Bytes(vec![value; 4].into()),
        };
        write(path, vec![tensor], &WriteOptions { metadata, ..WriteOptions::default() }).unwrap();
    }

    #[test]
    fn a_stamp_names_the_input_and_hashes_its_head() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.bin");
        std::fs::write(&input, b"abc").unwrap();
        let stamp = SourceStamp::of(&input).unwrap();
        let value: serde_json::Value = serde_json::from_str(&stamp.to_metadata()).unwrap();
        assert_eq!(value["file"], "in.bin");
        assert_eq!(value["bytes"], 3);
        // SHA-256 of "abc" (FIPS 180-2 test vector), not computed by the code under test.
        assert_eq!(value["head_sha256"], "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn an_output_is_up_to_date_only_with_the_same_stamp_and_target() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.safetensors");
        write_file(&input, 1, BTreeMap::new());
        let stamp = SourceStamp::of(&input).unwrap();
        let output = dir.path().join("out.safetensors");
        assert!(!stamp.is_recorded_in(&output, "t@1.0.0"), "no output yet");
        let metadata = BTreeMap::from([
            (SOURCE_KEY.to_owned(), stamp.to_metadata()),
            (SCHEMA_KEY.to_owned(), "t@1.0.0".to_owned()),
        ]);
        write_file(&output, 1, metadata);
        assert!(stamp.is_recorded_in(&output, "t@1.0.0"));
        assert!(!stamp.is_recorded_in(&output, "t@2.0.0"), "another target");
        // The input rewritten with other values: another stamp.
        write_file(&input, 2, BTreeMap::new());
        assert!(!SourceStamp::of(&input).unwrap().is_recorded_in(&output, "t@1.0.0"));
    }
}
