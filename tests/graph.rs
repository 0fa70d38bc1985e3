//! Registries end to end: every broken registry in `tests/data/registries/<case>/` reports
//! all its problems, located, in one `check` run (snapshot beside each case); detection
//! of an exact fit, an ambiguous fit and a near miss; the evolution of a registry (every
//! version's schema and plan, synthesised, upgraded, checked, and downgraded back byte
//! for byte where the path is invertible); DOT output that Graphviz renders.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use safeshift::graph::{compile, detect_as, plan, run_in_memory, synth, synth_aux, synth_dims, Registry, VersionId};
use safeshift::model::Layout;

fn data(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(path)
}

fn safeshift(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_safeshift")).args(["--color", "never"]).args(args).output().expect("run safeshift")
}

/// Exit code, stdout and stderr together, for a snapshot.
fn transcript(output: &Output) -> String {
    format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        output.status.code().map_or("signal".to_owned(), |code| code.to_string()),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn snapshot_beside(dir: &Path, name: &str, text: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(dir);
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!(name, text));
}

#[test]
fn broken_registries_report_every_problem_located() {
    let root = data("registries");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root).unwrap().map(|entry| entry.unwrap().path()).collect();
    cases.sort();
    assert!(cases.len() >= 9, "the nine broken-registry cases are there");
    for case in cases {
        let output = safeshift(&["check", "--registry", case.to_str().unwrap()]);
        let text = transcript(&output);
        assert_eq!(output.status.code(), Some(1), "{}: {text}", case.display());
        assert!(text.contains(".ss:"), "{}: every problem is located: {text}", case.display());
        snapshot_beside(&case, "check", &text);
    }
}

