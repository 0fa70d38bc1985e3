//! The batch API on the repository's real Anemoi fixtures: written, skipped, planned and
//! failed results, in-place upgrades with their backup, and the checks made before any
//! file is written. Expected bytes are hashes of the inputs taken before the run.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::*;

fn data(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(path)
}

fn options() -> OpenOptions {
    OpenOptions {
        aux: BTreeMap::from([("graph".to_owned(), data("anemoi/graph.safetensors"))]),
        ..OpenOptions::default()
    }
}

fn input(path: PathBuf) -> Input {
    Input { relative: PathBuf::from(path.file_name().unwrap()), path }
}

fn sha256(path: &Path) -> Vec<u8> {
    Sha256::digest(std::fs::read(path).unwrap()).to_vec()
}

fn version(text: &str) -> Option<VersionId> {
    Some(VersionId::parse(text).unwrap())
}

#[test]
fn a_folder_run_writes_stamped_outputs_then_skips_them() {
    let registry = Registry::embedded().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut batch = Batch::new(&registry, options(), Destination::Dir(dir.path().join("out")));
    batch.jobs = 2;
    let old = Input { path: data("anemoi/0.4.0/state_dict.safetensors"), relative: PathBuf::from("a/old.safetensors") };
    let head =
        Input { path: data("anemoi/0.19.0/state_dict.safetensors"), relative: PathBuf::from("head.safetensors") };
    let inputs = batch.select(vec![old.clone(), head], None).unwrap();
    let seen = Mutex::new(Vec::new());
    let report = batch.run(&inputs, |result| seen.lock().unwrap().push(result.input.clone()));
    assert_eq!(seen.into_inner().unwrap().len(), 2, "every result is handed over as it is known");
    assert_eq!((report.written(), report.skipped(), report.failed()), (1, 1, 0), "{report:?}");

    let written = &report.files[0];
    let output = dir.path().join("out/a/old.safetensors");
    assert!(matches!(&written.outcome, Outcome::Written { output: path, .. } if *path == output), "{written:?}");
    assert_eq!(written.from, version("anemoi.encprocdec@0.4.0"));
    assert_eq!(written.to, version("anemoi.encprocdec@0.19.0"));
    assert!(!written.steps.is_empty() && !written.is_undo());
    let metadata = Checkpoint::open(&output).unwrap().layout().metadata.clone();
    let stamp: serde_json::Value = serde_json::from_str(&metadata[SOURCE_KEY]).unwrap();
    assert_eq!(stamp["file"], "state_dict.safetensors", "the output names its input");
    let at_head = &report.files[1];
    assert!(
        matches!(&at_head.outcome, Outcome::Skipped(Skip::AtTarget(to)) if to.to_string() == "anemoi.encprocdec@0.19.0"),
        "{at_head:?}"
    );

    let before = sha256(&output);
    let again = batch.run(&batch.select(vec![old], None).unwrap(), |_| {});
    let Outcome::Skipped(skip) = &again.files[0].outcome else { panic!("{again:?}") };
    assert_eq!(skip, &Skip::UpToDate(output.clone()));
    assert_eq!(skip.to_string(), format!("{} is up to date", output.display()));
    assert_eq!(sha256(&output), before, "a rerun rewrites nothing");
}

#[test]
fn a_failed_file_keeps_what_was_learned_and_the_others_are_done() {
    let registry = Registry::embedded().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.safetensors");
    let good = std::fs::read(data("anemoi/0.4.0/state_dict.safetensors")).unwrap();
    std::fs::write(&broken, &good[..good.len() / 2]).unwrap();
    let bad_target = OpenOptions { to: Some("9.9.9".to_owned()), ..options() };
    let batch = Batch::new(&registry, bad_target, Destination::Nowhere);
    let inputs = vec![input(broken), input(data("anemoi/0.4.0/state_dict.safetensors"))];
    let report = batch.run(&inputs, |_| {});
    assert_eq!(report.failed(), 2);
    assert!(matches!(report.files[0].outcome, Outcome::Failed(FileError::Read(_))), "{report:?}");
    assert_eq!(report.files[0].from, None);
    let unknown = &report.files[1];
    assert!(matches!(unknown.outcome, Outcome::Failed(FileError::Open(OpenError::Plan { .. }))), "{unknown:?}");
    assert_eq!(unknown.from, version("anemoi.encprocdec@0.4.0"), "the detection is kept");
    assert_eq!(unknown.to, version("anemoi.encprocdec@9.9.9"), "and the target asked for");

    let planned = Batch::new(&registry, options(), Destination::Nowhere).run(&inputs[1..], |_| {});
    assert_eq!(planned.planned(), 1, "{planned:?}");
    assert!(!planned.files[0].steps.is_empty());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "nothing written but the broken input");
}

