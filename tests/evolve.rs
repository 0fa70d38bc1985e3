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

/// The shipped registry's versions of the Anemoi family, oldest first, from `graph`.
fn registry_versions() -> Vec<String> {
    let text = ok(&safeshift(&["graph"]));
    let block = text.split(&format!("{FAMILY} (head")).nth(1).expect("the Anemoi family");
    let mut versions: Vec<semver::Version> = block
        .lines()
        .skip(1)
        .take_while(|line| line.starts_with(' '))
        .filter_map(|line| line.strip_prefix("  ")?.split(' ').next()?.parse().ok())
        .collect();
    versions.sort();
    versions.into_iter().map(|version| version.to_string()).collect()
}

/// The state dict of every shipped version from the oldest fixture on: the fixture, or,
/// for a release with no fixture of its own (0.18.0, whose state dict the README shows is
/// 0.17.0's), the previous one upgraded to it by the shipped registry.
fn fixtures_by_version(dir: &Path) -> Vec<(String, String)> {
    let on_disk = fixture_versions();
    let oldest: semver::Version = on_disk[0].parse().unwrap();
    let graph = format!("graph={}", data().join("graph.safetensors").display());
    let mut out: Vec<(String, String)> = Vec::new();
    for version in registry_versions() {
        if version.parse::<semver::Version>().unwrap() < oldest {
            continue;
        }
        let file = if on_disk.contains(&version) {
            fixture(&version)
        } else {
            let (_, previous) = out.last().expect("an older fixture").clone();
            let made = dir.join(format!("{version}.safetensors"));
            ok(&safeshift(&["upgrade", &previous, "--to", &version, "--aux", &graph, "-o", path(&made)]));
            path(&made).to_owned()
        };
        out.push((version, file));
    }
    out
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

/// Every real pickle: the inference and training checkpoint of each release.
fn pickles() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/anemoi-checkpoints");
    let mut out = Vec::new();
    for version in fixture_versions() {
        for kind in ["inference", "training"] {
            let file = root.join(&version).join(format!("{kind}.ckpt"));
            assert!(file.exists(), "{}", file.display());
            out.push(file.display().to_string());
        }
    }
    out
}

