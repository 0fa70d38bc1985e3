//! Opening a checkpoint reads the header and nothing else.

use std::time::Instant;

use safeshift_engine::{Checkpoint, ReadErrorKind};

use crate::util::raw_file;

/// Bytes this thread has read through `read`-family syscalls (`rchar`), from
/// `/proc/thread-self/io`: page faults on a map are not counted, `pread` is. `None` on a
/// kernel without I/O accounting.
fn thread_bytes_read() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/io").ok()?;
    let line = text.lines().find(|line| line.starts_with("rchar:"))?;
    line["rchar:".len()..].trim().parse().ok()
}

#[test]
fn open_reads_only_the_header_of_a_sparse_gibibyte() {
    const GIB: u64 = 1 << 30;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.safetensors");
    let header = format!(
        r#"{{"__metadata__":{{"format":"pt"}},"big":{{"dtype":"F32","shape":[{},1024],"data_offsets":[0,{GIB}]}}}}"#,
        GIB / 4096
    );
    let image = raw_file(&header, b"");
    std::fs::write(&path, &image).unwrap();
    // The data section is a hole: reading it would be slow and show in the counters.
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(image.len() as u64 + GIB).unwrap();

    // Reading the counters is itself a read: measure what one costs.
    let probe = thread_bytes_read();
    let counter_cost = thread_bytes_read().zip(probe).map(|(after, before)| after - before);
    let before = thread_bytes_read();
    let started = Instant::now();
    let checkpoint = Checkpoint::open(&path).unwrap();
    let elapsed = started.elapsed();
    let after = thread_bytes_read();

    match (before, after, counter_cost) {
        (Some(before), Some(after), Some(cost)) => {
            let read = after - before - cost;
            // The counter text may grow by a digit or two between reads.
            let header_len = image.len() as u64;
            assert!((header_len..header_len + 4).contains(&read), "open read {read} bytes; the header is {header_len}");
        }
        // Without I/O accounting only the time bound below shows the hole was not read.
        _ => eprintln!("note: /proc/thread-self/io is unavailable; byte count not checked"),
    }
    assert!(elapsed.as_millis() < 1000, "open took {elapsed:?}");
    let info = checkpoint.layout().tensor("big").unwrap();
    assert_eq!(info.shape, vec![GIB / 4096, 1024]);
    assert_eq!(checkpoint.layout().metadata["format"], "pt");
    // A narrow of two rows borrows 8 KiB from the map, touching only those pages.
    assert_eq!(checkpoint.narrow("big", 0, 7, 2).unwrap().unwrap().len(), 8192);
}

#[test]
fn a_file_truncated_after_open_gives_an_error_not_a_fault() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.safetensors");
    let image = raw_file(r#"{"a":{"dtype":"U8","shape":[8192],"data_offsets":[0,8192]}}    "#, &[7; 8192]);
    std::fs::write(&path, &image).unwrap();
    let checkpoint = Checkpoint::open(&path).unwrap();
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(100).unwrap();
    let err = checkpoint.tensor_bytes("a").unwrap_err();
    assert!(matches!(err.kind, ReadErrorKind::FileChanged { found: 100, .. }), "{err}");
    let mut buf = vec![0; 8192];
    let err = checkpoint.read_tensor_into("a", &mut buf).unwrap_err();
    assert!(matches!(err.kind, ReadErrorKind::FileChanged { found: 100, .. }), "{err}");
    let err = safeshift_engine::verify(&checkpoint).unwrap_err();
    assert!(matches!(err.kind, ReadErrorKind::FileChanged { .. }), "{err}");
}
