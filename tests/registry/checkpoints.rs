//! Real Anemoi checkpoints (`tests/data/anemoi-checkpoints/<V>/{inference,training}.ckpt`,
//! written by each release's own code): upgraded with no flags, each keeps its key layout
//! kind and holds exactly the 0.19.0 state dict's names, shapes and dtypes, with the values
//! the per-step rules give (the same bytes as upgrading the release's bare state dict, whose
//! steps `upgrade.rs` checks one by one); the graph comes from the file itself. The engine
//! reads each file's state dict byte for byte as `tests/data/anemoi/<V>/state_dict.safetensors`
//! holds it; `inspect` and `detect` read them directly. Detection names each file's release
//! from its provenance (a 0.18.0 one made here by editing only the metadata member of a
//! 0.17.0 file) and says when the layout contradicts it. Downgrades through the 0.16 argsort
//! step take the graph from the file and give back the original bytes.
//!
//! Every version folder present in `tests/data/anemoi-checkpoints/` is tested.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

use super::{data_dir, fixture, ok, safeshift, VERSIONS};
use crate::faults::crc32;

/// The version folders of `tests/data/anemoi-checkpoints/`, oldest first (each has its
/// bare state dict in `tests/data/anemoi/<V>/`).
fn versions() -> Vec<&'static str> {
    let present: Vec<String> = std::fs::read_dir(data_dir().join("anemoi-checkpoints"))
        .unwrap()
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.path().is_dir())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    let known: Vec<&'static str> = VERSIONS.iter().copied().filter(|v| present.iter().any(|p| p == v)).collect();
    assert_eq!(known.len(), present.len(), "a checkpoint folder without its state dict fixture: {present:?}");
    assert!(!known.is_empty());
    known
}

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
    for version in versions() {
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

/// The names of a bare state dict in its state-dict order (`keys.json`).
fn state_dict_order(version: &str) -> Vec<String> {
    let keys = fixture(version).with_file_name("keys.json");
    let keys: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(keys).unwrap()).unwrap();
    keys.as_object().unwrap().keys().cloned().collect()
}

/// The engine, with the options `upgrade` and `Registry::open` use, reads each checkpoint's
/// state dict in state-dict order with the bare state dict's bytes; the default options
/// leave tied names out as aliases of a kept tensor with the same bytes.
#[test]
fn the_engine_reads_every_real_checkpoint_byte_for_byte() {
    let graph = read(&data_dir().join("anemoi/graph.safetensors")).0;
    for version in versions() {
        let expected = read(&fixture(version)).0;
        let order = state_dict_order(version);
        for kind in ["training", "inference"] {
            let rename = |name: &str| match kind {
                "training" => name.to_owned(),
                _ => name.strip_prefix("model.").unwrap().to_owned(),
            };
            let path = checkpoint(version, kind);
            let context = format!("{version} {kind}");
            let opened =
                safeshift::engine::Checkpoint::open_with(&path, &safeshift::OpenOptions::default().read_options())
                    .unwrap_or_else(|err| panic!("{context}: {err}"));
            let names: Vec<&str> = opened.layout().tensors.iter().map(|info| info.name.as_str()).collect();
            let want: Vec<String> = order.iter().map(|name| rename(name)).collect();
            assert_eq!(names, want, "{context}: names in state-dict order");
            for (name, (dtype, shape, bytes)) in &expected {
                let name = rename(name);
                let info = opened.tensor(&name).unwrap();
                let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
                assert_eq!((info.dtype.safetensors_name(), &info.shape), (format!("{dtype:?}").as_str(), &shape));
                assert_eq!(&*opened.tensor_bytes(&name).unwrap(), bytes.as_slice(), "{context}: `{name}`");
            }
            // The extras: the graph and the supporting arrays; the metadata member.
            for (name, (_, _, bytes)) in graph.iter().filter(|(name, _)| !name.ends_with("perm_sort_by_dst")) {
                let extra = format!("graph.{name}");
                assert_eq!(&*opened.tensor_bytes(&extra).unwrap(), bytes.as_slice(), "{context}: `{extra}`");
            }
            assert_eq!(opened.extras().len(), 10, "{context}: 8 graph tensors, 2 supporting arrays");
            let anemoi: serde_json::Value = serde_json::from_str(&opened.layout().metadata["anemoi"]).unwrap();
            assert_eq!(anemoi["provenance_training"]["module_versions"]["anemoi.models"], version);

            let default = safeshift::engine::Checkpoint::open(&path).unwrap();
            for (name, (_, _, bytes)) in &expected {
                let name = rename(name);
                let kept = match default.aliases().iter().find(|(alias, _)| *alias == name) {
                    Some((_, kept)) => kept.clone(),
                    None => name.clone(),
                };
                assert_eq!(&*default.tensor_bytes(&kept).unwrap(), bytes.as_slice(), "{context}: `{name}` (`{kept}`)");
            }
        }
    }
    // graph.pt: no state dict, the graph as extras.
    let graph_pt = safeshift::engine::Checkpoint::open(&data_dir().join("anemoi-checkpoints/graph.pt")).unwrap();
    assert!(graph_pt.layout().tensors.is_empty());
    assert_eq!(graph_pt.extras().len(), 8);
    for (name, (_, _, bytes)) in graph.iter().filter(|(name, _)| !name.ends_with("perm_sort_by_dst")) {
        assert_eq!(&*graph_pt.tensor_bytes(&format!("graph.{name}")).unwrap(), bytes.as_slice(), "graph.pt: {name}");
    }
}

