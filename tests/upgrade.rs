//! `safeshift upgrade` and `downgrade` end to end, and the library's lazy view against what they write.
//!
//! * A folder of 20 synthetic checkpoints of mixed historical Anemoi versions and one truncated
//!   file: 20 outputs at the head schema, one error naming the bad file, exit 1, inputs untouched;
//!   a rerun skips every output; `--dry-run` writes nothing; `--shard I/3` partitions the inputs.
//! * `--in-place` killed with SIGKILL at random moments: the file is always either the original
//!   or the complete upgrade, and the `.bak` is the original.
//! * For every version of the repository's registry, the lazy view of
//!   `Registry::embedded()?.open_with(…)` (whole tensors and row slices) equals the file
//!   `upgrade -o` writes, tensor for tensor, metadata included, and the `safetensors`
//!   crate reads the same bytes from that file.
//! * Snapshots of the summary table, `--json` and the main errors.
//!
//! Expected values come from files and hashes taken before the run, never from the code
//! under test (except in the view-vs-file test, whose point is that two paths agree).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use safeshift::engine::Checkpoint;
use safeshift::graph::{detect, VersionId};
use safeshift::{OpenOptions, Registry};
use sha2::{Digest, Sha256};

/// The historical Anemoi versions (all but the head), oldest first.
const HISTORICAL: [&str; 8] = ["0.4.0", "0.4.2", "0.6.0", "0.10.0", "0.11.2", "0.11.3", "0.12.1", "0.15.1"];
const HEAD: &str = "anemoi.encprocdec@0.19.0";

/// Edge counts of `tests/data/anemoi/graph.safetensors` (its permutations' lengths), so that
/// synthetic checkpoints fit the fixture graph.
const GRAPH_DIMS: [&str; 4] = ["--dim", "enc_edges=48", "--dim", "dec_edges=120"];

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn graph_aux() -> String {
    format!("graph={}", repo("tests/data/anemoi/graph.safetensors").display())
}

fn command(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_safeshift"));
    command.current_dir(dir).args(["--color", "never"]);
    command
}

fn run(dir: &Path, args: &[&str]) -> Output {
    command(dir).args(args).output().expect("running safeshift")
}

/// Exit code, stdout and stderr together, for assertions and snapshots.
fn transcript(output: &Output) -> String {
    format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        output.status.code().map_or("signal".to_owned(), |code| code.to_string()),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn synth(dir: &Path, version: &str, seed: u64, out: &Path, extra: &[&str]) {
    let seed = seed.to_string();
    let mut args = vec!["synth", version, "--seed", &seed, "-o", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    let output = run(dir, &args);
    assert_eq!(output.status.code(), Some(0), "synth {version}: {}", transcript(&output));
}

fn sha256(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
    Sha256::digest(&bytes).iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Every file under `dir` with its hash, by path relative to `dir`.
fn tree(dir: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(path.strip_prefix(root).unwrap().to_path_buf(), sha256(&path));
            }
        }
    }
    let mut out = BTreeMap::new();
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out
}

/// The version the embedded registry detects for the file at `path`.
fn detected(registry: &Registry, path: &Path) -> String {
    let checkpoint = Checkpoint::open(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    let detection = detect(registry.graph(), checkpoint.layout(), &BTreeMap::new())
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    detection.version.to_string()
}

/// The `type: file` records of a `--json` run, and its summary's data.
fn records(output: &Output) -> (Vec<serde_json::Value>, serde_json::Value) {
    let mut files = Vec::new();
    let mut summary = None;
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}"));
        match record["type"].as_str() {
            Some("file") => files.push(record["data"].clone()),
            Some("summary") => summary = Some(record["data"].clone()),
            other => panic!("unexpected record type {other:?}: {line}"),
        }
    }
    (files, summary.expect("a summary record"))
}

