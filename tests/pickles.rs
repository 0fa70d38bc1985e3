//! End to end: PyTorch files go through the engine like safetensors — `detect`, `upgrade`
//! and `convert` on a `.ckpt` and on a sharded `pytorch_model.bin.index.json` set (files
//! written by torch, see `tests/data/pickles/make_pickles.py`), with no intermediate file,
//! and contiguous tensors borrowed from the file's own map. A checkpoint with a gadget
//! (`make_gadget.py`) is refused by every command that reads it, and read under
//! `--allow-gadgets` without its payload ever running.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use safeshift_engine::{Checkpoint, InputFormat};
use sha2::{Digest, Sha256};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

const CKPT: &str = "tests/data/pickles/anemoi-0.4.0.ckpt";
const SHARDED_BIN: &str = "tests/data/pickles/sharded-bin/pytorch_model.bin.index.json";

fn safeshift(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_safeshift"));
    command.args(args).current_dir(env!("CARGO_MANIFEST_DIR")).env("NO_COLOR", "1");
    command
}

/// Records every file created or moved into the watched folders (Linux inotify), so a
/// temporary file that lives for a microsecond is still seen, in order.
struct Watcher {
    fd: i32,
    folders: BTreeMap<i32, PathBuf>,
}

impl Watcher {
    fn new(folders: &[&Path]) -> Watcher {
        // SAFETY: plain syscalls on our own descriptor and NUL-terminated paths.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        assert!(fd >= 0, "inotify_init1 failed");
        let mut watched = BTreeMap::new();
        for folder in folders {
            let path = CString::new(folder.as_os_str().as_bytes()).unwrap();
            let mask = libc::IN_CREATE | libc::IN_MOVED_TO;
            // SAFETY: as above.
            let wd = unsafe { libc::inotify_add_watch(fd, path.as_ptr(), mask) };
            assert!(wd >= 0, "inotify_add_watch {} failed", folder.display());
            watched.insert(wd, folder.to_path_buf());
        }
        Watcher { fd, folders: watched }
    }

    /// The paths created so far, in event order.
    fn created(&self) -> Vec<PathBuf> {
        let mut created = Vec::new();
        let mut buffer = vec![0u8; 1 << 16];
        loop {
            // SAFETY: the buffer is ours and as long as we say.
            let read = unsafe { libc::read(self.fd, buffer.as_mut_ptr().cast(), buffer.len()) };
            if read <= 0 {
                return created;
            }
            let mut at = 0usize;
            while at < read as usize {
                let wd = i32::from_ne_bytes(buffer[at..at + 4].try_into().unwrap());
                let len = u32::from_ne_bytes(buffer[at + 12..at + 16].try_into().unwrap()) as usize;
                let name = &buffer[at + 16..at + 16 + len];
                let name = &name[..name.iter().position(|&byte| byte == 0).unwrap_or(len)];
                created.push(self.folders[&wd].join(std::ffi::OsStr::from_bytes(name)));
                at += 16 + len;
            }
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        // SAFETY: closing our own descriptor once.
        unsafe { libc::close(self.fd) };
    }
}

/// Upgrades a copy of `source` (in its own folder, `TMPDIR` pointed at a watched empty
/// one) and checks that the only files created are the output, by rename, and at most the
/// engine's own temporary beside it; that the input is untouched. Returns the work folder
/// and the output.
fn upgrade_watched(source: &Path, extra: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let work = tempfile::tempdir().unwrap();
    let (input_dir, out_dir, tmp) = (work.path().join("in"), work.path().join("out"), work.path().join("tmp"));
    for dir in [&input_dir, &out_dir, &tmp] {
        std::fs::create_dir(dir).unwrap();
    }
    let input = input_dir.join("model.ckpt");
    std::fs::copy(source, &input).unwrap();
    let output = out_dir.join("model.safetensors");
    let watcher = Watcher::new(&[&input_dir, &out_dir, &tmp]);
    let mut args = vec!["upgrade", input.to_str().unwrap(), "-o", output.to_str().unwrap()];
    args.extend_from_slice(extra);
    let run = safeshift(&args).env("TMPDIR", &tmp).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));

    let created = watcher.created();
    let temporaries: Vec<&PathBuf> = created.iter().filter(|path| **path != output).collect();
    assert_eq!(created.last(), Some(&output), "the output appears last, by rename: {created:?}");
    // Only the engine's own temporary output: an unnamed O_TMPFILE where the file system
    // has them (nothing to see), else one hidden file beside the target, renamed into place.
    assert!(temporaries.len() <= 1, "{created:?}");
    if let Some(temporary) = temporaries.first() {
        let name = temporary.file_name().unwrap().to_string_lossy();
        assert!(
            temporary.parent() == Some(&out_dir) && name.starts_with(".model.safetensors.safeshift-tmp-"),
            "{created:?}"
        );
    }
    assert!(std::fs::read_dir(&tmp).unwrap().next().is_none(), "nothing in TMPDIR");
    let left: Vec<_> = std::fs::read_dir(&out_dir).unwrap().map(|entry| entry.unwrap().file_name()).collect();
    assert_eq!(left, ["model.safetensors"]);
    assert_eq!(std::fs::read(&input).unwrap(), std::fs::read(source).unwrap(), "the input is untouched");
    (work, output)
}