/// `inspect --json` of a file: its `data`.
fn inspect(path: &Path) -> serde_json::Value {
    let output = ok(&["inspect", path.to_str().unwrap(), "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["type"], "inspect");
    json["data"].clone()
}

#[test]
fn inspect_and_detect_read_every_real_checkpoint_directly() {
    for version in versions() {
        let tensors = read(&fixture(version)).0.len();
        let training = checkpoint(version, "training");
        let inference = checkpoint(version, "inference");
        for path in [&training, &inference] {
            let data = inspect(path);
            assert_eq!(data["tensor_count"], tensors, "{}", path.display());
            assert_eq!(data["extras_count"], 10, "{}", path.display());
            let anemoi: serde_json::Value = serde_json::from_str(data["metadata"]["anemoi"].as_str().unwrap()).unwrap();
            assert_eq!(anemoi["provenance_training"]["module_versions"]["anemoi.models"], version);
            let text = String::from_utf8_lossy(&ok(&["inspect", path.to_str().unwrap()]).stdout).into_owned();
            assert!(text.contains(&format!("state dict  {tensors} tensors")), "{text}");
            assert!(text.contains("extras      10 tensors"), "{text}");
        }
        assert_eq!(detect(&training), (version.to_owned(), "provenance".to_owned(), None, None), "{version} training");
        let want = (version.to_owned(), "provenance".to_owned(), None, Some("inference".to_owned()));
        assert_eq!(detect(&inference), want, "{version} inference");
        let text = String::from_utf8_lossy(&ok(&["detect", training.to_str().unwrap()]).stdout).into_owned();
        let line = format!("anemoi.encprocdec@{version} (written by release {version}, and the layout fits)");
        assert!(text.starts_with(&line), "{text}");
    }
    let graph_pt = data_dir().join("anemoi-checkpoints/graph.pt");
    let data = inspect(&graph_pt);
    assert_eq!((data["tensor_count"].as_u64(), data["extras_count"].as_u64()), (Some(0), Some(8)));
    // A graph holds no model: `detect` says so, and where the file belongs instead.
    let output = safeshift(&["detect", graph_pt.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("holds no state dict, only 8 extra tensor(s) such as `graph.data.x`"), "{stderr}");
    assert!(stderr.contains("--aux graph=FILE") && stderr.lines().count() == 1, "{stderr}");
}

fn u16_at(bytes: &[u8], at: usize) -> usize {
    u16::from_le_bytes([bytes[at], bytes[at + 1]]) as usize
}

fn u32_at(bytes: &[u8], at: usize) -> usize {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize
}

/// A copy of a real checkpoint whose metadata member (`<dir>/anemoi-metadata/anemoi.json`)
/// has `from` replaced by `to` (same length, so nothing else in the zip moves), with the
/// member's CRC-32 updated in its local and central headers. The pickle is untouched.
fn edited_checkpoint(dir: &Path, version: &str, kind: &str, from: &str, to: &str, name: &str) -> PathBuf {
    assert_eq!(from.len(), to.len());
    let mut bytes = std::fs::read(checkpoint(version, kind)).unwrap();
    // The end-of-central-directory record, then the central directory's entries.
    let eocd = bytes.windows(4).rposition(|window| window == b"PK\x05\x06").unwrap();
    let (entries, mut at) = (u16_at(&bytes, eocd + 10), u32_at(&bytes, eocd + 16));
    let mut edited = false;
    for _ in 0..entries {
        assert_eq!(&bytes[at..at + 4], b"PK\x01\x02");
        let (name_len, extra_len, comment_len) =
            (u16_at(&bytes, at + 28), u16_at(&bytes, at + 30), u16_at(&bytes, at + 32));
        let member = String::from_utf8_lossy(&bytes[at + 46..at + 46 + name_len]).into_owned();
        if member.ends_with("anemoi-metadata/anemoi.json") {
            let local = u32_at(&bytes, at + 42);
            let size = u32_at(&bytes, at + 20);
            let start = local + 30 + u16_at(&bytes, local + 26) + u16_at(&bytes, local + 28);
            let text = String::from_utf8(bytes[start..start + size].to_vec()).unwrap();
            assert_eq!(text.matches(from).count(), 1, "`{from}` once in {member}");
            let new = text.replace(from, to);
            bytes[start..start + size].copy_from_slice(new.as_bytes());
            let crc = crc32(new.as_bytes()).to_le_bytes();
            bytes[at + 16..at + 20].copy_from_slice(&crc);
            bytes[local + 14..local + 18].copy_from_slice(&crc);
            edited = true;
        }
        at += 46 + name_len + extra_len + comment_len;
    }
    assert!(edited, "no metadata member in {version} {kind}");
    let path = dir.join(format!("{version}-{kind}-{name}.ckpt"));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A real checkpoint whose provenance says `release` instead of its own.
fn with_release(dir: &Path, version: &str, kind: &str, release: &str) -> PathBuf {
    let (from, to) = (format!(r#""anemoi.models": "{version}""#), format!(r#""anemoi.models": "{release}""#));
    edited_checkpoint(dir, version, kind, &from, &to, &format!("says-{release}"))
}

#[test]
fn a_0_18_0_checkpoint_is_named_from_its_provenance() {
    let dir = tempfile::tempdir().unwrap();
    // 0.18.0 wrote the state dict of 0.17.0: only the provenance tells them apart.
    let training = with_release(dir.path(), "0.17.0", "training", "0.18.0");
    assert_eq!(detect(&training), ("0.18.0".to_owned(), "provenance".to_owned(), None, None));
    let output = ok(&["detect", training.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("anemoi.encprocdec@0.18.0 (written by release 0.18.0"));
    let inference = with_release(dir.path(), "0.17.0", "inference", "0.18.0");
    let want = ("0.18.0".to_owned(), "provenance".to_owned(), None, Some("inference".to_owned()));
    assert_eq!(detect(&inference), want);
    // And it upgrades from there: one step, to the same bytes as the 0.17.0 file's upgrade.
    let (from_18, from_17) = (dir.path().join("from-18.safetensors"), dir.path().join("from-17.safetensors"));
    upgrade(&training, &from_18, &[]);
    upgrade(&checkpoint("0.17.0", "training"), &from_17, &[]);
    assert_eq!(read(&from_18).0, read(&from_17).0);
    let plan = ok(&["plan", training.to_str().unwrap(), "--json"]);
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(plan["data"]["steps"].as_array().unwrap().len(), 1, "{plan}");
}

#[test]
fn a_layout_that_contradicts_its_provenance_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    // Release 0.5.0 wrote the 0.6.0 layout; this file has the 0.4.0 one.
    for kind in ["training", "inference"] {
        let edited = with_release(dir.path(), "0.4.0", kind, "0.5.0");
        let (version, _, contradicted, _) = detect(&edited);
        assert_eq!((version.as_str(), contradicted.as_deref()), ("0.4.0", Some("anemoi.encprocdec@0.6.0")), "{kind}");
        let output = ok(&["detect", edited.to_str().unwrap()]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.contains("warning: the file says release 0.5.0 wrote it (`anemoi.encprocdec@0.6.0`), but its layout is that of `anemoi.encprocdec@0.4.0`"),
            "{kind}: {stdout}"
        );
    }
}

#[test]
fn processor_sizes_in_the_config_must_agree_with_the_counted_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let edited = edited_checkpoint(dir.path(), "0.11.2", "training", r#""num_layers": 4"#, r#""num_layers": 6"#, "six");
    let output = safeshift(&["detect", edited.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The config says 6 layers, the file counts 4: the two missing layers are listed.
    assert!(
        stderr.contains("model.model.processor.proc.4.") && stderr.contains("model.model.processor.proc.5."),
        "{stderr}"
    );
}

/// From every real checkpoint at or past 0.15.1, down through the 0.16 step (the inverse of
/// the gather by the argsort of the destinations) with no flag: the graph is the file's own,
/// carried as extras. 0.15.1 files come back as their bare state dict; later ones, taken
/// down to 0.15.1 and up again, as themselves.
#[test]
fn downgrades_through_the_argsort_step_take_the_graph_from_the_file_and_are_exact() {
    let dir = tempfile::tempdir().unwrap();
    let from_0_15_1: Vec<&str> = versions().into_iter().skip_while(|version| *version != "0.15.1").collect();
    assert_eq!(from_0_15_1.first(), Some(&"0.15.1"));
    for version in from_0_15_1 {
        let expected = read(&fixture(version)).0;
        for kind in ["training", "inference"] {
            let want = match kind {
                "training" => expected.clone(),
                _ => inference_names(&expected),
            };
            let context = format!("{version} {kind}");
            let back = dir.path().join(format!("{version}-{kind}-0.15.1.safetensors"));
            if version == "0.15.1" {
                let up = dir.path().join(format!("{version}-{kind}-up.safetensors"));
                upgrade(&checkpoint(version, kind), &up, &[]);
                ok(&["downgrade", up.to_str().unwrap(), "--to", "0.15.1", "-o", back.to_str().unwrap()]);
                assert_eq!(read(&back).0, want, "{context}: 0.19.0 and back");
            } else {
                let input = checkpoint(version, kind);
                ok(&["downgrade", input.to_str().unwrap(), "--to", "0.15.1", "-o", back.to_str().unwrap()]);
                let again = dir.path().join(format!("{version}-{kind}-again.safetensors"));
                upgrade(&back, &again, &["--to", version]);
                assert_eq!(read(&again).0, want, "{context}: 0.15.1 and back");
            }
            let (_, metadata) = read(&back);
            assert_eq!(metadata["safeshift.schema"], "anemoi.encprocdec@0.15.1", "{context}");
        }
    }
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
