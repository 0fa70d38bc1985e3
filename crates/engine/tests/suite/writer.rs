//! The writer is atomic: on an error, an injected fault or a SIGKILL, nothing appears at
//! the target and (except after SIGKILL) no temporary file stays behind.

use std::borrow::Cow;
use std::path::Path;
use std::time::{Duration, Instant};

use safeshift_engine::{
    verify, write, Checkpoint, OutputTensor, ProblemKind, TensorLocation, TensorSource, WriteErrorKind, WriteOptions,
};
use safeshift_model::DType;

use crate::util::listing;

/// Three tensors, one of each source kind (the file range comes from `input`).
fn mixed<'a>(input: &'a Checkpoint, fail_generator: bool) -> Vec<OutputTensor<'a>> {
    let location = input.tensor_location("w").unwrap();
    vec![
        OutputTensor {
            name: "borrowed".into(),
            dtype: DType::U8,
            shape: vec![300],
            source: TensorSource::Bytes(Cow::Owned(vec![5; 300])),
        },
        OutputTensor {
            name: "copied".into(),
            dtype: DType::F32,
            shape: vec![64, 16],
            source: TensorSource::File(location),
        },
        OutputTensor {
            name: "generated".into(),
            dtype: DType::I64,
            shape: vec![100],
            source: TensorSource::Generate(Box::new(move |buf: &mut [u8]| {
                if fail_generator {
                    return Err("the generator gave up".into());
                }
                for (index, chunk) in buf.chunks_mut(8).enumerate() {
                    chunk.copy_from_slice(&(index as i64).to_le_bytes());
                }
                Ok(())
            })),
        },
    ]
}

/// An input file with one F32 [64, 16] tensor `w` of bytes 0, 1, 2, ….
fn input(dir: &Path) -> Checkpoint {
    let path = dir.join("in.safetensors");
    let bytes: Vec<u8> = (0..4096u32).map(|i| i as u8).collect();
    let tensor = OutputTensor {
        name: "w".into(),
        dtype: DType::F32,
        shape: vec![64, 16],
        source: TensorSource::Bytes(Cow::Borrowed(&bytes)),
    };
    write(&path, vec![tensor], &WriteOptions::default()).unwrap();
    Checkpoint::open(&path).unwrap()
}

#[test]
fn every_source_kind_round_trips() {
    // Checksums are computed while the file ranges are copied.
    for record_sha256 in [false, true] {
        round_trip_every_source_kind(record_sha256);
    }
}

fn round_trip_every_source_kind(record_sha256: bool) {
    let dir = tempfile::tempdir().unwrap();
    let input = input(dir.path());
    let target = dir.path().join("out.safetensors");
    let options = WriteOptions { record_sha256, ..WriteOptions::default() };
    let summary = write(&target, mixed(&input, false), &options).unwrap();
    assert_eq!(summary.files, vec![target.clone()]);
    assert_eq!(summary.bytes, std::fs::metadata(&target).unwrap().len());
    let out = Checkpoint::open(&target).unwrap();
    assert_eq!(out.tensor_bytes("copied").unwrap(), input.tensor_bytes("w").unwrap());
    assert_eq!(out.tensor_bytes("borrowed").unwrap(), &[5; 300][..]);
    assert_eq!(&out.tensor_bytes("generated").unwrap()[8..16], &1i64.to_le_bytes());
    let report = verify(&out).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let matched = if record_sha256 { 3 } else { 0 };
    assert_eq!((report.tensors, report.checksums_matched, report.bytes), (3, matched, 300 + 4096 + 800));
    assert_eq!(listing(dir.path()), vec!["in.safetensors", "out.safetensors"]);
}

#[test]
fn verify_finds_corrupted_bytes_and_bad_booleans() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out.safetensors");
    let tensors = vec![
        OutputTensor {
            name: "flags".into(),
            dtype: DType::Bool,
            shape: vec![4],
            source: TensorSource::Bytes(Cow::Borrowed(&[0, 1, 2, 1])),
        },
        OutputTensor {
            name: "x".into(),
            dtype: DType::U8,
            shape: vec![4],
            source: TensorSource::Bytes(Cow::Borrowed(b"abcd")),
        },
    ];
    write(&target, tensors, &WriteOptions { record_sha256: true, ..WriteOptions::default() }).unwrap();
    let mut image = std::fs::read(&target).unwrap();
    let last = image.len() - 1;
    image[last] ^= 0xff;
    std::fs::write(&target, &image).unwrap();
    let report = verify(&Checkpoint::open(&target).unwrap()).unwrap();
    let kinds: Vec<String> =
        report.problems.iter().map(|p| format!("{}: {}", p.tensor.as_deref().unwrap_or("-"), p.kind)).collect();
    assert_eq!(report.problems.len(), 2, "{kinds:?}");
    assert!(matches!(report.problems[0].kind, ProblemKind::BoolOutOfRange { element: 2, value: 2 }), "{kinds:?}");
    assert!(matches!(report.problems[1].kind, ProblemKind::ChecksumMismatch { .. }), "{kinds:?}");
}

