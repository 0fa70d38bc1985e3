//! End to end: `safeshift convert` and `safeshift scan` on real `torch.save` output and on
//! hostile files (fixtures in `crates/torch/tests/data/`).

use std::path::Path;
use std::process::Command;

const DATA: &str = "crates/torch/tests/data";

/// Runs the binary from the repository root; returns exit code and stdout + stderr as one
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

fn fixture(name: &str) -> String {
    format!("{DATA}/{name}")
}

#[test]
fn convert_writes_the_state_dict_of_a_lightning_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model.safetensors");
    let (code, text) = run(&["convert", &fixture("lightning.ckpt"), "-o", out.to_str().unwrap()], Some(dir.path()));
    assert_eq!(code, 0, "{text}");
    insta::assert_snapshot!("convert_lightning", text);

    let written = std::fs::read(&out).unwrap();
    let written = safetensors::SafeTensors::deserialize(&written).unwrap();
    let expected_bytes = std::fs::read(fixture("expected/lightning.state_dict.safetensors")).unwrap();
    let expected = safetensors::SafeTensors::deserialize(&expected_bytes).unwrap();
    assert_eq!(written.len(), expected.len());
    for (name, view) in expected.tensors() {
        let got = written.tensor(&name).unwrap();
        assert_eq!((got.dtype(), got.shape(), got.data()), (view.dtype(), view.shape(), view.data()), "{name}");
    }
    let (_, metadata) = safetensors::SafeTensors::read_metadata(&std::fs::read(&out).unwrap()).unwrap();
    let metadata = metadata.metadata().clone().unwrap();
    assert_eq!(metadata["torch.state_dict_key"], "state_dict");
    let rest: serde_json::Value = serde_json::from_str(&metadata["torch.checkpoint"]).unwrap();
    assert_eq!(rest["hyper_parameters"]["data"]["station_name"], "Zürich-Fluntern ☃");
}

#[test]
fn convert_records_tied_weights_as_aliases() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tied.safetensors");
    let (code, text) = run(&["convert", &fixture("full_module.pt"), "-o", out.to_str().unwrap()], Some(dir.path()));
    assert_eq!(code, 0, "{text}");
    insta::assert_snapshot!("convert_full_module", text);
    let bytes = std::fs::read(&out).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(header.metadata().as_ref().unwrap()["decoder.weight"], "stem.0.weight");
    let written = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert!(written.tensor("decoder.weight").is_err());
    assert_eq!(written.names().len(), 18);
}

#[test]
fn convert_keeps_optimizer_and_shared_tensors_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("all.safetensors");
    let (code, text) = run(
        &["convert", &fixture("lightning.ckpt"), "-o", out.to_str().unwrap(), "--keep-optimizer", "--keep-shared"],
        Some(dir.path()),
    );
    assert_eq!(code, 0, "{text}");
    let bytes = std::fs::read(&out).unwrap();
    let written = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(written.names().len(), 6 + 18);
    assert!(written.tensor("optimizer_states.0.state.0.exp_avg").is_ok());
}

#[test]
fn convert_refuses_a_payload_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("never.safetensors");
    let (code, text) =
        run(&["convert", &fixture("malicious/mal_a_os_system.pt"), "-o", out.to_str().unwrap()], Some(dir.path()));
    assert_eq!(code, 2, "{text}");
    insta::assert_snapshot!("convert_malicious", text);
    assert!(!out.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no temporary file is left either");
}

#[test]
fn convert_refuses_a_zip_bomb_without_inflating_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("never.safetensors");
    let (code, text) = run(
        &["convert", &fixture("malicious/mal_g_zip_bomb_storage.pt"), "-o", out.to_str().unwrap()],
        Some(dir.path()),
    );
    assert_eq!(code, 2, "{text}");
    insta::assert_snapshot!("convert_zip_bomb", text);
}

#[test]
fn scan_finds_code_in_a_malicious_file() {
    let (code, text) = run(&["scan", &fixture("malicious/mal_c_subprocess_popen.pt")], None);
    assert_eq!(code, 1, "{text}");
    insta::assert_snapshot!("scan_malicious", text);
}

#[test]
fn scan_passes_clean_files_and_flags_module_classes() {
    let (code, text) = run(&["scan", &fixture("plain_state_dict.pt"), &fixture("legacy_format.pt")], None);
    assert_eq!(code, 0, "{text}");
    insta::assert_snapshot!("scan_clean", text);
    // Module classes are data, not gadgets: torch.load would import them, safeshift reads them.
    let (code, text) = run(&["scan", &fixture("full_module.pt")], None);
    assert_eq!(code, 0, "{text}");
    insta::assert_snapshot!("scan_full_module", text);
}

#[test]
fn scan_json_is_stable() {
    let (code, text) = run(&["scan", "--json", &fixture("malicious/mal_a_os_system.pt"), "no/such/file.pt"], None);
    assert_eq!(code, 2, "an unreadable file takes precedence: {text}");
    insta::assert_snapshot!("scan_json", text);
    let stdout = text.split("--- stdout\n").nth(1).unwrap().split("--- stderr\n").next().unwrap();
    let value: serde_json::Value = serde_json::from_str(stdout).unwrap();
    assert_eq!(value["type"], "scan");
    assert_eq!(value["data"]["files"][0]["executes_code"], true);
    assert_eq!(value["data"]["files"][0]["convertible"], false);
    assert!(value["data"]["files"][1]["error"].is_string());
}

