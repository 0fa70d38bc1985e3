//! One place decides what goes to the terminal: colour, progress, errors.

use std::io::IsTerminal;

/// When to colour output (`--color`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColorChoice {
    /// When stderr is a terminal that takes colour (`NO_COLOR` unset, `TERM` not `dumb`).
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

impl ColorChoice {
    /// `auto`, `always` or `never` (clap checks the value; anything else is `auto`).
    pub fn from_flag(flag: &str) -> ColorChoice {
        match flag {
            "always" => ColorChoice::Always,
            "never" => ColorChoice::Never,
            _ => ColorChoice::Auto,
        }
    }
}

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
    /// Decides from the settings and the environment.
    pub fn new(color: ColorChoice, quiet: bool) -> Printer {
        let stderr_tty = std::io::stderr().is_terminal();
        let color = match color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                stderr_tty
                    && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
                    && std::env::var("TERM").map_or(true, |term| term != "dumb")
            }
        };
        Printer { color, progress: stderr_tty && !quiet, quiet }
    }

    /// Prints `error: …` with the cause chain on stderr.
    pub fn error(&self, err: &anyhow_like::Error) {
        eprintln!("{}", crate::render::render_error(err.as_ref(), self.color));
    }
}

/// The error type commands return: a boxed error with its source chain.
pub mod anyhow_like {
    /// Any error a command can end with.
    pub type Error = Box<dyn std::error::Error + Send + Sync + 'static>;
}
