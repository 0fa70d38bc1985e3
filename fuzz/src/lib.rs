//! What each fuzz target checks, shared by the libFuzzer targets in `fuzz_targets/` and
//! kept free of libFuzzer so the same checks can run from any driver.
//!
//! Every check must hold for *any* input: no panic (overflow checks are on in fuzz builds),
//! no unbounded allocation (the limits are lowered so that a bug shows as a limit miss
//! rather than an out-of-memory kill), and the stated invariants.

use safeshift_dsl::{check, format, normalize, parse, SourceId};
use safeshift_engine::{parse_header, Limits as ReadLimits};
use safeshift_graph::{plan, Registry, RegistryFiles};
use safeshift_torch::{open_bytes, scan_bytes, ConvertOptions, Limits as TorchLimits};

/// The safetensors header reader on a whole file held in memory, with the default limits
/// and with tiny ones (so the limit paths are reached with small inputs).
pub fn safetensors_header(data: &[u8]) {
    let _ = parse_header(data, &ReadLimits::default());
    let tiny = ReadLimits { max_header_len: 4096, max_tensors: 4, max_name_len: 16, max_rank: 3 };
    if let Ok(layout) = parse_header(data, &tiny) {
        assert!(layout.tensors.len() <= tiny.max_tensors, "tensor limit not enforced");
        for tensor in &layout.tensors {
            assert!(tensor.name.len() <= tiny.max_name_len, "name limit not enforced: {:?}", tensor.name);
            assert!(tensor.shape.len() <= tiny.max_rank, "rank limit not enforced: {:?}", tensor.shape);
        }
    }
}

/// The language on UTF-8 text: parse, check and format never panic, and a file that
/// parses formats to text that parses to the same tree (spans aside) and formats to
/// itself.
pub fn dsl_roundtrip(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(file) = parse(SourceId(0), text) else { return };
    let _ = check(SourceId(0), &file);
    let formatted = format(&file);
    let reparsed = match parse(SourceId(0), &formatted) {
        Ok(reparsed) => reparsed,
        Err(diagnostics) => {
            panic!("formatted text does not parse\n--- input\n{text}\n--- formatted\n{formatted}\n--- {diagnostics:#?}")
        }
    };
    assert!(
        normalize(&reparsed) == normalize(&file),
        "parse(format(parse(x))) != parse(x)\n--- input\n{text}\n--- formatted\n{formatted}"
    );
    let _ = check(SourceId(0), &reparsed);
    let again = format(&reparsed);
    assert!(again == formatted, "format is not idempotent\n--- first\n{formatted}\n--- second\n{again}");
}

/// The registry on random but mostly well-formed text: `data` drives a grammar-aware
/// generator of schemas, migrations and a manifest (so inputs reach loading, validation,
/// static checking and planning rather than stopping at syntax), then every pair of
/// versions is planned. Nothing may panic.
pub fn registry(data: &[u8]) {
    let files = registry_files(&mut Choices { data, at: 0 });
    let (registry, _diagnostics) = Registry::from_files(files);
    let _ = safeshift_graph::check(&registry);
    let graph = registry.graph();
    let versions: Vec<_> = graph.versions().cloned().collect();
    for from in &versions {
        for to in &versions {
            let _ = plan(graph, from, to);
        }
    }
    for family in graph.families() {
        let _ = registry.default_target(family);
    }
}

/// Reads choices from the fuzz input; zeros once it runs out (so every input is complete).
struct Choices<'a> {
    data: &'a [u8],
    at: usize,
}

impl Choices<'_> {
    fn below(&mut self, n: usize) -> usize {
        let byte = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        byte as usize % n.max(1)
    }

    fn pick<'s>(&mut self, items: &[&'s str]) -> &'s str {
        items[self.below(items.len())]
    }
}

const FAMILIES: [&str; 3] = ["fam", "fam.b", "x"];
const VERSIONS: [&str; 6] = ["1.0.0", "1.1.0", "2.0.0", "0.9.0", "3.0.0-rc.1", "1.0"];
const DIMS: [&str; 4] = ["hidden", "layers", "heads", "n"];
const NAMES: [&str; 8] =
    ["w", "b", "layers.{i < layers}.w", "layers.{i < layers}.b", "emb.weight", "{x}.weight", "head.{j < n}.q", "norm"];
const DTYPES: [&str; 5] = ["F32", "float", "BF16", "I64", "F33"];

fn dim_expr(choices: &mut Choices<'_>) -> String {
    match choices.below(6) {
        0 => choices.below(5).to_string(),
        1 => format!("{} * 2", choices.pick(&DIMS)),
        2 => format!("{} / {}", choices.pick(&DIMS), choices.pick(&DIMS)),
        3 => format!("-{}", choices.pick(&DIMS)),
        _ => choices.pick(&DIMS).to_owned(),
    }
}

