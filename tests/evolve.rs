//! `schema infer`, `diff --draft [--by-content]` and `check --against` on real files: the
//! Anemoi fixtures of every release, synthetic checkpoints, layout JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use safetensors::SafeTensors;

const FAMILY: &str = "anemoi.encprocdec";

fn safeshift(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_safeshift")).args(["--color", "never"]).args(args).output().expect("run safeshift")
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}\n{}\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/anemoi")
}

/// The fixture versions on disk, oldest first.
fn fixture_versions() -> Vec<String> {
    let mut versions: Vec<semver::Version> = fs::read_dir(data())
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|version: &semver::Version| data().join(version.to_string()).join("state_dict.safetensors").exists())
        .collect();
    versions.sort();
    versions.into_iter().map(|version| version.to_string()).collect()
}

fn fixture(version: &str) -> String {
    data().join(version).join("state_dict.safetensors").display().to_string()
}

fn path(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Every tensor of two safetensors files: (dtype, shape, bytes) by name.
fn tensors(file: &Path) -> BTreeMap<String, (String, Vec<usize>, Vec<u8>)> {
    let bytes = fs::read(file).unwrap();
    let parsed = SafeTensors::deserialize(&bytes).unwrap();
    parsed
        .tensors()
        .into_iter()
        .map(|(name, view)| (name, (format!("{:?}", view.dtype()), view.shape().to_vec(), view.data().to_vec())))
        .collect()
}

fn same_layout(a: &Path, b: &Path) -> bool {
    let strip = |map: BTreeMap<String, (String, Vec<usize>, Vec<u8>)>| -> BTreeMap<String, (String, Vec<usize>)> {
        map.into_iter().map(|(name, (dtype, shape, _))| (name, (dtype, shape))).collect()
    };
    strip(tensors(a)) == strip(tensors(b))
}

/// A registry folder with the inferred schemas of `old` (1.0.0) and `new` (2.0.0).
fn registry_of(dir: &Path, old: &str, new: &str) {
    fs::create_dir_all(dir.join("schemas")).unwrap();
    fs::create_dir_all(dir.join("migrations")).unwrap();
    for (input, version) in [(old, "1.0.0"), (new, "2.0.0")] {
        let schema = dir.join(format!("schemas/t-{version}.ss"));
        ok(&safeshift(&["schema", "infer", input, "--family", "t", "--version", version, "-o", path(&schema)]));
    }
}

#[test]
fn schema_infer_round_trips_on_every_fixture() {
    let versions = fixture_versions();
    assert!(versions.len() >= 9, "{versions:?}");
    for version in versions {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("schemas")).unwrap();
        let schema = dir.path().join("schemas/t.ss");
        ok(&safeshift(&[
            "schema",
            "infer",
            &fixture(&version),
            "--family",
            "t",
            "--version",
            "1.0.0",
            "-o",
            path(&schema),
        ]));
        ok(&safeshift(&["fmt", "--check", path(&schema)]));
        let detected = ok(&safeshift(&["detect", &fixture(&version), "--registry", path(dir.path())]));
        assert!(detected.contains("t@1.0.0"), "{version}: {detected}");
    }
}

#[test]
fn inferred_schemas_of_anemoi_and_llama() {
    insta::assert_snapshot!(
        "infer_anemoi_0_4_0",
        ok(&safeshift(&["schema", "infer", &fixture("0.4.0"), "--family", FAMILY, "--version", "0.4.0"]))
    );
    insta::assert_snapshot!(
        "infer_anemoi_0_17_0",
        ok(&safeshift(&["schema", "infer", &fixture("0.17.0"), "--family", FAMILY, "--version", "0.17.0"]))
    );
    insta::assert_snapshot!(
        "infer_llama_hf",
        ok(&safeshift(&["schema", "infer", "llama.hf@1.0.0", "--family", "llama.hf", "--version", "1.0.0"]))
    );
}

