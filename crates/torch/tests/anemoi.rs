//! Real Anemoi checkpoints (`tests/data/anemoi-checkpoints/`, written by each anemoi-models
//! release's own code, see its README): every one converts, without running anything,
//! although `torch.load(weights_only=True)` refuses them all. The state dict is compared
//! byte for byte with `tests/data/anemoi/<V>/state_dict.safetensors` (written by torch from
//! the same models), the graph with `tests/data/anemoi/graph.safetensors`.

use std::path::{Path, PathBuf};

use safeshift_torch::{open, scan, ConvertOptions, Converted, Hazard};
use serde_json::Value as Json;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path)
}

fn versions() -> Vec<String> {
    let mut versions: Vec<String> = std::fs::read_dir(repo("tests/data/anemoi-checkpoints"))
        .unwrap()
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.path().is_dir())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    versions.sort();
    assert_eq!(versions.len(), 10, "{versions:?}");
    versions
}

fn checkpoint(version: &str, kind: &str) -> PathBuf {
    repo(&format!("tests/data/anemoi-checkpoints/{version}/{kind}.ckpt"))
}

/// Every tensor, tied ones included, so that names and order compare with the fixture.
fn all_tensors() -> ConvertOptions {
    ConvertOptions { keep_shared: true, ..ConvertOptions::default() }
}

/// `(name, dtype, shape, bytes)` of a safetensors file, in the order its `keys.json` (the
/// state-dict order) gives when there is one.
fn reference(path: &Path) -> Vec<(String, String, Vec<u64>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let keys = path.with_file_name("keys.json");
    let order: Vec<String> = if keys.exists() {
        let keys: Json = serde_json::from_str(&std::fs::read_to_string(keys).unwrap()).unwrap();
        keys.as_object().unwrap().keys().cloned().collect()
    } else {
        let mut names: Vec<String> = file.names().into_iter().map(|n| n.to_string()).collect();
        names.sort();
        names
    };
    order
        .into_iter()
        .map(|name| {
            let view = file.tensor(&name).unwrap();
            let shape = view.shape().iter().map(|&d| d as u64).collect();
            (name, format!("{:?}", view.dtype()), shape, view.data().to_vec())
        })
        .collect()
}

fn state_dict(converted: &Converted) -> Vec<(String, String, Vec<u64>, Vec<u8>)> {
    converted
        .tensors()
        .iter()
        .enumerate()
        .map(|(index, t)| {
            (t.name.clone(), t.dtype.safetensors_name().to_string(), t.shape.clone(), converted.data(index).to_vec())
        })
        .collect()
}

fn extra<'c>(converted: &'c Converted, name: &str) -> Option<(std::borrow::Cow<'c, [u8]>, Vec<u64>)> {
    let index = converted.extras().iter().position(|t| t.name == name)?;
    Some((converted.extra_data(index), converted.extras()[index].shape.clone()))
}

fn names_in_order(tensors: &[(String, String, Vec<u64>, Vec<u8>)]) -> Vec<&str> {
    tensors.iter().map(|t| t.0.as_str()).collect()
}

#[test]
fn every_state_dict_equals_the_fixture_byte_for_byte() {
    for version in versions() {
        let expected = reference(&repo(&format!("tests/data/anemoi/{version}/state_dict.safetensors")));
        assert!(expected.len() > 50, "{version}");
        // Training checkpoint: the Lightning `state_dict` entry, names as written.
        let training = open(&checkpoint(&version, "training"), &all_tensors()).unwrap();
        let got = state_dict(&training);
        assert_eq!(names_in_order(&got), names_in_order(&expected), "{version} training");
        assert_eq!(got, expected, "{version} training");
        assert_eq!(training.metadata()["torch.state_dict_key"], "state_dict");
        // Inference checkpoint: the whole pickled interface, its `state_dict()` names.
        let inference = open(&checkpoint(&version, "inference"), &all_tensors()).unwrap();
        let without_prefix: Vec<_> = expected
            .iter()
            .map(|(name, dtype, shape, bytes)| {
                (name.strip_prefix("model.").unwrap().to_string(), dtype.clone(), shape.clone(), bytes.clone())
            })
            .collect();
        let got = state_dict(&inference);
        assert_eq!(names_in_order(&got), names_in_order(&without_prefix), "{version} inference");
        assert_eq!(got, without_prefix, "{version} inference");
        assert_eq!(
            inference.metadata()["torch.module_class"],
            "anemoi.models.interface.AnemoiModelInterface",
            "{version}"
        );
    }
}