#[test]
fn injected_faults_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let input = input(dir.path());
    let target = dir.path().join("out.safetensors");
    // Before the header, inside it, in each tensor, and just before the last byte.
    let total = {
        let probe = dir.path().join("probe.safetensors");
        let bytes = write(&probe, mixed(&input, false), &WriteOptions::default()).unwrap().bytes;
        std::fs::remove_file(&probe).unwrap();
        bytes
    };
    for fail_after in [0, 4, 8, 20, 300, 1000, 3000, total - 500, total - 1] {
        for record_sha256 in [false, true] {
            let options = WriteOptions { fail_after_bytes: Some(fail_after), record_sha256, ..WriteOptions::default() };
            let err = write(&target, mixed(&input, false), &options).unwrap_err();
            assert!(matches!(err.kind, WriteErrorKind::InjectedFault { after } if after == fail_after), "{err}");
            assert_eq!(listing(dir.path()), vec!["in.safetensors"], "after {fail_after} bytes");
        }
    }
}

#[test]
fn a_failed_write_keeps_the_old_target() {
    let dir = tempfile::tempdir().unwrap();
    let input = input(dir.path());
    let target = dir.path().join("out.safetensors");
    std::fs::write(&target, b"the previous version").unwrap();
    let err = write(&target, mixed(&input, true), &WriteOptions::default()).unwrap_err();
    assert!(matches!(err.kind, WriteErrorKind::Generator { .. }), "{err}");
    assert_eq!(std::error::Error::source(&err).unwrap().to_string(), "the generator gave up");
    assert_eq!(std::fs::read(&target).unwrap(), b"the previous version");
    assert_eq!(listing(dir.path()), vec!["in.safetensors", "out.safetensors"]);

    let duplicate = vec![
        OutputTensor {
            name: "d".into(),
            dtype: DType::U8,
            shape: vec![],
            source: TensorSource::Bytes(Cow::Borrowed(b"a")),
        },
        OutputTensor {
            name: "d".into(),
            dtype: DType::U8,
            shape: vec![],
            source: TensorSource::Bytes(Cow::Borrowed(b"b")),
        },
    ];
    let err = write(&target, duplicate, &WriteOptions::default()).unwrap_err();
    assert_eq!(err.to_string(), format!("`{}`: duplicate tensor `d`", target.display()));
    let short = vec![OutputTensor {
        name: "s".into(),
        dtype: DType::F32,
        shape: vec![2],
        source: TensorSource::Bytes(Cow::Borrowed(b"abc")),
    }];
    let err = write(&target, short, &WriteOptions::default()).unwrap_err();
    assert!(matches!(err.kind, WriteErrorKind::SourceLength { expected: 8, found: 3, .. }), "{err}");
    assert_eq!(std::fs::read(&target).unwrap(), b"the previous version");
}

#[test]
fn sharded_output_reads_back_through_its_index() {
    let dir = tempfile::tempdir().unwrap();
    let input = input(dir.path());
    let index = dir.path().join("model.safetensors.index.json");
    let options = WriteOptions { max_shard_size: Some(1000), record_sha256: true, ..WriteOptions::default() };
    let summary = write(&index, mixed(&input, false), &options).unwrap();
    let names: Vec<_> = summary.files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(
        names,
        [
            "model-00001-of-00003.safetensors",
            "model-00002-of-00003.safetensors",
            "model-00003-of-00003.safetensors",
            "model.safetensors.index.json"
        ]
    );
    let sharded = Checkpoint::open(&index).unwrap();
    assert_eq!(sharded.files().len(), 3);
    assert_eq!(sharded.index_metadata().unwrap()["total_size"], 300 + 4096 + 800);
    assert_eq!(sharded.tensor_bytes("copied").unwrap(), input.tensor_bytes("w").unwrap());
    let report = verify(&sharded).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.checksums_matched, 3);
    let bad = dir.path().join("model.safetensors");
    let err = write(&bad, mixed(&input, false), &options).unwrap_err();
    assert!(matches!(err.kind, WriteErrorKind::BadTarget { .. }), "{err}");
}

