//! Many checkpoints at once: for each input, detect, plan, and write the output, with one
//! result per file. This is what `safeshift upgrade` and `downgrade` run (the CLI only
//! prints the results) and what any other client (the Python package) can call.
//!
//! Files are independent: one that fails is reported and the others are still done. Each
//! output records which input it was made from ([`SourceStamp`], under
//! [`SOURCE_KEY`](safeshift_model::keys::SOURCE_KEY)), so a rerun skips outputs that are up
//! to date. Every output is written atomically (complete, or not at all); inputs are
//! never modified, except by [`Destination::InPlace`], which replaces a file atomically
//! and keeps the original as `NAME.bak` first.
//!
//! ```no_run
//! use std::path::PathBuf;
//!
//! use safeshift::batch::{self, Batch, Destination};
//! use safeshift::{OpenOptions, Registry};
//!
//! let registry = Registry::embedded()?;
//! let batch = Batch::new(&registry, OpenOptions::default(), Destination::Dir(PathBuf::from("upgraded")));
//! let inputs = batch.select(batch::collect(&[PathBuf::from("checkpoints")])?, None)?;
//! let report = batch.run(&inputs, |result| println!("{}: {:?}", result.input.display(), result.outcome));
//! assert_eq!(report.failed(), 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod inputs;
mod naming;
mod stamp;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use safeshift_engine::{Checkpoint, InputFormat, ReadError, TensorOrder, WriteError, WriteOptions};
use safeshift_graph::{Step, VersionId};
use safeshift_model::keys::SOURCE_KEY;

pub use inputs::{collect, Input, InputError, InputKind, Shard};
pub use naming::{backup_path, check_distinct_outputs, output_name};
pub use stamp::SourceStamp;

use crate::open::{OpenError, OpenOptions, Registry};

/// Where a batch writes its outputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// One output file (one input only).
    File(PathBuf),
    /// A folder mirroring the inputs' relative paths, each named by [`output_name`].
    Dir(PathBuf),
    /// Replace each input (single `.safetensors` files only), keeping the original as
    /// `NAME.bak` when `backup`.
    InPlace {
        /// Keep the original as `NAME.bak`.
        backup: bool,
    },
    /// Write nothing: detect and plan only (`--dry-run`).
    Nowhere,
}

/// A batch run: the registry, how to open each input, where outputs go, how many at once.
pub struct Batch<'a> {
    /// The registry.
    pub registry: &'a Registry,
    /// Target, dims, aux inputs, lossiness, parameters.
    pub options: OpenOptions,
    /// Where outputs go.
    pub destination: Destination,
    /// Files processed at once (at least one).
    pub jobs: usize,
}

/// Why a batch could not start. Nothing has been written when one of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// Two inputs would be written to the same output.
    #[error(
        "`{}` and `{}` would both be written to `{}`; upgrade them separately",
        first.display(),
        second.display(),
        output.display()
    )]
    Collision {
        /// The first input.
        first: PathBuf,
        /// The second input.
        second: PathBuf,
        /// The output both would be written to.
        output: PathBuf,
    },
    /// One output file was named for several inputs.
    #[error("-o names one output file, but there are {inputs} inputs; use --out-dir")]
    OneOutputManyInputs {
        /// How many inputs there are.
        inputs: usize,
    },
}

/// Why one file of a batch failed (the others are still done).
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The input could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// It could not be detected, planned or compiled.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// An in-place upgrade of a file that is not a single `.safetensors` file.
    #[error("--in-place replaces single .safetensors files only; use --out-dir for pickles and sharded sets")]
    InPlaceUnsupported,
    /// The input could not be stamped, the output folder made, or the backup kept.
    #[error("`{}`: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The output could not be written (nothing is left at its path).
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// Why a file was not written although nothing failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skip {
    /// The file is a safetensors file at the target already.
    AtTarget(VersionId),
    /// The output exists, is at the target, and was made from this very input.
    UpToDate(PathBuf),
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::AtTarget(version) => write!(f, "already at {version}"),
            Skip::UpToDate(output) => write!(f, "{} is up to date", output.display()),
        }
    }
}

