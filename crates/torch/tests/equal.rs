//! Files on which a reader that differs from `torch.load` in one detail would read a clean
//! pickle while torch reads (or could read) another: each is refused by `open` and flagged
//! by `scan`, and nothing in them runs. Built by `data/make_differential.py`.

use std::path::{Path, PathBuf};

use safeshift_torch::{open, scan, ConvertOptions, Format, GlobalStatus, UseKind};

const MARKER: &str = "/tmp/safeshift_marker_diff";

fn file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/differential").join(name)
}

/// `open`'s refusal, which must name the file and contain `reason`.
fn refused(name: &str, reason: &str) -> String {
    let err = match open(&file(name), &ConvertOptions::default()) {
        Ok(_) => panic!("{name} was converted"),
        Err(err) => err.to_string(),
    };
    assert!(err.contains(name) && err.contains(reason), "{name}: {err}");
    assert!(!Path::new(MARKER).exists(), "{name}: the payload ran");
    err
}

/// `scan` either refuses the file or reports it as not safe to load; never as clean.
fn flagged(name: &str, reason: &str) {
    match scan(&file(name)) {
        Err(err) => assert!(err.to_string().contains(reason), "{name}: {err}"),
        Ok(report) => {
            assert!(report.executes_code() || report.problem.is_some(), "{name}: scan says clean");
            assert!(!report.convertible(), "{name}");
            if let Some(problem) = &report.problem {
                assert!(problem.contains(reason), "{name}: {problem}");
            }
        }
    }
}

#[test]
fn a_frame_straddling_read_is_refused_in_a_zip_member_and_in_a_legacy_stream() {
    let err = refused("frame_straddle_zip.pt", "straddle the end of the FRAME");
    assert!(err.contains("archive/data.pkl"), "{err}");
    refused("frame_straddle_legacy.pt", "straddle the end of the FRAME");
    flagged("frame_straddle_zip.pt", "straddle the end of the FRAME");
    flagged("frame_straddle_legacy.pt", "straddle the end of the FRAME");
}

#[test]
fn a_tar_legacy_polyglot_is_read_as_torch_reads_it_a_tar_and_refused() {
    refused("tar_polyglot.pt", "tar-format checkpoint");
    flagged("tar_polyglot.pt", "tar-format checkpoint");
    assert_eq!(scan(&file("tar_polyglot.pt")).unwrap().format, Format::Tar);
}

#[test]
fn several_end_records_are_refused_as_ambiguous() {
    refused("several_eocd.pt", "ambiguous archive");
    flagged("several_eocd.pt", "ambiguous archive");
}

#[test]
fn a_torchscript_archive_is_refused_and_its_constants_pickle_scanned() {
    refused("torchscript_gadget.pt", "TorchScript archive");
    let report = scan(&file("torchscript_gadget.pt")).unwrap();
    assert_eq!(report.format, Format::TorchScript { dir: "model".into() });
    let system = report.findings.iter().find(|f| f.global == "posix.system").expect("posix.system is reported");
    assert_eq!(system.status, GlobalStatus::Called);
    assert!(
        system.uses.iter().any(|u| u.member == "model/constants.pkl" && u.kind == UseKind::Called),
        "{:?}",
        system.uses
    );
    assert!(report.executes_code() && !report.convertible());
}
