//! Where a batch writes each output: the output's name, the in-place backup's name, and
//! the check that no two inputs of a run would write the same output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{BatchError, Input};

/// The output name of an input, relative like it: `model.pt` → `model.safetensors`;
/// `model.safetensors.index.json` and `pytorch_model.bin.index.json` →
/// `model.safetensors`, `pytorch_model.safetensors` (a sharded set is written as one file).
pub fn output_name(relative: &Path) -> PathBuf {
    let name = relative.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let stem = name
        .strip_suffix(".safetensors.index.json")
        .or_else(|| name.strip_suffix(".bin.index.json"))
        .or_else(|| name.strip_suffix(".safetensors"))
        .or_else(|| [".pt", ".pth", ".bin", ".ckpt"].iter().find_map(|ext| name.strip_suffix(ext)))
        .unwrap_or(&name);
    relative.with_file_name(format!("{stem}.safetensors"))
}

/// Where an in-place upgrade keeps the original: `NAME.bak` beside it.
pub fn backup_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".bak");
    path.with_file_name(name)
}

/// Refuses inputs whose outputs would collide in `dir` (`model.pt` and `model.safetensors`
/// in one folder): they would overwrite each other, and every rerun would redo both.
pub fn check_distinct_outputs(dir: &Path, inputs: &[Input]) -> Result<(), BatchError> {
    let mut seen: BTreeMap<PathBuf, &Path> = BTreeMap::new();
    for input in inputs {
        let output = dir.join(output_name(&input.relative));
        if let Some(first) = seen.insert(output.clone(), &input.path) {
            return Err(BatchError::Collision { first: first.to_owned(), second: input.path.clone(), output });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_names_become_safetensors() {
        assert_eq!(output_name(Path::new("a/model.pt")), Path::new("a/model.safetensors"));
        assert_eq!(output_name(Path::new("a/model.ckpt")), Path::new("a/model.safetensors"));
        assert_eq!(output_name(Path::new("m.safetensors.index.json")), Path::new("m.safetensors"));
        assert_eq!(output_name(Path::new("x.safetensors")), Path::new("x.safetensors"));
        assert_eq!(output_name(Path::new("pytorch_model.bin.index.json")), Path::new("pytorch_model.safetensors"));
    }

    #[test]
    fn backups_sit_beside_the_original() {
        assert_eq!(backup_path(Path::new("d/m.safetensors")), Path::new("d/m.safetensors.bak"));
    }

    #[test]
    fn colliding_outputs_are_refused_before_anything_is_written() {
        let input = |path: &str| Input { path: PathBuf::from(format!("in/{path}")), relative: PathBuf::from(path) };
        let distinct = [input("a.pt"), input("sub/a.pt"), input("b.safetensors")];
        assert!(check_distinct_outputs(Path::new("out"), &distinct).is_ok());
        let clash = [input("m.pt"), input("m.safetensors")];
        let err = check_distinct_outputs(Path::new("out"), &clash).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`in/m.pt` and `in/m.safetensors` would both be written to `out/m.safetensors`; upgrade them separately"
        );
    }
}
