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
}

const NOT_YET: &str = "not yet available";
const MIB_KIB: u64 = 1024;

/// Runs the whole benchmark and prints the report.
pub fn run(config: &Config) -> Result<(), Box<dyn Error>> {
    std::fs::create_dir_all(&config.out_dir)?;
    let scratch = tempfile::Builder::new().prefix("scratch-").tempdir_in(&config.out_dir)?;
    let dir = scratch.path();
    let shape = ModelShape::for_size(config.size);
    let input = dir.join("model.safetensors");
    let n_tensors = shape.tensors().len();
    eprintln!(
        "generating {} ({n_tensors} tensors, hidden {}) in {}",
        format_bytes(shape.data_bytes()),
        shape.hidden,
        dir.display()
    );
    synth::generate(&input, &shape)?;
    let file_len = std::fs::metadata(&input)?.len();
    warm(&input)?;
    let me = std::env::current_exe()?;
    let runs = config.runs;
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    let mut notes = Vec::new();

    // The machine's limits.
    eprintln!("measuring cat and cp");
    let cat = measure_runs(runs, None, || sh(&[r#"cat "$1" > /dev/null"#], &[&input]));
    rows.push(row("—", "`cat FILE > /dev/null` (read limit)", Some(file_len), &cat));
    let cp_out = dir.join("cp.safetensors");
    let cp = measure_runs(runs, Some(&cp_out), || {
        let mut command = Command::new("/bin/cp");
        command.arg(&input).arg(&cp_out);
        command
    });
    rows.push(row("—", "`/bin/cp` (copy limit)", Some(file_len), &cp));
    let cp_sync = measure_runs(runs, Some(&cp_out), || sh(&[r#"/bin/cp "$1" "$2" && sync "$2""#], &[&input, &cp_out]));
    rows.push(row("—", "`/bin/cp` + `sync FILE` (copy limit, durable like safeshift)", Some(file_len), &cp_sync));
    remove(&cp_out);

    // 1. Headers.
    eprintln!("measuring header parsing");
    let cheap = config.cheap_runs;
    let open = per_iteration(cheap, || Checkpoint::open(&input).map(|checkpoint| checkpoint.layout().tensors.len()));
    rows.push(row("1", &format!("safeshift open ({n_tensors} tensors, headers only)"), None, &open));
    rows.push(Row { step: "1", what: "safeshift open + detect + plan".into(), result: Err(NOT_YET.into()) });
    let open_plan = per_iteration(cheap, || -> Result<usize, String> {
        let checkpoint = Checkpoint::open(&input).map_err(|err| err.to_string())?;
        Ok(crate::pipeline::plan(&checkpoint, crate::pipeline::Migration::Heavy, &shape)?.len())
    });
    rows.push(row(
        "1",
        "safeshift open + plan of the heavy migration (parse, lower, apply; no detection)",
        None,
        &open_plan,
    ));
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
    targets.push(Target {
        step: "1",
        goal: "open + detect + plan ≤ 1.5× header parse".into(),
        measured: None,
        met: false,
    });

    // 2. The view.
    eprintln!("measuring the view");
    let view_light = measure_runs(runs, None, || child(&me, "view-light", &input, None, &shape));
    rows.push(row(
        "2",
        "safeshift view, light plan: every tensor once, every page touched (zero-copy)",
        Some(file_len),
        &view_light,
    ));
    let view_heavy = measure_runs(runs, None, || child(&me, "view-heavy", &input, None, &shape));
    rows.push(row(
        "2",
        "safeshift view, heavy plan: every tensor once (computed ones computed)",
        Some(file_len),
        &view_heavy,
    ));

    // 3. Light rewrite.
    eprintln!("measuring the light rewrite");
    let light_out = dir.join("light.safetensors");
    let light = measure_runs(runs, Some(&light_out), || child(&me, "rewrite-light", &input, Some(&light_out), &shape));
    rows.push(row("3", "safeshift rewrite, light: rename + reshape", Some(file_len), &light));
    targets.push(ratio_target("3", "≤ 1.2× `cp` + sync", &light, &cp_sync, 1.2));
    targets.push(memory_target("3", "peak anon < 64 MiB", &light, 64 * MIB_KIB));

    // 4. Heavy rewrite.
    eprintln!("measuring the heavy rewrite");
    let heavy_out = dir.join("heavy.safetensors");
    let heavy = measure_runs(runs, Some(&heavy_out), || child(&me, "rewrite-heavy", &input, Some(&heavy_out), &shape));
    rows.push(row("4", "safeshift rewrite, heavy: split-heads + transpose + cast f32→bf16", Some(file_len), &heavy));
    targets.push(ratio_target("4", "≤ 3× `cp` + sync", &heavy, &cp_sync, 3.0));
    let heavy_anon_limit = shape.largest_computed_bytes() / 1024 + 64 * MIB_KIB;
    let goal = format!("peak anon ≤ largest computed tensor + 64 MiB = {}", format_bytes(heavy_anon_limit * 1024));
    targets.push(memory_target("4", &goal, &heavy, heavy_anon_limit + 1));

    // 6 and 7. Python.
    let venv = if config.python {
        crate::python::prepare(&config.out_dir.join("venv"), config.with_torch)
    } else {
        Err("--no-python".to_owned())
    };
    match &venv {
        Ok(venv) => {
            let (python_way, _torch_way) = crate::python::write_scripts(dir)?;
            eprintln!("measuring the Python way");
            let py_light_out = dir.join("py-light.safetensors");
            let py_light = measure_runs(runs, Some(&py_light_out), || {
                let mut command = Command::new(&venv.python);
                command.arg(&python_way).arg("light").arg(&input).arg(&py_light_out);
                command
            });
            rows.push(row("6", "Python way, light (`safetensors.numpy` load/edit/save)", Some(file_len), &py_light));
            targets.push(speedup_target("3", "≥ 5× faster than the Python way", &light, &py_light, 5.0));
            targets.push(memory_ratio_target("3", "≥ 3× less peak RSS than the Python way", &light, &py_light, 3.0));
            match same_tensors(&light_out, &py_light_out) {
                Ok(()) => notes.push("The light outputs of safeshift and of the Python way hold identical tensors (names, dtypes, shapes, bytes).".into()),
                Err(diff) => notes.push(format!("**The light outputs differ from the Python way's:** {diff}")),
            }
            let py_heavy_out = dir.join("py-heavy.safetensors");
            let py_heavy = measure_runs(runs, Some(&py_heavy_out), || {
                let mut command = Command::new(&venv.python);
                command
                    .arg(&python_way)
                    .arg("heavy")
                    .arg(&input)
                    .arg(&py_heavy_out)
                    .arg("--heads")
                    .arg(shape.heads.to_string());
                command
            });
            rows.push(row("6", "Python way, heavy (NumPy + `ml_dtypes` bf16)", Some(file_len), &py_heavy));
            targets.push(speedup_target("4", "≥ 5× faster than the Python way", &heavy, &py_heavy, 5.0));
            targets.push(memory_ratio_target("4", "≥ 3× less peak RSS than the Python way", &heavy, &py_heavy, 3.0));
            match same_tensors(&heavy_out, &py_heavy_out) {
                Ok(()) => notes.push("The heavy outputs of safeshift and of the Python way hold identical tensors (names, dtypes, shapes, bytes).".into()),
                Err(diff) => notes.push(format!("**The heavy outputs differ from the Python way's:** {diff}")),
            }
            if venv.has_torch {
                rows.push(Row { step: "7", what: "safeshift convert (pickle)".into(), result: Err(NOT_YET.into()) });
            } else {
                notes.push("Step 7 (pickle conversion against `torch.load`) skipped: torch is not installed in the bench's environment (pass `--with-torch`).".into());
            }
        }
        Err(reason) => notes.push(format!("Steps 6 and 7 (the Python way) skipped: {reason}.")),
    }
    targets.push(Target {
        step: "7",
        goal: "≥ 2× faster than `torch.load` + `save_file`".into(),
        measured: None,
        met: false,
    });

    notes.push(format!(
        "Input: a synthetic Anemoi-like checkpoint, {} in {n_tensors} tensors (f32 and bf16, {} blocks of hidden size {} with fused qkv `[{}, {}]`), page cache warm. \
         Times are medians of {runs} runs ({cheap} batches for in-process steps); memory is the maximum over the runs. \
         Peak RSS is `VmHWM`, peak anon the largest `RssAnon` (heap, not the mapped file) from `/proc/<pid>/status`, polled every 1 ms and read by the process itself at exit. \
         Process-level times include starting the process (and, for Python, importing NumPy). safeshift fsyncs its output; `cp` does not, hence the `cp` + `sync FILE` baseline.",
        format_bytes(file_len),
        shape.layers,
        shape.hidden,
        3 * shape.hidden,
        shape.hidden
    ));
    let title = format!("### safeshift-bench, {} checkpoint", format_bytes(file_len));
    let text = report::render(&title, &crate::machine::describe(dir), &rows, &targets, &notes);
    println!("{text}");
    if let Some(path) = &config.markdown {
        std::fs::write(path, &text)?;
    }
    Ok(())
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
fn sh(script: &[&str], args: &[&Path]) -> Command {
    let mut command = Command::new("/bin/sh");
    command.arg("-c").arg(script.concat()).arg("sh").args(args);
    command
}

/// The bench binary running one child step.
fn child(me: &Path, step: &str, input: &Path, output: Option<&Path>, shape: &ModelShape) -> Command {
    let mut command = Command::new(me);
    command.arg("__child").arg(step).arg(input);
    if let Some(output) = output {
        command.arg(output);
    }
    command.arg("--hidden").arg(shape.hidden.to_string()).arg("--heads").arg(shape.heads.to_string());
    command
}

/// Runs a process `runs` times (removing `output` and syncing before each run, so no
/// write-back of the previous run overlaps) and keeps the median time and peak memory.
fn measure_runs(runs: usize, output: Option<&Path>, command: impl Fn() -> Command) -> Result<Measurement, String> {
    let mut times = Vec::with_capacity(runs);
    let mut measurement = Measurement::default();
    for _ in 0..runs {
        if let Some(output) = output {
            remove(output);
        }
        // SAFETY: sync(2) has no preconditions.
        unsafe { libc::sync() };
        let sample = measure::run(&mut command())?;
        times.push(sample.wall);
        measurement.peak_rss_kib = measurement.peak_rss_kib.max(Some(sample.peak_rss_kib));
        measurement.peak_anon_kib = measurement.peak_anon_kib.max(Some(sample.peak_anon_kib));
    }
    measurement.time = median(&times);
    Ok(measurement)
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
