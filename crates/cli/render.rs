//! Everything the CLI shows people, apart from each command's own layout: errors (the
//! `error:` header, cause chains), diagnostics as source snippets, sizes, counts, format
//! names and detection results with their explanations.

use std::error::Error;
use std::fmt;
use std::path::Path;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};
use safeshift::dsl::{Diagnostic, Severity, SourceId, SourceMap};
use safeshift::engine::InputFormat;
use safeshift::graph::{DetectError, Detection, Evidence};
use safeshift::torch::Format as TorchFormat;

/// `error`, in bold red when colour is on: how every error line starts.
fn error_head(color: bool) -> &'static str {
    if color {
        "\x1b[1;31merror\x1b[0m"
    } else {
        "error"
    }
}

/// `error: message` followed by `  caused by: …` lines, control characters stripped.
pub fn render_error(err: &(dyn Error + 'static), color: bool) -> String {
    let mut out = format!("{}: {}", error_head(color), sanitize(&err.to_string()));
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(&format!("\n  caused by: {}", sanitize(&cause.to_string())));
        source = cause.source();
    }
    out
}

/// `error: message: cause: …` on one line (one failed file of a batch), control
/// characters stripped.
pub fn one_line_error(err: &(dyn Error + 'static), color: bool) -> String {
    format!("{}: {}", error_head(color), sanitize(&error_chain(err)))
}

/// The message and its causes joined by `: `, leaving out a cause whose text the message
/// already holds (wrapper errors often repeat their cause's).
pub fn error_chain(err: &(dyn Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(&format!(": {cause_text}"));
        }
        source = cause.source();
    }
    text
}

/// `1.5 KiB`, `193.9 MiB`; bytes below 1 KiB as `512 B`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// "s" unless `count` is one.
pub fn plural(count: usize) -> &'static str {
    if count == 1 {
        ""
    } else {
        "s"
    }
}

/// How a checkpoint's format is named (`inspect`).
pub fn input_format_name(format: &InputFormat) -> &'static str {
    match format {
        InputFormat::Safetensors => "safetensors",
        InputFormat::Torch(TorchFormat::Zip { .. }) => "PyTorch zip",
        InputFormat::Torch(TorchFormat::Legacy) => "PyTorch legacy",
        InputFormat::Torch(_) => "PyTorch",
    }
}

/// How a PyTorch file's container is named (`scan`, `inspect`).
pub fn pickle_format_name(format: &TorchFormat) -> &'static str {
    match format {
        TorchFormat::Zip { .. } => "zip",
        TorchFormat::TorchScript { .. } => "torchscript",
        TorchFormat::Tar => "tar",
        TorchFormat::Legacy => "legacy",
        TorchFormat::Pickle => "pickle",
    }
}

/// A detection for people: the version, why, and its dims.
pub fn detection(detection: &Detection) -> String {
    let release = detection.provenance.as_ref().map(|record| record.release.as_str()).unwrap_or_default();
    let evidence = match detection.evidence {
        Evidence::Recorded => "recorded in the metadata, and the layout fits".to_owned(),
        Evidence::OnlyFit => "the only schema the layout fits".to_owned(),
        Evidence::Provenance => format!("written by release {release}, and the layout fits"),
        Evidence::OldestFit => "the oldest of the versions this layout fits".to_owned(),
        Evidence::Given => "given, and the layout fits".to_owned(),
    };
    let mut out = format!("{} ({evidence})\n", detection.version);
    if let Some(key_layout) = &detection.key_layout {
        out.push_str(&format!(
            "  key layout: {} (the schemas' names without the leading `{}`)\n",
            key_layout.kind, key_layout.prefix
        ));
    }
    if let Some(named) = detection.contradicted() {
        out.push_str(&format!(
            "  warning: the file says release {release} wrote it (`{named}`), but its layout is that of `{}`\n",
            detection.version
        ));
    }
    if detection.evidence == Evidence::OldestFit {
        let others: Vec<String> = detection.alternatives.iter().map(|version| format!("`{version}`")).collect();
        out.push_str(&format!(
            "  note: the layout also fits {}; the file records no release to tell them apart\n",
            others.join(", ")
        ));
    }
    if !detection.dims.is_empty() {
        let dims: Vec<String> = detection.dims.iter().map(|(name, value)| format!("{name} = {value}")).collect();
        out.push_str(&format!("  dims: {}\n", dims.join(", ")));
    }
    out
}