/// Acceptance 2 on files: infer → detect → exact, for every safetensors fixture and every
/// real pickle (the synthetic checkpoints of every shipped schema are the evolve crate's
/// `roundtrip` tests).
#[test]
fn schema_infer_round_trips_on_every_fixture() {
    let versions = fixture_versions();
    assert!(versions.len() >= 10, "{versions:?}");
    let inputs: Vec<String> = versions.iter().map(|version| fixture(version)).chain(pickles()).collect();
    for input in inputs {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("schemas")).unwrap();
        let schema = dir.path().join("schemas/t.ss");
        ok(&safeshift(&["schema", "infer", &input, "--family", "t", "--version", "1.0.0", "-o", path(&schema)]));
        ok(&safeshift(&["fmt", "--check", path(&schema)]));
        let detected = ok(&safeshift(&["detect", &input, "--registry", path(dir.path())]));
        // Detection is exact here: an inferred schema has no `allow` and no optional
        // tensor, so fitting it means every tensor, dtype, shape and metadata key matches.
        assert!(detected.contains("t@1.0.0 (the only schema the layout fits)"), "{input}: {detected}");
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
    let pickle = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/anemoi-checkpoints/0.19.0/inference.ckpt");
    insta::assert_snapshot!(
        "infer_anemoi_0_19_0_inference_ckpt",
        ok(&safeshift(&["schema", "infer", path(&pickle), "--family", FAMILY, "--version", "0.19.0"]))
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
    assert!(text.contains(r#"tensor "layers.{i < layers_2}.w" : f32[d4, d4]"#), "{text}");
    let bad = dir.path().join("bad.json");
    fs::write(&bad, r#"{"w": {"dtype": "f33", "shape": [1]}}"#).unwrap();
    let output = safeshift(&["schema", "infer", path(&bad)]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("tensor `w`: unknown dtype `f33`"));
}

/// Acceptance 1 (a) and (b): every consecutive pair of shipped versions.
#[test]
fn drafts_for_every_consecutive_pair_of_fixtures() {
    let made = tempfile::tempdir().unwrap();
    let fixtures = fixtures_by_version(made.path());
    assert!(fixtures.len() >= 11, "{fixtures:?}");
    let mut report = String::new();
    let graph = data().join("graph.safetensors");
    for pair in fixtures.windows(2) {
        let ((a, file_a), (b, file_b)) = (&pair[0], &pair[1]);
        let dir = tempfile::tempdir().unwrap();
        // B' = A upgraded by the shipped registry: A's weights in B's layout.
        let upgraded = dir.path().join("upgraded.safetensors");
        let aux = format!("graph={}", graph.display());
        ok(&safeshift(&["upgrade", file_a, "--to", b, "--aux", &aux, "-o", path(&upgraded)]));

        // (a) by content, composed into a registry, checked and run.
        let content = dir.path().join("content");
        registry_of(&content, file_a, path(&upgraded));
        let drafted = content.join("migrations/t.ss");
        let diff = safeshift(&[
            "diff",
            file_a,
            path(&upgraded),
            "--draft",
            "--by-content",
            "--aux",
            &aux,
            "--from",
            "t@1.0.0",
            "--to",
            "t@2.0.0",
            "-o",
            path(&drafted),
        ]);
        assert!(matches!(diff.status.code(), Some(0 | 1)), "{a} -> {b}: {}", String::from_utf8_lossy(&diff.stderr));
        let draft_text = fs::read_to_string(&drafted).unwrap();
        ok(&safeshift(&["fmt", "--check", path(&drafted)]));
        let unresolved = draft_text.matches("// UNRESOLVED:").count();
        let lossy = draft_text
            .lines()
            .filter(|line| line.trim_start().starts_with("drop ") && line.ends_with(" lossy"))
            .count();
        let check = safeshift(&["check", "--synth", "--registry", path(&content)]);
        let out = dir.path().join("content.safetensors");
        // A drop the draft marks `lossy` (it cannot know the tensor is derived) makes the
        // path lossy: running it takes `--allow-lossy`, a flag, not an edit. The graph is
        // the aux input a drafted `gather` reads the order of re-ordered rows from.
        let run = safeshift(&[
            "upgrade",
            file_a,
            "--registry",
            path(&content),
            "--to",
            "2.0.0",
            "--aux",
            &aux,
            "--allow-lossy",
            "-o",
            path(&out),
        ]);
        let exact = run.status.success() && tensors(&out) == tensors(&upgraded);
        insta::assert_snapshot!(format!("draft_content_{a}_to_{b}"), draft_text);

        // (b) by names and shapes, against B itself; open questions accepted as drafted.
        let names = dir.path().join("names");
        registry_of(&names, file_a, file_b);
        let drafted = names.join("migrations/t.ss");
        safeshift(&["diff", file_a, file_b, "--draft", "--from", "t@1.0.0", "--to", "t@2.0.0", "-o", path(&drafted)]);
        let names_text = fs::read_to_string(&drafted).unwrap();
        insta::assert_snapshot!(format!("draft_names_{a}_to_{b}"), names_text);
        let names_unresolved = names_text.matches("// UNRESOLVED:").count();
        let accepted: String =
            names_text.lines().filter(|line| !line.contains("UNRESOLVED:")).map(|line| format!("{line}\n")).collect();
        fs::write(&drafted, accepted).unwrap();
        let out = dir.path().join("names.safetensors");
        let run_names = safeshift(&[
            "upgrade",
            file_a,
            "--registry",
            path(&names),
            "--to",
            "2.0.0",
            "--allow-lossy",
            "-o",
            path(&out),
        ]);
        let names_exact = run_names.status.success() && same_layout(&out, Path::new(file_b));
        let _ = writeln!(
            report,
            "{a} -> {b}: content: check --synth {}, {unresolved} unresolved, {lossy} lossy drops, upgrade exact {exact}; names: {names_unresolved} unresolved, names/shapes/dtypes exact {names_exact}",
            if check.status.success() { "ok" } else { "fails" },
        );
    }
    insta::assert_snapshot!("pairs", report);
}

/// 0.16 re-orders the trainable edge features by the graph's destination order: by content
/// the draft finds the permutation, and given the real `graph.pt` as `--aux`, writes the
/// index the shipped migration uses (the stable argsort of the edge set's destination row).
#[test]
fn a_row_order_is_drafted_from_the_graph_given_as_aux() {
    let dir = tempfile::tempdir().unwrap();
    let upgraded = dir.path().join("0.17.0.safetensors");
    let graph = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/anemoi-checkpoints/graph.pt");
    let aux = format!("graph={}", graph.display());
    ok(&safeshift(&["upgrade", &fixture("0.15.1"), "--to", "0.17.0", "--aux", &aux, "-o", path(&upgraded)]));
    let output = safeshift(&["diff", &fixture("0.15.1"), path(&upgraded), "--draft", "--by-content", "--aux", &aux]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("permuted  model.model.encoder_graph_provider.data.trainable.trainable"), "{stdout}");
    assert!(
        stdout.contains(r#"gather "model.model.encoder_graph_provider.data.trainable.trainable" axis 0 index argsort(graph["data_to_hidden.edge_index"], 1)"#),
        "{stdout}"
    );
    assert!(!stdout.contains("UNRESOLVED:"), "{stdout}");
    // Without the graph, the order is a question.
    let output = safeshift(&["diff", &fixture("0.15.1"), path(&upgraded), "--draft", "--by-content"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.matches("// UNRESOLVED: the rows of").count(), 2, "{stdout}");
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

/// The `safeshift` commands of a CI snippet of the book's "Evolving" chapter: GitHub
/// Actions' `- run: safeshift …` or GitLab CI's `- safeshift …` lines.
fn ci_commands(snippet: &str) -> Vec<Vec<String>> {
    snippet
        .lines()
        .filter_map(|line| {
            let line = line.trim_start().strip_prefix("- ")?;
            let line = line.strip_prefix("run: ").unwrap_or(line);
            let args = line.strip_prefix("safeshift ")?;
            Some(args.split_whitespace().map(str::to_owned).collect())
        })
        .collect()
}

/// Runs the CI commands in `repo`; the exit code of each.
fn run_ci(commands: &[Vec<String>], repo: &Path) -> Vec<Option<i32>> {
    commands
        .iter()
        .map(|args| {
            Command::new(env!("CARGO_BIN_EXE_safeshift"))
                .args(args)
                .current_dir(repo)
                .output()
                .expect("run safeshift")
                .status
                .code()
        })
        .collect()
}

/// Acceptance 3: the book's CI workflow, its exact `safeshift` commands, on a model
/// repository whose layout is unchanged (every step exits 0), drifted (the gate exits 1),
/// and fixed as the gate's output says (0 again). The layout JSON is written here from a
/// fixture's key list, in place of the chapter's script (which needs the model's code).
#[test]
fn the_books_ci_workflow_passes_unchanged_and_fails_drifted_layouts() {
    let chapter = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src/evolving.md")).unwrap();
    let section = &chapter[chapter.find("## CI for a model repository").expect("the CI section")..];
    let snippets: Vec<&str> = section.split("```yaml").skip(1).map(|rest| rest.split("```").next().unwrap()).collect();
    assert_eq!(snippets.len(), 2, "GitHub Actions and GitLab CI");
    let commands = ci_commands(snippets[0]);
    assert_eq!(commands, ci_commands(snippets[1]), "both snippets run the same commands");
    assert!(commands.iter().any(|args| args.contains(&"--against".to_owned())), "{commands:?}");

    // A model repository: today's layout, and the registry's schema inferred from it.
    let repo = tempfile::tempdir().unwrap();
    let layout = repo.path().join("layout.json");
    let keys = fs::read_to_string(data().join("0.17.0/keys.json")).unwrap();
    fs::write(&layout, &keys).unwrap();
    fs::create_dir_all(repo.path().join("schemas")).unwrap();
    let first = repo.path().join("schemas/model-1.0.0.ss");
    ok(&safeshift(&["schema", "infer", path(&layout), "--family", "model", "--version", "1.0.0", "-o", path(&first)]));
    let all_pass = vec![Some(0); commands.len()];
    assert_eq!(run_ci(&commands, repo.path()), all_pass, "unchanged");

    // A pull request renames a module: the gate, and only the gate, fails.
    fs::write(&layout, keys.replace("layer_norm_mlp_dst", "post_norm")).unwrap();
    let codes = run_ci(&commands, repo.path());
    let gate = commands.iter().position(|args| args.contains(&"--against".to_owned())).unwrap();
    for (step, code) in codes.iter().enumerate() {
        assert_eq!(*code, Some(if step == gate { 1 } else { 0 }), "drifted, step {step}: {:?}", commands[step]);
    }

    // The author does what the gate prints: the new schema, the drafted migration.
    let output =
        Command::new(env!("CARGO_BIN_EXE_safeshift")).args(&commands[gate]).current_dir(repo.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let migration = &stdout[stdout.find("// Drafted").expect("a draft")..];
    fs::create_dir_all(repo.path().join("migrations")).unwrap();
    fs::write(repo.path().join("migrations/model-1.0.0-to-1.0.1.ss"), migration).unwrap();
    let next = repo.path().join("schemas/model-1.0.1.ss");
    ok(&safeshift(&["schema", "infer", path(&layout), "--family", "model", "--version", "1.0.1", "-o", path(&next)]));
    assert_eq!(run_ci(&commands, repo.path()), all_pass, "fixed");
}
