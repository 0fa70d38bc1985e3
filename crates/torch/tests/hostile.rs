//! Every hostile fixture (`data/malicious/`, described in `expected.json`) is refused with an
//! error that names the reason, and nothing in them is executed.

use std::path::{Path, PathBuf};

use safeshift_torch::{open, scan, ConvertOptions, ErrorKind, GlobalStatus, ZipError};

fn malicious(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/malicious").join(name)
}

fn refusal(name: &str) -> ErrorKind {
    match open(&malicious(name), &ConvertOptions::default()) {
        Ok(_) => panic!("{name} was converted"),
        Err(err) => {
            assert!(err.to_string().contains(name), "the error names the file: {err}");
            err.kind
        }
    }
}

/// The payloads would `touch` these files if anything ran them.
const MARKERS: [(&str, &str); 3] = [
    ("mal_a_os_system.pt", "/tmp/safeshift_marker_a"),
    ("mal_b_builtins_eval.pt", "/tmp/safeshift_marker_b"),
    ("mal_c_subprocess_popen.pt", "/tmp/safeshift_marker_c"),
];

#[test]
fn code_execution_payloads_are_refused_naming_the_global_and_never_run() {
    for (file, global, python3, marker) in [
        ("mal_a_os_system.pt", "os.system", None, MARKERS[0].1),
        ("mal_b_builtins_eval.pt", "builtins.eval", None, MARKERS[1].1),
        ("mal_c_subprocess_popen.pt", "commands.Popen", Some("subprocess.Popen"), MARKERS[2].1),
    ] {
        // A marker left by someone running torch.load on the fixture must not hide ours.
        let _ = std::fs::remove_file(marker);
        let before_exists = Path::new(marker).exists();
        let ErrorKind::Forbidden(forbidden) = refusal(file) else { panic!("{file}: not a refusal") };
        assert_eq!(forbidden.global.as_deref(), Some(global), "{file}");
        assert_eq!(forbidden.python3_name.as_deref(), python3, "{file}");
        assert!(forbidden.member.ends_with("/data.pkl"), "{file}: {}", forbidden.member);
        let message = ErrorKind::Forbidden(forbidden.clone()).to_string();
        assert!(message.contains(&format!("`{global}`")) && message.contains("byte"), "{message}");
        if !before_exists {
            assert!(!Path::new(marker).exists(), "{file}: the payload ran");
        }
    }
}

#[test]
fn allow_gadgets_converts_the_payload_files_as_data_and_never_runs_them() {
    for (file, global, marker) in [
        ("mal_a_os_system.pt", "os.system", MARKERS[0].1),
        ("mal_b_builtins_eval.pt", "builtins.eval", MARKERS[1].1),
        ("mal_c_subprocess_popen.pt", "commands.Popen", MARKERS[2].1),
    ] {
        let _ = std::fs::remove_file(marker);
        let options = ConvertOptions { allow_gadgets: true, ..ConvertOptions::default() };
        let converted = open(&malicious(file), &options).unwrap();
        assert_eq!(converted.tensors().len(), 2, "{file}: the legitimate tensors");
        let gadgets: Vec<_> = converted.gadgets().iter().map(|g| g.global.as_deref()).collect();
        assert_eq!(gadgets, [Some(global)], "{file}");
        assert!(converted.gadgets()[0].offset > 0);
        assert!(!Path::new(marker).exists(), "{file}: the payload ran");
    }
}

/// A pickle with several gadgets names each, with its offset, in one refusal.
#[test]
fn every_gadget_of_a_file_is_named() {
    // [os.system('x'), getattr(None, '__globals__'), posix.popen]
    let payload = b"\x80\x02](cos\nsystem\nX\x01\x00\x00\x00x\x85Rc__builtin__\ngetattr\nNX\x0b\x00\x00\x00__globals__\x86Rcposix\npopen\ne.";
    let err = safeshift_torch::open_bytes("many.pkl", payload.to_vec(), &ConvertOptions::default()).err().unwrap();
    let ErrorKind::Forbidden(forbidden) = err.kind else { panic!("{err}") };
    let all: Vec<(Option<&str>, &str, u64)> =
        forbidden.all().map(|g| (g.global.as_deref(), g.opcode, g.offset)).collect();
    assert_eq!(
        all,
        [
            (Some("os.system"), "REDUCE", 22),
            (Some("__builtin__.getattr"), "REDUCE", 62),
            (Some("posix.popen"), "GLOBAL", 63)
        ]
    );
    assert!(forbidden.also[0].why.contains("__globals__"), "{:?}", forbidden.also[0]);
    let message = ErrorKind::Forbidden(forbidden).to_string();
    assert!(message.contains("2 more gadget(s)") && message.contains("posix.popen"), "{message}");
}

