//! Converts every positive fixture (real `torch.save` output, see `data/README.md`) and
//! compares names, order, dtypes, shapes and the SHA-256 of every tensor's bytes with the
//! manifests written by torch when the fixtures were made.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safeshift_torch::{open, Alias, ConvertOptions, Converted, Format};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn manifest(name: &str) -> Json {
    let text = std::fs::read_to_string(data(&format!("expected/{name}.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn order(manifest: &Json) -> Vec<String> {
    manifest["order"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_string()).collect()
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn all_tensors() -> ConvertOptions {
    ConvertOptions { keep_shared: true, supporting_arrays: false, ..ConvertOptions::default() }
}

/// Every tensor of `converted` matches the manifest entry of the same name, bit for bit.
fn check_tensors(converted: &Converted, manifest: &Json) {
    for (index, tensor) in converted.tensors().iter().enumerate() {
        let expected = &manifest["tensors"][&tensor.name];
        assert!(expected.is_object(), "`{}` is not in the manifest", tensor.name);
        assert_eq!(tensor.dtype.safetensors_name(), expected["dtype"].as_str().unwrap(), "{}", tensor.name);
        let shape: Vec<u64> = expected["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect();
        assert_eq!(tensor.shape, shape, "{}", tensor.name);
        let bytes = converted.data(index);
        assert_eq!(bytes.len() as u64, expected["nbytes"].as_u64().unwrap(), "{}", tensor.name);
        assert_eq!(sha256(&bytes), expected["sha256"].as_str().unwrap(), "{}", tensor.name);
    }
}

fn names(converted: &Converted) -> Vec<String> {
    converted.tensors().iter().map(|t| t.name.clone()).collect()
}

fn check_fixture(file: &str, manifest_name: &str) -> Converted {
    let manifest = manifest(manifest_name);
    let converted = open(&data(file), &all_tensors()).unwrap();
    assert_eq!(names(&converted), order(&manifest), "{file}");
    check_tensors(&converted, &manifest);
    converted
}

#[test]
fn plain_state_dict_matches_its_manifest() {
    let converted = check_fixture("plain_state_dict.pt", "plain_state_dict");
    assert_eq!(converted.format(), &Format::Zip { dir: "plain_state_dict".into() });
    assert_eq!(converted.metadata().get("format").map(String::as_str), Some("pt"));
}

#[test]
fn protocol4_state_dict_matches_its_manifest() {
    check_fixture("protocol4_state_dict.pt", "protocol4_state_dict");
}

#[test]
fn shared_storage_views_match_their_manifest() {
    check_fixture("shared_storage.pt", "shared_storage");
}

#[test]
fn a_legacy_whole_module_converts_taking_module_ids_as_data() {
    // `('module', cls, file, source)` persistent ids name the classes; tensors equal to
    // the state dict of what torch.load returns (the manifest's SHA-256s).
    let converted = check_fixture("legacy_module.pt", "legacy_module");
    assert_eq!(converted.format(), &Format::Legacy);
    assert_eq!(converted.metadata()["torch.module_class"], "__main__.Net");
}

#[test]
fn full_module_state_dict_is_recovered_without_its_classes() {
    let converted = check_fixture("full_module.pt", "full_module");
    assert_eq!(converted.metadata()["torch.module_class"], "__main__.TinyNet");
}

#[test]
fn legacy_format_matches_its_manifest() {
    let converted = check_fixture("legacy_format.pt", "legacy_format");
    assert_eq!(converted.format(), &Format::Legacy);
}

#[test]
fn anemoi_checkpoint_matches_its_manifest() {
    check_fixture("anemoi_style.ckpt", "anemoi_style");
}

#[test]
fn lightning_state_dict_matches_its_manifest() {
    let converted = check_fixture("lightning.ckpt", "lightning.state_dict");
    assert_eq!(converted.metadata()["torch.state_dict_key"], "state_dict");
}

#[test]
fn tied_tensors_are_written_once_with_an_alias() {
    for (file, manifest_name, removed, kept) in [
        ("shared_storage.pt", "shared_storage", "lm_head.weight", "embed.weight"),
        ("full_module.pt", "full_module", "decoder.weight", "stem.0.weight"),
        ("legacy_format.pt", "legacy_format", "tied", "linear.bias"),
    ] {
        let manifest = manifest(manifest_name);
        let converted = open(&data(file), &ConvertOptions::default()).unwrap();
        let expected: Vec<String> = order(&manifest).into_iter().filter(|n| n != removed).collect();
        assert_eq!(names(&converted), expected, "{file}");
        assert_eq!(converted.aliases(), &[Alias { name: removed.into(), kept: kept.into() }], "{file}");
        assert_eq!(converted.metadata().get(removed).map(String::as_str), Some(kept), "{file}");
        check_tensors(&converted, &manifest);
    }
}

#[test]
fn partially_overlapping_views_are_independent_copies() {
    // `base`, `row_slice`, `block_slice` and `transposed` share storage 1 but are different
    // views: all four are written.
    let converted = open(&data("shared_storage.pt"), &ConvertOptions::default()).unwrap();
    let names = names(&converted);
    for name in ["base", "row_slice", "block_slice", "transposed", "strided_only", "overlap"] {
        assert!(names.iter().any(|n| n == name), "{name}");
    }
}

#[test]
fn contiguous_tensors_are_borrowed_and_views_are_copied() {
    let converted = open(&data("shared_storage.pt"), &all_tensors()).unwrap();
    let borrowed: BTreeMap<String, bool> = converted
        .tensors()
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.clone(), matches!(converted.data(i), std::borrow::Cow::Borrowed(_))))
        .collect();
    assert!(borrowed["base"]);
    assert!(borrowed["row_slice"]);
    assert!(!borrowed["transposed"]);
    assert!(!borrowed["expanded"]);
    let file = std::fs::read(data("shared_storage.pt")).unwrap();
    for index in 0..converted.tensors().len() {
        let is_borrowed = matches!(converted.data(index), std::borrow::Cow::Borrowed(_));
        let tensor = &converted.tensors()[index];
        assert_eq!(converted.is_borrowed(index), is_borrowed, "{}", tensor.name);
        // A borrowed tensor's bytes are the range of the file it names.
        match tensor.file_range() {
            Some(range) => {
                assert!(is_borrowed, "{}", tensor.name);
                assert_eq!(&file[range.start as usize..range.end as usize], &*converted.data(index), "{}", tensor.name);
            }
            None => assert!(!is_borrowed, "{}", tensor.name),
        }
    }
}

#[test]
fn tensors_equal_the_safetensors_files_torch_wrote() {
    for (file, expected) in [
        ("plain_state_dict.pt", "plain_state_dict"),
        ("shared_storage.pt", "shared_storage"),
        ("full_module.pt", "full_module"),
        ("legacy_format.pt", "legacy_format"),
        ("anemoi_style.ckpt", "anemoi_style"),
        ("protocol4_state_dict.pt", "protocol4_state_dict"),
        ("lightning.ckpt", "lightning.state_dict"),
    ] {
        let bytes = std::fs::read(data(&format!("expected/{expected}.safetensors"))).unwrap();
        let reference = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let converted = open(&data(file), &all_tensors()).unwrap();
        assert_eq!(reference.len(), converted.tensors().len(), "{file}");
        for (index, tensor) in converted.tensors().iter().enumerate() {
            let view = reference.tensor(&tensor.name).unwrap();
            let shape: Vec<u64> = view.shape().iter().map(|&d| d as u64).collect();
            assert_eq!(shape, tensor.shape, "{file} {}", tensor.name);
            assert_eq!(view.data(), &*converted.data(index), "{file} {}", tensor.name);
        }
    }
}

#[test]
fn lightning_keeps_the_rest_as_json_and_drops_the_optimizer() {
    let mut expected = manifest("lightning.non_tensor");
    let expected = expected.as_object_mut().unwrap();
    expected.remove("state_dict");
    let converted = open(&data("lightning.ckpt"), &ConvertOptions::default()).unwrap();
    let json: Json = serde_json::from_str(&converted.metadata()["torch.checkpoint"]).unwrap();
    let mut without_optimizer = expected.clone();
    without_optimizer.remove("optimizer_states");
    assert_eq!(json, Json::Object(without_optimizer));
    assert_eq!(converted.metadata()["torch.dropped"], r#"["optimizer_states"]"#);
    assert_eq!(names(&converted), order(&manifest("lightning.state_dict")));
}

#[test]
fn lightning_optimizer_state_is_kept_on_request() {
    let options = ConvertOptions { keep_optimizer: true, ..ConvertOptions::default() };
    let converted = open(&data("lightning.ckpt"), &options).unwrap();
    let mut expected = order(&manifest("lightning.state_dict"));
    expected.extend(order(&manifest("lightning.optimizer")));
    assert_eq!(names(&converted), expected);
    let mut both = manifest("lightning.state_dict");
    let optimizer = manifest("lightning.optimizer");
    for (name, entry) in optimizer["tensors"].as_object().unwrap() {
        both["tensors"].as_object_mut().unwrap().insert(name.clone(), entry.clone());
    }
    check_tensors(&converted, &both);
    let mut non_tensor = manifest("lightning.non_tensor");
    non_tensor.as_object_mut().unwrap().remove("state_dict");
    let json: Json = serde_json::from_str(&converted.metadata()["torch.checkpoint"]).unwrap();
    assert_eq!(json, non_tensor);
    assert!(!converted.metadata().contains_key("torch.dropped"));
}

#[test]
fn another_entry_can_be_chosen_with_key() {
    let options =
        ConvertOptions { key: Some("optimizer_states".into()), keep_optimizer: true, ..ConvertOptions::default() };
    let converted = open(&data("lightning.ckpt"), &options).unwrap();
    let expected: Vec<String> = order(&manifest("lightning.optimizer"))
        .into_iter()
        .map(|n| n.trim_start_matches("optimizer_states.").to_string())
        .collect();
    assert_eq!(names(&converted), expected);
    let err = open(&data("lightning.ckpt"), &ConvertOptions { key: Some("nope".into()), ..ConvertOptions::default() })
        .err()
        .unwrap();
    assert!(err.to_string().contains("no entry `nope`"), "{err}");
}

#[test]
fn anemoi_metadata_and_supporting_arrays_are_kept() {
    let manifest = manifest("anemoi_style");
    let converted = open(&data("anemoi_style.ckpt"), &ConvertOptions::default()).unwrap();
    let anemoi = std::fs::read_to_string(data("expected/anemoi_style.anemoi.json")).unwrap();
    assert_eq!(converted.metadata()["anemoi"], anemoi);
    assert_eq!(converted.metadata()["anemoi.member"], "anemoi_style/anemoi-metadata/anemoi.json");
    // The state dict is the module's; the supporting arrays are extras.
    assert_eq!(names(&converted), order(&manifest));
    let extras: Vec<&str> = converted.extras().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(extras, ["anemoi.supporting_arrays.latitudes", "anemoi.supporting_arrays.longitudes"]);
    for (index, tensor) in converted.extras().iter().enumerate() {
        let array = tensor.name.strip_prefix("anemoi.supporting_arrays.").unwrap();
        let entry = &manifest["supporting_arrays"][array];
        assert_eq!(tensor.dtype.safetensors_name(), "F64");
        assert_eq!(tensor.shape, vec![40]);
        assert_eq!(sha256(&converted.extra_data(index)), entry["sha256"].as_str().unwrap());
        assert!(converted.is_extra_borrowed(index));
    }
}

#[test]
fn converted_checkpoints_can_cross_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Converted>();
    assert_send_sync::<safeshift_torch::ScanReport>();
    assert_send_sync::<safeshift_torch::TorchError>();
}

/// What `unconvertible/expected.json` says torch read from each file.
fn unconvertible_manifest() -> Json {
    manifest("../unconvertible/expected")
}

#[test]
fn tensors_safetensors_cannot_hold_are_refused_by_name_not_left_out() {
    let manifest = unconvertible_manifest();
    let files = manifest.as_object().unwrap().iter().filter(|(_, case)| case.get("kind").is_some());
    let mut checked = 0;
    for (file, case) in files {
        let entry = case["entry"].as_str().unwrap();
        let error = match open(&data(&format!("unconvertible/{file}")), &ConvertOptions::default()) {
            Ok(converted) => panic!("{file}: converted, with tensors {:?}", names(&converted)),
            Err(error) => error.to_string(),
        };
        match case["kind"].as_str().unwrap() {
            // torch builds a quantized tensor over a storage class of its own, refused first.
            "quantized" => assert!(error.contains("`torch.QUInt8Storage` has no safetensors dtype"), "{file}: {error}"),
            "numpy" => assert!(error.contains(&format!("tensor `{entry}`: a numpy array")), "{file}: {error}"),
            kind => {
                assert!(error.contains(&format!("tensor `{entry}`: a {kind} tensor")), "{file}: {error}");
                assert!(error.contains("has no safetensors form"), "{file}: {error}");
            }
        }
        checked += 1;
    }
    assert_eq!(checked, 6);
}

#[test]
fn a_state_dict_keeps_its_other_entries_as_json() {
    let case = &unconvertible_manifest()["dict_with_scalars.pt"];
    let converted = open(&data("unconvertible/dict_with_scalars.pt"), &ConvertOptions::default()).unwrap();
    let expected: Vec<String> =
        case["tensors"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().into()).collect();
    assert_eq!(names(&converted), expected);
    let rest: Json = serde_json::from_str(&converted.metadata()["torch.checkpoint"]).unwrap();
    assert_eq!(rest, case["rest"]);
}

#[test]
fn a_torch_export_program_is_refused_as_one() {
    assert_eq!(unconvertible_manifest()["exported.pt2"]["format"], "pt2");
    let Err(error) = open(&data("unconvertible/exported.pt2"), &ConvertOptions::default()) else {
        panic!("a torch.export program converted");
    };
    assert!(error.to_string().contains("a torch.export program"), "{error}");
}