/// A failed detection for people: the candidates, or the nearest schemas with diffs.
pub fn detect_error(path: &Path, err: &DetectError) -> String {
    let mut out = format!("error: {}\n", sanitize(&format!("`{}`: {err}", path.display())));
    match err {
        DetectError::Ambiguous { candidates } => {
            for candidate in candidates {
                out.push_str(&format!("  fits `{candidate}`\n"));
            }
            out.push_str("  help: give the version with `--from`, or tell the schemas apart (a `meta` key)\n");
        }
        DetectError::NoFit { nearest } => {
            for near in nearest {
                out.push_str(&format!("\n  `{}`: {:.0}% of tensors fit\n", near.version, near.score * 100.0));
                for line in near.mismatch.to_string().lines() {
                    out.push_str(&format!("    {}\n", sanitize(line)));
                }
            }
        }
        _ => {}
    }
    out
}

/// Removes control characters (other than newline and tab) that a hostile file name or
/// tensor name could use to rewrite the terminal.
pub fn sanitize(text: &str) -> String {
    text.chars().map(|ch| if ch.is_control() && ch != '\n' && ch != '\t' { '\u{FFFD}' } else { ch }).collect()
}

/// Most diagnostics rendered as snippets. Each snippet costs time in proportion to its
/// file's size, so a hostile registry file with one error per line (thousands in a few
/// hundred kilobytes) would otherwise take minutes; the rest are counted.
pub const MAX_RENDERED_DIAGNOSTICS: usize = 200;

/// Renders diagnostics as source snippets: `file:line:col`, the line with the span
/// underlined and its label, secondary places (in their own snippet when they are in
/// another file), and hints as `help:` lines. Diagnostics are separated by a blank line.
/// After [`MAX_RENDERED_DIAGNOSTICS`], one line counts the ones not shown.
pub fn render_diagnostics(diagnostics: &[Diagnostic], sources: &SourceMap, color: bool) -> String {
    let theme = if color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(100).with_links(false);
    let mut out = String::new();
    if let Some(rest) = diagnostics.get(MAX_RENDERED_DIAGNOSTICS..).filter(|rest| !rest.is_empty()) {
        let shown = render_diagnostics(&diagnostics[..MAX_RENDERED_DIAGNOSTICS], sources, color);
        let errors = rest.iter().filter(|diagnostic| diagnostic.is_error()).count();
        return format!("{shown}\n... and {} more diagnostic(s) not shown ({errors} error(s))\n", rest.len());
    }
    for diagnostic in diagnostics {
        let report = Report::new(diagnostic, sources);
        let mut rendered = String::new();
        if handler.render_report(&mut rendered, &report).is_err() {
            // Rendering into a String cannot fail; keep the message if it somehow does.
            rendered = format!("{}: {}\n", severity_word(diagnostic.severity), diagnostic.message);
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&rendered);
    }
    out
}

