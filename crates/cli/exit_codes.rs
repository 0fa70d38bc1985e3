//! The exit codes of `safeshift`, in one place (the book's CLI chapter lists them).

use std::process::ExitCode;

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// Everything asked for was done.
    Success,
    /// A "no" answer: `check` or `verify` found problems, `scan` found code, a lossy plan
    /// was refused, some files of a batch failed (the rest were done).
    No,
    /// An error: bad input, bad usage, I/O, a broken registry.
    Error,
    /// Interrupted (Ctrl-C).
    Interrupted,
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> ExitCode {
        ExitCode::from(match status {
            ExitStatus::Success => 0,
            ExitStatus::No => 1,
            ExitStatus::Error => 2,
            ExitStatus::Interrupted => 130,
        })
    }
}
