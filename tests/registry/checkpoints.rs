//! Real Anemoi checkpoints (`tests/data/anemoi-checkpoints/<V>/{inference,training}.ckpt`,
//! written by each release's own code): upgraded with no flags, each keeps its key layout
//! kind and holds exactly the 0.19.0 state dict's names, shapes and dtypes, with the values
//! the per-step rules give (the same bytes as upgrading the release's bare state dict, whose
//! steps `upgrade.rs` checks one by one); the graph comes from the file itself. Detection
//! names each file's release from its provenance and says when the layout contradicts it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use super::{data_dir, fixture, ok, safeshift, VERSIONS};

type Tensors = BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)>;

fn checkpoint(version: &str, kind: &str) -> PathBuf {
    data_dir().join("anemoi-checkpoints").join(version).join(format!("{kind}.ckpt"))
}

/// The state dict of a written file (its extras apart) and its metadata.
fn read(path: &Path) -> (Tensors, BTreeMap<String, String>) {
    let bytes = std::fs::read(path).unwrap();
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let metadata = header.metadata().clone().unwrap_or_default();
    let extras: Vec<String> =
        metadata.get("safeshift.extras").map(|text| serde_json::from_str(text).unwrap()).unwrap_or_default();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let tensors = file
        .tensors()
        .into_iter()
        .filter(|(name, _)| !extras.contains(name))
        .map(|(name, view)| (name, (view.dtype(), view.shape().to_vec(), view.data().to_vec())))
        .collect();
    (tensors, metadata.into_iter().collect())
}

fn write(path: &Path, tensors: &Tensors, metadata: BTreeMap<String, String>) {
    let views = tensors.iter().map(|(name, (dtype, shape, data))| {
        (name.clone(), safetensors::tensor::TensorView::new(*dtype, shape.clone(), data).unwrap())
    });
    std::fs::write(path, safetensors::serialize(views, Some(metadata.into_iter().collect())).unwrap()).unwrap();
}

fn layout(tensors: &Tensors) -> BTreeMap<String, (Dtype, Vec<usize>)> {
    tensors.iter().map(|(name, (dtype, shape, _))| (name.clone(), (*dtype, shape.clone()))).collect()
}

/// Names without the leading `model.`: the inference checkpoint's kind.
fn inference_names(tensors: &Tensors) -> Tensors {
    tensors.iter().map(|(name, value)| (name.strip_prefix("model.").unwrap().to_owned(), value.clone())).collect()
}

fn upgrade(input: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec!["upgrade", input.to_str().unwrap(), "-o", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    ok(&args);
}

#[test]
fn every_real_checkpoint_upgrades_to_0_19_0_with_no_flags() {
    let dir = tempfile::tempdir().unwrap();
    let head = read(&fixture("0.19.0")).0;
    let aux = format!("graph={}", data_dir().join("anemoi/graph.safetensors").display());
    for version in VERSIONS {
        // What the documented rules give: the release's bare state dict upgraded step by step.
        // (A file already at the target is skipped, not written.)
        let expected = if version == "0.19.0" {
            read(&fixture(version)).0
        } else {
            let expected_path = dir.path().join(format!("expected-{version}.safetensors"));
            upgrade(&fixture(version), &expected_path, &["--aux", &aux]);
            read(&expected_path).0
        };
        for kind in ["training", "inference"] {
            let out = dir.path().join(format!("{version}-{kind}.safetensors"));
            upgrade(&checkpoint(version, kind), &out, &[]);
            let (upgraded, metadata) = read(&out);
            let (want_layout, want_values) = match kind {
                "training" => (layout(&head), expected.clone()),
                _ => (layout(&inference_names(&head)), inference_names(&expected)),
            };
            assert_eq!(layout(&upgraded), want_layout, "{version} {kind}: names, shapes and dtypes of 0.19.0");
            assert_eq!(upgraded, want_values, "{version} {kind}: the values the steps give");
            assert_eq!(metadata["safeshift.schema"], "anemoi.encprocdec@0.19.0");
            assert!(metadata.contains_key("anemoi"), "{version} {kind}: the Anemoi metadata follows");
        }
    }
}

#[test]
fn the_0_17_0_checkpoint_becomes_the_0_19_0_state_dict_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    upgrade(&checkpoint("0.17.0", "training"), &out, &[]);
    assert_eq!(read(&out).0, read(&fixture("0.19.0")).0);
}

#[test]
fn metadata_is_edited_as_the_0_12_release_did() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    upgrade(&checkpoint("0.4.0", "training"), &out, &[]);
    let bytes = std::fs::read(&out).unwrap();
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let metadata = header.metadata().clone().unwrap();
    let extras: Vec<String> = serde_json::from_str(&metadata["safeshift.extras"]).unwrap();
    assert!(extras.contains(&"anemoi.supporting_arrays.data.latitudes".to_owned()), "{extras:?}");
    assert!(extras.contains(&"graph.data_to_hidden.edge_index".to_owned()), "{extras:?}");
    let anemoi: serde_json::Value = serde_json::from_str(&metadata["anemoi"]).unwrap();
    assert!(anemoi["supporting_arrays_paths"]["data"]["latitudes"].is_object(), "{anemoi}");
    let checkpoint: serde_json::Value = serde_json::from_str(&metadata["torch.checkpoint"]).unwrap();
    for key in ["data_indices", "statistics", "supporting_arrays"] {
        assert!(checkpoint["hyper_parameters"][key]["data"].is_object(), "hyper_parameters.{key} per dataset");
    }
}