fn schema(choices: &mut Choices<'_>, family: &str, version: &str) -> String {
    let mut text = format!("schema {family} @ {version} {{\n");
    for _ in 0..choices.below(4) {
        let dim = choices.pick(&DIMS);
        match choices.below(4) {
            0 => text.push_str(&format!("    dim {dim} = {}\n", dim_expr(choices))),
            1 => text.push_str(&format!("    dim {dim} = meta \"config.{dim}\"\n")),
            _ => text.push_str(&format!("    dim {dim}\n")),
        }
    }
    for _ in 0..choices.below(6) {
        let rank = choices.below(4);
        let shape: Vec<String> = (0..rank).map(|_| dim_expr(choices)).collect();
        let optional = if choices.below(4) == 0 { " optional" } else { "" };
        let name = choices.pick(&NAMES);
        let dtype = choices.pick(&DTYPES);
        text.push_str(&format!("    tensor \"{name}\" : {dtype}[{}]{optional}\n", shape.join(", ")));
    }
    if choices.below(4) == 0 {
        text.push_str("    allow \"extra.{x}\"\n");
    }
    text.push_str("}\n");
    text
}

fn operation(choices: &mut Choices<'_>) -> String {
    let a = choices.pick(&NAMES).replace(" < layers", "").replace(" < n", "");
    let b = choices.pick(&NAMES).replace(" < layers", "").replace(" < n", "");
    match choices.below(12) {
        0 => format!("rename \"{a}\" -> \"{b}\""),
        1 => format!("drop \"{a}\"{}", if choices.below(2) == 0 { " lossy" } else { " derived" }),
        2 => format!("cast \"{a}\" to {}", choices.pick(&DTYPES)),
        3 => format!("transpose \"{a}\""),
        4 => format!("split \"{a}\" axis {} into \"{a}.p\", \"{a}.q\"", choices.below(3)),
        5 => format!("concat \"{a}\", \"{b}\" axis {} into \"{a}.c\"", choices.below(3)),
        6 => format!("reshape \"{a}\" to [{}, {}]", dim_expr(choices), dim_expr(choices)),
        7 => format!("copy \"{a}\" -> \"{b}\""),
        8 => format!("meta-set \"config\" at \"{}\" = {}", choices.pick(&DIMS), choices.below(9)),
        9 => format!(
            "truncate \"{a}\" axis 0 to {}{}",
            dim_expr(choices),
            if choices.below(2) == 0 { " lossy" } else { "" }
        ),
        10 => format!("pad \"{a}\" axis 0 to {} with zeros", dim_expr(choices)),
        _ => format!("permute \"{a}\" axes [1, 0]"),
    }
}

fn migration(choices: &mut Choices<'_>, family: &str, from: &str, to: &str) -> String {
    let mut text = format!("migration {family} {from} -> {to} {{\n");
    for _ in 0..choices.below(3) {
        text.push_str(&format!("    dim {}\n", choices.pick(&DIMS)));
    }
    for _ in 0..choices.below(5) {
        text.push_str(&format!("    {}\n", operation(choices)));
    }
    if choices.below(4) == 0 {
        text.push_str(&format!("    down {{\n        {}\n    }}\n", operation(choices)));
    }
    text.push_str("}\n");
    text
}

/// A registry: schemas for some versions of one or two families, migrations between
/// some of them, and sometimes a manifest.
fn registry_files(choices: &mut Choices<'_>) -> RegistryFiles {
    let mut files = Vec::new();
    for family_index in 0..1 + choices.below(2) {
        let family = FAMILIES[family_index];
        let count = 1 + choices.below(VERSIONS.len());
        let versions = &VERSIONS[..count];
        for (index, version) in versions.iter().enumerate() {
            if choices.below(5) != 0 {
                files.push((format!("schemas/{family}-{index}.ss"), schema(choices, family, version)));
            }
        }
        for index in 0..choices.below(2 * count + 1) {
            let from = versions[choices.below(count)];
            let to = versions[choices.below(count)];
            files.push((format!("migrations/{family}-{index}.ss"), migration(choices, family, from, to)));
        }
    }
    let manifest = match choices.below(4) {
        0 => Some(format!("targets:\n  fam: fam@{}\n", choices.pick(&VERSIONS))),
        1 => Some(format!("dims:\n  fam:\n    {}: {}\n", choices.pick(&DIMS), choices.below(5))),
        _ => None,
    };
    // Whatever is left of the input, as one more (raw) file.
    if let Some(rest) = choices.data.get(choices.at..).filter(|rest| !rest.is_empty()) {
        files.push(("migrations/zz-raw.ss".to_owned(), String::from_utf8_lossy(rest).into_owned()));
    }
    RegistryFiles { files, manifest }
}

