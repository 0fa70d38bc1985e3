//! Fault injection: the `safeshift` binary killed with SIGKILL at random points while it
//! rewrites a file, and run against a full disk.
//!
//! After every kill: the input is byte-identical to before (SHA-256), and the target is
//! either absent or complete (opens with `Checkpoint::open`, verifies, and has the layout
//! of an uninterrupted run); with `--in-place`, the path holds either the original bytes or
//! a complete new file, never a partial one. On a file system with `O_TMPFILE` (tmpfs, ext4)
//! no other file may be left at all: the engine writes into an unnamed file. Elsewhere any
//! other file must be a writer's temporary file, recognised by the engine's `TEMP_INFIX`
//! (a killed process cannot clean up; what matters is that nothing partial is at a name a
//! user or a program reads).
//!
//! Kill delays are drawn over the length of an uninterrupted run (measured first), half of
//! them in its second half where the output is written, from a seeded generator: `SAFESHIFT_FAULT_SEED` picks the seed (default fixed) and
//! `SAFESHIFT_FAULT_TRIALS` the trials per kind (default 40; the long run in
//! book/src/fuzzing.md uses 2000). The full-disk test mounts a 64 KiB tmpfs, which needs
//! root; without it the test says so and returns.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use safeshift::engine::{verify, Checkpoint, TEMP_INFIX};
use safeshift::model::Layout;
use sha2::{Digest, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_safeshift");

/// Trials for one kind: `default` (the kinds sum to over 100), or `SAFESHIFT_FAULT_TRIALS`.
fn trials(default: usize) -> usize {
    std::env::var("SAFESHIFT_FAULT_TRIALS").ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

/// Whether this build has `upgrade` (it is wired into the CLI once the graph is); the
/// upgrade trials are skipped, saying so, until it is.
fn has_upgrade() -> bool {
    let has = Command::new(BIN).args(["upgrade", "--help"]).output().is_ok_and(|output| output.status.success());
    if !has {
        eprintln!("faults: skipped (this build has no `upgrade` command)");
    }
    has
}

/// A registry folder with the repo's Anemoi schemas and migrations (the embedded one holds
/// every family), in `dir`; the upgrade arguments that use it, to 0.15.1 (the last version
/// reachable without an aux input).
fn anemoi_registry(dir: &Path) -> Vec<std::ffi::OsString> {
    let registry = dir.join("registry");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for kind in ["schemas", "migrations"] {
        let to = registry.join(kind);
        std::fs::create_dir_all(&to).unwrap();
        for entry in std::fs::read_dir(root.join(kind).join("anemoi")).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
    vec!["--registry".into(), registry.into(), "--to".into(), "0.15.1".into()]
}

/// A small xorshift generator: reproducible kill points without a dependency.
struct Rng(u64);

impl Rng {
    fn seeded(salt: u64) -> Rng {
        let seed = std::env::var("SAFESHIFT_FAULT_SEED").ok().and_then(|value| value.parse().ok()).unwrap_or(0x5afe);
        Rng((seed ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in `0..=max`.
    fn below(&mut self, max: Duration) -> Duration {
        let nanos = max.as_nanos().max(1) as u64;
        Duration::from_nanos(self.next() % (nanos + 1))
    }

    /// When to kill a run that takes about `duration` uninterrupted: half the time
    /// anywhere up to 20% past it, half the time in its second half, where the output is
    /// written (loading and planning come first).
    fn kill_point(&mut self, duration: Duration) -> Duration {
        if self.next().is_multiple_of(2) {
            self.below(duration + duration / 5)
        } else {
            duration / 2 + self.below(duration * 3 / 5)
        }
    }
}

fn sha256(path: &Path) -> [u8; 32] {
    Sha256::digest(std::fs::read(path).unwrap()).into()
}

/// Opens and verifies a file that must be complete; its layout.
fn complete_layout(path: &Path) -> Layout {
    let checkpoint = Checkpoint::open(path).unwrap_or_else(|err| panic!("partial file at the target: {err}"));
    let report = verify(&checkpoint).unwrap_or_else(|err| panic!("`{}` does not verify: {err}", path.display()));
    assert!(report.problems.is_empty(), "`{}` has problems: {:?}", path.display(), report.problems);
    let mut layout = checkpoint.layout().clone();
    // The stamp of the input an output was made from holds the input's mtime, which every
    // trial changes by rewriting the input; everything else must be identical.
    layout.metadata.remove("safeshift.source");
    layout
}

/// Runs the command to the end, asserting success; how long it took.
fn run_to_completion(args: &[&std::ffi::OsStr]) -> Duration {
    let start = Instant::now();
    let output = Command::new(BIN).args(args).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    start.elapsed()
}

/// Spawns the command and kills it with SIGKILL after `delay` (if it has not finished);
/// whether it was killed.
fn run_and_kill(args: &[&std::ffi::OsStr], delay: Duration) -> bool {
    let mut child = Command::new(BIN).args(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(delay);
    let killed = matches!(child.try_wait(), Ok(None));
    if killed {
        child.kill().unwrap(); // SIGKILL on Unix.
    }
    let output = child.wait_with_output().unwrap();
    if !killed {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "the run failed on its own: {}\n{stderr}", output.status);
    }
    killed
}

/// Whether the file system of `dir` offers unnamed files (`O_TMPFILE`; tmpfs and ext4 do).
/// There the engine writes into an unnamed file, and a killed run leaves nothing at all.
fn has_o_tmpfile(dir: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().read(true).write(true).custom_flags(libc::O_TMPFILE).open(dir).is_ok()
}

/// Removes the writers' leftovers in `dir` (other than `keep`), failing on any other file,
/// and on any file at all where the file system has `O_TMPFILE`.
fn sweep_leftovers(dir: &Path, keep: &[&Path]) -> usize {
    let unnamed = has_o_tmpfile(dir);
    let mut leftovers = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if keep.contains(&path.as_path()) {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(!unnamed, "a killed run left `{name}` on a file system with O_TMPFILE");
        assert!(name.contains(TEMP_INFIX), "a killed run left `{name}`, which is not a recognisable temporary file");
        std::fs::remove_file(&path).unwrap();
        leftovers += 1;
    }
    leftovers
}

/// What a kind of trial saw, for the failure message and the summary line.
#[derive(Debug, Default)]
struct Tally {
    trials: usize,
    killed: usize,
    target_complete_after_kill: usize,
    target_absent_after_kill: usize,
    leftovers: usize,
}

impl Tally {
    fn report(&self, kind: &str) {
        eprintln!("faults/{kind}: {self:?}");
        // Delays start at zero, so most runs are killed; if none were, nothing was tested.
        assert!(self.killed > 0, "{kind}: no run was killed: {self:?}");
    }
}

/// The anemoi 0.4.0 fixture, copied to `dir`.
fn anemoi_input(dir: &Path) -> PathBuf {
    let input = dir.join("model.safetensors");
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/anemoi/0.4.0/state_dict.safetensors"), &input)
        .unwrap();
    input
}

/// `safeshift upgrade IN -o OUT` killed at random points. Odd trials start with another
/// complete checkpoint at the target (an overwrite: afterwards the target holds it or the
/// upgrade, nothing in between), even ones with none.
#[test]
fn killed_upgrade_leaves_the_input_intact_and_no_partial_target() {
    if !has_upgrade() {
        return;
    }
    let registry_dir = tempfile::tempdir().unwrap();
    let registry = anemoi_registry(registry_dir.path());
    let dir = tempfile::tempdir().unwrap();
    let input = anemoi_input(dir.path());
    let output = dir.path().join("out.safetensors");
    let mut args: Vec<&std::ffi::OsStr> =
        vec!["upgrade".as_ref(), input.as_os_str(), "-o".as_ref(), output.as_os_str()];
    args.extend(registry.iter().map(|arg| arg.as_os_str()));
    let before = sha256(&input);
    let duration = run_to_completion(&args);
    let expected = complete_layout(&output);
    let old_layout = complete_layout(&input);

    let mut rng = Rng::seeded(1);
    let mut tally = Tally::default();
    for trial in 0..trials(20) {
        if trial % 2 == 0 {
            let _ = std::fs::remove_file(&output);
        } else {
            std::fs::copy(&input, &output).unwrap();
        }
        tally.trials += 1;
        let killed = run_and_kill(&args, rng.kill_point(duration));
        assert_eq!(sha256(&input), before, "trial {trial}: the input changed");
        if killed {
            tally.killed += 1;
            if output.exists() {
                tally.target_complete_after_kill += 1;
            } else {
                tally.target_absent_after_kill += 1;
            }
        }
        if output.exists() {
            let layout = complete_layout(&output);
            assert!(layout == expected || (trial % 2 == 1 && layout == old_layout), "trial {trial}: unexpected layout");
        }
        tally.leftovers += sweep_leftovers(dir.path(), &[&input, &output]);
    }
    tally.report("upgrade -o");
}

/// `safeshift upgrade --in-place` killed at random points: the path always holds the
/// original bytes or a complete upgraded file, and a backup, when present, the original.
#[test]
fn killed_in_place_upgrade_keeps_a_readable_file() {
    if !has_upgrade() {
        return;
    }
    let registry_dir = tempfile::tempdir().unwrap();
    let registry = anemoi_registry(registry_dir.path());
    let dir = tempfile::tempdir().unwrap();
    let input = anemoi_input(dir.path());
    let original = std::fs::read(&input).unwrap();
    let before = sha256(&input);
    let backup = dir.path().join("model.safetensors.bak");
    let mut args: Vec<&std::ffi::OsStr> = vec!["upgrade".as_ref(), input.as_os_str(), "--in-place".as_ref()];
    args.extend(registry.iter().map(|arg| arg.as_os_str()));
    let duration = run_to_completion(&args);
    let upgraded = complete_layout(&input);
    assert_eq!(sha256(&backup), before, "the backup is not the original");

    let mut rng = Rng::seeded(2);
    let mut tally = Tally::default();
    for trial in 0..trials(20) {
        std::fs::write(&input, &original).unwrap();
        let _ = std::fs::remove_file(&backup);
        tally.trials += 1;
        let killed = run_and_kill(&args, rng.kill_point(duration));
        tally.killed += usize::from(killed);
        if sha256(&input) == before {
            tally.target_absent_after_kill += usize::from(killed);
        } else {
            tally.target_complete_after_kill += usize::from(killed);
            assert_eq!(complete_layout(&input), upgraded, "trial {trial}: neither the original nor the upgrade");
        }
        if backup.exists() {
            assert_eq!(sha256(&backup), before, "trial {trial}: the backup is not the original");
        }
        tally.leftovers += sweep_leftovers(dir.path(), &[&input, &backup]);
    }
    tally.report("upgrade --in-place");
}

/// `safeshift convert` of a pickle checkpoint (a few MiB, generated) killed at random
/// points: the same guarantees through the torch reader and the writer's generators.
#[test]
fn killed_convert_leaves_no_partial_target() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("model.pt");
    std::fs::write(&input, pickle_checkpoint(4, 1 << 18)).unwrap();
    let output = dir.path().join("model.safetensors");
    let args: Vec<&std::ffi::OsStr> = vec!["convert".as_ref(), input.as_os_str(), "-o".as_ref(), output.as_os_str()];
    let before = sha256(&input);
    let duration = run_to_completion(&args);
    let expected = complete_layout(&output);
    assert_eq!(expected.tensors.len(), 4);

    let mut rng = Rng::seeded(3);
    let mut tally = Tally::default();
    for trial in 0..trials(60) {
        let _ = std::fs::remove_file(&output);
        tally.trials += 1;
        let killed = run_and_kill(&args, rng.kill_point(duration));
        assert_eq!(sha256(&input), before, "trial {trial}: the input changed");
        tally.killed += usize::from(killed);
        if output.exists() {
            tally.target_complete_after_kill += usize::from(killed);
            assert_eq!(complete_layout(&output), expected, "trial {trial}");
        } else {
            tally.target_absent_after_kill += usize::from(killed);
        }
        tally.leftovers += sweep_leftovers(dir.path(), &[&input, &output]);
    }
    tally.report("convert");
}

/// A full disk: the target folder is a 64 KiB tmpfs, filled up. The run fails with a
/// clean error naming the target, and leaves neither a target nor a temporary file.
#[test]
fn full_disk_gives_a_clean_error_and_leaves_nothing() {
    if !is_root() {
        eprintln!("faults/full disk: skipped (mounting a tmpfs needs root)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("small");
    std::fs::create_dir(&mount).unwrap();
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"]).arg(&mount).status();
    if !mounted.is_ok_and(|status| status.success()) {
        eprintln!("faults/full disk: skipped (cannot mount a tmpfs here)");
        return;
    }
    let _unmount = Unmount(mount.clone());
    let run = |args: &[&std::ffi::OsStr]| Command::new(BIN).args(args).output().unwrap();
    let output = mount.join("out.safetensors");

    // Room for a few pages, not for the 1 MiB output: the disk fills mid-write.
    let convert_input = dir.path().join("model.pt");
    std::fs::write(&convert_input, pickle_checkpoint(1, 1 << 18)).unwrap();
    let output_of = run(&["convert".as_ref(), convert_input.as_os_str(), "-o".as_ref(), output.as_os_str()]);
    assert_eq!(output_of.status.code(), Some(2), "{output_of:?}");
    let stderr = String::from_utf8_lossy(&output_of.stderr);
    assert!(stderr.contains("out.safetensors") && stderr.contains("No space left on device"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(&mount).unwrap().map(|entry| entry.unwrap().file_name()).collect();
    assert!(left.is_empty(), "a full disk left {left:?}");

    // The same through `upgrade` (a batch: the file fails, exit 1).
    if has_upgrade() {
        let registry = anemoi_registry(dir.path());
        let input = anemoi_input(dir.path());
        let mut args: Vec<&std::ffi::OsStr> =
            vec!["upgrade".as_ref(), input.as_os_str(), "-o".as_ref(), output.as_os_str()];
        args.extend(registry.iter().map(|arg| arg.as_os_str()));
        let output_of = run(&args);
        assert_eq!(output_of.status.code(), Some(1), "{output_of:?}");
        let stderr = String::from_utf8_lossy(&output_of.stderr);
        assert!(stderr.contains("No space left on device") && !stderr.contains("panicked"), "{stderr}");
        let left: Vec<_> = std::fs::read_dir(&mount).unwrap().map(|entry| entry.unwrap().file_name()).collect();
        assert!(left.is_empty(), "a full disk left {left:?}");
    }

    // Completely full (not one free page): the temporary file cannot even grow.
    let filler = mount.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 64 << 10]);
    std::fs::write(&convert_input, pickle_checkpoint(1, 1024)).unwrap();
    let output_of = run(&["convert".as_ref(), convert_input.as_os_str(), "-o".as_ref(), output.as_os_str()]);
    assert_eq!(output_of.status.code(), Some(2), "{output_of:?}");
    let stderr = String::from_utf8_lossy(&output_of.stderr);
    assert!(stderr.contains("No space left on device"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(&mount).unwrap().map(|entry| entry.unwrap().file_name()).collect();
    assert_eq!(left, ["filler"], "a full disk left {left:?}");
}

fn is_root() -> bool {
    // `id -u` rather than libc::geteuid, to keep this file free of unsafe code.
    Command::new("id").arg("-u").output().is_ok_and(|output| output.stdout.trim_ascii() == b"0")
}

struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A `torch.save`-shaped zip checkpoint: a state dict of `count` F32 tensors of `numel`
/// elements each (`w0`, `w1`, …), each in its own storage, values `i as f32`.
fn pickle_checkpoint(count: usize, numel: u32) -> Vec<u8> {
    fn unicode(out: &mut Vec<u8>, text: &str) {
        out.push(b'X');
        out.extend_from_slice(&(text.len() as u32).to_le_bytes());
        out.extend_from_slice(text.as_bytes());
    }
    let mut pickle = vec![0x80, 2, b'}', b'('];
    for index in 0..count {
        unicode(&mut pickle, &format!("w{index}"));
        pickle.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n(");
        // The persistent id: ('storage', FloatStorage, key, location, numel).
        pickle.push(b'(');
        unicode(&mut pickle, "storage");
        pickle.extend_from_slice(b"ctorch\nFloatStorage\n");
        unicode(&mut pickle, &index.to_string());
        unicode(&mut pickle, "cpu");
        pickle.push(b'J');
        pickle.extend_from_slice(&numel.to_le_bytes());
        pickle.extend_from_slice(b"tQ");
        // Offset 0, size (numel,), stride (1,), requires_grad False, hooks OrderedDict().
        pickle.extend_from_slice(b"K\x00J");
        pickle.extend_from_slice(&numel.to_le_bytes());
        pickle.extend_from_slice(b"\x85K\x01\x85\x89ccollections\nOrderedDict\n)Rt");
        pickle.push(b'R');
    }
    pickle.extend_from_slice(b"u.");
    let storages: Vec<Vec<u8>> =
        (0..count).map(|_| (0..numel).flat_map(|value| (value as f32).to_le_bytes()).collect()).collect();
    let mut members: Vec<(String, &[u8])> =
        vec![("archive/data.pkl".into(), &pickle), ("archive/byteorder".into(), b"little")];
    for (index, bytes) in storages.iter().enumerate() {
        members.push((format!("archive/data/{index}"), bytes));
    }
    stored_zip(&members)
}

/// A zip of stored members (CRC-32 included), as `torch.save` writes it.
fn stored_zip(members: &[(String, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, bytes) in members {
        let offset = out.len() as u32;
        let crc = crc32(bytes);
        let sizes = [crc, bytes.len() as u32, bytes.len() as u32];
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        sizes.iter().for_each(|value| out.extend_from_slice(&value.to_le_bytes()));
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(bytes);
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        sizes.iter().for_each(|value| central.extend_from_slice(&value.to_le_bytes()));
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
    out.extend_from_slice(&[0, 0]);
    out
}

/// CRC-32 (IEEE), as zip members carry it.
pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}
