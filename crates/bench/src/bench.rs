//! The benchmark run: generate, warm, measure every step, compare, report.

use std::error::Error;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use safeshift_engine::Checkpoint;

use crate::llama::LlamaShape;
use crate::measure::{self, median};
use crate::report::{self, Measurement, Row, Target};
use crate::size::format_bytes;
use crate::synth::{self, ModelShape};
use safeshift_model::DType;

/// What to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Target size of the synthetic checkpoint.
    pub size: u64,
    /// Runs per process-level measurement.
    pub runs: usize,
    /// Batches per in-process measurement.
    pub cheap_runs: usize,
    /// Outputs and scratch.
    pub out_dir: PathBuf,
    /// Also write the report here.
    pub markdown: Option<PathBuf>,
    /// Run the Python baselines.
    pub python: bool,
    /// Install torch for step 7.
    pub torch: bool,
    /// The cached Python environment.
    pub venv: PathBuf,
    /// Keep the scratch directory.
    pub keep_scratch: bool,
    /// Which groups of steps to run.
    pub groups: Vec<Group>,
    /// Size of the LLaMA checkpoint.
    pub llama_size: u64,
    /// Size of the pickled state dict.
    pub pickle_size: u64,
    /// Files in the archive.
    pub archive_files: usize,
    /// Largest generated registry.
    pub max_schemas: usize,
}

/// A group of steps, chosen with `--steps`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Group {
    /// Steps 1–6 on the synthetic Anemoi-like checkpoint.
    Core,
    /// The LLaMA Meta → HF upgrade against `cp` + `sync`.
    Llama,
    /// Step 1 with registries of 3 to 10,000 schemas, and with the real one.
    Registries,
    /// Step 7: pickle conversion against torch.
    Pickle,
    /// Step 8: an archive upgraded with `--jobs 1, 2, 4` against `cp -r`.
    Archive,
}

const MIB_KIB: u64 = 1024;

/// The `--jobs` values of the archive step.
const ARCHIVE_JOBS: [usize; 3] = [1, 2, 4];

/// The generated registry sizes of step 1.
const REGISTRY_SIZES: [usize; 4] = [3, 100, 1_000, 10_000];