#[test]
fn upgrade_of_a_real_anemoi_ckpt_writes_its_output_and_nothing_else() {
    for kind in ["training", "inference"] {
        let source = repo(&format!("tests/data/anemoi-checkpoints/0.4.0/{kind}.ckpt"));
        let (_work, output) = upgrade_watched(&source, &[]);
        let written = Checkpoint::open(&output).unwrap();
        assert_eq!(written.layout().metadata["safeshift.schema"], "anemoi.encprocdec@0.19.0", "{kind}");
    }
}

#[test]
fn upgrade_of_a_ckpt_writes_its_output_and_nothing_else() {
    let graph = format!("graph={}", repo("tests/data/anemoi/graph.safetensors").display());
    let (work, output) = upgrade_watched(&repo(CKPT), &["--aux", &graph]);

    // The upgrade equals upgrading the state dict the pickle was made from.
    let from_safetensors = work.path().join("reference.safetensors");
    let reference = safeshift(&[
        "upgrade",
        repo("tests/data/anemoi/0.4.0/state_dict.safetensors").to_str().unwrap(),
        "-o",
        from_safetensors.to_str().unwrap(),
        "--aux",
        &graph,
    ])
    .output()
    .unwrap();
    assert!(reference.status.success(), "{}", String::from_utf8_lossy(&reference.stderr));
    let (ours, theirs) = (Checkpoint::open(&output).unwrap(), Checkpoint::open(&from_safetensors).unwrap());
    assert_eq!(ours.layout().tensors, theirs.layout().tensors);
    for info in &ours.layout().tensors {
        assert_eq!(ours.tensor_bytes(&info.name).unwrap(), theirs.tensor_bytes(&info.name).unwrap(), "{}", info.name);
    }
    assert_eq!(ours.layout().metadata["safeshift.schema"], theirs.layout().metadata["safeshift.schema"]);
}

#[test]
fn inspect_detect_and_plan_read_a_ckpt_directly() {
    let detect = safeshift(&["detect", CKPT]).output().unwrap();
    assert!(detect.status.success(), "{}", String::from_utf8_lossy(&detect.stderr));
    assert!(String::from_utf8_lossy(&detect.stdout).starts_with("anemoi.encprocdec@0.4.0"));
    let plan = safeshift(&["plan", CKPT, "--to", "0.15.1"]).output().unwrap();
    assert!(plan.status.success(), "{}", String::from_utf8_lossy(&plan.stderr));
    let inspect = safeshift(&["inspect", CKPT]).output().unwrap();
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(inspect.status.success() && text.contains("state dict  114 tensors"), "{text}");
}

