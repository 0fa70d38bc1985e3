//! One place decides what goes to the terminal: colour, progress, errors.

use std::io::IsTerminal;

use crate::commands::GlobalArgs;

/// Where output goes and how it looks.
pub struct Printer {
    /// Whether stderr may show colour.
    pub color: bool,
    /// Whether progress bars may be drawn (stderr is a terminal, not `--quiet`).
    pub progress: bool,
    /// `--quiet`: only errors.
    pub quiet: bool,
}

impl Printer {
    /// Decides from the global flags and the environment.
    pub fn new(global: &GlobalArgs) -> Printer {
        let stderr_tty = std::io::stderr().is_terminal();
        let color = match global.color.as_str() {
            "always" => true,
            "never" => false,
            _ => {
                stderr_tty
                    && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
                    && std::env::var("TERM").map_or(true, |term| term != "dumb")
            }
        };
        Printer { color, progress: stderr_tty && !global.quiet, quiet: global.quiet }
    }

    /// Prints `error: …` with the cause chain on stderr.
    pub fn error(&self, err: &anyhow_like::Error) {
        eprintln!("{}", crate::render::render_error(err, self.color));
    }
}

/// The error type commands return: a boxed error with its source chain.
pub mod anyhow_like {
    /// Any error a command can end with.
    pub type Error = Box<dyn std::error::Error + Send + Sync + 'static>;
}
