//! The `safeshift` command-line tool: parses arguments, calls the library, prints.
//!
//! Exit codes live in [`exit_codes`]; every subcommand is one file in `commands/`.

mod batch;
mod commands;
mod exit_codes;
mod json;
mod layout_input;
mod pickle;
mod printer;
mod registry;
mod render;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    reset_sigpipe();
    let cli = commands::Cli::parse();
    let color = printer::ColorChoice::from_flag(&cli.global.color);
    let printer = printer::Printer::new(color, cli.global.quiet);
    match commands::run(cli, &printer) {
        Ok(code) => code.into(),
        Err(err) => {
            printer.error(&err);
            exit_codes::ExitStatus::Error.into()
        }
    }
}

/// A broken pipe (`safeshift inspect … | head`) ends the program quietly, as Unix tools do.
fn reset_sigpipe() {
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