/// Environment variable that turns [`child_writer_process`] into a slow writer.
const CHILD_TARGET: &str = "SAFESHIFT_TEST_SLOW_WRITE_TARGET";

/// Not a test on its own: when [`killed_writer_leaves_no_target`] re-runs this test
/// binary with `CHILD_TARGET` set, this writes 200 generated tensors slowly, to be killed.
#[test]
fn child_writer_process() {
    let Some(target) = std::env::var_os(CHILD_TARGET) else {
        return;
    };
    let started = Path::new(&target).with_extension("started");
    let tensors = (0..200)
        .map(|index| {
            let started = started.clone();
            OutputTensor {
                name: format!("t{index:03}"),
                dtype: DType::F32,
                shape: vec![1024],
                source: TensorSource::Generate(Box::new(move |buf: &mut [u8]| {
                    if index == 3 {
                        // Three tensors are in the output file: tell the parent.
                        std::fs::write(&started, b"").unwrap();
                    }
                    std::thread::sleep(Duration::from_millis(50));
                    buf.fill(1);
                    Ok(())
                })),
            }
        })
        .collect();
    write(Path::new(&target), tensors, &WriteOptions::default()).unwrap();
}

/// Whether the file system of `dir` offers unnamed files (`O_TMPFILE`); tmpfs and ext4 do.
fn has_o_tmpfile(dir: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().read(true).write(true).custom_flags(libc::O_TMPFILE).open(dir).is_ok()
}

#[test]
fn killed_writer_leaves_no_target_and_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("slow.safetensors");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "writer::child_writer_process", "--test-threads=1", "--quiet"])
        .env(CHILD_TARGET, &target)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the child is writing (it has written three tensors).
    let started = Instant::now();
    while !target.with_extension("started").exists() {
        assert!(started.elapsed() < Duration::from_secs(60), "the child never started writing");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert!(!target.exists(), "a partial file appeared at the target");
    let left: Vec<String> = listing(dir.path()).into_iter().filter(|name| name != "slow.started").collect();
    if has_o_tmpfile(dir.path()) {
        assert!(left.is_empty(), "the killed writer left {left:?}");
    } else {
        // The named fallback: the temporary file stays, recognisable by its name.
        assert!(left.iter().all(|name| name.starts_with(".slow.safetensors.safeshift-tmp-")), "{left:?}");
    }
}