#[test]
fn in_place_replaces_the_file_and_keeps_the_original_as_bak() {
    let registry = Registry::embedded().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    std::fs::copy(data("anemoi/0.4.0/state_dict.safetensors"), &path).unwrap();
    let original = sha256(&path);
    let batch = Batch::new(&registry, options(), Destination::InPlace { backup: true });
    let report = batch.run(&[input(path.clone())], |_| {});
    assert_eq!(report.written(), 1, "{report:?}");
    assert_eq!(sha256(&dir.path().join("model.safetensors.bak")), original, "the backup is the original");
    let upgraded = Checkpoint::open(&path).unwrap();
    assert_eq!(upgraded.layout().metadata[safeshift_model::keys::SCHEMA_KEY], "anemoi.encprocdec@0.19.0");

    // Without a backup; and a file at the target already is left alone.
    let report = Batch::new(&registry, options(), Destination::InPlace { backup: false }).run(&[input(path)], |_| {});
    assert!(matches!(report.files[0].outcome, Outcome::Skipped(Skip::AtTarget(_))), "{report:?}");
}

#[test]
fn in_place_refuses_a_pickle_and_leaves_it_untouched() {
    let registry = Registry::embedded().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inference.ckpt");
    std::fs::copy(data("anemoi-checkpoints/0.4.0/inference.ckpt"), &path).unwrap();
    let original = sha256(&path);
    let report = Batch::new(&registry, OpenOptions::default(), Destination::InPlace { backup: true })
        .run(&[input(path.clone())], |_| {});
    let Outcome::Failed(err) = &report.files[0].outcome else { panic!("{report:?}") };
    assert!(matches!(err, FileError::InPlaceUnsupported), "{err}");
    assert_eq!(sha256(&path), original);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no backup, no temporary");
}

#[test]
fn a_pickle_goes_straight_to_a_named_safetensors_output() {
    let registry = Registry::embedded().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let batch = Batch::new(&registry, OpenOptions::default(), Destination::Dir(dir.path().to_owned()));
    let report = batch.run(&[input(data("anemoi-checkpoints/0.4.0/inference.ckpt"))], |_| {});
    let Outcome::Written { output, .. } = &report.files[0].outcome else { panic!("{report:?}") };
    assert_eq!(output, &dir.path().join("inference.safetensors"));
    assert_eq!(report.files[0].from, version("anemoi.encprocdec@0.4.0"));
}

#[test]
fn selection_refuses_one_output_for_many_inputs_and_keeps_the_shard() {
    let registry = Registry::embedded().unwrap();
    let inputs: Vec<Input> = (0..6).map(|i| input(PathBuf::from(format!("{i}.safetensors")))).collect();
    let to_file = Batch::new(&registry, OpenOptions::default(), Destination::File(PathBuf::from("o.safetensors")));
    let err = to_file.select(inputs.clone(), None).unwrap_err();
    assert!(matches!(err, BatchError::OneOutputManyInputs { inputs: 6 }), "{err}");
    let dry = Batch::new(&registry, OpenOptions::default(), Destination::Nowhere);
    let shards: Vec<Vec<Input>> =
        (0..3).map(|index| dry.select(inputs.clone(), Some(Shard { index, count: 3 })).unwrap()).collect();
    assert_eq!(shards.iter().map(Vec::len).sum::<usize>(), 6, "{shards:?}");
    let to_dir = Batch::new(&registry, OpenOptions::default(), Destination::Dir(PathBuf::from("out")));
    let clash = vec![input(PathBuf::from("a/m.pt")), input(PathBuf::from("b/m.safetensors"))];
    assert!(matches!(to_dir.select(clash, None), Err(BatchError::Collision { .. })));
}