/// A folder `archive/` of 20 synthetic checkpoints (historical versions in turn, seeds 0..20,
/// a few in a subfolder) and `broken.safetensors`, a truncated copy of one of them. Returns
/// the relative paths of the 20 good files.
fn archive(root: &Path) -> Vec<PathBuf> {
    let archive = root.join("archive");
    std::fs::create_dir_all(archive.join("old")).unwrap();
    let names: Vec<(PathBuf, &str, u64)> = (0..20)
        .map(|i| {
            let version = HISTORICAL[i % HISTORICAL.len()];
            let folder = if i % 5 == 0 { "old/" } else { "" };
            (PathBuf::from(format!("{folder}run-{i:02}-v{version}.safetensors")), version, i as u64)
        })
        .collect();
    std::thread::scope(|scope| {
        for chunk in names.chunks(5) {
            let archive = &archive;
            scope.spawn(move || {
                for (relative, version, seed) in chunk {
                    let version = format!("anemoi.encprocdec@{version}");
                    synth(archive, &version, *seed, &archive.join(relative), &GRAPH_DIMS);
                }
            });
        }
    });
    let good = std::fs::read(archive.join(&names[3].0)).unwrap();
    std::fs::write(archive.join("broken.safetensors"), &good[..good.len() * 2 / 3]).unwrap();
    names.into_iter().map(|(relative, _, _)| relative).collect()
}

#[test]
fn a_folder_of_mixed_versions_is_upgraded_then_skipped_with_the_corrupt_file_reported() {
    let temp = tempfile::tempdir().unwrap();
    let root = temp.path();
    let good = archive(root);
    let inputs_before = tree(&root.join("archive"));
    let aux = graph_aux();
    let args = ["upgrade", "archive", "--out-dir", "out", "--aux", &aux, "--json"];

    let first = run(root, &args);
    let text = transcript(&first);
    assert_eq!(first.status.code(), Some(1), "one file failed: {text}");
    let stderr = String::from_utf8_lossy(&first.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|line| line.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "one error: {text}");
    assert!(errors[0].contains("archive/broken.safetensors"), "the error names the file: {text}");
    let (files, summary) = records(&first);
    assert_eq!(files.len(), 21, "{text}");
    assert_eq!(summary, serde_json::json!({"files": 21, "written": 20, "planned": 0, "skipped": 0, "failed": 1}));
    let failed: Vec<&str> =
        files.iter().filter(|file| file["outcome"] == "failed").map(|file| file["input"].as_str().unwrap()).collect();
    assert_eq!(failed, ["archive/broken.safetensors"]);
    assert_eq!(tree(&root.join("archive")), inputs_before, "inputs are never modified");

    let registry = Registry::embedded().unwrap();
    let outputs = tree(&root.join("out"));
    let expected: BTreeSet<PathBuf> = good.iter().cloned().collect();
    assert_eq!(outputs.keys().cloned().collect::<BTreeSet<_>>(), expected, "one output per good input, mirrored");
    for relative in &good {
        let output = root.join("out").join(relative);
        assert_eq!(detected(&registry, &output), HEAD, "{}", relative.display());
        let source = Checkpoint::open(&output).unwrap().layout().metadata["safeshift.source"].clone();
        let source: serde_json::Value = serde_json::from_str(&source).unwrap();
        assert_eq!(source["file"], relative.file_name().unwrap().to_str().unwrap(), "the output names its input");
    }

    let second = run(root, &args);
    let text = transcript(&second);
    assert_eq!(second.status.code(), Some(1), "still 1, for the corrupt file only: {text}");
    let (files, summary) = records(&second);
    assert_eq!(summary, serde_json::json!({"files": 21, "written": 0, "planned": 0, "skipped": 20, "failed": 1}));
    for file in files.iter().filter(|file| file["outcome"] == "skipped") {
        assert!(file["message"].as_str().unwrap().ends_with("is up to date"), "{file}");
    }
    assert_eq!(tree(&root.join("out")), outputs, "a rerun rewrites nothing");

    std::fs::remove_file(root.join("archive/broken.safetensors")).unwrap();
    // A changed input is redone: same name, same version, other values.
    let changed = &good[1];
    let version = changed.to_string_lossy().split("-v").nth(1).unwrap().trim_end_matches(".safetensors").to_owned();
    synth(root, &format!("anemoi.encprocdec@{version}"), 999, &root.join("archive").join(changed), &GRAPH_DIMS);
    let third = run(root, &args);
    let text = transcript(&third);
    assert_eq!(third.status.code(), Some(0), "nothing failed: {text}");
    let (files, summary) = records(&third);
    assert_eq!(summary, serde_json::json!({"files": 20, "written": 1, "planned": 0, "skipped": 19, "failed": 0}));
    let written: Vec<&str> =
        files.iter().filter(|file| file["outcome"] == "written").map(|file| file["input"].as_str().unwrap()).collect();
    assert_eq!(written, [format!("archive/{}", changed.display())]);
}

