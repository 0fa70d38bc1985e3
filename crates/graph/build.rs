//! Embeds the repository's own registry (`schemas/`, `migrations/`, `safeshift.yaml` at the
//! workspace root) in the library, as an `include_str!` table read by `Registry::embedded`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir.join("../..");
    let mut table = String::from(
        "/// `(path, text)` of every embedded registry file.\npub(crate) static FILES: &[(&str, &str)] = &[\n",
    );
    for folder in ["schemas", "migrations"] {
        let dir = root.join(folder);
        // Cargo scans a folder given here recursively, so new and edited files rebuild.
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut files = Vec::new();
        collect(&dir, &mut files);
        files.sort();
        for file in files {
            let relative = file.strip_prefix(&root).expect("below the root").to_string_lossy().replace('\\', "/");
            let absolute = file.canonicalize().expect("listed files exist");
            writeln!(table, "    ({relative:?}, include_str!({:?})),", absolute.to_string_lossy())
                .expect("write to string");
        }
    }
    table.push_str("];\n");
    let manifest = root.join("safeshift.yaml");
    println!("cargo:rerun-if-changed={}", manifest.display());
    if manifest.is_file() {
        let absolute = manifest.canonicalize().expect("exists");
        writeln!(
            table,
            "/// The embedded `safeshift.yaml`.\npub(crate) static MANIFEST: Option<&str> = Some(include_str!({:?}));",
            absolute.to_string_lossy()
        )
        .expect("write to string");
    } else {
        table.push_str("/// The embedded `safeshift.yaml`.\npub(crate) static MANIFEST: Option<&str> = None;\n");
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo")).join("embedded_registry.rs");
    std::fs::write(out, table).expect("OUT_DIR is writable");
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "ss") {
            out.push(path);
        }
    }
}
