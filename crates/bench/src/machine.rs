//! What the benchmark ran on: CPU, cores, memory, kernel, and the scratch file system.

use std::path::Path;

/// A one-line description of the machine and the file system holding `scratch`.
pub fn describe(scratch: &Path) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name").map(|rest| rest.trim_start_matches([' ', '\t', ':']).trim()))
        .unwrap_or("unknown CPU")
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = crate::measure::status_field(&meminfo, "MemTotal:")
        .map_or("unknown memory".to_owned(), |kib| format!("{:.1} GiB RAM", kib as f64 / (1024.0 * 1024.0)));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let fs = file_system(scratch).unwrap_or_else(|| "unknown file system".to_owned());
    format!("{cpu}, {cores} cores, {memory}, Linux {}, scratch on {fs}", kernel.trim())
}

/// The type and device of the mount holding `path` (the longest matching mount point).
fn file_system(path: &Path) -> Option<String> {
    let path = path.canonicalize().ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (device, mount_point, fs_type) = (fields.next()?, fields.next()?, fields.next()?);
            path.starts_with(mount_point).then(|| (mount_point.len(), format!("{fs_type} ({device})")))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, text)| text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_file_system_is_found() {
        let text = describe(Path::new("/"));
        assert!(text.contains("cores"), "{text}");
        assert!(!text.contains("unknown file system"), "{text}");
    }
}
