//! `safeshift fmt`: rewrite registry files in the canonical layout, like `cargo fmt`.

use std::fs;
use std::path::{Path, PathBuf};

use clap::Args;
use safeshift::dsl::{format, parse, SourceMap};

use crate::exit_codes::ExitStatus;
use crate::printer::{anyhow_like::Error, Printer};
use crate::render::{render_diagnostics, sanitize};

/// Format schema and migration files (`*.ss`) in the one canonical layout.
///
/// Without paths, formats every `*.ss` file under `schemas/` and `migrations/` of the
/// current directory. Files are rewritten atomically; a file that does not parse is
/// reported and left untouched.
#[derive(Args, Debug)]
pub struct FmtArgs {
    /// Change nothing: list the files that are not formatted and exit with status 1.
    #[arg(long)]
    pub check: bool,
    /// Files, or folders searched recursively for `*.ss` files.
    #[arg(value_name = "PATHS")]
    pub paths: Vec<PathBuf>,
}

/// Registry files larger than this are refused rather than read into memory.
const MAX_FILE_SIZE: u64 = 64 * 1024 * 1024;

/// What can go wrong reading or writing one file.
#[derive(Debug, thiserror::Error)]
pub enum FmtError {
    /// A path given on the command line does not exist.
    #[error("`{}` does not exist", .0.display())]
    Missing(PathBuf),
    /// Reading failed.
    #[error("cannot read `{}`", .path.display())]
    Read { path: PathBuf, source: std::io::Error },
    /// The file is too large to be a registry file.
    #[error("`{}` is {size} bytes, more than a registry file may hold ({MAX_FILE_SIZE})", .path.display())]
    TooLarge { path: PathBuf, size: u64 },
    /// The file is not UTF-8 text.
    #[error("`{}` is not UTF-8 text", .0.display())]
    NotUtf8(PathBuf),
    /// Writing the formatted file failed (the original is untouched).
    #[error("cannot write `{}`", .path.display())]
    Write { path: PathBuf, source: safeshift::engine::WriteError },
}

/// Formats (or checks) every file; exit status 1 when `--check` finds unformatted files,
/// 2 when a file could not be read, parsed or written.
pub fn run(args: FmtArgs, printer: &Printer) -> Result<ExitStatus, Error> {
    let roots = if args.paths.is_empty() {
        ["schemas", "migrations"].iter().map(PathBuf::from).filter(|root| root.exists()).collect()
    } else {
        args.paths.clone()
    };
    let mut files = Vec::new();
    for root in &roots {
        collect(root, true, &mut files)?;
    }
    let mut failed = false;
    let mut unformatted = Vec::new();
    for path in &files {
        match format_one(path, args.check, printer) {
            Ok(Outcome::Canonical) => {}
            Ok(Outcome::Unformatted { diff }) => {
                println!("Diff in {}:", sanitize(&path.display().to_string()));
                print!("{diff}");
                unformatted.push(path);
            }
            Ok(Outcome::Rewritten) => {
                if !printer.quiet {
                    eprintln!("formatted {}", sanitize(&path.display().to_string()));
                }
            }
            Ok(Outcome::Invalid) => failed = true,
            Err(err) => {
                printer.error(&(Box::new(err) as Error));
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitStatus::Error
    } else if !unformatted.is_empty() {
        ExitStatus::No
    } else {
        ExitStatus::Success
    })
}

enum Outcome {
    Canonical,
    Unformatted {
        diff: String,
    },
    Rewritten,
    /// The file does not parse; its diagnostics have been printed.
    Invalid,
}

fn format_one(path: &Path, check: bool, printer: &Printer) -> Result<Outcome, FmtError> {
    let size = fs::metadata(path).map_err(|source| FmtError::Read { path: path.to_owned(), source })?.len();
    if size > MAX_FILE_SIZE {
        return Err(FmtError::TooLarge { path: path.to_owned(), size });
    }
    let bytes = fs::read(path).map_err(|source| FmtError::Read { path: path.to_owned(), source })?;
    let text = String::from_utf8(bytes).map_err(|_| FmtError::NotUtf8(path.to_owned()))?;
    let mut sources = SourceMap::new();
    let id = sources.add(path.display().to_string(), text.clone());
    let file = match parse(id, &text) {
        Ok(file) => file,
        Err(diagnostics) => {
            eprint!("{}", render_diagnostics(&diagnostics, &sources, printer.color));
            return Ok(Outcome::Invalid);
        }
    };
    let formatted = format(&file);
    if formatted == text {
        return Ok(Outcome::Canonical);
    }
    if check {
        return Ok(Outcome::Unformatted { diff: diff_hint(&text, &formatted) });
    }
    safeshift::engine::write_file_atomically(path, formatted.as_bytes())
        .map_err(|source| FmtError::Write { path: path.to_owned(), source })?;
    Ok(Outcome::Rewritten)
}

/// Adds `path` (a file, or every `*.ss` file below a folder, sorted) to `files`.
/// Symbolic links to folders are not followed, so a link loop cannot recurse forever.
fn collect(path: &Path, explicit: bool, files: &mut Vec<PathBuf>) -> Result<(), FmtError> {
    let metadata = fs::symlink_metadata(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound if explicit => FmtError::Missing(path.to_owned()),
        _ => FmtError::Read { path: path.to_owned(), source },
    })?;
    if !metadata.is_dir() {
        if explicit || path.extension().is_some_and(|extension| extension == "ss") {
            files.push(path.to_owned());
        }
        return Ok(());
    }
    let entries = fs::read_dir(path).map_err(|source| FmtError::Read { path: path.to_owned(), source })?;
    let mut children = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| FmtError::Read { path: path.to_owned(), source })?;
        children.push(entry.path());
    }
    children.sort();
    for child in children {
        collect(&child, false, files)?;
    }
    Ok(())
}

/// The changed region, as `-`/`+` lines (at most a few of each): enough to see what
/// `safeshift fmt` would do.
fn diff_hint(old: &str, new: &str) -> String {
    const SHOWN: usize = 8;
    let old_lines: Vec<&str> = old.lines().collect();
    let new_lines: Vec<&str> = new.lines().collect();
    let common_start = old_lines.iter().zip(&new_lines).take_while(|(a, b)| a == b).count();
    let common_end = old_lines[common_start..]
        .iter()
        .rev()
        .zip(new_lines[common_start..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let removed = &old_lines[common_start..old_lines.len() - common_end];
    let added = &new_lines[common_start..new_lines.len() - common_end];
    let mut out = format!("  at line {}:\n", common_start + 1);
    for line in removed.iter().take(SHOWN) {
        out.push_str(&format!("  -{}\n", sanitize(line)));
    }
    if removed.len() > SHOWN {
        out.push_str(&format!("  … {} more lines\n", removed.len() - SHOWN));
    }
    for line in added.iter().take(SHOWN) {
        out.push_str(&format!("  +{}\n", sanitize(line)));
    }
    if added.len() > SHOWN {
        out.push_str(&format!("  … {} more lines\n", added.len() - SHOWN));
    }
    if removed.is_empty() && added.is_empty() {
        out.push_str("  (line endings or the final newline differ)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_hint_shows_the_changed_lines() {
        let hint = diff_hint("a\nb  \nc\n", "a\nb\nc\n");
        assert_eq!(hint, "  at line 2:\n  -b  \n  +b\n");
        assert!(diff_hint("a", "a\n").contains("final newline"));
    }
}