#[test]
fn verify_reports_bad_checksum_records_and_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let check = |record: &str| {
        let target = dir.path().join("r.safetensors");
        let tensor = OutputTensor {
            name: "x".into(),
            dtype: DType::U8,
            shape: vec![2],
            source: TensorSource::Bytes(Cow::Borrowed(b"ab")),
        };
        let metadata = [(safeshift_engine::SHA256_METADATA_KEY.to_owned(), record.to_owned())].into();
        write(&target, vec![tensor], &WriteOptions { metadata, ..WriteOptions::default() }).unwrap();
        let report = verify(&Checkpoint::open(&target).unwrap()).unwrap();
        report.problems.into_iter().map(|problem| problem.kind).collect::<Vec<_>>()
    };
    let ghost = format!(r#"{{"ghost":"{}"}}"#, "0".repeat(64));
    assert!(matches!(check(&ghost)[..], [ProblemKind::ChecksumOfUnknownTensor]));
    assert!(matches!(check("not json")[..], [ProblemKind::BadChecksumRecord { .. }]));
    assert!(matches!(check(r#"{"x":"ABC"}"#)[..], [ProblemKind::BadChecksumRecord { .. }]));

    let input = input(dir.path());
    let index = dir.path().join("m.safetensors.index.json");
    write(&index, mixed(&input, false), &WriteOptions { max_shard_size: Some(1), ..WriteOptions::default() }).unwrap();
    let text = std::fs::read_to_string(&index).unwrap().replace("5196", "5197");
    std::fs::write(&index, text).unwrap();
    let report = verify(&Checkpoint::open(&index).unwrap()).unwrap();
    assert!(
        matches!(
            report.problems[..],
            [safeshift_engine::Problem { kind: ProblemKind::TotalSizeMismatch { recorded: 5197, actual: 5196 }, .. }]
        ),
        "{:?}",
        report.problems
    );
}

#[test]
fn a_fault_in_a_later_shard_leaves_no_shard_and_no_index() {
    let dir = tempfile::tempdir().unwrap();
    let input = input(dir.path());
    let index = dir.path().join("m.safetensors.index.json");
    // The first shard (300 bytes of data) is complete before the fault.
    let options = WriteOptions { max_shard_size: Some(1), fail_after_bytes: Some(2000), ..WriteOptions::default() };
    let err = write(&index, mixed(&input, false), &options).unwrap_err();
    assert!(matches!(err.kind, WriteErrorKind::InjectedFault { .. }), "{err}");
    assert!(err.path.to_string_lossy().ends_with("-00002-of-00003.safetensors"), "{err}");
    assert_eq!(listing(dir.path()), vec!["in.safetensors"]);
}

/// File ranges are copied from another file system than the output's: `/dev/shm`
/// (tmpfs) is one on most machines (where it is not, both are in the same one).
#[test]
fn file_ranges_copy_across_file_systems() {
    let shm = Path::new("/dev/shm");
    let source_dir = if shm.is_dir() { tempfile::tempdir_in(shm).unwrap() } else { tempfile::tempdir().unwrap() };
    let input = input(source_dir.path());
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out.safetensors");
    write(&target, mixed(&input, false), &WriteOptions::default()).unwrap();
    let out = Checkpoint::open(&target).unwrap();
    assert_eq!(out.tensor_bytes("copied").unwrap(), input.tensor_bytes("w").unwrap());
}

/// File ranges longer than the copy buffer (1 MiB), starting mid-page, copied with and
/// without checksums: the reference crate reads the same bytes back, a checksum recorded
/// on the way matches, a fault in the middle of a range leaves nothing, and a source file
/// shorter than its range names the tensor.
#[test]
fn long_file_ranges_copy_in_chunks() {
    let dir = tempfile::tempdir().unwrap();
    // 3 MiB + 1,000 bytes after a 1,000-byte prefix, then a second range of 5,000 bytes.
    let source_path = dir.path().join("source.bin");
    let image: Vec<u8> =
        (0..1000 + (3 << 20) + 1000 + 5000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    std::fs::write(&source_path, &image).unwrap();
    let source = std::fs::File::open(&source_path).unwrap();
    let long = &image[1000..1000 + (3 << 20) + 1000];
    let short = &image[image.len() - 5000..];
    let ranges = |long_at: u64| {
        let location =
            |offset, len| TensorSource::File(TensorLocation { file: &source, path: &source_path, offset, len });
        vec![
            OutputTensor {
                name: "long".into(),
                dtype: DType::U8,
                shape: vec![long.len() as u64],
                source: location(long_at, long.len() as u64),
            },
            OutputTensor {
                name: "short".into(),
                dtype: DType::U8,
                shape: vec![5000],
                source: location(image.len() as u64 - 5000, 5000),
            },
        ]
    };
    let target = dir.path().join("out.safetensors");
    for record_sha256 in [false, true] {
        let options = WriteOptions { record_sha256, ..WriteOptions::default() };
        write(&target, ranges(1000), &options).unwrap();
        let bytes = std::fs::read(&target).unwrap();
        let reference = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert!(reference.tensor("long").unwrap().data() == long);
        assert_eq!(reference.tensor("short").unwrap().data(), short);
        let report = verify(&Checkpoint::open(&target).unwrap()).unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.checksums_matched, if record_sha256 { 2 } else { 0 });

        let fault = WriteOptions { fail_after_bytes: Some(2 << 20), ..options.clone() };
        let err = write(&dir.path().join("faulty.safetensors"), ranges(1000), &fault).unwrap_err();
        assert!(matches!(err.kind, WriteErrorKind::InjectedFault { after } if after == 2 << 20), "{err}");
    }
    // The long range, moved to end 500 bytes past the end of the source.
    let beyond = image.len() as u64 - long.len() as u64 + 500;
    let err = write(&target, ranges(beyond), &WriteOptions::default()).unwrap_err();
    assert!(matches!(&err.kind, WriteErrorKind::SourceRead { tensor, .. } if tensor == "long"), "{err}");
    assert_eq!(listing(dir.path()), vec!["out.safetensors", "source.bin"]);
}