/// What happened to one input.
#[derive(Debug)]
pub enum Outcome {
    /// The output was written.
    Written {
        /// Where.
        output: PathBuf,
        /// Its size.
        bytes: u64,
    },
    /// Planned only ([`Destination::Nowhere`]).
    Planned,
    /// Nothing to do.
    Skipped(Skip),
    /// It failed; nothing was written for it.
    Failed(FileError),
}

/// The result of one input: what it was, where it was to go, what happened.
#[derive(Debug)]
pub struct FileResult {
    /// The input as listed.
    pub input: PathBuf,
    /// Its detected version, when detection got that far.
    pub from: Option<VersionId>,
    /// The target, once resolved.
    pub to: Option<VersionId>,
    /// The planned steps.
    pub steps: Vec<Step>,
    /// What happened.
    pub outcome: Outcome,
    /// How long it took.
    pub elapsed: Duration,
}

impl FileResult {
    /// Every step is the inverse of a migration: the file is taken back (a downgrade).
    pub fn is_undo(&self) -> bool {
        !self.steps.is_empty() && self.steps.iter().all(|step| step.inverse)
    }
}

/// Every input's result, in input order.
#[derive(Debug, Default)]
pub struct Report {
    /// One per input.
    pub files: Vec<FileResult>,
}

impl Report {
    fn count(&self, wanted: fn(&Outcome) -> bool) -> usize {
        self.files.iter().filter(|file| wanted(&file.outcome)).count()
    }

    /// Outputs written.
    pub fn written(&self) -> usize {
        self.count(|outcome| matches!(outcome, Outcome::Written { .. }))
    }

    /// Inputs planned only.
    pub fn planned(&self) -> usize {
        self.count(|outcome| matches!(outcome, Outcome::Planned))
    }

    /// Inputs skipped.
    pub fn skipped(&self) -> usize {
        self.count(|outcome| matches!(outcome, Outcome::Skipped(_)))
    }

    /// Inputs that failed.
    pub fn failed(&self) -> usize {
        self.count(|outcome| matches!(outcome, Outcome::Failed(_)))
    }
}

impl<'a> Batch<'a> {
    /// A batch of one job at a time.
    pub fn new(registry: &'a Registry, options: OpenOptions, destination: Destination) -> Batch<'a> {
        Batch { registry, options, destination, jobs: 1 }
    }

    /// The inputs of this run: `inputs` (all of an array job's) checked for colliding
    /// outputs, then this worker's `shard` of them. Refuses a single output file for
    /// several inputs.
    pub fn select(&self, inputs: Vec<Input>, shard: Option<Shard>) -> Result<Vec<Input>, BatchError> {
        if let Destination::Dir(dir) = &self.destination {
            // Checked over all inputs, before sharding: two workers of an array job must
            // not write the same output either.
            check_distinct_outputs(dir, &inputs)?;
        }
        let inputs: Vec<Input> =
            inputs.into_iter().filter(|input| shard.is_none_or(|shard| shard.owns(input))).collect();
        if let Destination::File(_) = self.destination {
            if inputs.len() != 1 {
                return Err(BatchError::OneOutputManyInputs { inputs: inputs.len() });
            }
        }
        Ok(inputs)
    }

    /// Processes `inputs` on up to [`jobs`](Batch::jobs) threads, calling `each` with every
    /// result as soon as it is known (from the worker, in completion order), and returns
    /// them all in input order.
    pub fn run(&self, inputs: &[Input], each: impl Fn(&FileResult) + Sync) -> Report {
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<(usize, FileResult)>> = Mutex::new(Vec::with_capacity(inputs.len()));
        std::thread::scope(|scope| {
            for _ in 0..self.jobs.clamp(1, inputs.len().max(1)) {
                scope.spawn(|| loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(input) = inputs.get(index) else { break };
                    let result = self.process(input);
                    each(&result);
                    results.lock().expect("no panics while holding the lock").push((index, result));
                });
            }
        });
        let mut results = results.into_inner().expect("no panics while holding the lock");
        results.sort_by_key(|(index, _)| *index);
        Report { files: results.into_iter().map(|(_, result)| result).collect() }
    }