/// Limits low enough that a fuzz input cannot make the reader allocate much.
fn convert_options() -> ConvertOptions {
    let limits = TorchLimits {
        max_expanded_bytes: 1 << 20,
        max_metadata_bytes: 1 << 20,
        max_objects: 1 << 16,
        max_memo: 1 << 16,
        max_stack: 1 << 16,
        ..TorchLimits::default()
    };
    // No CRC check: mutations must reach the parsers, not stop at the checksum.
    ConvertOptions { keep_optimizer: true, verify_crc: false, limits, ..ConvertOptions::default() }
}

/// A whole PyTorch checkpoint file (zip or legacy): scan and convert.
pub fn torch_file(data: &[u8]) {
    let _ = scan_bytes("fuzz.pt", data);
    if let Ok(converted) = open_bytes("fuzz.pt", data.to_vec(), &convert_options()) {
        for (index, tensor) in converted.tensors().iter().enumerate() {
            let bits = tensor.shape.iter().try_fold(tensor.dtype.bits() as u64, |acc, &dim| acc.checked_mul(dim));
            let expected = bits.map(|bits| bits.div_ceil(8));
            let found = converted.data(index).len() as u64;
            assert_eq!(Some(found), expected, "tensor `{}` has {found} bytes for {:?}", tensor.name, tensor.shape);
        }
        let _ = converted.layout();
    }
}

/// The pickle machine: `data` is the pickle, stored as `archive/data.pkl` in a
/// well-formed zip beside a few small storages (so mutations reach the machine instead of
/// breaking the container), and also tried bare (the legacy format when it starts with
/// PROTO).
pub fn pickle(data: &[u8]) {
    let storage = [0u8; 64];
    let mut members: Vec<(String, &[u8])> =
        vec![("archive/data.pkl".into(), data), ("archive/byteorder".into(), b"little")];
    for key in 0..4 {
        members.push((format!("archive/data/{key}"), &storage));
    }
    torch_file(&stored_zip(&members));
    if data.first() == Some(&0x80) {
        torch_file(data);
    }
}

/// A zip archive of stored (uncompressed) members, as `torch.save` writes it.
pub fn stored_zip(members: &[(String, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, bytes) in members {
        let offset = out.len() as u32;
        let crc = crc32(bytes);
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(bytes);

        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        central.extend_from_slice(&crc.to_le_bytes());
        central.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        central.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        central.extend_from_slice(&(name.len() as u16).to_le_bytes());
        central.extend_from_slice(&[0; 12]);
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let central_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(members.len() as u16).to_le_bytes());
    out.extend_from_slice(&(members.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&central_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// CRC-32 (IEEE), bit by bit: inputs are small.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    /// The wrapper produces an archive the reader accepts: an empty-dict pickle gets past
    /// the zip reader and the pickle machine, to the (correct) complaint that it holds no
    /// tensors.
    #[test]
    fn a_wrapped_pickle_reaches_the_checkpoint_level() {
        // PROTO 2, EMPTY_DICT, STOP.
        let pickle = [0x80, 2, b'}', b'.'];
        let zip = stored_zip(&[("archive/data.pkl".into(), &pickle[..])]);
        assert!(!scan_bytes("t.pt", &zip).unwrap().executes_code());
        let Err(err) = open_bytes("t.pt", zip, &ConvertOptions::default()) else { panic!("converted nothing") };
        assert!(matches!(err.kind, safeshift_torch::ErrorKind::Structure(_)), "{err}");
    }
}

/// CPython's reader for `pickle_differential`: one `python3` running the differential
/// test's script, fed one hex line per input.
struct CPython {
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

static CPYTHON: std::sync::OnceLock<std::sync::Mutex<CPython>> = std::sync::OnceLock::new();

/// The differential target: safeshift's reading of the pickle `data` must agree with
/// CPython's C unpickler (with a recording `find_class`) as the test suite's
/// `differential` test requires (`safeshift_torch::interpret::disagreement`).
pub fn pickle_differential(data: &[u8]) {
    use std::io::{BufRead, Write};
    use safeshift_torch::interpret::{disagreement, interpret, Interpretation};
    let cpython = CPYTHON.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../crates/torch/tests/differential.py");
        let mut child = std::process::Command::new("python3")
            .arg(script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the differential target needs python3");
        let stdin = child.stdin.take().expect("piped");
        let stdout = std::io::BufReader::new(child.stdout.take().expect("piped"));
        std::sync::Mutex::new(CPython { stdin, stdout })
    });
    let mut cpython = cpython.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
    writeln!(cpython.stdin, "{hex}").expect("python3 is running");
    let mut line = String::new();
    cpython.stdout.read_line(&mut line).expect("python3 answers");
    let theirs = Interpretation::from_json(&line).expect("a JSON line");
    let ours = interpret(data);
    if let Some(why) = disagreement(&ours, &theirs) {
        panic!("safeshift and CPython disagree on {hex}: {why}\nours: {ours:?}\ntheirs: {theirs:?}");
    }
}