/// Runs the whole benchmark and prints the report.
pub fn run(config: &Config) -> Result<(), Box<dyn Error>> {
    std::fs::create_dir_all(&config.out_dir)?;
    let scratch = tempfile::Builder::new().prefix("scratch-").tempdir_in(&config.out_dir)?;
    let dir = scratch.path();
    let group = |group: Group| config.groups.contains(&group);
    let shape = ModelShape::for_size(config.size);
    let path = |name: &str| dir.join(name);
    let input = path("model.safetensors");
    let n_tensors = shape.tensors().len();
    eprintln!(
        "generating {} ({n_tensors} tensors, hidden {}) in {}",
        format_bytes(shape.data_bytes()),
        shape.hidden,
        dir.display()
    );
    synth::generate(&input, &shape)?;
    let registry_dir = path("registry");
    crate::pipeline::write_registry(&registry_dir, &shape)?;
    let registry = crate::pipeline::load_registry(&registry_dir)?;
    let file_len = std::fs::metadata(&input)?.len();
    let me = std::env::current_exe()?;
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    let mut notes = Vec::new();
    let mut loads = Vec::new();

    // The Python environment, the pickle, the LLaMA and the archive first: they are not
    // measured.
    let wants_python = config.python && (group(Group::Core) || group(Group::Pickle));
    let venv = if wants_python {
        crate::python::prepare(&config.venv, config.torch && group(Group::Pickle))
    } else {
        Err("--no-python, or no step needs it".to_owned())
    };
    let (python_way, torch_way) = crate::python::write_scripts(dir)?;
    let pickle = path("state_dict.pt");
    let pickle_ready = match &venv {
        Ok(_) if !group(Group::Pickle) => Err("not asked for (--steps)".to_owned()),
        Ok(venv) if venv.has_torch => {
            eprintln!("writing a {} state dict with torch.save", format_bytes(config.pickle_size));
            let mut command = Command::new(&venv.python);
            command.arg(&torch_way).arg("state-dict").arg(&pickle).arg(config.pickle_size.to_string());
            measure::run(&mut command).map(|_| ())
        }
        Ok(_) => Err("torch is not installed in the bench's environment (without `--no-torch` it is installed from PyPI; that failed)".to_owned()),
        Err(reason) => Err(reason.clone()),
    };
    let llama_input = path("llama.safetensors");
    let llama_shape = LlamaShape::for_size(config.llama_size, 2048, 32_000, DType::BF16, false);
    if group(Group::Llama) || group(Group::Registries) {
        eprintln!("generating a {} LLaMA ({} layers)", format_bytes(llama_shape.data_bytes()), llama_shape.layers);
        crate::llama::generate(&llama_input, &llama_shape)?;
    }
    let archive_dir = path("archive");
    let safeshift_bin = me.with_file_name("safeshift");
    let archive = if !group(Group::Archive) {
        Err("not asked for (--steps)".to_owned())
    } else if !safeshift_bin.exists() {
        Err(format!(
            "no `safeshift` binary beside the bench at {} (build it: `cargo build --release --bin safeshift`)",
            safeshift_bin.display()
        ))
    } else {
        eprintln!("generating an archive of {} checkpoints", config.archive_files);
        crate::archive::generate(&archive_dir, config.archive_files).map_err(|err| err.to_string())
    };

    // Every process-level job, run round-robin so that the load of a shared machine
    // falls on all of them alike.
    let mut jobs: Vec<Job> = Vec::new();
    if group(Group::Core) {
        jobs.extend([
            Job::new("cat", None, sh(r#"cat "$1" > /dev/null"#, &[&input])),
            Job::new("cp", Some(path("cp-plain.safetensors")), {
                let mut command = Command::new("/bin/cp");
                command.arg(&input).arg(path("cp-plain.safetensors"));
                command
            }),
            Job::new(
                "cp_sync",
                Some(path("cp.safetensors")),
                sh(r#"/bin/cp "$1" "$2" && sync "$2""#, &[&input, &path("cp.safetensors")]),
            ),
            Job::new("view_light", None, child(&me, "view-light", &input, None, &registry_dir)),
            Job::new("view_heavy", None, child(&me, "view-heavy", &input, None, &registry_dir)),
            Job::new(
                "light",
                Some(path("light.safetensors")),
                child(&me, "rewrite-light", &input, Some(&path("light.safetensors")), &registry_dir),
            ),
            Job::new(
                "heavy",
                Some(path("heavy.safetensors")),
                child(&me, "rewrite-heavy", &input, Some(&path("heavy.safetensors")), &registry_dir),
            ),
        ]);
    }
    if group(Group::Llama) {
        jobs.push(Job::new(
            "llama_cp_sync",
            Some(path("llama-cp.safetensors")),
            sh(r#"/bin/cp "$1" "$2" && sync "$2""#, &[&llama_input, &path("llama-cp.safetensors")]),
        ));
        jobs.push(Job::new(
            "llama_upgrade",
            Some(path("llama-hf.safetensors")),
            child(&me, "upgrade-llama", &llama_input, Some(&path("llama-hf.safetensors")), &registry_dir),
        ));
    }
    if let (Ok(venv), true) = (&venv, group(Group::Core)) {
        let python = |migration: &str, output: &Path| {
            let mut command = Command::new(&venv.python);
            command.arg(&python_way).arg(migration).arg(&input).arg(output).arg("--heads").arg(shape.heads.to_string());
            command
        };
        jobs.push(Job::new(
            "py_light",
            Some(path("py-light.safetensors")),
            python("light", &path("py-light.safetensors")),
        ));
        jobs.push(Job::new(
            "py_heavy",
            Some(path("py-heavy.safetensors")),
            python("heavy", &path("py-heavy.safetensors")),
        ));
    }
    if let (Ok(venv), Ok(())) = (&venv, &pickle_ready) {
        let torch = |command: &str, output: &str| {
            let mut torch = Command::new(&venv.python);
            torch.arg(&torch_way).arg(command).arg(&pickle).arg(output);
            torch
        };
        let torch_output = path("torch.safetensors");
        jobs.push(Job::new(
            "torch_convert",
            Some(torch_output.clone()),
            torch("convert", &torch_output.to_string_lossy()),
        ));
        jobs.push(Job::new("torch_load", None, torch("load", "-")));
        jobs.push(Job::new(
            "convert",
            Some(path("convert.safetensors")),
            child(&me, "convert-pickle", &pickle, Some(&path("convert.safetensors")), &registry_dir),
        ));
    }
    if archive.is_ok() {
        let copy = path("archive-cp");
        jobs.push(Job::new(
            "archive_cp",
            Some(copy.clone()),
            sh(r#"/bin/cp -r "$1" "$2" && find "$2" -type f -exec sync {} +"#, &[&archive_dir, &copy]),
        ));
        for (key, jobs_n) in ["archive_j1", "archive_j2", "archive_j4"].into_iter().zip(ARCHIVE_JOBS) {
            let out = path(&format!("archive-j{jobs_n}"));
            let mut command = Command::new(&safeshift_bin);
            command.arg("upgrade").arg(&archive_dir).arg("--out-dir").arg(&out).arg("--jobs").arg(jobs_n.to_string());
            for (name, value) in crate::llama::dims() {
                command.arg("--dim").arg(format!("{name}={value}"));
            }
            jobs.push(Job::new(key, Some(out), command));
        }
    }
    for (file, wanted) in [(&input, true), (&llama_input, group(Group::Llama)), (&pickle, pickle_ready.is_ok())] {
        if wanted {
            warm(file)?;
        }
    }
    if archive.is_ok() {
        for entry in walk_files(&archive_dir)? {
            warm(&entry)?;
        }
    }
    eprintln!("measuring {} jobs, {} runs each, round-robin", jobs.len(), config.runs);
    let results = measure_interleaved(config.runs, &jobs, &mut loads);
    let result = |key: &str| -> Result<Measurement, String> {
        results
            .iter()
            .find(|(name, _)| *name == key)
            .map_or_else(|| Err("not run".to_owned()), |(_, result)| result.clone())
    };
    let cheap = config.cheap_runs;

    if group(Group::Core) {
        core_rows(
            &mut rows,
            &mut targets,
            &mut notes,
            &result,
            config,
            &shape,
            &input,
            &registry,
            &registry_dir,
            file_len,
            venv.is_ok(),
        )?;
        if venv.is_ok() {
            for (migration, ours, theirs) in [
                ("light", "light.safetensors", "py-light.safetensors"),
                ("heavy", "heavy.safetensors", "py-heavy.safetensors"),
            ] {
                match same_tensors(&path(ours), &path(theirs)) {
                    Ok(()) => notes.push(format!("The {migration} outputs of safeshift and of the Python way hold identical tensors (names, dtypes, shapes, bytes).")),
                    Err(diff) => notes.push(format!("**The {migration} outputs of safeshift and of the Python way differ:** {diff}")),
                }
            }
        }
    }
    if group(Group::Registries) {
        loads.push(load_average());
        registry_rows(&mut rows, &mut targets, config, &shape, &input, dir, &llama_input)?;
    }
    if group(Group::Llama) {
        let llama_len = std::fs::metadata(&llama_input)?.len();
        let (cp_sync, upgrade) = (result("llama_cp_sync"), result("llama_upgrade"));
        rows.push(row("L", "`/bin/cp` + `sync FILE` of the LLaMA", Some(llama_len), &cp_sync));
        rows.push(row(
            "L",
            &format!(
                "safeshift upgrade, LLaMA Meta → HF (renames; rotary permute-heads of q and k computed: {} of {})",
                format_bytes(llama_shape.computed_bytes()),
                format_bytes(llama_len)
            ),
            Some(llama_len),
            &upgrade,
        ));
        targets.push(ratio_target("L", "LLaMA Meta → HF ≤ 1.2× `cp` + sync", &upgrade, &cp_sync, 1.2));
        let limit = 2 * llama_shape.largest_computed_bytes() / 1024 + 64 * MIB_KIB;
        let goal = format!("peak anon ≤ 2 × largest computed tensor + 64 MiB = {}", format_bytes(limit * 1024));
        targets.push(memory_target("L", &goal, &upgrade, limit + 1));
    }
    match &pickle_ready {
        Ok(()) => {
            let pickle_len = std::fs::metadata(&pickle)?.len();
            let (convert, torch_convert, torch_load) =
                (result("convert"), result("torch_convert"), result("torch_load"));
            let what = format!("({}: f32, bf16, transposed and sliced views)", format_bytes(pickle_len));
            rows.push(row("7", &format!("safeshift convert `.pt` → safetensors {what}"), Some(pickle_len), &convert));
            rows.push(row(
                "7",
                "`torch.load(weights_only=True)` + `safetensors.torch.save_file`",
                Some(pickle_len),
                &torch_convert,
            ));
            rows.push(row("7", "`torch.load(weights_only=True)` alone", Some(pickle_len), &torch_load));
            targets.push(speedup_target(
                "7",
                "≥ 2× faster than `torch.load` + `save_file`",
                &convert,
                &torch_convert,
                2.0,
            ));
            targets.push(speedup_target("7", "not slower than `torch.load` alone", &convert, &torch_load, 1.0));
            targets.push(memory_ratio_target(
                "7",
                "≤ ½ the peak RSS of `torch.load` + `save_file`",
                &convert,
                &torch_convert,
                2.0,
            ));
            targets.push(memory_ratio_target(
                "7",
                "≤ ½ the peak RSS of `torch.load` alone",
                &convert,
                &torch_load,
                2.0,
            ));
            match same_tensors(&path("convert.safetensors"), &path("torch.safetensors")) {
                Ok(()) => notes.push("The converted pickles of safeshift and of torch hold identical tensors.".into()),
                Err(diff) => notes.push(format!("**The converted pickles of safeshift and of torch differ:** {diff}")),
            }
        }
        Err(reason) if group(Group::Pickle) => {
            rows.push(Row {
                step: "7",
                what: "pickle conversion against `torch.load`".into(),
                result: Err(format!("skipped: {reason}")),
            });
        }
        Err(_) => {}
    }
    match &archive {
        Ok(archive) => archive_rows(&mut rows, &mut targets, &mut notes, &result, archive),
        Err(reason) if group(Group::Archive) => {
            rows.push(Row {
                step: "8",
                what: "archive upgrade against `cp -r`".into(),
                result: Err(format!("skipped: {reason}")),
            });
        }
        Err(_) => {}
    }

    notes.push(format!(
        "Times are medians of {} runs (with the fastest run), interleaved round-robin across the process-level steps ({cheap} batches of at least 50 ms for the in-process steps 1); memory is the maximum over the runs. \
         Peak RSS is `VmHWM` (it counts the pages of a mapped input that were touched), peak anon the largest `RssAnon` (heap and stacks, not the mapped file) from `/proc/<pid>/status`, polled every 1 ms and read by the process itself at exit. \
         Process-level times include starting the process (and, for Python, importing NumPy or torch). safeshift fsyncs its output; `cp` and the Python scripts do not, hence the `cp` + `sync FILE` baselines. \
         Load average (1 min) during the runs: {}.",
        config.runs,
        loads.iter().map(|load| format!("{load:.1}")).collect::<Vec<_>>().join(", "),
    ));
    let title = format!("### safeshift-bench, {} checkpoint", format_bytes(file_len));
    let text = report::render(&title, &crate::machine::describe(dir), &rows, &targets, &notes);
    println!("{text}");
    if let Some(path) = &config.markdown {
        std::fs::write(path, &text)?;
    }
    if config.keep_scratch {
        eprintln!("kept {}", scratch.keep().display());
    }
    Ok(())
}

/// Steps 1–6 on the synthetic Anemoi-like checkpoint.
#[allow(clippy::too_many_arguments)]
fn core_rows(
    rows: &mut Vec<Row>,
    targets: &mut Vec<Target>,
    notes: &mut Vec<String>,
    result: &dyn Fn(&str) -> Result<Measurement, String>,
    config: &Config,
    shape: &ModelShape,
    input: &Path,
    registry: &safeshift::Registry,
    registry_dir: &Path,
    file_len: u64,
    python: bool,
) -> Result<(), Box<dyn Error>> {
    let n_tensors = shape.tensors().len();
    // The machine's limits.
    rows.push(row("—", "`cat FILE > /dev/null` (read limit)", Some(file_len), &result("cat")));
    rows.push(row("—", "`/bin/cp` (copy limit)", Some(file_len), &result("cp")));
    rows.push(row(
        "—",
        "`/bin/cp` + `sync FILE` (copy limit, durable like safeshift)",
        Some(file_len),
        &result("cp_sync"),
    ));

    // 1. Headers, in process.
    eprintln!("measuring header parsing");
    let cheap = config.cheap_runs;
    let open = per_iteration(cheap, || Checkpoint::open(input).map(|checkpoint| checkpoint.layout().tensors.len()));
    rows.push(row("1", &format!("safeshift open ({n_tensors} tensors, headers only)"), None, &open));
    let open_plan = per_iteration(cheap, || crate::pipeline::open(registry, input, crate::pipeline::Migration::Heavy));
    rows.push(row(
        "1",
        "safeshift open + detect + plan + compile (heavy migration, registry loaded)",
        None,
        &open_plan,
    ));
    let load = per_iteration(cheap, || crate::pipeline::load_registry(registry_dir));
    rows.push(row("1", "(load the registry: 3 schemas, 2 migrations)", None, &load));
    let parse = per_iteration(cheap, || read_metadata(input));
    rows.push(row("1", "`safetensors` crate: open + mmap + `read_metadata`", None, &parse));
    let deserialize = per_iteration(cheap, || -> Result<usize, Box<dyn Error>> {
        let file = File::open(input)?;
        // SAFETY: the bench's own scratch file, not modified while mapped.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok(safetensors::SafeTensors::deserialize(&map)?.len())
    });
    rows.push(row("1", "`safetensors` crate: open + mmap + `deserialize`", None, &deserialize));
    targets.push(ratio_target("1", "open + detect + plan ≤ 1.5× header parse", &open_plan, &parse, 1.5));

    // 2. The view.
    rows.push(row(
        "2",
        "safeshift view, light plan: every tensor once, every page touched (zero-copy)",
        Some(file_len),
        &result("view_light"),
    ));
    rows.push(row(
        "2",
        "safeshift view, heavy plan: every tensor once (computed ones computed)",
        Some(file_len),
        &result("view_heavy"),
    ));

    // 3 and 4. Rewrites.
    let (cp_sync, light, heavy) = (result("cp_sync"), result("light"), result("heavy"));
    rows.push(row("3", "safeshift rewrite, light: rename + reshape", Some(file_len), &light));
    rows.push(row("4", "safeshift rewrite, heavy: split-heads + transpose + cast f32→bf16", Some(file_len), &heavy));
    targets.push(ratio_target("3", "≤ 1.1× `cp` + sync", &light, &cp_sync, 1.1));
    targets.push(memory_target("3", "peak anon < 64 MiB", &light, 64 * MIB_KIB));
    targets.push(ratio_target("4", "≤ 1.3× `cp` + sync", &heavy, &cp_sync, 1.3));
    let heavy_anon_limit = 2 * shape.largest_computed_bytes() / 1024 + 64 * MIB_KIB;
    let goal = format!("peak anon ≤ 2 × largest computed tensor + 64 MiB = {}", format_bytes(heavy_anon_limit * 1024));
    targets.push(memory_target("4", &goal, &heavy, heavy_anon_limit + 1));

    // 6. The Python way.
    if !python {
        notes.push("Step 6 (the Python way) skipped: no Python environment.".to_owned());
        return Ok(());
    }
    let (py_light, py_heavy) = (result("py_light"), result("py_heavy"));
    rows.push(row("6", "Python way, light (`safetensors.numpy` load/edit/save)", Some(file_len), &py_light));
    rows.push(row("6", "Python way, heavy (NumPy + `ml_dtypes` bf16)", Some(file_len), &py_heavy));
    targets.push(speedup_target("3", "≥ 5× faster than the Python way", &light, &py_light, 5.0));
    targets.push(memory_ratio_target("3", "≥ 3× less peak RSS than the Python way", &light, &py_light, 3.0));
    targets.push(speedup_target("4", "≥ 5× faster than the Python way", &heavy, &py_heavy, 5.0));
    targets.push(memory_ratio_target("4", "≥ 3× less peak RSS than the Python way", &heavy, &py_heavy, 3.0));
    if let (Ok(cp_sync), Ok(py_light)) = (&cp_sync, &py_light) {
        notes.push(format!(
            "For scale: `cp` + `sync` itself is {:.1}× faster than the Python way's light migration (which does not fsync).",
            py_light.time.as_secs_f64() / cp_sync.time.as_secs_f64()
        ));
    }
    notes.push(format!(
        "Input of steps 1–6: a synthetic Anemoi-like checkpoint, {} in {n_tensors} tensors (f32 and bf16, {} blocks of hidden size {} with fused qkv `[{}, {}]`), page cache warm.",
        format_bytes(file_len),
        shape.layers,
        shape.hidden,
        3 * shape.hidden,
        shape.hidden,
    ));
    Ok(())
}

/// Step 1 against the registry's size (generated families) for the bench checkpoint and
/// a 10,000-tensor one, and with the real (embedded) registry on the LLaMA.
fn registry_rows(
    rows: &mut Vec<Row>,
    targets: &mut Vec<Target>,
    config: &Config,
    shape: &ModelShape,
    input: &Path,
    dir: &Path,
    llama_input: &Path,
) -> Result<(), Box<dyn Error>> {
    let cheap = config.cheap_runs;
    // The same schemas, shape-polymorphic, fit a thin model of 10,000 tensors.
    let wide_shape = ModelShape { hidden: 32, heads: shape.heads, layers: 833 };
    let wide = dir.join("wide.safetensors");
    synth::generate(&wide, &wide_shape)?;
    let checkpoints = [(input, shape.tensors().len()), (wide.as_path(), wide_shape.tensors().len())];
    let mut parse_times = Vec::new();
    for (checkpoint, tensors) in checkpoints {
        let parse = per_iteration(cheap, || read_metadata(checkpoint));
        rows.push(row("1", &format!("`safetensors` `read_metadata`, {tensors} tensors"), None, &parse));
        parse_times.push(parse);
    }
    let mut baseline: Vec<Option<Result<Measurement, String>>> = vec![None; checkpoints.len()];
    for schemas in REGISTRY_SIZES.into_iter().filter(|&schemas| schemas <= config.max_schemas) {
        let registry_dir = dir.join(format!("registry-{schemas}"));
        crate::registries::write(&registry_dir, shape, schemas)?;
        let started = Instant::now();
        let registry = crate::pipeline::load_registry(&registry_dir)?;
        let loaded = started.elapsed();
        eprintln!("registry of {schemas} schemas loaded in {loaded:?}");
        for (index, (checkpoint, tensors)) in checkpoints.iter().enumerate() {
            let open = || crate::pipeline::open(&registry, checkpoint, crate::pipeline::Migration::Heavy);
            // The first detection builds the registry's candidate index (once per
            // registry): timed on its own, so that the batches measure every later open.
            let started = Instant::now();
            let first = open().map(|_| started.elapsed());
            let first = match first {
                Ok(first) if index == 0 => format!(", first open {}", report::format_duration(first)),
                _ => String::new(),
            };
            let open_plan = per_iteration(cheap, open);
            let against_parse = match (&open_plan, &parse_times[index]) {
                (Ok(ours), Ok(parse)) => {
                    format!(", {:.1}× `read_metadata`", ours.time.as_secs_f64() / parse.time.as_secs_f64())
                }
                _ => String::new(),
            };
            rows.push(row(
                "1",
                &format!(
                    "open + detect + plan + compile, {tensors} tensors, {schemas} schemas (registry loaded once in {}{first}{against_parse})",
                    report::format_duration(loaded)
                ),
                None,
                &open_plan,
            ));
            match &baseline[index] {
                None => baseline[index] = Some(open_plan),
                Some(three) => {
                    let limit = match schemas {
                        0..=1_000 => 2.0,
                        _ => 5.0,
                    };
                    targets.push(ratio_target(
                        "1",
                        &format!("{tensors} tensors, {schemas} schemas ≤ {limit}× the 3-schema time"),
                        &open_plan,
                        three,
                        limit,
                    ));
                }
            }
        }
    }
    // The real registry, on a checkpoint it knows.
    let registry = safeshift::Registry::embedded()?;
    let llama_tensors = Checkpoint::open(llama_input)?.layout().tensors.len();
    let parse = per_iteration(cheap, || read_metadata(llama_input));
    rows.push(row("1", &format!("`safetensors` `read_metadata`, LLaMA ({llama_tensors} tensors)"), None, &parse));
    let started = Instant::now();
    crate::llama::open(&registry, llama_input)?;
    let first = started.elapsed();
    let open_plan = per_iteration(cheap, || crate::llama::open(&registry, llama_input));
    rows.push(row(
        "1",
        &format!(
            "open + detect + plan + compile, LLaMA Meta → HF, the real (embedded) registry (first open {})",
            report::format_duration(first)
        ),
        None,
        &open_plan,
    ));
    targets.push(ratio_target(
        "1",
        "real registry: open + detect + plan + compile ≤ 3× `read_metadata`",
        &open_plan,
        &parse,
        3.0,
    ));
    Ok(())
}

/// Step 8: the archive upgraded at several `--jobs` against `cp -r`.
fn archive_rows(
    rows: &mut Vec<Row>,
    targets: &mut Vec<Target>,
    notes: &mut Vec<String>,
    result: &dyn Fn(&str) -> Result<Measurement, String>,
    archive: &crate::archive::Archive,
) {
    let copy = result("archive_cp");
    let files_per_second = |measurement: &Result<Measurement, String>| {
        measurement
            .as_ref()
            .map_or(String::new(), |m| format!(", {:.1} files/s", archive.files as f64 / m.time.as_secs_f64()))
    };
    rows.push(row(
        "8",
        &format!("`cp -r` + `sync` of every file, {} checkpoints{}", archive.files, files_per_second(&copy)),
        Some(archive.bytes),
        &copy,
    ));
    for (key, jobs) in ["archive_j1", "archive_j2", "archive_j4"].into_iter().zip(ARCHIVE_JOBS) {
        let upgrade = result(key);
        rows.push(row(
            "8",
            &format!("`safeshift upgrade ARCHIVE --out-dir OUT --jobs {jobs}`{}", files_per_second(&upgrade)),
            Some(archive.bytes),
            &upgrade,
        ));
        if jobs == 2 {
            targets.push(ratio_target("8", "`--jobs 2` ≤ 1.5× `cp -r` + sync", &upgrade, &copy, 1.5));
        }
        let limit = jobs as u64 * 2 * archive.largest_computed / 1024 + ARCHIVE_MEMORY_CONSTANT_KIB;
        let goal = format!(
            "`--jobs {jobs}` peak anon ≤ jobs × 2 × largest computed tensor + {} = {}",
            format_bytes(ARCHIVE_MEMORY_CONSTANT_KIB * 1024),
            format_bytes(limit * 1024)
        );
        targets.push(memory_target("8", &goal, &upgrade, limit + 1));
    }
    notes.push(format!(
        "Step 8: {} synthetic LLaMA checkpoints ({} in all, 4–64 MiB each, log-uniform; half `llama.meta@0.9.0`, half `@1.0.0`; a quarter f32), each in its own folder, upgraded to `llama.hf@1.0.0` by the `safeshift` binary; the largest computed tensor is {}. Each worker holds at most two computed tensors (the writer computes the next while the previous is written), hence the factor 2.",
        archive.files,
        format_bytes(archive.bytes),
        format_bytes(archive.largest_computed)
    ));
}

/// The constant of the archive's memory bound: the registry, the batch's bookkeeping,
/// the threads' stacks and the allocator's slack, measured at well under this.
const ARCHIVE_MEMORY_CONSTANT_KIB: u64 = 32 * MIB_KIB;

/// `safetensors`' header parse: open, map, `read_metadata`.
fn read_metadata(path: &Path) -> Result<usize, Box<dyn Error>> {
    let file = File::open(path)?;
    // SAFETY: the bench's own scratch file, not modified while mapped.
    let map = unsafe { memmap2::Mmap::map(&file)? };
    let (_, metadata) = safetensors::SafeTensors::read_metadata(&map)?;
    Ok(metadata.tensors().len())
}

/// The 1-minute load average.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().and_then(|load| load.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// Every file below `dir`.
fn walk_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                pending.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    Ok(files)
}

/// A process-level measurement: a command and the output it writes (removed before each
/// run).
struct Job {
    key: &'static str,
    output: Option<PathBuf>,
    command: Command,
}

impl Job {
    fn new(key: &'static str, output: Option<PathBuf>, command: Command) -> Job {
        Job { key, output, command }
    }
}

/// Runs every job `runs` times, round-robin (syncing before each run so no write-back of
/// an earlier run overlaps, and deleting each output right after its run), and keeps
/// each job's median time and peak memory. A job that fails once is not run again.
fn measure_interleaved(
    runs: usize,
    jobs: &[Job],
    loads: &mut Vec<f64>,
) -> Vec<(&'static str, Result<Measurement, String>)> {
    let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(runs); jobs.len()];
    let mut results: Vec<Result<Measurement, String>> = vec![Ok(Measurement::default()); jobs.len()];
    for run in 0..runs {
        loads.push(load_average());
        eprintln!("run {} of {runs} (load {:.1})", run + 1, loads[loads.len() - 1]);
        for (index, job) in jobs.iter().enumerate() {
            let Ok(measurement) = &mut results[index] else {
                continue;
            };
            // SAFETY: sync(2) has no preconditions.
            unsafe { libc::sync() };
            let mut command = clone_command(&job.command);
            let sample = measure::run(&mut command);
            // Delete the output now, outside every timed window: deleting a file that
            // reached the disk costs a journal commit (and discards, on file systems
            // mounted with `discard`), which must not land on the next job's clock.
            // The last run's outputs stay for the comparisons.
            if let Some(output) = job.output.as_ref().filter(|_| run + 1 < runs) {
                remove(output);
                // SAFETY: as above.
                unsafe { libc::sync() };
            }
            match sample {
                Ok(sample) => {
                    times[index].push(sample.wall);
                    measurement.peak_rss_kib = measurement.peak_rss_kib.max(Some(sample.peak_rss_kib));
                    measurement.peak_anon_kib = measurement.peak_anon_kib.max(Some(sample.peak_anon_kib));
                    measurement.time = median(&times[index]);
                    measurement.best = times[index].iter().min().copied();
                }
                Err(err) => results[index] = Err(err),
            }
        }
    }
    jobs.iter().map(|job| job.key).zip(results).collect()
}

/// A fresh `Command` with the same program and arguments (`Command` is not `Clone`).
fn clone_command(command: &Command) -> Command {
    let mut fresh = Command::new(command.get_program());
    fresh.args(command.get_args());
    fresh
}

/// Reads `path` once so that its pages are in the page cache.
fn warm(path: &Path) -> std::io::Result<()> {
    let mut file = File::open(path)?;
    let mut buffer = vec![0u8; 1 << 20];
    while file.read(&mut buffer)? > 0 {}
    Ok(())
}

fn remove(path: &Path) {
    if path.is_dir() {
        let _ = std::fs::remove_dir_all(path);
    } else {
        let _ = std::fs::remove_file(path);
    }
}

/// `sh -c SCRIPT sh ARGS…`.
fn sh(script: &str, args: &[&Path]) -> Command {
    let mut command = Command::new("/bin/sh");
    command.arg("-c").arg(script).arg("sh").args(args);
    command
}

/// The bench binary running one child step.
fn child(me: &Path, step: &str, input: &Path, output: Option<&Path>, registry: &Path) -> Command {
    let mut command = Command::new(me);
    command.arg("__child").arg(step).arg(input);
    if let Some(output) = output {
        command.arg(output);
    }
    command.arg("--registry").arg(registry);
    command
}

/// Times `work` in process: `batches` batches of at least 50 ms each, the median time per
/// iteration.
fn per_iteration<T, E: std::fmt::Display>(
    batches: usize,
    mut work: impl FnMut() -> Result<T, E>,
) -> Result<Measurement, String> {
    let mut times = Vec::with_capacity(batches);
    for _ in 0..batches {
        let started = Instant::now();
        let mut iterations = 0u32;
        while started.elapsed() < Duration::from_millis(50) {
            std::hint::black_box(work().map_err(|err| err.to_string())?);
            iterations += 1;
        }
        times.push(started.elapsed() / iterations);
    }
    Ok(Measurement { time: median(&times), ..Measurement::default() })
}

fn row(step: &'static str, what: &str, bytes: Option<u64>, result: &Result<Measurement, String>) -> Row {
    let result = result.clone().map(|measurement| Measurement { bytes, ..measurement });
    Row { step, what: what.to_owned(), result }
}

/// `ours / baseline ≤ limit`.
fn ratio_target(
    step: &'static str,
    goal: &str,
    ours: &Result<Measurement, String>,
    baseline: &Result<Measurement, String>,
    limit: f64,
) -> Target {
    let ratio = match (ours, baseline) {
        (Ok(ours), Ok(baseline)) => Some(ours.time.as_secs_f64() / baseline.time.as_secs_f64()),
        _ => None,
    };
    Target {
        step,
        goal: goal.to_owned(),
        measured: ratio.map(|r| format!("{r:.2}×")),
        met: ratio.is_some_and(|r| r <= limit),
    }
}

/// `baseline / ours ≥ limit`.
fn speedup_target(
    step: &'static str,
    goal: &str,
    ours: &Result<Measurement, String>,
    baseline: &Result<Measurement, String>,
    limit: f64,
) -> Target {
    let ratio = match (ours, baseline) {
        (Ok(ours), Ok(baseline)) => Some(baseline.time.as_secs_f64() / ours.time.as_secs_f64()),
        _ => None,
    };
    Target {
        step,
        goal: goal.to_owned(),
        measured: ratio.map(|r| format!("{r:.1}×")),
        met: ratio.is_some_and(|r| r >= limit),
    }
}

/// Peak RSS: `baseline / ours ≥ limit`.
fn memory_ratio_target(
    step: &'static str,
    goal: &str,
    ours: &Result<Measurement, String>,
    baseline: &Result<Measurement, String>,
    limit: f64,
) -> Target {
    let ratio = match (ours, baseline) {
        (Ok(Measurement { peak_rss_kib: Some(ours), .. }), Ok(Measurement { peak_rss_kib: Some(baseline), .. })) => {
            Some(*baseline as f64 / (*ours).max(1) as f64)
        }
        _ => None,
    };
    Target {
        step,
        goal: goal.to_owned(),
        measured: ratio.map(|r| format!("{r:.1}×")),
        met: ratio.is_some_and(|r| r >= limit),
    }
}

/// Peak anonymous memory below `limit_kib`.
fn memory_target(step: &'static str, goal: &str, ours: &Result<Measurement, String>, limit_kib: u64) -> Target {
    let anon = ours.as_ref().ok().and_then(|measurement| measurement.peak_anon_kib);
    Target {
        step,
        goal: goal.to_owned(),
        measured: anon.map(|kib| format_bytes(kib * 1024)),
        met: anon.is_some_and(|kib| kib < limit_kib),
    }
}

/// Whether two safetensors files hold the same tensors (in any order), byte for byte.
fn same_tensors(a: &Path, b: &Path) -> Result<(), String> {
    let a = Checkpoint::open(a).map_err(|err| err.to_string())?;
    let b = Checkpoint::open(b).map_err(|err| err.to_string())?;
    let (a_tensors, b_tensors) = (&a.layout().tensors, &b.layout().tensors);
    if a_tensors.len() != b_tensors.len() {
        return Err(format!("{} tensors against {}", a_tensors.len(), b_tensors.len()));
    }
    for info in a_tensors {
        let Some(other) = b.tensor(&info.name) else {
            return Err(format!("`{}` is missing", info.name));
        };
        if (other.dtype, &other.shape) != (info.dtype, &info.shape) {
            return Err(format!(
                "`{}`: {:?} {:?} against {:?} {:?}",
                info.name, info.dtype, info.shape, other.dtype, other.shape
            ));
        }
        if a.tensor_bytes(&info.name).map_err(|err| err.to_string())?
            != b.tensor_bytes(&info.name).map_err(|err| err.to_string())?
        {
            return Err(format!("`{}` has different bytes", info.name));
        }
    }
    Ok(())
}
