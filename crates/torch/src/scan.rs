//! `scan`: a security report of a checkpoint, without executing or converting anything:
//! every global, how it is used, and the hazard verdict (see [`crate::hazard`]).

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{ErrorKind, Forbidden, TorchError};
use crate::globals;
use crate::hazard::{self, Hazard};
use crate::load::{self, Format};
use crate::machine::{Mode, UseKind};
use crate::{tar, zip, Limits};

/// Every global a checkpoint's pickles name, and what `torch.load` would do with each.
#[derive(Clone, Debug)]
pub struct ScanReport {
    /// The container format, when the file could be opened.
    pub format: Format,
    /// One entry per distinct global, in first-use order.
    pub findings: Vec<GlobalFinding>,
    /// Calls of values that are not globals (the result of another call) and BUILDs on
    /// globals, which `torch.load(weights_only=False)` would also perform.
    pub non_global_calls: Vec<UseSite>,
    /// Why the scan stopped early (a malformed pickle); findings up to there are listed.
    pub problem: Option<String>,
    /// The code-execution gadgets: deny-listed globals (at their most severe use) and
    /// structural patterns, with byte offsets. `convert` refuses the file when there is one.
    pub gadgets: Vec<Forbidden>,
    /// Classes and functions outside torch's allow-list that the file instantiates or calls
    /// and that are not gadgets: `convert` reads them as inert data.
    pub data_classes: Vec<String>,
}

/// One global and every place it is used.
#[derive(Clone, Debug)]
pub struct GlobalFinding {
    /// `module.name` as written in the pickle (`commands.Popen`).
    pub global: String,
    /// The Python 3 name `pickle` maps it to, when it differs (`subprocess.Popen`).
    pub python3_name: Option<String>,
    /// What loading it entails.
    pub status: GlobalStatus,
    /// Its class in the hazard verdict.
    pub hazard: Hazard,
    /// Where it is named, instantiated or called.
    pub uses: Vec<UseSite>,
}

/// What `torch.load` would do with a global, from least to most dangerous.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum GlobalStatus {
    /// On the allow-list (what `torch.load(weights_only=True)` accepts): torch's own
    /// rebuild functions, storage types, `OrderedDict`… No foreign code runs.
    Allowed,
    /// Only named: `torch.load(weights_only=False)` imports its module, which runs that
    /// module's top-level code.
    Imported,
    /// A class instantiated by `NEWOBJ(cls, ())` and given its `__dict__` by BUILD, as
    /// `torch.save(model)` stores modules: `torch.load` imports the class and runs its
    /// `__setstate__`. `convert` keeps such objects as opaque data.
    Instantiated,
    /// Called: `torch.load(weights_only=False)` runs it. `convert` records the call as data,
    /// and refuses the file if the global is a gadget ([`GlobalFinding::hazard`]).
    Called,
}

/// One use of a global.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UseSite {
    /// The pickle member (`archive/data.pkl`, `pickle 4 (object)`).
    pub member: String,
    /// Byte offset of the opcode in that pickle.
    pub offset: u64,
    /// The opcode (`GLOBAL`, `REDUCE`, `NEWOBJ`, `BUILD`…).
    pub opcode: &'static str,
    /// How the global is used there.
    pub kind: UseKind,
}

impl ScanReport {
    /// Whether `torch.load(weights_only=False)` would import or run code that is not torch's
    /// own rebuild machinery.
    pub fn executes_code(&self) -> bool {
        !self.non_global_calls.is_empty() || self.findings.iter().any(|f| f.status != GlobalStatus::Allowed)
    }

    /// Whether `torch.load(weights_only=True)` accepts every global (it also checks
    /// argument types, which we do not replicate).
    pub fn weights_only_accepts(&self) -> bool {
        !self.executes_code()
    }

    /// Whether the file holds code-execution gadgets (`safeshift scan` exits with 1).
    pub fn has_gadgets(&self) -> bool {
        !self.gadgets.is_empty()
    }