#[test]
fn scan_reports_the_payloads_as_code() {
    for (file, global) in [
        ("mal_a_os_system.pt", "os.system"),
        ("mal_b_builtins_eval.pt", "builtins.eval"),
        ("mal_c_subprocess_popen.pt", "commands.Popen"),
    ] {
        let report = scan(&malicious(file)).unwrap();
        assert!(report.executes_code(), "{file}");
        assert!(report.has_gadgets() && !report.convertible(), "{file}");
        assert_eq!(report.gadgets[0].global.as_deref(), Some(global), "{file}");
        let finding = report.findings.iter().find(|f| f.global == global).unwrap();
        assert_eq!(finding.status, GlobalStatus::Called, "{file}");
        assert_eq!(finding.hazard, safeshift_torch::Hazard::Gadget, "{file}");
        assert!(report
            .findings
            .iter()
            .any(|f| f.global == "torch._utils._rebuild_tensor_v2" && f.status == GlobalStatus::Allowed));
    }
}

#[test]
fn a_missing_storage_is_named_with_its_tensor() {
    let ErrorKind::Storage { key, tensor, reason } = refusal("mal_e_missing_storage.pt") else { panic!() };
    assert_eq!((key.as_str(), tensor.as_str()), ("1", "b"));
    assert!(reason.contains("mal_e_missing_storage/data/1") && reason.contains("missing"), "{reason}");
}

#[test]
fn a_short_storage_is_refused_instead_of_reading_past_it() {
    let ErrorKind::Storage { key, tensor, reason } = refusal("mal_f_short_storage.pt") else { panic!() };
    assert_eq!((key.as_str(), tensor.as_str()), ("0", "w"));
    assert_eq!(reason, "has 20 bytes, expected 16 × 4 = 64");
}

#[test]
fn a_compressed_storage_is_refused_without_inflating_it() {
    let ErrorKind::Storage { key, reason, .. } = refusal("mal_g_zip_bomb_storage.pt") else { panic!() };
    assert_eq!(key, "0");
    let expected = ZipError::Compressed { member: "mal_g_zip_bomb_storage/data/0".into(), method: 8 }.to_string();
    assert_eq!(reason, expected);
}

#[test]
fn structural_attacks_are_not_code() {
    for file in ["mal_e_missing_storage.pt", "mal_f_short_storage.pt", "mal_g_zip_bomb_storage.pt"] {
        let report = scan(&malicious(file)).unwrap();
        assert!(!report.executes_code() && !report.has_gadgets(), "{file}");
    }
}

/// The structural half of "nothing is executed": the crate has no way to run anything. It
/// spawns no process, loads no library, and its only `unsafe` is the read-only file map
/// (and dropping its pages).
#[test]
fn the_crate_cannot_execute_anything() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut unsafe_uses = 0;
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for forbidden in ["std::process", "Command::new", "libc::", "dlopen", "libloading", "extern \"C\""] {
            assert!(!text.contains(forbidden), "{} uses {forbidden}", path.display());
        }
        unsafe_uses += text.matches("unsafe {").count();
    }
    assert_eq!(
        unsafe_uses, 3,
        "only the memmap2 maps (convert, scan) and the release of a read-only map's pages (convert) are unsafe"
    );
}

/// A plain pickle (not `torch.save` output) is scanned, and refused by `convert`.
#[test]
fn plain_pickles_are_scanned_but_not_converted() {
    let payload = b"\x80\x02cposix\nsystem\nX\x04\x00\x00\x00trueq\x00\x85R.";
    let report = safeshift_torch::scan_bytes("payload.pkl", payload).unwrap();
    assert_eq!(report.format, safeshift_torch::Format::Pickle);
    assert_eq!(report.findings[0].global, "posix.system");
    assert_eq!(report.findings[0].status, GlobalStatus::Called);
    let err = safeshift_torch::open_bytes("payload.pkl", payload.to_vec(), &ConvertOptions::default()).err().unwrap();
    assert!(matches!(err.kind, ErrorKind::Forbidden(_)), "{err}");
    let benign = b"\x80\x02K\x01.";
    let err = safeshift_torch::open_bytes("one.pkl", benign.to_vec(), &ConvertOptions::default()).err().unwrap();
    assert!(matches!(err.kind, ErrorKind::NotACheckpoint(_)), "{err}");
}