#[test]
fn metadata_and_supporting_arrays_are_kept() {
    for version in versions() {
        let per_dataset = !matches!(version.as_str(), "0.4.0" | "0.4.2" | "0.6.0" | "0.10.0" | "0.11.2" | "0.11.3");
        for kind in ["inference", "training"] {
            let converted = open(&checkpoint(&version, kind), &ConvertOptions::default()).unwrap();
            let anemoi: Json = serde_json::from_str(&converted.metadata()["anemoi"]).unwrap();
            assert_eq!(anemoi["provenance_training"]["module_versions"]["anemoi.models"], version.as_str());
            assert_eq!(anemoi["config"]["model"]["processor"]["num_layers"], 4, "{version} {kind}");
            assert_eq!(converted.metadata()["anemoi.member"], format!("{kind}/anemoi-metadata/anemoi.json"));
            let dataset = if per_dataset { "data." } else { "" };
            // `np.linspace(-90, 90, 40)` and `np.linspace(0, 360, 40, endpoint=False)`.
            for (array, start, step) in [("latitudes", -90.0, 180.0 / 39.0), ("longitudes", 0.0, 9.0)] {
                let name = format!("anemoi.supporting_arrays.{dataset}{array}");
                let (bytes, shape) = extra(&converted, &name).unwrap_or_else(|| panic!("{version} {kind}: {name}"));
                assert_eq!(shape, [40]);
                for (i, value) in bytes.chunks_exact(8).enumerate() {
                    let value = f64::from_le_bytes(value.try_into().unwrap());
                    assert!((value - (start + step * i as f64)).abs() < 1e-9, "{name}[{i}] = {value}");
                }
            }
        }
    }
}

#[test]
fn the_graph_is_given_as_extras_and_equals_the_fixture() {
    let expected = reference(&repo("tests/data/anemoi/graph.safetensors"));
    let mut files = vec![repo("tests/data/anemoi-checkpoints/graph.pt")];
    for version in versions() {
        files.push(checkpoint(&version, "inference"));
        files.push(checkpoint(&version, "training"));
    }
    for file in files {
        let converted = open(&file, &ConvertOptions::default()).unwrap();
        let mut compared = 0;
        for (name, _, shape, bytes) in &expected {
            // `perm_sort_by_dst` is computed by the fixture script, not part of the graph.
            if name.ends_with("perm_sort_by_dst") {
                continue;
            }
            let (got, got_shape) = extra(&converted, &format!("graph.{name}"))
                .unwrap_or_else(|| panic!("{}: no extra `graph.{name}`", file.display()));
            assert_eq!((&got_shape, &*got), (shape, bytes.as_slice()), "{}: graph.{name}", file.display());
            compared += 1;
        }
        assert_eq!(compared, 8, "{}", file.display());
        let graph_extras = converted.extras().iter().filter(|t| t.name.starts_with("graph.")).count();
        assert_eq!(graph_extras, 8, "{}", file.display());
    }
    // graph.pt holds nothing else: no state dict, the graph as extras.
    let graph = open(&repo("tests/data/anemoi-checkpoints/graph.pt"), &ConvertOptions::default()).unwrap();
    assert!(graph.tensors().is_empty());
    let edge_index = graph.extras().iter().find(|t| t.name == "graph.data_to_hidden.edge_index").unwrap();
    assert_eq!((edge_index.dtype.safetensors_name(), edge_index.shape.as_slice()), ("I64", &[2u64, 48][..]));
}

#[test]
fn hyper_parameters_and_module_attributes_are_json_data() {
    for version in ["0.4.0", "0.19.0"] {
        let training = open(&checkpoint(version, "training"), &ConvertOptions::default()).unwrap();
        let rest: Json = serde_json::from_str(&training.metadata()["torch.checkpoint"]).unwrap();
        let hyper = &rest["hyper_parameters"];
        // OmegaConf's DictConfig, rendered as its content.
        assert_eq!(hyper["config"]["model"]["processor"]["num_layers"], 4, "{version}: {hyper}");
        // The graph is a reference to its extras.
        assert_eq!(hyper["graph_data"]["__extras__"], "graph");
        assert_eq!(rest["epoch"], 3);
        assert_eq!(training.metadata()["torch.dropped"], r#"["optimizer_states"]"#);

        let inference = open(&checkpoint(version, "inference"), &ConvertOptions::default()).unwrap();
        let attributes: Json = serde_json::from_str(&inference.metadata()["torch.checkpoint"]).unwrap();
        assert_eq!(attributes["config"]["model"]["processor"]["num_chunks"], 2, "{version}: {attributes}");
        assert_eq!(attributes["graph_data"]["__extras__"], "graph");
    }
}

#[test]
fn the_verdict_finds_data_classes_and_no_gadget() {
    for version in versions() {
        for kind in ["inference", "training"] {
            let path = checkpoint(&version, kind);
            let report = scan(&path).unwrap();
            assert!(!report.has_gadgets(), "{version} {kind}: {:?}", report.gadgets);
            assert!(report.convertible());
            assert!(report.data_classes.iter().any(|c| c == "collections.defaultdict"), "{version} {kind}");
            let dictconfig = report.findings.iter().find(|f| f.global == "omegaconf.dictconfig.DictConfig").unwrap();
            assert_eq!(dictconfig.hazard, Hazard::Data);
            let converted = open(&path, &ConvertOptions::default()).unwrap();
            assert!(converted.gadgets().is_empty());
            assert_eq!(converted.data_classes(), report.data_classes.as_slice(), "{version} {kind}");
        }
    }
}
