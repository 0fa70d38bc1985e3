//! `safeshift fmt` end to end: `--check` names unformatted files and changes nothing;
//! without it files are rewritten in place; a file that does not parse is left alone.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

const MESSY: &str = "schema  llama.hf@1.0.0{dim hidden\n  tensor \"model.norm.weight\":f32[hidden]}\n";
const CANONICAL: &str =
    "schema llama.hf @ 1.0.0 {\n    dim hidden\n\n    tensor \"model.norm.weight\" : f32[hidden]\n}\n";

fn safeshift(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_safeshift"))
        .args(["--color", "never"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run safeshift")
}

fn registry() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("schemas/llama")).unwrap();
    fs::create_dir_all(dir.path().join("migrations")).unwrap();
    fs::write(dir.path().join("schemas/llama/hf.ss"), MESSY).unwrap();
    fs::write(dir.path().join("schemas/ok.ss"), CANONICAL.replace("llama.hf", "llama.ok")).unwrap();
    fs::write(dir.path().join("schemas/notes.txt"), "not a registry file {").unwrap();
    dir
}

#[test]
fn check_names_unformatted_files_and_changes_nothing() {
    let dir = registry();
    let output = safeshift(dir.path(), &["fmt", "--check"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("Diff in schemas/llama/hf.ss:"), "{stdout}");
    assert!(!stdout.contains("ok.ss"), "{stdout}");
    assert!(stdout.contains("+    tensor \"model.norm.weight\" : f32[hidden]"), "{stdout}");
    assert_eq!(fs::read_to_string(dir.path().join("schemas/llama/hf.ss")).unwrap(), MESSY);
}

#[test]
fn fmt_rewrites_in_place_then_check_passes() {
    let dir = registry();
    let output = safeshift(dir.path(), &["fmt"]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(fs::read_to_string(dir.path().join("schemas/llama/hf.ss")).unwrap(), CANONICAL);
    let leftovers: Vec<_> = fs::read_dir(dir.path().join("schemas/llama")).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    assert_eq!(safeshift(dir.path(), &["fmt", "--check"]).status.code(), Some(0));
}

#[test]
fn explicit_paths_and_parse_errors() {
    let dir = registry();
    let broken = dir.path().join("broken.ss");
    fs::write(&broken, "schema a @ 1.0.0 {\n    tensor x : f32[]\n}\n").unwrap();
    let output = safeshift(dir.path(), &["fmt", "broken.ss", "schemas/llama"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("broken.ss:2:12"), "{stderr}");
    assert!(stderr.contains("expected a quoted name pattern"), "{stderr}");
    assert_eq!(fs::read_to_string(&broken).unwrap(), "schema a @ 1.0.0 {\n    tensor x : f32[]\n}\n");
    // The other file was still formatted.
    assert_eq!(fs::read_to_string(dir.path().join("schemas/llama/hf.ss")).unwrap(), CANONICAL);

    let missing = safeshift(dir.path(), &["fmt", "--check", "nowhere.ss"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("`nowhere.ss` does not exist"));
}
