//! Turning the inputs of a batch command (files, folders, globs) into a sorted list of
//! checkpoints, and picking this worker's share of it (`--shard I/N`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use globset::{Glob, GlobMatcher};

/// One checkpoint to process: a single file, or a sharded set named by its index file.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Input {
    /// The file to open (a `.safetensors`, an `.index.json`, or a pickle).
    pub path: PathBuf,
    /// The path relative to the folder it was found in (for mirroring into `--out-dir`).
    pub relative: PathBuf,
}

/// What kind of checkpoint a path names, by its file name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// `*.safetensors`
    Safetensors,
    /// `*.safetensors.index.json`, `*.bin.index.json`: a sharded set.
    ShardedIndex,
    /// `*.pt`, `*.pth`, `*.bin`, `*.ckpt`: a PyTorch pickle.
    Pickle,
}

impl InputKind {
    /// The kind of `path`, or `None` for files a folder walk should skip.
    pub fn of(path: &Path) -> Option<InputKind> {
        let name = path.file_name()?.to_str()?;
        if name.ends_with(".safetensors.index.json") || name.ends_with(".bin.index.json") {
            Some(InputKind::ShardedIndex)
        } else if name.ends_with(".safetensors") {
            Some(InputKind::Safetensors)
        } else if [".pt", ".pth", ".bin", ".ckpt"].iter().any(|ext| name.ends_with(ext)) {
            Some(InputKind::Pickle)
        } else {
            None
        }
    }
}

/// Why the inputs could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A named input does not exist and is not a glob that matches anything.
    #[error("`{0}` does not exist")]
    Missing(PathBuf),
    /// A glob that matches no checkpoint.
    #[error("the pattern `{0}` matches no checkpoint")]
    NoMatch(String),
    /// A folder that holds no checkpoint (a typo in an array job's path would otherwise
    /// end in a quiet success).
    #[error("the folder `{0}` holds no checkpoint (.safetensors, .safetensors.index.json, .pt, .pth, .bin, .ckpt)")]
    EmptyFolder(PathBuf),
    /// A malformed glob.
    #[error("bad pattern `{pattern}`: {source}")]
    BadGlob {
        /// The pattern as given.
        pattern: String,
        /// What globset said.
        source: globset::Error,
    },
    /// A folder could not be read.
    #[error("cannot read folder `{path}`: {source}")]
    Walk {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Expands `args` into checkpoints, sorted by path, duplicates removed. Folders are walked
/// recursively; the shard files of a sharded set found in a folder are represented by the
/// set's index file only.
pub fn collect(args: &[PathBuf]) -> Result<Vec<Input>, InputError> {
    let mut inputs = Vec::new();
    for arg in args {
        if arg.is_dir() {
            let mut found = Vec::new();
            walk(arg, &mut found)?;
            if found.is_empty() {
                return Err(InputError::EmptyFolder(arg.clone()));
            }
            inputs.extend(
                found
                    .into_iter()
                    .map(|path| Input { relative: path.strip_prefix(arg).unwrap_or(&path).to_path_buf(), path }),
            );
        } else if arg.exists() {
            let relative = PathBuf::from(arg.file_name().unwrap_or(arg.as_os_str()));
            inputs.push(Input { path: arg.clone(), relative });
        } else if let Some(text) = arg.to_str().filter(|text| text.contains(['*', '?', '['])) {
            let matched = expand_glob(text)?;
            if matched.is_empty() {
                return Err(InputError::NoMatch(text.to_owned()));
            }
            inputs.extend(matched);
        } else {
            return Err(InputError::Missing(arg.clone()));
        }
    }
    inputs.sort();
    inputs.dedup_by(|a, b| a.path == b.path);
    Ok(inputs)
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> Result<(), InputError> {
    let entries = std::fs::read_dir(dir).map_err(|source| InputError::Walk { path: dir.to_path_buf(), source })?;
    let mut paths: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| InputError::Walk { path: dir.to_path_buf(), source })?;
        paths.push(entry.path());
    }
    paths.sort();
    let shard_files = shards_named_by_indexes(&paths);
    for path in paths {
        // Hidden files include our own temporary files and backups of other tools.
        let hidden = path.file_name().and_then(|name| name.to_str()).is_some_and(|name| name.starts_with('.'));
        if hidden || path.is_symlink() {
            continue;
        }
        if path.is_dir() {
            walk(&path, found)?;
        } else if InputKind::of(&path).is_some() && !shard_files.contains(&path) {
            found.push(path);
        }
    }
    Ok(())
}

