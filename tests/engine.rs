//! End to end: `safeshift inspect` and `safeshift verify` on real and broken files.

use std::path::Path;
use std::process::Command;

const ANEMOI: &str = "tests/data/anemoi/0.4.0/state_dict.safetensors";

/// Runs the binary from the repository root; returns exit code, stdout and stderr as one
/// text for a snapshot, with `dir` (a temporary directory) shown as `[dir]`.
fn run(args: &[&str], dir: Option<&Path>) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_safeshift"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let code = output.status.code().unwrap_or(-1);
    let mut text = format!(
        "exit: {code}\n--- stdout\n{}--- stderr\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if let Some(dir) = dir {
        text = text.replace(&*dir.to_string_lossy(), "[dir]");
    }
    (code, text)
}

#[test]
fn inspect_summarises_a_real_checkpoint() {
    let (code, text) = run(&["inspect", ANEMOI], None);
    assert_eq!(code, 0, "{text}");
    insta::assert_snapshot!("inspect_anemoi", text);
}

#[test]
fn inspect_lists_filtered_tensors() {
    let (code, text) = run(&["inspect", ANEMOI, "--filter", "*.processor.proc.0.*.weight"], None);
    assert_eq!(code, 0, "{text}");
    insta::assert_snapshot!("inspect_anemoi_filter", text);
}

#[test]
fn inspect_json_is_stable() {
    let (code, text) = run(&["inspect", ANEMOI, "--json", "--filter", "*edge_inc"], None);
    assert_eq!(code, 0, "{text}");
    insta::assert_snapshot!("inspect_anemoi_json", text);
    let stdout = text.split("--- stdout\n").nth(1).unwrap().split("--- stderr\n").next().unwrap();
    let value: serde_json::Value = serde_json::from_str(stdout).unwrap();
    assert_eq!(value["type"], "inspect");
    assert_eq!(value["data"]["tensor_count"], 114);
    assert_eq!(value["data"]["tensors"].as_array().unwrap().len(), 2);
}

#[test]
fn inspect_full_table() {
    let (code, text) = run(&["inspect", ANEMOI, "--tensors"], None);
    assert_eq!(code, 0, "{text}");
    insta::assert_snapshot!("inspect_anemoi_tensors", text);
}

#[test]
fn verify_accepts_a_sound_file() {
    let (code, text) = run(&["verify", ANEMOI], None);
    assert_eq!(code, 0, "{text}");
    insta::assert_snapshot!("verify_anemoi", text);
}

/// A copy of the Anemoi file rewritten with checksums, then one data byte flipped.
#[test]
fn verify_reports_a_corrupted_byte() {
    use safeshift_engine::{write, Checkpoint, OutputTensor, TensorSource, WriteOptions};
    let dir = tempfile::tempdir().unwrap();
    let input = Checkpoint::open(&Path::new(env!("CARGO_MANIFEST_DIR")).join(ANEMOI)).unwrap();
    let tensors = input
        .layout()
        .tensors
        .iter()
        .map(|info| OutputTensor {
            name: info.name.clone(),
            dtype: info.dtype,
            shape: info.shape.clone(),
            source: TensorSource::File(input.tensor_location(&info.name).unwrap()),
        })
        .collect();
    let target = dir.path().join("checked.safetensors");
    let options = WriteOptions { record_sha256: true, metadata: input.layout().metadata.clone(), ..Default::default() };
    write(&target, tensors, &options).unwrap();
    let target_text = target.to_string_lossy().into_owned();
    let (code, text) = run(&["verify", &target_text], Some(dir.path()));
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("114 checksums matched"), "{text}");

    let mut image = std::fs::read(&target).unwrap();
    let last = image.len() - 1;
    image[last] ^= 1;
    std::fs::write(&target, &image).unwrap();
    let (code, text) = run(&["verify", &target_text], Some(dir.path()));
    assert_eq!(code, 1, "{text}");
    insta::assert_snapshot!("verify_corrupted", text);
    let (code, json) = run(&["verify", "--json", &target_text], Some(dir.path()));
    assert_eq!(code, 1, "{json}");
    insta::assert_snapshot!("verify_corrupted_json", json);
}

#[test]
fn malformed_files_fail_with_their_reason() {
    let dir = tempfile::tempdir().unwrap();
    let header = |json: &str, data: &[u8]| {
        let mut out = (json.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(json.as_bytes());
        out.extend_from_slice(data);
        out
    };
    let cases: [(&str, Vec<u8>); 6] = [
        ("short", vec![1, 2]),
        ("not_json", header("{oops", b"")),
        (
            "duplicate",
            header(
                r#"{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}"#,
                b"",
            ),
        ),
        ("unknown_dtype", header(r#"{"a":{"dtype":"Q8","shape":[1],"data_offsets":[0,1]}}"#, b"x")),
        ("hole", header(r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}"#, b"xx")),
        ("trailing", header(r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#, b"xyz")),
    ];
    let mut report = String::new();
    for (name, bytes) in cases {
        let path = dir.path().join(format!("{name}.safetensors"));
        std::fs::write(&path, bytes).unwrap();
        let path_text = path.to_string_lossy().into_owned();
        let (inspect_code, inspect) = run(&["inspect", &path_text], Some(dir.path()));
        assert_eq!(inspect_code, 2, "{inspect}");
        let (verify_code, verify) = run(&["verify", &path_text], Some(dir.path()));
        assert_eq!(verify_code, 1, "{verify}");
        assert!(!inspect.contains("panicked") && !verify.contains("panicked"));
        report.push_str(&format!("## {name}\n$ inspect\n{inspect}$ verify\n{verify}\n"));
    }
    let (code, missing) = run(&["verify", "no/such/file.safetensors"], None);
    assert_eq!(code, 2, "{missing}");
    report.push_str(&format!("## missing file\n$ verify\n{missing}"));
    insta::assert_snapshot!("malformed_e2e", report);
}

#[test]
fn inspect_and_verify_a_sharded_set() {
    use safeshift_engine::{write, Checkpoint, OutputTensor, TensorSource, WriteOptions};
    let dir = tempfile::tempdir().unwrap();
    let input = Checkpoint::open(&Path::new(env!("CARGO_MANIFEST_DIR")).join(ANEMOI)).unwrap();
    let tensors = input
        .layout()
        .tensors
        .iter()
        .filter(|info| info.name.contains("decoder.proc.lin_"))
        .map(|info| OutputTensor {
            name: info.name.clone(),
            dtype: info.dtype,
            shape: info.shape.clone(),
            source: TensorSource::Bytes(input.tensor_bytes(&info.name).unwrap()),
        })
        .collect();
    let index = dir.path().join("model.safetensors.index.json");
    let options = WriteOptions { max_shard_size: Some(4096), record_sha256: true, ..Default::default() };
    write(&index, tensors, &options).unwrap();
    let index_text = index.to_string_lossy().into_owned();
    let (code, text) = run(&["inspect", &index_text, "--tensors"], Some(dir.path()));
    assert_eq!(code, 0, "{text}");
    insta::assert_snapshot!("inspect_sharded", text);
    let (code, text) = run(&["verify", &index_text], Some(dir.path()));
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("10 checksums matched"), "{text}");
}