    /// Processes one input: open, detect, plan, and write (or skip, or plan only).
    pub fn process(&self, input: &Input) -> FileResult {
        let started = Instant::now();
        let mut result = FileResult {
            input: input.path.clone(),
            from: None,
            to: None,
            steps: Vec::new(),
            outcome: Outcome::Planned,
            elapsed: Duration::ZERO,
        };
        result.outcome = self.process_into(input, &mut result).unwrap_or_else(Outcome::Failed);
        result.elapsed = started.elapsed();
        result
    }

    fn process_into(&self, input: &Input, result: &mut FileResult) -> Result<Outcome, FileError> {
        // Any format (safetensors, a PyTorch pickle, a sharded set of either) is opened by
        // the engine and read once, straight into the output: no intermediate file.
        let checkpoint = Checkpoint::open_with(&input.path, &self.options.read_options())?;
        let is_safetensors = *checkpoint.format() == InputFormat::Safetensors;
        let prepared = match self.registry.prepare(&input.path, &checkpoint.layout_with_extras(), &self.options) {
            Ok(prepared) => prepared,
            Err(err) => {
                // The version may be known although the plan failed (no path, lossy, bad
                // target): the error carries it, so the result says where the file is and
                // where it was asked to go without detecting again.
                result.from = err.detection().map(|detection| detection.version.clone());
                result.to = err.target().cloned();
                return Err(err.into());
            }
        };
        result.from = Some(prepared.plan.from.clone());
        result.to = Some(prepared.plan.to.clone());
        result.steps = prepared.plan.steps.clone();
        // A file already at the target is skipped, unless writing it gives a safetensors file.
        if prepared.plan.steps.is_empty() && is_safetensors {
            return Ok(Outcome::Skipped(Skip::AtTarget(prepared.plan.to)));
        }
        let output = match &self.destination {
            Destination::Nowhere => return Ok(Outcome::Planned),
            Destination::File(path) => path.clone(),
            Destination::Dir(dir) => dir.join(output_name(&input.relative)),
            Destination::InPlace { .. } if is_safetensors && checkpoint.index_metadata().is_none() => {
                input.path.clone()
            }
            Destination::InPlace { .. } => return Err(FileError::InPlaceUnsupported),
        };
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| FileError::Io { path, source }
        };
        let stamp = SourceStamp::of(&input.path).map_err(io(&input.path))?;
        if output != input.path && stamp.is_recorded_in(&output, &prepared.plan.to.to_string()) {
            return Ok(Outcome::Skipped(Skip::UpToDate(output)));
        }
        let migrated = self.registry.open_prepared(&input.path, checkpoint, prepared, &self.options)?;
        let metadata = BTreeMap::from([(SOURCE_KEY.to_owned(), stamp.to_metadata())]);
        let write_options = WriteOptions { metadata, order: TensorOrder::AsGiven, ..WriteOptions::default() };
        if let Some(parent) = output.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        if let Destination::InPlace { backup: true } = self.destination {
            keep_backup(&input.path).map_err(io(&backup_path(&input.path)))?;
        }
        let summary = migrated.write_to(&output, &write_options)?;
        Ok(Outcome::Written { output, bytes: summary.bytes })
    }
}

/// Keeps the original of an in-place upgrade as `NAME.bak`. A hard link keeps its bytes
/// under the backup name for free; the writer's atomic rename then replaces only the
/// directory entry of the input.
fn keep_backup(path: &Path) -> std::io::Result<()> {
    let backup = backup_path(path);
    let _ = std::fs::remove_file(&backup);
    std::fs::hard_link(path, &backup).or_else(|_| std::fs::copy(path, &backup).map(|_| ()))
}

#[cfg(test)]
mod tests;
