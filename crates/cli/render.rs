//! Rendering errors and diagnostics for people.

use crate::printer::anyhow_like::Error;

/// `error: message` followed by `  caused by: …` lines, control characters stripped.
pub fn render_error(err: &Error, color: bool) -> String {
    let head = if color { "\x1b[1;31merror\x1b[0m" } else { "error" };
    let mut out = format!("{head}: {}", sanitize(&err.to_string()));
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(&format!("\n  caused by: {}", sanitize(&cause.to_string())));
        source = cause.source();
    }
    out
}

/// Removes control characters (other than newline and tab) that a hostile file name or
/// tensor name could use to rewrite the terminal.
pub fn sanitize(text: &str) -> String {
    text.chars().map(|ch| if ch.is_control() && ch != '\n' && ch != '\t' { '\u{FFFD}' } else { ch }).collect()
}
