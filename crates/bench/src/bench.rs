//! The benchmark run: generate, warm, measure every step, compare, report.

use std::error::Error;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use safeshift_engine::Checkpoint;

use crate::measure::{self, median};
use crate::report::{self, Measurement, Row, Target};
use crate::size::format_bytes;
use crate::synth::{self, ModelShape};

/// What to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Target size of the synthetic checkpoint.
    pub size: u64,
    /// Runs per process-level measurement.
    pub runs: usize,
    /// Batches per in-process measurement.
    pub cheap_runs: usize,
    /// Outputs, scratch and the Python environment.
    pub out_dir: PathBuf,
    /// Also write the report here.
    pub markdown: Option<PathBuf>,
    /// Run the Python baselines.
    pub python: bool,
    /// Install torch for step 7.
    pub with_torch: bool,
    /// Keep the scratch directory.
    pub keep_scratch: bool,
}

const MIB_KIB: u64 = 1024;

/// Runs the whole benchmark and prints the report.
pub fn run(config: &Config) -> Result<(), Box<dyn Error>> {
    std::fs::create_dir_all(&config.out_dir)?;
    let scratch = tempfile::Builder::new().prefix("scratch-").tempdir_in(&config.out_dir)?;
    let dir = scratch.path();
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

    // The Python environment and the pickle first: they are not measured.
    let venv = if config.python {
        crate::python::prepare(&config.out_dir.join("venv"), config.with_torch)
    } else {
        Err("--no-python".to_owned())
    };
    let (python_way, torch_way) = crate::python::write_scripts(dir)?;
    let pickle = path("model.pt");
    let pickle_ready = match &venv {
        Ok(venv) if venv.has_torch => {
            eprintln!("writing the pickle with torch.save");
            let mut command = Command::new(&venv.python);
            command.arg(&torch_way).arg("make").arg(&input).arg(&pickle);
            measure::run(&mut command).map(|_| ())
        }
        Ok(_) => Err("torch is not installed in the bench's environment (pass `--with-torch`)".to_owned()),
        Err(reason) => Err(reason.clone()),
    };

    // Every process-level job, run round-robin so that the load of a shared machine
    // falls on all of them alike.
    let mut jobs: Vec<Job> = vec![
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
    ];
    if let Ok(venv) = &venv {
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
        if pickle_ready.is_ok() {
            let mut torch = Command::new(&venv.python);
            torch.arg(&torch_way).arg("convert").arg(&pickle).arg(path("torch.safetensors"));
            jobs.push(Job::new("torch_convert", Some(path("torch.safetensors")), torch));
            jobs.push(Job::new(
                "convert",
                Some(path("convert.safetensors")),
                child(&me, "convert-pickle", &pickle, Some(&path("convert.safetensors")), &registry_dir),
            ));
        }
    }
    warm(&input)?;
    if pickle_ready.is_ok() {
        warm(&pickle)?;
    }
    eprintln!("measuring {} jobs, {} runs each, round-robin", jobs.len(), config.runs);
    let results = measure_interleaved(config.runs, &jobs);
    let result = |key: &str| -> Result<Measurement, String> {
        results
            .iter()
            .find(|(name, _)| *name == key)
            .map_or_else(|| Err("not run".to_owned()), |(_, result)| result.clone())
    };

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
    let open = per_iteration(cheap, || Checkpoint::open(&input).map(|checkpoint| checkpoint.layout().tensors.len()));
    rows.push(row("1", &format!("safeshift open ({n_tensors} tensors, headers only)"), None, &open));
    let open_plan =
        per_iteration(cheap, || crate::pipeline::open(&registry, &input, crate::pipeline::Migration::Heavy));
    rows.push(row(
        "1",
        "safeshift open + detect + plan + compile (heavy migration, registry loaded)",
        None,
        &open_plan,
    ));
    let load = per_iteration(cheap, || crate::pipeline::load_registry(&registry_dir));
    rows.push(row("1", "(load the registry: 3 schemas, 2 migrations)", None, &load));
    let parse = per_iteration(cheap, || -> Result<usize, Box<dyn Error>> {
        let file = File::open(&input)?;
        // SAFETY: the bench's own scratch file, not modified while mapped.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        let (_, metadata) = safetensors::SafeTensors::read_metadata(&map)?;
        Ok(metadata.tensors().len())
    });
    rows.push(row("1", "`safetensors` crate: open + mmap + `read_metadata`", None, &parse));
    let deserialize = per_iteration(cheap, || -> Result<usize, Box<dyn Error>> {
        let file = File::open(&input)?;
        // SAFETY: as above.
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
    targets.push(ratio_target("3", "≤ 1.2× `cp` + sync", &light, &cp_sync, 1.2));
    targets.push(memory_target("3", "peak anon < 64 MiB", &light, 64 * MIB_KIB));
    targets.push(ratio_target("4", "≤ 3× `cp` + sync", &heavy, &cp_sync, 3.0));
    let heavy_anon_limit = shape.largest_computed_bytes() / 1024 + 64 * MIB_KIB;
    let goal = format!("peak anon ≤ largest computed tensor + 64 MiB = {}", format_bytes(heavy_anon_limit * 1024));
    targets.push(memory_target("4", &goal, &heavy, heavy_anon_limit + 1));

    // 6. The Python way.
    match &venv {
        Ok(_) => {
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
        Err(reason) => notes.push(format!("Step 6 (the Python way) skipped: {reason}.")),
    }

    // 7. Pickles.
    match &pickle_ready {
        Ok(()) => {
            let pickle_len = std::fs::metadata(&pickle)?.len();
            let (convert, torch_convert) = (result("convert"), result("torch_convert"));
            rows.push(row("7", "safeshift convert (`.pt` → safetensors)", Some(pickle_len), &convert));
            rows.push(row("7", "`torch.load(weights_only=True)` + `save_file`", Some(pickle_len), &torch_convert));
            targets.push(speedup_target(
                "7",
                "≥ 2× faster than `torch.load` + `save_file`",
                &convert,
                &torch_convert,
                2.0,
            ));
            match same_tensors(&path("convert.safetensors"), &path("torch.safetensors")) {
                Ok(()) => notes.push("The converted pickles of safeshift and of torch hold identical tensors.".into()),
                Err(diff) => notes.push(format!("**The converted pickles of safeshift and of torch differ:** {diff}")),
            }
        }
        Err(reason) => {
            rows.push(Row {
                step: "7",
                what: "pickle conversion against `torch.load`".into(),
                result: Err(format!("skipped: {reason}")),
            });
            targets.push(Target {
                step: "7",
                goal: "≥ 2× faster than `torch.load` + `save_file`".into(),
                measured: None,
                met: false,
            });
        }
    }

    notes.push(format!(
        "Input: a synthetic Anemoi-like checkpoint, {} in {n_tensors} tensors (f32 and bf16, {} blocks of hidden size {} with fused qkv `[{}, {}]`), page cache warm. \
         Times are medians of {} runs (with the fastest run), interleaved round-robin across the process-level steps ({cheap} batches of at least 50 ms for the in-process header steps); memory is the maximum over the runs. \
         Peak RSS is `VmHWM` (it counts the pages of a mapped input that were touched), peak anon the largest `RssAnon` (heap and stacks, not the mapped file) from `/proc/<pid>/status`, polled every 1 ms and read by the process itself at exit. \
         Process-level times include starting the process (and, for Python, importing NumPy). safeshift fsyncs its output; `cp` and the Python scripts do not, hence the `cp` + `sync FILE` baseline.",
        format_bytes(file_len),
        shape.layers,
        shape.hidden,
        3 * shape.hidden,
        shape.hidden,
        config.runs,
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
fn measure_interleaved(runs: usize, jobs: &[Job]) -> Vec<(&'static str, Result<Measurement, String>)> {
    let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(runs); jobs.len()];
    let mut results: Vec<Result<Measurement, String>> = vec![Ok(Measurement::default()); jobs.len()];
    for run in 0..runs {
        eprintln!("run {} of {runs}", run + 1);
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
    let _ = std::fs::remove_file(path);
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