#[test]
fn contiguous_tensors_of_a_ckpt_are_borrowed_from_its_map() {
    let path = repo(CKPT);
    let checkpoint = Checkpoint::open(&path).unwrap();
    assert!(matches!(checkpoint.format(), InputFormat::Torch(safeshift_torch::Format::Zip { .. })));
    let name = "model.model.processor.proc.0.blocks.0.attention.lin_qkv.weight";
    assert!(checkpoint.is_zero_copy(name));
    let Cow::Borrowed(bytes) = checkpoint.tensor_bytes(name).unwrap() else { panic!("{name} was copied") };
    // The pointer lies inside a mapping of the checkpoint file itself (/proc/self/maps).
    let address = bytes.as_ptr() as usize;
    let canonical = std::fs::canonicalize(&path).unwrap();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let mapping = maps
        .lines()
        .find(|line| {
            let range = line.split_whitespace().next().unwrap();
            let (start, end) = range.split_once('-').unwrap();
            let (start, end) = (usize::from_str_radix(start, 16).unwrap(), usize::from_str_radix(end, 16).unwrap());
            (start..end).contains(&address) && (start..=end).contains(&(address + bytes.len()))
        })
        .unwrap_or_else(|| panic!("no mapping holds {address:#x}"));
    assert!(mapping.ends_with(canonical.to_str().unwrap()), "{mapping}");
    // And its bytes are the state dict's.
    let reference = Checkpoint::open(&repo("tests/data/anemoi/0.4.0/state_dict.safetensors")).unwrap();
    assert_eq!(bytes, &*reference.tensor_bytes(name).unwrap());
    let location = checkpoint.tensor_location(name).unwrap();
    let file = std::fs::read(&path).unwrap();
    assert_eq!(&file[location.offset as usize..(location.offset + location.len) as usize], bytes);
}

/// The `torch` dtype names `expected.json` uses, as safetensors names.
fn torch_dtype(name: &str) -> &'static str {
    match name {
        "float32" => "F32",
        "bfloat16" => "BF16",
        "int64" => "I64",
        other => panic!("dtype {other} not in the fixture"),
    }
}

#[test]
fn a_sharded_bin_set_opens_as_one_checkpoint_with_torch_loads_tensors() {
    let expected: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(repo("tests/data/pickles/sharded-bin/expected.json")).unwrap())
            .unwrap();
    let checkpoint = Checkpoint::open(&repo(SHARDED_BIN)).unwrap();
    assert_eq!(checkpoint.files().len(), 2);
    assert_eq!(checkpoint.layout().tensors.len(), expected.len());
    let check = |name: &str, dtype: &str, shape: &[u64], bytes: &[u8]| {
        let want = &expected[name];
        assert_eq!(dtype, torch_dtype(want["dtype"].as_str().unwrap()), "{name}");
        let want_shape: Vec<u64> = want["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect();
        assert_eq!(shape, want_shape.as_slice(), "{name}");
        assert_eq!(format!("{:x}", Sha256::digest(bytes)), want["sha256"].as_str().unwrap(), "{name}");
    };
    for info in &checkpoint.layout().tensors {
        let bytes = checkpoint.tensor_bytes(&info.name).unwrap();
        check(&info.name, info.dtype.safetensors_name(), &info.shape, &bytes);
        // Contiguous tensors are byte ranges of their shard; the transposed one is built.
        assert_eq!(checkpoint.is_zero_copy(&info.name), expected[&info.name]["contiguous"] == true, "{}", info.name);
        assert_eq!(matches!(bytes, Cow::Borrowed(_)), checkpoint.is_zero_copy(&info.name));
    }

    // `convert` writes the set as one safetensors file with the same tensors.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model.safetensors");
    let run = safeshift(&["convert", SHARDED_BIN, "-o", out.to_str().unwrap()]).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let written = std::fs::read(&out).unwrap();
    let written = safetensors::SafeTensors::deserialize(&written).unwrap();
    assert_eq!(written.len(), expected.len());
    for (name, view) in written.tensors() {
        let shape: Vec<u64> = view.shape().iter().map(|&d| d as u64).collect();
        check(&name, &format!("{:?}", view.dtype()), &shape, view.data());
    }
}