#[test]
fn dry_run_writes_nothing_and_shards_cover_every_file_once() {
    let temp = tempfile::tempdir().unwrap();
    let root = temp.path();
    let good = archive(root);
    let before = tree(root);
    let aux = graph_aux();

    let dry = run(root, &["upgrade", "archive", "--dry-run", "--aux", &aux, "--json"]);
    let text = transcript(&dry);
    assert_eq!(dry.status.code(), Some(1), "the corrupt file still fails: {text}");
    let (_, summary) = records(&dry);
    assert_eq!(summary, serde_json::json!({"files": 21, "written": 0, "planned": 20, "skipped": 0, "failed": 1}));
    assert_eq!(tree(root), before, "--dry-run writes nothing");

    let mut seen: Vec<String> = Vec::new();
    for index in 0..3 {
        let shard = format!("{index}/3");
        let output = run(root, &["upgrade", "archive", "--out-dir", "out", "--aux", &aux, "--json", "--shard", &shard]);
        let (files, _) = records(&output);
        assert!(!files.is_empty(), "shard {shard} of 21 files is not empty");
        seen.extend(files.iter().map(|file| file["input"].as_str().unwrap().to_owned()));
    }
    seen.sort();
    let mut all: Vec<String> = good.iter().map(|relative| format!("archive/{}", relative.display())).collect();
    all.push("archive/broken.safetensors".to_owned());
    all.sort();
    assert_eq!(seen, all, "the three shards together process every input exactly once");
    assert_eq!(tree(&root.join("out")).len(), 20, "and write every output");
}

// ------------------------------------------------------------------------------------------------
// --in-place under SIGKILL.

/// A tiny xorshift, seeded from the clock: each run tries other moments.
fn delays(count: usize, max: Duration) -> Vec<Duration> {
    let clock = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let mut state = clock.as_nanos() as u64 | 1;
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            max.mul_f64((state % 1000) as f64 / 1000.0)
        })
        .collect()
}

/// Copies `from` to `to` with a fixed modification time: the output records the input's
/// (in `safeshift.source`), and every trial must produce the reference's bytes.
fn copy_with_fixed_mtime(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
    let time = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    std::fs::File::options().write(true).open(to).unwrap().set_modified(time).unwrap();
}

fn has_temp_file(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .unwrap()
        .any(|entry| entry.unwrap().file_name().to_string_lossy().contains(".safeshift-tmp-"))
}