const ANEMOI: &str = "tests/data/anemoi-checkpoints";

fn header(path: &Path) -> (Vec<String>, std::collections::HashMap<String, String>) {
    let bytes = std::fs::read(path).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<(usize, String)> =
        file.tensors().into_iter().map(|(name, view)| (view.data().as_ptr() as usize, name)).collect();
    names.sort();
    (names.into_iter().map(|(_, name)| name).collect(), header.metadata().clone().unwrap_or_default())
}

#[test]
fn convert_writes_the_state_dict_then_the_extras_of_an_anemoi_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("inference.safetensors");
    let input = format!("{ANEMOI}/0.19.0/inference.ckpt");
    let (code, text) = run(&["convert", &input, "-o", out.to_str().unwrap()], Some(dir.path()));
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("extras: 10 tensors (8 graph.*, 2 anemoi.supporting_arrays.*)"), "{text}");
    assert!(text.contains("omegaconf.dictconfig.DictConfig"), "the data classes are listed: {text}");
    let (names, metadata) = header(&out);
    let extras: Vec<String> = serde_json::from_str(&metadata["safeshift.extras"]).unwrap();
    assert_eq!(extras.len(), 10);
    assert!(extras.contains(&"graph.data_to_hidden.edge_index".to_string()));
    assert!(extras.contains(&"anemoi.supporting_arrays.data.latitudes".to_string()));
    // Written after the state dict, in the order listed.
    assert_eq!(&names[names.len() - extras.len()..], extras.as_slice());
    assert!(names[0].starts_with("pre_processors."), "{}", names[0]);
    assert!(metadata["anemoi"].contains("provenance_training"));

    let (code, text) = run(&["convert", "--json", &input, "-o", out.to_str().unwrap()], Some(dir.path()));
    assert_eq!(code, 0, "{text}");
    let stdout = text.split("--- stdout\n").nth(1).unwrap().split("--- stderr\n").next().unwrap();
    let json: serde_json::Value = serde_json::from_str(stdout).unwrap();
    assert_eq!(json["type"], "convert");
    assert_eq!(json["data"]["extras"].as_array().unwrap().len(), 10);
    assert!(json["data"]["data_classes"].as_array().unwrap().iter().any(|c| c == "collections.defaultdict"));
    assert_eq!(json["data"]["gadgets"].as_array().unwrap().len(), 0);
}

#[test]
fn convert_gives_the_tensors_of_a_graph_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("graph.safetensors");
    let (code, text) = run(&["convert", &format!("{ANEMOI}/graph.pt"), "-o", out.to_str().unwrap()], Some(dir.path()));
    assert_eq!(code, 0, "{text}");
    let (names, metadata) = header(&out);
    assert_eq!(names.len(), 8);
    assert!(names.contains(&"graph.hidden_to_data.edge_dirs".to_string()));
    assert_eq!(serde_json::from_str::<Vec<String>>(&metadata["safeshift.extras"]).unwrap(), names);
}

#[test]
fn allow_gadgets_converts_a_payload_file_and_runs_nothing() {
    for (file, marker) in [
        ("malicious/mal_a_os_system.pt", "/tmp/safeshift_marker_a"),
        ("malicious/mal_b_builtins_eval.pt", "/tmp/safeshift_marker_b"),
        ("malicious/mal_c_subprocess_popen.pt", "/tmp/safeshift_marker_c"),
    ] {
        let _ = std::fs::remove_file(marker);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("converted.safetensors");
        let (code, text) = run(&["convert", &fixture(file), "-o", out.to_str().unwrap()], Some(dir.path()));
        assert_eq!(code, 2, "{text}");
        assert!(text.contains("refusing to read it") && text.contains("byte"), "{text}");
        assert!(!out.exists());
        let (code, text) =
            run(&["convert", &fixture(file), "-o", out.to_str().unwrap(), "--allow-gadgets"], Some(dir.path()));
        assert_eq!(code, 0, "{text}");
        assert!(text.contains("gadget (not run, --allow-gadgets)"), "{text}");
        let (names, _) = header(&out);
        assert_eq!(names.len(), 2, "{file}: the two legitimate tensors");
        assert!(!Path::new(marker).exists(), "{file}: the payload ran");
    }
}

#[test]
fn inspect_shows_what_a_pickle_holds() {
    let (code, text) = run(&["inspect", &format!("{ANEMOI}/graph.pt"), "--tensors"], None);
    assert_eq!(code, 0, "{text}");
    insta::assert_snapshot!("inspect_graph_pt", text);
    let (code, text) = run(&["inspect", "--json", &fixture("malicious/mal_a_os_system.pt")], None);
    assert_eq!(code, 2, "a file with gadgets is refused unless allowed: {text}");
    assert!(text.contains("forbidden global `os.system`: REDUCE at byte 299"), "{text}");
    let (code, text) = run(&["inspect", "--json", "--allow-gadgets", &fixture("malicious/mal_a_os_system.pt")], None);
    assert_eq!(code, 0, "inspecting runs nothing, gadgets included: {text}");
    let stdout = text.split("--- stdout\n").nth(1).unwrap().split("--- stderr\n").next().unwrap();
    let json: serde_json::Value = serde_json::from_str(stdout).unwrap();
    assert_eq!(json["data"]["gadgets"][0]["global"], "os.system");
    assert_eq!(json["data"]["tensor_count"], 2);
}
