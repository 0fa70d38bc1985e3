//! The markdown report: one row per measurement, then the targets with their verdicts.

use std::fmt::Write;
use std::time::Duration;

use crate::size::format_bytes;

/// One measured (or unavailable) thing.
#[derive(Clone, Debug)]
pub struct Row {
    /// The step number of issue #9 (`1`…`7`, or `—` for a baseline shared by several).
    pub step: &'static str,
    /// What was measured.
    pub what: String,
    /// The result, or why there is none.
    pub result: Result<Measurement, String>,
}

/// A median time with the memory of the same runs (maxima over the runs).
#[derive(Clone, Debug, Default)]
pub struct Measurement {
    /// The median wall time.
    pub time: Duration,
    /// Bytes processed, for a throughput column.
    pub bytes: Option<u64>,
    /// Peak resident set, KiB (`None` for in-process measurements).
    pub peak_rss_kib: Option<u64>,
    /// Peak anonymous memory, KiB.
    pub peak_anon_kib: Option<u64>,
}

/// A target of the issue and how the run did against it.
#[derive(Clone, Debug)]
pub struct Target {
    /// The step number.
    pub step: &'static str,
    /// The goal, e.g. "≤ 1.2× `cp`".
    pub goal: String,
    /// What was measured, e.g. "1.04×"; `None` when a piece is missing.
    pub measured: Option<String>,
    /// Whether the goal was met.
    pub met: bool,
}

/// Renders the whole report.
pub fn render(title: &str, machine: &str, rows: &[Row], targets: &[Target], notes: &[String]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{title}\n\nMachine: {machine}\n");
    out.push_str("| step | measurement | median time | throughput | peak RSS | peak anon |\n");
    out.push_str("|---|---|---:|---:|---:|---:|\n");
    for row in rows {
        match &row.result {
            Ok(m) => {
                let throughput = m.bytes.map_or(String::new(), |bytes| throughput(bytes, m.time));
                let memory = |kib: Option<u64>| kib.map_or(String::new(), |kib| format_bytes(kib * 1024));
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} |",
                    row.step,
                    row.what,
                    format_duration(m.time),
                    throughput,
                    memory(m.peak_rss_kib),
                    memory(m.peak_anon_kib)
                );
            }
            Err(reason) => {
                let _ = writeln!(out, "| {} | {} | n/a ({reason}) | | | |", row.step, row.what);
            }
        }
    }
    if !targets.is_empty() {
        out.push_str("\n| step | target | measured | met |\n|---|---|---:|:---:|\n");
        for target in targets {
            let (measured, met) = match &target.measured {
                Some(text) => (text.as_str(), if target.met { "yes" } else { "**no**" }),
                None => ("n/a (not yet available)", ""),
            };
            let _ = writeln!(out, "| {} | {} | {} | {} |", target.step, target.goal, measured, met);
        }
    }
    for note in notes {
        let _ = writeln!(out, "\n{note}");
    }
    out
}

/// `1.234 s`, `12.3 ms`, `45.6 µs`.
pub fn format_duration(time: Duration) -> String {
    let seconds = time.as_secs_f64();
    if seconds >= 1.0 {
        format!("{seconds:.2} s")
    } else if seconds >= 1e-3 {
        format!("{:.1} ms", seconds * 1e3)
    } else {
        format!("{:.1} µs", seconds * 1e6)
    }
}

fn throughput(bytes: u64, time: Duration) -> String {
    let seconds = time.as_secs_f64();
    if seconds <= 0.0 {
        return String::new();
    }
    format!("{}/s", format_bytes((bytes as f64 / seconds) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_renders_rows_targets_and_gaps() {
        let rows = vec![
            Row {
                step: "3",
                what: "safeshift rewrite".into(),
                result: Ok(Measurement {
                    time: Duration::from_millis(500),
                    bytes: Some(1 << 30),
                    peak_rss_kib: Some(2048),
                    peak_anon_kib: Some(1024),
                }),
            },
            Row { step: "4", what: "heavy".into(), result: Err("not yet available".into()) },
        ];
        let targets = vec![
            Target { step: "3", goal: "≤ 1.2× cp".into(), measured: Some("1.05×".into()), met: true },
            Target { step: "4", goal: "≤ 3× cp".into(), measured: None, met: false },
        ];
        let text = render("## Bench", "a machine", &rows, &targets, &["A note.".into()]);
        assert_eq!(
            text,
            "## Bench\n\nMachine: a machine\n\n\
             | step | measurement | median time | throughput | peak RSS | peak anon |\n\
             |---|---|---:|---:|---:|---:|\n\
             | 3 | safeshift rewrite | 500.0 ms | 2.0 GiB/s | 2.0 MiB | 1.0 MiB |\n\
             | 4 | heavy | n/a (not yet available) | | | |\n\
             \n| step | target | measured | met |\n|---|---|---:|:---:|\n\
             | 3 | ≤ 1.2× cp | 1.05× | yes |\n\
             | 4 | ≤ 3× cp | n/a (not yet available) |  |\n\
             \nA note.\n"
        );
    }

    #[test]
    fn durations_pick_a_unit() {
        assert_eq!(format_duration(Duration::from_micros(45)), "45.0 µs");
        assert_eq!(format_duration(Duration::from_millis(12)), "12.0 ms");
        assert_eq!(format_duration(Duration::from_millis(1234)), "1.23 s");
    }
}