#[test]
fn in_place_killed_at_any_moment_leaves_the_original_or_the_complete_upgrade() {
    let temp = tempfile::tempdir().unwrap();
    let root = temp.path();
    // ~40 MB: big enough that the write takes a while, small enough to stay fast.
    let big = ["--dim", "hidden=256", "--dim", "mlp_hidden=4096", "--dim", "layers=4"];
    let original = root.join("pristine/model.safetensors");
    std::fs::create_dir_all(original.parent().unwrap()).unwrap();
    let mut dims = big.to_vec();
    dims.extend_from_slice(&GRAPH_DIMS);
    synth(root, "anemoi.encprocdec@0.4.0", 5, &original, &dims);
    let aux = graph_aux();
    // The complete upgrade, made once from a copy of the same name (the output records it).
    let reference = root.join("reference/model.safetensors");
    std::fs::create_dir_all(reference.parent().unwrap()).unwrap();
    copy_with_fixed_mtime(&original, &reference);
    let timer = Instant::now();
    let done = run(root, &["upgrade", "reference/model.safetensors", "--in-place", "--no-backup", "--aux", &aux]);
    // Kill moments spread over the whole run, from before the first byte to after the rename.
    let window = timer.elapsed().mul_f64(1.2);
    assert_eq!(done.status.code(), Some(0), "{}", transcript(&done));
    let (original_hash, upgraded_hash) = (sha256(&original), sha256(&reference));
    assert_ne!(original_hash, upgraded_hash);

    let started = Instant::now();
    let mut outcomes = BTreeMap::new();
    for (trial, delay) in delays(8, window * 2).into_iter().enumerate() {
        let backup = trial % 2 == 0;
        let dir = root.join(format!("trial-{trial}"));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("model.safetensors");
        copy_with_fixed_mtime(&original, &path);
        let mut args = vec!["upgrade", "model.safetensors", "--in-place", "--aux", &aux];
        if !backup {
            args.push("--no-backup");
        }
        let mut child = command(&dir).args(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        if trial % 4 < 2 {
            std::thread::sleep(delay);
        } else {
            // Aim at the write itself: wait until the temporary output appears, then a little.
            let deadline = Instant::now() + window * 4;
            while Instant::now() < deadline && !has_temp_file(&dir) && child.try_wait().unwrap().is_none() {
                std::thread::sleep(Duration::from_micros(200));
            }
            std::thread::sleep(delay / 20);
        }
        // SIGKILL: no destructor, no cleanup, as when a cluster job is preempted.
        let _ = child.kill();
        let status = child.wait().unwrap();
        let hash = sha256(&path);
        let outcome = if hash == original_hash {
            "original"
        } else {
            assert_eq!(hash, upgraded_hash, "trial {trial} ({delay:?}, {status}): the file is partial");
            let registry = Registry::embedded().unwrap();
            assert_eq!(detected(&registry, &path), HEAD);
            "upgraded"
        };
        // A temporary file left behind means the kill landed while the output was written.
        let mid_write = has_temp_file(&dir);
        *outcomes.entry((outcome, mid_write)).or_insert(0) += 1;
        let bak = dir.join("model.safetensors.bak");
        if backup && outcome == "upgraded" {
            assert_eq!(sha256(&bak), original_hash, "trial {trial}: the backup is the original");
        } else if bak.exists() {
            assert_eq!(sha256(&bak), original_hash, "trial {trial}: a backup, when there, is the original");
        }
        if !backup {
            assert!(!bak.exists(), "trial {trial}: --no-backup keeps none");
        }
        // A rerun finishes the job whatever the moment of the kill.
        let rerun = run(&dir, &args);
        assert_eq!(rerun.status.code(), Some(0), "{}", transcript(&rerun));
        assert_eq!(sha256(&path), upgraded_hash, "trial {trial}: the rerun completes the upgrade");
    }
    eprintln!("(outcome, killed mid-write) after SIGKILL within {window:?}: {outcomes:?} in {:?}", started.elapsed());
}

// ------------------------------------------------------------------------------------------------
// The lazy view against the written file, for every version of the registry.

/// The dims `synth` and `upgrade` need for a version of the repository's registry.
fn dims_for(version: &VersionId) -> Vec<(&'static str, i64)> {
    match version.family.as_str() {
        "anemoi.encprocdec" => vec![("enc_edges", 48), ("dec_edges", 120)],
        // hidden 16, kv_dim 8 (safeshift.yaml): 4 heads of 4, 2 key/value heads.
        family if family.starts_with("llama") => vec![("heads", 4), ("kv_heads", 2)],
        _ => Vec::new(),
    }
}

/// Where a version is taken: its family's default target, or, for a version that is
/// already there, back down its first inverse edge (the downgrade path).
fn target_for(registry: &Registry, version: &VersionId) -> Option<String> {
    let default = registry.graph().default_target(&version.family)?;
    if &default != version {
        return Some(default.to_string());
    }
    registry
        .graph()
        .graph()
        .versions()
        .find(|other| {
            *other != version && {
                safeshift::graph::plan(registry.graph().graph(), version, other).is_ok_and(|plan| !plan.lossy())
            }
        })
        .map(VersionId::to_string)
}

#[test]
fn the_lazy_view_and_the_written_file_agree_for_every_version() {
    let registry = Registry::embedded().unwrap();
    let temp = tempfile::tempdir().unwrap();
    let root = temp.path();
    let versions: Vec<VersionId> = registry.graph().graph().versions().cloned().collect();
    assert!(versions.len() >= 14, "the registry's eleven Anemoi and three LLaMA versions: {versions:?}");
    let mut compared = 0;
    for (index, version) in versions.iter().enumerate() {
        let Some(target) = target_for(&registry, version) else { continue };
        let input = root.join(format!("in-{index}.safetensors"));
        let output = root.join(format!("out-{index}.safetensors"));
        let dims = dims_for(version);
        let dim_args: Vec<String> =
            dims.iter().flat_map(|(name, value)| ["--dim".to_owned(), format!("{name}={value}")]).collect();
        let mut args: Vec<&str> = dim_args.iter().map(String::as_str).collect();
        synth(root, &version.to_string(), index as u64, &input, &args);
        let aux = graph_aux();
        args.extend(["--to", &target, "--aux", &aux]);
        let mut upgrade = vec!["upgrade", input.to_str().unwrap(), "-o", output.to_str().unwrap()];
        upgrade.extend_from_slice(&args);
        let written = run(root, &upgrade);
        assert_eq!(written.status.code(), Some(0), "{version} -> {target}: {}", transcript(&written));

        let options = OpenOptions {
            to: Some(target.clone()),
            dims: dims.iter().map(|(name, value)| (name.to_string(), *value)).collect(),
            aux: BTreeMap::from([("graph".to_owned(), repo("tests/data/anemoi/graph.safetensors"))]),
            ..OpenOptions::default()
        };
        let view = registry.open_with(&input, &options).unwrap_or_else(|err| panic!("{version}: {err}"));
        assert_eq!(view.to_version().to_string(), target);
        let file = Checkpoint::open(&output).unwrap();
        let context = format!("{version} -> {target}");
        // The reference crate reads the same file (the writer copies file ranges through its
        // own buffer: what it wrote must be a plain safetensors file).
        let image = std::fs::read(&output).unwrap();
        let reference = safetensors::SafeTensors::deserialize(&image).unwrap_or_else(|err| panic!("{context}: {err}"));
        assert_eq!(reference.len(), file.layout().tensors.len() + file.extras().len(), "{context}: tensor count");
        assert_eq!(
            view.names().collect::<Vec<_>>(),
            file.layout().tensors.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
            "{context}: names in order"
        );
        for (key, value) in view.metadata() {
            assert_eq!(file.layout().metadata.get(key), Some(value), "{context}: metadata `{key}`");
        }
        let extra: Vec<&String> =
            file.layout().metadata.keys().filter(|key| !view.metadata().contains_key(*key)).collect();
        assert_eq!(extra, ["safeshift.source"], "{context}: the file adds only its source stamp");
        for name in view.names() {
            let info = view.info(name).unwrap();
            assert_eq!(Some(info), file.tensor(name), "{context}: `{name}` dtype and shape");
            let bytes = file.tensor_bytes(name).unwrap();
            assert_eq!(view.tensor(name).unwrap().as_ref(), &*bytes, "{context}: `{name}`");
            assert_eq!(reference.tensor(name).unwrap().data(), &*bytes, "{context}: `{name}` read by `safetensors`");
            let Some(&rows) = info.shape.first() else { continue };
            let row_len = bytes.len() / rows.max(1) as usize;
            for range in [0..rows, 0..rows / 2, rows / 2..rows, rows / 3..rows - rows / 3] {
                let slice = view
                    .slice(name, range.clone())
                    .unwrap_or_else(|err| panic!("{context}: `{name}`[{range:?}]: {err}"));
                let want = &bytes[range.start as usize * row_len..range.end as usize * row_len];
                assert_eq!(slice.as_ref(), want, "{context}: `{name}` rows {range:?}");
            }
        }
        compared += 1;
    }
    assert_eq!(compared, versions.len(), "every version was compared");
}

// ------------------------------------------------------------------------------------------------
// Snapshots of what users see.

/// A folder with relative paths only, so transcripts are stable: `ckpts/a.safetensors`
/// (0.4.0), `ckpts/b.safetensors` (already 0.17.0), `ckpts/broken.safetensors` (truncated),
/// and `graph.safetensors`.
fn snapshot_folder() -> tempfile::TempDir {
    let temp = tempfile::tempdir().unwrap();
    let root = temp.path();
    std::fs::create_dir(root.join("ckpts")).unwrap();
    std::fs::copy(repo("tests/data/anemoi/graph.safetensors"), root.join("graph.safetensors")).unwrap();
    synth(root, "anemoi.encprocdec@0.4.0", 1, Path::new("ckpts/a.safetensors"), &GRAPH_DIMS);
    synth(root, HEAD, 2, Path::new("ckpts/b.safetensors"), &GRAPH_DIMS);
    let good = std::fs::read(root.join("ckpts/a.safetensors")).unwrap();
    std::fs::write(root.join("ckpts/broken.safetensors"), &good[..good.len() / 2]).unwrap();
    temp
}

fn assert_transcript(name: &str, output: &Output) {
    let filters = vec![(r"\d+\.\d\ds", "[time]"), (r#""seconds":\d+(\.\d+)?"#, r#""seconds":[time]"#)];
    insta::with_settings!({ filters => filters }, {
        insta::assert_snapshot!(name, transcript(output));
    });
}

#[test]
fn the_summary_table_and_json_records() {
    let temp = snapshot_folder();
    let root = temp.path();
    let args = ["upgrade", "ckpts", "--out-dir", "out", "--aux", "graph=graph.safetensors", "-j", "1"];
    let first = run(root, &args);
    assert_eq!(first.status.code(), Some(1));
    assert_transcript("upgrade_table", &first);
    let again = run(root, &args);
    assert_eq!(again.status.code(), Some(1));
    assert_transcript("upgrade_table_rerun", &again);
    let json =
        run(root, &["upgrade", "ckpts", "--out-dir", "out2", "--aux", "graph=graph.safetensors", "--json", "-j", "1"]);
    assert_transcript("upgrade_json", &json);
    let dry = run(root, &["upgrade", "ckpts", "--dry-run", "--aux", "graph=graph.safetensors", "-j", "1"]);
    assert_transcript("upgrade_dry_run", &dry);
    let back = run(
        root,
        &[
            "downgrade",
            "out/a.safetensors",
            "--to",
            "0.15.1",
            "-o",
            "back.safetensors",
            "--aux",
            "graph=graph.safetensors",
        ],
    );
    assert_eq!(back.status.code(), Some(0));
    assert_transcript("downgrade_table", &back);
    assert_eq!(detected(&Registry::embedded().unwrap(), &root.join("back.safetensors")), "anemoi.encprocdec@0.15.1");
}

#[test]
fn the_main_errors_are_clear() {
    let temp = snapshot_folder();
    let root = temp.path();
    std::fs::create_dir(root.join("empty")).unwrap();
    let evolution = repo("tests/data/evolution");
    let evolution = evolution.to_str().unwrap();
    synth(root, "toy.legacy@0.1.0", 3, Path::new("legacy.safetensors"), &["--registry", evolution]);
    std::fs::create_dir(root.join("clash")).unwrap();
    std::fs::copy(root.join("ckpts/a.safetensors"), root.join("clash/m.safetensors")).unwrap();
    std::fs::write(root.join("clash/m.pt"), b"PK").unwrap();
    let cases: [(&str, Vec<&str>, i32); 10] = [
        ("error_colliding_outputs", vec!["upgrade", "clash", "--out-dir", "out"], 2),
        (
            "error_downgrade_no_path",
            vec!["downgrade", "ckpts/b.safetensors", "--to", "0.4.0", "-o", "x.safetensors"],
            1,
        ),
        ("error_unknown_target", vec!["upgrade", "ckpts/a.safetensors", "-o", "x.safetensors", "--to", "9.9.9"], 1),
        (
            "error_lossy_refused",
            vec!["upgrade", "legacy.safetensors", "-o", "x.safetensors", "--registry", evolution],
            1,
        ),
        ("error_missing_aux", vec!["upgrade", "ckpts/a.safetensors", "-o", "x.safetensors"], 1),
        ("error_no_input", vec!["upgrade", "nothing.safetensors", "--out-dir", "out"], 2),
        ("error_empty_folder", vec!["upgrade", "empty", "--out-dir", "out"], 2),
        ("error_one_output_many_inputs", vec!["upgrade", "ckpts", "-o", "x.safetensors"], 2),
        ("error_corrupt_input", vec!["upgrade", "ckpts/broken.safetensors", "-o", "x.safetensors"], 1),
        ("error_no_destination", vec!["upgrade", "ckpts/a.safetensors"], 2),
    ];
    for (name, args, code) in cases {
        let output = run(root, &args);
        assert_eq!(output.status.code(), Some(code), "{name}: {}", transcript(&output));
        assert!(!root.join("x.safetensors").exists(), "{name}: no output after an error");
        assert_transcript(name, &output);
    }
}

#[test]
fn an_input_rewritten_beyond_its_first_mib_with_the_same_size_is_redone() {
    let temp = tempfile::tempdir().unwrap();
    let root = temp.path();
    std::fs::create_dir(root.join("in")).unwrap();
    let mut dims = vec!["--dim", "hidden=256", "--dim", "mlp_hidden=1024"];
    dims.extend_from_slice(&GRAPH_DIMS);
    synth(root, "anemoi.encprocdec@0.4.0", 1, Path::new("in/m.safetensors"), &dims);
    let aux = graph_aux();
    let args = ["upgrade", "in", "--out-dir", "out", "--aux", &aux, "--json"];
    let outcome = |output: &Output| records(output).0[0]["outcome"].as_str().unwrap().to_owned();
    assert_eq!(outcome(&run(root, &args)), "written");
    assert_eq!(outcome(&run(root, &args)), "skipped");
    let path = root.join("in/m.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 3 << 20, "the file is larger than the hashed first MiB: {}", bytes.len());
    // A value deep in the data section changes (a fine-tune of later layers): same size,
    // same header, same first MiB.
    let deep = bytes.len() - 1000;
    bytes[deep] ^= 0x01;
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(outcome(&run(root, &args)), "written", "the changed input is redone");
}