fn severity_word(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

/// One diagnostic as miette sees it: the primary source with the labels in it, and one
/// related report per other source.
struct Report {
    message: String,
    code: &'static str,
    severity: miette::Severity,
    source: NamedSource<String>,
    labels: Vec<LabeledSpan>,
    help: Option<String>,
    related: Vec<Report>,
}

impl Report {
    fn new(diagnostic: &Diagnostic, sources: &SourceMap) -> Report {
        let primary = diagnostic.primary.source;
        let mut labels = vec![labeled(&diagnostic.primary.message, diagnostic.primary.span, true)];
        let mut related: Vec<Report> = Vec::new();
        for secondary in &diagnostic.secondary {
            if secondary.source == primary {
                labels.push(labeled(&secondary.message, secondary.span, false));
                continue;
            }
            // Group secondary labels per other source, in order of appearance.
            match related.iter_mut().find(|report| report.source.name() == sources.name(secondary.source)) {
                Some(report) => report.labels.push(labeled(&secondary.message, secondary.span, false)),
                None => related.push(Report {
                    message: format!("see also `{}`", sanitize(sources.name(secondary.source))),
                    code: "",
                    severity: miette::Severity::Advice,
                    source: named(sources, secondary.source),
                    labels: vec![labeled(&secondary.message, secondary.span, false)],
                    help: None,
                    related: Vec::new(),
                }),
            }
        }
        let help = (!diagnostic.hints.is_empty())
            .then(|| diagnostic.hints.iter().map(|hint| sanitize(hint)).collect::<Vec<_>>().join("\n"));
        Report {
            message: sanitize(&diagnostic.message),
            code: diagnostic.code,
            severity: match diagnostic.severity {
                Severity::Error => miette::Severity::Error,
                Severity::Warning => miette::Severity::Warning,
            },
            source: named(sources, primary),
            labels,
            help,
            related,
        }
    }
}

/// The source with control characters (an escape sequence in a comment) replaced by
/// as many `?` as they have bytes, so spans still point at the same text.
fn named(sources: &SourceMap, id: SourceId) -> NamedSource<String> {
    let raw = sources.text(id);
    let is_control = |ch: char| ch.is_control() && !matches!(ch, '\n' | '\t' | '\r');
    // The common case copies the text once instead of allocating per character.
    if !raw.chars().any(is_control) {
        return NamedSource::new(sanitize(sources.name(id)), raw.to_owned());
    }
    let text: String = raw
        .chars()
        .map(|ch| {
            if ch.is_control() && !matches!(ch, '\n' | '\t' | '\r') {
                "?".repeat(ch.len_utf8())
            } else {
                ch.to_string()
            }
        })
        .collect();
    NamedSource::new(sanitize(sources.name(id)), text)
}

fn labeled(message: &str, span: safeshift::dsl::ast::Span, primary: bool) -> LabeledSpan {
    let text = (!message.is_empty()).then(|| sanitize(message));
    let span = SourceSpan::new(span.start.into(), span.end.saturating_sub(span.start));
    if primary {
        LabeledSpan::new_primary_with_span(text, span)
    } else {
        LabeledSpan::new_with_span(text, span)
    }
}

impl fmt::Debug for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Report {}

impl miette::Diagnostic for Report {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        (!self.code.is_empty()).then(|| Box::new(self.code) as Box<dyn fmt::Display>)
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(self.severity)
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help.as_ref().map(|help| Box::new(help) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        Some(Box::new(self.labels.iter().cloned()))
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        if self.related.is_empty() {
            return None;
        }
        Some(Box::new(self.related.iter().map(|report| report as &dyn miette::Diagnostic)))
    }
}

#[cfg(test)]
mod tests {
    //! Diagnostics as data: every folder of `tests/data/diagnostics/` holds an `input.ss`
    //! and the rendered diagnostics of parsing and checking it (`expected.snap`).

    use std::path::Path;

    use safeshift::dsl::{ast::Span, check, parse};

    use super::*;

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(3 << 30), "3.0 GiB");
    }

    #[test]
    fn a_one_line_error_keeps_new_causes_only() {
        #[derive(Debug)]
        struct Wrapper(std::io::Error, &'static str);
        impl fmt::Display for Wrapper {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.1)
            }
        }
        impl Error for Wrapper {
            fn source(&self) -> Option<&(dyn Error + 'static)> {
                Some(&self.0)
            }
        }
        let cause = || std::io::Error::other("disk full");
        assert_eq!(
            one_line_error(&Wrapper(cause(), "`a`: cannot write"), false),
            "error: `a`: cannot write: disk full"
        );
        assert_eq!(error_chain(&Wrapper(cause(), "`a`: disk full")), "`a`: disk full");
        assert_eq!(
            render_error(&Wrapper(cause(), "`a`\u{1b}[2J"), false),
            "error: `a`\u{FFFD}[2J\n  caused by: disk full"
        );
    }

    #[test]
    fn diagnostics_render_as_in_the_snapshots() {
        let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/diagnostics"));
        let mut cases: Vec<_> = std::fs::read_dir(root).unwrap().map(|entry| entry.unwrap().path()).collect();
        cases.sort();
        assert!(cases.len() >= 25, "only {} diagnostic cases", cases.len());
        for case in cases {
            let name = case.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(case.join("input.ss")).unwrap();
            let mut sources = SourceMap::new();
            let id = sources.add(format!("{name}/input.ss"), text.clone());
            let diagnostics = match parse(id, &text) {
                Ok(file) => check(id, &file),
                Err(diagnostics) => diagnostics,
            };
            assert!(!diagnostics.is_empty(), "case `{name}` has no diagnostic");
            let rendered = render_diagnostics(&diagnostics, &sources, false);
            let mut settings = insta::Settings::clone_current();
            settings.set_snapshot_path(&case);
            settings.set_prepend_module_to_snapshot(false);
            settings.set_input_file(case.join("input.ss"));
            settings.bind(|| insta::assert_snapshot!("expected", rendered));
        }
    }

    /// A file with one error per line renders in bounded time: the first
    /// `MAX_RENDERED_DIAGNOSTICS` as snippets, the rest counted (found while bounding
    /// registry costs: 5,000 such lines took minutes).
    #[test]
    fn thousands_of_diagnostics_render_a_bounded_number() {
        let text: String = (0..1000).map(|index| format!("    tensor \"t{index}\" : F33[1]\n")).collect();
        let text = format!("schema a @ 1.0.0 {{\n{text}}}\n");
        let mut sources = SourceMap::new();
        let id = sources.add("schemas/a.ss".to_owned(), text.clone());
        let diagnostics = check(id, &parse(id, &text).unwrap());
        assert_eq!(diagnostics.len(), 1000);
        let start = std::time::Instant::now();
        let rendered = render_diagnostics(&diagnostics, &sources, false);
        assert!(start.elapsed() < std::time::Duration::from_secs(60), "took {:?}", start.elapsed());
        assert_eq!(rendered.matches("unknown dtype").count(), MAX_RENDERED_DIAGNOSTICS);
        assert!(rendered.ends_with("... and 800 more diagnostic(s) not shown (800 error(s))\n"), "{rendered}");
    }

    #[test]
    fn secondary_labels_in_another_file_get_their_own_snippet() {
        let mut sources = SourceMap::new();
        let migration =
            sources.add("migrations/a.ss".to_owned(), "migration a 1.0.0 -> 2.0.0 {\n    drop \"x\"\n}\n".to_owned());
        let schema =
            sources.add("schemas/a.ss".to_owned(), "schema a @ 2.0.0 {\n    tensor \"x\" : f32[]\n}\n".to_owned());
        let diagnostic =
            Diagnostic::error("example", "`x` is still in the target schema", migration, Span::new(38, 41))
                .with_label("dropped here")
                .with_secondary(schema, Span::new(30, 33), "declared here")
                .with_hint("keep it, or remove it from the schema");
        insta::assert_snapshot!(render_diagnostics(&[diagnostic], &sources, false), @r#"
        example

          × `x` is still in the target schema
           ╭─[migrations/a.ss:2:10]
         1 │ migration a 1.0.0 -> 2.0.0 {
         2 │     drop "x"
           ·          ─┬─
           ·           ╰── dropped here
         3 │ }
           ╰────
          help: keep it, or remove it from the schema

        Advice: 
          ☞ see also `schemas/a.ss`
           ╭─[schemas/a.ss:2:12]
         1 │ schema a @ 2.0.0 {
         2 │     tensor "x" : f32[]
           ·            ─┬─
           ·             ╰── declared here
         3 │ }
           ╰────
        "#);
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        let mut sources = SourceMap::new();
        let id = sources.add("evil\u{1b}[2J.ss".to_owned(), "x".to_owned());
        let diagnostic = Diagnostic::error("example", "bad \u{1b}[31m", id, Span::new(0, 1));
        let rendered = render_diagnostics(&[diagnostic], &sources, false);
        assert!(!rendered.contains('\u{1b}'), "{rendered}");
    }
}
