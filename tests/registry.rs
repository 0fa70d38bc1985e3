//! The real registry (`schemas/`, `migrations/`, `safeshift.yaml`), end to end through the binary.
//!
//! This file: the built-in registry checks clean, plans the Anemoi history in ten steps, and
//! `detect` names the version of each of the ten `tests/data/anemoi/<version>/state_dict.safetensors`
//! files (written by running that anemoi-models release, see `tests/data/anemoi/README.md`).
//! `registry/upgrade.rs`: upgrades, downgrades and the values every step moves.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod checkpoints;
mod datasets;
mod upgrade;

/// The fixture versions, oldest first (0.18.0 has no folder: its state dict is 0.17.0's).
const VERSIONS: [&str; 10] =
    ["0.4.0", "0.4.2", "0.6.0", "0.10.0", "0.11.2", "0.11.3", "0.12.1", "0.15.1", "0.17.0", "0.19.0"];
/// Every version of the registry's Anemoi history, oldest first.
const RELEASES: [&str; 11] =
    ["0.4.0", "0.4.2", "0.6.0", "0.10.0", "0.11.2", "0.11.3", "0.12.1", "0.15.1", "0.17.0", "0.18.0", "0.19.0"];
const ANEMOI: &str = "anemoi.encprocdec";
const HEAD: &str = "0.19.0";

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn fixture(version: &str) -> PathBuf {
    data_dir().join("anemoi").join(version).join("state_dict.safetensors")
}

fn safeshift(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_safeshift")).args(args).output().expect("running safeshift")
}

fn ok(args: &[&str]) -> Output {
    let output = safeshift(args);
    assert!(
        output.status.success(),
        "safeshift {args:?} failed with {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The version `detect --json` names: `{"type": …, "data": {"family", "version"}}`.
fn detected(stdout: &[u8]) -> (String, String) {
    let json: serde_json::Value = serde_json::from_slice(stdout).expect("detect --json prints JSON");
    let body = json.get("data").unwrap_or(&json);
    let field = |key: &str| body.get(key).and_then(|v| v.as_str()).unwrap_or_else(|| panic!("no `{key}` in {json}"));
    (field("family").to_owned(), field("version").to_owned())
}

#[test]
fn the_built_in_registry_checks_clean() {
    let output = ok(&["check"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(": 0 errors, 0 warnings"), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn the_repository_registry_folder_checks_clean() {
    let output = ok(&["check", "--registry", env!("CARGO_MANIFEST_DIR")]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(": 0 errors, 0 warnings"), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn the_anemoi_history_is_planned_release_by_release() {
    let from = format!("{ANEMOI}@{}", VERSIONS[0]);
    let output = ok(&["plan", "--from", &from, "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("plan --json prints JSON");
    let data = &json["data"];
    assert_eq!(data["lossy"], false, "{json}");
    let steps: Vec<(String, String)> = data["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|step| (step["from"].as_str().unwrap().to_owned(), step["to"].as_str().unwrap().to_owned()))
        .collect();
    let expected: Vec<(String, String)> =
        RELEASES.windows(2).map(|pair| (format!("{ANEMOI}@{}", pair[0]), format!("{ANEMOI}@{}", pair[1]))).collect();
    assert_eq!(steps, expected);
    assert_eq!(data["to"], format!("{ANEMOI}@{HEAD}"));
}

#[test]
fn meta_llama_plans_to_hugging_face_by_default() {
    let output = ok(&["plan", "--from", "llama.meta@1.0.0", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("plan --json prints JSON");
    assert_eq!(json["data"]["to"], "llama.hf@1.0.0", "{json}");
    let released = ok(&["plan", "--from", "llama.meta@0.9.0", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&released.stdout).expect("plan --json prints JSON");
    let steps: Vec<&str> =
        json["data"]["steps"].as_array().unwrap().iter().map(|s| s["to"].as_str().unwrap()).collect();
    assert_eq!(steps, ["llama.meta@1.0.0", "llama.hf@1.0.0"], "{json}");
    let back = ok(&["plan", "--from", "llama.hf@1.0.0", "--to", "llama.meta@1.0.0", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&back.stdout).expect("plan --json prints JSON");
    assert_eq!(json["data"]["steps"][0]["action"], "undo", "the way back is the derived inverse: {json}");
}

#[test]
fn detect_names_the_version_of_each_anemoi_fixture() {
    for version in VERSIONS {
        let output = ok(&["detect", fixture(version).to_str().unwrap(), "--json"]);
        assert_eq!(detected(&output.stdout), (ANEMOI.to_owned(), version.to_owned()), "fixture {version}");
    }
}