    /// Whether `safeshift convert` accepts the file without `--allow-gadgets` (it may still
    /// refuse it for structural reasons: missing storages, bad sizes).
    pub fn convertible(&self) -> bool {
        self.problem.is_none() && self.gadgets.is_empty()
    }
}

/// Scans the checkpoint at `path`. Fails only when the file cannot be read or is not a
/// checkpoint at all; a malformed pickle gives a report with [`ScanReport::problem`].
pub fn scan(path: &Path) -> Result<ScanReport, TorchError> {
    let fail = |kind| TorchError::new(path, kind);
    let file = std::fs::File::open(path).map_err(|err| fail(ErrorKind::Io(err)))?;
    let len = file.metadata().map_err(|err| fail(ErrorKind::Io(err)))?.len();
    if len == 0 {
        return Err(fail(ErrorKind::NotACheckpoint("the file is empty".into())));
    }
    // SAFETY: read-only map; see `open` for the contract on files changing underneath.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|err| fail(ErrorKind::Io(err)))?;
    scan_data(&map).map_err(fail)
}

/// Scans a checkpoint held in memory; `name` is used in errors.
pub fn scan_bytes(name: &str, data: &[u8]) -> Result<ScanReport, TorchError> {
    scan_data(data).map_err(|kind| TorchError::new(name, kind))
}

fn scan_data(data: &[u8]) -> Result<ScanReport, ErrorKind> {
    let mut uses = Vec::new();
    let limits = Limits::default();
    if tar::is_tar(data) && !zip::looks_like_zip(data) {
        // torch.load would unpickle the tar's members, which are not read here: whatever
        // the bytes after the header say, the file is not known to be safe.
        let problem = Some(format!("{}; treat it as unsafe", load::TAR_REFUSAL));
        let (findings, non_global_calls, gadgets, data_classes) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        return Ok(ScanReport { format: Format::Tar, findings, non_global_calls, problem, gadgets, data_classes });
    }
    let (format, problem) = match load::load(data, Mode::Scan, &limits, false, &mut uses) {
        Ok(loaded) => (loaded.format.clone(), None),
        Err(ErrorKind::Pickle { member, offset, reason }) => {
            let format = load::container(data, &limits, &member);
            (format, Some(ErrorKind::Pickle { member, offset, reason }.to_string()))
        }
        Err(other) => return Err(other),
    };
    let verdict = hazard::verdict(&uses);
    let mut findings: Vec<GlobalFinding> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut non_global_calls = Vec::new();
    for (member, u) in uses {
        let site = UseSite { member, offset: u.offset, opcode: u.opcode, kind: u.kind };
        let Some(global) = u.global else {
            non_global_calls.push(site);
            continue;
        };
        let dotted = global.dotted();
        let at = *index.entry(dotted.clone()).or_insert_with(|| {
            let allowed = globals::lookup(&global.module, &global.name).is_some();
            findings.push(GlobalFinding {
                global: dotted.clone(),
                python3_name: globals::python3_name(&global.module, &global.name)
                    .map(|(module, name)| format!("{module}.{name}"))
                    .filter(|name| *name != dotted),
                status: if allowed { GlobalStatus::Allowed } else { GlobalStatus::Imported },
                hazard: hazard::classify(&global.module, &global.name),
                uses: Vec::new(),
            });
            findings.len() - 1
        });
        let finding = &mut findings[at];
        if finding.status != GlobalStatus::Allowed {
            let status = match site.kind {
                UseKind::Named => GlobalStatus::Imported,
                UseKind::Instantiated => GlobalStatus::Instantiated,
                UseKind::Called => GlobalStatus::Called,
            };
            finding.status = finding.status.max(status);
        }
        finding.uses.push(site);
    }
    Ok(ScanReport {
        format,
        findings,
        non_global_calls,
        problem,
        gadgets: verdict.gadgets,
        data_classes: verdict.data_classes,
    })
}