/// The shard files that sharded-set indexes in one folder refer to.
fn shards_named_by_indexes(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut shards = Vec::new();
    for index in paths.iter().filter(|path| InputKind::of(path) == Some(InputKind::ShardedIndex)) {
        let Ok(text) = std::fs::read_to_string(index) else { continue };
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
        let Some(map) = value.get("weight_map").and_then(|map| map.as_object()) else { continue };
        let parent = index.parent().unwrap_or(Path::new("."));
        shards.extend(map.values().filter_map(|file| file.as_str()).map(|file| parent.join(file)));
    }
    shards
}

fn expand_glob(pattern: &str) -> Result<Vec<Input>, InputError> {
    let bad = |source| InputError::BadGlob { pattern: pattern.to_owned(), source };
    let matcher: GlobMatcher = Glob::new(pattern).map_err(bad)?.compile_matcher();
    // Walk from the longest leading part without glob characters.
    let base: PathBuf = Path::new(pattern)
        .components()
        .take_while(|part| !part.as_os_str().to_string_lossy().contains(['*', '?', '[']))
        .collect();
    let root = if base.as_os_str().is_empty() { PathBuf::from(".") } else { base };
    let mut found = Vec::new();
    if root.is_dir() {
        walk(&root, &mut found)?;
    }
    Ok(found
        .into_iter()
        .filter(|path| matcher.is_match(path) || matcher.is_match(path.strip_prefix("./").unwrap_or(path)))
        .map(|path| Input { relative: path.strip_prefix(&root).unwrap_or(&path).to_path_buf(), path })
        .collect())
}

/// `--shard I/N`: this worker is number `index` of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// Which share, from 0.
    pub index: u64,
    /// How many shares.
    pub count: u64,
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Shard, String> {
        let usage = || format!("`{text}` is not a shard: write I/N with 0 <= I < N, e.g. 0/4");
        let (index, count) = text.split_once('/').ok_or_else(usage)?;
        let index: u64 = index.trim().parse().map_err(|_| usage())?;
        let count: u64 = count.trim().parse().map_err(|_| usage())?;
        if count == 0 || index >= count {
            return Err(usage());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// Whether `input` belongs to this share. The choice depends only on the input's path
    /// relative to the folder named on the command line, so every worker of an array job
    /// agrees without talking to the others, whatever order it lists files in.
    pub fn owns(&self, input: &Input) -> bool {
        stable_hash(input.relative.to_string_lossy().as_bytes()) % self.count == self.index
    }
}

/// FNV-1a: stable across runs, machines and Rust versions (unlike `DefaultHasher`).
fn stable_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_parses_and_rejects() {
        assert_eq!("1/3".parse::<Shard>(), Ok(Shard { index: 1, count: 3 }));
        assert!("3/3".parse::<Shard>().is_err());
        assert!("0/0".parse::<Shard>().is_err());
        assert!("x".parse::<Shard>().is_err());
    }

    #[test]
    fn shards_partition_inputs() {
        let inputs: Vec<Input> = (0..50)
            .map(|i| Input {
                path: PathBuf::from(format!("a/{i}.safetensors")),
                relative: PathBuf::from(format!("{i}.safetensors")),
            })
            .collect();
        let shards: Vec<Shard> = (0..3).map(|index| Shard { index, count: 3 }).collect();
        for input in &inputs {
            assert_eq!(shards.iter().filter(|shard| shard.owns(input)).count(), 1);
        }
        assert!(
            shards.iter().all(|shard| inputs.iter().any(|input| shard.owns(input))),
            "no empty share for 50 inputs"
        );
    }

    #[test]
    fn folders_are_walked_and_shards_of_sets_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("sub")).unwrap();
        for name in ["a.safetensors", "sub/b.pt", "notes.txt", ".hidden.safetensors", "m-00001.safetensors"] {
            std::fs::write(root.join(name), b"x").unwrap();
        }
        std::fs::write(root.join("m.safetensors.index.json"), br#"{"weight_map": {"w": "m-00001.safetensors"}}"#)
            .unwrap();
        let names: Vec<String> = collect(&[root.to_path_buf()])
            .unwrap()
            .into_iter()
            .map(|input| input.relative.to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.safetensors", "m.safetensors.index.json", "sub/b.pt"]);
    }

    #[test]
    fn missing_inputs_are_errors() {
        assert!(matches!(collect(&[PathBuf::from("/nonexistent/x.safetensors")]), Err(InputError::Missing(_))));
        assert!(matches!(collect(&[PathBuf::from("/nonexistent/*.safetensors")]), Err(InputError::NoMatch(_))));
        let empty = tempfile::tempdir().unwrap();
        std::fs::write(empty.path().join("notes.txt"), b"x").unwrap();
        assert!(matches!(collect(&[empty.path().to_path_buf()]), Err(InputError::EmptyFolder(_))));
    }
}
