//! Running one measured step as a child process: wall time, peak resident memory and
//! peak anonymous memory.
//!
//! Memory comes from `/proc/<pid>/status`, polled every millisecond while the child
//! runs: `VmHWM` (peak resident set, file-backed pages of the mapped input included) and
//! `RssAnon` (resident anonymous memory: heap and stacks, not the mapped file nor the
//! page cache), whose maximum over the samples is the reported anonymous peak. Children
//! that are ours or the Python scripts also print their own `VmHWM` and `RssAnon` as
//! their last line of output just before exiting (`{"vm_hwm_kib": …, "rss_anon_kib": …}`),
//! which catches a peak in the last millisecond; the larger of the two is reported.
//! (`getrusage(RUSAGE_CHILDREN).ru_maxrss` is not used: Linux folds the parent's resident
//! size into it at `exec` when the child was spawned with `vfork`, as Rust's `Command` does.)

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One run of a child process.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Wall time from spawn to exit.
    pub wall: Duration,
    /// Peak resident set (`VmHWM`), KiB.
    pub peak_rss_kib: u64,
    /// Peak resident anonymous memory (`RssAnon`), KiB.
    pub peak_anon_kib: u64,
}

/// Runs `command` to completion, polling its memory; an error if it cannot start or
/// exits unsuccessfully (with its stderr).
pub fn run(command: &mut Command) -> Result<Sample, String> {
    let shown = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| format!("cannot run {shown}: {err}"))?;
    let started = Instant::now();
    let pid = child.id() as libc::pid_t;
    let status_path = format!("/proc/{pid}/status");
    let (mut peak_rss_kib, mut peak_anon_kib) = (0, 0);
    // Drain the pipes on threads so a chatty child never blocks on a full pipe.
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let out_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let exit_status = loop {
        if let Ok(status) = std::fs::read_to_string(&status_path) {
            peak_rss_kib = peak_rss_kib.max(status_field(&status, "VmHWM:").unwrap_or(0));
            peak_anon_kib = peak_anon_kib.max(status_field(&status, "RssAnon:").unwrap_or(0));
        }
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => std::thread::sleep(Duration::from_millis(1)),
            Err(err) => return Err(format!("waiting for {shown}: {err}")),
        }
    };
    let wall = started.elapsed();
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    if !exit_status.success() {
        return Err(format!("{shown} failed ({exit_status}): {}", stderr.trim()));
    }
    if let Some((rss, anon)) = self_report(&stdout) {
        peak_rss_kib = peak_rss_kib.max(rss);
        peak_anon_kib = peak_anon_kib.max(anon);
    }
    Ok(Sample { wall, peak_rss_kib, peak_anon_kib })
}

/// A `/proc/<pid>/status` field in KiB (`VmHWM:     1234 kB`).
pub fn status_field(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with(key))?;
    line[key.len()..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// This process's `VmHWM` and `RssAnon` as the JSON line children print last.
pub fn own_memory_line() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let hwm = status_field(&status, "VmHWM:").unwrap_or(0);
    let anon = status_field(&status, "RssAnon:").unwrap_or(0);
    format!("{{\"vm_hwm_kib\": {hwm}, \"rss_anon_kib\": {anon}}}")
}

/// The memory line of a child's output, if it printed one.
fn self_report(stdout: &str) -> Option<(u64, u64)> {
    let line = stdout.lines().rev().find(|line| line.contains("\"vm_hwm_kib\""))?;
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    Some((value["vm_hwm_kib"].as_u64()?, value["rss_anon_kib"].as_u64()?))
}

/// The median of some durations (the upper middle for an even count).
pub fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_parse() {
        let status = "Name:\tcat\nVmHWM:\t    1234 kB\nRssAnon:\t      88 kB\n";
        assert_eq!(status_field(status, "VmHWM:"), Some(1234));
        assert_eq!(status_field(status, "RssAnon:"), Some(88));
        assert_eq!(status_field(status, "RssFile:"), None);
    }

    #[test]
    fn self_reports_are_found_on_the_last_line() {
        let out = "hello\n{\"vm_hwm_kib\": 10, \"rss_anon_kib\": 4}\n";
        assert_eq!(self_report(out), Some((10, 4)));
        assert_eq!(self_report("nothing"), None);
        assert!(self_report(&own_memory_line()).is_some_and(|(hwm, _)| hwm > 0));
    }

    #[test]
    fn a_child_is_measured() {
        let sample = run(Command::new("/bin/sh").args(["-c", "echo hi; sleep 0.01"])).unwrap();
        assert!(sample.wall >= Duration::from_millis(10));
        assert!(sample.peak_rss_kib > 0);
        assert!(run(Command::new("/bin/sh").args(["-c", "exit 3"])).is_err());
    }

    #[test]
    fn medians() {
        let ms = Duration::from_millis;
        assert_eq!(median(&[ms(3), ms(1), ms(2)]), ms(2));
        assert_eq!(median(&[]), Duration::ZERO);
    }
}