/// `detect --json` of a file: (version, evidence, contradicted_by, key layout).
fn detect(path: &Path) -> (String, String, Option<String>, Option<String>) {
    let output = ok(&["detect", path.to_str().unwrap(), "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let data = &json["data"];
    let text = |key: &str| data[key].as_str().map(str::to_owned);
    (text("version").unwrap(), text("evidence").unwrap(), text("contradicted_by"), text("key_layout"))
}

/// The checkpoint converted to safetensors (every name kept), as `detect` reads it.
fn converted(dir: &Path, version: &str, kind: &str) -> PathBuf {
    let out = dir.join(format!("{version}-{kind}.safetensors"));
    let input = checkpoint(version, kind);
    ok(&["convert", input.to_str().unwrap(), "-o", out.to_str().unwrap(), "--keep-shared"]);
    out
}

#[test]
fn detect_names_every_real_checkpoint_from_its_provenance() {
    let dir = tempfile::tempdir().unwrap();
    for version in VERSIONS {
        let training = detect(&converted(dir.path(), version, "training"));
        assert_eq!(training, (version.to_owned(), "provenance".to_owned(), None, None), "{version} training");
        let inference = detect(&converted(dir.path(), version, "inference"));
        let want = (version.to_owned(), "provenance".to_owned(), None, Some("inference".to_owned()));
        assert_eq!(inference, want, "{version} inference");
    }
}

/// A converted checkpoint whose provenance says `release`.
fn with_release(dir: &Path, version: &str, release: &str) -> PathBuf {
    let converted = converted(dir, version, "training");
    let bytes = std::fs::read(&converted).unwrap();
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let mut metadata: BTreeMap<String, String> = header.metadata().clone().unwrap().into_iter().collect();
    let mut anemoi: serde_json::Value = serde_json::from_str(&metadata["anemoi"]).unwrap();
    anemoi["provenance_training"]["module_versions"]["anemoi.models"] = release.into();
    metadata.insert("anemoi".into(), anemoi.to_string());
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let tensors: Tensors = file
        .tensors()
        .into_iter()
        .map(|(name, view)| (name, (view.dtype(), view.shape().to_vec(), view.data().to_vec())))
        .collect();
    let edited = dir.join(format!("{version}-says-{release}.safetensors"));
    write(&edited, &tensors, metadata);
    edited
}

#[test]
fn a_0_18_0_checkpoint_is_named_from_its_provenance() {
    let dir = tempfile::tempdir().unwrap();
    // 0.18.0 wrote the state dict of 0.17.0: only the provenance tells them apart.
    let edited = with_release(dir.path(), "0.17.0", "0.18.0");
    assert_eq!(detect(&edited), ("0.18.0".to_owned(), "provenance".to_owned(), None, None));
    let output = ok(&["detect", edited.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("anemoi.encprocdec@0.18.0 (written by release 0.18.0"));
}

#[test]
fn a_layout_that_contradicts_its_provenance_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let edited = with_release(dir.path(), "0.4.0", "0.12.0");
    let (version, _, contradicted, _) = detect(&edited);
    assert_eq!((version.as_str(), contradicted.as_deref()), ("0.4.0", Some("anemoi.encprocdec@0.12.1")));
    let output = ok(&["detect", edited.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("warning: the file says release 0.12.0 wrote it (`anemoi.encprocdec@0.12.1`), but its layout is that of `anemoi.encprocdec@0.4.0`"),
        "{stdout}"
    );
}

#[test]
fn processor_sizes_in_the_config_must_agree_with_the_counted_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let converted = with_release(dir.path(), "0.11.2", "0.11.2");
    let bytes = std::fs::read(&converted).unwrap();
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let mut metadata: BTreeMap<String, String> = header.metadata().clone().unwrap().into_iter().collect();
    let mut anemoi: serde_json::Value = serde_json::from_str(&metadata["anemoi"]).unwrap();
    anemoi["config"]["model"]["processor"]["num_layers"] = 6.into();
    metadata.insert("anemoi".into(), anemoi.to_string());
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let tensors: Tensors = file
        .tensors()
        .into_iter()
        .map(|(name, view)| (name, (view.dtype(), view.shape().to_vec(), view.data().to_vec())))
        .collect();
    let edited = dir.path().join("six-layers.safetensors");
    write(&edited, &tensors, metadata);
    let output = safeshift(&["detect", edited.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The config says 6 layers, the file counts 4: the two missing layers are listed.
    assert!(
        stderr.contains("model.model.processor.proc.4.") && stderr.contains("model.model.processor.proc.5."),
        "{stderr}"
    );
}

#[test]
fn every_bare_state_dict_upgrades_with_the_graph_anemoi_graphs_saved() {
    let dir = tempfile::tempdir().unwrap();
    let graph_pt = format!("graph={}", data_dir().join("anemoi-checkpoints/graph.pt").display());
    let edges = format!("graph={}", data_dir().join("anemoi/graph.safetensors").display());
    let head = layout(&read(&fixture("0.19.0")).0);
    for version in &VERSIONS[..VERSIONS.len() - 1] {
        let from_pt = dir.path().join(format!("{version}-pt.safetensors"));
        upgrade(&fixture(version), &from_pt, &["--aux", &graph_pt]);
        let from_edges = dir.path().join(format!("{version}-edges.safetensors"));
        upgrade(&fixture(version), &from_edges, &["--aux", &edges]);
        let upgraded = read(&from_pt).0;
        assert_eq!(layout(&upgraded), head, "{version}");
        // The pickled HeteroData and the safetensors file hold the same edges.
        assert_eq!(upgraded, read(&from_edges).0, "{version}");
    }
}