#[test]
fn a_layout_json_is_an_input_and_bad_ones_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("layout.json");
    fs::write(&good, r#"{"tensors": {"layers.0.w": {"dtype": "float32", "shape": [4, 4]}, "layers.1.w": {"dtype": "float32", "shape": [4, 4]}}}"#).unwrap();
    let text = ok(&safeshift(&["schema", "infer", path(&good)]));
    assert!(text.contains(r#"tensor "layers.{i < layers}.w" : f32[d4, d4]"#), "{text}");
    let bad = dir.path().join("bad.json");
    fs::write(&bad, r#"{"w": {"dtype": "f33", "shape": [1]}}"#).unwrap();
    let output = safeshift(&["schema", "infer", path(&bad)]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("tensor `w`: unknown dtype `f33`"));
}

/// Acceptance 1 (a) and (b): every consecutive pair of fixtures.
#[test]
fn drafts_for_every_consecutive_pair_of_fixtures() {
    let versions = fixture_versions();
    let mut report = String::new();
    let graph = data().join("graph.safetensors");
    for pair in versions.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        // A fixture newer than the shipped registry's head has no upgrade to compare with.
        if !safeshift(&["schema", &format!("{FAMILY}@{b}")]).status.success() {
            let _ = writeln!(report, "{a} -> {b}: no shipped schema for {b}");
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        // B' = A upgraded by the shipped registry: A's weights in B's layout.
        let upgraded = dir.path().join("upgraded.safetensors");
        let aux = format!("graph={}", graph.display());
        ok(&safeshift(&["upgrade", &fixture(a), "--to", b, "--aux", &aux, "-o", path(&upgraded)]));

        // (a) by content, composed into a registry, checked and run.
        let content = dir.path().join("content");
        registry_of(&content, &fixture(a), path(&upgraded));
        let drafted = content.join("migrations/t.ss");
        let diff = safeshift(&[
            "diff",
            &fixture(a),
            path(&upgraded),
            "--draft",
            "--by-content",
            "--from",
            "t@1.0.0",
            "--to",
            "t@2.0.0",
            "-o",
            path(&drafted),
        ]);
        assert_eq!(diff.status.code(), Some(1), "{a} -> {b}: {}", String::from_utf8_lossy(&diff.stderr));
        let draft_text = fs::read_to_string(&drafted).unwrap();
        ok(&safeshift(&["fmt", "--check", path(&drafted)]));
        let unresolved = draft_text.matches("// UNRESOLVED:").count();
        let check = safeshift(&["check", "--registry", path(&content)]);
        let out = dir.path().join("content.safetensors");
        let run = safeshift(&["upgrade", &fixture(a), "--registry", path(&content), "--to", "2.0.0", "-o", path(&out)]);
        let exact = run.status.success() && tensors(&out) == tensors(&upgraded);
        insta::assert_snapshot!(format!("draft_content_{a}_to_{b}"), draft_text);

        // (b) by names and shapes, against B itself; open questions accepted as drafted.
        let names = dir.path().join("names");
        registry_of(&names, &fixture(a), &fixture(b));
        let drafted = names.join("migrations/t.ss");
        safeshift(&[
            "diff",
            &fixture(a),
            &fixture(b),
            "--draft",
            "--from",
            "t@1.0.0",
            "--to",
            "t@2.0.0",
            "-o",
            path(&drafted),
        ]);
        let names_text = fs::read_to_string(&drafted).unwrap();
        insta::assert_snapshot!(format!("draft_names_{a}_to_{b}"), names_text);
        let names_unresolved = names_text.matches("// UNRESOLVED:").count();
        let accepted: String =
            names_text.lines().filter(|line| !line.contains("UNRESOLVED:")).map(|line| format!("{line}\n")).collect();
        fs::write(&drafted, accepted).unwrap();
        let out = dir.path().join("names.safetensors");
        let run_names = safeshift(&[
            "upgrade",
            &fixture(a),
            "--registry",
            path(&names),
            "--to",
            "2.0.0",
            "--allow-lossy",
            "-o",
            path(&out),
        ]);
        let names_exact = run_names.status.success() && same_layout(&out, Path::new(&fixture(b)));
        let _ = writeln!(
            report,
            "{a} -> {b}: content: check {}, {unresolved} unresolved, upgrade exact {exact}; names: {names_unresolved} unresolved, names/shapes/dtypes exact {names_exact}",
            if check.status.success() { "ok" } else { "fails" },
        );
    }
    insta::assert_snapshot!("pairs", report);
}

/// Acceptance 3: the CI gate, on an unchanged and a drifted layout, as the book's
/// workflow runs it.
#[test]
fn check_against_exit_codes() {
    // A model repository's registry: one schema, inferred from today's model.
    let repo = tempfile::tempdir().unwrap();
    fs::create_dir_all(repo.path().join("schemas")).unwrap();
    let schema = repo.path().join("schemas/model-1.0.0.ss");
    ok(&safeshift(&[
        "schema",
        "infer",
        &fixture("0.17.0"),
        "--family",
        "model",
        "--version",
        "1.0.0",
        "-o",
        path(&schema),
    ]));
    let registry = repo.path();
    let same = safeshift(&["check", "--registry", path(registry), "--against", &fixture("0.17.0")]);
    assert_eq!(same.status.code(), Some(0), "{}", String::from_utf8_lossy(&same.stdout));
    // The layout JSON a script writes after a code change renamed a module.
    let drifted = repo.path().join("layout.json");
    let keys = fs::read_to_string(data().join("0.17.0/keys.json")).unwrap();
    fs::write(&drifted, keys.replace("layer_norm_mlp_dst", "post_norm")).unwrap();
    let output = safeshift(&["check", "--registry", path(registry), "--against", path(&drifted)]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("renamed"), "{stdout}");
    assert!(stdout.contains("migration model 1.0.0 -> 1.0.1"), "{stdout}");
    insta::assert_snapshot!("check_against_drifted", stdout.replace(path(repo.path()), "[repo]"));
    // The drafted migration and the new schema, added as the output says, pass the gate.
    let migration = stdout[stdout.find("// Drafted").unwrap()..].to_owned();
    fs::create_dir_all(repo.path().join("migrations")).unwrap();
    fs::write(repo.path().join("migrations/model-1.0.0-to-1.0.1.ss"), migration).unwrap();
    let next = repo.path().join("schemas/model-1.0.1.ss");
    ok(&safeshift(&["schema", "infer", path(&drifted), "--family", "model", "--version", "1.0.1", "-o", path(&next)]));
    ok(&safeshift(&["check", "--registry", path(registry)]));
    let after = safeshift(&["check", "--registry", path(registry), "--against", path(&drifted)]);
    assert_eq!(after.status.code(), Some(0), "{}", String::from_utf8_lossy(&after.stdout));
}