#[test]
fn check_counts_a_clean_registry() {
    let output = safeshift(&["check", "--synth", "--registry", data("evolution").to_str().unwrap()]);
    insta::assert_snapshot!("check_evolution", transcript(&output));
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn check_on_a_missing_folder_is_an_error() {
    let output = safeshift(&["check", "--registry", data("no-such-registry").to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", transcript(&output));
}

fn synth_file(registry: &Path, version: &str, dir: &Path) -> PathBuf {
    let path = dir.join(format!("{version}.safetensors"));
    let output = safeshift(&[
        "synth",
        version,
        "--seed",
        "7",
        "-o",
        path.to_str().unwrap(),
        "--registry",
        registry.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", transcript(&output));
    path
}

#[test]
fn detect_an_exact_fit() {
    let registry = data("evolution");
    let dir = tempfile::tempdir().unwrap();
    let path = synth_file(&registry, "toy@2.0.0", dir.path());
    // Without the recorded version, unification alone must find it.
    let checkpoint = safeshift::engine::Checkpoint::open(&path).unwrap();
    let layout = Layout { metadata: BTreeMap::new(), ..checkpoint.layout().clone() };
    let bare = dir.path().join("bare.safetensors");
    write_layout(&bare, &layout);
    let output = safeshift(&["detect", bare.to_str().unwrap(), "--registry", registry.to_str().unwrap()]);
    insta::assert_snapshot!("detect_exact", transcript(&output).replace(dir.path().to_str().unwrap(), "<tmp>"));
    assert_eq!(output.status.code(), Some(0));
    let recorded = safeshift(&["detect", path.to_str().unwrap(), "--json", "--registry", registry.to_str().unwrap()]);
    let json: serde_json::Value = serde_json::from_slice(&recorded.stdout).unwrap();
    assert_eq!(json["data"]["id"], "toy@2.0.0");
    assert_eq!(json["data"]["evidence"], "recorded");
}

#[test]
fn detect_an_ambiguous_fit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    let layout = Layout {
        tensors: vec![safeshift::model::TensorInfo {
            name: "w".into(),
            dtype: safeshift::model::DType::F32,
            shape: vec![3, 3],
        }],
        metadata: BTreeMap::new(),
    };
    write_layout(&path, &layout);
    let output = safeshift(&["detect", path.to_str().unwrap(), "--registry", data("detect").to_str().unwrap()]);
    insta::assert_snapshot!("detect_ambiguous", transcript(&output).replace(dir.path().to_str().unwrap(), "<tmp>"));
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn detect_a_near_miss_shows_ranked_diffs() {
    let registry = data("evolution");
    let dir = tempfile::tempdir().unwrap();
    let path = synth_file(&registry, "toy@2.0.0", dir.path());
    let checkpoint = safeshift::engine::Checkpoint::open(&path).unwrap();
    let mut layout = Layout { metadata: BTreeMap::new(), ..checkpoint.layout().clone() };
    // One tensor lost, one with the wrong width.
    layout.tensors.retain(|tensor| tensor.name != "layers.1.v.bias");
    for tensor in &mut layout.tensors {
        if tensor.name == "final_norm.weight" {
            tensor.shape = vec![5];
        }
    }
    let near = dir.path().join("near.safetensors");
    write_layout(&near, &layout);
    let output = safeshift(&["detect", near.to_str().unwrap(), "--registry", registry.to_str().unwrap()]);
    insta::assert_snapshot!("detect_near_miss", transcript(&output).replace(dir.path().to_str().unwrap(), "<tmp>"));
    assert_eq!(output.status.code(), Some(1));
}

/// Writes a checkpoint with `layout` and zero bytes.
fn write_layout(path: &Path, layout: &Layout) {
    use safeshift::engine::{write, OutputTensor, TensorSource, WriteOptions};
    let buffers: Vec<Vec<u8>> =
        layout.tensors.iter().map(|tensor| vec![0u8; tensor.byte_len().unwrap() as usize]).collect();
    let tensors = layout
        .tensors
        .iter()
        .zip(&buffers)
        .map(|(tensor, bytes)| OutputTensor {
            name: tensor.name.clone(),
            dtype: tensor.dtype,
            shape: tensor.shape.clone(),
            source: TensorSource::Bytes(std::borrow::Cow::Borrowed(bytes.as_slice())),
        })
        .collect();
    write(path, tensors, &WriteOptions { metadata: layout.metadata.clone(), ..WriteOptions::default() }).unwrap();
}

/// The evolution of every version of `registry`: its schema (declared or derived) and its
/// plan to its family's target, then a synthetic checkpoint upgraded to the target and
/// checked against the target schema, and, where the way back is lossless, downgraded
/// back and compared byte for byte. Returns one report per version, and the problems.
fn evolution(registry: &Registry) -> (BTreeMap<VersionId, String>, Vec<String>) {
    let graph = registry.graph();
    let mut reports = BTreeMap::new();
    let mut problems = Vec::new();
    for version in graph.versions() {
        let mut report = String::new();
        let Some(schema) = registry.schema_of(version) else {
            problems.push(format!("`{version}` has no usable schema"));
            continue;
        };
        report.push_str(&safeshift::model::render_schema(schema));
        let Some(target) = registry.default_target(&version.family) else {
            problems.push(format!("`{}` has no single target", version.family));
            continue;
        };
        let path = match plan(graph, version, &target) {
            Ok(path) => path,
            Err(err) => {
                problems.push(format!("`{version}`: {err}"));
                continue;
            }
        };
        writeln!(report, "\nplan to `{target}`{}:", if path.lossy() { " (lossy)" } else { "" }).unwrap();
        for step in &path.steps {
            let undo = if step.inverse { " (undo)" } else { "" };
            writeln!(report, "  {} -> {}{undo}", step.from, step.to).unwrap();
        }
        let dims = synth_dims(registry, version, &BTreeMap::new());
        let input = synth(registry, version, &dims, 1).unwrap_or_else(|err| panic!("synth `{version}`: {err}"));
        let Some(aux) = synth_aux(registry, &path, &dims) else {
            problems.push(format!("`{version}`: cannot synthesise the aux inputs of its path"));
            continue;
        };
        let aux_layouts: BTreeMap<String, Layout> =
            aux.iter().map(|(name, aux)| (name.clone(), aux.layout.clone())).collect();
        let compiled = match detect_as(registry, version, &input.layout, &dims).map_err(|err| err.to_string()).and_then(
            |detection| {
                compile(registry, &path, &detection, &input.layout, &dims, &aux_layouts).map_err(|err| err.to_string())
            },
        ) {
            Ok(compiled) => compiled,
            Err(err) => {
                problems.push(format!("`{version}` -> `{target}` does not compile: {err}"));
                continue;
            }
        };
        let upgraded = run_in_memory(&compiled, &input, &aux).unwrap_or_else(|err| panic!("`{version}`: {err}"));
        let target_schema = registry.schema_of(&target).expect("the target has a schema");
        if let Err(mismatch) = safeshift::model::unify(target_schema, &upgraded.layout, &BTreeMap::new()) {
            problems.push(format!("`{version}` upgraded does not fit `{target}`:\n{mismatch}"));
            continue;
        }
        writeln!(report, "upgraded: {} tensors fit `{target}`", upgraded.layout.tensors.len()).unwrap();
        if path.steps.is_empty() {
            writeln!(report, "round trip: none needed (at the target)").unwrap();
            reports.insert(version.clone(), report);
            continue;
        }
        let back = match plan(graph, &target, version) {
            Ok(back) if !back.lossy() && !path.lossy() => back,
            _ => {
                writeln!(report, "round trip: none (no lossless way back)").unwrap();
                reports.insert(version.clone(), report);
                continue;
            }
        };
        let compiled_back = match detect_as(registry, &target, &upgraded.layout, &dims)
            .map_err(|err| err.to_string())
            .and_then(|detection| {
                compile(registry, &back, &detection, &upgraded.layout, &dims, &aux_layouts)
                    .map_err(|err| err.to_string())
            }) {
            Ok(compiled) => compiled,
            Err(err) => {
                problems.push(format!("`{target}` -> `{version}` does not compile: {err}"));
                continue;
            }
        };
        let restored =
            run_in_memory(&compiled_back, &upgraded, &aux).unwrap_or_else(|err| panic!("`{version}`: {err}"));
        let tensors =
            |checkpoint: &safeshift::graph::Synthetic| -> BTreeMap<String, (safeshift::model::TensorInfo, Vec<u8>)> {
                checkpoint
                    .layout
                    .tensors
                    .iter()
                    .zip(&checkpoint.data)
                    .map(|(info, bytes)| (info.name.clone(), (info.clone(), bytes.clone())))
                    .collect()
            };
        if tensors(&restored) == tensors(&input) {
            let steps = if back.steps.len() == 1 { "1 step" } else { "steps" };
            let steps = if back.steps.len() == 1 { steps.to_owned() } else { format!("{} {steps}", back.steps.len()) };
            writeln!(report, "round trip: {steps} back, every byte restored").unwrap();
        } else {
            problems.push(format!("`{version}` -> `{target}` -> `{version}` does not restore the bytes"));
        }
        reports.insert(version.clone(), report);
    }
    (reports, problems)
}

fn snapshot_evolution(name: &str, registry: &Registry) -> Vec<String> {
    let (reports, problems) = evolution(registry);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/evolution").join(name);
    for (version, report) in reports {
        snapshot_beside(&dir, &version.to_string(), &report);
    }
    problems
}

#[test]
fn evolution_of_the_test_registry() {
    let (registry, diagnostics) = Registry::load(&data("evolution")).unwrap();
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let problems = snapshot_evolution("toy", &registry);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn evolution_of_the_built_in_registry() {
    let (registry, diagnostics) = Registry::embedded();
    let codes: Vec<&str> = diagnostics.iter().map(|diagnostic| diagnostic.code).collect();
    let problems = snapshot_evolution("built-in", &registry);
    // The built-in registry has no problems: every version synthesises and upgrades (the LLaMA
    // head counts, which no shape tells, come from `safeshift.yaml`).
    insta::assert_snapshot!("evolution_built_in_problems", format!("diagnostics: {codes:?}\n{}", problems.join("\n")));
}

#[test]
fn dot_output_renders_with_graphviz() {
    let output = safeshift(&["graph", "--format", "dot", "--registry", data("evolution").to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", transcript(&output));
    insta::assert_snapshot!("graph_dot", String::from_utf8_lossy(&output.stdout));
    let Ok(mut dot) = Command::new("dot")
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        eprintln!("skipped: Graphviz `dot` is not installed");
        return;
    };
    use std::io::Write as _;
    dot.stdin.take().unwrap().write_all(&output.stdout).unwrap();
    let rendered = dot.wait_with_output().unwrap();
    assert!(rendered.status.success(), "dot failed: {}", String::from_utf8_lossy(&rendered.stderr));
    assert!(String::from_utf8_lossy(&rendered.stdout).contains("<svg"));
}

#[test]
fn graph_text_and_mermaid() {
    let registry = data("evolution");
    let text = safeshift(&["graph", "--registry", registry.to_str().unwrap()]);
    insta::assert_snapshot!("graph_text", transcript(&text));
    let mermaid = safeshift(&["graph", "--format", "mermaid", "--registry", registry.to_str().unwrap()]);
    insta::assert_snapshot!("graph_mermaid", transcript(&mermaid));
}

#[test]
fn plan_for_people_and_as_json() {
    let registry = data("evolution");
    let human = safeshift(&["plan", "--from", "toy.legacy@0.1.0", "--registry", registry.to_str().unwrap()]);
    insta::assert_snapshot!("plan_legacy", transcript(&human));
    let json = safeshift(&[
        "plan",
        "--from",
        "toy@3.0.0",
        "--to",
        "1.0.0",
        "--json",
        "--registry",
        registry.to_str().unwrap(),
    ]);
    insta::assert_snapshot!("plan_downgrade_json", transcript(&json));
    let none = safeshift(&[
        "plan",
        "--from",
        "toy@3.0.0",
        "--to",
        "toy.legacy@0.1.0",
        "--registry",
        registry.to_str().unwrap(),
    ]);
    insta::assert_snapshot!("plan_no_path", transcript(&none));
}

#[test]
fn schema_prints_derived_schemas() {
    let output = safeshift(&["schema", "toy@1.1.0", "--registry", data("evolution").to_str().unwrap()]);
    insta::assert_snapshot!("schema_derived", transcript(&output));
}

/// The recipe of the book's "Schema evolution in CI" chapter, as written there.
#[test]
fn the_ci_recipe_of_the_book_works() {
    let (registry, mut diagnostics) = safeshift::graph::Registry::load(&data("evolution")).unwrap();
    diagnostics.extend(safeshift::graph::check(&registry));
    diagnostics.extend(safeshift::graph::check_synth(&registry));
    let errors: Vec<String> = diagnostics
        .iter()
        .filter(|diagnostic| diagnostic.is_error())
        .map(|diagnostic| format!("{}: {}", diagnostic.code, diagnostic.message))
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    let (broken, mut diagnostics) = safeshift::graph::Registry::load(&data("registries/shape-mismatch")).unwrap();
    diagnostics.extend(safeshift::graph::check(&broken));
    assert!(diagnostics.iter().any(|diagnostic| diagnostic.is_error()));
}

#[test]
fn plan_starts_from_a_detected_checkpoint() {
    let registry = data("evolution");
    let dir = tempfile::tempdir().unwrap();
    let path = synth_file(&registry, "toy@2.0.0", dir.path());
    let output = safeshift(&["plan", path.to_str().unwrap(), "--registry", registry.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", transcript(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).starts_with("toy@2.0.0 -> toy@3.0.0: 2 steps\n"),
        "{}",
        transcript(&output)
    );
    let neither = safeshift(&["plan", "--registry", registry.to_str().unwrap()]);
    assert_eq!(neither.status.code(), Some(2), "{}", transcript(&neither));
}