#[test]
fn extras_are_set_aside_written_after_the_state_dict_and_set_aside_again() {
    let input = repo("crates/torch/tests/data/anemoi_style.ckpt");
    let checkpoint = Checkpoint::open(&input).unwrap();
    let extras: Vec<&str> = checkpoint.extras().iter().map(|info| info.name.as_str()).collect();
    assert_eq!(extras, ["anemoi.supporting_arrays.latitudes", "anemoi.supporting_arrays.longitudes"]);
    assert!(checkpoint.layout().tensors.iter().all(|info| !info.name.starts_with("anemoi.supporting_arrays.")));

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model.safetensors");
    let run = safeshift(&["convert", input.to_str().unwrap(), "-o", out.to_str().unwrap()]).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let bytes = std::fs::read(&out).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let recorded: Vec<String> = serde_json::from_str(&header.metadata().as_ref().unwrap()["safeshift.extras"]).unwrap();
    assert_eq!(recorded, extras);
    // In the file, the extras come after every state-dict tensor.
    let written = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut order: Vec<(usize, String)> = written
        .iter()
        .map(|(name, view)| (view.data().as_ptr() as usize - bytes.as_ptr() as usize, name.to_owned()))
        .collect();
    order.sort();
    let tail: Vec<&str> = order[order.len() - 2..].iter().map(|(_, name)| name.as_str()).collect();
    assert_eq!(tail, extras);

    let reopened = Checkpoint::open(&out).unwrap();
    assert_eq!(reopened.extras(), checkpoint.extras());
    assert_eq!(reopened.layout().tensors, checkpoint.layout().tensors);
    assert!(!reopened.layout().metadata.contains_key("safeshift.extras"));
    for info in checkpoint.layout().tensors.iter().chain(checkpoint.extras()) {
        assert_eq!(reopened.tensor_bytes(&info.name).unwrap(), checkpoint.tensor_bytes(&info.name).unwrap());
    }
}

/// `anemoi-0.4.0.ckpt` with `"callbacks": os.system("touch gadget-ran")` added to its
/// pickle (`make_gadget.py`): the payload would create `gadget-ran` in the working folder.
const GADGET: &str = "tests/data/pickles/gadget-anemoi-0.4.0.ckpt";
const SENTINEL: &str = "gadget-ran";

/// Exit code, stdout and stderr, for assertions and snapshots.
fn transcript(output: &std::process::Output) -> String {
    format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        output.status.code().map_or("signal".to_owned(), |code| code.to_string()),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn every_reading_command_refuses_a_gadget_file_and_allow_gadgets_reads_it_running_nothing() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    std::fs::copy(repo(GADGET), dir.join("gadget.ckpt")).unwrap();
    std::fs::copy(repo("tests/data/anemoi/graph.safetensors"), dir.join("graph.safetensors")).unwrap();
    let in_dir = |args: &[&str]| {
        let mut command = safeshift(args);
        command.current_dir(dir);
        command.output().unwrap()
    };
    let refusals: [(&str, &[&str]); 7] = [
        ("detect", &["detect", "gadget.ckpt"]),
        ("plan", &["plan", "gadget.ckpt"]),
        ("inspect", &["inspect", "gadget.ckpt"]),
        ("upgrade", &["upgrade", "gadget.ckpt", "-o", "out.safetensors", "--aux", "graph=graph.safetensors"]),
        ("downgrade", &["downgrade", "gadget.ckpt", "--to", "0.4.0", "-o", "out.safetensors"]),
        ("convert", &["convert", "gadget.ckpt", "-o", "out.safetensors"]),
        ("verify", &["verify", "gadget.ckpt"]),
    ];
    for (command, args) in refusals {
        let output = in_dir(args);
        let text = transcript(&output);
        assert!(matches!(output.status.code(), Some(1 | 2)), "{command}: {text}");
        // The gadget, its member and byte offset, and the way out.
        assert!(
            text.contains("`gadget.ckpt`: refusing to read it: forbidden global `os.system`: REDUCE at byte 14402 of `gadget-anemoi-0.4.0/data.pkl`")
                && text.contains("pass --allow-gadgets"),
            "{command}: {text}"
        );
        insta::with_settings!({ filters => vec![(r"\d+\.\d\ds", "[time]")] }, {
            insta::assert_snapshot!(format!("gadget_refused_by_{command}"), text);
        });
        assert!(!dir.join("out.safetensors").exists(), "{command}: no output");
    }

    // Allowed: each command reads the file; nothing in it runs.
    let ok = |args: &[&str]| {
        let output = in_dir(args);
        assert!(output.status.success(), "{args:?}: {}", transcript(&output));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    assert!(ok(&["detect", "gadget.ckpt", "--allow-gadgets"]).starts_with("anemoi.encprocdec@0.4.0"));
    assert!(ok(&["plan", "gadget.ckpt", "--allow-gadgets"])
        .starts_with("anemoi.encprocdec@0.4.0 -> anemoi.encprocdec@0.19.0"));
    let inspect = ok(&["inspect", "gadget.ckpt", "--allow-gadgets"]);
    assert!(
        inspect.contains("state dict  114 tensors")
            && inspect.contains("gadget (not run, --allow-gadgets): forbidden global `os.system`"),
        "{inspect}"
    );
    ok(&["upgrade", "gadget.ckpt", "-o", "out.safetensors", "--aux", "graph=graph.safetensors", "--allow-gadgets"]);
    ok(&["convert", "gadget.ckpt", "-o", "converted.safetensors", "--allow-gadgets"]);
    assert!(ok(&["verify", "gadget.ckpt", "--allow-gadgets"]).contains("sound"));
    // The state dict read is the clean file's, byte for byte, and upgrades to the same file.
    let converted = Checkpoint::open(&dir.join("converted.safetensors")).unwrap();
    let reference = Checkpoint::open(&repo("tests/data/anemoi/0.4.0/state_dict.safetensors")).unwrap();
    assert_eq!(converted.layout().tensors, reference.layout().tensors);
    for info in &reference.layout().tensors {
        assert_eq!(converted.tensor_bytes(&info.name).unwrap(), reference.tensor_bytes(&info.name).unwrap());
    }
    let upgraded = Checkpoint::open(&dir.join("out.safetensors")).unwrap();
    assert_eq!(upgraded.layout().metadata["safeshift.schema"], "anemoi.encprocdec@0.19.0");

    // The library: refused by default, read with `allow_gadgets`.
    let registry = safeshift::Registry::embedded().unwrap();
    let graph = BTreeMap::from([("graph".to_owned(), dir.join("graph.safetensors"))]);
    let options = safeshift::OpenOptions { aux: graph, ..safeshift::OpenOptions::default() };
    let refused = registry.open_with(&dir.join("gadget.ckpt"), &options).err().expect("refused");
    assert!(refused.to_string().contains("forbidden global `os.system`: REDUCE at byte 14402"), "{refused}");
    let allowed = safeshift::OpenOptions { allow_gadgets: true, ..options };
    let view = registry.open_with(&dir.join("gadget.ckpt"), &allowed).unwrap();
    assert_eq!(view.from_version().to_string(), "anemoi.encprocdec@0.4.0");
    for name in view.names() {
        assert_eq!(view.tensor(name).unwrap(), upgraded.tensor_bytes(name).unwrap(), "{name}");
    }

    let left: Vec<_> = std::fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().file_name()).collect();
    assert!(!dir.join(SENTINEL).exists(), "the payload ran: {left:?}");
}

#[test]
fn the_hostile_fixtures_are_refused_by_detect_with_the_gadget_named() {
    for (file, global, marker) in [
        ("mal_a_os_system.pt", "os.system", "/tmp/safeshift_marker_a"),
        ("mal_b_builtins_eval.pt", "builtins.eval", "/tmp/safeshift_marker_b"),
        ("mal_c_subprocess_popen.pt", "commands.Popen", "/tmp/safeshift_marker_c"),
    ] {
        let path = format!("crates/torch/tests/data/malicious/{file}");
        for args in [vec!["detect", path.as_str()], vec!["inspect", path.as_str()], vec!["plan", path.as_str()]] {
            let output = safeshift(&args).output().unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
            assert!(
                stderr.contains(&format!("forbidden global `{global}`")) && stderr.contains(" at byte "),
                "{stderr}"
            );
        }
        assert!(!Path::new(marker).exists(), "{file}: the payload ran");
    }
}
